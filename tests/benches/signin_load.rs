//! Load driver, not a test: whole sign-ins against a release `gatehouse serve` process,
//! with what each costs the host beside what it costs the identity provider.
//!
//! Starts the real npm `oidc-provider` (tests/support/oidc-provider; `scripts/test-peers`
//! installs it) and a release `gatehouse serve` with the `gatehouse_oidc` plugin, on SQLite,
//! or on a fresh database made in the PostgreSQL server of `GATEHOUSE_BENCH_DATABASE_URL`
//! (an admin URL, e.g. `postgres://postgres@127.0.0.1:5432/postgres`; dropped afterwards).
//! Then, after a few unmeasured warm-up sign-ins:
//!
//! - OIDC sign-ins, each a fresh browser (its own cookie jars and connections at the host and
//!   at the provider): `GET /sso/corp/start` → the provider's authorization, login and
//!   consent pages → the callback → `GET /me`; sequentially, then at
//!   `GATEHOUSE_BENCH_CONCURRENCY` at once (default 16);
//! - password sign-ins of the bootstrap `admin` (`GET /login` for the CSRF token, `POST
//!   /login`, `GET /me`), sequentially and 64 at once;
//! - `GET /login` and `GET /healthz` on 16 keep-alive connections for a few seconds.
//!
//! For each it prints sign-ins (or requests) per second, p50/p99 latency, CPU per sign-in of
//! the host and of the provider (utime + stime from `/proc/PID/stat`) and their ratio,
//! password sign-ins per second of host CPU, the host's context switches per sign-in (summed
//! over its threads) and its peak resident memory (`VmHWM`) after the phase. Failed sign-ins
//! are counted and the first few reasons printed; nothing asserts a timing.
//!
//! `GATEHOUSE_BENCH_SIGNINS` (default 200) sign-ins in each sequential phase, twice as many in
//! each concurrent one (about 2 minutes on 2 cores with the defaults). Sign-ins cycle through
//! `GATEHOUSE_BENCH_ACCOUNTS` provider accounts (default 100): the first of each creates its
//! user, the rest match and update it.
//!
//! `GATEHOUSE_BENCH_BINARIES=DIR` runs the `gatehouse` and `libgatehouse_oidc.so` of DIR instead
//! of building this tree's (an earlier commit's release build, for a before/after pair in one
//! sitting); add `GATEHOUSE_BENCH_BEFORE_START_LIMIT=1` for a build older than `[host.limits]`.
//!
//! `cargo bench -p gatehouse-tests --bench signin_load`

use std::{
    future::Future,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use gatehouse_tests::{
    load::{
        self, Answer, HostBrowser, child_named, clock_ticks_per_second, context_switches_between,
        context_switches_by_thread, cpu_ticks, input_value, p50_p99_ms, status_kib,
    },
    oidc::{self, IdpAgent, OidcProvider, ProviderOptions},
    served::ServedProcess,
};
use serde_json::json;

const CLIENT_ID: &str = "gatehouse-bench";
const CLIENT_SECRET: &str = "gatehouse-bench-secret-0123456789-0123456789";
/// The bootstrap administrator's password (`GATEHOUSE_ADMIN_PASSWORD` of `serve`).
const ADMIN_PASSWORD: &str = "bench-admin-password-0123456789";
/// The host name the host's domain answers on; every request sends it as `Host`, so the
/// callback URL is `http://localhost/sso/corp/callback` whatever port the host listens on.
const HOST: &str = oidc::HOST;
/// Unmeasured sign-ins before each kind's first phase (discovery, key set, first users).
const WARM_UP: usize = 5;
/// How many failure reasons a phase prints.
const SHOWN_FAILURES: usize = 3;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The host's configuration: one domain on [`HOST`], the OIDC IdP `corp` at `issuer`, and the
/// per-address limits raised, since every simulated browser comes from 127.0.0.1.
fn host_config(issuer: &str, database: &str) -> String {
    // A build from before the start limit existed refuses its table as an unknown key.
    let start_limit = if std::env::var_os("GATEHOUSE_BENCH_BEFORE_START_LIMIT").is_some() {
        ""
    } else {
        "[host.limits]\nstarts_per_address_per_minute = 1000000\n"
    };
    format!(
        r#"
[host]
listen = "127.0.0.1:{{port}}"
public_url = "http://{HOST}"
database = "{database}"
plugin_dir = "{{plugin_dir}}"
http_timeout_seconds = 30
plugin_call_timeout_seconds = 60
scheduler = false

[host.login_throttle]
max_failures_per_account = 1000000
max_failures_per_ip = 1000000

{start_limit}
[[domain]]
name = "root"
hosts = ["{HOST}"]

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[idp]]
id = "corp"
domain = "root"
plugin = "oidc"
name = "Sign in with Corp"
username_attribute = "sub"

[idp.provisioning]
create_users = true
update_existing = true
lock_fields = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email" }}

[idp.settings]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
use_userinfo = true
"#
    )
}

