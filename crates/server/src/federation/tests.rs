#![allow(clippy::unwrap_used)]
use super::pages::Failure;
use crate::outbound::idp::IdpError;
use axum::http::StatusCode;
use portcullis_authz::federation::FederationError;

#[test]
fn failures_have_the_status_the_user_needs() {
    let f = |e: FederationError| Failure::from_federation(&e, "Corp SSO").status;
    assert_eq!(
        f(FederationError::AccessDenied { description: None }),
        StatusCode::FORBIDDEN
    );
    assert_eq!(f(FederationError::GroupNotAllowed), StatusCode::FORBIDDEN);
    assert_eq!(f(FederationError::NonceMismatch), StatusCode::BAD_REQUEST);
    assert_eq!(f(FederationError::MissingIssuer), StatusCode::BAD_REQUEST);
    assert_eq!(
        f(FederationError::TokenResponse("x".into())),
        StatusCode::BAD_GATEWAY
    );
    let busy = FederationError::Upstream {
        code: "temporarily_unavailable".into(),
        description: None,
    };
    assert_eq!(f(busy), StatusCode::SERVICE_UNAVAILABLE);
    let i = |e: IdpError| Failure::from_idp(&e, "Corp SSO").status;
    assert_eq!(
        i(IdpError::Timeout { host: "h".into() }),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        i(IdpError::Unreachable { host: "h".into() }),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        i(IdpError::Validation(FederationError::BadSignature)),
        StatusCode::BAD_REQUEST
    );
    let refused = IdpError::Upstream {
        error: "invalid_grant".into(),
        description: None,
    };
    assert_eq!(i(refused), StatusCode::BAD_GATEWAY);
    let policy = Failure::from_federation(
        &FederationError::DomainNotAllowed {
            domain: "evil.example".into(),
        },
        "Corp SSO",
    );
    assert!(
        policy.message.contains("evil.example"),
        "{}",
        policy.message
    );
}
