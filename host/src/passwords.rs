//! Local passwords: argon2id hashing and verification on the host's hashing threads (one
//! per core, each reusing one memory buffer, behind a bounded queue), and the first admin
//! account. Not the sign-in flow (that is `web::login`).
//!
//! Why the threads own the memory: argon2 needs `m` KiB per hash (19 MiB by default), and
//! `argon2::Argon2::verify_password` allocates it afresh at every call. Run on tokio's
//! threads, every concurrent check was a fresh 19 MiB allocation that glibc then kept in
//! that thread's arena: the issue measured 2.75 GB after 24 concurrent sign-ins. Here each
//! hashing thread allocates its buffer once and fills it again for every hash, so the
//! process holds threads × `memory_kib`, however many sign-ins arrive; the ones beyond the
//! queue are answered "busy" at once instead of waiting without end.

use std::sync::{
    Arc, Mutex, OnceLock,
    atomic::{AtomicUsize, Ordering},
    mpsc,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{Output, ParamsString, PasswordHash, SaltString},
};
use base64::Engine as _;
use gatehouse_config::PasswordHashing;
use gatehouse_store::{NewUser, Store, StoreError};
use subtle::ConstantTimeEq as _;

use crate::clock::{Clock, Randomness};

/// Why a password could not be hashed or checked. Never the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hashing thread is busy and the queue is full: try again in a moment.
    #[error(
        "the password hashing threads are busy: {in_flight} checks running or queued, the most \
         `[host.passwords] queue` allows; try again"
    )]
    Busy { in_flight: usize },
    #[error("the password hashing threads are not available")]
    Unavailable,
    #[error("could not hash the password: {0}")]
    Hash(String),
}

/// How long a request refused because the hashing threads are busy is asked to wait
/// (`Retry-After`): a full queue drains in about a second on two cores at the default cost.
pub const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Salt length of new hashes, in bytes (the PHC string format's recommendation).
const SALT_BYTES: usize = 16;
/// Output length of new hashes, in bytes (argon2's default).
const OUTPUT_BYTES: usize = 32;

/// The host's password hashing: the cost of new hashes (`[host.passwords]`), the bound on
/// checks in flight, and the threads that run them. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Handle>,
}

