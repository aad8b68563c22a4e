//! The authorization request (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1) with PKCE S256 (RFC 7636 §4.3), a random
//! `state`, and the RFC 8707 `resource`; and the checks of the authorization response (RFC 6749 §4.1.2): `state`
//! first, then the RFC 9207 `iss`, before any code is used.

use crate::secret::AuthorizationCode;
use crate::{Error, Result};
use portcullis_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use portcullis_proto::{b64, CodeChallenge, CodeVerifier, Scope};
use rand::RngCore;
use url::Url;

/// The `offline_access` scope (OpenID Connect Core §11), which asks for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The scope to request (MCP authorization, "Scope Selection Strategy"): the user's explicit choice, else the
/// challenge's `scope`, else the resource metadata's `scopes_supported`, else none (the parameter is omitted).
/// `previous` (scopes already granted) is added for a step-up. `offline_access` is added only when the
/// authorization server advertises it in `scopes_supported`.
pub fn choose_scope(
    explicit: Option<&Scope>,
    challenge: Option<&Scope>,
    resource_metadata: Option<&ProtectedResourceMetadata>,
    server: &AuthorizationServerMetadata,
    previous: Option<&Scope>,
) -> Option<Scope> {
    let from_prm = resource_metadata
        .and_then(|p| p.scopes_supported.as_ref())
        .and_then(|s| Scope::from_tokens(s).ok())
        .filter(|s| !s.is_empty());
    let mut scope = explicit
        .cloned()
        .or_else(|| challenge.cloned())
        .or(from_prm)
        .unwrap_or_default();
    if let Some(p) = previous {
        scope = scope.union(p);
    }
    let advertised = server
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == OFFLINE_ACCESS));
    if advertised && !scope.is_empty() {
        if let Ok(o) = Scope::parse(OFFLINE_ACCESS) {
            scope = scope.union(&o);
        }
    } else if !advertised && scope.contains(OFFLINE_ACCESS) {
        scope = scope.difference(&Scope::parse(OFFLINE_ACCESS).unwrap_or_default());
    }
    (!scope.is_empty()).then_some(scope)
}

/// A prepared authorization request and what is needed to check its response.
#[derive(Debug)]
pub struct AuthorizationRequest {
    /// The URL to open in the browser.
    pub url: Url,
    /// The `redirect_uri` sent (the token request repeats it).
    pub redirect_uri: String,
    /// The PKCE verifier (RFC 7636 §4.1) for the token request.
    pub verifier: CodeVerifier,
    state: String,
    expected_issuer: String,
    iss_required: bool,
}

/// What the authorization server put in the redirect (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// `error`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl AuthorizationResponse {
    /// Reads the query of the redirect. A repeated parameter makes the response unusable, so it reads as absent.
    pub fn from_query(query: &str) -> Self {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let one = |name: &str| {
            let mut it = pairs.iter().filter(|(k, _)| k == name);
            match (it.next(), it.next()) {
                (Some((_, v)), None) => Some(v.clone()),
                _ => None,
            }
        };
        Self {
            code: one("code"),
            state: one("state"),
            iss: one("iss"),
            error: one("error"),
            error_description: one("error_description"),
        }
    }
}

/// The inputs of an authorization request.
#[derive(Debug)]
pub struct RequestParams<'a> {
    /// The validated `authorization_endpoint`.
    pub endpoint: &'a Url,
    /// The issuer whose `iss` must come back.
    pub issuer: &'a str,
    /// The AS metadata's `authorization_response_iss_parameter_supported`.
    pub iss_required: bool,
    /// `client_id`.
    pub client_id: &'a str,
    /// `redirect_uri`.
    pub redirect_uri: &'a str,
    /// `scope`, omitted when `None`.
    pub scope: Option<&'a Scope>,
    /// RFC 8707 `resource`.
    pub resource: Option<&'a str>,
}

