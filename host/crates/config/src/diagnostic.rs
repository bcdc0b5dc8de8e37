//! Diagnostics: findings about a configuration, as data, and their stable codes. It is not the
//! place where findings are made (see `schema`, `checks` and the host's resolver) nor where they
//! are printed (see `render`).

use std::path::PathBuf;

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::position::Location;

/// The stable diagnostic codes of INTERFACES.md (and the ones this crate adds).
pub mod codes {
    // Schema findings made by this crate.
    pub const UNKNOWN_KEY: &str = "unknown-key";
    pub const INVALID_VALUE: &str = "invalid-value";
    pub const MISSING_KEY: &str = "missing-key";
    pub const DUPLICATE_ID: &str = "duplicate-id";
    /// A host name listed twice, in one domain or in two (each host picks one domain).
    pub const DUPLICATE_HOST: &str = "duplicate-host";
    pub const UNKNOWN_PLUGIN: &str = "unknown-plugin";
    pub const UNKNOWN_DOMAIN: &str = "unknown-domain";
    pub const UNKNOWN_FIELD: &str = "unknown-field";
    pub const SECRET_UNAVAILABLE: &str = "secret-unavailable";
    pub const NO_DOMAINS: &str = "no-domains";
    /// The file could not be read (see [`crate::LoadError::Read`]).
    pub const READ_ERROR: &str = "read-error";
    /// The file is not valid TOML (see [`crate::LoadError::Parse`]).
    pub const SYNTAX_ERROR: &str = "syntax-error";

    // Findings made by the host (plugin validation and the conflict resolver).
    pub const INVALID_SETTINGS: &str = "invalid-settings";
    pub const DUPLICATE_PROTOCOL: &str = "duplicate-protocol";
    pub const MULTIPLE_REDIRECTS: &str = "multiple-redirects";
    pub const REDIRECT_WITH_IDP_LOGOUT: &str = "redirect-with-idp-logout";
    pub const LOCKOUT: &str = "lockout";
    pub const UNTESTED_REDIRECT: &str = "untested-redirect";
    pub const FIELD_MAPPED_TWICE: &str = "field-mapped-twice";
    pub const ATTRIBUTE_MAPPED_TWICE: &str = "attribute-mapped-twice";
    pub const MANDATORY_FIELD_UNMAPPED: &str = "mandatory-field-unmapped";
    pub const MULTIPLE_PROVISIONERS: &str = "multiple-provisioners";
    pub const UPDATE_DISAGREEMENT: &str = "update-disagreement";
    pub const LOCK_DISAGREEMENT: &str = "lock-disagreement";
    pub const LOCKED_MANDATORY_UNPROVISIONED: &str = "locked-mandatory-unprovisioned";
    pub const CONNECT_GUEST_ACCESS: &str = "connect-guest-access";
    pub const CONNECT_MAPPING_EDITABLE: &str = "connect-mapping-editable";
    pub const EXTERNAL_URL_SHADOWS: &str = "external-url-shadows";
    /// `logout.at_idp = true` on an IdP whose plugin cannot sign out at the IdP.
    pub const LOGOUT_UNSUPPORTED: &str = "logout-unsupported";
    /// A domain redirects automatically yet also has button IdPs, seen only with `?nosso=1`.
    pub const REDIRECT_SHADOWS_BUTTONS: &str = "redirect-shadows-buttons";
    /// An IdP matches users by a field they may edit on their own profile.
    pub const MATCH_FIELD_EDITABLE: &str = "match-field-editable";
    /// An IdP identifies users by email without saying whether it verifies addresses.
    pub const EMAIL_TRUST_UNSET: &str = "email-trust-unset";
    /// A SAML IdP identifies users by email; SAML has no verification claim to check.
    pub const EMAIL_UNVERIFIABLE: &str = "email-unverifiable";
    /// Two IdPs of one domain declare the same fixed protocol path (plugin routes).
    pub const ROUTE_CONFLICT: &str = "route-conflict";
    /// A key that this IdP's protocol does not use (Connect's usernames and matching are
    /// its own): it is ignored.
    pub const IGNORED_KEY: &str = "ignored-key";
    /// An enabled plugin library did not load.
    pub const PLUGIN_LOAD_FAILED: &str = "plugin-load-failed";
    /// An IdP's `tasks` names a task its plugin's manifest does not declare.
    pub const UNKNOWN_TASK: &str = "unknown-task";

