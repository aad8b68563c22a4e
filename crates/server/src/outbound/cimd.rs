//! Fetching Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, "Client Information
//! Discovery" and "Security Considerations"; MCP authorization 2025-11-25): the network half of
//! [`portcullis_authz::client_id_metadata`], which applies the rules to what is fetched here.
//!
//! The fetch is a request to a URL chosen by whoever starts an authorization, so it is guarded against
//! server-side request forgery (draft "Server-Side Request Forgery (SSRF) Attacks"):
//! - the host name is resolved here, and **every** address must be public ([`is_public`]: no loopback,
//!   private, link-local (incl. the `169.254.169.254` cloud metadata address), CGNAT, unspecified, multicast,
//!   reserved or documentation ranges, nor IPv6 forms embedding one of those); the connection is then pinned
//!   to exactly those vetted addresses (reqwest `resolve_to_addrs`), so a second DNS answer (rebinding)
//!   cannot redirect it, and no proxy is used;
//! - **redirects are refused** (the draft's discovery section: the document is the `200` response of the URL
//!   itself), so a redirect to a private address never happens;
//! - `https` only; at most [`MAX_DOCUMENT_BYTES`] read (the draft's 5 KB guidance), [`FETCH_TIMEOUT`] for the
//!   whole fetch including DNS, a JSON content type and status `200` required; at most
//!   [`MAX_CONCURRENT_FETCHES`] fetches in flight.
//!
//! Documents are cached in memory by URL ([`cache_lifetime`]: `Cache-Control` `max-age` honoured within
//! [`MIN_CACHE_SECS`]..=[`MAX_CACHE_SECS`], `no-store`/`no-cache` not cached), at most [`MAX_CACHE_ENTRIES`].
//!
//! For tests only, `--cimd-allow-host HOST:PORT` ([`crate::ServerConfig::cimd_allow_hosts`]) exempts a host
//! and port from the address check and lets it be fetched over plain `http` (a loopback document server).

use async_trait::async_trait;
use portcullis_authz::client_id_metadata::{
    ClientIdUrl, ClientMetadataDocument, ClientMetadataResolver, ResolveError,
};
use reqwest::header;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use url::Url;

/// Largest document read (the draft suggests limiting responses to 5 kilobytes).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Longest a whole fetch (DNS, connect, TLS, response) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest time a cacheable document is kept (a small `max-age` is raised to this).
pub const MIN_CACHE_SECS: u64 = 60;
/// Longest time a document is kept, whatever `max-age` says.
pub const MAX_CACHE_SECS: u64 = 24 * 3600;
/// Lifetime of a document served without `Cache-Control`.
pub const DEFAULT_CACHE_SECS: u64 = 300;
/// Most documents kept.
pub const MAX_CACHE_ENTRIES: usize = 1024;
/// Most fetches in flight at once; beyond it a fetch is `temporarily_unavailable` at once (a flood of
/// authorization requests naming slow URLs cannot pile up outbound connections).
pub const MAX_CONCURRENT_FETCHES: usize = 32;

/// The resolver `portcullis serve` installs into [`portcullis_authz::Authz`].
pub struct HttpResolver {
    allow_hosts: Vec<String>,
    timeout: Duration,
    cache: Mutex<Cache>,
    in_flight: tokio::sync::Semaphore,
}

impl std::fmt::Debug for HttpResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResolver")
            .field("allow_hosts", &self.allow_hosts)
            .finish_non_exhaustive()
    }
}

