-- Portcullis schema, PostgreSQL (and the PostgreSQL dialect of CockroachDB / YugabyteDB). Times are seconds since
-- the Unix epoch. Tokens, codes, session ids and client secrets appear only as SHA-256 hashes (base64url).
--
-- Portable on purpose: plain tables, btree and partial indexes, no sequences (YugabyteDB caches them per node, so
-- their values are not in commit order), no triggers or PL/pgSQL, no deferred constraints.

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash TEXT,
    metadata    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_key   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents(client_id);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_client ON grants(client_id);
CREATE INDEX grants_user ON grants(user_id);
CREATE INDEX grants_expires ON grants(expires_at);

CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    resource       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    grant_id       TEXT
);
CREATE INDEX authorization_codes_client ON authorization_codes(client_id);
CREATE INDEX authorization_codes_user ON authorization_codes(user_id);
CREATE INDEX authorization_codes_expires ON authorization_codes(expires_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    alg           TEXT NOT NULL,
    private_key   BYTEA NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    active        BOOLEAN NOT NULL,
    publish_until BIGINT
);
-- At most one active key, whatever races at first start (instances insert with ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys(active) WHERE active;

-- `seq` comes from `revocation_counter`, not from a sequence: the counter row is locked from allocation to commit,
-- so sequence numbers become visible in order and a reader that has seen `seq = n` never later finds a new
-- entry below `n` (a sequence hands out numbers at insert time, and transactions commit in any order).
CREATE TABLE revocations (
    seq        BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_expires ON revocations(expires_at);

CREATE TABLE revocation_counter (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO revocation_counter (id, last_seq) VALUES (1, 0);
