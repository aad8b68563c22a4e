//! Password hashing with argon2id at OWASP's recommended parameters (m = 19 MiB, t = 2, p = 1; OWASP Password
//! Storage Cheat Sheet). These functions are CPU-heavy by design: callers on an async runtime run them on a
//! blocking thread.

use crate::random::Random;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Longest password accepted, in bytes (bounds the hashing cost an attacker can cause).
pub const MAX_LEN: usize = 1024;
/// Shortest password accepted when setting one.
pub const MIN_LEN: usize = 8;

fn argon2() -> Argon2<'static> {
    // Constant, valid parameters: Params::new only fails on out-of-range values.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Too short or too long.
    #[error("password must be {MIN_LEN} to {MAX_LEN} bytes long")]
    Length,
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
}

/// Hashes a new password to a PHC string.
pub fn hash(password: &str, rng: &dyn Random) -> Result<String, PasswordError> {
    if password.len() < MIN_LEN || password.len() > MAX_LEN {
        return Err(PasswordError::Length);
    }
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Checks a password against a PHC string. Over-long passwords fail without hashing. A hash that is empty
/// (a user without a password, created through an identity provider) or unparsable never verifies, and costs
/// a full verification against [`dummy_hash`] first, so such accounts cannot be told apart by timing.
pub fn verify(password: &str, phc: &str) -> bool {
    verify_with(password, phc, &mut Workspace::default())
}

/// The working memory of a verification (19 MiB at these parameters), kept by a caller that checks many
/// passwords in turn (the server's checking threads), so each holds exactly one instead of allocating and
/// freeing 19 MiB per check, which allocators retain.
#[derive(Default)]
pub struct Workspace(Vec<argon2::Block>);

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workspace({} blocks)", self.0.len())
    }
}

/// [`verify`] in `memory`.
pub fn verify_with(password: &str, phc: &str, memory: &mut Workspace) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    let Some((checked, can_pass)) = hash_to_check(phc) else {
        return false;
    };
    let matched = recompute(password, &checked, &mut memory.0).unwrap_or(false);
    matched && can_pass
}

/// Largest working memory a stored hash may ask for, in 1 KiB blocks (64 MiB).
const MAX_BLOCKS: usize = 64 * 1024;

/// Whether argon2 of `password` with `hash`'s algorithm, version, parameters and salt gives `hash`'s output
/// (compared in constant time by `Output`'s `PartialEq`), as `PasswordVerifier::verify_password` does, but in
/// `memory`. `None` for a hash it cannot recompute.
fn recompute(
    password: &str,
    hash: &PasswordHash<'_>,
    memory: &mut Vec<argon2::Block>,
) -> Option<bool> {
    let expected = hash.hash?;
    let params = Params::try_from(hash).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return None;
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .ok()?;
    Some(argon2::password_hash::Output::new(&out).ok()? == expected)
}

/// The hash a verification runs against, and whether a match may pass: the stored one, or — for an empty or
/// unparsable one — [`dummy_hash`], which never passes. `None` only if the dummy itself does not parse (it does:
/// tested).
fn hash_to_check(phc: &str) -> Option<(PasswordHash<'_>, bool)> {
    match PasswordHash::new(phc) {
        Ok(parsed) if !phc.is_empty() => Some((parsed, true)),
        _ => PasswordHash::new(dummy_hash()).ok().map(|d| (d, false)),
    }
}

/// A hash of a random password with the same parameters, checked when the user does not exist so that an
/// unknown name costs as much time as a wrong password (no user enumeration by timing).
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$wH8hQ5l2c0w3nqo6Qq7mA2oT8qz3M0V4P0b5QyH0mJk"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_workspace_checks_many_passwords() {
        let h = hash("correct horse", &crate::random::OsRandom).unwrap();
        let mut memory = Workspace::default();
        for _ in 0..2 {
            assert!(verify_with("correct horse", &h, &mut memory));
            assert!(!verify_with("correct horsf", &h, &mut memory));
            assert!(
                !verify_with("correct horse", "", &mut memory),
                "no hash never passes"
            );
        }
        assert_eq!(memory.0.len(), 19 * 1024, "one 19 MiB area, reused");
    }
    use crate::random::OsRandom;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse", &OsRandom).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify(&"x".repeat(MAX_LEN + 1), &h));
        assert_eq!(hash("short", &OsRandom), Err(PasswordError::Length));
        assert!(!verify("anything", dummy_hash()));
        assert!(
            PasswordHash::new(dummy_hash()).is_ok(),
            "dummy hash must parse so it costs a full verification"
        );
    }

    /// A user without a password (JIT, hash "") never passes, whatever is typed, and the refusal runs a full
    /// argon2id verification with the same parameters as a real hash (against the dummy), so it costs as much —
    /// checked structurally, not by timing.
    #[test]
    fn an_empty_hash_never_verifies_and_costs_a_verification() {
        for typed in ["", "x", "correct horse", "$argon2id$"] {
            assert!(!verify(typed, ""), "{typed:?}");
            assert!(!verify(typed, "not a phc string"), "{typed:?}");
        }
        let real = hash("correct horse", &OsRandom).unwrap();
        let (stored, passes) = hash_to_check(&real).unwrap();
        assert!(passes);
        for refused in ["", "not a phc string"] {
            let (checked, passes) = hash_to_check(refused).unwrap();
            assert!(!passes, "{refused:?}");
            assert_eq!(checked.to_string(), dummy_hash(), "{refused:?}");
            assert_eq!(checked.algorithm, stored.algorithm);
            assert_eq!(checked.params, stored.params, "same cost as a real hash");
        }
    }
}
