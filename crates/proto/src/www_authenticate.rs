//! `WWW-Authenticate` challenges: building the `Bearer` challenge of a protected resource (RFC 6750 §3,
//! RFC 9728 §5.1) and parsing any challenge list a server sends (RFC 9110 §11.6.1).

use crate::ErrorCode;
use std::fmt::Write as _;

/// A `Bearer` challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// RFC 6750 §3.1 `error`.
    pub error: Option<String>,
    /// RFC 6750 §3 `error_description`.
    pub error_description: Option<String>,
    /// RFC 6750 §3 `scope`.
    pub scope: Option<String>,
    /// RFC 9728 §5.1 `resource_metadata`.
    pub resource_metadata: Option<String>,
}

/// Writes `value` as an RFC 9110 quoted-string, dropping characters that a quoted-string cannot carry.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' | ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
}

impl BearerChallenge {
    /// Sets the error code.
    pub fn with_error(mut self, code: ErrorCode, description: impl Into<String>) -> Self {
        self.error = Some(code.as_str().to_owned());
        self.error_description = Some(description.into());
        self
    }

    /// The header value, e.g. `Bearer error="invalid_token", resource_metadata="https://…"`.
    pub fn to_header_value(&self) -> String {
        let mut out = String::from("Bearer");
        let mut first = true;
        let params = [
            ("error", &self.error),
            ("error_description", &self.error_description),
            ("scope", &self.scope),
            ("resource_metadata", &self.resource_metadata),
        ];
        for (name, value) in params {
            if let Some(v) = value {
                out.push_str(if first { " " } else { ", " });
                first = false;
                let _ = write!(out, "{name}=");
                push_quoted(&mut out, v);
            }
        }
        out
    }

    /// Finds the first `Bearer` challenge in a header value and reads its parameters.
    pub fn parse(header: &str) -> Option<Self> {
        let challenge = parse_challenges(header)
            .into_iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
        let get = |n: &str| {
            challenge
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        Some(Self {
            error: get("error"),
            error_description: get("error_description"),
            scope: get("scope"),
            resource_metadata: get("resource_metadata"),
        })
    }
}

/// One challenge: an auth scheme and its parameters (a token68 is kept under the empty name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth-scheme, as sent.
    pub scheme: String,
    /// The auth-params in order, names as sent, values unquoted.
    pub params: Vec<(String, String)>,
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | ',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn quoted(&mut self) -> String {
        // Assumes the opening quote is next.
        self.i += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.i += c.len_utf8();
            match c {
                '"' => return out,
                '\\' => {
                    if let Some(n) = self.peek() {
                        self.i += n.len_utf8();
                        out.push(n);
                    }
                }
                _ => out.push(c),
            }
        }
        out
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1). Tolerant: malformed parts are
/// skipped rather than failing the whole header, since the client only needs what it can read.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut cur = Cursor { s: header, i: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        cur.skip_ws_commas();
        if cur.peek().is_none() {
            break;
        }
        let start = cur.i;
        let name = cur.token();
        if name.is_empty() {
            // Unparseable character: skip it.
            cur.i += cur.peek().map_or(1, char::len_utf8);
            continue;
        }
        let after_name = cur.i;
        cur.skip_ws();
        if cur.peek() == Some('=') && !out.is_empty() && after_name > start {
            // An auth-param of the current challenge, or a token68 ending in '='.
            cur.i += 1;
            cur.skip_ws();
            let value = if cur.peek() == Some('"') {
                cur.quoted()
            } else {
                let v = cur.token().to_owned();
                // token68 padding like "abc==": swallow extra '='.
                while cur.peek() == Some('=') {
                    cur.i += 1;
                }
                v
            };
            if let Some(last) = out.last_mut() {
                last.params.push((name.to_owned(), value));
            }
        } else {
            // A new challenge: scheme name.
            out.push(Challenge {
                scheme: name.to_owned(),
                params: Vec::new(),
            });
            cur.i = after_name;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_rfc6750_challenge() {
        let c = BearerChallenge {
            scope: Some("mcp:tools".into()),
            resource_metadata: Some(
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp".into(),
            ),
            ..Default::default()
        }
        .with_error(ErrorCode::InvalidToken, "the \"token\" expired");
        assert_eq!(
            c.to_header_value(),
            "Bearer error=\"invalid_token\", error_description=\"the \\\"token\\\" expired\", scope=\"mcp:tools\", \
             resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(BearerChallenge::default().to_header_value(), "Bearer");
    }

    #[test]
    fn parses_back_what_it_builds() {
        let c = BearerChallenge {
            error: Some("insufficient_scope".into()),
            error_description: Some("needs \"admin\"".into()),
            scope: Some("a b".into()),
            resource_metadata: Some("https://x/y".into()),
        };
        assert_eq!(BearerChallenge::parse(&c.to_header_value()), Some(c));
    }

    #[test]
    fn parses_several_challenges_and_token68() {
        let h = r#"Basic realm="x", Newauth abc==, Bearer realm=example, scope="read write", resource_metadata="https://a/b""#;
        let all = parse_challenges(h);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].scheme, "Basic");
        let b = BearerChallenge::parse(h).unwrap();
        assert_eq!(b.scope.as_deref(), Some("read write"));
        assert_eq!(b.resource_metadata.as_deref(), Some("https://a/b"));
        assert_eq!(BearerChallenge::parse("Basic realm=\"x\""), None);
        assert_eq!(
            BearerChallenge::parse("bearer").unwrap(),
            BearerChallenge::default()
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for h in [
            "",
            "=",
            "\"",
            "Bearer =",
            "Bearer a=\"unterminated",
            "Bearer ,,, a=b=c",
            "Bearer é=1",
            "\u{1}",
        ] {
            let _ = parse_challenges(h);
            let _ = BearerChallenge::parse(h);
        }
    }
}
