//! The upstream token vault's cipher: what Portcullis keeps of a user's tokens at an identity provider (and the
//! pending state of an upstream sign-in) is stored only sealed with AES-256-GCM (NIST SP 800-38D), through
//! `ring::aead`.
//!
//! A sealed value is `nonce (96 bits, random) || ciphertext || tag (128 bits)`, stored beside the [`KeyId`] of
//! the key that sealed it. The additional authenticated data binds a ciphertext to its row
//! ([`upstream_token_aad`], [`upstream_state_aad`]): a sealed value copied into another row does not open.
//! Random 96-bit nonces keep the collision probability negligible for far more seals than a vault key sees
//! (SP 800-38D §8.3 bounds a key to 2^32 random-nonce invocations; rotate long before that).
//!
//! Key text (the `vault_key_file` contents, or `PORTCULLIS_VAULT_KEY`): one key per line, base64url without
//! padding (RFC 4648 §5) of 32 bytes; the first line is the active key (it seals), the others are older keys
//! that still open what they sealed. Blank lines and lines starting with `#` are ignored.

use crate::random::Random;
use crate::secret::{Secret, TokenHash};
use portcullis_proto::b64;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::{Digest, Sha256};
use std::fmt;
pub use zeroize::Zeroizing;

/// Length of a vault key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of the GCM authentication tag in bytes.
const TAG_LEN: usize = 16;

/// Why a vault operation failed. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The value was sealed with a key this vault does not hold (removed from the key text too early).
    #[error("sealed with unknown vault key {0}")]
    UnknownKey(String),
    /// The sealed value is damaged, was sealed for another row (AAD mismatch), or was forged.
    #[error("sealed value is corrupt or does not belong to this row")]
    Corrupt,
    /// A line of the key text is not base64url of 32 bytes (1-based line number).
    #[error("vault key text, line {line}: not a base64url-encoded 32-byte key")]
    BadKeyText {
        /// The offending line, counting from 1.
        line: usize,
    },
    /// The key text holds no key.
    #[error("vault key text holds no key")]
    NoKey,
    /// The plaintext is too large to seal.
    #[error("value too large to seal")]
    TooLarge,
}

