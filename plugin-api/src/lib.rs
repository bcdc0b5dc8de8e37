//! The stable ABI between the Gatehouse host and its identity-provider plugins.
//!
//! This is the only crate the host and the plugins share. It is not a protocol
//! implementation and does no I/O: a plugin receives a [`Host`] on every call and
//! asks it for time, randomness, HTTP, storage and logging.
//!
//! A plugin author:
//! 1. implements [`IdentityProvider`] (begin login, complete login, and any optional
//!    abilities) and [`Plugin`] (manifest and constructor) for one type;
//! 2. calls [`export_plugin!`] with that type;
//! 3. tests it with the `testkit` feature: [`testkit::FakeHost`] and
//!    [`testkit::conformance`].
//!
//! See `plugins/example` for a complete plugin to copy.

mod context;
mod error;
mod ffi;
mod host;
mod inbound;
mod module;
mod online;
mod provider;
mod types;
mod util;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use context::{InstanceContext, Placement};
pub use error::{ErrorKind, PluginError};
pub use ffi::{HostFfi, HostFfi_TO, HostRef, IdpBox, IdpFfi, IdpFfi_TO};
pub use host::Host;
pub use inbound::{
    ActionKind, HostAction, InboundReply, InboundRequest, ManifestExtension, ManifestExtension_Ref,
    RouteDecl, RouteHandling, RouteMount, SessionSelector,
};
pub use module::{API_VERSION, PluginModule, PluginModule_Ref, ROOT_MODULE_NAME};
pub use online::{OnlineFinding, OnlineReport, Severity};
pub use provider::{IdentityProvider, InstanceConfig, Plugin};
pub use types::*;
pub use util::{Secret, constant_time_eq};

/// Re-exported so that [`export_plugin!`] works without plugins naming abi_stable.
#[doc(hidden)]
pub use abi_stable;

#[doc(hidden)]
pub mod __private {
    pub use crate::module::root_module;
}

/// Exports a [`Plugin`] type as this library's Gatehouse root module.
///
/// Every entry point it exports catches panics and turns them into
/// [`PluginError`]s of kind [`ErrorKind::INTERNAL`], so a bug in a plugin becomes
/// an error page, never the end of the host process.
///
/// ```text
/// gatehouse_plugin_api::export_plugin!(MyProvider);
/// ```
///
/// Use it once per library.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // What abi_stable's `#[export_root_module]` expands to, written with `$crate`
        // paths so that plugins need not depend on abi_stable themselves. The symbol
        // name is checked against abi_stable's in this crate's tests.
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static GATEHOUSE_PLUGIN_ROOT_MODULE: $crate::abi_stable::library::LibHeader = {
            fn root_module() -> $crate::PluginModule_Ref {
                $crate::__private::root_module::<$plugin>()
            }
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(root_module)
            }
            // SAFETY: this is the constructor abi_stable's own attribute generates: it
            // pairs the module type with the function that builds it, and asks for its
            // layout to be checked when the host loads the library.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModule_Ref>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_macro_uses_abi_stables_root_module_symbol() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader",
            "abi_stable changed its symbol name: update export_plugin!"
        );
    }
}
