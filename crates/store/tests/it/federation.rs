//! The federation storage contract (identities, pending upstream sign-ins, the sealed upstream tokens), on every
//! backend; and, on SQLite, that the database files never hold a sealed value in the clear.

use portcullis_authz::random::OsRandom;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use portcullis_authz::vault::{self, KeyId, Vault, VaultKey};
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;

fn user(id: &str, name: &str, password_hash: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: name.into(),
        password_hash: password_hash.into(),
        created_at: NOW,
    }
}

fn identity(provider: &str, subject: &str, user_id: &str) -> IdentityRecord {
    IdentityRecord {
        provider: provider.into(),
        subject: subject.into(),
        user_id: user_id.into(),
        email: Some(format!("{subject}@example.com")),
        email_verified: true,
        username: Some(subject.into()),
        groups: vec!["staff".into(), "mcp-users".into()],
        created_at: NOW,
        last_login_at: NOW,
    }
}

fn state(value: &str, expires_at: i64) -> UpstreamStateRecord {
    UpstreamStateRecord {
        state_hash: TokenHash::of(value),
        provider: "corp".into(),
        key_id: KeyId::from_stored("00112233aabbccdd".into()),
        sealed: vec![1, 2, 3, 4],
        expires_at,
    }
}

fn tokens(user_id: &str, provider: &str, sealed: &[u8]) -> UpstreamTokenRecord {
    UpstreamTokenRecord {
        user_id: user_id.into(),
        provider: provider.into(),
        key_id: KeyId::from_stored("00112233aabbccdd".into()),
        sealed: sealed.to_vec(),
        expires_at: Some(NOW + 3600),
        refreshing_until: 0,
        updated_at: NOW,
    }
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

pub(crate) async fn identities(s: Arc<dyn Storage>) {
    let carol = user("u-carol", "carol", "");
    let corp = identity("corp", "1234", "u-carol");
    s.create_user_with_identity(&carol, &corp).await.unwrap();
    assert_eq!(s.user_by_id("u-carol").await.unwrap(), Some(carol.clone()));
    assert_eq!(s.user_by_id("nobody").await.unwrap(), None);
    assert_eq!(
        s.identity("corp", "1234").await.unwrap(),
        Some(corp.clone())
    );
    assert_eq!(s.identity("corp", "12345").await.unwrap(), None);
    assert_eq!(s.identity("other", "1234").await.unwrap(), None);

    // The identity is taken: nothing of the second user is stored.
    let r = s
        .create_user_with_identity(
            &user("u-x", "mallory", ""),
            &identity("corp", "1234", "u-x"),
        )
        .await;
    assert!(is_conflict(&r), "{r:?}");
    assert_eq!(s.user_by_name("mallory").await.unwrap(), None);
    // The name is taken: the identity is not stored.
    let r = s
        .create_user_with_identity(&user("u-y", "carol", ""), &identity("corp", "999", "u-y"))
        .await;
    assert!(is_conflict(&r), "{r:?}");
    assert_eq!(s.identity("corp", "999").await.unwrap(), None);

    // Explicit links.
    s.insert_user(&user("u-alice", "alice", "$argon2id$x"))
        .await
        .unwrap();
    let gh = identity("github", "42", "u-alice");
    s.link_identity(&gh).await.unwrap();
    let r = s.link_identity(&identity("github", "42", "u-carol")).await;
    assert!(is_conflict(&r), "linked to someone else: {r:?}");
    let r = s.link_identity(&identity("github", "43", "u-alice")).await;
    assert!(is_conflict(&r), "a second identity at one provider: {r:?}");
    let r = s
        .link_identity(&identity("corp", "77", "no-such-user"))
        .await;
    assert!(r.is_err(), "a link to a missing user: {r:?}");
    let corp_alice = identity("corp", "5678", "u-alice");
    s.link_identity(&corp_alice).await.unwrap();

    assert_eq!(
        s.identities_of("u-alice").await.unwrap(),
        vec![corp_alice.clone(), gh.clone()]
    );
    assert_eq!(
        s.list_identities().await.unwrap(),
        vec![corp_alice.clone(), gh.clone(), corp.clone()]
    );

    // A sign-in updates what the provider reported, nothing else.
    let mut seen = corp.clone();
    seen.email = None;
    seen.email_verified = false;
    seen.username = Some("carol.c".into());
    seen.groups = vec![];
    seen.last_login_at = NOW + 50;
    seen.user_id = "u-alice".into();
    seen.created_at = 0;
    assert!(s.touch_identity(&seen).await.unwrap());
    let stored = s.identity("corp", "1234").await.unwrap().unwrap();
    assert_eq!(
        (stored.user_id.as_str(), stored.created_at),
        ("u-carol", NOW)
    );
    assert_eq!(
        (
            stored.email,
            stored.email_verified,
            stored.username,
            stored.groups,
            stored.last_login_at
        ),
        (None, false, Some("carol.c".into()), vec![], NOW + 50)
    );
    assert!(!s
        .touch_identity(&identity("corp", "nope", "u-carol"))
        .await
        .unwrap());

    // Unlinking removes the identity and the tokens at that provider only.
    s.put_upstream_tokens(&tokens("u-alice", "github", b"gh"))
        .await
        .unwrap();
    s.put_upstream_tokens(&tokens("u-alice", "corp", b"corp"))
        .await
        .unwrap();
    assert!(s.unlink_identity("u-alice", "github").await.unwrap());
    assert!(!s.unlink_identity("u-alice", "github").await.unwrap());
    assert_eq!(s.identity("github", "42").await.unwrap(), None);
    assert_eq!(s.upstream_tokens("u-alice", "github").await.unwrap(), None);
    assert!(s
        .upstream_tokens("u-alice", "corp")
        .await
        .unwrap()
        .is_some());
    // The identity is free again.
    s.link_identity(&identity("github", "42", "u-carol"))
        .await
        .unwrap();
}

pub(crate) async fn deleting_a_user_deletes_identities_and_tokens(s: Arc<dyn Storage>) {
    s.create_user_with_identity(&user("u1", "carol", ""), &identity("corp", "1", "u1"))
        .await
        .unwrap();
    s.create_user_with_identity(&user("u2", "dave", ""), &identity("corp", "2", "u2"))
        .await
        .unwrap();
    s.put_upstream_tokens(&tokens("u1", "corp", b"x"))
        .await
        .unwrap();
    s.put_upstream_tokens(&tokens("u2", "corp", b"y"))
        .await
        .unwrap();
    assert!(s.delete_user("carol", NOW, NOW + 10).await.unwrap());
    assert_eq!(s.identity("corp", "1").await.unwrap(), None);
    assert_eq!(s.identities_of("u1").await.unwrap(), vec![]);
    assert_eq!(s.upstream_tokens("u1", "corp").await.unwrap(), None);
    // Someone else's are untouched.
    assert!(s.identity("corp", "2").await.unwrap().is_some());
    assert!(s.upstream_tokens("u2", "corp").await.unwrap().is_some());
    // A new user may take the identity of the deleted one (the provider's account came back).
    s.create_user_with_identity(&user("u3", "carol", ""), &identity("corp", "1", "u3"))
        .await
        .unwrap();
}

pub(crate) async fn upstream_state_single_use_under_concurrency(s: Arc<dyn Storage>) {
    s.insert_upstream_state(&state("st", NOW + 600))
        .await
        .unwrap();
    let r = s.insert_upstream_state(&state("st", NOW + 600)).await;
    assert!(is_conflict(&r), "{r:?}");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take_upstream_state(&TokenHash::of("st"), NOW).await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        if let Some(rec) = t.await.unwrap().unwrap() {
            won.push(rec);
        }
    }
    assert_eq!(won, vec![state("st", NOW + 600)], "exactly one winner");
    assert_eq!(
        s.take_upstream_state(&TokenHash::of("st"), NOW)
            .await
            .unwrap(),
        None
    );

    // Expired states are never returned, and purged.
    s.insert_upstream_state(&state("old", NOW - 1))
        .await
        .unwrap();
    s.insert_upstream_state(&state("edge", NOW)).await.unwrap();
    s.insert_upstream_state(&state("live", NOW + 600))
        .await
        .unwrap();
    assert_eq!(
        s.take_upstream_state(&TokenHash::of("old"), NOW)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.take_upstream_state(&TokenHash::of("edge"), NOW)
            .await
            .unwrap(),
        None,
        "expires_at is the first instant it is refused"
    );
    assert!(s.purge_expired(NOW + 1).await.unwrap() >= 2);
    let rows = s
        .sealed_rows(SealedTable::UpstreamStates, None, 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the live state is left: {rows:?}");
    assert_eq!(
        s.take_upstream_state(&TokenHash::of("live"), NOW)
            .await
            .unwrap(),
        Some(state("live", NOW + 600))
    );
}

pub(crate) async fn upstream_refresh_lease_under_concurrency(s: Arc<dyn Storage>) {
    s.insert_user(&user("u1", "carol", "")).await.unwrap();
    assert!(!s
        .lease_upstream_refresh("u1", "corp", NOW, NOW + 30)
        .await
        .unwrap());
    let mut held = tokens("u1", "corp", b"sealed");
    held.refreshing_until = NOW + 999;
    s.put_upstream_tokens(&held).await.unwrap();
    assert_eq!(
        s.upstream_tokens("u1", "corp").await.unwrap(),
        Some(tokens("u1", "corp", b"sealed")),
        "a put stores no lease"
    );
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.lease_upstream_refresh("u1", "corp", NOW, NOW + 30).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += u32::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "exactly one lease holder");
    let leased = s.upstream_tokens("u1", "corp").await.unwrap().unwrap();
    assert_eq!(leased.refreshing_until, NOW + 30);
    assert!(!s
        .lease_upstream_refresh("u1", "corp", NOW + 29, NOW + 60)
        .await
        .unwrap());
    // An abandoned lease expires; storing the refreshed tokens releases it at once.
    assert!(s
        .lease_upstream_refresh("u1", "corp", NOW + 30, NOW + 60)
        .await
        .unwrap());
    let mut fresh = tokens("u1", "corp", b"refreshed");
    fresh.updated_at = NOW + 31;
    fresh.expires_at = None;
    s.put_upstream_tokens(&fresh).await.unwrap();
    assert_eq!(s.upstream_tokens("u1", "corp").await.unwrap(), Some(fresh));
    assert!(s
        .lease_upstream_refresh("u1", "corp", NOW + 31, NOW + 60)
        .await
        .unwrap());
    assert!(s.delete_upstream_tokens("u1", "corp").await.unwrap());
    assert!(!s.delete_upstream_tokens("u1", "corp").await.unwrap());
    assert_eq!(s.upstream_tokens("u1", "corp").await.unwrap(), None);
}

