-- Reaping dead registrations (issue 15; `portcullis_authz::client_reaping`).
--
-- `origin`: who stored the client. 'dynamic' (open registration at POST /register, by anyone),
-- 'metadata_document' (the row of a URL client_id resolved from its Client ID Metadata Document), 'admin' (made
-- with the `portcullis` command). Only the first two are ever reaped. Before this migration only the first two
-- could exist (no command made clients), so existing rows are classified by their id: a URL is a metadata
-- document's row, anything else was registered.
ALTER TABLE clients ADD COLUMN origin TEXT NOT NULL DEFAULT 'dynamic';
UPDATE clients SET origin = 'metadata_document'
WHERE client_id LIKE 'https://%' OR client_id LIKE 'http://%';

-- `last_used_at`: the client's last use among grants already deleted by the purge (the newest grant creation or
-- refresh). Live rows' use is read from the grants themselves, so issuing and refreshing tokens write nothing
-- here; the purge copies it here before it deletes expired grants. NULL: never obtained a token, as far as
-- known. Existing rows: their newest grant's last refresh or creation; else, when a user approved the client
-- (a consent, so it most likely obtained a token whose grant was purged since), that approval's time; else a
-- redeemed code's time; else NULL.
ALTER TABLE clients ADD COLUMN last_used_at INTEGER;
UPDATE clients SET last_used_at = COALESCE(
    (SELECT MAX(COALESCE(g.refresh_issued_at, g.created_at)) FROM grants g WHERE g.client_id = clients.client_id),
    (SELECT MAX(c.updated_at) FROM consents c WHERE c.client_id = clients.client_id),
    (SELECT MAX(a.used_at) FROM authorization_codes a WHERE a.client_id = clients.client_id));

-- Deleting a client cascades to its codes and consents: look them up by client (PostgreSQL has these since 0001).
CREATE INDEX IF NOT EXISTS authorization_codes_client ON authorization_codes(client_id);
CREATE INDEX IF NOT EXISTS consents_client ON consents(client_id);
