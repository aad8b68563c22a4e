//! The refresh lease across two instances on one PostgreSQL database (`TEST_POSTGRES_URL`).

use super::*;

/// A base64url vault key for instances sharing a PostgreSQL database (no database directory to generate one in).
fn shared_vault_key(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bytes: Vec<u8> = crate::instances::random_hex(32)
        .as_bytes()
        .chunks(2)
        .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
        .collect();
    let path = dir.join("vault.key");
    std::fs::write(&path, URL_SAFE_NO_PAD.encode(bytes)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The lease across instances on PostgreSQL (`TEST_POSTGRES_URL`): after expiry, one call on each instance at
/// once, one refresh at the IdP, both calls carry the refreshed token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_instances_refresh_once_through_the_lease() {
    use crate::instances::{postgres_url, Server as Instance, TempDb};
    let Some(admin) = postgres_url("two_postgres_instances_refresh_once_through_the_lease") else {
        return;
    };
    if !TestIdp::available() {
        return;
    }
    let db = TempDb::create(&admin).await;
    let (pa, pb) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{pa}");
    let mut config = IdpConfig {
        access_token_ttl: Some(SHORT_TTL),
        ..IdpConfig::default()
    };
    config.clients[0].redirect_uris = vec![format!("{issuer}/idp/corp/callback")];
    let idp = TestIdp::start(config);
    let (up, up_url) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let key = shared_vault_key(dir.path());
    let toml = format!(
        "vault_key_file = \"{}\"\n[[identity_providers]]\nname = \"corp\"\ndisplay_name = \"Corp SSO\"\n\
         issuer = \"{}\"\nclient_id = \"portcullis\"\nclient_secret = \"portcullis idp secret\"\n\
         scopes = [\"openid\", \"email\", \"profile\"]\n\n[gateway]\nupstream = \"{up_url}\"\n\
         upstream_token_from = \"corp\"\n",
        key.display(),
        idp.issuer()
    );
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, toml).unwrap();
    let path = path.display().to_string();
    let extra = ["--issuer", &issuer, "--config", &path];
    let a = Instance::start(&db.url, pa, &extra);
    let b = Instance::start(&db.url, pb, &extra);

    // Sign in on A through the IdP, consent, redeem.
    let client = crate::instances::register(&a.base).await;
    let p = pkce();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=pg&resource={}",
        enc(&client),
        enc(crate::instances::REDIRECT_URI),
        p.challenge,
        enc(&format!("{issuer}/mcp")),
    );
    let br = browser();
    let started = get(&br, &format!("{}/idp/corp/start?{query}", a.base)).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let back = idp
        .login_and_consent(&br, started.location().unwrap(), "carol@example.com")
        .await;
    let callback = get(&br, &back).await;
    assert_eq!(callback.status, StatusCode::SEE_OTHER, "{}", callback.body);
    let consent = get(&br, &format!("{}{}", a.base, callback.location().unwrap())).await;
    assert!(consent.is_consent(), "{}", consent.body);
    let mut form = hidden_inputs(&consent.body);
    form.push(("decision".into(), "approve".into()));
    let approved = br
        .post(format!("{}/consent", a.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    let code = param(&location, "code").unwrap();
    let (status, tokens, _) = crate::instances::redeem(
        &crate::instances::http(false),
        &a.base,
        &issuer,
        &client,
        &code,
        &p.verifier,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let on = |base: &str| format!("{base}/mcp");
    assert_eq!(
        mcp_post(&on(&a.base), Some(&access), TOOLS_LIST)
            .await
            .status,
        StatusCode::OK
    );
    let first = up.last_bearer();
    tokio::time::sleep(Duration::from_secs(SHORT_TTL - 58)).await;
    let (mcp_a, mcp_b) = (on(&a.base), on(&b.base));
    let (x, y) = tokio::join!(
        mcp_post(&mcp_a, Some(&access), TOOLS_LIST),
        mcp_post(&mcp_b, Some(&access), TOOLS_LIST)
    );
    assert_eq!(
        (x.status, y.status),
        (StatusCode::OK, StatusCode::OK),
        "{} / {}",
        x.body,
        y.body
    );
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(
        seen[seen.len() - 2].0,
        seen[seen.len() - 1].0,
        "one refreshed token"
    );
    assert_ne!(up.last_bearer(), first);
    assert!(idp_says_carol(&idp, &up.last_bearer()).await);
}
