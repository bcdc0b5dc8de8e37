//! Single sign-on through the server: the redirect, every check of §4.1 step 4, the
//! `get_sso_user` back-channel, the identity, and the client's logout.

use std::time::Duration;

use gatehouse_plugin_api::testkit::{Expectation, FakeHost};
use gatehouse_plugin_api::{
    BeginRequest, Begun, CallbackRequest, ErrorKind, IdentityProvider, LogoutRequest, Pair,
    PluginError,
};
use serde_json::json;

use gatehouse_connect::ConnectClient;

use crate::support::*;

const STATE: &str = "0123456789abcdef0123456789abcdef01234567";
const SSO_TOKEN: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9e8d7c6b5";
const FINISH: &str = "https://learn.example.test/auth/connect/sso_finish.php";

/// `get_sso_user`'s reply for user 7 as a Totara 12 server writes it: every value a string,
/// `\/` escapes, `pictures` empty as `[]`, API v2's `profile_fields`.
const SSO_USER: &str = r#"{"status":"success","data":{"id":"7","auth":"manual","confirmed":"1","policyagreed":"0","deleted":"0","suspended":"0","mnethostid":"1","username":"ada","password":null,"idnumber":"E100","firstname":"Ada","lastname":"Lovelace","email":"ada@example.com","emailstop":"0","icq":"","skype":"","yahoo":"","aim":"","msn":"","phone1":"","phone2":"","institution":"","department":"R\u0026D","address":"","city":"London","country":"GB","lang":"en","calendartype":"gregorian","theme":"","timezone":"99","firstaccess":"0","lastaccess":"0","lastlogin":"0","currentlogin":"0","lastip":"10.0.0.1","picture":"0","url":"https:\/\/ada.example.com\/","description":null,"descriptionformat":"1","mailformat":"1","maildigest":"0","maildisplay":"2","autosubscribe":"1","trackforums":"0","timecreated":"1550000000","timemodified":"1550000000","trustbitmask":"0","imagealt":null,"lastnamephonetic":null,"firstnamephonetic":null,"middlename":null,"alternatename":null,"totarasync":"0","pictures":[],"profile_fields":[{"shortname":"team","datatype":"text","data":"Engines"}],"jobs":null}}"#;

fn begin(fake: &FakeHost, client: &ConnectClient, state: &str) -> Result<Begun, PluginError> {
    fake.call(|host| {
        client.begin_login(
            host,
            &BeginRequest {
                callback_url: "https://learn.example.test/sso/hq/callback".into(),
                state_token: state.into(),
                login_hint: None.into(),
            },
        )
    })
}

/// The server's redirect back: `sso_finish.php?clientidnumber=…&requesttoken=…&ssotoken=…&result=success`.
fn finish_params(request_token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("clientidnumber", CLIENT_IDNUMBER.to_owned()),
        ("requesttoken", request_token.to_owned()),
        ("ssotoken", SSO_TOKEN.to_owned()),
        ("result", "success".to_owned()),
    ]
}

