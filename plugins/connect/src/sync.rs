//! The client's scheduled sync tasks (reference §3.3, §5, §8.7): `handshake` (the API
//! version, negotiated and told to the server every time), `users` (`get_users`, turned into
//! the task output the host plans and applies as one directory batch) and `cleanup`; and
//! `server`, the registration as `gatehouse connect servers` shows it. The plugin cannot see
//! the host's directory, so `users` plans nothing: it hands the server's users and this
//! client's options to the host (the output shape is [`users`]'s doc), which plans them
//! against a fresh snapshot of the directory and writes them in one transaction.

use std::collections::BTreeMap;

use gatehouse_connect_wire::{
    RemoteJob, RemoteUser, ServerCall,
    listing::read_users_listing,
    services::{ReplyError, read_api_version_reply, read_empty_reply},
    version::{ClientType, MAX_API_VERSION, MIN_API_VERSION, select_api_version},
};
use gatehouse_plugin_api::{Host, PluginError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    records::{self, REQUEST_LIFETIME, Server},
    remote,
    settings::{ClientConfig, RemoveUser},
};

fn not_connected(config: &ClientConfig) -> PluginError {
    PluginError::invalid_settings(format!(
        "`{}` is not connected to a Connect server yet: run `gatehouse connect new-server --idp {}` and add this client on the server (Add client)",
        config.instance_id, config.instance_id
    ))
}

pub(crate) fn registered(host: &Host<'_>, config: &ClientConfig) -> Result<Server, PluginError> {
    records::server(host)?.ok_or_else(|| not_connected(config))
}

/// A service's reply that is not what it promises: the server's own words when it refused
/// (`idp_unavailable` when it could not be reached, so the host's breaker counts it), else
/// what is wrong with the reply.
pub(crate) fn reply_error(service: &str, server: &Server, error: ReplyError) -> PluginError {
    match error {
        ReplyError::Refused(reply) => {
            let described = ReplyError::Refused(reply).to_string();
            let message = format!("Connect: {service} at {}: {described}", server.url);
            if described.contains(gatehouse_connect_wire::jsend::CANNOT_CONNECT) {
                PluginError::idp_unavailable(message)
            } else {
                PluginError::invalid_response(message)
            }
        }
        other => {
            PluginError::invalid_response(format!("Connect: {service} at {}: {other}", server.url))
        }
    }
}

/// A call that got no JSend answer, with its cause and the host's error kind.
pub(crate) fn transport_error(service: &str, server: &Server, error: &PluginError) -> PluginError {
    PluginError::new(
        error.kind,
        format!("Connect: {service} at {}: {}", server.url, error.message()),
    )
}

/// `handshake` (daily): `get_api_version` with `clienttype=totaralms`, the highest version
/// both sides speak, then `update_api_version` with it — every time, not only when it
/// changed, so that a server whose record changed behind the client's back is repaired
/// (§8.7) — and the version stored only once the server accepted it.
pub fn handshake(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    let server = registered(host, config)?;
    let reply = remote::exchange_with_server(
        host,
        &server,
        &ServerCall::GetApiVersion {
            client_type: ClientType::TotaraLms,
        },
    )
    .map_err(|error| transport_error("get_api_version", &server, &error))?;
    let (min, max) = read_api_version_reply(reply)
        .map_err(|error| reply_error("get_api_version", &server, error))?;
    let Some(version) = select_api_version(min, max) else {
        return Err(PluginError::invalid_response(format!(
            "Connect: the server at {} speaks API versions {min} to {max}, and this client {MIN_API_VERSION} to {MAX_API_VERSION}: api version not supported",
            server.url
        )));
    };
    let reply = remote::exchange_with_server(
        host,
        &server,
        &ServerCall::UpdateApiVersion {
            api_version: version,
            client_type: ClientType::TotaraLms,
        },
    )
    .map_err(|error| transport_error("update_api_version", &server, &error))?;
    read_empty_reply(reply).map_err(|error| reply_error("update_api_version", &server, error))?;
    let previous = server.api_version;
    if previous != version {
        records::set_api_version(host, &server, version)?;
        host.info(&format!(
            "Connect: API version with {} is now {version} (was {previous})",
            server.url
        ));
    }
    let summary = if previous == version {
        format!(
            "API version {version} with {} (it offers {min} to {max}); the server confirmed it",
            server.url
        )
    } else {
        format!(
            "API version {version} with {} (was {previous}; it offers {min} to {max}); the server confirmed it",
            server.url
        )
    };
    Ok(json!({
        "summary": summary,
        "api_version": version.number(),
        "previous_api_version": previous.number(),
    }))
}

