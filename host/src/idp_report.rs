//! Every configured IdP as an admin asks about it: its domain, plugin, behaviour, whether it
//! can be served (or why not: its plugin failed to load, or refused its settings), when it
//! last signed someone in, and the URLs to register at the provider. Built from what
//! [`startup::prepare`](crate::startup::prepare) found, for `gatehouse idps` and `gatehouse
//! explain`; it reads no database itself (the caller passes the sign-in history) and is not
//! the status page.

use std::{collections::HashMap, fmt::Write as _};

use gatehouse_config::{Behaviour, Config, Diagnostic, IdpConfig, Severity, codes};
use serde_json::{Value, json};

use crate::{
    plugins::{LoadReport, PluginInfo},
    registration_urls::{self, RegistrationUrls},
    site::Site,
};

/// Whether an IdP can be served, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpStatus {
    /// Its plugin loaded and accepted its settings.
    Loaded,
    /// Its plugin library did not load.
    PluginFailed { reason: String, fix: String },
    /// Its plugin loaded but refused its `[idp.settings]`.
    SettingsRefused { message: String },
    /// Not served for another reason (the message of the finding that says why).
    NotServed { reason: String },
}

impl IdpStatus {
    /// The stable name in JSON: `loaded`, `plugin-failed`, `settings-refused`, `not-served`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::PluginFailed { .. } => "plugin-failed",
            Self::SettingsRefused { .. } => "settings-refused",
            Self::NotServed { .. } => "not-served",
        }
    }

    /// Why the IdP is not served; `None` when it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Loaded => None,
            Self::PluginFailed { reason, .. } => Some(reason),
            Self::SettingsRefused { message } => Some(message),
            Self::NotServed { reason } => Some(reason),
        }
    }

    /// The status in words, as the human output prints it.
    pub fn describe(&self) -> String {
        match self {
            Self::Loaded => "loaded".into(),
            Self::PluginFailed { reason, fix } => {
                format!("plugin failed to load: {reason} (fix: {fix})")
            }
            Self::SettingsRefused { message } => format!("settings refused: {message}"),
            Self::NotServed { reason } => format!("not served: {reason}"),
        }
    }
}

/// A finding of `gatehouse check` about one IdP (errors only: what stops it being served).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

/// One configured IdP, as `gatehouse idps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpReport {
    pub id: String,
    /// The button's label.
    pub name: String,
    pub domain: String,
    pub plugin: String,
    /// The plugin's protocol, when it loaded.
    pub protocol: Option<String>,
    pub behaviour: Behaviour,
    pub status: IdpStatus,
    /// Other errors naming this IdP (a served IdP may still be part of a configuration that
    /// cannot be served, e.g. `duplicate-protocol`).
    pub problems: Vec<Problem>,
    /// Unix seconds of the last recorded successful sign-in; `None`: never (or no database).
    pub last_success: Option<i64>,
    pub urls: RegistrationUrls,
}

impl IdpReport {
    /// Whether the IdP can sign anyone in: served, and no error names it.
    pub fn usable(&self) -> bool {
        self.status == IdpStatus::Loaded && self.problems.is_empty()
    }

    /// The stable JSON object of `gatehouse idps --format json`.
    pub fn to_json(&self) -> Value {
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|p| json!({ "code": p.code, "message": p.message }))
            .collect();
        let fix = match &self.status {
            IdpStatus::PluginFailed { fix, .. } => Some(fix.as_str()),
            _ => None,
        };
        json!({
            "id": self.id,
            "name": self.name,
            "domain": self.domain,
            "plugin": self.plugin,
            "protocol": self.protocol,
            "behaviour": self.behaviour.as_str(),
            "status": self.status.code(),
            "reason": self.status.reason(),
            "fix": fix,
            "usable": self.usable(),
            "problems": problems,
            "last_success": self.last_success,
            "urls": self.urls,
        })
    }
}

/// What [`startup::prepare`](crate::startup::prepare) found: the site it built, the
/// libraries it loaded, and every diagnostic (the file's and its own).
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub site: &'a Site,
    pub load: &'a LoadReport,
    pub diagnostics: &'a [Diagnostic],
}

/// Every `[[idp]]` of `config`, in file order, with its status as `found` says and its last
/// success from `history` (IdP id → Unix seconds).
pub fn report(config: &Config, found: Found<'_>, history: &HashMap<String, i64>) -> Vec<IdpReport> {
    config
        .idps
        .iter()
        .map(|idp| report_one(config, found, idp, history.get(&idp.id).copied()))
        .collect()
}

