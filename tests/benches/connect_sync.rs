//! Load driver, not a test: a Totara Connect users sync of N users (default 100,000;
//! `GATEHOUSE_BENCH_USERS`), each with 5 custom profile fields and 2 job assignments (a
//! position and an organisation each), between two release `gatehouse serve` processes on
//! SQLite on loopback. Imports the directory on the server (`gatehouse directory import`),
//! registers the client (profile fields, jobs and both frameworks shared), syncs the
//! hierarchies, then times `gatehouse tasks run users` on the client three times — all
//! created, nothing changed, 1% of them changed — and prints for each the wall time, users
//! per second, the server's CPU time, and the client command's CPU time and peak memory
//! (its maximum resident set, from `wait4`). `cargo bench -p gatehouse-tests --bench connect_sync`.

use std::{process::Command, time::Instant};

use gatehouse_tests::{
    connect::{ClientSetup, SERVER_CONFIG, client_config},
    served::ServedProcess,
};

/// Custom profile fields every bench user has, on both sides.
const FIELDS: [&str; 5] = [
    "department",
    "region",
    "grade",
    "cost_centre",
    "manager_code",
];
/// Positions and organisations in the shared frameworks; jobs cycle through them.
const ITEMS: usize = 50;

/// A directory file of `n` users (no passwords: argon2 is not what is measured) with 5
/// fields and 2 jobs each, and the position and organisation frameworks the jobs name; when
/// `changed_every` is given, every such user gets another department.
fn directory(n: usize, changed_every: Option<usize>) -> String {
    let users: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let department = match changed_every {
                Some(every) if i % every == 0 => "Changed",
                _ => "Sales",
            };
            let jobs: Vec<serde_json::Value> = (0..2)
                .map(|j| {
                    serde_json::json!({
                        "idnumber": format!("J{i:06}-{j}"),
                        "fullname": format!("Job {j} of user {i}"),
                        "shortname": format!("job{j}"),
                        "position": format!("POS-{}", (i + j) % ITEMS),
                        "organisation": format!("ORG-{}", (i * 7 + j) % ITEMS),
                        "startdate": 1_700_000_000 + i,
                        "enddate": 0,
                    })
                })
                .collect();
            serde_json::json!({
                "username": format!("user{i:06}"),
                "email": format!("user{i:06}@example.test"),
                "firstname": format!("First{i}"),
                "lastname": format!("Last{i}"),
                "idnumber": format!("E{i:06}"),
                "fields": {
                    "department": department,
                    "region": format!("Region {}", i % 12),
                    "grade": format!("G{}", i % 9),
                    "cost_centre": format!("CC-{:04}", i % 997),
                    "manager_code": format!("M{:06}", i / 10),
                },
                "jobs": jobs,
            })
        })
        .collect();
    let items = |prefix: &str| -> Vec<serde_json::Value> {
        (0..ITEMS)
            .map(|k| {
                serde_json::json!({
                    "idnumber": format!("{prefix}-{k}"),
                    "fullname": format!("{prefix} {k}"),
                    // A tree: every item below the one at half its index.
                    "parent": (k > 0).then(|| format!("{prefix}-{}", k / 2)),
                    "type": "",
                })
            })
            .collect()
    };
    serde_json::json!({
        "position_frameworks": [{"idnumber": "PF-1", "fullname": "Positions", "items": items("POS")}],
        "organisation_frameworks": [{"idnumber": "OF-1", "fullname": "Organisations", "items": items("ORG")}],
        "users": users,
    })
    .to_string()
}

/// `[[field]]` tables for the fields beyond the shared configurations' `department`.
fn more_fields() -> String {
    FIELDS[1..]
        .iter()
        .map(|name| format!("\n[[field]]\nname = \"{name}\"\n"))
        .collect()
}

/// The client's `[host]` with room for a large `get_users`: the server takes seconds to
/// write 100,000 users, past the default 10 s HTTP timeout on a loaded machine.
fn with_long_http_timeout(config: String) -> String {
    config.replacen(
        "scheduler = false",
        "scheduler = false\nhttp_timeout_seconds = 120",
        1,
    )
}

