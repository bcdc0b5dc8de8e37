//! Wire-format tests written from the reference (`totara-connect-protocol.md` and the
//! original's source it quotes), not from a round trip of this crate's own types: literal
//! replies as Totara sends them are parsed, and what this crate writes is compared byte for
//! byte with what Totara writes.

use gatehouse_connect_wire::jsend::{CANNOT_CONNECT, INVALID_RESPONSE_FORMAT};
use gatehouse_connect_wire::sep::{
    self, ClientStanding, SepRefusal, ServerService, ServerStanding, read_client_sep_form,
    read_server_sep_form,
};
use gatehouse_connect_wire::services::{self, ClientCall, ServerCall, ServiceRefusal};
use gatehouse_connect_wire::setup::{self, SetupRefusal, SetupRequest, read_setup_form};
use gatehouse_connect_wire::user::{SharedUser, UserWriteOptions};
use gatehouse_connect_wire::{
    ApiVersion, ClientService, ClientType, JSend, JSendError, ReplyError, Token, TokenError,
    UserError, connect_username, parse_connect_username, select_api_version,
};
use serde_json::json;

const SERVER_IDNUMBER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const SERVER_SECRET: &str = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8";
const CLIENT_IDNUMBER: &str = "356a192b7913b04c54574d18c28d46e6395428ab";
const CLIENT_SECRET: &str = "da4b9237bacccdf19c0760cab7aec4a8359010b0";
const SETUP_SECRET: &str = "77de68daecd823babbb58edb1c8e14d7106e83bb";
const SSO_TOKEN: &str = "1b6453892473a467d07372d45eb05abc2031647a";

