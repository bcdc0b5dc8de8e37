//! The audit trail of one SSO sign-in's end: every refusal, failure and success writes
//! one row (method `sso`); a success's row is written with the session it starts. Not the test sign-in's own row (`test_sign_in`).

use gatehouse_store::AuditEvent;

use crate::state::AppState;

use crate::web::error::{AppError, AppResult};

/// Writes the audit trail of one SSO callback.
pub(super) struct Auditor<'a> {
    pub state: &'a AppState,
    pub domain: &'a str,
    pub idp: &'a str,
    pub ip: &'a str,
    pub at: i64,
}

impl Auditor<'_> {
    /// The success row, for the caller to write with the sign-in's other writes.
    pub fn success(&self, user_id: Option<i64>, username: &str) -> AuditEvent {
        self.event(user_id, username, "success", "")
    }

    fn event(
        &self,
        user_id: Option<i64>,
        username: &str,
        outcome: &str,
        reason: &str,
    ) -> AuditEvent {
        AuditEvent {
            at: self.at,
            domain: self.domain.to_owned(),
            idp_id: Some(self.idp.to_owned()),
            user_id,
            username: username.to_owned(),
            method: "sso".into(),
            outcome: outcome.into(),
            reason: reason.into(),
            ip: self.ip.to_owned(),
        }
    }

    async fn write(
        &self,
        user_id: Option<i64>,
        username: &str,
        outcome: &str,
        reason: &str,
    ) -> AppResult<()> {
        let event = self.event(user_id, username, outcome, reason);
        self.state
            .store()
            .audit(&event)
            .await
            .map_err(AppError::from)
    }
    pub async fn refused(
        &self,
        user_id: Option<i64>,
        username: &str,
        reason: &str,
    ) -> AppResult<()> {
        self.write(user_id, username, "refused", reason).await
    }
    pub async fn failed(&self, reason: &str) -> AppResult<()> {
        self.write(None, "", "failure", reason).await
    }
}
