//! The sync tasks on the fake host: `handshake` (negotiation, `update_api_version` every
//! time, the version stored only once the server accepted it), `users` (`get_users` read as
//! the reference writes it and handed to the host as the task output; API v1 carries no
//! profile fields), `cleanup`, and `server` (the registration without its secrets).

use std::time::Duration;

use gatehouse_plugin_api::testkit::{Expectation, FakeHost};
use gatehouse_plugin_api::{BeginRequest, ErrorKind, IdentityProvider};
use serde_json::{Value, json};

use gatehouse_connect::ConnectClient;

use crate::support::*;

const JSEND: &str = "application/json; charset=utf-8";

/// A server call the client must make: `service` with this client's credentials, answered
/// with `reply` as the server writes it.
fn expect_service(
    fake: &FakeHost,
    service: &'static str,
    extra: &'static [(&str, &str)],
    reply: &str,
) {
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(move |request| {
                let form = form_of(request);
                let mut expected = vec![
                    ("serveridnumber", SERVER_IDNUMBER),
                    ("serversecret", SERVER_SECRET),
                    ("service", service),
                ];
                expected.extend_from_slice(extra);
                for (name, value) in expected {
                    if field(&form, name).as_deref() != Some(value) {
                        return Err(format!("{name} is {:?}, not {value}", field(&form, name)));
                    }
                }
                Ok(())
            })
            .reply(200, JSEND, reply.as_bytes()),
    );
}

fn run(fake: &FakeHost, client: &ConnectClient, task: &str) -> Value {
    fake.call(|host| client.run_task(host, task))
        .unwrap_or_else(|error| panic!("task {task}: {error}"))
}

fn stored_version(fake: &FakeHost, client: &ConnectClient) -> Value {
    run(fake, client, "server")["server"]["api_version"].clone()
}

const API_1_TO_2: &str = r#"{"status":"success","data":{"minapiversion":1,"maxapiversion":2}}"#;
const EMPTY_SUCCESS: &str = r#"{"status":"success","data":[]}"#;

#[test]
fn the_handshake_asks_selects_and_tells_the_server_every_time() {
    let (fake, client) = registered(json!({}));
    for _ in 0..2 {
        expect_service(
            &fake,
            "get_api_version",
            &[("clienttype", "totaralms")],
            API_1_TO_2,
        );
        expect_service(
            &fake,
            "update_api_version",
            &[("apiversion", "2"), ("clienttype", "totaralms")],
            EMPTY_SUCCESS,
        );
        let out = run(&fake, &client, "handshake");
        assert_eq!(out["api_version"], 2);
        fake.assert_script_done();
    }
    assert_eq!(stored_version(&fake, &client), 2);
}

