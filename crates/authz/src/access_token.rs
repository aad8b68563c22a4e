//! JWT access tokens (RFC 9068): minting, and the one strict check every resource applies (signature, `typ`,
//! `iss`, `aud`, `exp`, `nbf`, `iat`; RFC 9068 §4, RFC 8725 §3). The pure parts, [`check_typ`] and
//! [`check_claims`], are shared by [`verify`] (the issuer's own key ring) and `portcullis-guard` (any key
//! source); only the source of the verifying key and the [`Leeway`] differ.

use crate::jwt::{self, JwsError};
use crate::keys::KeyRing;
use serde::{Deserialize, Serialize};

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const TYP: &str = "at+jwt";

/// Clock skew tolerated on `nbf`/`iat`, seconds.
pub const LEEWAY: i64 = 5;

/// Clock skew tolerated by [`check_claims`], seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leeway {
    /// Added to `exp` (RFC 7519 §4.1.4).
    pub expiry: i64,
    /// Added to `now` before comparing `nbf` and `iat` (RFC 7519 §4.1.5, §4.1.6).
    pub not_before: i64,
}

impl Leeway {
    /// What the issuer's own resources apply: none on `exp`, [`LEEWAY`] on `nbf`/`iat`.
    pub const ISSUER: Self = Self {
        expiry: 0,
        not_before: LEEWAY,
    };

    /// The same `secs` on `exp`, `nbf` and `iat` (a resource whose clock is not the issuer's).
    pub const fn uniform(secs: i64) -> Self {
        Self {
            expiry: secs,
            not_before: secs,
        }
    }
}

/// What a token must say to be accepted by one resource (RFC 9068 §4 steps 3–6).
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `iss` (RFC 9068 §4 step 3).
    pub issuer: &'a str,
    /// One of `aud` (RFC 9068 §4 step 4; RFC 8707).
    pub resource: &'a str,
    /// Clock skew tolerated.
    pub leeway: Leeway,
}

/// The claims Portcullis puts in an access token (RFC 9068 §2.2). Time claims are integers: a string-typed
/// `exp` fails to parse (the jsonwebtoken CVE-2026-25537 lesson).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// RFC 9068 §2.2 `iss`.
    pub iss: String,
    /// RFC 9068 §2.2 `sub`: the user id.
    pub sub: String,
    /// RFC 9068 §2.2 `aud`: the resource (RFC 8707).
    pub aud: Audience,
    /// RFC 9068 §2.2 `client_id`.
    pub client_id: String,
    /// RFC 9068 §2.2.3 `scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 9068 §2.2 `exp`.
    pub exp: i64,
    /// RFC 9068 §2.2 `iat`.
    pub iat: i64,
    /// RFC 7519 §4.1.5 `nbf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// RFC 9068 §2.2 `jti`.
    pub jti: String,
    /// The grant the token belongs to, so revoking the grant reaches its access tokens. Serialised as
    /// `grant_id`; tokens minted before the rename carry it as `sid` (in OpenID Connect `sid` names a session,
    /// hence the rename) and are read through the alias, so they keep working and stay revocable by grant. The
    /// alias can go once one access-token lifetime has passed since every instance was upgraded.
    #[serde(default, alias = "sid", skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// OpenID Connect Core §5.1 `preferred_username`, the name to show (RFC 9068 §2.2.3.1 lets an access
    /// token carry identity claims). For display and logs only: `sub` identifies the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// OpenID Connect Core §5.1 `email`: only ever an address the identity provider verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The identity provider the user signed in through (its configured `name`); absent for a password login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The identity provider's `display_name` as configured when the token was minted ("Corp SSO"), for
    /// clients to show (`portcullis login`: "… via Corp SSO"); present only with `idp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_name: Option<String>,
}

/// `aud`: one string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `resource` is an audience.
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(a) => a == resource,
            Self::Many(v) => v.iter().any(|a| a == resource),
        }
    }
}

/// Why an access token was refused. Every variant answers 401 `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Signature or structure.
    #[error("{0}")]
    Jws(#[from] JwsError),
    /// The header's `typ` is not `at+jwt`.
    #[error("token is not an access token (typ)")]
    Typ,
    /// The claims are not an RFC 9068 claim set of the right types.
    #[error("malformed claims")]
    Claims,
    /// Wrong issuer.
    #[error("token was issued by another issuer")]
    Issuer,
    /// Not for this resource.
    #[error("token is not for this resource (aud)")]
    Audience,
    /// Expired.
    #[error("token expired")]
    Expired,
    /// Not yet valid.
    #[error("token is not yet valid")]
    NotYetValid,
    /// Revoked.
    #[error("token was revoked")]
    Revoked,
}

