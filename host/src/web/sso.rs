//! SSO sign-in through a plugin: `/sso/{idp}/start` begins it and remembers the
//! plugin's state server-side; `/sso/{idp}/callback` takes that state back exactly
//! once, asks the plugin for the identity, applies the provisioning plan and starts
//! a session. Every refusal is audited and writes nothing else. A test sign-in (begun
//! by an admin at `/admin/test-login/{idp}`) takes the same path and stops at the plan.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_plugin_api::{BeginRequest, CallbackRequest, Identity, Pair, StepMethod};
use gatehouse_resolver::provisioning::{
    self, AccountOrigin, Candidate, Claims, FieldValue, Lookup, Plan,
};
use gatehouse_store::{
    AuditEvent, FieldChange, FieldProvenance, NewUser, PendingLogin, StoreError, User,
};

use crate::{
    site::{SiteDomain, SiteIdp},
    state::AppState,
};

use super::{
    admin,
    browser_tokens::Purpose,
    error::{AppError, AppResult},
    http_util::{
        ClientIp, LOOP_COOKIE, PENDING_COOKIE, clear_cookie, cookie, request_host, safe_return_to,
        set_cookie, token_hash, tokens_match,
    },
    login::domain_of,
    pages, session,
};

/// The scheme of the public URL with the host the browser used (already matched
/// against a configured domain), so cookies and callbacks stay on that host.
pub(super) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let scheme = if state.settings().public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", request_host(headers))
}

fn callback_url(state: &AppState, headers: &HeaderMap, idp: &str) -> String {
    format!("{}/sso/{idp}/callback", base_url(state, headers))
}

pub(super) fn find_idp<'d>(
    domain: SiteDomain<'d>,
    id: &str,
) -> AppResult<&'d std::sync::Arc<SiteIdp>> {
    domain.idp(id).ok_or_else(|| {
        AppError::not_found("This sign-in method is not available here.")
            .with_detail(format!("no IdP `{id}` on domain `{}`", domain.name()))
    })
}

pub async fn start(
    State(state): State<AppState>,
    Path(idp_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    let site = state.site();
    let domain = domain_of(&site, &headers)?;
    let idp = find_idp(domain, &idp_id)?;
    if idp.config.behaviour == gatehouse_config::Behaviour::Hidden {
        return Err(
            AppError::not_found("This sign-in method is not available here.").with_detail(format!(
                "IdP `{idp_id}` is hidden (admins test it at /admin/test-login/{idp_id})"
            )),
        );
    }
    let return_to = safe_return_to(query.get("return_to").map(String::as_str));
    let login_hint = query.get("login_hint").cloned();
    begin(&state, &headers, idp, return_to, login_hint, false).await
}

/// Begins a sign-in (or, with `test_mode`, an admin's dry run) at `idp`: asks the plugin
/// where to send the browser and keeps its state until the callback.
pub(super) async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    idp: &SiteIdp,
    return_to: String,
    login_hint: Option<String>,
    test_mode: bool,
) -> AppResult<Response> {
    let idp_id = idp.id().to_owned();
    let state_token = state.token();
    let secure = state.settings().secure_cookies;
    // The host mints every binding: a value it did not issue (planted from a parent
    // domain, say) is never adopted. A binding it issued is kept, so sign-ins begun in
    // two tabs both complete.
    let key = state.browser_key().await?;
    let (binding, set_binding) = match cookie(headers, PENDING_COOKIE, secure) {
        Some(existing) if key.recognises(Purpose::Binding, existing) => {
            (existing.to_owned(), false)
        }
        _ => (key.mint(Purpose::Binding, state.random()), true),
    };
    let request = BeginRequest {
        callback_url: callback_url(state, headers, &idp_id).into(),
        state_token: state_token.as_str().into(),
        login_hint: login_hint.map(Into::into).into(),
    };
    let begun = state
        .caller()
        .call(idp.instance.clone(), move |host, idp| {
            idp.begin_login(host, request).into_result()
        })
        .await?;

    let now = state.now();
    state
        .store()
        .insert_pending(&PendingLogin {
            token_hash: token_hash(&state_token),
            idp_id,
            plugin_state: begun.state.into_vec(),
            browser_binding_hash: token_hash(&binding),
            return_to,
            test_mode,
            created_at: now,
            expires_at: now + session::seconds(state.settings().pending_login_lifetime),
        })
        .await?;

    let mut response = match begun.step.method {
        StepMethod::Redirect => Redirect::to(&begun.step.url).into_response(),
        StepMethod::PostForm => pages::post_form_page(&begun.step).into_response(),
    };
    if set_binding {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(PENDING_COOKIE, &binding, None, secure),
        );
    }
    Ok(response)
}

pub async fn callback_get(
    state: State<AppState>,
    idp: Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    callback(state, idp, ip, headers, query, Vec::new()).await
}

