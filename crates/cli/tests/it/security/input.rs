//! Oversized and malformed input on every endpoint. Rules: security notes "Robustness" (oversized bodies,
//! headers and queries rejected early with 413/431/414; SQL metacharacters, NUL bytes, overlong UTF-8 and very
//! long values give a 4xx with no SQL or stack text) and "Registration" (malformed JSON or wrong types: 400
//! with an RFC 7591 error body); RFC 9110 §15.5.14–15, RFC 6585 §5, RFC 6749 §5.2, RFC 7591 §3.2.2.

use super::{assert_json_4xx, assert_no_leak, raw};
use crate::support::{self, enc, pkce, Page, Server, SEED_REDIRECT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// Payloads of the classic injection and encoding attacks.
const EVIL: &[&str] = &[
    "' OR 1=1 --",
    "\"; DROP TABLE clients; --",
    "'); DELETE FROM users; --",
    "1 UNION SELECT password_hash FROM users --",
    "a\u{0}b",
    "%00",
    "\u{0}",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "\u{202e}\u{fffd}\u{10ffff}",
];

/// Asserts a response to hostile input: never a 5xx, never internals; errors in the endpoint's format.
fn check(what: &str, p: &Page, html: bool) {
    assert!(
        !p.status.is_server_error(),
        "{what}: {} {}",
        p.status,
        p.body
    );
    if !p.status.is_success() {
        // A 2xx may echo submitted data (a registered client_name); errors must not carry internals.
        assert_no_leak(what, &p.body);
    }
    if p.status.is_client_error() {
        if html {
            assert!(
                p.location().is_none(),
                "{what}: redirected: {:?}",
                p.location()
            );
            let ct = p
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap())
                .unwrap_or("");
            assert!(
                ct.starts_with("text/html") || ct.starts_with(JSON),
                "{what}: {ct}"
            );
        } else {
            assert_json_4xx(what, p.status, &p.headers, &p.body);
        }
    }
}

/// A valid access token, for the MCP endpoint.
async fn token(s: &Server) -> String {
    support::grant(s, "&state=x").await.access
}

/// Rule: oversized bodies are rejected early with 413 on every POST endpoint (security notes "Robustness";
/// RFC 9110 §15.5.14).
#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = support::start();
    let at = token(&s).await;
    let big = vec![b'a'; 2 * 1024 * 1024];
    let mut json_big = b"{\"client_name\":\"".to_vec();
    json_big.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    json_big.extend(b"\"}");
    for (path, ct, body) in [
        ("/register", JSON, json_big.clone()),
        ("/token", FORM, [b"grant_type=".as_slice(), &big].concat()),
        ("/revoke", FORM, [b"token=".as_slice(), &big].concat()),
        ("/login", FORM, [b"username=".as_slice(), &big].concat()),
        ("/consent", FORM, [b"request=".as_slice(), &big].concat()),
    ] {
        let p = raw(&s, Method::POST, path, Some(ct), body).await;
        assert_eq!(
            p.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            p.body
        );
        assert_no_leak(path, &p.body);
    }
    let resp = support::http()
        .post(s.mcp_here())
        .header("content-type", JSON)
        .header("authorization", format!("Bearer {at}"))
        .body(json_big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "/mcp");
}

/// Rule: a request URI over 8 KiB is 414 on every endpoint (security notes "Robustness"; RFC 9110 §15.5.15).
#[tokio::test]
async fn uris_over_8_kib_are_414() {
    let s = support::start();
    let long = "a".repeat(9 * 1024);
    for path in [
        format!("/authorize?client_id={long}"),
        format!("/authorize?response_type=code&state={long}"),
        format!("/.well-known/oauth-authorization-server?x={long}"),
        format!("/token?x={long}"),
        format!("/register?x={long}"),
        format!("/mcp?x={long}"),
        format!("/{long}"),
    ] {
        let p = raw(&s, Method::GET, &path, None, Vec::new()).await;
        assert_eq!(p.status, StatusCode::URI_TOO_LONG, "{}…", &path[..30]);
        let p = raw(&s, Method::POST, &path, Some(FORM), b"a=b".to_vec()).await;
        assert_eq!(p.status, StatusCode::URI_TOO_LONG, "POST {}…", &path[..30]);
    }
}

