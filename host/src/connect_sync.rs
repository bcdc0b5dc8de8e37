//! The host's half of a Totara Connect users sync: a Connect IdP's `users` task hands over
//! the server's users and its options (`{"directory": {"connect_users": …}}`, written by
//! `plugins/connect`'s `sync::users`); the host reads that strictly, plans it with the
//! store's pure planner against a fresh snapshot of the directory, applies the batch in one
//! transaction (the accounts this IdP's sign-ins created before a sync linked them adopted
//! first; with `migrate_users`, the local accounts migration takes over linked in the same
//! batch), and ends the sessions of the users it suspended or deleted. Not the wire
//! format (the plugin read the server's reply) and not the planning rules
//! (`gatehouse_store::plan_users_sync`).
//!
//! Confinement: the sync source is the task's own IdP (never a name in the output), the
//! planner touches only users linked by that IdP, only a Connect IdP may hand over users,
//! and the provisioning settings (`create_users`, `update_existing`) and the platform's
//! fields come from `plugins.toml`, not from the plugin.

mod collections;
pub mod hierarchy;
mod jobs;

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_plugin_api::{HostAction, SessionSelector};
use gatehouse_store::{
    Change, JobsCounts, JobsOptions, Migration, RemoveUser, ServerUser, StoreError, SyncCounts,
    SyncOptions, SyncSource, WrittenBy, adopt_signed_in_users, count_users_sync, plan_migration,
    plan_users_sync,
};
use serde::Deserialize;
use serde_json::Value;

pub use collections::{
    CONNECT_COLLECTIONS, CollectionsReport, CollectionsSection, apply_collections,
    collections_section_in, read_collections_section,
};

use crate::{
    actions::{self, ActionSource},
    connect::CONNECT_PROTOCOL,
    connect_migration,
    state::AppState,
    tasks::Progress,
};

/// The key of a task output's directory changes.
pub const DIRECTORY_KEY: &str = "directory";
/// The one directory section the host applies in part 1: a Connect server's users.
pub const CONNECT_USERS: &str = "connect_users";

/// Why a users sync wrote nothing (or, for `EndSessions`, ended no sessions after writing).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The output is not what `users` hands over; nothing was written.
    #[error("the task's `directory` output is malformed: {0}")]
    Malformed(String),
    /// The output is well formed but not this task's to give.
    #[error("{0}")]
    Refused(String),
    /// The planned batch failed to apply (another writer got in between, or the database);
    /// nothing was written.
    #[error("applying the users sync failed, nothing was written: {0}")]
    Store(#[from] StoreError),
    /// The batch was written, but ending the sessions of the suspended and deleted users
    /// failed (deleted users' sessions went with them).
    #[error("the users sync was written, but ending the sessions of {count} users failed: {error}")]
    EndSessions { count: usize, error: StoreError },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RemoveUserOption {
    Keep,
    Suspend,
    Delete,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputOptions {
    remove_user: RemoveUserOption,
    sync_profile_fields: bool,
    #[serde(default)]
    sync_jobs: bool,
    #[serde(default)]
    sync_positions: bool,
    #[serde(default)]
    sync_organisations: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputUser {
    id: i64,
    username: String,
    email: String,
    firstname: String,
    lastname: String,
    idnumber: String,
    suspended: bool,
    deleted: bool,
    profile_fields: Option<BTreeMap<String, String>>,
    #[serde(default)]
    jobs: Option<Vec<gatehouse_connect_wire::RemoteJob>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    server_idnumber: String,
    api_version: u8,
    options: OutputOptions,
    users: Vec<OutputUser>,
}

/// A `connect_users` section, read and checked: nothing in it can make the planner or the
/// store write what the section does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersSection {
    pub server_idnumber: String,
    pub remove_user: RemoveUser,
    /// `sync_profile_fields`, and only with API version 2.
    pub sync_profile_fields: bool,
    pub users: Vec<ServerUser>,
    /// With `sync_jobs` (API version 2 only): the users' jobs, synced after the users.
    pub jobs: Option<jobs::JobsSync>,
}

pub(crate) fn malformed(why: impl Into<String>) -> SyncError {
    SyncError::Malformed(why.into())
}

/// Text a user's value may hold: anything but control characters (tabs and line breaks
/// aside), which no name or address has and PostgreSQL refuses (NUL).
pub(crate) fn check_text(path: &str, value: &str) -> Result<(), SyncError> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(malformed(format!("{path} contains control characters")));
    }
    Ok(())
}

