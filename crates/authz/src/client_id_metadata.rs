//! OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP authorization
//! 2025-11-25, "Client ID Metadata Documents"): a `client_id` that is an `https:` URL names a JSON document of
//! RFC 7591 client metadata, which the authorization server fetches instead of looking the client up.
//!
//! This module holds the rules and no I/O: the fetching (with its SSRF guard, limits and cache) is behind
//! [`ClientMetadataResolver`], which the HTTP layer implements and injects with
//! [`crate::Authz::with_client_metadata_resolver`]. What is checked here:
//! - the URL itself ([`ClientIdUrl::parse`], draft "Client Identifier URL"): `https`, a host, a path, no
//!   fragment, no userinfo, no dot segments (it must be in normalized form);
//! - the document ([`client_from_document`], draft "Client ID Metadata Document" and "Security
//!   Considerations"): `client_id` equal to the URL exactly, no `client_secret`, a public client
//!   (`token_endpoint_auth_method` `none` or absent; shared-secret methods are forbidden by the draft and
//!   `private_key_jwt` is not supported here), and otherwise the same rules as dynamic registration
//!   ([`check_metadata`]: exact redirect URIs, private-use schemes reverse-domain or allowed,
//!   `application_type` inferred or fitting the redirect URIs, `authorization_code` (+ `refresh_token`) only,
//!   https display URIs).

use crate::error::AuthzError;
use crate::registration::{check_metadata, AuthMethod, RegisteredClient, RegistrationPolicy};
use async_trait::async_trait;
use portcullis_proto::registration::ClientMetadata;
use portcullis_proto::RedirectUri;
use url::Url;

/// Longest client identifier URL accepted.
pub const MAX_CLIENT_ID_URL_LEN: usize = 1024;

/// A fetched document: the response body, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadataDocument {
    /// The JSON body.
    pub body: Vec<u8>,
}

/// Why a document could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The URL or its response is not acceptable (non-public address, redirect, too large, not JSON, an HTTP
    /// error status): the client is invalid (`invalid_client`). The text is shown to the user.
    #[error("{0}")]
    Refused(String),
    /// The host did not answer in time, or answered 5xx: `temporarily_unavailable`, so a client keeps its
    /// credentials and retries. The text is for the log.
    #[error("{0}")]
    Unavailable(String),
}

/// Fetches Client ID Metadata Documents. Implementations do the network I/O and its guards; the rules on the
/// contents are applied by [`crate::registrations::Registrations`] afterwards.
#[async_trait]
pub trait ClientMetadataResolver: Send + Sync {
    /// Fetches the document at `url` (already checked by [`ClientIdUrl::parse`]).
    async fn fetch(&self, url: &ClientIdUrl) -> Result<ClientMetadataDocument, ResolveError>;

    /// Whether plain `http` may be used for this URL: only hosts on an explicit test allow-list. Default: no.
    fn allows_http(&self, _url: &Url) -> bool {
        false
    }
}

/// A client identifier URL that passed the draft's syntax rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdUrl(Url);

