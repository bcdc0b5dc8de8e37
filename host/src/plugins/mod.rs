//! Plugins at run time: loading libraries (`loader`), lending them the host's
//! capabilities (`capabilities`) under an egress policy (`egress`), and calling IdP
//! instances off the async runtime with a time limit (`instances`) within bounded
//! concurrency and a circuit breaker per IdP (`limits`).

pub mod capabilities;
pub mod egress;
pub mod instances;
pub mod limits;
pub mod loader;

pub use capabilities::HttpEgress;
pub use egress::{AddressCategory, EgressPolicy, EgressRefusal};
pub use instances::{CallError, CallTimeouts, IdpInstance, PluginCaller};
pub use limits::{BreakerState, Busy, BusyReason, CallLimits, IdpHealth};
pub use loader::{
    LoadFailure, LoadFailureReason, LoadReport, LoadRequest, LoadedPlugin, PluginInfo, load_all,
};
