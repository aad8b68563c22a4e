//! The real browser through a sign-in at an upstream identity provider (issue 13): headless Chromium opens
//! Portcullis's authorization URL, presses "Continue with Corp SSO" on the sign-in page, signs in and consents
//! on the test IdP's own pages (node-oidc-provider, [`crate::idp`]), comes back through
//! `/idp/corp/callback` (OIDC Core §3.1.2.5, RFC 9207 `iss`) to Portcullis's consent page, approves, and lands
//! on the client's loopback callback with `code`, `state` and `iss`; the code, exchanged with its PKCE verifier
//! (RFC 7636 §4.5), buys a token whose `whoami` names the IdP's user, her verified email and the provider.
//!
//! The second test is a provider-only Portcullis (`password_login = false`): the sign-in page offers only the
//! provider, and "Deny" at the IdP ends on Portcullis's "cancelled" page, whose "Return to the application"
//! link takes the browser to the client with `error=access_denied` (RFC 6749 §4.1.2.1).
//!
//! Screenshots (`<target>/browser-screenshots/federation-*.png`, `provider-only-*.png`) show the new sign-in
//! page, the IdP's pages, the consent page and the failure page. Needs chromedriver and Chromium (see
//! [`super::webdriver::browser_tools`]) and `interop/node_modules` ([`TestIdp::available`]): without them the
//! tests fail when `CI` is set and otherwise print how to install them and pass.

use super::webdriver::{browser_tools, Browser, Screenshots};
use super::{random_token, Callback, Pkce, Server, CLIENT_NAME};
use crate::idp::{IdpConfig, TestIdp, IDP_PASSWORD};
use crate::support::free_port;
use serde_json::Value;

/// The provider's name in Portcullis's configuration (and in its routes).
const PROVIDER: &str = "corp";
/// The provider's display name: the button says "Continue with Corp SSO".
const DISPLAY_NAME: &str = "Corp SSO";
/// The IdP's default client's secret ([`IdpConfig::default`]).
const CLIENT_SECRET: &str = "portcullis idp secret";
/// The IdP account signing in (verified carol@example.com, preferred_username carol).
const IDP_USER: &str = "carol";

#[tokio::test]
async fn browser_signs_in_through_the_identity_provider_and_whoami_names_carol() {
    let Some(tools) = browser_tools() else { return };
    if !TestIdp::available() {
        return;
    }
    let fed = Fed::start("");
    let callback = Callback::start();
    let client_id = fed.server.register(&callback.redirect_uri()).await;
    let pkce = Pkce::new();
    let state = random_token();
    let url = fed
        .server
        .authorization_url(&client_id, &callback.redirect_uri(), &pkce, &state);
    let browser = Browser::start(&tools).await;
    let shots = Screenshots::new("federation");

    // The sign-in page: the provider's button first, then "or" and the password form.
    browser.goto(&url).await;
    let page = sign_in_page(&browser, &url).await;
    assert!(page.divider, "an \"or\" between the two: {page:?}");
    let form = page
        .password_top
        .unwrap_or_else(|| panic!("the password form is shown: {}", page.text));
    assert!(
        page.button_top < form,
        "the provider's button is above the password form: {page:?}"
    );
    shots.take(&browser, "1-sign-in").await;

    browser.click(&format!("#idp-{PROVIDER}")).await;
    at_the_idp(&browser, &fed, &shots, true).await;

    // Back at Portcullis, signed in as the IdP's user: the consent page names her.
    browser
        .wait_for_url("Portcullis's consent page", |u| {
            u.starts_with(&format!("{}/authorize?", fed.server.base))
        })
        .await;
    browser.element("#approve").await;
    let consent = browser.text().await;
    assert!(consent.contains(IDP_USER), "the user is named: {consent}");
    assert!(consent.contains(CLIENT_NAME), "{consent}");
    shots.take(&browser, "4-consent").await;
    browser.click("#approve").await;

    let landed = browser
        .wait_for_url("the client's callback", |u| {
            u.starts_with(&callback.redirect_uri())
        })
        .await;
    browser
        .wait_for_text("Signed in; you can close this window")
        .await;
    shots.take(&browser, "5-callback").await;
    let got = callback.received();
    assert_eq!(landed, got.url);
    assert_eq!(got.query.get("state"), Some(&state), "state round-trips");
    assert_eq!(got.query.get("iss"), Some(&fed.server.issuer), "RFC 9207");
    assert!(!got.query.contains_key("error"), "{:?}", got.query);
    let code = got.query.get("code").expect("a code").clone();

    let access = fed
        .server
        .exchange(&client_id, &callback.redirect_uri(), &code, &pkce.verifier)
        .await;
    let body = fed.server.whoami(&access).await;
    let who = &body["result"]["structuredContent"];
    assert_eq!(who["preferred_username"], IDP_USER, "{body}");
    assert_eq!(who["email"], "carol@example.com", "{body}");
    assert_eq!(who["idp"], PROVIDER, "{body}");
    assert_eq!(who["client_id"], client_id.as_str(), "{body}");
    assert_eq!(who["issuer"], fed.server.issuer.as_str(), "{body}");
}

