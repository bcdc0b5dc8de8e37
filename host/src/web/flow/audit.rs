//! The audit trail of one SSO sign-in's end: every refusal, failure and success writes
//! one row (method `sso`); a success's row is written with the session it starts. Not the test sign-in's own row (`test_sign_in`).
//! Each also writes its log event and counts it (`events`), with the refusal's code.

use gatehouse_store::AuditEvent;

use crate::{
    events::{self, At, Method, Reason},
    state::AppState,
};

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
    /// Where this sign-in happens, for its log events.
    pub fn at(&self) -> At<'_> {
        At {
            domain: self.domain,
            idp: Some(self.idp),
            client: self.ip,
        }
    }

    /// The success's log event, once its row is written.
    pub fn succeeded(&self, user_id: i64) {
        events::sign_in_succeeded(self.state.metrics(), Method::Sso, self.at(), user_id);
    }

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
        code: Reason,
    ) -> AppResult<()> {
        events::sign_in_refused(self.state.metrics(), Method::Sso, self.at(), user_id, code);
        self.write(user_id, username, "refused", reason).await
    }
    pub async fn failed(&self, reason: &str, code: Reason) -> AppResult<()> {
        events::sign_in_failed(self.state.metrics(), self.at(), code);
        self.write(None, "", "failure", reason).await
    }
}
