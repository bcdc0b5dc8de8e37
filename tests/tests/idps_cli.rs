//! `gatehouse idps` and the URLs `gatehouse explain --domain` prints, through the real
//! binary: every IdP with its status (loaded, plugin failed to load, settings refused), the
//! URLs to register for each host of its domain, the exit statuses, the last successful
//! sign-in after a real one, and the agreement of the listed callback URLs with the ones a
//! served host hands its plugin for a browser on each host.

use std::{path::Path, process::Command};

use gatehouse_tests::{
    config_text, plugin_dir,
    saml::build_saml_plugin,
    served::{ServedProcess, WebClient},
};
use serde_json::Value;

fn gatehouse() -> Command {
    Command::new(plugin_dir().join("gatehouse"))
}

/// Two hosts on domain `acme` (one written with its own port), behind `public_url`'s https:
/// an OIDC IdP signing out at the provider, a SAML IdP, an IdP whose plugin library is not
/// there, and one whose settings its plugin refuses.
const FOUR_IDPS: &str = r#"[host]
public_url = "https://gatehouse.example.test"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[plugin]]
id = "saml"
library = "gatehouse_saml"

[[plugin]]
id = "legacy"
library = "gatehouse_not_built_anywhere"

[[domain]]
name = "root"
hosts = ["gatehouse.example.test"]

[[domain]]
name = "acme"
hosts = ["learn.acme.test", "sso.acme.test:9443"]
branch = "acme"

[[idp]]
id = "corp"
domain = "acme"
plugin = "oidc"
name = "Acme staff"
username_attribute = "email"
logout = { at_idp = true }

[idp.settings]
issuer = "https://login.acme.test"
client_id = "gatehouse"
client_secret = "a-client-secret-for-tests"

[[idp]]
id = "adfs"
domain = "acme"
plugin = "saml"
username_attribute = "email"

[idp.settings]
idp_metadata_url = "https://adfs.acme.test/FederationMetadata.xml"

[[idp]]
id = "old"
domain = "acme"
plugin = "legacy"
username_attribute = "email"

[[idp]]
id = "typo"
domain = "acme"
plugin = "example"
username_attribute = "email"

[idp.settings]
email = "not-an-address"
"#;

fn write(dir: &Path, template: &str) -> std::path::PathBuf {
    build_saml_plugin();
    let database = format!("sqlite://{}", dir.join("gh.db").display());
    let path = dir.join("plugins.toml");
    std::fs::write(&path, config_text(template, &database)).expect("write config");
    path
}

fn run(path: &Path, args: &[&str]) -> std::process::Output {
    gatehouse()
        .args(args)
        .arg("--config")
        .arg(path)
        .output()
        .expect("run gatehouse")
}

