//! The store's error type, `StoreError`; it is not where database errors are logged or shown
//! to people (the host decides that).

/// Everything a `Store` method can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL has a scheme other than `sqlite:` or `postgres:`/`postgresql:`.
    /// Only the scheme is kept, never the rest of the URL.
    #[error("unsupported database URL scheme {0:?}: expected sqlite: or postgres:")]
    UnsupportedUrl(String),

    /// Connecting (or preparing a new connection) failed. Any password from the URL has been
    /// removed from the message.
    #[error("cannot connect to the database: {0}")]
    Connect(String),

    /// Running the embedded migrations failed. Any password from the URL has been removed.
    #[error("database migration failed: {0}")]
    Migrate(String),

    /// A uniqueness rule was broken (duplicate username, session id, ...). Nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),

    /// Another active Connect client system already has this URL (the original's
    /// `errorduplicateclient`). Nothing was written.
    #[error("an active client system already has the URL {0}")]
    DuplicateConnectClient(String),

    /// The row the call refers to (for example a user id) does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// The caller passed an argument the store refuses (for example an unknown field name).
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// The database holds a value the store cannot interpret.
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),

    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(db) = error.as_database_error()
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_owned());
        }
        StoreError::Database(error)
    }
}

/// Removes the password of `url` (user-info password and a `password=` query parameter, both
/// as written and percent-decoded) from `message`.
pub(crate) fn redact(message: &str, url: &str) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            secrets.push(password.to_owned());
            secrets.push(percent_decode(password));
        }
        for (key, value) in parsed.query_pairs() {
            if key.eq_ignore_ascii_case("password") {
                secrets.push(value.into_owned());
            }
        }
    }
    let mut out = message.to_owned();
    secrets.retain(|s| !s.is_empty());
    // Longest first, so a secret that contains another one is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        out = out.replace(&secret, "********");
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_userinfo_and_query_passwords() {
        let url = "postgres://alice:s%40cret@db.example/gh?password=other";
        let msg = "failed for postgres://alice:s%40cret@db; s@cret; other";
        let out = redact(msg, url);
        assert!(!out.contains("s%40cret"), "{out}");
        assert!(!out.contains("s@cret"), "{out}");
        assert!(!out.contains("other"), "{out}");
        assert!(out.contains("alice"), "{out}");
    }
}
