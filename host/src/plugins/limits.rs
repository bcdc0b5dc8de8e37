//! How much of the host one IdP may use: a bounded number of concurrent plugin calls
//! per IdP instance and in total (refused at once when full, never queued), and a
//! circuit breaker per IdP that stops calling an IdP for a while after repeated
//! timeouts or outages.
//!
//! The breaker is a pure state machine with time as an input ([`Breaker`]); the
//! gates ([`CallGates`]) hold the counters and log the breaker's transitions. Running
//! the calls is `instances::PluginCaller`'s job, not this module's.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;

/// The numbers behind the limits (`[host]` keys, with these defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Plugin calls running at once for one IdP instance.
    pub per_idp: usize,
    /// Plugin calls running at once in the whole host. Each holds a thread of tokio's
    /// blocking pool (512 threads) until the plugin returns, so this stays far below it.
    pub total: usize,
    /// Consecutive timeouts or unavailable answers that open an IdP's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before it lets one probe through.
    pub breaker_cooldown: Duration,
}

impl Default for CallLimits {
    /// The `[host]` defaults.
    fn default() -> Self {
        let host = gatehouse_config::HostSettings::default();
        Self {
            per_idp: host.plugin_calls_per_idp as usize,
            total: host.plugin_calls_max as usize,
            breaker_failures: host.idp_breaker_failures,
            breaker_cooldown: Duration::from_secs(u64::from(host.idp_breaker_cooldown_seconds)),
        }
    }
}

/// What the client is told to wait when a call is refused because an IdP is at its
/// concurrency limit: calls end within a plugin-call timeout, usually far sooner.
const RETRY_AFTER_BUSY: Duration = Duration::from_secs(2);

/// How a finished call bears on the IdP's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The IdP answered (a refusal is an answer).
    Answered,
    /// A timeout, or the IdP could not be reached.
    Unavailable,
    /// Says nothing about the IdP (the plugin panicked, the caller went away).
    Inconclusive,
}

/// What the breaker's state is, as `/healthz` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a call admitted by the breaker is the half-open probe, whose outcome alone
/// decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    Normal,
    Probe,
}

/// A breaker's state change, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_running: bool },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// A circuit breaker: closed until `threshold` consecutive [`Outcome::Unavailable`]
/// calls, then open (refusing at once) for `cooldown`, then half-open: one probe goes
/// through, and its outcome closes the breaker or opens it for another cool-down.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    phase: Phase,
}

/// The breaker refused a call; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerRefusal {
    pub retry_after: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            phase: Phase::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.phase.state()
    }

    /// Whether a call may start at `now`, and the transition that admitting it made.
    pub fn admit(&mut self, now: Instant) -> (Result<Ticket, BreakerRefusal>, Option<Transition>) {
        match self.phase {
            Phase::Closed { .. } => (Ok(Ticket::Normal), None),
            Phase::Open { until } if now < until => (
                Err(BreakerRefusal {
                    retry_after: until - now,
                }),
                None,
            ),
            Phase::Open { .. } => {
                let transition = self.enter(Phase::HalfOpen {
                    probe_running: true,
                });
                (Ok(Ticket::Probe), transition)
            }
            Phase::HalfOpen {
                probe_running: true,
            } => (
                Err(BreakerRefusal {
                    retry_after: RETRY_AFTER_BUSY,
                }),
                None,
            ),
            Phase::HalfOpen {
                probe_running: false,
            } => {
                self.phase = Phase::HalfOpen {
                    probe_running: true,
                };
                (Ok(Ticket::Probe), None)
            }
        }
    }

    /// Records how a call admitted with `ticket` ended at `now`.
    pub fn record(&mut self, ticket: Ticket, outcome: Outcome, now: Instant) -> Option<Transition> {
        match (self.phase, ticket, outcome) {
            (Phase::Closed { .. }, _, Outcome::Answered) => {
                self.phase = Phase::Closed {
                    consecutive_failures: 0,
                };
                None
            }
            (
                Phase::Closed {
                    consecutive_failures,
                },
                _,
                Outcome::Unavailable,
            ) => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.threshold {
                    self.enter(Phase::Open {
                        until: now + self.cooldown,
                    })
                } else {
                    self.phase = Phase::Closed {
                        consecutive_failures: failures,
                    };
                    None
                }
            }
            (Phase::HalfOpen { .. }, Ticket::Probe, Outcome::Answered) => {
                self.enter(Phase::Closed {
                    consecutive_failures: 0,
                })
            }
            (Phase::HalfOpen { .. }, Ticket::Probe, Outcome::Unavailable) => {
                self.enter(Phase::Open {
                    until: now + self.cooldown,
                })
            }
            (Phase::HalfOpen { .. }, Ticket::Probe, Outcome::Inconclusive) => {
                // Let the next call probe instead.
                self.phase = Phase::HalfOpen {
                    probe_running: false,
                };
                None
            }
            // Calls admitted before the breaker opened, ending late, change nothing:
            // only the probe decides whether an open breaker closes.
            _ => None,
        }
    }

    fn enter(&mut self, phase: Phase) -> Option<Transition> {
        let from = self.phase.state();
        self.phase = phase;
        let to = phase.state();
        (from != to).then_some(Transition { from, to })
    }
}

