//! In-process router tests: `portcullis_server::app(state)` over an SQLite store in a temporary directory,
//! driven with `tower::ServiceExt::oneshot` (no socket). Discovery documents are pinned by golden JSON files
//! (`golden/*.json`, the issuer replaced by `{issuer}`; regenerate with `UPDATE_GOLDEN=1` and review the diff);
//! pages and token responses are checked for their security headers.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use portcullis_authz::{Authz, OsRandom, SystemClock};
use portcullis_server::config::parse_issuer;
use portcullis_server::routes::Routes;
use portcullis_server::{AppState, ServerConfig};
use portcullis_store::StoreOptions;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:8080";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const REDIRECT: &str = "http://localhost:8080/callback";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// RFC 7636 Appendix B: BASE64URL(SHA256(VERIFIER)).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Harness {
    app: Router,
    _dir: tempfile::TempDir,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// `name=value` of a `Set-Cookie` for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

/// The harness over a configuration `edit` changed.
async fn harness_with(edit: impl FnOnce(&mut ServerConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("portcullis.db").display());
    let store = portcullis_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let issuer = parse_issuer(ISSUER).unwrap();
    let mut config = ServerConfig::new(issuer.clone());
    edit(&mut config);
    let routes = Routes::new(&issuer, &config.mcp_path);
    let authz = Authz::new(
        store,
        Arc::new(SystemClock),
        Arc::new(OsRandom),
        config.authz_config(&routes.issuer, &routes.mcp_url),
    )
    .await
    .unwrap();
    authz.sessions().add_user(USER, PASSWORD).await.unwrap();
    let state = AppState::new(config, routes, Arc::new(authz));
    let app = portcullis_server::app(state)
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Harness { app, _dir: dir }
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Resp {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, uri: &str, cookies: &str) -> Resp {
        let mut req = Request::get(uri);
        if !cookies.is_empty() {
            req = req.header(header::COOKIE, cookies);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, cookies: &str, form: &[(&str, &str)]) -> Resp {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if !cookies.is_empty() {
            req = req.header(header::COOKIE, cookies);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn register(&self, meta: &Value) -> Resp {
        let req = Request::post("/register")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(meta.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn client(&self, name: &str) -> String {
        let r = self
            .register(&json!({
                "client_name": name,
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none"
            }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["client_id"].as_str().unwrap().to_owned()
    }
}

fn authorize_uri(client_id: &str, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
    )
}

/// The value of the hidden input `name`, HTML entities decoded.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {html}"))
        + marker.len();
    let len = html[start..].find('"').unwrap();
    html[start..start + len]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Anti-framing, same-origin referrer policy and no-store on an HTML page (security notes, "Login and consent pages").
fn assert_page_headers(r: &Resp) {
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/html"));
    let csp = r.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header(header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(r.header(header::REFERRER_POLICY), "same-origin");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/golden")
        .join(name);
    let actual: Value = serde_json::from_str(&actual.replace(ISSUER, "{issuer}")).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    assert_eq!(
        actual,
        expected,
        "{name} differs from its golden file:\n{}",
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

#[tokio::test]
async fn discovery_documents_match_their_golden_files() {
    let h = harness().await;
    for (uri, file) in [
        (
            "/.well-known/oauth-authorization-server",
            "authorization_server.json",
        ),
        (
            "/.well-known/openid-configuration",
            "authorization_server.json",
        ),
        (
            "/.well-known/oauth-protected-resource/mcp",
            "protected_resource.json",
        ),
        (
            "/.well-known/oauth-protected-resource",
            "protected_resource.json",
        ),
    ] {
        for version in [None, Some("2024-11-05"), Some("2025-06-18")] {
            let mut req = Request::get(uri);
            if let Some(v) = version {
                req = req.header("mcp-protocol-version", v);
            }
            let r = h.send(req.body(Body::empty()).unwrap()).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}");
            assert!(r
                .header(header::CONTENT_TYPE)
                .starts_with("application/json"));
            golden(file, &r.body);
        }
    }
}

#[tokio::test]
async fn jwks_publishes_public_keys_only() {
    let h = harness().await;
    let r = h.get("/jwks.json", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.json()["keys"].as_array().unwrap().clone();
    assert!(!keys.is_empty());
    for k in keys {
        assert!(k.get("kid").is_some(), "{k}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "private member {private} in {k}");
        }
    }
}

#[tokio::test]
async fn error_page_is_a_page_with_security_headers_and_no_redirect() {
    let h = harness().await;
    let r = h
        .get(&authorize_uri("no-such-client", "&state=x"), "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.headers.get(header::LOCATION).is_none());
    assert_page_headers(&r);
}

#[tokio::test]
async fn login_consent_and_token_flow_in_process() {
    let h = harness().await;
    let client_id = h.client("<script>alert(1)</script>").await;
    let uri = authorize_uri(&client_id, "&state=st");

    // Login page: headers, escaping, a CSRF cookie.
    let login = h.get(&uri, "").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_page_headers(&login);
    assert!(
        !login.body.contains("<script>alert"),
        "unescaped client name"
    );
    assert!(login.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let csrf_cookie = login
        .cookie("portcullis_csrf")
        .expect("a login CSRF cookie");
    let csrf = hidden(&login.body, "csrf_token");
    let request = hidden(&login.body, "request");
    assert_eq!(request, uri.trim_start_matches("/authorize?"));

    // A cross-site POST is refused.
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, &csrf_cookie)
        .body(Body::from(format!(
            "request={}&csrf_token={csrf}&username={USER}&password=x",
            form_urlencoded::byte_serialize(request.as_bytes()).collect::<String>()
        )))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie("portcullis_session").is_none());

    // A wrong password: 401 page, no session.
    let fields = |password: &'static str| {
        [
            ("request", request.clone()),
            ("csrf_token", csrf.clone()),
            ("username", USER.to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let as_refs = |f: &[(&'static str, String); 4]| {
        f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let bad = as_refs(&fields("wrong password!"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = h.post_form("/login", &csrf_cookie, &bad).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_page_headers(&r);
    assert!(r.cookie("portcullis_session").is_none());

    // Without the CSRF cookie: refused.
    let good = as_refs(&fields(PASSWORD));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = h.post_form("/login", "", &good).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie("portcullis_session").is_none());

    // The right password: 303 back to /authorize with a session cookie (HttpOnly, SameSite=Lax).
    let r = h.post_form("/login", &csrf_cookie, &good).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header(header::LOCATION), uri);
    let set = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("portcullis_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let session = r.cookie("portcullis_session").unwrap();

    // Consent page.
    let consent = h.get(&uri, &session).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert_page_headers(&consent);
    assert!(!consent.body.contains("<script>alert"));
    assert!(consent.body.contains("unverified"));
    let csrf = hidden(&consent.body, "csrf_token");
    let request = hidden(&consent.body, "request");
    let r = h
        .post_form(
            "/consent",
            &session,
            &[
                ("request", &request),
                ("csrf_token", "forged"),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get(header::LOCATION).is_none());
    let r = h
        .post_form(
            "/consent",
            &session,
            &[
                ("request", &request),
                ("csrf_token", &csrf),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let location = url::Url::parse(r.header(header::LOCATION)).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st");
    assert_eq!(q["iss"], ISSUER);
    let code = q["code"].clone();

    // Token responses carry Cache-Control: no-store, errors too (RFC 6749 §5.1, §5.2).
    let exchange = |verifier: &'static str| {
        [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", client_id.clone()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let wrong = exchange("wrong-verifier-wrong-verifier-wrong-verifier-x");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = h.post_form("/token", "", &wrong).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let right = exchange(VERIFIER);
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = h.post_form("/token", "", &right).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let tok = r.json();
    assert_eq!(tok["token_type"], "Bearer");
    let access = tok["access_token"].as_str().unwrap();

    // The token works at the MCP endpoint.
    let req = Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(Body::from(
            r#"{"jsonrpc": "2.0", "method": "tools/list", "id": 1}"#,
        ))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CONTENT_TYPE), "application/json");
    let listed = r.json();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["whoami", "echo", "server_stats"]);
    assert_eq!(r.json()["id"], 1);
    assert_eq!(
        r.json()["result"]["tools"][1]["inputSchema"]["required"],
        serde_json::json!(["message"])
    );

    // The pre-serialized tools/list reply: a string id is echoed as a string, in a batch beside other
    // replies (a notification gets none), and as one SSE event for a client that accepts only event streams.
    let mcp = |body: &'static str, accept: &'static str| {
        Request::post("/mcp")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::from(body))
            .unwrap()
    };
    let r = h
        .send(mcp(
            r#"[{"jsonrpc":"2.0","method":"tools/list","id":"a\"b"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","method":"ping","id":7},{"jsonrpc":"2.0","method":"nope","id":8}]"#,
            "application/json",
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let batch = r.json();
    let batch = batch.as_array().unwrap();
    assert_eq!(batch.len(), 3, "{batch:?}");
    assert_eq!(batch[0]["id"], "a\"b");
    assert_eq!(batch[0]["result"]["tools"].as_array().unwrap().len(), 3);
    assert_eq!(
        batch[1],
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "result": {}})
    );
    assert_eq!(batch[2]["error"]["code"], -32601);
    let r = h
        .send(mcp(
            r#"{"jsonrpc":"2.0","method":"tools/list","id":2}"#,
            "text/event-stream",
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CONTENT_TYPE), "text/event-stream");
    let data = r
        .body
        .strip_prefix("event: message\ndata: ")
        .and_then(|d| d.strip_suffix("\n\n"))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["id"], 2);
    assert_eq!(event["result"]["tools"][0]["name"], "whoami");

    // The same session meets the consent page again, not the sign-in page: a public client with a loopback
    // redirect is asked every time (RFC 8252 §8.6); the page names the resource (RFC 8707).
    let r = h.get(&uri, &session).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("action=\"/consent\""), "{}", r.body);
    assert!(
        r.body
            .contains("<strong id=\"resource\">http://127.0.0.1:8080/mcp</strong>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_sign_in_page_offers_the_identity_providers() {
    use portcullis_authz::federation::Preset;
    use portcullis_server::pages::{SignInOptions, SignInProvider};
    let provider = |name: &str, display_name: &str, preset: Option<Preset>| SignInProvider {
        name: name.into(),
        display_name: display_name.into(),
        preset,
    };
    let h = harness_with(|c| {
        c.sign_in = SignInOptions {
            password_login: false,
            providers: vec![
                provider("corp", "Corp SSO", None),
                provider("google", "Google", Some(Preset::Google)),
            ],
        }
    })
    .await;
    let client_id = h.client("Demo").await;
    let uri = authorize_uri(&client_id, "&state=st");
    let page = h.get(&uri, "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_page_headers(&page);
    let query = uri.trim_start_matches("/authorize?").replace('&', "&amp;");
    for name in ["corp", "google"] {
        let link = format!("href=\"/idp/{name}/start?{query}\"");
        assert!(page.body.contains(&link), "{link} in {}", page.body);
    }
    assert!(
        page.body.contains("Continue with Corp SSO") && page.body.contains("Continue with Google")
    );
    assert!(
        !page.body.contains("<form") && !page.body.contains("type=\"password\""),
        "password_login = false hides the form"
    );
}

#[tokio::test]
async fn unauthenticated_mcp_and_unknown_routes() {
    let h = harness().await;
    let req = Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header(header::WWW_AUTHENTICATE);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{ISSUER}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");

    let r = h.get("/token", "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = h.get("/nowhere", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .get(&format!("/authorize?x={}", "a".repeat(9000)), "")
        .await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    let r = h
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/token")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_request");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    for path in ["/livez", "/readyz"] {
        assert_eq!(h.get(path, "").await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn registration_errors_are_rfc_7591_json() {
    let h = harness().await;
    let r = h
        .register(&json!({"redirect_uris": ["javascript:alert(1)"]}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_redirect_uri");
    let req = Request::post("/register")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_client_metadata");
    let big = json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(17 * 1024)});
    assert_eq!(h.register(&big).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let ok = h
        .register(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.header(header::CACHE_CONTROL), "no-store");
    assert!(ok.json()["client_secret"].is_string());
}
