//! The state every request handler shares: the store, the plugin caller, the
//! current site (swappable as a whole), and the host's settings.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use gatehouse_store::Store;

use crate::{plugins::PluginCaller, site::Site};

/// Settings the request path reads, taken from `[host]`.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The base of every URL given to an IdP, without a trailing slash.
    pub public_url: String,
    /// `Secure` cookies (public URL is https).
    pub secure_cookies: bool,
    pub session_lifetime: Duration,
    pub pending_login_lifetime: Duration,
    pub max_failures_per_account: i64,
    pub max_failures_per_ip: i64,
    pub throttle_window: Duration,
}

/// Cheap to clone; handlers receive it through axum's `State`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    caller: PluginCaller,
    settings: WebSettings,
    site: RwLock<Arc<Site>>,
    /// The file the configuration is reloaded from.
    config_path: PathBuf,
    /// One reload at a time, so two cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
}

impl AppState {
    pub fn new(
        store: Store,
        caller: PluginCaller,
        settings: WebSettings,
        site: Site,
        config_path: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                caller,
                settings,
                site: RwLock::new(Arc::new(site)),
                config_path,
                reloading: tokio::sync::Mutex::new(()),
            }),
        }
    }
    pub fn config_path(&self) -> &Path {
        &self.inner.config_path
    }
    /// Held for the whole of a reload.
    pub async fn reload_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.reloading.lock().await
    }
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    pub fn caller(&self) -> &PluginCaller {
        &self.inner.caller
    }
    pub fn settings(&self) -> &WebSettings {
        &self.inner.settings
    }
    /// The site as it is now; a request keeps the one it started with.
    pub fn site(&self) -> Arc<Site> {
        let guard = self
            .inner
            .site
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }
    /// Replaces the site for every request that starts after this.
    pub fn replace_site(&self, site: Site) {
        let mut guard = self
            .inner
            .site
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Arc::new(site);
    }
}
