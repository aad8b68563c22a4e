//! The HTML pages: login (the password form and/or one "Continue with …" link per identity provider,
//! docs/federation.md), consent, error. Server-rendered, every interpolated value HTML-escaped, one small
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
use portcullis_authz::federation::Preset;
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
button.link{background:none;border:none;padding:0;color:#1d4ed8;text-decoration:underline;font-size:inherit}
.actions{display:flex;gap:.75rem;margin-top:1.25rem;flex-wrap:wrap}
.actions button{flex:1}
.error{background:#fdecec;color:#8a1c1c;border-radius:8px;padding:.6rem .8rem;margin-bottom:1rem}
.muted{color:#5b6475;font-size:.9rem}
.tag{display:inline-block;background:#fff4d6;color:#7a5200;border-radius:6px;padding:0 .4rem;font-size:.8rem;font-weight:600}
ul.scopes{padding-left:1.2rem}
code{background:#eef0f4;border-radius:4px;padding:0 .25rem}
footer{text-align:center;margin-top:1rem}
a.idp{display:flex;align-items:center;gap:.75rem;margin-top:.6rem;padding:.65rem .9rem;border:1px solid #c4c9d4;border-radius:8px;background:#fff;color:#1d2330;font-weight:600;text-decoration:none}
a.idp:hover,a.idp:focus{border-color:#1d4ed8;background:#f5f8ff}
a.idp svg{flex:none}
.divider{display:flex;align-items:center;gap:.75rem;margin:1.25rem 0 .25rem;color:#5b6475;font-size:.9rem}
.divider::before,.divider::after{content:"";flex:1;border-top:1px solid #dfe2e8}
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

/// An HTML page: `body` inside the card, with the security headers (no-store, DENY framing, CSP).
pub(crate) fn page(
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

/// What the sign-in page offers, from the settings (`password_login`, `[[identity_providers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInOptions {
    /// Whether the password form is shown.
    pub password_login: bool,
    /// One "Continue with …" link each, in this order.
    pub providers: Vec<SignInProvider>,
}

impl Default for SignInOptions {
    /// The password form only.
    fn default() -> Self {
        Self {
            password_login: true,
            providers: Vec::new(),
        }
    }
}

/// An identity provider as the sign-in page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInProvider {
    /// The provider's name (`[a-z0-9-]{1,32}`).
    pub name: String,
    /// "Continue with <display_name>".
    pub display_name: String,
    /// The preset, which picks the icon.
    pub preset: Option<Preset>,
}

/// One "Continue with …" link of the login page.
pub struct ProviderLink<'a> {
    /// The provider's name (`[a-z0-9-]{1,32}`), for the element id.
    pub name: &'a str,
    /// Shown as "Continue with <display_name>".
    pub display_name: &'a str,
    /// The preset, which picks the icon.
    pub preset: Option<Preset>,
    /// `<issuer path>/idp/<name>/start?<the authorization request's query>`.
    pub href: String,
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
    /// The identity providers, each a link above the password form.
    pub providers: Vec<ProviderLink<'a>>,
    /// Whether the password form is shown (`password_login`).
    pub password_login: bool,
}

/// The login page: the identity providers' links, then (unless `password_login` is off) an "or" divider and
/// the password form.
pub fn login_page(status: StatusCode, p: &LoginPage<'_>) -> Response {
    page(
        status,
        "Sign in",
        &login_body(p),
        p.stylesheet,
        p.form_action,
    )
}

/// The login page's card.
fn login_body(p: &LoginPage<'_>) -> String {
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
    for link in &p.providers {
        let _ = write!(
            body,
            "<a class=\"idp\" id=\"idp-{}\" href=\"{}\">{}<span>Continue with {}</span></a>",
            escape(link.name),
            escape(&link.href),
            provider_icon(link.preset, link.display_name),
            escape(link.display_name)
        );
    }
    if p.password_login {
        if !p.providers.is_empty() {
            body.push_str("<div class=\"divider\" role=\"separator\">or</div>");
        }
        password_form(&mut body, p);
    }
    body
}

/// The username and password form of the login page. The username field takes the focus only when there is no
/// provider link above it.
fn password_form(body: &mut String, p: &LoginPage<'_>) {
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" \
         autocomplete=\"username\" autocapitalize=\"none\" required{}>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button type=\"submit\" id=\"sign-in\">Sign in</button></div></form>",
        escape(p.action),
        escape(p.request),
        escape(p.csrf),
        escape(p.username),
        if p.providers.is_empty() { " autofocus" } else { "" }
    );
}

/// A 20×20 inline SVG badge for a provider link: a letter on a coloured tile, the colour and letter chosen by the
/// preset (simple shapes of our own, not the providers' logos), else the display name's first letter on grey.
/// Decorative (`aria-hidden`): the link's text names the provider. Inline SVG with presentation attributes only,
/// so the pages' CSP (`default-src 'none'; style-src 'self'`) allows it.
fn provider_icon(preset: Option<Preset>, display_name: &str) -> String {
    let first = display_name
        .chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default();
    let (letters, fill, circle) = match preset {
        Some(Preset::Google) => ("G", "#1a73e8", true),
        Some(Preset::Microsoft) => ("M", "#0067b8", false),
        Some(Preset::GitHub) => ("GH", "#24292f", true),
        Some(Preset::Okta) => ("O", "#00297a", false),
        Some(Preset::Auth0) => ("A0", "#d9480f", false),
        Some(Preset::Keycloak) => ("K", "#3f4a56", false),
        None => (first.as_str(), "#5b6475", false),
    };
    let shape = if circle {
        format!("<circle cx=\"10\" cy=\"10\" r=\"10\" fill=\"{fill}\"/>")
    } else {
        format!("<rect width=\"20\" height=\"20\" rx=\"4\" fill=\"{fill}\"/>")
    };
    let (size, baseline) = if letters.chars().count() > 1 {
        (9, 13)
    } else {
        (12, 14)
    };
    format!(
        "<svg width=\"20\" height=\"20\" viewBox=\"0 0 20 20\" aria-hidden=\"true\" focusable=\"false\">{shape}\
         <text x=\"10\" y=\"{baseline}\" text-anchor=\"middle\" font-family=\"system-ui,sans-serif\" font-size=\"{size}\" \
         font-weight=\"700\" fill=\"#fff\">{}</text></svg>",
        escape(letters)
    )
}

/// What the consent page shows.
pub struct ConsentPage<'a> {
    /// Form target.
    pub action: &'a str,
    /// The authorization request's query string.
    pub request: &'a str,
    /// CSRF token bound to the session and the request.
    pub csrf: &'a str,
    /// The protected resource the access is for (RFC 8707; consent is remembered per resource).
    pub resource: &'a str,
    /// The sign-out form's target (`<base>/logout`).
    pub logout: &'a str,
    /// The sign-out form's CSRF token.
    pub logout_csrf: &'a str,
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
         <p>At <strong id=\"resource\">{}</strong> it will be able to:</p><ul class=\"scopes\">",
        escape(p.client_name),
        escape(p.username),
        escape(p.redirect_host),
        escape(p.resource)
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
            "<p class=\"muted\">Also requested but not granted (unknown here, or not for your account): {}</p>",
            list.join(" ")
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\" id=\"deny\">Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button></div></form>\
         <p class=\"muted\">Client ID: <code>{}</code></p>\
         <form method=\"post\" action=\"{}\" class=\"muted\"><input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">Not <strong>{}</strong>? \
         <button type=\"submit\" class=\"link\" id=\"sign-out\">Sign out</button></form>",
        escape(p.action),
        escape(p.request),
        escape(p.csrf),
        escape(p.client_id),
        escape(p.logout),
        escape(p.request),
        escape(p.logout_csrf),
        escape(p.username)
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

    fn login<'a>(providers: Vec<ProviderLink<'a>>, password_login: bool) -> LoginPage<'a> {
        LoginPage {
            action: "/login",
            request: "client_id=c&state=<s>",
            csrf: "t",
            client_name: "Demo",
            error: None,
            username: "",
            stylesheet: "/assets/portcullis.css",
            form_action: "'self'",
            providers,
            password_login,
        }
    }

    fn corp(href: &str) -> ProviderLink<'_> {
        ProviderLink {
            name: "corp",
            display_name: "Corp <SSO>",
            preset: None,
            href: href.to_owned(),
        }
    }

    #[test]
    fn the_password_form_alone_by_default() {
        let body = login_body(&login(vec![], true));
        assert!(body.contains("id=\"sign-in\"") && body.contains("autofocus"));
        assert!(!body.contains("class=\"idp\"") && !body.contains("divider"));
        assert!(body.contains("value=\"client_id=c&amp;state=&lt;s&gt;\""));
    }

    #[test]
    fn provider_links_above_the_password_form() {
        let google = ProviderLink {
            name: "google",
            display_name: "Google",
            preset: Some(Preset::Google),
            href: "/idp/google/start?client_id=c".into(),
        };
        let body = login_body(&login(
            vec![corp("/idp/corp/start?client_id=c&state=\"x\""), google],
            true,
        ));
        let link = body.find("Continue with Corp &lt;SSO&gt;").unwrap();
        let google = body.find("Continue with Google").unwrap();
        let divider = body
            .find("<div class=\"divider\" role=\"separator\">or</div>")
            .unwrap();
        let form = body.find("<form").unwrap();
        assert!(
            link < google && google < divider && divider < form,
            "{body}"
        );
        assert!(
            body.contains("<a class=\"idp\" id=\"idp-corp\" href=\"/idp/corp/start?client_id=c&amp;state=&quot;x&quot;\">"),
            "a real link, its URL escaped: {body}"
        );
        assert!(!body.contains("autofocus"), "the links come first");
        assert_eq!(body.matches("<svg").count(), 2, "an icon on each link");
        assert!(body.contains("aria-hidden=\"true\""));
        assert!(body.contains(">G</text>"), "the google preset's icon");
        assert!(
            body.contains(">C</text>"),
            "others: the display name's initial"
        );
    }

    #[test]
    fn sso_only_hides_the_password_form() {
        let body = login_body(&login(vec![corp("/idp/corp/start")], false));
        assert!(body.contains("Continue with Corp"));
        for absent in ["<form", "password", "divider", "sign-in"] {
            assert!(!body.contains(absent), "{absent}: {body}");
        }
    }

    #[test]
    fn every_preset_has_an_icon_the_csp_allows() {
        for preset in [
            Preset::Google,
            Preset::Microsoft,
            Preset::GitHub,
            Preset::Okta,
            Preset::Auth0,
            Preset::Keycloak,
        ] {
            let icon = provider_icon(Some(preset), "X");
            assert!(
                icon.starts_with("<svg") && icon.ends_with("</svg>"),
                "{icon}"
            );
            assert!(!icon.contains(">X<"), "{preset:?} has its own letter");
            for refused in ["style=", "<script", "href", "url("] {
                assert!(!icon.contains(refused), "{preset:?}: {refused}");
            }
        }
        assert!(
            provider_icon(None, "<b>").contains("<text")
                && !provider_icon(None, "<b>").contains("<b>")
        );
        let resp = login_page(StatusCode::OK, &login(vec![corp("/idp/corp/start")], true));
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
    }
}
