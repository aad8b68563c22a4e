//! In-process rate limits (fixed windows). Used for login attempts per account and per client address
//! (OWASP Authentication Cheat Sheet: throttle per account and per IP, answer with `Retry-After`).

use std::collections::HashMap;
use std::sync::Mutex;

/// Counts events per key in fixed windows.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_secs: i64,
    counts: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    /// At most `limit` events per key per `window_secs`.
    pub fn new(limit: u32, window_secs: i64) -> Self {
        Self {
            limit,
            window_secs,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// If `key` is over its limit at `now`, the seconds until it may try again.
    pub fn blocked(&self, key: &str, now: i64) -> Option<i64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (start, n) = *counts.get(key)?;
        let reset = start + self.window_secs;
        (n >= self.limit && now < reset).then_some(reset - now)
    }

    /// Records one event for `key` at `now`.
    pub fn record(&self, key: &str, now: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() > 100_000 {
            let window = self.window_secs;
            counts.retain(|_, (start, _)| now < *start + window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now >= entry.0 + self.window_secs {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Forgets `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit_until_window_ends() {
        let l = RateLimiter::new(3, 60);
        for _ in 0..3 {
            assert_eq!(l.blocked("a", 100), None);
            l.record("a", 100);
        }
        assert_eq!(l.blocked("a", 110), Some(50));
        assert_eq!(l.blocked("b", 110), None);
        assert_eq!(l.blocked("a", 160), None);
        l.record("a", 160);
        assert_eq!(l.blocked("a", 161), None);
        l.clear("a");
        assert_eq!(l.blocked("a", 161), None);
    }
}
