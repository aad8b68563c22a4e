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
    let mut buf = [0u8; 32];
    rng.fill(&mut buf);
    Secret::new(b64::encode(buf))
}

/// 16 random bytes, base64url: identifiers that are not secrets (client ids, grant ids, `jti`).
pub fn id(rng: &dyn Random) -> String {
    let mut buf = [0u8; 16];
    rng.fill(&mut buf);
    b64::encode(buf)
}
