//! Signed-in pages and endpoints: home, `/me`, signing out, the logged-out page,
//! and the liveness probe (`/healthz`; readiness is `status`).

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_plugin_api::{LogoutRequest, StepMethod};
use gatehouse_store::AuditEvent;
use serde::Deserialize;
use serde_json::json;

use crate::state::AppState;

use super::{
    error::{AppError, AppResult},
    extract::{Domain, Form, Json, SignedIn},
    http_util::{ClientIp, SESSION_COOKIE, clear_cookie},
    pages, session, urls,
};

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let Some((_, user)) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let (csrf, set_csrf) = session::csrf_token(&state, &headers).await?;
    let name = format!("{} {}", user.firstname, user.lastname);
    let shown = if name.trim().is_empty() {
        user.username.clone()
    } else {
        format!("{} ({})", name.trim(), user.username)
    };
    let mut response = pages::home_page(&shown, &csrf).into_response();
    if let Some(cookie) = set_csrf {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The signed-in user as JSON; 401 when signed out.
pub async fn me(
    State(state): State<AppState>,
    SignedIn { session, user }: SignedIn,
    headers: HeaderMap,
) -> AppResult<Response> {
    // Scripts cannot read the HttpOnly CSRF cookie, so the token a JSON client sends in
    // `X-CSRF-Token` comes from here.
    let (csrf, set_csrf) = session::csrf_token(&state, &headers).await?;
    let mut response = Json(json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "idnumber": user.idnumber,
        "branch": user.branch,
        "auth_source": user.auth_source,
        "additional": user.additional,
        "session": {
            "idp": session.idp_id,
            "domain": session.domain,
            "expires_at": session.expires_at,
        },
        "csrf_token": csrf,
    }))
    .into_response();
    if let Some(cookie) = set_csrf {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    domain: Domain,
    Form(form): Form<LogoutForm>,
) -> AppResult<Response> {
    if !session::csrf_ok(&state, &headers, &form.csrf).await? {
        return Err(AppError::forbidden(
            "This form has expired. Please reload the page and try again.",
        )
        .with_detail("CSRF token missing or wrong on POST /logout"));
    }
    let domain = domain.get();
    // Someone who must change their password may still sign out.
    let current = session::current_any(&state, &headers).await?;
    let mut destination = "/logged-out".to_owned();
    let mut post_form = None;
    if let Some((session, user)) = current {
        crate::connect_server::propagate::end_session_everywhere(&state, &session.id_hash).await?;
        state
            .store()
            .audit(&AuditEvent {
                at: state.now(),
                domain: domain.name().to_owned(),
                idp_id: session.idp_id.clone(),
                user_id: Some(user.id),
                username: user.username.clone(),
                method: "logout".into(),
                outcome: "success".into(),
                reason: String::new(),
                ip,
            })
            .await?;
        let idp = session.idp_id.as_deref().and_then(|id| domain.idp(id));
        if let Some(idp) = idp {
            destination = idp.logout_landing();
            if idp.config.logout.at_idp && idp.can_logout_at_idp() {
                // The IdP sends the browser back to /sso/{idp}/logout, which reaches the
                // plugin (or goes on to the landing page).
                let return_url = urls::logout_url(&state, &headers, idp.id());
                let subject = session.subject.clone().unwrap_or(user.username.clone());
                let request = LogoutRequest {
                    subject: subject.into(),
                    logout_state: session.logout_state.clone().into(),
                    return_url: return_url.into(),
                };
                // The local session is already gone; a failure at the IdP must not
                // keep the user signed in, so it is logged and the landing page shown.
                match state
                    .caller()
                    .call(idp.instance.clone(), move |host, idp| {
                        idp.logout(host, request).into_result()
                    })
                    .await
                {
                    Ok(step) => match step.into_option() {
                        Some(step) if step.method == StepMethod::Redirect => {
                            destination = step.url.into_string()
                        }
                        Some(step) => post_form = Some(step),
                        None => {}
                    },
                    Err(error) => {
                        tracing::warn!(idp = idp.id(), %error, "logout at the IdP failed")
                    }
                }
            }
        }
    }
    let secure = state.settings().secure_cookies;
    let mut response = match post_form {
        Some(step) => pages::post_form_page(&step).into_response(),
        None => Redirect::to(&destination).into_response(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE, secure));
    Ok(response)
}

pub async fn logged_out() -> Response {
    pages::logged_out_page().into_response()
}

/// Liveness: 200 whenever the process answers HTTP, with each IdP's circuit breaker from
/// memory. It touches no database (readiness, with the database ping, is `/readyz`): a
/// probe that restarts a host whose database is down would not bring the database back.
/// An IdP being down never fails it either.
pub async fn healthz(State(state): State<AppState>) -> Response {
    Json(json!({ "status": "ok", "idps": idp_health(&state) })).into_response()
}

/// Every served IdP's breaker state and running plugin calls, by IdP id.
fn idp_health(state: &AppState) -> serde_json::Map<String, serde_json::Value> {
    let site = state.site();
    site.resolution()
        .domains()
        .iter()
        .flat_map(|domain| domain.idps.iter())
        .map(|idp| {
            let health = state.caller().health(&idp.id);
            (
                idp.id.clone(),
                json!({ "breaker": health.breaker.as_str(), "running_calls": health.running }),
            )
        })
        .collect()
}
