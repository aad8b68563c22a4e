-- Login throttling counters (fixed windows), shared by every process on the database. `limit_key` is a hash of
-- what is limited (an account or a client address), never the raw value.
CREATE TABLE rate_limits (
    limit_key    TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    hits         INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (limit_key, window_start)
);
CREATE INDEX rate_limits_expiry ON rate_limits(expires_at);
