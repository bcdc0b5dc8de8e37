//! Plugin API 1.3 data of the online check (`gatehouse check --online`): what a plugin
//! found when it reached its provider — an [`OnlineReport`] of [`OnlineFinding`]s, each
//! with a [`Severity`]. Plain data the plugin builds and the host turns into diagnostics;
//! no I/O here.
//!
//! Both types are frozen with 1.3 like every released `#[repr(C)]` type: more about a
//! check goes into a new type returned by a new method. [`Severity`] is an integer
//! newtype, so a later version may add severities (a host reads an unknown one as an error).

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};

/// How serious a finding is (API 1.3).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Severity(pub u8);

impl Severity {
    /// The provider cannot be used as configured: sign-ins will fail.
    pub const ERROR: Self = Self(1);
    /// Sign-ins work today but something needs attention (a certificate about to expire).
    pub const WARNING: Self = Self(2);
    /// Information only (what was checked, or why nothing could be).
    pub const NOTE: Self = Self(3);

    /// A short stable name: `error`, `warning` or `note` (an unknown value is an error).
    pub fn name(self) -> &'static str {
        match self {
            Self::WARNING => "warning",
            Self::NOTE => "note",
            _ => "error",
        }
    }
}

impl std::fmt::Debug for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing the online check found (API 1.3).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct OnlineFinding {
    pub severity: Severity,
    /// One sentence for the admin: what was reached and what was wrong with it. It may
    /// name URLs, never a secret.
    pub message: RString,
    /// How to fix it, if the plugin knows.
    pub help: ROption<RString>,
    /// The `[idp.settings]` key the finding is about (`issuer`, `idp_metadata_url`), so
    /// the host can point at its line.
    pub setting: ROption<RString>,
}

impl OnlineFinding {
    pub fn new(severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            message: RString::from(message.into()),
            help: ROption::RNone,
            setting: ROption::RNone,
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::ERROR, message)
    }
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::WARNING, message)
    }
    pub fn note(message: impl Into<String>) -> Self {
        Self::new(Severity::NOTE, message)
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = ROption::RSome(RString::from(help.into()));
        self
    }
    pub fn with_setting(mut self, setting: &str) -> Self {
        self.setting = ROption::RSome(RString::from(setting));
        self
    }
}

/// What [`IdentityProvider::check_online`](crate::IdentityProvider::check_online) answers
/// (API 1.3): the findings (none when all is well) and, for the admin's reassurance, a
/// short line per thing that was reached and found usable.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Default)]
pub struct OnlineReport {
    pub findings: RVec<OnlineFinding>,
    /// What was checked and found usable: `discovery document at https://…/.well-known/…`.
    pub checked: RVec<RString>,
}

impl OnlineReport {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a finding.
    pub fn push(&mut self, finding: OnlineFinding) {
        self.findings.push(finding);
    }
    /// Records something reached and found usable.
    pub fn checked(&mut self, what: impl Into<String>) {
        self.checked.push(RString::from(what.into()));
    }
    /// The same report with a finding added.
    pub fn with(mut self, finding: OnlineFinding) -> Self {
        self.push(finding);
        self
    }
    /// Whether any finding is an error (an unknown severity counts as one).
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity != Severity::WARNING && f.severity != Severity::NOTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_severity_reads_as_an_error() {
        assert_eq!(Severity(9).name(), "error");
        let report = OnlineReport::new().with(OnlineFinding::new(Severity(9), "from 1.4"));
        assert!(report.has_errors());
        let report = OnlineReport::new()
            .with(OnlineFinding::warning("soon").with_setting("idp_metadata"))
            .with(OnlineFinding::note("fyi"));
        assert!(!report.has_errors());
    }
}
