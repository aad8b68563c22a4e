//! The token endpoint (RFC 6749 §3.2): the authorization code grant (§4.1.3, with the PKCE `code_verifier` of
//! RFC 7636 §4.5 and the RFC 8707 `resource`), the refresh grant (§6), and token revocation (RFC 7009 §2).
//! The client authenticates as it was registered: `none` (public client, `client_id` in the body),
//! `client_secret_basic` (§2.3.1, HTTP Basic with form-encoded id and secret) or `client_secret_post`.

use crate::error::snippet;
use crate::secret::{AccessToken, AuthorizationCode, ClientSecret, RefreshToken};
use crate::{Error, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_proto::token::TokenResponse;
use portcullis_proto::{CodeVerifier, ErrorResponse};
use url::Url;

pub use portcullis_proto::registration::AuthMethod;

/// How to authenticate at the token and revocation endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth<'a> {
    /// `client_id`.
    pub client_id: &'a str,
    /// The secret, for the two secret methods.
    pub client_secret: Option<&'a ClientSecret>,
    /// The method.
    pub method: AuthMethod,
}

/// A successful token response, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, if issued.
    pub refresh_token: Option<RefreshToken>,
    /// Lifetime in seconds, if given.
    pub expires_in: Option<u64>,
    /// The granted scope, if given (RFC 6749 §5.1: absent means as requested).
    pub scope: Option<String>,
}

/// The authorization code grant (RFC 6749 §4.1.3).
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoint: &Url,
    auth: &ClientAuth<'_>,
    code: &AuthorizationCode,
    verifier: &CodeVerifier,
    redirect_uri: &str,
    resource: Option<&str>,
) -> Result<Tokens> {
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.expose().to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier.expose().to_owned()),
    ];
    if let Some(r) = resource {
        form.push(("resource", r.to_owned()));
    }
    post_token(http, endpoint, auth, form).await
}

/// The refresh grant (RFC 6749 §6), with the same `resource` (RFC 8707 §2.2).
pub async fn refresh(
    http: &reqwest::Client,
    endpoint: &Url,
    auth: &ClientAuth<'_>,
    refresh_token: &RefreshToken,
    resource: Option<&str>,
) -> Result<Tokens> {
    let mut form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.expose().to_owned()),
    ];
    if let Some(r) = resource {
        form.push(("resource", r.to_owned()));
    }
    post_token(http, endpoint, auth, form).await
}

/// Token revocation (RFC 7009 §2.1). The server answers 200 even for unknown tokens (§2.2).
pub async fn revoke(
    http: &reqwest::Client,
    endpoint: &Url,
    auth: &ClientAuth<'_>,
    token: &str,
    hint: &str,
) -> Result<()> {
    let form = vec![
        ("token", token.to_owned()),
        ("token_type_hint", hint.to_owned()),
    ];
    let resp = authenticated(http.post(endpoint.clone()), auth, form)
        .send()
        .await
        .map_err(|e| Error::http(endpoint.as_str(), &e))?;
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Err(oauth_error(endpoint, status, &body))
}

