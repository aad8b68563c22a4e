//! Cookies of the login and consent pages: the session cookie and the login CSRF cookie.
//! Over https they are `__Host-` prefixed and `Secure`; always `HttpOnly`, `SameSite=Lax`, `Path=/`
//! (security notes, "Login and consent pages").

use axum::http::{header, HeaderMap, HeaderValue};

/// Session cookie base name.
pub const SESSION: &str = "portcullis_session";
/// Login CSRF (double-submit) cookie base name.
pub const LOGIN_CSRF: &str = "portcullis_csrf";

/// The cookie name for this deployment.
pub fn name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// Reads a cookie from the request.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// A `Set-Cookie` value. `value` is base64url, so it needs no quoting.
pub fn set(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_build() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; portcullis_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(get(&h, "portcullis_session").as_deref(), Some("abc"));
        assert_eq!(get(&h, "missing"), None);
        assert_eq!(name(SESSION, true), "__Host-portcullis_session");
        assert_eq!(
            set("__Host-x", "v", 10, true).to_str().unwrap(),
            "__Host-x=v; Path=/; Max-Age=10; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