impl ClientIdUrl {
    /// Parses `text` (draft "Client Identifier URL"): `https` (or `http` when `allow_http` says so, for tests),
    /// a host, a path other than `/`, no fragment, no username or password, and already in normalized form
    /// (so no dot segments, no default port, lowercase scheme and host): the document's `client_id` is then
    /// compared with exactly this string.
    pub fn parse(text: &str, allow_http: impl FnOnce(&Url) -> bool) -> Result<Self, AuthzError> {
        let bad = |why: &str| AuthzError::InvalidClient(format!("client_id URL {why}"));
        if text.len() > MAX_CLIENT_ID_URL_LEN {
            return Err(bad("is too long"));
        }
        let url = Url::parse(text).map_err(|_| bad("is not a valid URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http(&url) => {}
            _ => return Err(bad("must use https")),
        }
        if url.host().is_none() {
            return Err(bad("must have a host"));
        }
        if url.fragment().is_some() || text.contains('#') {
            return Err(bad("must not contain a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain a username or password"));
        }
        if url.path() == "/" || url.path().is_empty() {
            return Err(bad("must contain a path"));
        }
        let lower = text.to_ascii_lowercase();
        if lower.contains("/./")
            || lower.contains("/../")
            || lower.ends_with("/.")
            || lower.ends_with("/..")
            || lower.contains("%2e")
        {
            return Err(bad("must not contain dot segments"));
        }
        if url.as_str() != text {
            return Err(bad("must be in normalized form"));
        }
        Ok(Self(url))
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as a string (the `client_id`).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host (and port, if not the default) shown on the consent page.
    pub fn display_host(&self) -> String {
        match (self.0.host_str(), self.0.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        }
    }
}

/// Whether a `client_id` is to be resolved as a metadata document URL rather than looked up.
pub fn is_url_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Applies the draft's rules and the registration rules to a fetched document, giving the client it
/// describes. `now` becomes its `created_at`.
pub fn client_from_document(
    url: &ClientIdUrl,
    doc: &ClientMetadataDocument,
    policy: &RegistrationPolicy,
    now: i64,
) -> Result<RegisteredClient, AuthzError> {
    let bad = |why: String| AuthzError::InvalidClient(format!("client metadata document {why}"));
    let value: serde_json::Value =
        serde_json::from_slice(&doc.body).map_err(|_| bad("is not valid JSON".into()))?;
    if !value.is_object() {
        return Err(bad("is not a JSON object".into()));
    }
    let mut meta: ClientMetadata = serde_json::from_value(value)
        .map_err(|e| bad(format!("has a member of the wrong type ({e})")))?;
    // Draft "Client ID Metadata Document": client_id MUST equal the URL (simple string comparison).
    match meta.extra.get("client_id") {
        Some(serde_json::Value::String(id)) if id == url.as_str() => {}
        Some(_) => return Err(bad("has a client_id that does not match its URL".into())),
        None => return Err(bad("has no client_id".into())),
    }
    // Draft: client_secret and client_secret_expires_at MUST NOT be present; shared-secret methods MUST NOT
    // be used. private_key_jwt is allowed by the draft but not supported here.
    if meta.extra.contains_key("client_secret")
        || meta.extra.contains_key("client_secret_expires_at")
    {
        return Err(bad("must not contain a client_secret".into()));
    }
    match meta.token_endpoint_auth_method.as_deref() {
        None | Some("none") => meta.token_endpoint_auth_method = Some("none".into()),
        Some(m) => {
            return Err(bad(format!(
            "uses token_endpoint_auth_method {m:?}; only public clients (\"none\") are supported"
        )))
        }
    }
    let meta = check_metadata(meta, policy).map_err(|e| bad(e.description()))?;
    let redirect_uris = meta
        .redirect_uris
        .iter()
        .map(|u| RedirectUri::parse_allowing(u, &policy.redirect_schemes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let may_refresh = meta
        .grant_types
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == "refresh_token"));
    Ok(RegisteredClient {
        client_id: url.as_str().to_owned(),
        redirect_uris,
        auth_method: AuthMethod::None,
        may_refresh,
        secret_hash: None,
        created_at: now,
        metadata: meta,
        introspection: None,
    })
}

impl From<ResolveError> for AuthzError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Refused(why) => {
                Self::InvalidClient(format!("client metadata document refused: {why}"))
            }
            ResolveError::Unavailable(_) => Self::TemporarilyUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::authz;
    use portcullis_proto::{PrivateUseSchemes, Scope};
    use std::sync::{Arc, Mutex};

    const URL: &str = "https://app.example/client.json";

    fn url() -> ClientIdUrl {
        ClientIdUrl::parse(URL, |_| false).unwrap()
    }

    fn doc(v: serde_json::Value) -> ClientMetadataDocument {
        ClientMetadataDocument {
            body: serde_json::to_vec(&v).unwrap(),
        }
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "client_id": URL,
            "client_name": "Example MCP Client",
            "redirect_uris": ["http://127.0.0.1/callback", "https://app.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        })
    }

    fn policy() -> RegistrationPolicy {
        RegistrationPolicy {
            supported_scopes: Scope::parse("mcp:tools").unwrap(),
            redirect_schemes: PrivateUseSchemes::mcp_clients(),
            localhost: crate::config::LocalhostRedirects::Warn,
        }
    }

    fn check(v: serde_json::Value) -> Result<RegisteredClient, AuthzError> {
        client_from_document(&url(), &doc(v), &policy(), 7)
    }

    #[test]
    fn url_rules() {
        let ok = |s: &str| ClientIdUrl::parse(s, |_| false).is_ok();
        assert!(ok("https://app.example/client.json"));
        assert!(ok("https://app.example:8443/c?v=1"));
        assert!(!ok("http://app.example/client.json"));
        assert!(!ok("https://app.example"));
        assert!(!ok("https://app.example/"));
        assert!(!ok("https://app.example/a#frag"));
        assert!(!ok("https://user:pw@app.example/a"));
        assert!(!ok("https://app.example/a/../b"));
        assert!(!ok("https://app.example/a/./b"));
        assert!(!ok("https://app.example/a/%2e%2e/b"));
        assert!(!ok("https://APP.example/a"));
        assert!(!ok("https://app.example:443/a"));
        assert!(!ok(&format!("https://app.example/{}", "a".repeat(1100))));
        assert!(ClientIdUrl::parse("http://127.0.0.1:9/a", |u| u.port() == Some(9)).is_ok());
        assert_eq!(
            ClientIdUrl::parse("https://app.example:8443/c", |_| false)
                .unwrap()
                .display_host(),
            "app.example:8443"
        );
    }

    #[test]
    fn a_good_document_is_a_public_client() {
        let c = check(good()).unwrap();
        assert_eq!(c.client_id, URL);
        assert_eq!(c.auth_method, AuthMethod::None);
        assert!(c.may_refresh);
        assert!(c.secret_hash.is_none());
        assert_eq!(c.name(), "Example MCP Client");
        assert!(c.redirect_uri_matching("https://app.example/cb").is_some());
        assert!(c
            .redirect_uri_matching("http://127.0.0.1:5555/callback")
            .is_some());
        assert!(c.redirect_uri_matching("https://app.example/cb2").is_none());
        assert!(
            c.metadata.extra.is_empty(),
            "client_id is not echoed as metadata"
        );
    }

    #[test]
    fn refusals() {
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good();
            f(&mut v);
            check(v).unwrap_err()
        };
        let desc = |e: AuthzError| {
            assert!(matches!(e, AuthzError::InvalidClient(_)), "{e:?}");
            e.description()
        };
        assert!(desc(with(
            &|v| v["client_id"] = "https://other.example/c.json".into()
        ))
        .contains("does not match"));
        assert!(
            desc(with(&|v| v["client_id"] = format!("{URL}/").into())).contains("does not match")
        );
        assert!(desc(with(&|v| {
            v.as_object_mut().unwrap().remove("client_id");
        }))
        .contains("no client_id"));
        assert!(desc(with(&|v| v["client_secret"] = "s".into())).contains("client_secret"));
        for m in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ] {
            assert!(desc(with(&|v| v["token_endpoint_auth_method"] = m.into()))
                .contains("public clients"));
        }
        assert!(desc(with(
            &|v| v["redirect_uris"] = serde_json::json!(["http://evil.com/cb"])
        ))
        .contains("redirect"));
        assert!(
            desc(with(&|v| v["grant_types"] = serde_json::json!(["implicit"])))
                .contains("implicit")
        );
        assert!(desc(with(
            &|v| v["redirect_uris"] = serde_json::json!("https://a.example/cb")
        ))
        .contains("wrong type"));
        // Unicode TR36, CVE-2021-42574: a name that reorders or hides text is refused, by code point.
        for (name, named) in [
            ("Example\u{202E}tneilC", "U+202E"),
            ("\u{2066}Example", "U+2066"),
            ("Exa\u{200B}mple", "U+200B"),
        ] {
            let d = desc(with(&|v| v["client_name"] = name.into()));
            assert!(d.contains("client_name") && d.contains(named), "{d}");
        }
        assert!(desc(
            client_from_document(
                &url(),
                &ClientMetadataDocument {
                    body: b"[1]".to_vec()
                },
                &policy(),
                0
            )
            .unwrap_err()
        )
        .contains("not a JSON object"));
    }

