//! `gatehouse connect …`, the Totara Connect client side of the command line:
//! `new-server` ("Connect to new server") asks a Connect IdP's plugin for a setup secret
//! through its `new_server` task and hands back what the server's admin needs; `servers`
//! asks each Connect IdP's plugin for its registration (its `server` task) and the store
//! for the last run of each sync task. Also the default schedules of Connect's tasks. Not
//! the protocol (that is `plugins/connect`) and not the server role (`connect_server`).

use std::sync::Arc;

use abi_stable::std_types::RStr;

use gatehouse_store::{StoreError, TaskRun};

use crate::{plugins::CallError, site::SiteIdp, state::AppState};

/// The plugin protocol of Totara Connect client IdPs.
pub const CONNECT_PROTOCOL: &str = "connect";
/// The plugin task that opens a registration.
pub const NEW_SERVER_TASK: &str = "new_server";
/// The plugin task that tells the registered server (without its secrets).
pub const SERVER_TASK: &str = "server";
/// The daily task (Totara's `handshake_task` runs at 00:00).
pub const HANDSHAKE_TASK: &str = "handshake";
/// The manual full sync ("Synchronise", `server_sync.php`), run on demand by the host as a
/// chain of the plugin's tasks.
pub const FULL_SYNC_TASK: &str = "sync";
/// Its steps, in the original's order: the API version first, positions and organisations
/// before users so that job assignments can map their ids, collections last.
pub const FULL_SYNC_STEPS: [&str; 5] = [
    HANDSHAKE_TASK,
    "positions",
    "organisations",
    "users",
    "user_collections",
];

/// The task the host runs as a chain of a plugin's own tasks for IdPs of `protocol`
/// (Connect's full `sync`), with its steps.
pub fn chained_task(protocol: &str) -> Option<(&'static str, &'static [&'static str])> {
    (protocol == CONNECT_PROTOCOL).then_some((FULL_SYNC_TASK, &FULL_SYNC_STEPS[..]))
}

/// The largest response a Connect IdP's requests read unless its `[[idp]]
/// http_max_response_bytes` says otherwise: `get_users` answers with every user the server
/// shares in one reply (the protocol has no paging), about 1.1 KB each, so the host's 1 MiB
/// would stop a sync at some 900 users; 64 MiB holds some 55,000, and a larger server needs
/// the key.
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;

/// The response size cap of an IdP of `protocol` that sets none, where it is not the
/// host's `[host] http_max_response_bytes`.
pub fn default_max_response_bytes(protocol: &str) -> Option<u32> {
    (protocol == CONNECT_PROTOCOL).then_some(DEFAULT_MAX_RESPONSE_BYTES)
}

/// How often a Connect client task runs unless `plugins.toml` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSchedule {
    Every(u32),
    /// Only when a command runs it (`connect new-server`, `connect servers`): `new_server`
    /// scheduled would keep a registration open that nobody asked for.
    OnDemand,
}

/// The default schedule of task `name` of a plugin of `protocol`, where it is not the
/// host's hourly one: Connect's `handshake` daily, `new_server` and `server` on demand.
pub fn default_schedule(protocol: &str, name: &str) -> Option<DefaultSchedule> {
    if protocol != CONNECT_PROTOCOL {
        return None;
    }
    match name {
        HANDSHAKE_TASK => Some(DefaultSchedule::Every(24 * 60)),
        NEW_SERVER_TASK | SERVER_TASK => Some(DefaultSchedule::OnDemand),
        _ => None,
    }
}

/// What a server's admin needs to add this client ("Add client").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServer {
    pub idp: String,
    /// The domain's primary origin ("Client URL").
    pub client_url: String,
    /// "Client setup secret": 40 hex, single use.
    pub setup_secret: String,
    /// When the secret stops being accepted (Unix seconds).
    pub expires_at: Option<i64>,
}

/// Why no setup secret came back.
#[derive(Debug, thiserror::Error)]
pub enum ConnectCliError {
    #[error("there is no IdP `{idp}`; the Totara Connect IdPs are: {}", list(.known))]
    UnknownIdp { idp: String, known: Vec<String> },
    #[error(
        "IdP `{idp}` uses plugin `{plugin}` (protocol `{protocol}`), not Totara Connect; the Totara Connect IdPs are: {}",
        list(.known)
    )]
    NotConnect {
        idp: String,
        plugin: String,
        protocol: String,
        known: Vec<String>,
    },
    #[error("the Connect plugin of IdP `{idp}` failed: {error}")]
    Call { idp: String, error: CallError },
    /// The plugin opened no registration and says why (already connected).
    #[error("IdP `{idp}`: {summary}")]
    NoRegistration { idp: String, summary: String },
    #[error("the Connect plugin of IdP `{idp}` answered what `new_server` never answers: {why}")]
    BadOutput { idp: String, why: String },
}

