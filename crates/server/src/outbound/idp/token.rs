//! The provider's token endpoint (RFC 6749 §3.2) and revocation endpoint (RFC 7009): the authorization code
//! exchange, refresh, RFC 8693 token exchange and revocation, each with the configured client authentication.

use super::error::{self, IdpError};
use super::transport::Call;
use super::{log_failure, parse_url, IdpClient, JSON};
use portcullis_authz::federation::tokens::{assertion_form, Form};
use portcullis_authz::federation::{
    authorization_code_form, client_authentication, on_behalf_of_form, refresh_form,
    token_exchange_form, ClientAuthentication, FederationError, PendingLogin, ProviderConfig,
    ProviderMetadata, UpstreamTokens,
};
use portcullis_authz::random::ThreadRandom;
use portcullis_authz::secret::Secret;
use reqwest::{header, Method};

impl IdpClient {
    /// The authorization code exchange (RFC 6749 §4.1.3 with the PKCE verifier of `pending`, RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        code: &Secret,
        pending: &PendingLogin,
        redirect_uri: &str,
    ) -> Result<UpstreamTokens, IdpError> {
        let form = authorization_code_form(code, redirect_uri, pending);
        self.token_request(cfg, md, form, "code exchange").await
    }

    /// A refresh (RFC 6749 §6). The answer is returned as the provider sent it: when it carries no new refresh
    /// token the old one stays valid, and the caller keeps it with [`UpstreamTokens::refreshed_from`].
    /// [`IdpError::is_invalid_grant`] means the provider no longer honours the refresh token (deprovisioning).
    pub async fn refresh(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        refresh_token: &Secret,
    ) -> Result<UpstreamTokens, IdpError> {
        self.token_request(cfg, md, refresh_form(refresh_token), "refresh")
            .await
    }

    /// RFC 8693 §2.1 token exchange: the user's access token at the provider (`subject_token`, type
    /// `access_token`) for one meant for `audience`.
    pub async fn token_exchange(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        subject_token: &Secret,
        audience: Option<&str>,
    ) -> Result<UpstreamTokens, IdpError> {
        let form = token_exchange_form(subject_token, audience, None, None);
        self.token_request(cfg, md, form, "token exchange").await
    }

    /// Entra ID's on-behalf-of exchange (its alternative to RFC 8693; RFC 7523 §2.1 assertion grant with
    /// `requested_token_use=on_behalf_of`): the user's access token at the provider for one carrying `scope`
    /// (the downstream API's, e.g. `api://jira-api/.default`).
    pub async fn on_behalf_of(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        assertion: &Secret,
        scope: &str,
    ) -> Result<UpstreamTokens, IdpError> {
        let form = on_behalf_of_form(assertion, scope);
        self.token_request(cfg, md, form, "on-behalf-of").await
    }

    async fn token_request(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        mut form: Form,
        op: &'static str,
    ) -> Result<UpstreamTokens, IdpError> {
        let sent: Vec<String> = form
            .iter()
            .filter(|(name, _)| SECRET_FIELDS.contains(name))
            .map(|(_, value)| value.clone())
            .chain(cfg.client_secret.iter().map(|s| s.expose().to_owned()))
            .collect();
        let result = async {
            let url = parse_url(&md.token_endpoint)?;
            let now = self.now();
            let headers = self.authenticate(cfg, md, &mut form)?;
            let reply = self
                .inner
                .transport
                .send(Call {
                    method: Method::POST,
                    url: &url,
                    accept: JSON,
                    headers,
                    form: Some(encode_form(&form)),
                    // RFC 6749 §5.2: errors are 400 (401 for invalid_client), with a JSON body.
                    error_statuses: &[400, 401],
                    json_on_success: true,
                })
                .await?;
            Ok(UpstreamTokens::from_response(
                reply.status.as_u16(),
                &reply.body,
                now,
            )?)
        }
        .await
        .map_err(|e| scrub(e, &sent));
        log_failure(cfg.name.as_str(), op, &result);
        result
    }

    /// Client authentication for a request to the provider's token or revocation endpoint: the headers to
    /// send, and fields added to `form` (RFC 6749 §2.3.1; RFC 7523 §2.2 with the token endpoint as `aud`).
    fn authenticate(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        form: &mut Form,
    ) -> Result<Vec<(header::HeaderName, String)>, IdpError> {
        let mut headers = Vec::new();
        match client_authentication(cfg, &md.token_endpoint, &ThreadRandom, self.now())? {
            ClientAuthentication::Basic(value) => {
                headers.push((header::AUTHORIZATION, value.expose().to_owned()));
            }
            ClientAuthentication::Post(fields) => form.extend(fields),
            ClientAuthentication::Assertion(claims) => {
                let signer = self.inner.signer.as_ref().ok_or_else(|| {
                    IdpError::from(FederationError::Config {
                        key: format!(
                            "identity_providers[{}].token_endpoint_auth_method",
                            cfg.name.as_str()
                        ),
                        reason: "private_key_jwt needs the server's signing key".into(),
                    })
                })?;
                form.extend(assertion_form(&cfg.client_id, signer(&claims)));
            }
        }
        Ok(headers)
    }

    /// Revokes a token at the provider (RFC 7009 §2.1; `hint` is `access_token` or `refresh_token`). `Ok(false)`
    /// when the provider publishes no `revocation_endpoint`. A 200 is success whatever the body (§2.2: also
    /// for a token that was already invalid); an error body is an [`IdpError::Upstream`] (§2.2.1).
    pub async fn revoke(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        token: &Secret,
        hint: Option<&str>,
    ) -> Result<bool, IdpError> {
        let Some(endpoint) = md.revocation_endpoint.as_deref() else {
            return Ok(false);
        };
        let result = async {
            let url = parse_url(endpoint)?;
            let mut form: Form = vec![("token", token.expose().to_owned())];
            form.extend(hint.map(|h| ("token_type_hint", h.to_owned())));
            let headers = self.authenticate(cfg, md, &mut form)?;
            let reply = self
                .inner
                .transport
                .send(Call {
                    method: Method::POST,
                    url: &url,
                    accept: JSON,
                    headers,
                    form: Some(encode_form(&form)),
                    error_statuses: &[400, 401],
                    json_on_success: false,
                })
                .await?;
            if reply.status.is_success() {
                Ok(true)
            } else {
                Err(oauth_error(reply.status.as_u16(), &reply.body))
            }
        }
        .await
        .map_err(|e| scrub(e, &[token.expose().to_owned()]));
        log_failure(cfg.name.as_str(), "revocation", &result);
        result
    }
}

