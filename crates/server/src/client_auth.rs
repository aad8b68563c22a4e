//! Client authentication at `/token`, `/revoke` and `/introspect` (RFC 6749 §2.3.1): HTTP Basic with
//! form-urlencoded id and secret, or `client_id`/`client_secret` form parameters, never both (RFC 6749 §2.3);
//! [`authenticated`] reads the form and authenticates the client for all three.

use crate::error::{json_error, OAuthError};
use crate::form::Form;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use portcullis_authz::client_auth::ClientCredentials;
use portcullis_authz::registration::RegisteredClient;
use portcullis_authz::AuthzError;
use portcullis_proto::ClientSecret;
use std::sync::Arc;

/// A request from an authenticated client: the rest of its form, the client, and whether the endpoint's 401s
/// carry the Basic challenge (RFC 6749 §5.2).
pub(crate) struct ClientRequest {
    pub(crate) form: Form,
    pub(crate) client: Arc<RegisteredClient>,
    pub(crate) basic: bool,
}

/// The end of a request before its endpoint's work: a response as it is (an unreadable body) or an error.
pub(crate) type Early = Result<Response, OAuthError>;

/// Reads the form body and authenticates the client. `always_challenge`: every 401 carries the Basic challenge
/// (RFC 7662 §2.3), not only when the client tried Basic.
pub(crate) async fn authenticated(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    always_challenge: bool,
) -> Result<ClientRequest, Early> {
    let body = body.map_err(|e| {
        Ok(json_error(
            e.status(),
            "invalid_request",
            "request body too large or unreadable",
        ))
    })?;
    let mut form = Form::parse(headers, &body)
        .map_err(|e| Err(OAuthError::from(AuthzError::InvalidRequest(e.to_string()))))?;
    let creds = credentials(headers, &mut form).map_err(|e| Err(OAuthError::new(e, true)))?;
    let basic = always_challenge || creds.used_basic();
    let client = s
        .authz
        .registrations()
        .authenticate_client(&creds)
        .await
        .map_err(|e| Err(OAuthError::new(e, basic)))?;
    Ok(ClientRequest {
        form,
        client,
        basic,
    })
}

fn decode_component(text: &str) -> Option<String> {
    let decoded: String = form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()?
        .1
        .into_owned();
    (!decoded.contains(['\0', '\u{fffd}'])).then_some(decoded)
}

/// Extracts the credentials. Errors are `invalid_request` (malformed) or `invalid_client` (none at all).
pub fn credentials(headers: &HeaderMap, form: &mut Form) -> Result<ClientCredentials, AuthzError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_owned())
        });
    let form_id = form.take("client_id");
    let form_secret = form.take("client_secret");
    if let Some(b64) = basic {
        if form_secret.is_some() {
            return Err(AuthzError::InvalidRequest(
                "use one client authentication method, not two".into(),
            ));
        }
        let bad = || AuthzError::InvalidClient("malformed HTTP Basic credentials".into());
        let raw = STANDARD.decode(b64.as_bytes()).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let id = decode_component(id).ok_or_else(bad)?;
        let secret = decode_component(secret).ok_or_else(bad)?;
        if form_id.as_ref().is_some_and(|f| *f != id) {
            return Err(AuthzError::InvalidRequest(
                "client_id differs from the HTTP Basic client id".into(),
            ));
        }
        return Ok(ClientCredentials::Basic {
            client_id: id,
            secret: ClientSecret::new(secret),
        });
    }
    match (form_id, form_secret) {
        (Some(client_id), Some(secret)) => Ok(ClientCredentials::Post {
            client_id,
            secret: ClientSecret::new(secret),
        }),
        (Some(client_id), None) => Ok(ClientCredentials::Public { client_id }),
        (None, _) => Err(AuthzError::InvalidClient(
            "client authentication is required (client_id)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_decoded() {
        let mut h = HeaderMap::new();
        // "my%3Aid:s%2Bcret" → id "my:id", secret "s+cret"
        let v = format!("Basic {}", STANDARD.encode("my%3Aid:s%2Bcret"));
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        let mut f = Form::default();
        match credentials(&h, &mut f).unwrap() {
            ClientCredentials::Basic { client_id, secret } => {
                assert_eq!(client_id, "my:id");
                assert_eq!(secret.expose(), "s+cret");
            }
            other => panic!("{other:?}"),
        }
        let mut f = Form::parse_bytes(b"client_secret=x").unwrap();
        assert!(matches!(
            credentials(&h, &mut f),
            Err(AuthzError::InvalidRequest(_))
        ));
        let mut f = Form::default();
        assert!(matches!(
            credentials(&HeaderMap::new(), &mut f),
            Err(AuthzError::InvalidClient(_))
        ));
    }
}
