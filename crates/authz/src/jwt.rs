//! Compact JWS with ES256 (RFC 7515, RFC 7518 §3.4), written for one job: signing and strictly verifying
//! Portcullis access tokens. The verifier follows the JWT BCP (RFC 8725 §3.1): the algorithm is fixed (never
//! taken from the token), `none`, HMAC and anything else are refused, and headers that point at keys
//! (`jku`, `jwk`, `x5u`, `x5c`) or carry `crit` are refused rather than ignored.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use portcullis_proto::b64;
use serde::{Deserialize, Serialize};

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

/// Signs `claims` (already JSON) with `key`, producing `header.payload.signature`.
pub fn sign(key: &SigningKey, kid: &str, typ: &str, claims_json: &[u8]) -> String {
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
    let sig: Signature = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&b64::encode(sig.to_bytes()));
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
    /// Checks the signature with `key` and returns the payload bytes.
    pub fn verify(self, key: &VerifyingKey) -> Result<Vec<u8>, JwsError> {
        let sig = Signature::from_slice(&self.signature).map_err(|_| JwsError::Signature)?;
        key.verify(self.signing_input.as_bytes(), &sig)
            .map_err(|_| JwsError::Signature)?;
        Ok(self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
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
        let k2 = SigningKey::from_slice(&[9u8; 32]).unwrap();
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
