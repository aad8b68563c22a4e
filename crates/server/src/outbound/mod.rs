//! Outbound adapters: the server's own network clients, each behind a port the logic defines.
//! - [`cimd`]: fetches Client ID Metadata Documents (URL `client_id`s) for `authz`'s `ClientMetadataResolver`,
//!   with an SSRF guard (pinned, vetted addresses; no redirects), size and time limits, and a cache.
//! - [`idp`]: calls upstream identity providers (discovery, key sets, token endpoint, userinfo) for federated
//!   sign-in and the upstream token vault, with cached discovery and keys, timeouts, size caps, no redirects.
//!
//! (The gateway's upstream client stays in `gateway::forward`, next to the streaming it serves.)

pub mod cimd;
pub mod idp;
