//! Sign-ins that succeed: OpenID Connect with just-in-time users and `scope_from_groups`, a plain OAuth 2.0
//! provider (userinfo only), a key rotation at the IdP between two sign-ins, and `password_login = false`.

use super::*;
use crate::idp::TestIdp;
use crate::support::{browser, get, pkce, register_public, PASSWORD, USER};

fn line_of<'a>(list: &'a str, name: &str) -> &'a str {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{list}"))
}

/// OpenID Connect end to end: carol is created at her first sign-in (no password, identity listed by `user list`),
/// her groups entitle her to the gated `mcp:admin`, the token says who she is; her second sign-in reuses the user.
#[tokio::test]
async fn oidc_sign_in_creates_the_user_once_and_the_token_names_her() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions {
        provider: "scope_from_groups = { admins = [\"mcp:admin\"] }",
        ..FedOptions::default()
    });
    let client = register_public(&fed.server).await;
    let p = pkce();
    let extra = "&state=s1&scope=mcp%3Atools%20mcp%3Aadmin";
    let token = sign_in_for_token(&fed, &browser(), &client, &p, extra, "carol@example.com").await;
    let access = token["access_token"].as_str().unwrap();
    let scope = token["scope"].as_str().unwrap();
    assert!(
        scope.contains("mcp:admin") && scope.contains("mcp:tools"),
        "{token}"
    );
    let who = whoami(&fed.server, access).await;
    assert_eq!(who["preferred_username"], "carol", "{who}");
    assert_eq!(who["email"], "carol@example.com", "{who}");
    assert_eq!(who["idp"], PROVIDER, "{who}");
    let sub = who["sub"].as_str().unwrap().to_owned();

    let list = user_list(&fed.server);
    let carol = line_of(&list, "carol");
    assert!(carol.contains("corp: carol"), "{list}");
    assert!(carol.contains("no password"), "{list}");

    // A second sign-in (new browser, no Portcullis session): the same user, no carol-2.
    let p2 = pkce();
    let again = sign_in_for_token(&fed, &browser(), &client, &p2, "&state=s2", "carol").await;
    let who2 = whoami(&fed.server, again["access_token"].as_str().unwrap()).await;
    assert_eq!(who2["sub"], sub.as_str(), "{who2}");
    assert!(!user_list(&fed.server).contains("carol-2"));
    // Nothing secret in the server's log.
    let log = fed.server.log();
    assert!(
        !log.contains(access) && !log.contains(CLIENT_SECRET),
        "{log}"
    );
}

/// `scope_from_groups`: dave (group sales) and the password user alice never get the gated scope.
#[tokio::test]
async fn gated_scopes_need_the_group() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions {
        provider: "scope_from_groups = { admins = [\"mcp:admin\"] }",
        ..FedOptions::default()
    });
    let client = register_public(&fed.server).await;
    let extra = "&state=s&scope=mcp%3Atools%20mcp%3Aadmin";
    // dave's consent page lists mcp:admin as not granted.
    let p = pkce();
    let url = crate::support::authorize_url(&fed.server, &client, &p.challenge, extra);
    let b = browser();
    let callback = through_idp(&fed, &b, &url, "dave").await;
    let (consent, _) = consent_and_code(&fed, &b, &callback).await;
    let consent = consent.expect("a first authorization shows the consent page");
    assert!(consent.body.contains("not granted"), "{}", consent.body);
    assert!(
        consent.body.contains("<code>mcp:admin</code>"),
        "{}",
        consent.body
    );
    let p = pkce();
    let dave = sign_in_for_token(&fed, &browser(), &client, &p, extra, "dave").await;
    assert_eq!(dave["scope"], "mcp:tools", "{dave}");
    let who = whoami(&fed.server, dave["access_token"].as_str().unwrap()).await;
    // dave's email is unverified at the IdP: never in the token.
    assert!(who.get("email").is_none(), "{who}");
    let p = pkce();
    let code = crate::support::code_for(&fed.server, &client, &p, extra).await;
    let (status, alice) = exchange(&fed.server, &client, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    assert_eq!(alice["scope"], "mcp:tools", "{alice}");
}

