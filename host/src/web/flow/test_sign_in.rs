//! The end of a test sign-in: what a real sign-in through the IdP would do (the raw
//! attributes, the mapped values, the plan and the locks it would leave), with nothing
//! saved but the IdP's success history and an audit row. Not where a test sign-in is begun
//! (`/admin/test-login/{idp}`, a handler) nor the admin check (`flow::finish`).

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use gatehouse_plugin_api::Identity;
use gatehouse_resolver::{
    locks,
    provisioning::{self, Plan},
};
use gatehouse_store::{AuditEvent, User};
use serde_json::{Value, json};

use crate::{
    site::{SiteDomain, SiteIdp},
    state::AppState,
    web::{error::AppResult, pages},
};

use super::provision::{claims_of, plan_sign_in};

/// A finished test sign-in, rendered as the test sign-in page (a summary and the whole
/// result as JSON).
#[derive(Debug)]
pub struct TestReport {
    pub idp_id: String,
    /// One line: "would create a new user and sign in", …
    pub summary: String,
    pub result: Value,
}

impl IntoResponse for TestReport {
    fn into_response(self) -> Response {
        pages::test_sign_in_page(&self.idp_id, &self.summary, &self.result).into_response()
    }
}

/// The end of a test sign-in: the raw attributes, the mapped values, the plan and the
/// locks it would leave, with nothing saved. A test whose plan is not "refuse" counts as the
/// IdP's proof of working for `untested-redirect`.
pub(super) async fn report(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    identity: &Identity,
    admin: &User,
    now: i64,
) -> AppResult<TestReport> {
    let claims = claims_of(identity);
    let plan = plan_sign_in(state, domain, idp, &claims).await?;
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

    // Only a test sign-in that would sign someone in proves the IdP for untested-redirect: a
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
            reason: format!("test sign-in: {}", plan_summary(&plan)),
            ip: String::new(),
        })
        .await?;
    tracing::info!(
        idp = idp.id(),
        admin = admin.username,
        summary = plan_summary(&plan),
        "test sign-in"
    );
    Ok(TestReport {
        idp_id: idp.id().to_owned(),
        summary: plan_summary(&plan),
        result,
    })
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
