//! Load driver, not a test: a Totara Connect users sync of N users (default 10,000;
//! `GATEHOUSE_BENCH_USERS`) between two release `gatehouse serve` processes on SQLite on
//! loopback. Imports N users on the server (`gatehouse directory import`), registers the
//! client, then times `gatehouse tasks run users` on the client three times — all created,
//! nothing changed, a tenth of them changed — and prints wall time, users per second and
//! the server's CPU time for each. `cargo bench -p gatehouse-tests --bench connect_sync`.

use std::{path::PathBuf, process::Command, time::Instant};

use gatehouse_tests::{
    connect::{ClientSetup, SERVER_CONFIG, client_config},
    served::ServedProcess,
};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Builds the release binary and the Connect plugin; their directory.
fn release_binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "gatehouse",
            "-p",
            "gatehouse-connect",
        ])
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "the release build failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("release")
}

/// A directory file of `n` users (no passwords: argon2 is not what is measured), the
/// `changed`-th part of them with another department.
fn directory(n: usize, changed_every: Option<usize>) -> String {
    let users: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let department = match changed_every {
                Some(every) if i % every == 0 => "Changed",
                _ => "Sales",
            };
            serde_json::json!({
                "username": format!("user{i:06}"),
                "email": format!("user{i:06}@example.test"),
                "firstname": format!("First{i}"),
                "lastname": format!("Last{i}"),
                "idnumber": format!("E{i:06}"),
                "fields": {"department": department},
            })
        })
        .collect();
    serde_json::json!({ "users": users }).to_string()
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
        .unwrap_or(10_000);
    let binaries = release_binaries();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server = ServedProcess::start_from(&binaries, "127.0.0.1", SERVER_CONFIG).await;
        let client = ServedProcess::start_from(
            &binaries,
            "localhost",
            &client_config(
                &ClientSetup {
                    // Room for GATEHOUSE_BENCH_USERS beyond the Connect default's ~55,000.
                    idp_lines: "http_max_response_bytes = 268435456",
                    settings: "sync_profile_fields = true",
                },
                &server.origin(),
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
        ]);
        client.cli_ok(&["tasks", "run", "handshake", "--idp", "hq"]);

        let sync = |label: &str| {
            let cpu_before = cpu_seconds(server.pid());
            let started = Instant::now();
            let summary = client.cli_ok(&["tasks", "run", "users", "--idp", "hq"]);
            let wall = started.elapsed().as_secs_f64();
            let server_cpu = cpu_seconds(server.pid()) - cpu_before;
            println!(
                "users sync, {label}: {wall:.2} s wall, {:.0} users/s; server CPU {server_cpu:.2} s; {}",
                users as f64 / wall,
                summary.trim()
            );
        };
        sync("first (all created)");
        sync("second (nothing changed)");
        std::fs::write(&file, directory(users, Some(10))).expect("write the directory file");
        server.cli_ok(&["directory", "import", file.to_str().expect("utf-8")]);
        sync("third (a tenth changed)");
    });
}
