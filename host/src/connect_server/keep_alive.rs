//! The Connect server's keep-alive (protocol §4.2): a Gatehouse session that a Connect
//! client still uses does not run out. Only a session that would otherwise end is looked
//! at (a request presenting an expired session, or the cleanup sweep about to delete one),
//! so ordinary requests never pay for it: each of its clients is asked
//! `is_sso_user_active` within [`ACTIVE_CHECK_TIMEOUT`], and any `true` moves the expiry on
//! by the session lifetime; otherwise the session ends everywhere (`propagate`). Not the
//! session's normal lifetime, which the host sets at sign-in.

use gatehouse_connect_wire::{ClientCall, Token, services::read_active_reply};
use gatehouse_store::{ConnectClient, Session, StoreError};

use crate::{state::AppState, web::session::seconds};

use super::{
    client_calls::{self, ACTIVE_CHECK_TIMEOUT},
    propagate,
};

/// How many expired sessions one sweep asks about at most (each may wait on clients).
pub const SWEEP_LIMIT: i64 = 200;
/// How many of them are asked about at once.
pub const SWEEP_CONCURRENCY: usize = 16;

/// What the keep-alive did with sessions about to end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeptAlive {
    /// Sessions a client still uses, their expiry moved on.
    pub kept: u64,
    /// Sessions no client uses any more, ended everywhere.
    pub ended: u64,
}

/// Whether any client of `sso` reports its SSO session active. The clients are asked at
/// once; one that does not answer in time counts as "not active".
pub async fn any_client_active(state: &AppState, sso: &[(ConnectClient, String)]) -> bool {
    let mut asks = tokio::task::JoinSet::new();
    for (client, token) in sso {
        let (state, client, token) = (state.clone(), client.clone(), token.clone());
        asks.spawn(async move { client_reports_active(&state, &client, &token).await });
    }
    while let Some(answer) = asks.join_next().await {
        if matches!(answer, Ok(true)) {
            asks.abort_all();
            return true;
        }
    }
    false
}

async fn client_reports_active(state: &AppState, client: &ConnectClient, token: &str) -> bool {
    let (Ok(idnumber), Ok(secret)) = (
        Token::parse(&client.client_idnumber),
        Token::parse(&client.client_secret),
    ) else {
        return false;
    };
    let call = ClientCall::IsSsoUserActive {
        sso_token: Token::parse(token).ok(),
    };
    match client_calls::call_client(
        state,
        &client.client_url,
        &idnumber,
        &secret,
        &call,
        ACTIVE_CHECK_TIMEOUT,
    )
    .await
    {
        Ok(answer) => read_active_reply(answer).unwrap_or_else(|error| {
            tracing::warn!(client = client.client_name, %error, "is_sso_user_active: unusable answer");
            false
        }),
        Err(failure) => {
            tracing::warn!(client = client.client_name, %failure, "is_sso_user_active: no answer");
            false
        }
    }
}

/// A session that has expired by `now`: kept (its expiry moved on, and returned) when a
/// client still uses it, else ended everywhere (`None`). Sessions without Connect SSO
/// sessions, and every session when the server role is off, are left to expire as usual.
pub async fn revive(
    state: &AppState,
    session: &Session,
    now: i64,
) -> Result<Option<Session>, StoreError> {
    let sso = propagate::connect_sso_of(state, &session.id_hash).await?;
    if sso.is_empty() {
        return Ok(None);
    }
    if any_client_active(state, &sso).await {
        let expires_at = now.saturating_add(seconds(state.settings().session_lifetime));
        if state
            .store()
            .extend_session(&session.id_hash, expires_at)
            .await?
        {
            tracing::info!(
                user_id = session.user_id,
                "a Connect client still uses the session; its expiry moved on"
            );
            return Ok(Some(Session {
                expires_at,
                ..session.clone()
            }));
        }
        return Ok(None);
    }
    propagate::end_connect_sso(state, &session.id_hash, sso).await?;
    state.store().delete_session(&session.id_hash).await?;
    Ok(None)
}

/// The session presented with id hash `session_key`, which the store no longer counts as
/// live: revived if a client still uses it (see [`revive`]).
pub async fn revive_presented(
    state: &AppState,
    session_key: &str,
) -> Result<Option<Session>, StoreError> {
    if !super::server_enabled(state) {
        return Ok(None);
    }
    let now = state.now();
    match state.store().session_even_if_expired(session_key).await? {
        Some(session) if session.expires_at <= now => revive(state, &session, now).await,
        _ => Ok(None),
    }
}

/// Before the cleanup sweep deletes expired sessions: each one with Connect SSO sessions is
/// kept or ended everywhere (so its clients hear of it). Up to [`SWEEP_CONCURRENCY`] sessions
/// are asked about at once, so a slow client delays the sweep by about its timeout per batch,
/// not per session.
pub async fn before_sweep(state: &AppState, now: i64) -> Result<KeptAlive, StoreError> {
    let mut outcome = KeptAlive::default();
    if !super::server_enabled(state) {
        return Ok(outcome);
    }
    let keys = state
        .store()
        .expired_sessions_with_connect_sso(now, SWEEP_LIMIT)
        .await?;
    for batch in keys.chunks(SWEEP_CONCURRENCY) {
        let mut asks = tokio::task::JoinSet::new();
        for key in batch {
            let (state, key) = (state.clone(), key.clone());
            asks.spawn(async move {
                match state.store().session_even_if_expired(&key).await? {
                    Some(session) => revive(&state, &session, now).await.map(Some),
                    None => Ok(None),
                }
            });
        }
        while let Some(joined) = asks.join_next().await {
            let answer = joined.map_err(|error| {
                StoreError::Invalid(format!("a keep-alive check stopped: {error}"))
            })?;
            match answer? {
                Some(Some(_)) => outcome.kept += 1,
                Some(None) => outcome.ended += 1,
                None => {}
            }
        }
    }
    Ok(outcome)
}
