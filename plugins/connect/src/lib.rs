//! The Totara Connect client plugin (`connect`, protocol `connect`): this Gatehouse domain
//! as a client of a Totara Connect server, wire-compatible with real Totara (reference:
//! `../shared/reference/totara-connect-protocol.md`). It speaks to the server only through
//! the host's `Host` (HTTP under the host's egress policy, the instance's key-value store,
//! clock, randomness); every wire shape comes from `gatehouse-connect-wire`.
//!
//! Modules: `settings` (the `[idp.settings]` contract and the client URL), `records` (what
//! is kept in the key-value store), `remote` (calls to the server's SEP), `registration`
//! (`new_server`, `sep_setup.php`), `sep` (the client's SEP services at `sep.php`), `sso`
//! (sign-in through the server, the identity, logout), `sync` (the `handshake`, `users` and
//! `cleanup` tasks, and `server` for `gatehouse connect servers`), `sync_collections` (the
//! `user_collections` task), `sync_hierarchy` (the `positions` and `organisations` tasks),
//! `online` (the online check of plugin API 1.3: the server's `get_api_version`).
//! This file only wires them to the plugin API.
//!
//! Not built yet: disconnecting from a server.

mod online;
mod records;
mod registration;
mod remote;
mod sep;
mod settings;
mod sso;
mod sync;
mod sync_collections;
mod sync_hierarchy;

use gatehouse_connect_wire::sep::{CLIENT_SEP_PATH, CLIENT_SEP_SETUP_PATH, CLIENT_SSO_FINISH_PATH};
use gatehouse_plugin_api::{
    BeginRequest, Begun, CallbackRequest, Capabilities, Host, Identity, IdentityProvider,
    InboundReply, InboundRequest, InstanceConfig, LoginStep, LogoutRequest, Manifest, OnlineReport,
    Plugin, PluginError, RouteDecl,
};

pub use settings::{ClientConfig, ConnectSettings, MigrateMap, RemoveUser};
pub use sso::{IDENTITY_ATTRIBUTES, NOT_COPIED, PROFILE_FIELD_PREFIX, copied_columns};
pub use sync::CONNECT_USERS_SECTION;
pub use sync_collections::CONNECT_COLLECTIONS_SECTION;
pub use sync_hierarchy::CONNECT_HIERARCHY_SECTION;

/// The tasks: `new_server` ("Connect to new server", run by `gatehouse connect
/// new-server`) and `server` (the registration, for `gatehouse connect servers`), both run
/// on demand; and the sync tasks of reference §3.3 and §5, `handshake` (daily), `users`,
/// `user_collections`, `cleanup`, `positions` and `organisations` (hourly).
pub const TASKS: [&str; 8] = [
    "new_server",
    "server",
    "handshake",
    "users",
    "user_collections",
    "cleanup",
    "positions",
    "organisations",
];

/// The callback parameter that carries the host's state token back: the request token the
/// server echoes to `sso_finish.php`.
pub const STATE_PARAMETER: &str = "requesttoken";

/// The largest registration or SEP call: a handful of 40-character fields and a URL.
const MAX_SEP_BODY: u32 = 16 * 1024;

/// What Connect's endpoints answer, errors included (always HTTP 200, as the original).
const JSEND_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// One configured Connect server ("Totara Connect client" for one server).
pub struct ConnectClient {
    config: ClientConfig,
}

impl Plugin for ConnectClient {
    fn manifest() -> Manifest {
        let mut attributes: Vec<&str> = IDENTITY_ATTRIBUTES.to_vec();
        attributes.extend(copied_columns());
        Manifest::new(
            "connect",
            "connect",
            "Totara Connect",
            env!("CARGO_PKG_VERSION"),
        )
        .with_capabilities(Capabilities::LOGOUT | Capabilities::TASKS)
        .with_attributes(&attributes)
        .with_tasks(&TASKS)
        .with_state_parameter(STATE_PARAMETER)
    }