/// `kind = "oauth2"`: declared endpoints, the user from userinfo (no ID token is used).
#[tokio::test]
async fn oauth2_provider_signs_in_through_userinfo() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions {
        provider: "kind = \"oauth2\"\nauthorization_endpoint = \"{issuer}/auth\"\n\
                   token_endpoint = \"{issuer}/token\"\nuserinfo_endpoint = \"{issuer}/me\"",
        ..FedOptions::default()
    });
    let client = register_public(&fed.server).await;
    let p = pkce();
    let token = sign_in_for_token(&fed, &browser(), &client, &p, "&state=o", "carol").await;
    let who = whoami(&fed.server, token["access_token"].as_str().unwrap()).await;
    assert_eq!(who["preferred_username"], "carol", "{who}");
    assert_eq!(who["idp"], PROVIDER, "{who}");
    assert!(line_of(&user_list(&fed.server), "carol").contains("corp: carol"));
}

/// The IdP rotates its signing keys between two sign-ins: the second ID token has an unknown `kid`, and
/// Portcullis refetches the JWKS once (OpenID Connect Core §10.1.1), at once: forced refetches are spaced only
/// among themselves.
#[tokio::test]
async fn a_key_rotation_at_the_idp_is_followed() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let client = register_public(&fed.server).await;
    let p = pkce();
    sign_in_for_token(&fed, &browser(), &client, &p, "&state=k1", "carol").await;
    let kids = fed.idp.rotate_keys().await;
    assert!(!kids.is_empty());
    let p = pkce();
    let token = sign_in_for_token(&fed, &browser(), &client, &p, "&state=k2", "carol").await;
    assert!(token["access_token"].is_string(), "{token}");
}

/// `password_login = false`: the sign-in page has no password form, and `POST /login` is refused.
#[tokio::test]
async fn password_login_off_hides_the_form_and_refuses_the_post() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions {
        top: "password_login = false",
        ..FedOptions::default()
    });
    let client = register_public(&fed.server).await;
    let p = pkce();
    let url = crate::support::authorize_url(&fed.server, &client, &p.challenge, "&state=x");
    let b = browser();
    let page = get(&b, &url).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Continue with Corp SSO"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("name=\"password\""), "{}", page.body);
    let resp = b
        .post(fed.server.url("/login"))
        .form(&[
            ("request", query_of(&url).as_str()),
            ("username", USER),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("portcullis_session=")));
}

/// `portcullis login` through the provider (tests/support/auto_browser.py's federated mode as `$BROWSER`):
/// the client names the user the provider signed in.
#[tokio::test]
async fn client_login_through_the_provider_names_the_user() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let s = &fed.server;
    let out = Command::new(crate::support::bin())
        .args(["login", &s.mcp])
        .env("PORTCULLIS_HOME", s.home.path())
        .env("BROWSER", crate::support::auto_browser())
        .env("PORTCULLIS_TEST_IDP", PROVIDER)
        .env("PORTCULLIS_TEST_USER", "carol@example.com")
        .env("PORTCULLIS_TEST_PASSWORD", crate::idp::IDP_PASSWORD)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!(
        "Logged in to {} as carol (carol@example.com via Corp SSO).",
        s.mcp
    );
    assert!(stdout.lines().any(|l| l == expected), "{stdout}");
}

fn session_of(p: &crate::support::Page) -> Option<String> {
    p.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find_map(|c| c.strip_prefix("portcullis_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

/// A sign-in through the provider in a browser that already has a session replaces it (the session id rotates
/// as at a password sign-in): the old cookie no longer signs anyone in.
#[tokio::test]
async fn a_provider_sign_in_rotates_the_session() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let client = register_public(&fed.server).await;
    let p = pkce();
    let url = crate::support::authorize_url(&fed.server, &client, &p.challenge, "&state=r");
    let b = browser();
    let login = get(&b, &url).await;
    assert!(login.is_login());
    let after = crate::support::submit(
        &b,
        &fed.server,
        &login,
        "/login",
        &[("username", USER), ("password", PASSWORD)],
    )
    .await;
    let old = session_of(&after).expect("no password session");
    let back = to_idp_and_back(&fed, &b, &url, "carol", true).await;
    let callback = get(&b, &back).await;
    let new = session_of(&callback).expect("no provider session");
    assert_ne!(old, new);
    let with_old = crate::support::http()
        .get(&url)
        .header("cookie", format!("portcullis_session={old}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        with_old.contains("action=\"/login\""),
        "the old session still works"
    );
}