/// Wall time, CPU seconds and peak resident memory (MiB) of one finished command.
struct Measured {
    stdout: String,
    wall: f64,
    cpu: f64,
    peak_mib: f64,
}

/// Runs `command` to completion and reaps it with `wait4`, which reports the child's own
/// CPU time and maximum resident set size; panics with its output unless it succeeds.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which std's Child::wait cannot replace: it returns no resource usage"
)]
fn measure(mut command: Command) -> Measured {
    let started = Instant::now();
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the command");
    let pid = i32::try_from(child.id()).expect("a pid fits an i32");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read_all(child.stdout.map(|p| Box::new(p) as _));
    let stderr = read_all(child.stderr.map(|p| Box::new(p) as _));
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it in for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet reaped; status and usage are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let wall = started.elapsed().as_secs_f64();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the command failed ({status}):\n{stdout}\n{stderr}"
    );
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        stdout,
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// User plus system CPU seconds a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let users: usize = std::env::var("GATEHOUSE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let binaries = gatehouse_tests::load::release_build(&["gatehouse", "gatehouse-connect"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server_config = format!("{SERVER_CONFIG}{}", more_fields());
        let server = ServedProcess::start_from(&binaries, "127.0.0.1", &server_config).await;
        let client = ServedProcess::start_from(
            &binaries,
            "localhost",
            &format!(
                "{}{}",
                with_long_http_timeout(client_config(
                    &ClientSetup {
                        // Room for GATEHOUSE_BENCH_USERS beyond the Connect default's 64 MiB.
                        idp_lines: "http_max_response_bytes = 1073741824",
                        settings: "sync_profile_fields = true\nsync_jobs = true\nsync_positions = true\nsync_organisations = true",
                    },
                    &server.origin(),
                )),
                more_fields()
            ),
        )
        .await;
        let file = server.dir().join("users.json");
        std::fs::write(&file, directory(users, None)).expect("write the directory file");
        let started = Instant::now();
        server.cli_ok(&["directory", "import", file.to_str().expect("utf-8")]);
        println!(
            "server: import of {users} users: {:.2} s",
            started.elapsed().as_secs_f64()
        );

        let opened: serde_json::Value = serde_json::from_str(&client.cli_ok(&[
            "connect",
            "new-server",
            "--idp",
            "hq",
            "--format",
            "json",
        ]))
        .expect("JSON");
        server.cli_ok(&[
            "connect",
            "add-client",
            "--name",
            "Bench",
            "--url",
            opened["client_url"].as_str().expect("client_url"),
            "--setup-secret",
            opened["setup_secret"].as_str().expect("setup_secret"),
            "--sync-profile-fields",
            "--sync-jobs",
            "--position-framework",
            "PF-1",
            "--organisation-framework",
            "OF-1",
        ]);
        client.cli_ok(&["tasks", "run", "handshake", "--idp", "hq"]);
        for task in ["positions", "organisations"] {
            let output = client.cli(&["tasks", "run", task, "--idp", "hq"]);
            println!(
                "{task}: {}",
                String::from_utf8_lossy(if output.status.success() {
                    &output.stdout
                } else {
                    &output.stderr
                })
                .trim()
            );
        }

        let sync = |label: &str| {
            let cpu_before = cpu_seconds(server.pid());
            let run = measure(client.cli_command(&["tasks", "run", "users", "--idp", "hq"]));
            let server_cpu = cpu_seconds(server.pid()) - cpu_before;
            println!(
                "users sync, {label}: {:.2} s wall, {:.0} users/s; server CPU {server_cpu:.2} s; client CPU {:.2} s, peak {:.0} MiB; {}",
                run.wall,
                users as f64 / run.wall,
                run.cpu,
                run.peak_mib,
                run.stdout.trim()
            );
        };
        sync("first (all created)");
        sync("second (nothing changed)");
        std::fs::write(&file, directory(users, Some(100))).expect("write the directory file");
        server.cli_ok(&["directory", "import", file.to_str().expect("utf-8")]);
        sync("third (1% changed)");
    });
}
