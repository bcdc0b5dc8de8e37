//! The two FFI-safe trait objects that cross the library boundary: the host's
//! capabilities lent to a plugin call, and an IdP instance created by a plugin.
//!
//! Plugin authors do not implement these directly: they implement
//! [`IdentityProvider`](crate::IdentityProvider) and the export macro adapts it.
//!
//! # Growing them (read before you add a method)
//! Both vtables are abi_stable prefix types, and the rule is abi_stable's:
//! - `#[sabi(last_prefix_field)]` marks the last method of **1.0** and never moves
//!   within major version 1. Moving it to a newer method would make that method part
//!   of the required prefix, and every library built before it would fail the layout
//!   check at load.
//! - A new method is appended after every existing one, **with a default body**. In a
//!   library built before the method existed the vtable has no slot for it, and calling
//!   it runs the default body on the caller's side instead (so an old plugin answers
//!   "unsupported"). A method without a default body would panic there.
//! - Methods are never removed, reordered or changed; their argument types are frozen
//!   with them. New data goes into new types (see `inbound`), never into a 1.0 type.
//! - Each addition bumps the minor version of this crate and
//!   [`API_VERSION`](crate::API_VERSION) together (a test keeps them in step), and says
//!   in its doc comment which version added it.
#![allow(non_local_definitions, non_camel_case_types)]

use abi_stable::{
    sabi_trait,
    sabi_types::RRef,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
};

use crate::{
    error::PluginError,
    inbound::{InboundReply, InboundRequest, SessionSelector},
    online::OnlineReport,
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
    ///
    /// The last method of 1.0: `last_prefix_field` stays here for all of 1.x.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// (1.1) How many live sessions of the calling IdP instance `sessions` selects,
    /// e.g. to answer a peer's "is this user still signed in". Ending sessions is not
    /// lent: it is a [`HostAction`](crate::HostAction) the plugin returns, so the host alone changes state.
    fn sessions_alive(&self, sessions: SessionSelector) -> RResult<u32, PluginError> {
        let _ = sessions;
        RResult::RErr(PluginError::unsupported("asking the host about sessions"))
    }
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
    ///
    /// The last method of 1.0: `last_prefix_field` stays here for all of 1.x.
    #[sabi(last_prefix_field)]
    fn run_task(&self, host: HostRef<'_>, task: RStr<'_>) -> RResult<RString, PluginError>;

    /// (1.1) Answers a request a remote party sent to one of the plugin's declared
    /// routes. A 1.0 library has no slot for it, so this default answers for it.
    fn handle_inbound(
        &self,
        host: HostRef<'_>,
        request: InboundRequest,
    ) -> RResult<InboundReply, PluginError> {
        let _ = (host, request);
        RResult::RErr(PluginError::unsupported("inbound requests"))
    }

    /// (1.3) Reaches the provider the way a sign-in would (discovery, keys, metadata, an
    /// API version) and reports what is unreachable or misconfigured, for
    /// `gatehouse check --online`. A library older than 1.3 has no slot for it, so this
    /// default answers for it: "unsupported", which the host reports as "no online check".
    fn check_online(&self, host: HostRef<'_>) -> RResult<OnlineReport, PluginError> {
        let _ = host;
        RResult::RErr(PluginError::unsupported("online checks"))
    }
}

/// An owned IdP instance that crossed the ABI.
pub type IdpBox = IdpFfi_TO<'static, RBox<()>>;
