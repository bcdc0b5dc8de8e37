//! The runner: takes a task's lease, runs the task, records the run and gives the lease
//! back; and the loop `serve` spawns, which does that for each due task. Not the schedule's
//! arithmetic (`schedule`) and not the store's statements.

use std::{future::Future, sync::Arc};

use abi_stable::std_types::RStr;
use gatehouse_store::{CleanupCounts, NewTaskRun, Store, StoreError, TaskOutcome, TaskRun};

use super::{
    MAX_SUMMARY_CHARS, Schedule, Task, TaskError, TaskId, TaskKind, TaskOutput, TaskSettings,
    apply_split_task_output, catalogue, summary_of, truncate,
};
use crate::{events, plugins::CallError, state::AppState};

/// Where a run tells how it is getting on (`gatehouse tasks run` prints it on a terminal).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// What running a task came to: its outcome, summary and error.
type Performed = (TaskOutcome, String, Option<String>);

/// A [`Progress`] that says nothing (the loop logs results instead).
pub fn quiet(_: &str) {}

/// One finished run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: i64,
    pub task: TaskId,
    pub run: NewTaskRun,
}

/// A task, its schedule and its last run, for `gatehouse tasks list`.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    pub id: TaskId,
    pub schedule: Schedule,
    pub last: Option<TaskRun>,
    /// When the next scheduled run is due (Unix seconds; `now` when it never ran), or
    /// `None` when the task is disabled.
    pub next_due: Option<i64>,
}

impl TaskStatus {
    /// The task, its schedule and last run as JSON: what `gatehouse tasks list --format json`
    /// and `GET /admin/status` print for each task.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "task": self.id.name,
            "idp": self.id.idp,
            "every_minutes": self.schedule.every.as_secs() / 60,
            "enabled": self.schedule.enabled,
            "next_due_at": self.next_due,
            "last_run": self.last.as_ref().map(|r| serde_json::json!({
                "outcome": r.run.outcome.as_str(),
                "host": r.run.holder,
                "started_at": r.run.started_at,
                "finished_at": r.run.finished_at,
                "duration_ms": r.run.duration_ms,
                "summary": r.run.summary,
                "error": r.run.error,
            })),
        })
    }
}

/// The tasks with their last runs; `store` is `None` when there is no database yet (no
/// task has run).
pub async fn statuses(
    store: Option<&Store>,
    tasks: &[Task],
    now: i64,
) -> Result<Vec<TaskStatus>, StoreError> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        let last = match store {
            Some(store) => {
                store
                    .last_task_run(&task.id.name, task.id.idp.as_deref())
                    .await?
            }
            None => None,
        };
        let next_due = task.schedule.enabled.then(|| {
            task.schedule
                .next_due(last.as_ref().map(|r| r.run.started_at))
                .unwrap_or(now)
        });
        out.push(TaskStatus {
            id: task.id.clone(),
            schedule: task.schedule,
            last,
            next_due,
        });
    }
    Ok(out)
}

/// Runs tasks for one host: every lease it takes carries its `holder` id.
#[derive(Clone)]
pub struct Scheduler {
    state: AppState,
    settings: Arc<TaskSettings>,
    holder: Arc<str>,
}