/// An OAuth error body (RFC 6749 §5.2) of a response with HTTP `status`.
fn oauth_error(status: u16, body: &[u8]) -> IdpError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => IdpError::Upstream {
            error: error::sanitize(&e.error),
            description: e.error_description.as_deref().map(error::sanitize),
        },
        Err(_) => IdpError::BadResponse {
            status,
            reason: "an error without an OAuth error body".into(),
        },
    }
}

/// Token request fields whose values are secrets.
const SECRET_FIELDS: [&str; 5] = [
    "code",
    "code_verifier",
    "refresh_token",
    "subject_token",
    "assertion",
];

/// An OAuth error whose provider-supplied text quotes a secret that was sent (some providers echo the refused
/// token) loses that text: errors are shown on pages and logged. A secret counts as quoted when its first
/// 12 characters appear (the text may have been truncated).
fn scrub(e: IdpError, sent: &[String]) -> IdpError {
    let IdpError::Upstream { error, description } = e else {
        return e;
    };
    let quotes = |text: &str| {
        sent.iter().any(|s| {
            let head = s.get(..s.len().min(12)).unwrap_or(s);
            head.len() >= 4 && text.contains(head)
        })
    };
    IdpError::Upstream {
        error: if quotes(&error) {
            "[redacted]".into()
        } else {
            error
        },
        description: description.map(|d| if quotes(&d) { "[redacted]".into() } else { d }),
    }
}

/// `application/x-www-form-urlencoded` (the values may be secrets: the result is never logged).
fn encode_form(form: &Form) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        ser.append_pair(name, value);
    }
    ser.finish()
}
