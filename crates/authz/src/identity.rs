//! Identity assertions for a gateway's upstream: a short-lived ES256 JWT saying who is calling (subject, client,
//! scopes, and the user's name, verified email and identity provider when known), signed with the authorization server's current signing key, so the upstream can check it against the
//! published JWKS instead of trusting plain headers.
//!
//! The assertion has its own `typ` ([`TYP`]) so it can never pass for an access token, nor an access token for
//! it (RFC 8725 §3.11 "Use Explicit Typing", §3.12): [`crate::access_token::verify`] accepts only `at+jwt`, and
//! [`verify`] here accepts only [`TYP`]. Its audience is the upstream, not the protected resource (RFC 8725 §3.9).

use crate::jwt::{self, JwsError};
use crate::keys::KeyRing;
use serde::{Deserialize, Serialize};

/// The `typ` header of identity assertions (RFC 8725 §3.11): never `at+jwt` or `JWT`.
pub const TYP: &str = "portcullis-identity+jwt";

/// Lifetime of an assertion, seconds: `exp = iat + LIFETIME`.
pub const LIFETIME: i64 = 60;

/// Clock skew tolerated on `iat` by [`verify`], seconds.
pub const LEEWAY: i64 = 5;

/// The claims of an identity assertion. Time claims are integers (RFC 7519 §2 NumericDate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    /// RFC 7519 §4.1.1 `iss`: the authorization server (whose `jwks_uri` verifies the signature).
    pub iss: String,
    /// RFC 7519 §4.1.3 `aud`: the upstream the assertion is for.
    pub aud: String,
    /// RFC 7519 §4.1.2 `sub`: the user, as in the caller's access token.
    pub sub: String,
    /// RFC 8693 §4.3 `client_id`: the OAuth client the caller's access token was issued to.
    pub client_id: String,
    /// RFC 8693 §4.2 `scope`: the caller's granted scopes, space-separated (may be empty).
    pub scope: String,
    /// RFC 7519 §4.1.6 `iat`.
    pub iat: i64,
    /// RFC 7519 §4.1.4 `exp`: `iat +` [`LIFETIME`].
    pub exp: i64,
    /// RFC 7519 §4.1.7 `jti`: identifies the assertion (one assertion may be reused for several requests of the
    /// same caller within its lifetime, so this is not a per-request nonce).
    pub jti: String,
    /// OpenID Connect Core §5.1 `preferred_username`, as in the caller's access token (absent there, absent
    /// here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// OpenID Connect Core §5.1 `email`, as in the caller's access token: only ever a verified address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The identity provider the caller signed in through, as in the access token's `idp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

/// Why an identity assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Signature or structure.
    #[error("{0}")]
    Jws(#[from] JwsError),
    /// The header's `typ` is not [`TYP`] (an access token, for instance).
    #[error("not an identity assertion (typ)")]
    Typ,
    /// The claims are not an identity claim set of the right types.
    #[error("malformed claims")]
    Claims,
    /// Wrong issuer.
    #[error("assertion was issued by another issuer")]
    Issuer,
    /// Not for this upstream.
    #[error("assertion is for another upstream (aud)")]
    Audience,
    /// Expired, or issued in the future.
    #[error("assertion expired or not yet valid")]
    Time,
}

/// Signs an identity assertion with the ring's active key.
pub fn mint(ring: &KeyRing, claims: &IdentityClaims) -> String {
    // IdentityClaims holds only strings and integers: serialization cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    jwt::sign(ring.signing_key(), ring.active_kid(), TYP, &json)
}

/// Verifies an assertion for `issuer` and `audience` at time `now` (what an upstream does; used by the tests).
pub fn verify(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<IdentityClaims, IdentityError> {
    let unverified = jwt::decode(token)?;
    if !unverified.header.typ.eq_ignore_ascii_case(TYP) {
        return Err(IdentityError::Typ);
    }
    let key = ring
        .verifying_key(&unverified.header.kid)
        .ok_or(JwsError::UnknownKey)?;
    let payload = unverified.verify(key)?;
    let claims: IdentityClaims =
        serde_json::from_slice(&payload).map_err(|_| IdentityError::Claims)?;
    if claims.iss != issuer {
        return Err(IdentityError::Issuer);
    }
    if claims.aud != audience {
        return Err(IdentityError::Audience);
    }
    if now >= claims.exp || claims.iat > now + LEEWAY {
        return Err(IdentityError::Time);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_token::{self, TokenError};
    use crate::keys;
    use crate::testing::SeqRandom;

    fn ring() -> KeyRing {
        KeyRing::from_records(&[keys::generate(&SeqRandom::default(), 0)]).unwrap()
    }

    fn claims(aud: &str) -> IdentityClaims {
        IdentityClaims {
            iss: "https://as".into(),
            aud: aud.into(),
            sub: "u1".into(),
            client_id: "c1".into(),
            scope: "mcp:tools".into(),
            iat: 100,
            exp: 100 + LIFETIME,
            jti: "j1".into(),
            preferred_username: None,
            email: None,
            idp: None,
        }
    }

    #[test]
    fn identity_claims_are_omitted_when_absent_and_round_trip_when_present() {
        let r = ring();
        let plain = serde_json::to_value(claims("http://up/mcp")).unwrap();
        for k in ["preferred_username", "email", "idp"] {
            assert!(plain.get(k).is_none(), "{k} should be omitted");
        }
        let mut c = claims("http://up/mcp");
        c.preferred_username = Some("carol".into());
        c.email = Some("carol@example.com".into());
        c.idp = Some("corp".into());
        let t = mint(&r, &c);
        assert_eq!(verify(&r, &t, "https://as", "http://up/mcp", 120), Ok(c));
    }

    #[test]
    fn assertion_verifies_and_each_claim_is_checked() {
        let r = ring();
        let t = mint(&r, &claims("http://up/mcp"));
        assert_eq!(
            verify(&r, &t, "https://as", "http://up/mcp", 120),
            Ok(claims("http://up/mcp"))
        );
        assert_eq!(
            verify(&r, &t, "https://other", "http://up/mcp", 120),
            Err(IdentityError::Issuer)
        );
        assert_eq!(
            verify(&r, &t, "https://as", "http://other/mcp", 120),
            Err(IdentityError::Audience)
        );
        assert_eq!(
            verify(&r, &t, "https://as", "http://up/mcp", 160),
            Err(IdentityError::Time)
        );
        assert_eq!(
            verify(&r, &t, "https://as", "http://up/mcp", 90),
            Err(IdentityError::Time)
        );
    }

    /// RFC 8725 §3.11: even with `aud` equal to the protected resource, an identity assertion is not an access
    /// token, and an access token is not an identity assertion.
    #[test]
    fn assertions_and_access_tokens_are_never_confused() {
        let r = ring();
        let t = mint(&r, &claims("https://as/mcp"));
        assert_eq!(
            access_token::verify(&r, &t, "https://as", "https://as/mcp", 120),
            Err(TokenError::Typ)
        );
        let at = access_token::mint(
            &r,
            &access_token::AccessClaims {
                iss: "https://as".into(),
                sub: "u1".into(),
                aud: access_token::Audience::One("http://up/mcp".into()),
                client_id: "c1".into(),
                scope: Some("mcp:tools".into()),
                exp: 1000,
                iat: 100,
                nbf: None,
                jti: "j".into(),
                grant_id: None,
                preferred_username: None,
                email: None,
                idp: None,
                idp_name: None,
            },
        );
        assert_eq!(
            verify(&r, &at, "https://as", "http://up/mcp", 120),
            Err(IdentityError::Typ)
        );
    }
}