struct Handle {
    pool: Arc<Pool>,
    /// The cost of new hashes.
    params: Params,
    /// Jobs of this handle running or queued; at most `bound`.
    in_flight: Arc<AtomicUsize>,
    bound: usize,
    /// A stored hash asking more memory than this is refused, not allocated.
    max_memory_kib: u32,
    /// Checked against when the username does not exist (see [`Passwords::decoy`]).
    decoy: String,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.inner.params)
            .field("bound", &self.inner.bound)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// Hashing as `settings` describes, on the process's hashing threads.
    pub fn new(settings: &PasswordHashing, random: &Randomness) -> Self {
        Self::on_pool(Pool::shared(), settings, random)
    }

    fn on_pool(pool: Arc<Pool>, settings: &PasswordHashing, random: &Randomness) -> Self {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            Some(OUTPUT_BYTES),
        )
        .unwrap_or_else(|error| {
            // The configuration's ranges make this unreachable; never hash weaker.
            tracing::error!(%error, "[host.passwords] rejected by argon2; using its defaults");
            Params::DEFAULT
        });
        pool.resident_blocks
            .fetch_max(params.block_count(), Ordering::Relaxed);
        let bound = pool.threads + settings.queue as usize;
        let decoy = decoy_hash(&params, random);
        Self {
            inner: Arc::new(Handle {
                pool,
                params,
                in_flight: Arc::new(AtomicUsize::new(0)),
                bound,
                max_memory_kib: *PasswordHashing::MEMORY_KIB.end(),
                decoy,
            }),
        }
    }

    /// The defaults (OWASP's argon2id recommendation), with no bound on waiting: for the
    /// commands and the bootstrap admin, which hash one password at a time.
    pub fn fallback() -> &'static Self {
        static FALLBACK: OnceLock<Passwords> = OnceLock::new();
        FALLBACK.get_or_init(|| {
            let mut passwords = Self::new(&PasswordHashing::default(), &Randomness::system());
            if let Some(handle) = Arc::get_mut(&mut passwords.inner) {
                handle.bound = usize::MAX;
            }
            passwords
        })
    }

    /// A PHC string of the configured cost, shaped like a real hash but of no password:
    /// checked instead when the username does not exist, so that a wrong username costs
    /// the same time as a wrong password. Made from random bytes, not by hashing.
    pub fn decoy(&self) -> &str {
        &self.inner.decoy
    }

    /// An argon2id PHC string for `password` with the configured cost and a fresh salt.
    pub async fn hash(&self, password: &str, random: &Randomness) -> Result<String, PasswordError> {
        let job = self.hash_job(password, random);
        self.run(job).await?
    }

    /// Whether `password` matches the PHC string `stored`, computed with the cost written
    /// in `stored`. A malformed hash, or one asking more than the host allows, never
    /// matches (and is logged: it is the database's fault, not the user's).
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool, PasswordError> {
        let Some(check) = self.prepare_check(stored) else {
            return Ok(false);
        };
        let password = password.to_owned();
        self.run(move |memory: &mut Memory| check.matches(&password, memory))
            .await
    }

    /// [`Self::hash`] for a caller outside the runtime (commands, test fixtures): blocks
    /// the calling thread until the hashing thread answers.
    pub fn hash_blocking(
        &self,
        password: &str,
        random: &Randomness,
    ) -> Result<String, PasswordError> {
        let job = self.hash_job(password, random);
        self.run_blocking(job)?
    }

    /// [`Self::verify`], blocking the calling thread.
    pub fn verify_blocking(&self, password: &str, stored: &str) -> Result<bool, PasswordError> {
        let Some(check) = self.prepare_check(stored) else {
            return Ok(false);
        };
        let password = password.to_owned();
        self.run_blocking(move |memory: &mut Memory| check.matches(&password, memory))
    }

    /// Takes every slot of this handle until the guard is dropped, so that the next check
    /// is answered busy without occupying the threads: for tests of what callers do then.
    #[doc(hidden)]
    pub fn hold_all_slots(&self) -> SlotsHeld {
        let taken = self.inner.bound;
        self.inner.in_flight.fetch_add(taken, Ordering::SeqCst);
        SlotsHeld {
            in_flight: Arc::clone(&self.inner.in_flight),
            taken,
        }
    }

    fn hash_job(
        &self,
        password: &str,
        random: &Randomness,
    ) -> impl FnOnce(&mut Memory) -> Result<String, PasswordError> + Send + 'static {
        let salt = random.bytes(SALT_BYTES);
        let params = self.inner.params.clone();
        let password = password.to_owned();
        move |memory: &mut Memory| hash_with(&password, &salt, params, memory)
    }

    /// The stored hash, ready to recompute; `None` (logged) when it cannot be checked.
    fn prepare_check(&self, stored: &str) -> Option<Check> {
        match Check::parse(stored, self.inner.max_memory_kib) {
            Ok(check) => Some(check),
            Err(why) => {
                tracing::warn!(%why, "a stored password hash cannot be checked; it matches nothing");
                None
            }
        }
    }

    /// A slot of this handle, or busy.
    fn slot(&self) -> Result<Slot, PasswordError> {
        let bound = self.inner.bound;
        self.inner
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < bound).then_some(n + 1)
            })
            .map_err(|in_flight| PasswordError::Busy { in_flight })?;
        Ok(Slot {
            in_flight: Arc::clone(&self.inner.in_flight),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let slot = self.slot()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.inner
            .pool
            .submit(Box::new(move |memory: &mut Memory| {
                let outcome = work(memory);
                // Given back before answering, so an answered caller finds its slot free.
                drop(slot);
                // The caller may have gone away; then nobody needs the answer.
                let _ = answer.send(outcome);
            }))?;
        answered.await.map_err(|_| PasswordError::Unavailable)
    }

    fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let slot = self.slot()?;
        let (answer, answered) = mpsc::sync_channel(1);
        self.inner
            .pool
            .submit(Box::new(move |memory: &mut Memory| {
                let outcome = work(memory);
                drop(slot);
                let _ = answer.send(outcome);
            }))?;
        answered.recv().map_err(|_| PasswordError::Unavailable)
    }
}

