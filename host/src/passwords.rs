//! Local passwords: argon2id hashing and verification (inline, or on the host's own
//! hashing threads with [`verify_async`]), and the first admin account. Not the
//! sign-in flow (that is `web::login`).

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use base64::Engine as _;
use gatehouse_store::{NewUser, Store, StoreError};

use crate::clock::{Clock, Randomness};

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str, random: &Randomness) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random.bytes(16))?;
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

/// Why a verification could not run. The host's own fault, never the user's.
#[derive(Debug, thiserror::Error)]
#[error("the password hashing threads are not available")]
pub struct HashingUnavailable;

/// [`verify`] on the hashing threads: a few dedicated threads (one per core), fed by
/// a bounded queue. Argon2 is slow on purpose and CPU-bound, so more threads than
/// cores would only make every sign-in slower; and running it on tokio's blocking
/// pool would put it behind whatever else fills that pool. A full queue makes the
/// caller wait its turn (back-pressure), it is never refused.
pub async fn verify_async(password: String, stored: String) -> Result<bool, HashingUnavailable> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        // The caller may have gone away; then nobody needs the answer.
        let _ = answer.send(verify(&password, &stored));
    });
    hashing_queue()
        .send(job)
        .await
        .map_err(|_| HashingUnavailable)?;
    answered.await.map_err(|_| HashingUnavailable)
}

type HashJob = Box<dyn FnOnce() + Send>;

/// Jobs waiting per hashing thread before callers wait to enqueue.
const QUEUED_PER_THREAD: usize = 64;

/// The queue of the hashing threads, started on first use.
fn hashing_queue() -> &'static tokio::sync::mpsc::Sender<HashJob> {
    static QUEUE: std::sync::OnceLock<tokio::sync::mpsc::Sender<HashJob>> =
        std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let (sender, receiver) = tokio::sync::mpsc::channel::<HashJob>(threads * QUEUED_PER_THREAD);
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..threads {
            let receiver = std::sync::Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-hash-{index}"))
                .spawn(move || run_hashing_thread(&receiver));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        sender
    })
}

fn run_hashing_thread(receiver: &std::sync::Mutex<tokio::sync::mpsc::Receiver<HashJob>>) {
    loop {
        // One idle thread waits in the queue while the others wait for the lock.
        let job = receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .blocking_recv();
        let Some(job) = job else { return };
        // A panicking job must not take the thread with it; its caller sees the
        // dropped answer as `HashingUnavailable`.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// A hash of a random password, verified against when the username does not exist,
/// so that a wrong username costs as much time as a wrong password.
pub fn decoy_hash(random: &Randomness) -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&random_password(random), random).unwrap_or_default())
}

/// A password of 128 random bits, easy to copy.
pub fn random_password(random: &Randomness) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random.bytes(16))
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
    clock: &Clock,
    random: &Randomness,
) -> Result<AdminBootstrap, BootstrapError> {
    if store.count_users().await? > 0 {
        return Ok(AdminBootstrap::Existing);
    }
    let (password, generated) = match given_password.filter(|p| !p.is_empty()) {
        Some(password) => (password.to_owned(), false),
        None => (random_password(random), true),
    };
    let password_hash = hash(&password, random).map_err(|e| BootstrapError::Hash(e.to_string()))?;
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
    match store
        .create_user(&admin, &[], clock.now_unix_seconds())
        .await
    {
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
        let stored = hash("correct horse", &Randomness::system()).expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("battery staple", &stored));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[tokio::test]
    async fn verify_async_answers_like_verify_from_the_hashing_threads() {
        let stored = hash("correct horse", &Randomness::system()).expect("hash");
        let checks = (0..8).map(|i| {
            let attempt = if i % 2 == 0 {
                "correct horse"
            } else {
                "battery staple"
            };
            tokio::spawn(verify_async(attempt.to_owned(), stored.clone()))
        });
        for (i, check) in checks.enumerate() {
            let matched = check.await.expect("task").expect("hashing threads run");
            assert_eq!(matched, i % 2 == 0, "attempt {i}");
        }
        assert!(
            !verify_async("x".into(), "not a hash".into())
                .await
                .expect("runs")
        );
    }
}
