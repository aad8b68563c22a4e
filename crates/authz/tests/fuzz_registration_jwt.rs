//! Property tests ("fuzzing" on stable Rust) of the registration policy and the access-token verifier:
//! security notes "Registration" (RFC 7591 §2, §3.2.2; RFC 8252 §7) and "Access tokens and the MCP endpoint"
//! (RFC 8725 §3.1, RFC 9068 §4). Arbitrary input never panics; accepted metadata only has valid redirect URIs;
//! no string that the real key did not sign ever verifies.
//!
//! 2000 cases per property by default; `PROPTEST_CASES` overrides (SECURITY.md lists the long runs).
//! Failures persist in `tests/fuzz_registration_jwt.proptest-regressions` beside this file; commit it.

#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_authz::access_token::{self, AccessClaims, Audience};
use portcullis_authz::keys::{self, KeyRing};
use portcullis_authz::registration::{check_metadata, RegistrationPolicy};
use portcullis_authz::{jwt, OsRandom};
use portcullis_proto::registration::ClientMetadata;
use portcullis_proto::{PrivateUseSchemes, RedirectUri, Scope};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON values, biased towards registration-shaped objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        uri_like().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(member(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "redirect_uris",
            "grant_types",
            "response_types",
            "token_endpoint_auth_method",
            "client_name",
            "client_uri",
            "logo_uri",
            "scope",
            "contacts",
            "tos_uri",
            "policy_uri",
            "jwks_uri",
            "software_id",
            "application_type",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ]
}

fn uri_like() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "http://localhost:8080/callback",
            "https://app.example.com/cb",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "http://evil.com/cb",
            "https://good@evil.com/",
            "com.example.app:/cb",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "myapp://cb",
            "native",
            "web",
            "http://127.0.0.1/cb#x",
            " https://a.b/",
            "data:text/html,x",
            "none",
            "authorization_code",
            "refresh_token",
            "implicit",
            "password",
            "code",
            "token",
            "client_secret_basic",
            "mcp:tools",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,30}",
    ]
}

/// Registration-shaped objects: the right members with arbitrary values.
fn registration() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(uri_like(), 0..4),
        prop::option::of(prop::collection::vec(uri_like(), 0..3)),
        prop::option::of(prop::collection::vec(uri_like(), 0..3)),
        prop::option::of(uri_like()),
        prop::option::of(uri_like()),
        prop::option::of(json_value()),
        prop::option::of(uri_like()),
    )
        .prop_map(
            |(redirects, grants, responses, method, logo, extra, app_type)| {
                let mut v = json!({"redirect_uris": redirects});
                if let Some(g) = grants {
                    v["grant_types"] = json!(g);
                }
                if let Some(r) = responses {
                    v["response_types"] = json!(r);
                }
                if let Some(m) = method {
                    v["token_endpoint_auth_method"] = json!(m);
                }
                if let Some(l) = logo {
                    v["logo_uri"] = json!(l);
                }
                if let Some(e) = extra {
                    v["x_extra"] = e;
                }
                if let Some(t) = app_type {
                    v["application_type"] = json!(t);
                }
                v
            },
        )
}

fn scopes() -> Scope {
    Scope::parse("mcp:tools mcp:admin").unwrap()
}

fn policy() -> RegistrationPolicy {
    RegistrationPolicy {
        supported_scopes: scopes(),
        redirect_schemes: PrivateUseSchemes::mcp_clients(),
        localhost: portcullis_authz::config::LocalhostRedirects::Refuse,
    }
}

fn check_accepted(meta: &ClientMetadata) {
    assert!(!meta.redirect_uris.is_empty());
    for uri in &meta.redirect_uris {
        assert!(
            RedirectUri::parse_allowing(uri, &PrivateUseSchemes::mcp_clients()).is_ok(),
            "accepted an invalid redirect URI {uri:?}"
        );
        assert!(
            !RedirectUri::parse_allowing(uri, &PrivateUseSchemes::mcp_clients())
                .is_ok_and(|u| u.names_localhost()),
            "accepted localhost under localhost_redirect_uris = refuse: {uri:?}"
        );
    }
    assert!(
        matches!(meta.application_type.as_deref(), Some("native" | "web")),
        "accepted application_type {:?}",
        meta.application_type
    );
    for g in meta.grant_types.iter().flatten() {
        assert!(
            g == "authorization_code" || g == "refresh_token",
            "accepted grant type {g:?}"
        );
    }
    for r in meta.response_types.iter().flatten() {
        assert_eq!(r, "code", "accepted response type {r:?}");
    }
}

/// One key ring for every case (key generation would dominate the run time).
fn ring() -> &'static KeyRing {
    static RING: std::sync::OnceLock<KeyRing> = std::sync::OnceLock::new();
    RING.get_or_init(|| KeyRing::from_records(&[keys::generate(&OsRandom, 0)]).unwrap())
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://as.example".into(),
        sub: "u1".into(),
        aud: Audience::One("https://as.example/mcp".into()),
        client_id: "c1".into(),
        scope: Some("mcp:tools".into()),
        exp: 2_000_000_000,
        iat: 1_000_000_000,
        nbf: None,
        jti: "j1".into(),
        grant_id: None,
        preferred_username: None,
        email: None,
        idp: None,
        idp_name: None,
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

