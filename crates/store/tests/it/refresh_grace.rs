//! The storage side of the refresh grace period (`portcullis_authz::token::refresh`), on every backend: a
//! rotation stores the token it retires (hash and sealed successor, opaque bytes to the store) and a later one
//! replaces or clears it; a replay writes nothing and revokes nothing; and of 50 concurrent refreshes with one
//! token, one rotates and the 49 others, deciding again on what it committed (PostgreSQL: after losing the
//! compare-and-swap), replay its successor.

use crate::contract::{family, grant, seed_code, NOW, REUSE};
use portcullis_authz::secret::{Secret, TokenHash};
use portcullis_authz::store::*;
use portcullis_proto::Scope;
use std::sync::Arc;

/// What the token `retired` left behind when it was rotated into `successor`. The store treats the sealed
/// value as opaque bytes; here it is the successor in the clear, so the test's decision can "open" it.
fn previous(retired: &str, successor: &str) -> PreviousToken {
    PreviousToken {
        hash: TokenHash::of(retired),
        sealed_successor: successor.as_bytes().to_vec(),
    }
}

/// The refresh decision reduced to what storage must honour: `from` live → rotate into `to`, keeping `from` as
/// the previous token; `from` the previous token → replay the successor (no write); else reuse.
fn grace_like(from: &str, to: &str) -> RotationDecider {
    let (from, to) = (from.to_owned(), to.to_owned());
    Box::new(move |f, g| {
        if g.revoked_at.is_some() {
            return Err(RefreshError::Revoked);
        }
        let scope = Scope::parse(&g.scope).unwrap();
        if f.token_hash.ct_eq(&TokenHash::of(&from)) {
            let step = RotationStep::Rotate(RefreshUpdate {
                token_hash: TokenHash::of(&to),
                issued_at: NOW + 1,
                expires_at: NOW + 200,
                previous: Some(previous(&from, &to)),
            });
            return Ok(RotationDecision { step, scope });
        }
        match &f.previous {
            Some(p) if p.hash.ct_eq(&TokenHash::of(&from)) => {
                let successor = String::from_utf8(p.sealed_successor.clone()).unwrap();
                let step = RotationStep::Replay(Secret::new(successor));
                Ok(RotationDecision { step, scope })
            }
            _ => Err(RefreshError::Reused),
        }
    })
}

/// A live grant `gid` whose family `handle` has live secret `rt0`.
async fn seeded(s: &dyn Storage, code: &str, gid: &str, handle: &str) {
    seed_code(s, code).await;
    let won = s
        .redeem_code(
            &TokenHash::of(code),
            NOW,
            &grant(gid),
            Some(&family(handle, "rt0")),
        )
        .await
        .unwrap();
    assert_eq!(won, Transition::Won);
}

async fn family_of(s: &dyn Storage, handle: &str) -> (RefreshFamily, GrantRecord) {
    s.refresh_family(&TokenHash::of(handle))
        .await
        .unwrap()
        .unwrap()
}

pub(crate) async fn rotation_keeps_the_retired_token(s: Arc<dyn Storage>) {
    seeded(s.as_ref(), "code-prev", "g-prev", "hp").await;
    assert_eq!(family_of(s.as_ref(), "hp").await.0.previous, None);
    let rotation = s
        .rotate_refresh(&TokenHash::of("hp"), grace_like("rt0", "rt1"), REUSE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.replayed, None, "a rotation replays nothing");
    let (f, _) = family_of(s.as_ref(), "hp").await;
    assert_eq!(f.token_hash, TokenHash::of("rt1"));
    assert_eq!(f.previous, Some(previous("rt0", "rt1")));
    // Any bytes round-trip (a sealed value is binary), and the next rotation replaces them.
    let binary: Vec<u8> = (0..=255u8).step_by(8).chain([0, 255]).collect();
    let sealed = binary.clone();
    let next = TokenHash::of("rt2");
    let decide: RotationDecider = Box::new(move |_, g| {
        let step = RotationStep::Rotate(RefreshUpdate {
            token_hash: next.clone(),
            issued_at: NOW + 2,
            expires_at: NOW + 300,
            previous: Some(PreviousToken {
                hash: TokenHash::of("rt1"),
                sealed_successor: sealed.clone(),
            }),
        });
        let scope = Scope::parse(&g.scope).unwrap();
        Ok(RotationDecision { step, scope })
    });
    s.rotate_refresh(&TokenHash::of("hp"), decide, REUSE)
        .await
        .unwrap()
        .unwrap();
    let (f, _) = family_of(s.as_ref(), "hp").await;
    assert_eq!(f.previous.map(|p| p.sealed_successor), Some(binary));
    // A rotation with no grace period keeps no retired token.
    s.rotate_refresh(&TokenHash::of("hp"), rotate_strict("rt2", "rt3"), REUSE)
        .await
        .unwrap()
        .unwrap();
    let (f, _) = family_of(s.as_ref(), "hp").await;
    assert_eq!((f.token_hash, f.previous), (TokenHash::of("rt3"), None));
}

