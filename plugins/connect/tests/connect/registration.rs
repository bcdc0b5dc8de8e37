//! Registration: `new_server` and the server's call to `sep_setup.php`, each refusal with the
//! original's text and nothing stored by a failed registration.

use std::time::Duration;

use gatehouse_plugin_api::testkit::{Expectation, FakeHost, conformance};
use gatehouse_plugin_api::{ErrorKind, IdentityProvider, InstanceConfig, Plugin, PluginError};
use serde_json::json;

use gatehouse_connect::ConnectClient;

use crate::support::*;

const INVALID_SETUP_SECRET: &str = r#"{"status":"error","message":"invalid setup secret"}"#;

/// A call that only a registered client answers with success.
fn is_registered(fake: &FakeHost, client: &ConnectClient) -> bool {
    let reply = inbound(
        fake,
        client,
        &post(
            SEP,
            &[
                ("clientidnumber", CLIENT_IDNUMBER),
                ("clientsecret", CLIENT_SECRET),
                ("service", "is_sso_user_active"),
                ("ssotoken", SERVER_SECRET),
            ],
        ),
    );
    body(&reply) == r#"{"status":"success","data":{"active":false}}"#
}

#[test]
fn new_server_opens_a_registration_with_a_secret_from_the_hosts_random_source() {
    let fake = FakeHost::with_seed(3);
    let client = client();
    let out = fake
        .call(|host| client.run_task(host, "new_server"))
        .expect("runs");
    let secret = out["setup_secret"].as_str().expect("a secret");
    assert_eq!(out["client_url"], CLIENT_URL, "the primary origin");
    assert_eq!(secret.len(), 40);
    assert!(secret.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    let expected: String = FakeHost::with_seed(3)
        .call(|host| host.random_bytes(20))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(secret, expected, "20 bytes of the host's randomness");
    let summary = out["summary"].as_str().expect("a summary");
    assert!(
        !summary.contains(secret),
        "the recorded summary never holds the secret"
    );
    assert_eq!(out["expires_at"], fake.now_unix_seconds() + 24 * 3600);

    // Run again (by the scheduler, say) while open: the same secret.
    let again = fake
        .call(|host| client.run_task(host, "new_server"))
        .expect("runs");
    assert_eq!(again["setup_secret"], secret);
    // After 24 h it has expired: a new one.
    fake.advance(Duration::from_secs(24 * 3600 + 1));
    let later = open_registration(&fake, &client);
    assert_ne!(later, secret);
}

#[test]
fn new_server_without_the_domains_url_is_refused() {
    let client = ConnectClient::new(&InstanceConfig::new("hq", json!({}))).expect("valid");
    let error = FakeHost::new()
        .call(|host| client.run_task(host, "new_server"))
        .expect_err("no client URL");
    assert_eq!(error.kind, ErrorKind::INVALID_SETTINGS);
}

#[test]
fn a_registration_stores_the_server_and_uses_the_secret_once() {
    let fake = FakeHost::new();
    let client = client();
    let secret = open_registration(&fake, &client);
    assert!(!is_registered(&fake, &client));
    expect_update_api_version(&fake, r#"{"status":"success","data":[]}"#);
    let form = setup_form(&secret);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), r#"{"status":"success","data":[]}"#);
    assert!(reply.actions.is_empty());
    fake.assert_script_done();
    assert!(is_registered(&fake, &client));

    // The secret was single use.
    let reused = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reused), INVALID_SETUP_SECRET);
    // And no new registration opens while connected.
    let out = fake
        .call(|host| client.run_task(host, "new_server"))
        .expect("runs");
    assert!(out.get("setup_secret").is_none(), "{out}");
    assert!(
        out["summary"]
            .as_str()
            .unwrap_or("")
            .contains("already connected")
    );
    fake.assert_script_done();
}

#[test]
fn a_wrong_expired_or_absent_secret_is_refused_with_nothing_stored() {
    let fake = FakeHost::new();
    let client = client();
    // No registration open.
    let form = setup_form(SERVER_SECRET);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), INVALID_SETUP_SECRET);

    let secret = open_registration(&fake, &client);
    for wrong in [SERVER_SECRET, "", "0", &secret[..39]] {
        let form = setup_form(wrong);
        let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
        assert_eq!(body(&reply), INVALID_SETUP_SECRET, "secret {wrong:?}");
    }
    // In the query string, not the POST body: never read.
    let mut request = post(SEP_SETUP, &[]);
    request.query = setup_form(&secret)
        .iter()
        .map(|(n, v)| gatehouse_plugin_api::Pair::new(*n, v.as_str()))
        .collect();
    assert_eq!(
        body(&inbound(&fake, &client, &request)),
        INVALID_SETUP_SECRET
    );

    fake.advance(Duration::from_secs(24 * 3600 + 1));
    let form = setup_form(&secret);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), INVALID_SETUP_SECRET, "expired");
    assert!(
        fake.requests().is_empty(),
        "no call-back for a refused secret"
    );
    assert!(!is_registered(&fake, &client));
}

