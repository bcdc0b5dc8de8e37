//! Each SEP service's request (its POST parameters, read with the original's checks and
//! texts, and written for outgoing calls) and reply (written as the original writes it, read
//! leniently). Server services: `get_api_version`, `update_api_version`, `get_users`,
//! `get_user`, `get_user_collections`, `get_positions`, `get_organisations`, `get_sso_user`,
//! `force_sso_logout`, `delete_client`; client services: `validate_sso_request_token`,
//! `is_sso_user_active`, `kill_sso_user`. Not what the services do: that needs state and is
//! the server role's and the client plugin's.

use serde_json::Value;
use thiserror::Error;

use crate::jsend::{JSend, success_json};
use crate::php::{self, PhpValue};
use crate::sep::{Authorized, ClientService, ServerService, form_value, php_empty};
use crate::token::{TOKEN_LEN, Token, clean_alphanum};
use crate::user::{RemoteUser, SharedUser, UserError, UserWriteOptions};
use crate::version::{ApiVersion, ClientType, MAX_API_VERSION, MIN_API_VERSION};

/// A service's refusal of its parameters or its state, with the original's reply (`fail`
/// keyed by the parameter, or `error`), to the letter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServiceRefusal {
    /// fail `clienttype`.
    #[error("incorrect or missing clienttype name")]
    BadClientType,
    /// fail `apiversion`: absent or not an integer written the way PHP writes one.
    #[error("missing api version number")]
    MissingApiVersion,
    /// fail `apiversion`: outside [1, 2].
    #[error("unsupported api version number")]
    UnsupportedApiVersionNumber,
    /// fail, keyed `if` in the original.
    #[error("missing server user id number")]
    MissingUserId,
    /// fail `ssotoken`.
    #[error("missing sso token")]
    MissingSsoToken,
    /// fail `ssotoken`: not 40 characters once cleaned to `[A-Za-z0-9]`.
    #[error("invalid sso token format")]
    InvalidSsoTokenFormat,
    /// fail `ssotoken` (`get_sso_user`): no SSO session of this client has it.
    #[error("invalid sso token")]
    InvalidSsoToken,
    /// error (`get_sso_user`): the server session behind the token has ended.
    #[error("session expired")]
    SessionExpired,
    /// error (`get_sso_user`): the session's user changed, or is deleted or suspended.
    #[error("invalid user session")]
    InvalidUserSession,
    /// error (`get_sso_user`): the token was already used.
    #[error("reused ssotoken")]
    ReusedSsoToken,
    /// error (`get_positions`/`get_organisations` for a v1 client).
    #[error("{service} not available in api version {version}")]
    NotInApiVersion {
        service: &'static str,
        version: ApiVersion,
    },
    /// fail `requesttoken`.
    #[error("missing sso request token")]
    MissingRequestToken,
    /// fail, keyed `ssotoken` in the original although the parameter is `requesttoken`.
    #[error("invalid request token format")]
    InvalidRequestTokenFormat,
    /// error (`validate_sso_request_token`): unknown, or older than 600 s.
    #[error("sso request timed out")]
    SsoRequestTimedOut,
}

impl ServiceRefusal {
    /// The key of a `fail` reply, or `None` for an `error` reply.
    pub fn fail_key(&self) -> Option<&'static str> {
        match self {
            ServiceRefusal::BadClientType => Some("clienttype"),
            ServiceRefusal::MissingApiVersion | ServiceRefusal::UnsupportedApiVersionNumber => {
                Some("apiversion")
            }
            ServiceRefusal::MissingUserId => Some("if"),
            ServiceRefusal::MissingSsoToken
            | ServiceRefusal::InvalidSsoTokenFormat
            | ServiceRefusal::InvalidSsoToken
            | ServiceRefusal::InvalidRequestTokenFormat => Some("ssotoken"),
            ServiceRefusal::MissingRequestToken => Some("requesttoken"),
            ServiceRefusal::SessionExpired
            | ServiceRefusal::InvalidUserSession
            | ServiceRefusal::ReusedSsoToken
            | ServiceRefusal::NotInApiVersion { .. }
            | ServiceRefusal::SsoRequestTimedOut => None,
        }
    }

    /// The reply.
    pub fn to_jsend(&self) -> JSend {
        match self.fail_key() {
            Some(key) => JSend::fail(key, &self.to_string()),
            None => JSend::error(self.to_string()),
        }
    }
}