/// A fresh PostgreSQL database in the server of `admin_url` (dropped by [`drop_database`]).
async fn create_database(admin_url: &str) -> (String, String) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let name = format!("gatehouse_bench_{}", std::process::id());
    let mut admin = sqlx::AnyConnection::connect(admin_url)
        .await
        .expect("connect to GATEHOUSE_BENCH_DATABASE_URL");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("create the bench database");
    }
    let mut url = url::Url::parse(admin_url).expect("GATEHOUSE_BENCH_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}

async fn drop_database(admin_url: &str, name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut admin) = sqlx::AnyConnection::connect(admin_url).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await;
    }
}

/// Provider accounts `user000`…: the claims the host provisions from.
fn accounts(n: usize) -> serde_json::Map<String, serde_json::Value> {
    (0..n)
        .map(|i| {
            (
                account(i),
                json!({
                    "email": format!("user{i:03}@example.test"),
                    "email_verified": true,
                    "given_name": format!("User{i}"),
                    "family_name": "Bench",
                    "name": format!("User{i} Bench"),
                }),
            )
        })
        .collect()
}

fn account(i: usize) -> String {
    format!("user{i:03}")
}

/// The status and location of an answer, or why it is not what a step expects.
fn expect(answer: &Answer, status: u16, step: &str) -> Result<(), String> {
    if answer.status == status {
        return Ok(());
    }
    let body: String = answer.body.chars().take(200).collect();
    Err(format!(
        "{step}: {} (expected {status}) {:?} {body}",
        answer.status, answer.location
    ))
}

/// One OIDC sign-in by a fresh browser as provider account `account`.
async fn oidc_sign_in(port: u16, account: String) -> Result<(), String> {
    let browser = HostBrowser::new(port, HOST)?;
    let start = browser.get("/sso/corp/start?return_to=%2F").await?;
    expect(&start, 303, "start")?;
    let authorize = start.location.ok_or("start: no Location")?;
    let authorize = url::Url::parse(&authorize).map_err(|e| format!("{authorize}: {e}"))?;
    // The provider's side of the browser: its own cookie jar, so every sign-in goes through
    // the login and consent pages. It panics on a provider that misbehaves; the phase runs
    // each sign-in as a task of its own and counts that as a failure.
    let callback = IdpAgent::new().authorize(&authorize, &account).await;
    let done = browser.get(&callback).await?;
    expect(&done, 303, "callback")?;
    let me = browser.get("/me").await?;
    expect(&me, 200, "/me")?;
    if !me.body.contains(&format!("\"{account}\"")) {
        return Err(format!("/me is not {account}: {}", me.body));
    }
    Ok(())
}

/// One password sign-in of `admin` by a fresh browser.
async fn password_sign_in(port: u16) -> Result<(), String> {
    let browser = HostBrowser::new(port, HOST)?;
    let login = browser.get("/login?nosso=1").await?;
    expect(&login, 200, "GET /login")?;
    let csrf = input_value(&login.body, "csrf").ok_or("the login page has no csrf field")?;
    let posted = browser
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("return_to", "/"),
            ],
        )
        .await?;
    expect(&posted, 303, "POST /login")?;
    let me = browser.get("/me").await?;
    expect(&me, 200, "/me")?;
    Ok(())
}

/// The processes measured.
struct Measured {
    host: u32,
    provider: Option<u32>,
}

