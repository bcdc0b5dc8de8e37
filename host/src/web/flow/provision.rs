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
use gatehouse_store::{
    AccountWrite, AuditEvent, ConnectLink, FieldChange, FieldProvenance, NewUser, Session,
    SignInWrite, StoreError, User,
};

use crate::{
    connect_migration::{self, ConnectAccount},
    events::{self, At, Reason},
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
    let linked_idps = state.store().linked_idps(user.id).await?;
    Ok(candidate_of(user, linked_idps))
}

/// [`candidate`] of a user whose links were read with it.
fn candidate_of(user: &User, linked_idps: Vec<String>) -> Candidate {
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
    Candidate {
        id: user.id,
        suspended: user.suspended,
        values,
        origin,
        is_admin: user.is_admin,
        has_password: user.password_hash.is_some(),
        linked_idps,
    }
}

/// Looks up the accounts `claims` could match on `domain` and plans the sign-in.
/// Reads only; the real sign-in and the test sign-in share it.
pub async fn plan_sign_in(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    claims: &Claims,
) -> AppResult<Plan> {
    Ok(plan_with_takeover(state, domain, idp, claims).await?.plan)
}

/// A plan, with what carrying it out needs beyond it.
struct Planned {
    plan: Plan,
    /// The local account migration takes over and the link to record first (Connect).
    takeover: Option<(i64, ConnectLink)>,
    /// The usernames of the accounts the plan could end in, by id.
    usernames: Vec<(i64, String)>,
}

impl Planned {
    fn refused(plan: Plan) -> Self {
        Self {
            plan,
            takeover: None,
            usernames: Vec::new(),
        }
    }

    fn username_of(&self, user_id: i64) -> String {
        self.usernames
            .iter()
            .find(|(id, _)| *id == user_id)
            .map(|(_, username)| username.clone())
            .unwrap_or_default()
    }
}

/// [`plan_sign_in`], and for a Connect IdP's sign-in into a local account that migration
/// takes over (`migrate_users`), the account and the link to record before the plan is
/// carried out. A Connect sign-in lands first in the account linked to its server user,
/// then in the `tc_` account of its username (see `connect_migration::find_account`).
/// Any other sign-in reads its candidates in one statement.
async fn plan_with_takeover(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    claims: &Claims,
) -> AppResult<Planned> {
    let policy = &idp.policy;
    let branch = &domain.plan.branch;
    if idp.instance.plugin.protocol == CONNECT_PROTOCOL {
        let (user, linked_here, takeover) =
            match connect_migration::find_account(state, &idp.config, branch, claims).await? {
                ConnectAccount::ByUsername => (None, false, None),
                ConnectAccount::Ambiguous { map, count } => {
                    return Ok(Planned::refused(Plan::Refuse(Refusal::Ambiguous {
                        match_field: map.as_str().to_owned(),
                        count,
                    })));
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
            return Ok(Planned {
                plan,
                takeover,
                usernames: vec![(user.id, user.username)],
            });
        }
    }
    let Some(value) = provisioning::match_value(policy, claims) else {
        return Ok(Planned::refused(provisioning::plan(
            policy,
            claims,
            Lookup::default(),
        )));
    };
    // The store counts, outside the branch, the value's holders and (for another match
    // field) the accounts whose username it is: a new account would take the value as its
    // username, which is unique everywhere.
    let found = state
        .store()
        .sign_in_lookup(&policy.match_field, value, policy.case_insensitive, branch)
        .await?;
    let usernames = found
        .in_branch
        .iter()
        .map(|matched| (matched.user.id, matched.user.username.clone()))
        .collect();
    let in_branch: Vec<Candidate> = found
        .in_branch
        .into_iter()
        .map(|matched| candidate_of(&matched.user, matched.linked_idps))
        .collect();
    let lookup = Lookup {
        in_branch: &in_branch,
        outside_branch: usize::try_from(found.outside_branch).unwrap_or(usize::MAX),
    };
    Ok(Planned {
        plan: provisioning::plan(policy, claims, lookup),
        takeover: None,
        usernames,
    })
}

/// The admin's side of a refusal for an attribute the IdP did not send (the person signing
/// in sees only the plain refusal): the IdP, the attribute names it did send (names only:
/// values are personal data) and the settings that would help, OpenID Connect plugins'
/// `scopes` and `use_userinfo` among them.
fn log_missing_attributes(domain: &str, idp: &SiteIdp, claims: &Claims, refusal: &Refusal) {
    let Some(missing) = refusal.missing_attributes(&idp.policy) else {
        return;
    };
    let protocol = idp.instance.plugin.protocol.as_str();
    let mut help = missing.settings;
    match protocol {
        "oidc" | "auth0" => help.push("`scopes` / `use_userinfo` in [idp.settings]"),
        "google" => help.push("`use_userinfo` in [idp.settings]"),
        _ => {}
    }
    let received: Vec<&str> = claims.keys().map(String::as_str).collect();
    tracing::warn!(
        domain,
        idp = idp.id(),
        plugin = protocol,
        missing = ?missing.attributes,
        unmapped_fields = ?missing.unmapped_fields,
        received = ?received,
        help = %help.join(", "),
        "sign-in refused: the identity provider did not send an attribute this IdP needs"
    );
}

/// What a sign-in writes beside the account, in the same transaction.
pub(super) struct Ending<'a> {
    /// The new session (its `user_id` is the account's, filled in by the store).
    pub session: &'a Session,
    /// The success audit row (its user and username are the account's).
    pub audit: AuditEvent,
    /// Whether to record the IdP's success this time ([`SiteIdp::success_to_record`]).
    pub record_success: bool,
}

