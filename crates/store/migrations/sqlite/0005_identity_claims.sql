-- Who the user is, for display (issue 13 §2; `portcullis_authz::store::DisplayIdentity`): the name to show, the
-- verified email address and the identity provider the user signed in through, carried from the login session
-- to its authorization codes and grants, and from a grant into every access token minted from it (claims
-- `preferred_username`, `email`, `idp`). All nullable: NULL means unknown, and the claim is left out.
ALTER TABLE sessions ADD COLUMN preferred_username TEXT;
ALTER TABLE sessions ADD COLUMN email TEXT;
ALTER TABLE sessions ADD COLUMN idp TEXT;
ALTER TABLE authorization_codes ADD COLUMN preferred_username TEXT;
ALTER TABLE authorization_codes ADD COLUMN email TEXT;
ALTER TABLE authorization_codes ADD COLUMN idp TEXT;
ALTER TABLE grants ADD COLUMN preferred_username TEXT;
ALTER TABLE grants ADD COLUMN email TEXT;
ALTER TABLE grants ADD COLUMN idp TEXT;

-- Everything written before this migration was a password login: the name to show is the user name. (Sessions
-- read it from the user row when theirs is NULL, so they need no copy.)
UPDATE authorization_codes SET preferred_username =
    (SELECT u.username FROM users u WHERE u.id = authorization_codes.user_id);
UPDATE grants SET preferred_username = (SELECT u.username FROM users u WHERE u.id = grants.user_id);
