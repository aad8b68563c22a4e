//! The client's one error type. Every message says what happened and what the user can do about it, in one or
//! two sentences, because the CLI prints it as is.

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL given by the user is unusable.
    #[error("{url:?} is not a usable MCP server URL: {reason}. Give an https:// URL (or http:// on 127.0.0.1/localhost).")]
    InvalidServerUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A network-level failure.
    #[error("could not reach {url}: {reason}. Check the URL, your network and that the server is running.")]
    Http {
        /// The URL requested.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// A response with a status the client cannot handle.
    #[error("{url} answered HTTP {status}{}. The server may be down or misconfigured; try again later.", body_hint(.body))]
    UnexpectedStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for diagnosis.
        body: String,
    },
    /// The server did not ask for authorization.
    #[error("{url} did not ask for authorization (no 401 on an unauthenticated request), so there is nothing to log in to.")]
    NotProtected {
        /// The server URL.
        url: String,
    },
    /// RFC 9728 §3.3: the metadata's `resource` is not the server we talk to.
    #[error("the protected resource metadata is for {found:?}, not for {expected:?}; refusing to continue (RFC 9728 §3.3). Check the server URL, or report this to the server operator.")]
    ResourceMismatch {
        /// The server URL.
        expected: String,
        /// The metadata's `resource`.
        found: String,
    },
    /// RFC 8414 §3.3: the metadata's `issuer` is not the issuer we looked up.
    #[error("the authorization server metadata claims issuer {found:?} but was fetched for {expected:?}; refusing to continue (RFC 8414 §3.3). Report this to the server operator.")]
    IssuerMismatch {
        /// The issuer used to build the metadata URL.
        expected: String,
        /// The document's `issuer`.
        found: String,
    },
    /// No authorization server could be found.
    #[error("no authorization server metadata was found for {url} ({reason}). The server may not support OAuth for MCP; check the URL.")]
    NoAuthorizationServer {
        /// The server URL.
        url: String,
        /// What was tried.
        reason: String,
    },
    /// The authorization server does not advertise PKCE S256.
    #[error("the authorization server {issuer} does not advertise PKCE S256 (code_challenge_methods_supported), so the login cannot be done safely; ask its operator to enable S256.")]
    NoS256 {
        /// The issuer.
        issuer: String,
    },
    /// An endpoint URL that the client refuses to use or open.
    #[error("the {name} {url:?} is not a safe URL ({reason}); refusing to use it. Report this to the server operator.")]
    UnsafeUrl {
        /// Which URL (e.g. `authorization_endpoint`).
        name: String,
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A metadata or response document that could not be used.
    #[error("{what} from {url} is not valid: {reason}. Report this to the server operator.")]
    InvalidDocument {
        /// What kind of document.
        what: String,
        /// Where it came from.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No way to obtain client credentials.
    #[error("the authorization server {issuer} supports neither dynamic client registration nor Client ID Metadata Documents we can use; it needs a pre-registered client. Register one with the server operator and run `portcullis login URL --client-id ID` (add --client-secret-stdin if it has a secret).")]
    NeedsPreRegistration {
        /// The issuer.
        issuer: String,
    },
    /// Dynamic registration failed.
    #[error("dynamic client registration at {issuer} failed: {reason}. Try again, or use a pre-registered client with --client-id.")]
    RegistrationFailed {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: String,
    },
    /// The `state` in the redirect did not match.
    #[error("the authorization response's state does not match the request (possible CSRF or a stale browser tab); nothing was exchanged. Run the login again.")]
    StateMismatch,
    /// RFC 9207: the `iss` in the redirect is wrong or missing.
    #[error("the authorization response came from issuer {found:?}, expected {expected:?} (RFC 9207 mix-up protection); nothing was exchanged. Run the login again and report this if it repeats.")]
    IssuerResponseMismatch {
        /// The issuer we expected.
        expected: String,
        /// What came back (`None` when it was missing though required).
        found: Option<String>,
    },
    /// The authorization server answered the authorization request with an error.
    #[error("authorization was refused: {error}{}. Run the login again, and approve the request in the browser.", desc_hint(.description))]
    AuthorizationDenied {
        /// The RFC 6749 §4.1.2.1 error code.
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// The redirect carried no code.
    #[error("the authorization response carried no code. Run the login again.")]
    MissingCode,
    /// The callback listener could not start.
    #[error("could not listen for the login callback on 127.0.0.1:{port}: {reason}. Free that port, or choose another with --callback-port.")]
    CallbackBind {
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// Nobody came back to the callback in time.
    #[error("no login came back within {seconds} seconds. Open the printed URL in a browser and finish the login, then run the command again.")]
    CallbackTimeout {
        /// The timeout.
        seconds: u64,
    },
    /// The token endpoint refused.
    #[error("the token endpoint refused the request: {error}{}. {}", desc_hint(.description), token_advice(.error))]
    TokenEndpoint {
        /// The RFC 6749 §5.2 error code.
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// RFC 6749 §4.1.2.1: the authorization endpoint answered a stored registration's `client_id` with
    /// `invalid_client` instead of a login page or a redirect; the server has forgotten the client.
    #[error("the authorization server {issuer} no longer knows the stored client {client_id:?}. Run `portcullis login URL` to register again.")]
    UnknownClient {
        /// The issuer.
        issuer: String,
        /// The forgotten `client_id`.
        client_id: String,
    },
    /// Not logged in and not allowed to log in now.
    #[error("not logged in to {server}. Run `portcullis login {server}` first.")]
    NotLoggedIn {
        /// The server URL.
        server: String,
    },
    /// Step-up kept failing.
    #[error("the server still refuses with insufficient_scope (needs {scope:?}) after {attempts} re-authorizations. Your account probably lacks that permission; ask the server operator.")]
    InsufficientScope {
        /// The scope asked for last.
        scope: String,
        /// How many step-ups were made.
        attempts: u32,
    },
    /// Authorization kept failing with 401.
    #[error("the server keeps rejecting fresh tokens with 401. Run `portcullis logout URL` and log in again; if it repeats, the server is misconfigured.")]
    StillUnauthorized,
    /// The local cache could not be read or written.
    #[error("could not use the credential cache at {path}: {reason}. Check the permissions of that directory or set PORTCULLIS_HOME.")]
    Cache {
        /// The file or directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The browser could not be started.
    #[error("could not open a browser: {reason}. Open the printed URL yourself.")]
    Browser {
        /// Why.
        reason: String,
    },
    /// A JSON-RPC error from the MCP server.
    #[error("the MCP server answered with error {code}: {message}")]
    JsonRpc {
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
        /// Its `data`.
        data: Option<serde_json::Value>,
    },
    /// The MCP server broke the protocol.
    #[error("the MCP server's answer was not understood: {reason}. Check that the URL points at an MCP endpoint.")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The server needs input (MCP 2026-07-28 multi round-trip requests) that nobody can give here.
    #[error("the MCP server needs input to finish {method}: {wants}. Run the command in a terminal to answer, or pass the answers with --input-responses '{{\"KEY\": RESULT}}'.")]
    InputRequired {
        /// The request that needs it.
        method: String,
        /// What the server asks for, one description per input request.
        wants: String,
    },
    /// A tool whose definition the client must refuse (MCP 2026-07-28 `x-mcp-header` constraints).
    #[error("the server's definition of the tool {name:?} is invalid ({reason}), so it is not called. Report this to the server operator.")]
    InvalidTool {
        /// The tool.
        name: String,
        /// Why.
        reason: String,
    },
}

fn body_hint(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(" ({body})")
    }
}

fn desc_hint(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
}

fn token_advice(error: &str) -> &'static str {
    match error {
        "invalid_grant" => {
            "The login has expired or was revoked; run `portcullis login URL` again."
        }
        "invalid_client" => {
            "The server no longer knows this client; run `portcullis login URL` to register again."
        }
        "temporarily_unavailable" => "The server is busy; try again in a moment.",
        _ => "Run `portcullis login URL` again; if it repeats, report it to the server operator.",
    }
}

impl Error {
    /// Whether the authorization server no longer recognises the client (RFC 6749 §5.2 `invalid_client`), so
    /// the registration should be dropped and made again.
    pub fn is_invalid_client(&self) -> bool {
        matches!(self, Error::TokenEndpoint { error, .. } if error == "invalid_client")
            || matches!(self, Error::UnknownClient { .. })
    }

    pub(crate) fn http(url: &str, e: &reqwest::Error) -> Self {
        // reqwest's Display may include the URL; that is fine: URLs we request carry no secrets.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        Error::Http {
            url: url.to_owned(),
            reason,
        }
    }

    pub(crate) fn cache(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::Cache {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

/// Shortens a response body for an error message (no more than 200 characters, one line).
pub(crate) fn snippet(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_owned()
}