    // Findings of `gatehouse check --online`, made by the plugins (plugin API 1.3).
    /// An IdP's provider cannot be used as configured: it is unreachable, or it answered
    /// what a sign-in could not use (another issuer, no usable key, no metadata).
    pub const IDP_UNREACHABLE: &str = "idp-unreachable";
    /// An IdP's provider works, but something needs attention (a signing certificate that
    /// expires soon).
    pub const IDP_ONLINE_CHECK: &str = "idp-online-check";

    /// Every code above: `docs/diagnostics.md` documents exactly these (a test keeps the two
    /// in step). A new code is added here and there.
    pub const ALL: &[&str] = &[
        UNKNOWN_KEY,
        INVALID_VALUE,
        MISSING_KEY,
        DUPLICATE_ID,
        DUPLICATE_HOST,
        UNKNOWN_PLUGIN,
        UNKNOWN_DOMAIN,
        UNKNOWN_FIELD,
        SECRET_UNAVAILABLE,
        NO_DOMAINS,
        READ_ERROR,
        SYNTAX_ERROR,
        INVALID_SETTINGS,
        DUPLICATE_PROTOCOL,
        MULTIPLE_REDIRECTS,
        REDIRECT_WITH_IDP_LOGOUT,
        LOCKOUT,
        UNTESTED_REDIRECT,
        FIELD_MAPPED_TWICE,
        ATTRIBUTE_MAPPED_TWICE,
        MANDATORY_FIELD_UNMAPPED,
        MULTIPLE_PROVISIONERS,
        UPDATE_DISAGREEMENT,
        LOCK_DISAGREEMENT,
        LOCKED_MANDATORY_UNPROVISIONED,
        CONNECT_GUEST_ACCESS,
        CONNECT_MAPPING_EDITABLE,
        EXTERNAL_URL_SHADOWS,
        LOGOUT_UNSUPPORTED,
        REDIRECT_SHADOWS_BUTTONS,
        MATCH_FIELD_EDITABLE,
        EMAIL_TRUST_UNSET,
        EMAIL_UNVERIFIABLE,
        ROUTE_CONFLICT,
        IGNORED_KEY,
        PLUGIN_LOAD_FAILED,
        UNKNOWN_TASK,
        IDP_UNREACHABLE,
        IDP_ONLINE_CHECK,
    ];
}

/// How bad a finding is: errors stop the configuration from being used, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding about the configuration. Diagnostics are data, not errors.
///
/// Serialises to `{"code","severity","message","file","line","column","idp"?,"domain"?,"help"?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// A stable code from [`codes`].
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: PathBuf,
    /// Where the offending key or value was written; `Location::default()` for the whole file.
    pub location: Location,
    pub domain: Option<String>,
    pub idp: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(
        code: &'static str,
        severity: Severity,
        message: impl Into<String>,
        file: impl Into<PathBuf>,
        location: Location,
    ) -> Self {
        Self {
            code,
            severity,
            message: message.into(),
            file: file.into(),
            location,
            domain: None,
            idp: None,
            help: None,
        }
    }

    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        file: impl Into<PathBuf>,
        location: Location,
    ) -> Self {
        Self::new(code, Severity::Error, message, file, location)
    }

    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        file: impl Into<PathBuf>,
        location: Location,
    ) -> Self {
        Self::new(code, Severity::Warning, message, file, location)
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    #[must_use]
    pub fn with_idp(mut self, idp: impl Into<String>) -> Self {
        self.idp = Some(idp.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let optional = [&self.idp, &self.domain, &self.help]
            .iter()
            .filter(|o| o.is_some())
            .count();
        let mut s = serializer.serialize_struct("Diagnostic", 6 + optional)?;
        s.serialize_field("code", self.code)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("file", &self.file.to_string_lossy())?;
        s.serialize_field("line", &self.location.line)?;
        s.serialize_field("column", &self.location.column)?;
        if let Some(idp) = &self.idp {
            s.serialize_field("idp", idp)?;
        }
        if let Some(domain) = &self.domain {
            s.serialize_field("domain", domain)?;
        }
        if let Some(help) = &self.help {
            s.serialize_field("help", help)?;
        }
        s.end()
    }
}
