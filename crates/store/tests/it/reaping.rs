//! Reaping dead registrations and the usage `portcullis clients list` shows, on every backend, with a fixed
//! clock: the SQL of each backend must decide exactly as the pure rule (`ReapCutoffs::reason`).

use portcullis_authz::client_reaping::{ReapPolicy, ReapReason};
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;
const DAY: i64 = 24 * 3600;
/// How long the revocation entries a reap writes live.
const REVOCATION_LIFE: i64 = 3700;

fn client(id: &str, origin: ClientOrigin) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        secret_hash: None,
        metadata_json: "{}".into(),
        created_at: NOW,
        origin,
        introspection: None,
    }
}

/// Stores a code for `client` and redeems it at `at` into grant `grant` (expiring at `expires_at`), with a
/// refresh family last rotated at `refreshed_at` when given.
async fn grant(
    s: &dyn Storage,
    client: &str,
    grant: &str,
    at: i64,
    expires_at: i64,
    refreshed_at: Option<i64>,
) {
    let code = TokenHash::of(&format!("code-{grant}"));
    s.insert_code(&CodeRecord {
        code_hash: code.clone(),
        client_id: client.into(),
        user_id: "u1".into(),
        redirect_uri: "http://localhost/cb".into(),
        code_challenge: "ch".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: at,
        expires_at: at + 60,
        used_at: None,
        grant_id: None,
        identity: DisplayIdentity::password_user("alice"),
    })
    .await
    .unwrap();
    let g = GrantRecord {
        id: grant.into(),
        client_id: client.into(),
        user_id: "u1".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: at,
        expires_at,
        revoked_at: None,
        identity: DisplayIdentity::password_user("alice"),
    };
    let family = refreshed_at.map(|t| RefreshFamily {
        key: TokenHash::of(&format!("handle-{grant}")),
        token_hash: TokenHash::of(&format!("secret-{grant}")),
        issued_at: t,
        expires_at,
        previous: None,
    });
    let won = s.redeem_code(&code, at, &g, family.as_ref()).await.unwrap();
    assert_eq!(won, Transition::Won);
}

/// The clients `cutoffs` reap according to the pure rule, from the store's own usage.
async fn expected(s: &dyn Storage, policy: &ReapPolicy, now: i64) -> BTreeMap<String, ReapReason> {
    (s.client_usage(now).await.unwrap().iter())
        .filter_map(|u| Some((u.client.client_id.clone(), policy.reason(u, now)?)))
        .collect()
}

/// Reaps at `now` and checks that the store deleted exactly what the pure rule says; returns the ids.
async fn reap_as_the_rule_says(s: &dyn Storage, policy: &ReapPolicy, now: i64) -> Vec<String> {
    let want: Vec<String> = expected(s, policy, now).await.into_keys().collect();
    let got = s
        .reap_clients(&policy.cutoffs(now), "", 1000, now + REVOCATION_LIFE)
        .await
        .unwrap();
    assert_eq!(got, want, "reaped at {now} (NOW + {})", now - NOW);
    for id in &got {
        assert!(s.client(id).await.unwrap().is_none(), "{id} is gone");
    }
    got
}