fn list(known: &[String]) -> String {
    if known.is_empty() {
        "none (add an [[idp]] with plugin = \"connect\")".to_owned()
    } else {
        known.join(", ")
    }
}

/// The Connect IdP `idp_id` of the current site, or why it is not one.
pub(crate) fn connect_idp(state: &AppState, idp_id: &str) -> Result<Arc<SiteIdp>, ConnectCliError> {
    let site = state.site();
    let known: Vec<String> = site
        .all_idps()
        .filter(|idp| idp.instance.plugin.protocol == CONNECT_PROTOCOL)
        .map(|idp| idp.id().to_owned())
        .collect();
    let Some(idp) = site.all_idps().find(|idp| idp.id() == idp_id) else {
        return Err(ConnectCliError::UnknownIdp {
            idp: idp_id.to_owned(),
            known,
        });
    };
    let plugin = &idp.instance.plugin;
    if plugin.protocol != CONNECT_PROTOCOL {
        return Err(ConnectCliError::NotConnect {
            idp: idp_id.to_owned(),
            plugin: plugin.id.clone(),
            protocol: plugin.protocol.clone(),
            known,
        });
    }
    Ok(Arc::clone(idp))
}

/// `gatehouse connect new-server --idp ID`: runs the IdP's `new_server` task now, through
/// the same call limits as any plugin call, and reads the client URL and setup secret.
pub async fn new_server(state: &AppState, idp_id: &str) -> Result<NewServer, ConnectCliError> {
    let idp = connect_idp(state, idp_id)?;
    let text = call_task(state, &idp, NEW_SERVER_TASK)
        .await
        .map_err(|error| ConnectCliError::Call {
            idp: idp_id.to_owned(),
            error,
        })?;
    read_output(idp_id, &text)
}

/// Runs the Connect plugin task `task` of `idp` now, through the same call limits as any
/// plugin call but outside the scheduler: its output is read by the command, never recorded.
pub(crate) async fn call_task(
    state: &AppState,
    idp: &SiteIdp,
    task: &'static str,
) -> Result<String, CallError> {
    state
        .caller()
        .call_task(Arc::clone(&idp.instance), move |host, idp| {
            idp.run_task(host, RStr::from(task)).into_result()
        })
        .await
        .map(|text| text.to_string())
}

/// The tasks whose last run `gatehouse connect servers` shows.
pub const SYNC_TASKS: [&str; 6] = [
    HANDSHAKE_TASK,
    "positions",
    "organisations",
    "users",
    "user_collections",
    "cleanup",
];

/// A Connect server this host is registered with (as its plugin keeps it, without secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredServer {
    pub name: String,
    pub url: String,
    pub server_idnumber: String,
    pub api_version: i64,
    /// Unix seconds.
    pub registered_at: i64,
}

/// One Connect IdP, for `gatehouse connect servers`.
#[derive(Debug, Clone)]
pub struct ServerStatus {
    pub idp: String,
    pub domain: String,
    /// `None`: not registered yet (or the plugin could not be asked: `error`).
    pub server: Option<RegisteredServer>,
    /// `active`, `not registered`, or `unknown` when the plugin could not be asked.
    pub status: &'static str,
    /// Why the plugin could not be asked.
    pub error: Option<String>,
    /// The last run of each of [`SYNC_TASKS`], in that order.
    pub last_runs: Vec<(&'static str, Option<TaskRun>)>,
}

/// `gatehouse connect servers`: every Connect IdP with the server it is registered with
/// (asked of its plugin, through its `server` task: the registration lives in the plugin's
/// own records, whose layout is the plugin's business) and the last run of each sync task
/// (from the store).
pub async fn servers(state: &AppState) -> Result<Vec<ServerStatus>, StoreError> {
    let site = state.site();
    let mut out = Vec::new();
    for idp in site
        .all_idps()
        .filter(|idp| idp.instance.plugin.protocol == CONNECT_PROTOCOL)
    {
        let (server, status, error) = match call_task(state, idp, SERVER_TASK).await {
            Ok(text) => match read_server(&text) {
                Ok(Some(server)) => (Some(server), "active", None),
                Ok(None) => (None, "not registered", None),
                Err(why) => (None, "unknown", Some(why)),
            },
            Err(error) => (None, "unknown", Some(error.to_string())),
        };
        let mut last_runs = Vec::new();
        for task in SYNC_TASKS {
            last_runs.push((
                task,
                state.store().last_task_run(task, Some(idp.id())).await?,
            ));
        }
        out.push(ServerStatus {
            idp: idp.id().to_owned(),
            domain: idp.config.domain.clone(),
            server,
            status,
            error,
            last_runs,
        });
    }
    Ok(out)
}

/// The `server` task's output: `{"server": {name, url, server_idnumber, api_version,
/// registered_at, status} | null}`.
fn read_server(text: &str) -> Result<Option<RegisteredServer>, String> {
    let output: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| "the plugin's `server` output is not JSON".to_owned())?;
    let server = match output.get("server") {
        None => return Err("the plugin's `server` output has no `server`".to_owned()),
        Some(serde_json::Value::Null) => return Ok(None),
        Some(server) => server,
    };
    let text = |name: &str| {
        server
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the plugin's `server` output has no {name}"))
    };
    let number = |name: &str| {
        server
            .get(name)
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| format!("the plugin's `server` output has no {name}"))
    };
    Ok(Some(RegisteredServer {
        name: text("name")?,
        url: text("url")?,
        server_idnumber: text("server_idnumber")?,
        api_version: number("api_version")?,
        registered_at: number("registered_at")?,
    }))
}

