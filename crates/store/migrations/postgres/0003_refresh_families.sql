-- Refresh-token families kept in place (RFC 9700 §4.14.2; `portcullis_authz::token::refresh`): a grant row holds
-- the hash of its family's handle (`refresh_key`) and of the live token's secret (`refresh_hash`), rewritten on
-- every rotation, instead of one row per refresh token ever issued. A rotation now changes one row.
ALTER TABLE grants ADD COLUMN refresh_key TEXT;
ALTER TABLE grants ADD COLUMN refresh_hash TEXT;
ALTER TABLE grants ADD COLUMN refresh_issued_at BIGINT;
ALTER TABLE grants ADD COLUMN refresh_expires_at BIGINT;

-- Live tokens issued before this migration keep working: such a token has no handle part, so it is read as
-- both handle and secret, and its family is keyed by its own hash. (Tokens that were already rotated are
-- forgotten; presenting one is refused as invalid rather than detected as reuse.)
UPDATE grants SET refresh_key = r.token_hash, refresh_hash = r.token_hash,
    refresh_issued_at = r.created_at, refresh_expires_at = r.expires_at
FROM refresh_tokens r WHERE r.grant_id = grants.id AND r.used_at IS NULL;

CREATE UNIQUE INDEX grants_refresh_key ON grants(refresh_key) WHERE refresh_key IS NOT NULL;
DROP TABLE refresh_tokens;
