//! Test support: a fake issuer on 127.0.0.1:0 (RFC 8414 metadata and a JWKS, with switches for rotation,
//! failures, oversized and slow answers, and hit counters) that signs tokens with real ES256 keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use p256::ecdsa::SigningKey;
use portcullis_authz::access_token::{AccessClaims, Audience};
use portcullis_authz::{jwt, keys};
use portcullis_proto::b64;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fixed P-256 key and its public JWK named `kid`.
pub(crate) fn key_and_jwk(kid: &str) -> (SigningKey, Value) {
    key_n(7, Some(kid.to_owned()))
}

/// Key number `n` (a deterministic scalar) and its public JWK (kid = RFC 7638 thumbprint unless given).
fn key_n(n: u8, kid: Option<String>) -> (SigningKey, Value) {
    let key = SigningKey::from_slice(&[n; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let x = b64::encode(point.x().unwrap());
    let y = b64::encode(point.y().unwrap());
    let kid = kid.unwrap_or_else(|| keys::thumbprint(&x, &y));
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"});
    (key, jwk)
}

#[derive(Default)]
struct Switches {
    failing: bool,
    huge: bool,
    slow: bool,
    metadata_issuer: Option<String>,
}

struct Shared {
    issuer: String,
    keys: Mutex<Vec<(SigningKey, Value)>>,
    published: Mutex<Vec<bool>>,
    hits: Mutex<HashMap<String, u64>>,
    switches: Mutex<Switches>,
}

/// A running fake issuer.
pub(crate) struct Issuer {
    /// `http://127.0.0.1:PORT`.
    pub(crate) issuer: String,
    shared: Arc<Shared>,
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    *s.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let (failing, huge, slow, meta_iss) = {
        let w = s.switches.lock().unwrap();
        (w.failing, w.huge, w.slow, w.metadata_issuer.clone())
    };
    if slow {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    match path.as_str() {
        "/.well-known/oauth-authorization-server" => axum::Json(json!({
            "issuer": meta_iss.unwrap_or_else(|| s.issuer.clone()),
            "jwks_uri": format!("{}/jwks.json", s.issuer),
            "response_types_supported": ["code"],
        }))
        .into_response(),
        "/jwks.json" if huge => "x".repeat(300 * 1024).into_response(),
        "/jwks.json" => {
            let keys = s.keys.lock().unwrap();
            let published = s.published.lock().unwrap();
            let list: Vec<Value> = keys
                .iter()
                .zip(published.iter())
                .filter(|(_, p)| **p)
                .map(|((_, j), _)| j.clone())
                .collect();
            axum::Json(json!({ "keys": list })).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl Issuer {
    /// Starts with one key.
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            keys: Mutex::new(vec![key_n(1, None)]),
            published: Mutex::new(vec![true]),
            hits: Mutex::default(),
            switches: Mutex::default(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { issuer, shared }
    }

    /// The kid of key `i`.
    pub(crate) fn kid(&self, i: usize) -> String {
        self.shared.keys.lock().unwrap()[i].1["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Adds a new published key (the next index).
    pub(crate) fn rotate(&self) {
        let mut keys = self.shared.keys.lock().unwrap();
        let n = u8::try_from(keys.len() + 1).unwrap();
        keys.push(key_n(n, None));
        self.shared.published.lock().unwrap().push(true);
    }

    /// Stops publishing key `i`.
    pub(crate) fn drop_key(&self, i: usize) {
        self.shared.published.lock().unwrap()[i] = false;
    }

    /// Requests seen for `path`.
    pub(crate) fn hits(&self, path: &str) -> u64 {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every request answers 500.
    pub(crate) fn set_failing(&self, on: bool) {
        self.shared.switches.lock().unwrap().failing = on;
    }

    /// The JWKS is 300 KiB of garbage.
    pub(crate) fn set_huge(&self, on: bool) {
        self.shared.switches.lock().unwrap().huge = on;
    }

    /// Every answer takes 5 s.
    pub(crate) fn set_slow(&self, on: bool) {
        self.shared.switches.lock().unwrap().slow = on;
    }

    /// The metadata names this issuer.
    pub(crate) fn set_metadata_issuer(&self, iss: &str) {
        self.shared.switches.lock().unwrap().metadata_issuer = Some(iss.to_owned());
    }

    /// Claims for `resource` valid around `now`.
    pub(crate) fn claims(&self, resource: &str, scope: &str, now: i64) -> AccessClaims {
        AccessClaims {
            iss: self.issuer.clone(),
            sub: "user-1".into(),
            aud: Audience::One(resource.into()),
            client_id: "client-1".into(),
            scope: Some(scope.into()),
            exp: now + 600,
            iat: now,
            nbf: None,
            jti: "jti-1".into(),
            grant_id: None,
            preferred_username: None,
            email: None,
            idp: None,
            idp_name: None,
        }
    }

    /// A token signed with key `i` (typ `at+jwt`).
    pub(crate) fn mint(&self, i: usize, claims: &AccessClaims) -> String {
        self.mint_raw(i, "at+jwt", &serde_json::to_vec(claims).unwrap())
    }

    /// A token with any `typ` and payload, signed with key `i` (ES256 over `header.payload`, RFC 7515 §5.1;
    /// signed here with `p256` so the test does not depend on the issuer-side signer's key type).
    pub(crate) fn mint_raw(&self, i: usize, typ: &str, payload: &[u8]) -> String {
        use p256::ecdsa::signature::Signer;
        let keys = self.shared.keys.lock().unwrap();
        let (key, jwk) = &keys[i];
        let header = json!({"alg": jwt::ALG, "typ": typ, "kid": jwk["kid"]});
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(payload)
        );
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64::encode(sig.to_bytes()))
    }
}
