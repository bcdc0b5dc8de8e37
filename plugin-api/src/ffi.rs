//! The two FFI-safe trait objects that cross the library boundary: the host's
//! capabilities lent to a plugin call, and an IdP instance created by a plugin.
//!
//! Plugin authors do not implement these directly: they implement
//! [`IdentityProvider`](crate::IdentityProvider) and the export macro adapts it.
//! Methods may only ever be appended, each with `#[sabi(last_prefix_field)]` moved
//! to the newest one, so older plugins keep loading.
#![allow(non_local_definitions, non_camel_case_types)]

use abi_stable::{
    sabi_trait,
    sabi_types::RRef,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
};

use crate::{
    error::PluginError,
    types::{
        BeginRequest, Begun, CallbackRequest, Document, HttpRequest, HttpResponse, Identity,
        LogLevel, LoginStep, LogoutRequest,
    },
};

/// What the host lends to every plugin call. Implemented by the host (and by the
/// test kit's fake); a plugin sees it through [`Host`](crate::Host).
#[sabi_trait]
pub trait HostFfi {
    /// Milliseconds since the Unix epoch, from the host's clock.
    fn now_unix_millis(&self) -> i64;

    /// `len` bytes from a cryptographically secure generator.
    fn random_bytes(&self, len: u32) -> RVec<u8>;

    /// Makes an HTTP request with host-enforced timeouts, no redirects followed, a
    /// response size cap, and http(s) URLs only.
    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, PluginError>;

    /// Reads a key from this IdP instance's key-value store.
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError>;

    /// Writes a key with a time to live (0 = no expiry). With `only_if_absent`, it
    /// writes only when no live value exists and returns whether it wrote, atomically
    /// across every host sharing the database: the building block of replay caches.
    fn kv_put(
        &self,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
        ttl_seconds: u64,
        only_if_absent: bool,
    ) -> RResult<bool, PluginError>;

    /// Removes a key.
    fn kv_delete(&self, key: RStr<'_>) -> RResult<(), PluginError>;

    /// Writes a line to the host's log, tagged with the plugin and IdP instance.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// A borrowed host capability. Its lifetime ends with the call it was lent to,
/// so a plugin cannot keep it.
pub type HostRef<'a> = HostFfi_TO<'a, RRef<'a, ()>>;

/// One configured IdP instance, as created by a plugin's constructor.
#[sabi_trait]
pub trait IdpFfi: Send + Sync {
    fn begin_login(&self, host: HostRef<'_>, request: BeginRequest) -> RResult<Begun, PluginError>;

    fn complete_login(
        &self,
        host: HostRef<'_>,
        request: CallbackRequest,
    ) -> RResult<Identity, PluginError>;

    /// `RNone` when the IdP needs no browser visit to sign out.
    fn logout(
        &self,
        host: HostRef<'_>,
        request: LogoutRequest,
    ) -> RResult<ROption<LoginStep>, PluginError>;

    fn metadata(&self, host: HostRef<'_>) -> RResult<Document, PluginError>;

    /// Runs a named scheduled task; the JSON it returns is for the host to apply.
    #[sabi(last_prefix_field)]
    fn run_task(&self, host: HostRef<'_>, task: RStr<'_>) -> RResult<RString, PluginError>;
}

/// An owned IdP instance that crossed the ABI.
pub type IdpBox = IdpFfi_TO<'static, RBox<()>>;
