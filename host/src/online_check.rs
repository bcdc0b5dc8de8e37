//! `gatehouse check --online`: every IdP's plugin asked to reach its provider (plugin API
//! 1.3's `check_online`: OIDC discovery and keys, SAML metadata, a Connect server's API
//! version) through the host's HTTP, a bounded number at once, each as a plugin call with
//! its time limit; what they found turned into diagnostics (`idp-unreachable`,
//! `idp-online-check`) at the IdP's `[[idp]]` table. A plugin older than 1.3 has no online
//! check: a note, not a problem. Not the printing (the CLI's `check`) and not the checks
//! themselves (the plugins').

use std::{path::Path, sync::Arc};

use gatehouse_config::{Diagnostic, Severity, codes};
use gatehouse_plugin_api::{ApiVersion, ErrorKind, OnlineReport, Severity as FindingSeverity};
use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    plugins::{CallError, PluginCaller},
    site::{Site, SiteIdp},
};

/// How many IdPs are checked at once (never more than the host's plugin-call permits).
pub const AT_ONCE: usize = 8;

/// The plugin API version that added the online check.
const ONLINE_CHECK_SINCE: ApiVersion = ApiVersion { major: 1, minor: 3 };

/// What one IdP's online check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The provider answered and nothing is wrong.
    Ok,
    /// At least one error or warning (in the diagnostics).
    Problems,
    /// The plugin has no online check (built before plugin API 1.3, or it offers none).
    NoOnlineCheck,
}

/// One IdP's online check, as `check --format json` prints it under `online`.
#[derive(Debug, Clone, Serialize)]
pub struct IdpOnline {
    pub idp: String,
    pub domain: String,
    pub plugin: String,
    pub status: Status,
    /// What the plugin reached and found usable.
    pub checked: Vec<String>,
    /// Information, never a problem ("no online check", "not registered yet").
    pub notes: Vec<String>,
    /// The problems, at the IdP's `[[idp]]` table (printed with the other diagnostics).
    #[serde(skip)]
    pub diagnostics: Vec<Diagnostic>,
}

/// Checks every IdP of `site` through `caller`, at most `at_once` at a time; the results in
/// the site's order. `file` is the configuration file the diagnostics point into.
pub async fn check(
    site: &Site,
    caller: &PluginCaller,
    file: &Path,
    at_once: usize,
) -> Vec<IdpOnline> {
    let idps: Vec<Arc<SiteIdp>> = site.all_idps().cloned().collect();
    let permits = Arc::new(Semaphore::new(at_once.max(1)));
    let mut running = JoinSet::new();
    for (index, idp) in idps.iter().enumerate() {
        let (caller, idp, permits) = (caller.clone(), Arc::clone(idp), Arc::clone(&permits));
        running.spawn(async move {
            // Never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await.ok();
            let answer = caller.check_online(Arc::clone(&idp.instance)).await;
            (index, answer)
        });
    }
    let mut answers: Vec<Option<Result<OnlineReport, CallError>>> =
        idps.iter().map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((index, answer)) => answers[index] = Some(answer),
            // A task only ends this way when the runtime shuts down under it.
            Err(error) => tracing::warn!(%error, "an online check did not finish"),
        }
    }
    idps.iter()
        .zip(answers)
        .map(|(idp, answer)| {
            let answer = answer
                .unwrap_or_else(|| Err(CallError::Aborted("the check did not finish".to_owned())));
            outcome(file, idp, answer)
        })
        .collect()
}

/// Every diagnostic of `results`, in order.
pub fn diagnostics(results: &[IdpOnline]) -> Vec<Diagnostic> {
    results
        .iter()
        .flat_map(|r| r.diagnostics.iter().cloned())
        .collect()
}

/// What one IdP's answer means.
pub fn outcome(file: &Path, idp: &SiteIdp, answer: Result<OnlineReport, CallError>) -> IdpOnline {
    let config = &idp.config;
    let plugin = &idp.instance.plugin;
    let mut result = IdpOnline {
        idp: config.id.clone(),
        domain: config.domain.clone(),
        plugin: plugin.id.clone(),
        status: Status::Ok,
        checked: Vec::new(),
        notes: Vec::new(),
        diagnostics: Vec::new(),
    };
    let diagnostic = |severity: Severity, message: &str, help: String| {
        let code = match severity {
            Severity::Error => codes::IDP_UNREACHABLE,
            Severity::Warning => codes::IDP_ONLINE_CHECK,
        };
        Diagnostic::new(
            code,
            severity,
            format!("IdP `{}` (plugin `{}`): {message}", config.id, plugin.id),
            file,
            config.location,
        )
        .with_idp(&config.id)
        .with_domain(&config.domain)
        .with_help(help)
    };
    match answer {
        Ok(report) => {
            result.checked = report.checked.iter().map(|c| c.to_string()).collect();
            for finding in report.findings.iter() {
                let severity = match finding.severity {
                    FindingSeverity::NOTE => {
                        result.notes.push(finding.message.to_string());
                        continue;
                    }
                    FindingSeverity::WARNING => Severity::Warning,
                    // ERROR, and any severity a later plugin API adds.
                    _ => Severity::Error,
                };
                let setting = finding
                    .setting
                    .as_ref()
                    .map(|s| s.to_string())
                    .into_option();
                let help = match (finding.help.as_ref().into_option(), setting) {
                    (Some(help), _) => help.to_string(),
                    (None, Some(setting)) => {
                        format!("check `{setting}` in the IdP's [idp.settings]")
                    }
                    (None, None) => "check the IdP's [idp.settings], and that this host can \
                                     reach the provider"
                        .to_owned(),
                };
                result
                    .diagnostics
                    .push(diagnostic(severity, finding.message.as_str(), help));
            }
        }
        Err(CallError::Plugin(error)) if error.kind == ErrorKind::UNSUPPORTED => {
            result.status = Status::NoOnlineCheck;
            let version = (plugin.api_version.major, plugin.api_version.minor);
            result.notes.push(
                if version < (ONLINE_CHECK_SINCE.major, ONLINE_CHECK_SINCE.minor) {
                    format!(
                        "no online check: plugin `{}` is built against plugin API {}, and the \
                     online check came with {ONLINE_CHECK_SINCE}",
                        plugin.id, plugin.api_version
                    )
                } else {
                    format!("no online check: plugin `{}` does not offer one", plugin.id)
                },
            );
        }
        Err(CallError::TimedOut(limit)) => result.diagnostics.push(diagnostic(
            Severity::Error,
            &format!(
                "the online check did not finish within {} s",
                limit.as_secs_f64()
            ),
            "the provider answers too slowly or not at all: check that this host can reach it \
             ([host] plugin_call_timeout_seconds bounds each IdP's check)"
                .to_owned(),
        )),
        Err(other) => result.diagnostics.push(diagnostic(
            Severity::Error,
            &format!("the online check failed: {other}"),
            "see the message; a plugin that panicked has a bug to report".to_owned(),
        )),
    }
    if !result.diagnostics.is_empty() {
        result.status = Status::Problems;
    }
    result
}
