//! Test support: the client instance on a fake host, a scripted Connect server (its
//! credentials and the replies it would send), and a complete registration.

use gatehouse_connect::ConnectClient;
use gatehouse_plugin_api::testkit::{Expectation, FakeHost};
use gatehouse_plugin_api::{
    HttpRequest, IdentityProvider, InboundReply, InboundRequest, InstanceConfig, Pair, Placement,
    Plugin, PluginError,
};
use serde_json::{Value, json};

pub const CLIENT_URL: &str = "https://learn.example.test";
pub const SERVER_URL: &str = "https://hq.example.test";
pub const SERVER_SEP: &str = "https://hq.example.test/totara/connect/sep.php";
pub const SEP_SETUP: &str = "/auth/connect/sep_setup.php";
pub const SEP: &str = "/auth/connect/sep.php";

// What a Totara server makes: 40 lowercase hex each.
pub const SERVER_IDNUMBER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";
pub const SERVER_SECRET: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
pub const CLIENT_IDNUMBER: &str = "0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5";
pub const CLIENT_SECRET: &str = "ffeeddccbbaa99887766554433221100fedcba98";

pub fn build(settings: Value) -> Result<ConnectClient, PluginError> {
    ConnectClient::new(&InstanceConfig::new("hq", settings).placed(Placement::new(
        "root",
        &[CLIENT_URL, "https://learn2.example.test"],
    )))
}

pub fn client() -> ConnectClient {
    build(json!({})).expect("valid settings")
}

/// A POST of `form` to one of the client's fixed routes.
pub fn post(route: &str, form: &[(&str, &str)]) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        route: route.into(),
        host: "learn.example.test".into(),
        headers: vec![Pair::new(
            "content-type",
            "application/x-www-form-urlencoded",
        )]
        .into(),
        query: Default::default(),
        form: form.iter().map(|(n, v)| Pair::new(*n, *v)).collect(),
        body: Default::default(),
    }
}

pub fn inbound(fake: &FakeHost, client: &ConnectClient, request: &InboundRequest) -> InboundReply {
    let reply = fake
        .call(|host| client.handle_inbound(host, request))
        .expect("answers");
    assert_eq!(
        reply.status, 200,
        "Connect answers HTTP 200, errors included"
    );
    assert_eq!(
        reply.content_type.as_str(),
        "application/json; charset=utf-8"
    );
    reply
}

pub fn body(reply: &InboundReply) -> String {
    String::from_utf8(reply.body.to_vec()).expect("utf-8")
}

/// The decoded form of a request the plugin made.
pub fn form_of(request: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.body.as_slice())
        .into_owned()
        .collect()
}

pub fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// Runs `new_server` and returns the setup secret.
pub fn open_registration(fake: &FakeHost, client: &ConnectClient) -> String {
    let out = fake
        .call(|host| client.run_task(host, "new_server"))
        .expect("runs");
    out["setup_secret"]
        .as_str()
        .expect("a setup secret")
        .to_owned()
}

/// The server's registration POST (`util::add_client`), with `secret`.
pub fn setup_form(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("setupsecret", secret.to_owned()),
        ("serveridnumber", SERVER_IDNUMBER.to_owned()),
        ("serversecret", SERVER_SECRET.to_owned()),
        ("serverurl", SERVER_URL.to_owned()),
        ("servername", "Head office".to_owned()),
        ("clientidnumber", CLIENT_IDNUMBER.to_owned()),
        ("clientsecret", CLIENT_SECRET.to_owned()),
        ("minapiversion", "1".to_owned()),
        ("maxapiversion", "2".to_owned()),
    ]
}

pub fn as_pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    form.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// The server's answer to `update_api_version`, as the original writes it.
pub fn expect_update_api_version(fake: &FakeHost, reply: &str) {
    fake.expect(
        Expectation::new("POST", SERVER_SEP)
            .check(|request| {
                let form = form_of(request);
                let expected = [
                    ("serveridnumber", SERVER_IDNUMBER),
                    ("serversecret", SERVER_SECRET),
                    ("service", "update_api_version"),
                    ("apiversion", "2"),
                    ("clienttype", "totaralms"),
                ];
                for (name, value) in expected {
                    if field(&form, name).as_deref() != Some(value) {
                        return Err(format!("{name} is {:?}, not {value}", field(&form, name)));
                    }
                }
                Ok(())
            })
            .reply(200, "application/json; charset=utf-8", reply.as_bytes()),
    );
}

/// A client registered with the scripted server at API version 2.
pub fn registered(settings: Value) -> (FakeHost, ConnectClient) {
    let fake = FakeHost::new();
    let client = build(settings).expect("valid settings");
    let secret = open_registration(&fake, &client);
    expect_update_api_version(&fake, r#"{"status":"success","data":[]}"#);
    let form = setup_form(&secret);
    let reply = inbound(&fake, &client, &post(SEP_SETUP, &as_pairs(&form)));
    assert_eq!(body(&reply), r#"{"status":"success","data":[]}"#);
    fake.assert_script_done();
    (fake, client)
}
