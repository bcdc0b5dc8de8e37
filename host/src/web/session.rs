//! Sessions as the web layer sees them: who is signed in (on this request's domain only),
//! starting a session with a fresh id (no fixation), and the browser's CSRF token, which
//! the host mints and never adopts from the browser.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use gatehouse_store::{Session, User};

use crate::state::AppState;

use super::{
    browser_tokens::Purpose,
    error::{AppError, AppResult},
    http_util::{
        CSRF_COOKIE, SESSION_COOKIE, cookie, request_host, set_cookie, token_hash, tokens_match,
    },
};

/// The signed-in user and their session, if the request carries a live session that was
/// made on the domain this request is for. A session from another domain (an EE domain's
/// on the root host, say) is not a session here. A user who must change their password
/// is refused ([`password_change_required`]) until they have: only the password page and
/// signing out ask [`current_any`] instead.
pub async fn current(state: &AppState, headers: &HeaderMap) -> AppResult<Option<(Session, User)>> {
    let found = current_any(state, headers).await?;
    if let Some((_, user)) = &found
        && user.must_change_password
    {
        return Err(password_change_required(&user.username));
    }
    Ok(found)
}

/// The code of the refusal a user who must change their password gets everywhere else:
/// JSON routes answer it as a 403, pages turn it into a redirect to the password page.
pub const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";

/// The refusal of every session-bound route to a user who must change their password.
pub fn password_change_required(username: &str) -> AppError {
    AppError::forbidden("Please choose a new password before going on.")
        .with_code(PASSWORD_CHANGE_REQUIRED)
        .with_json(
            "location",
            serde_json::Value::String(super::urls::PASSWORD_PATH.into()),
        )
        .with_detail(format!(
            "user `{username}` must change their password first"
        ))
}

/// [`current`] without the password-change gate: for the password page and signing out.
pub async fn current_any(
    state: &AppState,
    headers: &HeaderMap,
) -> AppResult<Option<(Session, User)>> {
    let Some(token) = cookie(headers, SESSION_COOKIE, state.settings().secure_cookies) else {
        return Ok(None);
    };
    let key = token_hash(token);
    let (session, user) = match state.store().session_with_user(&key, state.now()).await? {
        Some((session, user)) => (session, Some(user)),
        // Only a session that would end here pays for asking Connect clients.
        None => match crate::connect_server::keep_alive::revive_presented(state, &key).await? {
            Some(session) => {
                let user = state.store().user_by_id(session.user_id).await?;
                (session, user)
            }
            None => return Ok(None),
        },
    };
    let site = state.site();
    let here = site.domain_for_host(request_host(headers));
    if here.is_none_or(|domain| domain.name() != session.domain) {
        tracing::debug!(
            session_domain = session.domain,
            host = request_host(headers),
            "a session was presented on another domain's host; ignored"
        );
        return Ok(None);
    }
    Ok(user.filter(|u| !u.suspended).map(|user| (session, user)))
}

/// The signed-in administrator, or why the request is refused: 401 when signed out, 403
/// for anyone else. The `Admin` extractor and the end of a test sign-in both ask here.
pub async fn administrator(state: &AppState, headers: &HeaderMap) -> AppResult<(Session, User)> {
    match current(state, headers).await? {
        None => Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "Please sign in as an administrator first.",
        )),
        Some((_, user)) if !user.is_admin => {
            Err(AppError::forbidden("This page is for administrators.")
                .with_detail(format!("user `{}` is not an administrator", user.username)))
        }
        Some(found) => Ok(found),
    }
}

/// Starts a session for `user_id` on `domain` under a new random id, ending the one the
/// browser had (if any), and returns the cookie to set.
pub async fn start(
    state: &AppState,
    headers: &HeaderMap,
    domain: &str,
    user_id: i64,
    idp_id: Option<String>,
    subject: Option<String>,
    logout_state: Vec<u8>,
) -> AppResult<HeaderValue> {
    end_presented(state, headers).await?;
    let (session, cookie) = mint(state, domain, user_id, idp_id, subject, logout_state);
    state.store().create_session(&session).await?;
    Ok(cookie)
}

/// Ends the session the browser presents, if any, everywhere it reaches (Connect clients).
pub async fn end_presented(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    if let Some(old) = cookie(headers, SESSION_COOKIE, state.settings().secure_cookies) {
        crate::connect_server::propagate::end_session_everywhere(state, &token_hash(old)).await?;
    }
    Ok(())
}

/// A new session for `user_id` on `domain` under a new random id, and its cookie, for the
/// caller to store (an SSO sign-in writes it with the account and the audit row in one
/// transaction) and then end the browser's old one ([`end_presented`]).
pub fn mint(
    state: &AppState,
    domain: &str,
    user_id: i64,
    idp_id: Option<String>,
    subject: Option<String>,
    logout_state: Vec<u8>,
) -> (Session, HeaderValue) {
    let secure = state.settings().secure_cookies;
    let token = state.token();
    let now = state.now();
    let lifetime = state.settings().session_lifetime;
    let session = Session {
        id_hash: token_hash(&token),
        user_id,
        domain: domain.to_owned(),
        idp_id,
        subject,
        logout_state,
        csrf_token: state.token(),
        created_at: now,
        expires_at: now + seconds(lifetime),
    };
    // A Connect server keeps a session alive past its lifetime while a client still uses it
    // (keep-alive): the browser must keep presenting the cookie for that, so there it lasts
    // as long as the browser session and the stored expiry alone decides.
    let max_age = (!crate::connect_server::server_enabled(state)).then_some(lifetime.as_secs());
    (session, set_cookie(SESSION_COOKIE, &token, max_age, secure))
}

pub async fn csrf_token(
    state: &AppState,
    headers: &HeaderMap,
) -> AppResult<(String, Option<HeaderValue>)> {
    let secure = state.settings().secure_cookies;
    let key = state.browser_key().await?;
    match cookie(headers, CSRF_COOKIE, secure) {
        Some(token) if key.recognises(Purpose::Csrf, token) => Ok((token.to_owned(), None)),
        _ => {
            let token = key.mint(Purpose::Csrf, state.random());
            let header = set_cookie(CSRF_COOKIE, &token, None, secure);
            Ok((token, Some(header)))
        }
    }
}

/// Whether `submitted` (a form field or header) matches the browser's CSRF cookie, and that
/// cookie is one this host minted.
pub async fn csrf_ok(state: &AppState, headers: &HeaderMap, submitted: &str) -> AppResult<bool> {
    let Some(expected) = cookie(headers, CSRF_COOKIE, state.settings().secure_cookies) else {
        return Ok(false);
    };
    let key = state.browser_key().await?;
    Ok(key.recognises(Purpose::Csrf, expected) && tokens_match(expected, submitted))
}

pub fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
