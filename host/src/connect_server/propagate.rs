//! Logout propagation from the Connect server (protocol §4.4): when a Gatehouse session
//! ends (signing out, an IdP's or a client's logout, a new sign-in replacing it, expiry), its
//! Connect SSO sessions are deleted and every client that had one is told `kill_sso_user`
//! with its SSO token. The calls run off the request path, each within
//! [`KILL_TIMEOUT`]; a client that does not answer is logged, never fatal. Without
//! `[connect_server] enabled` nothing here touches a client. Not the client's side of it.

use std::time::Duration;

use gatehouse_connect_wire::{ClientCall, JSend, Token};
use gatehouse_store::{ConnectClient, StoreError};
use tokio::task::JoinHandle;

use crate::state::AppState;

use super::client_calls;

/// How long one client's `kill_sso_user` may take.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The clients being told, running off the request path. Dropping it lets them finish on
/// their own; tests await it.
#[derive(Debug, Default)]
pub struct Propagation {
    pub clients: usize,
    handle: Option<JoinHandle<()>>,
}

impl Propagation {
    /// Waits until every client was told (or failed).
    pub async fn finished(self) {
        if let Some(handle) = self.handle {
            let _ = handle.await;
        }
    }
}

/// Ends the Gatehouse session `session_key` (its id hash) and its Connect SSO sessions, and
/// tells each of their clients `kill_sso_user`.
pub async fn end_session_everywhere(
    state: &AppState,
    session_key: &str,
) -> Result<Propagation, StoreError> {
    // The SSO rows are read before the session goes, whatever the schema's cascades do.
    let sso = connect_sso_of(state, session_key).await?;
    state.store().delete_session(session_key).await?;
    finish(state, session_key, sso).await
}

/// The Connect part alone, for a session that was just deleted with others (an IdP's
/// logout ends every session of a subject in one statement): its SSO rows must have been
/// read by [`connect_sso_of`] before the delete.
pub async fn end_connect_sso(
    state: &AppState,
    session_key: &str,
    sso: Vec<(ConnectClient, String)>,
) -> Result<Propagation, StoreError> {
    finish(state, session_key, sso).await
}

/// Ends everywhere the Gatehouse sessions whose user the directory deleted (the session went
/// with it, without a word to the clients) or suspended: the clients are told
/// `kill_sso_user`, the SSO sessions (and a suspended user's session) are deleted; waits
/// until each client was told. The host's cleanup runs it; returns how many sessions.
pub async fn orphans(state: &AppState) -> Result<usize, StoreError> {
    if !super::server_enabled(state) {
        return Ok(0);
    }
    let keys = state.store().orphaned_connect_sso_session_keys().await?;
    for key in &keys {
        end_session_everywhere(state, key).await?.finished().await;
    }
    Ok(keys.len())
}

/// The Connect SSO sessions of a Gatehouse session: each client and the token it holds.
/// Empty (and no query) when the server role is off.
pub async fn connect_sso_of(
    state: &AppState,
    session_key: &str,
) -> Result<Vec<(ConnectClient, String)>, StoreError> {
    if !super::server_enabled(state) {
        return Ok(Vec::new());
    }
    state
        .store()
        .connect_sso_sessions_of_session(session_key)
        .await
}

async fn finish(
    state: &AppState,
    session_key: &str,
    sso: Vec<(ConnectClient, String)>,
) -> Result<Propagation, StoreError> {
    if sso.is_empty() {
        return Ok(Propagation::default());
    }
    state
        .store()
        .delete_connect_sso_sessions_of_session(session_key)
        .await?;
    let clients = sso.len();
    let state = state.clone();
    let handle = tokio::spawn(async move {
        let mut calls = tokio::task::JoinSet::new();
        for (client, token) in sso {
            calls.spawn(kill_at_client(state.clone(), client, token));
        }
        while calls.join_next().await.is_some() {}
    });
    Ok(Propagation {
        clients,
        handle: Some(handle),
    })
}

/// `kill_sso_user(ssotoken)` at one client; failures are logged (without the token).
async fn kill_at_client(state: AppState, client: ConnectClient, token: String) {
    let (Ok(idnumber), Ok(secret)) = (
        Token::parse(&client.client_idnumber),
        Token::parse(&client.client_secret),
    ) else {
        tracing::warn!(
            client = client.client_name,
            "a Connect client's stored credentials are malformed; kill_sso_user not sent"
        );
        return;
    };
    let call = ClientCall::KillSsoUser {
        sso_token: Token::parse(&token).ok(),
    };
    match client_calls::call_client(
        &state,
        &client.client_url,
        &idnumber,
        &secret,
        &call,
        KILL_TIMEOUT,
    )
    .await
    {
        Ok(JSend::Success { .. }) => {
            tracing::debug!(
                client = client.client_name,
                "kill_sso_user: the client ended its session"
            );
        }
        Ok(refused) => tracing::warn!(
            client = client.client_name,
            url = client.client_url,
            answer = %describe(&refused),
            "kill_sso_user: the client refused"
        ),
        Err(failure) => tracing::warn!(
            client = client.client_name,
            url = client.client_url,
            %failure,
            "kill_sso_user: the client could not be told"
        ),
    }
}

fn describe(answer: &JSend) -> String {
    match answer {
        JSend::Error { message, .. } => message.clone(),
        JSend::Fail { data } => format!("fail {data}"),
        JSend::Success { .. } => "success".into(),
    }
}
