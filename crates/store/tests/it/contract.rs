//! The checks every backend must pass.

use portcullis_authz::secret::{Secret, TokenHash};
use portcullis_authz::store::*;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        secret_hash: Some(TokenHash::of("s")),
        metadata_json: "{}".into(),
        created_at: NOW,
    }
}

fn user(id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: name.into(),
        password_hash: "$argon2id$x".into(),
        created_at: NOW,
    }
}

async fn seed_code(s: &dyn Storage, code: &str) {
    s.insert_client(&client("c1")).await.ok();
    s.insert_user(&user("u1", "alice")).await.ok();
    s.insert_code(&CodeRecord {
        code_hash: TokenHash::of(code),
        client_id: "c1".into(),
        user_id: "u1".into(),
        redirect_uri: "http://localhost/cb".into(),
        code_challenge: "ch".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 60,
        used_at: None,
        grant_id: None,
    })
    .await
    .unwrap();
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "c1".into(),
        user_id: "u1".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 1000,
        revoked_at: None,
    }
}

fn refresh(token: &str, grant_id: &str) -> RefreshRecord {
    RefreshRecord {
        token_hash: TokenHash::of(token),
        grant_id: grant_id.into(),
        created_at: NOW,
        expires_at: NOW + 100,
        used_at: None,
    }
}

pub(crate) async fn clients(s: Arc<dyn Storage>) {
    s.insert_client(&client("c1")).await.unwrap();
    assert_eq!(s.client("c1").await.unwrap(), Some(client("c1")));
    assert_eq!(s.client("nope").await.unwrap(), None);
    assert_eq!(s.client("' OR 1=1 --").await.unwrap(), None);
    assert_eq!(s.list_clients().await.unwrap().len(), 1);
    assert!(s.delete_client("c1", NOW, NOW + 10).await.unwrap());
    assert!(!s.delete_client("c1", NOW, NOW + 10).await.unwrap());
}

