//! Dynamic Client Registration (RFC 7591): the client metadata a client sends (§2) and the client information
//! response (§3.2.1). Parsing here is only about JSON shape; the registration *policy* lives in the server logic.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a client authenticates at the token endpoint (RFC 7591 §2 `token_endpoint_auth_method`); serialized as
/// the metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client (RFC 6749 §2.1).
    None,
    /// HTTP Basic (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// Credentials in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
}

impl AuthMethod {
    /// Parses the metadata value; an unknown method is `None` here, for the caller to refuse.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    /// The metadata value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// Client metadata (RFC 7591 §2). Unknown members are kept in `extra` and ignored by policy (§2: the server
/// MUST ignore metadata it does not understand).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// RFC 7591 §2; defaults to `client_secret_basic` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// RFC 7591 §2; defaults to `["authorization_code"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// RFC 7591 §2; defaults to `["code"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// RFC 7591 §2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// OpenID Connect Dynamic Client Registration §2 (`native` or `web`); MCP 2026-07-28 clients send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// Members this crate does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The client information response (RFC 7591 §3.2.1): the registered metadata plus credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInformation {
    /// RFC 7591 §3.2.1.
    pub client_id: String,
    /// RFC 7591 §3.2.1; only for confidential clients, returned once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// RFC 7591 §3.2.1, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<i64>,
    /// RFC 7591 §3.2.1: 0 means it never expires; required when a secret is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// The registered metadata.
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_registration_round_trips() {
        let body = r#"{
            "client_name": "My MCP Client",
            "redirect_uris": ["http://localhost:8080/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "unknown_member": true
        }"#;
        let m: ClientMetadata = serde_json::from_str(body).unwrap();
        assert_eq!(m.token_endpoint_auth_method.as_deref(), Some("none"));
        assert_eq!(m.extra["unknown_member"], true);
        let info = ClientInformation {
            client_id: "abc".into(),
            client_secret: None,
            client_id_issued_at: Some(1),
            client_secret_expires_at: None,
            metadata: ClientMetadata {
                extra: Map::new(),
                ..m
            },
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["client_id"], "abc");
        assert_eq!(v["redirect_uris"][0], "http://localhost:8080/callback");
        assert!(v.get("client_secret").is_none());
    }

    #[test]
    fn wrong_types_fail_to_parse() {
        assert!(
            serde_json::from_str::<ClientMetadata>(r#"{"redirect_uris": "https://a.com/cb"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<ClientMetadata>(r#"{"client_name": 5}"#).is_err());
    }
}
