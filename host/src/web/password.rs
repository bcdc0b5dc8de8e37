//! A local account's own password change (`GET` and `POST /me/password`), and the page
//! every session-bound page sends someone who must change theirs first
//! ([`redirect_required_change`]). The current password is required and checked on the
//! hashing threads, failures count toward the sign-in throttle (`throttle`), the form is
//! CSRF-checked, and a change ends the user's other sessions. Not the policy
//! (`accounts`) nor an administrator's reset (`gatehouse users set-password`).

use std::collections::HashMap;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_store::{AuditEvent, PasswordReplacement, Session, User};
use serde::Deserialize;

use crate::{
    accounts::{self, MIN_PASSWORD_CHARS},
    connect_server::propagate,
    events::{self, At, Reason},
    passwords::PasswordError,
    state::AppState,
};

use super::{
    error::{AppError, AppResult, ErrorBody},
    extract::{Domain, Form, Query},
    http_util::{ClientIp, safe_return_to, set_retry_after},
    pages::{self, PasswordPage},
    session, throttle, urls,
};

/// The audit method of a password change by the account's own user.
const AUDIT_METHOD: &str = "password-change";

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    let return_to = safe_return_to(query.get("return_to").map(String::as_str));
    let Some((_, user)) = session::current_any(&state, &headers).await? else {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &urls::password_url(&return_to))
            .finish();
        return Ok(Redirect::to(&format!("/login?{query}")).into_response());
    };
    let unavailable = unavailable(&state, &user).await?;
    Render {
        user: &user,
        return_to: &return_to,
        unavailable: unavailable.as_deref(),
        error: None,
        status: StatusCode::OK,
    }
    .response(&state, &headers)
    .await
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    return_to: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    domain: Domain,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ChangeForm>,
) -> AppResult<Response> {
    if !session::csrf_ok(&state, &headers, &form.csrf).await? {
        return Err(AppError::forbidden(
            "This form has expired. Please reload the page and try again.",
        )
        .with_detail("CSRF token missing or wrong on POST /me/password"));
    }
    let Some((current, user)) = session::current_any(&state, &headers).await? else {
        return Err(AppError::unauthorized(
            "Please sign in first, then change your password.",
        ));
    };
    let domain = domain.get();
    let return_to = safe_return_to(form.return_to.as_deref());
    let (store, settings, now) = (state.store(), state.settings().clone(), state.now());
    let at = At {
        domain: domain.name(),
        idp: None,
        client: &ip,
    };
    let audit = |outcome: &str, reason: &str| AuditEvent {
        at: now,
        domain: domain.name().to_owned(),
        idp_id: None,
        user_id: Some(user.id),
        username: user.username.clone(),
        method: AUDIT_METHOD.into(),
        outcome: outcome.into(),
        reason: reason.into(),
        ip: ip.clone(),
    };
    let page = |error: &'static str, status| Render::refused(&user, &return_to, error, status);

    if let Some(why) = unavailable(&state, &user).await? {
        store
            .audit(&audit("refused", "the account has no local password"))
            .await?;
        return Err(AppError::forbidden(why)
            .with_code("no_local_password")
            .with_detail(format!(
                "POST /me/password: `{}` has no local password",
                user.username
            )));
    }
    // What the new password must be is checked first: it costs no hashing and says
    // nothing about the current one.
    let refusal = if form.new_password != form.confirm_password {
        Some("The two new passwords are not the same.".to_owned())
    } else if form.new_password == form.current_password {
        Some("The new password must be different from the current one.".to_owned())
    } else {
        accounts::check_policy(&user.username, &form.new_password)
            .err()
            .map(|refusal| refusal.to_string())
    };
    if let Some(message) = refusal {
        return Render::refused(&user, &return_to, &message, StatusCode::BAD_REQUEST)
            .response(&state, &headers)
            .await;
    }

    // The current password is a password attempt like a sign-in's: reserved first, so a
    // stolen session cannot guess it faster than the login form would let it.
    let attempt = match throttle::reserve(store, &settings, &ip, &user.username, now).await? {
        Ok(attempt) => attempt,
        Err(refusal) => {
            store.audit(&audit("refused", refusal.reason())).await?;
            let minutes = settings.throttle_window.as_secs().div_ceil(60);
            let message =
                format!("Too many failed attempts. Please wait {minutes} minutes and try again.");
            let mut response =
                Render::refused(&user, &return_to, &message, StatusCode::TOO_MANY_REQUESTS)
                    .response(&state, &headers)
                    .await?;
            set_retry_after(&mut response, settings.throttle_window);
            return Ok(response);
        }
    };
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
    let stored = user.password_hash.as_deref().unwrap_or_default();
    let matches = match state
        .passwords()
        .verify(&form.current_password, stored)
        .await
    {
        Ok(matches) => matches,
        Err(busy @ PasswordError::Busy { .. }) => {
            attempt.succeeded(store).await?;
            return Err(busy_error(&busy));
        }
        Err(other) => return Err(AppError::internal(other)),
    };
    if !matches {
        // The reservation stays: it was a failure.
        drop(attempt);
        events::password_change_refused(state.metrics(), at, user.id, Reason::WRONG_PASSWORD);
        store
            .audit(&audit("failure", "wrong current password"))
            .await?;
        return page(
            "The current password is not correct.",
            StatusCode::UNAUTHORIZED,
        )
        .response(&state, &headers)
        .await;
    }
    attempt.succeeded(store).await?;

    let hash = match state
        .passwords()
        .hash(&form.new_password, state.random())
        .await
    {
        Ok(hash) => hash,
        Err(busy @ PasswordError::Busy { .. }) => return Err(busy_error(&busy)),
        Err(other) => return Err(AppError::internal(other)),
    };
    let cookie = replace(&state, &current, &user, &hash, &audit("success", "")).await?;
    events::password_changed(state.metrics(), at, user.id);
    let mut response = Redirect::to(&return_to).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Stores the new hash, clears the flag, ends every session of the user (and their
/// Connect SSO sessions at this host's clients) and starts a new one for this browser —
/// the same domain, IdP and logout state, a new id — in one transaction with the audit
/// row. Returns the new session's cookie.
async fn replace(
    state: &AppState,
    current: &Session,
    user: &User,
    hash: &str,
    audit: &AuditEvent,
) -> AppResult<header::HeaderValue> {
    let store = state.store();
    // Read before the delete, as every path that ends sessions does.
    let mut connect_sso = Vec::new();
    for key in store.user_session_keys(user.id).await? {
        let sso = propagate::connect_sso_of(state, &key).await?;
        if !sso.is_empty() {
            connect_sso.push((key, sso));
        }
    }
    let (session, cookie) = session::mint(
        state,
        &current.domain,
        user.id,
        current.idp_id.clone(),
        current.subject.clone(),
        current.logout_state.clone(),
    );
    let ended = store
        .replace_password(PasswordReplacement {
            user_id: user.id,
            hash,
            must_change: false,
            new_session: Some(&session),
            audit,
            now: state.now(),
        })
        .await?;
    for (key, sso) in connect_sso {
        propagate::end_connect_sso(state, &key, sso).await?;
    }
    tracing::info!(
        user_id = user.id,
        // The browser's own session is among them; it goes on under its new id.
        other_sessions_ended = ended.saturating_sub(1),
        "password changed by its user"
    );
    Ok(cookie)
}

fn busy_error(busy: &PasswordError) -> AppError {
    AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many people are signing in right now. Please try again in a moment.",
    )
    .with_retry_after(crate::passwords::BUSY_RETRY_AFTER)
    .with_detail(format!("POST /me/password not checked: {busy}"))
}

/// Why `user` has no password to change here, if so.
async fn unavailable(state: &AppState, user: &User) -> AppResult<Option<String>> {
    let connect = if user.password_hash.is_some() {
        state.store().connect_idp_of_account(user.id).await?
    } else {
        None
    };
    Ok(accounts::no_local_password(user, connect.as_deref()))
}

/// The password page as one request renders it.
struct Render<'a> {
    user: &'a User,
    return_to: &'a str,
    unavailable: Option<&'a str>,
    error: Option<&'a str>,
    status: StatusCode,
}

