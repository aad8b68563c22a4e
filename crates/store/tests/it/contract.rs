//! The checks every backend must pass.

use portcullis_authz::secret::{Secret, TokenHash};
use portcullis_authz::store::*;
use std::sync::{Arc, Mutex};

pub(crate) const NOW: i64 = 1_700_000_000;
/// When a reuse found by a rotation revokes its grant.
pub(crate) const REUSE: ReuseRevocation = ReuseRevocation {
    now: NOW,
    expires_at: NOW + 10,
};

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        secret_hash: Some(TokenHash::of("s")),
        metadata_json: "{}".into(),
        created_at: NOW,
        origin: ClientOrigin::Registered,
        introspection: None,
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

pub(crate) async fn seed_code(s: &dyn Storage, code: &str) {
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
        identity: DisplayIdentity::password_user("alice"),
    })
    .await
    .unwrap();
}

pub(crate) fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "c1".into(),
        user_id: "u1".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 1000,
        revoked_at: None,
        identity: DisplayIdentity::password_user("alice"),
    }
}

/// A refresh family whose handle is `handle` and whose live secret is `secret`.
pub(crate) fn family(handle: &str, secret: &str) -> RefreshFamily {
    RefreshFamily {
        key: TokenHash::of(handle),
        token_hash: TokenHash::of(secret),
        issued_at: NOW,
        expires_at: NOW + 100,
        previous: None,
    }
}

/// What the refresh grant decides, reduced to the single-use rule: rotate `from` into `to` if `from` is the live
/// secret of a grant that is not revoked; otherwise refuse without revoking anything.
fn rotate(from: &str, to: &str) -> RotationDecider {
    rotate_noting(from, to, Arc::default())
}

/// [`rotate`], keeping the family the decision last saw in `seen`.
fn rotate_noting(from: &str, to: &str, seen: Arc<Mutex<Option<RefreshFamily>>>) -> RotationDecider {
    let (from, to) = (TokenHash::of(from), TokenHash::of(to));
    Box::new(move |f, g| {
        *seen.lock().unwrap() = Some(f.clone());
        if g.revoked_at.is_some() {
            return Err(RefreshError::Revoked);
        }
        if !f.token_hash.ct_eq(&from) {
            return Err(RefreshError::Unknown);
        }
        Ok(RotationDecision {
            step: RotationStep::Rotate(RefreshUpdate {
                token_hash: to.clone(),
                issued_at: NOW + 1,
                expires_at: NOW + 200,
                previous: None,
            }),
            scope: portcullis_proto::Scope::parse(&g.scope).unwrap(),
        })
    })
}

/// A decision that finds the presented token retired: the store revokes the family in the same operation.
fn reused() -> RotationDecider {
    Box::new(|_, _| Err(RefreshError::Reused))
}