/// One job's place among a handle's `bound`; given back when the job ends (or is dropped
/// unrun).
struct Slot {
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// See [`Passwords::hold_all_slots`].
#[doc(hidden)]
pub struct SlotsHeld {
    in_flight: Arc<AtomicUsize>,
    taken: usize,
}

impl Drop for SlotsHeld {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.taken, Ordering::SeqCst);
    }
}

/// A stored hash parsed, with the cost it was made with.
struct Check {
    argon2: Argon2<'static>,
    salt: Vec<u8>,
    expected: Output,
}

impl Check {
    fn parse(stored: &str, max_memory_kib: u32) -> Result<Self, String> {
        let parsed = PasswordHash::new(stored).map_err(|e| format!("not a PHC string: {e}"))?;
        let algorithm = Algorithm::try_from(parsed.algorithm)
            .map_err(|_| format!("not an argon2 hash ({})", parsed.algorithm))?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| format!("argon2 version: {e}"))?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(|e| format!("argon2 parameters: {e}"))?;
        // Refused rather than allocated: a hash in the database must not make the host
        // take gigabytes per check, or spin for minutes.
        if params.m_cost() > max_memory_kib
            || !PasswordHashing::ITERATIONS.contains(&params.t_cost())
            || !PasswordHashing::PARALLELISM.contains(&params.p_cost())
        {
            return Err(format!(
                "its cost (m={}, t={}, p={}) is beyond what the host computes (m up to \
                 {max_memory_kib} KiB, t up to {}, p up to {})",
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                PasswordHashing::ITERATIONS.end(),
                PasswordHashing::PARALLELISM.end()
            ));
        }
        let expected = parsed.hash.ok_or("no hash output")?;
        let mut salt = [0u8; 64];
        let salt = parsed
            .salt
            .ok_or("no salt")?
            .decode_b64(&mut salt)
            .map_err(|e| format!("salt: {e}"))?
            .to_vec();
        Ok(Self {
            argon2: Argon2::new(algorithm, version, params),
            salt,
            expected,
        })
    }

    /// Recomputes the hash of `password` in `memory`; compares in constant time.
    fn matches(&self, password: &str, memory: &mut Memory) -> bool {
        let mut computed = vec![0u8; self.expected.len()];
        let blocks = memory.blocks(self.argon2.params().block_count());
        self.argon2
            .hash_password_into_with_memory(password.as_bytes(), &self.salt, &mut computed, blocks)
            .is_ok()
            && bool::from(computed.ct_eq(self.expected.as_bytes()))
    }
}

/// The PHC string of `password` hashed with `params` and `salt` in `memory`.
fn hash_with(
    password: &str,
    salt: &[u8],
    params: Params,
    memory: &mut Memory,
) -> Result<String, PasswordError> {
    let failed = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let salt = SaltString::encode_b64(salt).map_err(|e| failed(&e))?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let phc_params = ParamsString::try_from(&params).map_err(|e| failed(&e))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut output = [0u8; OUTPUT_BYTES];
    let blocks = memory.blocks(argon2.params().block_count());
    argon2
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut output, blocks)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: phc_params,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// A PHC string with `params`, a random salt and a random output: no password hashes to it
/// (but for a chance of 2^-256), and checking it costs what checking a real one does.
fn decoy_hash(params: &Params, random: &Randomness) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64(&random.bytes(SALT_BYTES)),
        b64(&random.bytes(OUTPUT_BYTES))
    )
}

/// A hashing thread's argon2 memory: allocated at the first hash and filled again by
/// every later one. A hash needing more (a stored hash made with a higher cost) gets a
/// larger buffer, released afterwards down to the largest configured cost.
struct Memory {
    blocks: Vec<Block>,
}

