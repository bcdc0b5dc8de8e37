//! The SEP ("service end point") envelope: the POST fields that name the caller and the
//! service (`serveridnumber`/`serversecret`/`service`/`component` to the server,
//! `clientidnumber`/`clientsecret`/`service`/`component` to the client), read and checked in
//! the original's order with its exact error texts, and written for outgoing calls. The
//! checks that need stored state (the client or server row, whether the role is enabled)
//! take that state as arguments; looking it up is the caller's. Per-service parameters are
//! in [`crate::services`].

use std::fmt;

use thiserror::Error;

use crate::jsend::JSend;
use crate::token::{Token, clean_alphanum, clean_alphanumext, clean_component, constant_time_eq};
use crate::version::ApiVersion;

/// The server's SEP, relative to its URL.
pub const SERVER_SEP_PATH: &str = "/totara/connect/sep.php";
/// The browser's SSO entry on the server.
pub const SERVER_SSO_REQUEST_PATH: &str = "/totara/connect/sso_request.php";
/// The client's SEP.
pub const CLIENT_SEP_PATH: &str = "/auth/connect/sep.php";
/// The client's registration end point.
pub const CLIENT_SEP_SETUP_PATH: &str = "/auth/connect/sep_setup.php";
/// Where the server sends the browser back to the client.
pub const CLIENT_SSO_FINISH_PATH: &str = "/auth/connect/sso_finish.php";

/// `base` (a site's URL, with or without a trailing `/`) joined with one of the paths above,
/// as the original joins `wwwroot` (which never ends in `/`; the server `rtrim`s client URLs).
pub fn endpoint_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A refusal of a SEP call before its service runs: each is an `error` reply whose message is
/// the original's text, to the letter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SepRefusal {
    /// The secret, the idnumber or the service is empty (PHP's `empty()`, so `"0"` too).
    #[error("invalid parameters")]
    InvalidParameters,
    #[error("invalid server secret or idnumber")]
    InvalidServerSecretOrIdnumber,
    #[error("connect server not enabled")]
    ServerNotEnabled,
    #[error("connect client is not active")]
    ClientNotActive,
    #[error("unsupported api version")]
    UnsupportedApiVersion,
    /// Also the client's text for a refused plugin component (§8.6: it says "server" too).
    #[error("invalid server service component: {0}")]
    InvalidServiceComponent(String),
    #[error("invalid server service name: {0}")]
    InvalidServerServiceName(String),
    #[error("invalid client secret or idnumber")]
    InvalidClientSecretOrIdnumber,
    #[error("connect client not enabled")]
    ClientNotEnabled,
    #[error("connect server is not active")]
    ServerNotActive,
    #[error("invalid client service name: {0}")]
    InvalidClientServiceName(String),
}

impl SepRefusal {
    /// The reply: `{"status":"error","message":"<text>"}`.
    pub fn to_jsend(&self) -> JSend {
        JSend::error(self.to_string())
    }
}

/// PHP's `empty()` on a POST value: absent, `""` or `"0"`.
pub(crate) fn php_empty(value: Option<&str>) -> bool {
    matches!(value, None | Some("") | Some("0"))
}

/// The last value of `key` in a form, as PHP's `$_POST` keeps the last of repeated keys.
pub(crate) fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The services a Connect server offers (`totara_connect\sep_services`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerService {
    GetApiVersion,
    UpdateApiVersion,
    GetUsers,
    GetUser,
    GetUserCollections,
    GetPositions,
    GetOrganisations,
    GetSsoUser,
    ForceSsoLogout,
    DeleteClient,
}

impl ServerService {
    pub const ALL: [ServerService; 10] = [
        ServerService::GetApiVersion,
        ServerService::UpdateApiVersion,
        ServerService::GetUsers,
        ServerService::GetUser,
        ServerService::GetUserCollections,
        ServerService::GetPositions,
        ServerService::GetOrganisations,
        ServerService::GetSsoUser,
        ServerService::ForceSsoLogout,
        ServerService::DeleteClient,
    ];

    /// Its wire name.
    pub fn name(self) -> &'static str {
        match self {
            ServerService::GetApiVersion => "get_api_version",
            ServerService::UpdateApiVersion => "update_api_version",
            ServerService::GetUsers => "get_users",
            ServerService::GetUser => "get_user",
            ServerService::GetUserCollections => "get_user_collections",
            ServerService::GetPositions => "get_positions",
            ServerService::GetOrganisations => "get_organisations",
            ServerService::GetSsoUser => "get_sso_user",
            ServerService::ForceSsoLogout => "force_sso_logout",
            ServerService::DeleteClient => "delete_client",
        }
    }

    /// The service a (cleaned) name calls, ignoring ASCII case as PHP's `method_exists` does.
    pub fn from_name(name: &str) -> Option<ServerService> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// The services a Connect client offers (`auth_connect\sep_services`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientService {
    ValidateSsoRequestToken,
    IsSsoUserActive,
    KillSsoUser,
}

