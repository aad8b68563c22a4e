//! Getting client credentials for an authorization server (MCP authorization, "Client Registration
//! Approaches"), in order: pre-registered credentials; a Client ID Metadata Document URL when the server
//! advertises `client_id_metadata_document_supported`; RFC 7591 dynamic registration; else a clear error.
//! A [`Registration`] is bound to the issuer that issued it and never used with another.

use crate::discovery::Discovered;
use crate::error::snippet;
use crate::secret::ClientSecret;
use crate::token::{AuthMethod, ClientAuth};
use crate::{Error, Result};
use portcullis_proto::registration::{ClientInformation, ClientMetadata};
use portcullis_proto::{ErrorResponse, Scope};
use serde::{Deserialize, Serialize};

/// The `client_name` sent in dynamic registration.
pub const CLIENT_NAME: &str = "Portcullis CLI";

/// How the credentials were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Given by the user (`--client-id`).
    PreRegistered,
    /// A Client ID Metadata Document URL used as `client_id`.
    MetadataDocument,
    /// RFC 7591 dynamic registration.
    Dynamic,
}

/// Client credentials at one authorization server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The issuer these credentials belong to.
    pub issuer: String,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`, for confidential registrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// Token endpoint authentication method.
    pub auth_method: AuthMethod,
    /// The exact redirect URI registered, when one was (its port is reused on every login, because many servers
    /// match loopback redirect URIs including the port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// How the credentials were obtained.
    pub kind: Kind,
    /// `client_secret_expires_at` (RFC 7591 §3.2.1), seconds since the epoch; 0 or absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_expires_at: Option<i64>,
}

impl Registration {
    /// The client authentication to use at the token endpoint.
    pub fn client_auth(&self) -> ClientAuth<'_> {
        ClientAuth {
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref(),
            method: self.auth_method,
        }
    }

    /// Whether the secret has expired at `now` (seconds since the epoch).
    pub fn expired(&self, now: u64) -> bool {
        self.secret_expires_at
            .is_some_and(|t| t > 0 && i64::try_from(now).unwrap_or(i64::MAX) >= t)
    }
}

/// Pre-registered credentials: the method is `none` without a secret; with one, `client_secret_basic` unless the
/// server advertises only `client_secret_post`.
pub fn pre_registered(
    d: &Discovered,
    client_id: &str,
    secret: Option<ClientSecret>,
) -> Registration {
    let auth_method = match &secret {
        None => AuthMethod::None,
        Some(_) => {
            let supported = d
                .metadata
                .token_endpoint_auth_methods_supported
                .as_deref()
                .unwrap_or_default();
            if supported.iter().any(|m| m == "client_secret_post")
                && !supported.iter().any(|m| m == "client_secret_basic")
            {
                AuthMethod::ClientSecretPost
            } else {
                AuthMethod::ClientSecretBasic
            }
        }
    };
    Registration {
        issuer: d.issuer.clone(),
        client_id: client_id.to_owned(),
        client_secret: secret,
        auth_method,
        redirect_uri: None,
        kind: Kind::PreRegistered,
        secret_expires_at: None,
    }
}

/// A Client ID Metadata Document URL as `client_id`, when the server advertises support.
pub fn metadata_document(d: &Discovered, url: &str) -> Option<Registration> {
    (d.metadata.client_id_metadata_document_supported == Some(true)).then(|| Registration {
        issuer: d.issuer.clone(),
        client_id: url.to_owned(),
        client_secret: None,
        auth_method: AuthMethod::None,
        redirect_uri: None,
        kind: Kind::MetadataDocument,
        secret_expires_at: None,
    })
}

/// RFC 7591 §3.1 dynamic registration of a native public client with exactly `redirect_uri`.
pub async fn register(
    http: &reqwest::Client,
    d: &Discovered,
    redirect_uri: &str,
    scope: Option<&Scope>,
) -> Result<Registration> {
    let Some(endpoint) = &d.endpoints.registration else {
        return Err(Error::NeedsPreRegistration {
            issuer: d.issuer.clone(),
        });
    };
    let fail = |reason: String| Error::RegistrationFailed {
        issuer: d.issuer.clone(),
        reason,
    };
    let metadata = native_client_metadata(redirect_uri, scope);
    let resp = http
        .post(endpoint.clone())
        .header("accept", "application/json")
        .json(&metadata)
        .send()
        .await
        .map_err(|e| Error::http(endpoint.as_str(), &e))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| Error::http(endpoint.as_str(), &e))?;
    if !status.is_success() {
        return Err(fail(refusal_reason(status, &body)));
    }
    let info: ClientInformation = serde_json::from_str(&body)
        .map_err(|e| fail(format!("the response is not client information ({e})")))?;
    if info.client_id.is_empty() {
        return Err(fail("the response has an empty client_id".into()));
    }
    let auth_method = granted_auth_method(&info).map_err(fail)?;
    Ok(Registration {
        issuer: d.issuer.clone(),
        client_id: info.client_id,
        client_secret: info.client_secret.map(ClientSecret::new),
        auth_method,
        redirect_uri: Some(redirect_uri.to_owned()),
        kind: Kind::Dynamic,
        secret_expires_at: info.client_secret_expires_at,
    })
}

/// What this client registers as (RFC 7591 §2): a native public client (`none`) with one loopback redirect URI,
/// the authorization code and refresh token grants.
fn native_client_metadata(redirect_uri: &str, scope: Option<&Scope>) -> ClientMetadata {
    ClientMetadata {
        redirect_uris: vec![redirect_uri.to_owned()],
        token_endpoint_auth_method: Some("none".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        response_types: Some(vec!["code".into()]),
        client_name: Some(CLIENT_NAME.into()),
        scope: scope.map(ToString::to_string),
        software_id: Some("portcullis".into()),
        software_version: Some(env!("CARGO_PKG_VERSION").into()),
        application_type: Some("native".into()),
        ..Default::default()
    }
}

/// Why the server refused a registration: its RFC 7591 §3.2.2 error (and description), else the status and
/// the start of the body.
fn refusal_reason(status: reqwest::StatusCode, body: &str) -> String {
    match serde_json::from_str::<ErrorResponse>(body) {
        Ok(e) => format!(
            "{}{}",
            e.error,
            e.error_description
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        Err(_) => format!("HTTP {status} {}", snippet(body)),
    }
}

/// The authentication method the server registered (RFC 7591 §3.2.1; absent: `client_secret_basic` if a secret
/// was issued, else `none`); a secret-based method needs the secret.
fn granted_auth_method(info: &ClientInformation) -> std::result::Result<AuthMethod, String> {
    let method = info
        .metadata
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or(if info.client_secret.is_some() {
            "client_secret_basic"
        } else {
            "none"
        });
    let auth_method = AuthMethod::parse(method)
        .ok_or_else(|| format!("unsupported token_endpoint_auth_method {method:?}"))?;
    if auth_method != AuthMethod::None && info.client_secret.is_none() {
        return Err(format!(
            "the server chose {method} but issued no client_secret"
        ));
    }
    Ok(auth_method)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock::{MockServer, Resp};
    use serde_json::json;

    async fn discovered(base: &str) -> Discovered {
        let srv_doc = json!({
            "issuer": base, "authorization_endpoint": format!("{base}/authorize"), "token_endpoint": format!("{base}/token"),
            "registration_endpoint": format!("{base}/register"), "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"]
        });
        let meta: portcullis_proto::metadata::AuthorizationServerMetadata =
            serde_json::from_value(srv_doc).unwrap();
        Discovered {
            resource: None,
            resource_metadata: None,
            issuer: base.to_owned(),
            endpoints: crate::discovery::Endpoints {
                authorization: url::Url::parse(&format!("{base}/authorize")).unwrap(),
                token: url::Url::parse(&format!("{base}/token")).unwrap(),
                registration: Some(url::Url::parse(&format!("{base}/register")).unwrap()),
                revocation: None,
            },
            metadata: meta,
        }
    }

    #[tokio::test]
    async fn dynamic_registration_sends_native_public_client() {
        let srv = MockServer::start(|req, _| {
            let mut v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            v["client_id"] = json!("new-id");
            Resp::json(201, v)
        })
        .await;
        let d = discovered(&srv.base).await;
        let scope = Scope::parse("mcp:read").unwrap();
        let r = register(
            &reqwest::Client::new(),
            &d,
            "http://127.0.0.1:4567/callback",
            Some(&scope),
        )
        .await
        .unwrap();
        assert_eq!(r.client_id, "new-id");
        assert_eq!(r.auth_method, AuthMethod::None);
        assert_eq!(
            r.redirect_uri.as_deref(),
            Some("http://127.0.0.1:4567/callback")
        );
        let sent: serde_json::Value = serde_json::from_str(&srv.requests()[0].body).unwrap();
        assert_eq!(sent["application_type"], "native");
        assert_eq!(sent["token_endpoint_auth_method"], "none");
        assert_eq!(
            sent["redirect_uris"],
            json!(["http://127.0.0.1:4567/callback"])
        );
        assert_eq!(
            sent["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(sent["scope"], "mcp:read");
    }

    #[tokio::test]
    async fn no_registration_endpoint_needs_pre_registration() {
        let mut d = discovered("http://127.0.0.1:9").await;
        d.endpoints.registration = None;
        let e = register(
            &reqwest::Client::new(),
            &d,
            "http://127.0.0.1:1/callback",
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::NeedsPreRegistration { .. }));
        assert!(metadata_document(&d, "https://app.example/client.json").is_none());
        d.metadata.client_id_metadata_document_supported = Some(true);
        assert_eq!(
            metadata_document(&d, "https://app.example/client.json")
                .unwrap()
                .kind,
            Kind::MetadataDocument
        );
        let p = pre_registered(&d, "id", Some(ClientSecret::new("s")));
        assert_eq!(p.auth_method, AuthMethod::ClientSecretBasic);
        d.metadata.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert_eq!(
            pre_registered(&d, "id", Some(ClientSecret::new("s"))).auth_method,
            AuthMethod::ClientSecretPost
        );
    }
}