impl Memory {
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            // Release the smaller buffer before allocating, so the two never coexist.
            self.blocks = Vec::new();
            self.blocks = vec![Block::default(); count];
        }
        &mut self.blocks[..count]
    }

    fn settle(&mut self, resident: usize) {
        if self.blocks.len() > resident {
            self.blocks = Vec::new();
        }
    }
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The hashing threads, fed by one queue. Argon2 is slow on purpose and CPU-bound, so more
/// threads than cores would only make every sign-in slower; tokio's blocking pool would
/// put it behind whatever else fills that pool and give each call a thread (and memory)
/// of its own.
struct Pool {
    sender: Mutex<mpsc::Sender<Job>>,
    threads: usize,
    /// The buffer size a thread keeps between jobs: the largest configured cost.
    resident_blocks: Arc<AtomicUsize>,
}

impl Pool {
    /// The process's pool (one thread per core), started on first use.
    fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<Pool>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
            Arc::new(Self::start(threads))
        }))
    }

    fn start(threads: usize) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let resident_blocks = Arc::new(AtomicUsize::new(Params::DEFAULT.block_count()));
        let mut started = 0;
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            let resident = Arc::clone(&resident_blocks);
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-hash-{index}"))
                .spawn(move || run_hashing_thread(&receiver, &resident));
            match spawned {
                Ok(_) => started += 1,
                Err(error) => tracing::error!(%error, "could not start a password hashing thread"),
            }
        }
        Self {
            sender: Mutex::new(sender),
            threads: started,
            resident_blocks,
        }
    }

    fn submit(&self, job: Job) -> Result<(), PasswordError> {
        if self.threads == 0 {
            return Err(PasswordError::Unavailable);
        }
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| PasswordError::Unavailable)
    }
}

fn run_hashing_thread(receiver: &Mutex<mpsc::Receiver<Job>>, resident: &AtomicUsize) {
    let mut memory = Memory { blocks: Vec::new() };
    loop {
        // One idle thread waits in the queue while the others wait for the lock.
        let job = receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let Ok(job) = job else { return };
        // A panicking job must not take the thread with it; its caller sees the dropped
        // answer as `Unavailable`.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
        memory.settle(resident.load(Ordering::Relaxed));
    }
}

/// [`Passwords::hash_blocking`] with the default cost, for commands and test fixtures.
pub fn hash(password: &str, random: &Randomness) -> Result<String, PasswordError> {
    Passwords::fallback().hash_blocking(password, random)
}

