//! The provider's token endpoint: the request forms (authorization code, RFC 6749 §4.1.3 with RFC 7636 §4.5;
//! refresh, RFC 6749 §6; token exchange, RFC 8693 §2.1), client authentication (RFC 6749 §2.3.1, RFC 7523 §2.2),
//! and the response: [`UpstreamTokens`] (RFC 6749 §5.1) or the provider's error (§5.2).

use super::error::FederationError;
use super::provider::{ClientAuthMethod, ProviderConfig};
use super::request::PendingLogin;
use super::serde_secret;
use crate::jwt;
use crate::keys::KeyRing;
use crate::random::{self, Random};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

pub use super::metadata::TOKEN_EXCHANGE_GRANT;
/// RFC 8693 §3: an OAuth 2.0 access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest token response accepted.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Lifetime of a `private_key_jwt` client assertion.
pub const ASSERTION_LIFETIME: i64 = 60;

/// A user's tokens at a provider, as kept (sealed) in the vault. `Debug` shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTokens {
    /// The access token.
    #[serde(with = "serde_secret")]
    pub access_token: Secret,
    /// The refresh token, if the provider issued one.
    #[serde(with = "serde_secret::option", default)]
    pub refresh_token: Option<Secret>,
    /// When the access token expires (from `expires_in`), if the provider said.
    pub expires_at: Option<i64>,
    /// The scopes granted, if the provider said.
    pub scope: Option<String>,
    /// `token_type` (`Bearer`, …).
    pub token_type: String,
    /// The ID token, if any.
    #[serde(default)]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1 `issued_token_type`, for a token exchange.
    #[serde(default)]
    pub issued_token_type: Option<String>,
}

impl fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl UpstreamTokens {
    /// Parses a token endpoint response of HTTP `status` received at `now`. An `error` member is the
    /// provider's error whatever the status (GitHub answers errors with 200). JSON only: a form-encoded body
    /// (GitHub without `Accept: application/json`) is refused with an error that says so.
    pub fn from_response(status: u16, body: &[u8], now: i64) -> Result<Self, FederationError> {
        if body.len() > MAX_TOKEN_RESPONSE_BYTES {
            return Err(FederationError::TokenResponse("larger than 64 KiB".into()));
        }
        let trimmed = body.trim_ascii_start();
        if !trimmed.starts_with(b"{") {
            let form = [b"access_token=".as_slice(), b"error="]
                .iter()
                .any(|p| trimmed.starts_with(p));
            return Err(FederationError::TokenResponse(if form {
                "the provider answered form-encoded; it must be asked for JSON (Accept: application/json)".into()
            } else {
                format!("HTTP {status} without a JSON body")
            }));
        }
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(trimmed) else {
            return Err(FederationError::TokenResponse(format!(
                "HTTP {status}: not a JSON object"
            )));
        };
        if let Some(code) = map.get("error") {
            return Err(FederationError::Upstream {
                code: code
                    .as_str()
                    .unwrap_or("invalid_error")
                    .chars()
                    .take(64)
                    .collect(),
                description: map
                    .get("error_description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        if !(200..300).contains(&status) {
            return Err(FederationError::TokenResponse(format!(
                "HTTP {status} without an error code"
            )));
        }
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
        let access_token = text("access_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FederationError::TokenResponse("no access_token".into()))?;
        let token_type = text("token_type")
            .ok_or_else(|| FederationError::TokenResponse("no token_type".into()))?;
        // `expires_in` is a number (RFC 6749 §5.1); some providers send it as a string.
        let expires_in = match map.get("expires_in") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(Self {
            access_token: Secret::new(access_token),
            refresh_token: text("refresh_token")
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            expires_at: expires_in.filter(|s| *s > 0).map(|s| now.saturating_add(s)),
            scope: text("scope"),
            token_type,
            id_token: text("id_token"),
            issued_token_type: text("issued_token_type"),
        })
    }

    /// Whether the access token has expired, or will within `margin` seconds.
    pub fn expires_within(&self, now: i64, margin: i64) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(margin))
    }

    /// After a refresh: the new tokens, keeping the old refresh token when the provider issued none
    /// (RFC 6749 §6: the client may keep using it).
    pub fn refreshed_from(mut self, previous: &UpstreamTokens) -> Self {
        if self.refresh_token.is_none() {
            self.refresh_token = previous.refresh_token.clone();
        }
        self
    }
}

/// A form: name and value pairs, to be form-urlencoded (the values may be secrets: never log them).
pub type Form = Vec<(&'static str, String)>;

/// The authorization code exchange (RFC 6749 §4.1.3, RFC 7636 §4.5).
pub fn authorization_code_form(code: &Secret, redirect_uri: &str, pending: &PendingLogin) -> Form {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.expose().to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", pending.verifier.expose().to_owned()),
    ]
}

/// A refresh (RFC 6749 §6).
pub fn refresh_form(refresh_token: &Secret) -> Form {
    vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token.expose().to_owned()),
    ]
}

