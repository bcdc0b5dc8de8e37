//! Plugins at run time: loading libraries (`loader`), lending them the host's
//! capabilities (`capabilities`), and calling IdP instances off the async runtime
//! with a time limit (`instances`).

pub mod capabilities;
pub mod instances;
pub mod loader;

pub use capabilities::HttpEgress;
pub use instances::{CallError, IdpInstance, PluginCaller};
pub use loader::{
    LoadFailure, LoadFailureReason, LoadReport, LoadRequest, LoadedPlugin, PluginInfo, load_all,
};