/// Rule: oversized headers are rejected with 431 (or the connection refused), never processed (security notes
/// "Robustness"; RFC 6585 §5).
#[tokio::test]
async fn oversized_headers_are_rejected() {
    let s = support::start();
    let resp = support::http()
        .get(s.url("/.well-known/oauth-authorization-server"))
        .header("x-big", "a".repeat(256 * 1024))
        .send()
        .await;
    match resp {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(!e.is_timeout(), "the server hung: {e}"),
    }
    // The server is still serving.
    let ok = raw(&s, Method::GET, "/livez", None, Vec::new()).await;
    assert_eq!(ok.status, StatusCode::OK);
}

/// Rule: invalid UTF-8, overlong UTF-8 and NUL bytes in form bodies are a 4xx in the endpoint's format
/// (security notes "Robustness").
#[tokio::test]
async fn invalid_utf8_and_nul_in_form_bodies_are_4xx() {
    let s = support::start();
    let bodies: Vec<Vec<u8>> = vec![
        b"grant_type=\xff\xfe&code=x".to_vec(),
        b"grant_type=authorization_code&code=%C0%AF".to_vec(),
        b"grant_type=authorization_code&code=\xc0\xaf".to_vec(),
        b"grant_type=authorization_code&code=a%00b".to_vec(),
        b"grant_type=authorization_code\x00&code=x".to_vec(),
        b"token=%ED%A0%80&client_id=x".to_vec(),
        b"username=%FF&password=%00&csrf_token=x&request=y".to_vec(),
        b"%%%%&&&===".to_vec(),
        b"grant_type=authorization_code&grant_type=refresh_token".to_vec(),
    ];
    for body in bodies {
        for (path, html) in [
            ("/token", false),
            ("/revoke", false),
            ("/login", true),
            ("/consent", true),
        ] {
            let p = raw(&s, Method::POST, path, Some(FORM), body.clone()).await;
            let what = format!("{path} {:?}", String::from_utf8_lossy(&body));
            // /revoke answers 200 for a token it does not know (RFC 7009 §2.2), 4xx otherwise.
            if !(path == "/revoke" && p.status == StatusCode::OK) {
                assert!(
                    p.status.is_client_error(),
                    "{what}: {} {}",
                    p.status,
                    p.body
                );
            }
            check(&what, &p, html);
        }
    }
}

