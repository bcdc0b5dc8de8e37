//! From a configuration to a servable state: load the plugin libraries, build each
//! IdP instance (which validates its settings), connect the store. Every failure
//! is collected and reported together; nothing is served half-configured.

use std::{path::Path, sync::Arc, time::Duration};

use gatehouse_config::{Config, Diagnostic, Location, Severity};
use gatehouse_store::Store;

use crate::{
    plugins::{HttpEgress, LoadReport, LoadRequest, PluginCaller, load_all},
    site::{IdpBuildFailure, Site},
    state::{AppState, WebSettings},
};

/// The libraries `config` enables, with their paths resolved.
pub fn load_requests(config: &Config) -> Vec<LoadRequest> {
    config
        .plugins
        .iter()
        .filter(|p| p.enabled)
        .map(|p| LoadRequest {
            id: p.id.clone(),
            path: p.library_path(&config.host.plugin_dir),
        })
        .collect()
}

/// Loads every enabled plugin library of `config`.
pub fn load_plugins(config: &Config) -> LoadReport {
    load_all(&load_requests(config), config.host.dev_mode)
}

/// Each IdP whose plugin refused its settings, as an `invalid-settings` diagnostic.
pub fn settings_diagnostics(config: &Config, failures: &[IdpBuildFailure]) -> Vec<Diagnostic> {
    failures
        .iter()
        .filter_map(|failure| {
            let idp = config.idps.iter().find(|i| i.id == failure.idp)?;
            // An IdP whose plugin did not load is reported by the loader instead.
            if failure.message.starts_with("its plugin `") {
                return None;
            }
            Some(Diagnostic {
                code: "invalid-settings",
                severity: Severity::Error,
                message: format!(
                    "plugin `{}` refused the settings of IdP `{}`: {}",
                    idp.plugin, idp.id, failure.message
                ),
                file: config.path.clone(),
                location: if idp.settings_location == Location::default() {
                    idp.location
                } else {
                    idp.settings_location
                },
                domain: Some(idp.domain.clone()),
                idp: Some(idp.id.clone()),
                help: Some("correct the IdP's [idp.settings] as the message says".into()),
            })
        })
        .collect()
}

/// The web settings `[host]` describes.
pub fn web_settings(config: &Config) -> WebSettings {
    let host = &config.host;
    let public_url = host.public_url.as_str().trim_end_matches('/').to_owned();
    WebSettings {
        secure_cookies: public_url.starts_with("https://"),
        public_url,
        session_lifetime: Duration::from_secs(u64::from(host.session_lifetime_minutes) * 60),
        pending_login_lifetime: Duration::from_secs(u64::from(host.pending_login_minutes) * 60),
        max_failures_per_account: i64::from(host.login_throttle.max_failures_per_account),
        max_failures_per_ip: i64::from(host.login_throttle.max_failures_per_ip),
        throttle_window: Duration::from_secs(u64::from(host.login_throttle.window_minutes) * 60),
    }
}

/// Everything that stops a configuration from being served.
#[derive(Debug, Default)]
pub struct StartupProblems {
    pub load_failures: Vec<crate::plugins::LoadFailure>,
    pub diagnostics: Vec<Diagnostic>,
}

impl StartupProblems {
    pub fn is_empty(&self) -> bool {
        self.load_failures.is_empty() && self.diagnostics.is_empty()
    }
}

/// Loads plugins and builds the site; refuses if any enabled plugin failed to load
/// or any IdP's settings were refused.
pub fn build_site(config: &Config) -> Result<Site, StartupProblems> {
    let report = load_plugins(config);
    let (site, failures) = Site::build(config, &report.loaded);
    let problems = StartupProblems {
        load_failures: report.failures,
        diagnostics: settings_diagnostics(config, &failures),
    };
    if problems.is_empty() {
        Ok(site)
    } else {
        Err(problems)
    }
}

/// The state to serve `config` with, given a connected store.
pub fn state(config: &Config, site: Site, store: Store) -> Result<AppState, reqwest::Error> {
    let host = &config.host;
    let egress = HttpEgress::new(
        Duration::from_secs(u64::from(host.http_timeout_seconds)),
        host.http_max_response_bytes as usize,
    )?;
    let caller = PluginCaller {
        store: store.clone(),
        egress: Arc::new(egress),
        timeout: Duration::from_secs(u64::from(host.plugin_call_timeout_seconds)),
    };
    Ok(AppState::new(store, caller, web_settings(config), site))
}

/// Where `serve` and `check` read the configuration from.
pub fn default_config_path() -> std::path::PathBuf {
    std::env::var_os("GATEHOUSE_CONFIG")
        .map_or_else(|| Path::new("plugins.toml").to_owned(), Into::into)
}