/// Stops the lease renewal when the run ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Scheduler {
    /// A scheduler on `state` whose holder id is `{role}-` and 48 random bits (from the
    /// host's randomness), so that each process is told apart in leases and runs.
    pub fn new(state: AppState, settings: TaskSettings, role: &str) -> Self {
        let suffix: String = state
            .random()
            .bytes(6)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            holder: format!("{role}-{suffix}").into(),
            state,
            settings: Arc::new(settings),
        }
    }

    /// This host's id in leases and task runs.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn settings(&self) -> &TaskSettings {
        &self.settings
    }

    /// Every task of the current site (a reload adds or removes plugin tasks).
    pub fn tasks(&self) -> Vec<Task> {
        catalogue(&self.state.site(), &self.settings)
    }

    /// Every task with its last run.
    pub async fn statuses(&self) -> Result<Vec<TaskStatus>, StoreError> {
        statuses(Some(self.state.store()), &self.tasks(), self.state.now()).await
    }

    /// The loop `serve` spawns: every `tick`, each due task runs (on whichever host takes
    /// its lease first). It never ends and never panics; failures are logged and the next
    /// tick tries again.
    pub async fn run_forever(self) {
        tracing::info!(holder = %self.holder, "the task scheduler is running");
        loop {
            self.run_due().await;
            tokio::time::sleep(self.settings.tick).await;
        }
    }

    /// One pass: runs each enabled task that is due, one after another. Tasks another host
    /// holds or has just run are left alone. Returns the runs this host made.
    pub async fn run_due(&self) -> Vec<RunReport> {
        let mut reports = Vec::new();
        for task in self.tasks() {
            if !task.schedule.enabled {
                continue;
            }
            // A cheap look first, so that a task that is not due costs no lease write.
            match self.is_due(&task).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(task = %task.id, %error, "cannot read the task's last run; skipping it this time");
                    continue;
                }
            }
            let outcome = self
                .with_lease(&task.id, async {
                    // Asked again under the lease: another host may have run it between the
                    // look above and the lease (it records before it releases).
                    if !self.is_due(&task).await? {
                        return Ok(None);
                    }
                    self.run_and_record(&task, &quiet).await.map(Some)
                })
                .await;
            match outcome {
                // Its log event was written with its record (`run_and_record`).
                Ok(Some(report)) => reports.push(report),
                Ok(None) => {
                    tracing::debug!(task = %task.id, "already run by another host");
                }
                Err(TaskError::Leased { holder, .. }) => {
                    tracing::debug!(task = %task.id, %holder, "being run by another host");
                }
                Err(error) => {
                    tracing::warn!(task = %task.id, %error, "the task could not be run; the next pass tries again");
                }
            }
        }
        reports
    }

    /// Runs the task `name` (of IdP `idp`, for a plugin task) now, due or not, under its
    /// lease like a scheduled run. Without `idp`, a plugin task that only one IdP has is
    /// found by its name alone.
    pub async fn run_now(
        &self,
        name: &str,
        idp: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<RunReport, TaskError> {
        let tasks = self.tasks();
        let exact = tasks
            .iter()
            .find(|t| t.id.name == name && t.id.idp.as_deref() == idp);
        let only_one = || {
            let mut named = tasks.iter().filter(|t| t.id.name == name);
            match (named.next(), named.next()) {
                (Some(task), None) => Some(task),
                _ => None,
            }
        };
        let task = match (exact, idp) {
            (Some(task), _) => task,
            (None, None) => only_one().ok_or_else(|| unknown(name, idp, &tasks))?,
            (None, Some(_)) => return Err(unknown(name, idp, &tasks)),
        };
        progress(&format!("taking the lease of task {}", task.id));
        self.with_lease(&task.id, self.run_and_record(task, progress))
            .await
    }

    async fn is_due(&self, task: &Task) -> Result<bool, StoreError> {
        let last = self
            .state
            .store()
            .last_task_run(&task.id.name, task.id.idp.as_deref())
            .await?;
        Ok(task
            .schedule
            .is_due(last.map(|r| r.run.started_at), self.state.now()))
    }

    fn lease_seconds(&self) -> i64 {
        i64::try_from(self.settings.lease.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// Runs `body` holding the lease of `id`: taken first (or [`TaskError::Leased`]),
    /// renewed every `renew_every` while `body` runs, given back after.
    async fn with_lease<T>(
        &self,
        id: &TaskId,
        body: impl Future<Output = Result<T, TaskError>>,
    ) -> Result<T, TaskError> {
        let store = self.state.store();
        let now = self.state.now();
        let expires_at = now.saturating_add(self.lease_seconds());
        if !store
            .acquire_task_lease(&id.name, id.scope(), &self.holder, now, expires_at)
            .await?
        {
            let lease = store.task_lease(&id.name, id.scope()).await?;
            return Err(TaskError::Leased {
                task: id.clone(),
                holder: lease
                    .as_ref()
                    .map_or_else(|| "another host".to_owned(), |l| l.holder.clone()),
                until: lease.map_or(now, |l| l.expires_at),
            });
        }
        let renewal = AbortOnDrop(tokio::spawn(self.clone().renew(id.clone())));
        let result = body.await;
        drop(renewal);
        match store
            .release_task_lease(&id.name, id.scope(), &self.holder)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(task = %id, holder = %self.holder, "the task's lease had been taken over before the run ended");
            }
            // It expires by itself; nothing is stuck.
            Err(error) => {
                tracing::warn!(task = %id, %error, "cannot release the task's lease; it expires by itself");
            }
        }
        result
    }

    /// Keeps the lease of `id` alive until aborted: a run may outlast one lease (a large
    /// sweep, a slow plugin), and without renewal another host would start it meanwhile.
    async fn renew(self, id: TaskId) {
        let store = self.state.store();
        loop {
            tokio::time::sleep(self.settings.renew_every).await;
            let expires_at = self.state.now().saturating_add(self.lease_seconds());
            match store
                .renew_task_lease(&id.name, id.scope(), &self.holder, expires_at)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(task = %id, holder = %self.holder, "lost the task's lease (it expired and another host took it)");
                    return;
                }
                // A database hiccup: the lease still has time; try again at the next beat.
                Err(error) => tracing::warn!(task = %id, %error, "cannot renew the task's lease"),
            }
        }
    }

    /// Runs `task` and records the run (under its lease).
    async fn run_and_record(
        &self,
        task: &Task,
        progress: Progress<'_>,
    ) -> Result<RunReport, TaskError> {
        let started_at = self.state.now();
        let start = self.state.clock().instant();
        progress(&format!("running task {} as {}", task.id, self.holder));
        let (outcome, summary, error) = self.perform(task, started_at, progress).await;
        let elapsed = self
            .state
            .clock()
            .instant()
            .saturating_duration_since(start);
        let run = NewTaskRun {
            task: task.id.name.clone(),
            idp_id: task.id.idp.clone(),
            holder: self.holder.to_string(),
            started_at,
            finished_at: self.state.now(),
            outcome,
            duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            summary,
            error: error.map(|e| truncate(&e, MAX_SUMMARY_CHARS)),
        };
        progress("recording the run");
        let run_id = self.state.store().record_task_run(&run).await?;
        events::task_ran(self.state.metrics(), &run);
        Ok(RunReport {
            run_id,
            task: task.id.clone(),
            run,
        })
    }

    /// Runs the chain `steps` of the IdP of `chain` (each step a task of that IdP, under its
    /// own lease, recorded as its own run) until one fails: what the chain came to.
    fn perform_chain<'a>(
        &'a self,
        chain: &'a TaskId,
        steps: &'static [&'static str],
        progress: Progress<'a>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Performed> + Send + 'a>> {
        Box::pin(async move {
            let tasks = self.tasks();
            let mut done: Vec<String> = Vec::new();
            for (index, step) in steps.iter().enumerate() {
                let found = tasks.iter().find(|task| {
                    task.id.name == *step
                        && task.id.idp == chain.idp
                        && matches!(task.kind, TaskKind::Plugin(_))
                });
                let Some(task) = found else {
                    done.push(format!("{step}: not offered by the plugin"));
                    continue;
                };
                progress(&format!(
                    "step {} of {}: task {}",
                    index + 1,
                    steps.len(),
                    task.id
                ));
                let summary = |done: &[String]| truncate(&done.join("; "), MAX_SUMMARY_CHARS);
                match self
                    .with_lease(&task.id, self.run_and_record(task, progress))
                    .await
                {
                    Ok(report) if report.run.outcome == TaskOutcome::Ok => {
                        // Each step's line shortened, so that the last steps still fit.
                        let line = truncate(&report.run.summary, MAX_SUMMARY_CHARS / steps.len());
                        done.push(format!("{step}: {line}"));
                    }
                    Ok(report) => {
                        return (
                            TaskOutcome::Failed,
                            summary(&done),
                            Some(format!(
                                "step `{step}` {}: {}",
                                match report.run.outcome {
                                    TaskOutcome::Skipped => "was skipped",
                                    _ => "failed",
                                },
                                report.run.error.unwrap_or_default()
                            )),
                        );
                    }
                    Err(error) => {
                        return (
                            TaskOutcome::Failed,
                            summary(&done),
                            Some(format!("step `{step}` could not run: {error}")),
                        );
                    }
                }
            }
            (
                TaskOutcome::Ok,
                truncate(&done.join("; "), MAX_SUMMARY_CHARS),
                None,
            )
        })
    }

    /// What running `task` at `now` came to: outcome, summary, error.
    async fn perform(&self, task: &Task, now: i64, progress: Progress<'_>) -> Performed {
        match &task.kind {
            TaskKind::Cleanup => {
                let retention =
                    i64::try_from(self.settings.audit_retention.as_secs()).unwrap_or(i64::MAX);
                progress(&format!(
                    "deleting expired sessions, pending sign-ins, key-value rows and throttle counters, and audit rows and task runs older than {} days",
                    retention / 86_400
                ));
                // Expired sessions a Connect client still uses are kept; the others end
                // at their clients too before the sweep deletes them.
                if let Err(error) =
                    crate::connect_server::keep_alive::before_sweep(&self.state, now).await
                {
                    return (TaskOutcome::Failed, String::new(), Some(error.to_string()));
                }
                // Sessions of users the directory deleted or suspended end at their clients.
                if let Err(error) = crate::connect_server::propagate::orphans(&self.state).await {
                    return (TaskOutcome::Failed, String::new(), Some(error.to_string()));
                }
                match self
                    .state
                    .store()
                    .cleanup(now, now.saturating_sub(retention))
                    .await
                {
                    Ok(counts) => (TaskOutcome::Ok, cleanup_summary(&counts), None),
                    Err(error) => (TaskOutcome::Failed, String::new(), Some(error.to_string())),
                }
            }
            TaskKind::Chain(steps) => self.perform_chain(&task.id, steps, progress).await,
            TaskKind::Plugin(instance) => {
                progress(&format!(
                    "calling plugin `{}` (IdP `{}`)",
                    instance.plugin.id, instance.id
                ));
                let name = task.id.name.clone();
                let answer = self
                    .state
                    .caller()
                    .call_task(Arc::clone(instance), move |host, idp| {
                        idp.run_task(host, RStr::from(name.as_str())).into_result()
                    })
                    .await;
                let text = match answer {
                    Ok(text) => text,
                    // Not the task's fault: the IdP is at its limit or its breaker is open.
                    Err(CallError::Busy(busy)) => {
                        return (TaskOutcome::Skipped, String::new(), Some(busy.to_string()));
                    }
                    Err(error) => {
                        return (TaskOutcome::Failed, String::new(), Some(error.to_string()));
                    }
                };
                progress(&format!(
                    "reading the plugin's output ({} bytes)",
                    text.len()
                ));
                let output = match TaskOutput::parse(text.as_str()) {
                    Ok(output) => output,
                    Err(error) => {
                        return (
                            TaskOutcome::Failed,
                            String::new(),
                            Some(format!("the plugin's task output is not JSON: {error}")),
                        );
                    }
                };
                let summary = summary_of(&output.tree);
                match apply_split_task_output(&self.state, &task.id, &output, progress).await {
                    Ok(recorded) => (TaskOutcome::Ok, recorded.unwrap_or(summary), None),
                    Err(why) => (TaskOutcome::Failed, summary, Some(why)),
                }
            }
        }
    }
}

