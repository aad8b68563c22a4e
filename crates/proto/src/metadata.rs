//! Discovery documents: OAuth 2.0 Authorization Server Metadata (RFC 8414 §2) and OAuth 2.0 Protected Resource
//! Metadata (RFC 9728 §2). Fields the client needs are typed; anything else is kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// RFC 8414 §2 (and the OAuth fields of OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// RFC 8414 §2: MUST be identical to the issuer the client used to build the metadata URL (§3.3).
    pub issuer: String,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// RFC 8414 §2.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_modes_supported: Option<Vec<String>>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 8414 §2 (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 8414 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207 §3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// draft-ietf-oauth-client-id-metadata-document §5 (MCP 2025-11-25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
    /// Everything else (OIDC fields, other extensions).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AuthorizationServerMetadata {
    /// Whether PKCE with S256 is advertised (MCP authorization: clients MUST refuse to proceed otherwise).
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "S256"))
    }
}

/// RFC 9728 §2.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// RFC 9728 §2: MUST be identical to the resource identifier the metadata URL was built from (§3.3).
    pub resource: String,
    /// RFC 9728 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_servers: Option<Vec<String>>,
    /// RFC 9728 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 9728 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// RFC 9728 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// RFC 9728 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// RFC 9728 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_document_and_keeps_unknown_fields() {
        let doc = r#"{
          "issuer": "https://cf.mcp.atlassian.com",
          "authorization_endpoint": "https://mcp.atlassian.com/v1/authorize",
          "token_endpoint": "https://cf.mcp.atlassian.com/v1/token",
          "registration_endpoint": "https://cf.mcp.atlassian.com/v1/register",
          "response_types_supported": ["code"],
          "response_modes_supported": ["query"],
          "grant_types_supported": ["authorization_code", "refresh_token"],
          "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
          "revocation_endpoint": "https://cf.mcp.atlassian.com/v1/token",
          "code_challenge_methods_supported": ["plain", "S256"],
          "x_custom": 1
        }"#;
        let m: AuthorizationServerMetadata = serde_json::from_str(doc).unwrap();
        assert!(m.supports_s256());
        assert_eq!(m.extra["x_custom"], 1);
        let m2 = AuthorizationServerMetadata {
            issuer: "x".into(),
            ..Default::default()
        };
        assert!(!m2.supports_s256());
    }
}
