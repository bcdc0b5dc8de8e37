//! The host's metrics: one prometheus-client registry per [`Metrics`] (made with the plugin
//! caller, shared by its `AppState`), rendered in the Prometheus text format (0.0.4) by
//! `GET /metrics`. No global recorder, no listener and no thread of its own: a process that
//! builds several states (the tests) keeps their counts apart.
//!
//! Only the host's event functions (`events`), the request middleware (`web::trace`) and the
//! plugin caller write here; this module is not where events are decided. Every label value
//! comes from the configuration or from the host's own lists (IdP ids, route patterns,
//! reason codes, task names), so the number of series is bounded; none is a value a client
//! sent.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::PoolStatus;
use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the latency buckets: a warm sign-in call takes milliseconds, a
/// provider's round trip tens to hundreds, and the call limit is 15 s by default.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    method: &'static str,
    idp: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    method: &'static str,
    idp: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    idp: String,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdpLabels {
    idp: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
    idp: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// The host's metrics. Cheap to clone; clones count into one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    sign_ins: Family<SignInLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    accounts: Family<AccountLabels, Counter>,
    plugin_calls: Histograms<IdpLabels>,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Histograms<RouteLabels>,
    task_runs: Family<TaskLabels, Counter>,
    reloads: Family<OutcomeLabels, Counter>,
    pool: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric declared (and none counted).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let sign_ins = Family::default();
        registry.register(
            "sign_ins",
            "Sign-ins by method (sso, password), IdP and outcome (success, refused, failure)",
            sign_ins.clone(),
        );
        let refusals = Family::default();
        registry.register(
            "sign_in_refusals",
            "Sign-ins that were refused or failed, by method, IdP and reason code",
            refusals.clone(),
        );
        let accounts = Family::default();
        registry.register(
            "account_changes",
            "Accounts created or updated by a sign-in, by IdP",
            accounts.clone(),
        );
        let plugin_calls: Histograms<IdpLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Time of each plugin call that ran (timeouts included), by IdP",
            plugin_calls.clone(),
        );
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, matched route pattern and status",
            http_requests.clone(),
        );
        let http_latency: Histograms<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by matched route pattern",
            http_latency.clone(),
        );
        let task_runs = Family::default();
        registry.register(
            "task_runs",
            "Scheduled task runs by task, IdP (empty for the host's own) and outcome",
            task_runs.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by outcome (applied, refused)",
            reloads.clone(),
        );
        let pool = Family::default();
        registry.register(
            "db_pool_connections",
            "Database connections by state (open, idle), read at scrape time",
            pool.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "The most connections the database pool opens",
            pool_max.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                sign_ins,
                refusals,
                accounts,
                plugin_calls,
                http_requests,
                http_latency,
                task_runs,
                reloads,
                pool,
                pool_max,
            }),
        }
    }

    /// One sign-in's end. `outcome` is `success`, `refused` or `failure`; a refusal or
    /// failure is also counted under its `reason`.
    pub(crate) fn sign_in(
        &self,
        method: &'static str,
        idp: &str,
        outcome: &'static str,
        reason: Option<&'static str>,
    ) {
        self.inner
            .sign_ins
            .get_or_create(&SignInLabels {
                method,
                idp: idp.to_owned(),
                outcome,
            })
            .inc();
        if let Some(reason) = reason {
            self.inner
                .refusals
                .get_or_create(&RefusalLabels {
                    method,
                    idp: idp.to_owned(),
                    reason,
                })
                .inc();
        }
    }

    /// An account created or updated (`change`) by a sign-in through `idp`.
    pub(crate) fn account(&self, idp: &str, change: &'static str) {
        self.inner
            .accounts
            .get_or_create(&AccountLabels {
                idp: idp.to_owned(),
                change,
            })
            .inc();
    }

    /// One plugin call of `idp` that ran, and how long it took.
    pub fn plugin_call(&self, idp: &str, took: Duration) {
        self.inner
            .plugin_calls
            .get_or_create(&IdpLabels {
                idp: idp.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// One answered HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.inner
            .http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.inner
            .http_latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// One recorded run of a scheduled task.
    pub(crate) fn task_run(&self, task: &str, idp: &str, outcome: &'static str) {
        self.inner
            .task_runs
            .get_or_create(&TaskLabels {
                task: task.to_owned(),
                idp: idp.to_owned(),
                outcome,
            })
            .inc();
    }

    /// One configuration reload, `applied` or `refused`.
    pub(crate) fn reload(&self, outcome: &'static str) {
        self.inner
            .reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Every metric in the Prometheus text format, with the database pool's use as it is now.
    pub fn render(&self, pool: PoolStatus) -> String {
        for (state, value) in [("open", pool.open), ("idle", pool.idle)] {
            self.inner
                .pool
                .get_or_create(&PoolLabels { state })
                .set(i64::from(value));
        }
        self.inner.pool_max.set(i64::from(pool.max));
        let mut out = String::new();
        // Writing into a String cannot fail; the encoder's only errors are the writer's.
        let _ = prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: PoolStatus = PoolStatus {
        open: 3,
        idle: 2,
        max: 10,
    };

    #[test]
    fn counts_render_as_prometheus_text_and_registries_are_apart() {
        let metrics = Metrics::new();
        let other = Metrics::new();
        metrics.sign_in("sso", "okta", "success", None);
        metrics.sign_in("sso", "okta", "refused", Some("not_linked"));
        metrics.plugin_call("okta", Duration::from_millis(30));
        metrics.http_request("GET", "/sso/{idp}/callback", 303, Duration::from_millis(40));
        let text = metrics.render(POOL);
        assert!(
            text.contains(
                "gatehouse_sign_ins_total{method=\"sso\",idp=\"okta\",outcome=\"success\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_sign_in_refusals_total{method=\"sso\",idp=\"okta\",reason=\"not_linked\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "gatehouse_plugin_call_duration_seconds_bucket{le=\"0.05\",idp=\"okta\"} 1"
            ) || text.contains(
                "gatehouse_plugin_call_duration_seconds_bucket{idp=\"okta\",le=\"0.05\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_http_requests_total{method=\"GET\",route=\"/sso/{idp}/callback\",status=\"303\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_db_pool_connections{state=\"idle\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_db_pool_max_connections 10"),
            "{text}"
        );
        let empty = other.render(POOL);
        assert!(!empty.contains("okta"), "{empty}");
    }
}
