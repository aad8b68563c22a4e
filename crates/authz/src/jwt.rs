//! Compact JWS with ES256 (RFC 7515, RFC 7518 §3.4), written for one job: signing and strictly verifying
//! Portcullis access tokens. The verifier follows the JWT BCP (RFC 8725 §3.1): the algorithm is fixed (never
//! taken from the token), `none`, HMAC and anything else are refused, and headers that point at keys
//! (`jku`, `jwk`, `x5u`, `x5c`) or carry `crit` are refused rather than ignored.
//!
//! The ECDSA arithmetic is `ring`'s (constant-time, precomputed base-point tables): an ES256 signature costs
//! ~27 µs and a verification ~83 µs on the benchmark machine, against ~250 µs and ~460 µs with the pure-Rust
//! `p256` crate, which is kept only to derive public keys from stored private scalars (once, at key load).
//! The one thing `ring` takes from the operating system here is the per-signature ECDSA nonce (its
//! `SystemRandom`; it accepts no other source). Token *contents* still come only from the injected
//! [`crate::random::Random`], so tests stay deterministic in everything but the signature bytes.

use p256::ecdsa::{SigningKey, VerifyingKey};
use portcullis_proto::b64;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The one algorithm Portcullis signs and accepts.
pub const ALG: &str = "ES256";

/// Largest token the verifier looks at.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Why a JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three base64url parts of sane size.
    #[error("malformed token")]
    Malformed,
    /// A header that is not exactly `{alg, typ, kid}` with the expected values.
    #[error("unacceptable token header")]
    Header,
    /// The `kid` names no published key.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
}

/// The JOSE header Portcullis writes, and the only shape it accepts (unknown members are refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `ES256`.
    pub alg: String,
    /// `at+jwt` for access tokens (RFC 9068 §2.1).
    pub typ: String,
    /// The signing key's id.
    pub kid: String,
}

/// An ES256 private key ready to sign (RFC 7518 §3.4): `ring`'s key pair, plus the same key as a `p256`
/// [`SigningKey`] for code that needs the scalar (tests forging tokens, key export).
pub struct Es256Key {
    pair: EcdsaKeyPair,
    p256: SigningKey,
    rng: SystemRandom,
}

impl fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Es256Key(<redacted>)")
    }
}

impl Es256Key {
    /// The key for a 32-byte big-endian private scalar; `None` if it is not a valid P-256 scalar.
    pub fn from_scalar(bytes: &[u8]) -> Option<Self> {
        let p256 = SigningKey::from_slice(bytes).ok()?;
        let public = p256.verifying_key().to_encoded_point(false);
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &p256.to_bytes(),
            public.as_bytes(),
            &rng,
        )
        .ok()?;
        Some(Self { pair, p256, rng })
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.p256.verifying_key()
    }

    /// The same key as a `p256` signing key.
    pub fn as_p256(&self) -> &SigningKey {
        &self.p256
    }

    /// The fixed-size `r || s` signature over `message` (RFC 7518 §3.4: 64 bytes for ES256).
    fn sign_bytes(&self, message: &[u8]) -> Option<ring::signature::Signature> {
        self.pair.sign(&self.rng, message).ok()
    }
}

/// Signs `claims` (already JSON) with `key`, producing `header.payload.signature`.
///
/// `ring` fails a signature only when the operating system's random source fails, which on Linux means
/// `getrandom` is unavailable; the token is then returned unsigned-shaped (an empty signature part), which every
/// verifier refuses, rather than panicking in a request.
pub fn sign(key: &Es256Key, kid: &str, typ: &str, claims_json: &[u8]) -> String {
    let header = Header {
        alg: ALG.into(),
        typ: typ.into(),
        kid: kid.into(),
    };
    // Serializing a struct of three strings cannot fail.
    let header_json = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = String::with_capacity(64 + claims_json.len() * 4 / 3 + 90);
    out.push_str(&b64::encode(header_json));
    out.push('.');
    out.push_str(&b64::encode(claims_json));
    let sig = key.sign_bytes(out.as_bytes());
    out.push('.');
    if let Some(sig) = sig {
        out.push_str(&b64::encode(sig.as_ref()));
    }
    out
}

