//! The admin's routes: `POST /admin/reload` (swap in a re-read `plugins.toml`) and
//! `/admin/test-login/{idp}` (a dry run of an IdP's real flow that shows what a sign-in
//! would do and saves nothing). Every route needs a signed-in administrator.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use gatehouse_plugin_api::Identity;
use gatehouse_resolver::{
    locks,
    provisioning::{self, Plan},
};
use gatehouse_store::{AuditEvent, Session, User};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    links,
    reload::{self, Outcome},
    site::{SiteDomain, SiteIdp},
    state::AppState,
};

use super::{
    error::{AppError, AppResult},
    http_util::safe_return_to,
    login::domain_of,
    pages, session,
    sso::{self, find_idp},
};

/// The CSRF token of a JSON request, from the `X-CSRF-Token` header.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";

/// The signed-in administrator, or why the request is refused.
pub(super) async fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
) -> AppResult<(Session, User)> {
    match session::current(state, headers).await? {
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

/// A state-changing JSON request must carry the browser's CSRF token in a header.
pub(super) async fn require_csrf_header(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    let submitted = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if session::csrf_ok(state, headers, submitted).await? {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "This request has no valid CSRF token. Reload the page and try again.",
        )
        .with_detail("X-CSRF-Token header missing or wrong"))
    }
}

/// `POST /admin/reload`: 200 with the warnings when applied, 422 with the diagnostics when
/// refused (the running configuration keeps serving).
pub async fn reload(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    require_csrf_header(&state, &headers).await?;
    let (_, admin) = require_admin(&state, &headers).await?;
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
pub struct TestLoginQuery {
    login_hint: Option<String>,
}

/// `GET /admin/test-login/{idp}`: begins the IdP's real flow in test mode, also when its
/// behaviour is `hidden`.
pub async fn test_login(
    State(state): State<AppState>,
    Path(idp_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<TestLoginQuery>,
) -> AppResult<Response> {
    require_admin(&state, &headers).await?;
    let site = state.site();
    let domain = domain_of(&site, &headers)?;
    let idp = find_idp(domain, &idp_id)?;
    sso::begin(
        &state,
        &headers,
        idp,
        safe_return_to(None),
        query.login_hint,
        true,
    )
    .await
}

/// The end of a test sign-in: the raw attributes, the mapped values, the plan and the
/// locks it would leave, with nothing saved. A test whose plan is not "refuse" counts as the
/// IdP's proof of working for `untested-redirect`.
pub(super) async fn test_login_result(
    state: &AppState,
    headers: &HeaderMap,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    identity: &Identity,
    now: i64,
) -> AppResult<Response> {
    // The pending sign-in is bound to this browser; it must still be an admin's.
    let (_, admin) = require_admin(state, headers).await?;
    let claims = sso::claims_of(identity);
    let plan = sso::plan_sign_in(state, domain, idp, &claims).await?;
    let policy = &idp.policy;

    let attributes: BTreeMap<String, Vec<String>> = identity
        .attributes
        .iter()
        .map(|a| {
            (
                a.name.to_string(),
                a.values.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    let mapped: Vec<Value> = policy
        .mapping
        .iter()
        .map(|(field, attribute)| {
            json!({ "field": field, "attribute": attribute, "value": claims.get(attribute) })
        })
        .collect();
    let current = match &plan {
        Plan::SignIn { user_id } | Plan::Update { user_id, .. } => state
            .store()
            .provenance(*user_id)
            .await?
            .into_iter()
            .map(|p| (p.field, p.idp_id))
            .collect(),
        _ => BTreeMap::new(),
    };
    let site = state.site();
    let after = locks::provenance_after(&plan, idp.id(), &current);
    let locked = locks::locked_fields(&after, |id| site.idp_locks_fields(id));
    let plan_json = match &plan {
        Plan::Refuse(reason) => json!({ "action": "refuse", "reason": reason.to_string() }),
        Plan::SignIn { user_id } => json!({ "action": "sign_in", "user_id": user_id }),
        Plan::Update { user_id, changes } => json!({
            "action": "update",
            "user_id": user_id,
            "changes": changes
                .iter()
                .map(|c| json!({ "field": c.field, "old": c.old, "new": c.new }))
                .collect::<Vec<_>>(),
        }),
        Plan::Create { fields } => json!({
            "action": "create",
            "branch": domain.plan.branch,
            "fields": fields
                .iter()
                .map(|f| json!({ "field": f.field, "value": f.value }))
                .collect::<Vec<_>>(),
        }),
    };
    let result = json!({
        "idp": idp.id(),
        "domain": domain.name(),
        "saved": false,
        "subject": identity.subject.as_str(),
        "attributes": attributes,
        "match": {
            "attribute": policy.username_attribute,
            "value": provisioning::match_value(policy, &claims),
            "field": policy.match_field,
            "case_insensitive": policy.case_insensitive,
        },
        "mapped": mapped,
        "plan": plan_json,
        "locks": locked,
    });

    // Only a dry run that would sign someone in proves the IdP for untested-redirect: a
    // redirect to an IdP whose every sign-in is refused would lock the domain out.
    let would_sign_in = !matches!(plan, Plan::Refuse(_));
    if would_sign_in {
        state.store().record_idp_success(idp.id(), now).await?;
    }
    state
        .store()
        .audit(&AuditEvent {
            at: now,
            domain: domain.name().to_owned(),
            idp_id: Some(idp.id().to_owned()),
            user_id: Some(admin.id),
            username: admin.username.clone(),
            method: "sso-test".into(),
            outcome: if would_sign_in { "success" } else { "refused" }.into(),
            reason: format!("dry run: {}", plan_summary(&plan)),
            ip: String::new(),
        })
        .await?;
    Ok(pages::test_login_page(idp.id(), &plan_summary(&plan), &result).into_response())
}

/// One line for the page heading and the audit log.
fn plan_summary(plan: &Plan) -> String {
    match plan {
        Plan::Refuse(reason) => format!("would refuse: {reason}"),
        Plan::SignIn { user_id } => format!("would sign in as user {user_id}"),
        Plan::Update { user_id, changes } => format!(
            "would update user {user_id} ({} field(s)) and sign in",
            changes.len()
        ),
        Plan::Create { .. } => "would create a new user and sign in".into(),
    }
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
    Path(user_id): Path<i64>,
    headers: HeaderMap,
    Json(request): Json<LinkRequest>,
) -> AppResult<Response> {
    require_csrf_header(&state, &headers).await?;
    let (_, admin) = require_admin(&state, &headers).await?;
    let site = state.site();
    if !site.has_idp(&request.idp) {
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
    Path((user_id, idp_id)): Path<(i64, String)>,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_csrf_header(&state, &headers).await?;
    let (_, admin) = require_admin(&state, &headers).await?;
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
    Path(user_id): Path<i64>,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_admin(&state, &headers).await?;
    links_response(&state, user_id).await
}

async fn links_response(state: &AppState, user_id: i64) -> AppResult<Response> {
    let linked = state.store().linked_idps(user_id).await?;
    Ok(Json(json!({ "user_id": user_id, "linked_idps": linked })).into_response())
}