/// A token parameter that passed the format check. `None`: 40 characters of `[A-Za-z0-9]`
/// but not lowercase hex, so not one Gatehouse (or Totara) made: an unknown token, which
/// each service answers as it answers any unknown token.
pub type PresentedToken = Option<Token>;

/// The token checks shared by `get_sso_user`, `force_sso_logout`, `is_sso_user_active` and
/// `kill_sso_user`: absent (PHP's `isset`) is "missing", a cleaned length other than 40 is
/// "invalid format".
fn sso_token_param(params: &[(String, String)]) -> Result<PresentedToken, ServiceRefusal> {
    let raw = form_value(params, "ssotoken").ok_or(ServiceRefusal::MissingSsoToken)?;
    let cleaned = clean_alphanum(raw);
    if cleaned.len() != TOKEN_LEN {
        return Err(ServiceRefusal::InvalidSsoTokenFormat);
    }
    Ok(Token::parse(&cleaned).ok())
}

/// A token parameter's text for an outgoing call (an unknown token as the empty string).
fn token_text(token: &PresentedToken) -> String {
    token
        .as_ref()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default()
}

/// Moodle's `is_number`: an integer written exactly as PHP writes it (`"2"`, `"-1"`; not
/// `"02"`, `" 2"`, `"2.0"`).
fn php_is_number(text: &str) -> Option<i64> {
    php::parse_decimal(text).filter(|n| n.to_string() == text)
}

fn client_type_param(params: &[(String, String)]) -> Result<ClientType, ServiceRefusal> {
    form_value(params, "clienttype")
        .and_then(ClientType::parse)
        .ok_or(ServiceRefusal::BadClientType)
}

/// A call to a server service, its parameters checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCall {
    GetApiVersion {
        client_type: ClientType,
    },
    UpdateApiVersion {
        api_version: ApiVersion,
        client_type: ClientType,
    },
    GetUsers,
    GetUser {
        user_id: i64,
    },
    GetUserCollections,
    GetPositions,
    GetOrganisations,
    GetSsoUser {
        sso_token: PresentedToken,
    },
    ForceSsoLogout {
        sso_token: PresentedToken,
    },
    DeleteClient,
}

impl ServerCall {
    /// Reads the parameters of an authorised call, with each service's checks in its order.
    pub fn read(
        authorized: Authorized<ServerService>,
        params: &[(String, String)],
    ) -> Result<ServerCall, ServiceRefusal> {
        Ok(match authorized.service {
            ServerService::GetApiVersion => ServerCall::GetApiVersion {
                client_type: client_type_param(params)?,
            },
            ServerService::UpdateApiVersion => {
                let number = form_value(params, "apiversion")
                    .and_then(php_is_number)
                    .ok_or(ServiceRefusal::MissingApiVersion)?;
                let api_version =
                    ApiVersion::new(number).ok_or(ServiceRefusal::UnsupportedApiVersionNumber)?;
                ServerCall::UpdateApiVersion {
                    api_version,
                    client_type: client_type_param(params)?,
                }
            }
            ServerService::GetUsers => ServerCall::GetUsers,
            ServerService::GetUser => {
                let raw = form_value(params, "userid");
                if php_empty(raw) {
                    return Err(ServiceRefusal::MissingUserId);
                }
                ServerCall::GetUser {
                    user_id: raw
                        .and_then(php_is_number)
                        .ok_or(ServiceRefusal::MissingUserId)?,
                }
            }
            ServerService::GetUserCollections => ServerCall::GetUserCollections,
            ServerService::GetPositions | ServerService::GetOrganisations
                if !authorized.api_version.has_v2_data() =>
            {
                return Err(ServiceRefusal::NotInApiVersion {
                    service: authorized.service.name(),
                    version: authorized.api_version,
                });
            }
            ServerService::GetPositions => ServerCall::GetPositions,
            ServerService::GetOrganisations => ServerCall::GetOrganisations,
            ServerService::GetSsoUser => ServerCall::GetSsoUser {
                sso_token: sso_token_param(params)?,
            },
            ServerService::ForceSsoLogout => ServerCall::ForceSsoLogout {
                sso_token: sso_token_param(params)?,
            },
            ServerService::DeleteClient => ServerCall::DeleteClient,
        })
    }

