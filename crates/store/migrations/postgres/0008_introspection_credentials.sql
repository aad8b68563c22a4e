-- Introspection credentials (RFC 7662; `portcullis clients add NAME --introspection [--resource URL ...]`): a
-- resource server's client row that may introspect the access tokens of the audiences it serves. The column
-- holds those audiences as a JSON array of strings (empty: every audience of this issuer); NULL for every other
-- client. Such a client is made by the admin, so the purge of unused registrations never deletes it.
ALTER TABLE clients ADD COLUMN introspection TEXT;