/// The fixture: one client per case, all registered at `NOW` by user `u1`'s approval where they were used.
async fn fixture(s: &dyn Storage) {
    s.insert_user(&UserRecord {
        id: "u1".into(),
        username: "alice".into(),
        password_hash: "$argon2id$x".into(),
        created_at: NOW,
    })
    .await
    .unwrap();
    for (id, origin) in [
        ("a-never-used", ClientOrigin::Registered),
        ("b-admin", ClientOrigin::Admin),
        ("c-live", ClientOrigin::Registered),
        ("d-revoked", ClientOrigin::Registered),
        ("e-expired", ClientOrigin::Registered),
        ("f-code-only", ClientOrigin::Registered),
        (
            "https://app.example/client.json",
            ClientOrigin::MetadataDocument,
        ),
    ] {
        s.insert_client(&client(id, origin)).await.unwrap();
    }
    // A live grant, refreshed at NOW + 50.
    grant(
        s,
        "c-live",
        "g-live",
        NOW + 10,
        NOW + 2000 * DAY,
        Some(NOW + 50),
    )
    .await;
    // A grant revoked at once: no live grant, last used at its creation.
    grant(s, "d-revoked", "g-revoked", NOW + 20, NOW + 400 * DAY, None).await;
    assert!(s
        .revoke_grant("g-revoked", NOW + 21, NOW + 100)
        .await
        .unwrap());
    // A grant that expired (absolute end) at NOW + 3 days, never revoked, last refreshed at NOW + 2 days.
    grant(
        s,
        "e-expired",
        "g-expired",
        NOW + 30,
        NOW + 3 * DAY,
        Some(NOW + 2 * DAY),
    )
    .await;
    // A code nobody redeemed, and a consent.
    s.save_consent("u1", "f-code-only", "https://mcp.example", "mcp:tools", NOW)
        .await
        .unwrap();
    s.insert_code(&CodeRecord {
        code_hash: TokenHash::of("unredeemed"),
        client_id: "f-code-only".into(),
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

pub(crate) async fn usage_is_derived_from_grants(s: Arc<dyn Storage>) {
    fixture(s.as_ref()).await;
    let usage: BTreeMap<String, (Option<i64>, u64, ClientOrigin)> = (s.client_usage(NOW + DAY))
        .await
        .unwrap()
        .into_iter()
        .map(|u| {
            (
                u.client.client_id.clone(),
                (u.last_used_at, u.live_grants, u.client.origin),
            )
        })
        .collect();
    let want: BTreeMap<String, (Option<i64>, u64, ClientOrigin)> = [
        ("a-never-used", (None, 0, ClientOrigin::Registered)),
        ("b-admin", (None, 0, ClientOrigin::Admin)),
        ("c-live", (Some(NOW + 50), 1, ClientOrigin::Registered)),
        ("d-revoked", (Some(NOW + 20), 0, ClientOrigin::Registered)),
        (
            "e-expired",
            (Some(NOW + 2 * DAY), 1, ClientOrigin::Registered),
        ),
        ("f-code-only", (None, 0, ClientOrigin::Registered)),
        (
            "https://app.example/client.json",
            (None, 0, ClientOrigin::MetadataDocument),
        ),
    ]
    .into_iter()
    .map(|(id, u)| (id.to_owned(), u))
    .collect();
    assert_eq!(usage, want);
    // Once its end has passed, e-expired's grant is no longer live; purging it keeps its last use.
    let later = s.client_usage(NOW + 3 * DAY + 1).await.unwrap();
    let e = later
        .iter()
        .find(|u| u.client.client_id == "e-expired")
        .unwrap();
    assert_eq!((e.last_used_at, e.live_grants), (Some(NOW + 2 * DAY), 0));
    assert!(s.purge_expired(NOW + 3 * DAY + 1).await.unwrap() >= 1);
    assert!(s.grant("g-expired").await.unwrap().is_none(), "purged");
    let after_purge = s.client_usage(NOW + 3 * DAY + 1).await.unwrap();
    let e = after_purge
        .iter()
        .find(|u| u.client.client_id == "e-expired")
        .unwrap();
    assert_eq!(
        (e.last_used_at, e.live_grants),
        (Some(NOW + 2 * DAY), 0),
        "the purged grant's last use is kept on the client"
    );
    // Deleting a user deletes their grants; what they said about the client's use stays too.
    assert!(s
        .delete_user("alice", NOW + 3 * DAY + 2, NOW + 4 * DAY)
        .await
        .unwrap());
    let after_user = s.client_usage(NOW + 3 * DAY + 2).await.unwrap();
    let c = after_user
        .iter()
        .find(|u| u.client.client_id == "c-live")
        .unwrap();
    assert_eq!((c.last_used_at, c.live_grants), (Some(NOW + 50), 0));
}

pub(crate) async fn reaping_follows_the_rule(s: Arc<dyn Storage>) {
    fixture(s.as_ref()).await;
    let policy = ReapPolicy::default();
    assert!(
        reap_as_the_rule_says(s.as_ref(), &policy, NOW + DAY)
            .await
            .is_empty(),
        "a day: not yet"
    );
    // After a day, the clients that never obtained a token go (a metadata document's row too), the admin's
    // stays, and so do the used ones.
    assert_eq!(
        reap_as_the_rule_says(s.as_ref(), &policy, NOW + DAY + 1).await,
        [
            "a-never-used",
            "f-code-only",
            "https://app.example/client.json"
        ]
    );
    assert!(
        s.code(&TokenHash::of("unredeemed"))
            .await
            .unwrap()
            .is_none(),
        "its code went with it"
    );
    assert!(
        !s.has_consented("u1", "f-code-only").await.unwrap(),
        "and its consent"
    );
    // 90 days after its last use, the client whose only grant was revoked goes; the one with a live grant and
    // the admin's never do; the expired grant's client goes 90 days after its last refresh.
    let idle = NOW + 20 + 90 * DAY;
    assert!(reap_as_the_rule_says(s.as_ref(), &policy, idle)
        .await
        .is_empty());
    let feed_before = s.revocations_since(0, 0).await.unwrap().len();
    assert_eq!(
        reap_as_the_rule_says(s.as_ref(), &policy, idle + 1).await,
        ["d-revoked"]
    );
    assert!(
        s.grant("g-revoked").await.unwrap().is_none(),
        "its grant went with it"
    );
    assert_eq!(
        s.revocations_since(0, 0).await.unwrap().len(),
        feed_before,
        "an already revoked grant needs no new revocation entry"
    );
    let e_idle = NOW + 2 * DAY + 90 * DAY + 1;
    assert_eq!(
        reap_as_the_rule_says(s.as_ref(), &policy, e_idle).await,
        ["e-expired"]
    );
    // Its grant had expired but was never revoked: the reap revokes it, so no access token of it survives.
    let feed = s.revocations_since(0, e_idle).await.unwrap();
    assert!(
        feed.iter()
            .any(|r| r.kind == RevokedKind::Grant && r.value == "g-expired"),
        "{feed:?}"
    );
    let far = NOW + 1000 * DAY;
    assert!(reap_as_the_rule_says(s.as_ref(), &policy, far)
        .await
        .is_empty());
    assert!(
        s.client("b-admin").await.unwrap().is_some(),
        "never an admin's client"
    );
    assert!(
        s.client("c-live").await.unwrap().is_some(),
        "never one with a live grant"
    );
}

pub(crate) async fn reaping_zero_is_off_and_batches_resume(s: Arc<dyn Storage>) {
    fixture(s.as_ref()).await;
    let far = NOW + 1000 * DAY;
    let off = ReapPolicy {
        tokenless_after: 0,
        idle_after: 0,
    };
    assert!(reap_as_the_rule_says(s.as_ref(), &off, far)
        .await
        .is_empty());
    let idle_only = ReapPolicy {
        tokenless_after: 0,
        idle_after: 90 * DAY,
    };
    assert!(
        reap_as_the_rule_says(s.as_ref(), &idle_only, NOW + 2 * DAY)
            .await
            .is_empty(),
        "never-used clients wait for the idle rule"
    );
    // Batches: one client per call, each call after the last one deleted, until none is left.
    let cutoffs = idle_only.cutoffs(far);
    let mut after = String::new();
    let mut reaped = Vec::new();
    loop {
        let batch = s.reap_clients(&cutoffs, &after, 1, far + 10).await.unwrap();
        assert!(batch.len() <= 1);
        let Some(last) = batch.last() else { break };
        after.clone_from(last);
        reaped.extend(batch);
    }
    assert_eq!(
        reaped,
        [
            "a-never-used",
            "d-revoked",
            "e-expired",
            "f-code-only",
            "https://app.example/client.json"
        ]
    );
}

/// A client that obtains its first grant while it is being reaped either keeps it (and the client stays), or is
/// reaped and the redemption finds no code: never a grant left on a deleted client, never a lost grant.
pub(crate) async fn reaping_races_a_first_token(s: Arc<dyn Storage>) {
    s.insert_user(&UserRecord {
        id: "u1".into(),
        username: "alice".into(),
        password_hash: "$argon2id$x".into(),
        created_at: NOW,
    })
    .await
    .unwrap();
    let at = NOW + DAY + 1;
    let cutoffs = ReapPolicy::default().cutoffs(at);
    for i in 0..20 {
        let (id, gid) = (format!("racer-{i:02}"), format!("g-{i}"));
        s.insert_client(&client(&id, ClientOrigin::Registered))
            .await
            .unwrap();
        let code = TokenHash::of(&format!("code-{gid}"));
        s.insert_code(&CodeRecord {
            code_hash: code.clone(),
            client_id: id.clone(),
            user_id: "u1".into(),
            redirect_uri: "http://localhost/cb".into(),
            code_challenge: "ch".into(),
            scope: "mcp:tools".into(),
            resource: "http://x/mcp".into(),
            created_at: at,
            expires_at: at + 60,
            used_at: None,
            grant_id: None,
            identity: DisplayIdentity::password_user("alice"),
        })
        .await
        .unwrap();
        let g = GrantRecord {
            id: gid.clone(),
            client_id: id.clone(),
            user_id: "u1".into(),
            scope: "mcp:tools".into(),
            resource: "http://x/mcp".into(),
            created_at: at,
            expires_at: at + 1000,
            revoked_at: None,
            identity: DisplayIdentity::password_user("alice"),
        };
        let (s1, s2) = (s.clone(), s.clone());
        let redeem = tokio::spawn(async move { s1.redeem_code(&code, at, &g, None).await });
        let reap = tokio::spawn(async move { s2.reap_clients(&cutoffs, "", 100, at + 10).await });
        let redeemed = redeem.await.unwrap().unwrap();
        let reaped = reap.await.unwrap().unwrap();
        let client_left = s.client(&id).await.unwrap().is_some();
        let grant = s.grant(&gid).await.unwrap();
        if redeemed == Transition::Won {
            assert!(
                client_left && !reaped.contains(&id),
                "{id}: a client that got its grant stays"
            );
            assert_eq!(grant.unwrap().revoked_at, None, "{id}: its grant is live");
        } else {
            assert!(!client_left && reaped.contains(&id), "{id}: reaped first");
            assert!(grant.is_none());
        }
    }
}

on_every_backend!(
    usage_is_derived_from_grants,
    reaping_follows_the_rule,
    reaping_zero_is_off_and_batches_resume,
    reaping_races_a_first_token,
);
