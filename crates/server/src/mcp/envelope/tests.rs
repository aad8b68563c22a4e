//! The era rule, the envelope parser, every header mismatch and every error code (MCP 2026-07-28).
#![allow(clippy::unwrap_used)]

use super::*;

const V: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        PROTOCOL_VERSION_KEY: V,
        CLIENT_CAPABILITIES_KEY: {},
        CLIENT_INFO_KEY: {"name": "test-client", "version": "1.0.0"},
    })
}

fn request(method: &str, mut params: Value) -> Value {
    params["_meta"] = meta();
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

fn call(name: &str) -> Value {
    request("tools/call", json!({"name": name, "arguments": {}}))
}

/// Headers that agree with a modern `method` request (and `Mcp-Name` when given).
fn headers<'a>(method: &'a str, name: Option<&'a str>) -> McpHeaders<'a> {
    McpHeaders {
        protocol_version: Some(V.as_bytes()),
        method: Some(method.as_bytes()),
        name: name.map(str::as_bytes),
    }
}

fn mismatch(h: &McpHeaders<'_>, body: &Value) -> Mismatch {
    match classify(h, body) {
        Err(EnvelopeError::HeaderMismatch(m)) => m,
        other => panic!("expected a header mismatch, got {other:?}"),
    }
}

#[test]
fn the_seeds_bare_request_is_legacy() {
    let body = json!({"jsonrpc": "2.0", "method": "tools/list", "id": 1});
    assert_eq!(classify(&McpHeaders::default(), &body), Ok(Era::Legacy));
    // Legacy traffic is never cross-checked: a stray Mcp-Method is ignored.
    let h = McpHeaders {
        method: Some(b"tools/call"),
        protocol_version: Some(b"2025-06-18"),
        name: None,
    };
    assert_eq!(classify(&h, &body), Ok(Era::Legacy));
}

#[test]
fn initialize_without_a_modern_claim_is_legacy() {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}});
    assert_eq!(classify(&McpHeaders::default(), &init), Ok(Era::Legacy));
    let h = McpHeaders {
        protocol_version: Some(V.as_bytes()),
        ..McpHeaders::default()
    };
    assert_eq!(mismatch(&h, &init), Mismatch::InitializeWithModernVersion);
    // With a valid modern claim the claim wins (and the modern path answers method-not-found).
    let modern_init = request("initialize", json!({}));
    let Ok(Era::Modern(m)) = classify(&headers("initialize", None), &modern_init) else {
        panic!("a claimed initialize is modern");
    };
    assert_eq!(m.method, "initialize");
}

#[test]
fn a_claimed_request_with_agreeing_headers_is_modern() {
    let Ok(Era::Modern(m)) = classify(
        &headers("tools/list", None),
        &request("tools/list", json!({})),
    ) else {
        panic!("modern");
    };
    assert_eq!(
        m,
        ModernMessage {
            version: V.into(),
            method: "tools/list".into(),
            notification: false,
            client_name: Some("test-client".into()),
        }
    );
    assert!(matches!(
        classify(&headers("tools/call", Some("echo")), &call("echo")),
        Ok(Era::Modern(_))
    ));
    // Optional whitespace around header values is not part of the value (RFC 9110 §5.5).
    let h = McpHeaders {
        protocol_version: Some(b" 2026-07-28\t"),
        method: Some(b"tools/call "),
        name: Some(b" echo"),
    };
    assert!(matches!(classify(&h, &call("echo")), Ok(Era::Modern(_))));
}

#[test]
fn every_header_mismatch() {
    let list = request("tools/list", json!({}));
    let h = McpHeaders {
        protocol_version: None,
        ..headers("tools/list", None)
    };
    assert_eq!(mismatch(&h, &list), Mismatch::VersionHeaderMissing);
    let h = McpHeaders {
        method: None,
        ..headers("tools/list", None)
    };
    assert_eq!(mismatch(&h, &list), Mismatch::MethodHeaderMissing);
    assert_eq!(
        mismatch(&headers("tools/call", None), &call("echo")),
        Mismatch::NameHeaderMissing
    );
    let h = McpHeaders {
        protocol_version: Some(b"2025-11-25"),
        ..headers("tools/list", None)
    };
    assert_eq!(
        mismatch(&h, &list),
        Mismatch::Version {
            header: "2025-11-25".into(),
            body: V.into()
        }
    );
    assert_eq!(
        mismatch(&headers("tools/call", None), &list),
        Mismatch::Method {
            header: "tools/call".into(),
            body: "tools/list".into()
        }
    );
    assert_eq!(
        mismatch(&headers("tools/call", Some("whoami")), &call("echo")),
        Mismatch::Name {
            header: "whoami".into(),
            body: "echo".into()
        }
    );
    assert_eq!(
        mismatch(
            &headers("tools/call", Some("=?base64?not base64!?=")),
            &call("echo")
        ),
        Mismatch::NameEncoding
    );
    let h = McpHeaders {
        name: Some("écho".as_bytes()),
        ..headers("tools/call", None)
    };
    assert_eq!(
        mismatch(&h, &call("echo")),
        Mismatch::Unreadable("Mcp-Name")
    );
    let h = McpHeaders {
        method: Some(b"tools/list\x01"),
        ..headers("tools/list", None)
    };
    assert_eq!(mismatch(&h, &list), Mismatch::Unreadable("Mcp-Method"));
}