/// Finds, creates or updates the user for `identity` and writes, in one transaction, the
/// account's changes with `ending`'s session and audit row; the account's id and username.
/// `Err((username, reason, code))` is a refusal for the user, with nothing written. An
/// account created or updated is logged and counted (`events`).
pub(super) async fn provision(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    identity: &Identity,
    now: i64,
    ending: Ending<'_>,
) -> AppResult<Result<(i64, String), (String, String, Reason)>> {
    let claims = claims_of(identity);
    let match_value = provisioning::match_value(&idp.policy, &claims)
        .unwrap_or_default()
        .to_owned();
    // A concurrent first sign-in of the same identity may create the user between our
    // lookup and our insert; the unique username makes one insert lose, and the loser
    // plans again against the user that now exists. No lock is held across the IdP
    // round trip.
    for _ in 0..3 {
        let planned = plan_with_takeover(state, domain, idp, &claims).await?;
        if let Some((user_id, link)) = &planned.takeover {
            // Two sign-ins racing for one account: the loser plans again (and finds the
            // account linked to another server user, so not its own).
            match state
                .store()
                .link_migrated_account(*user_id, link, now)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        let created;
        let changes: Vec<FieldChange>;
        let (account, username) = match &planned.plan {
            Plan::Refuse(reason) => {
                log_missing_attributes(domain.name(), idp, &claims, reason);
                return Ok(Err((
                    match_value,
                    reason.to_string(),
                    Reason::of_refusal(reason),
                )));
            }
            Plan::SignIn { user_id } => (
                AccountWrite::Existing { user_id: *user_id },
                planned.username_of(*user_id),
            ),
            Plan::Update {
                user_id,
                changes: diffs,
            } => {
                changes = diffs
                    .iter()
                    .map(|diff| FieldChange {
                        field: diff.field.clone(),
                        value: diff.new.clone(),
                        provenance: Some(idp.id().to_owned()),
                    })
                    .collect();
                let username = changes
                    .iter()
                    .find(|change| change.field == "username")
                    .map_or_else(|| planned.username_of(*user_id), |c| c.value.clone());
                (
                    AccountWrite::Update {
                        user_id: *user_id,
                        changes: &changes,
                    },
                    username,
                )
            }
            Plan::Create { fields } => {
                created = new_user(fields, &domain.plan.branch, idp.id(), now);
                (
                    AccountWrite::Create {
                        user: &created.0,
                        provenance: &created.1,
                    },
                    created.0.username.clone(),
                )
            }
        };
        let audit = AuditEvent {
            username: username.clone(),
            ..ending.audit.clone()
        };
        let write = SignInWrite {
            account,
            session: ending.session,
            audit: &audit,
            idp_success: ending.record_success.then_some((idp.id(), now)),
            now,
        };
        match state.store().finish_sign_in(write).await {
            Ok(user_id) => {
                let at = At {
                    domain: &audit.domain,
                    idp: Some(idp.id()),
                    client: &audit.ip,
                };
                match &planned.plan {
                    Plan::Create { .. } => {
                        events::account_created(state.metrics(), at, user_id);
                    }
                    Plan::Update { changes: diffs, .. } => {
                        let fields: Vec<&str> =
                            diffs.iter().map(|diff| diff.field.as_str()).collect();
                        events::account_updated(state.metrics(), at, user_id, &fields);
                    }
                    _ => {}
                }
                return Ok(Ok((user_id, username)));
            }
            // Only a creation can lose to a concurrent one; plan again against its account.
            Err(StoreError::Conflict(_)) if matches!(planned.plan, Plan::Create { .. }) => {
                continue;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Err((
        match_value,
        "an account with your username exists in another part of the platform".into(),
        Reason::USERNAME_TAKEN,
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
