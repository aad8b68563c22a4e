//! Property tests ("fuzzing" on stable Rust) of the redirect-URI parser and matcher, differentially against the
//! `url` crate (WHATWG URL parser): security notes, "Registration" and "/authorize"; RFC 8252 §7, §7.3;
//! OAuth 2.1 §4.1.1 (exact match); RFC 9700 §4.1.3.
//!
//! Case count: 2000 per property by default; `PROPTEST_CASES=1000000 cargo test -p portcullis-proto --test
//! fuzz_redirect_uri --release` for a long run (see SECURITY.md). Failures are persisted under
//! `tests/fuzz_redirect_uri.proptest-regressions` beside this file and replayed first on every run; commit it.

#![allow(clippy::unwrap_used)]

use portcullis_proto::redirect_scheme::NOT_PRIVATE_USE;
use portcullis_proto::redirect_uri::{Kind, RedirectUri};
use portcullis_proto::PrivateUseSchemes;
use proptest::prelude::*;
use url::Url;

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

/// Schemes, including the tricky ones of the incidents (case, `javascript:` and friends).
fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "https",
        "http",
        "HTTP",
        "Https",
        "javascript",
        "JaVaScRiPt",
        "data",
        "file",
        "com.example.app",
        "com.Example.app",
        "ftp",
        "ws",
        "x",
        "cursor",
        "Cursor",
        "claude",
        "vbscript",
        "blob",
    ])
}

/// Hosts, including look-alikes and encodings of loopback.
fn host() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "localhost",
        "127.0.0.1",
        "[::1]",
        "LOCALHOST",
        "localhost.evil.com",
        "127.0.0.1.nip.io",
        "evil.com",
        "app.example.com",
        "APP.example.com",
        "good@evil.com",
        "good:pw@evil.com",
        "0x7f.1",
        "2130706433",
        "127.1",
        "[::ffff:127.0.0.1]",
        "xn--80ak6aa92e.com",
        "ex%61mple.com",
        "",
        "a\\b",
        "evil.com\\@good.com",
        "127.0.0.2",
        "[0:0:0:0:0:0:0:1]",
    ])
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(":80".to_owned()),
        Just(":443".to_owned()),
        Just(":0".to_owned()),
        Just(":".to_owned()),
        (1u32..70000).prop_map(|p| format!(":{p}")),
    ]
}

/// Path pieces with the classic traversal and encoding tricks.
fn path() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "cb", "callback", "CB", "..", ".", "%2e%2e", "%2E", "%2f", "%5c", "a%00b", "\\", "a b",
        "%20", "x;y", "@evil", "evil.com", "", "%",
    ]);
    prop::collection::vec(seg, 0..4).prop_map(|v| {
        if v.is_empty() {
            String::new()
        } else {
            format!("/{}", v.join("/"))
        }
    })
}

fn suffix() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => Just("?a=1".to_owned()),
        1 => Just("?".to_owned()),
        1 => Just("#frag".to_owned()),
        1 => Just("#".to_owned()),
        1 => Just("?x=%0d%0a".to_owned()),
        1 => "[ \t\r\n\0\u{7f}\u{a0}\u{200b}]".prop_map(|c| c.to_owned()),
    ]
}

/// A redirect URI built from the pieces above: mostly near-valid, often tricky.
fn structured() -> impl Strategy<Value = String> {
    (scheme(), host(), port(), path(), suffix(), any::<bool>()).prop_map(
        |(s, h, p, path, suf, slashes)| {
            if slashes {
                format!("{s}://{h}{p}{path}{suf}")
            } else {
                format!("{s}:{path}{suf}")
            }
        },
    )
}

/// Any candidate: structured, arbitrary printable ASCII, or arbitrary Unicode.
fn candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => structured(),
        2 => "[ -~]{0,60}",
        1 => "\\PC{0,40}",
        1 => any::<String>(),
    ]
}

/// Asserts everything a parsed redirect URI promises.
fn check_accepted(text: &str, r: &RedirectUri) {
    let url = Url::parse(text).expect("accepted but url cannot parse it");
    assert_eq!(url.as_str(), text, "accepted a non-canonical URI");
    assert_eq!(r.as_str(), text);
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "userinfo accepted: {text}"
    );
    assert!(url.fragment().is_none(), "fragment accepted: {text}");
    assert!(
        text.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "non-printable accepted: {text:?}"
    );
    let scheme = url.scheme();
    assert!(
        !matches!(
            scheme,
            "javascript" | "data" | "file" | "vbscript" | "about" | "blob"
        ),
        "dangerous scheme accepted: {text}"
    );
    match r.kind() {
        Kind::Https => {
            assert_eq!(scheme, "https");
            assert!(url.host().is_some());
        }
        Kind::Loopback => {
            assert_eq!(scheme, "http");
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            assert!(loopback, "http on a non-loopback host accepted: {text}");
        }
        Kind::PrivateUse => assert!(
            scheme.contains('.'),
            "private-use scheme without a dot: {text}"
        ),
    }
}