/// The identifier stored beside each sealed value: hex of the first 8 bytes of SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The id of `key`.
    fn of(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(key);
        Self(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Wraps an id read back from storage.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    /// The id text (16 hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit vault key. `Debug` prints only its id; the bytes are zeroed when it is dropped (the copy inside
/// ring's key schedule is ring's to manage).
pub struct VaultKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
    cipher: LessSafeKey,
}

impl VaultKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let id = KeyId::of(&bytes);
        // AES_256_GCM takes exactly KEY_LEN bytes, which the array type guarantees, so this cannot fail; the
        // fallback keeps the function total without a panic path.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes.as_slice())
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
        Self {
            bytes,
            id,
            cipher: LessSafeKey::new(unbound),
        }
    }

    /// A new random key.
    pub fn generate(rng: &dyn Random) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill(bytes.as_mut_slice());
        Self::from_bytes(*bytes)
    }

    /// Parses one line of key text (base64url without padding of 32 bytes); `line` is for the error.
    pub fn parse(text: &str, line: usize) -> Result<Self, VaultError> {
        let bad = VaultError::BadKeyText { line };
        let decoded = Zeroizing::new(b64::decode(text.trim()).ok_or(bad.clone())?);
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| bad)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key as one line of key text.
    pub fn to_text(&self) -> Secret {
        Secret::new(b64::encode(self.bytes.as_slice()))
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys of the vault: one active key that seals, and older keys that still open.
pub struct Vault {
    active: VaultKey,
    old: Vec<VaultKey>,
}

impl Vault {
    /// A vault sealing with `active` and opening with it and `old_keys`.
    pub fn new(active: VaultKey, old_keys: Vec<VaultKey>) -> Self {
        Self {
            active,
            old: old_keys,
        }
    }

    /// Parses key text (see the module documentation): the first key is active.
    pub fn from_text(text: &str) -> Result<Self, VaultError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_text = line.trim();
            if line_text.is_empty() || line_text.starts_with('#') {
                continue;
            }
            keys.push(VaultKey::parse(line_text, i + 1)?);
        }
        let mut keys = keys.into_iter();
        let active = keys.next().ok_or(VaultError::NoKey)?;
        Ok(Self::new(active, keys.collect()))
    }

    /// The key text of this vault: the active key first, then the older ones, one per line.
    pub fn to_text(&self) -> Secret {
        let mut text = String::new();
        for key in self.keys() {
            text.push_str(key.to_text().expose());
            text.push('\n');
        }
        Secret::new(text)
    }

    /// This vault with `key` as the new active key; the previous active key becomes the first old key.
    pub fn rotated(self, key: VaultKey) -> Self {
        let mut old = Vec::with_capacity(self.old.len() + 1);
        old.push(self.active);
        old.extend(self.old);
        Self { active: key, old }
    }

    /// This vault without its old keys (once nothing sealed with them is left).
    pub fn only_active(self) -> Self {
        Self::new(self.active, vec![])
    }

    /// The active key's id: what [`Vault::seal`] stores.
    pub fn active_id(&self) -> &KeyId {
        &self.active.id
    }

    /// Every key, the active one first.
    pub fn keys(&self) -> impl Iterator<Item = &VaultKey> {
        std::iter::once(&self.active).chain(self.old.iter())
    }

    /// Seals `plaintext` bound to `aad` under the active key: returns the key id and `nonce || ciphertext ||
    /// tag`. The 96-bit nonce comes from `rng`.
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        rng: &dyn Random,
    ) -> Result<(KeyId, Vec<u8>), VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce);
        let mut in_out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        in_out.extend_from_slice(plaintext);
        self.active
            .cipher
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| VaultError::TooLarge)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        in_out.iter_mut().for_each(|b| *b = 0);
        Ok((self.active.id.clone(), sealed))
    }

    /// Opens a value sealed under `key_id` for `aad`. The plaintext is zeroed when dropped.
    pub fn open(
        &self,
        key_id: &KeyId,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self
            .keys()
            .find(|k| &k.id == key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.as_str().to_owned()))?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(VaultError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Corrupt)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = key
            .cipher
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| VaultError::Corrupt)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("active", &self.active.id)
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// The AAD of a user's upstream tokens at a provider: `upstream-token\0<user_id>\0<provider>`.
pub fn upstream_token_aad(user_id: &str, provider: &str) -> Vec<u8> {
    [
        b"upstream-token\0",
        user_id.as_bytes(),
        b"\0",
        provider.as_bytes(),
    ]
    .concat()
}

