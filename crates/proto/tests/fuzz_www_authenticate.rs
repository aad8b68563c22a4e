//! Property tests of the client's `WWW-Authenticate` parser (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1):
//! arbitrary header values never panic, and every challenge the server builds parses back to itself.
//!
//! 2000 cases by default; `PROPTEST_CASES` overrides (SECURITY.md lists the long runs).

#![allow(clippy::unwrap_used)]

use portcullis_proto::www_authenticate::{parse_challenges, BearerChallenge};
use proptest::prelude::*;

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

/// Header-ish text: tokens, quotes, backslashes, commas and equals signs in abundance.
fn headerish() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(
            prop::sample::select(vec![
                "Bearer", "Basic", "DPoP", " ", ",", "=", "\"", "\\", "error", "scope", "resource_metadata",
                "realm", "abc", "a=b", "\"x\\\"y\"", "token68==", "\t", "\r\n", "é", "\u{0}",
            ]),
            0..24,
        )
        .prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

/// Values a server might put in a challenge: printable ASCII and tabs (what a quoted-string carries).
fn value() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[\t -~]{0,40}")
}

proptest! {
    #![proptest_config(config())]

    /// Never panics on any header value.
    #[test]
    fn parser_never_panics(h in headerish()) {
        let _ = parse_challenges(&h);
        let _ = BearerChallenge::parse(&h);
    }

    /// What `to_header_value` builds, `parse` reads back unchanged.
    #[test]
    fn built_challenges_parse_back(
        error in value(),
        error_description in value(),
        scope in value(),
        resource_metadata in value(),
    ) {
        let c = BearerChallenge { error, error_description, scope, resource_metadata };
        let header = c.to_header_value();
        prop_assert_eq!(BearerChallenge::parse(&header), Some(c.clone()), "header: {}", header);
        // Also when another challenge comes first.
        let two = format!("Basic realm=\"x\", {header}");
        prop_assert_eq!(BearerChallenge::parse(&two), Some(c), "header: {}", two);
    }
}
