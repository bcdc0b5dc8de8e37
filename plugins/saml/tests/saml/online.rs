//! The online check (plugin API 1.3): metadata fetched from `idp_metadata_url` (and not
//! stored), an unreachable or unusable address an error about that setting, and signing
//! certificates warned about 30 days before they end and after; the test certificates end
//! on 2126-11-08, so the fake clock is set near that.

use gatehouse_plugin_api::testkit::{Expectation, FakeHost};
use gatehouse_plugin_api::{IdentityProvider, OnlineReport, PluginError, Severity};
use serde_json::json;

use crate::support::*;

const URL: &str = "https://idp.example.test/md";
/// 2126-11-08T20:39:22Z, when every test certificate ends.
const CERTS_END: i64 = 4_949_843_962;
const DAY: i64 = 86_400;

fn messages(report: &OnlineReport) -> Vec<(Severity, String, Option<String>)> {
    report
        .findings
        .iter()
        .map(|f| {
            (
                f.severity,
                f.message.to_string(),
                f.setting.clone().into_option().map(|s| s.to_string()),
            )
        })
        .collect()
}

#[test]
fn metadata_from_its_url_is_fetched_checked_and_not_stored() {
    let sp = build(json!({ "idp_metadata_url": URL })).expect("valid");
    let fake = FakeHost::new();
    fake.expect(Expectation::new("GET", URL).reply(
        200,
        "application/xml",
        idp_metadata(&[IDP_CERT, IDP2_CERT], true).as_bytes(),
    ));
    let report = fake.call(|host| sp.check_online(host)).expect("runs");
    fake.assert_script_done();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(
        report.checked[0].as_str(),
        format!("metadata at {URL} (entity {IDP_ENTITY}, 2 signing certificate(s))")
    );
    assert_eq!(fake.stored("idp-metadata"), None, "a check stores nothing");
}

#[test]
fn a_metadata_url_answering_404_is_an_error_about_idp_metadata_url() {
    let sp = build(json!({ "idp_metadata_url": URL })).expect("valid");
    let fake = FakeHost::new();
    fake.expect(Expectation::new("GET", URL).reply(404, "text/html", b"gone"));
    let report = fake.call(|host| sp.check_online(host)).expect("runs");
    let found = messages(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    let (severity, message, setting) = &found[0];
    assert_eq!(*severity, Severity::ERROR);
    assert!(
        message.contains(&format!("GET {URL} answered HTTP 404")),
        "{message}"
    );
    assert_eq!(setting.as_deref(), Some("idp_metadata_url"));
    assert!(report.checked.is_empty());
}

#[test]
fn unreachable_or_unusable_metadata_is_an_error() {
    let sp = build(json!({ "idp_metadata_url": URL })).expect("valid");
    let fake = FakeHost::new();
    fake.expect(
        Expectation::new("GET", URL).fail(PluginError::idp_unavailable("could not connect")),
    );
    fake.expect(Expectation::new("GET", URL).reply(
        200,
        "application/xml",
        idp_metadata(&[], false).as_bytes(),
    ));
    let down = fake.call(|host| sp.check_online(host)).expect("runs");
    assert!(
        messages(&down)[0].1.contains("could not connect"),
        "{down:?}"
    );
    let unsigned = fake.call(|host| sp.check_online(host)).expect("runs");
    assert!(
        messages(&unsigned)[0].1.contains("no signing certificate"),
        "{unsigned:?}"
    );
    fake.assert_script_done();
}

#[test]
fn inline_metadata_is_checked_without_a_request_and_certificates_are_warned_about_near_their_end() {
    let sp = sp(json!({}));
    let fake = FakeHost::new();
    let report = fake.call(|host| sp.check_online(host)).expect("runs");
    assert!(report.findings.is_empty(), "{report:?}");
    assert!(
        report.checked[0].starts_with("inline metadata (entity"),
        "{report:?}"
    );

    // 31 days before the end: nothing yet; 29 days before: a warning with the date.
    fake.set_time(CERTS_END - 31 * DAY);
    assert!(
        fake.call(|host| sp.check_online(host))
            .expect("runs")
            .findings
            .is_empty()
    );
    fake.set_time(CERTS_END - 29 * DAY);
    let soon = messages(&fake.call(|host| sp.check_online(host)).expect("runs"));
    assert_eq!(soon.len(), 1, "{soon:?}");
    assert_eq!(soon[0].0, Severity::WARNING);
    assert!(
        soon[0]
            .1
            .contains("`test-idp-gatehouse` expires on Nov  8 20:39:22 2126 GMT, in 29 day(s)"),
        "{soon:?}"
    );
    assert_eq!(soon[0].2.as_deref(), Some("idp_metadata"));

    fake.set_time(CERTS_END + DAY);
    let expired = messages(&fake.call(|host| sp.check_online(host)).expect("runs"));
    assert_eq!(expired[0].0, Severity::WARNING);
    assert!(
        expired[0].1.contains("expired on Nov  8 20:39:22 2126 GMT"),
        "{expired:?}"
    );
    fake.assert_script_done();
}
