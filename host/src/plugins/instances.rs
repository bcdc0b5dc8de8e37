//! IdP instances built by plugins, and [`PluginCaller`], which runs every call into
//! a plugin on the blocking pool with a time limit and within the host's call limits
//! (`limits`), lending it the host's capabilities for that call only. The limits'
//! arithmetic and the breaker live in `limits`; this module only applies them.

use std::{sync::Arc, time::Duration};

use abi_stable::{sabi_types::RRef, std_types::RStr, type_level::downcasting::TD_Opaque};
use gatehouse_plugin_api::{
    ErrorKind, HostFfi_TO, HostRef, IdpBox, OnlineReport, Placement, PluginError,
};
use gatehouse_store::Store;
use tokio::runtime::Handle;

use crate::clock::{Clock, Randomness};
use crate::metrics::Metrics;

use super::{
    capabilities::{CallCapabilities, HttpEgress},
    egress::EgressPolicy,
    limits::{Busy, CallGates, CallLimits, IdpHealth, Outcome},
    loader::{LoadedPlugin, PluginInfo},
};

/// One configured IdP, as its plugin built it.
pub struct IdpInstance {
    /// The IdP's id from `plugins.toml`.
    pub id: String,
    pub plugin: PluginInfo,
    pub object: IdpBox,
    /// What its outgoing requests may reach, from the URLs in its settings.
    pub egress_policy: EgressPolicy,
    /// `[[idp]] http_max_response_bytes`: the largest response its requests may read, when
    /// it is not the host's `[host] http_max_response_bytes`.
    pub max_response_bytes: Option<usize>,
}

impl std::fmt::Debug for IdpInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpInstance")
            .field("id", &self.id)
            .field("plugin", &self.plugin.id)
            .finish_non_exhaustive()
    }
}

impl IdpInstance {
    /// Asks `plugin` to build the instance `id` from its settings. This is where the
    /// plugin validates `[idp.settings]`. Constructors do no I/O, so it runs inline.
    ///
    /// A 1.2+ library is told where the instance is served (`placement`); an older one
    /// is built with the 1.0 constructor, which has no place for it.
    pub fn build(
        plugin: &LoadedPlugin,
        id: &str,
        settings: &serde_json::Value,
        placement: &Placement,
    ) -> Result<Self, PluginError> {
        let json = settings.to_string();
        let (id_arg, settings_arg) = (RStr::from(id), RStr::from(json.as_str()));
        let object = match plugin.module.new_idp_in_context() {
            Some(new_idp_in_context) => {
                let context = placement.to_ffi();
                new_idp_in_context(id_arg, settings_arg, RRef::new(&context)).into_result()?
            }
            None => (plugin.module.new_idp())(id_arg, settings_arg).into_result()?,
        };
        Ok(Self {
            id: id.to_owned(),
            plugin: plugin.info.clone(),
            object,
            egress_policy: EgressPolicy::from_settings(settings),
            max_response_bytes: None,
        })
    }

    /// The instance with its own response size cap (`[[idp]] http_max_response_bytes`).
    #[must_use]
    pub fn with_max_response_bytes(self, max: Option<u32>) -> Self {
        Self {
            max_response_bytes: max.map(|max| max as usize),
            ..self
        }
    }
}

/// Why a plugin call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("the plugin did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the plugin call could not run: {0}")]
    Aborted(String),
    /// Refused without running: the IdP is at its concurrency limit, the host at its
    /// thread budget, or the IdP's circuit breaker is open.
    #[error(transparent)]
    Busy(#[from] Busy),
}

impl CallError {
    /// What this result says about the IdP's health, for its breaker.
    fn outcome(result: &Result<(), &Self>) -> Outcome {
        match result {
            Ok(()) => Outcome::Answered,
            Err(Self::TimedOut(_)) => Outcome::Unavailable,
            Err(Self::Plugin(error)) if error.kind == ErrorKind::IDP_UNAVAILABLE => {
                Outcome::Unavailable
            }
            Err(Self::Plugin(_)) => Outcome::Answered,
            Err(Self::Aborted(_) | Self::Busy(_)) => Outcome::Inconclusive,
        }
    }
}

/// How long a plugin call may take before its caller stops waiting.
#[derive(Debug, Clone, Copy)]
pub struct CallTimeouts {
    /// Every call but scheduled tasks (`[host] plugin_call_timeout_seconds`).
    pub call: Duration,
    /// A scheduled task's run (`[host] task_timeout_seconds`).
    pub task: Duration,
}

