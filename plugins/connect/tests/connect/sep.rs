//! The client's SEP services at `sep.php`: the envelope's checks in order, each service's
//! checks and replies, the host asked (`sessions_alive`) and told (`END_SESSIONS`).

use std::time::Duration;

use gatehouse_plugin_api::testkit::FakeHost;
use gatehouse_plugin_api::{
    BeginRequest, HostAction, IdentityProvider, InboundReply, SessionSelector,
};
use serde_json::json;

use gatehouse_connect::ConnectClient;

use crate::support::*;

const SSO_TOKEN: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9e8d7c6b5";

fn call(fake: &FakeHost, client: &ConnectClient, extra: &[(&str, &str)]) -> InboundReply {
    let mut form = vec![
        ("clientidnumber", CLIENT_IDNUMBER),
        ("clientsecret", CLIENT_SECRET),
    ];
    form.extend_from_slice(extra);
    inbound(fake, client, &post(SEP, &form))
}

fn error(message: &str) -> String {
    format!(r#"{{"status":"error","message":"{message}"}}"#)
}

#[test]
fn the_envelope_is_checked_in_the_originals_order() {
    let (fake, client) = registered(json!({}));
    let answer = |form: &[(&str, &str)]| body(&inbound(&fake, &client, &post(SEP, form)));
    assert_eq!(answer(&[]), error("invalid parameters"));
    assert_eq!(
        answer(&[
            ("clientidnumber", CLIENT_IDNUMBER),
            ("clientsecret", CLIENT_SECRET),
        ]),
        error("invalid parameters"),
        "no service"
    );
    assert_eq!(
        answer(&[
            ("clientidnumber", CLIENT_IDNUMBER),
            ("clientsecret", SERVER_SECRET),
            ("service", "kill_sso_user"),
        ]),
        error("invalid client secret or idnumber")
    );
    assert_eq!(
        answer(&[
            ("clientidnumber", SERVER_IDNUMBER),
            ("clientsecret", CLIENT_SECRET),
            ("service", "kill_sso_user"),
        ]),
        error("invalid client secret or idnumber")
    );
    assert_eq!(
        body(&call(&fake, &client, &[("service", "get_users")])),
        error("invalid client service name: get_users")
    );
    assert_eq!(
        body(&call(
            &fake,
            &client,
            &[("service", "kill_sso_user"), ("component", "local_plugin")]
        )),
        error("invalid server service component: local_plugin")
    );
}

#[test]
fn an_unregistered_client_answers_no_one() {
    let fake = FakeHost::new();
    let client = client();
    assert_eq!(
        body(&call(
            &fake,
            &client,
            &[("service", "kill_sso_user"), ("ssotoken", SSO_TOKEN)]
        )),
        error("invalid client secret or idnumber")
    );
}

#[test]
fn validate_sso_request_token_finds_live_requests_only() {
    let (fake, client) = registered(json!({}));
    let validate = |token: Option<&str>| {
        let mut extra = vec![("service", "validate_sso_request_token")];
        if let Some(token) = token {
            extra.push(("requesttoken", token));
        }
        body(&call(&fake, &client, &extra))
    };
    assert_eq!(
        validate(None),
        r#"{"status":"fail","data":{"requesttoken":"missing sso request token"}}"#
    );
    assert_eq!(
        validate(Some("abc")),
        r#"{"status":"fail","data":{"ssotoken":"invalid request token format"}}"#,
        "keyed ssotoken, as in the original"
    );
    assert_eq!(validate(Some(SSO_TOKEN)), error("sso request timed out"));

    // A sign-in begun here makes its request token live for 600 s.
    let state_token = "0123456789abcdef0123456789abcdef01234567";
    fake.call(|host| {
        client.begin_login(
            host,
            &BeginRequest {
                callback_url: "https://learn.example.test/auth/connect/sso_finish.php".into(),
                state_token: state_token.into(),
                login_hint: None.into(),
            },
        )
    })
    .expect("begins");
    assert_eq!(
        validate(Some(state_token)),
        r#"{"status":"success","data":[]}"#
    );
    fake.advance(Duration::from_secs(601));
    assert_eq!(validate(Some(state_token)), error("sso request timed out"));
}

#[test]
fn is_sso_user_active_asks_the_host_about_that_tokens_sessions() {
    let (fake, client) = registered(json!({}));
    fake.add_session("7", SSO_TOKEN.as_bytes());
    let active = |token: &str| {
        body(&call(
            &fake,
            &client,
            &[("service", "is_sso_user_active"), ("ssotoken", token)],
        ))
    };
    assert_eq!(
        active(SSO_TOKEN),
        r#"{"status":"success","data":{"active":true}}"#
    );
    assert_eq!(
        active("1111111111111111111111111111111111111111"),
        r#"{"status":"success","data":{"active":false}}"#
    );
    assert_eq!(
        active("short"),
        r#"{"status":"fail","data":{"ssotoken":"invalid sso token format"}}"#
    );
    assert_eq!(
        body(&call(&fake, &client, &[("service", "is_sso_user_active")])),
        r#"{"status":"fail","data":{"ssotoken":"missing sso token"}}"#
    );
}

#[test]
fn kill_sso_user_returns_the_end_sessions_action_for_that_token_only() {
    let (fake, client) = registered(json!({}));
    let reply = call(
        &fake,
        &client,
        &[("service", "KILL_SSO_USER"), ("ssotoken", SSO_TOKEN)],
    );
    assert_eq!(body(&reply), r#"{"status":"success","data":[]}"#);
    assert_eq!(
        reply.actions.as_slice(),
        [HostAction::end_sessions(SessionSelector::logout_state(
            SSO_TOKEN.as_bytes()
        ))]
    );
    // A refused call asks for nothing.
    let refused = call(&fake, &client, &[("service", "kill_sso_user")]);
    assert!(refused.actions.is_empty());
    assert_eq!(
        body(&refused),
        r#"{"status":"fail","data":{"ssotoken":"missing sso token"}}"#
    );
}
