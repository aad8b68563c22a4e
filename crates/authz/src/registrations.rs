//! The registration operations of [`Authz`], on top of the policy modules: registering a client (RFC 7591 §3),
//! looking one up (registered, or a URL `client_id` resolved from its Client ID Metadata Document), and the
//! installed [`ClientMetadataResolver`]. The rules live below, with no dependency back up here:
//! [`crate::registration`] (RFC 7591 policy) and [`crate::client_id_metadata`] (URL and document rules).

use crate::client_id_metadata::{
    client_from_document, is_url_client_id, ClientIdUrl, ClientMetadataResolver,
};
use crate::error::AuthzError;
use crate::random;
use crate::registration::{check_metadata, RegisteredClient};
use crate::secret::Secret;
use crate::service::Authz;
use crate::store::{ClientRecord, StoreError};
use portcullis_proto::registration::{ClientInformation, ClientMetadata};
use std::sync::Arc;

impl Authz {
    /// Registers a client (RFC 7591 §3.1) and returns the client information response (§3.2.1). For a
    /// confidential client the secret appears in this response only; it is stored hashed.
    pub async fn register(&self, meta: ClientMetadata) -> Result<ClientInformation, AuthzError> {
        let meta = check_metadata(meta, &self.config.supported_scopes())?;
        let now = self.now();
        let client_id = random::ordered_id(self.rng.as_ref(), self.clock.now_millis());
        let secret: Option<Secret> = match meta.token_endpoint_auth_method.as_deref() {
            Some("none") => None,
            _ => Some(random::token(self.rng.as_ref())),
        };
        let metadata_json =
            serde_json::to_string(&meta).map_err(|e| AuthzError::Internal(e.to_string()))?;
        let record = ClientRecord {
            client_id: client_id.clone(),
            secret_hash: secret.as_ref().map(Secret::hash),
            metadata_json,
            created_at: now,
        };
        self.store.insert_client(&record).await?;
        Ok(ClientInformation {
            client_id,
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret.map(|s| s.expose().to_owned()),
            client_id_issued_at: Some(now),
            metadata: meta,
        })
    }

    /// Reads a registered client. With a [`ClientMetadataResolver`]
    /// installed, a URL `client_id` is resolved from its Client ID Metadata Document instead (an invalid one
    /// is `invalid_client`, an unreachable one `temporarily_unavailable`).
    pub async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, AuthzError> {
        if let Some(resolver) = &self.client_metadata {
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
        match self.store.client(client_id).await? {
            Some(r) => Ok(Some(RegisteredClient::from_record(&r)?)),
            None => Ok(None),
        }
    }
}

impl Authz {
    /// Installs the resolver for Client ID Metadata Documents; without one, URL client ids are unknown and
    /// support is not advertised.
    pub fn with_client_metadata_resolver(
        mut self,
        resolver: Arc<dyn ClientMetadataResolver>,
    ) -> Self {
        self.client_metadata = Some(resolver);
        self
    }

    /// Whether Client ID Metadata Documents are supported (a resolver is installed): the AS metadata's
    /// `client_id_metadata_document_supported`.
    pub fn supports_client_metadata_documents(&self) -> bool {
        self.client_metadata.is_some()
    }

    /// Resolves a URL `client_id` through `resolver`. The clients table gets a row for it (its metadata as
    /// last seen) because consents and grants refer to clients; the document stays the authority.
    pub(crate) async fn client_from_url(
        &self,
        resolver: &dyn ClientMetadataResolver,
        client_id: &str,
    ) -> Result<RegisteredClient, AuthzError> {
        let url = ClientIdUrl::parse(client_id, |u| resolver.allows_http(u))?;
        let doc = resolver.fetch(&url).await?;
        let now = self.now();
        let client = client_from_document(&url, &doc, &self.config.supported_scopes(), now)?;
        if self.store.client(client_id).await?.is_none() {
            let record = ClientRecord {
                client_id: client.client_id.clone(),
                secret_hash: None,
                metadata_json: serde_json::to_string(&client.metadata)
                    .map_err(|e| AuthzError::Internal(e.to_string()))?,
                created_at: now,
            };
            match self.store.insert_client(&record).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(client)
    }
}