/// Rotates `from` into `to` without keeping the retired token (grace period 0).
fn rotate_strict(from: &str, to: &str) -> RotationDecider {
    let (from, to) = (TokenHash::of(from), TokenHash::of(to));
    Box::new(move |f, g| {
        if !f.token_hash.ct_eq(&from) {
            return Err(RefreshError::Reused);
        }
        let step = RotationStep::Rotate(RefreshUpdate {
            token_hash: to.clone(),
            issued_at: NOW + 3,
            expires_at: NOW + 400,
            previous: None,
        });
        let scope = Scope::parse(&g.scope).unwrap();
        Ok(RotationDecision { step, scope })
    })
}

pub(crate) async fn replay_writes_and_revokes_nothing(s: Arc<dyn Storage>) {
    seeded(s.as_ref(), "code-replay", "g-replay", "hy").await;
    s.rotate_refresh(&TokenHash::of("hy"), grace_like("rt0", "rt1"), REUSE)
        .await
        .unwrap()
        .unwrap();
    let before = family_of(s.as_ref(), "hy").await;
    let logged = s.revocations_since(0, NOW).await.unwrap().len();
    for _ in 0..3 {
        let replay = s
            .rotate_refresh(&TokenHash::of("hy"), grace_like("rt0", "unused"), REUSE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay.replayed, Some(Secret::new("rt1")));
        assert_eq!(replay.grant, before.1);
        assert_eq!(replay.scope, Scope::parse("mcp:tools").unwrap());
    }
    assert_eq!(family_of(s.as_ref(), "hy").await, before, "nothing written");
    assert_eq!(s.revocations_since(0, NOW).await.unwrap().len(), logged);
    // The successor still rotates, and then the first token is an older generation: reuse revokes.
    s.rotate_refresh(&TokenHash::of("hy"), grace_like("rt1", "rt2"), REUSE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.rotate_refresh(&TokenHash::of("hy"), grace_like("rt0", "x"), REUSE)
            .await
            .unwrap(),
        Err(RefreshError::Reused)
    );
    assert_eq!(
        family_of(s.as_ref(), "hy").await.1.revoked_at,
        Some(REUSE.now)
    );
}

pub(crate) async fn concurrent_refreshes_share_one_successor(s: Arc<dyn Storage>) {
    seeded(s.as_ref(), "code-race", "g-race", "hc").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let next = format!("next{i}");
            let out = s
                .rotate_refresh(&TokenHash::of("hc"), grace_like("rt0", &next), REUSE)
                .await
                .unwrap();
            (next, out)
        }));
    }
    let (mut rotated, mut replayed) = (Vec::new(), Vec::new());
    for t in tasks {
        let (next, out) = t.await.unwrap();
        let rotation = out.expect("every concurrent refresh is answered");
        match rotation.replayed {
            None => rotated.push(next),
            Some(successor) => replayed.push(successor.expose().to_owned()),
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation");
    assert_eq!(replayed.len(), 49);
    assert!(replayed.iter().all(|s| *s == rotated[0]), "{replayed:?}");
    let (f, g) = family_of(s.as_ref(), "hc").await;
    assert_eq!(f.token_hash, TokenHash::of(&rotated[0]));
    assert_eq!(f.previous, Some(previous("rt0", &rotated[0])));
    assert_eq!(g.revoked_at, None, "the family is alive");
}

on_every_backend!(
    rotation_keeps_the_retired_token,
    replay_writes_and_revokes_nothing,
    concurrent_refreshes_share_one_successor,
);
