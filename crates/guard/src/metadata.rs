//! OAuth 2.0 Protected Resource Metadata (RFC 9728 §2) for the guarded resource, served at the path-inserted
//! well-known URL (§3.1): `https://mcp.example.com/mcp` → `https://mcp.example.com/.well-known/oauth-protected-resource/mcp`.
//! The document is serialized once.

use crate::config::GuardConfig;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use portcullis_proto::metadata::ProtectedResourceMetadata;
use portcullis_proto::well_known;
use url::Url;

/// The metadata URL of `resource` and its path.
pub(crate) fn urls(resource: &Url) -> (String, String) {
    let url = well_known::protected_resource_metadata_url(resource);
    let origin_len = resource.origin().ascii_serialization().len();
    let path = url.get(origin_len..).unwrap_or("/").to_owned();
    // A query component (RFC 9728 §3.1 keeps it) is not part of the route.
    let path = path.split('?').next().unwrap_or("/").to_owned();
    (url, path)
}

/// The RFC 9728 document: `resource`, `authorization_servers` (the issuer), `scopes_supported`,
/// `bearer_methods_supported` (`header` only, RFC 6750 §2.1), `resource_name`.
pub fn document(c: &GuardConfig) -> Bytes {
    let doc = ProtectedResourceMetadata {
        resource: c.resource.clone(),
        authorization_servers: Some(vec![c.issuer.clone()]),
        jwks_uri: None,
        scopes_supported: (!c.scopes_supported.is_empty()).then(|| c.scopes_supported.clone()),
        bearer_methods_supported: Some(vec!["header".into()]),
        resource_name: c.resource_name.clone(),
        resource_documentation: None,
        extra: Default::default(),
    };
    // A struct of strings and vectors always serializes.
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// `GET <path>` answering `doc`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(
    path: String,
    doc: Bytes,
) -> axum::Router<S> {
    axum::Router::new().route(
        &path,
        get(move || {
            let doc = doc.clone();
            async move { json(doc) }
        }),
    )
}

fn json(doc: Bytes) -> Response {
    let mut resp = doc.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_inserted_urls() {
        let u = |s: &str| urls(&Url::parse(s).unwrap());
        assert_eq!(
            u("https://mcp.example.com/mcp"),
            (
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
                "/.well-known/oauth-protected-resource/mcp".into()
            )
        );
        assert_eq!(
            u("http://127.0.0.1:8/v1/mcp/").1,
            "/.well-known/oauth-protected-resource/v1/mcp/"
        );
        assert_eq!(
            u("https://mcp.example.com").1,
            "/.well-known/oauth-protected-resource"
        );
    }
}