    /// The service it calls.
    pub fn service(&self) -> ServerService {
        match self {
            ServerCall::GetApiVersion { .. } => ServerService::GetApiVersion,
            ServerCall::UpdateApiVersion { .. } => ServerService::UpdateApiVersion,
            ServerCall::GetUsers => ServerService::GetUsers,
            ServerCall::GetUser { .. } => ServerService::GetUser,
            ServerCall::GetUserCollections => ServerService::GetUserCollections,
            ServerCall::GetPositions => ServerService::GetPositions,
            ServerCall::GetOrganisations => ServerService::GetOrganisations,
            ServerCall::GetSsoUser { .. } => ServerService::GetSsoUser,
            ServerCall::ForceSsoLogout { .. } => ServerService::ForceSsoLogout,
            ServerCall::DeleteClient => ServerService::DeleteClient,
        }
    }

    /// The service's parameters for an outgoing call, in the original's order (pass them to
    /// [`crate::sep::server_call_form`]). An unknown token (`None`) is not sent by a client;
    /// it is written as the empty string.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        match self {
            ServerCall::GetApiVersion { client_type } => {
                vec![("clienttype", client_type.as_str().to_owned())]
            }
            ServerCall::UpdateApiVersion {
                api_version,
                client_type,
            } => vec![
                ("apiversion", api_version.to_string()),
                ("clienttype", client_type.as_str().to_owned()),
            ],
            ServerCall::GetUser { user_id } => vec![("userid", user_id.to_string())],
            ServerCall::GetSsoUser { sso_token } | ServerCall::ForceSsoLogout { sso_token } => {
                vec![("ssotoken", token_text(sso_token))]
            }
            ServerCall::GetUsers
            | ServerCall::GetUserCollections
            | ServerCall::GetPositions
            | ServerCall::GetOrganisations
            | ServerCall::DeleteClient => Vec::new(),
        }
    }
}

/// A call to a client service, its parameters checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCall {
    ValidateSsoRequestToken { request_token: PresentedToken },
    IsSsoUserActive { sso_token: PresentedToken },
    KillSsoUser { sso_token: PresentedToken },
}

impl ClientCall {
    /// Reads the parameters of an authorised call, with each service's checks in its order.
    pub fn read(
        authorized: Authorized<ClientService>,
        params: &[(String, String)],
    ) -> Result<ClientCall, ServiceRefusal> {
        Ok(match authorized.service {
            ClientService::ValidateSsoRequestToken => {
                let raw = form_value(params, "requesttoken");
                if php_empty(raw) {
                    return Err(ServiceRefusal::MissingRequestToken);
                }
                let cleaned = clean_alphanum(raw.unwrap_or_default());
                if cleaned.len() != TOKEN_LEN {
                    return Err(ServiceRefusal::InvalidRequestTokenFormat);
                }
                ClientCall::ValidateSsoRequestToken {
                    request_token: Token::parse(&cleaned).ok(),
                }
            }
            ClientService::IsSsoUserActive => ClientCall::IsSsoUserActive {
                sso_token: sso_token_param(params)?,
            },
            ClientService::KillSsoUser => ClientCall::KillSsoUser {
                sso_token: sso_token_param(params)?,
            },
        })
    }

    /// The service it calls.
    pub fn service(&self) -> ClientService {
        match self {
            ClientCall::ValidateSsoRequestToken { .. } => ClientService::ValidateSsoRequestToken,
            ClientCall::IsSsoUserActive { .. } => ClientService::IsSsoUserActive,
            ClientCall::KillSsoUser { .. } => ClientService::KillSsoUser,
        }
    }

