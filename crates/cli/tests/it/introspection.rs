//! Token introspection (RFC 7662) with the real binary: `POST /introspect` for a confidential client and for a
//! resource server's credential made by `portcullis clients add NAME --introspection`; active, revoked,
//! expired, foreign (another client's, another audience's), unauthenticated; a revocation on one instance
//! seen at once on another; failed authentication counted like `/token`'s; and `portcullis-guard` with
//! introspection refusing a revoked token at once where the JWT-only guard still admits it.

use crate::support::*;
use axum::routing::post;
use base64::Engine;
use portcullis_guard::{Guard, GuardConfig, IntrospectionConfig};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// An `Authorization` header value (if any) and a form.
type Attempt<'a> = (Option<String>, Vec<(&'a str, &'a str)>);

/// A client's id and secret.
struct Credential {
    id: String,
    secret: String,
}

impl Credential {
    fn basic(&self) -> String {
        let pair = format!("{}:{}", enc(&self.id), enc(&self.secret));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// Registers a confidential client (HTTP Basic) with the seed's redirect URI.
async fn register_confidential(s: &Server) -> Credential {
    let (id, secret) = crate::support::register_confidential(s, "client_secret_basic").await;
    Credential { id, secret }
}

/// `portcullis clients add NAME --introspection [--resource URL ...]`: the credential it prints, and its output.
fn add_introspection_credential(
    s: &Server,
    name: &str,
    resources: &[&str],
) -> (Credential, String) {
    let mut cmd = Command::new(bin());
    cmd.args([
        "clients",
        "add",
        name,
        "--introspection",
        "--database",
        &s.db,
    ]);
    for r in resources {
        cmd.args(["--resource", r]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in: {text}"))
            .trim()
            .to_owned()
    };
    let c = Credential {
        id: field("client_id:"),
        secret: field("client_secret:"),
    };
    (c, text)
}

/// A code flow for a confidential client, with `extra` on the authorization request (and `resource`).
async fn tokens_of(s: &Server, c: &Credential, resource: Option<&str>) -> Tokens {
    let p = pkce();
    let extra = resource.map_or_else(String::new, |r| format!("&resource={}", enc(r)));
    let code = code_for(s, &c.id, &p, &extra).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", SEED_REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let resp = http()
        .post(s.url("/token"))
        .header(AUTHORIZATION, c.basic())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    Tokens {
        client_id: c.id.clone(),
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// `POST /introspect` on `base` with `auth` (an `Authorization` value) and `form`.
async fn introspect_raw(
    base: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = http().post(format!("{base}/introspect")).form(form);
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap())
}

/// The introspection answer for `token` asked by `c`: 200 required.
async fn introspect(s: &Server, c: &Credential, token: &str) -> Value {
    let (status, headers, body) =
        introspect_raw(&s.base, Some(&c.basic()), &[("token", token)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    body
}

#[tokio::test]
async fn introspection_sees_own_and_served_tokens_only_and_revocation_at_once() {
    let other_rs = "https://other.example/mcp";
    let s = start_with(&["--resource", other_rs]);
    let md: Value = http()
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        md["introspection_endpoint"],
        format!("{}/introspect", s.issuer)
    );
    assert_eq!(
        md["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let c = register_confidential(&s).await;
    let t = tokens_of(&s, &c, None).await;

    // Active: the client's own access and refresh tokens.
    let r = introspect(&s, &c, &t.access).await;
    assert_eq!(r["active"], true, "{r}");
    assert_eq!(r["client_id"], c.id.as_str());
    assert_eq!(r["aud"], s.mcp.as_str());
    assert_eq!(r["iss"], s.issuer.as_str());
    assert_eq!(r["token_type"], "Bearer");
    assert_eq!(r["username"], USER);
    assert!(r["scope"].is_string(), "{r}");
    let r = introspect(&s, &c, &t.refresh).await;
    assert_eq!(r["active"], true, "{r}");
    assert!(r.get("token_type").is_none(), "{r}");
    // The form-parameter method works too.
    let (status, _, r) = introspect_raw(
        &s.base,
        None,
        &[
            ("token", &t.access),
            ("client_id", &c.id),
            ("client_secret", &c.secret),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "registered for Basic: {r}"
    );

    // Another client's token: exactly the unknown-token answer.
    let other = register_confidential(&s).await;
    for token in [&t.access, &t.refresh, &"no-such-token".to_owned()] {
        assert_eq!(
            introspect(&s, &other, token).await,
            json!({"active": false})
        );
    }

    // Resource-server credentials: the audience they serve, or every audience; never a refresh token.
    let (mcp_rs, out) = add_introspection_credential(&s, "mcp rs", &[&s.mcp]);
    assert!(out.contains(&s.mcp), "{out}");
    let (foreign_rs, _) = add_introspection_credential(&s, "other rs", &[other_rs]);
    let (any_rs, out) = add_introspection_credential(&s, "any rs", &[]);
    assert!(out.contains("EVERY audience"), "{out}");
    assert_eq!(introspect(&s, &mcp_rs, &t.access).await["active"], true);
    assert_eq!(introspect(&s, &any_rs, &t.access).await["active"], true);
    assert_eq!(
        introspect(&s, &foreign_rs, &t.access).await,
        json!({"active": false}),
        "a token for another audience"
    );
    assert_eq!(
        introspect(&s, &any_rs, &t.refresh).await,
        json!({"active": false})
    );
    let t_other = tokens_of(&s, &c, Some(other_rs)).await;
    assert_eq!(
        introspect(&s, &foreign_rs, &t_other.access).await["active"],
        true
    );
    assert_eq!(
        introspect(&s, &mcp_rs, &t_other.access).await,
        json!({"active": false})
    );
    let list = Command::new(bin())
        .args(["clients", "list", "--database", &s.db])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with(&mcp_rs.id) && l.contains("introspection")),
        "{list}"
    );

    // The credential can never obtain a token, nor start an authorization.
    let resp = http()
        .post(s.url("/token"))
        .header(AUTHORIZATION, mcp_rs.basic())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.refresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let page = get(
        &browser(),
        &authorize_url(&s, &mcp_rs.id, &pkce().challenge, ""),
    )
    .await;
    assert!(page.location().is_none(), "no redirect for it: {page:?}");

    // Revoked (through the refresh token): every view of the grant turns inactive at once.
    let (status, _, _) = post_form(
        &s,
        "/revoke",
        &[
            ("token", &t.refresh),
            ("client_id", &c.id),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a wrong secret revokes nothing"
    );
    assert_eq!(introspect(&s, &c, &t.access).await["active"], true);
    let resp = http()
        .post(s.url("/revoke"))
        .header(AUTHORIZATION, c.basic())
        .form(&[("token", &t.refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for (who, token) in [(&c, &t.access), (&c, &t.refresh), (&any_rs, &t.access)] {
        assert_eq!(introspect(&s, who, token).await, json!({"active": false}));
    }
    // An access token revoked on its own (RFC 7009 with an access token).
    assert_eq!(introspect(&s, &c, &t_other.access).await["active"], true);
    let resp = http()
        .post(s.url("/revoke"))
        .header(AUTHORIZATION, c.basic())
        .form(&[("token", &t_other.access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        introspect(&s, &c, &t_other.access).await,
        json!({"active": false})
    );
    assert_eq!(introspect(&s, &c, &t_other.refresh).await["active"], true);
}

#[tokio::test]
async fn unauthenticated_callers_get_401_invalid_client_and_count_toward_the_token_limit() {
    let s = start_with(&["--token-failures-per-ip", "4"]);
    let c = register_confidential(&s).await;
    let public = register_public(&s).await;
    let wrong = Credential {
        id: c.id.clone(),
        secret: "wrong".into(),
    };
    let cases = [
        (None, vec![("token", "t")]),
        (Some(wrong.basic()), vec![("token", "t")]),
        (None, vec![("token", "t"), ("client_id", public.as_str())]),
    ];
    let cases: &[Attempt<'_>] = &cases;
    for (auth, form) in cases {
        let (status, headers, body) = introspect_raw(&s.base, auth.as_deref(), form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_client", "{body}");
        assert!(
            headers[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "{headers:?}"
        );
        assert_eq!(headers[CACHE_CONTROL], "no-store");
    }
    // Authenticated but without `token`: 400 invalid_request.
    let (status, _, body) = introspect_raw(&s.base, Some(&c.basic()), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    // The fourth failure reaches the limit /token uses: both endpoints now answer 429.
    let (status, _, _) = introspect_raw(&s.base, Some(&wrong.basic()), &[("token", "t")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = introspect_raw(&s.base, Some(&c.basic()), &[("token", "t")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = post_form(&s, "/token", &[("grant_type", "refresh_token")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_expired_access_token_is_inactive() {
    let s = start_with(&["--access-token-ttl", "10"]);
    let c = register_confidential(&s).await;
    let t = tokens_of(&s, &c, None).await;
    let issued = Instant::now();
    assert_eq!(introspect(&s, &c, &t.access).await["active"], true);
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(issued.elapsed())).await;
    assert_eq!(
        introspect(&s, &c, &t.access).await,
        json!({"active": false})
    );
    // The refresh token outlives it.
    assert_eq!(introspect(&s, &c, &t.refresh).await["active"], true);
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_seen_by_introspection_on_another() {
    // One issuer (as behind a load balancer): A listens on its port, B on another. Background sync is slowed
    // to a minute, so only the read before each answer can make B see A's revocation.
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let slow = ["--revocation-sync-ms", "60000"];
    let a = start_with(&[&["--listen", &listen, "--issuer", &issuer][..], &slow[..]].concat());
    let b = start_on(&a, &[&["--issuer", &issuer][..], &slow[..]].concat());
    let c = register_confidential(&a).await;
    let t = tokens_of(&a, &c, None).await;
    let on_b = |token: String| {
        let auth = c.basic();
        let base = b.base.clone();
        async move {
            introspect_raw(&base, Some(&auth), &[("token", &token)])
                .await
                .2
        }
    };
    assert_eq!(on_b(t.access.clone()).await["active"], true);
    let resp = http()
        .post(a.url("/revoke"))
        .header(AUTHORIZATION, c.basic())
        .form(&[("token", &t.refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(on_b(t.access.clone()).await, json!({"active": false}));
    // And an access token revoked alone on A (a jti entry in the shared log).
    let t2 = tokens_of(&a, &c, None).await;
    assert_eq!(on_b(t2.access.clone()).await["active"], true);
    let resp = http()
        .post(a.url("/revoke"))
        .header(AUTHORIZATION, c.basic())
        .form(&[("token", &t2.access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(on_b(t2.access.clone()).await, json!({"active": false}));
}

/// An axum app behind `guard` on 127.0.0.1 (port already bound), answering 200 at `/mcp`.
fn serve_guarded(listener: tokio::net::TcpListener, guard: &Guard) {
    let app = axum::Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(guard.layer());
    tokio::spawn(async move { axum::serve(listener, app).await });
}

#[tokio::test]
async fn the_guard_with_introspection_refuses_a_revoked_token_at_once() {
    let with = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let without = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs_with = format!("http://{}/mcp", with.local_addr().unwrap());
    let rs_without = format!("http://{}/mcp", without.local_addr().unwrap());
    let s = start_with(&["--resource", &rs_with, "--resource", &rs_without]);
    let (cred, _) = add_introspection_credential(&s, "guarded", &[&rs_with]);
    let introspection = IntrospectionConfig::new(&s.url("/introspect"), &cred.id, &cred.secret)
        .unwrap()
        .with_cache_ttl(0)
        .unwrap();
    let config = |rs: &str| {
        GuardConfig::new(&s.issuer, rs)
            .unwrap()
            .with_jwks_url(&s.url("/jwks.json"))
            .unwrap()
    };
    let guard = Guard::new(config(&rs_with).with_introspection(introspection)).unwrap();
    serve_guarded(with, &guard);
    serve_guarded(without, &Guard::new(config(&rs_without)).unwrap());
    let c = register_confidential(&s).await;
    let t_with = tokens_of(&s, &c, Some(&rs_with)).await;
    let t_without = tokens_of(&s, &c, Some(&rs_without)).await;
    let call = |url: String, token: String| async move {
        http()
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        call(rs_with.clone(), t_with.access.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        call(rs_without.clone(), t_without.access.clone()).await,
        StatusCode::OK
    );
    for t in [&t_with, &t_without] {
        let resp = http()
            .post(s.url("/revoke"))
            .header(AUTHORIZATION, c.basic())
            .form(&[("token", &t.refresh)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // At once with introspection; the JWT-only guard cannot know before exp.
    assert_eq!(
        call(rs_with.clone(), t_with.access.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(rs_without, t_without.access).await, StatusCode::OK);
    // A wrong credential fails closed: 503, not an admitted token.
    let bad = IntrospectionConfig::new(&s.url("/introspect"), &cred.id, "wrong").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Guard::new(config(&rs_with).with_introspection(bad)).unwrap();
    serve_guarded(listener, &closed);
    let fresh = tokens_of(&s, &c, Some(&rs_with)).await;
    let resp = http()
        .post(format!("http://{addr}/mcp"))
        .header(AUTHORIZATION, format!("Bearer {}", fresh.access))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
}
