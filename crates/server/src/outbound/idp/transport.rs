//! The HTTP half of every identity-provider call, over bytes: endpoint check, timeouts, no redirects, JSON
//! content only, a capped body read chunk by chunk, and errors reduced to what may be shown and logged.
//!
//! Identity providers are chosen by the administrator, so unlike [`crate::outbound::cimd`] there is no address
//! vetting: a provider on a private network or on loopback (the tests) is fine. Still:
//! - `https` is required unless the host is loopback (`127.0.0.0/8`, `::1`, `localhost`);
//! - redirects are never followed (a 3xx is a [`IdpError::BadResponse`]): OpenID Connect Discovery 1.0 §4 and
//!   RFC 8414 §3 want the document at its own URL, and following a redirect with a client secret or an
//!   authorization code in the body would hand them to whoever the redirect names;
//! - [`IdpSettings::connect_timeout`] and [`IdpSettings::request_timeout`] bound every call;
//! - at most [`IdpSettings::max_body_bytes`] are read, refused as soon as the declared or read length passes it;
//! - loopback hosts are never sent through a proxy; other hosts use the environment's proxy settings.

use super::error::{sanitize, IdpError};
use super::settings::IdpSettings;
use reqwest::{header, Method, StatusCode};
use std::net::IpAddr;
use url::Url;

/// What a successful call returned.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status (always a 2xx or 4xx: others are errors).
    pub(crate) status: StatusCode,
    /// The body (JSON, at most the cap).
    pub(crate) body: Vec<u8>,
}

/// One request to send.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a Url,
    /// `Accept`.
    pub(crate) accept: &'static str,
    /// Extra headers (`Authorization`, …). Values are never logged.
    pub(crate) headers: Vec<(header::HeaderName, String)>,
    /// An `application/x-www-form-urlencoded` body, already encoded.
    pub(crate) form: Option<String>,
    /// Statuses other than 200 whose JSON body is still returned (token endpoint errors: 400, 401).
    pub(crate) error_statuses: &'static [u16],
    /// Whether a 200 must be JSON too (not for RFC 7009 revocation, whose success body is ignored).
    pub(crate) json_on_success: bool,
}

/// The two HTTP clients (one direct for loopback, one honouring proxy settings), sharing the limits.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    direct: reqwest::Client,
    proxied: reqwest::Client,
    settings: IdpSettings,
}

impl Transport {
    /// Builds the clients (fails only when the TLS backend cannot be initialised).
    pub(crate) fn new(settings: IdpSettings) -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(settings.connect_timeout)
                .timeout(settings.request_timeout)
                .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Self {
            direct: builder().no_proxy().build()?,
            proxied: builder().build()?,
            settings,
        })
    }

    /// The limits in force.
    pub(crate) fn settings(&self) -> &IdpSettings {
        &self.settings
    }

    /// Sends `call` and reads its answer: a 200 (or one of `call.error_statuses`) with a JSON body, or an error.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Reply, IdpError> {
        let loopback = check_endpoint(call.url)?;
        let host = host_of(call.url);
        let timeout = self.settings.request_timeout;
        // reqwest's own timeout covers the body too; this outer one is the guarantee that nothing waits longer.
        match tokio::time::timeout(timeout, self.send_inner(call, loopback, &host)).await {
            Ok(result) => result,
            Err(_) => Err(IdpError::Timeout { host }),
        }
    }

    async fn send_inner(
        &self,
        call: Call<'_>,
        loopback: bool,
        host: &str,
    ) -> Result<Reply, IdpError> {
        let client = if loopback {
            &self.direct
        } else {
            &self.proxied
        };
        let mut req = client
            .request(call.method, call.url.clone())
            .header(header::ACCEPT, call.accept);
        for (name, value) in call.headers {
            req = req.header(name, value);
        }
        if let Some(form) = call.form {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
        }
        let resp = req.send().await.map_err(|e| transport_error(&e, host))?;
        let status = resp.status();
        let www_authenticate = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(sanitize);
        check_status(status, call.error_statuses, www_authenticate.as_deref())?;
        if call.json_on_success || status != StatusCode::OK {
            check_json(&resp)?;
        }
        let body = read_capped(resp, self.settings.max_body_bytes, host).await?;
        Ok(Reply { status, body })
    }
}

