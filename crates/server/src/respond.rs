//! Success responses built from bytes serialized ahead of time (the discovery documents, the JWKS).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// A 200 JSON body from pre-serialized bytes.
pub(crate) fn json_bytes(body: impl Into<axum::body::Body>, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body.into(),
    )
        .into_response()
}