/// Runs plugin calls with the host's capabilities, within the [`CallLimits`].
///
/// Every call runs on tokio's blocking pool (plugins are synchronous and may wait on
/// HTTP) and holds one of the host's `limits.total` plugin-call permits, plus one of its
/// IdP's `limits.per_idp`, for as long as its thread runs. A call that times out gets
/// its answer (`TimedOut`) at once, but its thread keeps its permits until the plugin
/// returns — a thread cannot be killed, and counting it as free would let a hanging IdP
/// pile up threads. That wait is bounded, because each of the plugin's HTTP requests is
/// bounded by the HTTP timeout. So at most `limits.total` plugin threads exist at any
/// time, far below the blocking pool's 512, and password hashing has its own threads
/// (`passwords`): no IdP can starve the host.
#[derive(Clone)]
pub struct PluginCaller {
    store: Store,
    egress: Arc<HttpEgress>,
    timeout: Duration,
    task_timeout: Duration,
    gates: CallGates,
    clock: Clock,
    random: Randomness,
    /// Where each call's latency is counted; the host state shares it.
    metrics: Metrics,
}

impl PluginCaller {
    pub fn new(
        store: Store,
        egress: Arc<HttpEgress>,
        timeouts: CallTimeouts,
        limits: CallLimits,
        clock: Clock,
        random: Randomness,
    ) -> Self {
        Self {
            store,
            egress,
            timeout: timeouts.call,
            task_timeout: timeouts.task,
            gates: CallGates::new(limits, clock.clone()),
            clock,
            random,
            metrics: Metrics::new(),
        }
    }

    /// The host's metrics (made here, so every call is counted; `AppState` shares them).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The clock lent to plugins.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The randomness lent to plugins.
    pub fn random(&self) -> &Randomness {
        &self.random
    }

    /// The host's outgoing HTTP, which the host's own back-channel calls (the Connect
    /// server's calls to its clients) share with plugins: the same limits and egress rules.
    pub fn egress(&self) -> &Arc<HttpEgress> {
        &self.egress
    }

    /// The breaker state and running calls of IdP `idp`.
    pub fn health(&self, idp: &str) -> IdpHealth {
        self.gates.health(idp)
    }

