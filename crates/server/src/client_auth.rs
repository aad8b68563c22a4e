//! Reading client credentials from a token or revocation request (RFC 6749 §2.3.1): HTTP Basic with
//! form-urlencoded id and secret, or `client_id`/`client_secret` form parameters, never both (RFC 6749 §2.3).

use crate::form::Form;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_authz::client_auth::ClientCredentials;
use portcullis_authz::AuthzError;
use portcullis_proto::ClientSecret;

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
