//! Two instances on one PostgreSQL database (`TEST_POSTGRES_URL`), as behind a load balancer: the sign-in
//! starts on instance A and the IdP's callback lands on instance B (the pending sign-in is in the database,
//! sealed with the shared vault key; the state cookie is the browser's).

use super::*;
use crate::idp::{IdpConfig, TestIdp};
use crate::instances::{postgres_url, random_hex, Server as Instance, TempDb};
use crate::support::{browser, enc, get, pkce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

fn vault_key() -> String {
    let hex = random_hex(32);
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_on_one_instance_and_the_callback_on_the_other() {
    let Some(admin) = postgres_url("start_on_one_instance_and_the_callback_on_the_other") else {
        return;
    };
    if !TestIdp::available() {
        return;
    }
    let db = TempDb::create(&admin).await;
    let (pa, pb) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{pa}");
    let mut config = IdpConfig::default();
    config.clients[0].redirect_uris = vec![format!("{issuer}/idp/{PROVIDER}/callback")];
    let idp = TestIdp::start(config);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vault.key");
    std::fs::write(&key_file, vault_key()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let toml = format!(
        "vault_key_file = \"{}\"\n{}",
        key_file.display(),
        provider_table(PROVIDER, idp.issuer(), "")
    );
    let config_path = dir.path().join("portcullis.toml");
    std::fs::write(&config_path, toml).unwrap();
    let path = config_path.display().to_string();
    let extra = ["--issuer", &issuer, "--config", &path];
    let a = Instance::start(&db.url, pa, &extra);
    let b = Instance::start(&db.url, pb, &extra);

    let client = crate::instances::register(&a.base).await;
    let p = pkce();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=pg",
        enc(&client),
        enc(crate::instances::REDIRECT_URI),
        p.challenge
    );
    let br = browser();
    let started = get(&br, &format!("{}/idp/{PROVIDER}/start?{query}", a.base)).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let back = idp
        .login_and_consent(&br, started.location().unwrap(), "carol")
        .await;
    assert!(
        back.starts_with(&format!("{}/idp/{PROVIDER}/callback?", a.base)),
        "{back}"
    );
    // The load balancer sends the callback to B.
    let on_b = back.replacen(&a.base, &b.base, 1);
    let callback = get(&br, &on_b).await;
    assert_eq!(callback.status, StatusCode::SEE_OTHER, "{}", callback.body);
    assert!(sets_session(&callback));
    // Consent and code on A.
    let consent = get(&br, &format!("{}{}", a.base, callback.location().unwrap())).await;
    assert!(consent.is_consent(), "{}", consent.body);
    let form = crate::support::hidden_inputs(&consent.body);
    let mut form: Vec<(String, String)> = form;
    form.push(("decision".into(), "approve".into()));
    let approved = br
        .post(format!("{}/consent", a.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    let code = param(&location, "code").unwrap();
    let (status, token, _) = crate::instances::redeem(
        &crate::instances::http(false),
        &b.base,
        &issuer,
        &client,
        &code,
        &p.verifier,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{token}");
    // A replay of the same callback on A finds nothing.
    let replay = get(&br, &back).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.body);
}
