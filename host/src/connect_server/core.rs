//! The deterministic core of the Connect server's SEP (`/totara/connect/sep.php`, protocol
//! §1.4, §3.1, §4.1 step 5, §4.4, §8): which check refuses a call, with which reply, and
//! what each service answers and changes. Pure: the clock is an input (`now`), it needs no
//! randomness, and it does no I/O. The handler ([`super::sep`]) looks up what each step
//! names (the client by its secret, the users, the SSO session), calls these functions and
//! carries out the [`Effect`]s; the wire details are `gatehouse-connect-wire`'s.

use std::collections::BTreeMap;

use gatehouse_connect_wire::{
    ApiVersion, Authorized, ClientType, JSend, ProfileFieldValue, SepEnvelope, ServerCall,
    ServerService, ServiceRefusal, SharedJob, SharedUser, Token, UserWriteOptions,
    sep::{ClientStanding, read_server_sep_form},
    services::{api_version_reply, empty_reply, sso_user_reply, user_reply, users_reply},
};
use gatehouse_store::{
    ConnectClient, ConnectSharedJob, ConnectSharedUser, ConnectSsoSession, ConnectUsersQuery,
    Session,
};

/// A reply (its JSON body, always sent with HTTP 200 as the original does) and what the
/// handler must do before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub body: String,
    pub effects: Vec<Effect>,
}

impl Outcome {
    pub(super) fn reply(body: String) -> Outcome {
        Outcome {
            body,
            effects: Vec::new(),
        }
    }

    fn refusal(reply: JSend) -> Outcome {
        Outcome::reply(reply.to_json())
    }
}

/// A change a service makes, carried out by the handler in order before it replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `update_api_version`: store the client's version and type.
    UpdateApiVersion {
        client_id: i64,
        api_version: ApiVersion,
        client_type: ClientType,
    },
    /// `delete_client`: mark the client deleted and purge its SSO sessions and links.
    MarkClientDeleted { client_id: i64 },
    /// End this Gatehouse session (its `sessions.id_hash`) and tell every client that holds
    /// an SSO session of it (`force_sso_logout`, and `get_sso_user`'s terminations).
    EndSessionEverywhere { session_key: String },
}

/// `get_sso_user`'s answer: refused, or the user once the SSO session is activated (the
/// activation is atomic and may be lost to a concurrent call, which then gets `reused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoUserAnswer {
    Refused(Outcome),
    ActivateThen {
        sso_session_id: i64,
        /// The reply when this call activated the session.
        user_body: String,
        /// The reply when another call got there first: "reused ssotoken".
        reused_body: String,
    },
}

/// What every service answer depends on besides the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerContext {
    /// Seconds since the Unix epoch on the host's clock.
    pub now: i64,
    /// `[connect_server] sync_passwords`.
    pub sync_passwords: bool,
    /// The platform's additional profile fields (`[[field]]`): name → type, which is sent
    /// as the Totara `datatype`. A stored value of a field no longer declared is not sent.
    pub field_types: BTreeMap<String, String>,
}

/// Steps 1–2 of §1.4: the envelope, or "invalid parameters" when the secret, the idnumber
/// or the service is empty. The handler then looks the client up by the envelope's secret.
pub fn read_envelope(form: &[(String, String)]) -> Result<SepEnvelope, Outcome> {
    read_server_sep_form(form).map_err(|refusal| Outcome::refusal(refusal.to_jsend()))
}

/// Steps 3–8 of §1.4 and the service's parameter checks, in that order: `client` is the
/// client row found by the presented secret (if any), `own_idnumber` this server's.
pub fn authorize(
    envelope: &SepEnvelope,
    client: Option<&ConnectClient>,
    own_idnumber: &Token,
    server_enabled: bool,
) -> Result<(Authorized<ServerService>, ServerCall), Outcome> {
    // A stored secret that is not a token cannot match anything presented.
    let standing = client.and_then(|client| {
        Some(ClientStanding {
            server_secret: Token::parse(&client.server_secret).ok()?,
            active: client.active,
            api_version: client.api_version,
            allow_plugin_services: client.options.allow_plugin_services,
        })
    });
    let authorized = envelope
        .authorize_at_server(standing.as_ref(), own_idnumber, server_enabled)
        .map_err(|refusal| Outcome::refusal(refusal.to_jsend()))?;
    let call = ServerCall::read(authorized, &envelope.params)
        .map_err(|refusal| Outcome::refusal(refusal.to_jsend()))?;
    Ok((authorized, call))
}

