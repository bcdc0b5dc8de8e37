//! Migration of pre-existing local accounts to a Totara Connect server's users (reference
//! §4.3, `migrate_users` / `migrate_map`), on the host's side: the settings as `plugins.toml`
//! gives them, the account a Connect sign-in lands in (its Connect link, then the `tc_`
//! account its IdP made, then — with migration on — the one local account the shared rule
//! finds), and `gatehouse connect migration-preview`, which fetches the server's users as
//! the `users` task does and says what migration would do, writing nothing. Not the
//! matching rule itself (`gatehouse_store::matching_accounts`, shared with the users sync's
//! planner) nor the sync (`connect_sync`).

use gatehouse_config::IdpConfig;
use gatehouse_resolver::provisioning::Claims;
use gatehouse_store::{
    FoundAccount, MigrateMap, Migration, MigrationPlan, ServerUser, StoreError, SyncSource, User,
    mapping_value, matching_accounts, plan_migration,
};
use serde_json::{Value, json};

use crate::{
    connect::{self, ConnectCliError},
    connect_sync,
    state::AppState,
};

/// The `migrate_map` an IdP's `[idp.settings]` names (`username` when it names none),
/// whether or not `migrate_users` is on.
pub fn configured_map(config: &IdpConfig) -> Result<MigrateMap, String> {
    match config.settings.get("migrate_map") {
        None | Some(Value::Null) => Ok(MigrateMap::Username),
        Some(value) => value.as_str().and_then(MigrateMap::parse).ok_or_else(|| {
            format!(
                "IdP `{}`: migrate_map = {value} is not username, email, idnumber or uniqueid",
                config.id
            )
        }),
    }
}

/// The mapping migration uses for this IdP, or `None` when `migrate_users` is off (the
/// default).
pub fn enabled_map(config: &IdpConfig) -> Result<Option<MigrateMap>, String> {
    let on = match config.settings.get("migrate_users") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(on)) => *on,
        Some(other) => {
            return Err(format!(
                "IdP `{}`: migrate_users = {other} is not true or false",
                config.id
            ));
        }
    };
    if on {
        configured_map(config).map(Some)
    } else {
        Ok(None)
    }
}

/// The server user a Connect sign-in names: its id and its server's idnumber (the
/// identity's `server_user_id` and `server_idnumber`), and the values migration maps by.
pub fn server_user_of(claims: &Claims) -> Option<(ServerUser, String)> {
    let id: i64 = claims.get("server_user_id")?.parse().ok()?;
    let server_idnumber = claims.get("server_idnumber")?.clone();
    if id <= 0 || server_idnumber.is_empty() {
        return None;
    }
    let text = |name: &str| claims.get(name).cloned().unwrap_or_default();
    Some((
        ServerUser {
            server_user_id: id,
            username: text("server_username"),
            email: text("email"),
            firstname: text("firstname"),
            lastname: text("lastname"),
            idnumber: text("idnumber"),
            ..ServerUser::default()
        },
        server_idnumber,
    ))
}

/// Where a Connect sign-in lands, before the provisioning plan.
#[derive(Debug)]
pub enum ConnectAccount {
    /// The account linked to the server user; `by_this_idp` when this IdP linked it (the
    /// link is then as good as an administrator's link for this IdP).
    Linked { user: User, by_this_idp: bool },
    /// The one local account migration takes over (not linked yet).
    Migrate { user: User },
    /// Migration found several local accounts: refused.
    Ambiguous { map: MigrateMap, count: usize },
    /// Nothing of the above: the `tc_` username decides, as for any sign-in.
    ByUsername,
}