impl HttpResolver {
    /// A resolver; `allow_hosts` (`host:port`, for tests) skip the address check and may use `http`.
    pub fn new(allow_hosts: Vec<String>) -> Self {
        Self {
            allow_hosts: allow_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            timeout: FETCH_TIMEOUT,
            cache: Mutex::new(Cache::new(MAX_CACHE_ENTRIES)),
            in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES),
        }
    }

    fn allow_listed(&self, url: &Url) -> bool {
        match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => {
                let key = format!("{}:{p}", h.to_ascii_lowercase());
                self.allow_hosts.contains(&key)
            }
            _ => false,
        }
    }

    async fn fetch_uncached(
        &self,
        url: &Url,
    ) -> Result<(ClientMetadataDocument, Option<Duration>), ResolveError> {
        let client = self.pinned_client(url).await?;
        let resp = client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        check_response(&resp)?;
        let lifetime = cache_lifetime(
            resp.headers()
                .get_all(header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let body = read_body(resp).await?;
        Ok((ClientMetadataDocument { body }, lifetime))
    }

    /// An HTTP client for `url` that connects only to the addresses vetted here (no second lookup that could
    /// rebind), follows no redirects and uses no proxy; https only unless the host is allow-listed.
    async fn pinned_client(&self, url: &Url) -> Result<reqwest::Client, ResolveError> {
        let refused = |why: &str| ResolveError::Refused(why.to_owned());
        let allowed = self.allow_listed(url);
        if url.scheme() != "https" && !allowed {
            return Err(refused("the client_id URL must use https"));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refused("the client_id URL has no port"))?;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!allowed)
            .timeout(self.timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        match url.host() {
            Some(url::Host::Ipv4(ip)) => vet(&[SocketAddr::new(ip.into(), port)], allowed)?,
            Some(url::Host::Ipv6(ip)) => vet(&[SocketAddr::new(ip.into(), port)], allowed)?,
            Some(url::Host::Domain(host)) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| ResolveError::Unavailable(format!("cannot resolve {host}: {e}")))?
                    .collect();
                if addrs.is_empty() {
                    return Err(ResolveError::Unavailable(format!("{host} has no address")));
                }
                vet(&addrs, allowed)?;
                // Connect only to the addresses just vetted (no second lookup that could rebind).
                builder = builder.resolve_to_addrs(host, &addrs);
            }
            None => return Err(refused("the client_id URL has no host")),
        }
        builder
            .build()
            .map_err(|e| ResolveError::Unavailable(format!("HTTP client: {e}")))
    }
}

#[async_trait]
impl ClientMetadataResolver for HttpResolver {
    async fn fetch(&self, url: &ClientIdUrl) -> Result<ClientMetadataDocument, ResolveError> {
        let key = url.as_str();
        if let Some(doc) = self.lock_cache().get(key, Instant::now()) {
            return Ok(doc);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(ResolveError::Unavailable(
                "too many client metadata document fetches in progress".into(),
            ));
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.fetch_uncached(url.url())).await;
        let (doc, lifetime) = match result {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::info!(client_id = %key, error = %e, "client metadata document not used");
                return Err(e);
            }
            Err(_) => {
                tracing::info!(client_id = %key, "client metadata document fetch timed out");
                return Err(ResolveError::Unavailable(format!(
                    "no answer within {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        tracing::debug!(client_id = %key, ms = started.elapsed().as_millis() as u64, "fetched client metadata document");
        if let Some(ttl) = lifetime {
            self.lock_cache()
                .put(key.to_owned(), doc.clone(), Instant::now() + ttl);
        }
        Ok(doc)
    }

    fn allows_http(&self, url: &Url) -> bool {
        self.allow_listed(url)
    }
}

impl HttpResolver {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned lock only means a panic elsewhere mid-update of a plain map; the map is still usable.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The response head of a document fetch: 200 (no redirects followed; 5xx is a temporary failure), served as
/// JSON, not declared larger than [`MAX_DOCUMENT_BYTES`].
fn check_response(resp: &reqwest::Response) -> Result<(), ResolveError> {
    let status = resp.status();
    if status.is_redirection() {
        return Err(ResolveError::Refused(
            "its URL answered with a redirect, and redirects are not followed".to_owned(),
        ));
    }
    if status.is_server_error() {
        return Err(ResolveError::Unavailable(format!("HTTP {status}")));
    }
    if status != reqwest::StatusCode::OK {
        return Err(ResolveError::Refused(format!(
            "its URL answered HTTP {}",
            status.as_u16()
        )));
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_content_type);
    if !json {
        return Err(ResolveError::Refused(
            "it is not served as application/json".to_owned(),
        ));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    Ok(())
}

/// The body, read chunk by chunk and refused as soon as it passes [`MAX_DOCUMENT_BYTES`].
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, ResolveError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large() -> ResolveError {
    ResolveError::Refused(format!("it is larger than {MAX_DOCUMENT_BYTES} bytes"))
}

fn transport_error(e: reqwest::Error) -> ResolveError {
    if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
        ResolveError::Unavailable(format!("fetch failed: {e}"))
    } else {
        ResolveError::Refused("it could not be fetched".into())
    }
}

/// Refuses unless every address is public (or the host is allow-listed for tests).
fn vet(addrs: &[SocketAddr], allow_listed: bool) -> Result<(), ResolveError> {
    if allow_listed || addrs.iter().all(|a| is_public(a.ip())) {
        Ok(())
    } else {
        Err(ResolveError::Refused(
            "its host resolves to a non-public address (loopback, private, link-local or reserved)"
                .into(),
        ))
    }
}

/// `application/json` or a `+json` type (RFC 6839 §3.1), parameters ignored.
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

/// Whether `ip` is a public unicast address a document may be fetched from. Refused: unspecified, loopback,
/// private (RFC 1918, RFC 4193 `fc00::/7`), link-local (`169.254/16` incl. the cloud metadata address,
/// `fe80::/10`), CGNAT (`100.64/10`, RFC 6598), multicast, broadcast and reserved (`240/4`), `0/8`, IETF
/// protocol assignments (`192.0.0/24`), documentation and benchmarking ranges, site-local `fec0::/10`, and
/// IPv6 addresses that embed an IPv4 address (mapped, compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`,
/// Teredo `2001::/32`) unless the embedded address is itself public, and the local-use translation prefix
/// `64:ff9b:1::/48` (RFC 8215) whatever it embeds.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", incl. 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((u32::from(hi)) << 16) | u32::from(lo));
    if s[..6] == [0; 6] {
        // ::/96: unspecified, loopback, and the deprecated IPv4-compatible form.
        return s[6] != 0 && is_public_v4(embedded(s[6], s[7])) && !ip.is_loopback();
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7])); // NAT64 well-known prefix (RFC 6052 §2.1)
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        // Local-use IPv4/IPv6 translation 64:ff9b:1::/48 (RFC 8215): never global, and where the IPv4 address
        // sits depends on the operator's prefix length (RFC 6052 §2.2), so no embedded address is trusted.
        return false;
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2])); // 6to4
    }
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] & 0xf000 == 0) // documentation 3fff::/20 (RFC 9637)
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking 2001:2::/48 (RFC 5180)
        || (s[0] == 0x2001 && s[1] == 0) // Teredo (embeds an address)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only 100::/64
    !refused
}

