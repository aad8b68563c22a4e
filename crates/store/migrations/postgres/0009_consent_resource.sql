-- Remembered consent is per protected resource (RFC 8707 §2; issue 19): approving a client for one resource no
-- longer approves it for another. Rows from before carry resource '' (no resource has that name), so users are
-- asked once more for each resource, while "has this user ever approved this client" (the open-redirect rule of
-- the authorization endpoint) still sees them.
ALTER TABLE consents ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE consents DROP CONSTRAINT consents_pkey;
ALTER TABLE consents ADD PRIMARY KEY (user_id, client_id, resource);
