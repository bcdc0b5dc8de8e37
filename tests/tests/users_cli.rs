//! `gatehouse users list|show|set-password|suspend|unsuspend` and the bootstrap
//! administrator of `gatehouse serve`, through the real binary on a temporary SQLite
//! database: output, exit statuses, what each command wrote, and what `serve` prints.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use gatehouse::store::{NewUser, Session, Store};
use gatehouse_tests::{config_text, plugin_dir, served::free_port};

const TEMPLATE: &str = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "corp"
domain = "root"
plugin = "example"
username_attribute = "sub"
"#;

const OLD: &str = "the first password";
const NEW: &str = "a better password for admin";

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    database: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("gh.db").display());
    let text = config_text(TEMPLATE, &database).replace("{port}", &free_port().to_string());
    let config = dir.path().join("plugins.toml");
    std::fs::write(&config, text).expect("write plugins.toml");
    Setup {
        dir,
        config,
        database,
    }
}

/// `gatehouse users <args> --config <file>`, with `stdin` as standard input.
fn users(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(plugin_dir().join("gatehouse"))
        .arg("users")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("gatehouse ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn session(store: &Store, user_id: i64, name: &str) {
    store
        .create_session(&Session {
            id_hash: format!("hash-of-{name}"),
            user_id,
            domain: "root".into(),
            idp_id: None,
            subject: None,
            logout_state: Vec::new(),
            csrf_token: String::new(),
            created_at: 1,
            expires_at: i64::MAX / 2,
        })
        .await
        .expect("session");
}

#[tokio::test]
async fn users_lists_shows_suspends_and_sets_passwords() {
    let setup = setup();
    let store = Store::connect(&setup.database).await.expect("store");
    let random = gatehouse::clock::Randomness::system();
    let admin = store
        .create_user(
            &NewUser {
                username: "admin".into(),
                email: "admin@example.test".into(),
                branch: "root".into(),
                auth_source: "local".into(),
                password_hash: Some(gatehouse::passwords::hash(OLD, &random).expect("hash")),
                is_admin: true,
                ..NewUser::default()
            },
            &[],
            1,
        )
        .await
        .expect("admin");
    let ada = store
        .create_user(
            &NewUser {
                username: "ada".into(),
                branch: "root".into(),
                auth_source: "idp:corp".into(),
                ..NewUser::default()
            },
            &[],
            1,
        )
        .await
        .expect("ada");
    store
        .link_idp(admin, "corp", "test", 1)
        .await
        .expect("link");
    session(&store, admin, "admin-1").await;
    session(&store, ada, "ada-1").await;
    session(&store, ada, "ada-2").await;
    let config = &setup.config;

    // list
    let listed = users(config, &["list", "--format", "json"], "");
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let rows = json["users"].as_array().expect("users");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["username"], "admin");
    assert_eq!(rows[0]["admin"], true);
    assert_eq!(rows[0]["has_password"], true);
    assert_eq!(rows[1]["auth_source"], "idp:corp");
    assert_eq!(rows[1]["suspended"], false);
    assert_eq!(rows[1]["last_sign_in_at"], serde_json::Value::Null);
    let human = text(&users(config, &["list"], "").stdout);
    assert!(human.starts_with("ID "), "{human}");
    assert!(human.contains("admin@example.test"), "{human}");
    assert!(human.contains("local (admin)"), "{human}");
    assert!(human.contains("never"), "{human}");

    // show
    let shown = users(config, &["show", "admin", "--format", "json"], "");
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(json["linked_idps"], serde_json::json!(["corp"]));
    assert_eq!(json["sessions"], 1);
    assert_eq!(json["must_change_password"], false);
    let human = text(&users(config, &["show", "ada"], "").stdout);
    assert!(human.contains("live sessions:        2"), "{human}");
    assert!(human.contains("local password:       no"), "{human}");
    let unknown = users(config, &["show", "nobody"], "");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no account `nobody`"));

    // suspend / unsuspend
    let suspended = users(config, &["suspend", "ada"], "");
    assert_eq!(
        suspended.status.code(),
        Some(0),
        "{}",
        text(&suspended.stderr)
    );
    assert!(text(&suspended.stderr).contains("2 session(s) ended"));
    let row = store.user_by_id(ada).await.unwrap().expect("ada");
    assert!(row.suspended);
    assert_eq!(store.count_user_sessions(ada, 2).await.unwrap(), 0);
    let again = users(config, &["suspend", "ada"], "");
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stderr).contains("already is suspended"));
    let reinstated = users(config, &["unsuspend", "ada"], "");
    assert_eq!(reinstated.status.code(), Some(0));
    assert!(!store.user_by_id(ada).await.unwrap().expect("ada").suspended);
    let methods: Vec<String> = store
        .recent_audit(2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.method)
        .collect();
    assert_eq!(methods, ["admin-unsuspend", "admin-suspend"]);
    assert_eq!(
        users(config, &["suspend", "nobody"], "").status.code(),
        Some(1)
    );

    // set-password: one line of standard input
    let set = users(config, &["set-password", "admin"], &format!("{NEW}\n"));
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
    assert!(text(&set.stderr).contains("1 session(s) ended"));
    let row = store.user_by_id(admin).await.unwrap().expect("admin");
    let hash = row.password_hash.clone().expect("hash");
    assert!(gatehouse::passwords::verify(NEW, &hash));
    assert!(!gatehouse::passwords::verify(OLD, &hash));
    assert!(!row.must_change_password);
    assert_eq!(store.count_user_sessions(admin, 2).await.unwrap(), 0);
    assert_eq!(
        store.recent_audit(1).await.unwrap()[0].method,
        "admin-set-password"
    );

    let forced = users(
        config,
        &["set-password", "--must-change", "admin"],
        &format!("{OLD} again\r\n"),
    );
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    let row = store.user_by_id(admin).await.unwrap().expect("admin");
    assert!(row.must_change_password);
    let hash = row.password_hash.expect("hash");
    assert!(gatehouse::passwords::verify(&format!("{OLD} again"), &hash));

    // Refusals change nothing.
    for (input, said) in [
        ("short\n", "at least 12 characters"),
        ("", "no password on standard input"),
        ("a tab\there, then more\n", "control characters"),
    ] {
        let refused = users(config, &["set-password", "admin"], input);
        assert_eq!(refused.status.code(), Some(1), "{input:?}");
        let stderr = text(&refused.stderr);
        assert!(stderr.contains(said), "{input:?}: {stderr}");
        assert!(stderr.contains("not changed"), "{stderr}");
    }
    let long = format!(
        "{}\n",
        "x".repeat(gatehouse::accounts::MAX_PASSWORD_BYTES + 1)
    );
    let refused = users(config, &["set-password", "admin"], &long);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("at most 1024 bytes"));
    let unknown = users(config, &["set-password", "nobody"], &format!("{NEW}\n"));
    assert_eq!(unknown.status.code(), Some(1));
    // Never an argument: clap refuses the extra one (its usage error, status 2).
    let argument = users(config, &["set-password", "admin", NEW], "");
    assert_eq!(argument.status.code(), Some(2));
    assert!(
        text(&argument.stderr).contains("unexpected argument"),
        "{}",
        text(&argument.stderr)
    );
    assert_eq!(
        store
            .user_by_id(admin)
            .await
            .unwrap()
            .and_then(|u| u.password_hash),
        Some(hash),
        "no refusal changed the password"
    );
    store.close().await;
}