#[test]
fn missing_parameters_and_versions_are_refused_in_order() {
    let fake = FakeHost::new();
    let client = client();
    let secret = open_registration(&fake, &client);
    let without = |name: &str| {
        let form: Vec<(&'static str, String)> = setup_form(&secret)
            .into_iter()
            .filter(|(n, _)| *n != name)
            .collect();
        body(&inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form))))
    };
    assert_eq!(
        without("serverurl"),
        r#"{"status":"error","message":"A required parameter (serverurl) was missing"}"#
    );
    assert_eq!(
        without("minapiversion"),
        r#"{"status":"error","message":"A required parameter (minapiversion) was missing"}"#
    );
    let mut form = setup_form(&secret);
    form[7].1 = "3".into();
    form[8].1 = "4".into();
    assert_eq!(
        body(&inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)))),
        r#"{"status":"error","message":"api version not supported"}"#
    );
    assert!(fake.requests().is_empty());
    assert!(!is_registered(&fake, &client));
}

#[test]
fn only_the_configured_server_may_register() {
    let fake = FakeHost::new();
    let client = build(json!({ "server_url": "https://other.example.test/" })).expect("valid");
    let secret = open_registration(&fake, &client);
    let form = setup_form(&secret);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(
        body(&reply),
        r#"{"status":"error","message":"serverurl not allowed"}"#
    );
    assert!(fake.requests().is_empty());
    assert!(!is_registered(&fake, &client));

    // The configured one may (trailing slash or not).
    let client = build(json!({ "server_url": "https://hq.example.test/" })).expect("valid");
    expect_update_api_version(&fake, r#"{"status":"success","data":[]}"#);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), r#"{"status":"success","data":[]}"#);
    fake.assert_script_done();
}

#[test]
fn a_failed_call_back_is_relayed_and_leaves_the_registration_open() {
    let fake = FakeHost::new();
    let client = client();
    let secret = open_registration(&fake, &client);
    let form = setup_form(&secret);

    // The server's own refusal, relayed unchanged (PHP's escapes and all).
    let refusal =
        r#"{"status":"fail","data":{"clienttype":"incorrect or missing clienttype name"}}"#;
    expect_update_api_version(&fake, refusal);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), refusal);

    // Unreachable, an HTTP error, an empty body, not JSend.
    fake.expect(Expectation::new("POST", SERVER_SEP).fail(PluginError::idp_unavailable("refused")));
    fake.expect(Expectation::new("POST", SERVER_SEP).reply(500, "text/html", b"oops"));
    fake.expect(Expectation::new("POST", SERVER_SEP).reply(200, "application/json", b""));
    let cannot_connect =
        r#"{"status":"error","message":"Remote data request failed - cannot connect server."}"#;
    for _ in 0..3 {
        let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
        assert_eq!(body(&reply), cannot_connect);
    }
    fake.expect(Expectation::new("POST", SERVER_SEP).reply(200, "text/html", b"<html>"));
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(
        body(&reply),
        r#"{"status":"error","message":"Remote data request failed - invalid response format."}"#
    );
    fake.assert_script_done();
    assert!(
        !is_registered(&fake, &client),
        "a failed registration stores nothing"
    );

    // The same secret still works once the server answers.
    expect_update_api_version(&fake, r#"{"status":"success","data":[]}"#);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), r#"{"status":"success","data":[]}"#);
    assert!(is_registered(&fake, &client));
}

#[test]
fn passes_the_conformance_check() {
    // Registered, so that begin_login has a server to send the browser to.
    let (fake, _client) = registered(json!({}));
    conformance::check_with::<ConnectClient>(
        &conformance::Case {
            good_settings: json!({ "remove_user": "keep" }),
            bad_settings: vec![
                (json!({ "remove_user": "purge" }), "remove_user"),
                (json!({ "migrate_map": "phone" }), "migrate_map"),
                (
                    json!({ "server_url": "ftp://hq.example.test" }),
                    "server_url",
                ),
                (json!({ "colour": "blue" }), "colour"),
            ],
        },
        &fake,
    );
}

#[test]
fn a_registration_calling_back_holds_the_secret_against_a_second_one() {
    let fake = FakeHost::new();
    let client = client();
    let secret = open_registration(&fake, &client);
    // Another registration with this secret is waiting for its server's call-back
    // (`records`' claim, taken in one atomic put).
    fake.call(|host| host.kv_put("setup_claim", b"1", Some(Duration::from_secs(120))))
        .expect("claimed");
    let form = setup_form(&secret);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), INVALID_SETUP_SECRET);
    assert!(fake.requests().is_empty(), "no second call-back");
    // The claim lapses (the other registration died): the secret works again.
    fake.advance(Duration::from_secs(121));
    expect_update_api_version(&fake, r#"{"status":"success","data":[]}"#);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), r#"{"status":"success","data":[]}"#);
    fake.assert_script_done();
}
