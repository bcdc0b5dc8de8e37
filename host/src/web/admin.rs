//! The admin's routes: `POST /admin/reload` (swap in a re-read `plugins.toml`),
//! `/admin/test-login/{idp}` (begins a test sign-in: the IdP's real flow, ended by
//! `flow::finish` with a report of what a sign-in would do and nothing saved), and the
//! account links `/admin/users/{id}/links`. Every route needs a signed-in administrator
//! (the `Admin` extractor).

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use gatehouse_store::SignInPurpose;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    links,
    reload::{self, Outcome},
    state::AppState,
};

use super::{
    error::{AppError, AppResult},
    extract::{Admin, CsrfHeader, Domain, Json, Path, Query},
    flow::{self, Begin, Begun, BrowserRequest},
    http_util::{ClientIp, safe_return_to},
    urls,
};

/// `POST /admin/reload`: 200 with the warnings when applied, 422 with the diagnostics when
/// refused (the running configuration keeps serving).
pub async fn reload(
    State(state): State<AppState>,
    _: CsrfHeader,
    Admin { user: admin, .. }: Admin,
) -> AppResult<Response> {
    let outcome = reload::reload(&state).await.map_err(AppError::internal)?;
    tracing::info!(
        admin = admin.username,
        applied = outcome.applied(),
        "reload requested over HTTP"
    );
    let diagnostics: Vec<Value> = outcome
        .diagnostics()
        .iter()
        .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
        .collect();
    let (status, applied) = match outcome {
        Outcome::Applied { .. } => (StatusCode::OK, true),
        Outcome::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, false),
    };
    Ok((
        status,
        Json(json!({ "applied": applied, "diagnostics": diagnostics })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct TestSignInQuery {
    login_hint: Option<String>,
}

/// `GET /admin/test-login/{idp}`: begins a test sign-in at the IdP, also when its behaviour
/// is `hidden`. The IdP answers at the usual callback; the pending sign-in's purpose makes
/// it a test there.
pub async fn test_sign_in(
    State(state): State<AppState>,
    _: Admin,
    domain: Domain,
    Path(idp_id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<TestSignInQuery>,
) -> AppResult<Begun> {
    let idp = domain.idp(&idp_id)?;
    let begin = Begin {
        callback_url: urls::callback_url(&state, &headers, &idp_id),
        return_to: safe_return_to(None),
        login_hint: query.login_hint,
        purpose: SignInPurpose::TestSignIn,
    };
    let browser = BrowserRequest {
        headers: &headers,
        client_ip: &ip,
    };
    flow::begin(&state, idp, browser, begin).await
}

#[derive(Deserialize)]
pub struct LinkRequest {
    idp: String,
}

/// `POST /admin/users/{id}/links` with `{"idp": ID}`: links an existing account (a local
/// or administrator's account, which SSO otherwise never signs into) to an IdP instance.
/// The admin's deliberate choice, audited.
pub async fn link_idp(
    State(state): State<AppState>,
    _: CsrfHeader,
    Admin { user: admin, .. }: Admin,
    Path(user_id): Path<i64>,
    Json(request): Json<LinkRequest>,
) -> AppResult<Response> {
    if !state.site().has_idp(&request.idp) {
        return Err(AppError::not_found(format!(
            "There is no IdP `{}` in the configuration.",
            request.idp
        )));
    }
    let user = state
        .store()
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| AppError::not_found("There is no such user."))?;
    let now = state.now();
    links::change(
        state.store(),
        &user,
        &request.idp,
        &admin.username,
        true,
        now,
    )
    .await?;
    links_response(&state, user.id).await
}

/// `DELETE /admin/users/{id}/links/{idp}`: removes such a link.
pub async fn unlink_idp(
    State(state): State<AppState>,
    _: CsrfHeader,
    Admin { user: admin, .. }: Admin,
    Path((user_id, idp_id)): Path<(i64, String)>,
) -> AppResult<Response> {
    let user = state
        .store()
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| AppError::not_found("There is no such user."))?;
    let now = state.now();
    if !links::change(state.store(), &user, &idp_id, &admin.username, false, now).await? {
        return Err(AppError::not_found(format!(
            "User {user_id} is not linked to `{idp_id}`."
        )));
    }
    links_response(&state, user.id).await
}

/// `GET /admin/users/{id}/links`.
pub async fn links(
    State(state): State<AppState>,
    _: Admin,
    Path(user_id): Path<i64>,
) -> AppResult<Response> {
    links_response(&state, user_id).await
}

async fn links_response(state: &AppState, user_id: i64) -> AppResult<Response> {
    let linked = state.store().linked_idps(user_id).await?;
    Ok(Json(json!({ "user_id": user_id, "linked_idps": linked })).into_response())
}
