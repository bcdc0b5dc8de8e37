//! From a configuration to a servable state: load the plugin libraries, build each
//! IdP instance (which validates its settings), connect the store. Every failure
//! is collected and reported together; nothing is served half-configured.

use std::{collections::HashSet, path::Path, sync::Arc, time::Duration};

use gatehouse_config::{Config, Diagnostic, Location, PluginEntry, codes};
use gatehouse_store::Store;

use crate::{
    clock::{Clock, Randomness},
    plugins::{
        CallLimits, CallTimeouts, HttpEgress, LoadFailure, LoadReport, LoadRequest, PluginCaller,
        load_all,
    },
    site::{Built, Site},
    state::{AppState, WebSettings},
};

/// The libraries `config` enables, with their paths resolved.
pub fn load_requests(config: &Config) -> Vec<LoadRequest> {
    load_requests_in(&config.plugins, &config.host.plugin_dir)
}

/// The libraries these `[[plugin]]` tables ask for (enabled ones only), looked up in
/// `plugin_dir`: what [`load_requests`] reads from a configuration, or `gatehouse plugins`
/// from a file whose other parts have errors.
pub fn load_requests_in(plugins: &[PluginEntry], plugin_dir: &Path) -> Vec<LoadRequest> {
    plugins
        .iter()
        .filter(|p| p.enabled)
        .map(|p| LoadRequest {
            id: p.id.clone(),
            path: p.library_path(plugin_dir),
        })
        .collect()
}

/// Loads every enabled plugin library of `config`.
pub fn load_plugins(config: &Config) -> LoadReport {
    load_all(&load_requests(config), config.host.dev_mode)
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
        trusted_proxies: host.trusted_proxies.clone(),
        inbound_max_body_bytes: host.inbound_max_body_bytes as usize,
        password_hashing: host.passwords.clone(),
        starts_per_address_per_minute: host.limits.starts_per_address_per_minute,
        metrics_token: host.metrics_token.clone(),
        tasks: crate::tasks::TaskSettings::from_config(config),
    }
}

/// The plugin-call limits `[host]` describes.
pub fn call_limits(config: &Config) -> CallLimits {
    let host = &config.host;
    CallLimits {
        per_idp: host.plugin_calls_per_idp as usize,
        total: host.plugin_calls_max as usize,
        breaker_failures: host.idp_breaker_failures,
        breaker_cooldown: Duration::from_secs(u64::from(host.idp_breaker_cooldown_seconds)),
    }
}

/// A plugin that failed to load, as a diagnostic at its `[[plugin]]` table.
pub fn load_failure_diagnostic(config: &Config, failure: &LoadFailure) -> Diagnostic {
    let location = config
        .plugins
        .iter()
        .find(|p| p.id == failure.id)
        .map_or(Location::default(), |p| {
            p.key_locations.value("library").unwrap_or(p.location)
        });
    Diagnostic::error(
        codes::PLUGIN_LOAD_FAILED,
        format!(
            "plugin `{}` ({}) did not load: {}",
            failure.id,
            failure.path.display(),
            failure.reason_text()
        ),
        &config.path,
        location,
    )
    .with_help(failure.fix())
}

/// A configuration taken as far as it goes: plugins loaded, instances built, rules checked.
#[derive(Debug)]
pub struct Prepared {
    pub site: Site,
    /// Plugin load failures (`plugin-load-failed`), refused settings and the resolver's
    /// findings, in that order.
    pub diagnostics: Vec<Diagnostic>,
    /// The libraries that loaded and those that did not (which IdP failed, and why).
    pub load: LoadReport,
}

impl Prepared {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The site, if nothing stops it from being served; its warnings come along.
    pub fn into_servable(self) -> Result<(Site, Vec<Diagnostic>), StartupProblems> {
        if self.has_errors() {
            Err(StartupProblems {
                diagnostics: self.diagnostics,
            })
        } else {
            Ok((self.site, self.diagnostics))
        }
    }
}

/// Everything that stops a configuration from being served (warnings included, for context).
#[derive(Debug, Default)]
pub struct StartupProblems {
    pub diagnostics: Vec<Diagnostic>,
}

impl StartupProblems {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Loads the plugins of `config`, builds its IdP instances and runs the resolver, with
/// `proven` the IdPs that have completed a successful sign-in.
pub fn prepare(config: &Config, proven: &HashSet<String>) -> Prepared {
    let report = load_plugins(config);
    let Built {
        site,
        diagnostics: found,
    } = Site::build(config, &report.loaded, proven);
    let mut diagnostics: Vec<Diagnostic> = report
        .failures
        .iter()
        .map(|failure| load_failure_diagnostic(config, failure))
        .collect();
    diagnostics.extend(found);
    // Plugins quote the settings they refuse; values from `{ env }` / `{ file }` never show.
    config.redact(&mut diagnostics);
    Prepared {
        site,
        diagnostics,
        load: report,
    }
}

/// [`prepare`], refusing a configuration with any error.
pub fn build_site(config: &Config, proven: &HashSet<String>) -> Result<Site, StartupProblems> {
    prepare(config, proven)
        .into_servable()
        .map(|(site, _)| site)
}

/// The IdPs with a recorded successful sign-in, as the resolver wants them.
pub async fn proven_idps(store: &Store) -> Result<HashSet<String>, gatehouse_store::StoreError> {
    Ok(store.proven_idps().await?.into_iter().collect())
}

/// The state to serve `config` with, given a connected store, on the host's clock and
/// randomness (the system's, except in tests).
pub fn state(
    config: &Config,
    site: Site,
    store: Store,
    clock: Clock,
    random: Randomness,
) -> Result<AppState, reqwest::Error> {
    let host = &config.host;
    let egress = HttpEgress::new(
        Duration::from_secs(u64::from(host.http_timeout_seconds)),
        host.http_max_response_bytes as usize,
    )?;
    let caller = PluginCaller::new(
        store.clone(),
        Arc::new(egress),
        CallTimeouts {
            call: Duration::from_secs(u64::from(host.plugin_call_timeout_seconds)),
            task: Duration::from_secs(u64::from(host.task_timeout_seconds)),
        },
        call_limits(config),
        clock,
        random,
    );
    Ok(AppState::new(
        store,
        caller,
        web_settings(config),
        site,
        config.path.clone(),
    ))
}

/// Where `serve` and `check` read the configuration from.
pub fn default_config_path() -> std::path::PathBuf {
    std::env::var_os("GATEHOUSE_CONFIG")
        .map_or_else(|| Path::new("plugins.toml").to_owned(), Into::into)
}