/// The table's header; [`Row::print`] writes its columns.
const HEADER: &str = "phase               n     fail  conc  /s       p50 ms  p99 ms  host ms  prov ms  host/prov  /host-CPU-s  cs/op   VmHWM MiB";

/// One printed row.
struct Row {
    phase: String,
    done: usize,
    failed: usize,
    concurrency: usize,
    wall: f64,
    p50: f64,
    p99: f64,
    host_ms: f64,
    provider_ms: Option<f64>,
    switches: f64,
    hwm_mib: f64,
}

impl Row {
    fn print(&self) {
        let per_second = self.done as f64 / self.wall;
        let per_cpu_second = if self.host_ms > 0.0 {
            1e3 / self.host_ms
        } else {
            0.0
        };
        let (provider, ratio) = match self.provider_ms {
            Some(p) if p > 0.0 => (format!("{p:.2}"), format!("{:.2}", self.host_ms / p)),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<19} {:<5} {:<5} {:<5} {:<8.1} {:<7.1} {:<7.1} {:<8.2} {:<8} {:<10} {:<12.1} {:<7.1} {:.0}",
            self.phase,
            self.done,
            self.failed,
            self.concurrency,
            per_second,
            self.p50,
            self.p99,
            self.host_ms,
            provider,
            ratio,
            per_cpu_second,
            self.switches,
            self.hwm_mib,
        );
    }
}