/// Signs an access token.
pub fn mint(ring: &KeyRing, claims: &AccessClaims) -> String {
    // AccessClaims holds only strings and integers: serialization cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    jwt::sign(ring.signing_key(), ring.active_kid(), TYP, &json)
}

/// The kid named by a token's header, if it parses; used to decide whether to reload keys.
pub fn kid_of(token: &str) -> Option<String> {
    jwt::decode(token).ok().map(|u| u.header.kid)
}

/// Verifies `token` against the issuer's own key ring for `issuer` and `resource` at time `now`, with
/// [`Leeway::ISSUER`]. Revocation is the caller's job (it depends on state); everything that can be decided
/// from the token and the keys is decided here.
pub fn verify(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    resource: &str,
    now: i64,
) -> Result<AccessClaims, TokenError> {
    let unverified = jwt::decode(token)?;
    check_typ(&unverified.header.typ)?;
    let key = ring
        .verifying_key(&unverified.header.kid)
        .ok_or(JwsError::UnknownKey)?;
    let payload = unverified.verify(key)?;
    let expected = Expected {
        issuer,
        resource,
        leeway: Leeway::ISSUER,
    };
    check_claims(&payload, &expected, now)
}

/// RFC 9068 §4 step 2 / RFC 8725 §3.11: `typ` is `at+jwt` (or its `application/` form), case-insensitively.
pub fn check_typ(typ: &str) -> Result<(), TokenError> {
    let typ = typ.to_ascii_lowercase();
    if typ == TYP || typ == "application/at+jwt" {
        Ok(())
    } else {
        Err(TokenError::Typ)
    }
}

