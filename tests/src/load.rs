//! Support for load drivers (benches that start real processes and print figures): what a
//! process has spent, read from `/proc` (CPU ticks, context switches per thread, peak
//! memory); a small cookie-keeping client for one simulated browser at a served host; a
//! raw HTTP/1.1 keep-alive load generator cheap enough to leave the CPU to the host; and
//! latency percentiles. Linux only. Not a test, and nothing here asserts a timing.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The kernel's clock ticks per second (the unit of `utime` and `stime` in `/proc`).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// User plus system CPU ticks of a whole process (every thread, living and exited), from
/// `/proc/<pid>/stat`; 0 when the process is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces and parentheses) start
    // after the last ')'; utime and stime are fields 14 and 15 of the line, 11 and 12 there.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field =
        |index: usize| -> u64 { fields.get(index).and_then(|v| v.parse().ok()).unwrap_or(0) };
    field(11) + field(12)
}

/// Voluntary plus involuntary context switches of each living thread of `pid`, by thread
/// id. Per thread because `/proc/<pid>/status` counts only the main thread's switches,
/// which for a Tokio server are almost none: the work (and the switching) is on the worker
/// and blocking threads, each with its own `/proc/<pid>/task/<tid>/status`.
pub fn context_switches_by_thread(pid: u32) -> HashMap<u32, u64> {
    let mut switches = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return switches;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let count = ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
            .iter()
            .map(|key| status_number(&status, key).unwrap_or(0))
            .sum();
        switches.insert(tid, count);
    }
    switches
}

/// The context switches between two [`context_switches_by_thread`] readings: for each thread
/// alive at the second, its count less its count at the first (a thread started in between
/// counts from zero). A thread that exited in between is not counted at all (the kernel
/// keeps its switches only in the `getrusage` total, which another process cannot read), so
/// with threads coming and going this is a floor.
pub fn context_switches_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, count)| count.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// A `kB` line of `/proc/<pid>/status` in KiB (`VmHWM:` is the peak resident set since the
/// process started, `VmRSS:` the current one); `None` when the process is gone.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_number(&status, key)
}

fn status_number(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The pid of a living child of this process whose command name (`comm`) is `name`, e.g. the
/// `node` a test harness started for a peer that does not say its pid.
pub fn child_named(name: &str) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            // After the ')': state, then the parent's pid.
            let parent = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            comm == name && parent == Some(me)
        })
}

/// The median and 99th percentile (nearest rank) of some durations, in milliseconds; zero
/// when there are none.
pub fn p50_p99_ms(latencies: &mut [Duration]) -> (f64, f64) {
    if latencies.is_empty() {
        return (0.0, 0.0);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99))
}

/// What a [`HostBrowser`] request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `Location` header as sent.
    pub location: Option<String>,
    pub body: String,
}

/// One simulated browser at a served host: its own cookie jar and connections, requests
/// sent to `127.0.0.1:<port>` with the `Host` header the host's domain is configured for
/// (so the host builds its callback URLs on that name, whatever the port), redirects shown
/// rather than followed. Errors are returned as text so a load driver counts them.
pub struct HostBrowser {
    http: reqwest::Client,
    origin: String,
    host: String,
}

impl HostBrowser {
    /// A fresh browser (empty cookie jar, no connections yet) for the host listening on
    /// `port`, sending `Host: <host>`.
    pub fn new(port: u16, host: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            origin: format!("http://127.0.0.1:{port}"),
            host: host.to_owned(),
        })
    }

    /// GETs `path_and_query` (a path on the host, or an absolute URL on its host name).
    pub async fn get(&self, target: &str) -> Result<Answer, String> {
        let url = self.url(target);
        self.send(self.http.get(&url), &url).await
    }

    /// POSTs a form to `path`.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Answer, String> {
        let url = self.url(path);
        self.send(self.http.post(&url).form(fields), &url).await
    }

    /// The URL to request for `target`: a path, or an absolute URL on this host's name whose
    /// origin is swapped for the listening address.
    fn url(&self, target: &str) -> String {
        let path = ["http://", "https://"]
            .iter()
            .find_map(|scheme| target.strip_prefix(scheme))
            .map_or(target, |rest| {
                rest.find('/').map_or("/", |slash| &rest[slash..])
            });
        format!("{}{path}", self.origin)
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<Answer, String> {
        let response = request
            .header(reqwest::header::HOST, &self.host)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|e| format!("{url}: reading the body: {e}"))?;
        Ok(Answer {
            status,
            location,
            body,
        })
    }
}

