//! From an identity to an account: the claims, the accounts they could match, the
//! provisioning plan (`gatehouse_resolver::provisioning`, pure) and applying it in single
//! transactions, with a retry when a concurrent first sign-in wins the insert; a Connect
//! IdP's sign-in found by its Connect link first, and with `migrate_users` taking over a
//! local account (`connect_migration`). Not the
//! checks of the pending sign-in (`flow`) nor sessions (`session`).

use gatehouse_plugin_api::Identity;
use gatehouse_resolver::provisioning::{
    self, AccountOrigin, CONNECT_PROTOCOL, Candidate, Claims, FieldValue, Lookup, Plan, Refusal,
};
use gatehouse_store::{ConnectLink, FieldChange, FieldProvenance, NewUser, StoreError, User};

use crate::{
    connect_migration::{self, ConnectAccount},
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
    Ok(plan_with_takeover(state, domain, idp, claims).await?.0)
}

/// [`plan_sign_in`], and for a Connect IdP's sign-in into a local account that migration
/// takes over (`migrate_users`), the account and the link to record before the plan is
/// carried out. A Connect sign-in lands first in the account linked to its server user,
/// then in the `tc_` account of its username (see `connect_migration::find_account`).
async fn plan_with_takeover(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    claims: &Claims,
) -> AppResult<(Plan, Option<(i64, ConnectLink)>)> {
    let policy = &idp.policy;
    let branch = &domain.plan.branch;
    if idp.instance.plugin.protocol == CONNECT_PROTOCOL {
        let (user, linked_here, takeover) =
            match connect_migration::find_account(state, &idp.config, branch, claims).await? {
                ConnectAccount::ByUsername => (None, false, None),
                ConnectAccount::Ambiguous { map, count } => {
                    return Ok((
                        Plan::Refuse(Refusal::Ambiguous {
                            match_field: map.as_str().to_owned(),
                            count,
                        }),
                        None,
                    ));
                }
                ConnectAccount::Linked { user, by_this_idp } => (Some(user), by_this_idp, None),
                ConnectAccount::Migrate { user } => {
                    let link = connect_migration::server_user_of(claims).map(
                        |(server_user, server_idnumber)| ConnectLink {
                            idp_id: idp.id().to_owned(),
                            server_idnumber,
                            server_user_id: server_user.server_user_id,
                        },
                    );
                    // `find_account` migrates only a sign-in that names its server user,
                    // so there is always a link to write; without one, no account.
                    match link {
                        Some(link) => {
                            let takeover = Some((user.id, link));
                            (Some(user), true, takeover)
                        }
                        None => (None, false, None),
                    }
                }
            };
        if let Some(user) = user {
            let mut found = candidate(state, &user).await?;
            // The Connect link (a sync's, or this migration's, which the admin switched on)
            // is this IdP's link to the account.
            if linked_here {
                found.linked_idps.push(idp.id().to_owned());
            }
            let in_branch = if &user.branch == branch {
                vec![found]
            } else {
                Vec::new()
            };
            let lookup = Lookup {
                in_branch: &in_branch,
                outside_branch: usize::from(in_branch.is_empty()),
            };
            let plan = provisioning::plan(policy, claims, lookup);
            // A refused sign-in writes nothing, a migration's link included.
            let takeover =
                takeover.filter(|_| matches!(plan, Plan::SignIn { .. } | Plan::Update { .. }));
            return Ok((plan, takeover));
        }
    }
    let Some(value) = provisioning::match_value(policy, claims) else {
        return Ok((provisioning::plan(policy, claims, Lookup::default()), None));
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
    Ok((provisioning::plan(policy, claims, lookup), None))
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
        let (plan, takeover) = plan_with_takeover(state, domain, idp, &claims).await?;
        if let Some((user_id, link)) = takeover {
            // Two sign-ins racing for one account: the loser plans again (and finds the
            // account linked to another server user, so not its own).
            match state
                .store()
                .link_migrated_account(user_id, &link, now)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        match plan {
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
