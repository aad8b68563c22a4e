//! The HTML pages: login, consent, error. Server-rendered, every interpolated value HTML-escaped, one small
//! stylesheet, readable on a phone. Every page carries the anti-framing and referrer headers
//! (`Content-Security-Policy: frame-ancestors 'none'`, `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`)
//! and `Cache-Control: no-store`.
//!
//! The referrer policy is `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on
//! the form POSTs (Fetch, "serializing a request origin"), which the `Origin` check must refuse, so no real
//! browser could sign in. `same-origin` still sends no `Referer` (which carries the authorization request) to
//! any other origin (RFC 9700 §4.2.4); the redirect to the client has its own `no-referrer`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet.
pub const CSS: &str = r#"*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2330}
main{max-width:28rem;margin:2rem auto;padding:0 1rem}
.card{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:1.5rem}
h1{font-size:1.35rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password]{width:100%;padding:.65rem;border:1px solid #c4c9d4;border-radius:8px;font-size:1rem}
button{font-size:1rem;padding:.7rem 1.2rem;border-radius:8px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d2330;border-color:#c4c9d4}
.actions{display:flex;gap:.75rem;margin-top:1.25rem;flex-wrap:wrap}
.actions button{flex:1}
.error{background:#fdecec;color:#8a1c1c;border-radius:8px;padding:.6rem .8rem;margin-bottom:1rem}
.muted{color:#5b6475;font-size:.9rem}
.tag{display:inline-block;background:#fff4d6;color:#7a5200;border-radius:6px;padding:0 .4rem;font-size:.8rem;font-weight:600}
ul.scopes{padding-left:1.2rem}
code{background:#eef0f4;border-radius:4px;padding:0 .25rem}
footer{text-align:center;margin-top:1rem}
"#;

/// `GET /assets/portcullis.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        CSS,
    )
        .into_response()
}

/// CSP `form-action` sources: our own origin plus, after a form is submitted, the client's redirect target
/// (browsers apply `form-action` to the redirect that follows a POST).
fn csp(form_action: &str) -> String {
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn page(
    status: StatusCode,
    title: &str,
    body: &str,
    stylesheet: &str,
    form_action: &str,
) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\">\
         <title>{} · Portcullis</title><link rel=\"stylesheet\" href=\"{}\"></head>\
         <body><main><div class=\"card\">{body}</div><footer class=\"muted\">Portcullis</footer></main></body></html>",
        escape(title),
        escape(stylesheet)
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp(form_action)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// The error page: never a redirect (RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, code: &str, description: &str, stylesheet: &str) -> Response {
    let body = format!(
        "<h1>This sign-in request cannot continue</h1><div class=\"error\" role=\"alert\">{}</div>\
         <p class=\"muted\">Error code: <code>{}</code>. Return to the application and try again; if this keeps \
         happening, the application may be misconfigured.</p>",
        escape(description),
        escape(code)
    );
    page(status, "Error", &body, stylesheet, "'none'")
}

/// What the login page shows.
pub struct LoginPage<'a> {
    /// Form target.
    pub action: &'a str,
    /// The authorization request's query string, carried through.
    pub request: &'a str,
    /// Double-submit CSRF token.
    pub csrf: &'a str,
    /// The client's (unverified) name.
    pub client_name: &'a str,
    /// Error to show, if any.
    pub error: Option<&'a str>,
    /// Username to prefill.
    pub username: &'a str,
    /// Stylesheet URL.
    pub stylesheet: &'a str,
    /// CSP `form-action` sources.
    pub form_action: &'a str,
}

/// The login page.
pub fn login_page(status: StatusCode, p: &LoginPage<'_>) -> Response {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Sign in</h1><p class=\"muted\">to continue to <strong>{}</strong> <span class=\"tag\">unverified</span></p>",
        escape(p.client_name)
    );
    if let Some(e) = p.error {
        let _ = write!(
            body,
            "<div class=\"error\" role=\"alert\">{}</div>",
            escape(e)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" \
         autocomplete=\"username\" autocapitalize=\"none\" required autofocus>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button type=\"submit\" id=\"sign-in\">Sign in</button></div></form>",
        escape(p.action),
        escape(p.request),
        escape(p.csrf),
        escape(p.username)
    );
    page(status, "Sign in", &body, p.stylesheet, p.form_action)
}

/// What the consent page shows.
pub struct ConsentPage<'a> {
    /// Form target.
    pub action: &'a str,
    /// The authorization request's query string.
    pub request: &'a str,
    /// CSRF token bound to the session and the request.
    pub csrf: &'a str,
    /// Signed-in user.
    pub username: &'a str,
    /// The client's (unverified) name.
    pub client_name: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// Where the browser will be sent.
    pub redirect_host: &'a str,
    /// Granted scopes with descriptions.
    pub scopes: Vec<(String, String)>,
    /// Requested scopes that are not known here and will not be granted.
    pub ignored: Vec<String>,
    /// Stylesheet URL.
    pub stylesheet: &'a str,
    /// CSP `form-action` sources.
    pub form_action: &'a str,
}

/// The consent page.
pub fn consent_page(p: &ConsentPage<'_>) -> Response {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Allow access?</h1><p><strong>{}</strong> <span class=\"tag\">unverified</span> wants to access your \
         account <strong>{}</strong>.</p><p class=\"muted\">The name was chosen by whoever registered this application; \
         Portcullis has not verified it. After you decide, your browser goes to <strong>{}</strong>.</p>\
         <p>It will be able to:</p><ul class=\"scopes\">",
        escape(p.client_name),
        escape(p.username),
        escape(p.redirect_host)
    );
    for (name, desc) in &p.scopes {
        let _ = write!(
            body,
            "<li>{} <code>{}</code></li>",
            escape(desc),
            escape(name)
        );
    }
    body.push_str("</ul>");
    // A Client ID Metadata Document client: its identity is the host that publishes the document.
    if let Some(host) = url_client_id_host(p.client_id) {
        let _ = write!(
            body,
            "<p class=\"muted\">This application describes itself in a document published by <strong>{}</strong>.</p>",
            escape(&host)
        );
    }
    if !p.ignored.is_empty() {
        let list: Vec<String> = p
            .ignored
            .iter()
            .map(|s| format!("<code>{}</code>", escape(s)))
            .collect();
        let _ = write!(
            body,
            "<p class=\"muted\">Also requested but unknown here, so not granted: {}</p>",
            list.join(" ")
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\" id=\"deny\">Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button></div></form>\
         <p class=\"muted\">Client ID: <code>{}</code></p>",
        escape(p.action),
        escape(p.request),
        escape(p.csrf),
        escape(p.client_id)
    );
    page(
        StatusCode::OK,
        "Allow access",
        &body,
        p.stylesheet,
        p.form_action,
    )
}

/// The host (and port) of a URL `client_id` (Client ID Metadata Documents), else `None`.
fn url_client_id_host(client_id: &str) -> Option<String> {
    if !portcullis_authz::client_id_metadata::is_url_client_id(client_id) {
        return None;
    }
    let url = url::Url::parse(client_id).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_interpolated() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>\u{7}"),
            "&lt;script&gt;&quot;x&quot;&amp;&#x27;y&#x27;&lt;/script&gt;\u{fffd}"
        );
    }
}
