//! Local passwords: argon2id hashing and verification, and the first admin account.
//! Not the sign-in flow (that is `web::login`).

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use base64::Engine as _;
use gatehouse_store::{NewUser, Store, StoreError};

use crate::plugins::capabilities::{now_unix_seconds, secure_random};

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&secure_random(16))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string `stored`. A malformed hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash of a random password, verified against when the username does not exist,
/// so that a wrong username costs as much time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&random_password()).unwrap_or_default())
}

/// A password of 128 random bits, easy to copy.
pub fn random_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secure_random(16))
}

/// The outcome of making sure an admin exists.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// The database already had users; nothing was done.
    Existing,
    /// An `admin` account was created with the password from the environment.
    CreatedWithGivenPassword,
    /// An `admin` account was created with this one-time password (print it once).
    CreatedWithPassword(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not hash the admin password: {0}")]
    Hash(String),
}

/// On an empty database, creates the `admin` account in branch `branch`.
pub async fn ensure_admin(
    store: &Store,
    given_password: Option<&str>,
    branch: &str,
) -> Result<AdminBootstrap, BootstrapError> {
    if store.count_users().await? > 0 {
        return Ok(AdminBootstrap::Existing);
    }
    let (password, generated) = match given_password.filter(|p| !p.is_empty()) {
        Some(password) => (password.to_owned(), false),
        None => (random_password(), true),
    };
    let password_hash = hash(&password).map_err(|e| BootstrapError::Hash(e.to_string()))?;
    let admin = NewUser {
        username: "admin".into(),
        firstname: "Site".into(),
        lastname: "Administrator".into(),
        branch: branch.into(),
        auth_source: "local".into(),
        password_hash: Some(password_hash),
        is_admin: true,
        ..NewUser::default()
    };
    match store.create_user(&admin, &[], now_unix_seconds()).await {
        Ok(_) => {}
        // Another host sharing the database created it first.
        Err(StoreError::Conflict(_)) => return Ok(AdminBootstrap::Existing),
        Err(error) => return Err(error.into()),
    }
    Ok(if generated {
        AdminBootstrap::CreatedWithPassword(password)
    } else {
        AdminBootstrap::CreatedWithGivenPassword
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let stored = hash("correct horse").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("battery staple", &stored));
        assert!(!verify("correct horse", "not a hash"));
    }
}