fn complete(
    fake: &FakeHost,
    client: &ConnectClient,
    begun: &Begun,
    params: &[(&'static str, String)],
) -> Result<gatehouse_plugin_api::Identity, PluginError> {
    let request = CallbackRequest {
        callback_url: FINISH.into(),
        query: params
            .iter()
            .map(|(n, v)| Pair::new(*n, v.as_str()))
            .collect(),
        form: Default::default(),
        state: begun.state.clone(),
    };
    fake.call(|host| client.complete_login(host, &request))
}

fn expect_get_sso_user(fake: &FakeHost, reply: &str) {
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(|request| {
                let form = form_of(request);
                let got: Vec<(&str, &str)> =
                    form.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let expected = [
                    ("serveridnumber", SERVER_IDNUMBER),
                    ("serversecret", SERVER_SECRET),
                    ("service", "get_sso_user"),
                    ("ssotoken", SSO_TOKEN),
                ];
                if got != expected {
                    return Err(format!("the form was {got:?}"));
                }
                Ok(())
            })
            .reply(200, "application/json; charset=utf-8", reply.as_bytes()),
    );
}

#[test]
fn begin_login_redirects_to_the_servers_sso_request_with_the_request_token() {
    let (fake, client) = registered(json!({}));
    let begun = begin(&fake, &client, STATE).expect("begins");
    assert_eq!(
        begun.step.url.as_str(),
        format!(
            "https://hq.example.test/totara/connect/sso_request.php?clientidnumber={CLIENT_IDNUMBER}&requesttoken={STATE}"
        )
    );
    assert!(begun.step.form.is_empty());
    // The same state token twice is refused (it would make a request token reusable).
    assert!(begin(&fake, &client, STATE).is_err());
}

#[test]
fn begin_login_needs_a_server_and_a_token_connect_can_carry() {
    let fake = FakeHost::new();
    let error = begin(&fake, &client(), STATE).expect_err("not connected");
    assert_eq!(error.kind, ErrorKind::INVALID_SETTINGS);
    assert!(
        error
            .message()
            .contains("gatehouse connect new-server --idp hq"),
        "{error}"
    );
    let (fake, client) = registered(json!({}));
    let error =
        begin(&fake, &client, "Zm9v-YmFy_base64url-token-of-the-old-host").expect_err("not hex");
    assert_eq!(error.kind, ErrorKind::INTERNAL);
}

#[test]
fn a_finished_sign_in_is_the_servers_user_as_a_tc_account() {
    let (fake, client) = registered(json!({ "sync_profile_fields": true }));
    let begun = begin(&fake, &client, STATE).expect("begins");
    expect_get_sso_user(&fake, SSO_USER);
    let identity = complete(&fake, &client, &begun, &finish_params(STATE)).expect("signs in");
    fake.assert_script_done();
    assert_eq!(identity.subject.as_str(), "7");
    assert_eq!(
        identity.attribute("username"),
        Some(format!("tc_7_{SERVER_IDNUMBER}").as_str())
    );
    assert_eq!(identity.attribute("server_username"), Some("ada"));
    // With the subject, what the host finds the user's Connect link by.
    assert_eq!(identity.attribute("server_idnumber"), Some(SERVER_IDNUMBER));
    assert_eq!(identity.attribute("email"), Some("ada@example.com"));
    assert_eq!(identity.attribute("firstname"), Some("Ada"));
    assert_eq!(identity.attribute("lastname"), Some("Lovelace"));
    assert_eq!(identity.attribute("idnumber"), Some("E100"));
    assert_eq!(identity.attribute("department"), Some("R&D"));
    assert_eq!(identity.attribute("url"), Some("https://ada.example.com/"));
    assert_eq!(identity.attribute("profile_field_team"), Some("Engines"));
    for never in [
        "password",
        "lastip",
        "timecreated",
        "auth",
        "suspended",
        "description",
    ] {
        assert_eq!(identity.attribute(never), None, "{never}");
    }
    assert_eq!(identity.logout_state.as_slice(), SSO_TOKEN.as_bytes());
    // Every column not left out is offered, none twice.
    let copied: Vec<&str> = gatehouse_connect::copied_columns().collect();
    assert_eq!(copied.len(), 53 - gatehouse_connect::NOT_COPIED.len());
    assert!(copied.contains(&"middlename") && !copied.contains(&"password"));

    // The request token was single use.
    let error = complete(&fake, &client, &begun, &finish_params(STATE)).expect_err("replayed");
    assert_eq!(error.kind, ErrorKind::EXPIRED);
    fake.assert_script_done();
}

#[test]
fn profile_fields_are_left_out_unless_synchronised() {
    let (fake, client) = registered(json!({}));
    let begun = begin(&fake, &client, STATE).expect("begins");
    expect_get_sso_user(&fake, SSO_USER);
    let identity = complete(&fake, &client, &begun, &finish_params(STATE)).expect("signs in");
    assert_eq!(identity.attribute("profile_field_team"), None);
}

#[test]
fn each_check_of_sso_finish_refuses_without_asking_the_server() {
    let (fake, client) = registered(json!({}));
    let begun = begin(&fake, &client, STATE).expect("begins");
    let with = |name: &str, value: &str| {
        finish_params(STATE)
            .into_iter()
            .map(|(n, v)| {
                if n == name {
                    (n, value.to_owned())
                } else {
                    (n, v)
                }
            })
            .collect::<Vec<_>>()
    };
    for (params, kind) in [
        (with("clientidnumber", ""), ErrorKind::INVALID_RESPONSE),
        (with("requesttoken", ""), ErrorKind::INVALID_RESPONSE),
        (
            with("clientidnumber", SERVER_IDNUMBER),
            ErrorKind::INVALID_RESPONSE,
        ),
        (
            with("requesttoken", "not-a-token"),
            ErrorKind::INVALID_RESPONSE,
        ),
        (with("requesttoken", SSO_TOKEN), ErrorKind::EXPIRED),
    ] {
        let error = complete(&fake, &client, &begun, &params).expect_err("refused");
        assert_eq!(error.kind, kind, "{params:?}: {error}");
    }
    assert!(fake.requests().len() == 1, "no call to the server");

    // result=cancel and others: refused, and the request token is spent.
    let error = complete(&fake, &client, &begun, &with("result", "cancel")).expect_err("cancel");
    assert_eq!(error.kind, ErrorKind::ACCESS_DENIED);
    assert!(error.message().contains("cancelled"), "{error}");
    let begun = begin(&fake, &client, "1111111111111111111111111111111111111111").expect("begins");
    let params: Vec<_> = finish_params("1111111111111111111111111111111111111111")
        .into_iter()
        .map(|(n, v)| {
            if n == "result" {
                (n, "error".to_owned())
            } else {
                (n, v)
            }
        })
        .collect();
    let error = complete(&fake, &client, &begun, &params).expect_err("error");
    assert_eq!(error.kind, ErrorKind::ACCESS_DENIED);

    // A missing or malformed SSO token.
    for token in ["", "short", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        let state = "2222222222222222222222222222222222222222";
        let begun = begin(&fake, &client, state).expect("begins");
        let params: Vec<_> = finish_params(state)
            .into_iter()
            .map(|(n, v)| {
                if n == "ssotoken" {
                    (n, token.to_owned())
                } else {
                    (n, v)
                }
            })
            .collect();
        let error = complete(&fake, &client, &begun, &params).expect_err("no SSO token");
        assert_eq!(error.kind, ErrorKind::INVALID_RESPONSE, "{token:?}");
        fake.advance(Duration::from_secs(601));
    }
    assert!(fake.requests().len() == 1, "still no call to the server");
}

#[test]
fn a_request_token_of_another_sign_in_or_too_old_is_refused() {
    let (fake, client) = registered(json!({}));
    let mine = begin(&fake, &client, STATE).expect("begins");
    let other = "3333333333333333333333333333333333333333";
    begin(&fake, &client, other).expect("another sign-in");
    // The answer of the other sign-in, arriving at mine (login CSRF).
    let error = complete(&fake, &client, &mine, &finish_params(other)).expect_err("another's");
    assert_eq!(error.kind, ErrorKind::INVALID_RESPONSE);
    assert!(error.message().contains("another sign-in"), "{error}");

    fake.advance(Duration::from_secs(601));
    let error = complete(&fake, &client, &mine, &finish_params(STATE)).expect_err("too old");
    assert_eq!(error.kind, ErrorKind::EXPIRED);
    assert!(fake.requests().len() == 1, "no call to the server");
}

#[test]
fn the_servers_refusals_and_unusable_users_refuse_the_sign_in() {
    let (fake, client) = registered(json!({}));
    let refusals = [
        r#"{"status":"error","message":"reused ssotoken"}"#,
        r#"{"status":"fail","data":{"ssotoken":"invalid sso token"}}"#,
        r#"{"status":"error","message":"session expired"}"#,
    ];
    for (i, reply) in refusals.iter().enumerate() {
        let state = format!("{i:0>40}");
        let begun = begin(&fake, &client, &state).expect("begins");
        expect_get_sso_user(&fake, reply);
        let error = complete(&fake, &client, &begun, &finish_params(&state)).expect_err("refused");
        assert_eq!(error.kind, ErrorKind::ACCESS_DENIED, "{reply}");
    }
    let error_text = {
        let state = "4444444444444444444444444444444444444444";
        let begun = begin(&fake, &client, state).expect("begins");
        expect_get_sso_user(&fake, r#"{"status":"error","message":"reused ssotoken"}"#);
        complete(&fake, &client, &begun, &finish_params(state)).expect_err("refused")
    };
    assert!(
        error_text.message().contains("reused ssotoken"),
        "{error_text}"
    );

    let suspended = SSO_USER.replace(r#""suspended":"0""#, r#""suspended":"1""#);
    let state = "5555555555555555555555555555555555555555";
    let begun = begin(&fake, &client, state).expect("begins");
    expect_get_sso_user(&fake, &suspended);
    let error = complete(&fake, &client, &begun, &finish_params(state)).expect_err("suspended");
    assert_eq!(error.kind, ErrorKind::ACCESS_DENIED);

    let state = "6666666666666666666666666666666666666666";
    let begun = begin(&fake, &client, state).expect("begins");
    expect_get_sso_user(&fake, r#"{"status":"success","data":[]}"#);
    let error = complete(&fake, &client, &begun, &finish_params(state)).expect_err("no user");
    assert_eq!(error.kind, ErrorKind::INVALID_RESPONSE);
    fake.assert_script_done();
}

#[test]
fn logout_tells_the_server_force_sso_logout_and_sends_the_browser_nowhere() {
    let (fake, client) = registered(json!({}));
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(|request| {
                let form = form_of(request);
                match (field(&form, "service"), field(&form, "ssotoken")) {
                    (Some(service), Some(token))
                        if service == "force_sso_logout" && token == SSO_TOKEN =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            })
            .reply(
                200,
                "application/json",
                br#"{"status":"success","data":[]}"#,
            ),
    );
    let request = LogoutRequest {
        subject: "7".into(),
        logout_state: SSO_TOKEN.as_bytes().to_vec().into(),
        return_url: "https://learn.example.test/logged-out".into(),
    };
    let step = fake
        .call(|host| client.logout(host, &request))
        .expect("logs out");
    assert!(step.is_none());
    fake.assert_script_done();
    // The server's failure is ignored, as in the original.
    fake.expect(Expectation::new("POST", SERVER_SEP).reply(500, "text/html", b""));
    assert!(
        fake.call(|host| client.logout(host, &request))
            .expect("logs out")
            .is_none()
    );
    // A session without a token asks the server nothing.
    let without = LogoutRequest {
        logout_state: Default::default(),
        ..request
    };
    assert!(
        fake.call(|host| client.logout(host, &without))
            .expect("logs out")
            .is_none()
    );
    fake.assert_script_done();
}
