//! The URL rule of every setting: an absolute https URL, or http on a loopback host; no fragment, no user info
//! (RFC 8707 §2, RFC 8414 §2).

use crate::error::ConfigError;
use url::Url;

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An absolute https URL, or http on a loopback host; no fragment, no user info (RFC 8707 §2, RFC 8414 §2).
pub(crate) fn parse_url(
    what: &'static str,
    text: &str,
    query_allowed: bool,
) -> Result<Url, ConfigError> {
    let err = || ConfigError::Url {
        what,
        value: text.to_owned(),
        extra: if query_allowed { "" } else { " or query" },
    };
    let url = Url::parse(text).map_err(|_| err())?;
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !scheme_ok
        || url.host().is_none()
        || url.fragment().is_some()
        || (!query_allowed && url.query().is_some())
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(err());
    }
    Ok(url)
}
