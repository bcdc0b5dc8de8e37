//! Sessions as the web layer sees them: who is signed in, starting a session with
//! a fresh id (no fixation), and the CSRF token of the browser.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use gatehouse_store::{Session, User};

use crate::{plugins::capabilities::now_unix_seconds, state::AppState};

use super::{
    error::AppResult,
    http_util::{CSRF_COOKIE, SESSION_COOKIE, cookie, random_token, set_cookie, token_hash},
};

/// The signed-in user and their session, if the request carries a live session.
pub async fn current(state: &AppState, headers: &HeaderMap) -> AppResult<Option<(Session, User)>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = state
        .store()
        .session(&token_hash(token), now_unix_seconds())
        .await?
    else {
        return Ok(None);
    };
    let user = state.store().user_by_id(session.user_id).await?;
    Ok(user.filter(|u| !u.suspended).map(|user| (session, user)))
}

/// Starts a session for `user_id` under a new random id, ending the one the browser
/// had (if any), and returns the cookie to set.
pub async fn start(
    state: &AppState,
    headers: &HeaderMap,
    user_id: i64,
    idp_id: Option<String>,
    logout_state: Vec<u8>,
) -> AppResult<HeaderValue> {
    if let Some(old) = cookie(headers, SESSION_COOKIE) {
        state.store().delete_session(&token_hash(old)).await?;
    }
    let token = random_token();
    let now = now_unix_seconds();
    let lifetime = state.settings().session_lifetime;
    let session = Session {
        id_hash: token_hash(&token),
        user_id,
        idp_id,
        logout_state,
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + seconds(lifetime),
    };
    state.store().create_session(&session).await?;
    Ok(set_cookie(
        SESSION_COOKIE,
        &token,
        Some(lifetime.as_secs()),
        state.settings().secure_cookies,
    ))
}

/// The browser's CSRF token, and the cookie to set when it had none yet.
pub fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(token) if token.len() >= 32 => (token.to_owned(), None),
        _ => {
            let token = random_token();
            let header = set_cookie(CSRF_COOKIE, &token, None, state.settings().secure_cookies);
            (token, Some(header))
        }
    }
}

/// Whether a submitted form's `csrf` field matches the browser's CSRF cookie.
pub fn csrf_ok(headers: &HeaderMap, submitted: &str) -> bool {
    cookie(headers, CSRF_COOKIE)
        .is_some_and(|expected| super::http_util::tokens_match(expected, submitted))
}

pub fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