fn token(text: &str) -> Token {
    Token::parse(text).expect("a test token")
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(body: &str) -> JSend {
    JSend::parse(body.as_bytes()).expect("a JSend reply")
}

// ---- JSend (§1.3) --------------------------------------------------------------------------

#[test]
fn success_with_an_empty_php_array_as_data() {
    assert_eq!(
        parse(r#"{"status":"success","data":[]}"#),
        JSend::Success { data: json!([]) }
    );
    assert!(services::read_empty_reply(parse(r#"{"status":"success","data":[]}"#)).is_ok());
}

#[test]
fn success_without_data_has_null_data() {
    assert_eq!(
        parse(r#"{"status":"success"}"#),
        JSend::Success { data: json!(null) }
    );
}

#[test]
fn fail_keeps_the_parameter_and_its_message() {
    let reply =
        parse(r#"{"status":"fail","data":{"clienttype":"incorrect or missing clienttype name"}}"#);
    assert_eq!(
        reply,
        JSend::fail("clienttype", "incorrect or missing clienttype name")
    );
}

#[test]
fn error_with_php_escaping_and_extra_keys() {
    let reply = parse(
        r#"{"status":"error","message":"invalid server service name: get\/users","code":7,"data":{"a":"b"},"debug":"x"}"#,
    );
    assert_eq!(
        reply,
        JSend::Error {
            message: "invalid server service name: get/users".to_owned(),
            code: Some(json!(7)),
            data: Some(json!({"a": "b"})),
        }
    );
}

#[test]
fn error_without_message_is_an_unknown_error() {
    assert_eq!(
        parse(r#"{"status":"error"}"#),
        JSend::error("unknown error")
    );
}

#[test]
fn nul_characters_are_removed_from_strings() {
    assert_eq!(
        parse(r#"{"status":"error","message":"a\u0000b"}"#),
        JSend::error("ab")
    );
}

#[test]
fn malformed_replies_are_typed_errors_with_totaras_local_messages() {
    assert_eq!(JSend::parse(b""), Err(JSendError::Empty));
    assert_eq!(JSendError::Empty.totara_message(), CANNOT_CONNECT);
    assert!(matches!(
        JSend::parse(b"<html>"),
        Err(JSendError::NotJson(_))
    ));
    assert_eq!(JSend::parse(b"[1,2]"), Err(JSendError::NotAnObject));
    assert_eq!(
        JSend::parse(br#"{"data":[]}"#),
        Err(JSendError::MissingStatus)
    );
    assert_eq!(
        JSend::parse(br#"{"status":""}"#),
        Err(JSendError::MissingStatus)
    );
    assert_eq!(
        JSend::parse(br#"{"status":"ok","data":[]}"#),
        Err(JSendError::UnknownStatus("ok".to_owned()))
    );
    assert_eq!(
        JSendError::NotAnObject.to_jsend().to_json(),
        r#"{"status":"error","message":"Remote data request failed - invalid response format."}"#
    );
    assert_eq!(
        JSendError::MissingStatus.totara_message(),
        INVALID_RESPONSE_FORMAT
    );
}

#[test]
fn replies_are_written_as_php_writes_them() {
    assert_eq!(
        JSend::success_empty().to_json(),
        r#"{"status":"success","data":[]}"#
    );
    assert_eq!(
        JSend::error("a/b é").to_json(),
        r#"{"status":"error","message":"a\/b \u00e9"}"#
    );
    assert_eq!(
        JSend::fail("if", "missing server user id number").to_json(),
        r#"{"status":"fail","data":{"if":"missing server user id number"}}"#
    );
}

// ---- The server's SEP envelope (§1.4, client → server) -------------------------------------

fn client_standing() -> ClientStanding {
    ClientStanding {
        server_secret: token(SERVER_SECRET),
        active: true,
        api_version: 2,
        allow_plugin_services: false,
    }
}

fn server_form(service: &str) -> Vec<(String, String)> {
    form(&[
        ("serveridnumber", SERVER_IDNUMBER),
        ("serversecret", SERVER_SECRET),
        ("service", service),
    ])
}

fn at_server(
    form: &[(String, String)],
    client: Option<&ClientStanding>,
    enabled: bool,
) -> Result<ServerService, SepRefusal> {
    let envelope = read_server_sep_form(form)?;
    envelope
        .authorize_at_server(client, &token(SERVER_IDNUMBER), enabled)
        .map(|a| a.service)
}

#[test]
fn server_sep_refusals_have_the_original_texts_in_its_order() {
    let client = client_standing();
    // 1. Empty secret, idnumber or service ("0" is empty to PHP).
    for missing in ["serversecret", "serveridnumber", "service"] {
        let mut f = server_form("get_users");
        f.retain(|(k, _)| k != missing);
        assert_eq!(
            at_server(&f, Some(&client), true),
            Err(SepRefusal::InvalidParameters)
        );
    }
    let zero = form(&[
        ("serveridnumber", "0"),
        ("serversecret", SERVER_SECRET),
        ("service", "x"),
    ]);
    assert_eq!(
        at_server(&zero, Some(&client), true),
        Err(SepRefusal::InvalidParameters)
    );
    // 3. Credentials before "not enabled" and "not active".
    let inactive = ClientStanding {
        active: false,
        ..client.clone()
    };
    let wrong_id = form(&[
        ("serveridnumber", CLIENT_IDNUMBER),
        ("serversecret", SERVER_SECRET),
        ("service", "get_users"),
    ]);
    assert_eq!(
        at_server(&wrong_id, Some(&inactive), false),
        Err(SepRefusal::InvalidServerSecretOrIdnumber)
    );
    assert_eq!(
        at_server(&server_form("get_users"), None, false),
        Err(SepRefusal::InvalidServerSecretOrIdnumber)
    );
    // 4, 5, 6.
    assert_eq!(
        at_server(&server_form("get_users"), Some(&inactive), false),
        Err(SepRefusal::ServerNotEnabled)
    );
    assert_eq!(
        at_server(&server_form("get_users"), Some(&inactive), true),
        Err(SepRefusal::ClientNotActive)
    );
    let future = ClientStanding {
        api_version: 3,
        ..client.clone()
    };
    assert_eq!(
        at_server(&server_form("get_users"), Some(&future), true),
        Err(SepRefusal::UnsupportedApiVersion)
    );
    // 7. A plugin component; an invalid component name is cleaned to empty: core services.
    let mut with_component = server_form("get_users");
    with_component.push(("component".to_owned(), "local_extra".to_owned()));
    assert_eq!(
        at_server(&with_component, Some(&client), true),
        Err(SepRefusal::InvalidServiceComponent(
            "local_extra".to_owned()
        ))
    );
    let mut invalid_component = server_form("get_users");
    invalid_component.push(("component".to_owned(), "Local Extra!".to_owned()));
    assert_eq!(
        at_server(&invalid_component, Some(&client), true),
        Ok(ServerService::GetUsers)
    );
    // 8. Unknown service; names are cleaned and matched ignoring case.
    assert_eq!(
        at_server(&server_form("get_passwords"), Some(&client), true),
        Err(SepRefusal::InvalidServerServiceName(
            "get_passwords".to_owned()
        ))
    );
    assert_eq!(
        at_server(&server_form("GET_Users"), Some(&client), true),
        Ok(ServerService::GetUsers)
    );
    assert_eq!(
        at_server(&server_form("get_users;drop"), Some(&client), true),
        Err(SepRefusal::InvalidServerServiceName(
            "get_usersdrop".to_owned()
        ))
    );
}

#[test]
fn server_sep_refusals_are_written_byte_for_byte() {
    let cases = [
        (SepRefusal::InvalidParameters, "invalid parameters"),
        (
            SepRefusal::InvalidServerSecretOrIdnumber,
            "invalid server secret or idnumber",
        ),
        (SepRefusal::ServerNotEnabled, "connect server not enabled"),
        (SepRefusal::ClientNotActive, "connect client is not active"),
        (SepRefusal::UnsupportedApiVersion, "unsupported api version"),
        (
            SepRefusal::InvalidServiceComponent("local_x".to_owned()),
            "invalid server service component: local_x",
        ),
        (
            SepRefusal::InvalidServerServiceName("nope".to_owned()),
            "invalid server service name: nope",
        ),
    ];
    for (refusal, text) in cases {
        assert_eq!(
            refusal.to_jsend().to_json(),
            format!(r#"{{"status":"error","message":"{text}"}}"#)
        );
    }
}

#[test]
fn the_fields_after_the_envelope_are_the_service_parameters() {
    let mut f = server_form("get_user");
    f.push(("userid".to_owned(), "12".to_owned()));
    f.push(("component".to_owned(), "totara_connect".to_owned()));
    let envelope = read_server_sep_form(&f).expect("envelope");
    assert_eq!(envelope.params, form(&[("userid", "12")]));
    let authorized = envelope
        .authorize_at_server(Some(&client_standing()), &token(SERVER_IDNUMBER), true)
        .expect("authorised");
    assert_eq!(
        ServerCall::read(authorized, &envelope.params),
        Ok(ServerCall::GetUser { user_id: 12 })
    );
}

// ---- The client's SEP envelope (§1.4, server → client) -------------------------------------

fn server_standing() -> ServerStanding {
    ServerStanding {
        client_idnumber: token(CLIENT_IDNUMBER),
        client_secret: token(CLIENT_SECRET),
        active: true,
        api_version: 1,
    }
}

fn client_form(service: &str) -> Vec<(String, String)> {
    form(&[
        ("clientidnumber", CLIENT_IDNUMBER),
        ("clientsecret", CLIENT_SECRET),
        ("service", service),
    ])
}

#[test]
fn client_sep_refusals_have_the_original_texts_in_its_order() {
    let server = server_standing();
    let check = |f: &[(String, String)], s: Option<&ServerStanding>, enabled: bool| {
        read_client_sep_form(f)
            .and_then(|e| e.authorize_at_client(s, enabled))
            .map(|a| a.service)
    };
    let mut no_secret = client_form("kill_sso_user");
    no_secret.retain(|(k, _)| k != "clientsecret");
    assert_eq!(
        check(&no_secret, Some(&server), true),
        Err(SepRefusal::InvalidParameters)
    );
    let wrong_secret = form(&[
        ("clientidnumber", CLIENT_IDNUMBER),
        ("clientsecret", SERVER_SECRET),
        ("service", "kill_sso_user"),
    ]);
    assert_eq!(
        check(&wrong_secret, Some(&server), false),
        Err(SepRefusal::InvalidClientSecretOrIdnumber)
    );
    assert_eq!(
        check(&client_form("kill_sso_user"), Some(&server), false),
        Err(SepRefusal::ClientNotEnabled)
    );
    let deleting = ServerStanding {
        active: false,
        ..server.clone()
    };
    assert_eq!(
        check(&client_form("kill_sso_user"), Some(&deleting), true),
        Err(SepRefusal::ServerNotActive)
    );
    let mut component = client_form("kill_sso_user");
    component.push(("component".to_owned(), "local_extra".to_owned()));
    let refusal = check(&component, Some(&server), true).expect_err("refused");
    // §8.6: the client's text says "server" too.
    assert_eq!(
        refusal.to_string(),
        "invalid server service component: local_extra"
    );
    assert_eq!(
        check(&client_form("get_users"), Some(&server), true),
        Err(SepRefusal::InvalidClientServiceName("get_users".to_owned()))
    );
    assert_eq!(
        SepRefusal::InvalidClientServiceName("x".to_owned())
            .to_jsend()
            .to_json(),
        r#"{"status":"error","message":"invalid client service name: x"}"#
    );
    assert_eq!(
        check(&client_form("Is_Sso_User_Active"), Some(&server), true),
        Ok(ClientService::IsSsoUserActive)
    );
}

// ---- Server services (§3.1) -----------------------------------------------------------------

fn server_call(
    service: &str,
    params: &[(&str, &str)],
    api: i64,
) -> Result<ServerCall, ServiceRefusal> {
    let mut f = server_form(service);
    f.extend(form(params));
    let envelope = read_server_sep_form(&f).expect("envelope");
    let client = ClientStanding {
        api_version: api,
        ..client_standing()
    };
    let authorized = envelope
        .authorize_at_server(Some(&client), &token(SERVER_IDNUMBER), true)
        .expect("authorised");
    ServerCall::read(authorized, &envelope.params)
}

#[test]
fn get_api_version_request_and_reply() {
    assert_eq!(
        server_call("get_api_version", &[("clienttype", "totaralms")], 1),
        Ok(ServerCall::GetApiVersion {
            client_type: ClientType::TotaraLms
        })
    );
    for bad in [
        &[][..],
        &[("clienttype", "moodle")][..],
        &[("clienttype", "TotaraLms")][..],
    ] {
        let refusal = server_call("get_api_version", bad, 1).expect_err("refused");
        assert_eq!(
            refusal.to_jsend().to_json(),
            r#"{"status":"fail","data":{"clienttype":"incorrect or missing clienttype name"}}"#
        );
    }
    assert_eq!(
        services::api_version_reply(),
        r#"{"status":"success","data":{"minapiversion":1,"maxapiversion":2}}"#
    );
    // Read leniently: numbers as strings too.
    assert_eq!(
        services::read_api_version_reply(parse(
            r#"{"status":"success","data":{"minapiversion":"1","maxapiversion":2}}"#
        )),
        Ok((1, 2))
    );
    assert_eq!(
        services::read_api_version_reply(parse(
            r#"{"status":"success","data":{"minapiversion":1}}"#
        )),
        Err(ReplyError::MissingField("maxapiversion"))
    );
}

#[test]
fn update_api_version_checks_in_the_originals_order() {
    assert_eq!(
        server_call(
            "update_api_version",
            &[("apiversion", "2"), ("clienttype", "totaralms")],
            1
        ),
        Ok(ServerCall::UpdateApiVersion {
            api_version: ApiVersion::V2,
            client_type: ClientType::TotaraLms
        })
    );
    // From the original's own tests: "a" is missing, "100" unsupported, "moodle" a bad type.
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("apiversion", "a"), ("clienttype", "totaralms")],
            r#"{"status":"fail","data":{"apiversion":"missing api version number"}}"#,
        ),
        (
            &[("clienttype", "totaralms")],
            r#"{"status":"fail","data":{"apiversion":"missing api version number"}}"#,
        ),
        (
            &[("apiversion", "100"), ("clienttype", "x")],
            r#"{"status":"fail","data":{"apiversion":"unsupported api version number"}}"#,
        ),
        (
            &[("apiversion", "0")],
            r#"{"status":"fail","data":{"apiversion":"unsupported api version number"}}"#,
        ),
        (
            &[("apiversion", "1"), ("clienttype", "moodle")],
            r#"{"status":"fail","data":{"clienttype":"incorrect or missing clienttype name"}}"#,
        ),
    ];
    for (params, reply) in cases {
        let refusal = server_call("update_api_version", params, 1).expect_err("refused");
        assert_eq!(refusal.to_jsend().to_json(), reply, "{params:?}");
    }
    assert_eq!(services::empty_reply(), r#"{"status":"success","data":[]}"#);
}

#[test]
fn get_user_needs_a_number_and_fails_under_the_key_if() {
    assert_eq!(
        server_call("get_user", &[("userid", "7")], 2),
        Ok(ServerCall::GetUser { user_id: 7 })
    );
    for bad in [
        &[][..],
        &[("userid", "")][..],
        &[("userid", "0")][..],
        &[("userid", "07")][..],
        &[("userid", "x")][..],
    ] {
        let refusal = server_call("get_user", bad, 2).expect_err("refused");
        assert_eq!(
            refusal.to_jsend().to_json(),
            r#"{"status":"fail","data":{"if":"missing server user id number"}}"#,
            "{bad:?}"
        );
    }
}

#[test]
fn sso_token_parameters_are_checked_for_presence_then_format() {
    assert_eq!(
        server_call("get_sso_user", &[("ssotoken", SSO_TOKEN)], 2),
        Ok(ServerCall::GetSsoUser {
            sso_token: Some(token(SSO_TOKEN))
        })
    );
    let missing = server_call("get_sso_user", &[], 2).expect_err("refused");
    assert_eq!(
        missing.to_jsend().to_json(),
        r#"{"status":"fail","data":{"ssotoken":"missing sso token"}}"#
    );
    for bad in ["", "abc", &format!("{SSO_TOKEN}0")] {
        let refusal =
            server_call("force_sso_logout", &[("ssotoken", bad)], 2).expect_err("refused");
        assert_eq!(
            refusal.to_jsend().to_json(),
            r#"{"status":"fail","data":{"ssotoken":"invalid sso token format"}}"#
        );
    }
    // Cleaned first: punctuation around a real token is dropped, as PARAM_ALPHANUM does.
    assert_eq!(
        server_call(
            "force_sso_logout",
            &[("ssotoken", &format!("{SSO_TOKEN}\n"))],
            2
        ),
        Ok(ServerCall::ForceSsoLogout {
            sso_token: Some(token(SSO_TOKEN))
        })
    );
    // 40 alphanumerics that no server made: well-formed, unknown.
    let upper = SSO_TOKEN.to_uppercase();
    assert_eq!(
        server_call("get_sso_user", &[("ssotoken", &upper)], 2),
        Ok(ServerCall::GetSsoUser { sso_token: None })
    );
    // The state-dependent replies of get_sso_user.
    let texts = [
        (
            ServiceRefusal::InvalidSsoToken,
            r#"{"status":"fail","data":{"ssotoken":"invalid sso token"}}"#,
        ),
        (
            ServiceRefusal::SessionExpired,
            r#"{"status":"error","message":"session expired"}"#,
        ),
        (
            ServiceRefusal::InvalidUserSession,
            r#"{"status":"error","message":"invalid user session"}"#,
        ),
        (
            ServiceRefusal::ReusedSsoToken,
            r#"{"status":"error","message":"reused ssotoken"}"#,
        ),
    ];
    for (refusal, json) in texts {
        assert_eq!(refusal.to_jsend().to_json(), json);
    }
}

#[test]
fn positions_and_organisations_are_refused_to_v1_clients() {
    let refusal = server_call("get_positions", &[], 1).expect_err("refused");
    assert_eq!(
        refusal.to_jsend().to_json(),
        r#"{"status":"error","message":"get_positions not available in api version 1"}"#
    );
    let refusal = server_call("get_organisations", &[], 1).expect_err("refused");
    assert_eq!(
        refusal.to_string(),
        "get_organisations not available in api version 1"
    );
    assert_eq!(
        server_call("get_positions", &[], 2),
        Ok(ServerCall::GetPositions)
    );
}

#[test]
fn outgoing_server_calls_carry_the_fields_the_reference_names() {
    let call = ServerCall::UpdateApiVersion {
        api_version: ApiVersion::V2,
        client_type: ClientType::TotaraLms,
    };
    let f = sep::server_call_form(
        &token(SERVER_IDNUMBER),
        &token(SERVER_SECRET),
        call.service(),
        call.params(),
    );
    assert_eq!(
        f,
        form(&[
            ("serveridnumber", SERVER_IDNUMBER),
            ("serversecret", SERVER_SECRET),
            ("service", "update_api_version"),
            ("apiversion", "2"),
            ("clienttype", "totaralms"),
        ])
    );
    let call = ClientCall::KillSsoUser {
        sso_token: Some(token(SSO_TOKEN)),
    };
    let f = sep::client_call_form(
        &token(CLIENT_IDNUMBER),
        &token(CLIENT_SECRET),
        call.service(),
        call.params(),
    );
    assert_eq!(
        f,
        form(&[
            ("clientidnumber", CLIENT_IDNUMBER),
            ("clientsecret", CLIENT_SECRET),
            ("service", "kill_sso_user"),
            ("ssotoken", SSO_TOKEN),
        ])
    );
    assert_eq!(
        sep::endpoint_url("https://lms.example.com/", sep::SERVER_SEP_PATH),
        "https://lms.example.com/totara/connect/sep.php"
    );
}

// ---- Client services (§3.2) -----------------------------------------------------------------

fn client_call(service: &str, params: &[(&str, &str)]) -> Result<ClientCall, ServiceRefusal> {
    let mut f = client_form(service);
    f.extend(form(params));
    let envelope = read_client_sep_form(&f).expect("envelope");
    let authorized = envelope
        .authorize_at_client(Some(&server_standing()), true)
        .expect("authorised");
    ClientCall::read(authorized, &envelope.params)
}

#[test]
fn validate_sso_request_token_checks_and_replies() {
    assert_eq!(
        client_call("validate_sso_request_token", &[("requesttoken", SSO_TOKEN)]),
        Ok(ClientCall::ValidateSsoRequestToken {
            request_token: Some(token(SSO_TOKEN))
        })
    );
    let missing =
        client_call("validate_sso_request_token", &[("requesttoken", "")]).expect_err("refused");
    assert_eq!(
        missing.to_jsend().to_json(),
        r#"{"status":"fail","data":{"requesttoken":"missing sso request token"}}"#
    );
    // Keyed "ssotoken" in the original, though the parameter is requesttoken.
    let short =
        client_call("validate_sso_request_token", &[("requesttoken", "abc")]).expect_err("refused");
    assert_eq!(
        short.to_jsend().to_json(),
        r#"{"status":"fail","data":{"ssotoken":"invalid request token format"}}"#
    );
    assert_eq!(
        ServiceRefusal::SsoRequestTimedOut.to_jsend().to_json(),
        r#"{"status":"error","message":"sso request timed out"}"#
    );
}

#[test]
fn is_sso_user_active_and_kill_sso_user() {
    assert_eq!(
        client_call("is_sso_user_active", &[("ssotoken", SSO_TOKEN)]),
        Ok(ClientCall::IsSsoUserActive {
            sso_token: Some(token(SSO_TOKEN))
        })
    );
    assert_eq!(
        client_call("kill_sso_user", &[]),
        Err(ServiceRefusal::MissingSsoToken)
    );
    assert_eq!(
        client_call("kill_sso_user", &[("ssotoken", "short")]),
        Err(ServiceRefusal::InvalidSsoTokenFormat)
    );
    assert_eq!(
        services::active_reply(true),
        r#"{"status":"success","data":{"active":true}}"#
    );
    assert_eq!(
        services::active_reply(false),
        r#"{"status":"success","data":{"active":false}}"#
    );
    assert_eq!(
        services::read_active_reply(parse(r#"{"status":"success","data":{"active":false}}"#)),
        Ok(false)
    );
    assert_eq!(
        services::read_active_reply(parse(r#"{"status":"success","data":{"active":"1"}}"#)),
        Ok(true)
    );
    let refused = services::read_active_reply(parse(
        r#"{"status":"error","message":"invalid client secret or idnumber"}"#,
    ));
    assert!(matches!(
        refused,
        Err(ReplyError::Refused(JSend::Error { .. }))
    ));
}

// ---- Registration (§2) --------------------------------------------------------------------

fn setup_request() -> SetupRequest {
    SetupRequest::new(
        token(SETUP_SECRET),
        token(SERVER_IDNUMBER),
        token(SERVER_SECRET),
        "https://lms.example.com/",
        "Head Office LMS",
        token(CLIENT_IDNUMBER),
        token(CLIENT_SECRET),
    )
}

#[test]
fn sep_setup_form_has_the_reference_fields_in_order() {
    assert_eq!(
        setup_request().to_form(),
        form(&[
            ("setupsecret", SETUP_SECRET),
            ("serveridnumber", SERVER_IDNUMBER),
            ("serversecret", SERVER_SECRET),
            ("serverurl", "https://lms.example.com"),
            ("servername", "Head Office LMS"),
            ("clientidnumber", CLIENT_IDNUMBER),
            ("clientsecret", CLIENT_SECRET),
            ("minapiversion", "1"),
            ("maxapiversion", "2"),
        ])
    );
}

#[test]
fn sep_setup_is_read_in_the_originals_order() {
    let secret = token(SETUP_SECRET);
    let good = setup_request().to_form();
    let accepted = read_setup_form(&good, Some(&secret), true).expect("accepted");
    assert_eq!(accepted.api_version, ApiVersion::V2);
    assert_eq!(accepted.server_url, "https://lms.example.com");
    assert_eq!(accepted.server_name, "Head Office LMS");
    assert_eq!(
        accepted.update_api_version_form(),
        form(&[
            ("serveridnumber", SERVER_IDNUMBER),
            ("serversecret", SERVER_SECRET),
            ("service", "update_api_version"),
            ("apiversion", "2"),
            ("clienttype", "totaralms"),
        ])
    );

    // The secret first: wrong, none open (or expired), plugin off, or missing.
    let other = token(SSO_TOKEN);
    assert_eq!(
        read_setup_form(&good, Some(&other), true),
        Err(SetupRefusal::InvalidSetupSecret)
    );
    assert_eq!(
        read_setup_form(&good, None, true),
        Err(SetupRefusal::InvalidSetupSecret)
    );
    assert_eq!(
        read_setup_form(&good, Some(&secret), false),
        Err(SetupRefusal::InvalidSetupSecret)
    );
    let mut without = good.clone();
    without.retain(|(k, _)| k != "setupsecret" && k != "minapiversion");
    assert_eq!(
        read_setup_form(&without, Some(&secret), true),
        Err(SetupRefusal::InvalidSetupSecret)
    );
    // Then the API numbers, then the version choice, then the other fields.
    let mut no_min = good.clone();
    no_min.retain(|(k, _)| k != "minapiversion" && k != "serverurl");
    let refusal = read_setup_form(&no_min, Some(&secret), true).expect_err("refused");
    assert_eq!(
        refusal.to_jsend().to_json(),
        r#"{"status":"error","message":"A required parameter (minapiversion) was missing"}"#
    );
    let mut future = good.clone();
    for (k, v) in future.iter_mut() {
        if k == "minapiversion" {
            *v = "3".to_owned();
        }
        if k == "maxapiversion" {
            *v = "4".to_owned();
        }
    }
    assert_eq!(
        read_setup_form(&future, Some(&secret), true).map(|a| a.api_version),
        Err(SetupRefusal::ApiVersionNotSupported)
    );
    assert_eq!(
        SetupRefusal::ApiVersionNotSupported.to_jsend().to_json(),
        r#"{"status":"error","message":"api version not supported"}"#
    );
    let mut no_name = good.clone();
    no_name.retain(|(k, _)| k != "servername");
    assert_eq!(
        read_setup_form(&no_name, Some(&secret), true),
        Err(SetupRefusal::MissingParameter("servername"))
    );
    let mut short = good.clone();
    for (k, v) in short.iter_mut() {
        if k == "clientsecret" {
            *v = "abc".to_owned();
        }
    }
    assert_eq!(
        read_setup_form(&short, Some(&secret), true),
        Err(SetupRefusal::MalformedCredential {
            field: "clientsecret",
            error: TokenError::WrongLength { found: 3 }
        })
    );
    // The duplicate texts keep the original's typo.
    assert_eq!(
        SetupRefusal::DuplicateServerIdnumber.to_jsend().to_json(),
        r#"{"status":"error","message":"dupplicate server idnumber"}"#
    );
    assert_eq!(
        SetupRefusal::DuplicateClientIdnumber.to_string(),
        "dupplicate client idnumber"
    );
    // Gatehouse's own refusal of a server other than the one `server_url` names.
    assert_eq!(
        SetupRefusal::ServerUrlNotAllowed.to_jsend().to_json(),
        r#"{"status":"error","message":"serverurl not allowed"}"#
    );
}

#[test]
fn sep_setup_answers_success_or_relays_the_servers_reply() {
    let ok = setup::setup_answer(&parse(r#"{"status":"success","data":[]}"#));
    assert_eq!(ok.to_json(), r#"{"status":"success","data":[]}"#);
    let refused = parse(r#"{"status":"error","message":"connect server not enabled"}"#);
    assert_eq!(
        setup::setup_answer(&refused).to_json(),
        r#"{"status":"error","message":"connect server not enabled"}"#
    );
    let unreachable = JSendError::Empty.to_jsend();
    assert_eq!(
        setup::setup_answer(&unreachable).to_json(),
        r#"{"status":"error","message":"Remote data request failed - cannot connect server."}"#
    );
}

#[test]
fn api_versions_are_negotiated_as_the_client_does() {
    assert_eq!(select_api_version(1, 2), Some(ApiVersion::V2));
    assert_eq!(select_api_version(1, 5), Some(ApiVersion::V2));
    assert_eq!(select_api_version(1, 1), Some(ApiVersion::V1));
    assert_eq!(select_api_version(0, 1), Some(ApiVersion::V1));
    assert_eq!(select_api_version(3, 4), None);
    assert_eq!(select_api_version(2, 1), None);
    assert_eq!(select_api_version(-1, 0), None);
}

// ---- Users (§3.1 "User object", §8.5) ----------------------------------------------------

/// A user from `get_users` of a v2 server with both syncs on, as PHP writes it.
const LISTED_USER: &str = r#"{"id":"3","auth":"manual","confirmed":"1","policyagreed":"0","deleted":"0","suspended":"0","mnethostid":"1","username":"alice","password":null,"idnumber":"E100","firstname":"Alice","lastname":"Ng","email":"alice@example.com","emailstop":"0","icq":"","skype":"","yahoo":"","aim":"","msn":"","phone1":"","phone2":"","institution":"","department":"Sales","address":"","city":"Wellington","country":"NZ","lang":"en","calendartype":"gregorian","theme":"","timezone":"99","firstaccess":"1550000000","lastaccess":"1550000100","lastlogin":"0","currentlogin":"1550000000","lastip":"10.0.0.1","url":"https:\/\/alice.example.com\/","description":"<p>Caf\u00e9<\/p>","descriptionformat":"1","mailformat":"1","maildigest":"0","maildisplay":"2","autosubscribe":"1","trackforums":"0","timecreated":"1550000000","timemodified":"1550000050","trustbitmask":"0","imagealt":null,"lastnamephonetic":null,"firstnamephonetic":null,"middlename":null,"alternatename":null,"totarasync":"0","profile_fields":[{"shortname":"costcentre","datatype":"text","data":"CC-9"},{"shortname":"region","datatype":"menu","data":"North"}],"jobs":[{"id":"11","fullname":"Sales rep","shortname":"rep","idnumber":"J1","description":null,"startdate":"0","enddate":null,"timecreated":"1550000000","timemodified":"1550000000","usermodified":"2","positionid":"4","positionassignmentdate":"1550000000","organisationid":null,"sortorder":"1","totarasync":"0","synctimemodified":"0"}]}"#;

#[test]
fn a_listed_user_is_read_with_totaras_quirks() {
    let reply = format!(r#"{{"status":"success","data":{{"users":[{LISTED_USER}]}}}}"#);
    let users = services::read_users_reply(parse(&reply)).expect("users");
    assert_eq!(users.len(), 1);
    let alice = &users[0];
    assert_eq!(alice.id, 3);
    assert_eq!(alice.username, "alice");
    assert!(!alice.deleted && !alice.suspended);
    assert_eq!(alice.password, None);
    assert_eq!(alice.column("url"), Some("https://alice.example.com/"));
    assert_eq!(alice.column("description"), Some("<p>Café</p>"));
    assert_eq!(alice.column("imagealt"), None);
    assert_eq!(alice.column("email"), Some("alice@example.com"));
    assert!(alice.pictures.is_empty());
    let fields = alice.profile_fields.as_ref().expect("profile fields");
    assert_eq!(fields[0].shortname, "costcentre");
    assert_eq!(fields[1].data, "North");
    let jobs = alice.jobs.as_ref().expect("jobs");
    assert_eq!(jobs[0].id, 11);
    assert_eq!(jobs[0].idnumber.as_deref(), Some("J1"));
    assert_eq!(jobs[0].positionid, Some(4));
    assert_eq!(jobs[0].organisationid, None);
    assert_eq!(jobs[0].enddate, None);
}

#[test]
fn a_deleted_user_in_sso_form_and_a_v1_user() {
    // §3.1 and §8.5: deleted users have no profile_fields or jobs, picture "0", pictures [].
    let deleted = r#"{"status":"success","data":{"id":"9","auth":"manual","confirmed":"1","deleted":"1","suspended":"0","username":"deleted_0123456789abcdef0123456789abcdef","password":null,"idnumber":"","email":"","picture":"0","description":null,"descriptionformat":null,"pictures":[]}}"#;
    let user = services::read_sso_user_reply(parse(deleted)).expect("user");
    assert!(user.deleted);
    assert_eq!(user.profile_fields, None);
    assert_eq!(user.jobs, None);
    assert!(user.pictures.is_empty());
    // v1, SSO form with pictures as an object and ids as JSON numbers.
    let v1 = r#"{"status":"success","data":{"user":{"id":12,"username":"bob","deleted":0,"suspended":1,"picture":"55","pictures":{"f1.png":"iVBORw0K","f2.png":"iVBORw0L"}}}}"#;
    let bob = services::read_user_reply(parse(v1))
        .expect("reply")
        .expect("a user");
    assert_eq!(bob.id, 12);
    assert!(bob.suspended);
    assert_eq!(
        bob.pictures.get("f1.png").map(String::as_str),
        Some("iVBORw0K")
    );
    assert_eq!(bob.profile_fields, None);
    // A user the server no longer shares.
    assert_eq!(
        services::read_user_reply(parse(r#"{"status":"success","data":{"user":null}}"#)),
        Ok(None)
    );
}

#[test]
fn malformed_users_name_what_is_wrong() {
    let missing_id = r#"{"status":"success","data":{"users":[{"username":"a","deleted":"0"}]}}"#;
    assert_eq!(
        services::read_users_reply(parse(missing_id)),
        Err(ReplyError::User {
            index: 0,
            error: UserError::MissingField("id")
        })
    );
    let bad_id = r#"{"status":"success","data":{"users":[{"id":"1","username":"a","deleted":"0"},{"id":"x","username":"b","deleted":"0"}]}}"#;
    assert!(matches!(
        services::read_users_reply(parse(bad_id)),
        Err(ReplyError::User {
            index: 1,
            error: UserError::WrongType { .. }
        })
    ));
    let no_deleted = r#"{"status":"success","data":{"users":[{"id":"1","username":"a"}]}}"#;
    assert_eq!(
        services::read_users_reply(parse(no_deleted)),
        Err(ReplyError::User {
            index: 0,
            error: UserError::MissingField("deleted")
        })
    );
    assert_eq!(
        services::read_users_reply(parse(r#"{"status":"success","data":[]}"#)),
        Err(ReplyError::MissingField("users"))
    );
    let bad_field = r#"{"status":"success","data":{"users":[{"id":"1","username":"a","deleted":"0","profile_fields":[{"shortname":"x"}]}]}}"#;
    assert!(matches!(
        services::read_users_reply(parse(bad_field)),
        Err(ReplyError::User { index: 0, error: UserError::WrongType { field, .. } }) if field == "profile_fields[0].datatype"
    ));
}

fn shared_alice() -> SharedUser {
    SharedUser {
        id: 3,
        username: "alice".to_owned(),
        email: "alice@example.com".to_owned(),
        firstname: "Alice".to_owned(),
        lastname: "Ng/Ó".to_owned(),
        idnumber: "E100".to_owned(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        deleted: false,
        suspended: false,
        timecreated: 1_550_000_000,
        timemodified: 1_550_000_050,
        profile_fields: vec![gatehouse_connect_wire::ProfileFieldValue {
            shortname: "costcentre".to_owned(),
            datatype: "text".to_owned(),
            data: "CC-9".to_owned(),
        }],
        jobs: Vec::new(),
    }
}

fn options(api: ApiVersion) -> UserWriteOptions {
    UserWriteOptions {
        sso_pictures: None,
        api_version: api,
        sync_passwords: false,
        sync_profile_fields: true,
        sync_jobs: false,
    }
}

#[test]
fn a_shared_user_is_written_as_prepare_user_for_client_leaves_it() {
    let expected = concat!(
        r#"{"status":"success","data":{"users":[{"id":"3","auth":"manual","confirmed":"1","policyagreed":"0","deleted":"0","suspended":"0","mnethostid":"1","username":"alice","password":null,"idnumber":"E100","firstname":"Alice","lastname":"Ng\/\u00d3","email":"alice@example.com","emailstop":"0","#,
        r#""icq":"","skype":"","yahoo":"","aim":"","msn":"","phone1":"","phone2":"","institution":"","department":"","address":"","city":"","country":"","lang":"en","calendartype":"gregorian","theme":"","timezone":"99","#,
        r#""firstaccess":"0","lastaccess":"0","lastlogin":"0","currentlogin":"0","lastip":"","url":"","description":"","descriptionformat":"1","mailformat":"1","maildigest":"0","maildisplay":"2","autosubscribe":"1","trackforums":"0","#,
        r#""timecreated":"1550000000","timemodified":"1550000050","trustbitmask":"0","imagealt":null,"lastnamephonetic":null,"firstnamephonetic":null,"middlename":null,"alternatename":null,"totarasync":"0","#,
        r#""profile_fields":[{"shortname":"costcentre","datatype":"text","data":"CC-9"}],"jobs":null}]}}"#
    );
    assert_eq!(
        services::users_reply(&[shared_alice()], &options(ApiVersion::V2)),
        expected
    );
}

#[test]
fn v1_users_have_no_v2_keys_and_passwords_only_when_synced() {
    let v1 = services::users_reply(&[shared_alice()], &options(ApiVersion::V1));
    assert!(!v1.contains("profile_fields") && !v1.contains("\"jobs\""));
    assert!(v1.contains(r#""password":null"#));
    let synced = UserWriteOptions {
        sync_passwords: true,
        ..options(ApiVersion::V1)
    };
    let with_hash = services::users_reply(&[shared_alice()], &synced);
    assert!(with_hash.contains(r#""password":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA""#));
    // SSO form: picture in its column, pictures last (before the v2 keys).
    let sso = UserWriteOptions {
        sso_pictures: Some(vec![("f1.png".to_owned(), "iVBO/w==".to_owned())]),
        ..options(ApiVersion::V2)
    };
    let reply = services::sso_user_reply(&shared_alice(), &sso);
    assert!(reply.contains(r#""lastip":"","picture":"0","url":"""#));
    assert!(
        reply.contains(r#""totarasync":"0","pictures":{"f1.png":"iVBO\/w=="},"profile_fields":"#)
    );
    // A deleted user: no password even when synced, null description, pictures [], no v2 keys.
    let mut gone = shared_alice();
    gone.deleted = true;
    let reply = services::sso_user_reply(
        &gone,
        &UserWriteOptions {
            sync_passwords: true,
            ..sso
        },
    );
    assert!(reply.contains(r#""password":null"#));
    assert!(reply.contains(r#""description":null,"descriptionformat":null"#));
    assert!(reply.ends_with(r#""totarasync":"0","pictures":[]}}"#));
    assert_eq!(
        services::user_reply(None, &options(ApiVersion::V2)),
        r#"{"status":"success","data":{"user":null}}"#
    );
}

// ---- Tokens and usernames (§7) ----------------------------------------------------------

#[test]
fn tokens_are_forty_lowercase_hex_characters() {
    assert!(Token::parse(SSO_TOKEN).is_ok());
    assert_eq!(
        Token::parse("abc"),
        Err(TokenError::WrongLength { found: 3 })
    );
    assert_eq!(
        Token::parse(&format!("{SSO_TOKEN}a")),
        Err(TokenError::WrongLength { found: 41 })
    );
    let upper = format!("A{}", &SSO_TOKEN[1..]);
    assert_eq!(
        Token::parse(&upper),
        Err(TokenError::BadCharacter { position: 0 })
    );
    let with_g = format!("{}g", &SSO_TOKEN[..39]);
    assert_eq!(
        Token::parse(&with_g),
        Err(TokenError::BadCharacter { position: 39 })
    );
    let made = Token::from_random_bytes(&[0xab; 20]);
    assert_eq!(made.as_str(), "abababababababababababababababababababab");
    assert!(made.matches("abababababababababababababababababababab"));
    assert!(!made.matches("abababababababababababababababababababac"));
    assert!(!made.matches(""));
    assert_eq!(format!("{made:?}"), "Token(…)");
}

#[test]
fn connect_usernames() {
    let idnumber = token(SERVER_IDNUMBER);
    assert_eq!(
        connect_username(123, &idnumber),
        format!("tc_123_{SERVER_IDNUMBER}")
    );
    assert_eq!(
        parse_connect_username(&format!("tc_123_{SERVER_IDNUMBER}")),
        Some((123, idnumber))
    );
    for bad in [
        format!("tc_0123_{SERVER_IDNUMBER}"),
        format!("tc_-1_{SERVER_IDNUMBER}"),
        format!("tc_x_{SERVER_IDNUMBER}"),
        "tc_1_short".to_owned(),
        format!("xx_1_{SERVER_IDNUMBER}"),
    ] {
        assert_eq!(parse_connect_username(&bad), None, "{bad}");
    }
}
