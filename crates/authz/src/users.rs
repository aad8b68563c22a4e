//! End-user accounts: the rules for user names. Creating, removing and changing accounts is
//! [`crate::session::Sessions`]'s.

use crate::error::AuthzError;

/// Longest user name.
pub const MAX_USERNAME_LEN: usize = 64;

/// Checks a user name: 1–64 characters of `[A-Za-z0-9._@+-]`.
pub fn check_username(name: &str) -> Result<(), AuthzError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AuthzError::InvalidRequest(
            "user names are 1 to 64 characters of letters, digits and . _ @ + -".into(),
        ))
    }
}
