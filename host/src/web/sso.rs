//! The SSO routes: `/sso/{idp}/start` begins a sign-in at an IdP the domain offers, and
//! `/sso/{idp}/callback` (GET or POST, as the IdP answers) finishes it, a real sign-in or
//! an administrator's test sign-in alike. The flow itself is `flow`; these handlers only
//! read the request and render the outcome.

use std::collections::HashMap;

use axum::{
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Redirect,
};
use gatehouse_store::SignInPurpose;

use crate::state::AppState;

use super::{
    error::{AppError, AppResult},
    extract::{Domain, Path, Query},
    flow::{self, Answer, Begin, Begun, BrowserRequest, Finished},
    http_util::{ClientIp, decode_pairs, safe_return_to},
    urls,
};

pub async fn start(
    State(state): State<AppState>,
    domain: Domain,
    Path(idp_id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Begun> {
    let idp = domain.idp(&idp_id)?;
    if idp.config.behaviour == gatehouse_config::Behaviour::Hidden {
        return Err(
            AppError::not_found("This sign-in method is not available here.").with_detail(format!(
                "IdP `{idp_id}` is hidden (admins test it at /admin/test-login/{idp_id})"
            )),
        );
    }
    // Counted before anything is written: each start stores a pending sign-in.
    if let Err(refused) = state.start_limiter().check(&ip) {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins were started from your address. Please wait a moment and try again.",
        )
        .with_retry_after(refused.retry_after)
        .with_detail(format!(
            "start of IdP `{idp_id}` refused: more than [host.limits] \
             starts_per_address_per_minute = {} from {ip}",
            state.settings().starts_per_address_per_minute
        )));
    }
    let begin = Begin {
        callback_url: urls::callback_url(&state, &headers, &idp_id),
        return_to: safe_return_to(query.get("return_to").map(String::as_str)),
        login_hint: query.get("login_hint").cloned(),
        purpose: SignInPurpose::SignIn,
    };
    let browser = BrowserRequest {
        headers: &headers,
        client_ip: &ip,
    };
    flow::begin(&state, idp, browser, begin).await
}

pub async fn callback_get(
    State(state): State<AppState>,
    domain: Domain,
    Path(idp_id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> AppResult<Finished> {
    let idp = domain.idp(&idp_id)?;
    let answer = answer(&state, &headers, &idp_id, query, Vec::new());
    let browser = BrowserRequest {
        headers: &headers,
        client_ip: &ip,
    };
    flow::finish(&state, domain.get(), idp, browser, answer).await
}

/// `POST /sso/{idp}/callback`: an answer POSTed from the IdP's site (SAML's ACS). It is
/// validated here and finished at `/sso/{idp}/finish`, where the browser's binding cookie
/// is sent (see [`flow::accept_posted`]).
pub async fn callback_post(
    State(state): State<AppState>,
    domain: Domain,
    Path(idp_id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Body,
) -> AppResult<Redirect> {
    let idp = domain.idp(&idp_id)?;
    let browser = BrowserRequest {
        headers: &headers,
        client_ip: &ip,
    };
    let form = match read_form(&state, body).await {
        Ok(form) => form,
        Err(refusal) => {
            flow::refused_unread(&state, domain.get(), idp, browser, &refusal.detail).await?;
            return Err(refusal);
        }
    };
    let answer = answer(&state, &headers, &idp_id, query, form);
    let answered = flow::accept_posted(&state, domain.get(), idp, browser, answer).await?;
    Ok(Redirect::to(&urls::finish_url(&idp_id, &answered.handle)))
}

/// `GET /sso/{idp}/finish?handle=…`: the same-site step of a POSTed answer.
pub async fn finish(
    State(state): State<AppState>,
    domain: Domain,
    Path(idp_id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Finished> {
    let idp = domain.idp(&idp_id)?;
    let Some(handle) = query.get("handle").filter(|h| !h.is_empty()) else {
        return Err(AppError::bad_request(
            "The sign-in answer is incomplete. Please start again.",
        ));
    };
    let browser = BrowserRequest {
        headers: &headers,
        client_ip: &ip,
    };
    flow::finish_answered(&state, domain.get(), idp, browser, handle).await
}

/// A POSTed form, read up to `[host] inbound_max_body_bytes` (a SAML response is far
/// smaller) and leniently: the IdP's fields are the plugin's to judge.
pub async fn read_form(state: &AppState, body: Body) -> AppResult<Vec<(String, String)>> {
    let cap = state.settings().inbound_max_body_bytes;
    let bytes = to_bytes(body, cap).await.map_err(|_| {
        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.").with_detail(
            format!("too-large: a POSTed sign-in answer over {cap} bytes"),
        )
    })?;
    Ok(decode_pairs(&bytes))
}

/// The IdP's answer as the flow takes it, with the callback URL of this host.
fn answer(
    state: &AppState,
    headers: &HeaderMap,
    idp_id: &str,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
) -> Answer {
    Answer {
        callback_url: urls::callback_url(state, headers, idp_id),
        query,
        form,
    }
}