    /// Documents follow the same redirect-scheme and `application_type` rules as dynamic registration.
    #[test]
    fn documents_follow_the_scheme_and_application_type_rules() {
        let with = |uris: serde_json::Value, t: Option<&str>| {
            let mut v = good();
            v["redirect_uris"] = uris;
            if let Some(t) = t {
                v["application_type"] = t.into();
            }
            check(v)
        };
        let cursor = "cursor://anysphere.cursor-mcp/oauth/callback";
        let c = with(serde_json::json!([cursor]), None).unwrap();
        assert!(c.redirect_uri_matching(cursor).is_some());
        assert_eq!(c.metadata.application_type.as_deref(), Some("native"));
        let c = with(serde_json::json!(["https://app.example/cb"]), None).unwrap();
        assert_eq!(c.metadata.application_type.as_deref(), Some("web"));
        let none = RegistrationPolicy {
            redirect_schemes: PrivateUseSchemes::none(),
            ..policy()
        };
        let mut v = good();
        v["redirect_uris"] = serde_json::json!([cursor]);
        let e = client_from_document(&url(), &doc(v), &none, 7).unwrap_err();
        assert!(
            e.description().contains("\"cursor\" is not allowed"),
            "{e:?}"
        );
        let e = with(
            serde_json::json!(["https://app.example/cb"]),
            Some("native"),
        )
        .unwrap_err();
        assert!(matches!(e, AuthzError::InvalidClient(_)), "{e:?}");
        assert!(
            e.description().contains(
                "application_type native conflicts with redirect URI https://app.example/cb"
            ),
            "{e:?}"
        );
        let e = with(serde_json::json!([cursor]), Some("web")).unwrap_err();
        assert!(
            e.description()
                .contains(&format!("conflicts with redirect URI {cursor}")),
            "{e:?}"
        );
    }