#[test]
fn the_name_header_follows_the_method() {
    // resources/read mirrors params.uri; prompts/get mirrors params.name.
    let read = request("resources/read", json!({"uri": "file:///a"}));
    assert!(matches!(
        classify(&headers("resources/read", Some("file:///a")), &read),
        Ok(Era::Modern(_))
    ));
    assert_eq!(
        mismatch(&headers("resources/read", Some("file:///b")), &read),
        Mismatch::Name {
            header: "file:///b".into(),
            body: "file:///a".into()
        }
    );
    let get = request("prompts/get", json!({"name": "p"}));
    assert_eq!(
        mismatch(&headers("prompts/get", None), &get),
        Mismatch::NameHeaderMissing
    );
    // Other methods need no Mcp-Name, and one that is sent anyway is not compared.
    assert!(matches!(
        classify(
            &headers("tools/list", Some("x")),
            &request("tools/list", json!({}))
        ),
        Ok(Era::Modern(_))
    ));
}

#[test]
fn base64_sentinel_values_are_decoded_before_comparing() {
    // "Transports" §Value Encoding: "Hello, 世界" is sent as =?base64?SGVsbG8sIOS4lueVjA==?=.
    assert_eq!(
        decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
        Some("Hello, 世界")
    );
    assert_eq!(decode_header_value("us-west1").as_deref(), Some("us-west1"));
    assert_eq!(decode_header_value("=?base64?%%%?="), None);
    let body = call("Hello, 世界");
    assert!(matches!(
        classify(
            &headers("tools/call", Some("=?base64?SGVsbG8sIOS4lueVjA==?=")),
            &body
        ),
        Ok(Era::Modern(_))
    ));
}

#[test]
fn the_envelope_parser() {
    let m = meta();
    let e = Envelope::parse(m.as_object().unwrap()).unwrap();
    assert_eq!(e.version, V);
    assert_eq!(e.client_name, Some("test-client"));
    type Edit<'a> = &'a dyn Fn(&mut Map<String, Value>);
    let invalid = |mut meta: Value, edit: Edit<'_>| {
        edit(meta.as_object_mut().unwrap());
        match Envelope::parse(meta.as_object().unwrap()) {
            Err(EnvelopeError::InvalidEnvelope { key, problem }) => (key, problem),
            other => panic!("expected invalid, got {other:?}"),
        }
    };
    let cases: [(Edit<'_>, &str, &str); 6] = [
        (
            &|m| {
                m.remove(PROTOCOL_VERSION_KEY);
            },
            PROTOCOL_VERSION_KEY,
            "missing",
        ),
        (
            &|m| {
                m.remove(CLIENT_CAPABILITIES_KEY);
            },
            CLIENT_CAPABILITIES_KEY,
            "missing",
        ),
        (
            &|m| {
                m.insert(PROTOCOL_VERSION_KEY.into(), json!(20260728));
            },
            PROTOCOL_VERSION_KEY,
            "must be a string",
        ),
        (
            &|m| {
                m.insert(CLIENT_CAPABILITIES_KEY.into(), json!([]));
            },
            CLIENT_CAPABILITIES_KEY,
            "must be an object",
        ),
        (
            &|m| {
                m.insert(CLIENT_INFO_KEY.into(), json!({"name": "x"}));
            },
            CLIENT_INFO_KEY,
            "must be an object with string name and version",
        ),
        (
            &|m| {
                m.insert(LOG_LEVEL_KEY.into(), json!("loud"));
            },
            LOG_LEVEL_KEY,
            "must be a logging level",
        ),
    ];
    for (edit, key, problem) in cases {
        assert_eq!(invalid(meta(), edit), (key.to_owned(), problem));
    }
    // clientInfo is optional; a known log level is accepted.
    let mut m = meta();
    m.as_object_mut().unwrap().remove(CLIENT_INFO_KEY);
    m[LOG_LEVEL_KEY] = json!("warning");
    assert_eq!(
        Envelope::parse(m.as_object().unwrap()).unwrap().client_name,
        None
    );
}

