//! The login page (`GET /login`) and password sign-in (`POST /login`), with
//! per-account and per-IP throttling of failures.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_store::AuditEvent;
use serde::Deserialize;

use crate::{
    passwords, plugins::capabilities::now_unix_seconds, site::SiteDomain, state::AppState,
};

use super::{
    error::{AppError, AppResult},
    http_util::{ClientIp, request_host, safe_return_to},
    pages::{self, Button, LoginPage},
    session,
};

/// Finds the domain a request is for, by its `Host` header.
pub(super) fn domain_of<'s>(
    site: &'s crate::site::Site,
    headers: &HeaderMap,
) -> AppResult<&'s SiteDomain> {
    let host = request_host(headers);
    site.domain_for_host(host).ok_or_else(|| {
        AppError::not_found("This address is not served here.")
            .with_detail(format!("no domain has host `{host}`"))
    })
}

pub(super) fn start_url(idp_id: &str, return_to: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("/sso/{idp_id}/start?{query}")
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    let site = state.site();
    let domain = domain_of(&site, &headers)?;
    let return_to = safe_return_to(query.get("return_to").map(String::as_str));
    if session::current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(&return_to).into_response());
    }
    if let Some(url) = &domain.config.force_external_sso_url {
        return Ok(Redirect::to(url.as_str()).into_response());
    }
    let nosso = query.get("nosso").is_some_and(|v| v == "1");
    if !nosso && let Some(idp) = domain.redirect_idp() {
        return Ok(Redirect::to(&start_url(idp.id(), &return_to)).into_response());
    }
    Ok(render(
        &state,
        &headers,
        domain,
        &return_to,
        "",
        None,
        nosso,
        StatusCode::OK,
    ))
}

#[allow(clippy::too_many_arguments)]
fn render(
    state: &AppState,
    headers: &HeaderMap,
    domain: &SiteDomain,
    return_to: &str,
    username: &str,
    error: Option<&str>,
    nosso: bool,
    status: StatusCode,
) -> Response {
    let (csrf, set_csrf) = session::csrf_token(state, headers);
    let page = LoginPage {
        domain: domain.name(),
        show_form: domain.form_shown() || nosso,
        buttons: domain
            .buttons()
            .map(|idp| Button {
                label: &idp.config.name,
                href: start_url(idp.id(), return_to),
            })
            .collect(),
        csrf: &csrf,
        return_to,
        username,
        error,
        notice: None,
    };
    let mut response = (status, pages::login_page(&page)).into_response();
    if let Some(cookie) = set_csrf {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let site = state.site();
    let domain = domain_of(&site, &headers)?;
    if !session::csrf_ok(&headers, &form.csrf) {
        return Err(AppError::forbidden(
            "This form has expired. Please reload the page and try again.",
        )
        .with_detail("CSRF token missing or wrong on POST /login"));
    }
    let return_to = safe_return_to(form.return_to.as_deref());
    let username = form.username.trim().to_owned();
    let settings = state.settings().clone();
    let now = now_unix_seconds();
    let since = now - session::seconds(settings.throttle_window);
    let account_key = format!("account:{}", username.to_lowercase());
    let ip_key = format!("ip:{ip}");
    let store = state.store();
    let audit = |outcome: &str, reason: &str, user_id: Option<i64>| AuditEvent {
        at: now,
        domain: domain.name().to_owned(),
        idp_id: None,
        user_id,
        username: username.clone(),
        method: "password".into(),
        outcome: outcome.into(),
        reason: reason.into(),
        ip: ip.clone(),
    };

    if store.failures_since(&account_key, since).await? >= settings.max_failures_per_account
        || store.failures_since(&ip_key, since).await? >= settings.max_failures_per_ip
    {
        store
            .audit(&audit("refused", "too many failed attempts", None))
            .await?;
        let minutes = settings.throttle_window.as_secs().div_ceil(60);
        let message = format!(
            "Too many failed sign-in attempts. Please wait {minutes} minutes and try again."
        );
        return Ok(render(
            &state,
            &headers,
            domain,
            &return_to,
            &username,
            Some(&message),
            true,
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }

    let user = store.user_by_username(&username).await?;
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = form.password;
    let checked_hash = stored_hash
        .clone()
        .unwrap_or_else(|| passwords::decoy_hash().to_owned());
    // Argon2 is deliberately slow: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&password, &checked_hash))
        .await
        .map_err(AppError::internal)?;

    match user {
        Some(user) if matches && stored_hash.is_some() && !user.suspended => {
            store.clear_failures(&account_key).await?;
            let cookie = session::start(&state, &headers, user.id, None, Vec::new()).await?;
            store.audit(&audit("success", "", Some(user.id))).await?;
            let mut response = Redirect::to(&return_to).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            Ok(response)
        }
        Some(user) if matches && stored_hash.is_some() => {
            store
                .audit(&audit("refused", "account suspended", Some(user.id)))
                .await?;
            Ok(render(
                &state,
                &headers,
                domain,
                &return_to,
                &username,
                Some("Your account is suspended."),
                true,
                StatusCode::FORBIDDEN,
            ))
        }
        user => {
            store.record_failure(&account_key, now).await?;
            store.record_failure(&ip_key, now).await?;
            let reason = if user.is_none() {
                "unknown username"
            } else {
                "wrong password"
            };
            store
                .audit(&audit("failure", reason, user.map(|u| u.id)))
                .await?;
            Ok(render(
                &state,
                &headers,
                domain,
                &return_to,
                &username,
                Some("The username or password is not correct."),
                true,
                StatusCode::UNAUTHORIZED,
            ))
        }
    }
}
