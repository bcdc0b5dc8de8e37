//! The log events of what matters, defined once: each function here writes ONE tracing event
//! (target `gatehouse::events`, field `event` = its name) and counts it in the host's
//! [`Metrics`], so the log and `/metrics` cannot disagree. Sign-ins (success, refusal,
//! failure), password failures, accounts created or updated by a sign-in, reloads and task
//! runs.
//!
//! Fields: `domain`, `idp`, `user_id`, `client` (the client address) and, for a refusal or
//! failure, `reason`: a stable snake_case code from [`Reason`] (the prose stays in the audit
//! row). The request id is a field of the enclosing request span (`web::trace`), which every
//! event written during a request carries. Never a secret, token, password, username or
//! claim value: only ids, field names and codes.
//!
//! Not the audit log (the store's rows, written beside these by the same callers) and not the
//! access log (`web::trace`).

use gatehouse_resolver::provisioning::Refusal;
use gatehouse_store::{NewTaskRun, TaskOutcome};

use crate::{metrics::Metrics, plugins::CallError};

/// The tracing target of every event here (`RUST_LOG=gatehouse::events=info` keeps them).
pub const TARGET: &str = "gatehouse::events";

/// How someone signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Through an IdP's plugin.
    Sso,
    /// With a local account's password.
    Password,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sso => "sso",
            Self::Password => "password",
        }
    }
}

/// Where a sign-in event happened.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// The domain's name.
    pub domain: &'a str,
    /// The IdP instance's id; `None` for a password sign-in.
    pub idp: Option<&'a str>,
    /// The client's address (as `ClientIp` found it).
    pub client: &'a str,
}

/// Why a sign-in was refused or failed: a stable snake_case code, in logs and as the
/// `reason` label of `gatehouse_sign_in_refusals_total`. docs/operations.md lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(&'static str);

impl Reason {
    // The SSO flow's checks of the answer.
    pub const MISSING_STATE: Self = Self("missing_state");
    pub const UNKNOWN_STATE: Self = Self("unknown_state");
    pub const STATE_OF_ANOTHER_IDP: Self = Self("state_of_another_idp");
    pub const EXPIRED: Self = Self("expired");
    pub const OTHER_BROWSER: Self = Self("other_browser");
    pub const TEST_SIGN_IN_WITHOUT_ADMIN: Self = Self("test_sign_in_without_admin");
    pub const ANSWER_UNREADABLE: Self = Self("answer_unreadable");
    pub const STORED_ANSWER_UNREADABLE: Self = Self("stored_answer_unreadable");
    // The plugin's answer to `complete_login` (its error kind), or the call's limits.
    pub const IDP_INVALID_SETTINGS: Self = Self("idp_invalid_settings");
    pub const IDP_INVALID_RESPONSE: Self = Self("idp_invalid_response");
    pub const IDP_BAD_SIGNATURE: Self = Self("idp_bad_signature");
    pub const IDP_EXPIRED: Self = Self("idp_expired");
    pub const IDP_ACCESS_DENIED: Self = Self("idp_access_denied");
    pub const IDP_UNAVAILABLE: Self = Self("idp_unavailable");
    pub const IDP_UNSUPPORTED: Self = Self("idp_unsupported");
    pub const IDP_INTERNAL: Self = Self("idp_internal");
    pub const PLUGIN_TIMEOUT: Self = Self("plugin_timeout");
    pub const PLUGIN_BUSY: Self = Self("plugin_busy");
    pub const PLUGIN_ABORTED: Self = Self("plugin_aborted");
    // Provisioning (the resolver's refusals).
    pub const MISSING_USERNAME_ATTRIBUTE: Self = Self("missing_username_attribute");
    pub const MALFORMED_IDENTIFIER: Self = Self("malformed_identifier");
    pub const UNVERIFIED_EMAIL: Self = Self("unverified_email");
    pub const NO_ACCOUNT: Self = Self("no_account");
    pub const MISSING_REQUIRED_FIELDS: Self = Self("missing_required_fields");
    pub const AMBIGUOUS_MATCH: Self = Self("ambiguous_match");
    pub const OTHER_BRANCH: Self = Self("other_branch");
    pub const ACCOUNT_SUSPENDED: Self = Self("account_suspended");
    pub const NOT_LINKED: Self = Self("not_linked");
    pub const USERNAME_TAKEN: Self = Self("username_taken");
    // Password sign-in.
    pub const PASSWORD_NOT_OFFERED: Self = Self("password_not_offered");
    pub const THROTTLED: Self = Self("throttled");
    pub const HASHING_BUSY: Self = Self("hashing_busy");
    pub const CONNECT_ACCOUNT: Self = Self("connect_account");
    pub const UNKNOWN_USERNAME: Self = Self("unknown_username");
    pub const WRONG_PASSWORD: Self = Self("wrong_password");

