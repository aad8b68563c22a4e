//! The seed's flow (shared/seed/oauth-mcp-flow.txt, steps 1–8) against the real binary, each request sent as
//! the seed's curl sends it; then the browser-side rules around it: remembered consent, `state` echoed byte for
//! byte, `iss` in every redirect (RFC 9207 §2), deny, the probes and SIGTERM.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn seed_steps_1_to_8() {
    let s = start();
    let h = http();

    // Step 1: POST /mcp with only Content-Type → 401 and a challenge naming the resource metadata and scope.
    let p = h
        .post(&s.mcp)
        .header(CONTENT_TYPE, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), StatusCode::UNAUTHORIZED);
    let challenge = p.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    let prm_url = s.url("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        auth_param(&challenge, "resource_metadata"),
        Some(prm_url.clone())
    );
    assert_eq!(
        auth_param(&challenge, "scope").as_deref(),
        Some("mcp:tools")
    );
    assert_eq!(
        auth_param(&challenge, "error"),
        None,
        "no token was sent: {challenge}"
    );
    let prm: Value = h.get(&prm_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], s.mcp.as_str());
    assert_eq!(prm["authorization_servers"][0], s.issuer.as_str());
    assert_eq!(
        prm["bearer_methods_supported"],
        serde_json::json!(["header"])
    );

    // Step 2: AS metadata at the origin, with the seed's MCP-Protocol-Version.
    let resp = h
        .get(s.url("/.well-known/oauth-authorization-server"))
        .header("MCP-Protocol-Version", "2024-11-05")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let meta: Value = resp.json().await.unwrap();
    assert_eq!(meta["issuer"], s.issuer.as_str());
    assert_eq!(meta["authorization_endpoint"], s.url("/authorize"));
    assert_eq!(meta["token_endpoint"], s.url("/token"));
    assert_eq!(meta["registration_endpoint"], s.url("/register"));
    assert_eq!(meta["revocation_endpoint"], s.url("/revoke"));
    assert_eq!(meta["jwks_uri"], s.url("/jwks.json"));
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    for m in ["none", "client_secret_basic", "client_secret_post"] {
        assert!(
            meta["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == m),
            "{m} missing: {meta}"
        );
    }
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let oidc: Value = h
        .get(s.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc, meta, "the OIDC discovery document differs");

    // Step 3: the seed's registration.
    let (status, reg) = register_raw(&s, &seed_registration()).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    assert_eq!(reg["client_name"], "My MCP Client");
    assert_eq!(reg["redirect_uris"], serde_json::json!([SEED_REDIRECT]));
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert!(reg.get("client_secret").is_none(), "{reg}");

    // Step 4: PKCE from 32 random bytes.
    let p = pkce();
    assert_eq!(p.verifier.len(), 43);

    // Step 5: the seed's authorization URL (unknown scopes, no state), in a browser.
    let url = format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={SEED_REDIRECT}&code_challenge={}\
         &code_challenge_method=S256&scope=read:jira-work write:jira-work",
        meta["authorization_endpoint"].as_str().unwrap(),
        p.challenge
    );
    let b = browser();
    let out = authorize_in(&b, &s, &url, "approve").await;
    assert!(out.saw_login, "a fresh browser must sign in");
    let consent = out
        .consent
        .expect("a first authorization shows the consent page");
    assert!(consent.body.contains("My MCP Client"), "{}", consent.body);
    assert!(consent.body.contains("unverified"), "{}", consent.body);
    assert!(consent.body.contains("localhost"), "{}", consent.body);
    assert!(consent.body.contains("mcp:tools"), "{}", consent.body);
    assert_client_redirect(&s, &out.location);
    assert_eq!(
        param(&out.location, "state"),
        None,
        "the seed sends no state"
    );
    let code = param(&out.location, "code").unwrap();

    // Step 6: the seed's token request, the body as curl -d sends it.
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={SEED_REDIRECT}&client_id={client_id}\
         &code_verifier={}",
        p.verifier
    );
    let resp = h
        .post(meta["token_endpoint"].as_str().unwrap())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    let tok: Value = resp.json().await.unwrap();
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3600);
    assert_eq!(
        tok["scope"], "mcp:tools",
        "unknown scopes are ignored: {tok}"
    );
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tok["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(access.split('.').count(), 3);
    assert!(
        refresh_token.len() >= 43,
        "refresh token too short for 256 bits"
    );
    assert_eq!(jwt_part(&access, 0)["typ"], "at+jwt");
    let claims = jwt_part(&access, 1);
    assert_eq!(claims["iss"], s.issuer.as_str());
    assert_eq!(claims["aud"], s.mcp.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], "mcp:tools");
    for c in ["sub", "exp", "iat", "jti"] {
        assert!(claims.get(c).is_some(), "{c} missing: {claims}");
    }

    // Step 7: tools/list with only Content-Type and Authorization, no initialize.
    let page = mcp_post(&s.mcp, Some(&access), TOOLS_LIST).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let list: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(list["jsonrpc"], "2.0");
    assert_eq!(list["id"], 1);
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in ["whoami", "echo", "server_stats"] {
        assert!(names.contains(&t), "{t} missing: {names:?}");
    }
    let who = mcp_post(
        &s.mcp,
        Some(&access),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    )
    .await;
    let who: Value = serde_json::from_str(&who.body).unwrap();
    let who = &who["result"]["structuredContent"];
    assert_eq!(who["client_id"], client_id.as_str());
    // A password user is named by login name (`preferred_username`), with no email and no identity provider.
    assert_eq!(who["preferred_username"], USER, "{who}");
    assert!(
        who.get("email").is_none() && who.get("idp").is_none(),
        "{who}"
    );

    // Step 8: the seed's refresh; the refresh token rotates and the new access token works.
    let body =
        format!("grant_type=refresh_token&refresh_token={refresh_token}&client_id={client_id}");
    let resp = h
        .post(s.url("/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    let tok2: Value = resp.json().await.unwrap();
    assert_eq!(tok2["token_type"], "Bearer");
    assert_eq!(tok2["scope"], "mcp:tools");
    assert_ne!(tok2["refresh_token"], tok["refresh_token"], "not rotated");
    assert_ne!(tok2["access_token"], tok["access_token"]);
    assert_eq!(
        mcp_status(&s, tok2["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

/// Remembered consent (for a client whose identity is proven: a confidential one here) skips the page; a new
/// client never does; a public client with a loopback redirect is asked every time (RFC 8252 §8.6; the
/// per-resource rule and the rest of issue 19's consent rules are in `security::consent`).
#[tokio::test]
async fn remembered_consent_skips_the_page_but_never_for_a_new_client() {
    let s = start();
    let b = browser();
    let (client_a, secret) = register_confidential(&s, "client_secret_post").await;
    let p = pkce();
    let first = authorize_in(
        &b,
        &s,
        &authorize_url(&s, &client_a, &p.challenge, ""),
        "approve",
    )
    .await;
    assert!(first.saw_login && first.consent.is_some());
    assert_client_redirect(&s, &first.location);

    // Same browser session, same client: no login, no consent, straight back with a code.
    let p2 = pkce();
    let url = authorize_url(&s, &client_a, &p2.challenge, "&state=again");
    let page = get(&b, &url).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "consent was not remembered: {}",
        page.body
    );
    let loc = page.location().unwrap().to_owned();
    assert_client_redirect(&s, &loc);
    assert_eq!(param(&loc, "state").as_deref(), Some("again"));
    let code = param(&loc, "code").expect("a code");
    let (status, _, body) = post_form(
        &s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", SEED_REDIRECT),
            ("client_id", &client_a),
            ("client_secret", &secret),
            ("code_verifier", &p2.verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A new client in the same session is never silently approved.
    let client_b = register_public(&s).await;
    let page = get(&b, &authorize_url(&s, &client_b, &pkce().challenge, "")).await;
    assert!(
        page.is_consent(),
        "a new client skipped consent: {:?} {}",
        page.status,
        page.body
    );
    // Nor, even once approved, a public client redirecting to a loopback address.
    let approved = submit(&b, &s, &page, "/consent", &[("decision", "approve")]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let again = get(&b, &authorize_url(&s, &client_b, &pkce().challenge, "")).await;
    assert!(again.is_consent(), "{:?} {}", again.status, again.body);
}

#[tokio::test]
async fn state_is_echoed_byte_for_byte_and_iss_is_in_every_redirect() {
    let s = start();
    let client_id = register_public(&s).await;
    let state = "a b&c=d+e%20f/é☃?#x";
    let extra = format!("&state={}", enc(state));

    // Deny first (this public loopback client is asked every time, so the page shows each time).
    let b = browser();
    let out = authorize_in(
        &b,
        &s,
        &authorize_url(&s, &client_id, &pkce().challenge, &extra),
        "deny",
    )
    .await;
    assert!(out.consent.is_some());
    assert_client_redirect(&s, &out.location);
    assert_eq!(
        param(&out.location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(param(&out.location, "state").as_deref(), Some(state));
    assert_eq!(param(&out.location, "code"), None);

    // Approve (a denial is not remembered: the consent page shows again).
    let p = pkce();
    let out = authorize_in(
        &b,
        &s,
        &authorize_url(&s, &client_id, &p.challenge, &extra),
        "approve",
    )
    .await;
    assert!(out.consent.is_some(), "a denial must not count as consent");
    assert_client_redirect(&s, &out.location);
    assert_eq!(param(&out.location, "state").as_deref(), Some(state));
    assert!(param(&out.location, "code").is_some());

    // The consent page again (a public loopback client, RFC 8252 §8.6), carrying the request and its state.
    let page = get(
        &b,
        &authorize_url(&s, &client_id, &pkce().challenge, &extra),
    )
    .await;
    assert!(page.is_consent(), "{:?} {}", page.status, page.body);
    let approved = submit(&b, &s, &page, "/consent", &[("decision", "approve")]).await;
    let loc = approved.location().expect("approval redirects").to_owned();
    assert_client_redirect(&s, &loc);
    assert_eq!(param(&loc, "state").as_deref(), Some(state));

    // An error redirect after sign-in (no PKCE): the user has approved this client.
    let url = s.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={SEED_REDIRECT}{extra}"
    ));
    let page = get(&b, &url).await;
    let loc = page.location().expect("an error redirect").to_owned();
    assert_client_redirect(&s, &loc);
    assert_eq!(param(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&loc, "state").as_deref(), Some(state));
}

#[tokio::test]
async fn probes_answer_and_sigterm_exits_cleanly() {
    let mut s = start();
    for path in ["/livez", "/readyz"] {
        let r = http().get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let status = s
        .terminate(Duration::from_secs(5))
        .expect("still running 5 s after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        s.log()
    );
}
