//! The sealed successor of a rotated refresh token: what lets a retry within the grace period (RFC 9700
//! §4.14.2 rotation, relaxed as described in `token::refresh`) answer with the *same* new refresh token the
//! first answer carried, without storing a usable token.
//!
//! At a rotation from secret `p` to secret `s'`, the family row keeps `SHA-256(p)` and
//! `seal(p, s') = s' ⊕ HMAC-SHA256(key = p, msg = DOMAIN ‖ family key)`, `s'` as its 32 raw bytes. Only a
//! holder of `p` can open it; the database alone yields nothing usable (the pad needs `p`, which is stored
//! only as a hash), and a thief holding `p` after the window is refused and revokes the family instead. The
//! family key (the hash of the handle) in the message binds a sealed value to its family, and the opened
//! value is checked against the family's live hash before use (`token::rotation`), so a tampered or
//! mismatched row is never answered: it reads as reuse.

use crate::secret::Secret;
use crate::secret::TokenHash;
use portcullis_proto::b64;
use ring::hmac;

/// Domain separation of the pad: versioned, so a later format cannot be confused with this one.
const DOMAIN: &[u8] = b"portcullis/refresh-successor/v1";

/// Length of a refresh token's secret in raw bytes (`random::token_bytes`) and of a sealed successor.
pub(crate) const SEALED_LEN: usize = 32;

/// The pad for the successor of `rotated` (the presented secret's text) in the family keyed `family`.
fn pad(rotated: &Secret, family: &TokenHash) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, rotated.expose().as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(DOMAIN);
    ctx.update(family.as_str().as_bytes());
    ctx.sign()
}

/// `successor` (its 32 raw bytes) sealed under `rotated`, for the family keyed `family`.
pub(crate) fn seal(rotated: &Secret, family: &TokenHash, successor: &[u8; SEALED_LEN]) -> Vec<u8> {
    let pad = pad(rotated, family);
    successor
        .iter()
        .zip(pad.as_ref())
        .map(|(s, p)| s ^ p)
        .collect()
}

/// The successor's secret (its base64url text, as issued) opened with `rotated`; `None` if `sealed` is not
/// [`SEALED_LEN`] bytes. Opening with any other token yields unrelated bytes: the caller checks the result
/// against the family's live hash.
pub(crate) fn open(rotated: &Secret, family: &TokenHash, sealed: &[u8]) -> Option<Secret> {
    if sealed.len() != SEALED_LEN {
        return None;
    }
    let pad = pad(rotated, family);
    let raw: Vec<u8> = sealed
        .iter()
        .zip(pad.as_ref())
        .map(|(s, p)| s ^ p)
        .collect();
    Some(Secret::new(b64::encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "family-key-hash";

    fn successor() -> [u8; SEALED_LEN] {
        core::array::from_fn(|i| i as u8 * 7)
    }

    #[test]
    fn opens_with_the_rotated_token_only() {
        let (rotated, family) = (Secret::new("rotated-secret"), TokenHash::of(FAMILY));
        let sealed = seal(&rotated, &family, &successor());
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_ne!(sealed, successor().to_vec(), "sealing changes the bytes");
        let opened = open(&rotated, &family, &sealed).unwrap();
        assert_eq!(opened.expose(), b64::encode(successor()));
        // Another token, or the same token in another family, opens to something else.
        let other = open(&Secret::new("rotated-secreT"), &family, &sealed).unwrap();
        assert_ne!(other.expose(), opened.expose());
        let moved = open(&rotated, &TokenHash::of("other family"), &sealed).unwrap();
        assert_ne!(moved.expose(), opened.expose());
    }

    #[test]
    fn a_truncated_value_opens_to_nothing() {
        let (rotated, family) = (Secret::new("r"), TokenHash::of(FAMILY));
        let sealed = seal(&rotated, &family, &successor());
        assert!(open(&rotated, &family, &sealed[..31]).is_none());
        assert!(open(&rotated, &family, &[]).is_none());
    }

    /// The construction as specified: sealing zeros yields the pad, HMAC-SHA256(key = rotated secret,
    /// msg = DOMAIN ‖ family key).
    #[test]
    fn the_pad_is_hmac_sha256_of_domain_and_family() {
        let (rotated, family) = (Secret::new("k"), TokenHash::of(FAMILY));
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(family.as_str().as_bytes());
        let expected = hmac::sign(&key, &msg);
        assert_eq!(
            seal(&rotated, &family, &[0; SEALED_LEN]),
            expected.as_ref().to_vec()
        );
    }
}