#[tokio::test]
async fn provider_only_sign_in_and_a_denial_at_the_idp_ends_on_a_clear_page() {
    let Some(tools) = browser_tools() else { return };
    if !TestIdp::available() {
        return;
    }
    let fed = Fed::start("password_login = false");
    let callback = Callback::start();
    let client_id = fed.server.register(&callback.redirect_uri()).await;
    let pkce = Pkce::new();
    let state = random_token();
    let url = fed
        .server
        .authorization_url(&client_id, &callback.redirect_uri(), &pkce, &state);
    let browser = Browser::start(&tools).await;
    let shots = Screenshots::new("provider-only");

    // Only the provider: no password form, no "or".
    browser.goto(&url).await;
    let page = sign_in_page(&browser, &url).await;
    assert_eq!(page.password_top, None, "no password form: {page:?}");
    assert!(!page.has_form, "no form at all: {page:?}");
    assert!(!page.divider, "no \"or\": {page:?}");
    assert!(!page.text.contains("Password"), "{}", page.text);
    shots.take(&browser, "1-sign-in").await;

    browser.click(&format!("#idp-{PROVIDER}")).await;
    at_the_idp(&browser, &fed, &shots, false).await;

    // "Deny" at the IdP: Portcullis's callback shows what happened and the ways back.
    let callback_path = format!("{}/idp/{PROVIDER}/callback?", fed.server.base);
    let at = browser
        .wait_for_url("Portcullis's callback", |u| u.starts_with(&callback_path))
        .await;
    assert!(at.contains("error=access_denied"), "{at}");
    let text = browser
        .wait_for_text(&format!("Sign-in at {DISPLAY_NAME} was cancelled"))
        .await;
    assert!(text.contains("access_denied"), "the error code: {text}");
    assert!(text.contains("Try signing in again"), "{text}");
    assert!(text.contains("Return to the application"), "{text}");
    let again = browser
        .script(
            "const a = [...document.querySelectorAll('a')].find(a => a.textContent === 'Try signing in again'); \
             return a ? a.href : null;",
        )
        .await;
    assert_eq!(
        again.as_str(),
        Some(url.as_str()),
        "\"Try signing in again\" is the original request"
    );
    shots.take(&browser, "4-cancelled").await;

    // "Return to the application": the client hears access_denied, with its state and Portcullis's iss.
    browser.click("a[href*='error=access_denied']").await;
    browser
        .wait_for_url("the client's callback", |u| {
            u.starts_with(&callback.redirect_uri())
        })
        .await;
    browser.wait_for_text("Sign-in did not complete").await;
    shots.take(&browser, "5-callback").await;
    let got = callback.received();
    assert_eq!(
        got.query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(got.query.get("state"), Some(&state), "state round-trips");
    assert_eq!(got.query.get("iss"), Some(&fed.server.issuer), "RFC 9207");
    assert!(!got.query.contains_key("code"), "{:?}", got.query);

    // The denial opened no session: the original request shows the sign-in page again, not the consent page.
    browser.goto(&url).await;
    browser.element(&format!("#idp-{PROVIDER}")).await;
    let text = browser.text().await;
    assert!(!text.contains(IDP_USER), "nobody is signed in: {text}");
}

/// What the sign-in page shows, measured in the browser.
#[derive(Debug)]
struct SignInPage {
    text: String,
    /// Top of the provider's button, in CSS pixels.
    button_top: f64,
    /// Top of the password field, if there is one.
    password_top: Option<f64>,
    /// Whether the page has any form.
    has_form: bool,
    /// Whether the "or" divider is shown.
    divider: bool,
}

/// Waits for the provider's button on the sign-in page opened with `url` and checks it: one provider, named by
/// its display name, linking to `/idp/corp/start` with the original authorization request's query.
async fn sign_in_page(browser: &Browser, url: &str) -> SignInPage {
    browser.element(&format!("#idp-{PROVIDER}")).await;
    let text = browser.text().await;
    assert!(
        text.contains(&format!("Continue with {DISPLAY_NAME}")),
        "{text}"
    );
    assert!(text.contains(CLIENT_NAME), "the client is named: {text}");
    let v: Value = browser
        .script(&format!(
            "const a = document.querySelector('#idp-{PROVIDER}'); \
             const p = document.querySelector('#password'); \
             return {{ href: a.href, top: a.getBoundingClientRect().top, \
                       providers: document.querySelectorAll('a.idp').length, \
                       password: p ? p.getBoundingClientRect().top : null, \
                       forms: document.querySelectorAll('form').length, \
                       divider: !!document.querySelector('.divider') }};"
        ))
        .await;
    assert_eq!(v["providers"], 1, "one provider: {v}");
    let query = url::Url::parse(url).unwrap().query().unwrap().to_owned();
    let start = url::Url::parse(url)
        .unwrap()
        .join(&format!("idp/{PROVIDER}/start?{query}"))
        .unwrap();
    assert_eq!(
        v["href"].as_str(),
        Some(start.as_str()),
        "the button starts the sign-in with the original request"
    );
    SignInPage {
        text,
        button_top: v["top"].as_f64().unwrap(),
        password_top: v["password"].as_f64(),
        has_form: v["forms"].as_u64().unwrap() > 0,
        divider: v["divider"] == true,
    }
}

/// At the test IdP's own pages: signs in as [`IDP_USER`] and presses "Allow" (`allow`) or "Deny" on its consent
/// page, with screenshots of both pages.
async fn at_the_idp(browser: &Browser, fed: &Fed, shots: &Screenshots, allow: bool) {
    let issuer = fed.idp.issuer().to_owned();
    browser
        .wait_for_url("the IdP's login page", |u| u.starts_with(&issuer))
        .await;
    browser.element("#login").await;
    shots.take(browser, "2-idp-login").await;
    browser.type_into("#login", IDP_USER).await;
    browser.type_into("#password", IDP_PASSWORD).await;
    browser.click("#submit").await;
    browser.element("#allow").await;
    let text = browser.text().await;
    assert!(
        text.contains(&format!("Signed in as {IDP_USER}")),
        "the IdP's consent page: {text}"
    );
    shots.take(browser, "3-idp-consent").await;
    browser.click(if allow { "#allow" } else { "#deny" }).await;
}

/// The test IdP and a Portcullis configured to sign in through it as provider [`PROVIDER`].
struct Fed {
    /// Dropped first (fields drop in declaration order).
    server: Server,
    idp: TestIdp,
    _config: tempfile::TempDir,
}

impl Fed {
    /// Picks Portcullis's port, starts the IdP with its client's redirect URI at Portcullis's callback, then
    /// Portcullis with a configuration naming the IdP (`top`: extra top-level TOML lines).
    fn start(top: &str) -> Fed {
        let port = free_port();
        let mut config = IdpConfig::default();
        config.clients[0].redirect_uris =
            vec![format!("http://127.0.0.1:{port}/idp/{PROVIDER}/callback")];
        let idp = TestIdp::start(config);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        let toml = format!(
            "{top}\n\n[[identity_providers]]\nname = \"{PROVIDER}\"\ndisplay_name = \"{DISPLAY_NAME}\"\n\
             issuer = \"{}\"\nclient_id = \"portcullis\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n",
            idp.issuer()
        );
        std::fs::write(&path, toml).unwrap();
        let server = Server::start_with(
            &format!("127.0.0.1:{port}"),
            &["--config", path.to_str().unwrap()],
        );
        Fed {
            server,
            idp,
            _config: dir,
        }
    }
}
