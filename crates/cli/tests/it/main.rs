//! The integration tests of the `portcullis` binary: each module starts the real binary on 127.0.0.1:0 (or
//! several, on one database) and talks HTTP to it, or drives a real browser, a real client, a fake upstream.
//! One test binary for the crate, to keep link time down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod cimd;
mod client_flow;
mod cors;
mod crash;
mod discovery_variants;
mod fake_idp;
mod federation;
mod federation_admin;
mod federation_vault;
mod gateway;
mod gateway_failures;
mod gateway_features;
mod gateway_modern;
mod gateway_routes;
mod guard_example;
mod idp;
mod instances;
mod introspection;
mod mcp_modern;
mod multi_instance;
mod negative;
mod reaping;
mod refresh_grace;
mod registration;
mod revocation_push;
mod scopes;
mod security;
mod seed_flow;
mod support;
