//! [`Authorizations`]: the authorization endpoint as a service (RFC 6749 §4.1.1–4.1.2, OAuth 2.1 §4.1, RFC 7636,
//! RFC 8707, RFC 9207): checking an authorization request in the two stages of [`crate::authorize`] (the client
//! through [`Registrations`]), remembering consent, and issuing codes.

use crate::authorize::{
    check_response_type_and_mode, code_challenge, get, parse_query, redirect_with,
    AuthorizationRequest, AuthorizeError, MAX_QUERY_LEN, MAX_STATE_LEN,
};
use crate::error::AuthzError;
use crate::random;
use crate::registration::RegisteredClient;
use crate::registrations::Registrations;
use crate::shared::Core;
use crate::store::{CodeRecord, DisplayIdentity};
use portcullis_proto::redirect_uri::Kind;
use portcullis_proto::registration::AuthMethod;
use portcullis_proto::Scope;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// The authorization service. Built by [`crate::Authz::new`]; reached with [`crate::Authz::authorizations`].
#[derive(Debug)]
pub struct Authorizations {
    core: Arc<Core>,
    registrations: Arc<Registrations>,
}

impl Authorizations {
    /// The service over the shared dependencies, finding clients through `registrations`.
    pub fn new(core: Arc<Core>, registrations: Arc<Registrations>) -> Self {
        Self {
            core,
            registrations,
        }
    }

    /// Parses and checks an authorization request from its raw query string.
    pub async fn authorization_request(
        &self,
        query: &str,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let params = self.request_parameters(query).await?;
        let (client, redirect_uri, redirect_uri_sent) = self.client_and_redirect(&params).await?;
        let state = get(&params, "state").map(str::to_owned);
        let fail = |error: AuthzError| AuthorizeError::Redirect {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
            return Err(fail(AuthzError::InvalidRequest("state is too long".into())));
        }
        check_response_type_and_mode(&params).map_err(fail)?;
        let code_challenge = code_challenge(&params).map_err(fail)?;
        let requested = Scope::parse(get(&params, "scope").unwrap_or(""))
            .map_err(|e| fail(AuthzError::InvalidScope(e.to_string())))?;
        let resource = self.requested_resource(&params).map_err(fail)?;
        // Limited to what the selected resource offers (RFC 8707 §2; gateway routes).
        let (scope, ignored_scope) = self.core.config.grantable_scope(&resource, &requested);
        Ok(AuthorizationRequest {
            client,
            redirect_uri: redirect_uri.clone(),
            redirect_uri_sent,
            state,
            scope,
            ignored_scope,
            code_challenge,
            resource,
        })
    }

