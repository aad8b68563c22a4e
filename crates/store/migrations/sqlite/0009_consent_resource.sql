-- Remembered consent is per protected resource (RFC 8707 §2; issue 19): approving a client for one resource no
-- longer approves it for another. Rows from before carry resource '' (no resource has that name), so users are
-- asked once more for each resource, while "has this user ever approved this client" (the open-redirect rule of
-- the authorization endpoint) still sees them.
CREATE TABLE consents_by_resource (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    resource   TEXT NOT NULL DEFAULT '',
    scope      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, resource)
);
INSERT INTO consents_by_resource (user_id, client_id, resource, scope, updated_at)
    SELECT user_id, client_id, '', scope, updated_at FROM consents;
DROP TABLE consents;
ALTER TABLE consents_by_resource RENAME TO consents;
CREATE INDEX consents_client ON consents(client_id);