/// [`Passwords::verify_blocking`] for commands (a malformed or unavailable check is no
/// match).
pub fn verify(password: &str, stored: &str) -> bool {
    Passwords::fallback()
        .verify_blocking(password, stored)
        .unwrap_or(false)
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

/// On an empty database, creates the `admin` account in branch `branch`, its password
/// hashed with `passwords`' cost; a generated password (no `given_password`) must be changed
/// at the first sign-in. A `given_password` on a database with accounts is ignored, with a
/// warning that says so.
pub async fn ensure_admin(
    passwords: &Passwords,
    store: &Store,
    given_password: Option<&str>,
    branch: &str,
    clock: &Clock,
    random: &Randomness,
) -> Result<AdminBootstrap, BootstrapError> {
    if store.count_users().await? > 0 {
        if given_password.is_some_and(|p| !p.is_empty()) {
            // Said plainly, because an operator who set it expects it to mean something.
            tracing::warn!(
                "GATEHOUSE_ADMIN_PASSWORD is set but ignored: the database already has accounts, \
                 and the first administrator is created only on an empty database. To change a \
                 password, run `gatehouse users set-password USERNAME`."
            );
        }
        return Ok(AdminBootstrap::Existing);
    }
    let (password, generated) = match given_password.filter(|p| !p.is_empty()) {
        Some(password) => (password.to_owned(), false),
        None => (random_password(random), true),
    };
    let password_hash = passwords
        .hash(&password, random)
        .await
        .map_err(|e| BootstrapError::Hash(e.to_string()))?;
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
    // A generated password was printed to whoever started the host: it must be replaced
    // at the first sign-in. One the operator chose need not be.
    match store
        .create_user_with_flag(&admin, generated, clock.now_unix_seconds())
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
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    /// Cheap settings, so the tests do not wait on 19 MiB hashes.
    fn light(queue: u32) -> PasswordHashing {
        PasswordHashing {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            queue,
            ..PasswordHashing::default()
        }
    }

    #[tokio::test]
    async fn hashes_verify_only_their_password_with_the_configured_cost() {
        let random = Randomness::system();
        let settings = PasswordHashing {
            memory_kib: 2048,
            iterations: 3,
            parallelism: 2,
            ..PasswordHashing::default()
        };
        let passwords = Passwords::new(&settings, &random);
        let stored = passwords
            .hash("correct horse", &random)
            .await
            .expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=2048,t=3,p=2$"),
            "{stored}"
        );
        assert!(
            passwords
                .verify("correct horse", &stored)
                .await
                .expect("runs")
        );
        assert!(
            !passwords
                .verify("battery staple", &stored)
                .await
                .expect("runs")
        );
        assert!(
            !passwords
                .verify("correct horse", "not a hash")
                .await
                .expect("runs")
        );
        // The argon2 crate's own verifier agrees: the PHC string is standard.
        let parsed = PasswordHash::new(&stored).expect("PHC");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_hash_made_with_other_costs_verifies_with_the_costs_it_names() {
        let random = Randomness::system();
        let passwords = Passwords::new(&light(4), &random);
        // Made by the argon2 crate alone: the old default cost, and an argon2i v0x10 one.
        let salt = SaltString::encode_b64(&random.bytes(16)).expect("salt");
        let old = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .expect("hash")
            .to_string();
        let other = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(4096, 4, 1, Some(64)).expect("params"),
        )
        .hash_password(b"correct horse", &salt)
        .expect("hash")
        .to_string();
        for stored in [&old, &other] {
            assert!(
                passwords
                    .verify("correct horse", stored)
                    .await
                    .expect("runs"),
                "{stored}"
            );
            assert!(
                !passwords
                    .verify("correct horsf", stored)
                    .await
                    .expect("runs"),
                "{stored}"
            );
        }
    }

    #[tokio::test]
    async fn a_stored_hash_asking_too_much_memory_is_refused_not_allocated() {
        let random = Randomness::system();
        let passwords = Passwords::new(&light(4), &random);
        let salt = SaltString::encode_b64(&random.bytes(16)).expect("salt");
        let real = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw", &salt)
        .expect("hash")
        .to_string();
        // The same hash claiming 4 GiB (or 1,000 passes) would be a denial of service.
        for greedy in [
            real.replace("m=1024", "m=4194304"),
            real.replace("t=1", "t=1000"),
        ] {
            assert!(
                !passwords.verify("pw", &greedy).await.expect("runs"),
                "{greedy}"
            );
        }
        assert!(passwords.verify("pw", &real).await.expect("runs"));
    }

    #[tokio::test]
    async fn the_decoy_has_the_configured_cost_and_matches_nothing() {
        let random = Randomness::system();
        let passwords = Passwords::new(&light(4), &random);
        let decoy = passwords.decoy().to_owned();
        assert!(
            decoy.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{decoy}"
        );
        assert!(PasswordHash::new(&decoy).is_ok());
        assert!(
            Check::parse(&decoy, 1024).is_ok(),
            "checking it costs a real check"
        );
        assert!(!passwords.verify("", &decoy).await.expect("runs"));
    }

    #[tokio::test]
    async fn past_the_queue_bound_a_check_is_busy_at_once() {
        let random = Randomness::system();
        // One thread, one place in the queue: two checks in flight, the third is busy.
        let pool = Arc::new(Pool::start(1));
        let passwords = Passwords::on_pool(Arc::clone(&pool), &light(1), &random);
        let stored = passwords.hash("pw", &random).await.expect("hash");
        // Hold the thread with a job that waits for the test.
        let (release, released) = mpsc::channel::<()>();
        pool.submit(Box::new(move |_: &mut Memory| {
            let _ = released.recv();
        }))
        .expect("pool runs");
        let first = tokio::spawn({
            let (passwords, stored) = (passwords.clone(), stored.clone());
            async move { passwords.verify("pw", &stored).await }
        });
        let second = tokio::spawn({
            let (passwords, stored) = (passwords.clone(), stored.clone());
            async move { passwords.verify("wrong", &stored).await }
        });
        // Both have taken their slot once the counter shows them (they never block before).
        while passwords.inner.in_flight.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let third = passwords.verify("pw", &stored).await;
        assert!(
            matches!(third, Err(PasswordError::Busy { in_flight: 2 })),
            "{third:?}"
        );
        assert!(third.expect_err("busy").to_string().contains("try again"));
        release.send(()).expect("the holding job waits");
        assert!(first.await.expect("task").expect("runs"));
        assert!(!second.await.expect("task").expect("runs"));
        // The slots were given back.
        assert_eq!(passwords.inner.in_flight.load(Ordering::SeqCst), 0);
        assert!(passwords.verify("pw", &stored).await.expect("runs"));
    }

    #[tokio::test]
    async fn held_slots_make_checks_busy_until_released() {
        let random = Randomness::system();
        let passwords = Passwords::new(&light(0), &random);
        let held = passwords.hold_all_slots();
        assert!(matches!(
            passwords.verify("pw", passwords.decoy()).await,
            Err(PasswordError::Busy { .. })
        ));
        drop(held);
        assert!(
            !passwords
                .verify("pw", passwords.decoy())
                .await
                .expect("runs")
        );
    }

    #[tokio::test]
    async fn the_bootstrap_admin_is_hashed_with_the_configured_cost() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let random = Randomness::system();
        let passwords = Passwords::new(&light(4), &random);
        let made = ensure_admin(
            &passwords,
            &store,
            Some("first light"),
            "root",
            &Clock::system(),
            &random,
        )
        .await
        .expect("bootstrap");
        assert_eq!(made, AdminBootstrap::CreatedWithGivenPassword);
        let stored = store
            .user_by_username("admin")
            .await
            .expect("store")
            .and_then(|u| u.password_hash)
            .expect("a hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{stored}"
        );
        assert!(
            passwords
                .verify("first light", &stored)
                .await
                .expect("runs")
        );
    }

    #[tokio::test]
    async fn only_a_generated_bootstrap_password_must_be_changed() {
        let random = Randomness::system();
        let passwords = Passwords::new(&light(4), &random);
        for given in [None, Some("chosen by the operator")] {
            let store = Store::connect("sqlite::memory:").await.expect("store");
            let made = ensure_admin(&passwords, &store, given, "root", &Clock::system(), &random)
                .await
                .expect("bootstrap");
            let admin = store
                .user_by_username("admin")
                .await
                .expect("store")
                .expect("created");
            assert!(admin.is_admin);
            match made {
                AdminBootstrap::CreatedWithPassword(password) => {
                    assert!(given.is_none());
                    assert!(admin.must_change_password, "generated: must change");
                    let hash = admin.password_hash.expect("a hash");
                    assert!(passwords.verify(&password, &hash).await.expect("runs"));
                }
                AdminBootstrap::CreatedWithGivenPassword => {
                    assert!(given.is_some());
                    assert!(!admin.must_change_password, "chosen: need not change");
                }
                AdminBootstrap::Existing => panic!("the database was empty"),
            }
            // A second start (with or without the variable) leaves the account alone.
            let again = ensure_admin(
                &passwords,
                &store,
                Some("another one"),
                "root",
                &Clock::system(),
                &random,
            )
            .await
            .expect("bootstrap");
            assert_eq!(again, AdminBootstrap::Existing);
            assert_eq!(store.count_users().await.expect("count"), 1);
        }
    }

    #[test]
    fn the_blocking_helpers_hash_and_verify_with_the_defaults() {
        let stored = hash("correct horse", &Randomness::system()).expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse", &stored));
        assert!(!verify("battery staple", &stored));
    }

    #[test]
    fn a_thread_keeps_one_buffer_and_releases_a_larger_one() {
        let mut memory = Memory { blocks: Vec::new() };
        let first = memory.blocks(1024).as_ptr();
        assert_eq!(
            memory.blocks(512).as_ptr(),
            first,
            "a smaller hash reuses the buffer"
        );
        memory.settle(1024);
        assert_eq!(memory.blocks(1024).as_ptr(), first, "kept between jobs");
        memory.blocks(4096);
        memory.settle(1024);
        assert!(
            memory.blocks.is_empty(),
            "a larger buffer is released after its job"
        );
    }
}