/// The task's JSON: `{"summary", "client_url", "setup_secret", "expires_at"}`, or without
/// `setup_secret` when the plugin opened no registration.
fn read_output(idp: &str, text: &str) -> Result<NewServer, ConnectCliError> {
    let bad = |why: &str| ConnectCliError::BadOutput {
        idp: idp.to_owned(),
        why: why.to_owned(),
    };
    let output: serde_json::Value =
        serde_json::from_str(text).map_err(|_| bad("its output is not JSON"))?;
    let field = |name: &str| output.get(name).and_then(serde_json::Value::as_str);
    let Some(setup_secret) = field("setup_secret") else {
        return Err(ConnectCliError::NoRegistration {
            idp: idp.to_owned(),
            summary: field("summary")
                .unwrap_or("the plugin opened no registration")
                .to_owned(),
        });
    };
    let client_url = field("client_url").ok_or_else(|| bad("it has no client_url"))?;
    Ok(NewServer {
        idp: idp.to_owned(),
        client_url: client_url.to_owned(),
        setup_secret: setup_secret.to_owned(),
        expires_at: output.get("expires_at").and_then(serde_json::Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tasks_output_is_read_or_its_summary_reported() {
        let out = read_output(
            "hq",
            r#"{"summary":"registration opened","client_url":"https://learn.example.test","setup_secret":"0123456789abcdef0123456789abcdef01234567","expires_at":1767312000}"#,
        )
        .expect("a registration");
        assert_eq!(out.client_url, "https://learn.example.test");
        assert_eq!(out.setup_secret, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(out.expires_at, Some(1_767_312_000));

        let error = read_output(
            "hq",
            r#"{"summary":"already connected to https://hq.example.test (HQ)","client_url":"https://learn.example.test"}"#,
        )
        .expect_err("no registration");
        assert_eq!(
            error.to_string(),
            "IdP `hq`: already connected to https://hq.example.test (HQ)"
        );
        assert!(matches!(
            read_output("hq", "not json"),
            Err(ConnectCliError::BadOutput { .. })
        ));
        assert!(matches!(
            read_output("hq", r#"{"setup_secret":"x"}"#),
            Err(ConnectCliError::BadOutput { .. })
        ));
    }

    #[test]
    fn connect_idps_have_their_own_defaults() {
        assert_eq!(
            default_schedule(CONNECT_PROTOCOL, HANDSHAKE_TASK),
            Some(DefaultSchedule::Every(1440))
        );
        for task in [NEW_SERVER_TASK, SERVER_TASK] {
            assert_eq!(
                default_schedule(CONNECT_PROTOCOL, task),
                Some(DefaultSchedule::OnDemand)
            );
        }
        assert_eq!(default_schedule(CONNECT_PROTOCOL, "users"), None);
        assert_eq!(default_schedule("saml", HANDSHAKE_TASK), None);
        assert_eq!(
            default_max_response_bytes(CONNECT_PROTOCOL),
            Some(64 * 1024 * 1024)
        );
        assert_eq!(default_max_response_bytes("oidc"), None);
    }

    #[test]
    fn the_server_tasks_output_is_read_strictly() {
        let registered = read_server(
            r#"{"summary":"x","server":{"name":"HQ","url":"https://hq.example.test","server_idnumber":"5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90","api_version":2,"registered_at":1767225600,"status":"active"}}"#,
        )
        .expect("reads")
        .expect("registered");
        assert_eq!(
            (registered.name.as_str(), registered.api_version),
            ("HQ", 2)
        );
        assert_eq!(read_server(r#"{"server":null}"#), Ok(None));
        for bad in ["not json", "{}", r#"{"server":{"name":"HQ"}}"#] {
            assert!(read_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unknown_idp_names_the_connect_idps() {
        let error = ConnectCliError::UnknownIdp {
            idp: "okta".into(),
            known: vec![],
        };
        assert_eq!(
            error.to_string(),
            "there is no IdP `okta`; the Totara Connect IdPs are: none (add an [[idp]] with plugin = \"connect\")"
        );
    }
}
