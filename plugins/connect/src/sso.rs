//! Single sign-on through the Connect server (reference §4.1, §4.4): the request token and
//! the redirect to the server's `sso_request.php`, the checks of `sso_finish.php` with the
//! `get_sso_user` back-channel, the identity a server user signs in as, and the client's
//! logout (`force_sso_logout`). Not the browser binding, the pending sign-in or the
//! session: those are the host's.

use gatehouse_connect_wire::{
    RemoteUser, ServerCall, Token, connect_username,
    sep::{SERVER_SSO_REQUEST_PATH, endpoint_url},
    services::{ReplyError, read_sso_user_reply},
    user::USER_COLUMNS,
};
use gatehouse_plugin_api::{
    BeginRequest, Begun, CallbackRequest, Host, Identity, LoginStep, LogoutRequest, PluginError,
    constant_time_eq,
};
use serde::{Deserialize, Serialize};

use crate::{
    records::{self, REQUEST_LIFETIME, Server, SsoRequest},
    remote,
    settings::ClientConfig,
};

/// The user columns a sign-in does not pass on, as the original's `update_local_user`
/// leaves them: those it never copies (`id`, times, `lastip`, `secret`, `policyagreed`,
/// `totarasync`), those it keeps local (`username`, which is `tc_…`, `auth`, `mnethostid`,
/// `confirmed`, `suspended`, `deleted`, `emailstop`), and `password` (a hash; Connect accounts
/// sign in only through the server) and `picture`.
pub const NOT_COPIED: [&str; 19] = [
    "id",
    "auth",
    "confirmed",
    "policyagreed",
    "deleted",
    "suspended",
    "mnethostid",
    "username",
    "password",
    "emailstop",
    "firstaccess",
    "lastaccess",
    "lastlogin",
    "currentlogin",
    "lastip",
    "picture",
    "timecreated",
    "timemodified",
    "totarasync",
];

/// The user columns a sign-in passes on as attributes: every column of the user object
/// but [`NOT_COPIED`].
pub fn copied_columns() -> impl Iterator<Item = &'static str> {
    USER_COLUMNS
        .into_iter()
        .filter(|column| !NOT_COPIED.contains(column))
}

/// Attributes besides the copied columns: the local username, the server's own id and
/// username of the user, and the server's idnumber (with the id, what the host finds the
/// user's Connect link by).
pub const IDENTITY_ATTRIBUTES: [&str; 4] = [
    "username",
    "server_user_id",
    "server_username",
    "server_idnumber",
];

/// The prefix of a synchronised custom profile field's attribute (`profile_field_<shortname>`).
pub const PROFILE_FIELD_PREFIX: &str = "profile_field_";

/// What `begin_login` leaves for `complete_login` (kept by the host, handed back once).
#[derive(Serialize, Deserialize)]
struct PendingState {
    request_token: String,
}

fn not_connected(config: &ClientConfig) -> PluginError {
    PluginError::invalid_settings(format!(
        "`{}` is not connected to a Connect server yet: run `gatehouse connect new-server --idp {}` and add this client on the server (Add client)",
        config.instance_id, config.instance_id
    ))
}

fn registered(host: &Host<'_>, config: &ClientConfig) -> Result<Server, PluginError> {
    records::server(host)?.ok_or_else(|| not_connected(config))
}

/// `sso_start.php`: the host's state token is the request token (the server echoes it back
/// as `requesttoken`, the manifest's state parameter), recorded for 600 s so that the
/// server's `validate_sso_request_token` finds it; the browser goes to the server.
pub fn begin(
    host: &Host<'_>,
    config: &ClientConfig,
    request: &BeginRequest,
) -> Result<Begun, PluginError> {
    let server = registered(host, config)?;
    let request_token = Token::parse(&request.state_token).map_err(|error| {
        PluginError::internal(format!(
            "the host's state token cannot be a Connect request token ({error}): this host is too old for the Connect plugin"
        ))
    })?;
    let created_at = host.now_unix_seconds();
    if !records::put_request(host, &request_token, SsoRequest { created_at })? {
        return Err(PluginError::internal(
            "the host handed out a state token twice",
        ));
    }
    let url = url::Url::parse_with_params(
        &endpoint_url(&server.url, SERVER_SSO_REQUEST_PATH),
        [
            ("clientidnumber", server.client_idnumber.as_str()),
            ("requesttoken", request_token.as_str()),
        ],
    )
    .map_err(|error| {
        PluginError::internal(format!("the stored server URL is unusable: {error}"))
    })?;
    let state = PendingState {
        request_token: request_token.as_str().to_owned(),
    };
    Ok(Begun {
        step: LoginStep::redirect(url.to_string()),
        state: serde_json::to_vec(&state).unwrap_or_default().into(),
    })
}