/// The live secret's hash of family `handle`.
async fn live_secret(s: &dyn Storage, handle: &str) -> TokenHash {
    s.refresh_family(&TokenHash::of(handle))
        .await
        .unwrap()
        .unwrap()
        .0
        .token_hash
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
        identity: DisplayIdentity::password_user("alice"),
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

/// A user who signed in through an identity provider.
fn carol() -> DisplayIdentity {
    DisplayIdentity {
        preferred_username: "carol".into(),
        email: Some("carol@example.com".into()),
        idp: Some("corp".into()),
    }
}

/// The display identity (issue 13 §2, migration 0005) goes in with a session, a code and a grant and comes
/// back out of every read, the rotation's included; a password user's has no email and no provider.
pub(crate) async fn identity_round_trips(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "idcode").await;
    s.insert_user(&user("u3", "carol.local")).await.unwrap();
    for (cookie, identity) in [
        ("fed", carol()),
        ("pw", DisplayIdentity::password_user("carol.local")),
    ] {
        let sess = SessionRecord {
            id_hash: TokenHash::of(cookie),
            user_id: "u3".into(),
            username: "carol.local".into(),
            identity,
            csrf_key: Secret::new("k"),
            created_at: NOW,
            expires_at: NOW + 100,
        };
        s.insert_session(&sess).await.unwrap();
        assert_eq!(
            s.session(&TokenHash::of(cookie), NOW).await.unwrap(),
            Some(sess)
        );
    }
    // The federated code and its grant: every field back as written.
    let mut code = s.code(&TokenHash::of("idcode")).await.unwrap().unwrap();
    assert_eq!(code.identity, DisplayIdentity::password_user("alice"));
    code.code_hash = TokenHash::of("idcode-carol");
    code.identity = carol();
    s.insert_code(&code).await.unwrap();
    assert_eq!(
        s.code(&code.code_hash).await.unwrap().unwrap().identity,
        carol()
    );
    let mut g = grant("gid");
    g.identity = carol();
    assert_eq!(
        s.redeem_code(&code.code_hash, NOW, &g, Some(&family("idh", "idrt")))
            .await
            .unwrap(),
        Transition::Won
    );
    assert_eq!(s.grant("gid").await.unwrap(), Some(g.clone()));
    let (_, read) = s
        .refresh_family(&TokenHash::of("idh"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity, carol());
    let next = TokenHash::of("idrt2");
    let rotation = s
        .rotate_refresh(
            &TokenHash::of("idh"),
            Box::new(move |_, _| {
                Ok(RotationDecision {
                    step: RotationStep::Rotate(RefreshUpdate {
                        token_hash: next.clone(),
                        issued_at: NOW,
                        expires_at: NOW + 100,
                        previous: None,
                    }),
                    scope: portcullis_proto::Scope::parse("mcp:tools").unwrap(),
                })
            }),
            REUSE,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rotation.grant, g,
        "the rotation reads the identity with the grant"
    );
    // A password user's grant: no email, no provider.
    let mut pw = grant("gpw");
    pw.identity = DisplayIdentity::password_user("alice");
    assert_eq!(
        s.redeem_code(&TokenHash::of("idcode"), NOW, &pw, None)
            .await
            .unwrap(),
        Transition::Won
    );
    assert_eq!(s.grant("gpw").await.unwrap(), Some(pw));
}

pub(crate) async fn consent(s: Arc<dyn Storage>) {
    s.insert_client(&client("c1")).await.unwrap();
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let (r1, r2) = ("https://mcp.example/one", "https://mcp.example/two");
    assert_eq!(s.consent("u1", "c1", r1).await.unwrap(), None);
    assert!(!s.has_consented("u1", "c1").await.unwrap());
    s.save_consent("u1", "c1", r1, "a", NOW).await.unwrap();
    s.save_consent("u1", "c1", r1, "a b", NOW).await.unwrap();
    assert_eq!(
        s.consent("u1", "c1", r1).await.unwrap().as_deref(),
        Some("a b")
    );
    // Keyed by resource (RFC 8707): approving one resource approves nothing at another.
    assert_eq!(s.consent("u1", "c1", r2).await.unwrap(), None);
    s.save_consent("u1", "c1", r2, "c", NOW).await.unwrap();
    assert_eq!(
        s.consent("u1", "c1", r2).await.unwrap().as_deref(),
        Some("c")
    );
    assert_eq!(
        s.consent("u1", "c1", r1).await.unwrap().as_deref(),
        Some("a b")
    );
    assert!(s.has_consented("u1", "c1").await.unwrap());
    s.insert_user(&user("u2", "bob")).await.unwrap();
    assert!(!s.has_consented("u2", "c1").await.unwrap(), "per user");
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
                Some(&family(&format!("h{i}"), &format!("rt{i}"))),
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
    s.redeem_code(&TokenHash::of("code2"), NOW, &g, Some(&family("h", "rt0")))
        .await
        .unwrap();
    let (f, stored) = s
        .refresh_family(&TokenHash::of("h"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f, stored), (family("h", "rt0"), g.clone()));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let next = format!("next{i}");
            let seen = Arc::new(Mutex::new(None));
            let out = s
                .rotate_refresh(
                    &TokenHash::of("h"),
                    rotate_noting("rt0", &next, seen.clone()),
                    REUSE,
                )
                .await
                .unwrap();
            let seen = seen.lock().unwrap().clone().unwrap();
            (next, out, seen)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (next, out, seen) = t.await.unwrap();
        match out {
            Ok(rotation) => {
                assert_eq!(rotation.grant.id, "g");
                // The winner decided on the untouched family.
                assert_eq!(seen, family("h", "rt0"));
                winners.push(next);
            }
            Err(e) => {
                assert_eq!(e, RefreshError::Unknown);
                assert_ne!(
                    seen.token_hash,
                    TokenHash::of("rt0"),
                    "a loser saw the rotated family"
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    let (live, _) = s
        .refresh_family(&TokenHash::of("h"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.token_hash, TokenHash::of(&winners[0]));
    assert_eq!((live.issued_at, live.expires_at), (NOW + 1, NOW + 200));
    // A revoked grant cannot rotate, even from its live token.
    assert!(s.revoke_grant("g", NOW, NOW + 10).await.unwrap());
    assert!(!s.revoke_grant("g", NOW, NOW + 10).await.unwrap());
    let after = s
        .rotate_refresh(&TokenHash::of("h"), rotate(&winners[0], "after"), REUSE)
        .await
        .unwrap();
    assert_eq!(after, Err(RefreshError::Revoked));
    assert_eq!(
        live_secret(s.as_ref(), "h").await,
        TokenHash::of(&winners[0])
    );
    // An unknown family is no family.
    assert_eq!(
        s.rotate_refresh(&TokenHash::of("nope"), rotate("rt0", "x"), REUSE)
            .await
            .unwrap(),
        Err(RefreshError::Unknown)
    );
}

/// A reuse found by a rotation, a refusal and a rotation are each one storage operation, as `operations`
/// (the backend's counter) counts them.
pub(crate) async fn rotation_is_one_operation(s: Arc<dyn Storage>, operations: impl Fn() -> u64) {
    seed_code(s.as_ref(), "code-ops").await;
    let g = grant("g-ops");
    s.redeem_code(
        &TokenHash::of("code-ops"),
        NOW,
        &g,
        Some(&family("ho", "rt0")),
    )
    .await
    .unwrap();
    let before = operations();
    assert!(s
        .rotate_refresh(&TokenHash::of("ho"), rotate("rt0", "rt1"), REUSE)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(operations() - before, 1, "a rotation is one operation");
    let before = operations();
    assert_eq!(
        s.rotate_refresh(&TokenHash::of("ho"), reused(), REUSE)
            .await
            .unwrap(),
        Err(RefreshError::Reused)
    );
    assert_eq!(
        operations() - before,
        1,
        "reuse and its revocation: one operation"
    );
    let (_, grant) = s
        .refresh_family(&TokenHash::of("ho"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.revoked_at, Some(NOW));
    let log = s.revocations_since(0, NOW).await.unwrap();
    assert!(log
        .iter()
        .any(|r| r.kind == RevokedKind::Grant && r.value == "g-ops"));
}

/// A rotation that detects reuse revokes the family in its own operation: the grant and its revocation entry
/// (as `revoke_grant` writes them), the live secret untouched; a second reuse adds no second entry.
pub(crate) async fn reuse_revokes_the_family_in_the_rotation(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "code-reuse").await;
    let g = grant("g-reuse");
    s.redeem_code(
        &TokenHash::of("code-reuse"),
        NOW,
        &g,
        Some(&family("hr", "rt0")),
    )
    .await
    .unwrap();
    let before = s.revocations_since(0, NOW).await.unwrap().len();
    for _ in 0..2 {
        assert_eq!(
            s.rotate_refresh(&TokenHash::of("hr"), reused(), REUSE)
                .await
                .unwrap(),
            Err(RefreshError::Reused)
        );
    }
    let (live, grant) = s
        .refresh_family(&TokenHash::of("hr"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.revoked_at, Some(NOW));
    assert_eq!(live.token_hash, TokenHash::of("rt0"));
    let log = s.revocations_since(0, NOW).await.unwrap();
    assert_eq!(log.len(), before + 1);
    let last = log.last().unwrap();
    assert_eq!(
        (last.kind, last.value.as_str(), last.expires_at),
        (RevokedKind::Grant, "g-reuse", NOW + 10)
    );
    assert!(!s.revoke_grant("g-reuse", NOW, NOW + 10).await.unwrap());
}

/// A transition whose successor rows cannot be stored (here: a grant id or a family handle that exists) fails as
/// a whole: the code stays unused, nothing half-done is committed, and the next attempt works.
pub(crate) async fn failed_transitions_change_nothing(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "code3").await;
    let g = grant("g3");
    assert_eq!(
        s.redeem_code(&TokenHash::of("code3"), NOW, &g, Some(&family("h3", "a")))
            .await
            .unwrap(),
        Transition::Won
    );
    // Redeeming a code into a grant id that exists must fail and leave the code unused.
    seed_code(s.as_ref(), "code4").await;
    let dup = s
        .redeem_code(&TokenHash::of("code4"), NOW, &grant("g3"), None)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // So must one into a family handle that exists (a new grant must not share another's family).
    let dup = s
        .redeem_code(
            &TokenHash::of("code4"),
            NOW,
            &grant("g4"),
            Some(&family("h3", "b")),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let code = s.code(&TokenHash::of("code4")).await.unwrap().unwrap();
    assert_eq!((code.used_at, code.grant_id), (None, None));
    assert!(s.grant("g4").await.unwrap().is_none());
    assert_eq!(live_secret(s.as_ref(), "h3").await, TokenHash::of("a"));
    assert_eq!(
        s.redeem_code(
            &TokenHash::of("code4"),
            NOW,
            &grant("g4"),
            Some(&family("h4", "d"))
        )
        .await
        .unwrap(),
        Transition::Won
    );
}

/// Many concurrent writes of every hot kind (registration, code, redemption, rotation, revocation) are all
/// committed and each is readable as soon as its caller is answered (group commit answers after `COMMIT`).
pub(crate) async fn concurrent_writes_all_commit(s: Arc<dyn Storage>) {
    seed_code(s.as_ref(), "code5").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("cw{i}");
            s.insert_client(&client(&id)).await.unwrap();
            assert!(s.client(&id).await.unwrap().is_some());
            let code = format!("cwcode{i}");
            s.insert_code(&CodeRecord {
                code_hash: TokenHash::of(&code),
                client_id: id.clone(),
                user_id: "u1".into(),
                redirect_uri: "http://localhost/cb".into(),
                code_challenge: "ch".into(),
                scope: "mcp:tools".into(),
                resource: "http://x/mcp".into(),
                created_at: NOW,
                expires_at: NOW + 60,
                used_at: None,
                grant_id: None,
                identity: DisplayIdentity::password_user("alice"),
            })
            .await
            .unwrap();
            let mut g = grant(&format!("cwg{i}"));
            g.client_id = id;
            let (handle, rt) = (format!("cwh{i}"), format!("cwrt{i}"));
            assert_eq!(
                s.redeem_code(&TokenHash::of(&code), NOW, &g, Some(&family(&handle, &rt)))
                    .await
                    .unwrap(),
                Transition::Won
            );
            let next = format!("cwrt{i}-next");
            let out = s
                .rotate_refresh(&TokenHash::of(&handle), rotate(&rt, &next), REUSE)
                .await
                .unwrap();
            assert!(out.is_ok());
            let (live, grant) = s
                .refresh_family(&TokenHash::of(&handle))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (live.token_hash, grant.revoked_at),
                (TokenHash::of(&next), None)
            );
            if i % 2 == 0 {
                assert!(s.revoke_grant(&g.id, NOW, NOW + 100).await.unwrap());
                let (_, revoked) = s
                    .refresh_family(&TokenHash::of(&handle))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(revoked.revoked_at.is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let grants = s
        .revocations_since(0, NOW)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RevokedKind::Grant && r.value.starts_with("cwg"))
        .count();
    assert_eq!(grants, 20);
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

/// An instance follows the feed with a cursor (the highest `seq` it has seen) while others add revocations
/// concurrently: it must not miss any, so an entry may never become visible below a `seq` already seen.
pub(crate) async fn revocation_feed_misses_nothing(s: Arc<dyn Storage>) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                s.revoke_access_token(&format!("j{w}-{i}"), NOW + 100)
                    .await
                    .unwrap();
            }
        }));
    }
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = std::collections::HashSet::new();
            loop {
                let batch = s.revocations_since(cursor, NOW).await.unwrap();
                for r in &batch {
                    assert!(r.seq > cursor, "feed in order");
                    cursor = r.seq;
                    seen.insert(r.value.clone());
                }
                if seen.len() == WRITERS * EACH {
                    return seen;
                }
                if batch.is_empty() {
                    tokio::task::yield_now().await;
                }
                let all = s.revocations_since(0, NOW).await.unwrap();
                if all.len() == WRITERS * EACH && all.last().map(|r| r.seq) == Some(cursor) {
                    // Everything is committed and the cursor reached the end; anything missed is lost.
                    return seen;
                }
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    assert_eq!(
        seen.len(),
        WRITERS * EACH,
        "a cursor-following reader saw every revocation"
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
    seed_code(s.as_ref(), "code4").await;
    s.redeem_code(
        &TokenHash::of("code4"),
        NOW,
        &grant("g"),
        Some(&family("h", "rt")),
    )
    .await
    .unwrap();
    s.insert_session(&SessionRecord {
        id_hash: TokenHash::of("cookie"),
        user_id: "u1".into(),
        username: "alice".into(),
        identity: DisplayIdentity::password_user("alice"),
        csrf_key: Secret::new("k"),
        created_at: NOW,
        expires_at: NOW + 100,
    })
    .await
    .unwrap();
    s.revoke_access_token("j", NOW + 5).await.unwrap();
    let key = |kid: &str| SigningKeyRecord {
        kid: kid.into(),
        alg: "ES256".into(),
        private_key: vec![1, 2, 3],
        public_jwk: "{}".into(),
        created_at: NOW,
        active: true,
        publish_until: None,
    };
    assert!(s.insert_first_key(&key("k1")).await.unwrap());
    assert!(!s.insert_first_key(&key("k0")).await.unwrap());
    s.rotate_key(&key("k2"), NOW + 10).await.unwrap();

    // Nothing has expired yet.
    assert_eq!(s.purge_expired(NOW).await.unwrap(), 0);
    // Two codes, a grant (with its refresh family), a session, a revocation entry and the retired key.
    assert_eq!(s.purge_expired(NOW + 60 + 3601).await.unwrap(), 6);
    assert!(s.code(&TokenHash::of("code3")).await.unwrap().is_none());
    assert!(s.grant("g").await.unwrap().is_none());
    assert!(s
        .refresh_family(&TokenHash::of("h"))
        .await
        .unwrap()
        .is_none());
    assert!(s.revocations_since(0, 0).await.unwrap().is_empty());
    let keys = s.signing_keys(0).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].kid.as_str(), keys[0].active), ("k2", true));
    assert_eq!(s.purge_expired(NOW + 60 + 3601).await.unwrap(), 0);
}

/// Introspection credentials (migration 0008) read back as stored, and, being admin-made, are never reaped
/// however long they go without a grant: no user ever approves a resource server.
pub(crate) async fn introspection_credentials_stay(s: Arc<dyn Storage>) {
    let mut any = client("rs-any");
    any.origin = ClientOrigin::Admin;
    any.introspection = Some(vec![]);
    let mut some = client("rs-some");
    some.origin = ClientOrigin::Admin;
    some.introspection = Some(vec!["https://a/mcp".into(), "https://b/mcp".into()]);
    s.insert_client(&client("unused")).await.unwrap();
    s.insert_client(&any).await.unwrap();
    s.insert_client(&some).await.unwrap();
    assert_eq!(s.client("rs-any").await.unwrap().as_ref(), Some(&any));
    assert_eq!(s.client("rs-some").await.unwrap().as_ref(), Some(&some));
    assert_eq!(
        s.client("unused").await.unwrap().unwrap().introspection,
        None
    );
    let policy = portcullis_authz::client_reaping::ReapPolicy {
        tokenless_after: 60,
        idle_after: 60,
    };
    let later = NOW + 365 * 24 * 3600;
    let reaped = s
        .reap_clients(&policy.cutoffs(later), "", 100, later + 60)
        .await
        .unwrap();
    assert_eq!(
        reaped,
        vec!["unused".to_owned()],
        "only the registered client"
    );
    assert!(
        s.client("rs-any").await.unwrap().is_some() && s.client("rs-some").await.unwrap().is_some(),
        "an introspection credential stays"
    );
}

pub(crate) async fn rate_limits(s: Arc<dyn Storage>) {
    assert_eq!(s.hits("k", NOW).await.unwrap(), 0);
    assert_eq!(s.hit("k", NOW, NOW + 60).await.unwrap(), 1);
    assert_eq!(s.hit("k", NOW, NOW + 60).await.unwrap(), 2);
    assert_eq!(s.hits("k", NOW).await.unwrap(), 2);
    // Windows and keys are counted apart.
    assert_eq!(s.hit("k", NOW + 60, NOW + 120).await.unwrap(), 1);
    assert_eq!(s.hit("other", NOW, NOW + 60).await.unwrap(), 1);
    // Concurrent hits are all counted.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.hit("busy", NOW, NOW + 60).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u32>>());
    assert_eq!(s.hits("busy", NOW).await.unwrap(), 20);
    // A refund takes one event back from that window only, never below zero.
    s.release_hit("busy", NOW).await.unwrap();
    assert_eq!(s.hits("busy", NOW).await.unwrap(), 19);
    s.release_hit("k", NOW + 60).await.unwrap();
    s.release_hit("k", NOW + 60).await.unwrap();
    assert_eq!(s.hits("k", NOW + 60).await.unwrap(), 0);
    assert_eq!(s.hits("k", NOW).await.unwrap(), 2);
    s.release_hit("nothing", NOW).await.unwrap();
    assert_eq!(s.hits("nothing", NOW).await.unwrap(), 0);
    s.clear_hits("k").await.unwrap();
    assert_eq!(s.hits("k", NOW).await.unwrap(), 0);
    assert_eq!(s.hits("k", NOW + 60).await.unwrap(), 0);
    assert_eq!(s.hits("other", NOW).await.unwrap(), 1);
    // Windows go when they expire: "other" and "busy" (NOW + 60), not before.
    assert_eq!(s.purge_expired(NOW + 60).await.unwrap(), 0);
    assert_eq!(s.purge_expired(NOW + 61).await.unwrap(), 2);
    assert_eq!(s.hits("busy", NOW).await.unwrap(), 0);
}

/// A reservation is one conditional upsert: however many callers race, exactly `limit` get a place; a full
/// window is left as it is; a released place can be taken again.
pub(crate) async fn rate_limit_reservations(s: Arc<dyn Storage>) {
    assert_eq!(s.reserve_hit("r", NOW, NOW + 60, 2).await.unwrap(), Some(1));
    assert_eq!(s.reserve_hit("r", NOW, NOW + 60, 2).await.unwrap(), Some(2));
    assert_eq!(s.reserve_hit("r", NOW, NOW + 60, 2).await.unwrap(), None);
    assert_eq!(s.hits("r", NOW).await.unwrap(), 2, "a refusal adds nothing");
    s.release_hit("r", NOW).await.unwrap();
    assert_eq!(s.hits("r", NOW).await.unwrap(), 1);
    assert_eq!(s.reserve_hit("r", NOW, NOW + 60, 2).await.unwrap(), Some(2));
    // Another window of the same key is counted apart; releasing an absent window is harmless.
    assert_eq!(
        s.reserve_hit("r", NOW + 60, NOW + 120, 2).await.unwrap(),
        Some(1)
    );
    s.release_hit("absent", NOW).await.unwrap();
    s.release_hit("r", NOW + 60).await.unwrap();
    s.release_hit("r", NOW + 60).await.unwrap();
    assert_eq!(s.hits("r", NOW + 60).await.unwrap(), 0, "never below zero");
    // Concurrent reservations: exactly the limit succeed.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.reserve_hit("race", NOW, NOW + 60, 5).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tasks {
        granted.extend(t.await.unwrap());
    }
    granted.sort_unstable();
    assert_eq!(granted, vec![1, 2, 3, 4, 5]);
    assert_eq!(s.hits("race", NOW).await.unwrap(), 5);
}

on_every_backend!(
    clients,
    users_and_sessions,
    identity_round_trips,
    consent,
    code_single_use_under_concurrency,
    refresh_rotation_under_concurrency,
    reuse_revokes_the_family_in_the_rotation,
    failed_transitions_change_nothing,
    concurrent_writes_all_commit,
    revocations,
    revocation_feed_misses_nothing,
    keys_first_start_race,
    purge,
    introspection_credentials_stay,
    rate_limits,
    rate_limit_reservations
);
