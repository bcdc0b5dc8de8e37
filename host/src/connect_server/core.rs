//! The deterministic core of the Connect server's SEP (`/totara/connect/sep.php`, protocol
//! §1.4, §3.1, §4.1 step 5, §4.4, §8): which check refuses a call, with which reply, and
//! what each service answers and changes. Pure: the clock is an input (`now`), it needs no
//! randomness, and it does no I/O. The handler ([`super::sep`]) looks up what each step
//! names (the client by its secret, the users, the SSO session), calls these functions and
//! carries out the [`Effect`]s; the wire details are `gatehouse-connect-wire`'s.

use std::collections::BTreeMap;

use gatehouse_connect_wire::{
    ApiVersion, Authorized, ClientType, JSend, ProfileFieldValue, SepEnvelope, ServerCall,
    ServerService, ServiceRefusal, SharedUser, Token, UserWriteOptions,
    sep::{ClientStanding, read_server_sep_form},
    services::{api_version_reply, empty_reply, sso_user_reply, user_reply, users_reply},
};
use gatehouse_store::{ConnectClient, ConnectSharedUser, ConnectSsoSession, Session};

/// A reply (its JSON body, always sent with HTTP 200 as the original does) and what the
/// handler must do before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub body: String,
    pub effects: Vec<Effect>,
}

impl Outcome {
    fn reply(body: String) -> Outcome {
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

/// The reply of a service Gatehouse does not serve yet (part 2: collections, positions,
/// organisations), rather than an empty list a client would take for "none".
pub fn not_supported_yet(service: ServerService) -> Outcome {
    Outcome::refusal(JSend::error(format!("{service} not supported yet")))
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
/// type as `datatype`; no jobs yet (part 2).
pub fn shared_user(user: &ConnectSharedUser, context: &ServerContext) -> SharedUser {
    SharedUser {
        id: user.id,
        username: user.username.clone(),
        email: user.email.clone(),
        firstname: user.firstname.clone(),
        lastname: user.lastname.clone(),
        idnumber: user.idnumber.clone(),
        password_hash: user.password_hash.clone(),
        deleted: user.deleted,
        suspended: user.suspended,
        timecreated: user.created_at,
        timemodified: user.updated_at,
        profile_fields: user
            .fields
            .iter()
            .filter_map(|(name, value)| {
                context
                    .field_types
                    .get(name)
                    .map(|datatype| ProfileFieldValue {
                        shortname: name.clone(),
                        datatype: datatype.clone(),
                        data: value.clone(),
                    })
            })
            .collect(),
        jobs: Vec::new(),
    }
}

/// `get_users`: the users the client may see (the store applied the restriction and
/// ordered them by id), in the list form.
pub fn get_users(
    client: &ConnectClient,
    api_version: ApiVersion,
    users: &[ConnectSharedUser],
    context: &ServerContext,
) -> Outcome {
    let users: Vec<SharedUser> = users.iter().map(|u| shared_user(u, context)).collect();
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
    let user = user.map(|u| shared_user(u, context));
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
            &shared_user(user, context),
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