/// Every row of a table, read in pages of `page`.
async fn all_sealed(s: &dyn Storage, table: SealedTable, page: u32) -> Vec<SealedRow> {
    let mut rows: Vec<SealedRow> = Vec::new();
    loop {
        let after = rows.last().map(|r| r.key.clone());
        let next = s.sealed_rows(table, after.as_ref(), page).await.unwrap();
        if next.is_empty() {
            return rows;
        }
        assert!(next.len() <= page as usize);
        rows.extend(next);
    }
}

pub(crate) async fn sealed_rows_page_and_reseal_only_unchanged_rows(s: Arc<dyn Storage>) {
    for u in ["a", "b", "c"] {
        s.insert_user(&user(u, u, "")).await.unwrap();
        for p in ["corp", "github"] {
            s.put_upstream_tokens(&tokens(u, p, format!("{u}-{p}").as_bytes()))
                .await
                .unwrap();
        }
    }
    for i in 0..5 {
        s.insert_upstream_state(&state(&format!("s{i}"), NOW + 600))
            .await
            .unwrap();
    }
    let token_rows = all_sealed(s.as_ref(), SealedTable::UpstreamTokens, 4).await;
    let keys: Vec<_> = token_rows.iter().map(|r| r.key.clone()).collect();
    let mut expected = Vec::new();
    for u in ["a", "b", "c"] {
        for p in ["corp", "github"] {
            expected.push(SealedRowKey::UpstreamToken {
                user_id: u.into(),
                provider: p.into(),
            });
        }
    }
    assert_eq!(keys, expected, "every row once, in order");
    let state_rows = all_sealed(s.as_ref(), SealedTable::UpstreamStates, 2).await;
    assert_eq!(state_rows.len(), 5);
    let wrong = s
        .sealed_rows(SealedTable::UpstreamStates, Some(&token_rows[0].key), 2)
        .await;
    assert!(wrong.is_err(), "a cursor of another table: {wrong:?}");

    // Row a/corp changes after it was read: its reseal must not overwrite the newer value.
    s.put_upstream_tokens(&tokens("a", "corp", b"newer"))
        .await
        .unwrap();
    let new_id = KeyId::from_stored("ffffffffffffffff".into());
    let batch: Vec<Reseal> = token_rows
        .iter()
        .chain(state_rows.iter())
        .map(|row| Reseal {
            row: row.clone(),
            key_id: new_id.clone(),
            sealed: [b"re:".as_slice(), &row.sealed].concat(),
        })
        .collect();
    assert_eq!(s.reseal(&batch).await.unwrap(), 6 + 5 - 1);
    let a_corp = s.upstream_tokens("a", "corp").await.unwrap().unwrap();
    assert_eq!(a_corp.sealed, b"newer");
    assert_ne!(a_corp.key_id, new_id);
    let b_github = s.upstream_tokens("b", "github").await.unwrap().unwrap();
    assert_eq!(
        (b_github.key_id, b_github.sealed),
        (new_id.clone(), b"re:b-github".to_vec())
    );
    let st = s
        .take_upstream_state(&TokenHash::of("s3"), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (st.key_id, st.sealed),
        (new_id, b"re:\x01\x02\x03\x04".to_vec())
    );
    // Applying the same batch again changes nothing (every row moved on).
    assert_eq!(s.reseal(&batch).await.unwrap(), 0);
}

