//! Carries out the actions a plugin returns as data (in an inbound reply or a scheduled
//! task's output), always scoped to the IdP instance that returned them, and audits each.
//! It is not where actions come from, and plugins have no other way to change the host's
//! state: the host lends them questions (`sessions_alive`), never writes.

use gatehouse_plugin_api::{ActionKind, HostAction};
use gatehouse_store::{AuditEvent, StoreError};

use crate::{connect_server::propagate, state::AppState};

/// Who sent the actions, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ActionSource<'a> {
    /// The IdP instance whose plugin returned them; every action is confined to it.
    pub idp_id: &'a str,
    /// The domain the request came to (empty for a scheduled task).
    pub domain: &'a str,
    /// The client address of an inbound request (empty for a task).
    pub ip: &'a str,
    /// The route or task, e.g. `POST /sso/saml/logout`.
    pub origin: &'a str,
}

/// What [`apply`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub sessions_ended: u64,
    /// The plugin asked for the browser to go on to the IdP's logout landing page
    /// (1.2's `SHOW_LOGOUT_LANDING`); only an inbound reply to a browser can honour it.
    pub show_logout_landing: bool,
    /// Actions refused or of a kind this host does not know, each with the reason.
    pub skipped: Vec<String>,
}

/// Applies `actions` in order. A store failure stops at once (what was done stays done:
/// each action is one statement, and ending a session twice is harmless). Sessions ended
/// here end at this host's Connect clients too (`connect_server::propagate`).
pub async fn apply(
    state: &AppState,
    source: ActionSource<'_>,
    actions: &[HostAction],
) -> Result<Applied, StoreError> {
    let (store, now) = (state.store(), state.now());
    let mut applied = Applied::default();
    for action in actions {
        match action.kind {
            ActionKind::END_SESSIONS => {
                let selector = &action.sessions;
                if selector.is_empty() {
                    // Never "every session of the IdP": a plugin bug must not sign out
                    // everyone.
                    applied
                        .skipped
                        .push("end-sessions without a subject or logout state".into());
                    continue;
                }
                let (subject, logout_state) = selector.filters();
                // Read before the delete: each ended session's Connect SSO sessions.
                let mut connect_sso = Vec::new();
                for key in store
                    .idp_session_keys(source.idp_id, subject, logout_state)
                    .await?
                {
                    let sso = propagate::connect_sso_of(state, &key).await?;
                    if !sso.is_empty() {
                        connect_sso.push((key, sso));
                    }
                }
                let ended = store
                    .delete_idp_sessions(source.idp_id, subject, logout_state)
                    .await?;
                for (key, sso) in connect_sso {
                    propagate::end_connect_sso(state, &key, sso).await?;
                }
                applied.sessions_ended += ended;
                store
                    .audit(&AuditEvent {
                        at: now,
                        domain: source.domain.to_owned(),
                        idp_id: Some(source.idp_id.to_owned()),
                        user_id: None,
                        username: subject.unwrap_or_default().to_owned(),
                        method: "idp-logout".into(),
                        outcome: "success".into(),
                        reason: format!("{ended} session(s) ended by {}", source.origin),
                        ip: source.ip.to_owned(),
                    })
                    .await?;
            }
            ActionKind::SHOW_LOGOUT_LANDING => applied.show_logout_landing = true,
            ActionKind(other) => applied.skipped.push(format!("unknown action kind {other}")),
        }
    }
    if !applied.skipped.is_empty() {
        tracing::warn!(
            idp = source.idp_id,
            origin = source.origin,
            skipped = ?applied.skipped,
            "skipped plugin actions"
        );
    }
    Ok(applied)
}
