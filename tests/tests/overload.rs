//! Overload: an IdP whose discovery never answers (a TCP listener that accepts and
//! never replies) must not stall anyone else. Hundreds of concurrent
//! `/sso/{idp}/start` against it are refused at once (503 + `Retry-After`) beyond the
//! per-IdP limit or time out, never queue, and only the admitted few ever reach the
//! IdP; password sign-ins meanwhile still succeed. Latencies are printed (run with
//! `--nocapture`), not asserted: this machine is shared and noisy.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::http::{StatusCode, header};
use gatehouse_tests::{Browser, TestHost};
use tokio::net::{TcpListener, TcpStream};

/// The default `plugin_calls_per_idp`, which these tests run with.
fn per_idp_limit() -> usize {
    gatehouse::config::HostSettings::default().plugin_calls_per_idp as usize
}

const USERNAME: &str = "grace";
const PASSWORD: &str = "correct horse battery staple";

fn config(issuer: &str, extra_host_keys: &str) -> String {
    format!(
        r#"
[host]
public_url = "http://localhost:8080"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"
# Calls give up after 2 s; their plugin threads linger until the HTTP timeout.
plugin_call_timeout_seconds = 2
http_timeout_seconds = 120
{extra_host_keys}

# The flood comes from one address: the per-address start limit is not under test here.
[host.limits]
starts_per_address_per_minute = 1000000

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "stuck"
domain = "root"
plugin = "oidc"
name = "Sign in with Stuck"
username_attribute = "sub"

[idp.settings]
issuer = "{issuer}"
client_id = "gatehouse"
client_secret = "gatehouse-stuck-secret-0123456789-0123456789"
"#
    )
}

/// A "provider" that accepts connections and never says a word, until released.
struct BlackHole {
    issuer: String,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (count, keep) = (Arc::clone(&accepted), Arc::clone(&held));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                keep.lock().expect("held sockets").push(socket);
            }
        });
        Self {
            issuer,
            accepted,
            held,
        }
    }

    /// Connections ever accepted: each is one plugin call that reached the IdP.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Ends the hang: every held connection is closed, so the plugins' requests fail.
    fn release(&self) {
        self.held.lock().expect("held sockets").clear();
    }
}

async fn start_host(issuer: &str, extra_host_keys: &str) -> TestHost {
    let host = TestHost::start(&config(issuer, extra_host_keys)).await;
    host.create_password_user(USERNAME, "root", PASSWORD, false)
        .await;
    host
}

/// The answer to one `/sso/stuck/start`.
#[derive(Debug)]
struct StartAnswer {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

async fn sso_start(host: &TestHost) -> StartAnswer {
    let page = host
        .browser("localhost")
        .get("/sso/stuck/start?return_to=%2F")
        .await;
    StartAnswer {
        status: page.status,
        retry_after: page
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: page.body,
    }
}

async fn healthz(host: &TestHost) -> serde_json::Value {
    let page = host.browser("localhost").get("/healthz").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "healthz is about the host: {page:?}"
    );
    page.json()
}

