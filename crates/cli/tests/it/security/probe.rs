//! What the flood tests (issue 19, "Beyond the list": [`super::logins`], [`super::floods`]) share: clients
//! whose connections come from other loopback addresses (127.0.0.x; the server keys its limits by the
//! connection's address and trusts no forwarding header), `/livez` probed while a flood runs, and the server's
//! peak resident memory read from `/proc`.

use crate::support::Server;
use reqwest::StatusCode;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// Longest `/livez` may take while a flood runs (under an unbounded sign-in flood it took 3–4 s).
pub const LIVEZ_BOUND: Duration = Duration::from_secs(2);

/// A client whose connections come from 127.0.0.`last`; redirects are not followed; with a cookie jar (a
/// browser) when `cookies`.
pub fn client_from(last: u8, cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(cookies)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Probes `/livez` every 20 ms until every one of `tasks` has finished; asserts that each probe is answered
/// 200 within [`LIVEZ_BOUND`], and returns the slowest answer.
pub async fn livez_while<T>(s: &Server, tasks: &[JoinHandle<T>]) -> Duration {
    let http = reqwest::Client::builder()
        .timeout(LIVEZ_BOUND * 5)
        .build()
        .unwrap();
    let livez = s.url("/livez");
    let mut worst = Duration::ZERO;
    while !tasks.iter().all(JoinHandle::is_finished) {
        let t = Instant::now();
        let r = http.get(&livez).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "/livez during the flood");
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        worst < LIVEZ_BOUND,
        "/livez took {worst:?} during the flood"
    );
    worst
}

/// The peak resident set of process `pid` (`VmHWM`), bytes; `None` where `/proc` does not exist.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The server's peak resident memory before a flood (after a warm-up, so the baseline includes the allocator's
/// first arenas), to compare with the peak after it.
pub struct PeakRss {
    pid: u32,
    before: Option<u64>,
}

impl PeakRss {
    /// The peak so far of `s`.
    pub fn before(s: &Server) -> Self {
        Self {
            pid: s.pid(),
            before: peak_rss(s.pid()),
        }
    }

    /// Asserts the peak grew by less than `bound` bytes since [`PeakRss::before`] (without `/proc`, says so and
    /// checks nothing).
    pub fn assert_grown_below(&self, bound: u64, what: &str) {
        match (self.before, peak_rss(self.pid)) {
            (Some(before), Some(after)) => {
                let grown = after.saturating_sub(before);
                eprintln!(
                    "{what}: peak RSS {} MiB → {} MiB",
                    before / MIB,
                    after / MIB
                );
                assert!(
                    grown < bound,
                    "{what}: peak memory grew by {} MiB (bound {} MiB)",
                    grown / MIB,
                    bound / MIB
                );
            }
            _ => eprintln!("{what}: no /proc here: the memory bound is not checked"),
        }
    }
}