    /// The service's parameters for an outgoing call (see [`crate::sep::client_call_form`]).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        match self {
            ClientCall::ValidateSsoRequestToken { request_token } => {
                vec![("requesttoken", token_text(request_token))]
            }
            ClientCall::IsSsoUserActive { sso_token } | ClientCall::KillSsoUser { sso_token } => {
                vec![("ssotoken", token_text(sso_token))]
            }
        }
    }
}

// ---- Replies, as written by the answering side -------------------------------------------

/// `get_api_version`: `{"status":"success","data":{"minapiversion":1,"maxapiversion":2}}`
/// (ints, not strings: they come from PHP constants).
pub fn api_version_reply() -> String {
    success_json(PhpValue::map([
        ("minapiversion", PhpValue::Int(i64::from(MIN_API_VERSION))),
        ("maxapiversion", PhpValue::Int(i64::from(MAX_API_VERSION))),
    ]))
}

/// `update_api_version`, `force_sso_logout`, `delete_client`, `validate_sso_request_token`,
/// `kill_sso_user`, `sep_setup`: `{"status":"success","data":[]}`.
pub fn empty_reply() -> String {
    success_json(PhpValue::empty())
}

/// `get_users`: `{"status":"success","data":{"users":[…]}}` in the list form. Each user is
/// made a PHP value and written in turn, so that a reply of 100,000 users never exists as
/// one value tree beside its text (the bytes are [`success_json`]'s for the whole list).
pub fn users_reply(users: &[SharedUser], options: &UserWriteOptions) -> String {
    let options = UserWriteOptions {
        sso_pictures: None,
        ..options.clone()
    };
    let mut out = String::from(r#"{"status":"success","data":{"users":["#);
    for (index, user) in users.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        user.write_json(&options, &mut out);
    }
    out.push_str("]}}");
    out
}

/// `get_user`: `{"status":"success","data":{"user":{…}}}` in the SSO form, or `"user":null`.
pub fn user_reply(user: Option<&SharedUser>, options: &UserWriteOptions) -> String {
    let user = user.map_or(PhpValue::Null, |u| u.to_php(&sso_form(options)));
    success_json(PhpValue::map([("user", user)]))
}

/// `get_sso_user`: the user object itself as `data`, in the SSO form.
pub fn sso_user_reply(user: &SharedUser, options: &UserWriteOptions) -> String {
    success_json(user.to_php(&sso_form(options)))
}

fn sso_form(options: &UserWriteOptions) -> UserWriteOptions {
    UserWriteOptions {
        sso_pictures: Some(options.sso_pictures.clone().unwrap_or_default()),
        ..options.clone()
    }
}

/// `is_sso_user_active`: `{"status":"success","data":{"active":true}}` (a JSON bool).
pub fn active_reply(active: bool) -> String {
    success_json(PhpValue::map([("active", PhpValue::Bool(active))]))
}

// ---- Replies, as read by the calling side -------------------------------------------------

/// Why a reply does not carry what the service promises.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReplyError {
    /// The other side answered `fail` or `error`; the reply is kept to report or relay.
    #[error("the remote side refused: {}", describe(.0))]
    Refused(JSend),
    #[error("the reply has no {0}")]
    MissingField(&'static str),
    #[error("the reply's {field} is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("user {index} of the reply: {error}")]
    User { index: usize, error: UserError },
    /// A `get_user_collections` row (`cohort` or `course`, by its index in that list).
    #[error("{collection_type} {index} of the reply: {error}")]
    Collection {
        collection_type: &'static str,
        index: usize,
        error: crate::collections::CollectionError,
    },
    /// A row of a list in the reply (`get_positions`' frameworks and items).
    #[error("{list}[{index}] of the reply: {why}")]
    Row {
        list: &'static str,
        index: usize,
        why: String,
    },
}

