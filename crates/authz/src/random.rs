//! Randomness, injected: tokens, codes, salts and keys all come from a [`Random`].

use crate::secret::Secret;
use portcullis_proto::b64;
use rand::RngCore;

/// A source of cryptographically secure random bytes.
pub trait Random: Send + Sync + 'static {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

/// A cryptographically secure generator in user space: `rand`'s `ThreadRng` (ChaCha12, one per thread, seeded
/// from the operating system and reseeded from it every 64 KiB of output). A token then costs no system call;
/// a refresh draws two (the new refresh token and the access token's `jti`). What `portcullis serve` uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadRandom;

impl Random for ThreadRandom {
    fn fill(&self, buf: &mut [u8]) {
        rand::thread_rng().fill_bytes(buf);
    }
}

/// 32 random bytes (256 bits), base64url: the shape of every code, refresh token and secret Portcullis issues
/// (RFC 9700 §4.5.3 asks for at least 128 bits for codes; refresh tokens get the same).
pub fn token(rng: &dyn Random) -> Secret {
    Secret::new(b64::encode(token_bytes(rng)))
}

/// The 32 random bytes of a [`token`], before encoding (a refresh token's successor is sealed in this form).
pub fn token_bytes(rng: &dyn Random) -> [u8; 32] {
    let mut buf = [0u8; 32];
    rng.fill(&mut buf);
    buf
}

/// An identifier that sorts by creation time: the time in milliseconds as 12 hex digits, then [`id`]'s 16
/// random bytes. Client and grant ids are the keys of their tables' primary-key indexes: ids that grow with time
/// are appended at the right edge of the B-tree, so a commit of many registrations dirties a few index pages
/// instead of one random page each (what the WAL writes and checkpoints copy). Not secrets: client ids are
/// public and grant ids are the access tokens' `sid`; the random part keeps them unguessable all the same.
pub fn ordered_id(rng: &dyn Random, millis: i64) -> String {
    let mut buf = [0u8; 16];
    rng.fill(&mut buf);
    // Twelve hex digits hold 48 bits of milliseconds (until the year 10889); they sort like the numbers they
    // spell, which base64url's alphabet would not.
    let mut s = format!("{:012x}", millis.clamp(0, 0xffff_ffff_ffff));
    s.push_str(&b64::encode(buf));
    s
}

/// 16 random bytes (128 bits), base64url: identifiers (`jti`, user ids), and the handle of a refresh-token family
/// (part of every token of the family, so as secret as they are).
pub fn id(rng: &dyn Random) -> String {
    let mut buf = [0u8; 16];
    rng.fill(&mut buf);
    b64::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_time_and_stay_random() {
        let rng = OsRandom;
        let times = [
            0,
            9,
            10,
            255,
            1_700_000_000_000,
            1_700_000_000_001,
            1_800_000_000_000,
        ];
        let ids: Vec<String> = times.iter().map(|&t| ordered_id(&rng, t)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "byte order is time order");
        assert!(ids.iter().all(|i| i.len() == 34));
        assert_ne!(ordered_id(&rng, 5), ordered_id(&rng, 5));
        assert!(ordered_id(&rng, -1).starts_with("000000000000"));
    }
}
