//! `scope_from_groups` at the authorization endpoint: a *gated* scope (one some provider's `scope_from_groups`
//! hands out, [`Runtime::gated_scopes`]) is granted only to a user whose groups entitle them to it.
//!
//! The entitlement is derived when the request is shown or approved, from the session and the stored identity:
//! a session opened through provider P entitles its user to `P.scope_from_groups[g]` for each group `g` P
//! reported at the user's last sign-in through P (stored by `touch_identity`). A password session, or one
//! through a provider without `scope_from_groups`, is entitled to no gated scope. Gated scopes the user is not
//! entitled to are dropped from the request (RFC 6749 §3.3: the server may grant less than requested) and shown
//! as not granted on the consent page. Grants keep the scope they were approved with (a refresh can only narrow
//! it, RFC 6749 §6); a user who leaves a group loses the scope at their next authorization.

use super::Runtime;
use crate::state::AppState;
use portcullis_authz::authorize::AuthorizationRequest;
use portcullis_authz::store::SessionRecord;
use portcullis_authz::AuthzError;
use std::collections::BTreeSet;

/// `req` with the gated scopes `session`'s user is not entitled to removed (moved to `ignored_scope`).
pub async fn entitled(
    s: &AppState,
    session: &SessionRecord,
    req: AuthorizationRequest,
) -> Result<AuthorizationRequest, AuthzError> {
    let Some(rt) = s.federation.as_deref() else {
        return Ok(req);
    };
    if rt.gated_scopes().is_empty() || !req.scope.iter().any(|t| rt.gated_scopes().contains(t)) {
        return Ok(req);
    }
    let entitled = entitlements(s, rt, session).await?;
    Ok(s.authz
        .authorizations()
        .restrict_gated_scope(req, rt.gated_scopes(), &entitled))
}

/// The gated scopes the session's user is entitled to (see the module documentation).
async fn entitlements(
    s: &AppState,
    rt: &Runtime,
    session: &SessionRecord,
) -> Result<BTreeSet<String>, AuthzError> {
    let Some(provider) = session.identity.idp.as_deref() else {
        return Ok(BTreeSet::new());
    };
    let Some(cfg) = rt.provider(provider) else {
        return Ok(BTreeSet::new());
    };
    let identities = s
        .authz
        .core()
        .store()
        .identities_of(&session.user_id)
        .await?;
    let Some(identity) = identities.iter().find(|i| i.provider == provider) else {
        return Ok(BTreeSet::new());
    };
    Ok(cfg
        .scope_from_groups
        .iter()
        .filter(|(group, _)| identity.groups.contains(group))
        .flat_map(|(_, scopes)| scopes.iter().cloned())
        .collect())
}