fn describe(reply: &JSend) -> String {
    match reply {
        JSend::Error { message, .. } => message.clone(),
        JSend::Fail { data } => format!("fail {data}"),
        JSend::Success { .. } => "success".to_owned(),
    }
}

pub(crate) fn success_data(reply: JSend) -> Result<Value, ReplyError> {
    match reply {
        JSend::Success { data } => Ok(data),
        other => Err(ReplyError::Refused(other)),
    }
}

pub(crate) fn field<'a>(data: &'a Value, name: &'static str) -> Result<&'a Value, ReplyError> {
    match data.get(name) {
        None => Err(ReplyError::MissingField(name)),
        Some(value) => Ok(value),
    }
}

/// A reply that carries nothing: success, whatever its data.
pub fn read_empty_reply(reply: JSend) -> Result<(), ReplyError> {
    success_data(reply).map(|_| ())
}

/// `get_api_version`'s range `(min, max)`, numbers or numeric strings.
pub fn read_api_version_reply(reply: JSend) -> Result<(i64, i64), ReplyError> {
    let data = success_data(reply)?;
    let number = |name: &'static str| -> Result<i64, ReplyError> {
        php::as_int(field(&data, name)?).ok_or(ReplyError::WrongType {
            field: name,
            expected: "an integer",
        })
    };
    Ok((number("minapiversion")?, number("maxapiversion")?))
}

/// `get_users`' users, in the order sent.
pub fn read_users_reply(reply: JSend) -> Result<Vec<RemoteUser>, ReplyError> {
    let data = success_data(reply)?;
    let users = php::as_list(field(&data, "users")?).ok_or(ReplyError::WrongType {
        field: "users",
        expected: "a list",
    })?;
    users
        .into_iter()
        .enumerate()
        .map(|(index, user)| {
            RemoteUser::from_value(user).map_err(|error| ReplyError::User { index, error })
        })
        .collect()
}

/// `get_user`'s user, or `None` when the server sent `"user":null` (gone or not shared).
pub fn read_user_reply(reply: JSend) -> Result<Option<RemoteUser>, ReplyError> {
    let data = success_data(reply)?;
    match field(&data, "user")? {
        Value::Null => Ok(None),
        user => RemoteUser::from_value(user)
            .map(Some)
            .map_err(|error| ReplyError::User { index: 0, error }),
    }
}

/// `get_sso_user`'s user (the data itself).
pub fn read_sso_user_reply(reply: JSend) -> Result<RemoteUser, ReplyError> {
    let data = success_data(reply)?;
    RemoteUser::from_value(&data).map_err(|error| ReplyError::User { index: 0, error })
}

/// `is_sso_user_active`'s answer (a bool, or a PHP flag).
pub fn read_active_reply(reply: JSend) -> Result<bool, ReplyError> {
    let data = success_data(reply)?;
    php::as_flag(field(&data, "active")?).ok_or(ReplyError::WrongType {
        field: "active",
        expected: "a boolean",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> SharedUser {
        SharedUser {
            id,
            username: format!("user/{id}"),
            email: format!("u{id}@example.com"),
            firstname: "Zoë".into(),
            lastname: String::new(),
            idnumber: String::new(),
            password_hash: None,
            deleted: id == 2,
            suspended: false,
            timecreated: 1,
            timemodified: 2,
            profile_fields: Vec::new(),
            jobs: Vec::new(),
        }
    }

    #[test]
    fn users_reply_written_user_by_user_is_the_whole_lists_json() {
        let options = UserWriteOptions {
            sso_pictures: Some(Vec::new()),
            api_version: ApiVersion::V2,
            sync_passwords: false,
            sync_profile_fields: true,
            sync_jobs: false,
        };
        let list_form = UserWriteOptions {
            sso_pictures: None,
            ..options.clone()
        };
        for count in [0, 1, 3] {
            let users: Vec<SharedUser> = (1..=count).map(user).collect();
            let whole = success_json(PhpValue::map([(
                "users",
                PhpValue::List(users.iter().map(|u| u.to_php(&list_form)).collect()),
            )]));
            assert_eq!(users_reply(&users, &options), whole, "{count} users");
        }
    }
}