/// An RFC 8693 §2.1 token exchange of the user's access token for one meant for `audience`.
pub fn token_exchange_form(
    subject_token: &Secret,
    audience: Option<&str>,
    requested_token_type: Option<&str>,
    scope: Option<&str>,
) -> Form {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT.into()),
        ("subject_token", subject_token.expose().to_owned()),
        ("subject_token_type", ACCESS_TOKEN_TYPE.into()),
    ];
    let optional = [
        ("audience", audience),
        ("requested_token_type", requested_token_type),
        ("scope", scope),
    ];
    form.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?.to_owned()))),
    );
    form
}

/// RFC 7523 §2.1 `grant_type`, used by Entra's on-behalf-of flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Entra ID's on-behalf-of exchange (its alternative to RFC 8693; Microsoft identity platform, "OAuth 2.0
/// On-Behalf-Of flow"): the user's access token as an RFC 7523 assertion, `requested_token_use=on_behalf_of`,
/// and the downstream API's scopes (Entra takes no `audience` and refuses `resource` with scopes).
pub fn on_behalf_of_form(assertion: &Secret, scope: &str) -> Form {
    vec![
        ("grant_type", JWT_BEARER_GRANT.into()),
        ("assertion", assertion.expose().to_owned()),
        ("requested_token_use", "on_behalf_of".into()),
        ("scope", scope.to_owned()),
    ]
}

/// How to authenticate one token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// Send this `Authorization` header value (`Basic …`, RFC 6749 §2.3.1).
    Basic(Secret),
    /// Add these fields to the form (`client_secret_post`).
    Post(Form),
    /// Sign these claims (see [`sign_client_assertion`]) and add [`assertion_form`] of the result.
    Assertion(ClientAssertionClaims),
}

/// The claims of a `private_key_jwt` client assertion (RFC 7523 §3, OpenID Connect Core §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAssertionClaims {
    /// The client id.
    pub iss: String,
    /// The client id.
    pub sub: String,
    /// The token endpoint.
    pub aud: String,
    /// A unique id (RFC 7523 §3 item 7; the provider may refuse a replay).
    pub jti: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry: [`ASSERTION_LIFETIME`] seconds later.
    pub exp: i64,
}

/// The client authentication the provider is configured for. The `client_id` travels in the form for every
/// method but Basic (where RFC 6749 §2.3.1 puts it in the header).
pub fn client_authentication(
    config: &ProviderConfig,
    token_endpoint: &str,
    rng: &dyn Random,
    now: i64,
) -> Result<ClientAuthentication, FederationError> {
    let secret = || {
        config.client_secret.as_ref().ok_or_else(|| {
            FederationError::config(config.name.as_str(), "client_secret", "is required")
        })
    };
    Ok(match config.token_endpoint_auth_method {
        ClientAuthMethod::ClientSecretBasic => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&config.client_id), enc(secret()?.expose()));
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(pair);
            ClientAuthentication::Basic(Secret::new(format!("Basic {b}")))
        }
        ClientAuthMethod::ClientSecretPost => ClientAuthentication::Post(vec![
            ("client_id", config.client_id.clone()),
            ("client_secret", secret()?.expose().to_owned()),
        ]),
        ClientAuthMethod::PrivateKeyJwt => ClientAuthentication::Assertion(ClientAssertionClaims {
            iss: config.client_id.clone(),
            sub: config.client_id.clone(),
            aud: token_endpoint.to_owned(),
            jti: random::token(rng).expose().to_owned(),
            iat: now,
            exp: now + ASSERTION_LIFETIME,
        }),
    })
}

/// Signs a client assertion with Portcullis's active ES256 key (published in its JWKS, which is what the
/// provider is given as the client's `jwks_uri`).
pub fn sign_client_assertion(ring: &KeyRing, claims: &ClientAssertionClaims) -> String {
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    jwt::sign(ring.signing_key(), ring.active_kid(), "JWT", &json)
}

/// The form fields carrying a signed client assertion (RFC 7523 §2.2).
pub fn assertion_form(client_id: &str, assertion: String) -> Form {
    vec![
        ("client_id", client_id.to_owned()),
        ("client_assertion_type", JWT_BEARER_ASSERTION.into()),
        ("client_assertion", assertion),
    ]
}

/// Decodes a `Basic` header built by [`client_authentication`] (tests, and the fake provider of the tests).
pub fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Basic ")?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

#[cfg(test)]
mod tests;