/// The name of the directory section the host applies (the host's `connect_sync`).
pub const CONNECT_USERS_SECTION: &str = "connect_users";

/// `users` (hourly): `get_users` through the host's HTTP, read with the wire crate as a
/// stream (only the columns the directory keeps are built); the output, serialized from
/// typed data straight to JSON text, carries them to the host, which plans and applies the
/// batch:
///
/// ```text
/// {"summary": "get_users: 3 users (1 deleted) from https://hq.example.com",
///  "directory": {"connect_users": {
///     "server_idnumber": "<40 hex>", "api_version": 2,
///     "options": {"remove_user": "keep" | "suspend" | "delete", "sync_profile_fields": bool,
///                 "sync_jobs": bool, "sync_positions": bool, "sync_organisations": bool},
///     "users": [{"id": 7, "username": "ada", "email": "…", "firstname": "…",
///                "lastname": "…", "idnumber": "…", "suspended": false, "deleted": false,
///                "profile_fields": {"department": "Sales"} | null,
///                "jobs": [{"id": 3, "idnumber": "J1", "fullname": "…", "positionid": 11, …}] | null},
///               …]}}}
/// ```
///
/// `profile_fields` is `null` unless `sync_profile_fields` is on and the API version is 2
/// (API 1 has none; a v2 server that does not share them sends `null`), and then
/// `sync_profile_fields` in `options` is true; `jobs` likewise with `sync_jobs` (the wire
/// crate's `RemoteJob`, positions and organisations by the server's ids). A reply that is not a complete `get_users`
/// (the server refused, could not be reached, or the body was cut) fails the task, and the
/// host writes nothing.
pub fn users(host: &Host<'_>, config: &ClientConfig) -> Result<String, PluginError> {
    let server = registered(host, config)?;
    let body = remote::exchange_raw_with_server(host, &server, &ServerCall::GetUsers)
        .map_err(|error| transport_error("get_users", &server, &error))?;
    let users = read_users_listing(&body, &KEPT_COLUMNS)
        .map_err(|error| reply_error("get_users", &server, error))?;
    // The body is by far the largest thing held: gone before the output is written.
    drop(body);
    let with_fields = config.settings.sync_profile_fields && server.api_version.has_v2_data();
    let with_jobs = config.settings.sync_jobs && server.api_version.has_v2_data();
    let deleted = users.iter().filter(|u| u.deleted).count();
    let output = UsersOutput {
        summary: format!(
            "get_users: {} users ({deleted} deleted) from {}",
            users.len(),
            server.url
        ),
        directory: UsersDirectory {
            connect_users: UsersSection {
                server_idnumber: server.server_idnumber.as_str(),
                api_version: server.api_version.number(),
                options: UsersOptions {
                    remove_user: match config.settings.remove_user {
                        RemoveUser::Keep => "keep",
                        RemoveUser::Suspend => "suspend",
                        RemoveUser::Delete => "delete",
                    },
                    sync_profile_fields: with_fields,
                    sync_jobs: with_jobs,
                    sync_positions: config.settings.sync_positions,
                    sync_organisations: config.settings.sync_organisations,
                },
                users: users
                    .iter()
                    .map(|user| UserOutput::of(user, with_fields, with_jobs))
                    .collect(),
            },
        },
    };
    serde_json::to_string(&output).map_err(|error| {
        PluginError::internal(format!("Connect: writing the users output: {error}"))
    })
}

/// The columns of a listed user the output carries (beyond id, username and the flags).
const KEPT_COLUMNS: [&str; 6] = [
    "email",
    "firstname",
    "lastname",
    "idnumber",
    "profile_fields",
    "jobs",
];