proptest! {
    #![proptest_config(config())]

    /// Any JSON value: deserializing into `ClientMetadata` and `check_metadata` never panic, and accepted
    /// metadata has only valid redirect URIs and allowed grant/response types (RFC 7591 §2).
    #[test]
    fn registration_json_never_panics(v in prop_oneof![json_value(), registration()]) {
        let text = v.to_string();
        if let Ok(meta) = serde_json::from_str::<ClientMetadata>(&text) {
            if let Ok(accepted) = check_metadata(meta, &policy()) {
                check_accepted(&accepted);
            }
        }
    }

    /// Arbitrary strings and arbitrary three-part tokens never panic the JWS decoder and never verify.
    #[test]
    fn arbitrary_tokens_never_verify(
        s in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_.=-]{0,300}",
            ("[A-Za-z0-9_-]{0,80}", "[A-Za-z0-9_-]{0,200}", "[A-Za-z0-9_-]{0,100}").prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ],
    ) {
        let r = ring();
        let _ = jwt::decode(&s);
        let _ = access_token::kid_of(&s);
        prop_assert!(access_token::verify(r, &s, "https://as.example", "https://as.example/mcp", 1_500_000_000).is_err());
    }

    /// Arbitrary JSON headers and claims, with the real signature of another payload or none, never verify;
    /// and any header other than exactly `{alg: ES256, typ: at+jwt, kid}` is refused even when correctly
    /// signed (RFC 8725 §3.1, §3.10).
    #[test]
    fn forged_headers_and_claims_never_verify(header in json_value(), payload in json_value(), resign in any::<bool>()) {
        let r = ring();
        let real = access_token::mint(r, &claims());
        let sig = real.rsplit('.').next().unwrap().to_owned();
        let forged = format!("{}.{}.{sig}", b64(&header), b64(&payload));
        prop_assert!(access_token::verify(r, &forged, "https://as.example", "https://as.example/mcp", 1_500_000_000).is_err());
        if resign {
            // Correctly signed, but the header is arbitrary.
            let token = jwt::sign(r.signing_key(), r.active_kid(), "at+jwt", payload.to_string().as_bytes());
            let parts: Vec<&str> = token.split('.').collect();
            let swapped = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
            prop_assert!(access_token::verify(r, &swapped, "https://as.example", "https://as.example/mcp", 1_500_000_000).is_err());
        }
    }

    /// Correctly signed tokens whose claims differ from valid ones in one member (set to an arbitrary JSON
    /// value) verify only when every claim is still right: integer times, the issuer, the audience, not
    /// expired, not from the future (RFC 9068 §4; jsonwebtoken CVE-2026-25537).
    #[test]
    fn signed_claims_verify_only_when_valid(
        name in prop::sample::select(vec!["iss", "aud", "exp", "nbf", "iat", "sub", "client_id", "jti", "scope", "x"]),
        value in prop_oneof![json_value(), any::<i64>().prop_map(Value::from), (1_400_000_000i64..1_600_000_000).prop_map(Value::from)],
    ) {
        let r = ring();
        let mut payload = serde_json::to_value(claims()).unwrap();
        payload[name] = value.clone();
        let token = jwt::sign(r.signing_key(), r.active_kid(), "at+jwt", payload.to_string().as_bytes());
        let now = 1_500_000_000;
        if let Ok(c) = access_token::verify(r, &token, "https://as.example", "https://as.example/mcp", now) {
            prop_assert_eq!(c.iss.as_str(), "https://as.example");
            prop_assert!(c.aud.contains("https://as.example/mcp"));
            prop_assert!(c.exp > now);
            prop_assert!(payload["exp"].is_i64() || payload["exp"].is_u64(), "non-integer exp accepted: {}", payload);
            prop_assert!(c.nbf.is_none_or(|n| n <= now + 60));
            prop_assert!(payload["iat"].is_i64() || payload["iat"].is_u64());
        }
        if name == "exp" && !(value.is_i64() || value.is_u64()) {
            prop_assert!(access_token::verify(r, &token, "https://as.example", "https://as.example/mcp", now).is_err());
        }
    }
}

/// Rule: argon2id at OWASP's parameters (m=19456 KiB, t=2, p=1) and a maximum password length of 1024 bytes
/// (security notes "Login and consent pages"; OWASP Password Storage cheat sheet). Not a property test; it sits
/// here beside the other authz-level security checks.
#[test]
fn argon2id_parameters_and_maximum_length() {
    use portcullis_authz::password;
    let phc = password::hash("correct horse battery staple", &OsRandom).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(password::verify("correct horse battery staple", &phc));
    assert_eq!(password::MAX_LEN, 1024);
    assert!(password::hash(&"p".repeat(1025), &OsRandom).is_err());
    assert!(!password::verify(&"p".repeat(1025), &phc));
    assert!(password::dummy_hash().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
}
