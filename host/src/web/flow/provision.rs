//! From an identity to an account: the claims, the accounts they could match, the
//! provisioning plan (`gatehouse_resolver::provisioning`, pure) and applying it in single
//! transactions, with a retry when a concurrent first sign-in wins the insert. Not the
//! checks of the pending sign-in (`flow`) nor sessions (`session`).

use gatehouse_plugin_api::Identity;
use gatehouse_resolver::provisioning::{
    self, AccountOrigin, Candidate, Claims, FieldValue, Lookup, Plan,
};
use gatehouse_store::{FieldChange, FieldProvenance, NewUser, StoreError, User};

use crate::{
    site::{SiteDomain, SiteIdp},
    state::AppState,
    web::error::AppResult,
};

/// The attributes of `identity`, first value of each.
pub fn claims_of(identity: &Identity) -> Claims {
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
async fn candidate(state: &AppState, user: &User) -> AppResult<Candidate> {
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
/// Reads only; the real sign-in and the test sign-in share it.
pub async fn plan_sign_in(
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
pub(super) async fn provision(
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
