use super::*;
use crate::service::Authz;
use crate::store::ClientRecord;
use crate::testing::{authz_with_clock, code_for, public_client, token_req, VERIFIER};
use portcullis_proto::token::TokenResponse;
use portcullis_proto::TokenRequest;

const MCP: &str = "http://127.0.0.1:8080/mcp";

fn never(_: &str) -> bool {
    false
}

/// A confidential client (HTTP Basic) able to refresh, as client authentication finds it.
async fn confidential(a: &Authz) -> RegisteredClient {
    let meta = serde_json::from_str(
        r#"{"redirect_uris":["http://localhost:8080/callback"],
            "grant_types":["authorization_code","refresh_token"]}"#,
    )
    .unwrap();
    let id = a.registrations().register(meta).await.unwrap().client_id;
    a.registrations().client(&id).await.unwrap().unwrap()
}

/// An introspection credential serving `resources` (empty: any), stored as `clients add --introspection` does.
async fn resource_server(a: &Authz, id: &str, resources: &[&str]) -> RegisteredClient {
    let record = ClientRecord {
        client_id: id.into(),
        secret_hash: Some(TokenHash::of("s3cret")),
        metadata_json: r#"{"client_name":"rs","token_endpoint_auth_method":"client_secret_basic","grant_types":[],"response_types":[]}"#.into(),
        created_at: a.core().now(),
        origin: crate::store::ClientOrigin::Admin,
        introspection: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
    };
    a.core().store().insert_client(&record).await.unwrap();
    a.registrations().client(id).await.unwrap().unwrap()
}

async fn tokens_of(a: &Authz, c: &RegisteredClient) -> TokenResponse {
    let code = code_for(a, &c.client_id).await;
    a.tokens()
        .exchange_code(c, token_req(&code, VERIFIER))
        .await
        .unwrap()
}

