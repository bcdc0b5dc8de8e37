//! Scheduled tasks against the real built example plugin and a real SQLite file: the expiry
//! cleanup, one run across two hosts on one database, the example plugin's `heartbeat`, the
//! lease's duration, schedules from `plugins.toml`, and `gatehouse tasks` through the binary.

use std::{collections::HashSet, path::Path, process::Command, time::Duration};

use gatehouse::{
    config::codes,
    startup,
    store::{
        AuditEvent, PendingLogin, PendingStage, Session, SignInPurpose, THROTTLE_RETENTION_SECS,
        TaskOutcome,
    },
    tasks::{Scheduler, TaskError, TaskSettings, quiet},
};
use gatehouse_tests::{EXAMPLE_CONFIG, TestHost, config_text, parse_config, plugin_dir};

const DAY: i64 = 86_400;

fn scheduler(host: &TestHost) -> Scheduler {
    Scheduler::new(
        host.state.clone(),
        TaskSettings::from_config(&host.config()),
        "test",
    )
}

fn session(id_hash: &str, user_id: i64, expires_at: i64) -> Session {
    Session {
        id_hash: id_hash.into(),
        user_id,
        domain: "root".into(),
        idp_id: None,
        subject: None,
        logout_state: Vec::new(),
        csrf_token: format!("csrf-{id_hash}"),
        created_at: expires_at - 3_600,
        expires_at,
    }
}

fn pending(token_hash: &str, expires_at: i64) -> PendingLogin {
    PendingLogin {
        token_hash: token_hash.into(),
        idp_id: "example".into(),
        plugin_state: Vec::new(),
        browser_binding_hash: "binding".into(),
        return_to: "/".into(),
        purpose: SignInPurpose::SignIn,
        stage: PendingStage::Begun,
        created_at: expires_at - 600,
        expires_at,
    }
}

fn audit(at: i64, username: &str) -> AuditEvent {
    AuditEvent {
        at,
        domain: "localhost".into(),
        idp_id: None,
        user_id: None,
        username: username.into(),
        method: "password".into(),
        outcome: "failure".into(),
        reason: "bad password".into(),
        ip: "192.0.2.1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_what_expired_and_keeps_what_lives() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let store = &host.store;
    let now = host.state.now();
    let user = host.create_user("olga", false).await;
    store
        .create_session(&session("gone", user, now - 1))
        .await
        .unwrap();
    store
        .create_session(&session("live", user, now + 3_600))
        .await
        .unwrap();
    store.insert_pending(&pending("gone", now)).await.unwrap();
    store
        .insert_pending(&pending("live", now + 600))
        .await
        .unwrap();
    store
        .kv_put("example", "gone", b"x", Some(now), false, now)
        .await
        .unwrap();
    store
        .kv_put("example", "live", b"x", Some(now + 60), false, now)
        .await
        .unwrap();
    store
        .kv_put("example", "kept", b"x", None, false, now)
        .await
        .unwrap();
    let ancient = now - THROTTLE_RETENTION_SECS - 1;
    store
        .throttle_reserve("ip:gone", ancient, 900, 5)
        .await
        .unwrap();
    store
        .throttle_reserve("ip:live", now - 60, 900, 5)
        .await
        .unwrap();
    // The default retention is 90 days.
    store.audit(&audit(now - 91 * DAY, "gone")).await.unwrap();
    store.audit(&audit(now - 89 * DAY, "recent")).await.unwrap();

    let report = scheduler(&host)
        .run_now("cleanup", None, &quiet)
        .await
        .expect("cleanup runs");
    assert_eq!(report.run.outcome, TaskOutcome::Ok, "{report:?}");
    assert_eq!(
        report.run.summary,
        "deleted 5 rows: 1 sessions, 1 pending sign-ins, 1 key-value rows, 1 throttle counters, 1 audit rows, 0 task runs"
    );

    // `now = 0` reads rows whatever their expiry: what is asked is whether the row is there.
    assert!(store.session("gone", 0).await.unwrap().is_none());
    assert!(store.session("live", 0).await.unwrap().is_some());
    assert!(
        store
            .take_pending("gone", PendingStage::Begun)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .take_pending("live", PendingStage::Begun)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.kv_get("example", "gone", 0).await.unwrap(), None);
    assert!(store.kv_get("example", "live", 0).await.unwrap().is_some());
    assert!(store.kv_get("example", "kept", 0).await.unwrap().is_some());
    assert_eq!(
        store
            .throttle_count("ip:gone", now, 10 * DAY)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.throttle_count("ip:live", now, 900).await.unwrap(), 1);
    let audit_left: Vec<String> = store
        .recent_audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.username)
        .collect();
    assert_eq!(audit_left, ["recent"]);

    // Two days on, the recent audit row is past the retention too, and so is the session.
    host.clock.advance(Duration::from_secs(2 * 86_400));
    let report = scheduler(&host)
        .run_now("cleanup", None, &quiet)
        .await
        .unwrap();
    assert!(
        report.run.summary.contains("1 sessions") && report.run.summary.contains("1 audit rows"),
        "{}",
        report.run.summary
    );
    assert!(store.recent_audit(10).await.unwrap().is_empty());
    assert!(
        store.user_by_id(user).await.unwrap().is_some(),
        "users stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_audit_retention_is_applied() {
    let template = EXAMPLE_CONFIG.replace(
        "dev_mode = true",
        "dev_mode = true\naudit_retention_days = 7",
    );
    let host = TestHost::start(&template).await;
    let now = host.state.now();
    host.store
        .audit(&audit(now - 8 * DAY, "gone"))
        .await
        .unwrap();
    host.store
        .audit(&audit(now - 6 * DAY, "kept"))
        .await
        .unwrap();
    scheduler(&host)
        .run_now("cleanup", None, &quiet)
        .await
        .unwrap();
    let left: Vec<String> = host
        .store
        .recent_audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.username)
        .collect();
    assert_eq!(left, ["kept"]);
}

