#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::ProviderName;
use crate::store::{FederationStore, UserStore};
use crate::testing::{authz_on, MemStore};

fn ext(
    provider: &str,
    subject: &str,
    username: Option<&str>,
    email: Option<&str>,
) -> ExternalIdentity {
    ExternalIdentity {
        provider: ProviderName::parse(provider).unwrap(),
        subject: subject.into(),
        username: username.map(str::to_owned),
        email: email.map(str::to_owned),
        email_verified: email.is_some(),
        groups: vec!["eng".into()],
    }
}

async fn service() -> (FederatedUsers, Arc<MemStore>, crate::Authz) {
    let store = Arc::new(MemStore::default());
    let (a, _) = authz_on(store.clone()).await;
    (FederatedUsers::new(a.core().clone()), store, a)
}

#[tokio::test]
async fn a_first_sign_in_creates_a_user_without_a_password_and_the_second_reuses_it() {
    let (users, store, _a) = service().await;
    let carol = ext("corp", "s-1", Some("carol"), Some("carol@example.com"));
    let first = users.sign_in(&carol, false).await.unwrap();
    assert_eq!(first.via, SignInVia::Created);
    assert_eq!(first.user.username, "carol");
    assert_eq!(first.user.password_hash, "");
    let mut later = carol.clone();
    later.groups = vec!["admins".into()];
    let second = users.sign_in(&later, false).await.unwrap();
    assert_eq!(second.via, SignInVia::Identity);
    assert_eq!(second.user.id, first.user.id);
    let stored = store.identity("corp", "s-1").await.unwrap().unwrap();
    assert_eq!(stored.groups, vec!["admins".to_string()]);
}

#[tokio::test]
async fn names_are_made_unique_and_never_match_a_user_by_name_or_email() {
    let (users, store, a) = service().await;
    a.sessions().add_user("carol", "a password").await.unwrap();
    let other = ext("corp", "s-2", Some("carol"), Some("carol@example.com"));
    let u = users.sign_in(&other, true).await.unwrap();
    // The password user "carol" has no verified email: never linked, a new user instead.
    assert_eq!(u.via, SignInVia::Created);
    assert_eq!(u.user.username, "carol-2");
    let third = ext("gh", "s-3", Some("carol"), None);
    assert_eq!(
        users.sign_in(&third, false).await.unwrap().user.username,
        "carol-3"
    );
    assert!(store.user_by_name("carol-3").await.unwrap().is_some());
}

#[tokio::test]
async fn link_by_verified_email_links_to_the_user_another_provider_verified() {
    let (users, _store, _a) = service().await;
    let at_corp = ext("corp", "s-1", Some("carol"), Some("Carol@Example.com"));
    let first = users.sign_in(&at_corp, false).await.unwrap();
    let at_gh = ext("gh", "77", Some("carol-gh"), Some("carol@example.com"));
    // Off by default: a second user.
    let unlinked = users.sign_in(&at_gh, false).await.unwrap();
    assert_eq!(unlinked.via, SignInVia::Created);
    let at_other = ext("other", "x", None, Some("carol@example.com"));
    // Two users now have that verified email (carol, and carol-gh through gh): ambiguous, no link.
    let ambiguous = users.sign_in(&at_other, true).await.unwrap();
    assert_eq!(ambiguous.via, SignInVia::Created);
    let (users2, _s2, _a2) = service().await;
    let first2 = users2.sign_in(&at_corp, false).await.unwrap();
    let linked = users2.sign_in(&at_gh, true).await.unwrap();
    assert_eq!(linked.via, SignInVia::VerifiedEmail);
    assert_eq!(linked.user.id, first2.user.id);
    assert_ne!(first.user.id, unlinked.user.id);
}

#[tokio::test]
async fn an_unverified_email_is_never_linked() {
    let (users, _store, _a) = service().await;
    users
        .sign_in(
            &ext("corp", "s-1", Some("carol"), Some("carol@example.com")),
            false,
        )
        .await
        .unwrap();
    let mut unverified = ext("gh", "77", Some("mallory"), Some("carol@example.com"));
    unverified.email_verified = false;
    let u = users.sign_in(&unverified, true).await.unwrap();
    assert_eq!(u.via, SignInVia::Created);
    assert_eq!(u.user.username, "mallory");
}

#[tokio::test]
async fn a_lost_race_reads_the_winners_identity() {
    let (users, store, _a) = service().await;
    let carol = ext("corp", "s-1", Some("carol"), None);
    // The winner created the identity under another name between our lookup and our insert.
    let winner = UserRecord {
        id: "u-winner".into(),
        username: "someone".into(),
        password_hash: String::new(),
        created_at: 1,
    };
    let rec = users.record(&carol, "u-winner", 1);
    store
        .create_user_with_identity(&winner, &rec)
        .await
        .unwrap();
    let u = users.create(&carol).await.unwrap();
    assert_eq!(u.user.id, "u-winner");
    assert_eq!(u.via, SignInVia::Identity);
}

#[test]
fn base_names_come_from_the_username_then_the_email_then_the_subject() {
    assert_eq!(
        base_username(&ext("p", "s", Some("Carol Example"), None)),
        "Carol-Example"
    );
    assert_eq!(
        base_username(&ext("p", "s", None, Some("c.x@example.com"))),
        "c.x"
    );
    assert_eq!(base_username(&ext("p", "1234", Some("  "), None)), "1234");
    assert_eq!(base_username(&ext("p", "~~~", Some("émile"), None)), "mile");
    assert_eq!(base_username(&ext("p", "---", None, None)), "user");
    let long = "a".repeat(100);
    let name = base_username(&ext("p", "s", Some(&long), None));
    assert_eq!(name.len(), 48);
    assert!(check_username(&with_suffix(&name, "abcdefgh")).is_ok());
}