#[derive(Serialize)]
struct UsersOutput<'a> {
    summary: String,
    directory: UsersDirectory<'a>,
}

#[derive(Serialize)]
struct UsersDirectory<'a> {
    connect_users: UsersSection<'a>,
}

#[derive(Serialize)]
struct UsersSection<'a> {
    server_idnumber: &'a str,
    api_version: u8,
    options: UsersOptions,
    users: Vec<UserOutput<'a>>,
}

#[derive(Serialize)]
struct UsersOptions {
    remove_user: &'static str,
    sync_profile_fields: bool,
    /// `sync_jobs` at API version 2: each user's `jobs` are the server's (or `null` when it
    /// sent none), and the host syncs them.
    sync_jobs: bool,
    /// Whether a job's position / organisation is translated (reference §5.3).
    sync_positions: bool,
    sync_organisations: bool,
}

/// One user of the output: what the directory keeps of it.
#[derive(Serialize)]
struct UserOutput<'a> {
    id: i64,
    username: &'a str,
    email: &'a str,
    firstname: &'a str,
    lastname: &'a str,
    idnumber: &'a str,
    suspended: bool,
    deleted: bool,
    profile_fields: Option<BTreeMap<&'a str, &'a str>>,
    /// The server's jobs (only the typed columns), when jobs are synced; left out when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<&'a [RemoteJob]>,
}

impl<'a> UserOutput<'a> {
    fn of(user: &'a RemoteUser, with_fields: bool, with_jobs: bool) -> Self {
        let text = |column: &str| user.column(column).unwrap_or_default();
        UserOutput {
            id: user.id,
            username: &user.username,
            email: text("email"),
            firstname: text("firstname"),
            lastname: text("lastname"),
            idnumber: text("idnumber"),
            suspended: user.suspended,
            deleted: user.deleted,
            profile_fields: match (&user.profile_fields, with_fields) {
                (Some(fields), true) => Some(
                    fields
                        .iter()
                        .map(|f| (f.shortname.as_str(), f.data.as_str()))
                        .collect(),
                ),
                _ => None,
            },
            jobs: user.jobs.as_deref().filter(|_| with_jobs),
        }
    }
}

/// `cleanup` (hourly): what T13's `cleanup_task` does, purging SSO requests older than
/// 600 s. Every record this plugin keeps is written with its lifetime as its key-value
/// expiry (request tokens 600 s, the setup secret 24 h, a registration's claim 120 s), so
/// an expired one already reads as absent and the host's own `cleanup` deletes its row;
/// this task checks that the records it depends on are readable (a corrupt one fails the
/// task, naming it) and says what it keeps.
pub fn cleanup(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    let server = records::server(host)?;
    let registration = records::open_registration(host)?;
    let summary = format!(
        "{}; {}; SSO request tokens expire {} s after they are made (the host's cleanup deletes their rows)",
        match &server {
            Some(server) => format!("registered with {}", server.url),
            None => format!("`{}` is not registered with a server", config.instance_id),
        },
        match &registration {
            Some(open) => format!(
                "a registration is open until {} (Unix time)",
                open.expires_at
            ),
            None => "no registration is open".to_owned(),
        },
        REQUEST_LIFETIME.as_secs()
    );
    Ok(json!({ "summary": summary }))
}

/// `server`, run on demand by `gatehouse connect servers`: the registered server without
/// its secrets, or `"server": null`.
pub fn server_info(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    let registration = records::open_registration(host)?;
    let Some(server) = records::server(host)? else {
        return Ok(json!({
            "summary": format!("`{}` is not registered with a Connect server", config.instance_id),
            "server": null,
            "registration_open_until": registration.map(|open| open.expires_at),
        }));
    };
    Ok(json!({
        "summary": format!("registered with {} ({}) at API version {}", server.url, server.name, server.api_version),
        "server": {
            "name": server.name,
            "url": server.url,
            "server_idnumber": server.server_idnumber.as_str(),
            "api_version": server.api_version.number(),
            "registered_at": server.registered_at,
            "status": "active",
        },
        "registration_open_until": null,
    }))
}
