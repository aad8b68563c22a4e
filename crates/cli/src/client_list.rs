//! `portcullis clients list`: every stored client with when it was registered, when it was last used, its live
//! grants, its name and the hosts of its redirect URIs; a table for people, `--json` for scripts.

use portcullis_authz::introspection::IntrospectionAudiences;
use portcullis_authz::registration::RegisteredClient;
use portcullis_authz::store::{ClientOrigin, ClientUsage};
use serde::Serialize;

/// Longest name shown in the table (the JSON carries it whole).
const NAME_WIDTH: usize = 40;

/// One client, as listed.
#[derive(Debug, Serialize)]
pub(crate) struct ListedClient {
    client_id: String,
    /// The `client_name` (or "Unnamed client").
    name: String,
    /// Whether the name was chosen by whoever registered the client, unchecked (the consent page tags it
    /// "unverified"): every client not made by an administrator.
    name_unverified: bool,
    /// `dynamic` (open registration), `metadata_document` (a URL client id) or `admin`.
    origin: &'static str,
    /// Unix time.
    created_at: i64,
    /// Unix time of the last code exchange or refresh; `None`: never obtained a token.
    last_used_at: Option<i64>,
    live_grants: u64,
    /// What the consent page shows for each redirect URI (the host, or `scheme:`), without repeats.
    redirect_hosts: Vec<String>,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: String,
}

impl ListedClient {
    /// The listing of one stored client; metadata that cannot be read shows as such rather than failing the list.
    pub(crate) fn new(u: &ClientUsage) -> Self {
        let c = &u.client;
        let parsed = RegisteredClient::from_record(c).ok();
        let mut redirect_hosts: Vec<String> = Vec::new();
        for h in parsed
            .iter()
            .flat_map(|p| &p.redirect_uris)
            .map(|r| r.display_host())
        {
            if !redirect_hosts.contains(&h) {
                redirect_hosts.push(h);
            }
        }
        // An introspection credential has no redirect URI: the column says what it may introspect instead.
        if let Some(aud) = parsed.as_ref().and_then(|p| p.introspection.as_ref()) {
            redirect_hosts.push(format!("(introspection: {})", audiences_text(aud)));
        }
        Self {
            client_id: c.client_id.clone(),
            name: parsed
                .as_ref()
                .map_or("(unreadable metadata)", RegisteredClient::name)
                .to_owned(),
            name_unverified: c.origin != ClientOrigin::Admin,
            origin: c.origin.as_str(),
            created_at: c.created_at,
            last_used_at: u.last_used_at,
            live_grants: u.live_grants,
            redirect_hosts,
            redirect_uris: parsed
                .iter()
                .flat_map(|p| &p.redirect_uris)
                .map(|r| r.as_str().to_owned())
                .collect(),
            token_endpoint_auth_method: parsed
                .as_ref()
                .map_or("", |p| p.auth_method.as_str())
                .to_owned(),
        }
    }
}

/// What an introspection credential may see, in words.
pub(crate) fn audiences_text(aud: &IntrospectionAudiences) -> String {
    match aud {
        IntrospectionAudiences::Any => "access tokens of every audience of this issuer".to_owned(),
        IntrospectionAudiences::Only(r) => format!("access tokens for {}", r.join(" ")),
    }
}

/// The table: a header, then one line per client, columns padded to their widest cell.
pub(crate) fn table(clients: &[ListedClient]) -> String {
    let header = [
        "CLIENT ID",
        "NAME",
        "ORIGIN",
        "CREATED",
        "LAST USED",
        "LIVE GRANTS",
        "REDIRECT HOSTS",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = clients
        .iter()
        .map(|c| {
            let mut name = printable(&c.name, NAME_WIDTH);
            if c.name_unverified {
                name.push_str(" (unverified)");
            }
            [
                printable(&c.client_id, usize::MAX),
                name,
                c.origin.to_owned(),
                utc(c.created_at),
                c.last_used_at.map_or_else(|| "never".to_owned(), utc),
                c.live_grants.to_string(),
                printable(&c.redirect_hosts.join(" "), usize::MAX),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` safe for a terminal (control characters as `?`), cut to `max` characters with an ellipsis.
fn printable(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A Unix time as an RFC 3339 UTC time to the second: `2026-12-03T09:00:00Z`.
pub(crate) fn utc(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms", `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portcullis_authz::store::ClientRecord;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }

    fn usage(id: &str, name: &str, origin: ClientOrigin, last: Option<i64>) -> ClientUsage {
        ClientUsage {
            client: ClientRecord {
                client_id: id.into(),
                secret_hash: None,
                metadata_json: format!(
                    r#"{{"client_name":{},"token_endpoint_auth_method":"none","redirect_uris":
                    ["http://127.0.0.1/cb","http://127.0.0.1:9/other","com.example.app:/cb"]}}"#,
                    serde_json::to_string(name).unwrap()
                ),
                created_at: 1_700_000_000,
                origin,
                introspection: None,
            },
            last_used_at: last,
            live_grants: 2,
        }
    }

    #[test]
    fn the_table_aligns_tags_and_cleans() {
        let clients = [
            ListedClient::new(&usage(
                "c1",
                "Bad\u{1b}[31mName",
                ClientOrigin::Registered,
                None,
            )),
            ListedClient::new(&usage(
                "client-two",
                &"n".repeat(60),
                ClientOrigin::Admin,
                Some(1_700_000_060),
            )),
        ];
        let out = table(&clients);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("CLIENT ID   NAME"), "{out}");
        assert!(lines[1].contains("Bad?[31mName (unverified)"), "{out}");
        assert!(lines[1].contains("never"), "{out}");
        assert!(lines[1].ends_with("127.0.0.1 com.example.app:"), "{out}");
        assert!(lines[2].contains(&format!("{}…", "n".repeat(39))), "{out}");
        assert!(!lines[2].contains("unverified"), "an admin's client: {out}");
        assert!(lines[2].contains("2023-11-14T22:14:20Z"), "{out}");
        // The column where ORIGIN starts, in characters (the ellipsis is one character, three bytes).
        let col = |l: &str| {
            let at = (l.find("ORIGIN").or_else(|| l.find("dynamic"))).or(l.find("admin"));
            at.map(|i| l[..i].chars().count())
        };
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[0]), col(lines[2]));
    }

    /// An introspection credential has no redirect URI; its row says what it may introspect instead.
    #[test]
    fn an_introspection_credential_is_tagged() {
        let mut u = usage("rs", "Resource server", ClientOrigin::Admin, None);
        u.client.metadata_json = r#"{"client_name":"rs","token_endpoint_auth_method":"client_secret_basic","grant_types":[],"response_types":[]}"#.into();
        u.client.secret_hash = Some(portcullis_authz::secret::TokenHash::of("s"));
        u.client.introspection = Some(vec!["https://mcp.example/mcp".into()]);
        let listed = ListedClient::new(&u);
        assert_eq!(
            listed.redirect_hosts,
            ["(introspection: access tokens for https://mcp.example/mcp)"]
        );
        u.client.introspection = Some(vec![]);
        let out = table(&[ListedClient::new(&u)]);
        assert!(
            out.contains("(introspection: access tokens of every audience of this issuer)"),
            "{out}"
        );
    }
}