/// Waits until the IdP has `running` plugin threads; the test harness's own time limit
/// is the deadline.
async fn until_running_calls(host: &TestHost, running: u64) {
    while healthz(host).await["idps"]["stuck"]["running_calls"] != running {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `rounds` password sign-ins in each of `parallel` browsers; every one must succeed.
/// Returns each sign-in's latency (the POST only).
async fn password_sign_ins(host: &TestHost, parallel: usize, rounds: usize) -> Vec<Duration> {
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let mut browser: Browser = host.browser("localhost");
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..rounds {
                browser.cookies.remove("gh_session");
                browser.csrf().await;
                let began = Instant::now();
                let page = browser.password_sign_in(USERNAME, PASSWORD).await;
                latencies.push(began.elapsed());
                assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
                assert!(
                    page.set_cookies
                        .iter()
                        .any(|c| c.starts_with("gh_session=")),
                    "{page:?}"
                );
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("password sign-ins succeed"));
    }
    all
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |quantile: f64| {
        let index = ((latencies.len() as f64 - 1.0) * quantile).round() as usize;
        latencies[index.min(latencies.len() - 1)]
    };
    eprintln!(
        "password sign-in latency {label}: n={} median={:?} p99={:?} max={:?}",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or_default()
    );
}

const PARALLEL_SIGN_INS: usize = 4;
const ROUNDS: usize = 15;
const FLOODERS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_idp_does_not_stall_password_sign_ins() {
    let hole = BlackHole::start().await;
    let host = start_host(&hole.issuer, "idp_breaker_cooldown_seconds = 600").await;

    let quiet = password_sign_ins(&host, PARALLEL_SIGN_INS, ROUNDS).await;
    report("without the hanging IdP", quiet);

    // Hundreds of browsers keep pressing the hanging IdP's button while people sign
    // in with passwords.
    let stop = Arc::new(AtomicBool::new(false));
    let host = Arc::new(host);
    let mut flood = Vec::new();
    for _ in 0..FLOODERS {
        let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
        flood.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                answers.push(sso_start(&host).await);
                if stop.load(Ordering::SeqCst) {
                    return answers;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let loaded = password_sign_ins(&host, PARALLEL_SIGN_INS, ROUNDS).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for flooder in flood {
        answers.extend(flooder.await.expect("flooder"));
    }
    report(
        &format!("with {FLOODERS} browsers starting at the hanging IdP"),
        loaded,
    );

    let busy: Vec<&StartAnswer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let timed_out = answers
        .iter()
        .filter(|a| a.status == StatusCode::GATEWAY_TIMEOUT)
        .count();
    eprintln!(
        "{} starts: {} refused as busy, {timed_out} timed out; {} reached the IdP",
        answers.len(),
        busy.len(),
        hole.accepted()
    );
    assert!(answers.len() >= FLOODERS);
    assert_eq!(
        busy.len() + timed_out,
        answers.len(),
        "every start is refused or times out: {:?}",
        answers.iter().find(|a| !matches!(
            a.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ))
    );
    assert!(
        timed_out <= per_idp_limit(),
        "at most the admitted calls wait"
    );
    assert!(
        hole.accepted() <= per_idp_limit(),
        "only the admitted calls reached the IdP, none queued behind them: {}",
        hole.accepted()
    );
    for refusal in &busy {
        assert!(refusal.retry_after.is_some(), "{refusal:?}");
        assert!(
            refusal
                .body
                .contains("This sign-in method is busy; please try again in a moment."),
            "{refusal:?}"
        );
    }

    // The host is healthy; the IdP's breaker is open after the timeouts.
    let health = healthz(&host).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["idps"]["stuck"]["breaker"], "open", "{health}");

    // When the hang ends, the lingering threads end and give their capacity back; the
    // open breaker still refuses at once, without calling the IdP.
    hole.release();
    until_running_calls(&host, 0).await;
    let reached = hole.accepted();
    let after = sso_start(&host).await;
    assert_eq!(after.status, StatusCode::SERVICE_UNAVAILABLE, "{after:?}");
    assert_eq!(
        hole.accepted(),
        reached,
        "an open breaker does not call the IdP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_start_gives_its_capacity_back_when_its_thread_ends() {
    let hole = BlackHole::start().await;
    let host = start_host(
        &hole.issuer,
        "plugin_calls_per_idp = 1\nidp_breaker_failures = 100",
    )
    .await;

    let first = sso_start(&host).await;
    assert_eq!(first.status, StatusCode::GATEWAY_TIMEOUT, "{first:?}");
    assert_eq!(hole.accepted(), 1);
    // Its plugin thread still waits on the IdP and still counts against the limit.
    let refused = sso_start(&host).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert!(refused.retry_after.is_some(), "{refused:?}");
    assert_eq!(
        hole.accepted(),
        1,
        "the refused start did not reach the IdP"
    );

    hole.release();
    until_running_calls(&host, 0).await;
    let admitted = sso_start(&host).await;
    assert_eq!(hole.accepted(), 2, "the freed capacity admitted a new call");
    assert_ne!(
        admitted.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{admitted:?}"
    );

    // Leave no plugin thread waiting on the IdP when the test's runtime goes away.
    hole.release();
    until_running_calls(&host, 0).await;
}
