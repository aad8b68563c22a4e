//! [`Registrations`]: client registration as its own service over the shared dependencies ([`Core`]):
//! registering a client (RFC 7591 §3), looking one up (registered, or a URL `client_id` resolved from its Client
//! ID Metadata Document through the installed [`ClientMetadataResolver`]), and the short-lived client cache
//! client authentication reads. The rules live below, with no dependency back up here:
//! [`crate::registration`] (RFC 7591 policy) and [`crate::client_id_metadata`] (URL and document rules).
//!
//! Client authentication ([`crate::client_auth`]) and removal are here too: both read or change the cache.

use crate::client_auth::{self, ClientCredentials};
use crate::client_cache::ClientCache;
use crate::client_id_metadata::{
    client_from_document, is_url_client_id, ClientIdUrl, ClientMetadataResolver,
};
use crate::client_reaping::{ReapPolicy, REAP_BATCH};
use crate::error::AuthzError;
use crate::introspection::{introspection_metadata, IntrospectionAudiences};
use crate::random;
use crate::registration::{check_metadata, RegisteredClient, RegistrationPolicy};
use crate::secret::Secret;
use crate::shared::Core;
use crate::store::{ClientOrigin, ClientRecord, StoreError};
use portcullis_proto::registration::{ClientInformation, ClientMetadata};
use std::sync::Arc;

/// The registration service. Built by [`crate::Authz::new`]; reached with [`crate::Authz::registrations`].
pub struct Registrations {
    core: Arc<Core>,
    /// The registration rules' parameters (scopes, redirect schemes), computed once.
    policy: RegistrationPolicy,
    /// Fetches Client ID Metadata Documents; `None`: URL client ids are not supported.
    resolver: Option<Arc<dyn ClientMetadataResolver>>,
    /// Registered clients, for client authentication ([`crate::client_cache`]).
    cache: ClientCache,
}

impl std::fmt::Debug for Registrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrations")
            .field("policy", &self.policy)
            .field("client_id_metadata", &self.resolver.is_some())
            .finish_non_exhaustive()
    }
}

impl Registrations {
    /// The service over the shared dependencies, with `resolver` fetching Client ID Metadata Documents (`None`:
    /// URL client ids are unknown).
    pub fn new(core: Arc<Core>, resolver: Option<Arc<dyn ClientMetadataResolver>>) -> Self {
        Self {
            policy: RegistrationPolicy {
                supported_scopes: core.config.supported_scopes(),
                redirect_schemes: core.config.allowed_redirect_schemes.clone(),
                localhost: core.config.localhost_redirect_uris,
            },
            core,
            resolver,
            cache: ClientCache::default(),
        }
    }

    /// Whether Client ID Metadata Documents are supported (a resolver is installed): the AS metadata's
    /// `client_id_metadata_document_supported`.
    pub fn supports_client_metadata_documents(&self) -> bool {
        self.resolver.is_some()
    }

    /// Registers a client (RFC 7591 §3.1) and returns the client information response (§3.2.1). For a
    /// confidential client the secret appears in this response only; it is stored hashed.
    pub async fn register(&self, meta: ClientMetadata) -> Result<ClientInformation, AuthzError> {
        let meta = check_metadata(meta, &self.policy)?;
        let now = self.core.clock.now();
        let client_id = random::ordered_id(self.core.rng.as_ref(), self.core.clock.now_millis());
        let secret: Option<Secret> = match meta.token_endpoint_auth_method.as_deref() {
            Some("none") => None,
            _ => Some(random::token(self.core.rng.as_ref())),
        };
        let metadata_json =
            serde_json::to_string(&meta).map_err(|e| AuthzError::Internal(e.to_string()))?;
        let record = ClientRecord {
            client_id: client_id.clone(),
            secret_hash: secret.as_ref().map(Secret::hash),
            metadata_json,
            created_at: now,
            origin: ClientOrigin::Registered,
            introspection: None,
        };
        self.core.store.insert_client(&record).await?;
        Ok(ClientInformation {
            client_id,
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret.map(|s| s.expose().to_owned()),
            client_id_issued_at: Some(now),
            metadata: meta,
        })
    }

    /// Makes a resource server's introspection credential (`portcullis clients add NAME --introspection`,
    /// [`crate::introspection`]): a confidential client authenticating with HTTP Basic, with no redirect URI, no
    /// grant type and no response type, so it can never obtain a token; it may only introspect the access tokens
    /// of `audiences`. Returns its client id and its secret (shown once; stored hashed).
    pub async fn add_introspection_credential(
        &self,
        name: &str,
        audiences: &IntrospectionAudiences,
    ) -> Result<(String, Secret), AuthzError> {
        let meta = introspection_metadata(name, audiences)?;
        let now = self.core.clock.now();
        let client_id = random::ordered_id(self.core.rng.as_ref(), self.core.clock.now_millis());
        let secret = random::token(self.core.rng.as_ref());
        let record = ClientRecord {
            client_id: client_id.clone(),
            secret_hash: Some(secret.hash()),
            metadata_json: serde_json::to_string(&meta)
                .map_err(|e| AuthzError::Internal(e.to_string()))?,
            created_at: now,
            origin: ClientOrigin::Admin,
            introspection: Some(audiences.to_stored()),
        };
        self.core.store.insert_client(&record).await?;
        Ok((client_id, secret))
    }

