//! Scheduled tasks: the host's own (`cleanup`: expired rows and old history) and the named
//! tasks plugins declare in their manifests (run per IdP instance through `PluginCaller`),
//! each run on its schedule by exactly one of the hosts sharing a database (a lease row
//! taken in one statement), and recorded with its outcome, duration and summary.
//!
//! It is not a job queue (nothing is enqueued; a task is due or not, from its last recorded
//! start). A plugin task's output is recorded (its `summary`) and its host actions are
//! carried out by [`apply_task_output`] through `actions`, like an inbound reply's.

pub mod output;
mod runner;
pub mod schedule;

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use gatehouse_config::{Config, TaskSchedule};
use gatehouse_store::StoreError;

use gatehouse_plugin_api::{HostAction, SessionSelector};

use crate::{
    actions::{self, ActionSource},
    connect,
    connect_sync::{self, hierarchy},
    plugins::IdpInstance,
    site::Site,
    state::AppState,
};

pub use output::TaskOutput;
pub use runner::{Progress, RunReport, Scheduler, TaskStatus, quiet, statuses};
pub use schedule::{DEFAULT_EVERY_MINUTES, Schedule};

/// The host's expiry cleanup: sessions, pending sign-ins, key-value rows and throttle
/// counters past their time, audit rows and task runs past the retention.
pub const CLEANUP: &str = "cleanup";

/// The longest summary recorded for a run; a plugin's output beyond it is cut (with `…`),
/// so no plugin can grow the runs table without bound.
pub const MAX_SUMMARY_CHARS: usize = 500;

/// The shortest lease: long enough for the database statements of a sweep.
const MIN_LEASE: Duration = Duration::from_secs(60);

/// What the scheduler takes from `plugins.toml` (`[host]`); the per-IdP schedules it reads
/// from the current [`Site`] at each pass, so a reload changes them.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// `[host] scheduler`: whether `serve` runs the loop on this host.
    pub scheduler: bool,
    /// `[host] audit_retention_days`: how long audit rows and task runs are kept.
    pub audit_retention: Duration,
    /// `[host.tasks]`.
    pub host_tasks: BTreeMap<String, TaskSchedule>,
    /// How long a lease lasts from when it is taken or renewed. Longer than a plugin call
    /// may take (twice `plugin_call_timeout_seconds`, at least [`MIN_LEASE`]), so a run that
    /// ends in time never outlives its lease even if a renewal is late.
    pub lease: Duration,
    /// How often a running task's lease is renewed (a third of the lease), so that a run
    /// longer than the lease keeps it and no other host starts the task meanwhile.
    pub renew_every: Duration,
    /// How often the loop looks for due tasks.
    pub tick: Duration,
}

impl TaskSettings {
    pub fn from_config(config: &Config) -> Self {
        let host = &config.host;
        let call_timeout = Duration::from_secs(u64::from(host.plugin_call_timeout_seconds));
        let lease = (call_timeout * 2).max(MIN_LEASE);
        Self {
            scheduler: host.scheduler,
            audit_retention: Duration::from_secs(u64::from(host.audit_retention_days) * 86_400),
            host_tasks: host.tasks.clone(),
            lease,
            renew_every: lease / 3,
            tick: Duration::from_secs(30),
        }
    }
}

/// Which task: its name and, for a plugin task, the IdP instance it runs for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    pub name: String,
    pub idp: Option<String>,
}

impl TaskId {
    pub fn host(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            idp: None,
        }
    }

    pub fn plugin(name: &str, idp: &str) -> Self {
        Self {
            name: name.to_owned(),
            idp: Some(idp.to_owned()),
        }
    }

    /// The lease scope: the IdP's id, or `""` for a host task (no IdP id is empty).
    pub fn scope(&self) -> &str {
        self.idp.as_deref().unwrap_or("")
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.idp {
            Some(idp) => write!(f, "`{}` of IdP `{idp}`", self.name),
            None => write!(f, "`{}`", self.name),
        }
    }
}

/// What running a task does.
#[derive(Clone)]
pub enum TaskKind {
    /// The host's expiry cleanup.
    Cleanup,
    /// A task of the plugin behind this IdP instance.
    Plugin(Arc<IdpInstance>),
    /// Other tasks of the same IdP, one after another, each under its own lease and
    /// recorded as its own run; the first that fails ends the chain (Connect's manual full
    /// `sync`). A step the plugin does not offer is passed over, and said so.
    Chain(&'static [&'static str]),
}

impl fmt::Debug for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cleanup => f.write_str("Cleanup"),
            Self::Plugin(instance) => f.debug_tuple("Plugin").field(&instance.id).finish(),
            Self::Chain(steps) => f.debug_tuple("Chain").field(steps).finish(),
        }
    }
}

/// A task the host knows, with its effective schedule.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub schedule: Schedule,
    pub kind: TaskKind,
}