#[test]
fn a_server_that_speaks_only_version_1_is_stored_at_1_and_its_users_carry_no_fields() {
    let (fake, client) = registered(json!({ "sync_profile_fields": true }));
    // Ints as strings are accepted too (the server's own PHP sends ints).
    expect_service(
        &fake,
        "get_api_version",
        &[("clienttype", "totaralms")],
        r#"{"status":"success","data":{"minapiversion":"1","maxapiversion":"1"}}"#,
    );
    expect_service(
        &fake,
        "update_api_version",
        &[("apiversion", "1"), ("clienttype", "totaralms")],
        EMPTY_SUCCESS,
    );
    let out = run(&fake, &client, "handshake");
    assert_eq!(
        (
            out["api_version"].clone(),
            out["previous_api_version"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(stored_version(&fake, &client), 1);

    // A (mis)behaving server sends v2's fields anyway: API 1 skips them.
    expect_service(&fake, "get_users", &[], &users_reply(&[ALICE]));
    let out = run(&fake, &client, "users");
    let section = &out["directory"]["connect_users"];
    assert_eq!(section["api_version"], 1);
    assert_eq!(section["options"]["sync_profile_fields"], false);
    assert_eq!(section["users"][0]["profile_fields"], Value::Null);
}

#[test]
fn a_refused_update_keeps_the_stored_version() {
    let (fake, client) = registered(json!({}));
    expect_service(
        &fake,
        "get_api_version",
        &[("clienttype", "totaralms")],
        r#"{"status":"success","data":{"minapiversion":1,"maxapiversion":1}}"#,
    );
    expect_service(
        &fake,
        "update_api_version",
        &[("apiversion", "1"), ("clienttype", "totaralms")],
        r#"{"status":"error","message":"connect client is not active"}"#,
    );
    let error = fake
        .call(|host| client.run_task(host, "handshake"))
        .expect_err("refused");
    assert!(
        error.message().contains("connect client is not active"),
        "{error}"
    );
    assert_eq!(stored_version(&fake, &client), 2);
}

#[test]
fn a_server_without_a_common_version_is_not_told_one() {
    let (fake, client) = registered(json!({}));
    expect_service(
        &fake,
        "get_api_version",
        &[("clienttype", "totaralms")],
        r#"{"status":"success","data":{"minapiversion":3,"maxapiversion":4}}"#,
    );
    let error = fake
        .call(|host| client.run_task(host, "handshake"))
        .expect_err("no common version");
    assert!(
        error.message().contains("api version not supported"),
        "{error}"
    );
    fake.assert_script_done();
    assert_eq!(stored_version(&fake, &client), 2);
}

/// A listed user as `get_users` writes it (v2, `syncprofilefields` on): string ids and
/// flags, `null`s, PHP's `\/` and `\u` escapes.
const ALICE: &str = r#"{"id":"3","auth":"manual","confirmed":"1","policyagreed":"0","deleted":"0","suspended":"0","mnethostid":"1","username":"alice","password":null,"idnumber":"E100","firstname":"Alice","lastname":"Ng","email":"alice@example.com","emailstop":"0","icq":"","skype":"","yahoo":"","aim":"","msn":"","phone1":"","phone2":"","institution":"","department":"Sales","address":"","city":"Wellington","country":"NZ","lang":"en","calendartype":"gregorian","theme":"","timezone":"99","firstaccess":"1550000000","lastaccess":"1550000100","lastlogin":"0","currentlogin":"1550000000","lastip":"10.0.0.1","url":"https:\/\/alice.example.com\/","description":"<p>Caf\u00e9<\/p>","descriptionformat":"1","mailformat":"1","maildigest":"0","maildisplay":"2","autosubscribe":"1","trackforums":"0","timecreated":"1550000000","timemodified":"1550000050","trustbitmask":"0","imagealt":null,"lastnamephonetic":null,"firstnamephonetic":null,"middlename":null,"alternatename":null,"totarasync":"0","profile_fields":[{"shortname":"costcentre","datatype":"text","data":"CC-9"},{"shortname":"region","datatype":"menu","data":"North\/East"}],"jobs":null}"#;

/// A suspended user whose server does not share profile fields (`null`).
const BOB: &str = r#"{"id":"4","auth":"manual","confirmed":"1","policyagreed":"0","deleted":"0","suspended":"1","mnethostid":"1","username":"bob","password":null,"idnumber":"","firstname":"Bob","lastname":"M\u00fcller","email":"bob@example.com","emailstop":"0","timecreated":"1550000000","timemodified":"1550000050","totarasync":"0","profile_fields":null,"jobs":null}"#;

/// A deleted user (§3.1, §8.5): no profile_fields or jobs keys, blanked idnumber and email.
const GONE: &str = r#"{"id":"9","auth":"manual","confirmed":"1","policyagreed":"0","deleted":"1","suspended":"0","mnethostid":"1","username":"deleted_0123456789abcdef0123456789abcdef","password":null,"idnumber":"","firstname":"Carol","lastname":"Old","email":"","emailstop":"0","description":null,"descriptionformat":null,"timecreated":"1550000000","timemodified":"1550000060","totarasync":"0"}"#;

fn users_reply(users: &[&str]) -> String {
    format!(
        r#"{{"status":"success","data":{{"users":[{}]}}}}"#,
        users.join(",")
    )
}

#[test]
fn users_hands_the_servers_users_and_the_options_to_the_host() {
    let (fake, client) =
        registered(json!({ "sync_profile_fields": true, "remove_user": "delete" }));
    expect_service(&fake, "get_users", &[], &users_reply(&[ALICE, BOB, GONE]));
    let out = run(&fake, &client, "users");
    fake.assert_script_done();
    assert_eq!(
        out["summary"],
        "get_users: 3 users (1 deleted) from https://hq.example.test"
    );
    let section = &out["directory"]["connect_users"];
    assert_eq!(section["server_idnumber"], SERVER_IDNUMBER);
    assert_eq!(section["api_version"], 2);
    assert_eq!(
        section["options"],
        json!({ "remove_user": "delete", "sync_profile_fields": true, "sync_jobs": false,
                "sync_positions": false, "sync_organisations": false })
    );
    assert_eq!(
        section["users"],
        json!([
            {"id": 3, "username": "alice", "email": "alice@example.com", "firstname": "Alice",
             "lastname": "Ng", "idnumber": "E100", "suspended": false, "deleted": false,
             "profile_fields": {"costcentre": "CC-9", "region": "North/East"}},
            {"id": 4, "username": "bob", "email": "bob@example.com", "firstname": "Bob",
             "lastname": "Müller", "idnumber": "", "suspended": true, "deleted": false,
             "profile_fields": null},
            {"id": 9, "username": "deleted_0123456789abcdef0123456789abcdef", "email": "",
             "firstname": "Carol", "lastname": "Old", "idnumber": "", "suspended": false,
             "deleted": true, "profile_fields": null},
        ])
    );
}

#[test]
fn profile_fields_are_left_out_unless_the_setting_is_on() {
    let (fake, client) = registered(json!({}));
    expect_service(&fake, "get_users", &[], &users_reply(&[ALICE]));
    let out = run(&fake, &client, "users");
    let section = &out["directory"]["connect_users"];
    assert_eq!(
        section["options"],
        json!({ "remove_user": "suspend", "sync_profile_fields": false, "sync_jobs": false,
                "sync_positions": false, "sync_organisations": false })
    );
    assert_eq!(section["users"][0]["profile_fields"], Value::Null);
}

#[test]
fn an_empty_list_is_a_list() {
    let (fake, client) = registered(json!({}));
    // PHP writes an empty users array as `[]`, and so the whole data may be `[]` too.
    expect_service(
        &fake,
        "get_users",
        &[],
        r#"{"status":"success","data":{"users":[]}}"#,
    );
    let out = run(&fake, &client, "users");
    assert_eq!(out["directory"]["connect_users"]["users"], json!([]));
}

#[test]
fn a_refused_cut_or_unreachable_get_users_fails_the_task() {
    let half = users_reply(&[ALICE, BOB]);
    let cut = &half[..half.len() / 2];
    for (reply, kind, words) in [
        (
            Ok(r#"{"status":"error","message":"connect client is not active"}"#.to_owned()),
            ErrorKind::INVALID_RESPONSE,
            "connect client is not active",
        ),
        (
            Ok(cut.to_owned()),
            ErrorKind::INVALID_RESPONSE,
            "invalid response format",
        ),
        (
            Ok(r#"{"status":"success","data":{"users":{"id":"3"}}}"#.to_owned()),
            ErrorKind::INVALID_RESPONSE,
            "users",
        ),
        (
            Ok(r#"{"status":"success","data":{"users":[{"id":"3","username":"x"}]}}"#.to_owned()),
            ErrorKind::INVALID_RESPONSE,
            "deleted",
        ),
        (Err(()), ErrorKind::IDP_UNAVAILABLE, "cannot connect"),
    ] {
        let (fake, client) = registered(json!({}));
        match &reply {
            Ok(body) => {
                fake.expect(Expectation::new("POST", SERVER_SEP).reply(200, JSEND, body.as_bytes()))
            }
            Err(()) => fake.expect(Expectation::new("POST", SERVER_SEP).fail(
                gatehouse_plugin_api::PluginError::idp_unavailable("connection reset"),
            )),
        }
        let error = fake
            .call(|host| client.run_task(host, "users"))
            .expect_err("fails");
        assert_eq!(error.kind, kind, "{reply:?}: {error}");
        assert!(error.message().contains(words), "{reply:?}: {error}");
    }
}

#[test]
fn an_unregistered_client_has_no_server_to_sync_with() {
    let fake = FakeHost::new();
    let client = client();
    for task in ["handshake", "users"] {
        let error = fake
            .call(|host| client.run_task(host, task))
            .expect_err("not registered");
        assert_eq!(error.kind, ErrorKind::INVALID_SETTINGS);
        assert!(
            error
                .message()
                .contains("gatehouse connect new-server --idp hq"),
            "{error}"
        );
    }
    assert!(fake.requests().is_empty(), "no server is called");
    let out = run(&fake, &client, "server");
    assert_eq!(out["server"], Value::Null);
    let out = run(&fake, &client, "cleanup");
    assert!(
        out["summary"].as_str().unwrap().contains("not registered"),
        "{out}"
    );
}

#[test]
fn server_shows_the_registration_without_its_secrets() {
    let (fake, client) = registered(json!({}));
    let out = run(&fake, &client, "server");
    assert_eq!(
        out["server"],
        json!({
            "name": "Head office",
            "url": SERVER_URL,
            "server_idnumber": SERVER_IDNUMBER,
            "api_version": 2,
            "registered_at": fake.now_unix_seconds(),
            "status": "active",
        })
    );
    let text = out.to_string();
    for secret in [SERVER_SECRET, CLIENT_SECRET, CLIENT_IDNUMBER] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn cleanup_leaves_no_request_token_past_600_seconds() {
    let (fake, client) = registered(json!({}));
    let state_token = "0123456789abcdef0123456789abcdef01234567";
    let request = BeginRequest {
        callback_url: "https://learn.example.test/auth/connect/sso_finish.php".into(),
        state_token: state_token.into(),
        login_hint: None.into(),
    };
    fake.call(|host| client.begin_login(host, &request))
        .expect("begins");
    let key = format!("request:{state_token}");
    assert!(fake.stored(&key).is_some());
    fake.advance(Duration::from_secs(599));
    let out = run(&fake, &client, "cleanup");
    assert!(fake.stored(&key).is_some(), "599 s: still live");
    assert!(
        out["summary"].as_str().unwrap().contains("registered with"),
        "{out}"
    );
    fake.advance(Duration::from_secs(2));
    run(&fake, &client, "cleanup");
    assert!(fake.stored(&key).is_none(), "601 s: gone");
}

/// A user with two job assignments as a v2 server with `syncjobs` writes them (§3.1: the
/// table's columns minus the manager and appraiser ones, ids as strings).
const DAVE: &str = r#"{"id":"5","auth":"manual","deleted":"0","suspended":"0","username":"dave","idnumber":"E5","firstname":"Dave","lastname":"K","email":"dave@example.com","profile_fields":null,"jobs":[{"id":"21","fullname":"Rep","shortname":"rep","idnumber":"J1","description":"<p>x<\/p>","startdate":"1500000000","enddate":"0","timecreated":"1550000000","timemodified":"1550000000","usermodified":"2","positionid":"11","positionassignmentdate":"1550000000","organisationid":null,"sortorder":"1","totarasync":"0","synctimemodified":"0"},{"id":"22","fullname":"Lead","shortname":"","idnumber":"J2","description":null,"startdate":null,"enddate":null,"positionid":null,"organisationid":"31","sortorder":"2"}]}"#;

#[test]
fn jobs_are_handed_over_only_with_sync_jobs() {
    let (fake, client) = registered(json!({ "sync_jobs": true, "sync_positions": true }));
    expect_service(&fake, "get_users", &[], &users_reply(&[DAVE]));
    let out = run(&fake, &client, "users");
    let section = &out["directory"]["connect_users"];
    assert_eq!(section["options"]["sync_jobs"], json!(true));
    assert_eq!(section["options"]["sync_positions"], json!(true));
    assert_eq!(section["options"]["sync_organisations"], json!(false));
    let jobs = &section["users"][0]["jobs"];
    assert_eq!(jobs[0]["id"], json!(21));
    assert_eq!(jobs[0]["idnumber"], json!("J1"));
    assert_eq!(jobs[0]["description"], json!("<p>x</p>"));
    assert_eq!(jobs[0]["positionid"], json!(11));
    assert_eq!(jobs[0]["startdate"], json!(1_500_000_000));
    assert_eq!(jobs[1]["organisationid"], json!(31));
    assert_eq!(jobs[1]["startdate"], Value::Null);

    let (fake, client) = registered(json!({}));
    expect_service(&fake, "get_users", &[], &users_reply(&[DAVE]));
    let out = run(&fake, &client, "users");
    let user = &out["directory"]["connect_users"]["users"][0];
    assert!(user.get("jobs").is_none(), "{user}");
}