/// `get_api_version`: the range, whatever the client's type (read already checked it).
pub fn get_api_version() -> Outcome {
    Outcome::reply(api_version_reply())
}

/// `update_api_version`: records the version and type; `[]`.
pub fn update_api_version(
    client: &ConnectClient,
    api_version: ApiVersion,
    client_type: ClientType,
) -> Outcome {
    Outcome {
        body: empty_reply(),
        effects: vec![Effect::UpdateApiVersion {
            client_id: client.id,
            api_version,
            client_type,
        }],
    }
}

/// `delete_client`: the client is marked deleted and purged; `[]`.
pub fn delete_client(client: &ConnectClient) -> Outcome {
    Outcome {
        body: empty_reply(),
        effects: vec![Effect::MarkClientDeleted {
            client_id: client.id,
        }],
    }
}

/// What `get_users` must read besides the users: field values and jobs only when the
/// reply carries them (API v2 and the client's `syncprofilefields` / `syncjobs`), so that
/// a client that takes neither costs one query.
pub fn users_query(
    client: &ConnectClient,
    api_version: ApiVersion,
    context: &ServerContext,
) -> ConnectUsersQuery {
    let v2 = api_version.has_v2_data();
    ConnectUsersQuery {
        restrict_audience_id: client.restrict_audience_id,
        password_hashes: context.sync_passwords,
        fields: v2 && client.options.sync_profile_fields,
        jobs: v2 && client.options.sync_jobs,
    }
}

fn write_options(
    client: &ConnectClient,
    api_version: ApiVersion,
    context: &ServerContext,
) -> UserWriteOptions {
    UserWriteOptions {
        sso_pictures: None,
        api_version,
        sync_passwords: context.sync_passwords,
        sync_profile_fields: client.options.sync_profile_fields,
        sync_jobs: client.options.sync_jobs,
    }
}

/// A stored user as the wire writes it: profile fields of declared fields only, with their
/// type as `datatype`; job assignments in the user's order, their position and organisation
/// this server's item ids.
pub fn shared_user(user: ConnectSharedUser, context: &ServerContext) -> SharedUser {
    SharedUser {
        id: user.id,
        username: user.username,
        email: user.email,
        firstname: user.firstname,
        lastname: user.lastname,
        idnumber: user.idnumber,
        password_hash: user.password_hash,
        deleted: user.deleted,
        suspended: user.suspended,
        timecreated: user.created_at,
        timemodified: user.updated_at,
        profile_fields: user
            .fields
            .into_iter()
            .filter_map(|(name, value)| {
                let datatype = context.field_types.get(&name)?.clone();
                Some(ProfileFieldValue {
                    shortname: name,
                    datatype,
                    data: value,
                })
            })
            .collect(),
        jobs: user.jobs.into_iter().map(shared_job).collect(),
    }
}

fn shared_job(job: ConnectSharedJob) -> SharedJob {
    SharedJob {
        id: job.id,
        fullname: job.fullname,
        shortname: job.shortname,
        idnumber: job.idnumber,
        description: job.description,
        startdate: job.startdate,
        enddate: job.enddate,
        positionid: job.position_id,
        organisationid: job.organisation_id,
        sortorder: job.sortorder,
        timecreated: job.created_at,
        timemodified: job.updated_at,
    }
}

/// `get_users`: the users the client may see (the store applied the restriction and
/// ordered them by id), in the list form.
pub fn get_users(
    client: &ConnectClient,
    api_version: ApiVersion,
    users: Vec<ConnectSharedUser>,
    context: &ServerContext,
) -> Outcome {
    // Moved, not copied: a reply may hold 100,000 users.
    let users: Vec<SharedUser> = users.into_iter().map(|u| shared_user(u, context)).collect();
    Outcome::reply(users_reply(
        &users,
        &write_options(client, api_version, context),
    ))
}

/// `get_user`: the user in the SSO form, or `"user":null` when the client may not see it.
pub fn get_user(
    client: &ConnectClient,
    api_version: ApiVersion,
    user: Option<&ConnectSharedUser>,
    context: &ServerContext,
) -> Outcome {
    let user = user.map(|u| shared_user(u.clone(), context));
    Outcome::reply(user_reply(
        user.as_ref(),
        &write_options(client, api_version, context),
    ))
}

/// What the handler found for `get_sso_user`'s token.
#[derive(Debug, Clone, Copy)]
pub struct SsoFacts<'a> {
    /// The SSO session with the presented token *of this client*; `None` also for a token
    /// that is well-formed but not lowercase hex (never issued).
    pub sso: Option<&'a ConnectSsoSession>,
    /// The Gatehouse session it belongs to, if it still exists (expired or not: the core
    /// judges expiry on `now`).
    pub session: Option<&'a Session>,
    /// Its user as a client sees it, if the user still exists.
    pub user: Option<&'a ConnectSharedUser>,
}