/// Why a call was refused without running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusyReason {
    #[error("{limit} calls to this IdP are already running")]
    IdpConcurrency { limit: usize },
    #[error("{limit} plugin calls are already running in the host")]
    HostConcurrency { limit: usize },
    #[error("its circuit breaker is {state} after repeated timeouts or outages")]
    BreakerOpen { state: BreakerState },
}

/// A refused call: the IdP, why, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IdP `{idp}` is busy: {reason}")]
pub struct Busy {
    pub idp: String,
    pub reason: BusyReason,
    pub retry_after: Duration,
}

/// One IdP's counters: its concurrency permits and its breaker.
struct IdpGate {
    permits: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
}

impl IdpGate {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What `/healthz` shows for one IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpHealth {
    pub breaker: BreakerState,
    /// Plugin threads working for this IdP now, including timed-out calls whose
    /// plugin has not returned yet.
    pub running: usize,
}

/// The capacity an admitted call holds. The permits travel with the plugin's thread
/// and are released when that thread ends (not when the caller stops waiting), so the
/// count of plugin threads is real and can never exceed the limits.
pub struct Capacity {
    _idp: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

/// An admitted call's pending verdict for its IdP's breaker. Dropped unrecorded (the
/// request was abandoned), it counts as [`Outcome::Inconclusive`], so a probe is never
/// lost.
pub struct Verdict {
    gates: CallGates,
    idp: String,
    ticket: Ticket,
    recorded: bool,
}

impl Verdict {
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.gates
            .record(&self.idp, self.ticket, outcome, self.gates.clock.instant());
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        if !self.recorded {
            self.gates.record(
                &self.idp,
                self.ticket,
                Outcome::Inconclusive,
                self.gates.clock.instant(),
            );
        }
    }
}

/// Every IdP's gate and the host-wide thread budget. Gates are keyed by IdP id and
/// outlive reloads, because threads of the old instance still run and an IdP that was
/// down before a reload is still down after it.
#[derive(Clone)]
pub struct CallGates {
    limits: CallLimits,
    host_permits: Arc<Semaphore>,
    gates: Arc<Mutex<HashMap<String, Arc<IdpGate>>>>,
    /// Where verdicts read the time they are recorded at.
    clock: Clock,
}

impl CallGates {
    pub fn new(limits: CallLimits, clock: Clock) -> Self {
        Self {
            limits,
            clock,
            host_permits: Arc::new(Semaphore::new(limits.total.max(1))),
            gates: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    fn gate(&self, idp: &str) -> Arc<IdpGate> {
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(gates.entry(idp.to_owned()).or_insert_with(|| {
            Arc::new(IdpGate {
                permits: Arc::new(Semaphore::new(self.limits.per_idp.max(1))),
                breaker: Mutex::new(Breaker::new(
                    self.limits.breaker_failures,
                    self.limits.breaker_cooldown,
                )),
            })
        }))
    }

    /// Admits a call to `idp` at `now`, or refuses it at once. Capacity is taken
    /// before the breaker is asked, so a half-open probe is never admitted and then
    /// refused for want of a thread.
    pub fn admit(&self, idp: &str, now: Instant) -> Result<(Capacity, Verdict), Busy> {
        let gate = self.gate(idp);
        let busy = |reason, retry_after| Busy {
            idp: idp.to_owned(),
            reason,
            retry_after,
        };
        let idp_permit = Arc::clone(&gate.permits).try_acquire_owned().map_err(|_| {
            busy(
                BusyReason::IdpConcurrency {
                    limit: self.limits.per_idp,
                },
                RETRY_AFTER_BUSY,
            )
        })?;
        let host_permit = Arc::clone(&self.host_permits)
            .try_acquire_owned()
            .map_err(|_| {
                busy(
                    BusyReason::HostConcurrency {
                        limit: self.limits.total,
                    },
                    RETRY_AFTER_BUSY,
                )
            })?;
        let mut breaker = gate.breaker();
        let (admitted, transition) = breaker.admit(now);
        let state = breaker.state();
        drop(breaker);
        log_transition(idp, transition);
        let ticket = admitted
            .map_err(|refusal| busy(BusyReason::BreakerOpen { state }, refusal.retry_after))?;
        Ok((
            Capacity {
                _idp: idp_permit,
                _host: host_permit,
            },
            Verdict {
                gates: self.clone(),
                idp: idp.to_owned(),
                ticket,
                recorded: false,
            },
        ))
    }

    fn record(&self, idp: &str, ticket: Ticket, outcome: Outcome, now: Instant) {
        let gate = self.gate(idp);
        let transition = gate.breaker().record(ticket, outcome, now);
        log_transition(idp, transition);
    }

    /// `idp`'s breaker state and running calls.
    pub fn health(&self, idp: &str) -> IdpHealth {
        let gate = self.gate(idp);
        let breaker = gate.breaker().state();
        IdpHealth {
            breaker,
            running: self
                .limits
                .per_idp
                .max(1)
                .saturating_sub(gate.permits.available_permits()),
        }
    }
}

fn log_transition(idp: &str, transition: Option<Transition>) {
    if let Some(Transition { from, to }) = transition {
        tracing::warn!(idp, %from, %to, "IdP circuit breaker changed state");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn breaker() -> Breaker {
        Breaker::new(3, COOLDOWN)
    }

    fn fail(breaker: &mut Breaker, now: Instant) -> Option<Transition> {
        let (ticket, _) = breaker.admit(now);
        breaker.record(ticket.expect("admitted"), Outcome::Unavailable, now)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_only() {
        let t0 = Instant::now();
        let mut b = breaker();
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(fail(&mut b, t0), None);
        // An answer resets the count.
        let (ticket, _) = b.admit(t0);
        b.record(ticket.expect("admitted"), Outcome::Answered, t0);
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            fail(&mut b, t0),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
        let (refused, _) = b.admit(t0 + Duration::from_secs(10));
        assert_eq!(
            refused,
            Err(BreakerRefusal {
                retry_after: Duration::from_secs(20)
            })
        );
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through_and_its_answer_closes() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let later = t0 + COOLDOWN;
        let (probe, transition) = b.admit(later);
        assert_eq!(probe, Ok(Ticket::Probe));
        assert_eq!(
            transition,
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen
            })
        );
        assert!(
            b.admit(later).0.is_err(),
            "a second call waits for the probe"
        );
        assert_eq!(
            b.record(Ticket::Probe, Outcome::Answered, later),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed
            })
        );
        assert_eq!(b.admit(later).0, Ok(Ticket::Normal));
    }