/// Finds the account a Connect IdP's sign-in lands in: the one linked to the server user
/// (by any IdP of the same server); else, when this IdP made a `tc_` account for the user
/// (a sign-in before any sync), that one by its username; else, with `migrate_users` on,
/// the local account the shared rule finds. Reads only.
pub async fn find_account(
    state: &AppState,
    idp: &IdpConfig,
    branch: &str,
    claims: &Claims,
) -> Result<ConnectAccount, StoreError> {
    let Some((server_user, server_idnumber)) = server_user_of(claims) else {
        return Ok(ConnectAccount::ByUsername);
    };
    let store = state.store();
    if let Some((user_id, linked_by)) = store
        .connect_linked_account(&server_idnumber, server_user.server_user_id)
        .await?
        && let Some(user) = store.user_by_id(user_id).await?
    {
        return Ok(ConnectAccount::Linked {
            user,
            by_this_idp: linked_by == idp.id,
        });
    }
    let Ok(Some(map)) = enabled_map(idp) else {
        return Ok(ConnectAccount::ByUsername);
    };
    if let Some(username) = claims.get("username")
        && let Some(made) = store.user_by_username(username).await?
        && made.auth_source == format!("idp:{}", idp.id)
    {
        return Ok(ConnectAccount::ByUsername);
    }
    let Ok(value) = mapping_value(map, &server_user, &server_idnumber) else {
        return Ok(ConnectAccount::ByUsername);
    };
    let found: Vec<FoundAccount> = store.migration_candidates(map, &value).await?;
    let matched = matching_accounts(
        map,
        branch,
        &value,
        found.iter().map(FoundAccount::candidate),
    );
    match matched.as_slice() {
        [] => Ok(ConnectAccount::ByUsername),
        [one] => {
            let id = found
                .iter()
                .find(|account| account.user.username == *one)
                .map(|account| account.id);
            match id {
                Some(id) => Ok(store
                    .user_by_id(id)
                    .await?
                    .map_or(ConnectAccount::ByUsername, |user| ConnectAccount::Migrate {
                        user,
                    })),
                None => Ok(ConnectAccount::ByUsername),
            }
        }
        several => Ok(ConnectAccount::Ambiguous {
            map,
            count: several.len(),
        }),
    }
}

/// What `gatehouse connect migration-preview` found.
#[derive(Debug, Clone)]
pub struct Preview {
    pub idp: String,
    pub map: MigrateMap,
    /// Whether `migrate_users` is on (the preview is the same either way).
    pub enabled: bool,
    pub server_users: usize,
    pub plan: MigrationPlan,
}

/// Why there is no preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Idp(#[from] ConnectCliError),
    #[error("IdP `{idp}`: the `users` task's output cannot be read: {why}")]
    Output { idp: String, why: String },
    #[error("{0}")]
    Settings(String),
    #[error("reading the directory failed: {0}")]
    Store(#[from] StoreError),
}

/// `gatehouse connect migration-preview --idp ID`: runs the IdP's `users` task through the
/// plugin (the same `get_users` the sync makes) without applying its output, and plans the
/// migration with the configured `migrate_map` against the directory as it is. Writes
/// nothing.
pub async fn preview(state: &AppState, idp_id: &str) -> Result<Preview, PreviewError> {
    let idp = connect::connect_idp(state, idp_id)?;
    let map = configured_map(&idp.config).map_err(PreviewError::Settings)?;
    let enabled = enabled_map(&idp.config)
        .map_err(PreviewError::Settings)?
        .is_some();
    let output_error = |why: String| PreviewError::Output {
        idp: idp_id.to_owned(),
        why,
    };
    let text = connect::call_task(state, &idp, "users")
        .await
        .map_err(|error| ConnectCliError::Call {
            idp: idp_id.to_owned(),
            error,
        })?;
    let output = crate::tasks::TaskOutput::parse(&text)
        .map_err(|_| output_error("it is not JSON".to_owned()))?;
    connect_sync::section_in(&output.tree).map_err(|error| output_error(error.to_string()))?;
    let section = output
        .connect_users
        .ok_or_else(|| output_error("it has no `directory`".to_owned()))?;
    let section = connect_sync::read_section_text(section)
        .map_err(|error| output_error(error.to_string()))?;
    let site = state.site();
    let branch = site
        .domain(&idp.config.domain)
        .map(|domain| domain.plan.branch.clone())
        .ok_or_else(|| {
            PreviewError::Settings(format!(
                "IdP `{idp_id}`'s domain `{}` is not served",
                idp.config.domain
            ))
        })?;
    let store = state.store();
    let snapshot = store.users_snapshot_with_provenance().await?;
    let standings = store.account_standings().await?;
    let plan = plan_migration(
        &snapshot,
        SyncSource {
            idp_id,
            server_idnumber: &section.server_idnumber,
        },
        &section.users,
        Migration {
            map,
            branch: &branch,
            standings: &standings,
        },
    );
    Ok(Preview {
        idp: idp_id.to_owned(),
        map,
        enabled,
        server_users: section.users.len(),
        plan,
    })
}

fn named(user: &gatehouse_store::NamedServerUser) -> Value {
    json!({"server_user_id": user.server_user_id, "server_username": user.server_username})
}