/// Mutations of a registered URI that an attacker would try at /authorize.
fn mutate(base: &str, how: u8, extra: &str) -> String {
    match how % 12 {
        0 => base.to_owned(),
        1 => format!("{base}{extra}"),
        2 => format!("{base}/{extra}"),
        3 => format!("{base}?{extra}"),
        4 => format!("{base}#{extra}"),
        5 => base.to_ascii_uppercase(),
        6 => base.replacen("://", &format!("://{extra}@"), 1),
        7 => base.replacen("localhost", "127.0.0.1", 1),
        8 => base.replacen(':', &format!(":{extra}"), 1),
        9 => base.trim_end_matches('/').to_owned(),
        10 => format!(" {base}"),
        _ => base.replacen("/cb", "/cb/..", 1),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Anything the parser accepts is canonical for the WHATWG parser, has no userinfo or fragment, no
    /// control characters or whitespace, and is one of the three allowed kinds (RFC 8252 §7).
    #[test]
    fn accepted_uris_round_trip_through_url(text in candidate()) {
        if let Ok(r) = RedirectUri::parse(&text) {
            check_accepted(&text, &r);
        }
    }

    /// With the default list of private-use schemes, anything accepted keeps the same promises, and a
    /// private-use scheme is either reverse-domain or listed, never a web or browser scheme; a URI the strict
    /// parse accepts is accepted the same way (the list only adds).
    #[test]
    fn the_scheme_list_only_adds_listed_schemes(text in candidate()) {
        let listed = PrivateUseSchemes::mcp_clients();
        if let Ok(r) = RedirectUri::parse_allowing(&text, &listed) {
            let scheme = Url::parse(&text).unwrap().scheme().to_owned();
            if r.kind() == Kind::PrivateUse && !scheme.contains('.') {
                prop_assert!(listed.contains(&scheme), "unlisted scheme accepted: {}", text);
                prop_assert!(RedirectUri::parse(&text).is_err());
            } else {
                check_accepted(&text, &r);
            }
            prop_assert!(!NOT_PRIVATE_USE.contains(&scheme.as_str()) || r.kind() != Kind::PrivateUse);
        }
        if let Ok(strict) = RedirectUri::parse(&text) {
            prop_assert_eq!(RedirectUri::parse_allowing(&text, &listed), Ok(strict.clone()));
            prop_assert_eq!(RedirectUri::parse_registered(&text), Ok(strict));
        }
    }

    /// `matches` never accepts a URI whose scheme, host, path or query differ from the registered one; only a
    /// loopback URI may differ, and only in the port (RFC 8252 §7.3; OAuth 2.1 §4.1.1).
    #[test]
    fn matches_never_accepts_a_different_uri(
        registered in structured(),
        how in any::<u8>(),
        extra in prop_oneof![Just(String::new()), "[ -~]{0,8}", Just("8080".to_owned()), Just("evil.com".to_owned())],
        other in candidate(),
    ) {
        let Ok(r) = RedirectUri::parse(&registered) else { return Ok(()) };
        for requested in [mutate(&registered, how, &extra), other] {
            if !r.matches(&requested) {
                continue;
            }
            if requested == registered {
                continue;
            }
            prop_assert_eq!(r.kind(), Kind::Loopback, "non-loopback {} matched {:?}", registered, requested);
            let a = Url::parse(&registered).unwrap();
            let b = Url::parse(&requested).unwrap();
            prop_assert_eq!(b.as_str(), requested.as_str(), "matched a non-canonical URI");
            prop_assert_eq!(a.scheme(), b.scheme());
            prop_assert_eq!(a.host(), b.host());
            prop_assert_eq!(a.path(), b.path());
            prop_assert_eq!(a.query(), b.query());
            prop_assert!(b.fragment().is_none() && b.username().is_empty() && b.password().is_none());
        }
    }

    /// A loopback URI matches itself with any port, and nothing else that differs in the path (RFC 8252 §7.3).
    #[test]
    fn loopback_matches_any_port_but_not_another_path(port in 1u16..=65535, seg in "[a-z]{1,8}") {
        let r = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
        let with_port = format!("http://127.0.0.1:{port}/cb");
        // Port 80 is the default and would be printed without it: not canonical, so refused.
        prop_assert_eq!(r.matches(&with_port), port != 80);
        let other_path = format!("http://127.0.0.1:{port}/cb/{seg}");
        prop_assert!(!r.matches(&other_path));
    }
}