/// Rule: upstream tokens are stored only sealed (issue 13, "Upstream tokens never appear … in the database in
/// the clear"). Tokens are written through the vault, then the database files (main, WAL) are read byte for
/// byte: the key id is there (so these are the right files), the token text is not; and the row opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_never_hold_an_upstream_token_in_the_clear() {
    let (s, dir) = crate::sqlite().await;
    s.insert_user(&user("u1", "carol", "")).await.unwrap();
    let vault = Vault::new(VaultKey::generate(&OsRandom), vec![]);
    let secret = "gho_UpstreamAccessTokenThatMustNeverBeStoredInTheClear";
    let payload = format!(r#"{{"access_token":"{secret}","token_type":"Bearer"}}"#);
    let aad = vault::upstream_token_aad("u1", "corp");
    let (key_id, sealed) = vault.seal(payload.as_bytes(), &aad, &OsRandom).unwrap();
    let mut rec = tokens("u1", "corp", &sealed);
    rec.key_id = key_id.clone();
    s.put_upstream_tokens(&rec).await.unwrap();
    let state_aad = vault::upstream_state_aad(&TokenHash::of("st"));
    let verifier = "pkce-verifier-that-must-never-be-stored-in-the-clear";
    let (state_key, state_sealed) = vault
        .seal(verifier.as_bytes(), &state_aad, &OsRandom)
        .unwrap();
    s.insert_upstream_state(&UpstreamStateRecord {
        key_id: state_key,
        sealed: state_sealed,
        ..state("st", NOW + 600)
    })
    .await
    .unwrap();

    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".db") {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(key_id.as_str().as_bytes()),
        "the key id is not in the files read"
    );
    assert!(
        contains(&sealed[..16]),
        "the sealed bytes are not in the files read"
    );
    for needle in [secret, "UpstreamAccessToken", verifier, "access_token"] {
        assert!(
            !contains(needle.as_bytes()),
            "{needle} is stored in the clear"
        );
    }
    let back = s.upstream_tokens("u1", "corp").await.unwrap().unwrap();
    let opened = vault.open(&back.key_id, &back.sealed, &aad).unwrap();
    assert_eq!(opened.as_slice(), payload.as_bytes());
}

on_every_backend!(
    identities,
    deleting_a_user_deletes_identities_and_tokens,
    upstream_state_single_use_under_concurrency,
    upstream_refresh_lease_under_concurrency,
    sealed_rows_page_and_reseal_only_unchanged_rows,
);