/// The sections a task output's `directory` may hold, each applied by its own module.
pub const SECTIONS: [&str; 3] = [
    CONNECT_USERS,
    hierarchy::CONNECT_HIERARCHY,
    collections::CONNECT_COLLECTIONS,
];

/// A task output's `directory`: `None` when it has none; an error when it is not an object
/// of known sections (at least one).
fn directory_in(output: &Value) -> Result<Option<&serde_json::Map<String, Value>>, SyncError> {
    let Some(directory) = output.get(DIRECTORY_KEY) else {
        return Ok(None);
    };
    let object = directory
        .as_object()
        .ok_or_else(|| malformed("`directory` is not an object"))?;
    if let Some(other) = object.keys().find(|key| !SECTIONS.contains(&key.as_str())) {
        return Err(malformed(format!(
            "`directory.{other}` is not a section the host applies (only {})",
            SECTIONS.map(|s| format!("`{s}`")).join(", ")
        )));
    }
    if object.is_empty() {
        return Err(malformed("`directory` has no section"));
    }
    Ok(Some(object))
}

/// The section `name` of a task output's `directory`, if it has one; an error when the
/// `directory` is malformed.
pub fn named_section_in<'a>(output: &'a Value, name: &str) -> Result<Option<&'a Value>, SyncError> {
    Ok(directory_in(output)?.and_then(|directory| directory.get(name)))
}

/// The `connect_users` section of a task's output (see [`named_section_in`]).
pub fn section_in(output: &Value) -> Result<Option<&Value>, SyncError> {
    named_section_in(output, CONNECT_USERS)
}

/// A server idnumber as the plugin hands it over: 40 lowercase hex.
pub(crate) fn check_server_idnumber(idnumber: &str) -> Result<(), SyncError> {
    if idnumber.len() != 40
        || !idnumber
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(malformed(
            "`server_idnumber` is not 40 lowercase hexadecimal characters",
        ));
    }
    Ok(())
}

/// Refuses a sync of `what` by `idp_id` unless it is a configured Totara Connect IdP.
pub(crate) fn require_connect_idp(
    state: &AppState,
    idp_id: &str,
    what: &str,
) -> Result<(), SyncError> {
    let site = state.site();
    let Some(idp) = site.all_idps().find(|idp| idp.id() == idp_id) else {
        return Err(SyncError::Refused(format!(
            "IdP `{idp_id}` is no longer configured; its sync of {what} is not applied"
        )));
    };
    if idp.instance.plugin.protocol != CONNECT_PROTOCOL {
        return Err(SyncError::Refused(format!(
            "IdP `{idp_id}` (plugin `{}`) is not a Totara Connect IdP: only a Connect IdP's task may sync {what}",
            idp.instance.plugin.id
        )));
    }
    Ok(())
}

/// Reads a `connect_users` section strictly: every key known and of its type, the server
/// idnumber 40 lowercase hex, API version 1 or 2 (profile fields only with 2), server user
/// ids positive, no control characters in any value.
pub fn read_section(section: &Value) -> Result<UsersSection, SyncError> {
    let parsed = OutputSection::deserialize(section)
        .map_err(|error| malformed(format!("`{CONNECT_USERS}`: {error}")))?;
    check_section(parsed)
}

/// [`read_section`] of the section's JSON text, read typed (a server's whole user list is
/// never built as a JSON tree).
pub fn read_section_text(section: &str) -> Result<UsersSection, SyncError> {
    let parsed: OutputSection = serde_json::from_str(section)
        .map_err(|error| malformed(format!("`{CONNECT_USERS}`: {error}")))?;
    check_section(parsed)
}