/// The AAD of a pending upstream sign-in: `upstream-state\0<state hash>` (the stored hash text).
pub fn upstream_state_aad(state_hash: &TokenHash) -> Vec<u8> {
    [b"upstream-state\0", state_hash.as_str().as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::SeqRandom;

    fn key(n: u8) -> VaultKey {
        VaultKey::from_bytes([n; KEY_LEN])
    }

    #[test]
    fn round_trip_and_row_binding() {
        let rng = SeqRandom::default();
        let vault = Vault::new(key(1), vec![]);
        let aad = upstream_token_aad("u1", "corp");
        let (id, sealed) = vault.seal(b"access-token", &aad, &rng).unwrap();
        assert_eq!(&id, vault.active_id());
        assert_eq!(sealed.len(), NONCE_LEN + 12 + TAG_LEN);
        assert!(!sealed.windows(12).any(|w| w == b"access-token"));
        assert_eq!(
            vault.open(&id, &sealed, &aad).unwrap().as_slice(),
            b"access-token"
        );
        // Another row's AAD: the same bytes do not open there.
        for other in [
            upstream_token_aad("u2", "corp"),
            upstream_token_aad("u1", "corp2"),
            upstream_state_aad(&TokenHash::of("s")),
        ] {
            assert_eq!(vault.open(&id, &sealed, &other), Err(VaultError::Corrupt));
        }
        // Two seals of the same value differ (fresh nonce).
        let (_, again) = vault.seal(b"access-token", &aad, &rng).unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn tampering_is_detected() {
        let rng = SeqRandom::default();
        let vault = Vault::new(key(1), vec![]);
        let (id, sealed) = vault.seal(b"secret", b"aad", &rng).unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(
                vault.open(&id, &t, b"aad"),
                Err(VaultError::Corrupt),
                "byte {i}"
            );
        }
        assert_eq!(
            vault.open(&id, &sealed[..sealed.len() - 1], b"aad"),
            Err(VaultError::Corrupt)
        );
        assert_eq!(
            vault.open(&id, &sealed[..10], b"aad"),
            Err(VaultError::Corrupt)
        );
    }

    #[test]
    fn old_keys_open_and_unknown_keys_are_named() {
        let rng = SeqRandom::default();
        let before = Vault::new(key(1), vec![]);
        let (old_id, sealed) = before.seal(b"v", b"a", &rng).unwrap();
        let after = Vault::new(key(2), vec![key(1)]);
        assert_ne!(after.active_id(), &old_id);
        assert_eq!(after.open(&old_id, &sealed, b"a").unwrap().as_slice(), b"v");
        let (new_id, _) = after.seal(b"v", b"a", &rng).unwrap();
        assert_eq!(&new_id, after.active_id());
        let rotated = before.rotated(key(2));
        assert_eq!(rotated.active_id(), after.active_id());
        assert_eq!(
            rotated.open(&old_id, &sealed, b"a").unwrap().as_slice(),
            b"v"
        );
        let trimmed = rotated.only_active();
        assert_eq!(trimmed.keys().count(), 1);
        let only_new = Vault::new(key(2), vec![]);
        assert_eq!(
            only_new.open(&old_id, &sealed, b"a"),
            Err(VaultError::UnknownKey(old_id.as_str().to_owned()))
        );
        // The same id with another key's bytes (a forged id) does not open either.
        let forged = KeyId::from_stored(after.active_id().as_str().to_owned());
        assert_eq!(after.open(&forged, &sealed, b"a"), Err(VaultError::Corrupt));
    }

    #[test]
    fn key_ids_are_sha256_prefixes() {
        // SHA-256 of 32 zero bytes starts 66687aadf862bd77 (FIPS 180-4 SHA-256; value checked with sha256sum).
        assert_eq!(key(0).id().as_str(), "66687aadf862bd77");
        assert_eq!(key(1).id().as_str().len(), 16);
        assert_ne!(key(1).id(), key(2).id());
    }

    #[test]
    fn key_text_round_trips_and_bad_lines_are_located() {
        let rng = SeqRandom::default();
        let vault = Vault::new(VaultKey::generate(&rng), vec![key(3)]);
        let text = vault.to_text();
        assert_eq!(text.expose().lines().count(), 2);
        let parsed = Vault::from_text(&format!("# vault keys\n\n{}", text.expose())).unwrap();
        assert_eq!(parsed.active_id(), vault.active_id());
        assert_eq!(
            parsed.keys().map(|k| k.id().clone()).collect::<Vec<_>>(),
            vault.keys().map(|k| k.id().clone()).collect::<Vec<_>>()
        );
        let good = key(1).to_text();
        for (text, line) in [
            (format!("{}\nnot-a-key\n", good.expose()), 2),
            (format!("{}=\n", good.expose()), 1),
            ("AAAA\n".to_owned(), 1),
            (format!("\n{}x\n", good.expose()), 2),
        ] {
            assert_eq!(
                Vault::from_text(&text).map(|_| ()),
                Err(VaultError::BadKeyText { line })
            );
        }
        assert_eq!(
            Vault::from_text("\n# none\n").map(|_| ()),
            Err(VaultError::NoKey)
        );
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = key(7);
        let text = k.to_text();
        let vault = Vault::new(k, vec![key(8)]);
        let shown = format!("{vault:?} {:?}", key(7));
        assert!(!shown.contains(text.expose()), "{shown}");
        assert!(shown.contains(vault.active_id().as_str()));
    }
}
