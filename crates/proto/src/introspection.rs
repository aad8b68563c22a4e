//! Token introspection (RFC 7662): the response a protected resource reads (§2.2). The request is a form with
//! `token` and an optional `token_type_hint` (§2.1), read by the server like a revocation request.

use serde::{Deserialize, Serialize};

/// An introspection response (RFC 7662 §2.2). `active` is the only required member; an inactive token's
/// response carries nothing else (§2.2: "SHOULD NOT contain any additional claims beyond the required
/// `active` claim"), which [`IntrospectionResponse::inactive`] builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    /// RFC 7662 §2.2 `active`: issued by this server, not revoked, within its validity window, and visible to
    /// the caller.
    pub active: bool,
    /// RFC 7662 §2.2 `scope`, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 7662 §2.2 `client_id`: the client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// RFC 7662 §2.2 `username`: human-readable, for display only (`sub` identifies the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// RFC 7662 §2.2 `token_type` (RFC 6749 §7.1): `Bearer` for access tokens; absent for refresh tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// RFC 7662 §2.2 `exp`, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// RFC 7662 §2.2 `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// RFC 7662 §2.2 `nbf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// RFC 7662 §2.2 `sub`: the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// RFC 7662 §2.2 `aud`: the resource the token is for (RFC 8707).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<OneOrMany>,
    /// RFC 7662 §2.2 `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// RFC 7662 §2.2 `jti` (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A string or an array of strings (RFC 7662 §2.2 `aud`, as RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl IntrospectionResponse {
    /// `{"active": false}`: unknown, expired, revoked, malformed, or not the caller's to see (RFC 7662 §2.2, §4).
    pub fn inactive() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_is_only_active_false_and_active_omits_absent_members() {
        assert_eq!(
            serde_json::to_string(&IntrospectionResponse::inactive()).unwrap(),
            r#"{"active":false}"#
        );
        let r = IntrospectionResponse {
            active: true,
            scope: Some("mcp:tools".into()),
            exp: Some(10),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"active": true, "scope": "mcp:tools", "exp": 10})
        );
        let back: IntrospectionResponse =
            serde_json::from_str(r#"{"active":true,"scope":"mcp:tools","exp":10,"x":1}"#).unwrap();
        assert_eq!(back, r);
    }
}