fn check_section(parsed: OutputSection) -> Result<UsersSection, SyncError> {
    check_server_idnumber(&parsed.server_idnumber)?;
    if !(1..=2).contains(&parsed.api_version) {
        return Err(malformed(format!(
            "`api_version` {} is not 1 or 2",
            parsed.api_version
        )));
    }
    let v2 = parsed.api_version >= 2;
    if parsed.options.sync_profile_fields && !v2 {
        return Err(malformed(
            "`sync_profile_fields` is on at API version 1, which has no profile fields",
        ));
    }
    if parsed.options.sync_jobs && !v2 {
        return Err(malformed(
            "`sync_jobs` is on at API version 1, which has no job assignments",
        ));
    }
    let mut jobs = parsed.options.sync_jobs.then(|| jobs::JobsSync {
        options: JobsOptions {
            positions: parsed.options.sync_positions,
            organisations: parsed.options.sync_organisations,
        },
        users: Vec::new(),
    });
    let mut users = Vec::with_capacity(parsed.users.len());
    for (index, user) in parsed.users.into_iter().enumerate() {
        let at = |key: &str| format!("users[{index}].{key}");
        if user.id <= 0 {
            return Err(malformed(format!("{} is not a positive id", at("id"))));
        }
        for (key, value) in [
            ("username", &user.username),
            ("email", &user.email),
            ("firstname", &user.firstname),
            ("lastname", &user.lastname),
            ("idnumber", &user.idnumber),
        ] {
            check_text(&at(key), value)?;
        }
        if let Some(sent) = user.jobs {
            let Some(jobs) = jobs.as_mut() else {
                return Err(malformed(format!(
                    "{} is sent while `sync_jobs` is off",
                    at("jobs")
                )));
            };
            jobs.users.push(jobs::read_user_jobs(
                &format!("users[{index}]"),
                user.id,
                sent,
            )?);
        }
        if let Some(fields) = &user.profile_fields {
            if !parsed.options.sync_profile_fields {
                return Err(malformed(format!(
                    "{} is sent while `sync_profile_fields` is off",
                    at("profile_fields")
                )));
            }
            for (name, value) in fields {
                if name.is_empty() {
                    return Err(malformed(format!(
                        "{} has a field without a name",
                        at("profile_fields")
                    )));
                }
                check_text(&at(&format!("profile_fields.{name}")), name)?;
                check_text(&at(&format!("profile_fields.{name}")), value)?;
            }
        }
        users.push(ServerUser {
            server_user_id: user.id,
            username: user.username,
            email: user.email,
            firstname: user.firstname,
            lastname: user.lastname,
            idnumber: user.idnumber,
            suspended: user.suspended,
            deleted: user.deleted,
            profile_fields: user.profile_fields,
        });
    }
    Ok(UsersSection {
        server_idnumber: parsed.server_idnumber,
        remove_user: match parsed.options.remove_user {
            RemoveUserOption::Keep => RemoveUser::Keep,
            RemoveUserOption::Suspend => RemoveUser::Suspend,
            RemoveUserOption::Delete => RemoveUser::Delete,
        },
        sync_profile_fields: parsed.options.sync_profile_fields,
        users,
        jobs,
    })
}

/// What one users sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub counts: SyncCounts,
    /// Changes in the batch applied.
    pub changes: usize,
    /// Users whose sessions were ended (suspended or deleted by the sync).
    pub sessions_ended_for: usize,
    /// What the jobs sync did, when jobs are synced.
    pub jobs: Option<JobsCounts>,
}