/// How long a fetched document may be reused, from its `Cache-Control` values (RFC 9111 §5.2.2): `None`
/// with `no-store` or `no-cache` or `max-age=0`; `max-age` clamped to
/// [`MIN_CACHE_SECS`]..=[`MAX_CACHE_SECS`]; [`DEFAULT_CACHE_SECS`] without a `max-age`.
pub fn cache_lifetime<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Duration> {
    let mut max_age: Option<u64> = None;
    for directive in values.into_iter().flat_map(|v| v.split(',')) {
        let directive = directive.trim().to_ascii_lowercase();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (
                n.trim().to_owned(),
                Some(a.trim().trim_matches('"').to_owned()),
            ),
            None => (directive.clone(), None),
        };
        match name.as_str() {
            "no-store" | "no-cache" => return None,
            "max-age" => {
                // An invalid max-age makes the response stale (RFC 9111 §4.2.1).
                let secs = arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
                max_age = Some(max_age.map_or(secs, |m| m.min(secs)));
            }
            _ => {}
        }
    }
    match max_age {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(
            secs.clamp(MIN_CACHE_SECS, MAX_CACHE_SECS),
        )),
        None => Some(Duration::from_secs(DEFAULT_CACHE_SECS)),
    }
}

/// A bounded map of documents with expiry times.
struct Cache {
    entries: HashMap<String, (Instant, ClientMetadataDocument)>,
    capacity: usize,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn get(&mut self, url: &str, now: Instant) -> Option<ClientMetadataDocument> {
        match self.entries.get(url) {
            Some((expires, doc)) if *expires > now => Some(doc.clone()),
            Some(_) => {
                self.entries.remove(url);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, url: String, doc: ClientMetadataDocument, expires: Instant) {
        if !self.entries.contains_key(&url) && self.entries.len() >= self.capacity {
            let now = Instant::now();
            self.entries.retain(|_, (e, _)| *e > now);
            if self.entries.len() >= self.capacity {
                // Evict the entry that would expire first.
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (e, _))| *e)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(url, (expires, doc));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_classifier() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::ffff:100.64.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:0:4136:e378::1",
            "100::1",
            // NAT64: the well-known prefix embeds private, loopback and metadata addresses (checked as IPv4);
            // the local-use prefix (RFC 8215) is refused whatever it embeds, at any prefix length.
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b::c0a8:101",
            "64:ff9b::0.0.0.0",
            "64:ff9b:1::808:808",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:1:808:8:800::",
            "3fff::1",
            "3fff:fff::1",
            "2001:2::1",
            "2001:2:0:ffff::1",
        ] {
            assert!(!is_public(ip(refused)), "{refused} must be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "64:ff9b:2::808:808",
            "2001:3::1",
            "3ffe:ffff::1",
            "3fff:1000::1",
        ] {
            assert!(is_public(ip(public)), "{public} must be allowed");
        }
    }

    #[test]
    fn cache_policy() {
        let secs = |v: &[&str]| cache_lifetime(v.iter().copied()).map(|d| d.as_secs());
        assert_eq!(secs(&[]), Some(DEFAULT_CACHE_SECS));
        assert_eq!(secs(&["public"]), Some(DEFAULT_CACHE_SECS));
        assert_eq!(secs(&["max-age=3600"]), Some(3600));
        assert_eq!(secs(&["public, max-age=600"]), Some(600));
        assert_eq!(secs(&["max-age=\"120\""]), Some(120));
        assert_eq!(secs(&["max-age=5"]), Some(MIN_CACHE_SECS));
        assert_eq!(secs(&["max-age=99999999"]), Some(MAX_CACHE_SECS));
        assert_eq!(secs(&["max-age=0"]), None);
        assert_eq!(secs(&["max-age=oops"]), None);
        assert_eq!(secs(&["no-store"]), None);
        assert_eq!(secs(&["max-age=600, no-store"]), None);
        assert_eq!(secs(&["max-age=600", "No-Cache"]), None);
        assert_eq!(secs(&["max-age=600", "max-age=120"]), Some(120));
    }

    #[test]
    fn cache_expires_and_stays_bounded() {
        let doc = |b: &str| ClientMetadataDocument {
            body: b.as_bytes().to_vec(),
        };
        let now = Instant::now();
        let mut c = Cache::new(2);
        c.put("a".into(), doc("a"), now + Duration::from_secs(10));
        assert_eq!(c.get("a", now), Some(doc("a")));
        assert_eq!(c.get("a", now + Duration::from_secs(11)), None);
        assert!(c.entries.is_empty(), "an expired entry is dropped");
        c.put("a".into(), doc("a"), now + Duration::from_secs(100));
        c.put("b".into(), doc("b"), now + Duration::from_secs(50));
        c.put("c".into(), doc("c"), now + Duration::from_secs(200));
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.get("b", now), None, "the soonest to expire was evicted");
        assert!(c.get("a", now).is_some() && c.get("c", now).is_some());
    }

    #[test]
    fn content_types_and_allow_list() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/oauth-client+json"));
        assert!(!is_json_content_type("text/html"));
        assert!(!is_json_content_type("text/json+html"));
        let r = HttpResolver::new(vec!["127.0.0.1:8080".into(), "LOCALHOST:9".into()]);
        assert!(r.allows_http(&Url::parse("http://127.0.0.1:8080/c.json").unwrap()));
        assert!(r.allows_http(&Url::parse("http://localhost:9/c.json").unwrap()));
        assert!(!r.allows_http(&Url::parse("http://127.0.0.1:8081/c.json").unwrap()));
        assert!(!r.allows_http(&Url::parse("http://127.0.0.1/c.json").unwrap()));
        assert!(!HttpResolver::new(vec![])
            .allows_http(&Url::parse("http://127.0.0.1:8080/c.json").unwrap()));
    }

    #[tokio::test]
    async fn refuses_loopback_and_plain_http_before_connecting() {
        let r = HttpResolver::new(vec![]);
        let parse = |s: &str| ClientIdUrl::parse(s, |_| true).unwrap();
        for url in [
            "https://127.0.0.1:9/c.json",
            "https://[::1]:9/c.json",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost:9/c.json",
        ] {
            assert!(
                matches!(r.fetch(&parse(url)).await, Err(ResolveError::Refused(ref m)) if m.contains("non-public")),
                "{url}"
            );
        }
        assert!(matches!(
            r.fetch(&parse("http://93.184.216.34/c.json")).await,
            Err(ResolveError::Refused(ref m)) if m.contains("https")
        ));
    }
}