    #[test]
    fn a_failed_probe_opens_for_another_cooldown() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let probe_time = t0 + COOLDOWN + Duration::from_secs(1);
        assert_eq!(b.admit(probe_time).0, Ok(Ticket::Probe));
        b.record(Ticket::Probe, Outcome::Unavailable, probe_time);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(
            b.admit(probe_time + COOLDOWN - Duration::from_secs(1))
                .0
                .is_err()
        );
        assert_eq!(b.admit(probe_time + COOLDOWN).0, Ok(Ticket::Probe));
    }

    #[test]
    fn an_inconclusive_probe_hands_the_probe_to_the_next_call() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        let later = t0 + COOLDOWN;
        assert_eq!(b.admit(later).0, Ok(Ticket::Probe));
        assert_eq!(b.record(Ticket::Probe, Outcome::Inconclusive, later), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(later).0, Ok(Ticket::Probe));
    }

    #[test]
    fn late_answers_of_calls_admitted_before_opening_do_not_close_it() {
        let t0 = Instant::now();
        let mut b = breaker();
        let (early, _) = b.admit(t0);
        for _ in 0..3 {
            fail(&mut b, t0);
        }
        assert_eq!(
            b.record(early.expect("admitted"), Outcome::Answered, t0),
            None
        );
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn gates_refuse_the_call_beyond_the_per_idp_limit_at_once() {
        let gates = CallGates::new(
            CallLimits {
                per_idp: 2,
                total: 10,
                ..CallLimits::default()
            },
            Clock::system(),
        );
        let now = Instant::now();
        let first = gates.admit("slow", now).expect("first");
        let _second = gates.admit("slow", now).expect("second");
        let refused = gates.admit("slow", now).err().expect("third is refused");
        assert_eq!(refused.reason, BusyReason::IdpConcurrency { limit: 2 });
        assert_eq!(gates.health("slow").running, 2);
        // Another IdP is not affected.
        assert!(gates.admit("other", now).is_ok());
        drop(first);
        assert!(
            gates.admit("slow", now).is_ok(),
            "a released permit is reusable"
        );
    }

    #[test]
    fn gates_refuse_beyond_the_host_wide_limit() {
        let gates = CallGates::new(
            CallLimits {
                per_idp: 5,
                total: 2,
                ..CallLimits::default()
            },
            Clock::system(),
        );
        let now = Instant::now();
        let _a = gates.admit("a", now).expect("a");
        let _b = gates.admit("b", now).expect("b");
        let refused = gates.admit("c", now).err().expect("c is refused");
        assert_eq!(refused.reason, BusyReason::HostConcurrency { limit: 2 });
    }

    #[test]
    fn an_abandoned_probe_does_not_wedge_the_breaker() {
        let gates = CallGates::new(
            CallLimits {
                breaker_failures: 1,
                ..CallLimits::default()
            },
            Clock::system(),
        );
        let t0 = Instant::now();
        let (_, verdict) = gates.admit("idp", t0).expect("admitted");
        verdict.record(Outcome::Unavailable);
        assert_eq!(gates.health("idp").breaker, BreakerState::Open);
        let probe_time = Instant::now() + COOLDOWN;
        let (_, probe) = gates.admit("idp", probe_time).expect("the probe");
        drop(probe);
        assert_eq!(gates.health("idp").breaker, BreakerState::HalfOpen);
        assert!(
            gates.admit("idp", probe_time).is_ok(),
            "the next call probes"
        );
    }
}
