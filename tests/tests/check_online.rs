//! `gatehouse check --online` through the real binary: an OIDC IdP whose issuer is a real
//! started provider (the npm `oidc-provider`) passes, and so do Auth0 and Google IdPs (the
//! same check, delegated); an issuer on a closed port and a SAML
//! metadata URL answering 404 are `idp-unreachable` errors (exit 1) with the IdP and the
//! `[[idp]]` table's line, in the human and the JSON rendering; a panicking plugin's check
//! is an error, not the end of the process; a provider that never answers is stopped at
//! `[host] plugin_call_timeout_seconds`; and the checks run at most `[host]
//! plugin_calls_max` at a time, so none is refused for want of a permit. The 1.0–1.2
//! fixture plugins' "no online check" is in `plugin_api_compat.rs`.

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    path::Path,
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use gatehouse_tests::{
    config_text,
    oidc::{self, OidcProvider, ProviderOptions},
    plugin_dir,
    saml::build_saml_plugin,
};
use serde_json::Value;

const CLIENT_ID: &str = "gatehouse-oidc";
const CLIENT_SECRET: &str = "gatehouse-oidc-secret-0123456789-0123456789";

/// Runs `gatehouse check --online` on `config` (a template) with `args`.
fn check_online(dir: &Path, config: &str, args: &[&str]) -> Output {
    let database = format!("sqlite://{}", dir.join("gh.db").display());
    let path = dir.join("plugins.toml");
    std::fs::write(&path, config_text(config, &database)).expect("write config");
    Command::new(plugin_dir().join("gatehouse"))
        .args(["check", "--online", "--config"])
        .arg(&path)
        .args(args)
        .output()
        .expect("run gatehouse")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

/// An `[[idp]]` of the `oidc` plugin on `domain` with this issuer.
fn oidc_idp(id: &str, domain: &str, issuer: &str) -> String {
    format!(
        r#"
[[idp]]
id = "{id}"
domain = "{domain}"
plugin = "oidc"
username_attribute = "sub"

[idp.settings]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
"#
    )
}

/// A 127.0.0.1 port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// An HTTP server on 127.0.0.1 that answers every request 404 after a short hold, counting
/// the requests and the most it held at once.
struct NotFound {
    port: u16,
    served: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

impl NotFound {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let served = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let (served_, most_) = (Arc::clone(&served), Arc::clone(&most_at_once));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (served, most, now) =
                    (Arc::clone(&served_), Arc::clone(&most_), Arc::clone(&now));
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    // Held so that checks running at once overlap here.
                    std::thread::sleep(Duration::from_millis(300));
                    now.fetch_sub(1, Ordering::SeqCst);
                    served.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found",
                    );
                });
            }
        });
        Self {
            port,
            served,
            most_at_once,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[test]
fn an_oidc_idp_at_a_real_provider_passes_and_says_what_it_reached() {
    let op = OidcProvider::start(ProviderOptions {
        clients: vec![oidc::client(
            "corp",
            CLIENT_ID,
            CLIENT_SECRET,
            "client_secret_basic",
        )],
        ..ProviderOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = oidc::host_config(&oidc_idp("corp", "root", op.issuer()));
    let output = check_online(dir.path(), &config, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", op.log());
    let discovery = format!(
        "ok: IdP `corp` (plugin `oidc`): reached discovery document at {}/.well-known/openid-configuration",
        op.issuer().trim_end_matches('/')
    );
    assert!(text.contains(&discovery), "{text}");
    assert!(text.contains("usable signing key(s)"), "{text}");
    assert!(text.contains("ok: no problems found"), "{text}");
    assert!(!dir.path().join("gh.db").exists(), "no database is created");

    let output = check_online(dir.path(), &config, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let report = json(&output);
    assert_eq!(report["diagnostics"], serde_json::json!([]));
    assert_eq!(report["online"][0]["idp"], "corp");
    assert_eq!(report["online"][0]["status"], "ok");
    assert_eq!(
        report["online"][0]["checked"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn auth0_and_google_idps_are_checked_by_the_same_oidc_core() {
    let auth0 = OidcProvider::start(ProviderOptions {
        trailing_slash_issuer: true,
        ..ProviderOptions::default()
    });
    let google = OidcProvider::start(ProviderOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let config = oidc::host_config(&format!(
        r#"
[[domain]]
name = "acme"
hosts = ["acme.test"]

[[idp]]
id = "acme"
domain = "acme"
plugin = "auth0"
username_attribute = "sub"

[idp.settings]
domain = "acme-test.eu.auth0.com"
issuer_url = "{auth0}"
client_id = "auth0-client"
client_secret = "{CLIENT_SECRET}"

[[idp]]
id = "google"
domain = "root"
plugin = "google"
username_attribute = "sub"

[idp.settings]
issuer_url = "{google}"
client_id = "google-client.apps.googleusercontent.com"
client_secret = "{CLIENT_SECRET}"
"#,
        auth0 = auth0.issuer(),
        google = google.issuer()
    ));
    let output = check_online(dir.path(), &config, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for (idp, plugin, issuer) in [
        ("acme", "auth0", auth0.issuer()),
        ("google", "google", google.issuer()),
    ] {
        let reached = format!(
            "ok: IdP `{idp}` (plugin `{plugin}`): reached discovery document at {}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        assert!(text.contains(&reached), "{reached}\n{text}");
    }
}

#[test]
fn an_issuer_on_a_closed_port_is_idp_unreachable_with_the_idp_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = format!("http://127.0.0.1:{}", closed_port());
    let config = oidc::host_config(&oidc_idp("down", "root", &issuer));
    let output = check_online(dir.path(), &config, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("error[idp-unreachable]"), "{text}");
    assert!(text.contains("IdP `down` (plugin `oidc`)"), "{text}");
    assert!(text.contains("could not connect"), "{text}");
    assert!(text.contains("help: check that `issuer`"), "{text}");

    let output = check_online(dir.path(), &config, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    let written = config_text(&config, "x");
    let table_line = written
        .lines()
        .position(|line| line == "[[idp]]")
        .expect("an [[idp]] table")
        + 1;
    let diagnostic = report["diagnostics"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["code"] == "idp-unreachable"))
        .unwrap_or_else(|| panic!("idp-unreachable in {report}"));
    assert_eq!(diagnostic["severity"], "error");
    assert_eq!(diagnostic["idp"], "down");
    assert_eq!(diagnostic["domain"], "root");
    assert_eq!(diagnostic["line"], table_line);
    assert!(
        diagnostic["message"]
            .as_str()
            .is_some_and(|m| m.contains(&issuer))
    );
    assert_eq!(report["online"][0]["status"], "problems");
}

#[test]
fn a_saml_metadata_url_answering_404_is_idp_unreachable() {
    build_saml_plugin();
    let server = NotFound::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[host]
public_url = "http://localhost"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"

[[domain]]
name = "root"
hosts = ["localhost"]

[[plugin]]
id = "saml"
library = "gatehouse_saml"

[[idp]]
id = "corp-saml"
domain = "root"
plugin = "saml"
username_attribute = "NameID"

[idp.settings]
idp_metadata_url = "{}"
"#,
        server.url("/metadata")
    );
    let output = check_online(dir.path(), &config, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("error[idp-unreachable]"), "{text}");
    assert!(text.contains("IdP `corp-saml` (plugin `saml`)"), "{text}");
    assert!(
        text.contains(&format!(
            "GET {} answered HTTP 404",
            server.url("/metadata")
        )),
        "{text}"
    );
    assert!(text.contains("idp_metadata_url"), "{text}");
}

#[test]
fn a_panicking_check_is_an_error_and_the_process_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "panicking"
library = "gatehouse_fixture_panicking"

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "bomb"
domain = "root"
plugin = "panicking"
username_attribute = "sub"

[[idp]]
id = "example"
domain = "root"
plugin = "example"
username_attribute = "sub"
"#;
    let output = check_online(dir.path(), config, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the plugin panicked: deliberate panic in check_online"),
        "{text}"
    );
    assert!(
        text.contains(
            "ok: IdP `example` (plugin `example`): reached nothing: the example IdP has no provider"
        ),
        "{text}"
    );
}

#[test]
fn a_provider_that_never_answers_is_stopped_at_the_plugin_call_time_limit() {
    // Accepts connections and reads nothing back: every request hangs.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = oidc::host_config(&oidc_idp(
        "silent",
        "root",
        &format!("http://127.0.0.1:{port}"),
    ))
    .replace(
        "plugin_call_timeout_seconds = 60",
        "plugin_call_timeout_seconds = 1",
    );
    plugin_dir(); // Built before the clock starts.
    let started = std::time::Instant::now();
    let output = check_online(dir.path(), &config, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("error[idp-unreachable]"), "{text}");
    assert!(
        text.contains("IdP `silent` (plugin `oidc`): the online check did not finish within 1 s"),
        "{text}"
    );
    assert!(text.contains("plugin_call_timeout_seconds"), "{text}");
    // A figure, not an assertion: the command ends at the call limit (1 s), not at the
    // request's own http_timeout_seconds (30 s).
    println!(
        "check --online with a silent provider took {:.1} s (plugin_call_timeout_seconds = 1)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_checks_run_at_most_plugin_calls_max_at_a_time_and_none_is_refused() {
    let server = NotFound::start();
    let dir = tempfile::tempdir().unwrap();
    // One OIDC IdP per domain (two on one domain would be `duplicate-protocol`).
    let idps: String = (1..=5)
        .map(|n| {
            let domain = format!("d{n}");
            format!(
                "\n[[domain]]\nname = \"{domain}\"\nhosts = [\"{domain}.test\"]\n{}",
                oidc_idp(&format!("op{n}"), &domain, &server.url(&format!("/op{n}")))
            )
        })
        .collect();
    // Two permits in the whole host: a third call at once would be refused as busy.
    let config = oidc::host_config(&idps).replace(
        "plugin_call_timeout_seconds = 60",
        "plugin_call_timeout_seconds = 60\nplugin_calls_max = 2",
    );
    let output = check_online(dir.path(), &config, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json(&output);
    let unreachable: Vec<&Value> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "idp-unreachable")
        .collect();
    assert_eq!(unreachable.len(), 5, "{report}");
    for diagnostic in unreachable {
        let message = diagnostic["message"].as_str().unwrap_or_default();
        assert!(message.contains("answered HTTP 404"), "{message}");
    }
    assert_eq!(server.served.load(Ordering::SeqCst), 5);
    let most = server.most_at_once.load(Ordering::SeqCst);
    assert!(most <= 2, "{most} checks ran at once");
    println!("online checks at once: at most {most} of 5 (plugin_calls_max = 2)");
}
