//! IdP instances built by plugins, and [`PluginCaller`], which runs every call into
//! a plugin on the blocking pool with a time limit, lending it the host's
//! capabilities for that call only.

use std::{sync::Arc, time::Duration};

use abi_stable::{std_types::RStr, type_level::downcasting::TD_Opaque};
use gatehouse_plugin_api::{HostFfi_TO, HostRef, IdpBox, PluginError};
use gatehouse_store::Store;
use tokio::runtime::Handle;

use super::{
    capabilities::{CallCapabilities, HttpEgress},
    loader::{LoadedPlugin, PluginInfo},
};

/// One configured IdP, as its plugin built it.
pub struct IdpInstance {
    /// The IdP's id from `plugins.toml`.
    pub id: String,
    pub plugin: PluginInfo,
    pub object: IdpBox,
}

impl std::fmt::Debug for IdpInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpInstance")
            .field("id", &self.id)
            .field("plugin", &self.plugin.id)
            .finish_non_exhaustive()
    }
}

impl IdpInstance {
    /// Asks `plugin` to build the instance `id` from its settings. This is where the
    /// plugin validates `[idp.settings]`. Constructors do no I/O, so it runs inline.
    pub fn build(
        plugin: &LoadedPlugin,
        id: &str,
        settings: &serde_json::Value,
    ) -> Result<Self, PluginError> {
        let json = settings.to_string();
        let object =
            (plugin.module.new_idp())(RStr::from(id), RStr::from(json.as_str())).into_result()?;
        Ok(Self {
            id: id.to_owned(),
            plugin: plugin.info.clone(),
            object,
        })
    }
}

/// Why a plugin call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("the plugin did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the plugin call could not run: {0}")]
    Aborted(String),
}

/// Runs plugin calls with the host's capabilities.
#[derive(Clone)]
pub struct PluginCaller {
    pub store: Store,
    pub egress: Arc<HttpEgress>,
    pub timeout: Duration,
}

impl PluginCaller {
    /// Calls `body` with `instance` and a [`HostRef`] valid for this call only, on the
    /// blocking pool (plugins are synchronous and may wait on HTTP), with a time limit.
    ///
    /// A call that times out keeps its thread until the plugin returns (a thread
    /// cannot be killed), but the request it serves gets its answer now; the HTTP
    /// timeout bounds how long such a thread can linger.
    pub async fn call<T, F>(&self, instance: Arc<IdpInstance>, body: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(HostRef<'_>, &IdpBox) -> Result<T, PluginError> + Send + 'static,
    {
        let runtime = Handle::current();
        let store = self.store.clone();
        let egress = Arc::clone(&self.egress);
        let task = tokio::task::spawn_blocking(move || {
            let capabilities = CallCapabilities {
                runtime: &runtime,
                store: &store,
                egress: &egress,
                scope: &instance.id,
                plugin_id: &instance.plugin.id,
            };
            let host = HostFfi_TO::from_ptr(&capabilities, TD_Opaque);
            body(host, &instance.object)
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result.map_err(CallError::Plugin),
            Ok(Err(join_error)) => Err(CallError::Aborted(join_error.to_string())),
            Err(_) => Err(CallError::TimedOut(self.timeout)),
        }
    }
}