    /// Every code (docs/operations.md lists each; a test keeps them in step).
    pub const ALL: &'static [Self] = &[
        Self::MISSING_STATE,
        Self::UNKNOWN_STATE,
        Self::STATE_OF_ANOTHER_IDP,
        Self::EXPIRED,
        Self::OTHER_BROWSER,
        Self::TEST_SIGN_IN_WITHOUT_ADMIN,
        Self::ANSWER_UNREADABLE,
        Self::STORED_ANSWER_UNREADABLE,
        Self::IDP_INVALID_SETTINGS,
        Self::IDP_INVALID_RESPONSE,
        Self::IDP_BAD_SIGNATURE,
        Self::IDP_EXPIRED,
        Self::IDP_ACCESS_DENIED,
        Self::IDP_UNAVAILABLE,
        Self::IDP_UNSUPPORTED,
        Self::IDP_INTERNAL,
        Self::PLUGIN_TIMEOUT,
        Self::PLUGIN_BUSY,
        Self::PLUGIN_ABORTED,
        Self::MISSING_USERNAME_ATTRIBUTE,
        Self::MALFORMED_IDENTIFIER,
        Self::UNVERIFIED_EMAIL,
        Self::NO_ACCOUNT,
        Self::MISSING_REQUIRED_FIELDS,
        Self::AMBIGUOUS_MATCH,
        Self::OTHER_BRANCH,
        Self::ACCOUNT_SUSPENDED,
        Self::NOT_LINKED,
        Self::USERNAME_TAKEN,
        Self::PASSWORD_NOT_OFFERED,
        Self::THROTTLED,
        Self::HASHING_BUSY,
        Self::CONNECT_ACCOUNT,
        Self::UNKNOWN_USERNAME,
        Self::WRONG_PASSWORD,
    ];

    /// The code.
    pub fn code(self) -> &'static str {
        self.0
    }

    /// The code of a failed plugin call.
    pub fn of_call(error: &CallError) -> Self {
        use gatehouse_plugin_api::ErrorKind;
        match error {
            CallError::Plugin(error) => match error.kind {
                ErrorKind::INVALID_SETTINGS => Self::IDP_INVALID_SETTINGS,
                ErrorKind::INVALID_RESPONSE => Self::IDP_INVALID_RESPONSE,
                ErrorKind::BAD_SIGNATURE => Self::IDP_BAD_SIGNATURE,
                ErrorKind::EXPIRED => Self::IDP_EXPIRED,
                ErrorKind::ACCESS_DENIED => Self::IDP_ACCESS_DENIED,
                ErrorKind::IDP_UNAVAILABLE => Self::IDP_UNAVAILABLE,
                ErrorKind::UNSUPPORTED => Self::IDP_UNSUPPORTED,
                _ => Self::IDP_INTERNAL,
            },
            CallError::TimedOut(_) => Self::PLUGIN_TIMEOUT,
            CallError::Busy(_) => Self::PLUGIN_BUSY,
            CallError::Aborted(_) => Self::PLUGIN_ABORTED,
        }
    }

    /// The code of a provisioning refusal.
    pub fn of_refusal(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::MissingUsernameAttribute { .. } => Self::MISSING_USERNAME_ATTRIBUTE,
            Refusal::MalformedIdentifier { .. } => Self::MALFORMED_IDENTIFIER,
            Refusal::UnverifiedEmail => Self::UNVERIFIED_EMAIL,
            Refusal::NoAccountAndNoCreation => Self::NO_ACCOUNT,
            Refusal::MissingRequiredFields { .. } => Self::MISSING_REQUIRED_FIELDS,
            Refusal::Ambiguous { .. } => Self::AMBIGUOUS_MATCH,
            Refusal::OtherBranch { .. } => Self::OTHER_BRANCH,
            Refusal::Suspended => Self::ACCOUNT_SUSPENDED,
            Refusal::NotLinked { .. } => Self::NOT_LINKED,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Someone signed in.
pub fn sign_in_succeeded(metrics: &Metrics, method: Method, at: At<'_>, user_id: i64) {
    tracing::info!(
        target: TARGET,
        event = "sign_in_succeeded",
        method = method.as_str(),
        domain = at.domain,
        idp = at.idp,
        user_id,
        client = at.client,
        "sign-in succeeded"
    );
    metrics.sign_in(method.as_str(), at.idp.unwrap_or(""), "success", None);
}

/// A sign-in was refused: the answer or the account did not pass a check.
pub fn sign_in_refused(
    metrics: &Metrics,
    method: Method,
    at: At<'_>,
    user_id: Option<i64>,
    reason: Reason,
) {
    tracing::info!(
        target: TARGET,
        event = "sign_in_refused",
        method = method.as_str(),
        domain = at.domain,
        idp = at.idp,
        user_id,
        client = at.client,
        reason = reason.code(),
        "sign-in refused"
    );
    metrics.sign_in(
        method.as_str(),
        at.idp.unwrap_or(""),
        "refused",
        Some(reason.code()),
    );
}

/// An SSO sign-in failed at the IdP's plugin (it refused the answer, or the call failed).
pub fn sign_in_failed(metrics: &Metrics, at: At<'_>, reason: Reason) {
    tracing::warn!(
        target: TARGET,
        event = "sign_in_failed",
        method = Method::Sso.as_str(),
        domain = at.domain,
        idp = at.idp,
        client = at.client,
        reason = reason.code(),
        "sign-in failed at the identity provider's plugin"
    );
    metrics.sign_in(
        Method::Sso.as_str(),
        at.idp.unwrap_or(""),
        "failure",
        Some(reason.code()),
    );
}

/// A password did not open an account (unknown username or wrong password).
pub fn password_failed(metrics: &Metrics, at: At<'_>, user_id: Option<i64>, reason: Reason) {
    tracing::info!(
        target: TARGET,
        event = "password_failed",
        method = Method::Password.as_str(),
        domain = at.domain,
        user_id,
        client = at.client,
        reason = reason.code(),
        "password sign-in failed"
    );
    metrics.sign_in(
        Method::Password.as_str(),
        "",
        "failure",
        Some(reason.code()),
    );
}

/// A sign-in created an account.
pub fn account_created(metrics: &Metrics, at: At<'_>, user_id: i64) {
    tracing::info!(
        target: TARGET,
        event = "account_created",
        domain = at.domain,
        idp = at.idp,
        user_id,
        client = at.client,
        "account created"
    );
    metrics.account(at.idp.unwrap_or(""), "created");
}

/// A sign-in updated an account's `fields` (their names; never the values).
pub fn account_updated(metrics: &Metrics, at: At<'_>, user_id: i64, fields: &[&str]) {
    tracing::info!(
        target: TARGET,
        event = "account_updated",
        domain = at.domain,
        idp = at.idp,
        user_id,
        client = at.client,
        fields = %fields.join(","),
        "account updated"
    );
    metrics.account(at.idp.unwrap_or(""), "updated");
}

/// A profile edit changed an account's `fields` (their names; never the values): by the
/// account's own user (`/me/profile`) or by an administrator (`/admin/users/{id}/profile`).
pub fn account_edited(
    metrics: &Metrics,
    at: At<'_>,
    user_id: i64,
    by_admin: Option<i64>,
    fields: &[&str],
) {
    tracing::info!(
        target: TARGET,
        event = "account_edited",
        domain = at.domain,
        user_id,
        admin_id = by_admin,
        client = at.client,
        fields = %fields.join(","),
        "account edited"
    );
    let change = if by_admin.is_some() {
        "edited_by_admin"
    } else {
        "edited_by_owner"
    };
    metrics.account("", change);
}

/// A user changed their own password (`/me/password`); their other sessions ended.
pub fn password_changed(metrics: &Metrics, at: At<'_>, user_id: i64) {
    tracing::info!(
        target: TARGET,
        event = "password_changed",
        domain = at.domain,
        user_id,
        client = at.client,
        "password changed by its user"
    );
    metrics.account("", "password_changed");
}

/// A password change was refused: the current password was wrong (a password failure,
/// counted by the login throttle like one at sign-in).
pub fn password_change_refused(metrics: &Metrics, at: At<'_>, user_id: i64, reason: Reason) {
    tracing::info!(
        target: TARGET,
        event = "password_change_refused",
        domain = at.domain,
        user_id,
        client = at.client,
        reason = reason.code(),
        "password change refused"
    );
    metrics.account("", "password_change_refused");
}

/// A reload swapped the new configuration in.
pub fn config_reloaded(metrics: &Metrics, warnings: usize) {
    tracing::info!(
        target: TARGET,
        event = "config_reloaded",
        warnings,
        "configuration reloaded: new requests use it"
    );
    metrics.reload("applied");
}

/// A reload was refused; the running configuration keeps serving.
pub fn config_reload_refused(metrics: &Metrics, errors: usize) {
    tracing::warn!(
        target: TARGET,
        event = "config_reload_refused",
        errors,
        "configuration reload refused: the running configuration keeps serving"
    );
    metrics.reload("refused");
}

/// A scheduled task ran (and its run was recorded).
pub fn task_ran(metrics: &Metrics, run: &NewTaskRun) {
    let task = run.task.as_str();
    let idp = run.idp_id.as_deref();
    let outcome = match run.outcome {
        TaskOutcome::Ok => "ok",
        TaskOutcome::Failed => "failed",
        TaskOutcome::Skipped => "skipped",
    };
    let error = run.error.as_deref();
    match run.outcome {
        TaskOutcome::Failed => tracing::warn!(
            target: TARGET,
            event = "task_ran",
            task,
            idp,
            outcome,
            duration_ms = run.duration_ms,
            holder = run.holder.as_str(),
            error,
            "task failed"
        ),
        _ => tracing::info!(
            target: TARGET,
            event = "task_ran",
            task,
            idp,
            outcome,
            duration_ms = run.duration_ms,
            holder = run.holder.as_str(),
            summary = run.summary.as_str(),
            reason = error,
            "task ran"
        ),
    }
    metrics.task_run(task, idp.unwrap_or(""), outcome);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn reason_codes_are_unique_snake_case_and_documented() {
        let operations = include_str!("../../docs/operations.md");
        let mut seen = HashSet::new();
        for reason in Reason::ALL {
            let code = reason.code();
            assert!(seen.insert(code), "`{code}` twice");
            assert!(
                !code.is_empty()
                    && code
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "`{code}` is not snake_case"
            );
            assert!(
                operations.contains(&format!("`{code}`")),
                "docs/operations.md does not list the reason code `{code}`"
            );
        }
    }
}
