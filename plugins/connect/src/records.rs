//! What the client keeps in the host's key-value store (scoped to its IdP instance): the
//! open registration's setup secret, the registered server (Totara's `auth_connect_servers`
//! row) and the SSO request tokens (`auth_connect_sso_requests`). Only the layout and its
//! reading; the protocol's decisions are in `registration`, `sep` and `sso`.

use std::time::Duration;

use gatehouse_connect_wire::{ApiVersion, Token, token::TOKEN_LEN};
use gatehouse_plugin_api::{Host, PluginError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How long a setup secret is valid (issue 11: 24 h).
pub const SETUP_SECRET_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// `auth_connect\util::REQUEST_LOGIN_TIMEOUT`.
pub const REQUEST_LIFETIME: Duration = Duration::from_secs(600);
/// How long one registration may hold the setup secret while it calls the server back.
const CLAIM_LIFETIME: Duration = Duration::from_secs(120);

const SETUP_SECRET_KEY: &str = "setup_secret";
const SETUP_CLAIM_KEY: &str = "setup_claim";
const SERVER_KEY: &str = "server";
const REQUEST_PREFIX: &str = "request:";

/// Why a stored record cannot be used.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("the host's key-value store failed: {0}")]
    Store(PluginError),
    #[error("the stored {record} is unreadable ({why}); run `gatehouse connect new-server` again")]
    Corrupt { record: &'static str, why: String },
}

impl From<RecordError> for PluginError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Store(error) => error,
            corrupt @ RecordError::Corrupt { .. } => PluginError::internal(corrupt.to_string()),
        }
    }
}

fn corrupt(record: &'static str, why: impl ToString) -> RecordError {
    RecordError::Corrupt {
        record,
        why: why.to_string(),
    }
}

fn get_json<T: for<'de> Deserialize<'de>>(
    host: &Host<'_>,
    key: &str,
    record: &'static str,
) -> Result<Option<T>, RecordError> {
    match host.kv_get(key).map_err(RecordError::Store)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(record, e)),
    }
}