fn authenticated(
    req: reqwest::RequestBuilder,
    auth: &ClientAuth<'_>,
    mut form: Vec<(&'static str, String)>,
) -> reqwest::RequestBuilder {
    let secret = auth
        .client_secret
        .map(ClientSecret::expose)
        .unwrap_or_default();
    let req = match auth.method {
        AuthMethod::ClientSecretBasic => {
            // RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(auth.client_id), enc(secret)));
            req.header("authorization", format!("Basic {basic}"))
        }
        AuthMethod::ClientSecretPost => {
            form.push(("client_id", auth.client_id.to_owned()));
            form.push(("client_secret", secret.to_owned()));
            req
        }
        AuthMethod::None => {
            form.push(("client_id", auth.client_id.to_owned()));
            req
        }
    };
    req.header("accept", "application/json").form(&form)
}

async fn post_token(
    http: &reqwest::Client,
    endpoint: &Url,
    auth: &ClientAuth<'_>,
    form: Vec<(&'static str, String)>,
) -> Result<Tokens> {
    let resp = authenticated(http.post(endpoint.clone()), auth, form)
        .send()
        .await
        .map_err(|e| Error::http(endpoint.as_str(), &e))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| Error::http(endpoint.as_str(), &e))?;
    if !(200..300).contains(&status) {
        return Err(oauth_error(endpoint, status, &body));
    }
    let invalid = |reason: String| Error::InvalidDocument {
        what: "token response".into(),
        url: endpoint.to_string(),
        reason,
    };
    let t: TokenResponse =
        serde_json::from_str(&body).map_err(|e| invalid(format!("not a token response ({e})")))?;
    if !t.token_type.eq_ignore_ascii_case("bearer") {
        return Err(invalid(format!(
            "token_type {:?} is not Bearer",
            t.token_type
        )));
    }
    if t.access_token.is_empty() {
        return Err(invalid("empty access_token".into()));
    }
    Ok(Tokens {
        access_token: AccessToken::new(t.access_token),
        refresh_token: t
            .refresh_token
            .filter(|r| !r.is_empty())
            .map(RefreshToken::new),
        expires_in: t.expires_in,
        scope: t.scope,
    })
}

/// An RFC 6749 §5.2 error body, or the status when the body is not one.
fn oauth_error(endpoint: &Url, status: u16, body: &str) -> Error {
    match serde_json::from_str::<ErrorResponse>(body) {
        Ok(e) => Error::TokenEndpoint {
            error: e.error,
            description: e.error_description,
        },
        Err(_) => Error::UnexpectedStatus {
            url: endpoint.to_string(),
            status,
            body: snippet(body),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock::{MockServer, Resp};
    use serde_json::json;

    fn ok() -> Resp {
        Resp::json(
            200,
            json!({"access_token": "at", "token_type": "bearer", "expires_in": 60, "refresh_token": "rt", "scope": "a"}),
        )
    }

    #[tokio::test]
    async fn code_exchange_with_each_auth_method() {
        let srv = MockServer::start(|_, _| ok()).await;
        let ep = Url::parse(&format!("{}/token", srv.base)).unwrap();
        let http = reqwest::Client::new();
        let secret = ClientSecret::new("s&cret");
        let verifier = CodeVerifier::from_random([1; 32]);
        for method in [
            AuthMethod::None,
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
        ] {
            let auth = ClientAuth {
                client_id: "id:1",
                client_secret: Some(&secret),
                method,
            };
            let t = exchange_code(
                &http,
                &ep,
                &auth,
                &AuthorizationCode::new("c"),
                &verifier,
                "http://127.0.0.1:1/callback",
                Some("https://r"),
            )
            .await
            .unwrap();
            assert_eq!(t.access_token.expose(), "at");
            assert_eq!(t.expires_in, Some(60));
        }
        let reqs = srv.requests();
        let form = |i: usize| -> std::collections::HashMap<String, String> {
            reqs[i].form().into_iter().collect()
        };
        assert_eq!(form(0)["client_id"], "id:1");
        assert!(!form(0).contains_key("client_secret"));
        assert_eq!(form(0)["resource"], "https://r");
        assert_eq!(form(0)["code_verifier"], verifier.expose());
        assert_eq!(
            reqs[1].header("authorization").unwrap(),
            format!("Basic {}", STANDARD.encode("id%3A1:s%26cret"))
        );
        assert!(!form(1).contains_key("client_id"));
        assert_eq!(form(2)["client_secret"], "s&cret");
    }

    #[tokio::test]
    async fn errors_are_parsed() {
        let srv =
            MockServer::start(|_, _| Resp::json(401, json!({"error": "invalid_client"}))).await;
        let ep = Url::parse(&format!("{}/token", srv.base)).unwrap();
        let auth = ClientAuth {
            client_id: "x",
            client_secret: None,
            method: AuthMethod::None,
        };
        let e = refresh(
            &reqwest::Client::new(),
            &ep,
            &auth,
            &RefreshToken::new("r"),
            None,
        )
        .await
        .unwrap_err();
        assert!(e.is_invalid_client());
    }
}