impl AuthorizationRequest {
    /// Builds the request. `rng` supplies the PKCE verifier and the `state` (injectable for tests).
    pub fn new(p: &RequestParams<'_>, rng: &mut impl RngCore) -> Self {
        let mut v = [0u8; 32];
        rng.fill_bytes(&mut v);
        let verifier = CodeVerifier::from_random(v);
        let mut s = [0u8; 24];
        rng.fill_bytes(&mut s);
        let state = b64::encode(s);
        let mut url = p.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", p.client_id);
            q.append_pair("redirect_uri", p.redirect_uri);
            q.append_pair("code_challenge", CodeChallenge::s256(&verifier).as_str());
            q.append_pair("code_challenge_method", "S256");
            q.append_pair("state", &state);
            if let Some(scope) = p.scope {
                q.append_pair("scope", &scope.to_string());
            }
            if let Some(r) = p.resource {
                q.append_pair("resource", r);
            }
        }
        Self {
            url,
            redirect_uri: p.redirect_uri.to_owned(),
            verifier,
            state,
            expected_issuer: p.issuer.to_owned(),
            iss_required: p.iss_required,
        }
    }

    /// Checks a response: `state` must be ours (RFC 6749 §10.12), `iss` must be the issuer when present and is
    /// required when the server advertises it (RFC 9207 §2.4); only then are errors and the code looked at.
    pub fn verify(&self, resp: &AuthorizationResponse) -> Result<AuthorizationCode> {
        if resp.state.as_deref() != Some(self.state.as_str()) {
            return Err(Error::StateMismatch);
        }
        match resp.iss.as_deref() {
            Some(iss) if iss != self.expected_issuer => {
                return Err(Error::IssuerResponseMismatch {
                    expected: self.expected_issuer.clone(),
                    found: Some(iss.to_owned()),
                })
            }
            None if self.iss_required => {
                return Err(Error::IssuerResponseMismatch {
                    expected: self.expected_issuer.clone(),
                    found: None,
                })
            }
            _ => {}
        }
        if let Some(error) = &resp.error {
            return Err(Error::AuthorizationDenied {
                error: error.clone(),
                description: resp.error_description.clone(),
            });
        }
        resp.code
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(AuthorizationCode::new)
            .ok_or(Error::MissingCode)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn request(iss_required: bool) -> AuthorizationRequest {
        let endpoint = Url::parse("https://as.example/authorize").unwrap();
        let scope = Scope::parse("mcp:read").unwrap();
        let p = RequestParams {
            endpoint: &endpoint,
            issuer: "https://as.example",
            iss_required,
            client_id: "c1",
            redirect_uri: "http://127.0.0.1:5000/callback",
            scope: Some(&scope),
            resource: Some("https://mcp.example/mcp"),
        };
        AuthorizationRequest::new(&p, &mut StdRng::seed_from_u64(7))
    }

    fn response(req: &AuthorizationRequest, iss: Option<&str>) -> AuthorizationResponse {
        AuthorizationResponse {
            code: Some("the-code".into()),
            state: Some(req.state.clone()),
            iss: iss.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn url_carries_pkce_state_scope_and_resource() {
        let r = request(false);
        let q: std::collections::HashMap<String, String> =
            r.url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            CodeChallenge::s256(&r.verifier).as_str()
        );
        assert_eq!(q["state"], r.state);
        assert_eq!(q["scope"], "mcp:read");
        assert_eq!(q["resource"], "https://mcp.example/mcp");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:5000/callback");
        assert_ne!(
            request(false).state,
            AuthorizationRequest::new(
                &RequestParams {
                    endpoint: &r.url,
                    issuer: "x",
                    iss_required: false,
                    client_id: "c",
                    redirect_uri: "r",
                    scope: None,
                    resource: None
                },
                &mut StdRng::seed_from_u64(8)
            )
            .state
        );
    }

    #[test]
    fn accepts_matching_response() {
        let r = request(true);
        assert_eq!(
            r.verify(&response(&r, Some("https://as.example")))
                .unwrap()
                .expose(),
            "the-code"
        );
        let r = request(false);
        assert_eq!(r.verify(&response(&r, None)).unwrap().expose(), "the-code");
    }

    #[test]
    fn refuses_wrong_state() {
        let r = request(false);
        let mut resp = response(&r, None);
        resp.state = Some("forged".into());
        assert_eq!(r.verify(&resp), Err(Error::StateMismatch));
        resp.state = None;
        assert_eq!(r.verify(&resp), Err(Error::StateMismatch));
        // An error response with a wrong state is still a state mismatch (it could be forged).
        let resp = AuthorizationResponse {
            error: Some("access_denied".into()),
            state: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(r.verify(&resp), Err(Error::StateMismatch));
    }

    #[test]
    fn refuses_wrong_or_missing_iss() {
        let r = request(false);
        assert!(matches!(
            r.verify(&response(&r, Some("https://evil.example"))),
            Err(Error::IssuerResponseMismatch { .. })
        ));
        let r = request(true);
        assert!(matches!(
            r.verify(&response(&r, None)),
            Err(Error::IssuerResponseMismatch { found: None, .. })
        ));
    }

    #[test]
    fn reports_denial_and_repeated_params() {
        let r = request(false);
        let resp = AuthorizationResponse {
            error: Some("access_denied".into()),
            state: Some(r.state.clone()),
            ..Default::default()
        };
        assert!(matches!(
            r.verify(&resp),
            Err(Error::AuthorizationDenied { .. })
        ));
        let q = format!("code=a&code=b&state={}", r.state);
        assert_eq!(
            r.verify(&AuthorizationResponse::from_query(&q)),
            Err(Error::MissingCode)
        );
    }

    #[test]
    fn scope_selection() {
        let mut asm = AuthorizationServerMetadata::default();
        let prm = ProtectedResourceMetadata {
            scopes_supported: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        let ch = Scope::parse("c").unwrap();
        let ex = Scope::parse("x").unwrap();
        assert_eq!(
            choose_scope(Some(&ex), Some(&ch), Some(&prm), &asm, None)
                .unwrap()
                .to_string(),
            "x"
        );
        assert_eq!(
            choose_scope(None, Some(&ch), Some(&prm), &asm, None)
                .unwrap()
                .to_string(),
            "c"
        );
        assert_eq!(
            choose_scope(None, None, Some(&prm), &asm, None)
                .unwrap()
                .to_string(),
            "a b"
        );
        assert_eq!(choose_scope(None, None, None, &asm, None), None);
        assert_eq!(
            choose_scope(
                None,
                Some(&ch),
                None,
                &asm,
                Some(&Scope::parse("a").unwrap())
            )
            .unwrap()
            .to_string(),
            "a c"
        );
        asm.scopes_supported = Some(vec!["c".into(), OFFLINE_ACCESS.into()]);
        assert_eq!(
            choose_scope(None, Some(&ch), None, &asm, None)
                .unwrap()
                .to_string(),
            "c offline_access"
        );
        asm.scopes_supported = Some(vec!["c".into()]);
        let with_offline = Scope::parse("c offline_access").unwrap();
        assert_eq!(
            choose_scope(Some(&with_offline), None, None, &asm, None)
                .unwrap()
                .to_string(),
            "c"
        );
    }
}
