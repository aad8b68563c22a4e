//! Property tests of the form decoder (`application/x-www-form-urlencoded`, used by /token, /revoke, /login and
//! /consent): security notes "Robustness" (NUL bytes, invalid and overlong UTF-8 refused) and "/authorize"
//! (repeated parameters refused; RFC 6749 §3.1, §3.2). Arbitrary bytes never panic; what is accepted has no
//! NUL or replacement character and no repeated name; what we encode decodes back.
//!
//! 2000 cases per property by default; `PROPTEST_CASES` overrides (SECURITY.md lists the long runs).

#![allow(clippy::unwrap_used)]

use portcullis_server::form::Form;
use proptest::prelude::*;
use std::collections::BTreeMap;

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

/// Form-ish bytes: separators, percent escapes (valid and not), NUL, invalid UTF-8.
fn formish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(
            prop::sample::select(vec![
                b"a".to_vec(), b"code".to_vec(), b"=".to_vec(), b"&".to_vec(), b"+".to_vec(), b"%".to_vec(),
                b"%00".to_vec(), b"%ff".to_vec(), b"%C0%AF".to_vec(), b"%e2%82%ac".to_vec(), b"\xff".to_vec(),
                b"\0".to_vec(), b";".to_vec(), b"%2".to_vec(), b"grant_type".to_vec(), b"%26".to_vec(), b"%3D".to_vec(),
            ]),
            0..30,
        )
        .prop_map(|v| v.concat()),
        1 => any::<Vec<u8>>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Never panics; accepted forms carry no NUL or U+FFFD and no repeated name.
    #[test]
    fn decoder_never_panics_and_refuses_bad_bytes(body in formish()) {
        if let Ok(form) = Form::parse_bytes(&body) {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let mut seen = std::collections::HashSet::new();
            for (k, v) in &pairs {
                let bad = ['\0', char::REPLACEMENT_CHARACTER];
                prop_assert!(!k.contains(bad) && !v.contains(bad), "accepted NUL or U+FFFD");
                prop_assert!(seen.insert(k.clone()), "repeated {} accepted", k);
                let expected = (!v.is_empty()).then_some(v.as_str());
                prop_assert_eq!(form.get(k), expected);
            }
        }
    }

    /// What `form_urlencoded` encodes (no NUL, distinct names) decodes back to the same values.
    #[test]
    fn encoded_forms_round_trip(pairs in prop::collection::btree_map("[^\u{0}\u{fffd}]{1,12}", "[^\u{0}\u{fffd}]{0,20}", 0..6)) {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let form = Form::parse_bytes(body.as_bytes()).unwrap();
        let pairs: BTreeMap<_, _> = pairs;
        for (k, v) in &pairs {
            let expected = (!v.is_empty()).then_some(v.as_str());
            prop_assert_eq!(form.get(k), expected);
        }
    }
}
