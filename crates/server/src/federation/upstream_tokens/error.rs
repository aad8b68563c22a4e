//! [`UpstreamTokenError`]: why no upstream token could be had (provider names and codes only, never a token).

/// Why no upstream token could be had. Carries provider names and error codes, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamTokenError {
    /// The user has no tokens at the provider: never signed in through it, unlinked, or deprovisioned.
    #[error("no tokens at identity provider {provider}")]
    Missing {
        /// The provider.
        provider: String,
    },
    /// The access token expired and the provider issued no refresh token.
    #[error("the token at identity provider {provider} expired and cannot be refreshed")]
    NotRefreshable {
        /// The provider.
        provider: String,
    },
    /// The provider refused the refresh token (`invalid_grant`): the user was removed or their session revoked.
    #[error("identity provider {provider} no longer honours the user's refresh token")]
    Revoked {
        /// The provider.
        provider: String,
    },
    /// The provider could not be reached, failed, or another instance's refresh did not finish in time.
    #[error("identity provider {provider} is unavailable ({code})")]
    Unavailable {
        /// The provider.
        provider: String,
        /// A short code for the log (`idp_unreachable`, `refresh_busy`, …).
        code: &'static str,
    },
    /// The provider refused the token exchange (RFC 8693 §2.2.2) with another error than `invalid_grant`.
    #[error("identity provider {provider} refused the token exchange: {error}")]
    Exchange {
        /// The provider.
        provider: String,
        /// Its error code, sanitized.
        error: String,
    },
    /// No provider of that name is configured.
    #[error("no identity provider {0} is configured")]
    UnknownProvider(String),
    /// The stored tokens could not be opened (a vault key missing, or a corrupt row).
    #[error("the stored tokens cannot be opened: {0}")]
    Vault(String),
    /// The database failed.
    #[error("storage: {0}")]
    Store(String),
}

impl UpstreamTokenError {
    /// Whether only a new sign-in through the provider helps (the 401 challenge of the gateway).
    pub fn needs_sign_in(&self) -> bool {
        matches!(
            self,
            Self::Missing { .. }
                | Self::NotRefreshable { .. }
                | Self::Revoked { .. }
                | Self::Vault(_)
        )
    }

    /// A short code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "upstream_token_missing",
            Self::NotRefreshable { .. } => "upstream_token_expired",
            Self::Revoked { .. } => "upstream_token_revoked",
            Self::Unavailable { code, .. } => code,
            Self::Exchange { .. } => "upstream_exchange_refused",
            Self::UnknownProvider(_) => "upstream_provider_unknown",
            Self::Vault(_) => "upstream_token_unreadable",
            Self::Store(_) => "storage",
        }
    }
}
