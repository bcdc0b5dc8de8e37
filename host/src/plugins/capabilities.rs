//! The host's implementation of the capabilities lent to each plugin call: the real
//! clock, the OS's secure randomness, egress HTTP with enforced limits, the
//! database-backed key-value store scoped to one IdP instance, and `tracing`.
//!
//! These methods run on a blocking-pool thread, so they may block on the runtime;
//! they must never panic, because a panic here would cross an FFI shim.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RVec};
use gatehouse_plugin_api::{HostFfi, HttpRequest, HttpResponse, LogLevel, Pair, PluginError};
use gatehouse_store::Store;
use tokio::runtime::Handle;

/// Outgoing HTTP for plugins: no redirects followed, a timeout, a response size
/// cap, and http(s) URLs only.
pub struct HttpEgress {
    client: reqwest::Client,
    max_response_bytes: usize,
}

impl HttpEgress {
    pub fn new(timeout: Duration, max_response_bytes: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            max_response_bytes,
        })
    }

    /// Sends `request`, refusing anything the egress rules do not allow.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, PluginError> {
        let url = url::Url::parse(&request.url).map_err(|error| {
            PluginError::invalid_settings(format!("cannot request `{}`: {error}", request.url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PluginError::invalid_settings(format!(
                "cannot request `{}`: only http and https URLs are allowed",
                request.url
            )));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            PluginError::internal(format!("`{}` is not an HTTP method", request.method))
        })?;
        let mut builder = self.client.request(method, url.clone());
        for header in request.headers.iter() {
            builder = builder.header(header.name.as_str(), header.value.as_str());
        }
        let described = format!("{} {}", request.method, redact_query(&url));
        let mut response = builder
            .body(request.body.into_vec())
            .send()
            .await
            .map_err(|error| {
                PluginError::idp_unavailable(format!("{described}: {}", describe_reqwest(&error)))
            })?;
        let status = response.status().as_u16();
        let headers: Vec<Pair> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some(Pair::new(name.as_str(), value.to_str().ok()?)))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            PluginError::idp_unavailable(format!("{described}: {}", describe_reqwest(&error)))
        })? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(PluginError::idp_unavailable(format!(
                    "{described}: the response is larger than the {} bytes allowed",
                    self.max_response_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers: headers.into(),
            body: body.into(),
        })
    }
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        error.to_string()
    }
}

/// Query strings can carry codes and secrets; logs get the path only.
fn redact_query(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn now_unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch from the system clock.
pub fn now_unix_seconds() -> i64 {
    now_unix_millis() / 1000
}

/// `len` bytes from the operating system's secure generator.
///
/// A host that cannot get secure randomness must not issue sessions or tokens, so
/// this aborts rather than return weak bytes.
pub fn secure_random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    if let Err(error) = getrandom::fill(&mut bytes) {
        tracing::error!(%error, "the operating system's random generator failed; stopping");
        std::process::abort();
    }
    bytes
}

/// The capabilities lent to one plugin call for one IdP instance.
pub struct CallCapabilities<'a> {
    pub runtime: &'a Handle,
    pub store: &'a Store,
    pub egress: &'a HttpEgress,
    /// The IdP instance id; the key-value store is scoped to it.
    pub scope: &'a str,
    pub plugin_id: &'a str,
}

fn store_error(error: impl std::fmt::Display) -> PluginError {
    tracing::error!(%error, "plugin key-value store failed");
    PluginError::internal("the host's key-value store is unavailable")
}

impl HostFfi for CallCapabilities<'_> {
    fn now_unix_millis(&self) -> i64 {
        now_unix_millis()
    }

    fn random_bytes(&self, len: u32) -> RVec<u8> {
        secure_random(len as usize).into()
    }

    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, PluginError> {
        let response = self.runtime.block_on(self.egress.send(request));
        if let Err(error) = &response {
            tracing::warn!(plugin = self.plugin_id, idp = self.scope, %error, "plugin HTTP request failed");
        }
        response.into()
    }

    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        self.runtime
            .block_on(
                self.store
                    .kv_get(self.scope, key.as_str(), now_unix_seconds()),
            )
            .map(|value| ROption::from(value.map(RVec::from)))
            .map_err(store_error)
            .into()
    }

    fn kv_put(
        &self,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
        ttl_seconds: u64,
        only_if_absent: bool,
    ) -> RResult<bool, PluginError> {
        let now = now_unix_seconds();
        let expires_at = (ttl_seconds > 0)
            .then(|| now.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX)));
        self.runtime
            .block_on(self.store.kv_put(
                self.scope,
                key.as_str(),
                value.as_slice(),
                expires_at,
                only_if_absent,
                now,
            ))
            .map_err(store_error)
            .into()
    }

    fn kv_delete(&self, key: RStr<'_>) -> RResult<(), PluginError> {
        self.runtime
            .block_on(self.store.kv_delete(self.scope, key.as_str()))
            .map_err(store_error)
            .into()
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let (plugin, idp, message) = (self.plugin_id, self.scope, message.as_str());
        match level {
            LogLevel::Debug => tracing::debug!(plugin, idp, "{message}"),
            LogLevel::Info => tracing::info!(plugin, idp, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, idp, "{message}"),
            LogLevel::Error => tracing::error!(plugin, idp, "{message}"),
        }
    }
}
