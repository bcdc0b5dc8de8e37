//! The host's one source of time and randomness: the system's in production, a
//! clock that tests move by hand and a reproducible byte stream in tests.
//!
//! Everything else in the host (the web layer, sessions, throttling, passwords, the
//! scheduler, the capabilities lent to plugins) asks [`Clock`] and [`Randomness`]
//! from [`AppState`](crate::state::AppState); `clippy.toml` forbids
//! `SystemTime::now`, `Instant::now` and raw `getrandom` everywhere but here.
//! It is not a timer: sleeping and timeouts stay with tokio.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

/// Unix seconds as people read them: `2026-12-03 17:32:44 UTC` (what the CLI and the status
/// page print; logs and JSON keep the number).
pub fn utc_text(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || format!("{at} (Unix time)"),
        |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Wall-clock and monotonic time. Cheap to clone; clones share one source.
#[derive(Clone, Debug)]
pub struct Clock {
    source: TimeSource,
}

#[derive(Clone, Debug)]
enum TimeSource {
    System,
    Manual(Arc<ManualTime>),
}

/// A test clock: a start (a fixed instant, or the system clock as it runs) plus
/// whatever the test has advanced it by.
#[derive(Debug)]
struct ManualTime {
    /// `None`: the system clock, so real time passes too (for tests that talk to real
    /// peers, whose tokens carry real timestamps).
    fixed_start_millis: Option<i64>,
    advanced_millis: AtomicI64,
}

impl Clock {
    /// The operating system's clock.
    pub fn system() -> Self {
        Self {
            source: TimeSource::System,
        }
    }

    /// A clock standing still at `unix_seconds` until [`ManualClock::advance`] moves it.
    pub fn manual(unix_seconds: i64) -> (Self, ManualClock) {
        Self::with_manual(Some(unix_seconds.saturating_mul(1000)))
    }

    /// The system clock, plus whatever [`ManualClock::advance`] adds.
    pub fn system_advanceable() -> (Self, ManualClock) {
        Self::with_manual(None)
    }

    fn with_manual(fixed_start_millis: Option<i64>) -> (Self, ManualClock) {
        let time = Arc::new(ManualTime {
            fixed_start_millis,
            advanced_millis: AtomicI64::new(0),
        });
        (
            Self {
                source: TimeSource::Manual(Arc::clone(&time)),
            },
            ManualClock { time },
        )
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_unix_millis(&self) -> i64 {
        match &self.source {
            TimeSource::System => system_unix_millis(),
            TimeSource::Manual(time) => time
                .fixed_start_millis
                .unwrap_or_else(system_unix_millis)
                .saturating_add(time.advanced_millis.load(Ordering::SeqCst)),
        }
    }

    /// Seconds since the Unix epoch (what the store records).
    pub fn now_unix_seconds(&self) -> i64 {
        self.now_unix_millis().div_euclid(1000)
    }

    /// Monotonic time, for the breakers and durations measured in-process. A manual
    /// clock's advances move it too.
    #[allow(clippy::disallowed_methods)] // the one place that reads the monotonic clock
    pub fn instant(&self) -> Instant {
        static ANCHOR: OnceLock<Instant> = OnceLock::new();
        match &self.source {
            TimeSource::System => Instant::now(),
            TimeSource::Manual(time) => {
                let anchor = *ANCHOR.get_or_init(Instant::now);
                let base = match time.fixed_start_millis {
                    Some(_) => anchor,
                    None => Instant::now(),
                };
                let advanced = time.advanced_millis.load(Ordering::SeqCst).max(0);
                base + Duration::from_millis(advanced.unsigned_abs())
            }
        }
    }
}

#[allow(clippy::disallowed_methods)] // the one place that reads the system clock
fn system_unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The hand of a manual clock; only tests hold one.
#[derive(Clone, Debug)]
pub struct ManualClock {
    time: Arc<ManualTime>,
}

impl ManualClock {
    /// Moves the clock forward (wall and monotonic time alike).
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.time
            .advanced_millis
            .fetch_add(millis, Ordering::SeqCst);
    }
}

/// Secure random bytes. Cheap to clone; clones share one source.
#[derive(Clone, Debug)]
pub struct Randomness {
    source: RandomSource,
}

#[derive(Clone, Debug)]
enum RandomSource {
    System,
    /// SHA-256 of a seed and a counter: reproducible, and never secure.
    Seeded {
        seed: u64,
        counter: Arc<AtomicU64>,
    },
}

impl Randomness {
    /// The operating system's secure generator.
    pub fn system() -> Self {
        Self {
            source: RandomSource::System,
        }
    }

    /// A reproducible stream for tests. Never use it to serve anyone.
    pub fn seeded(seed: u64) -> Self {
        Self {
            source: RandomSource::Seeded {
                seed,
                counter: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    /// Fills `bytes`.
    ///
    /// A host that cannot get secure randomness must not issue sessions or tokens, so
    /// a failing system generator aborts rather than return weak bytes.
    #[allow(clippy::disallowed_methods)] // the one place that reads the system generator
    pub fn fill(&self, bytes: &mut [u8]) {
        match &self.source {
            RandomSource::System => {
                if let Err(error) = getrandom::fill(bytes) {
                    tracing::error!(%error, "the operating system's random generator failed; stopping");
                    std::process::abort();
                }
            }
            RandomSource::Seeded { seed, counter } => {
                for chunk in bytes.chunks_mut(32) {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let block = Sha256::new()
                        .chain_update(seed.to_le_bytes())
                        .chain_update(n.to_le_bytes())
                        .finalize();
                    chunk.copy_from_slice(&block[..chunk.len()]);
                }
            }
        }
    }

    /// `len` random bytes.
    pub fn bytes(&self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.fill(&mut bytes);
        bytes
    }

    /// A 256-bit token, URL-safe base64 without padding: sessions, CSRF, state.
    pub fn token(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.bytes(32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_is_the_calendar_date() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_text(1_796_319_164), "2026-12-03 17:32:44 UTC");
        assert_eq!(utc_text(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc_text(i64::MAX), "9223372036854775807 (Unix time)");
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let (clock, hand) = Clock::manual(1_000);
        let before = clock.instant();
        assert_eq!(clock.now_unix_seconds(), 1_000);
        hand.advance(Duration::from_secs(90));
        assert_eq!(clock.now_unix_seconds(), 1_090);
        assert_eq!(clock.instant() - before, Duration::from_secs(90));
        assert_eq!(
            clock.clone().now_unix_millis(),
            1_090_000,
            "clones share time"
        );
    }

    #[test]
    fn an_advanceable_system_clock_runs_and_jumps() {
        let (clock, hand) = Clock::system_advanceable();
        let before = Clock::system().now_unix_seconds();
        hand.advance(Duration::from_secs(3600));
        let after = clock.now_unix_seconds();
        assert!(
            (before + 3600..before + 3700).contains(&after),
            "{before} → {after}"
        );
    }

    #[test]
    fn seeded_randomness_is_reproducible_and_never_repeats_a_block() {
        let a = Randomness::seeded(7);
        let b = Randomness::seeded(7);
        let first = a.bytes(40);
        assert_eq!(first, b.bytes(40));
        assert_ne!(a.bytes(40), first);
        assert_eq!(a.token().len(), 43);
    }
}