    struct Fixed(Mutex<Result<ClientMetadataDocument, ResolveError>>);

    #[async_trait]
    impl ClientMetadataResolver for Fixed {
        async fn fetch(&self, _url: &ClientIdUrl) -> Result<ClientMetadataDocument, ResolveError> {
            self.0.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn authz_resolves_url_client_ids_through_the_resolver() {
        let plain = authz().await;
        assert!(!plain.registrations().supports_client_metadata_documents());
        assert_eq!(plain.registrations().client(URL).await.unwrap(), None);

        let fixed = Arc::new(Fixed(Mutex::new(Ok(doc(good())))));
        let a = crate::testing::authz_with_resolver(fixed.clone()).await;
        assert!(a.registrations().supports_client_metadata_documents());
        let c = a.registrations().client(URL).await.unwrap().unwrap();
        assert_eq!(c.client_id, URL);
        // Anchored in storage (consents and grants refer to it); a second resolve is fine.
        assert!(a.core().store().client(URL).await.unwrap().is_some());
        assert!(a.registrations().client(URL).await.unwrap().is_some());

        assert!(matches!(
            a.registrations()
                .client("http://app.example/client.json")
                .await,
            Err(AuthzError::InvalidClient(_))
        ));
        *fixed.0.lock().unwrap() = Err(ResolveError::Refused("too large".into()));
        assert_eq!(
            a.registrations()
                .client(URL)
                .await
                .unwrap_err()
                .description(),
            "client metadata document refused: too large"
        );
        *fixed.0.lock().unwrap() = Err(ResolveError::Unavailable("timeout".into()));
        assert_eq!(
            a.registrations().client(URL).await.unwrap_err(),
            AuthzError::TemporarilyUnavailable
        );
        let creds = crate::client_auth::ClientCredentials::Public {
            client_id: URL.into(),
        };
        *fixed.0.lock().unwrap() = Err(ResolveError::Refused("gone".into()));
        assert!(matches!(
            a.registrations().authenticate_client(&creds).await,
            Err(AuthzError::InvalidClient(_))
        ));
        *fixed.0.lock().unwrap() = Ok(doc(good()));
        assert_eq!(
            a.registrations()
                .authenticate_client(&creds)
                .await
                .unwrap()
                .client_id,
            URL
        );
    }
}
