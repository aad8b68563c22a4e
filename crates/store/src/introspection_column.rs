//! The `clients.introspection` column of both backends (migration 0008): an introspection credential's
//! audiences as a JSON array of strings, NULL for every other client.

/// The `introspection` column (migration 0008): a JSON array of audiences, NULL for an ordinary client. An
/// unreadable value reads as "no audience at all", never as "every audience".
pub(crate) fn introspection_from_column(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| serde_json::from_str(&t).unwrap_or_else(|_| vec![String::new()]))
}

/// The `introspection` column's value for a client record.
pub(crate) fn introspection_to_column(c: &portcullis_authz::store::ClientRecord) -> Option<String> {
    c.introspection
        .as_ref()
        .map(|r| serde_json::Value::from(r.clone()).to_string())
}
