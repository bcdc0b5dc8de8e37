//! [`Host`]: the safe, ergonomic face of the capabilities the host lends to each
//! plugin call. It is not an implementation of them (that lives in the host, and
//! in the test kit's fake).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi_stable::std_types::{RResult, RStr};
use base64::Engine as _;

use crate::{
    error::PluginError,
    ffi::HostRef,
    inbound::SessionSelector,
    types::{HttpRequest, HttpResponse, LogLevel},
};

/// The capabilities a plugin may use during one call: clock, secure randomness,
/// HTTP, a key-value store scoped to the IdP instance, and logging.
///
/// A `Host` borrows from the call it was passed to; it cannot be stored.
pub struct Host<'a> {
    inner: HostRef<'a>,
}

impl<'a> Host<'a> {
    /// Wraps the host's FFI capability object.
    pub fn new(inner: HostRef<'a>) -> Self {
        Self { inner }
    }

    /// The current time from the host's clock.
    pub fn now(&self) -> SystemTime {
        let millis = self.inner.now_unix_millis();
        match u64::try_from(millis) {
            Ok(millis) => UNIX_EPOCH + Duration::from_millis(millis),
            Err(_) => UNIX_EPOCH,
        }
    }

    /// Whole seconds since the Unix epoch.
    pub fn now_unix_seconds(&self) -> i64 {
        self.inner.now_unix_millis().div_euclid(1000)
    }

    /// `len` bytes from a cryptographically secure generator.
    pub fn random_bytes(&self, len: usize) -> Vec<u8> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.inner.random_bytes(len).into_vec()
    }

    /// A URL-safe token carrying 256 random bits.
    pub fn random_token(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.random_bytes(32))
    }

    /// Makes an HTTP request through the host. Redirects come back as responses.
    pub fn http(&self, request: HttpRequest) -> Result<HttpResponse, PluginError> {
        self.inner.http(request).into_result()
    }

    /// A GET that must answer 2xx, returning the body.
    pub fn http_get(&self, url: &str) -> Result<Vec<u8>, PluginError> {
        let response = self.http(HttpRequest::get(url))?;
        if !response.is_success() {
            return Err(PluginError::idp_unavailable(format!(
                "GET {url} answered HTTP {}",
                response.status
            )));
        }
        Ok(response.body.into_vec())
    }

    pub fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, PluginError> {
        self.inner
            .kv_get(RStr::from(key))
            .into_result()
            .map(|v| v.into_option().map(|v| v.into_vec()))
    }

    /// Stores `value` under `key` for `ttl` (`None`: no expiry).
    pub fn kv_put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), PluginError> {
        self.put(key, value, ttl, false).map(|_| ())
    }

    /// Stores `value` only if `key` holds no live value; returns whether it did.
    /// Atomic across hosts: use it to refuse replays.
    pub fn kv_put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, PluginError> {
        self.put(key, value, ttl, true)
    }

    pub fn kv_delete(&self, key: &str) -> Result<(), PluginError> {
        self.inner.kv_delete(RStr::from(key)).into_result()
    }

    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool, PluginError> {
        // A TTL under a second would round to "no expiry"; round it up instead.
        let ttl_seconds = ttl.map_or(0, |ttl| ttl.as_secs().max(1));
        match self
            .inner
            .kv_put(RStr::from(key), value.into(), ttl_seconds, only_if_absent)
        {
            RResult::ROk(written) => Ok(written),
            RResult::RErr(error) => Err(error),
        }
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, RStr::from(message));
    }
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// (1.1) How many live sessions of this IdP instance `sessions` selects.
    pub fn sessions_alive(&self, sessions: SessionSelector) -> Result<u32, PluginError> {
        if sessions.is_empty() {
            return Err(PluginError::internal(
                "a session selector needs a subject or a logout state",
            ));
        }
        self.inner.sessions_alive(sessions).into_result()
    }
}
