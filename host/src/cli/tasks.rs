//! `gatehouse tasks list|run`: the scheduled tasks, and running one now.

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Subcommand;
use gatehouse::{
    clock::Clock,
    store::Store,
    tasks::{self, Scheduler, TaskError, TaskSettings, TaskStatus},
};

use super::{
    ConfigArg, Format, help,
    load::{command_state, database_exists, servable_site},
    when::{ago, until},
};

/// `gatehouse tasks …`: the scheduled tasks `serve` runs.
#[derive(Subcommand)]
pub(crate) enum TasksCommand {
    /// Each task: its IdP, schedule, and last run (outcome, time, duration, summary).
    #[command(after_long_help = help::TASKS_LIST)]
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run a task now, due or not, under the same lease as scheduled runs (so never at the
    /// same time as another host). Exit status 0 when it ran and succeeded.
    #[command(after_long_help = help::TASKS_RUN)]
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// The task's name (`cleanup`, or a name from a plugin's manifest).
        name: String,
        /// The IdP whose plugin task to run (needed when several IdPs have that task).
        #[arg(long, value_name = "ID")]
        idp: Option<String>,
    },
}

/// `gatehouse tasks list`: every task with its schedule and last run, from the configured
/// database (without creating it: a database that does not exist has no runs).
pub(crate) fn list_tasks(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let settings = TaskSettings::from_config(&config);
    let catalogue = tasks::catalogue(&site, &settings);
    let now = Clock::system().now_unix_seconds();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let statuses = runtime.block_on(async {
        if !database_exists(&config) {
            return tasks::statuses(None, &catalogue, now).await;
        }
        let store = Store::connect(config.host.database.expose()).await?;
        let statuses = tasks::statuses(Some(&store), &catalogue, now).await;
        store.close().await;
        statuses
    })?;
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = statuses.iter().map(TaskStatus::to_json).collect();
            println!(
                "{}",
                serde_json::json!({ "scheduler": settings.scheduler, "tasks": rows })
            );
        }
        Format::Human => {
            println!(
                "{:<14} {:<12} {:<10} {:<9} {:<8} {:<9} {:<8} SUMMARY",
                "TASK", "IDP", "EVERY", "LAST RUN", "OUTCOME", "DURATION", "NEXT"
            );
            for s in &statuses {
                let last = s.last.as_ref().map(|r| &r.run);
                let every = format!("{}m", s.schedule.every.as_secs() / 60);
                let summary = last.map_or(String::new(), |r| match &r.error {
                    Some(error) if r.summary.is_empty() => error.clone(),
                    Some(error) => format!("{}; {error}", r.summary),
                    None => r.summary.clone(),
                });
                println!(
                    "{:<14} {:<12} {:<10} {:<9} {:<8} {:<9} {:<8} {}",
                    s.id.name,
                    s.id.idp.as_deref().unwrap_or("-"),
                    every,
                    ago(last.map(|r| r.started_at), now),
                    last.map_or("-", |r| r.outcome.as_str()),
                    last.map_or("-".to_owned(), |r| format!("{} ms", r.duration_ms)),
                    s.next_due
                        .map_or("disabled".to_owned(), |at| until(at, now)),
                    summary
                );
            }
            if !settings.scheduler {
                eprintln!(
                    "note: [host] scheduler = false: `serve` on this host runs no tasks (other hosts on the database may)"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse tasks run NAME [--idp ID]`: runs one task now through the scheduler's runner
/// and lease, with progress on stderr when it is a terminal, and one result line on stdout.
/// Exit status 1 when the task failed or was skipped, is unknown, or runs elsewhere.
pub(crate) fn run_task(
    path: Option<PathBuf>,
    name: &str,
    idp: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (store, state) = command_state(&config, site).await?;
        let scheduler = Scheduler::new(state, TaskSettings::from_config(&config), "cli");
        let ticker = std::io::stderr()
            .is_terminal()
            .then(|| TerminalProgress::start(std::time::Instant::now()));
        let progress = |line: &str| {
            if let Some(ticker) = &ticker {
                ticker.stage(line);
            }
        };
        let outcome = scheduler.run_now(name, idp, &progress).await;
        if let Some(ticker) = ticker {
            ticker.finish();
        }
        store.close().await;
        match outcome {
            Ok(report) => {
                let run = &report.run;
                let mut line = format!(
                    "{} {} in {} ms",
                    report.task,
                    run.outcome.as_str(),
                    run.duration_ms
                );
                if !run.summary.is_empty() {
                    line.push_str(&format!(": {}", run.summary));
                }
                if let Some(error) = &run.error {
                    line.push_str(&format!(" (error: {error})"));
                }
                println!("{line}");
                Ok(if run.outcome == gatehouse::store::TaskOutcome::Ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Err(error @ (TaskError::Unknown { .. } | TaskError::Leased { .. })) => {
                eprintln!("error: {error}");
                Ok(ExitCode::FAILURE)
            }
            Err(error) => Err(error.into()),
        }
    })
}

/// The progress of `gatehouse tasks run` on a terminal (stderr): each stage on its own line
/// with the time since the start, and below it a spinner with the time the current stage
/// has taken, redrawn every 100 ms until the run ends (a sync's plugin call or transaction
/// can take a while).
pub(crate) struct TerminalProgress {
    started: std::time::Instant,
    stage_started: std::sync::Arc<std::sync::Mutex<std::time::Instant>>,
    ticking: tokio::task::JoinHandle<()>,
}

impl TerminalProgress {
    const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

    fn start(started: std::time::Instant) -> Self {
        let stage_started = std::sync::Arc::new(std::sync::Mutex::new(started));
        let shared = std::sync::Arc::clone(&stage_started);
        let ticking = tokio::spawn(async move {
            for turn in 0usize.. {
                let since = shared.lock().map(|at| at.elapsed()).unwrap_or_default();
                eprint!(
                    "\r\x1b[2K {} {:.1}s",
                    Self::SPINNER[turn % Self::SPINNER.len()],
                    since.as_secs_f64()
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Self {
            started,
            stage_started,
            ticking,
        }
    }

    fn stage(&self, line: &str) {
        if let Ok(mut at) = self.stage_started.lock() {
            *at = std::time::Instant::now();
        }
        eprintln!(
            "\r\x1b[2K[{:>6.1}s] {line}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn finish(self) {
        self.ticking.abort();
        eprint!("\r\x1b[2K");
    }
}

/// Runs a `gatehouse tasks …` command.
pub(crate) fn run(command: TasksCommand) -> anyhow::Result<ExitCode> {
    match command {
        TasksCommand::List { config, format } => list_tasks(config.config, format),
        TasksCommand::Run { config, name, idp } => run_task(config.config, &name, idp.as_deref()),
    }
}
