//! The profile API: `GET/PATCH /me/profile` for the signed-in user and
//! `GET/PATCH /admin/users/{id}/profile` for administrators. Locks follow provenance
//! (see `gatehouse_resolver::locks`); an edit with any refused field writes nothing, and
//! the refusal names the IdP that locks the field.

use std::collections::BTreeMap;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use gatehouse_resolver::locks::{self, EditRefusal, Editor, FieldLock};
use gatehouse_store::{ADMIN_PROVENANCE, FieldChange, StoreError, User};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    events::{self, At},
    site::Site,
    state::AppState,
};

use super::{
    error::{AppError, AppResult},
    extract::{Admin, CsrfHeader, Domain, Json, Path, SignedIn},
    http_util::ClientIp,
};

/// A profile edit: field → new value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    fields: BTreeMap<String, String>,
}

pub async fn my_profile(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
) -> AppResult<Response> {
    profile_response(&state, &user, Editor::Owner).await
}

pub async fn edit_my_profile(
    State(state): State<AppState>,
    _: CsrfHeader,
    SignedIn { user, .. }: SignedIn,
    domain: Domain,
    ClientIp(ip): ClientIp,
    Json(edit): Json<Edit>,
) -> AppResult<Response> {
    let at = At {
        domain: domain.get().name(),
        idp: None,
        client: &ip,
    };
    apply(&state, &user, Editor::Owner, edit, at, None).await
}

pub async fn user_profile(
    State(state): State<AppState>,
    _: Admin,
    Path(user_id): Path<i64>,
) -> AppResult<Response> {
    let user = user_or_404(&state, user_id).await?;
    profile_response(&state, &user, Editor::Admin).await
}

pub async fn edit_user_profile(
    State(state): State<AppState>,
    _: CsrfHeader,
    Admin { user: admin, .. }: Admin,
    domain: Domain,
    ClientIp(ip): ClientIp,
    Path(user_id): Path<i64>,
    Json(edit): Json<Edit>,
) -> AppResult<Response> {
    let user = user_or_404(&state, user_id).await?;
    let at = At {
        domain: domain.get().name(),
        idp: None,
        client: &ip,
    };
    apply(&state, &user, Editor::Admin, edit, at, Some(admin.id)).await
}

async fn user_or_404(state: &AppState, user_id: i64) -> AppResult<User> {
    state
        .store()
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| AppError::not_found("There is no such user."))
}

/// Field → the IdP instance that provisioned its current value.
async fn provenance(state: &AppState, user: &User) -> AppResult<BTreeMap<String, String>> {
    Ok(state
        .store()
        .provenance(user.id)
        .await?
        .into_iter()
        .map(|p| (p.field, p.idp_id))
        .collect())
}

fn lock_of(site: &Site, provenance: &BTreeMap<String, String>, field: &str) -> FieldLock {
    FieldLock::of(provenance.get(field).map(String::as_str), |idp| {
        site.idp_locks_fields(idp)
    })
}

fn value_of<'u>(user: &'u User, field: &str) -> Option<&'u str> {
    match field {
        "username" => Some(&user.username),
        "email" => Some(&user.email),
        "firstname" => Some(&user.firstname),
        "lastname" => Some(&user.lastname),
        "idnumber" => Some(&user.idnumber),
        other => user.additional.get(other).map(String::as_str),
    }
}

async fn profile_response(state: &AppState, user: &User, editor: Editor) -> AppResult<Response> {
    let site = state.site();
    let provenance = provenance(state, user).await?;
    let fields: Vec<Value> = site
        .field_names()
        .into_iter()
        .filter_map(|name| {
            let kind = site.field_kind(name)?;
            let lock = lock_of(&site, &provenance, name);
            Some(json!({
                "name": name,
                "value": value_of(user, name),
                "kind": if matches!(kind, locks::FieldKind::Core { .. }) { "core" } else { "additional" },
                "provisioned_by": provenance.get(name),
                "locked_by": lock.locked_by,
                "editable": locks::may_edit(editor, name, kind, &lock).is_ok(),
            }))
        })
        .collect();
    Ok(Json(json!({
        "user_id": user.id,
        "username": user.username,
        "auth_source": user.auth_source,
        "fields": fields,
    }))
    .into_response())
}

/// Applies an edit whole or not at all; a change is one `account_edited` event (`by_admin`
/// names the administrator who made it).
async fn apply(
    state: &AppState,
    user: &User,
    editor: Editor,
    edit: Edit,
    at: At<'_>,
    by_admin: Option<i64>,
) -> AppResult<Response> {
    let site = state.site();
    let provenance = provenance(state, user).await?;
    let refusals: Vec<EditRefusal> = edit
        .fields
        .keys()
        .filter_map(|field| {
            let Some(kind) = site.field_kind(field) else {
                return Some(EditRefusal::UnknownField {
                    field: field.clone(),
                });
            };
            locks::may_edit(editor, field, kind, &lock_of(&site, &provenance, field)).err()
        })
        .collect();
    if !refusals.is_empty() {
        let refused: Vec<Value> = refusals
            .iter()
            .map(|r| {
                let (field, locked_by) = match r {
                    EditRefusal::Locked { field, idp } => (field, Some(idp)),
                    EditRefusal::NotUserEditable { field }
                    | EditRefusal::UnknownField { field } => (field, None),
                };
                json!({ "field": field, "reason": r.to_string(), "locked_by": locked_by })
            })
            .collect();
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "nothing was changed: some fields cannot be edited",
        )
        .with_code("not_editable")
        .with_json("refused", Value::Array(refused)));
    }
    if edit
        .fields
        .get("username")
        .is_some_and(|u| u.trim().is_empty())
    {
        return Err(AppError::bad_request("The username cannot be empty."));
    }
    // A value the account's own user typed has no provenance: it is never locked, and no
    // IdP ever matches an account by it. An administrator's value is recorded as such, so
    // IdPs may match by it (it still locks nothing).
    let provenance = match editor {
        Editor::Owner => None,
        Editor::Admin => Some(ADMIN_PROVENANCE.to_owned()),
    };
    let changes: Vec<FieldChange> = edit
        .fields
        .into_iter()
        .map(|(field, value)| FieldChange {
            field,
            value,
            provenance: provenance.clone(),
        })
        .collect();
    match state
        .store()
        .update_user_fields(user.id, &changes, state.now())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(message)) => {
            return Err(
                AppError::new(StatusCode::CONFLICT, "That username is already taken.")
                    .with_detail(message),
            );
        }
        Err(error) => return Err(error.into()),
    }
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    events::account_edited(state.metrics(), at, user.id, by_admin, &fields);
    let updated = user_or_404(state, user.id).await?;
    profile_response(state, &updated, editor).await
}