#[test]
fn users_commands_say_when_the_configuration_cannot_be_read_and_document_themselves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    for args in [
        vec!["list"],
        vec!["show", "admin"],
        vec!["set-password", "admin"],
        vec!["suspend", "admin"],
        vec!["unsuspend", "admin"],
    ] {
        let output = users(&missing, &args, "");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let help = Command::new(plugin_dir().join("gatehouse"))
        .args(["users", "set-password", "--help"])
        .output()
        .expect("help");
    let help = text(&help.stdout);
    assert!(help.contains("never an argument"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
    assert!(help.contains("Example:"), "{help}");
    assert!(help.contains("--must-change"), "{help}");
    for command in ["list", "show", "suspend", "unsuspend"] {
        let help = Command::new(plugin_dir().join("gatehouse"))
            .args(["users", command, "--help"])
            .output()
            .expect("help");
        let help = text(&help.stdout);
        assert!(help.contains("Exit status:"), "{command}: {help}");
        assert!(help.contains("gatehouse users "), "{command}: {help}");
    }
}

/// `gatehouse serve` in `setup`'s directory with `admin_password` as
/// `GATEHOUSE_ADMIN_PASSWORD` (or none), until its output contains `wanted`; its output.
fn serve_until(setup: &Setup, admin_password: Option<&str>, wanted: &str) -> String {
    let log_path = setup.dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut command = Command::new(plugin_dir().join("gatehouse"));
    command
        .args(["serve", "--config"])
        .arg(&setup.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .env_remove("GATEHOUSE_ADMIN_PASSWORD");
    if let Some(password) = admin_password {
        command.env("GATEHOUSE_ADMIN_PASSWORD", password);
    }
    let mut child = command.spawn().expect("start gatehouse serve");
    let started = Instant::now();
    let output = loop {
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        if output.contains(wanted) {
            break output;
        }
        if started.elapsed() > Duration::from_secs(90) || child.try_wait().ok().flatten().is_some()
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`gatehouse serve` never printed {wanted:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().expect("stop serve");
    let _ = child.wait();
    output
}

#[tokio::test]
async fn serve_makes_a_generated_admin_password_one_to_change_and_says_when_the_variable_is_ignored()
 {
    let first = setup();
    let output = serve_until(&first, None, "one-time password is: ");
    let password = output
        .split("one-time password is: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the password")
        .to_owned();
    let store = Store::connect(&first.database).await.expect("store");
    let admin = store
        .user_by_username("admin")
        .await
        .unwrap()
        .expect("admin");
    assert!(admin.must_change_password, "generated: must be changed");
    assert!(gatehouse::passwords::verify(
        &password,
        admin.password_hash.as_deref().expect("hash")
    ));

    // The variable on a database that has accounts: ignored, and said so.
    let output = serve_until(&first, Some("chosen too late"), "Gatehouse is serving");
    assert!(
        output.contains("GATEHOUSE_ADMIN_PASSWORD is set but ignored"),
        "{output}"
    );
    let admin = store
        .user_by_username("admin")
        .await
        .unwrap()
        .expect("admin");
    assert!(!gatehouse::passwords::verify(
        "chosen too late",
        admin.password_hash.as_deref().expect("hash")
    ));
    store.close().await;

    // Chosen by the operator on an empty database: no change needed.
    let fresh = setup();
    let output = serve_until(
        &fresh,
        Some("chosen by the operator"),
        "Gatehouse is serving",
    );
    assert!(!output.contains("one-time password"), "{output}");
    let store = Store::connect(&fresh.database).await.expect("store");
    let admin = store
        .user_by_username("admin")
        .await
        .unwrap()
        .expect("admin");
    assert!(!admin.must_change_password);
    store.close().await;
}