/// The value of the first `<input name="{name}" … value="…">` in `html` (attributes in
/// either order within the tag).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value = tag.split_once("value=\"")?.1;
    Some(value.split_once('"')?.0.replace("&amp;", "&"))
}

/// What [`hammer`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Hammered {
    /// Complete responses with a 2xx or 3xx status.
    pub ok: u64,
    /// Other statuses, malformed responses and broken connections.
    pub errors: u64,
    /// The status of the last complete response (a page or a redirect: say which was timed).
    pub status: u16,
    pub elapsed: Duration,
}

/// GETs `path` (with `Host: <host>`) from `connections` keep-alive HTTP/1.1 connections to
/// `127.0.0.1:<port>` as fast as the host answers, for `duration`. Written on a bare socket
/// (one fixed request, responses framed by `Content-Length`) so the load generator costs
/// little next to the server it measures on a small machine.
pub async fn hammer(
    port: u16,
    host: &str,
    path: &str,
    connections: usize,
    duration: Duration,
) -> Hammered {
    let request: Arc<[u8]> =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gatehouse-bench\r\n\r\n")
            .into_bytes()
            .into();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let status = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (request, stop) = (request.clone(), stop.clone());
            let (ok, errors, status) = (ok.clone(), errors.clone(), status.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // One connection for as long as it keeps working; a new one after an error.
                    if keep_alive_loop(port, &request, &stop, &ok, &status)
                        .await
                        .is_err()
                    {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    Hammered {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        status: u16::try_from(status.load(Ordering::Relaxed)).unwrap_or(0),
        elapsed: started.elapsed(),
    }
}

/// Sends `request` on one connection again and again until `stop`; counts 2xx and 3xx
/// answers in `ok` (the last status in `last`), and ends with an error at anything else.
async fn keep_alive_loop(
    port: u16,
    request: &[u8],
    stop: &AtomicBool,
    ok: &AtomicU64,
    last: &AtomicU64,
) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(request).await.map_err(|e| e.to_string())?;
        let status = read_response(&mut stream, &mut buffer).await?;
        last.store(u64::from(status), Ordering::Relaxed);
        if !(200..400).contains(&status) {
            return Err(format!("status {status}"));
        }
        ok.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads one response (headers, then a `Content-Length` body) from `stream`, keeping any
/// bytes past it in `buffer`; its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<u16, String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).map_err(|e| e.to_string())?;
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("no status line")?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or("no Content-Length (a chunked answer is not read here)")?;
            let total = end + 4 + length;
            while buffer.len() < total {
                let read = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if read == 0 {
                    return Err("closed mid-body".into());
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            buffer.drain(..total);
            return Ok(status);
        }
        let read = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("closed".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Builds `packages` in release mode in this workspace and returns the directory of the
/// binary and plugin libraries (`target/release`, or under `CARGO_TARGET_DIR`).
///
/// Without what cargo set for running the bench calling it: build scripts that read one of
/// these (ring's reads `CARGO_MANIFEST_DIR`) would be rebuilt here, and then again by the
/// next `cargo bench`, each time.
pub fn release_build(packages: &[&str]) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    command
        .current_dir(&root)
        .args(["build", "--release", "--quiet"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().expect("run cargo build --release");
    assert!(status.success(), "the release build failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    target.join("release")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(p50_p99_ms(&mut latencies), (50.0, 99.0));
        assert_eq!(p50_p99_ms(&mut []), (0.0, 0.0));
    }

    #[test]
    fn input_values_are_found_with_attributes_in_either_order() {
        let html = r#"<form><input type="hidden" name="csrf" value="a&amp;b"><input value="x" name="other"></form>"#;
        assert_eq!(input_value(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(input_value(html, "other").as_deref(), Some("x"));
        assert_eq!(input_value(html, "missing"), None);
    }

    #[test]
    fn this_process_has_cpu_and_threads_and_a_peak() {
        let me = std::process::id();
        assert!(!context_switches_by_thread(me).is_empty());
        assert!(status_kib(me, "VmHWM:").is_some_and(|kib| kib > 0));
        assert!(clock_ticks_per_second() > 0);
    }
}