/// Every task: the host's, then each IdP's plugin tasks in configuration order.
pub fn catalogue(site: &Site, settings: &TaskSettings) -> Vec<Task> {
    let mut tasks = vec![Task {
        id: TaskId::host(CLEANUP),
        schedule: Schedule::from_config(settings.host_tasks.get(CLEANUP), DEFAULT_EVERY_MINUTES),
        kind: TaskKind::Cleanup,
    }];
    for idp in site.all_idps() {
        for name in &idp.instance.plugin.tasks {
            let configured = idp.config.tasks.get(name);
            let schedule = match connect::default_schedule(&idp.instance.plugin.protocol, name) {
                Some(connect::DefaultSchedule::Every(minutes)) => {
                    Schedule::from_config(configured, minutes)
                }
                Some(connect::DefaultSchedule::OnDemand) => {
                    Schedule::on_demand_unless(configured, DEFAULT_EVERY_MINUTES)
                }
                None => Schedule::from_config(configured, DEFAULT_EVERY_MINUTES),
            };
            tasks.push(Task {
                id: TaskId::plugin(name, idp.id()),
                schedule,
                kind: TaskKind::Plugin(Arc::clone(&idp.instance)),
            });
        }
        if let Some((name, steps)) = connect::chained_task(&idp.instance.plugin.protocol)
            && !idp.instance.plugin.tasks.iter().any(|task| task == name)
        {
            tasks.push(Task {
                id: TaskId::plugin(name, idp.id()),
                schedule: Schedule::on_demand_unless(
                    idp.config.tasks.get(name),
                    DEFAULT_EVERY_MINUTES,
                ),
                kind: TaskKind::Chain(steps),
            });
        }
    }
    tasks
}

