//! The online check (plugin API 1.3) on the fake host: not registered yet is a note and no
//! request; a registered client asks the server's `get_api_version` (and nothing else: no
//! `update_api_version`, nothing stored); an unreachable server or one without a common
//! version is an error.

use gatehouse_plugin_api::testkit::{Expectation, FakeHost};
use gatehouse_plugin_api::{IdentityProvider, OnlineReport, PluginError, Severity};
use serde_json::json;

use crate::support::*;

const JSEND: &str = "application/json; charset=utf-8";

fn expect_get_api_version(fake: &FakeHost, reply: &str) {
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(
                |request| match field(&form_of(request), "service").as_deref() {
                    Some("get_api_version") => Ok(()),
                    other => Err(format!("service {other:?}")),
                },
            )
            .reply(200, JSEND, reply.as_bytes()),
    );
}

fn check(fake: &FakeHost, client: &gatehouse_connect::ConnectClient) -> OnlineReport {
    let report = fake.call(|host| client.check_online(host)).expect("runs");
    fake.assert_script_done();
    report
}

#[test]
fn a_client_not_registered_yet_gets_a_note_and_asks_nothing() {
    let fake = FakeHost::new();
    let report = check(&fake, &client());
    assert_eq!(report.findings.len(), 1, "{report:?}");
    assert_eq!(report.findings[0].severity, Severity::NOTE);
    assert!(
        report.findings[0]
            .message
            .contains("not registered with a Connect server yet"),
        "{report:?}"
    );
    assert!(!report.has_errors());
}

#[test]
fn a_registered_client_asks_the_server_its_api_versions_and_changes_nothing() {
    let (fake, client) = registered(json!({}));
    expect_get_api_version(
        &fake,
        r#"{"status":"success","data":{"minapiversion":1,"maxapiversion":2}}"#,
    );
    let before = fake.stored("server");
    let report = check(&fake, &client);
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(
        report.checked[0].as_str(),
        format!(
            "Connect server at {SERVER_URL}: get_api_version offers API versions 1 to 2 (this client uses 2)"
        )
    );
    assert_eq!(fake.stored("server"), before, "nothing stored");
}

#[test]
fn an_unreachable_server_or_one_without_a_common_version_is_an_error() {
    let (fake, client) = registered(json!({}));
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .fail(PluginError::idp_unavailable("could not connect")),
    );
    let down = check(&fake, &client);
    assert!(down.has_errors());
    assert!(
        down.findings[0].message.contains("get_api_version at")
            && down.findings[0].message.contains("could not connect"),
        "{down:?}"
    );

    expect_get_api_version(
        &fake,
        r#"{"status":"success","data":{"minapiversion":3,"maxapiversion":4}}"#,
    );
    let newer = check(&fake, &client);
    assert!(
        newer.findings[0].message.contains("no version in common"),
        "{newer:?}"
    );
}
