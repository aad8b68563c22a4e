-- Federation (issue 13), PostgreSQL: identities at upstream identity providers, pending upstream sign-ins and the upstream
-- token vault. Nothing secret is stored in the clear: a state appears only as its SHA-256 hash, and the pending
-- sign-in (nonce, PKCE verifier) and the upstream tokens only sealed with AES-256-GCM (`sealed` is nonce ||
-- ciphertext || tag), beside the id of the vault key that sealed them (`portcullis_authz::vault`).

-- A user's identity at a provider, keyed by (provider, subject): a `sub` is unique only within its issuer
-- (OpenID Connect Core §5.7). At most one identity per user and provider. `groups_json` is a JSON array.
CREATE TABLE identities (
    provider       TEXT NOT NULL,
    subject        TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email          TEXT,
    email_verified BOOLEAN NOT NULL,
    username       TEXT,
    groups_json    TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_login_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE UNIQUE INDEX identities_user_provider ON identities(user_id, provider);

-- Pending upstream sign-ins, taken once (DELETE … RETURNING) by the callback.
CREATE TABLE upstream_states (
    state_hash TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX upstream_states_expires ON upstream_states(expires_at);

-- A user's tokens at a provider. `refreshing_until` is the refresh lease (one refresh in flight per user and
-- provider): taken by a compare-and-set `UPDATE … WHERE refreshing_until <= now`.
CREATE TABLE upstream_tokens (
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    sealed           BYTEA NOT NULL,
    expires_at       BIGINT,
    refreshing_until BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider)
);