/// The known tasks, for the error naming one that is not.
fn unknown(name: &str, idp: Option<&str>, tasks: &[Task]) -> TaskError {
    TaskError::Unknown {
        name: name.to_owned(),
        idp: idp.map(str::to_owned),
        known: tasks
            .iter()
            .map(|t| match &t.id.idp {
                Some(idp) => format!("{} --idp {idp}", t.id.name),
                None => t.id.name.clone(),
            })
            .collect(),
    }
}

/// The line a cleanup records: how many rows went from each table.
fn cleanup_summary(counts: &CleanupCounts) -> String {
    format!(
        "deleted {} rows: {} sessions, {} pending sign-ins, {} key-value rows, {} throttle counters, {} audit rows, {} task runs",
        counts.total(),
        counts.sessions,
        counts.pending_logins,
        counts.kv,
        counts.throttle,
        counts.audit,
        counts.task_runs
    )
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, time::Duration};

    use super::*;
    use crate::{
        clock::{Clock, ManualClock, Randomness},
        site::Site,
        startup,
    };

    /// A lease's renewal interval in tests: short, so a test can watch several.
    const TEST_RENEW_EVERY: Duration = Duration::from_millis(10);

    async fn scheduler(role: &str) -> (Scheduler, ManualClock) {
        let config = gatehouse_config::parse_embedded_default()
            .expect("default parses")
            .config
            .expect("default is valid");
        // No plugins: the site has no IdP instances, so only the host's tasks exist.
        let site = Site::build(&config, &[], &HashSet::new()).site;
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let (clock, hand) = Clock::manual(1_000_000);
        let state =
            startup::state(&config, site, store, clock, Randomness::seeded(1)).expect("state");
        let mut settings = TaskSettings::from_config(&config);
        settings.renew_every = TEST_RENEW_EVERY;
        (Scheduler::new(state, settings, role), hand)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_longer_than_its_lease_keeps_it_and_gives_it_back_after() {
        let (scheduler, hand) = scheduler("a").await;
        let store = scheduler.state.store().clone();
        let clock = scheduler.state.clock().clone();
        let id = TaskId::host("cleanup");
        let lease = scheduler.settings.lease;
        scheduler
            .with_lease(&id, async {
                // The run goes on for three whole leases.
                for _ in 0..3 {
                    hand.advance(lease);
                    let now = clock.now_unix_seconds();
                    // Wait (in real time) for a renewal to carry the lease past the new now.
                    loop {
                        let held = store.task_lease("cleanup", "").await?;
                        if held.is_some_and(|l| l.expires_at > now) {
                            break;
                        }
                        tokio::time::sleep(TEST_RENEW_EVERY).await;
                    }
                    assert!(
                        !store
                            .acquire_task_lease("cleanup", "", "b", now, now + 60)
                            .await?,
                        "another host is kept out while the run lasts"
                    );
                }
                Ok(())
            })
            .await
            .expect("the run");
        let now = clock.now_unix_seconds();
        assert_eq!(store.task_lease("cleanup", "").await.unwrap(), None);
        assert!(
            store
                .acquire_task_lease("cleanup", "", "b", now, now + 60)
                .await
                .unwrap(),
            "given back when the run ends"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_output_that_cannot_be_applied_whole_applies_nothing() {
        let (scheduler, _hand) = scheduler("a").await;
        let state = &scheduler.state;
        let store = state.store();
        let now = state.now();
        let user = store
            .create_user(
                &gatehouse_store::NewUser {
                    username: "ada".into(),
                    branch: "root".into(),
                    auth_source: "idp:hq".into(),
                    ..Default::default()
                },
                &[],
                now,
            )
            .await
            .expect("user");
        store
            .create_session(&gatehouse_store::Session {
                id_hash: "live".into(),
                user_id: user,
                domain: "root".into(),
                idp_id: Some("hq".into()),
                subject: Some("7".into()),
                logout_state: Vec::new(),
                csrf_token: "csrf".into(),
                created_at: now,
                expires_at: now + 3_600,
            })
            .await
            .expect("session");
        let end_ada = serde_json::json!([{"kind": "end_sessions", "subject": "7"}]);
        let section = serde_json::json!({
            "server_idnumber": "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90",
            "api_version": 2,
            "options": {"remove_user": "delete", "sync_profile_fields": false},
            "users": [],
        });
        let task = TaskId::plugin("users", "hq");
        for (why, task, output) in [
            (
                "a malformed section",
                &task,
                serde_json::json!({"actions": end_ada, "directory": {"connect_users": {"users": 5}}}),
            ),
            (
                "a section beside another",
                &task,
                serde_json::json!({"actions": end_ada, "directory": {"connect_users": section, "audiences": []}}),
            ),
            (
                "an IdP that is not configured (or not Connect)",
                &task,
                serde_json::json!({"actions": end_ada, "directory": {"connect_users": section}}),
            ),
            (
                "a host task",
                &TaskId::host("cleanup"),
                serde_json::json!({"directory": {"connect_users": section}}),
            ),
        ] {
            let outcome = crate::tasks::apply_task_output(state, task, &output, &quiet).await;
            assert!(outcome.is_err(), "{why}: {outcome:?}");
            assert!(
                store.session("live", 0).await.unwrap().is_some(),
                "{why}: the actions were not applied"
            );
            assert!(
                store.user_by_username("ada").await.unwrap().is_some(),
                "{why}: nothing written"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_lease_refuses_a_run_and_names_its_holder() {
        let (scheduler, _hand) = scheduler("a").await;
        let store = scheduler.state.store().clone();
        let now = scheduler.state.now();
        assert!(
            store
                .acquire_task_lease("cleanup", "", "elsewhere", now, now + 60)
                .await
                .unwrap()
        );
        match scheduler.run_now("cleanup", None, &quiet).await {
            Err(TaskError::Leased { holder, until, .. }) => {
                assert_eq!((holder.as_str(), until), ("elsewhere", now + 60));
            }
            other => panic!("expected the lease to refuse, got {other:?}"),
        }
        assert!(
            store
                .last_task_run("cleanup", None)
                .await
                .unwrap()
                .is_none(),
            "nothing ran"
        );
        assert!(scheduler.holder().starts_with("a-"));
        assert_eq!(scheduler.holder().len(), "a-".len() + 12);
    }
}