/// Two hosts (two states, each with its own pool, on one database file), each with two
/// schedulers racing: every due task runs exactly once per interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_task_runs_exactly_once_across_hosts() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let other = host.another_host().await;
    let settings = TaskSettings::from_config(&host.config());
    let schedulers = [
        Scheduler::new(host.state.clone(), settings.clone(), "a"),
        Scheduler::new(host.state.clone(), settings.clone(), "a"),
        Scheduler::new(other.clone(), settings.clone(), "b"),
        Scheduler::new(other.clone(), settings, "b"),
    ];
    let count = |task: &'static str, idp: Option<&'static str>| {
        let store = host.store.clone();
        async move { store.task_runs(task, idp, 100).await.unwrap().len() }
    };
    for round in 1..=3 {
        let mut passes = tokio::task::JoinSet::new();
        for scheduler in schedulers.clone() {
            passes.spawn(async move { scheduler.run_due().await });
        }
        let mut made = 0;
        while let Some(reports) = passes.join_next().await {
            made += reports.expect("pass").len();
        }
        assert_eq!(made, 2, "round {round}: cleanup and heartbeat, once each");
        assert_eq!(count("cleanup", None).await, round);
        assert_eq!(count("heartbeat", Some("example")).await, round);

        // Not due again until the hour has passed.
        for scheduler in &schedulers {
            assert!(scheduler.run_due().await.is_empty(), "round {round}");
        }
        host.clock.advance(Duration::from_secs(3_600));
    }
    let runs = host.store.task_runs("cleanup", None, 100).await.unwrap();
    assert!(runs.iter().all(|r| r.run.outcome == TaskOutcome::Ok));
    for run in &runs {
        assert!(
            host.store
                .task_lease("cleanup", "")
                .await
                .unwrap()
                .is_none(),
            "released after run {}",
            run.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugins_heartbeat_is_run_and_recorded_with_its_summary() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let scheduler = scheduler(&host);
    let tasks: Vec<String> = scheduler.tasks().iter().map(|t| t.id.to_string()).collect();
    assert_eq!(tasks, ["`cleanup`", "`heartbeat` of IdP `example`"]);

    let now = host.state.now();
    let report = scheduler
        .run_now("heartbeat", Some("example"), &quiet)
        .await
        .expect("runs");
    assert_eq!(report.run.outcome, TaskOutcome::Ok, "{report:?}");
    assert_eq!(report.run.idp_id.as_deref(), Some("example"));
    assert!(
        report
            .run
            .summary
            .starts_with("example IdP `example` is alive at "),
        "{}",
        report.run.summary
    );
    let recorded = host
        .store
        .last_task_run("heartbeat", Some("example"))
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(recorded.run, report.run);
    assert!(recorded.run.started_at >= now);
    assert_eq!(recorded.run.holder, scheduler.holder());

    // Only one IdP has `heartbeat`, so its name alone finds it.
    let again = scheduler.run_now("heartbeat", None, &quiet).await.unwrap();
    assert_eq!(again.task, report.task);

    match scheduler.run_now("users", Some("example"), &quiet).await {
        Err(TaskError::Unknown { known, .. }) => {
            assert_eq!(known, ["cleanup", "heartbeat --idp example"]);
        }
        other => panic!("expected an unknown task, got {other:?}"),
    }
    assert!(matches!(
        scheduler.run_now("cleanup", Some("example"), &quiet).await,
        Err(TaskError::Unknown { .. })
    ));
}

/// The lease's duration is what keeps a crashed host's run from being repeated at once,
/// and what lets another host take over after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_hosts_lease_blocks_the_task_until_it_expires() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let scheduler = scheduler(&host);
    let lease = scheduler.settings().lease;
    assert_eq!(
        lease,
        Duration::from_secs(60),
        "twice the 15 s call timeout, at least 60 s"
    );
    let now = host.state.now();
    let lease_secs = i64::try_from(lease.as_secs()).unwrap();
    assert!(
        host.store
            .acquire_task_lease("cleanup", "", "crashed", now, now + lease_secs)
            .await
            .unwrap()
    );

    // Real time passes too (the test clock follows the system's), so stop well short.
    host.clock.advance(lease - Duration::from_secs(5));
    assert!(matches!(
        scheduler.run_now("cleanup", None, &quiet).await,
        Err(TaskError::Leased { ref holder, .. }) if holder == "crashed"
    ));
    let reports = scheduler.run_due().await;
    assert_eq!(reports.len(), 1, "only heartbeat ran: {reports:?}");
    assert_eq!(reports[0].task.name, "heartbeat");

    host.clock.advance(Duration::from_secs(5));
    let reports = scheduler.run_due().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].task.name, "cleanup", "taken over once expired");
    assert!(
        host.store
            .task_lease("cleanup", "")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_come_from_the_configuration() {
    let template = EXAMPLE_CONFIG
        .replace(
            "window_minutes = 15\n",
            "window_minutes = 15\n\n[host.tasks]\ncleanup = { enabled = false }\n",
        )
        .replace(
            "username_attribute = \"email\"\n\n[idp.provisioning]",
            "username_attribute = \"email\"\ntasks = { heartbeat = { every_minutes = 15 } }\n\n[idp.provisioning]",
        );
    let host = TestHost::start(&template).await;
    let scheduler = scheduler(&host);
    let every: Vec<(String, u64, bool)> = scheduler
        .tasks()
        .iter()
        .map(|t| {
            (
                t.id.name.clone(),
                t.schedule.every.as_secs(),
                t.schedule.enabled,
            )
        })
        .collect();
    assert_eq!(
        every,
        [
            ("cleanup".into(), 3_600, false),
            ("heartbeat".into(), 900, true)
        ]
    );
    for minute in [0, 14, 15, 29, 30] {
        let ran: Vec<String> = scheduler
            .run_due()
            .await
            .into_iter()
            .map(|r| r.task.name)
            .collect();
        let expected: &[&str] = if minute % 15 == 0 {
            &["heartbeat"]
        } else {
            &[]
        };
        assert_eq!(ran, expected, "at minute {minute}");
        let step = if minute % 15 == 0 { 14 } else { 1 };
        host.clock.advance(Duration::from_secs(step * 60));
    }
    // A disabled task still runs by hand.
    let report = scheduler.run_now("cleanup", None, &quiet).await.unwrap();
    assert_eq!(report.run.outcome, TaskOutcome::Ok);
}

#[test]
fn scheduling_a_task_the_plugin_does_not_offer_is_an_error_at_its_name() {
    let template = EXAMPLE_CONFIG.replace(
        "username_attribute = \"email\"\n\n[idp.provisioning]",
        "username_attribute = \"email\"\ntasks = { users = { every_minutes = 5 } }\n\n[idp.provisioning]",
    );
    let text = config_text(&template, "sqlite::memory:");
    let config = parse_config(&text);
    let prepared = startup::prepare(&config, &HashSet::new());
    let found: Vec<_> = prepared
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::UNKNOWN_TASK)
        .collect();
    assert_eq!(found.len(), 1, "{:#?}", prepared.diagnostics);
    assert_eq!(found[0].idp.as_deref(), Some("example"));
    let line = text[..text.find("users =").unwrap()].matches('\n').count() + 1;
    assert_eq!(found[0].location.line as usize, line);
    assert_eq!(
        found[0].help.as_deref(),
        Some("plugin `example` offers `heartbeat`")
    );
    assert!(prepared.has_errors());
}