/// `get_sso_user` (§4.1 step 5), its checks in the original's order: the token belongs to
/// this client ("invalid sso token"), the Gatehouse session is live ("session expired"),
/// it is the same user, who exists and is neither deleted nor suspended ("invalid user
/// session"), and the token was not used before ("reused ssotoken"). The session and user
/// failures end the session everywhere, as the original's `terminate_sso_session` does.
pub fn get_sso_user(
    client: &ConnectClient,
    api_version: ApiVersion,
    facts: SsoFacts<'_>,
    context: &ServerContext,
) -> SsoUserAnswer {
    let refuse = |refusal: ServiceRefusal, terminate: Option<&str>| {
        SsoUserAnswer::Refused(Outcome {
            body: refusal.to_jsend().to_json(),
            effects: terminate
                .map(|key| Effect::EndSessionEverywhere {
                    session_key: key.to_owned(),
                })
                .into_iter()
                .collect(),
        })
    };
    let Some(sso) = facts.sso.filter(|s| s.client_id == client.id) else {
        return refuse(ServiceRefusal::InvalidSsoToken, None);
    };
    let terminate = Some(sso.session_key.as_str());
    let Some(session) = facts
        .session
        .filter(|s| s.id_hash == sso.session_key && s.expires_at > context.now)
    else {
        return refuse(ServiceRefusal::SessionExpired, terminate);
    };
    if session.user_id != sso.user_id {
        return refuse(ServiceRefusal::InvalidUserSession, terminate);
    }
    let Some(user) = facts
        .user
        .filter(|u| u.id == sso.user_id && !u.deleted && !u.suspended)
    else {
        return refuse(ServiceRefusal::InvalidUserSession, terminate);
    };
    let reused_body = ServiceRefusal::ReusedSsoToken.to_jsend().to_json();
    if sso.active {
        return SsoUserAnswer::Refused(Outcome::reply(reused_body));
    }
    SsoUserAnswer::ActivateThen {
        sso_session_id: sso.id,
        user_body: sso_user_reply(
            &shared_user(user.clone(), context),
            &write_options(client, api_version, context),
        ),
        reused_body,
    }
}

