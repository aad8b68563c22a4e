//! The fake IdP's signing keys and compact JWS (RFC 7515 §7.1) making: RS256 (RFC 7518 §3.3) with fixed test-only
//! RSA keys (ring cannot generate RSA keys; `test-only-rsa-*.pem`, made with `openssl genpkey`, protect nothing),
//! ES256 (RFC 7518 §3.4) with P-256 keys generated at start, HS256 (§3.2) and `none` (§3.6) for the attacks.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{json, Value};

/// The signing algorithm of the fake IdP's ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alg {
    #[default]
    RS256,
    ES256,
}

impl Alg {
    /// The JWA name (RFC 7518 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
        }
    }
}

/// Test-only RSA 2048 keys: 1 and 2 take turns as the current key across rotations, 3 never appears in a JWKS
/// (the "other key" of the forgery tests).
const RSA_PEMS: [&str; 3] = [
    include_str!("test-only-rsa-1.pem"),
    include_str!("test-only-rsa-2.pem"),
    include_str!("test-only-rsa-3.pem"),
];

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// One signing key with its `kid`.
pub struct SigningKey {
    kid: String,
    pair: Pair,
}

impl SigningKey {
    /// Test-only RSA key `index` (0..3) under `kid`.
    pub fn rsa(index: usize, kid: &str) -> Self {
        let pem = RSA_PEMS[index];
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(b64).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
        Self {
            kid: kid.to_owned(),
            pair: Pair::Rsa(pair),
        }
    }

    /// A fresh P-256 key under `kid`.
    pub fn ec(kid: &str) -> Self {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        Self {
            kid: kid.to_owned(),
            pair: Pair::Ec(pair),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        match self.pair {
            Pair::Rsa(_) => Alg::RS256,
            Pair::Ec(_) => Alg::ES256,
        }
    }

    /// The public JWK (RFC 7517 §4; RSA members RFC 7518 §6.3.1, EC §6.2.1) with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(pair) => {
                let c: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({
                    "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": URL_SAFE_NO_PAD.encode(strip_zeros(&c.n)),
                    "e": URL_SAFE_NO_PAD.encode(strip_zeros(&c.e)),
                })
            }
            Pair::Ec(pair) => {
                // SEC1 uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "kid": self.kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                })
            }
        }
    }

    /// The JWS signature over `input` (ES256: R || S, 64 bytes, RFC 7518 §3.4).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .unwrap();
                sig
            }
            Pair::Ec(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// `BASE64URL(header) || '.' || BASE64URL(payload)`, the JWS signing input (RFC 7515 §5.1).
pub fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

/// A compact JWS of `payload` signed by `key`, with header `{alg, typ: JWT, kid}` (`kid` as given, which the
/// forgery cases set to another key's).
pub fn jws(key: &SigningKey, kid: &str, payload: &Value) -> String {
    let header = json!({"alg": key.alg().name(), "typ": "JWT", "kid": kid});
    let input = signing_input(&header, payload);
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An unsecured JWS (RFC 7515 §A.5, `alg: none`): empty signature.
pub fn unsecured(payload: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!("{}.", signing_input(&header, payload))
}

/// An HS256 JWS keyed with `secret` (the client secret: the algorithm-confusion attack, OIDC Core §10.1 allows
/// it only when the client asked for HS256, which Portcullis never does).
pub fn hs256(secret: &str, kid: Option<&str>, payload: &Value) -> String {
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = signing_input(&header, payload);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The keys of the fake IdP: the current RSA and P-256 keys (published and signing), older ones still published,
/// and an RSA and a P-256 key that are never published (the forgers).
pub struct KeySet {
    pub rsa: SigningKey,
    pub ec: SigningKey,
    pub old: Vec<SigningKey>,
    pub other_rsa: SigningKey,
    pub other_ec: SigningKey,
    generation: usize,
}

impl KeySet {
    pub fn new() -> Self {
        Self {
            rsa: SigningKey::rsa(0, "rsa-1"),
            ec: SigningKey::ec("ec-1"),
            old: Vec::new(),
            other_rsa: SigningKey::rsa(2, "rsa-1"),
            other_ec: SigningKey::ec("ec-1"),
            generation: 1,
        }
    }

    /// The current signing key for `alg`.
    pub fn current(&self, alg: Alg) -> &SigningKey {
        match alg {
            Alg::RS256 => &self.rsa,
            Alg::ES256 => &self.ec,
        }
    }

    /// The unpublished key for `alg`.
    pub fn other(&self, alg: Alg) -> &SigningKey {
        match alg {
            Alg::RS256 => &self.other_rsa,
            Alg::ES256 => &self.other_ec,
        }
    }

    /// New current keys with new kids (`rsa-N`, `ec-N`); the old ones stay published when `keep_old`.
    pub fn rotate(&mut self, keep_old: bool) -> Vec<String> {
        self.generation += 1;
        let n = self.generation;
        let rsa = SigningKey::rsa((n - 1) % 2, &format!("rsa-{n}"));
        let ec = SigningKey::ec(&format!("ec-{n}"));
        let old_rsa = std::mem::replace(&mut self.rsa, rsa);
        let old_ec = std::mem::replace(&mut self.ec, ec);
        if keep_old {
            self.old.insert(0, old_ec);
            self.old.insert(0, old_rsa);
        } else {
            self.old.clear();
        }
        vec![self.rsa.kid.clone(), self.ec.kid.clone()]
    }

    /// The published JWK Set (RFC 7517 §5): the current keys, then the kept old ones.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = [&self.rsa, &self.ec]
            .into_iter()
            .chain(self.old.iter())
            .map(SigningKey::public_jwk)
            .collect();
        json!({ "keys": keys })
    }
}