// ---------------------------------------------------------------------------------------------
// `gatehouse tasks` through the binary

const CLI_CONFIG: &str = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "example"
domain = "root"
plugin = "example"
username_attribute = "email"
"#;

fn gatehouse(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(plugin_dir().join("gatehouse"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run gatehouse")
}

#[test]
fn tasks_list_and_run_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gh.db");
    let config = dir.path().join("plugins.toml");
    let database = format!("sqlite://{}", db.display());
    std::fs::write(&config, config_text(CLI_CONFIG, &database)).unwrap();

    // Before anything ran: both tasks, never run, and no database created for it.
    let listed = gatehouse(&config, &["tasks", "list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("TASK"), "{stdout}");
    assert!(
        lines[1].starts_with("cleanup ") && lines[1].contains("never"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("heartbeat ") && lines[2].contains("example"),
        "{stdout}"
    );
    assert!(!db.exists(), "listing creates no database");

    let ran = gatehouse(&config, &["tasks", "run", "cleanup"]);
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("`cleanup` ok in "), "{stdout}");
    assert!(stdout.contains("deleted 0 rows"), "{stdout}");
    assert!(
        !stderr.lines().any(|line| line.starts_with('[')),
        "no progress when stderr is not a terminal: {stderr}"
    );

    let ran = gatehouse(&config, &["tasks", "run", "heartbeat", "--idp", "example"]);
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    assert!(
        stdout.contains("example IdP `example` is alive at"),
        "{stdout}"
    );

    let listed = gatehouse(&config, &["tasks", "list", "--format", "json"]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("one JSON object");
    assert_eq!(json["scheduler"], true);
    let tasks = json["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["task"], "cleanup");
    assert_eq!(tasks[0]["idp"], serde_json::Value::Null);
    assert_eq!(tasks[0]["every_minutes"], 60);
    assert_eq!(tasks[0]["last_run"]["outcome"], "ok");
    assert!(
        tasks[0]["last_run"]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("cli-"))
    );
    assert!(tasks[0]["last_run"]["duration_ms"].is_i64());
    let started = tasks[0]["last_run"]["started_at"].as_i64().expect("a time");
    assert_eq!(tasks[0]["next_due_at"].as_i64(), Some(started + 3_600));
    assert_eq!(tasks[1]["task"], "heartbeat");
    assert_eq!(tasks[1]["idp"], "example");
    assert!(
        tasks[1]["last_run"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("example IdP"))
    );

    let listed = gatehouse(&config, &["tasks", "list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    // Due an hour after it started: "in 60m", or "in 1h" within its first second.
    assert!(
        stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(" ok ") && (l.contains("in 60m") || l.contains("in 1h"))),
        "{stdout}"
    );
}

#[test]
fn tasks_run_refuses_an_unknown_task_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plugins.toml");
    let database = format!("sqlite://{}", dir.path().join("gh.db").display());
    std::fs::write(&config, config_text(CLI_CONFIG, &database)).unwrap();
    for args in [
        &["tasks", "run", "cleanpu"][..],
        &["tasks", "run", "heartbeat", "--idp", "nobody"][..],
    ] {
        let ran = gatehouse(&config, args);
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("error: there is no task"), "{stderr}");
        assert!(
            stderr.contains("the tasks are: cleanup, heartbeat --idp example"),
            "{stderr}"
        );
        assert!(ran.stdout.is_empty());
    }
}
