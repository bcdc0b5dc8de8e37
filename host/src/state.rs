//! The state every request handler shares: the store, the plugin caller, the
//! current site (swappable as a whole), and the host's settings.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use gatehouse_store::{Store, StoreError};

use crate::{
    clock::{Clock, Randomness},
    metrics::Metrics,
    passwords::Passwords,
    plugins::PluginCaller,
    site::Site,
    web::{
        browser_tokens::{self, BrowserKey},
        start_limit::StartLimiter,
    },
};

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
    /// The host's cap on bodies sent to plugins' inbound routes.
    pub inbound_max_body_bytes: usize,
    /// Reverse proxies whose forwarding headers name the client (`[host] trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[host.passwords]`: the cost of new hashes and the hashing queue.
    pub password_hashing: gatehouse_config::PasswordHashing,
    /// `[host.limits] starts_per_address_per_minute`.
    pub starts_per_address_per_minute: u32,
    /// `[host] metrics_token`: what `GET /metrics` requires; `None`, it answers 404.
    pub metrics_token: Option<gatehouse_config::Secret>,
    /// `[host] scheduler` and `[host.tasks]` (the status page lists the tasks).
    pub tasks: crate::tasks::TaskSettings,
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
    /// When the site serving now was loaded (start or last applied reload), host clock.
    loaded_at: AtomicI64,
    /// The file the configuration is reloaded from.
    config_path: PathBuf,
    /// One reload at a time, so two cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
    /// The key of the browser tokens, read from the store on first use.
    browser_key: tokio::sync::OnceCell<BrowserKey>,
    clock: Clock,
    random: Randomness,
    passwords: Passwords,
    start_limiter: StartLimiter,
    metrics: Metrics,
}

impl AppState {
    pub fn new(
        store: Store,
        caller: PluginCaller,
        settings: WebSettings,
        site: Site,
        config_path: PathBuf,
    ) -> Self {
        let clock = caller.clock().clone();
        let random = caller.random().clone();
        let metrics = caller.metrics().clone();
        let passwords = Passwords::new(&settings.password_hashing, &random);
        let start_limiter =
            StartLimiter::new(settings.starts_per_address_per_minute, clock.clone());
        let loaded_at = AtomicI64::new(clock.now_unix_seconds());
        Self {
            inner: Arc::new(Inner {
                store,
                caller,
                settings,
                site: RwLock::new(Arc::new(site)),
                loaded_at,
                config_path,
                reloading: tokio::sync::Mutex::new(()),
                browser_key: tokio::sync::OnceCell::new(),
                clock,
                random,
                passwords,
                start_limiter,
                metrics,
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
    /// The host's clock (the plugin caller lends the same one to plugins).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }
    /// The host's randomness (the plugin caller lends the same one to plugins).
    pub fn random(&self) -> &Randomness {
        &self.inner.random
    }
    /// Password hashing on the host's hashing threads.
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }
    /// The per-address limit on `GET /sso/{idp}/start`.
    pub fn start_limiter(&self) -> &StartLimiter {
        &self.inner.start_limiter
    }
    /// The host's metrics (`GET /metrics`), shared with the plugin caller.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    /// Seconds since the Unix epoch on the host's clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now_unix_seconds()
    }
    /// A fresh 256-bit URL-safe token from the host's randomness.
    pub fn token(&self) -> String {
        self.inner.random.token()
    }
    /// The key that mints and recognises browser tokens (bindings, CSRF), shared through
    /// the database by every host on it.
    pub async fn browser_key(&self) -> Result<&BrowserKey, StoreError> {
        self.inner
            .browser_key
            .get_or_try_init(|| async {
                let fresh = BrowserKey::fresh_key_bytes(&self.inner.random);
                let key = self
                    .inner
                    .store
                    .host_key(browser_tokens::KEY_NAME, &fresh, self.now())
                    .await?;
                Ok(BrowserKey::new(key))
            })
            .await
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
        self.inner.loaded_at.store(self.now(), Ordering::Relaxed);
    }
    /// When the configuration serving now was loaded: at start, or by the last reload
    /// applied (Unix seconds, host clock).
    pub fn loaded_at(&self) -> i64 {
        self.inner.loaded_at.load(Ordering::Relaxed)
    }
}