/// `force_sso_logout` (§4.4): an unknown token (or another client's) is a success that
/// changes nothing; a known one ends its Gatehouse session everywhere. `[]` either way.
pub fn force_sso_logout(client: &ConnectClient, sso: Option<&ConnectSsoSession>) -> Outcome {
    Outcome {
        body: empty_reply(),
        effects: sso
            .filter(|s| s.client_id == client.id)
            .map(|s| Effect::EndSessionEverywhere {
                session_key: s.session_key.clone(),
            })
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    //! Every check of §1.4 in its order and every service's reply, with the texts and
    //! shapes copied from the protocol notes (§1.3, §1.4, §3.1, §4.1 step 5, §4.4, §8.5–6).

    use gatehouse_store::ConnectClientOptions;
    use serde_json::{Value, json};

    use super::*;

    const SERVER_IDNUMBER: &str = "0123456789abcdef0123456789abcdef01234567";
    const SERVER_SECRET: &str = "89abcdef0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn client() -> ConnectClient {
        ConnectClient {
            id: 4,
            active: true,
            client_idnumber: "c".repeat(40),
            client_secret: "d".repeat(40),
            server_secret: SERVER_SECRET.to_owned(),
            client_type: "totaralms".into(),
            client_url: "https://lms.example".into(),
            client_name: "LMS".into(),
            client_comment: String::new(),
            restrict_audience_id: None,
            options: ConnectClientOptions::default(),
            api_version: 2,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A call with the right credentials for `service` plus `extra` fields.
    fn call(service: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("serveridnumber", SERVER_IDNUMBER),
            ("serversecret", SERVER_SECRET),
            ("service", service),
        ];
        pairs.extend_from_slice(extra);
        form(&pairs)
    }

    fn own() -> Token {
        Token::parse(SERVER_IDNUMBER).expect("token")
    }

    /// The full check chain with the client found by its secret when the secret is right.
    fn check(
        form: &[(String, String)],
        client: &ConnectClient,
        enabled: bool,
    ) -> Result<(Authorized<ServerService>, ServerCall), Outcome> {
        let envelope = read_envelope(form)?;
        let found = (envelope.secret == client.server_secret).then_some(client);
        authorize(&envelope, found, &own(), enabled)
    }

    fn refused(form: &[(String, String)], client: &ConnectClient, enabled: bool) -> Value {
        let outcome = check(form, client, enabled).expect_err("refused");
        assert!(outcome.effects.is_empty(), "{outcome:?}");
        serde_json::from_str(&outcome.body).expect("json")
    }

    fn error(message: &str) -> Value {
        json!({"status": "error", "message": message})
    }

    fn fail(key: &str, message: &str) -> Value {
        json!({"status": "fail", "data": {key: message}})
    }

    fn json_of(body: &str) -> Value {
        serde_json::from_str(body).expect("json")
    }

    // ---- §1.4, steps 1–8, in order -------------------------------------------------------

    #[test]
    fn step_1_an_empty_secret_idnumber_or_service_is_invalid_parameters() {
        let c = client();
        for missing in ["serversecret", "serveridnumber", "service"] {
            let mut f = call("get_users", &[]);
            f.retain(|(k, _)| k != missing);
            assert_eq!(
                refused(&f, &c, true),
                error("invalid parameters"),
                "{missing}"
            );
            for empty in ["", "0"] {
                let mut f = call("get_users", &[]);
                f.iter_mut()
                    .filter(|(k, _)| k == missing)
                    .for_each(|(_, v)| *v = empty.to_owned());
                assert_eq!(refused(&f, &c, true), error("invalid parameters"));
            }
        }
        // Before anything else: a disabled server and an unknown client say the same.
        assert_eq!(
            refused(&form(&[("service", "get_users")]), &c, false),
            error("invalid parameters")
        );
    }

    #[test]
    fn step_3_a_wrong_secret_or_idnumber_is_refused_alike() {
        let c = client();
        let wrong_secret = "f".repeat(40);
        let short = &SERVER_SECRET[..39];
        let wrong_alphabet = format!("{}-", &SERVER_SECRET[..39]);
        let upper = SERVER_SECRET.to_uppercase();
        for secret in [
            wrong_secret.as_str(),
            short,
            wrong_alphabet.as_str(),
            upper.as_str(),
        ] {
            let f = form(&[
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", secret),
                ("service", "get_users"),
            ]);
            assert_eq!(
                refused(&f, &c, true),
                error("invalid server secret or idnumber"),
                "{secret}"
            );
        }
        let other_idnumber = "1".repeat(40);
        let f = form(&[
            ("serveridnumber", &other_idnumber),
            ("serversecret", SERVER_SECRET),
            ("service", "get_users"),
        ]);
        assert_eq!(
            refused(&f, &c, true),
            error("invalid server secret or idnumber")
        );
    }

    #[test]
    fn step_4_disabled_comes_after_the_credentials() {
        let c = client();
        let wrong = form(&[
            ("serveridnumber", SERVER_IDNUMBER),
            ("serversecret", &"f".repeat(40)),
            ("service", "get_users"),
        ]);
        assert_eq!(
            refused(&wrong, &c, false),
            error("invalid server secret or idnumber")
        );
        assert_eq!(
            refused(&call("get_users", &[]), &c, false),
            error("connect server not enabled")
        );
    }

    #[test]
    fn step_5_an_inactive_client_is_refused_before_its_version() {
        let mut c = client();
        c.active = false;
        c.api_version = 7;
        assert_eq!(
            refused(&call("get_users", &[]), &c, true),
            error("connect client is not active")
        );
        // …but after "not enabled".
        assert_eq!(
            refused(&call("get_users", &[]), &c, false),
            error("connect server not enabled")
        );
    }

    #[test]
    fn step_6_a_stored_version_outside_1_to_2_is_unsupported() {
        for version in [0, 3, -1] {
            let mut c = client();
            c.api_version = version;
            assert_eq!(
                refused(&call("get_users", &[]), &c, true),
                error("unsupported api version")
            );
        }
    }

    #[test]
    fn step_7_components_other_than_core_are_refused_and_invalid_ones_run_core() {
        let c = client();
        assert_eq!(
            refused(&call("get_users", &[("component", "mod_forum")]), &c, true),
            error("invalid server service component: mod_forum")
        );
        let mut allowed = client();
        allowed.options.allow_plugin_services = true;
        assert_eq!(
            refused(
                &call("get_users", &[("component", "local_x1")]),
                &allowed,
                true
            ),
            error("invalid server service component: local_x1")
        );
        // §8.6: cleaned to empty, so the core services run.
        for component in ["", "totara_connect", "Bad-Comp!", "a__b"] {
            let (_, call) = check(&call("get_users", &[("component", component)]), &c, true)
                .expect("core service");
            assert_eq!(call, ServerCall::GetUsers, "{component}");
        }
    }

    #[test]
    fn step_8_an_unknown_service_is_named_and_names_ignore_case() {
        let c = client();
        assert_eq!(
            refused(&call("nope", &[]), &c, true),
            error("invalid server service name: nope")
        );
        // Cleaned to [A-Za-z0-9_-] first.
        assert_eq!(
            refused(&call("get users!", &[]), &c, true),
            error("invalid server service name: getusers")
        );
        let (_, found) = check(&call("GET_Users", &[]), &c, true).expect("found");
        assert_eq!(found, ServerCall::GetUsers);
        let (_, found) = check(&call("get_users;", &[]), &c, true).expect("found");
        assert_eq!(found, ServerCall::GetUsers);
    }

    // ---- Services ----------------------------------------------------------------------

    fn context() -> ServerContext {
        ServerContext {
            now: NOW,
            sync_passwords: false,
            field_types: [("department".to_owned(), "text".to_owned())].into(),
        }
    }

    fn read(service: &str, extra: &[(&str, &str)], c: &ConnectClient) -> Result<ServerCall, Value> {
        check(&call(service, extra), c, true)
            .map(|(_, call)| call)
            .map_err(|outcome| json_of(&outcome.body))
    }

    #[test]
    fn get_api_version_needs_a_known_clienttype_and_answers_ints() {
        let c = client();
        for bad in [
            &[][..],
            &[("clienttype", "moodle")][..],
            &[("clienttype", "TotaraLMS")][..],
        ] {
            assert_eq!(
                read("get_api_version", bad, &c),
                Err(fail("clienttype", "incorrect or missing clienttype name"))
            );
        }
        assert!(read("get_api_version", &[("clienttype", "totarasocial")], &c).is_ok());
        assert_eq!(
            get_api_version().body,
            r#"{"status":"success","data":{"minapiversion":1,"maxapiversion":2}}"#
        );
    }

    #[test]
    fn update_api_version_checks_the_number_then_the_type_and_stores_both() {
        let c = client();
        assert_eq!(
            read("update_api_version", &[("clienttype", "totaralms")], &c),
            Err(fail("apiversion", "missing api version number"))
        );
        assert_eq!(
            read(
                "update_api_version",
                &[("apiversion", "two"), ("clienttype", "totaralms")],
                &c
            ),
            Err(fail("apiversion", "missing api version number"))
        );
        assert_eq!(
            read(
                "update_api_version",
                &[("apiversion", "3"), ("clienttype", "totaralms")],
                &c
            ),
            Err(fail("apiversion", "unsupported api version number"))
        );
        assert_eq!(
            read("update_api_version", &[("apiversion", "2")], &c),
            Err(fail("clienttype", "incorrect or missing clienttype name"))
        );
        let Ok(ServerCall::UpdateApiVersion {
            api_version,
            client_type,
        }) = read(
            "update_api_version",
            &[("apiversion", "1"), ("clienttype", "totaralms")],
            &c,
        )
        else {
            panic!("not read");
        };
        let outcome = update_api_version(&c, api_version, client_type);
        assert_eq!(outcome.body, r#"{"status":"success","data":[]}"#);
        assert_eq!(
            outcome.effects,
            [Effect::UpdateApiVersion {
                client_id: 4,
                api_version: ApiVersion::V1,
                client_type: ClientType::TotaraLms,
            }]
        );
    }

    fn alice() -> ConnectSharedUser {
        ConnectSharedUser {
            id: 12,
            username: "alice".into(),
            email: "alice@example.com".into(),
            firstname: "Alice".into(),
            lastname: "Ng".into(),
            idnumber: "E100".into(),
            password_hash: Some("$argon2id$v=19$stand-in".into()),
            deleted: false,
            suspended: false,
            created_at: 100,
            updated_at: 200,
            fields: vec![
                ("department".into(), "Sales".into()),
                ("undeclared".into(), "x".into()),
            ],
            jobs: vec![ConnectSharedJob {
                id: 31,
                idnumber: "J1".into(),
                fullname: "Sales rep".into(),
                shortname: "rep".into(),
                description: String::new(),
                position_id: Some(7),
                organisation_id: None,
                startdate: 10,
                enddate: 0,
                sortorder: 1,
                created_at: 100,
                updated_at: 150,
            }],
        }
    }

    fn tombstone() -> ConnectSharedUser {
        ConnectSharedUser {
            id: 13,
            username: format!("deleted_{}", "a".repeat(32)),
            email: String::new(),
            firstname: String::new(),
            lastname: String::new(),
            idnumber: String::new(),
            password_hash: None,
            deleted: true,
            suspended: false,
            created_at: 100,
            updated_at: 300,
            fields: Vec::new(),
            jobs: Vec::new(),
        }
    }

    #[test]
    fn get_users_sends_strings_tombstones_and_v2_fields_only_when_asked() {
        let mut c = client();
        c.api_version = 1;
        let outcome = get_users(&c, ApiVersion::V1, vec![alice(), tombstone()], &context());
        assert!(outcome.effects.is_empty());
        let reply = json_of(&outcome.body);
        assert_eq!(reply["status"], "success");
        let users = reply["data"]["users"].as_array().expect("users");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0]["id"], "12");
        assert_eq!(users[0]["deleted"], "0");
        assert_eq!(users[0]["suspended"], "0");
        assert_eq!(users[0]["timecreated"], "100");
        assert_eq!(users[0]["password"], Value::Null);
        assert!(
            users[0].get("picture").is_none(),
            "list form has no picture"
        );
        assert!(users[0].get("profile_fields").is_none(), "v1");
        assert!(users[0].get("jobs").is_none(), "v1");
        assert_eq!(users[1]["id"], "13");
        assert_eq!(users[1]["deleted"], "1");
        assert_eq!(users[1]["email"], "");
        assert_eq!(users[1]["idnumber"], "");
        assert!(
            users[1]["username"]
                .as_str()
                .unwrap_or("")
                .starts_with("deleted_")
        );

        // v2: profile_fields null with the client's sync off, the declared ones with it on.
        let v2 = json_of(&get_users(&client(), ApiVersion::V2, vec![alice()], &context()).body);
        assert_eq!(v2["data"]["users"][0]["profile_fields"], Value::Null);
        assert_eq!(v2["data"]["users"][0]["jobs"], Value::Null);
        let mut syncing = client();
        syncing.options.sync_profile_fields = true;
        syncing.options.sync_jobs = true;
        let v2 = json_of(
            &get_users(
                &syncing,
                ApiVersion::V2,
                vec![alice(), tombstone()],
                &context(),
            )
            .body,
        );
        assert_eq!(
            v2["data"]["users"][0]["profile_fields"],
            json!([{"shortname": "department", "datatype": "text", "data": "Sales"}])
        );
        // The job row minus userid and the manager and appraiser columns (§3.1), ids as
        // strings, positionid the server's item id, organisationid null when there is none.
        assert_eq!(
            v2["data"]["users"][0]["jobs"],
            json!([{
                "id": "31", "fullname": "Sales rep", "shortname": "rep", "idnumber": "J1",
                "description": "", "startdate": "10", "enddate": "0", "timecreated": "100",
                "timemodified": "150", "usermodified": "0", "positionid": "7",
                "positionassignmentdate": "100", "organisationid": null, "sortorder": "1",
                "totarasync": "0", "synctimemodified": "0"
            }])
        );
        // Deleted users have no profile_fields or jobs keys (§3.1).
        assert!(v2["data"]["users"][1].get("profile_fields").is_none());
        assert!(v2["data"]["users"][1].get("jobs").is_none());

        // With sync_passwords, the hash as stored.
        let passwords = ServerContext {
            sync_passwords: true,
            ..context()
        };
        let reply = json_of(&get_users(&c, ApiVersion::V1, vec![alice()], &passwords).body);
        assert_eq!(
            reply["data"]["users"][0]["password"],
            "$argon2id$v=19$stand-in"
        );

        // No users: an empty list.
        assert_eq!(
            get_users(&c, ApiVersion::V1, Vec::new(), &context()).body,
            r#"{"status":"success","data":{"users":[]}}"#
        );
    }

    #[test]
    fn get_users_reads_fields_and_jobs_only_when_the_reply_carries_them() {
        let mut c = client();
        c.restrict_audience_id = Some(3);
        let plain = ConnectUsersQuery {
            restrict_audience_id: Some(3),
            ..ConnectUsersQuery::default()
        };
        assert_eq!(users_query(&c, ApiVersion::V2, &context()), plain);
        c.options.sync_profile_fields = true;
        c.options.sync_jobs = true;
        // API v1 carries neither, whatever the client's options.
        assert_eq!(users_query(&c, ApiVersion::V1, &context()), plain);
        let passwords = ServerContext {
            sync_passwords: true,
            ..context()
        };
        assert_eq!(
            users_query(&c, ApiVersion::V2, &passwords),
            ConnectUsersQuery {
                restrict_audience_id: Some(3),
                password_hashes: true,
                fields: true,
                jobs: true,
            }
        );
        c.options.sync_jobs = false;
        assert!(!users_query(&c, ApiVersion::V2, &context()).jobs);
        assert!(users_query(&c, ApiVersion::V2, &context()).fields);
    }

    #[test]
    fn get_user_fails_under_the_key_if_and_answers_null_for_an_unseen_user() {
        let c = client();
        for bad in [
            &[][..],
            &[("userid", "")][..],
            &[("userid", "0")][..],
            &[("userid", "x1")][..],
        ] {
            assert_eq!(
                read("get_user", bad, &c),
                Err(fail("if", "missing server user id number"))
            );
        }
        assert_eq!(
            read("get_user", &[("userid", "12")], &c),
            Ok(ServerCall::GetUser { user_id: 12 })
        );
        assert_eq!(
            get_user(&c, ApiVersion::V2, None, &context()).body,
            r#"{"status":"success","data":{"user":null}}"#
        );
        let reply = json_of(&get_user(&c, ApiVersion::V2, Some(&alice()), &context()).body);
        assert_eq!(reply["data"]["user"]["id"], "12");
        // The SSO form: picture kept, pictures [] when there are none.
        assert_eq!(reply["data"]["user"]["picture"], "0");
        assert_eq!(reply["data"]["user"]["pictures"], json!([]));
    }

    fn token(c: char) -> String {
        std::iter::repeat_n(c, 40).collect()
    }

    fn sso(active: bool) -> ConnectSsoSession {
        ConnectSsoSession {
            id: 9,
            client_id: 4,
            user_id: 12,
            session_key: "session-hash".into(),
            sso_token: token('e'),
            active,
            created_at: NOW - 5,
        }
    }

    fn session(user_id: i64, expires_at: i64) -> Session {
        Session {
            id_hash: "session-hash".into(),
            user_id,
            domain: "root".into(),
            idp_id: None,
            subject: None,
            logout_state: Vec::new(),
            csrf_token: "csrf".into(),
            created_at: NOW - 60,
            expires_at,
        }
    }

    fn sso_refusal(answer: SsoUserAnswer) -> (Value, Vec<Effect>) {
        match answer {
            SsoUserAnswer::Refused(outcome) => (json_of(&outcome.body), outcome.effects),
            other => panic!("not refused: {other:?}"),
        }
    }

    fn terminate() -> Vec<Effect> {
        vec![Effect::EndSessionEverywhere {
            session_key: "session-hash".into(),
        }]
    }

    #[test]
    fn get_sso_user_checks_the_token_format_first() {
        let c = client();
        assert_eq!(
            read("get_sso_user", &[], &c),
            Err(fail("ssotoken", "missing sso token"))
        );
        for bad in [
            token('e')[..39].to_owned(),
            format!("{}e", token('e')),
            "-".repeat(40),
        ] {
            assert_eq!(
                read("get_sso_user", &[("ssotoken", &bad)], &c),
                Err(fail("ssotoken", "invalid sso token format")),
                "{bad}"
            );
        }
        // 40 alphanumerics that were never issued (not lowercase hex): not found.
        assert_eq!(
            read("get_sso_user", &[("ssotoken", &token('Z'))], &c),
            Ok(ServerCall::GetSsoUser { sso_token: None })
        );
    }

    #[test]
    fn get_sso_user_runs_every_check_of_4_1_in_order() {
        let c = client();
        let live = session(12, NOW + 600);
        let user = alice();
        let facts = |sso: Option<&'static ConnectSsoSession>| SsoFacts {
            sso,
            session: None,
            user: None,
        };
        // Unknown token, or another client's.
        assert_eq!(
            sso_refusal(get_sso_user(&c, ApiVersion::V2, facts(None), &context())),
            (fail("ssotoken", "invalid sso token"), vec![])
        );
        let mut elsewhere = sso(false);
        elsewhere.client_id = 5;
        let f = SsoFacts {
            sso: Some(&elsewhere),
            session: Some(&live),
            user: Some(&user),
        };
        assert_eq!(
            sso_refusal(get_sso_user(&c, ApiVersion::V2, f, &context())),
            (fail("ssotoken", "invalid sso token"), vec![])
        );
        // The Gatehouse session is gone, or expired on the host clock.
        let fresh = sso(false);
        let expired = session(12, NOW);
        for gone in [None, Some(&expired)] {
            let f = SsoFacts {
                sso: Some(&fresh),
                session: gone,
                user: Some(&user),
            };
            assert_eq!(
                sso_refusal(get_sso_user(&c, ApiVersion::V2, f, &context())),
                (error("session expired"), terminate())
            );
        }
        // Another user's session.
        let other = session(77, NOW + 600);
        let f = SsoFacts {
            sso: Some(&fresh),
            session: Some(&other),
            user: Some(&user),
        };
        assert_eq!(
            sso_refusal(get_sso_user(&c, ApiVersion::V2, f, &context())),
            (error("invalid user session"), terminate())
        );
        // The user is gone, deleted or suspended.
        let mut suspended = alice();
        suspended.suspended = true;
        let mut deleted = alice();
        deleted.deleted = true;
        for user in [None, Some(&suspended), Some(&deleted)] {
            let f = SsoFacts {
                sso: Some(&fresh),
                session: Some(&live),
                user,
            };
            assert_eq!(
                sso_refusal(get_sso_user(&c, ApiVersion::V2, f, &context())),
                (error("invalid user session"), terminate())
            );
        }
        // Used before.
        let used = sso(true);
        let f = SsoFacts {
            sso: Some(&used),
            session: Some(&live),
            user: Some(&user),
        };
        assert_eq!(
            sso_refusal(get_sso_user(&c, ApiVersion::V2, f, &context())),
            (error("reused ssotoken"), vec![])
        );
        // Everything holds: activate, then the user itself as data, in the SSO form.
        let f = SsoFacts {
            sso: Some(&fresh),
            session: Some(&live),
            user: Some(&user),
        };
        let SsoUserAnswer::ActivateThen {
            sso_session_id,
            user_body,
            reused_body,
        } = get_sso_user(&c, ApiVersion::V2, f, &context())
        else {
            panic!("refused");
        };
        assert_eq!(sso_session_id, 9);
        let reply = json_of(&user_body);
        assert_eq!(reply["status"], "success");
        assert_eq!(reply["data"]["id"], "12");
        assert_eq!(reply["data"]["username"], "alice");
        assert_eq!(reply["data"]["pictures"], json!([]));
        assert_eq!(json_of(&reused_body), error("reused ssotoken"));
    }

    #[test]
    fn force_sso_logout_succeeds_for_unknown_tokens_and_ends_known_sessions() {
        let c = client();
        assert_eq!(
            read("force_sso_logout", &[], &c),
            Err(fail("ssotoken", "missing sso token"))
        );
        assert_eq!(
            read("force_sso_logout", &[("ssotoken", "abc")], &c),
            Err(fail("ssotoken", "invalid sso token format"))
        );
        let unknown = force_sso_logout(&c, None);
        assert_eq!(unknown.body, r#"{"status":"success","data":[]}"#);
        assert!(unknown.effects.is_empty());
        let mut elsewhere = sso(false);
        elsewhere.client_id = 5;
        assert!(force_sso_logout(&c, Some(&elsewhere)).effects.is_empty());
        let known = force_sso_logout(&c, Some(&sso(true)));
        assert_eq!(known.body, r#"{"status":"success","data":[]}"#);
        assert_eq!(known.effects, terminate());
    }

    #[test]
    fn delete_client_marks_it_deleted_and_answers_an_empty_list() {
        let c = client();
        assert_eq!(read("delete_client", &[], &c), Ok(ServerCall::DeleteClient));
        let outcome = delete_client(&c);
        assert_eq!(outcome.body, r#"{"status":"success","data":[]}"#);
        assert_eq!(
            outcome.effects,
            [Effect::MarkClientDeleted { client_id: 4 }]
        );
    }

    #[test]
    fn positions_and_organisations_are_refused_below_api_version_2_with_the_original_text() {
        let mut v1 = client();
        v1.api_version = 1;
        assert_eq!(
            read("get_positions", &[], &v1),
            Err(error("get_positions not available in api version 1"))
        );
        assert_eq!(
            read("get_organisations", &[], &v1),
            Err(error("get_organisations not available in api version 1"))
        );
        // Collections have no version gate.
        assert_eq!(
            read("get_user_collections", &[], &v1),
            Ok(ServerCall::GetUserCollections)
        );
        for (name, call) in [
            ("get_positions", ServerCall::GetPositions),
            ("get_organisations", ServerCall::GetOrganisations),
            ("get_user_collections", ServerCall::GetUserCollections),
        ] {
            assert_eq!(read(name, &[], &client()), Ok(call));
        }
    }
}