/// The preview as JSON: `{"idp", "migrate_map", "migrate_users", "takeovers": [{server_user_id,
/// server_username, local_username}], "missing": [{server_user_id, server_username}],
/// "invalid": […], "ambiguous": [{server_user_id, server_username, local_usernames}],
/// "contested": [{local_username, server_users: [{server_user_id, server_username}]}]}`.
pub fn to_json(preview: &Preview) -> Value {
    let plan = &preview.plan;
    json!({
        "idp": preview.idp,
        "migrate_map": preview.map.as_str(),
        "migrate_users": preview.enabled,
        "takeovers": plan.takeovers.iter().map(|t| json!({
            "server_user_id": t.server_user.server_user_id,
            "server_username": t.server_user.server_username,
            "local_username": t.local_username,
        })).collect::<Vec<_>>(),
        "missing": plan.missing.iter().map(named).collect::<Vec<_>>(),
        "invalid": plan.invalid.iter().map(named).collect::<Vec<_>>(),
        "ambiguous": plan.ambiguous.iter().map(|a| json!({
            "server_user_id": a.server_user.server_user_id,
            "server_username": a.server_user.server_username,
            "local_usernames": a.local_usernames,
        })).collect::<Vec<_>>(),
        "contested": plan.contested.iter().map(|c| json!({
            "local_username": c.local_username,
            "server_users": c.server_users.iter().map(named).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The preview for a terminal.
pub fn to_human(preview: &Preview) -> String {
    use std::fmt::Write as _;
    let plan = &preview.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "IdP {}: {} server users, migrate_map = \"{}\", migrate_users is {} (nothing was written)",
        preview.idp,
        preview.server_users,
        preview.map.as_str(),
        if preview.enabled { "on" } else { "off" }
    );
    let user = |u: &gatehouse_store::NamedServerUser| {
        format!("{} (server user {})", u.server_username, u.server_user_id)
    };
    let _ = writeln!(out, "Would take over ({}):", plan.takeovers.len());
    for t in &plan.takeovers {
        let _ = writeln!(out, "  {} <- {}", t.local_username, user(&t.server_user));
    }
    let what = match preview.map {
        MigrateMap::Username => "username",
        MigrateMap::Email => "email",
        MigrateMap::Idnumber => "idnumber",
        MigrateMap::Uniqueid => "id",
    };
    let _ = writeln!(out, "No {what} to map by ({}):", plan.missing.len());
    for u in &plan.missing {
        let _ = writeln!(out, "  {}", user(u));
    }
    let _ = writeln!(out, "Invalid email ({}):", plan.invalid.len());
    for u in &plan.invalid {
        let _ = writeln!(out, "  {}", user(u));
    }
    let _ = writeln!(
        out,
        "Several local accounts match, not migrated ({}):",
        plan.ambiguous.len()
    );
    for a in &plan.ambiguous {
        let _ = writeln!(
            out,
            "  {}: {}",
            user(&a.server_user),
            a.local_usernames.join(", ")
        );
    }
    if !plan.contested.is_empty() {
        let _ = writeln!(
            out,
            "One local account matched by several server users, not migrated ({}):",
            plan.contested.len()
        );
        for c in &plan.contested {
            let users: Vec<String> = c.server_users.iter().map(user).collect();
            let _ = writeln!(out, "  {}: {}", c.local_username, users.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp(settings: Value) -> IdpConfig {
        IdpConfig {
            id: "hq".into(),
            settings,
            ..IdpConfig::default()
        }
    }

    #[test]
    fn migration_is_off_by_default_and_maps_by_username() {
        assert_eq!(enabled_map(&idp(json!({}))), Ok(None));
        assert_eq!(configured_map(&idp(json!({}))), Ok(MigrateMap::Username));
        assert_eq!(
            enabled_map(&idp(json!({"migrate_users": true, "migrate_map": "email"}))),
            Ok(Some(MigrateMap::Email))
        );
        assert_eq!(
            configured_map(&idp(
                json!({"migrate_users": false, "migrate_map": "uniqueid"})
            )),
            Ok(MigrateMap::Uniqueid)
        );
        assert!(enabled_map(&idp(json!({"migrate_users": "yes"}))).is_err());
        assert!(configured_map(&idp(json!({"migrate_map": "phone"}))).is_err());
    }

    #[test]
    fn a_sign_in_names_its_server_user_only_with_id_and_server() {
        let claims: Claims = [
            ("server_user_id", "7"),
            ("server_idnumber", "abc"),
            ("server_username", "ada"),
            ("email", "ada@example.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (user, server) = server_user_of(&claims).expect("named");
        assert_eq!((user.server_user_id, server.as_str()), (7, "abc"));
        assert_eq!(
            (user.username.as_str(), user.email.as_str()),
            ("ada", "ada@example.com")
        );
        for missing in ["server_user_id", "server_idnumber"] {
            let mut without = claims.clone();
            without.remove(missing);
            assert!(server_user_of(&without).is_none(), "{missing}");
        }
        let mut bad = claims;
        bad.insert("server_user_id".into(), "-1".into());
        assert!(server_user_of(&bad).is_none());
    }
}