pub async fn callback_post(
    state: State<AppState>,
    idp: Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> AppResult<Response> {
    let form = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    callback(state, idp, ip, headers, query, form).await
}

fn pairs(list: Vec<(String, String)>) -> Vec<Pair> {
    list.into_iter()
        .map(|(name, value)| Pair::new(name, value))
        .collect()
}

async fn callback(
    State(state): State<AppState>,
    Path(idp_id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
) -> AppResult<Response> {
    let site = state.site();
    let domain = domain_of(&site, &headers)?;
    let idp = find_idp(domain, &idp_id)?;
    let now = state.now();
    let auditor = Auditor {
        state: &state,
        domain: domain.name(),
        idp: &idp_id,
        ip: &ip,
        at: now,
    };

    let state_param = &idp.instance.plugin.state_parameter;
    let token = form
        .iter()
        .chain(query.iter())
        .find(|(k, _)| k == state_param)
        .map(|(_, v)| v.clone());
    let Some(token) = token else {
        auditor
            .refused(None, "", "the callback carries no state")
            .await?;
        return Err(AppError::bad_request(
            "The sign-in answer is incomplete. Please start again.",
        ));
    };
    // Taking the pending sign-in deletes it: a replayed callback finds nothing.
    let Some(pending) = state.store().take_pending(&token_hash(&token)).await? else {
        auditor
            .refused(None, "", "unknown, tampered or already used state")
            .await?;
        return Err(AppError::bad_request(
            "This sign-in link is not valid or has already been used. Please start again.",
        ));
    };
    if pending.idp_id != idp_id {
        auditor
            .refused(
                None,
                "",
                &format!("state belongs to IdP `{}`", pending.idp_id),
            )
            .await?;
        return Err(AppError::bad_request(
            "This sign-in answer belongs to another sign-in method. Please start again.",
        ));
    }
    if pending.expires_at <= now {
        auditor
            .refused(None, "", "the pending sign-in expired")
            .await?;
        return Err(AppError::bad_request(
            "The sign-in took too long. Please start again.",
        ));
    }
    let binding_ok = cookie(&headers, PENDING_COOKIE, state.settings().secure_cookies)
        .is_some_and(|b| tokens_match(&token_hash(b), &pending.browser_binding_hash));
    if !binding_ok {
        auditor
            .refused(
                None,
                "",
                "callback arrived in a browser other than the one that started",
            )
            .await?;
        return Err(AppError::bad_request(
            "This sign-in was started in another browser. Please start again here.",
        ));
    }

    let request = CallbackRequest {
        callback_url: callback_url(&state, &headers, &idp_id).into(),
        query: pairs(query).into(),
        form: pairs(form).into(),
        state: pending.plugin_state.into(),
    };
    let identity = match state
        .caller()
        .call(idp.instance.clone(), move |host, idp| {
            idp.complete_login(host, request).into_result()
        })
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            auditor.failed(&error.to_string()).await?;
            return Err(error.into());
        }
    };

    if pending.test_mode {
        return admin::test_login_result(&state, &headers, domain, idp, &identity, now).await;
    }
    let user_id = match provision(&state, domain, idp, &identity, now).await? {
        Ok(user_id) => user_id,
        Err((username, reason)) => {
            auditor.refused(None, &username, &reason).await?;
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                format!("You cannot be signed in: {reason}."),
            ));
        }
    };
    state.store().record_idp_success(&idp_id, now).await?;
    let cookie = session::start(
        &state,
        &headers,
        domain.name(),
        user_id,
        Some(idp_id.clone()),
        Some(identity.subject.to_string()),
        identity.logout_state.into_vec(),
    )
    .await?;
    let username = state
        .store()
        .user_by_id(user_id)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    auditor.succeeded(user_id, &username).await?;
    let mut response = Redirect::to(&pending.return_to).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    // A completed sign-in ends any redirect-loop count.
    if super::http_util::cookie(&headers, LOOP_COOKIE, state.settings().secure_cookies).is_some() {
        response.headers_mut().append(
            header::SET_COOKIE,
            clear_cookie(LOOP_COOKIE, state.settings().secure_cookies),
        );
    }
    Ok(response)
}

/// The attributes of `identity`, first value of each.
pub(super) fn claims_of(identity: &Identity) -> Claims {
    identity
        .attributes
        .iter()
        .filter_map(|a| {
            a.values
                .first()
                .map(|v| (a.name.to_string(), v.to_string()))
        })
        .collect()
}

/// A stored user as the provisioning plan sees it, with the IdPs an admin linked it to.
pub(super) async fn candidate(state: &AppState, user: &User) -> AppResult<Candidate> {
    let mut values: std::collections::BTreeMap<String, String> = user.additional.clone();
    for (field, value) in [
        ("username", &user.username),
        ("email", &user.email),
        ("firstname", &user.firstname),
        ("lastname", &user.lastname),
        ("idnumber", &user.idnumber),
    ] {
        if !value.is_empty() {
            values.insert(field.to_owned(), value.clone());
        }
    }
    let origin = match user.auth_source.strip_prefix("idp:") {
        Some(idp) => AccountOrigin::Idp(idp.to_owned()),
        None => AccountOrigin::Local,
    };
    Ok(Candidate {
        id: user.id,
        suspended: user.suspended,
        values,
        origin,
        is_admin: user.is_admin,
        has_password: user.password_hash.is_some(),
        linked_idps: state.store().linked_idps(user.id).await?,
    })
}

