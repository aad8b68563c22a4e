//! The provider's JWK Set (RFC 7517 §5): the public keys ID tokens are verified with. Only signature keys
//! Portcullis can use are kept: RSA of at least 2048 bits (RFC 7518 §3.3, §6.3), EC P-256 and P-384
//! (RFC 7518 §6.2), OKP Ed25519 (RFC 8037 §2). Keys for encryption (`use` other than `sig`), of unknown types or
//! curves, or malformed, are skipped rather than failing the whole set, so one odd key at the provider does not
//! stop sign-in.

use super::error::FederationError;
use portcullis_proto::b64;
use serde::Deserialize;

/// Largest JWK Set accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The key material of one usable key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA (RFC 7518 §6.3.1): modulus and exponent, big-endian, without leading zeros.
    Rsa {
        /// The modulus `n`.
        n: Vec<u8>,
        /// The exponent `e`.
        e: Vec<u8>,
    },
    /// NIST P-256 (`crv: P-256`): the uncompressed point `04 || x || y`.
    P256(Vec<u8>),
    /// NIST P-384 (`crv: P-384`): the uncompressed point `04 || x || y`.
    P384(Vec<u8>),
    /// Ed25519 (RFC 8037 §2, `kty: OKP`, `crv: Ed25519`): the 32-byte public key.
    Ed25519(Vec<u8>),
}

/// One usable key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`, if the provider names its keys.
    pub kid: Option<String>,
    /// `alg`, if the key is restricted to one algorithm (RFC 7517 §4.4).
    pub alg: Option<String>,
    /// The key material.
    pub key: PublicKey,
}

/// The usable keys of a provider's JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwkSet {
    /// The keys, in document order.
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl JwkSet {
    /// Parses a JWK Set document, keeping the usable signature keys. A document that is not a JWK Set is an
    /// error; a set with no usable key is one too (nothing could be verified with it).
    pub fn parse(body: &[u8]) -> Result<Self, FederationError> {
        if body.len() > MAX_JWKS_BYTES {
            return Err(FederationError::Jwks("larger than 256 KiB".into()));
        }
        let raw: RawSet = serde_json::from_slice(body)
            .map_err(|e| FederationError::Jwks(format!("not a JWK Set: {e}")))?;
        let keys: Vec<Jwk> = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<RawKey>(v).ok())
            .filter_map(RawKey::into_jwk)
            .collect();
        if keys.is_empty() {
            return Err(FederationError::Jwks("no usable signature key".into()));
        }
        Ok(Self { keys })
    }

    /// The keys that may verify a token with this `kid` and `alg` (OpenID Connect Core §10.1): with a `kid`,
    /// the keys of that id; without, every key. Keys whose type or own `alg` do not fit `alg` are left out.
    /// `None` when the `kid` names no key at all (the caller refetches the set once: the provider may have
    /// rotated).
    pub fn candidates(&self, kid: Option<&str>, alg: &str) -> Option<Vec<&Jwk>> {
        let named: Vec<&Jwk> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => self.keys.iter().collect(),
        };
        if named.is_empty() {
            return None;
        }
        Some(named.into_iter().filter(|k| k.fits(alg)).collect())
    }
}

impl Jwk {
    /// Whether this key can verify `alg` (and is not restricted to another algorithm).
    pub fn fits(&self, alg: &str) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa { .. } => matches!(
                alg,
                "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
            ),
            PublicKey::P256(_) => alg == "ES256",
            PublicKey::P384(_) => alg == "ES384",
            PublicKey::Ed25519(_) => matches!(alg, "EdDSA" | "Ed25519"),
        }
    }
}

impl RawKey {
    fn into_jwk(self) -> Option<Jwk> {
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        if self
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
        {
            return None;
        }
        let key = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => rsa(self.n.as_deref()?, self.e.as_deref()?)?,
            ("EC", Some("P-256")) => {
                PublicKey::P256(ec_point(self.x.as_deref()?, self.y.as_deref()?, 32)?)
            }
            ("EC", Some("P-384")) => {
                PublicKey::P384(ec_point(self.x.as_deref()?, self.y.as_deref()?, 48)?)
            }
            ("OKP", Some("Ed25519")) => {
                let x = b64::decode(self.x.as_deref()?)?;
                (x.len() == 32).then_some(PublicKey::Ed25519(x))?
            }
            _ => return None,
        };
        Some(Jwk {
            kid: self.kid,
            alg: self.alg,
            key,
        })
    }
}

/// An RSA key of at least 2048 bits (RFC 7518 §3.3) with a sane exponent.
fn rsa(n: &str, e: &str) -> Option<PublicKey> {
    let strip = |v: Vec<u8>| -> Vec<u8> {
        let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        v[first..].to_vec()
    };
    let n = strip(b64::decode(n)?);
    let e = strip(b64::decode(e)?);
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 4 {
        return None;
    }
    Some(PublicKey::Rsa { n, e })
}

/// The uncompressed point `04 || x || y` of coordinates `size` bytes long (RFC 7518 §6.2.1.2, .3).
fn ec_point(x: &str, y: &str, size: usize) -> Option<Vec<u8>> {
    let (x, y) = (b64::decode(x)?, b64::decode(y)?);
    if x.len() != size || y.len() != size {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn set(keys: serde_json::Value) -> Result<JwkSet, FederationError> {
        JwkSet::parse(json!({ "keys": keys }).to_string().as_bytes())
    }

    fn rsa_jwk(bits: usize, kid: &str) -> serde_json::Value {
        let mut n = vec![0xffu8; bits / 8];
        n[bits / 8 - 1] = 0xfb;
        json!({"kty": "RSA", "kid": kid, "n": b64::encode(n), "e": "AQAB"})
    }

    #[test]
    fn keeps_usable_signature_keys_only() {
        let p256 = json!({"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64::encode([1u8; 32]), "y": b64::encode([2u8; 32])});
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64::encode([3u8; 32])});
        let s = set(json!([
            rsa_jwk(2048, "rsa"),
            rsa_jwk(1024, "weak"),
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": b64::encode([0xffu8; 256]), "e": "AQAB"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "kid": "short", "x": "AA", "y": "AA"},
            p256,
            ed,
            "not an object"
        ]))
        .unwrap();
        let kids: Vec<_> = s.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["rsa", "ec", "ed"]);
        assert_eq!(s.candidates(Some("nope"), "RS256"), None);
        assert_eq!(s.candidates(Some("rsa"), "ES256").unwrap().len(), 0);
        assert_eq!(s.candidates(Some("rsa"), "PS384").unwrap().len(), 1);
        assert_eq!(s.candidates(None, "EdDSA").unwrap().len(), 1);
    }

    #[test]
    fn refuses_unusable_sets() {
        assert!(matches!(set(json!([])), Err(FederationError::Jwks(_))));
        assert!(matches!(
            set(json!([rsa_jwk(1024, "weak")])),
            Err(FederationError::Jwks(_))
        ));
        assert!(matches!(
            JwkSet::parse(b"[]"),
            Err(FederationError::Jwks(_))
        ));
    }

    #[test]
    fn key_alg_restricts() {
        let mut k = rsa_jwk(2048, "r");
        k["alg"] = json!("RS256");
        let s = set(json!([k])).unwrap();
        assert!(s.keys[0].fits("RS256"));
        assert!(!s.keys[0].fits("PS256"));
    }
}
