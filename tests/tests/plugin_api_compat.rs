//! The stability promise of the plugin ABI, proven with real libraries: plugins built
//! against the frozen plugin APIs 1.0, 1.1 and 1.2 (`tests/fixtures/api-1.0`, `api-1.1`,
//! `api-1.2`) load into this host, sign in, serve what they declared, and answer "unsupported" to (or are
//! built without) the abilities they predate (under `gatehouse check --online`, 1.3's online
//! check is "no online check" for each, not an error); a plugin declaring a newer minor
//! version than the host's is refused in one line.

use std::sync::Arc;

use axum::http::StatusCode;
use gatehouse::plugins::{IdpInstance, LoadFailureReason, loader::load_one};
use gatehouse_plugin_api::{API_VERSION, ApiVersion, ErrorKind, InboundRequest, SessionSelector};
use gatehouse_tests::{
    TestHost, api_1_0_plugin, api_1_1_plugin, api_1_2_plugin, config_text, library, plugin_dir,
};

#[test]
fn the_1_0_plugin_loads_under_this_host_with_the_1_0_abilities() {
    const {
        assert!(
            API_VERSION.minor >= 1,
            "this test is about a host newer than 1.0"
        )
    };
    let loaded = load_one(api_1_0_plugin()).expect("a 1.0 plugin loads under every 1.x host");
    assert_eq!(loaded.info.id, "legacy");
    assert_eq!(loaded.info.api_version, ApiVersion { major: 1, minor: 0 });
    assert!(
        loaded.module.manifest_extension().is_none(),
        "a 1.0 root module has no manifest_extension field"
    );
    assert!(loaded.info.routes.is_empty(), "1.0 declares no routes");
}

#[test]
fn a_plugin_declaring_a_newer_minor_api_is_refused_in_one_line() {
    let path = library("gatehouse_fixture_newer_minor");
    let reason = load_one(&path).expect_err("refused");
    let newer = format!("{}.{}", API_VERSION.major, API_VERSION.minor + 1);
    assert_eq!(
        reason,
        LoadFailureReason::NewerApi {
            library: newer.clone()
        }
    );
    let failure = gatehouse::plugins::LoadFailure {
        id: "newer".into(),
        path,
        reason,
    };
    let text = failure.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        text.contains(&format!(
            "plugin API {newer}, newer than this host's {API_VERSION}"
        )),
        "{text}"
    );
    assert!(text.contains("upgrade Gatehouse"), "{text}");
}

const LEGACY_CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "legacy"
library = "{legacy}"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "legacy"
domain = "root"
plugin = "legacy"
name = "Sign in with the 1.0 plugin"
username_attribute = "sub"
trust_email = true

[idp.provisioning]
create_users = true
fields = { email = "email", firstname = "sub", lastname = "email_verified" }

[idp.settings]
subject = "grace"
"#;

