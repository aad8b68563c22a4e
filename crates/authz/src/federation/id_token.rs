//! ID token validation, OpenID Connect Core §3.1.3.7 (and §12.2 for ID tokens from a refresh): compact JWS only,
//! an algorithm allow-list (never `none` or HMAC, RFC 8725 §3.1–3.2) intersected with what the provider says it
//! signs with, the key chosen by `kid` from the provider's JWK Set, the signature checked with `ring`, then
//! `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`.

use super::callback::ct_eq;
use super::error::FederationError;
use super::jwk::{JwkSet, PublicKey};
use super::metadata::ProviderMetadata;
use super::provider::ProviderConfig;
use super::request::PendingLogin;
use portcullis_proto::b64;
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The algorithms Portcullis verifies (RFC 7518 §3.1, RFC 8037 §3.1, and `Ed25519`, RFC 9864's
/// fully-specified name for EdDSA over Ed25519). `none` and `HS*` are never accepted:
/// an HMAC "signature" keyed with the client secret proves nothing a forger with that secret could not do.
pub const ALLOWED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "Ed25519",
];

/// Clock skew tolerated on `exp` and `iat` (seconds).
pub const LEEWAY: i64 = 60;

/// How old an ID token's `iat` may be (OpenID Connect Core §3.1.3.7 step 10 lets the client bound it): the token
/// comes straight from the token endpoint, so an hour is generous.
pub const MAX_AGE: i64 = 3600;

/// Largest ID token looked at.
pub const MAX_ID_TOKEN_LEN: usize = 16 * 1024;

/// The validated claims of an ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct IdTokenClaims {
    /// `iss`.
    pub iss: String,
    /// `sub`: the user's stable identifier at this provider.
    pub sub: String,
    /// `aud`, as a list.
    pub aud: Vec<String>,
    /// `exp`.
    pub exp: i64,
    /// `iat`.
    pub iat: i64,
    /// `email`, if a string.
    pub email: Option<String>,
    /// `email_verified` (`true` or the string `"true"`; anything else is `false`).
    pub email_verified: bool,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// The groups from the configured `groups_claim`: absent when the claim is.
    pub groups: Option<Vec<String>>,
    /// Google's `hd` (the Workspace domain).
    pub hd: Option<String>,
    /// Entra's `tid` (the tenant).
    pub tid: Option<String>,
    /// Every claim, for configured fields.
    pub raw: Map<String, Value>,
}

/// What the `nonce` must be.
enum Nonce<'a> {
    /// A sign-in: the pending login's nonce (§3.1.3.7 step 11).
    Equals(&'a str),
    /// A refresh (§12.2): no nonce required, and `sub` must be the original one.
    Refresh { sub: &'a str },
}

/// Validates the ID token of a sign-in (OpenID Connect Core §3.1.3.7). [`FederationError::UnknownKey`] means
/// the `kid` is not in `jwks`: refetch the set once and call again.
pub fn verify_id_token(
    token: &str,
    config: &ProviderConfig,
    metadata: &ProviderMetadata,
    jwks: &JwkSet,
    pending: &PendingLogin,
    now: i64,
) -> Result<IdTokenClaims, FederationError> {
    let raw = verify_signature(token, metadata, jwks)?;
    check_claims(
        raw,
        config,
        metadata,
        now,
        Nonce::Equals(pending.nonce.expose()),
    )
}

/// Validates an ID token that came with a refresh (OpenID Connect Core §12.2): the same checks, except that
/// no `nonce` is expected and `sub` must equal the original sign-in's.
pub fn verify_refreshed_id_token(
    token: &str,
    config: &ProviderConfig,
    metadata: &ProviderMetadata,
    jwks: &JwkSet,
    original_sub: &str,
    now: i64,
) -> Result<IdTokenClaims, FederationError> {
    let raw = verify_signature(token, metadata, jwks)?;
    check_claims(
        raw,
        config,
        metadata,
        now,
        Nonce::Refresh { sub: original_sub },
    )
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

fn malformed(why: &str) -> FederationError {
    FederationError::MalformedToken(why.to_owned())
}

/// Splits the compact JWS, checks the header and the signature; returns the claims object.
fn verify_signature(
    token: &str,
    metadata: &ProviderMetadata,
    jwks: &JwkSet,
) -> Result<Map<String, Value>, FederationError> {
    if token.len() > MAX_ID_TOKEN_LEN {
        return Err(malformed("too long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(malformed(if parts.len() == 5 {
            "encrypted ID tokens (JWE) are not supported"
        } else {
            "not a compact JWS"
        }));
    };
    let header_bytes = b64::decode(h).ok_or_else(|| malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| malformed("header is not a JOSE header"))?;
    if header.crit.is_some() {
        return Err(malformed("critical header extensions are not understood"));
    }
    if header.typ.as_deref().is_some_and(|t| {
        !t.eq_ignore_ascii_case("JWT") && !t.eq_ignore_ascii_case("application/jwt")
    }) {
        return Err(malformed("typ is not JWT"));
    }
    let alg = header.alg.as_str();
    if !ALLOWED_ALGS.contains(&alg) || !metadata.signs_with(alg) {
        return Err(FederationError::UnsupportedAlgorithm(
            alg.chars().take(16).collect(),
        ));
    }
    let signature = b64::decode(s).ok_or_else(|| malformed("signature is not base64url"))?;
    let keys = jwks
        .candidates(header.kid.as_deref(), alg)
        .ok_or(FederationError::UnknownKey)?;
    match (header.kid.is_some(), keys.len()) {
        (false, 0) => return Err(FederationError::UnknownKey),
        (true, 0) => return Err(FederationError::BadSignature),
        (false, n) if n > 1 => {
            return Err(malformed("no kid, and several keys could have signed it"))
        }
        _ => {}
    }
    let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
    if !keys
        .iter()
        .any(|k| verify_with(&k.key, alg, signing_input, &signature).is_ok())
    {
        return Err(FederationError::BadSignature);
    }
    let payload = b64::decode(p).ok_or_else(|| malformed("payload is not base64url"))?;
    match serde_json::from_slice(&payload) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed("payload is not a JSON object")),
    }
}