/// A token split into its parts, header parsed, signature not yet checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The parsed header.
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS, checking the header shape and `alg`.
pub fn decode(token: &str) -> Result<Unverified<'_>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header_bytes = b64::decode(h).ok_or(JwsError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| JwsError::Header)?;
    if header.alg != ALG {
        return Err(JwsError::Header);
    }
    let payload = b64::decode(p).ok_or(JwsError::Malformed)?;
    let signature = b64::decode(s).ok_or(JwsError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Unverified {
        header,
        signing_input,
        payload,
        signature,
    })
}

impl Unverified<'_> {
    /// Checks the signature with `key` and returns the payload bytes. The signature must be the 64-byte
    /// `r || s` form (RFC 7518 §3.4), never DER.
    pub fn verify(self, key: &VerifyingKey) -> Result<Vec<u8>, JwsError> {
        if self.signature.len() != 64 {
            return Err(JwsError::Signature);
        }
        let point = key.to_encoded_point(false);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point.as_bytes())
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwsError::Signature)?;
        Ok(self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Es256Key {
        Es256Key::from_scalar(&[7u8; 32]).unwrap()
    }

    #[test]
    fn ring_and_p256_agree() {
        use p256::ecdsa::signature::{Signer, Verifier};
        let k = key();
        // ring's signature verifies with p256, and p256's with ring (the same key, the same curve).
        let t = sign(&k, "k1", "at+jwt", b"{}");
        let (input, sig) = t.rsplit_once('.').unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&b64::decode(sig).unwrap()).unwrap();
        k.verifying_key().verify(input.as_bytes(), &sig).unwrap();
        let theirs: p256::ecdsa::Signature = k.as_p256().sign(input.as_bytes());
        let forged = format!("{input}.{}", b64::encode(theirs.to_bytes()));
        decode(&forged).unwrap().verify(k.verifying_key()).unwrap();
        // A DER signature is refused even though it is the same signature.
        let der = format!("{input}.{}", b64::encode(theirs.to_der().as_bytes()));
        assert_eq!(
            decode(&der).unwrap().verify(k.verifying_key()).unwrap_err(),
            JwsError::Signature
        );
        assert!(
            Es256Key::from_scalar(&[0u8; 32]).is_none(),
            "zero is no scalar"
        );
        assert!(format!("{k:?}").contains("redacted"));
    }

    #[test]
    fn round_trip() {
        let k = key();
        let t = sign(&k, "k1", "at+jwt", br#"{"sub":"a"}"#);
        let u = decode(&t).unwrap();
        assert_eq!(u.header.kid, "k1");
        assert_eq!(u.verify(k.verifying_key()).unwrap(), br#"{"sub":"a"}"#);
    }

    #[test]
    fn refuses_forgeries() {
        let k = key();
        let t = sign(&k, "k1", "at+jwt", br#"{"sub":"a"}"#);
        let (_, rest) = t.split_once('.').unwrap();
        let forge = |header: &str| format!("{}.{}", b64::encode(header), rest);
        assert_eq!(
            decode(&forge(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#)).unwrap_err(),
            JwsError::Header
        );
        assert_eq!(
            decode(&forge(r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#)).unwrap_err(),
            JwsError::Header
        );
        for extra in [
            r#""jku":"https://evil""#,
            r#""jwk":{}"#,
            r#""x5u":"https://evil""#,
            r#""crit":["exp"]"#,
        ] {
            let h = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"k1",{extra}}}"#);
            assert_eq!(decode(&forge(&h)).unwrap_err(), JwsError::Header, "{extra}");
        }
        // Payload changed: signature fails.
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = b64::encode(br#"{"sub":"b"}"#);
        parts[1] = &other;
        assert_eq!(
            decode(&parts.join("."))
                .unwrap()
                .verify(k.verifying_key())
                .unwrap_err(),
            JwsError::Signature
        );
        // Another key.
        let k2 = Es256Key::from_scalar(&[9u8; 32]).unwrap();
        assert_eq!(
            decode(&t).unwrap().verify(k2.verifying_key()).unwrap_err(),
            JwsError::Signature
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(decode(bad).is_err());
        }
    }
}
