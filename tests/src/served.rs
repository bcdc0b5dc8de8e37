//! Gatehouse hosts reachable over real TCP on loopback, for tests in which two of them talk
//! to each other (Totara Connect) or a real browser drives one: a `gatehouse serve` process
//! ([`ServedProcess`]), or an in-process [`TestHost`] served on a port ([`ServedInProcess`],
//! for the few tests that must move a host's clock); the `gatehouse` command line run against
//! a served host's configuration; and [`WebClient`], a cookie-keeping HTTP client that shows
//! every redirect instead of following it. Test support, not a test.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use gatehouse::store::Store;

use crate::{TestHost, plugin_dir};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// How long a starting host may take to answer `/healthz` (it loads every plugin library).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A `gatehouse serve` process on `127.0.0.1:<port>`, with its own directory (configuration,
/// SQLite database, log); killed when dropped.
pub struct ServedProcess {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    host_name: String,
    config_path: PathBuf,
    /// Where its `gatehouse` binary and plugin libraries are.
    binaries: PathBuf,
}

impl ServedProcess {
    /// Writes `template` as the host's `plugins.toml` and starts `gatehouse serve` on it,
    /// waiting until `/healthz` answers. The template's placeholders: `{plugin_dir}`,
    /// `{database}` (a fresh SQLite file), `{port}` and `{origin}` (`http://<host_name>:<port>`,
    /// for `public_url`; the template should `listen = "127.0.0.1:{port}"`).
    pub async fn start(host_name: &str, template: &str) -> Self {
        Self::start_from(plugin_dir(), host_name, template).await
    }

    /// Like [`ServedProcess::start`], with the `gatehouse` binary and the plugin libraries
    /// of `binaries` (a release build's directory, for load drivers).
    pub async fn start_from(binaries: &Path, host_name: &str, template: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        Self::start_in(dir, binaries, host_name, template, &database, free_port()).await
    }

    /// Like [`ServedProcess::start`], on the database at `database` (a URL: several hosts may
    /// share one PostgreSQL database) and on `port`, given rather than chosen, so a host that
    /// was killed can be started again where a proxy or its peers expect it. The template's
    /// placeholders are those of [`ServedProcess::start`].
    pub async fn start_on(host_name: &str, template: &str, database: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, plugin_dir(), host_name, template, database, port).await
    }

    /// Writes the configuration into `dir`, starts `serve` and waits until it is healthy.
    async fn start_in(
        dir: tempfile::TempDir,
        binaries: &Path,
        host_name: &str,
        template: &str,
        database: &str,
        port: u16,
    ) -> Self {
        let origin = format!("http://{host_name}:{port}");
        let text = template
            .replace("{plugin_dir}", &binaries.display().to_string())
            .replace("{database}", database)
            .replace("{port}", &port.to_string())
            .replace("{origin}", &origin);
        let config_path = dir.path().join("plugins.toml");
        std::fs::write(&config_path, text).expect("write plugins.toml");
        let child = spawn_serve(binaries, dir.path(), &config_path);
        let served = Self {
            child,
            dir,
            port,
            host_name: host_name.to_owned(),
            config_path,
            binaries: binaries.to_owned(),
        };
        let log = served.dir.path().join("serve.log");
        wait_healthy(port, host_name, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
        .await;
        served
    }

    /// Kills the process with `SIGKILL` (no graceful shutdown: requests in flight are cut,
    /// transactions in flight are rolled back by the database) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the host");
        let _ = self.child.wait();
    }

    /// `http://<host name>:<port>`: the origin browsers and other hosts use.
    pub fn origin(&self) -> String {
        format!("http://{}:{}", self.host_name, self.port)
    }

    /// An absolute URL of `path` on this host.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id (to read its CPU time and memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `gatehouse <args> --config <this host's plugins.toml>`, not yet run.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.binaries.join("gatehouse"));
        command
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null());
        command
    }

    /// The host's directory (configuration, database, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Runs `gatehouse <args> --config <this host's plugins.toml>` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args)
            .output()
            .expect("run the gatehouse command")
    }

    /// Like [`ServedProcess::cli`], failing the test (with both outputs) unless it succeeds;
    /// returns standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "gatehouse {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The host's database, opened beside the running process (to read what it wrote).
    pub async fn store(&self) -> Store {
        let url = format!(
            "sqlite://{}",
            self.dir.path().join("gatehouse.db").display()
        );
        Store::connect(&url)
            .await
            .expect("open the served database")
    }
}