impl ClientService {
    pub const ALL: [ClientService; 3] = [
        ClientService::ValidateSsoRequestToken,
        ClientService::IsSsoUserActive,
        ClientService::KillSsoUser,
    ];

    /// Its wire name.
    pub fn name(self) -> &'static str {
        match self {
            ClientService::ValidateSsoRequestToken => "validate_sso_request_token",
            ClientService::IsSsoUserActive => "is_sso_user_active",
            ClientService::KillSsoUser => "kill_sso_user",
        }
    }

    /// The service a (cleaned) name calls, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<ClientService> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for ServerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ClientService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The envelope of a SEP call, read from its POST form: the caller's credentials (cleaned to
/// `[A-Za-z0-9]`), the service name (cleaned to `[A-Za-z0-9_-]`), the component (a valid
/// component name or empty) and the remaining fields, which are the service's parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct SepEnvelope {
    pub idnumber: String,
    pub secret: String,
    pub service: String,
    pub component: String,
    pub params: Vec<(String, String)>,
}

impl fmt::Debug for SepEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SepEnvelope")
            .field("idnumber", &self.idnumber)
            .field("service", &self.service)
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

/// The names of a side's credential fields.
#[derive(Clone, Copy)]
struct CredentialFields {
    idnumber: &'static str,
    secret: &'static str,
}

const TO_SERVER: CredentialFields = CredentialFields {
    idnumber: "serveridnumber",
    secret: "serversecret",
};
const TO_CLIENT: CredentialFields = CredentialFields {
    idnumber: "clientidnumber",
    secret: "clientsecret",
};

fn read_envelope(
    form: &[(String, String)],
    fields: CredentialFields,
) -> Result<SepEnvelope, SepRefusal> {
    let secret = form_value(form, fields.secret);
    let idnumber = form_value(form, fields.idnumber);
    let service = form_value(form, "service");
    if php_empty(secret) || php_empty(idnumber) || php_empty(service) {
        return Err(SepRefusal::InvalidParameters);
    }
    let envelope_keys = [fields.secret, fields.idnumber, "service", "component"];
    Ok(SepEnvelope {
        idnumber: clean_alphanum(idnumber.unwrap_or_default()),
        secret: clean_alphanum(secret.unwrap_or_default()),
        service: clean_alphanumext(service.unwrap_or_default()),
        component: form_value(form, "component")
            .map(clean_component)
            .unwrap_or_default(),
        params: form
            .iter()
            .filter(|(k, _)| !envelope_keys.contains(&k.as_str()))
            .cloned()
            .collect(),
    })
}

/// Step 1–2 of the server's `sep.php`: the envelope of a client's call, or "invalid
/// parameters". The caller then looks up the client row by [`SepEnvelope::secret`] and calls
/// [`SepEnvelope::authorize_at_server`].
pub fn read_server_sep_form(form: &[(String, String)]) -> Result<SepEnvelope, SepRefusal> {
    read_envelope(form, TO_SERVER)
}

/// Step 1 of the client's `sep.php` (the original checks for empty fields there too, though
/// the reference leaves it out): the envelope of a server's call. The caller then looks up
/// the server row by both values and calls [`SepEnvelope::authorize_at_client`].
pub fn read_client_sep_form(form: &[(String, String)]) -> Result<SepEnvelope, SepRefusal> {
    read_envelope(form, TO_CLIENT)
}

/// What the server knows of the calling client, for the checks (`totara_connect_clients`).
#[derive(Debug, Clone)]
pub struct ClientStanding {
    /// The secret the client must present (`serversecret`).
    pub server_secret: Token,
    /// `status = 0`.
    pub active: bool,
    /// The stored API version; any number (a corrupt row is refused, not trusted).
    pub api_version: i64,
    pub allow_plugin_services: bool,
}

/// What the client knows of the calling server, for the checks (`auth_connect_servers`).
#[derive(Debug, Clone)]
pub struct ServerStanding {
    pub client_idnumber: Token,
    pub client_secret: Token,
    pub active: bool,
    pub api_version: i64,
}

/// A call that passed the envelope's checks: the service and its client's API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized<S> {
    pub service: S,
    pub api_version: ApiVersion,
}