#[test]
fn a_malformed_claim_is_refused_never_served_as_legacy() {
    let mut body = request("tools/list", json!({}));
    body["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove(CLIENT_CAPABILITIES_KEY);
    assert_eq!(
        classify(&McpHeaders::default(), &body),
        Err(EnvelopeError::InvalidEnvelope {
            key: CLIENT_CAPABILITIES_KEY.into(),
            problem: "missing"
        })
    );
}

#[test]
fn a_modern_version_header_without_an_envelope_is_invalid_params() {
    let h = headers("tools/list", None);
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(
        classify(&h, &bare),
        Err(EnvelopeError::InvalidEnvelope {
            key: "_meta".into(),
            problem: "missing"
        })
    );
    let other_meta = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"progressToken": 1}}});
    assert_eq!(
        classify(&h, &other_meta),
        Err(EnvelopeError::InvalidEnvelope {
            key: PROTOCOL_VERSION_KEY.into(),
            problem: "missing"
        })
    );
}

#[test]
fn unsupported_versions() {
    // In the envelope: a future revision, and a legacy one sent through the modern mechanism.
    for version in ["2099-01-01", "2025-11-25"] {
        let mut body = request("tools/list", json!({}));
        body["params"]["_meta"][PROTOCOL_VERSION_KEY] = json!(version);
        let h = McpHeaders {
            protocol_version: Some(version.as_bytes()),
            ..headers("tools/list", None)
        };
        assert_eq!(
            classify(&h, &body),
            Err(EnvelopeError::UnsupportedProtocolVersion {
                requested: version.into(),
                supported: MODERN_VERSIONS,
            })
        );
    }
    // In the header of legacy traffic (the seed's body with an unknown version).
    let h = McpHeaders {
        protocol_version: Some(b"1900-01-01"),
        ..McpHeaders::default()
    };
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(
        classify(&h, &bare),
        Err(EnvelopeError::UnsupportedProtocolVersion {
            requested: "1900-01-01".into(),
            supported: ALL_VERSIONS,
        })
    );
    for legacy in LEGACY_VERSIONS {
        let h = McpHeaders {
            protocol_version: Some(legacy.as_bytes()),
            ..McpHeaders::default()
        };
        assert_eq!(classify(&h, &bare), Ok(Era::Legacy), "{legacy}");
    }
}

#[test]
fn batches_with_a_modern_message_are_refused() {
    let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, request("tools/list", json!({}))]);
    assert_eq!(
        classify(&McpHeaders::default(), &batch),
        Err(EnvelopeError::ModernBatch)
    );
    let legacy = json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]);
    assert_eq!(classify(&McpHeaders::default(), &legacy), Ok(Era::Legacy));
}

#[test]
fn notifications() {
    let legacy = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(classify(&McpHeaders::default(), &legacy), Ok(Era::Legacy));
    // A modern version header makes a claim-less notification modern; only Mcp-Method is cross-checked.
    let h = McpHeaders {
        protocol_version: Some(V.as_bytes()),
        ..McpHeaders::default()
    };
    let Ok(Era::Modern(m)) = classify(&h, &legacy) else {
        panic!("modern")
    };
    assert!(m.notification);
    assert_eq!(
        mismatch(&headers("notifications/other", None), &legacy),
        Mismatch::Method {
            header: "notifications/other".into(),
            body: "notifications/initialized".into()
        }
    );
}