/// Why a task could not be run at all (a run that failed is a [`RunReport`] instead).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("there is no task `{name}`{}; the tasks are: {}", for_idp(.idp), .known.join(", "))]
    Unknown {
        name: String,
        idp: Option<String>,
        /// Each known task, as `name` or `name --idp ID`.
        known: Vec<String>,
    },
    #[error(
        "task {task} is being run by {holder} (its lease lasts until {until}, Unix time); try again after it finishes"
    )]
    Leased {
        task: TaskId,
        holder: String,
        until: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn for_idp(idp: &Option<String>) -> String {
    idp.as_ref()
        .map(|idp| format!(" for IdP `{idp}`"))
        .unwrap_or_default()
}

/// The line recorded for a plugin task's output: its `summary` string if it has one, else
/// the JSON itself, compact; at most [`MAX_SUMMARY_CHARS`].
pub fn summary_of(output: &serde_json::Value) -> String {
    let text = match output.get("summary").and_then(serde_json::Value::as_str) {
        Some(summary) => summary.to_owned(),
        None => output.to_string(),
    };
    truncate(&text, MAX_SUMMARY_CHARS)
}

/// `text` cut to `max` characters (the last one an ellipsis when cut).
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Applies what a plugin task returned: a Connect users sync in its `directory`
/// (`connect_sync`: planned against the directory as it is and written in one transaction),
/// then the host actions in its `actions` array, the same ones an inbound reply carries,
/// confined to the task's IdP and audited by `actions`. The whole output is read before
/// anything is applied, so an output the host cannot read fails the run and writes nothing.
/// Returns the line to record instead of the plugin's own summary, if any (a sync's
/// counts).
///
/// ```text
/// {"summary": "…", "actions": [{"kind": "end_sessions", "subject": "…"}],
///  "directory": {"connect_users": {…}}}
/// ```
pub async fn apply_task_output(
    state: &AppState,
    task: &TaskId,
    output: &serde_json::Value,
    progress: Progress<'_>,
) -> Result<Option<String>, String> {
    let split = TaskOutput {
        tree: output.clone(),
        connect_users: None,
    };
    apply_split_task_output(state, task, &split, progress).await
}

/// [`apply_task_output`] of output as the plugin wrote it (see [`output`]): a Connect
/// server's user list is read typed from its text, never built as a tree.
pub async fn apply_split_task_output(
    state: &AppState,
    task: &TaskId,
    split: &TaskOutput<'_>,
    progress: Progress<'_>,
) -> Result<Option<String>, String> {
    let output = &split.tree;
    let actions = actions_in(output)?;
    let users = match split.connect_users {
        Some(text) => connect_sync::section_in(output)
            .and_then(|_| connect_sync::read_section_text(text).map(Some)),
        None => connect_sync::section_in(output)
            .and_then(|section| section.map(connect_sync::read_section).transpose()),
    }
    .map_err(|error| error.to_string())?;
    let collections = connect_sync::collections_section_in(output)
        .and_then(|section| {
            section
                .map(connect_sync::read_collections_section)
                .transpose()
        })
        .map_err(|error| error.to_string())?;
    let hierarchy = connect_sync::named_section_in(output, hierarchy::CONNECT_HIERARCHY)
        .and_then(|section| section.map(hierarchy::read_section).transpose())
        .map_err(|error| error.to_string())?;
    if actions.is_empty() && users.is_none() && collections.is_none() && hierarchy.is_none() {
        return Ok(None);
    }
    let Some(idp) = task.idp.as_deref() else {
        return Err("a host task cannot return actions or directory changes".into());
    };
    let mut recorded = match &users {
        Some(section) => {
            let report = connect_sync::apply_users(state, idp, section, progress)
                .await
                .map_err(|error| error.to_string())?;
            let jobs = report
                .jobs
                .map(|jobs| format!("; {jobs}"))
                .unwrap_or_default();
            Some(format!("{}{jobs} ({})", report.counts, summary_of(output)))
        }
        None => None,
    };
    if let Some(section) = &collections {
        let report = connect_sync::apply_collections(state, idp, section, progress)
            .await
            .map_err(|error| error.to_string())?;
        recorded = Some(format!("{report} ({})", summary_of(output)));
    }
    if let Some(section) = &hierarchy {
        let report = hierarchy::apply(state, idp, section, progress)
            .await
            .map_err(|error| error.to_string())?;
        recorded = Some(format!("{report} ({})", summary_of(output)));
    }
    if !actions.is_empty() {
        let origin = format!("task `{}`", task.name);
        let source = ActionSource {
            idp_id: idp,
            domain: "",
            ip: "",
            origin: &origin,
        };
        actions::apply(state, source, &actions)
            .await
            .map_err(|error| format!("applying the task's actions failed: {error}"))?;
    }
    Ok(recorded.map(|line| truncate(&line, MAX_SUMMARY_CHARS)))
}

/// The host actions of a task's output (none when it has no `actions`).
fn actions_in(output: &serde_json::Value) -> Result<Vec<HostAction>, String> {
    let Some(list) = output.get("actions") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or("`actions` in the task's output is not an array")?;
    list.iter()
        .enumerate()
        .map(|(index, action)| {
            let kind = action.get("kind").and_then(|k| k.as_str());
            match kind {
                Some("end_sessions") => {
                    let subject = action.get("subject").and_then(|s| s.as_str()).unwrap_or("");
                    if subject.is_empty() {
                        return Err(format!("action {index}: end_sessions needs a subject"));
                    }
                    Ok(HostAction::end_sessions(SessionSelector::subject(subject)))
                }
                other => Err(format!("action {index}: unknown kind {other:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn task_output_actions_are_read_strictly() {
        assert_eq!(actions_in(&json!({"summary": "x"})), Ok(Vec::new()));
        assert_eq!(
            actions_in(&json!({"actions": [{"kind": "end_sessions", "subject": "ada"}]})),
            Ok(vec![HostAction::end_sessions(SessionSelector::subject(
                "ada"
            ))])
        );
        for bad in [
            json!({"actions": {"kind": "end_sessions"}}),
            json!({"actions": [{"kind": "end_sessions"}]}),
            json!({"actions": [{"kind": "end_sessions", "subject": ""}]}),
            json!({"actions": [{"kind": "drop_tables"}]}),
        ] {
            assert!(actions_in(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_summary_is_the_outputs_summary_or_the_compact_json() {
        assert_eq!(
            summary_of(&json!({"summary": "12 users", "n": 12})),
            "12 users"
        );
        assert_eq!(
            summary_of(&json!({"n": 12, "ok": true})),
            r#"{"n":12,"ok":true}"#
        );
        assert_eq!(summary_of(&json!({"summary": 5})), r#"{"summary":5}"#);
        assert_eq!(summary_of(&json!(null)), "null");
    }

    #[test]
    fn a_summary_longer_than_the_limit_is_cut_at_a_character() {
        let long = "é".repeat(MAX_SUMMARY_CHARS + 10);
        let cut = summary_of(&json!({ "summary": long }));
        assert_eq!(cut.chars().count(), MAX_SUMMARY_CHARS);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_SUMMARY_CHARS);
        assert_eq!(summary_of(&json!({ "summary": exact.clone() })), exact);
    }

    #[test]
    fn the_lease_outlasts_a_plugin_call_and_is_renewed_well_before_it_ends() {
        let mut config = gatehouse_config::parse_embedded_default()
            .expect("default parses")
            .config
            .expect("default is valid");
        let settings = TaskSettings::from_config(&config);
        assert_eq!(settings.lease, MIN_LEASE, "15 s calls: the minimum lease");
        config.host.plugin_call_timeout_seconds = 300;
        let settings = TaskSettings::from_config(&config);
        assert_eq!(settings.lease, Duration::from_secs(600));
        assert_eq!(settings.renew_every, Duration::from_secs(200));
        assert_eq!(settings.audit_retention, Duration::from_secs(90 * 86_400));
        assert!(settings.scheduler);
    }

    #[test]
    fn unknown_task_errors_list_the_known_tasks() {
        let error = TaskError::Unknown {
            name: "users".into(),
            idp: Some("okta".into()),
            known: vec!["cleanup".into(), "heartbeat --idp example".into()],
        };
        assert_eq!(
            error.to_string(),
            "there is no task `users` for IdP `okta`; the tasks are: cleanup, heartbeat --idp example"
        );
    }
}