async fn ask(a: &Authz, caller: &RegisteredClient, token: &str) -> IntrospectionResponse {
    a.introspector()
        .introspect(caller, token, &never)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_sees_its_own_access_token_and_not_another_clients() {
    let (a, _clock) = authz_with_clock().await;
    let c = confidential(&a).await;
    let t = tokens_of(&a, &c).await;
    let r = ask(&a, &c, &t.access_token).await;
    assert!(r.active);
    assert_eq!(r.client_id.as_deref(), Some(c.client_id.as_str()));
    assert_eq!(r.token_type.as_deref(), Some("Bearer"));
    assert_eq!(r.aud, Some(OneOrMany::One(MCP.into())));
    assert_eq!(r.iss.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(r.sub.as_deref(), Some("u1"));
    assert_eq!(r.username.as_deref(), Some("carol"));
    assert!(r.jti.is_some() && r.exp > r.iat);
    // Another confidential client learns nothing: exactly the unknown-token answer.
    let other = confidential(&a).await;
    assert_eq!(
        ask(&a, &other, &t.access_token).await,
        IntrospectionResponse::inactive()
    );
    for junk in ["", "a.b.c", "nope", &"x".repeat(jwt::MAX_TOKEN_LEN + 1)] {
        assert_eq!(ask(&a, &c, junk).await, IntrospectionResponse::inactive());
    }
}

#[tokio::test]
async fn a_public_client_is_not_an_authenticated_caller() {
    let (a, _clock) = authz_with_clock().await;
    let p = public_client(&a).await;
    assert!(matches!(
        check_caller(&p),
        Err(AuthzError::InvalidClient(_))
    ));
    assert!(matches!(
        a.introspector().introspect(&p, "x", &never).await,
        Err(AuthzError::InvalidClient(_))
    ));
    let c = confidential(&a).await;
    assert_eq!(check_caller(&c), Ok(()));
}

#[tokio::test]
async fn revoked_grants_and_jtis_and_expired_tokens_are_inactive() {
    let (a, clock) = authz_with_clock().await;
    let c = confidential(&a).await;
    let t = tokens_of(&a, &c).await;
    // A jti revoked on its own (the server's revocation set says so).
    let jti = ask(&a, &c, &t.access_token).await.jti.unwrap();
    let revoked = |j: &str| j == jti;
    let r = a
        .introspector()
        .introspect(&c, &t.access_token, &revoked)
        .await
        .unwrap();
    assert!(!r.active);
    // The grant revoked (through its refresh token): read from storage, seen at once.
    let rt = t.refresh_token.clone().unwrap();
    assert!(ask(&a, &c, &rt).await.active);
    a.revoker().revoke(&c, &rt, None).await.unwrap();
    assert!(!ask(&a, &c, &t.access_token).await.active);
    assert!(!ask(&a, &c, &rt).await.active);
    // Expiry: a fresh grant's token is active until exp, then not.
    let t2 = tokens_of(&a, &c).await;
    let exp = ask(&a, &c, &t2.access_token).await.exp.unwrap();
    clock.advance(exp - a.core().now() - 1);
    assert!(ask(&a, &c, &t2.access_token).await.active);
    clock.advance(1);
    assert!(!ask(&a, &c, &t2.access_token).await.active);
}

#[tokio::test]
async fn a_refresh_token_is_active_while_it_is_its_familys_live_token() {
    let (a, _clock) = authz_with_clock().await;
    let c = confidential(&a).await;
    let t = tokens_of(&a, &c).await;
    let rt = t.refresh_token.unwrap();
    let r = ask(&a, &c, &rt).await;
    assert!(r.active);
    assert_eq!(r.token_type, None);
    assert_eq!(r.jti, None);
    assert_eq!(r.aud, Some(OneOrMany::One(MCP.into())));
    assert_eq!(r.client_id.as_deref(), Some(c.client_id.as_str()));
    let other = confidential(&a).await;
    assert!(!ask(&a, &other, &rt).await.active);
    // Rotated: the old token is no longer live, the new one is.
    let next = a
        .tokens()
        .token(
            &c,
            TokenRequest::RefreshToken(portcullis_proto::RefreshTokenRequest {
                refresh_token: portcullis_proto::RefreshToken::new(&rt),
                scope: None,
                resource: None,
            }),
        )
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    assert!(!ask(&a, &c, &rt).await.active);
    assert!(ask(&a, &c, &next).await.active);
    // The family's handle with a made-up secret.
    let (handle, _) = next.split_once('.').unwrap();
    assert!(!ask(&a, &c, &format!("{handle}.forged")).await.active);
}

#[tokio::test]
async fn a_resource_server_sees_the_access_tokens_of_the_audiences_it_serves_only() {
    let (a, _clock) = authz_with_clock().await;
    let c = confidential(&a).await;
    let t = tokens_of(&a, &c).await;
    let any = resource_server(&a, "rs-any", &[]).await;
    let mcp = resource_server(&a, "rs-mcp", &[MCP]).await;
    let foreign = resource_server(&a, "rs-other", &["https://other.example/mcp"]).await;
    assert_eq!(any.introspection, Some(IntrospectionAudiences::Any));
    let r = ask(&a, &any, &t.access_token).await;
    assert!(r.active);
    assert_eq!(r.client_id.as_deref(), Some(c.client_id.as_str()));
    assert!(ask(&a, &mcp, &t.access_token).await.active);
    assert_eq!(
        ask(&a, &foreign, &t.access_token).await,
        IntrospectionResponse::inactive()
    );
    // Never a refresh token, even of an audience it serves.
    assert!(!ask(&a, &any, &t.refresh_token.unwrap()).await.active);
}

#[test]
fn audiences_round_trip_and_match() {
    let only = IntrospectionAudiences::Only(vec!["https://a/mcp".into()]);
    assert_eq!(IntrospectionAudiences::from_stored(&only.to_stored()), only);
    assert_eq!(
        IntrospectionAudiences::from_stored(&[]),
        IntrospectionAudiences::Any
    );
    assert!(only.serves(&Audience::One("https://a/mcp".into())));
    assert!(only.serves(&Audience::Many(vec!["x".into(), "https://a/mcp".into()])));
    assert!(!only.serves(&Audience::One("https://a/mcp/".into())));
    assert!(IntrospectionAudiences::Any.serves(&Audience::One("anything".into())));
}

#[tokio::test]
async fn an_introspection_credential_authenticates_but_can_never_obtain_a_token() {
    use crate::client_auth::ClientCredentials;
    use portcullis_proto::ClientSecret;
    let (a, _clock) = authz_with_clock().await;
    let regs = a.registrations();
    for (name, resources) in [
        ("", vec![]),
        ("bad\nname", vec![]),
        ("rs", vec!["not a url".to_owned()]),
        ("rs", vec!["https://a/mcp#frag".to_owned()]),
        ("rs", vec!["ftp://a/mcp".to_owned()]),
    ] {
        let aud = IntrospectionAudiences::from_stored(&resources);
        assert!(
            matches!(
                regs.add_introspection_credential(name, &aud).await,
                Err(AuthzError::InvalidClientMetadata(_))
            ),
            "{name:?} {resources:?}"
        );
    }
    let aud = IntrospectionAudiences::Only(vec![MCP.into()]);
    let (id, secret) = regs
        .add_introspection_credential("billing", &aud)
        .await
        .unwrap();
    let creds = ClientCredentials::Basic {
        client_id: id.clone(),
        secret: ClientSecret::new(secret.expose()),
    };
    let rs = regs.authenticate_client(&creds).await.unwrap();
    assert_eq!(rs.introspection, Some(aud));
    assert!(rs.redirect_uris.is_empty() && !rs.may_refresh);
    assert_eq!(rs.name(), "billing");
    // It sees the tokens of its audience ...
    let c = confidential(&a).await;
    let t = tokens_of(&a, &c).await;
    assert!(ask(&a, &rs, &t.access_token).await.active);
    // ... and the token endpoint refuses it whatever it presents.
    let req = TokenRequest::RefreshToken(portcullis_proto::RefreshTokenRequest {
        refresh_token: portcullis_proto::RefreshToken::new(t.refresh_token.as_deref().unwrap()),
        scope: None,
        resource: None,
    });
    let err = a.tokens().token(&rs, req).await.unwrap_err();
    assert_eq!(err.code(), portcullis_proto::ErrorCode::UnauthorizedClient);
}