/// `sso_finish.php` and `finish_sso`: the checks of §4.1 step 4 in the original's order,
/// then `get_sso_user` through the host, then the identity.
pub fn complete(
    host: &Host<'_>,
    config: &ClientConfig,
    request: &CallbackRequest,
) -> Result<Identity, PluginError> {
    let refuse = |why: &str| PluginError::invalid_response(format!("Connect sign-in: {why}"));
    // 2. clientidnumber and requesttoken present.
    let client_idnumber = request.param("clientidnumber").unwrap_or_default();
    let presented_request = request.param("requesttoken").unwrap_or_default();
    if client_idnumber.is_empty() || presented_request.is_empty() {
        return Err(refuse("the answer has no clientidnumber or requesttoken"));
    }
    // 3. The server, found by this client's idnumber.
    let server = registered(host, config)?;
    if !server.client_idnumber.matches(client_idnumber) {
        return Err(refuse("the answer names another client (clientidnumber)"));
    }
    // 4. The request, found by its token.
    let Some(request_token) = records::presented_token(Some(presented_request)) else {
        return Err(refuse("the request token is malformed"));
    };
    let Some(sso_request) = records::live_request(host, &request_token)? else {
        return Err(PluginError::expired(
            "Connect sign-in: the request token is unknown, used or older than 600 s",
        ));
    };
    // 5. Single use: deleted before anything else can go wrong.
    records::delete_request(host, &request_token)?;
    // 7. The same sign-in that began it (the host has checked that it is the same browser).
    let pending: PendingState = serde_json::from_slice(request.state.as_slice())
        .map_err(|_| refuse("this answer belongs to no sign-in begun here"))?;
    if !constant_time_eq(
        pending.request_token.as_bytes(),
        request_token.as_str().as_bytes(),
    ) {
        return Err(refuse("the request token belongs to another sign-in"));
    }
    // 8. At most 600 s old.
    let age = host
        .now_unix_seconds()
        .saturating_sub(sso_request.created_at);
    if age > REQUEST_LIFETIME.as_secs().cast_signed() {
        return Err(PluginError::expired(
            "Connect sign-in: the request is older than 600 s",
        ));
    }
    // 9. The server's verdict.
    match request.param("result").unwrap_or_default() {
        "success" => {}
        "cancel" => {
            return Err(PluginError::access_denied(
                "Connect sign-in: cancelled at the server",
            ));
        }
        other => {
            return Err(PluginError::access_denied(format!(
                "Connect sign-in: the server answered result={other:?}"
            )));
        }
    }
    // The SSO token: present and well-formed before it goes back to the server.
    let Some(sso_token) = records::presented_token(request.param("ssotoken")) else {
        return Err(refuse("the SSO token is missing or malformed"));
    };
    let reply = remote::call_server(
        host,
        &server,
        &ServerCall::GetSsoUser {
            sso_token: Some(sso_token.clone()),
        },
    );
    let user = read_sso_user_reply(reply).map_err(|error| match error {
        ReplyError::Refused(reply) => PluginError::access_denied(format!(
            "Connect sign-in: the server refused the SSO token: {}",
            ReplyError::Refused(reply)
        )),
        other => PluginError::invalid_response(format!(
            "Connect sign-in: the server's get_sso_user reply: {other}"
        )),
    })?;
    if user.deleted || user.suspended || user.username == "guest" {
        return Err(PluginError::access_denied(
            "Connect sign-in: the server's user is deleted, suspended or the guest",
        ));
    }
    Ok(identity(config, &server, &user, &sso_token))
}

/// The identity of a server user: subject = the server's user id; the username
/// `tc_<server user id>_<server idnumber>`; the copied columns; the custom profile fields when
/// `sync_profile_fields` is on and the server sent them (API v2); logout state = the SSO
/// token, so that `kill_sso_user` ends exactly the sessions it made.
pub fn identity(
    config: &ClientConfig,
    server: &Server,
    user: &RemoteUser,
    sso_token: &Token,
) -> Identity {
    let mut identity = Identity::new(user.id.to_string())
        .with_attribute(
            "username",
            connect_username(user.id, &server.server_idnumber),
        )
        .with_attribute("server_user_id", user.id.to_string())
        .with_attribute("server_username", user.username.as_str())
        .with_attribute("server_idnumber", server.server_idnumber.as_str());
    for column in copied_columns() {
        if let Some(value) = user.column(column) {
            identity = identity.with_attribute(column, value);
        }
    }
    if config.settings.sync_profile_fields && server.api_version.has_v2_data() {
        for field in user.profile_fields.iter().flatten() {
            identity = identity.with_attribute(
                &format!("{PROFILE_FIELD_PREFIX}{}", field.shortname),
                field.data.as_str(),
            );
        }
    }
    identity.logout_state = sso_token.as_str().as_bytes().to_vec().into();
    identity
}

/// The client's logout (`prelogout_hook`): tells the server `force_sso_logout` with the
/// session's SSO token and ignores the answer, as the original does; the browser needs
/// to go nowhere.
pub fn logout(host: &Host<'_>, request: &LogoutRequest) -> Result<Option<LoginStep>, PluginError> {
    let token = std::str::from_utf8(request.logout_state.as_slice())
        .ok()
        .and_then(|text| Token::parse(text).ok());
    if let (Some(token), Some(server)) = (token, records::server(host)?) {
        let reply = remote::call_server(
            host,
            &server,
            &ServerCall::ForceSsoLogout {
                sso_token: Some(token),
            },
        );
        if !reply.is_success() {
            host.warn("Connect: the server did not confirm force_sso_logout");
        }
    }
    Ok(None)
}