    fn routes() -> Vec<RouteDecl> {
        vec![
            RouteDecl::fixed(CLIENT_SEP_SETUP_PATH, &["POST"]).with_max_body_bytes(MAX_SEP_BODY),
            RouteDecl::fixed(CLIENT_SEP_PATH, &["POST"]).with_max_body_bytes(MAX_SEP_BODY),
            RouteDecl::fixed_callback(CLIENT_SSO_FINISH_PATH, &["GET"]),
        ]
    }

    fn new(config: &InstanceConfig) -> Result<Self, PluginError> {
        Ok(Self {
            config: ClientConfig::from_instance(config)?,
        })
    }
}

impl IdentityProvider for ConnectClient {
    fn begin_login(&self, host: &Host<'_>, request: &BeginRequest) -> Result<Begun, PluginError> {
        sso::begin(host, &self.config, request)
    }

    fn complete_login(
        &self,
        host: &Host<'_>,
        request: &CallbackRequest,
    ) -> Result<Identity, PluginError> {
        sso::complete(host, &self.config, request)
    }

    fn logout(
        &self,
        host: &Host<'_>,
        request: &LogoutRequest,
    ) -> Result<Option<LoginStep>, PluginError> {
        sso::logout(host, request)
    }

    fn run_task(&self, host: &Host<'_>, task: &str) -> Result<serde_json::Value, PluginError> {
        match task {
            "new_server" => registration::new_server(host, &self.config),
            "handshake" => sync::handshake(host, &self.config),
            // The same text `run_task_json` hands the host, as a tree (for tests and tools).
            "users" => serde_json::from_str(&sync::users(host, &self.config)?)
                .map_err(|error| PluginError::internal(error.to_string())),
            "user_collections" => sync_collections::user_collections(host, &self.config),
            "cleanup" => sync::cleanup(host, &self.config),
            "positions" => sync_hierarchy::positions(host, &self.config),
            "organisations" => sync_hierarchy::organisations(host, &self.config),
            "server" => sync::server_info(host, &self.config),
            other => Err(PluginError::unsupported(&format!(
                "the scheduled task `{other}`"
            ))),
        }
    }

    /// (API 1.3) The registered server's `get_api_version`, read only (`online`).
    fn check_online(&self, host: &Host<'_>) -> Result<OnlineReport, PluginError> {
        Ok(online::check(host, &self.config))
    }

    fn run_task_json(&self, host: &Host<'_>, task: &str) -> Result<String, PluginError> {
        match task {
            // A directory's worth of users: serialized typed, never built as a tree.
            "users" => sync::users(host, &self.config),
            other => self.run_task(host, other).map(|value| value.to_string()),
        }
    }

    fn handle_inbound(
        &self,
        host: &Host<'_>,
        request: &InboundRequest,
    ) -> Result<InboundReply, PluginError> {
        // Only the POST body counts, as in the original ("we do not want them in apache
        // logs"): secrets in a query string are ignored, never read.
        let form: Vec<(String, String)> = request
            .form
            .iter()
            .map(|p| (p.name.to_string(), p.value.to_string()))
            .collect();
        let (body, actions) = match request.route.as_str() {
            CLIENT_SEP_SETUP_PATH => (
                registration::sep_setup(host, &self.config, &form)?.to_json(),
                Vec::new(),
            ),
            CLIENT_SEP_PATH => {
                let answer = sep::answer(host, &form)?;
                (answer.body, answer.actions)
            }
            other => {
                return Err(PluginError::invalid_response(format!(
                    "no inbound route `{other}`"
                )));
            }
        };
        Ok(actions.into_iter().fold(
            InboundReply::new(200, JSEND_CONTENT_TYPE, body),
            InboundReply::with_action,
        ))
    }
}

gatehouse_plugin_api::export_plugin!(ConnectClient);
