//! Strict verification of an RFC 9068 access token against a [`KeySource`] (RFC 9068 §4, RFC 8725 §3.1).
//! The JWS part is `portcullis_authz::jwt` (ES256 only, header exactly `{alg, typ, kid}`, `none`/HMAC and
//! key-carrying headers refused); `typ` and the claims are checked by the one claim checker,
//! `portcullis_authz::access_token::{check_typ, check_claims}` (integer time claims, `iss`, `aud`, `exp`,
//! `nbf`, `iat` with a [`portcullis_authz::access_token::Leeway`]). Only the key lookup is this crate's.

use crate::error::JwksError;
use crate::keys::KeySource;
pub use portcullis_authz::access_token::{check_claims, check_typ, Expected};
use portcullis_authz::access_token::{AccessClaims, TokenError};
use portcullis_authz::jwt::{self, JwsError};

/// Why verification did not produce claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is bad (401 `invalid_token`).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The issuer's keys could not be obtained (503).
    #[error(transparent)]
    Keys(#[from] JwksError),
}

/// A verified token's claims and the `kid` that verified it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The claims.
    pub claims: AccessClaims,
    /// The key id.
    pub kid: String,
}

/// Verifies `token` at time `now`, the key looked up in `keys`.
pub async fn verify(
    keys: &dyn KeySource,
    token: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Verified, VerifyError> {
    let unverified = jwt::decode(token).map_err(TokenError::from)?;
    check_typ(&unverified.header.typ)?;
    let kid = unverified.header.kid.clone();
    let key = keys
        .key(&kid)
        .await?
        .ok_or(TokenError::Jws(JwsError::UnknownKey))?;
    let payload = unverified.verify(&key).map_err(TokenError::from)?;
    let claims = check_claims(&payload, expected, now)?;
    Ok(Verified { claims, kid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuardConfig;
    use crate::jwks::JwksClient;
    use crate::testing::Issuer;
    use portcullis_authz::access_token::Audience;
    use portcullis_authz::clock::FixedClock;
    use portcullis_proto::b64;
    use std::sync::Arc;

    const RS: &str = "http://127.0.0.1:9/mcp";

    async fn setup() -> (Issuer, JwksClient) {
        let issuer = Issuer::start().await;
        let config = GuardConfig::new(&issuer.issuer, RS)
            .unwrap()
            .with_clock(Arc::new(FixedClock::new(1000)));
        let jwks = JwksClient::new(&config).unwrap();
        (issuer, jwks)
    }

    fn expected(issuer: &Issuer) -> Expected<'_> {
        Expected {
            issuer: &issuer.issuer,
            resource: RS,
            leeway: portcullis_authz::access_token::Leeway::uniform(5),
        }
    }

    #[tokio::test]
    async fn a_valid_token_verifies() {
        let (issuer, jwks) = setup().await;
        let claims = issuer.claims(RS, "mcp:tools", 1000);
        let v = verify(&jwks, &issuer.mint(0, &claims), &expected(&issuer), 1000)
            .await
            .unwrap();
        assert_eq!(v.claims, claims);
        assert_eq!(v.kid, issuer.kid(0));
    }

    #[tokio::test]
    async fn each_rule_refuses() {
        let (issuer, jwks) = setup().await;
        let e = expected(&issuer);
        let run = |t: String, now: i64| {
            let (jwks, e) = (&jwks, e);
            async move { verify(jwks, &t, &e, now).await.map(|v| v.claims) }
        };
        let base = issuer.claims(RS, "mcp:tools", 1000);
        let tok = |e: VerifyError| Err::<AccessClaims, _>(e);
        let mut c = base.clone();
        c.iss = "http://127.0.0.1:1".into();
        assert_eq!(
            run(issuer.mint(0, &c), 1000).await,
            tok(TokenError::Issuer.into())
        );
        let mut c = base.clone();
        c.aud = Audience::One("http://127.0.0.1:9/other".into());
        assert_eq!(
            run(issuer.mint(0, &c), 1000).await,
            tok(TokenError::Audience.into())
        );
        let mut c = base.clone();
        c.aud = Audience::Many(vec!["x".into(), RS.into()]);
        assert!(run(issuer.mint(0, &c), 1000).await.is_ok());
        // exp with leeway: exp=1600 → valid until 1604, refused from 1605.
        assert!(run(issuer.mint(0, &base), 1604).await.is_ok());
        assert_eq!(
            run(issuer.mint(0, &base), 1605).await,
            tok(TokenError::Expired.into())
        );
        let mut c = base.clone();
        c.nbf = Some(1010);
        assert_eq!(
            run(issuer.mint(0, &c), 1000).await,
            tok(TokenError::NotYetValid.into())
        );
        assert!(run(issuer.mint(0, &c), 1005).await.is_ok());
        let mut c = base.clone();
        c.iat = 1100;
        assert_eq!(
            run(issuer.mint(0, &c), 1000).await,
            tok(TokenError::NotYetValid.into())
        );
        // typ
        let json = serde_json::to_vec(&base).unwrap();
        assert_eq!(
            run(issuer.mint_raw(0, "JWT", &json), 1000).await,
            tok(TokenError::Typ.into())
        );
        assert!(run(issuer.mint_raw(0, "application/AT+JWT", &json), 1000)
            .await
            .is_ok());
        // string-typed exp
        let mut v = serde_json::to_value(&base).unwrap();
        v["exp"] = serde_json::json!("99999999999");
        assert_eq!(
            run(issuer.mint_raw(0, "at+jwt", v.to_string().as_bytes()), 1000).await,
            tok(TokenError::Claims.into())
        );
        // alg none / HS256 headers, tampered payload
        let t = issuer.mint(0, &base);
        let (_, rest) = t.split_once('.').unwrap();
        let none = format!(
            "{}.{rest}",
            b64::encode(format!(
                r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
                issuer.kid(0)
            ))
        );
        assert_eq!(
            run(none, 1000).await,
            tok(TokenError::Jws(JwsError::Header).into())
        );
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = base.clone();
        c.sub = "someone-else".into();
        let other = b64::encode(serde_json::to_vec(&c).unwrap());
        let forged = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(
            run(forged, 1000).await,
            tok(TokenError::Jws(JwsError::Signature).into())
        );
        assert_eq!(
            run("not-a-jwt".into(), 1000).await,
            tok(TokenError::Jws(JwsError::Malformed).into())
        );
    }
}