impl SepEnvelope {
    /// Steps 3–8 of the server's `sep.php`, in its order: credentials (the secret found and
    /// the idnumber this server's; both compared in constant time), then enabled, active,
    /// API version, component, service name. `client` is the row found by the secret, if any.
    pub fn authorize_at_server(
        &self,
        client: Option<&ClientStanding>,
        own_idnumber: &Token,
        server_enabled: bool,
    ) -> Result<Authorized<ServerService>, SepRefusal> {
        let client = client
            .filter(|c| c.server_secret.matches(&self.secret))
            .filter(|_| own_idnumber.matches(&self.idnumber))
            .ok_or(SepRefusal::InvalidServerSecretOrIdnumber)?;
        if !server_enabled {
            return Err(SepRefusal::ServerNotEnabled);
        }
        if !client.active {
            return Err(SepRefusal::ClientNotActive);
        }
        let api_version =
            ApiVersion::new(client.api_version).ok_or(SepRefusal::UnsupportedApiVersion)?;
        if !(self.component.is_empty() || self.component == "totara_connect") {
            // Gatehouse has no plugin services: a component is refused whether or not the
            // client may call them, with the original's text for either case.
            return Err(SepRefusal::InvalidServiceComponent(self.component.clone()));
        }
        let service = ServerService::from_name(&self.service)
            .ok_or_else(|| SepRefusal::InvalidServerServiceName(self.service.clone()))?;
        Ok(Authorized {
            service,
            api_version,
        })
    }

    /// Steps 1–6 of the client's `sep.php`, in its order: the server row found by both
    /// credentials (compared in constant time), enabled, active, API version, component,
    /// service name.
    pub fn authorize_at_client(
        &self,
        server: Option<&ServerStanding>,
        client_enabled: bool,
    ) -> Result<Authorized<ClientService>, SepRefusal> {
        let server = server
            .filter(|s| {
                // Both compared, always, so the time taken does not tell which differed.
                let secret = s.client_secret.matches(&self.secret);
                let idnumber = s.client_idnumber.matches(&self.idnumber);
                secret & idnumber
            })
            .ok_or(SepRefusal::InvalidClientSecretOrIdnumber)?;
        if !client_enabled {
            return Err(SepRefusal::ClientNotEnabled);
        }
        if !server.active {
            return Err(SepRefusal::ServerNotActive);
        }
        let api_version =
            ApiVersion::new(server.api_version).ok_or(SepRefusal::UnsupportedApiVersion)?;
        if !(self.component.is_empty() || self.component == "auth_connect") {
            return Err(SepRefusal::InvalidServiceComponent(self.component.clone()));
        }
        let service = ClientService::from_name(&self.service)
            .ok_or_else(|| SepRefusal::InvalidClientServiceName(self.service.clone()))?;
        Ok(Authorized {
            service,
            api_version,
        })
    }
}

/// The POST form of a call to the server's SEP, in the original's field order:
/// `serveridnumber`, `serversecret`, `service`, then the service's parameters.
pub fn server_call_form(
    server_idnumber: &Token,
    server_secret: &Token,
    service: ServerService,
    params: Vec<(&'static str, String)>,
) -> Vec<(String, String)> {
    call_form(
        TO_SERVER,
        server_idnumber,
        server_secret,
        service.name(),
        params,
    )
}

/// The POST form of a call to a client's SEP: `clientidnumber`, `clientsecret`, `service`,
/// then the service's parameters.
pub fn client_call_form(
    client_idnumber: &Token,
    client_secret: &Token,
    service: ClientService,
    params: Vec<(&'static str, String)>,
) -> Vec<(String, String)> {
    call_form(
        TO_CLIENT,
        client_idnumber,
        client_secret,
        service.name(),
        params,
    )
}

fn call_form(
    fields: CredentialFields,
    idnumber: &Token,
    secret: &Token,
    service: &str,
    params: Vec<(&'static str, String)>,
) -> Vec<(String, String)> {
    let mut form = vec![
        (fields.idnumber.to_owned(), idnumber.as_str().to_owned()),
        (fields.secret.to_owned(), secret.as_str().to_owned()),
        ("service".to_owned(), service.to_owned()),
    ];
    form.extend(params.into_iter().map(|(k, v)| (k.to_owned(), v)));
    form
}

/// Constant-time comparison of a presented setup secret with the stored one (re-exported
/// here because registration is the SEP's first call).
pub fn setup_secret_matches(stored: &Token, presented: &str) -> bool {
    constant_time_eq(stored.as_str(), presented)
}
