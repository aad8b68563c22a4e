//! Opening the authorization URL (RFC 8252 §6: the system browser, never an embedded one).
//!
//! Only a URL that parses as `https:` or loopback `http:` is opened ([`crate::url_check::safe_url`]), and never
//! through a shell: `$BROWSER` is run as one command with the URL as its single argument; otherwise the platform
//! opener (`xdg-open`, `open`, or `rundll32 url.dll,FileProtocolHandler` on Windows, which does not go through
//! `cmd.exe`). The URL is always printed to stderr as well, so the user can open it by hand.

use crate::url_check::safe_url;
use crate::{Error, Result};
use std::process::{Command, Stdio};
use std::sync::Arc;
use url::Url;

/// A caller-supplied way to open a URL (tests, headless harnesses).
pub type OpenFn = Arc<dyn Fn(&Url) -> std::result::Result<(), String> + Send + Sync>;

/// How the authorization URL is opened.
#[derive(Clone, Default)]
pub enum Opener {
    /// `$BROWSER`, else the platform opener.
    #[default]
    System,
    /// Only print the URL (`--no-browser`).
    PrintOnly,
    /// A caller-supplied function.
    Custom(OpenFn),
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Opener::System => "System",
            Opener::PrintOnly => "PrintOnly",
            Opener::Custom(_) => "Custom",
        })
    }
}

impl Opener {
    /// Checks `url`, prints it, and opens it. A browser that fails to start is reported on stderr but is not an
    /// error: the user can still open the printed URL.
    pub fn open(&self, url: &Url) -> Result<()> {
        let url = safe_url("authorization URL", url.as_str())?;
        eprintln!("To authorize, open this URL in your browser:\n\n    {url}\n");
        let outcome = match self {
            Opener::PrintOnly => Ok(()),
            Opener::Custom(f) => f(&url).map_err(|reason| Error::Browser { reason }),
            Opener::System => spawn_system(&url),
        };
        if let Err(e) = &outcome {
            eprintln!("{e}");
        }
        Ok(())
    }
}

fn spawn_system(url: &Url) -> Result<()> {
    let mut cmd = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => Command::new(b.trim()),
        _ => platform_command(),
    };
    cmd.arg(url.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| Error::Browser {
        reason: format!("{:?}: {e}", cmd.get_program()),
    })?;
    // Reap the opener when it exits so no zombie is left behind.
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            if !status.success() {
                eprintln!("warning: the browser command failed ({status}); open the printed URL yourself.");
            }
        }
    });
    Ok(())
}

#[cfg(target_os = "macos")]
fn platform_command() -> Command {
    Command::new("open")
}

#[cfg(windows)]
fn platform_command() -> Command {
    let mut c = Command::new("rundll32");
    c.arg("url.dll,FileProtocolHandler");
    c
}

#[cfg(not(any(target_os = "macos", windows)))]
fn platform_command() -> Command {
    Command::new("xdg-open")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn refuses_to_open_unsafe_urls() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let opener = Opener::Custom(Arc::new(move |u: &Url| {
            s.lock().unwrap().push(u.to_string());
            Ok(())
        }));
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://evil.example/x",
        ] {
            let url = Url::parse(bad).unwrap();
            assert!(
                matches!(opener.open(&url), Err(Error::UnsafeUrl { .. })),
                "{bad}"
            );
        }
        assert!(seen.lock().unwrap().is_empty());
        opener
            .open(&Url::parse("https://as.example/authorize?x=1").unwrap())
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