#[test]
fn explain_prints_each_hosts_urls_and_the_idps_that_are_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), FOUR_IDPS);
    let output = run(&path, &["explain", "--domain", "acme"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for url in [
        // OIDC: the redirect URI and the post-logout URI on each host.
        "https://learn.acme.test/sso/corp/callback",
        "https://sso.acme.test:9443/sso/corp/callback",
        "https://learn.acme.test/sso/corp/logout",
        "https://sso.acme.test:9443/sso/corp/logout",
        // SAML: the SP metadata, ACS and single logout URLs on each host, and the entity id.
        "https://learn.acme.test/sso/adfs/metadata",
        "https://sso.acme.test:9443/sso/adfs/metadata",
        "https://sso.acme.test:9443/sso/adfs/callback",
        "https://learn.acme.test/sso/adfs/logout",
    ] {
        assert!(stdout.contains(url), "missing {url}:\n{stdout}");
    }
    assert!(stdout.contains("SP entity id:"), "{stdout}");
    assert!(stdout.contains("host the browser came on"), "{stdout}");
    // The IdP without its library and the one with refused settings, with their reasons.
    let not_served = stdout
        .split("IdPs not served")
        .nth(1)
        .unwrap_or_else(|| panic!("no section of IdPs not served:\n{stdout}"));
    let old = not_served
        .lines()
        .find(|l| l.contains("`old`"))
        .unwrap_or_else(|| panic!("IdP old not listed:\n{stdout}"));
    assert!(old.contains("plugin failed to load"), "{old}");
    assert!(old.contains("the file does not exist"), "{old}");
    let typo = not_served
        .lines()
        .find(|l| l.contains("`typo`"))
        .unwrap_or_else(|| panic!("IdP typo not listed:\n{stdout}"));
    assert!(typo.contains("settings refused"), "{typo}");
    assert!(typo.contains("not-an-address"), "{typo}");
    // Domain `root` has no IdP: nothing of acme's leaks into its explanation.
    let output = run(&path, &["explain", "--domain", "root"]);
    let root = String::from_utf8_lossy(&output.stdout);
    assert!(!root.contains("acme.test"), "{root}");
}

#[test]
fn idps_lists_every_idp_with_its_status_and_urls_and_exits_1_when_one_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), FOUR_IDPS);
    let output = run(&path, &["idps"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let block = |id: &str| -> String {
        stdout
            .split("\n\n")
            .find(|b| b.starts_with(&format!("{id} (")))
            .unwrap_or_else(|| panic!("no block for {id}:\n{stdout}"))
            .to_owned()
    };
    let corp = block("corp");
    assert!(
        corp.contains("domain `acme`, plugin `oidc` (oidc), button"),
        "{corp}"
    );
    assert!(corp.contains("status:       loaded"), "{corp}");
    assert!(corp.contains("last sign-in: never"), "{corp}");
    assert!(
        has_line(
            &corp,
            "redirect URI:",
            "https://sso.acme.test:9443/sso/corp/callback"
        ),
        "{corp}"
    );
    // `logout = { at_idp = true }`: no note that it is unused.
    assert!(
        has_line(
            &corp,
            "post-logout URI:",
            "https://learn.acme.test/sso/corp/logout"
        ),
        "{corp}"
    );
    let adfs = block("adfs");
    assert!(
        has_line(
            &adfs,
            "SP metadata:",
            "https://learn.acme.test/sso/adfs/metadata"
        ),
        "{adfs}"
    );
    assert!(
        has_line(
            &adfs,
            "ACS URL:",
            "https://sso.acme.test:9443/sso/adfs/callback"
        ),
        "{adfs}"
    );
    assert!(
        has_line(
            &adfs,
            "single logout:",
            "https://sso.acme.test:9443/sso/adfs/logout"
        ),
        "{adfs}"
    );
    let old = block("old");
    assert!(old.contains("plugin failed to load"), "{old}");
    assert!(old.contains("gatehouse_not_built_anywhere"), "{old}");
    assert!(old.contains("fix:"), "{old}");
    let typo = block("typo");
    assert!(typo.contains("settings refused"), "{typo}");
    assert!(
        !dir.path().join("gh.db").exists(),
        "idps creates no database"
    );
}

/// Whether `text` has a line `<label> <value>` (aligned by any number of spaces).
fn has_line(text: &str, label: &str, value: &str) -> bool {
    text.lines().any(|line| {
        line.trim_start()
            .strip_prefix(label)
            .is_some_and(|rest| rest.trim() == value)
    })
}

#[test]
fn idps_json_is_one_stable_object_per_idp() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), FOUR_IDPS);
    let output = run(&path, &["idps", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let idps = json["idps"].as_array().expect("idps");
    let ids: Vec<&str> = idps.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, ["corp", "adfs", "old", "typo"], "file order");
    let idp = |id: &str| idps.iter().find(|i| i["id"] == id).expect(id);

    let corp = idp("corp");
    assert_eq!(corp["domain"], "acme");
    assert_eq!(corp["plugin"], "oidc");
    assert_eq!(corp["protocol"], "oidc");
    assert_eq!(corp["behaviour"], "button");
    assert_eq!(corp["name"], "Acme staff");
    assert_eq!(corp["status"], "loaded");
    assert_eq!(corp["usable"], true);
    assert_eq!(corp["reason"], Value::Null);
    assert_eq!(corp["last_success"], Value::Null);
    assert_eq!(corp["urls"]["kind"], "redirect");
    assert_eq!(corp["urls"]["logout_at_idp"], true);
    let hosts = corp["urls"]["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0]["origin"], "https://learn.acme.test");
    assert_eq!(
        hosts[0]["callback"],
        "https://learn.acme.test/sso/corp/callback"
    );
    assert_eq!(hosts[1]["origin"], "https://sso.acme.test:9443");
    assert_eq!(
        hosts[1]["logout"],
        "https://sso.acme.test:9443/sso/corp/logout"
    );
    assert_eq!(hosts[1]["metadata"], Value::Null);

    let adfs = idp("adfs");
    assert_eq!(adfs["status"], "loaded");
    assert_eq!(adfs["urls"]["kind"], "saml");
    assert_eq!(
        adfs["urls"]["entity_id"],
        "https://learn.acme.test/sso/adfs/metadata"
    );
    assert_eq!(
        adfs["urls"]["hosts"][1]["metadata"],
        "https://sso.acme.test:9443/sso/adfs/metadata"
    );
    assert_eq!(
        adfs["urls"]["hosts"][1]["callback"],
        "https://sso.acme.test:9443/sso/adfs/callback"
    );

    let old = idp("old");
    assert_eq!(old["status"], "plugin-failed");
    assert_eq!(old["usable"], false);
    assert_eq!(old["protocol"], Value::Null);
    assert!(
        old["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the file does not exist")),
        "{old}"
    );
    assert!(old["fix"].as_str().is_some_and(|f| !f.is_empty()), "{old}");
    // Its plugin's protocol is unknown: every URL it might need is listed.
    assert_eq!(old["urls"]["kind"], "unknown");
    assert_eq!(
        old["urls"]["hosts"][0]["callback"],
        "https://learn.acme.test/sso/old/callback"
    );

    let typo = idp("typo");
    assert_eq!(typo["status"], "settings-refused");
    assert_eq!(typo["protocol"], "example");
    // The example plugin publishes metadata but is no SAML SP: a redirect URI, and its
    // metadata URL, no entity id.
    assert_eq!(typo["urls"]["kind"], "redirect");
    assert_eq!(typo["urls"]["entity_id"], Value::Null);
    assert!(
        typo["reason"]
            .as_str()
            .is_some_and(|r| r.contains("`email`")),
        "{typo}"
    );
}