fn report_one(
    config: &Config,
    found: Found<'_>,
    idp: &IdpConfig,
    last_success: Option<i64>,
) -> IdpReport {
    let plugin: Option<&PluginInfo> = found
        .load
        .loaded
        .iter()
        .map(|p| &p.info)
        .find(|info| info.id == idp.plugin);
    let served = found
        .site
        .domain(&idp.domain)
        .and_then(|domain| domain.idp(&idp.id))
        .is_some();
    let errors: Vec<_> = found
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error && d.idp.as_deref() == Some(idp.id.as_str()))
        .collect();
    let failure = found.load.failures.iter().find(|f| f.id == idp.plugin);
    let refused = errors.iter().find(|d| d.code == codes::INVALID_SETTINGS);
    let status = match (served, failure, refused) {
        (true, _, _) => IdpStatus::Loaded,
        (false, Some(failure), _) => IdpStatus::PluginFailed {
            reason: format!(
                "plugin `{}` ({}): {}",
                failure.id,
                failure.path.display(),
                failure.reason_text()
            ),
            fix: failure.fix(),
        },
        (false, None, Some(refused)) => IdpStatus::SettingsRefused {
            message: refused.message.clone(),
        },
        (false, None, None) => IdpStatus::NotServed {
            reason: errors.first().map_or_else(
                || format!("plugin `{}` is not loaded", idp.plugin),
                |d| d.message.clone(),
            ),
        },
    };
    let problems = errors
        .iter()
        .filter(|d| d.code != codes::INVALID_SETTINGS)
        .map(|d| Problem {
            code: d.code,
            message: d.message.clone(),
        })
        .collect();
    IdpReport {
        id: idp.id.clone(),
        name: idp.name.clone(),
        domain: idp.domain.clone(),
        plugin: idp.plugin.clone(),
        protocol: plugin.map(|p| p.protocol.clone()),
        behaviour: idp.behaviour,
        status,
        problems,
        last_success,
        urls: registration_urls::for_idp(config, idp, plugin),
    }
}

/// `gatehouse idps --format json`: `{"idps": [...]}`.
pub fn to_json(reports: &[IdpReport]) -> Value {
    json!({ "idps": reports.iter().map(IdpReport::to_json).collect::<Vec<_>>() })
}

/// `gatehouse idps`: one block per IdP; `now` (Unix seconds) dates the last success.
pub fn to_human(reports: &[IdpReport], now: i64) -> String {
    let mut out = String::new();
    for (index, report) in reports.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = write_one(&mut out, report, now);
    }
    out
}

fn write_one(out: &mut String, report: &IdpReport, now: i64) -> std::fmt::Result {
    writeln!(
        out,
        "{} ({}): domain `{}`, plugin `{}`{}, {}",
        report.id,
        report.name,
        report.domain,
        report.plugin,
        report
            .protocol
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
        report.behaviour.as_str()
    )?;
    writeln!(out, "  status:       {}", report.status.describe())?;
    for problem in &report.problems {
        writeln!(out, "  error[{}]: {}", problem.code, problem.message)?;
    }
    writeln!(
        out,
        "  last sign-in: {}",
        report
            .last_success
            .map_or_else(|| "never".to_owned(), |at| ago(at, now))
    )?;
    if report.urls.hosts.len() > 1 {
        writeln!(
            out,
            "  register at the IdP (each host's: a sign-in uses the host the browser came on):"
        )?;
    } else {
        writeln!(out, "  register at the IdP:")?;
    }
    out.push_str(&report.urls.to_human("    "));
    Ok(())
}

/// The lines `gatehouse explain --domain` adds for `reports` (one domain's IdPs): every
/// IdP not served with its reason, and the URLs to register for each.
pub fn explain_section(reports: &[IdpReport]) -> String {
    let mut out = String::new();
    let unserved: Vec<&IdpReport> = reports
        .iter()
        .filter(|r| r.status != IdpStatus::Loaded)
        .collect();
    if !unserved.is_empty() {
        out.push_str("\nIdPs not served (the login page leaves them out):\n");
        for report in unserved {
            out.push_str(&format!(
                "  `{}` (plugin `{}`): {}\n",
                report.id,
                report.plugin,
                report.status.describe()
            ));
        }
    }
    if !reports.is_empty() {
        out.push_str(
            "\nURLs to register at each IdP (they use the host the browser came on: one set per host):\n",
        );
        for report in reports {
            out.push_str(&format!("  `{}`:\n", report.id));
            out.push_str(&report.urls.to_human("      "));
        }
    }
    out
}

/// `at` relative to `now`, with the date: `2026-12-03 17:40:00 UTC (5 minutes ago)`.
fn ago(at: i64, now: i64) -> String {
    let seconds = now.saturating_sub(at).max(0);
    let relative = match seconds {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} minutes ago", seconds / 60),
        3600..86400 => format!("{} hours ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86400),
    };
    format!("{} ({relative})", crate::clock::utc_text(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_rounds_down_to_the_unit() {
        assert!(ago(100, 100).ends_with("(just now)"));
        assert!(ago(0, 7_200).ends_with("(2 hours ago)"));
        assert!(ago(0, 86_400 * 3 + 5).ends_with("(3 days ago)"));
    }
}
