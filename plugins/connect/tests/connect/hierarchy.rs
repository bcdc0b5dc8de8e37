//! The `positions` and `organisations` tasks on the fake host: with the setting on,
//! `get_positions` / `get_organisations` read as the reference writes them (string ids, `\/`,
//! `null` texts) and handed to the host as the task output; with the setting off, or when
//! the server sends `null`, nothing is handed over; a refused or unreadable reply fails
//! the task.

use gatehouse_plugin_api::testkit::Expectation;
use gatehouse_plugin_api::{ErrorKind, IdentityProvider};
use serde_json::json;

use crate::support::*;

const JSEND: &str = "application/json; charset=utf-8";

const POSITIONS: &str = r#"{"status":"success","data":{"frameworks":[{"id":"3","fullname":"Roles \/ EU","shortname":"roles","idnumber":"PF-1","description":"","sortorder":"1","timecreated":"1550000000","timemodified":"1550000000","usermodified":"2","visible":"1","hidecustomfields":"0"}],"positions":[{"id":"11","fullname":"Head","shortname":"head","description":null,"idnumber":"P-1","frameworkid":"3","path":"\/11","parentid":"0","sortthread":"01","depthlevel":"1","visible":"1","timecreated":"1550000000","timemodified":"1550000000","usermodified":"2","typeid":"4","totarasync":"0","timevalidfrom":null,"timevalidto":null,"typeidnumber":"T1","custom_fields":[{"shortname":"grade","datatype":"text","data":"7","value":null}]},{"id":"12","fullname":"Deputy","shortname":"dep","description":"","idnumber":"P-2","frameworkid":"3","path":"\/11\/12","parentid":"11","sortthread":"01.01","depthlevel":"2","visible":"1","typeid":"0","typeidnumber":null,"custom_fields":[]}]}}"#;

fn expect_reply(fake: &gatehouse_plugin_api::testkit::FakeHost, service: &'static str, body: &str) {
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(move |request| {
                let form = form_of(request);
                match field(&form, "service").as_deref() {
                    Some(s) if s == service => Ok(()),
                    other => Err(format!("service is {other:?}")),
                }
            })
            .reply(200, JSEND, body.as_bytes()),
    );
}

#[test]
fn the_servers_positions_are_handed_to_the_host() {
    let (fake, client) = registered(json!({"sync_positions": true}));
    expect_reply(&fake, "get_positions", POSITIONS);
    let out = fake
        .call(|host| client.run_task(host, "positions"))
        .expect("runs");
    fake.assert_script_done();
    let section = &out["directory"]["connect_hierarchy"];
    assert_eq!(section["server_idnumber"], json!(SERVER_IDNUMBER));
    assert_eq!(section["kind"], json!("position"));
    assert_eq!(section["frameworks"][0]["fullname"], json!("Roles / EU"));
    assert_eq!(section["items"][0]["typeidnumber"], json!("T1"));
    assert_eq!(section["items"][0]["description"], json!(""));
    assert_eq!(section["items"][1]["parentid"], json!(11));
    assert_eq!(
        out["summary"],
        json!("get_positions: 1 frameworks, 2 positions from https://hq.example.test")
    );
}

#[test]
fn with_the_setting_off_nothing_is_asked_or_handed_over() {
    let (fake, client) = registered(json!({"sync_positions": true}));
    let out = fake
        .call(|host| client.run_task(host, "organisations"))
        .expect("runs");
    fake.assert_script_done();
    assert!(out.get("directory").is_none(), "{out}");
    assert!(
        out["summary"]
            .as_str()
            .is_some_and(|s| s.contains("`sync_organisations` is off")),
        "{out}"
    );
}

#[test]
fn a_server_that_does_not_share_them_changes_nothing() {
    let (fake, client) = registered(json!({"sync_organisations": true}));
    expect_reply(
        &fake,
        "get_organisations",
        r#"{"status":"success","data":{"frameworks":null,"organisations":null}}"#,
    );
    let out = fake
        .call(|host| client.run_task(host, "organisations"))
        .expect("runs");
    assert!(out.get("directory").is_none(), "{out}");
}

#[test]
fn a_refused_or_unreadable_reply_fails_the_task() {
    for body in [
        r#"{"status":"error","message":"get_positions not available in api version 1"}"#,
        r#"{"status":"success","data":{"frameworks":[{"fullname":"no id"}],"positions":[]}}"#,
        r#"{"status":"success","data":{"frameworks":[],"positions":[{"id":"1","fr"#,
    ] {
        let (fake, client) = registered(json!({"sync_positions": true}));
        expect_reply(&fake, "get_positions", body);
        let error = fake
            .call(|host| client.run_task(host, "positions"))
            .expect_err("fails");
        assert_eq!(error.kind, ErrorKind::INVALID_RESPONSE, "{body}: {error:?}");
    }
}