    /// Calls `body` with `instance` and a [`HostRef`] valid for this call only, with a
    /// time limit; refuses at once ([`CallError::Busy`]) when the IdP or the host is at
    /// its limit or the IdP's breaker is open.
    pub async fn call<T, F>(&self, instance: Arc<IdpInstance>, body: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(HostRef<'_>, &IdpBox) -> Result<T, PluginError> + Send + 'static,
    {
        self.call_within(self.timeout, instance, body).await
    }

    /// Asks `instance`'s plugin to reach its provider (plugin API 1.3's `check_online`, for
    /// `gatehouse check --online`) as a [`PluginCaller::call`]: the call time limit, the
    /// permits and the breaker apply. A plugin older than 1.3 answers `unsupported` (its
    /// vtable's default body), which the caller reports as "no online check".
    pub async fn check_online(
        &self,
        instance: Arc<IdpInstance>,
    ) -> Result<OnlineReport, CallError> {
        self.call(instance, |host, idp| idp.check_online(host).into_result())
            .await
    }

    /// [`PluginCaller::call`] of a scheduled task, with the task's time limit (`[host]
    /// task_timeout_seconds`: a Connect sync of a large directory takes longer than any
    /// sign-in call); the permits and the breaker are the same.
    pub async fn call_task<T, F>(&self, instance: Arc<IdpInstance>, body: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(HostRef<'_>, &IdpBox) -> Result<T, PluginError> + Send + 'static,
    {
        self.call_within(self.task_timeout, instance, body).await
    }

    async fn call_within<T, F>(
        &self,
        timeout: Duration,
        instance: Arc<IdpInstance>,
        body: F,
    ) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(HostRef<'_>, &IdpBox) -> Result<T, PluginError> + Send + 'static,
    {
        let started = self.clock.instant();
        let (capacity, verdict) = self.gates.admit(&instance.id, started)?;
        let idp = instance.id.clone();
        let runtime = Handle::current();
        let store = self.store.clone();
        let egress = Arc::clone(&self.egress);
        let clock = self.clock.clone();
        let random = self.random.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Released when the plugin really returns, not when the caller stops waiting.
            let _capacity = capacity;
            let capabilities = CallCapabilities {
                runtime: &runtime,
                store: &store,
                egress: &egress,
                clock: &clock,
                random: &random,
                policy: &instance.egress_policy,
                max_response_bytes: instance.max_response_bytes,
                scope: &instance.id,
                plugin_id: &instance.plugin.id,
            };
            let host = HostFfi_TO::from_ptr(&capabilities, TD_Opaque);
            body(host, &instance.object)
        });
        let result = match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result.map_err(CallError::Plugin),
            Ok(Err(join_error)) => Err(CallError::Aborted(join_error.to_string())),
            Err(_) => Err(CallError::TimedOut(timeout)),
        };
        // Only calls that ran are timed: a refusal at the gates took no plugin time.
        self.metrics.plugin_call(
            &idp,
            self.clock.instant().saturating_duration_since(started),
        );
        verdict.record(CallError::outcome(&result.as_ref().map(|_| ())));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, sync::mpsc};

    use abi_stable::std_types::{ROption, RResult, RString};
    use gatehouse_plugin_api::{
        API_VERSION, BeginRequest, Begun, CallbackRequest, Capabilities, Document, Identity,
        IdpFfi, IdpFfi_TO, LoginStep, LogoutRequest,
    };

    use super::*;
    use crate::plugins::limits::{BreakerState, BusyReason};

    /// An instance whose plugin is never asked anything: the tests' bodies stand in for
    /// the plugin, so they can hang exactly as long as the test wants.
    struct Inert;

    impl IdpFfi for Inert {
        fn begin_login(&self, _: HostRef<'_>, _: BeginRequest) -> RResult<Begun, PluginError> {
            RResult::RErr(PluginError::unsupported("begin_login"))
        }
        fn complete_login(
            &self,
            _: HostRef<'_>,
            _: CallbackRequest,
        ) -> RResult<Identity, PluginError> {
            RResult::RErr(PluginError::unsupported("complete_login"))
        }
        fn logout(
            &self,
            _: HostRef<'_>,
            _: LogoutRequest,
        ) -> RResult<ROption<LoginStep>, PluginError> {
            RResult::RErr(PluginError::unsupported("logout"))
        }
        fn metadata(&self, _: HostRef<'_>) -> RResult<Document, PluginError> {
            RResult::RErr(PluginError::unsupported("metadata"))
        }
        fn run_task(&self, _: HostRef<'_>, _: RStr<'_>) -> RResult<RString, PluginError> {
            RResult::RErr(PluginError::unsupported("run_task"))
        }
    }

    fn instance(id: &str) -> Arc<IdpInstance> {
        Arc::new(IdpInstance {
            id: id.to_owned(),
            plugin: PluginInfo {
                id: "inert".into(),
                protocol: "test".into(),
                display_name: "Inert".into(),
                version: "0".into(),
                api_version: API_VERSION,
                capabilities: Capabilities::LOGIN,
                attributes: Vec::new(),
                tasks: Vec::new(),
                state_parameter: "state".into(),
                routes: Vec::new(),
                path: PathBuf::new(),
            },
            object: IdpFfi_TO::from_value(Inert, TD_Opaque),
            egress_policy: EgressPolicy::default(),
            max_response_bytes: None,
        })
    }

    async fn caller(timeout: Duration, limits: CallLimits) -> PluginCaller {
        caller_with(
            CallTimeouts {
                call: timeout,
                task: timeout,
            },
            limits,
        )
        .await
    }

    async fn caller_with(timeouts: CallTimeouts, limits: CallLimits) -> PluginCaller {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let egress = HttpEgress::new(Duration::from_secs(5), 1024).expect("egress");
        PluginCaller::new(
            store,
            Arc::new(egress),
            timeouts,
            limits,
            Clock::system(),
            Randomness::system(),
        )
    }

    /// Starts a call whose plugin blocks until the returned sender is used or dropped.
    fn hanging_call(
        caller: &PluginCaller,
        idp: &Arc<IdpInstance>,
    ) -> (
        mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), CallError>>,
    ) {
        let (release, released) = mpsc::channel::<()>();
        let caller = caller.clone();
        let idp = Arc::clone(idp);
        let call = tokio::spawn(async move {
            caller
                .call(idp, move |_, _| {
                    let _ = released.recv();
                    Ok(())
                })
                .await
        });
        (release, call)
    }

    /// Waits (without a deadline of its own: the test harness has one) until `idp`
    /// has `running` plugin threads.
    async fn until_running(caller: &PluginCaller, idp: &str, running: usize) {
        while caller.health(idp).running != running {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idp_without_check_online_answers_unsupported_through_the_default_body() {
        // `Inert` implements only the 1.0 methods, like a library built before 1.3.
        let caller = caller(Duration::from_secs(5), CallLimits::default()).await;
        match caller.check_online(instance("hq")).await {
            Err(CallError::Plugin(error)) => assert_eq!(error.kind, ErrorKind::UNSUPPORTED),
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scheduled_task_has_its_own_time_limit_and_is_stopped_at_it() {
        let caller = caller_with(
            CallTimeouts {
                call: Duration::from_millis(50),
                task: Duration::from_millis(400),
            },
            CallLimits::default(),
        )
        .await;
        let sleeping = |millis| {
            move |_: HostRef<'_>, _: &IdpBox| {
                std::thread::sleep(Duration::from_millis(millis));
                Ok(())
            }
        };
        // Longer than a call may take, within a task's limit.
        assert!(matches!(
            caller.call(instance("hq"), sleeping(150)).await,
            Err(CallError::TimedOut(limit)) if limit == Duration::from_millis(50)
        ));
        caller
            .call_task(instance("hq"), sleeping(150))
            .await
            .expect("a task may take longer than a call");
        // A task past its own limit is stopped waiting for.
        assert!(matches!(
            caller.call_task(instance("hq"), sleeping(1_500)).await,
            Err(CallError::TimedOut(limit)) if limit == Duration::from_millis(400)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_call_beyond_the_per_idp_limit_is_refused_at_once_not_queued() {
        let limits = CallLimits {
            per_idp: 3,
            ..CallLimits::default()
        };
        let caller = caller(Duration::from_secs(600), limits).await;
        let slow = instance("slow");
        let hanging: Vec<_> = (0..3).map(|_| hanging_call(&caller, &slow)).collect();
        until_running(&caller, "slow", 3).await;

        // The three are still blocked, so this answer cannot have waited for them.
        let refused = caller.call(Arc::clone(&slow), |_, _| Ok(())).await;
        match refused {
            Err(CallError::Busy(busy)) => {
                assert_eq!(busy.idp, "slow");
                assert_eq!(busy.reason, BusyReason::IdpConcurrency { limit: 3 });
            }
            other => panic!("expected a busy refusal, got {other:?}"),
        }
        // Another IdP still gets through.
        caller
            .call(instance("other"), |_, _| Ok(()))
            .await
            .expect("another IdP is not affected");

        for (release, call) in hanging {
            release.send(()).expect("the plugin is waiting");
            call.await.expect("task").expect("the call answers");
        }
        caller
            .call(slow, |_, _| Ok(()))
            .await
            .expect("admitted again once the calls end");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_call_holds_its_capacity_until_its_thread_ends_then_frees_it() {
        let limits = CallLimits {
            per_idp: 1,
            ..CallLimits::default()
        };
        let caller = caller(Duration::from_millis(50), limits).await;
        let slow = instance("slow");
        let (release, call) = hanging_call(&caller, &slow);
        let answer = call.await.expect("task");
        assert!(
            matches!(answer, Err(CallError::TimedOut(_))),
            "the caller gets its answer while the plugin still runs: {answer:?}"
        );
        assert_eq!(
            caller.health("slow").running,
            1,
            "the thread is still counted"
        );
        assert!(matches!(
            caller.call(Arc::clone(&slow), |_, _| Ok(())).await,
            Err(CallError::Busy(_))
        ));

        // The hang ends (as a plugin's HTTP request does at the HTTP timeout).
        release.send(()).expect("the plugin is waiting");
        until_running(&caller, "slow", 0).await;
        caller
            .call(slow, |_, _| Ok(()))
            .await
            .expect("the freed capacity admits a new call");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_timeouts_open_the_breaker_and_calls_are_refused_at_once() {
        let limits = CallLimits {
            per_idp: 8,
            breaker_failures: 2,
            ..CallLimits::default()
        };
        let caller = caller(Duration::from_millis(20), limits).await;
        let slow = instance("slow");
        let mut releases = Vec::new();
        for _ in 0..2 {
            let (release, call) = hanging_call(&caller, &slow);
            releases.push(release);
            assert!(matches!(
                call.await.expect("task"),
                Err(CallError::TimedOut(_))
            ));
        }
        assert_eq!(caller.health("slow").breaker, BreakerState::Open);
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ran_inside = Arc::clone(&ran);
        let refused = caller
            .call(slow, move |_, _| {
                ran_inside.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        match refused {
            Err(CallError::Busy(busy)) => {
                assert!(matches!(busy.reason, BusyReason::BreakerOpen { .. }));
                assert!(busy.retry_after > Duration::ZERO);
            }
            other => panic!("expected the open breaker to refuse, got {other:?}"),
        }
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "the plugin was not called"
        );
        drop(releases);
    }
}