impl<'a> Render<'a> {
    /// The form again, with what went wrong.
    fn refused(user: &'a User, return_to: &'a str, error: &'a str, status: StatusCode) -> Self {
        Self {
            user,
            return_to,
            unavailable: None,
            error: Some(error),
            status,
        }
    }

    async fn response(&self, state: &AppState, headers: &HeaderMap) -> AppResult<Response> {
        let (csrf, set_csrf) = session::csrf_token(state, headers).await?;
        let page = PasswordPage {
            username: &self.user.username,
            csrf: &csrf,
            return_to: self.return_to,
            unavailable: self.unavailable,
            required: self.user.must_change_password,
            error: self.error,
            min_chars: MIN_PASSWORD_CHARS,
        };
        let mut response = (self.status, pages::password_page(&page)).into_response();
        if let Some(cookie) = set_csrf {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(response)
    }
}

/// Middleware of the pages: a page refused because its user must change their password
/// first ([`session::password_change_required`]) becomes a redirect to the password page,
/// which comes back to the refused page afterwards. The JSON routes keep the 403.
pub async fn redirect_required_change(request: Request, next: Next) -> Response {
    let back = request
        .uri()
        .path_and_query()
        .filter(|_| request.method() == axum::http::Method::GET)
        .map(|p| safe_return_to(Some(p.as_str())))
        .unwrap_or_else(|| "/".to_owned());
    let response = next.run(request).await;
    match response.extensions().get::<ErrorBody>() {
        Some(body) if body.code == session::PASSWORD_CHANGE_REQUIRED => {
            Redirect::to(&urls::password_url(&back)).into_response()
        }
        _ => response,
    }
}