/// RFC 9068 §4 steps 3–6 on a signature-checked payload: an RFC 9068 claim set with integer times, `iss`
/// equal to the issuer, `aud` containing the resource (RFC 8707), not expired (`exp`, RFC 7519 §4.1.4), not
/// before `nbf`/`iat` (RFC 7519 §4.1.5, §4.1.6), each with its [`Leeway`].
pub fn check_claims(
    payload: &[u8],
    expected: &Expected<'_>,
    now: i64,
) -> Result<AccessClaims, TokenError> {
    let claims: AccessClaims = serde_json::from_slice(payload).map_err(|_| TokenError::Claims)?;
    if claims.iss != expected.issuer {
        return Err(TokenError::Issuer);
    }
    if !claims.aud.contains(expected.resource) {
        return Err(TokenError::Audience);
    }
    if now >= claims.exp.saturating_add(expected.leeway.expiry) {
        return Err(TokenError::Expired);
    }
    let limit = now.saturating_add(expected.leeway.not_before);
    if claims.nbf.is_some_and(|nbf| nbf > limit) || claims.iat > limit {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use crate::testing::SeqRandom;
    use portcullis_proto::b64;

    fn ring() -> KeyRing {
        KeyRing::from_records(&[keys::generate(&SeqRandom::default(), 0)]).unwrap()
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://as".into(),
            sub: "u1".into(),
            aud: Audience::One("https://as/mcp".into()),
            client_id: "c1".into(),
            scope: Some("mcp:tools".into()),
            exp: 1000,
            iat: 100,
            nbf: None,
            jti: "j1".into(),
            grant_id: Some("g1".into()),
            preferred_username: None,
            email: None,
            idp: None,
            idp_name: None,
        }
    }

    #[test]
    fn identity_claims_are_omitted_when_absent_and_round_trip_when_present() {
        let json = serde_json::to_value(claims()).unwrap();
        for k in ["preferred_username", "email", "idp", "idp_name"] {
            assert!(json.get(k).is_none(), "{k} should be omitted");
        }
        let mut c = claims();
        c.preferred_username = Some("carol".into());
        c.email = Some("carol@example.com".into());
        c.idp = Some("corp".into());
        c.idp_name = Some("Corp SSO".into());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["idp_name"], "Corp SSO");
        assert_eq!(json["preferred_username"], "carol");
        assert_eq!(json["email"], "carol@example.com");
        assert_eq!(json["idp"], "corp");
        assert_eq!(serde_json::from_value::<AccessClaims>(json).unwrap(), c);
        // Only the name: the other two stay out.
        c.email = None;
        c.idp = None;
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("email").is_none() && json.get("idp").is_none());
        let r = ring();
        assert_eq!(
            verify(&r, &mint(&r, &c), "https://as", "https://as/mcp", 500).unwrap(),
            c
        );
    }

    #[test]
    fn grant_id_is_serialised_as_grant_id_and_read_from_the_old_sid() {
        let json = serde_json::to_value(claims()).unwrap();
        assert_eq!(json["grant_id"], "g1");
        assert!(json.get("sid").is_none());
        let mut old = json.clone();
        let grant = old.as_object_mut().unwrap().remove("grant_id").unwrap();
        old["sid"] = grant;
        let parsed: AccessClaims = serde_json::from_value(old).unwrap();
        assert_eq!(parsed, claims());
    }

    #[test]
    fn leeway_applies_per_claim() {
        let r = ring();
        let t = mint(&r, &claims());
        let (_, payload, _) = {
            let mut p = t.split('.');
            (p.next(), p.next().unwrap(), p.next())
        };
        let payload = b64::decode(payload).unwrap();
        let e = |leeway| Expected {
            issuer: "https://as",
            resource: "https://as/mcp",
            leeway,
        };
        // The issuer's own rule: no leeway on exp, LEEWAY on iat.
        assert_eq!(
            check_claims(&payload, &e(Leeway::ISSUER), 1000),
            Err(TokenError::Expired)
        );
        assert!(check_claims(&payload, &e(Leeway::ISSUER), 95).is_ok());
        assert_eq!(
            check_claims(&payload, &e(Leeway::ISSUER), 94),
            Err(TokenError::NotYetValid)
        );
        // A uniform leeway stretches exp too.
        assert!(check_claims(&payload, &e(Leeway::uniform(5)), 1004).is_ok());
        assert_eq!(
            check_claims(&payload, &e(Leeway::uniform(5)), 1005),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check_claims(&payload, &e(Leeway::uniform(0)), 99),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn valid_token_verifies() {
        let r = ring();
        let t = mint(&r, &claims());
        assert_eq!(
            verify(&r, &t, "https://as", "https://as/mcp", 500).unwrap(),
            claims()
        );
    }

    #[test]
    fn each_claim_is_checked() {
        let r = ring();
        let t = mint(&r, &claims());
        assert_eq!(
            verify(&r, &t, "https://other", "https://as/mcp", 500),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            verify(&r, &t, "https://as", "https://as/other", 500),
            Err(TokenError::Audience)
        );
        assert_eq!(
            verify(&r, &t, "https://as", "https://as/mcp", 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&r, &t, "https://as", "https://as/mcp", 50),
            Err(TokenError::NotYetValid)
        );
        let other = KeyRing::from_records(&[keys::generate(&crate::random::OsRandom, 0)]).unwrap();
        assert_eq!(
            verify(&other, &t, "https://as", "https://as/mcp", 500),
            Err(TokenError::Jws(JwsError::UnknownKey))
        );
    }

    #[test]
    fn wrong_typ_and_string_times_are_refused() {
        let r = ring();
        let json = serde_json::to_vec(&claims()).unwrap();
        let t = jwt::sign(r.signing_key(), r.active_kid(), "JWT", &json);
        assert_eq!(
            verify(&r, &t, "https://as", "https://as/mcp", 500),
            Err(TokenError::Typ)
        );
        let mut v = serde_json::to_value(claims()).unwrap();
        v["exp"] = serde_json::json!("99999999999");
        let t = jwt::sign(
            r.signing_key(),
            r.active_kid(),
            TYP,
            v.to_string().as_bytes(),
        );
        assert_eq!(
            verify(&r, &t, "https://as", "https://as/mcp", 500),
            Err(TokenError::Claims)
        );
        // Signature over different bytes than the payload claims.
        let t = mint(&r, &claims());
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let mut c = claims();
        c.aud = Audience::Many(vec!["https://as/mcp".into(), "x".into()]);
        parts[1] = b64::encode(serde_json::to_vec(&c).unwrap());
        assert!(matches!(
            verify(&r, &parts.join("."), "https://as", "https://as/mcp", 500),
            Err(TokenError::Jws(_))
        ));
    }
}
