//! The `user_collections` task on the fake host: `get_user_collections` read as the
//! reference writes it (string ids, `\/`, `null` text, `[]` for an empty list) and handed to
//! the host as the task output; a refused, cut or unreadable reply fails the task.

use gatehouse_plugin_api::testkit::Expectation;
use gatehouse_plugin_api::{ErrorKind, IdentityProvider};
use serde_json::json;

use crate::support::*;

const JSEND: &str = "application/json; charset=utf-8";

/// Two cohorts (one without members) and a course, as Totara writes `SELECT c.*` rows.
const COLLECTIONS: &str = r#"{"status":"success","data":{"cohort":[{"id":"3","contextid":"1","name":"Sales \/ EU","idnumber":"AUD-1","description":"<p>Team<\/p>","descriptionformat":"1","visible":"1","component":"","timecreated":"1550000000","timemodified":"1550000000","theme":"","members":[{"id":"2"},{"id":"7"}]},{"id":"4","contextid":"1","name":"Ops","idnumber":"","description":null,"descriptionformat":"1","visible":"1","component":"","members":[]}],"course":[{"id":"12","category":"1","sortorder":"10001","fullname":"Onboarding","shortname":"C1","idnumber":"","summary":"Start here","summaryformat":"1","format":"topics","members":[{"id":"7"}]}]}}"#;

fn expect_reply(fake: &gatehouse_plugin_api::testkit::FakeHost, body: &str) {
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(|request| {
                let form = form_of(request);
                match field(&form, "service").as_deref() {
                    Some("get_user_collections") => Ok(()),
                    other => Err(format!("service is {other:?}")),
                }
            })
            .reply(200, JSEND, body.as_bytes()),
    );
}

#[test]
fn the_servers_collections_are_handed_to_the_host() {
    let (fake, client) = registered(json!({}));
    expect_reply(&fake, COLLECTIONS);
    let out = fake
        .call(|host| client.run_task(host, "user_collections"))
        .expect("runs");
    fake.assert_script_done();
    assert_eq!(
        out["directory"],
        json!({"connect_collections": {
            "server_idnumber": SERVER_IDNUMBER,
            "collections": [
                {"type": "cohort", "id": 3, "name": "Sales / EU", "description": "<p>Team</p>", "members": [2, 7]},
                {"type": "cohort", "id": 4, "name": "Ops", "description": "", "members": []},
                {"type": "course", "id": 12, "name": "Onboarding", "description": "Start here", "members": [7]},
            ],
        }})
    );
    assert_eq!(
        out["summary"],
        json!("get_user_collections: 2 cohorts, 1 courses from https://hq.example.test")
    );
}

#[test]
fn nothing_shared_is_an_empty_list() {
    let (fake, client) = registered(json!({}));
    expect_reply(
        &fake,
        r#"{"status":"success","data":{"cohort":[],"course":[]}}"#,
    );
    let out = fake
        .call(|host| client.run_task(host, "user_collections"))
        .expect("runs");
    assert_eq!(
        out["directory"]["connect_collections"]["collections"],
        json!([])
    );
}

#[test]
fn a_refused_cut_or_unreadable_reply_fails_the_task() {
    let cut = &COLLECTIONS[..COLLECTIONS.len() / 2];
    for (body, words) in [
        (
            r#"{"status":"error","message":"connect client is not active"}"#,
            "connect client is not active",
        ),
        (cut, "invalid response format"),
        (r#"{"status":"success","data":{"cohort":[]}}"#, "course"),
        (
            r#"{"status":"success","data":{"cohort":[{"id":"3","name":"A","members":[{"id":"x"}]}],"course":[]}}"#,
            "members[0].id",
        ),
    ] {
        let (fake, client) = registered(json!({}));
        expect_reply(&fake, body);
        let error = fake
            .call(|host| client.run_task(host, "user_collections"))
            .expect_err("fails");
        assert_eq!(error.kind, ErrorKind::INVALID_RESPONSE, "{body}: {error}");
        assert!(error.message().contains(words), "{body}: {error}");
    }
}
