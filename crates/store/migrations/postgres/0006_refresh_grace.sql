-- Race-safe refresh rotation (issue 15; `portcullis_authz::token::refresh`, RFC 9700 §4.14.2): the family row also
-- keeps the token its last rotation retired, so a retry of it within the grace period gets the same successor.
-- `refresh_prev_hash`: the SHA-256 of the retired token's secret; `refresh_prev_sealed`: the live token's 32
-- bytes sealed under the retired token (`token::successor`), useless without that token. Both NULL before the
-- first rotation and after a rotation with no grace period. The rotation time is `refresh_issued_at`.
ALTER TABLE grants ADD COLUMN refresh_prev_hash TEXT;
ALTER TABLE grants ADD COLUMN refresh_prev_sealed BYTEA;
