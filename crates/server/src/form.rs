//! `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2, Appendix B): required content type,
//! repeated parameters refused (RFC 6749 §3.1, §3.2), body size already bounded by the router.

use axum::http::{header, HeaderMap};
use bytes::Bytes;
use std::collections::HashMap;

/// A decoded form: each name at most once.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

/// Why a body is not an acceptable form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// Wrong or missing `Content-Type`.
    #[error("Content-Type must be application/x-www-form-urlencoded")]
    ContentType,
    /// A parameter appears twice.
    #[error("parameter {0} is repeated")]
    Repeated(String),
    /// Not UTF-8 or contains NUL.
    #[error("the form contains invalid characters")]
    Encoding,
}

/// Whether the `Content-Type` is `media` (parameters such as `charset` allowed).
pub fn content_type_is(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
}

impl Form {
    /// Parses a body.
    pub fn parse(headers: &HeaderMap, body: &Bytes) -> Result<Self, FormError> {
        if !content_type_is(headers, "application/x-www-form-urlencoded") {
            return Err(FormError::ContentType);
        }
        Self::parse_bytes(body)
    }

    /// Parses bytes (no content-type check).
    pub fn parse_bytes(body: &[u8]) -> Result<Self, FormError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            // form_urlencoded replaces invalid UTF-8 with U+FFFD; refuse it, and NUL, outright.
            if k.contains(['\u{fffd}', '\0']) || v.contains(['\u{fffd}', '\0']) {
                return Err(FormError::Encoding);
            }
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(FormError::Repeated(k.into_owned()));
            }
        }
        Ok(Self(map))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every parameter left, as name/value pairs (empty values included: parsers treat them as absent).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Removes and returns a parameter.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_bad_encoding() {
        assert_eq!(
            Form::parse_bytes(b"a=1&a=2").unwrap_err(),
            FormError::Repeated("a".into())
        );
        assert_eq!(
            Form::parse_bytes(b"a=%00").unwrap_err(),
            FormError::Encoding
        );
        assert_eq!(
            Form::parse_bytes(b"a=%FF").unwrap_err(),
            FormError::Encoding
        );
        let f = Form::parse_bytes(b"a=1&b=&c=x+y").unwrap();
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), None);
        assert_eq!(f.get("c"), Some("x y"));
        let mut h = HeaderMap::new();
        assert_eq!(
            Form::parse(&h, &Bytes::from_static(b"a=1")).unwrap_err(),
            FormError::ContentType
        );
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        assert!(Form::parse(&h, &Bytes::from_static(b"a=1")).is_ok());
    }
}
