//! Database URLs in messages and logs: a URL may carry a password, which must never be printed.

/// The URL with any password (in the user info or a libpq-style `password=` parameter) replaced by `***`, for
/// logs. A URL that does not parse is not echoed at all.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "[unparsable database URL]".to_owned();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact_url("sqlite://portcullis.db"),
            "sqlite://portcullis.db"
        );
        assert_eq!(
            super::redact_url("postgresql://h/db?user=u&password=secret&sslmode=require"),
            "postgresql://h/db?user=u&password=***&sslmode=require"
        );
        assert!(!super::redact_url("postgres://u:sec ret@h:99999/db").contains("sec"));
    }
}