impl Drop for ServedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_serve(binaries: &Path, dir: &Path, config_path: &Path) -> Child {
    let log = std::fs::File::create(dir.join("serve.log")).expect("create serve.log");
    Command::new(binaries.join("gatehouse"))
        .args(["serve", "--config"])
        .arg(config_path)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start gatehouse serve")
}

/// Waits until `http://127.0.0.1:<port>/healthz` answers 2xx for `host_name`, failing the
/// test with `log()` after [`START_TIMEOUT`].
async fn wait_healthy(port: u16, host_name: &str, log: impl Fn() -> String) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let health = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .header("host", format!("{host_name}:{port}"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "the host on port {port} did not answer /healthz; its log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An in-process [`TestHost`] (real loader, real plugins, real database, a clock the test
/// moves) served over TCP on `127.0.0.1:<port>`; the server stops when dropped.
pub struct ServedInProcess {
    pub host: TestHost,
    port: u16,
    host_name: String,
    server: tokio::task::JoinHandle<()>,
}

impl ServedInProcess {
    /// Starts a [`TestHost`] from `template` (placeholders as for [`ServedProcess::start`]) and
    /// serves its router. Call from a multi-threaded Tokio runtime.
    pub async fn start(host_name: &str, template: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let origin = format!("http://{host_name}:{port}");
        let template = template
            .replace("{port}", &port.to_string())
            .replace("{origin}", &origin);
        let host = TestHost::start(&template).await;
        let app = host
            .router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        wait_healthy(port, host_name, String::new).await;
        Self {
            host,
            port,
            host_name: host_name.to_owned(),
            server,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}:{}", self.host_name, self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

impl Drop for ServedInProcess {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A browser-like HTTP client: keeps cookies (per host name, as browsers do, so hosts on
/// `localhost` and `127.0.0.1` keep apart even though ports are ignored), resolves
/// `localhost` to 127.0.0.1, and never follows a redirect on its own.
pub struct WebClient {
    http: reqwest::Client,
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Seen {
    pub url: String,
    pub status: u16,
    /// The `Location` header made absolute, for redirects.
    pub location: Option<String>,
    pub body: String,
}

impl Seen {
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status) && self.location.is_some()
    }

    /// The value of query parameter `name` in the redirect's target.
    pub fn location_param(&self, name: &str) -> Option<String> {
        let location = url::Url::parse(self.location.as_deref()?).ok()?;
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// The most redirects [`WebClient::follow`] takes before failing the test.
const MAX_REDIRECTS: usize = 20;

impl Default for WebClient {
    fn default() -> Self {
        Self::new()
    }
}

impl WebClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build the HTTP client");
        Self { http }
    }

    pub async fn get(&self, url: &str) -> Seen {
        seen(url, self.http.get(url).send().await)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Seen {
        seen(url, self.http.post(url).form(fields).send().await)
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    /// Follows `first`'s redirects with GETs until a page that is not a redirect; returns
    /// every response on the way, `first` included, the last one last.
    pub async fn follow(&self, first: Seen) -> Vec<Seen> {
        let mut chain = vec![first];
        while let Some(next) = chain.last().filter(|s| s.is_redirect()) {
            assert!(
                chain.len() <= MAX_REDIRECTS,
                "more than {MAX_REDIRECTS} redirects: {:?}",
                chain.iter().map(|s| &s.url).collect::<Vec<_>>()
            );
            let target = next.location.clone().expect("a redirect has a location");
            let page = self.get(&target).await;
            chain.push(page);
        }
        chain
    }

    /// GETs `url` and follows its redirects (see [`WebClient::follow`]).
    pub async fn visit(&self, url: &str) -> Vec<Seen> {
        let first = self.get(url).await;
        self.follow(first).await
    }
}

async fn seen(url: &str, response: reqwest::Result<reqwest::Response>) -> reqwest::Result<Seen> {
    let response = response?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| url::Url::parse(url).ok()?.join(value).ok())
        .map(String::from);
    let body = response.text().await?;
    Ok(Seen {
        url: url.to_owned(),
        status,
        location,
        body,
    })
}