/// Runs `n` sign-ins, `concurrency` at a time, each a task of its own; what they cost.
async fn phase<F, Fut>(
    label: &str,
    n: usize,
    concurrency: usize,
    measured: &Measured,
    sign_in: F,
) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let ticks = clock_ticks_per_second() as f64;
    let sign_in = Arc::new(sign_in);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let host_before = cpu_ticks(measured.host);
    let provider_before = measured.provider.map(cpu_ticks);
    let switches_before = context_switches_by_thread(measured.host);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (sign_in, next) = (sign_in.clone(), next.clone());
            let (latencies, failures) = (latencies.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let began = Instant::now();
                    let outcome = match tokio::spawn(sign_in(i)).await {
                        Ok(outcome) => outcome,
                        Err(panicked) => Err(format!("panicked: {panicked}")),
                    };
                    match outcome {
                        Ok(()) => latencies.lock().expect("latencies").push(began.elapsed()),
                        Err(why) => failures.lock().expect("failures").push(why),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a phase worker");
    }
    let wall = started.elapsed().as_secs_f64();
    let host_ticks = cpu_ticks(measured.host).saturating_sub(host_before);
    let provider_ticks = measured
        .provider
        .zip(provider_before)
        .map(|(pid, before)| cpu_ticks(pid).saturating_sub(before));
    let switches =
        context_switches_between(&switches_before, &context_switches_by_thread(measured.host));
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    let failures = std::mem::take(&mut *failures.lock().expect("failures"));
    let done = latencies.len();
    let (p50, p99) = p50_p99_ms(&mut latencies);
    // Costs are divided by the sign-ins that completed (a failure costs something too, so
    // with failures these are upper bounds).
    let per = done.max(1) as f64;
    for why in failures.iter().take(SHOWN_FAILURES) {
        eprintln!("{label}: failed: {why}");
    }
    Row {
        phase: label.to_owned(),
        done,
        failed: failures.len(),
        concurrency,
        wall,
        p50,
        p99,
        host_ms: host_ticks as f64 / ticks * 1e3 / per,
        provider_ms: provider_ticks.map(|t| t as f64 / ticks * 1e3 / per),
        switches: switches as f64 / per,
        hwm_mib: status_kib(measured.host, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
    }
}

/// Requests per second of `GET path` on 16 keep-alive connections, with the host's CPU per
/// request.
async fn throughput(port: u16, host_pid: u32, path: &str) {
    const CONNECTIONS: usize = 16;
    let ticks = clock_ticks_per_second() as f64;
    let before = cpu_ticks(host_pid);
    let hammered = load::hammer(port, HOST, path, CONNECTIONS, Duration::from_secs(5)).await;
    let host_cpu = cpu_ticks(host_pid).saturating_sub(before) as f64 / ticks;
    println!(
        "GET {path:<9} {CONNECTIONS} connections: {:.0} req/s (status {}; {} answered, {} errors in {:.1} s); host CPU {:.1} µs/request",
        hammered.ok as f64 / hammered.elapsed.as_secs_f64(),
        hammered.status,
        hammered.ok,
        hammered.errors,
        hammered.elapsed.as_secs_f64(),
        host_cpu * 1e6 / hammered.ok.max(1) as f64,
    );
}

fn main() {
    let sequential = env_number("GATEHOUSE_BENCH_SIGNINS", 200);
    let concurrency = env_number("GATEHOUSE_BENCH_CONCURRENCY", 16);
    let account_count = env_number("GATEHOUSE_BENCH_ACCOUNTS", 100);
    let database_url = std::env::var("GATEHOUSE_BENCH_DATABASE_URL").ok();
    // `serve` creates `admin` with this password on an empty database; its environment is
    // ours. SAFETY: set before the runtime or any other thread exists.
    unsafe { std::env::set_var("GATEHOUSE_ADMIN_PASSWORD", ADMIN_PASSWORD) };
    // Another build's binaries (an earlier commit's, for a before/after pair in one sitting).
    let binaries = match std::env::var_os("GATEHOUSE_BENCH_BINARIES") {
        Some(dir) => PathBuf::from(dir),
        None => load::release_build(&["gatehouse", "gatehouse-oidc"]),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let provider = OidcProvider::start(ProviderOptions {
            clients: vec![oidc::client(
                "corp",
                CLIENT_ID,
                CLIENT_SECRET,
                "client_secret_basic",
            )],
            accounts: accounts(account_count),
            ..ProviderOptions::default()
        });
        let provider_pid = child_named("node");
        let database = match &database_url {
            Some(admin) => Some(create_database(admin).await),
            None => None,
        };
        let served = ServedProcess::start_from(
            &binaries,
            HOST,
            &host_config(
                provider.issuer(),
                database
                    .as_ref()
                    .map_or("{database}", |(url, _)| url.as_str()),
            ),
        )
        .await;
        let port = served.port();
        let measured = Measured {
            host: served.pid(),
            provider: provider_pid,
        };
        println!(
            "signin_load: {} on {}, {account_count} provider accounts, {} CPUs{}",
            if database.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            std::env::consts::ARCH,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if provider_pid.is_none() {
                " (the provider's pid was not found: no provider CPU)"
            } else {
                ""
            },
        );

        let oidc = move |i: usize| oidc_sign_in(port, account(i % account_count));
        let password = move |_: usize| password_sign_in(port);
        let mut rows = Vec::new();
        // Not printed: discovery and key set fetched, the first users created, threads up.
        phase("warm-up", WARM_UP, 1, &measured, oidc).await;
        rows.push(phase("oidc sequential", sequential, 1, &measured, oidc).await);
        rows.push(
            phase(
                "oidc concurrent",
                2 * sequential,
                concurrency,
                &measured,
                oidc,
            )
            .await,
        );
        // The provider takes no part in a password sign-in: its column stays empty.
        let measured = Measured {
            provider: None,
            ..measured
        };
        phase("warm-up", WARM_UP, 1, &measured, password).await;
        rows.push(phase("password sequential", sequential, 1, &measured, password).await);
        rows.push(
            phase(
                "password concurrent",
                2 * sequential,
                64,
                &measured,
                password,
            )
            .await,
        );

        println!("{HEADER}");
        for row in &rows {
            row.print();
        }
        println!(
            "(CPU per completed sign-in; /host-CPU-s: sign-ins per second of host CPU; cs/op: \
             host context switches per sign-in over its threads; VmHWM: host peak RSS so far)"
        );
        throughput(port, measured.host, "/login").await;
        throughput(port, measured.host, "/healthz").await;
        println!(
            "host after the run: VmHWM {:.0} MiB, VmRSS {:.0} MiB",
            status_kib(measured.host, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
            status_kib(measured.host, "VmRSS:").unwrap_or(0) as f64 / 1024.0,
        );

        drop(served);
        if let (Some(admin), Some((_, name))) = (&database_url, &database) {
            drop_database(admin, name).await;
        }
        drop(provider);
    });
}
