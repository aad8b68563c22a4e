//! CSRF tokens for the login and consent forms (OWASP CSRF Prevention Cheat Sheet).
//!
//! - Consent: an HMAC, keyed by the login session's own secret, over the authorization request the page was
//!   shown for. A token is thus bound to the browser session *and* to that request (security notes: consent
//!   bound to the browser and to the authorization request; fastmcp GHSA-rww4-4w9c-7733).
//! - Login (no session yet): a double-submit cookie, compared in constant time.

use crate::secret::Secret;
use hmac::{Hmac, Mac};
use portcullis_proto::b64;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The consent form's token for `request` (the canonical authorization request string).
pub fn consent_token(session_key: &Secret, request: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(session_key.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"portcullis consent v1\n");
    mac.update(request.as_bytes());
    b64::encode(mac.finalize().into_bytes())
}

/// Whether `token` is the consent token for `request` in this session.
pub fn verify_consent_token(session_key: &Secret, request: &str, token: &str) -> bool {
    equal(&consent_token(session_key, request), token)
}

/// The sign-out form's token: an HMAC of a fixed label under the session's own secret, so another site cannot
/// sign a user out (login CSRF's twin) and a token from one session is worthless in another.
pub fn logout_token(session_key: &Secret) -> String {
    consent_token(session_key, "\u{0}portcullis logout v1")
}

/// Whether `token` is the sign-out token of this session.
pub fn verify_logout_token(session_key: &Secret, token: &str) -> bool {
    equal(&logout_token(session_key), token)
}

/// Constant-time string equality (for double-submit tokens).
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_session_and_request() {
        let k1 = Secret::new("key-one");
        let k2 = Secret::new("key-two");
        let t = consent_token(&k1, "client_id=a&scope=x");
        assert!(verify_consent_token(&k1, "client_id=a&scope=x", &t));
        assert!(
            !verify_consent_token(&k2, "client_id=a&scope=x", &t),
            "another browser's session"
        );
        assert!(
            !verify_consent_token(&k1, "client_id=a&scope=x+y", &t),
            "another request"
        );
        assert!(!verify_consent_token(&k1, "client_id=a&scope=x", ""));
    }
}