    /// Reads a registered client. With a [`ClientMetadataResolver`] installed, a URL `client_id` is resolved
    /// from its Client ID Metadata Document instead (an invalid one is `invalid_client`, an unreachable one
    /// `temporarily_unavailable`).
    pub async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, AuthzError> {
        if let Some(resolver) = &self.resolver {
            if is_url_client_id(client_id) {
                return self
                    .client_from_url(resolver.as_ref(), client_id)
                    .await
                    .map(Some);
            }
        }
        if client_id.is_empty() || client_id.len() > 256 {
            return Ok(None);
        }
        match self.core.store.client(client_id).await? {
            Some(r) => Ok(Some(RegisteredClient::from_record(&r)?)),
            None => Ok(None),
        }
    }

    /// The client `client_id` for client authentication: from [`crate::client_cache`] when it was read in the
    /// last seconds (URL client ids are never cached here: their documents have their own cache).
    pub(crate) async fn client_for_authentication(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<RegisteredClient>>, AuthzError> {
        if is_url_client_id(client_id) {
            return Ok(self.client(client_id).await?.map(Arc::new));
        }
        let now = self.core.clock.now();
        if let Some(c) = self.cache.get(client_id, now) {
            return Ok(Some(c));
        }
        let Some(c) = self.client(client_id).await? else {
            return Ok(None);
        };
        let c = Arc::new(c);
        self.cache.insert(c.clone(), now);
        Ok(Some(c))
    }

    /// Authenticates the client the way it registered. One message for unknown client and wrong secret.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<Arc<RegisteredClient>, AuthzError> {
        let client = self
            .client_for_authentication(creds.client_id())
            .await?
            .ok_or_else(client_auth::failed)?;
        client_auth::check(client, creds)
    }

    /// Removes a client; its grants are revoked. Returns whether the client existed.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, AuthzError> {
        let now = self.core.clock.now();
        let existed = self
            .core
            .store
            .delete_client(client_id, now, self.core.revocation_expiry(now))
            .await?;
        self.cache.remove(client_id);
        Ok(existed)
    }

    /// Deletes the dead registrations `policy` reaps ([`crate::client_reaping`]), in batches of [`REAP_BATCH`]
    /// (each its own short transaction), and forgets them in this process's client cache (another instance's
    /// cache forgets them within [`crate::client_cache::CLIENT_CACHE_TTL`]; their grants are gone already).
    /// Returns the deleted client ids. Nothing when both rules are off.
    pub async fn reap(&self, policy: &ReapPolicy) -> Result<Vec<String>, AuthzError> {
        let mut reaped = Vec::new();
        if policy.is_off() {
            return Ok(reaped);
        }
        let now = self.core.clock.now();
        let cutoffs = policy.cutoffs(now);
        let revocation_expires_at = self.core.revocation_expiry(now);
        let mut after = String::new();
        loop {
            let batch = (self.core.store)
                .reap_clients(&cutoffs, &after, REAP_BATCH, revocation_expires_at)
                .await?;
            for id in &batch {
                self.cache.remove(id);
            }
            let done = batch.len() < REAP_BATCH as usize;
            if let Some(last) = batch.last() {
                after.clone_from(last);
            }
            reaped.extend(batch);
            if done {
                return Ok(reaped);
            }
        }
    }

    /// The cache, for tests of its rules.
    #[cfg(test)]
    pub(crate) fn cache(&self) -> &ClientCache {
        &self.cache
    }

    /// Resolves a URL `client_id` through `resolver`. The clients table gets a row for it (its metadata as
    /// last seen) because consents and grants refer to clients; the document stays the authority.
    async fn client_from_url(
        &self,
        resolver: &dyn ClientMetadataResolver,
        client_id: &str,
    ) -> Result<RegisteredClient, AuthzError> {
        let url = ClientIdUrl::parse(client_id, |u| resolver.allows_http(u))?;
        let doc = resolver.fetch(&url).await?;
        let now = self.core.clock.now();
        let client = client_from_document(&url, &doc, &self.policy, now)?;
        if self.core.store.client(client_id).await?.is_none() {
            let record = ClientRecord {
                client_id: client.client_id.clone(),
                secret_hash: None,
                metadata_json: serde_json::to_string(&client.metadata)
                    .map_err(|e| AuthzError::Internal(e.to_string()))?,
                created_at: now,
                origin: ClientOrigin::MetadataDocument,
                introspection: None,
            };
            match self.core.store.insert_client(&record).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::client_auth::ClientCredentials;
    use crate::client_reaping::ReapPolicy;
    use crate::testing::{authz_with_clock, register_public};

    #[tokio::test]
    async fn a_reaped_client_is_forgotten_by_this_process_at_once() {
        let (a, clock) = authz_with_clock().await;
        let id = register_public(&a).await;
        let creds = ClientCredentials::Public {
            client_id: id.clone(),
        };
        let policy = ReapPolicy::default();
        assert!(a.registrations().reap(&policy).await.unwrap().is_empty());
        clock.advance(policy.tokenless_after + 1);
        // Cached a moment before it is reaped.
        a.registrations().authenticate_client(&creds).await.unwrap();
        assert_eq!(
            a.registrations().reap(&policy).await.unwrap(),
            vec![id.clone()]
        );
        assert!(
            a.registrations().cache().get(&id, a.core().now()).is_none(),
            "not served from the cache"
        );
        assert!(a.registrations().authenticate_client(&creds).await.is_err());
        let off = ReapPolicy {
            tokenless_after: 0,
            idle_after: 0,
        };
        let other = register_public(&a).await;
        clock.advance(1000 * 24 * 3600);
        assert!(a.registrations().reap(&off).await.unwrap().is_empty());
        assert!(a.registrations().client(&other).await.unwrap().is_some());
    }
}
