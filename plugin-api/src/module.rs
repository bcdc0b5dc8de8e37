//! The root module every plugin library exports, and the generic, panic-catching
//! entry points that [`export_plugin!`](crate::export_plugin) fills it with.
//!
//! The root module is a prefix type, grown by abi_stable's rule (the same as the
//! vtables' in `ffi`):
//! - `#[sabi(last_prefix_field)]` stays on `new_idp`, the last field of 1.0, for all
//!   of major version 1;
//! - a new field is appended after the others with `#[sabi(missing_field(option))]`,
//!   so its accessor returns `None` for a library built before it, and the host reads
//!   it that way (never with `missing_field(panic)`, which would end the host on
//!   loading an older plugin);
//! - fields are never removed, reordered or retyped; new data goes into new prefix
//!   types such as [`ManifestExtension`](crate::ManifestExtension).
//!
//! [`API_VERSION`] follows this crate's major and minor version (a test checks it).
#![allow(non_local_definitions, non_camel_case_types)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    prefix_type::PrefixTypeTrait,
    sabi_types::{RRef, VersionStrings},
    std_types::{ROption, RResult, RStr, RString},
    type_level::downcasting::TD_Opaque,
};

use crate::{
    context::{InstanceContext, Placement},
    error::PluginError,
    ffi::{HostRef, IdpBox, IdpFfi, IdpFfi_TO},
    host::Host,
    inbound::{InboundReply, InboundRequest, ManifestExtension, ManifestExtension_Ref, RouteDecl},
    online::OnlineReport,
    provider::{IdentityProvider, InstanceConfig, Plugin},
    types::{
        ApiVersion, BeginRequest, Begun, CallbackRequest, Document, Identity, LoginStep,
        LogoutRequest, Manifest,
    },
};

/// The plugin API version this crate defines. It follows the crate's own major and
/// minor version: a host accepts plugins of its major version and any minor version
/// up to its own.
pub const API_VERSION: ApiVersion = ApiVersion { major: 1, minor: 3 };

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
    ///
    /// The last field of 1.0: `last_prefix_field` stays here for all of 1.x.
    #[sabi(last_prefix_field)]
    pub new_idp: extern "C" fn(
        instance_id: RStr<'_>,
        settings_json: RStr<'_>,
    ) -> RResult<IdpBox, PluginError>,
    /// (1.1) What the plugin declares beyond the 1.0 manifest: its routes. `None` from
    /// the accessor for a 1.0 library, which declares none.
    #[sabi(missing_field(option))]
    pub manifest_extension: extern "C" fn() -> RResult<ManifestExtension_Ref, PluginError>,
    /// (1.2) Builds an IdP instance like `new_idp`, also telling it where it is served
    /// (its domain and origins). `None` from the accessor for a library older than 1.2,
    /// which the host builds with `new_idp`.
    #[sabi(missing_field(option))]
    pub new_idp_in_context: extern "C" fn(
        instance_id: RStr<'_>,
        settings_json: RStr<'_>,
        context: RRef<'_, InstanceContext>,
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
        manifest_extension: manifest_extension::<P>,
        new_idp_in_context: new_idp_in_context::<P>,
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

extern "C" fn manifest_extension<P: Plugin>() -> RResult<ManifestExtension_Ref, PluginError> {
    guard(|| {
        let routes: &'static [RouteDecl] = Vec::leak(P::routes());
        let extension = ManifestExtension {
            routes: routes.into(),
        };
        // Leaked on purpose: the host reads it once per load, and libraries are never
        // unloaded.
        Ok(extension.leak_into_prefix())
    })
}

extern "C" fn new_idp<P: Plugin>(
    instance_id: RStr<'_>,
    settings_json: RStr<'_>,
) -> RResult<IdpBox, PluginError> {
    guard(|| build::<P>(instance_id, settings_json, None))
}

extern "C" fn new_idp_in_context<P: Plugin>(
    instance_id: RStr<'_>,
    settings_json: RStr<'_>,
    context: RRef<'_, InstanceContext>,
) -> RResult<IdpBox, PluginError> {
    guard(|| {
        let placement = Placement::from_ffi(context.get());
        build::<P>(instance_id, settings_json, Some(placement))
    })
}

fn build<P: Plugin>(
    instance_id: RStr<'_>,
    settings_json: RStr<'_>,
    placement: Option<Placement>,
) -> Result<IdpBox, PluginError> {
    let settings = serde_json::from_str(settings_json.as_str()).map_err(|error| {
        PluginError::invalid_settings(format!("settings are not valid JSON: {error}"))
    })?;
    let config = InstanceConfig {
        instance_id: instance_id.as_str().to_owned(),
        settings,
        placement,
    };
    let provider = P::new(&config)?;
    Ok(IdpFfi_TO::from_value(Adapter(provider), TD_Opaque))
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
            let text = self.0.run_task_json(&Host::new(host), task.as_str())?;
            Ok(RString::from(text))
        })
    }

    fn handle_inbound(
        &self,
        host: HostRef<'_>,
        request: InboundRequest,
    ) -> RResult<InboundReply, PluginError> {
        guard(|| self.0.handle_inbound(&Host::new(host), &request))
    }

    fn check_online(&self, host: HostRef<'_>) -> RResult<OnlineReport, PluginError> {
        guard(|| self.0.check_online(&Host::new(host)))
    }
}

#[cfg(test)]
mod tests {
    use super::API_VERSION;

    #[test]
    fn api_version_follows_the_crate_version() {
        let mut parts = env!("CARGO_PKG_VERSION").split('.');
        let major: u16 = parts.next().and_then(|p| p.parse().ok()).expect("major");
        let minor: u16 = parts.next().and_then(|p| p.parse().ok()).expect("minor");
        assert_eq!(
            (API_VERSION.major, API_VERSION.minor),
            (major, minor),
            "bump API_VERSION and the plugin-api crate version together"
        );
    }
}