/// Whether `url` may be called, and whether its host is loopback: `https`, or `http` to a loopback host.
pub(crate) fn check_endpoint(url: &Url) -> Result<bool, IdpError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => {
            return Err(IdpError::Insecure {
                endpoint: url.scheme().to_owned(),
                reason: "the URL has no host".into(),
            })
        }
    };
    match url.scheme() {
        "https" => Ok(loopback),
        "http" if loopback => Ok(true),
        _ => Err(IdpError::Insecure {
            endpoint: format!("{}://{}", url.scheme(), host_of(url)),
            reason: "identity provider endpoints must use https (http only on loopback)".into(),
        }),
    }
}

/// `host[:port]` of `url`, for messages (never the path or query).
pub(crate) fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// 200 is success; `accepted` other statuses carry a JSON body the caller reads (OAuth errors). A redirect is
/// refused (never followed); a 401 without a body but with `WWW-Authenticate` becomes that challenge's error.
fn check_status(
    status: StatusCode,
    accepted: &[u16],
    www_authenticate: Option<&str>,
) -> Result<(), IdpError> {
    if status == StatusCode::OK || accepted.contains(&status.as_u16()) {
        return Ok(());
    }
    if status.is_redirection() {
        return Err(IdpError::BadResponse {
            status: status.as_u16(),
            reason: "a redirect (redirects are not followed)".into(),
        });
    }
    if status == StatusCode::UNAUTHORIZED {
        if let Some(err) = www_authenticate.and_then(challenge_error) {
            return Err(err);
        }
    }
    Err(IdpError::BadResponse {
        status: status.as_u16(),
        reason: "unexpected status".into(),
    })
}

/// The `error` and `error_description` of a Bearer challenge (RFC 6750 §3), as an [`IdpError::Upstream`].
pub(crate) fn challenge_error(challenge: &str) -> Option<IdpError> {
    let param = |name: &str| {
        let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
        let len = challenge[start..].find('"')?;
        Some(sanitize(&challenge[start..start + len]))
    };
    Some(IdpError::Upstream {
        error: param("error")?,
        description: param("error_description"),
    })
}

fn check_json(resp: &reqwest::Response) -> Result<(), IdpError> {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_content_type);
    if json {
        Ok(())
    } else {
        Err(IdpError::BadResponse {
            status: resp.status().as_u16(),
            reason: "not served as JSON".into(),
        })
    }
}

/// `application/json` or a `+json` type (RFC 6839 §3.1, e.g. `application/jwk-set+json`), parameters ignored.
fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body, read chunk by chunk and refused as soon as it passes `cap` (or declares a larger length).
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
    host: &str,
) -> Result<Vec<u8>, IdpError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(IdpError::TooLarge { limit: cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e, host))? {
        if body.len() + chunk.len() > cap {
            return Err(IdpError::TooLarge { limit: cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport failure, reduced to its kind and the host (reqwest's message can name the whole URL).
fn transport_error(e: &reqwest::Error, host: &str) -> IdpError {
    let host = host.to_owned();
    if e.is_timeout() {
        IdpError::Timeout { host }
    } else {
        IdpError::Unreachable { host }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(check_endpoint(&url("https://idp.example/x")), Ok(false));
        assert_eq!(check_endpoint(&url("https://127.0.0.1/x")), Ok(true));
        assert_eq!(check_endpoint(&url("http://127.0.0.1:8080/x")), Ok(true));
        assert_eq!(check_endpoint(&url("http://127.9.9.9/x")), Ok(true));
        assert_eq!(check_endpoint(&url("http://[::1]:80/x")), Ok(true));
        assert_eq!(check_endpoint(&url("http://LocalHost:9/x")), Ok(true));
        for refused in [
            "http://idp.example/x",
            "http://10.0.0.1/x",
            "ftp://idp.example/x",
        ] {
            assert!(
                matches!(
                    check_endpoint(&url(refused)),
                    Err(IdpError::Insecure { .. })
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn content_types_and_challenges() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/jwk-set+json"));
        assert!(!is_json_content_type("application/jwt"));
        assert!(!is_json_content_type("text/html"));
        assert_eq!(
            challenge_error(r#"Bearer error="invalid_token", error_description="expired""#),
            Some(IdpError::Upstream {
                error: "invalid_token".into(),
                description: Some("expired".into())
            })
        );
        assert_eq!(challenge_error("Bearer realm=\"x\""), None);
    }
}