#[test]
fn every_error_code_and_its_data() {
    let cases = [
        (
            EnvelopeError::HeaderMismatch(Mismatch::MethodHeaderMissing),
            -32020,
        ),
        (
            EnvelopeError::InvalidEnvelope {
                key: "_meta".into(),
                problem: "missing",
            },
            -32602,
        ),
        (
            EnvelopeError::UnsupportedProtocolVersion {
                requested: "1900-01-01".into(),
                supported: ALL_VERSIONS,
            },
            -32022,
        ),
        (EnvelopeError::ModernBatch, -32600),
    ];
    for (e, code) in &cases {
        assert_eq!(e.code(), *code, "{e}");
    }
    assert_eq!(HEADER_MISMATCH, -32020);
    assert_eq!(MISSING_REQUIRED_CLIENT_CAPABILITY, -32021);
    assert_eq!(UNSUPPORTED_PROTOCOL_VERSION, -32022);
    // schema example UnsupportedProtocolVersionError/unsupported-version.json: supported + requested (a legacy
    // request's list names both eras, as the example does; an envelope's names the server/discover list).
    assert_eq!(
        cases[2].0.data(),
        Some(
            json!({"supported": ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"], "requested": "1900-01-01"})
        )
    );
    assert_eq!(cases[0].0.data(), None);
    assert_eq!(
        cases[0].0.to_string(),
        "Header mismatch: the required Mcp-Method header is absent"
    );
    assert_eq!(
        EnvelopeError::HeaderMismatch(Mismatch::Name {
            header: "foo".into(),
            body: "bar".into()
        })
        .to_string(),
        // schema example HeaderMismatchError/header-mismatch.json
        "Header mismatch: Mcp-Name header value 'foo' does not match body value 'bar'"
    );
}

#[test]
fn modern_versions_are_iso_dates_from_2026_07_28() {
    assert!(is_modern("2026-07-28") && is_modern("2027-01-01"));
    assert!(!is_modern("2025-11-25") && !is_modern("zzzz-zz-zz") && !is_modern("2026-07-28x"));
    for v in MODERN_VERSIONS.iter().chain(LEGACY_VERSIONS) {
        assert!(ALL_VERSIONS.contains(v));
        assert_eq!(is_modern(v), MODERN_VERSIONS.contains(v), "{v}");
    }
}

/// The gateway's checks: agreement only, never a decision about versions or absent headers.
#[test]
fn agreement_for_a_gateway() {
    let agree = |h: &McpHeaders<'_>, body: &Value| check_agreement(h, body);
    let mismatched = |h: &McpHeaders<'_>, body: &Value| match check_agreement(h, body) {
        Err(EnvelopeError::HeaderMismatch(m)) => m,
        other => panic!("expected a header mismatch, got {other:?}"),
    };
    // Agreeing headers, no headers, and a version this server does not serve (the upstream decides).
    assert_eq!(
        agree(&headers("tools/call", Some("echo")), &call("echo")),
        Ok(())
    );
    assert_eq!(agree(&McpHeaders::default(), &call("echo")), Ok(()));
    let mut future = call("echo");
    future["params"]["_meta"][PROTOCOL_VERSION_KEY] = json!("2099-01-01");
    let future_headers = McpHeaders {
        protocol_version: Some(b"2099-01-01"),
        ..headers("tools/call", Some("echo"))
    };
    assert_eq!(agree(&future_headers, &future), Ok(()));
    let legacy =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}});
    let legacy_headers = McpHeaders {
        protocol_version: Some(b"2025-06-18"),
        ..McpHeaders::default()
    };
    assert_eq!(agree(&legacy_headers, &legacy), Ok(()));
    // Each disagreement.
    assert_eq!(
        mismatched(&headers("tools/call", Some("echo")), &call("admin_tool")),
        Mismatch::Name {
            header: "echo".into(),
            body: "admin_tool".into()
        }
    );
    assert_eq!(
        mismatched(&headers("tools/list", None), &call("echo")),
        Mismatch::Method {
            header: "tools/list".into(),
            body: "tools/call".into()
        }
    );
    assert!(matches!(
        mismatched(&future_headers, &call("echo")),
        Mismatch::Version { .. }
    ));
    let disguised = McpHeaders {
        name: Some(b"=?base64?YWRtaW5fdG9vbA==?="),
        ..headers("tools/call", None)
    };
    assert_eq!(agree(&disguised, &call("admin_tool")), Ok(()));
    assert!(matches!(
        mismatched(&disguised, &call("echo")),
        Mismatch::Name { .. }
    ));
    let batch = json!([call("echo")]);
    assert_eq!(
        mismatched(&headers("tools/call", None), &batch),
        Mismatch::NotOneRequest("Mcp-Method")
    );
    assert_eq!(agree(&McpHeaders::default(), &batch), Ok(()));
    let response = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    let named = McpHeaders {
        name: Some(b"echo"),
        ..McpHeaders::default()
    };
    assert_eq!(
        mismatched(&named, &response),
        Mismatch::NotOneRequest("Mcp-Name")
    );
    assert_eq!(
        EnvelopeError::HeaderMismatch(Mismatch::Repeated("Mcp-Name")).code(),
        HEADER_MISMATCH
    );
}
