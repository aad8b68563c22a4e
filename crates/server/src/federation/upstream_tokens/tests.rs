//! [`UpstreamTokenSource`] against a small fake token endpoint (counting refreshes; answering fine,
//! `invalid_grant`, or 500) on a SQLite store with a fixed clock.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::{parse_issuer, ServerConfig};
use crate::outbound::idp::{IdpClient, IdpSettings};
use crate::routes::Routes;
use axum::extract::State;
use axum::response::IntoResponse;
use portcullis_authz::clock::FixedClock;
use portcullis_authz::federation::{ProviderKind, ProviderSettings};
use portcullis_authz::random::OsRandom;
use portcullis_authz::vault::VaultKey;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const NOW: i64 = 1_900_000_000;

/// The fake provider's token endpoint: 0 answers new tokens, 1 `invalid_grant`, 2 a 500.
#[derive(Default)]
struct Idp {
    refreshes: AtomicUsize,
    mode: AtomicU8,
    last_form: std::sync::Mutex<String>,
    exchanges: AtomicUsize,
}

async fn token(State(idp): State<Arc<Idp>>, body: String) -> axum::response::Response {
    *idp.last_form.lock().unwrap() = body.clone();
    if !body.contains("grant_type=refresh_token") {
        idp.exchanges.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (grant, token) in [
        ("token-exchange", "exchanged"),
        ("requested_token_use=on_behalf_of", "obo"),
    ] {
        if body.contains(grant) {
            return axum::Json(serde_json::json!({
                "access_token": token, "token_type": "Bearer", "expires_in": 600,
            }))
            .into_response();
        }
    }
    assert!(body.contains("grant_type=refresh_token"), "{body}");
    let n = idp.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    match idp.mode.load(Ordering::SeqCst) {
        0 => axum::Json(serde_json::json!({
            "access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600,
        }))
        .into_response(),
        1 => (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant"})),
        )
            .into_response(),
        _ => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    idp: Arc<Idp>,
    clock: Arc<FixedClock>,
    source: Arc<UpstreamTokenSource>,
    authz: Arc<Authz>,
}

async fn fixture() -> Fixture {
    fixture_with(None).await
}

async fn fixture_with(preset: Option<portcullis_authz::federation::Preset>) -> Fixture {
    let idp = Arc::new(Idp::default());
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cfg = ProviderSettings {
        name: "corp".into(),
        display_name: Some("Corp SSO".into()),
        kind: Some(ProviderKind::OAuth2),
        authorization_endpoint: Some(format!("{base}/authorize")),
        token_endpoint: Some(format!("{base}/token")),
        userinfo_endpoint: Some(format!("{base}/userinfo")),
        client_id: "portcullis".into(),
        client_secret: Some("secret".into()),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap();
    let mut cfg = cfg;
    cfg.preset = preset;
    let clock = Arc::new(FixedClock::new(NOW));
    let settings = IdpSettings {
        clock: clock.clone(),
        ..IdpSettings::default()
    };
    let client = IdpClient::new(settings, None).unwrap();
    let vault = Vault::new(VaultKey::from_bytes([7; 32]), Vec::new());
    let runtime = Arc::new(Runtime::new(vec![cfg], client, vault, false));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = portcullis_store::open(&url, &Default::default())
        .await
        .unwrap();
    let issuer = parse_issuer("http://127.0.0.1:8080").unwrap();
    let config = ServerConfig::new(issuer.clone());
    let routes = Routes::new(&issuer, &config.mcp_path);
    let authz = Arc::new(
        Authz::new(
            store,
            clock.clone(),
            Arc::new(OsRandom),
            config.authz_config(&routes.issuer, &routes.mcp_url),
        )
        .await
        .unwrap(),
    );
    for id in ["u1", "u2"] {
        let user = portcullis_authz::store::UserRecord {
            id: id.into(),
            username: id.into(),
            password_hash: String::new(),
            created_at: NOW,
        };
        authz.core().store().insert_user(&user).await.unwrap();
    }
    let mut source = UpstreamTokenSource::new(runtime, authz.clone());
    source.wait_limit = Duration::from_millis(300);
    Fixture {
        _dir: dir,
        idp,
        clock,
        source: Arc::new(source),
        authz,
    }
}

/// Tokens as a sign-in stores them: `at-0`, refresh token `rt-0`, expiring in `ttl` seconds.
fn signed_in(ttl: i64) -> UpstreamTokens {
    UpstreamTokens::from_response(
        200,
        serde_json::json!({"access_token": "at-0", "refresh_token": "rt-0", "token_type": "Bearer", "expires_in": ttl})
            .to_string()
            .as_bytes(),
        NOW,
    )
    .unwrap()
}

impl Fixture {
    async fn row(&self) -> Option<UpstreamTokenRecord> {
        (self.authz.core().store())
            .upstream_tokens("u1", "corp")
            .await
            .unwrap()
    }

    async fn token(&self) -> Result<String, UpstreamTokenError> {
        (self.source.access_token("u1", "corp").await).map(|t| t.access_token.expose().to_owned())
    }

    fn refreshes(&self) -> usize {
        self.idp.refreshes.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn refreshed_once_when_due_keeping_the_refresh_token_sealed_under_its_row() {
    let f = fixture().await;
    assert_eq!(
        f.token().await,
        Err(UpstreamTokenError::Missing {
            provider: "corp".into()
        })
    );
    f.source.store("u1", "corp", &signed_in(120)).await.unwrap();
    assert_eq!(f.token().await.unwrap(), "at-0");
    f.clock.advance(61); // within 60 s of expiry
    assert_eq!(f.token().await.unwrap(), "at-1");
    assert_eq!(f.token().await.unwrap(), "at-1", "cached");
    assert_eq!(f.refreshes(), 1);
    let row = f.row().await.unwrap();
    assert_eq!(row.refreshing_until, 0, "the lease is released");
    let stored = open_record(f.source.runtime.vault(), &row).unwrap();
    assert_eq!(stored.access_token.expose(), "at-1");
    assert_eq!(
        stored.refresh_token.as_ref().unwrap().expose(),
        "rt-0",
        "no refresh token in the answer: the old one is kept"
    );
    // Bound to its row: the same bytes under another user do not open.
    let moved = UpstreamTokenRecord {
        user_id: "u2".into(),
        ..row.clone()
    };
    assert!(open_record(f.source.runtime.vault(), &moved).is_err());
    assert!(
        !format!("{row:?} {stored:?}").contains("at-1"),
        "no token in Debug"
    );
}

#[tokio::test]
async fn verify_skips_recent_tokens_and_invalid_grant_deletes_them() {
    let f = fixture().await;
    f.source
        .store("u1", "corp", &signed_in(3600))
        .await
        .unwrap();
    f.source.verify("u1", "corp").await.unwrap();
    assert_eq!(
        f.refreshes(),
        0,
        "stored within the last minute: not checked"
    );
    f.clock.advance(VERIFY_INTERVAL);
    f.source.verify("u1", "corp").await.unwrap();
    assert_eq!(f.refreshes(), 1);
    f.clock.advance(VERIFY_INTERVAL);
    f.idp.mode.store(1, Ordering::SeqCst);
    assert_eq!(
        f.source.verify("u1", "corp").await,
        Err(UpstreamTokenError::Revoked {
            provider: "corp".into()
        })
    );
    assert!(f.row().await.is_none(), "deleted");
    let gone = f.token().await.unwrap_err();
    assert!(gone.needs_sign_in(), "{gone:?}");
}

#[tokio::test]
async fn provider_down_keeps_the_valid_token_and_releases_the_lease() {
    let f = fixture().await;
    f.source.store("u1", "corp", &signed_in(90)).await.unwrap();
    f.idp.mode.store(2, Ordering::SeqCst);
    f.clock.advance(40);
    assert_eq!(f.token().await.unwrap(), "at-0", "still valid for 50 s");
    assert_eq!(f.row().await.unwrap().refreshing_until, 0, "lease released");
    f.clock.advance(60);
    let down = f.token().await.unwrap_err();
    assert!(
        matches!(down, UpstreamTokenError::Unavailable { .. }),
        "{down:?}"
    );
    assert!(!down.needs_sign_in());
    // The verify of the refresh grant lets the refresh proceed on this answer (not Revoked).
    assert!(f.row().await.is_some(), "kept: the provider may come back");
}

#[tokio::test]
async fn a_lease_held_elsewhere_is_waited_for() {
    let f = fixture().await;
    f.source.store("u1", "corp", &signed_in(90)).await.unwrap();
    f.clock.advance(40);
    let store = f.authz.core().store();
    let now = f.authz.core().now();
    assert!(store
        .lease_upstream_refresh("u1", "corp", now, now + LEASE_SECONDS)
        .await
        .unwrap());
    // The other instance never finishes: the old token while it is valid, no refresh here.
    f.source.forget("u1", "corp");
    assert_eq!(f.token().await.unwrap(), "at-0");
    assert_eq!(f.refreshes(), 0);
    // The other instance stores new tokens meanwhile: the waiter returns them.
    let waiter = {
        let source = f.source.clone();
        tokio::spawn(async move { source.access_token("u1", "corp").await })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    let newer = UpstreamTokens {
        access_token: Secret::new("at-elsewhere"),
        ..signed_in(3600)
    };
    let rec = seal_record(
        f.source.runtime.vault(),
        "u1",
        "corp",
        &newer,
        &OsRandom,
        now,
    )
    .unwrap();
    store.put_upstream_tokens(&rec).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.access_token.expose(), "at-elsewhere");
    assert_eq!(f.refreshes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_refresh() {
    let f = fixture().await;
    f.source.store("u1", "corp", &signed_in(60)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let source = f.source.clone();
            tokio::spawn(async move { source.access_token("u1", "corp").await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().access_token.expose(), "at-1");
    }
    assert_eq!(f.refreshes(), 1);
}

#[tokio::test]
async fn exchange_is_rfc_8693_or_entra_on_behalf_of_and_cached_per_audience() {
    for (preset, expected, field) in [
        (None, "exchanged", "audience=api%3A%2F%2Fjira"),
        (
            Some(portcullis_authz::federation::Preset::Microsoft),
            "obo",
            "scope=api%3A%2F%2Fjira",
        ),
    ] {
        let f = fixture_with(preset).await;
        f.source
            .store("u1", "corp", &signed_in(3600))
            .await
            .unwrap();
        let t = f
            .source
            .exchanged_token("u1", "corp", "api://jira")
            .await
            .unwrap();
        assert_eq!(t.expose(), expected);
        let form = f.idp.last_form.lock().unwrap().clone();
        assert!(form.contains(field) && form.contains("at-0"), "{form}");
        f.idp.last_form.lock().unwrap().clear();
        let again = f
            .source
            .exchanged_token("u1", "corp", "api://jira")
            .await
            .unwrap();
        assert_eq!(again.expose(), expected);
        assert!(f.idp.last_form.lock().unwrap().is_empty(), "cached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exchanges_share_one() {
    let f = fixture().await;
    f.source
        .store("u1", "corp", &signed_in(3600))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let source = f.source.clone();
            tokio::spawn(async move { source.exchanged_token("u1", "corp", "api://jira").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().expose(), "exchanged");
    }
    assert_eq!(f.idp.exchanges.load(Ordering::SeqCst), 1);
}