/// Rule: wrong content types are a 4xx, never parsed as something else (security notes "/token": only POST
/// with form encoding; RFC 7591 §3.1: JSON).
#[tokio::test]
async fn wrong_content_types_are_4xx() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let reg =
        json!({"redirect_uris": [SEED_REDIRECT], "token_endpoint_auth_method": "none"}).to_string();
    for ct in [
        None,
        Some(FORM),
        Some("text/plain"),
        Some("application/jsonx"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let p = raw(&s, Method::POST, "/register", ct, reg.clone().into_bytes()).await;
        assert_eq!(
            p.status,
            StatusCode::BAD_REQUEST,
            "/register {ct:?}: {}",
            p.body
        );
        check(&format!("/register {ct:?}"), &p, false);
    }
    let form = b"grant_type=client_credentials&client_id=x".to_vec();
    for path in ["/token", "/revoke"] {
        for ct in [
            None,
            Some(JSON),
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let p = raw(&s, Method::POST, path, ct, form.clone()).await;
            assert!(
                p.status.is_client_error(),
                "{path} {ct:?}: {} {}",
                p.status,
                p.body
            );
            check(&format!("{path} {ct:?}"), &p, false);
        }
        let p = raw(
            &s,
            Method::GET,
            &format!("{path}?grant_type=authorization_code"),
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
    }
    let p = raw(
        &s,
        Method::POST,
        "/token",
        Some(FORM),
        format!("grant_type=password&username=a&password=b&client_id={client}").into_bytes(),
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("unsupported_grant_type"), "{}", p.body);
}

/// Rule: malformed JSON, wrong member types and deeply nested JSON at /register are 400 with an RFC 7591
/// §3.2.2 body (security notes "Registration").
#[tokio::test]
async fn malformed_registration_json_is_400() {
    let s = support::start();
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let bodies: Vec<String> = vec![
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        "\"x\"".into(),
        "{\"redirect_uris\": \"http://localhost/cb\"}".into(),
        "{\"redirect_uris\": [1]}".into(),
        "{\"redirect_uris\": [\"http://localhost/cb\"], \"client_name\": 5}".into(),
        "{\"redirect_uris\": [\"http://localhost/cb\"], \"grant_types\": \"implicit\"}".into(),
        format!("{{\"redirect_uris\": [\"http://localhost/cb\"], \"client_name\": {deep}}}"),
        format!("{{\"redirect_uris\": [\"http://localhost/cb\"], \"x\": {deep}}}"),
        deep.clone(),
        "{\"redirect_uris\": [\"http://localhost/cb\"]}\u{0}".into(),
        "{\"redirect_uris\": [\"http://localhost/cb\"], \"redirect_uris\": [\"https://evil.com/\"]}".into(),
    ];
    for body in bodies {
        let p = raw(
            &s,
            Method::POST,
            "/register",
            Some(JSON),
            body.clone().into_bytes(),
        )
        .await;
        let what = format!("/register {:.60}", body);
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{what}: {}", p.body);
        check(&what, &p, false);
    }
    let invalid_utf8 =
        b"{\"redirect_uris\": [\"http://localhost/cb\"], \"client_name\": \"\xff\xfe\"}".to_vec();
    let p = raw(&s, Method::POST, "/register", Some(JSON), invalid_utf8).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    check("/register invalid UTF-8", &p, false);
}

/// Rule: forbidden grant and response types are refused at registration — no implicit, no password grant, no
/// `response_type=token` (security notes "Registration"; OAuth 2.1 §2.1, RFC 9700 §2.1.2, §2.4); display URIs
/// https only.
#[tokio::test]
async fn registration_refuses_implicit_password_and_insecure_display_uris() {
    let s = support::start();
    for extra in [
        json!({"grant_types": ["implicit"]}),
        json!({"grant_types": ["password"]}),
        json!({"grant_types": ["authorization_code", "password"]}),
        json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"]}),
        json!({"response_types": ["token"]}),
        json!({"response_types": ["code token"]}),
        json!({"client_uri": "javascript:alert(1)"}),
        json!({"logo_uri": "http://evil.example/logo.png"}),
        json!({"tos_uri": "data:text/html,x"}),
        json!({"policy_uri": "file:///etc/passwd"}),
        json!({"redirect_uris": vec!["http://localhost/a"; 200]}),
        json!({"redirect_uris": [format!("https://app.example.com/{}", "a".repeat(5000))]}),
    ] {
        let mut body =
            json!({"redirect_uris": [SEED_REDIRECT], "token_endpoint_auth_method": "none"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, resp) = support::register_raw(&s, &body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{extra} was accepted: {resp}"
        );
        assert!(
            resp["error"].as_str().unwrap().starts_with("invalid_"),
            "{resp}"
        );
    }
}

/// Rule: SQL metacharacters and NUL bytes in every parameter of /register, /authorize, /token, /revoke and
/// /login are data: never a 5xx, never SQL text, and the database is intact afterwards (security notes
/// "Robustness"; OWASP SQL Injection Prevention cheat sheet).
#[tokio::test]
async fn sql_metacharacters_in_every_parameter_are_harmless() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    // /register: each string member.
    for field in [
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "software_id",
        "software_version",
        "token_endpoint_auth_method",
        "application_type",
        "tos_uri",
        "policy_uri",
    ] {
        for evil in EVIL {
            let mut body =
                json!({"redirect_uris": [SEED_REDIRECT], "token_endpoint_auth_method": "none"});
            body[field] = json!(evil);
            let resp = raw(
                &s,
                Method::POST,
                "/register",
                Some(JSON),
                body.to_string().into_bytes(),
            )
            .await;
            check(&format!("/register {field}={evil:?}"), &resp, false);
            if resp.status == StatusCode::CREATED && field == "client_name" {
                let v: Value = serde_json::from_str(&resp.body).unwrap();
                assert_eq!(v["client_name"], json!(evil), "stored and echoed verbatim");
            }
        }
    }
    for evil in EVIL {
        for list in [
            json!([evil]),
            json!([SEED_REDIRECT, evil]),
            json!({"a": evil}),
            json!(evil),
        ] {
            let body = json!({"redirect_uris": list, "grant_types": [evil], "contacts": [evil]});
            let resp = raw(
                &s,
                Method::POST,
                "/register",
                Some(JSON),
                body.to_string().into_bytes(),
            )
            .await;
            assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{body}");
            check(&format!("/register redirect_uris {list}"), &resp, false);
        }
    }
    // /authorize: each parameter.
    let good = [
        ("response_type", "code".to_owned()),
        ("client_id", client.clone()),
        ("redirect_uri", SEED_REDIRECT.to_owned()),
        ("code_challenge", p.challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
        ("state", "s".to_owned()),
        ("scope", "mcp:tools".to_owned()),
        ("resource", s.mcp.clone()),
    ];
    let signed_in = support::browser();
    let _ = super::after_login(
        &signed_in,
        &s,
        &support::authorize_url(&s, &client, &p.challenge, ""),
    )
    .await;
    for i in 0..good.len() {
        for evil in EVIL {
            let query: Vec<String> = good
                .iter()
                .enumerate()
                .map(|(j, (k, v))| format!("{k}={}", enc(if i == j { evil } else { v.as_str() })))
                .collect();
            let url = s.url(&format!("/authorize?{}", query.join("&")));
            let page = support::get(&signed_in, &url).await;
            let what = format!("/authorize {}={evil:?}", good[i].0);
            assert!(!page.status.is_server_error(), "{what}: {}", page.status);
            assert_no_leak(&what, &page.body);
            if good[i].0 == "state" || good[i].0 == "scope" {
                // Any state is fine (echoed byte for byte); unknown scope tokens are ignored (RFC 6749 §3.3).
                continue;
            }
            if ["client_id", "redirect_uri"].contains(&good[i].0) {
                super::assert_error_page(&what, &page);
            } else {
                assert!(!page.is_consent(), "{what}: accepted");
            }
        }
    }
    // /token and /revoke: each parameter of each grant.
    let forms: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/token",
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", "c".into()),
                ("redirect_uri", SEED_REDIRECT.into()),
                ("client_id", client.clone()),
                ("code_verifier", p.verifier.clone()),
                ("resource", s.mcp.clone()),
            ],
        ),
        (
            "/token",
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", "r".into()),
                ("client_id", client.clone()),
                ("scope", "mcp:tools".into()),
            ],
        ),
        (
            "/revoke",
            vec![
                ("token", "t".into()),
                ("token_type_hint", "refresh_token".into()),
                ("client_id", client.clone()),
            ],
        ),
    ];
    for (path, form) in &forms {
        for i in 0..form.len() {
            for evil in EVIL {
                let body: String = form
                    .iter()
                    .enumerate()
                    .map(|(j, (k, v))| {
                        format!("{k}={}", enc(if i == j { evil } else { v.as_str() }))
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                let resp = raw(&s, Method::POST, path, Some(FORM), body.into_bytes()).await;
                let what = format!("{path} {}={evil:?}", form[i].0);
                if *path == "/token" {
                    assert!(
                        resp.status.is_client_error(),
                        "{what}: {} {}",
                        resp.status,
                        resp.body
                    );
                }
                check(&what, &resp, false);
            }
        }
    }
    // The database is intact: registration and sign-in still work, and the grant completes.
    let t = support::grant(&s, "&state=after").await;
    assert_eq!(support::mcp_status(&s, &t.access).await, StatusCode::OK);
    // /login: username and password.
    let b = support::browser();
    let login = support::get(&b, &support::authorize_url(&s, &client, &p.challenge, "")).await;
    assert!(login.is_login());
    for evil in EVIL {
        for (user, pass) in [
            (*evil, "whatever1"),
            (support::USER, *evil),
            ("alice' --", "x' OR '1'='1"),
        ] {
            let after = support::submit(
                &b,
                &s,
                &login,
                "/login",
                &[("username", user), ("password", pass)],
            )
            .await;
            assert!(
                after.status.is_client_error(),
                "login {user:?}/{pass:?}: {}",
                after.status
            );
            // The form echoes the username (HTML-escaped): that is data, not a leak.
            let escaped = user
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#x27;");
            let mut shown = after;
            shown.body = shown.body.replace(&escaped, "USER");
            check(&format!("login {user:?}/{pass:?}"), &shown, true);
        }
    }
}