    /// The query's parameters, each at most once (RFC 6749 §3.1). A repeated `client_id` or `redirect_uri` is a
    /// page error; another repeated parameter is redirected to the client's (checked) redirect URI.
    async fn request_parameters(
        &self,
        query: &str,
    ) -> Result<Vec<(String, String)>, AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(AuthzError::InvalidRequest(m.into()));
        if query.len() > MAX_QUERY_LEN {
            return Err(page("the authorization request is too long"));
        }
        match parse_query(query) {
            Ok(p) => Ok(p),
            Err(name) if name == "client_id" || name == "redirect_uri" => {
                Err(page(&format!("the {name} parameter is repeated")))
            }
            Err(name) => {
                // Still find the client to decide between page and redirect.
                let first: Vec<(String, String)> = {
                    let mut seen = HashSet::new();
                    url::form_urlencoded::parse(query.as_bytes())
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                };
                let (client, redirect_uri, _) = self.client_and_redirect(&first).await?;
                Err(AuthorizeError::Redirect {
                    client_id: client.client_id,
                    redirect_uri,
                    state: None,
                    error: AuthzError::InvalidRequest(format!("the {name} parameter is repeated")),
                })
            }
        }
    }

    /// The `resource` (RFC 8707 §2): one this server issues tokens for, else the default one.
    fn requested_resource(&self, params: &[(String, String)]) -> Result<String, AuthzError> {
        match get(params, "resource") {
            None => Ok(self.core.config.default_resource().to_owned()),
            Some(r) if self.core.config.resources.iter().any(|k| k == r) => Ok(r.to_owned()),
            Some(_) => Err(AuthzError::InvalidTarget("unknown resource".into())),
        }
    }

    async fn client_and_redirect(
        &self,
        params: &[(String, String)],
    ) -> Result<(RegisteredClient, String, bool), AuthorizeError> {
        let client_id = get(params, "client_id").ok_or_else(|| {
            AuthorizeError::Page(AuthzError::InvalidRequest("client_id is missing".into()))
        })?;
        let client = self.registrations.client(client_id).await?.ok_or_else(|| {
            AuthorizeError::Page(AuthzError::InvalidClient("unknown client_id".into()))
        })?;
        let (redirect_uri, sent) = match get(params, "redirect_uri") {
            Some(r) => {
                if client.redirect_uri_matching(r).is_none() {
                    return Err(AuthorizeError::Page(AuthzError::InvalidRequest(
                        "redirect_uri does not match any registered redirect URI of this client"
                            .into(),
                    )));
                }
                (r.to_owned(), true)
            }
            None if client.redirect_uris.len() == 1 => {
                (client.redirect_uris[0].as_str().to_owned(), false)
            }
            None => {
                return Err(AuthorizeError::Page(AuthzError::InvalidRequest(
                    "redirect_uri is required: the client registered several".into(),
                )))
            }
        };
        Ok((client, redirect_uri, sent))
    }

    /// Whether the user must be asked: the client's identity cannot be proven ([`identity_assured`]), or no
    /// remembered consent for this client at this resource (RFC 8707 §2) covers the request's scope.
    pub async fn needs_consent(
        &self,
        user_id: &str,
        req: &AuthorizationRequest,
    ) -> Result<bool, AuthzError> {
        if !identity_assured(req) {
            return Ok(true);
        }
        let Some(stored) = self
            .core
            .store
            .consent(user_id, &req.client.client_id, &req.resource)
            .await?
        else {
            return Ok(true);
        };
        let stored = Scope::parse(&stored).unwrap_or_default();
        Ok(!stored.includes(&req.scope))
    }

    /// Whether an error of an authorization request may be sent to the client's redirect URI: only when the
    /// signed-in user has approved this client before (for any resource). Otherwise anyone could register a
    /// client with their own redirect URI and use `/authorize` as an open redirector for signed-in users
    /// (RFC 9700 §4.11.2; RFC 6749 §4.1.2.1 leaves the choice of an error page to the server).
    pub async fn may_redirect_error(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<bool, AuthzError> {
        Ok(self.core.store.has_consented(user_id, client_id).await?)
    }

    /// The user approved: remembers the consent, issues a code (RFC 6749 §4.1.2) and returns the redirect
    /// location with `code`, `state` and `iss` (RFC 9207 §2). `identity` (the session's) goes with the code to
    /// its grant.
    pub async fn approve(
        &self,
        user_id: &str,
        identity: &DisplayIdentity,
        req: &AuthorizationRequest,
    ) -> Result<String, AuthzError> {
        let now = self.core.now();
        let (store, client_id) = (&self.core.store, &req.client.client_id);
        let previous = store.consent(user_id, client_id, &req.resource).await?;
        let remembered = Scope::parse(previous.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .union(&req.scope);
        store
            .save_consent(
                user_id,
                client_id,
                &req.resource,
                &remembered.to_string(),
                now,
            )
            .await?;
        self.issue_code(user_id, identity, req).await
    }

    /// Issues a code for an already-approved request and returns the redirect location. The code carries
    /// `identity` (the session's) to its grant.
    pub async fn issue_code(
        &self,
        user_id: &str,
        identity: &DisplayIdentity,
        req: &AuthorizationRequest,
    ) -> Result<String, AuthzError> {
        let now = self.core.now();
        let code = random::token(self.core.rng());
        let record = CodeRecord {
            code_hash: code.hash(),
            client_id: req.client.client_id.clone(),
            user_id: user_id.to_owned(),
            redirect_uri: if req.redirect_uri_sent {
                req.redirect_uri.clone()
            } else {
                String::new()
            },
            code_challenge: req.code_challenge.as_str().to_owned(),
            scope: req.scope.to_string(),
            resource: req.resource.clone(),
            created_at: now,
            expires_at: now + self.core.config.code_ttl,
            used_at: None,
            grant_id: None,
            identity: identity.clone(),
        };
        self.core.store.insert_code(&record).await?;
        let mut p = vec![("code", code.expose())];
        if let Some(s) = &req.state {
            p.push(("state", s));
        }
        p.push(("iss", &self.core.config.issuer));
        Ok(redirect_with(&req.redirect_uri, &p))
    }

    /// `scope_from_groups`: `req` without the `gated` scopes the user is not `entitled` to (they move to
    /// `ignored_scope`, shown as not granted). RFC 6749 §3.3 lets the server grant less than requested.
    pub fn restrict_gated_scope(
        &self,
        mut req: AuthorizationRequest,
        gated: &BTreeSet<String>,
        entitled: &BTreeSet<String>,
    ) -> AuthorizationRequest {
        let refused: Vec<&str> = req
            .scope
            .iter()
            .filter(|t| gated.contains(*t) && !entitled.contains(*t))
            .collect();
        if let Ok(refused) = Scope::from_tokens(refused) {
            req.ignored_scope = req.ignored_scope.union(&refused);
            req.scope = req.scope.difference(&refused);
        }
        req
    }

    /// The user denied: the redirect location with `error=access_denied` (RFC 6749 §4.1.2.1).
    pub fn deny(&self, req: &AuthorizationRequest) -> String {
        AuthorizeError::Redirect {
            client_id: req.client.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: AuthzError::AccessDenied("the user denied the request".into()),
        }
        .location(&self.core.config.issuer)
        .unwrap_or_default()
    }
}

/// Whether remembered consent may stand in for asking the user (RFC 8252 §8.6): only when the client's identity
/// is assured, that is it authenticates at the token endpoint (a confidential client) or the code goes to an
/// `https` redirect URI on a real host, which only that origin's holder receives. A public client redirecting to
/// a loopback address or a private-use scheme cannot be told apart from another local program reusing its
/// `client_id` with its own port or scheme handler and PKCE pair, so it is asked every time.
pub fn identity_assured(req: &AuthorizationRequest) -> bool {
    if req.client.auth_method != AuthMethod::None {
        return true;
    }
    req.client
        .redirect_uri_matching(&req.redirect_uri)
        .is_some_and(|r| r.kind() == Kind::Https && !r.is_loopback_host())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Authz;
    use crate::testing::{authz, register_public, CHALLENGE};

    #[tokio::test]
    async fn gated_scopes_need_an_entitlement() {
        let a = authz().await;
        let c = register_public(&a).await;
        let r = a
            .authorizations()
            .authorization_request(&q(&c, "&scope=mcp:tools%20mcp:admin"))
            .await
            .unwrap();
        let gated: BTreeSet<String> = ["mcp:admin".to_string()].into();
        let none = a
            .authorizations()
            .restrict_gated_scope(r.clone(), &gated, &BTreeSet::new());
        assert_eq!(none.scope.to_string(), "mcp:tools");
        assert!(none.ignored_scope.contains("mcp:admin"));
        let all = a.authorizations().restrict_gated_scope(r, &gated, &gated);
        assert_eq!(all.scope.to_string(), "mcp:admin mcp:tools");
    }

    fn q(client: &str, extra: &str) -> String {
        format!(
            "response_type=code&client_id={client}&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback\
             &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
        )
    }

    #[tokio::test]
    async fn seed_request_is_accepted_with_unknown_scopes_ignored() {
        let a = authz().await;
        let c = register_public(&a).await;
        let r = a
            .authorizations()
            .authorization_request(&q(&c, "&scope=read:jira-work%20write:jira-work"))
            .await
            .unwrap();
        assert_eq!(r.scope.to_string(), "mcp:tools");
        assert_eq!(
            r.ignored_scope.to_string(),
            "read:jira-work write:jira-work"
        );
        assert_eq!(r.resource, "http://127.0.0.1:8080/mcp");
        let loc = a
            .authorizations()
            .approve("u1", &crate::testing::carol(), &r)
            .await
            .unwrap();
        assert!(loc.starts_with("http://localhost:8080/callback?code="));
        assert!(loc.ends_with("&iss=http%3A%2F%2F127.0.0.1%3A8080"));
    }

    #[tokio::test]
    async fn client_and_redirect_errors_never_redirect() {
        let a = authz().await;
        let c = register_public(&a).await;
        let e = a
            .authorizations()
            .authorization_request(&q("nope", ""))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            AuthorizeError::Page(AuthzError::InvalidClient(_))
        ));
        let bad = q(&c, "").replace("callback", "callback2");
        assert!(matches!(
            a.authorizations()
                .authorization_request(&bad)
                .await
                .unwrap_err(),
            AuthorizeError::Page(_)
        ));
        let dup = format!("{}&redirect_uri=https%3A%2F%2Fevil.com%2F", q(&c, ""));
        assert!(matches!(
            a.authorizations()
                .authorization_request(&dup)
                .await
                .unwrap_err(),
            AuthorizeError::Page(_)
        ));
    }

    #[tokio::test]
    async fn other_errors_redirect_with_state_and_iss() {
        let a = authz().await;
        let c = register_public(&a).await;
        let no_pkce = q(&c, "&state=xyz").replace(&format!("&code_challenge={CHALLENGE}"), "");
        let e = a
            .authorizations()
            .authorization_request(&no_pkce)
            .await
            .unwrap_err();
        assert_eq!(
            e.location("http://127.0.0.1:8080").unwrap(),
            "http://localhost:8080/callback?error=invalid_request&error_description=code_challenge+is+required+%28PKCE%2C+S256%29&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A8080"
        );
        let plain = q(&c, "").replace("S256", "plain");
        assert!(matches!(
            a.authorizations()
                .authorization_request(&plain)
                .await
                .unwrap_err(),
            AuthorizeError::Redirect {
                error: AuthzError::InvalidRequest(_),
                ..
            }
        ));
        let token = q(&c, "").replace("response_type=code", "response_type=token");
        assert!(matches!(
            a.authorizations()
                .authorization_request(&token)
                .await
                .unwrap_err(),
            AuthorizeError::Redirect {
                error: AuthzError::UnsupportedResponseType(_),
                ..
            }
        ));
        let target = q(&c, "&resource=https%3A%2F%2Fother.example%2Fmcp");
        assert!(matches!(
            a.authorizations()
                .authorization_request(&target)
                .await
                .unwrap_err(),
            AuthorizeError::Redirect {
                error: AuthzError::InvalidTarget(_),
                ..
            }
        ));
        let dup = q(&c, "&scope=a&scope=b");
        assert!(matches!(
            a.authorizations()
                .authorization_request(&dup)
                .await
                .unwrap_err(),
            AuthorizeError::Redirect {
                error: AuthzError::InvalidRequest(_),
                ..
            }
        ));
    }

    async fn register(a: &Authz, auth: &str, redirect: &str) -> String {
        let meta = serde_json::json!({"client_name": "Test", "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": auth});
        let meta = serde_json::from_value(meta).unwrap();
        a.registrations().register(meta).await.unwrap().client_id
    }

    async fn asks(a: &Authz, user: &str, query: &str) -> bool {
        let r = a.authorizations().authorization_request(query).await;
        a.authorizations()
            .needs_consent(user, &r.unwrap())
            .await
            .unwrap()
    }

    async fn approve(a: &Authz, query: &str) {
        let r = a.authorizations().authorization_request(query).await;
        let r = r.unwrap();
        let carol = crate::testing::carol();
        a.authorizations().approve("u1", &carol, &r).await.unwrap();
    }

    #[tokio::test]
    async fn loopback_port_may_differ_and_a_public_loopback_client_is_asked_every_time() {
        let a = authz().await;
        let c = register_public(&a).await;
        let other_port = q(&c, "").replace("8080", "9999");
        let r = a
            .authorizations()
            .authorization_request(&other_port)
            .await
            .unwrap();
        assert_eq!(r.redirect_uri, "http://localhost:9999/callback");
        assert!(asks(&a, "u1", &other_port).await);
        approve(&a, &other_port).await;
        // RFC 8252 §8.6: any local program can reuse this client_id with its own port and PKCE pair.
        assert!(asks(&a, "u1", &other_port).await, "asked again");
        assert!(asks(&a, "u1", &q(&c, "")).await);
        let private_use = register(&a, "none", "com.example.app:/cb").await;
        let pq = format!(
            "response_type=code&client_id={private_use}&code_challenge={CHALLENGE}&code_challenge_method=S256"
        );
        approve(&a, &pq).await;
        assert!(
            asks(&a, "u1", &pq).await,
            "a private-use scheme proves nothing either"
        );
    }

    #[tokio::test]
    async fn consent_is_remembered_for_a_proven_client_per_user_resource_and_scope() {
        use crate::config::AuthzConfig;
        use crate::testing::{MemStore, SeqRandom};
        let mut config = AuthzConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp");
        config
            .resources
            .push("http://127.0.0.1:8080/github/mcp".into());
        let a = Authz::new(
            std::sync::Arc::new(MemStore::default()),
            std::sync::Arc::new(crate::clock::FixedClock::new(1_700_000_000)),
            std::sync::Arc::new(SeqRandom::default()),
            config,
        )
        .await
        .unwrap();
        let confidential =
            register(&a, "client_secret_basic", "http://localhost:8080/callback").await;
        let web = register(&a, "none", "https://app.example/cb").await;
        for (c, redirect) in [
            (confidential, "http%3A%2F%2Flocalhost%3A8080%2Fcallback"),
            (web, "https%3A%2F%2Fapp.example%2Fcb"),
        ] {
            let at = |extra: &str| {
                format!(
                    "response_type=code&client_id={c}&redirect_uri={redirect}\
                     &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
                )
            };
            assert!(asks(&a, "u1", &at("")).await);
            approve(&a, &at("")).await;
            assert!(!asks(&a, "u1", &at("")).await, "remembered");
            assert!(asks(&a, "u2", &at("")).await, "consent is per user");
            let wider = at("&scope=mcp:tools%20mcp:admin");
            assert!(asks(&a, "u1", &wider).await, "wider scope asks again");
            // RFC 8707: approving one resource approves nothing at another.
            let github = at("&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fgithub%2Fmcp");
            assert!(asks(&a, "u1", &github).await, "another resource asks again");
            approve(&a, &github).await;
            assert!(!asks(&a, "u1", &github).await);
        }
    }

    #[tokio::test]
    async fn errors_are_redirected_only_to_clients_the_user_approved() {
        let a = authz().await;
        let c = register_public(&a).await;
        let auth = a.authorizations();
        assert!(!auth.may_redirect_error("u1", &c).await.unwrap());
        let bad = q(&c, "").replace("response_type=code", "response_type=token");
        let Err(AuthorizeError::Redirect { client_id, .. }) =
            auth.authorization_request(&bad).await
        else {
            panic!("a bad response_type is a redirect error");
        };
        assert_eq!(client_id, c);
        approve(&a, &q(&c, "")).await;
        assert!(auth.may_redirect_error("u1", &c).await.unwrap());
        assert!(
            !auth.may_redirect_error("u2", &c).await.unwrap(),
            "per user"
        );
    }

    #[tokio::test]
    async fn the_resource_limits_the_granted_scope() {
        use crate::config::{AuthzConfig, ResourceScopes};
        use crate::testing::{MemStore, SeqRandom};
        let mut config = AuthzConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp");
        let github = "http://127.0.0.1:8080/github/mcp";
        config.resources.push(github.into());
        config.resource_scope_limits.insert(
            github.into(),
            ResourceScopes {
                offered: Scope::parse("mcp:admin").unwrap(),
                default: Scope::parse("mcp:admin").unwrap(),
            },
        );
        let a = Authz::new(
            std::sync::Arc::new(MemStore::default()),
            std::sync::Arc::new(crate::clock::FixedClock::new(1_700_000_000)),
            std::sync::Arc::new(SeqRandom::default()),
            config,
        )
        .await
        .unwrap();
        let c = register_public(&a).await;
        let at = |extra: &str| q(&c, extra);
        let r = a
            .authorizations().authorization_request(&at(
                "&scope=mcp:tools%20mcp:admin&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fgithub%2Fmcp",
            ))
            .await
            .unwrap();
        assert_eq!(r.resource, github);
        assert_eq!(r.scope.to_string(), "mcp:admin");
        assert_eq!(r.ignored_scope.to_string(), "mcp:tools");
        let r = a
            .authorizations()
            .authorization_request(&at("&scope=mcp:tools%20mcp:admin"))
            .await
            .unwrap();
        assert_eq!(r.resource, "http://127.0.0.1:8080/mcp");
        assert_eq!(r.scope.to_string(), "mcp:admin mcp:tools");
    }
}