/// Plans `section` for the Connect IdP `idp_id` against the directory as it is now and
/// applies it in one transaction; then ends the sessions of the users it suspended or
/// deleted (as `end_sessions` actions of that IdP, audited).
pub async fn apply_users(
    state: &AppState,
    idp_id: &str,
    section: &UsersSection,
    progress: Progress<'_>,
) -> Result<SyncReport, SyncError> {
    let site = state.site();
    let Some(idp) = site.all_idps().find(|idp| idp.id() == idp_id) else {
        return Err(SyncError::Refused(format!(
            "IdP `{idp_id}` is no longer configured; its users sync is not applied"
        )));
    };
    if idp.instance.plugin.protocol != CONNECT_PROTOCOL {
        return Err(SyncError::Refused(format!(
            "IdP `{idp_id}` (plugin `{}`) is not a Totara Connect IdP: only a Connect IdP's task may sync Connect users",
            idp.instance.plugin.id
        )));
    }
    let Some(domain) = site.domain(&idp.config.domain) else {
        return Err(SyncError::Refused(format!(
            "IdP `{idp_id}`'s domain `{}` is not served",
            idp.config.domain
        )));
    };
    let branch = domain.plan.branch.clone();
    let core = gatehouse_resolver::provisioning::CORE_FIELDS;
    let known_fields: BTreeSet<String> = site
        .field_names()
        .into_iter()
        .filter(|name| !core.contains(name))
        .map(str::to_owned)
        .collect();
    let provisioning = &idp.config.provisioning;
    let options = SyncOptions {
        remove_user: section.remove_user,
        sync_profile_fields: section.sync_profile_fields,
        create_users: provisioning.create_users,
        update_existing: provisioning.update_existing,
    };
    let source = SyncSource {
        idp_id,
        server_idnumber: &section.server_idnumber,
    };
    progress(&format!(
        "planning {} server users against the directory",
        section.users.len()
    ));
    let store = state.store();
    let migrate_map = connect_migration::enabled_map(&idp.config).map_err(SyncError::Refused)?;
    // Migration's matching rule reads who set an email or idnumber; a plain sync does not.
    let mut snapshot = match migrate_map {
        Some(_) => store.users_snapshot_with_provenance().await?,
        None => store.users_snapshot().await?,
    };
    // Accounts this IdP's sign-ins created before a sync linked them are this source's too.
    let made_here = store.connect_unlinked_accounts(idp_id).await?;
    let adopted = adopt_signed_in_users(&mut snapshot, source, &made_here);
    // Local accounts taken over (`migrate_users`), linked and updated in the same batch.
    let migration = match migrate_map {
        Some(map) => {
            let standings = store.account_standings().await?;
            Some(plan_migration(
                &snapshot,
                source,
                &section.users,
                Migration {
                    map,
                    branch: &branch,
                    standings: &standings,
                },
            ))
        }
        None => None,
    };
    let mut batch = plan_users_sync(
        &snapshot,
        source,
        &section.users,
        options,
        &known_fields,
        migration.as_ref(),
    );
    batch.changes.splice(0..0, adopted);
    let mut counts = count_users_sync(&snapshot, source, &batch);
    counts.not_migrated = migration.as_ref().map_or(0, |plan| plan.refused().len());
    // Whose sessions end: the users this batch suspends or deletes, by their server user id
    // (the subject their Connect sign-ins carry).
    let subjects: BTreeSet<i64> = batch
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::DeleteUser { username }
            | Change::SetSuspended {
                username,
                suspended: true,
            } => snapshot.connect_links.get(username),
            _ => None,
        })
        .filter(|link| link.idp_id == idp_id)
        .map(|link| link.server_user_id)
        .collect();
    if !batch.is_empty() {
        progress(&format!(
            "applying {} changes in one transaction ({counts})",
            batch.changes.len()
        ));
        let auth_source = format!("idp:{idp_id}");
        store
            .apply_batch(
                &batch,
                WrittenBy {
                    provenance: idp_id,
                    branch: &branch,
                    auth_source: &auth_source,
                },
                state.now(),
            )
            .await?;
    }
    // Jobs after the users, so that the users just created hold theirs.
    let jobs = match &section.jobs {
        Some(sync) => {
            progress(&format!(
                "syncing the job assignments of {} users in one transaction",
                sync.users.len()
            ));
            Some(jobs::apply(state, &section.server_idnumber, sync).await?)
        }
        None => None,
    };
    if !subjects.is_empty() {
        progress(&format!(
            "ending the sessions of {} suspended or deleted users",
            subjects.len()
        ));
        let ends: Vec<HostAction> = subjects
            .iter()
            .map(|id| HostAction::end_sessions(SessionSelector::subject(&id.to_string())))
            .collect();
        let source = ActionSource {
            idp_id,
            domain: "",
            ip: "",
            origin: "task `users`",
        };
        actions::apply(state, source, &ends)
            .await
            .map_err(|error| SyncError::EndSessions {
                count: subjects.len(),
                error,
            })?;
    }
    Ok(SyncReport {
        counts,
        changes: batch.changes.len(),
        sessions_ended_for: subjects.len(),
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SERVER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";

    fn section(users: Value) -> Value {
        json!({
            "server_idnumber": SERVER,
            "api_version": 2,
            "options": {"remove_user": "suspend", "sync_profile_fields": true},
            "users": users,
        })
    }

    fn ada() -> Value {
        json!({"id": 7, "username": "ada", "email": "ada@example.com", "firstname": "Ada",
               "lastname": "L", "idnumber": "E7", "suspended": false, "deleted": false,
               "profile_fields": {"department": "Maths"}})
    }

    #[test]
    fn a_well_formed_section_is_read() {
        let read = read_section(&section(json!([ada()]))).expect("reads");
        assert_eq!(read.remove_user, RemoveUser::Suspend);
        assert!(read.sync_profile_fields);
        assert_eq!(read.users.len(), 1);
        assert_eq!(read.users[0].server_user_id, 7);
        assert_eq!(
            read.users[0].profile_fields,
            Some(BTreeMap::from([(
                "department".to_owned(),
                "Maths".to_owned()
            )]))
        );
    }

    #[test]
    fn every_malformed_section_is_refused() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut value = section(json!([ada()]));
            edit(&mut value);
            value
        };
        for bad in [
            with(&|v| v["server_idnumber"] = json!("5F3B0C9A1E2D4F6A8B7C0D1E2F3A4B5C6D7E8F90")),
            with(&|v| v["server_idnumber"] = json!("abc")),
            with(&|v| v["api_version"] = json!(3)),
            with(&|v| {
                v["api_version"] = json!(1);
            }),
            with(&|v| v["options"]["remove_user"] = json!("purge")),
            with(&|v| v["options"]["colour"] = json!("blue")),
            with(&|v| v["extra"] = json!(1)),
            with(&|v| v["users"][0]["id"] = json!(0)),
            with(&|v| v["users"][0]["id"] = json!("7")),
            with(&|v| v["users"][0]["suspended"] = json!("0")),
            with(&|v| v["users"][0]["firstname"] = json!("A\u{0}da")),
            with(&|v| v["users"][0]["profile_fields"] = json!({"": "x"})),
            with(&|v| v["users"][0]["profile_fields"] = json!({"department": 5})),
            with(&|v| {
                v["options"]["sync_profile_fields"] = json!(false);
            }),
            with(&|v| {
                v["users"][0].as_object_mut().map(|o| o.remove("deleted"));
            }),
            with(&|v| v["users"] = json!({"0": ada()})),
        ] {
            assert!(
                matches!(read_section(&bad), Err(SyncError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_one_connect_users_object_is_a_directory() {
        assert!(matches!(section_in(&json!({"summary": "x"})), Ok(None)));
        let ok = json!({"directory": {"connect_users": {}}});
        assert!(matches!(section_in(&ok), Ok(Some(_))));
        for bad in [
            json!({"directory": []}),
            json!({"directory": {}}),
            json!({"directory": {"connect_users": {}, "audiences": []}}),
            json!({"directory": {"users": []}}),
        ] {
            assert!(section_in(&bad).is_err(), "{bad}");
        }
    }
}