#[tokio::test]
async fn the_1_0_plugin_signs_in_and_answers_unsupported_to_what_it_predates() {
    let config = LEGACY_CONFIG.replace("{legacy}", &api_1_0_plugin().display().to_string());
    let host = TestHost::start(&config).await;
    let mut browser = host.browser("localhost");

    let done = browser.round_trip("/sso/legacy/start?return_to=%2F").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    let me = browser.get("/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.json()["username"], "grace");
    assert_eq!(me.json()["session"]["idp"], "legacy");

    // handle_inbound was appended in 1.1 with a default body: the 1.0 vtable has no slot,
    // so the call answers "unsupported" instead of crashing the host.
    let instance: Arc<IdpInstance> = {
        let site = host.state.site();
        let domain = site.domain("root").expect("root domain");
        Arc::clone(&domain.idp("legacy").expect("legacy idp").instance)
    };
    let request = InboundRequest {
        method: "POST".into(),
        route: "/auth/connect/sep.php".into(),
        host: "localhost".into(),
        headers: Default::default(),
        query: Default::default(),
        form: Default::default(),
        body: Default::default(),
    };
    let answer = host
        .state
        .caller()
        .call(instance, move |host_ref, idp| {
            idp.handle_inbound(host_ref, request).into_result()
        })
        .await;
    match answer {
        Err(gatehouse::plugins::CallError::Plugin(error)) => {
            assert_eq!(error.kind, ErrorKind::UNSUPPORTED, "{error}");
        }
        other => panic!("expected unsupported, got {other:?}"),
    }

    // A 1.1 plugin's question about sessions is answered by this host from the store.
    let example = gatehouse_tests::TestHost::start(gatehouse_tests::EXAMPLE_CONFIG).await;
    let mut ada = example.browser("localhost");
    assert_eq!(
        ada.round_trip("/sso/example/start").await.status,
        StatusCode::SEE_OTHER
    );
    let instance = {
        let site = example.state.site();
        let domain = site.domain("root").expect("root domain");
        Arc::clone(&domain.idp("example").expect("example idp").instance)
    };
    let counted = example
        .state
        .caller()
        .call(instance, |host_ref, _| {
            gatehouse_plugin_api::Host::new(host_ref)
                .sessions_alive(SessionSelector::subject("ada"))
        })
        .await
        .expect("answered");
    assert_eq!(counted, 1);
}

#[test]
fn the_1_1_plugin_loads_and_is_built_without_the_1_2_context() {
    const {
        assert!(
            API_VERSION.minor >= 2,
            "this test is about a host newer than 1.1"
        )
    };
    let loaded = load_one(api_1_1_plugin()).expect("a 1.1 plugin loads under every 1.x host");
    assert_eq!(loaded.info.id, "fixture11");
    assert_eq!(loaded.info.api_version, ApiVersion { major: 1, minor: 1 });
    assert!(
        loaded.module.manifest_extension().is_some(),
        "1.1 declares its routes in the manifest extension"
    );
    assert!(
        loaded.module.new_idp_in_context().is_none(),
        "a 1.1 root module has no new_idp_in_context field: the host builds it with new_idp"
    );
    let placement = gatehouse_plugin_api::Placement::new("root", &["http://localhost:8080"]);
    IdpInstance::build(&loaded, "fixture11", &serde_json::json!({}), &placement)
        .expect("built through the 1.0 constructor");
}

const FIXTURE_1_1_CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "fixture11"
library = "{library}"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "f11"
domain = "root"
plugin = "fixture11"
name = "Sign in with the 1.1 plugin"
username_attribute = "sub"
trust_email = true

[idp.provisioning]
create_users = true
fields = { email = "email", firstname = "sub", lastname = "email_verified" }

[idp.settings]
subject = "hopper"
"#;

#[tokio::test]
async fn the_1_1_plugin_signs_in_and_serves_its_inbound_route_with_its_actions() {
    let config = FIXTURE_1_1_CONFIG.replace("{library}", &api_1_1_plugin().display().to_string());
    let host = TestHost::start(&config).await;
    let mut browser = host.browser("localhost");
    let done = browser.round_trip("/sso/f11/start?return_to=%2F").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(browser.get("/me").await.json()["username"], "hopper");

    let mut peer = host.browser("localhost");
    let alive = peer.post_form("/sso/f11/ping", &[]).await;
    assert_eq!(alive.status, StatusCode::OK, "{alive:?}");
    assert_eq!(alive.body, "alive 1");
    let ended = peer.post_form("/sso/f11/ping", &[("end", "1")]).await;
    assert_eq!(ended.body, "alive 1", "counted before the action ran");
    assert_eq!(
        browser.get("/me").await.status,
        StatusCode::UNAUTHORIZED,
        "the 1.1 plugin's end-sessions action ended the session"
    );
}

#[test]
fn the_1_2_plugin_loads_and_is_built_with_its_placement() {
    const {
        assert!(
            API_VERSION.minor >= 3,
            "this test is about a host newer than 1.2"
        )
    };
    let loaded = load_one(api_1_2_plugin()).expect("a 1.2 plugin loads under every 1.x host");
    assert_eq!(loaded.info.id, "fixture12");
    assert_eq!(loaded.info.api_version, ApiVersion { major: 1, minor: 2 });
    assert!(
        loaded.module.new_idp_in_context().is_some(),
        "a 1.2 root module has new_idp_in_context"
    );
    let placement = gatehouse_plugin_api::Placement::new("root", &["http://localhost:8080"]);
    // The fixture refuses to be built without its placement, so this proves the host used
    // 1.2's constructor.
    IdpInstance::build(&loaded, "fixture12", &serde_json::json!({}), &placement)
        .expect("built through new_idp_in_context");
}

const FIXTURE_1_2_CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "fixture12"
library = "{library}"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "f12"
domain = "root"
plugin = "fixture12"
name = "Sign in with the 1.2 plugin"
username_attribute = "sub"
trust_email = true

[idp.provisioning]
create_users = true
fields = { email = "email", firstname = "sub", lastname = "placed_on" }

[idp.settings]
subject = "lovelace"
"#;

#[tokio::test]
async fn the_1_2_plugin_signs_in_with_what_its_placement_told_it() {
    let config = FIXTURE_1_2_CONFIG.replace("{library}", &api_1_2_plugin().display().to_string());
    let host = TestHost::start(&config).await;
    let mut browser = host.browser("localhost");
    let done = browser.round_trip("/sso/f12/start?return_to=%2F").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    let me = browser.get("/me").await.json();
    assert_eq!(me["username"], "lovelace");
    assert_eq!(me["session"]["idp"], "f12");
    assert_eq!(
        me["lastname"], "root",
        "the domain the 1.2 constructor was told"
    );
}

/// The three frozen plugins on one domain, one IdP each.
const ALL_FROZEN_CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "legacy"
library = "{api10}"

[[plugin]]
id = "fixture11"
library = "{api11}"

[[plugin]]
id = "fixture12"
library = "{api12}"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "legacy"
domain = "root"
plugin = "legacy"
username_attribute = "sub"

[[idp]]
id = "f11"
domain = "root"
plugin = "fixture11"
username_attribute = "sub"

[[idp]]
id = "f12"
domain = "root"
plugin = "fixture12"
username_attribute = "sub"
"#;

#[test]
fn under_check_online_the_1_0_1_1_and_1_2_plugins_report_no_online_check_not_an_error() {
    const {
        assert!(
            API_VERSION.minor >= 3,
            "check_online came with 1.3: this test is about a host that has it"
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("gh.db").display());
    let text = config_text(ALL_FROZEN_CONFIG, &database)
        .replace("{api10}", &api_1_0_plugin().display().to_string())
        .replace("{api11}", &api_1_1_plugin().display().to_string())
        .replace("{api12}", &api_1_2_plugin().display().to_string());
    let path = dir.path().join("plugins.toml");
    std::fs::write(&path, text).expect("write config");
    let run = |format: &str| {
        std::process::Command::new(plugin_dir().join("gatehouse"))
            .args(["check", "--online", "--format", format, "--config"])
            .arg(&path)
            .output()
            .expect("run gatehouse")
    };

    let human = run("human");
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert_eq!(human.status.code(), Some(0), "{stderr}");
    for (idp, plugin, version) in [
        ("legacy", "legacy", "1.0"),
        ("f11", "fixture11", "1.1"),
        ("f12", "fixture12", "1.2"),
    ] {
        let note = format!(
            "note: IdP `{idp}` (plugin `{plugin}`): no online check: plugin `{plugin}` is built \
             against plugin API {version}, and the online check came with 1.3"
        );
        assert!(stderr.contains(&note), "{note}\n{stderr}");
    }
    assert!(!stderr.contains("error"), "{stderr}");

    let json = run("json");
    assert_eq!(json.status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("stdout is one JSON object");
    let statuses: Vec<(&str, &str)> = report["online"]
        .as_array()
        .expect("online")
        .iter()
        .map(|idp| {
            (
                idp["idp"].as_str().unwrap_or_default(),
                idp["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("legacy", "no-online-check"),
            ("f11", "no-online-check"),
            ("f12", "no-online-check")
        ]
    );
}
