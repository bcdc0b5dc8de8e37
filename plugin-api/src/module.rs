//! The root module every plugin library exports, and the generic, panic-catching
//! entry points that [`export_plugin!`](crate::export_plugin) fills it with.
//!
//! The root module is a prefix type: fields may be appended in later minor
//! versions of the API, never removed or reordered.
#![allow(non_local_definitions, non_camel_case_types)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RStr, RString},
    type_level::downcasting::TD_Opaque,
};

use crate::{
    error::PluginError,
    ffi::{HostRef, IdpBox, IdpFfi, IdpFfi_TO},
    host::Host,
    provider::{IdentityProvider, InstanceConfig, Plugin},
    types::{
        ApiVersion, BeginRequest, Begun, CallbackRequest, Document, Identity, LoginStep,
        LogoutRequest, Manifest,
    },
};

/// The plugin API version this crate defines. It follows the crate's own major and
/// minor version: a host accepts plugins of its major version and any minor version
/// up to its own.
pub const API_VERSION: ApiVersion = ApiVersion { major: 1, minor: 0 };

/// The name abi_stable records for the root module; test fixtures that imitate a
/// plugin must use it too.
pub const ROOT_MODULE_NAME: &str = "gatehouse_plugin";

/// What a plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The plugin API version the library was built against.
    pub api_version: ApiVersion,
    /// The plugin's manifest.
    pub manifest: extern "C" fn() -> RResult<Manifest, PluginError>,
    /// Builds an IdP instance from its id and its settings as JSON.
    #[sabi(last_prefix_field)]
    pub new_idp: extern "C" fn(
        instance_id: RStr<'_>,
        settings_json: RStr<'_>,
    ) -> RResult<IdpBox, PluginError>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Builds the root module for plugin type `P`. Called by [`export_plugin!`](crate::export_plugin)
/// (and by the test kit, which drives the same entry points without a library).
pub fn root_module<P: Plugin>() -> PluginModule_Ref {
    let module = PluginModule {
        api_version: API_VERSION,
        manifest: manifest::<P>,
        new_idp: new_idp::<P>,
    };
    module.leak_into_prefix()
}

/// Runs `body`, turning a panic into an internal error so it never unwinds into
/// (or aborts) the host.
fn guard<T>(body: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result.into(),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            RResult::RErr(PluginError::internal(format!(
                "the plugin panicked: {detail}"
            )))
        }
    }
}

extern "C" fn manifest<P: Plugin>() -> RResult<Manifest, PluginError> {
    guard(|| {
        let mut manifest = P::manifest();
        manifest.api_version = API_VERSION;
        Ok(manifest)
    })
}

extern "C" fn new_idp<P: Plugin>(
    instance_id: RStr<'_>,
    settings_json: RStr<'_>,
) -> RResult<IdpBox, PluginError> {
    guard(|| {
        let settings = serde_json::from_str(settings_json.as_str()).map_err(|error| {
            PluginError::invalid_settings(format!("settings are not valid JSON: {error}"))
        })?;
        let config = InstanceConfig {
            instance_id: instance_id.as_str().to_owned(),
            settings,
        };
        let provider = P::new(&config)?;
        Ok(IdpFfi_TO::from_value(Adapter(provider), TD_Opaque))
    })
}

/// Adapts a plain-Rust [`IdentityProvider`] to the FFI trait, catching panics.
struct Adapter<P>(P);

impl<P: IdentityProvider> IdpFfi for Adapter<P> {
    fn begin_login(&self, host: HostRef<'_>, request: BeginRequest) -> RResult<Begun, PluginError> {
        guard(|| self.0.begin_login(&Host::new(host), &request))
    }

    fn complete_login(
        &self,
        host: HostRef<'_>,
        request: CallbackRequest,
    ) -> RResult<Identity, PluginError> {
        guard(|| self.0.complete_login(&Host::new(host), &request))
    }

    fn logout(
        &self,
        host: HostRef<'_>,
        request: LogoutRequest,
    ) -> RResult<ROption<LoginStep>, PluginError> {
        guard(|| self.0.logout(&Host::new(host), &request).map(ROption::from))
    }

    fn metadata(&self, host: HostRef<'_>) -> RResult<Document, PluginError> {
        guard(|| self.0.metadata(&Host::new(host)))
    }

    fn run_task(&self, host: HostRef<'_>, task: RStr<'_>) -> RResult<RString, PluginError> {
        guard(|| {
            let value = self.0.run_task(&Host::new(host), task.as_str())?;
            Ok(RString::from(value.to_string()))
        })
    }
}