pub(crate) async fn users_and_sessions(s: Arc<dyn Storage>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    assert!(matches!(
        s.insert_user(&user("u2", "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.count_users().await.unwrap(), 1);
    let sess = SessionRecord {
        id_hash: TokenHash::of("cookie"),
        user_id: "u1".into(),
        username: "alice".into(),
        csrf_key: Secret::new("k"),
        created_at: NOW,
        expires_at: NOW + 100,
    };
    s.insert_session(&sess).await.unwrap();
    assert_eq!(
        s.session(&TokenHash::of("cookie"), NOW).await.unwrap(),
        Some(sess.clone())
    );
    assert_eq!(
        s.session(&TokenHash::of("cookie"), NOW + 100)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert!(s.set_password("alice", "$argon2id$y").await.unwrap());
    assert_eq!(
        s.session(&TokenHash::of("cookie"), NOW).await.unwrap(),
        None,
        "password change ends sessions"
    );
    assert_eq!(
        s.user_by_name("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$y"
    );
    assert!(s.delete_user("alice", NOW, NOW + 10).await.unwrap());
    assert!(s.user_by_name("alice").await.unwrap().is_none());
}

pub(crate) async fn consent(s: Arc<dyn Storage>) {
    s.insert_client(&client("c1")).await.unwrap();
    s.insert_user(&user("u1", "alice")).await.unwrap();
    assert_eq!(s.consent("u1", "c1").await.unwrap(), None);
    s.save_consent("u1", "c1", "a", NOW).await.unwrap();
    s.save_consent("u1", "c1", "a b", NOW).await.unwrap();
    assert_eq!(s.consent("u1", "c1").await.unwrap().as_deref(), Some("a b"));
}

pub(crate) async fn code_single_use_under_concurrency(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "code1").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let g = grant(&format!("g{i}"));
            s.redeem_code(
                &TokenHash::of("code1"),
                NOW,
                &g,
                Some(&refresh(&format!("rt{i}"), &g.id)),
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Transition::Won => won += 1,
            Transition::AlreadyUsed => {}
        }
    }
    assert_eq!(won, 1, "exactly one redemption wins");
    let code = s.code(&TokenHash::of("code1")).await.unwrap().unwrap();
    let gid = code.grant_id.clone().unwrap();
    assert!(code.used_at.is_some());
    assert_eq!(
        s.revoke_grant_of_code(&TokenHash::of("code1"), NOW, NOW + 10)
            .await
            .unwrap(),
        Some(gid.clone())
    );
    assert!(s.grant(&gid).await.unwrap().unwrap().revoked_at.is_some());
}

pub(crate) async fn refresh_rotation_under_concurrency(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "code2").await;
    let g = grant("g");
    s.redeem_code(&TokenHash::of("code2"), NOW, &g, Some(&refresh("rt0", "g")))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.rotate_refresh(
                &TokenHash::of("rt0"),
                NOW,
                &refresh(&format!("next{i}"), "g"),
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == Transition::Won {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one rotation wins");
    let (old, grant_rec) = s
        .refresh_token(&TokenHash::of("rt0"))
        .await
        .unwrap()
        .unwrap();
    assert!(old.used_at.is_some());
    assert_eq!(grant_rec.id, "g");
    // A revoked grant cannot rotate, even from its live token.
    let live: Vec<_> = futures_live(&s).await;
    assert_eq!(live.len(), 1, "one live token per family");
    assert!(s.revoke_grant("g", NOW, NOW + 10).await.unwrap());
    assert!(!s.revoke_grant("g", NOW, NOW + 10).await.unwrap());
    assert_eq!(
        s.rotate_refresh(&TokenHash::of(&live[0]), NOW, &refresh("after", "g"))
            .await
            .unwrap(),
        Transition::AlreadyUsed
    );
}

async fn futures_live(s: &Arc<dyn Storage>) -> Vec<String> {
    let mut live = Vec::new();
    for i in 0..50 {
        let t = format!("next{i}");
        if let Some((r, _)) = s.refresh_token(&TokenHash::of(&t)).await.unwrap() {
            if r.used_at.is_none() {
                live.push(t);
            }
        }
    }
    live
}

pub(crate) async fn revocations(s: Arc<dyn Storage>) {
    s.revoke_access_token("j1", NOW + 100).await.unwrap();
    s.revoke_access_token("j2", NOW + 5).await.unwrap();
    let all = s.revocations_since(0, NOW).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].kind, RevokedKind::AccessToken);
    let later = s.revocations_since(all[0].seq, NOW).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].value, "j2");
    assert_eq!(
        s.revocations_since(0, NOW + 10).await.unwrap().len(),
        1,
        "expired entries are not returned"
    );
}

pub(crate) async fn keys_first_start_race(s: Arc<dyn Storage>) {
    let rng = portcullis_authz::OsRandom;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            portcullis_authz::keys::load_or_create(s.as_ref(), &rng, NOW)
                .await
                .map(|r| r.active_kid().to_owned())
        }));
    }
    let mut kids = Vec::new();
    for t in tasks {
        kids.push(t.await.unwrap().unwrap());
    }
    kids.dedup();
    assert_eq!(
        kids.len(),
        1,
        "every starter ends with the same single active key"
    );
    let keys = s.signing_keys(NOW).await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.active).count(), 1);
    let new = portcullis_authz::keys::rotate(s.as_ref(), &rng, NOW, 100)
        .await
        .unwrap();
    let keys = s.signing_keys(NOW).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().find(|k| k.active).unwrap().kid, new);
    assert_eq!(
        s.signing_keys(NOW + 101).await.unwrap().len(),
        1,
        "retired key unpublished after its grace"
    );
}

pub(crate) async fn purge(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "code3").await;
    s.ping().await.unwrap();
    let n = s.purge_expired(NOW + 60 + 3601).await.unwrap();
    assert!(n >= 1);
    assert!(s.code(&TokenHash::of("code3")).await.unwrap().is_none());
}