/// Looks up the accounts `claims` could match on `domain` and plans the sign-in.
/// Reads only; the real sign-in and the admin's dry run share it.
pub(super) async fn plan_sign_in(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    claims: &Claims,
) -> AppResult<Plan> {
    let policy = &idp.policy;
    let branch = &domain.plan.branch;
    let Some(value) = provisioning::match_value(policy, claims) else {
        return Ok(provisioning::plan(policy, claims, Lookup::default()));
    };
    let store = state.store();
    let mut in_branch = Vec::new();
    for user in store
        .users_matching(&policy.match_field, value, policy.case_insensitive, branch)
        .await?
    {
        in_branch.push(candidate(state, &user).await?);
    }
    let mut outside = store
        .count_matching_elsewhere(&policy.match_field, value, policy.case_insensitive, branch)
        .await?;
    if policy.match_field != "username" {
        // A new account would take the value as its username, which is unique everywhere.
        outside += store
            .count_matching_elsewhere("username", value, false, branch)
            .await?;
    }
    let lookup = Lookup {
        in_branch: &in_branch,
        outside_branch: usize::try_from(outside).unwrap_or(usize::MAX),
    };
    Ok(provisioning::plan(policy, claims, lookup))
}

/// Finds, creates or updates the user for `identity`; `Err((username, reason))` is
/// a refusal for the user, with nothing written.
async fn provision(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    identity: &Identity,
    now: i64,
) -> AppResult<Result<i64, (String, String)>> {
    let claims = claims_of(identity);
    let match_value = provisioning::match_value(&idp.policy, &claims)
        .unwrap_or_default()
        .to_owned();
    // A concurrent first sign-in of the same identity may create the user between our
    // lookup and our insert; the unique username makes one insert lose, and the loser
    // plans again against the user that now exists. No lock is held across the IdP
    // round trip.
    for _ in 0..3 {
        match plan_sign_in(state, domain, idp, &claims).await? {
            Plan::Refuse(reason) => return Ok(Err((match_value, reason.to_string()))),
            Plan::SignIn { user_id } => return Ok(Ok(user_id)),
            Plan::Update { user_id, changes } => {
                let changes: Vec<FieldChange> = changes
                    .into_iter()
                    .map(|diff| FieldChange {
                        field: diff.field,
                        value: diff.new,
                        provenance: Some(idp.id().to_owned()),
                    })
                    .collect();
                state
                    .store()
                    .update_user_fields(user_id, &changes, now)
                    .await?;
                return Ok(Ok(user_id));
            }
            Plan::Create { fields } => {
                let (user, provenance) = new_user(&fields, &domain.plan.branch, idp.id(), now);
                match state.store().create_user(&user, &provenance, now).await {
                    Ok(user_id) => return Ok(Ok(user_id)),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Ok(Err((
        match_value,
        "an account with your username exists in another part of the platform".into(),
    )))
}

fn new_user(
    fields: &[FieldValue],
    branch: &str,
    idp_id: &str,
    now: i64,
) -> (NewUser, Vec<FieldProvenance>) {
    let mut user = NewUser {
        branch: branch.to_owned(),
        auth_source: format!("idp:{idp_id}"),
        ..NewUser::default()
    };
    for FieldValue { field, value } in fields {
        let value = value.clone();
        match field.as_str() {
            "username" => user.username = value,
            "email" => user.email = value,
            "firstname" => user.firstname = value,
            "lastname" => user.lastname = value,
            "idnumber" => user.idnumber = value,
            other => {
                user.additional.insert(other.to_owned(), value);
            }
        }
    }
    let provenance = fields
        .iter()
        .map(|f| FieldProvenance {
            field: f.field.clone(),
            idp_id: idp_id.to_owned(),
            set_at: now,
        })
        .collect();
    (user, provenance)
}

/// Writes the audit trail of one SSO callback.
struct Auditor<'a> {
    state: &'a AppState,
    domain: &'a str,
    idp: &'a str,
    ip: &'a str,
    at: i64,
}

impl Auditor<'_> {
    async fn write(
        &self,
        user_id: Option<i64>,
        username: &str,
        outcome: &str,
        reason: &str,
    ) -> AppResult<()> {
        let event = AuditEvent {
            at: self.at,
            domain: self.domain.to_owned(),
            idp_id: Some(self.idp.to_owned()),
            user_id,
            username: username.to_owned(),
            method: "sso".into(),
            outcome: outcome.into(),
            reason: reason.into(),
            ip: self.ip.to_owned(),
        };
        self.state
            .store()
            .audit(&event)
            .await
            .map_err(AppError::from)
    }
    async fn refused(&self, user_id: Option<i64>, username: &str, reason: &str) -> AppResult<()> {
        self.write(user_id, username, "refused", reason).await
    }
    async fn failed(&self, reason: &str) -> AppResult<()> {
        self.write(None, "", "failure", reason).await
    }
    async fn succeeded(&self, user_id: i64, username: &str) -> AppResult<()> {
        self.write(Some(user_id), username, "success", "").await
    }
}