#[test]
fn idps_exits_2_when_the_file_cannot_be_read_or_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    assert_eq!(run(&missing, &["idps"]).status.code(), Some(2));
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[host\n").unwrap();
    assert_eq!(
        run(&broken, &["idps", "--format", "json"]).status.code(),
        Some(2)
    );
    let help = gatehouse().args(["idps", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["Exit status", "GATEHOUSE_CONFIG", "Example", "--format"] {
        assert!(help.contains(needle), "missing {needle}:\n{help}");
    }
}

/// The example IdP on a domain of two hosts, served on a free port.
const SERVED: &str = r#"[host]
listen = "127.0.0.1:{port}"
public_url = "{origin}"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost", "127.0.0.1"]

[[idp]]
id = "dev"
domain = "root"
plugin = "example"
username_attribute = "email"
logout = { at_idp = true }

[idp.provisioning]
create_users = true
fields = { firstname = "given_name", lastname = "family_name", email = "email" }

[idp.settings]
subject = "ada"
email = "ada@example.test"
given_name = "Ada"
family_name = "Lovelace"
"#;

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listed_callbacks_are_the_served_hosts_and_a_sign_in_shows_as_the_last_success() {
    let host = ServedProcess::start("localhost", SERVED).await;
    let listed = json_of(&host.cli(&["idps", "--format", "json"]));
    let dev = &listed["idps"][0];
    assert_eq!(dev["status"], "loaded");
    assert_eq!(dev["last_success"], Value::Null);
    let hosts = dev["urls"]["hosts"].as_array().expect("hosts").clone();
    assert_eq!(hosts.len(), 2, "{dev}");

    // A browser on each host is sent back to exactly the callback listed for that host.
    let browser = WebClient::new();
    for urls in &hosts {
        let origin = urls["origin"].as_str().expect("origin");
        assert_eq!(
            origin,
            format!("http://{}:{}", origin_host(origin), host.port()),
            "{urls}"
        );
        let started = browser.get(&format!("{origin}/sso/dev/start")).await;
        let location = started.location.clone().expect("a redirect");
        let callback = urls["callback"].as_str().expect("callback");
        assert!(
            location.starts_with(&format!("{callback}?")),
            "{location} is not at {callback}"
        );
    }

    // A whole sign-in on the second host, then the listing shows it.
    let second = hosts[1]["origin"].as_str().expect("origin");
    let chain = browser
        .visit(&format!("{second}/sso/dev/start?return_to=/"))
        .await;
    let last = chain.last().expect("a page");
    assert_eq!(last.status, 200, "{chain:#?}");
    let listed = json_of(&host.cli(&["idps", "--format", "json"]));
    let at = listed["idps"][0]["last_success"]
        .as_i64()
        .unwrap_or_else(|| panic!("no last success: {listed}"));
    assert!(at > 1_700_000_000, "{at}");
    let human = host.cli(&["idps"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(!human.contains("last sign-in: never"), "{human}");
    assert!(human.contains("UTC"), "{human}");
}

/// `localhost` of `http://localhost:1234`.
fn origin_host(origin: &str) -> &str {
    let authority = origin.split("://").nth(1).unwrap_or(origin);
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}