/// Checks `signature` over `message` with `key` for `alg` (the key was chosen to fit `alg`).
fn verify_with(
    key: &PublicKey,
    alg: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), FederationError> {
    let ok = match (key, alg) {
        (PublicKey::Rsa { n, e }, _) => {
            let params: &sig::RsaParameters = match alg {
                "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &sig::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                "PS384" => &sig::RSA_PSS_2048_8192_SHA384,
                "PS512" => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return Err(FederationError::BadSignature),
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok()
        }
        (PublicKey::P256(point), "ES256") => {
            UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        (PublicKey::P384(point), "ES384") => {
            UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        (PublicKey::Ed25519(x), "EdDSA" | "Ed25519") => UnparsedPublicKey::new(&sig::ED25519, x)
            .verify(message, signature)
            .is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(FederationError::BadSignature)
    }
}

fn string(raw: &Map<String, Value>, name: &str) -> Option<String> {
    raw.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn number(raw: &Map<String, Value>, name: &'static str) -> Result<i64, FederationError> {
    let v = raw
        .get(name)
        .ok_or_else(|| FederationError::claim(name, "missing"))?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        .ok_or_else(|| FederationError::claim(name, "not a number"))
}

/// `aud`: one string or an array of strings (OpenID Connect Core §2).
fn audiences(raw: &Map<String, Value>) -> Result<Vec<String>, FederationError> {
    match raw.get("aud") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| FederationError::claim("aud", "not a list of strings")),
        _ => Err(FederationError::claim("aud", "missing")),
    }
}

/// A groups claim: an array of strings, or absent (a single string counts as one group).
pub(crate) fn groups(
    raw: &Map<String, Value>,
    claim: &str,
) -> Result<Option<Vec<String>>, FederationError> {
    match raw.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                FederationError::claim("groups", format!("{claim} is not a list of strings"))
            }),
        Some(_) => Err(FederationError::claim(
            "groups",
            format!("{claim} is not a list of strings"),
        )),
    }
}

/// `email_verified`: `true`, or the string `"true"` some providers send.
pub(crate) fn verified(raw: &Map<String, Value>, name: &str) -> bool {
    match raw.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// OpenID Connect Core §3.1.3.7 steps 2–5 and 9–11 on a verified claims object.
fn check_claims(
    raw: Map<String, Value>,
    config: &ProviderConfig,
    metadata: &ProviderMetadata,
    now: i64,
    nonce: Nonce<'_>,
) -> Result<IdTokenClaims, FederationError> {
    let iss = string(&raw, "iss").ok_or_else(|| FederationError::claim("iss", "missing"))?;
    let tid = string(&raw, "tid");
    if !metadata.issuer_matches(&iss, tid.as_deref()) {
        return Err(FederationError::IssuerMismatch {
            expected: metadata.issuer.clone().unwrap_or_default(),
            found: iss,
        });
    }
    let sub = string(&raw, "sub").ok_or_else(|| FederationError::claim("sub", "missing"))?;
    if sub.is_empty() || sub.len() > 255 {
        return Err(FederationError::claim("sub", "must be 1 to 255 characters"));
    }
    let aud = audiences(&raw)?;
    if !aud.contains(&config.client_id) {
        return Err(FederationError::claim(
            "aud",
            "this client is not an audience",
        ));
    }
    match string(&raw, "azp") {
        Some(azp) if azp != config.client_id => {
            return Err(FederationError::claim("azp", "issued to another client"));
        }
        None if aud.len() > 1 => {
            return Err(FederationError::claim(
                "azp",
                "required when there are several audiences",
            ));
        }
        _ => {}
    }
    let exp = number(&raw, "exp")?;
    if exp <= now - LEEWAY {
        return Err(FederationError::Expired);
    }
    let iat = number(&raw, "iat")?;
    if iat > now + LEEWAY {
        return Err(FederationError::claim("iat", "issued in the future"));
    }
    if iat < now - MAX_AGE {
        return Err(FederationError::claim("iat", "issued too long ago"));
    }
    match nonce {
        Nonce::Equals(expected) => {
            let found = string(&raw, "nonce").ok_or(FederationError::NonceMismatch)?;
            if !ct_eq(found.as_bytes(), expected.as_bytes()) {
                return Err(FederationError::NonceMismatch);
            }
        }
        Nonce::Refresh { sub: original } if original != sub => {
            return Err(FederationError::claim(
                "sub",
                "differs from the original sign-in's",
            ));
        }
        Nonce::Refresh { .. } => {}
    }
    Ok(IdTokenClaims {
        email: string(&raw, "email"),
        email_verified: verified(&raw, "email_verified"),
        preferred_username: string(&raw, "preferred_username"),
        name: string(&raw, "name"),
        groups: groups(&raw, &config.groups_claim)?,
        hd: string(&raw, "hd"),
        iss,
        sub,
        aud,
        exp,
        iat,
        tid,
        raw,
    })
}

#[cfg(test)]
mod tests;