fn to_bytes(value: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and integers always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

fn token(text: &str, record: &'static str) -> Result<Token, RecordError> {
    Token::parse(text).map_err(|e| corrupt(record, e))
}

/// An open registration ("Connect to new server").
#[derive(Debug, Clone)]
pub struct OpenRegistration {
    pub secret: Token,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredRegistration {
    secret: String,
    expires_at: i64,
}

/// The open registration, if one is open and not yet expired on the host's clock.
pub fn open_registration(host: &Host<'_>) -> Result<Option<OpenRegistration>, RecordError> {
    let Some(stored) = get_json::<StoredRegistration>(host, SETUP_SECRET_KEY, "setup secret")?
    else {
        return Ok(None);
    };
    if stored.expires_at <= host.now_unix_seconds() {
        return Ok(None);
    }
    Ok(Some(OpenRegistration {
        secret: token(&stored.secret, "setup secret")?,
        expires_at: stored.expires_at,
    }))
}

/// Opens a registration with a new secret from the host's secure random source.
pub fn open_new_registration(host: &Host<'_>) -> Result<OpenRegistration, RecordError> {
    let secret = new_token(host);
    let expires_at = host
        .now_unix_seconds()
        .saturating_add(SETUP_SECRET_LIFETIME.as_secs().cast_signed());
    let stored = StoredRegistration {
        secret: secret.as_str().to_owned(),
        expires_at,
    };
    host.kv_put(
        SETUP_SECRET_KEY,
        &to_bytes(&stored),
        Some(SETUP_SECRET_LIFETIME),
    )
    .map_err(RecordError::Store)?;
    Ok(OpenRegistration { secret, expires_at })
}

/// Ends the open registration (its secret is single use).
pub fn close_registration(host: &Host<'_>) -> Result<(), RecordError> {
    host.kv_delete(SETUP_SECRET_KEY).map_err(RecordError::Store)
}

/// Takes the right to complete a registration, so that two servers presenting the same
/// secret at once cannot both register; `false` when another registration holds it.
pub fn claim_registration(host: &Host<'_>) -> Result<bool, RecordError> {
    host.kv_put_if_absent(SETUP_CLAIM_KEY, b"1", Some(CLAIM_LIFETIME))
        .map_err(RecordError::Store)
}

pub fn release_registration_claim(host: &Host<'_>) -> Result<(), RecordError> {
    host.kv_delete(SETUP_CLAIM_KEY).map_err(RecordError::Store)
}

/// 20 random bytes from the host as a Connect token (40 lowercase hex).
pub fn new_token(host: &Host<'_>) -> Token {
    let mut bytes = [0u8; 20];
    let random = host.random_bytes(bytes.len());
    bytes
        .iter_mut()
        .zip(random)
        .for_each(|(slot, byte)| *slot = byte);
    Token::from_random_bytes(&bytes)
}

/// The server this client is registered with.
#[derive(Clone)]
pub struct Server {
    pub url: String,
    pub name: String,
    pub server_idnumber: Token,
    pub server_secret: Token,
    pub client_idnumber: Token,
    pub client_secret: Token,
    pub api_version: ApiVersion,
    pub registered_at: i64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredServer {
    url: String,
    name: String,
    server_idnumber: String,
    server_secret: String,
    client_idnumber: String,
    client_secret: String,
    api_version: i64,
    registered_at: i64,
}

/// The registered server, if any.
pub fn server(host: &Host<'_>) -> Result<Option<Server>, RecordError> {
    let Some(stored) = get_json::<StoredServer>(host, SERVER_KEY, "server")? else {
        return Ok(None);
    };
    Ok(Some(Server {
        server_idnumber: token(&stored.server_idnumber, "server")?,
        server_secret: token(&stored.server_secret, "server")?,
        client_idnumber: token(&stored.client_idnumber, "server")?,
        client_secret: token(&stored.client_secret, "server")?,
        api_version: ApiVersion::new(stored.api_version)
            .ok_or_else(|| corrupt("server", "its API version is not 1 or 2"))?,
        url: stored.url,
        name: stored.name,
        registered_at: stored.registered_at,
    }))
}

fn stored_server(server: &Server) -> StoredServer {
    StoredServer {
        url: server.url.clone(),
        name: server.name.clone(),
        server_idnumber: server.server_idnumber.as_str().to_owned(),
        server_secret: server.server_secret.as_str().to_owned(),
        client_idnumber: server.client_idnumber.as_str().to_owned(),
        client_secret: server.client_secret.as_str().to_owned(),
        api_version: i64::from(server.api_version.number()),
        registered_at: server.registered_at,
    }
}

/// Stores the registered server unless one already is; returns whether it did.
pub fn store_server(host: &Host<'_>, server: &Server) -> Result<bool, RecordError> {
    host.kv_put_if_absent(SERVER_KEY, &to_bytes(&stored_server(server)), None)
        .map_err(RecordError::Store)
}

/// Records the API version the handshake agreed with `server` (the registered one).
pub fn set_api_version(
    host: &Host<'_>,
    server: &Server,
    api_version: ApiVersion,
) -> Result<(), RecordError> {
    let updated = Server {
        api_version,
        ..server.clone()
    };
    host.kv_put(SERVER_KEY, &to_bytes(&stored_server(&updated)), None)
        .map_err(RecordError::Store)
}

/// An SSO request (the request token is its key).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SsoRequest {
    /// Unix seconds.
    pub created_at: i64,
}

fn request_key(request_token: &Token) -> String {
    format!("{REQUEST_PREFIX}{}", request_token.as_str())
}

/// Records a request token for [`REQUEST_LIFETIME`]; `false` if it is already recorded.
pub fn put_request(
    host: &Host<'_>,
    request_token: &Token,
    request: SsoRequest,
) -> Result<bool, RecordError> {
    host.kv_put_if_absent(
        &request_key(request_token),
        &to_bytes(&request),
        Some(REQUEST_LIFETIME),
    )
    .map_err(RecordError::Store)
}

/// The live request recorded under `request_token`: present and at most
/// [`REQUEST_LIFETIME`] old on the host's clock (an older one is deleted, as the original
/// deletes an expired row).
pub fn live_request(
    host: &Host<'_>,
    request_token: &Token,
) -> Result<Option<SsoRequest>, RecordError> {
    let key = request_key(request_token);
    let Some(request) = get_json::<SsoRequest>(host, &key, "sso request")? else {
        return Ok(None);
    };
    let age = host.now_unix_seconds().saturating_sub(request.created_at);
    if age > REQUEST_LIFETIME.as_secs().cast_signed() {
        host.kv_delete(&key).map_err(RecordError::Store)?;
        return Ok(None);
    }
    Ok(Some(request))
}

/// Deletes a request token (single use).
pub fn delete_request(host: &Host<'_>, request_token: &Token) -> Result<(), RecordError> {
    host.kv_delete(&request_key(request_token))
        .map_err(RecordError::Store)
}

/// A token parameter as it came (cleaned to `[A-Za-z0-9]` as the original cleans it), if it
/// is one this client could have made or been given: 40 lowercase hex.
pub fn presented_token(raw: Option<&str>) -> Option<Token> {
    let cleaned = gatehouse_connect_wire::token::clean_alphanum(raw?);
    (cleaned.len() == TOKEN_LEN)
        .then(|| Token::parse(&cleaned).ok())
        .flatten()
}
