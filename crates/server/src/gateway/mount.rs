//! `[[gateway.routes]]`: more upstream MCP servers, each on its own path and each its own protected resource
//! (RFC 9728 §1): resource identifier `origin + path` (RFC 8707 audience), its own RFC 9728 document at
//! `/.well-known/oauth-protected-resource<path>` (§3.1 path insertion) listing its own scopes, its own 401
//! challenge (§5.1), its own session ids. A token issued for one route is refused at every other route and at the
//! MCP endpoint (each route behind its own [`guard::ResourceGuard`]).

use super::upstream::{Gateway, RouteResource};
use super::{handlers, RouteConfig};
use crate::guard;
use crate::state::AppState;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The protected resource of `route` on server `s`.
pub fn resource(s: &AppState, route: &RouteConfig) -> RouteResource {
    let config = s.authz.core().config();
    let (scopes, default_scope) = match route.resource_scopes(&config.default_scope) {
        Some(limits) => (
            limits.offered.iter().map(str::to_owned).collect(),
            limits.default,
        ),
        None => (config.resource_scopes(), config.default_scope.clone()),
    };
    RouteResource {
        url: s.routes.url(&route.path),
        metadata_path: s.routes.prm_for(&route.path),
        default_scope,
        scopes,
    }
}

/// Adds every configured route and its metadata document to `router`. The paths were checked at start-up
/// ([`super::config::check_routes`]): distinct, plain, none of the server's own.
pub fn mount(mut router: Router<Arc<AppState>>, s: &Arc<AppState>) -> Router<Arc<AppState>> {
    for route in &s.config.gateway_routes {
        let resource = resource(s, route);
        let document = crate::metadata::documents::protected_resource_document_for(
            &s.routes,
            &resource.url,
            resource.scopes.clone(),
            &format!("MCP server at {} (Portcullis gateway)", route.path),
        );
        let metadata = get(move || {
            let document = document.clone();
            async move { crate::respond::json_bytes(document, "public, max-age=3600") }
        });
        let mut gateway = Gateway::new(route.gateway.clone());
        router = router.route(&resource.metadata_path, crate::cors::route(metadata));
        let guard = guard::ResourceGuard::route(s.clone(), resource.as_resource());
        gateway.route = Some(resource);
        router = router.route(&route.path, crate::cors::route(handlers(gateway, guard)));
    }
    router
}
