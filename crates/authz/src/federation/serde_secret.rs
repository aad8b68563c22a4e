//! Serde for [`Secret`] fields: of the values that are sealed in the vault ([`super::PendingLogin`],
//! [`super::UpstreamTokens`]; plain strings inside the sealed payload, never anywhere else), and the
//! `client_secret` read from the configuration file ([`super::ProviderSettings`], deserialized only).

use crate::secret::Secret;
use serde::{Deserialize, Deserializer, Serializer};

/// Serializes a secret as its text.
pub(crate) fn serialize<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Deserializes a secret from text.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// The same for `Option<Secret>`.
pub(crate) mod option {
    use crate::secret::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes an optional secret as its text or `null`.
    pub(crate) fn serialize<S: Serializer>(
        secret: &Option<Secret>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match secret {
            Some(v) => s.serialize_some(v.expose()),
            None => s.serialize_none(),
        }
    }

    /// Deserializes an optional secret.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Secret::new))
    }
}
