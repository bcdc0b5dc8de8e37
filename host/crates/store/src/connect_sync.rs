//! The pure plan of a Totara Connect users sync (reference §5.1, §4.3, §8.2–8.3): the users a
//! server sent, compared with the directory as it is, become one [`Batch`] — server-deleted
//! users deleted whatever the settings, users no longer sent kept, suspended or deleted as
//! `remove_user` says, suspension copied only in suspend mode, new users created as
//! `tc_<server user id>_<server idnumber>` and linked, custom profile fields copied by name;
//! and the migration of pre-existing local accounts (§4.3, [`plan_migration`]), whose
//! matching rule ([`matching_accounts`]) the host's single sign-on uses too.
//! No database, no clock, no wire format: the client plugin turns the server's reply into
//! [`ServerUser`]s, and the store applies the batch in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use crate::directory::{Batch, Change, ConnectLink, CoreField, DirectorySnapshot, DirectoryUser};

/// "Action to take when a user is removed from the restricted audience" (`removeuser`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveUser {
    Keep,
    Suspend,
    Delete,
}

/// What the client's settings say about this sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    pub remove_user: RemoveUser,
    /// `sync_profile_fields` (and API v2): copy the fields the server sends.
    pub sync_profile_fields: bool,
    /// `[idp.provisioning] create_users`.
    pub create_users: bool,
    /// `[idp.provisioning] update_existing`.
    pub update_existing: bool,
}

/// Which server, seen from this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSource<'a> {
    /// The Connect IdP instance that syncs it.
    pub idp_id: &'a str,
    pub server_idnumber: &'a str,
}

/// A user as the server sent it, reduced to what the directory keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerUser {
    pub server_user_id: i64,
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub idnumber: String,
    pub suspended: bool,
    pub deleted: bool,
    /// By field shortname; `None` when the server sent none (API v1, sync off there).
    pub profile_fields: Option<BTreeMap<String, String>>,
}

/// This source's users already here: server user id → local username. Only links made by
/// the same IdP instance for the same server count, so that one Connect IdP's sync never
/// touches the users another one keeps (whatever server idnumber its output names).
fn linked_users<'a>(
    current: &'a DirectorySnapshot,
    source: SyncSource<'_>,
) -> BTreeMap<i64, &'a str> {
    current
        .connect_links
        .iter()
        .filter(|(username, link)| {
            link.idp_id == source.idp_id
                && link.server_idnumber == source.server_idnumber
                && current.users.contains_key(*username)
        })
        .map(|(username, link)| (link.server_user_id, username.as_str()))
        .collect()
}

/// What a users sync did, user by user, for its summary line: each user of the source
/// (linked before, migrated or created) counted once, the first that applies of deleted,
/// created, migrated (a local account taken over), suspended, updated (any other value
/// changed, unsuspension included), unchanged; and the server users migration refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub created: usize,
    pub updated: usize,
    pub suspended: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub migrated: usize,
    /// Server users whose mapping value matched several local accounts, or whose one
    /// account other server users matched too ([`MigrationPlan::refused`]).
    pub not_migrated: usize,
}

impl std::fmt::Display for SyncCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created {}, updated {}, suspended {}, deleted {}, unchanged {}",
            self.created, self.updated, self.suspended, self.deleted, self.unchanged
        )?;
        // Only with migration at work, so that the line stays as it was without it.
        if self.migrated > 0 {
            write!(f, ", migrated {}", self.migrated)?;
        }
        if self.not_migrated > 0 {
            write!(
                f,
                ", {} not migrated (several local accounts match; see gatehouse connect migration-preview)",
                self.not_migrated
            )?;
        }
        Ok(())
    }
}

/// Counts what `batch` (planned by [`plan_users_sync`] against `current` for `source`)
/// does to the source's users.
pub fn count_users_sync(
    current: &DirectorySnapshot,
    source: SyncSource<'_>,
    batch: &Batch,
) -> SyncCounts {
    let mut created = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    let mut suspended = BTreeSet::new();
    let mut updated = BTreeSet::new();
    let mut migrated = BTreeSet::new();
    for change in &batch.changes {
        match change {
            // A link that is not an adoption already in `current` (the host adopts first):
            // a local account taken over.
            Change::LinkConnectUser { username, link }
                if current.connect_links.get(username) != Some(link) =>
            {
                migrated.insert(username.as_str());
            }
            Change::CreateUser(user) => {
                created.insert(user.username.as_str());
            }
            Change::DeleteUser { username } => {
                deleted.insert(username.as_str());
            }
            Change::SetSuspended {
                username,
                suspended: true,
            } => {
                suspended.insert(username.as_str());
            }
            Change::SetSuspended { username, .. }
            | Change::SetCore { username, .. }
            | Change::SetPasswordHash { username, .. }
            | Change::SetField { username, .. }
            | Change::UnsetField { username, .. } => {
                updated.insert(username.as_str());
            }
            _ => {}
        }
    }
    let mut counts = SyncCounts {
        created: created.len(),
        deleted: deleted.len(),
        ..SyncCounts::default()
    };
    migrated.retain(|username| !created.contains(username) && !deleted.contains(username));
    counts.migrated = migrated.len();
    let linked = linked_users(current, source);
    for username in linked.values() {
        if deleted.contains(username) || created.contains(username) || migrated.contains(username) {
            continue;
        }
        if suspended.contains(username) {
            counts.suspended += 1;
        } else if updated.contains(username) {
            counts.updated += 1;
        } else {
            counts.unchanged += 1;
        }
    }
    counts
}

/// The username a client gives a server's user.
pub fn connect_username(server_user_id: i64, server_idnumber: &str) -> String {
    format!("tc_{server_user_id}_{server_idnumber}")
}

// ---- Migration of pre-existing local accounts (§4.3) ----------------------------------------

/// "Account mapping" (`migrate_map`): what a server user's local account is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MigrateMap {
    /// The local username equals the server username.
    Username,
    /// The local email equals the server email, which must be a valid address.
    Email,
    /// The local idnumber equals the server idnumber, which must not be empty.
    Idnumber,
    /// The local username is already `tc_<server user id>_<server idnumber>`.
    Uniqueid,
}

impl MigrateMap {
    pub const ALL: [MigrateMap; 4] = [Self::Username, Self::Email, Self::Idnumber, Self::Uniqueid];

    /// The setting's value (`username`, `email`, `idnumber`, `uniqueid`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
            Self::Idnumber => "idnumber",
            Self::Uniqueid => "uniqueid",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|map| map.as_str() == text)
    }

    /// The local account's column the mapping value is compared with.
    pub fn local_field(self) -> &'static str {
        match self {
            Self::Username | Self::Uniqueid => "username",
            Self::Email => "email",
            Self::Idnumber => "idnumber",
        }
    }
}

/// What the directory snapshot does not say about an account and migration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStanding {
    pub is_admin: bool,
    /// `local`, or `idp:<id>` for an account an IdP created.
    pub auth_source: String,
    pub branch: String,
}

/// The `auth_source` of a local account (made by an administrator, an import or the
/// bootstrap): the only kind migration takes over.
pub const LOCAL_AUTH_SOURCE: &str = "local";

/// An account as migration sees it.
#[derive(Debug, Clone, Copy)]
pub struct MigrationCandidate<'a> {
    pub user: &'a DirectoryUser,
    pub standing: &'a AccountStanding,
    /// The account is linked to a server user (of any server, by any Connect IdP).
    pub linked: bool,
}

/// Whether migration may take over `candidate` for a Connect IdP serving `branch`: a local
/// account (never one an IdP created, Connect or other: the original's `auth <> 'connect'`),
/// of the IdP's branch (the original's local mnethost), not linked to a server user yet,
/// and never an administrator's (SSO never takes over an administrator's account).
pub fn may_be_taken_over(candidate: &MigrationCandidate<'_>, branch: &str) -> bool {
    !candidate.linked
        && !candidate.standing.is_admin
        && candidate.standing.auth_source == LOCAL_AUTH_SOURCE
        && candidate.standing.branch == branch
}

/// The value of `user` that `map` compares, if it may be compared: a username always; an
/// email or idnumber only when it is not empty and an administrator or an IdP set it
/// (its provenance is recorded), never one the account's own user typed.
pub fn local_value(map: MigrateMap, user: &DirectoryUser) -> Option<&str> {
    let trusted = |field: &str, value: &'_ str| {
        (!value.is_empty() && user.provenance.contains_key(field)).then_some(())
    };
    match map {
        MigrateMap::Username | MigrateMap::Uniqueid => Some(user.username.as_str()),
        MigrateMap::Email => trusted("email", &user.email).map(|()| user.email.as_str()),
        MigrateMap::Idnumber => {
            trusted("idnumber", &user.idnumber).map(|()| user.idnumber.as_str())
        }
    }
}

/// Why a server user has no value to look its local account up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingProblem {
    /// The server sent none (an empty username, email or idnumber).
    Missing,
    /// The server's email is not an address.
    Invalid,
}

/// The value `map` looks `user`'s local account up by.
pub fn mapping_value(
    map: MigrateMap,
    user: &ServerUser,
    server_idnumber: &str,
) -> Result<String, MappingProblem> {
    let present = |value: &str| {
        if value.is_empty() {
            Err(MappingProblem::Missing)
        } else {
            Ok(value.to_owned())
        }
    };
    match map {
        MigrateMap::Username => present(&user.username),
        MigrateMap::Idnumber => present(&user.idnumber),
        MigrateMap::Email if user.email.is_empty() => Err(MappingProblem::Missing),
        MigrateMap::Email if !is_valid_email(&user.email) => Err(MappingProblem::Invalid),
        MigrateMap::Email => Ok(user.email.clone()),
        MigrateMap::Uniqueid => Ok(connect_username(user.server_user_id, server_idnumber)),
    }
}

/// Moodle's `validate_email`, which the original asks before it maps by email: atoms of
/// `[-!#$%&'*+/0-9=?A-Z^_`a-z{|}~]` joined by single dots, `@`, then such an atom, a dot and
/// at least one more of those characters or dots.
pub fn is_valid_email(address: &str) -> bool {
    fn atom_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "-!#$%&'*+/=?^_`{|}~".contains(c)
    }
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
    let domain_ok = domain.split_once('.').is_some_and(|(first, rest)| {
        !first.is_empty()
            && first.chars().all(atom_char)
            && !rest.is_empty()
            && rest.chars().all(|c| c == '.' || atom_char(c))
    });
    local_ok && domain_ok
}

/// The one matching rule, for the users sync and single sign-on alike: the usernames of
/// the accounts among `candidates` that migration may take over for a Connect IdP serving
/// `branch` and whose `map` value is `value`, sorted. One is a takeover; several are
/// ambiguous and refused (the original lets the lowest id win).
pub fn matching_accounts<'c>(
    map: MigrateMap,
    branch: &str,
    value: &str,
    candidates: impl IntoIterator<Item = MigrationCandidate<'c>>,
) -> Vec<&'c str> {
    let found: BTreeSet<&'c str> = candidates
        .into_iter()
        .filter(|candidate| may_be_taken_over(candidate, branch))
        .filter(|candidate| local_value(map, candidate.user) == Some(value))
        .map(|candidate| candidate.user.username.as_str())
        .collect();
    found.into_iter().collect()
}

/// Migration as the client is set up for it: the mapping, the IdP's branch, and the
/// standing of every account of the snapshot (an account without one is never taken over).
#[derive(Debug, Clone, Copy)]
pub struct Migration<'a> {
    pub map: MigrateMap,
    pub branch: &'a str,
    pub standings: &'a BTreeMap<String, AccountStanding>,
}

/// A server user, as a migration plan names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedServerUser {
    pub server_user_id: i64,
    pub server_username: String,
}

/// A local account a server user takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub server_user: NamedServerUser,
    pub local_username: String,
}

/// A server user whose value matches several local accounts: refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousMatch {
    pub server_user: NamedServerUser,
    pub local_usernames: Vec<String>,
}

/// A local account that is the one match of several server users: none of them takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContestedAccount {
    pub local_username: String,
    pub server_users: Vec<NamedServerUser>,
}

/// What migration does with the server users no local account is linked to yet (the
/// server-deleted, the guest and users another Connect IdP linked are not considered).
/// Each considered user is in at most one list, or in none when no account matches (it is
/// then created as `tc_…` as usual).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPlan {
    pub takeovers: Vec<Takeover>,
    /// No value to map by (an empty username, email or idnumber).
    pub missing: Vec<NamedServerUser>,
    /// An email that is not an address.
    pub invalid: Vec<NamedServerUser>,
    pub ambiguous: Vec<AmbiguousMatch>,
    pub contested: Vec<ContestedAccount>,
}

impl MigrationPlan {
    /// The server users refused because their match is not one-to-one: neither migrated
    /// nor created, until an administrator resolves it.
    pub fn refused(&self) -> BTreeSet<i64> {
        self.ambiguous
            .iter()
            .map(|a| a.server_user.server_user_id)
            .chain(
                self.contested
                    .iter()
                    .flat_map(|c| c.server_users.iter().map(|u| u.server_user_id)),
            )
            .collect()
    }
}

/// Plans the migration of `users` (as a sync receives them) against `current`. A server user
/// takes over an account when the account is its only match and it is the account's only
/// claimant; so applying the plan and planning again finds nothing more to take over.
pub fn plan_migration(
    current: &DirectorySnapshot,
    source: SyncSource<'_>,
    users: &[ServerUser],
    migration: Migration<'_>,
) -> MigrationPlan {
    let linked_for_server: BTreeSet<i64> = current
        .connect_links
        .values()
        .filter(|link| link.server_idnumber == source.server_idnumber)
        .map(|link| link.server_user_id)
        .collect();
    let linked_here = linked_users(current, source);
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let considered = users.iter().filter(|u| {
        u.username != "guest"
            && seen.insert(u.server_user_id)
            && !u.deleted
            && !linked_here.contains_key(&u.server_user_id)
            && !linked_for_server.contains(&u.server_user_id)
    });
    // The accounts that may be taken over, by the value they are found by.
    let mut by_value: BTreeMap<&str, Vec<MigrationCandidate<'_>>> = BTreeMap::new();
    for user in current.users.values() {
        let Some(standing) = migration.standings.get(&user.username) else {
            continue;
        };
        let candidate = MigrationCandidate {
            user,
            standing,
            linked: current.connect_links.contains_key(&user.username),
        };
        if may_be_taken_over(&candidate, migration.branch)
            && let Some(value) = local_value(migration.map, user)
        {
            by_value.entry(value).or_default().push(candidate);
        }
    }
    let mut plan = MigrationPlan::default();
    let mut claims: BTreeMap<&str, Vec<NamedServerUser>> = BTreeMap::new();
    for user in considered {
        let named = NamedServerUser {
            server_user_id: user.server_user_id,
            server_username: user.username.clone(),
        };
        let value = match mapping_value(migration.map, user, source.server_idnumber) {
            Ok(value) => value,
            Err(MappingProblem::Missing) => {
                plan.missing.push(named);
                continue;
            }
            Err(MappingProblem::Invalid) => {
                plan.invalid.push(named);
                continue;
            }
        };
        let candidates = by_value.get(value.as_str()).into_iter().flatten().copied();
        match matching_accounts(migration.map, migration.branch, &value, candidates).as_slice() {
            [] => {}
            [one] => claims.entry(one).or_default().push(named),
            several => plan.ambiguous.push(AmbiguousMatch {
                server_user: named,
                local_usernames: several.iter().map(|name| (*name).to_owned()).collect(),
            }),
        }
    }
    // An account that is the match of an ambiguous user is contested too: taking it for its
    // one claimant would leave the ambiguous user one match, and the next sync would take
    // that, so a second plan would not be empty.
    for ambiguous in &plan.ambiguous {
        for name in &ambiguous.local_usernames {
            if let Some(claimants) = claims.get_mut(name.as_str()) {
                claimants.push(ambiguous.server_user.clone());
            }
        }
    }
    for (local, mut claimants) in claims {
        claimants.sort();
        claimants.dedup();
        if let [one] = claimants.as_slice() {
            plan.takeovers.push(Takeover {
                server_user: one.clone(),
                local_username: local.to_owned(),
            });
        } else {
            plan.contested.push(ContestedAccount {
                local_username: local.to_owned(),
                server_users: claimants,
            });
        }
    }
    plan
}

/// Plans one users sync. `known_fields` are the platform's `[[field]]` names: only those are
/// copied, and a known field the server did not send is removed (the original deletes local
/// data of any field the server did not send). Planning again against the result is empty.
pub fn plan_users_sync(
    current: &DirectorySnapshot,
    source: SyncSource<'_>,
    users: &[ServerUser],
    options: SyncOptions,
    known_fields: &BTreeSet<String>,
    migration: Option<&MigrationPlan>,
) -> Batch {
    let mut changes = Vec::new();
    let mut linked = linked_users(current, source);
    // Server users another IdP instance has linked for the same server (two domains that are
    // both clients of one server): a server user is linked to one local user only, so this
    // source leaves them alone rather than create a second account.
    let linked_elsewhere: BTreeSet<i64> = current
        .connect_links
        .values()
        .filter(|link| {
            link.server_idnumber == source.server_idnumber && link.idp_id != source.idp_id
        })
        .map(|link| link.server_user_id)
        .collect();
    // The original skips the guest account. A server sends each id once; should one come
    // twice, its first occurrence is the user, so that a second plan reads the list the same.
    let mut sent: BTreeSet<i64> = BTreeSet::new();
    let users: Vec<&ServerUser> = users
        .iter()
        .filter(|u| u.username != "guest" && sent.insert(u.server_user_id))
        .collect();
    // Deletions first, so that what they free (an idnumber, a username) is free for the rest
    // of the batch, and planning again finds nothing left to do.
    let mut deleting: BTreeSet<&str> = BTreeSet::new();
    for user in users.iter().filter(|u| u.deleted) {
        // Deleted on the server: deleted here whatever the settings (never created).
        if let Some(username) = linked.get(&user.server_user_id) {
            deleting.insert(username);
        }
    }
    if options.remove_user == RemoveUser::Delete {
        for (server_user_id, username) in &linked {
            if !sent.contains(server_user_id) {
                deleting.insert(username);
            }
        }
    }
    for username in &deleting {
        changes.push(Change::DeleteUser {
            username: (*username).to_owned(),
        });
    }
    // Local accounts migration takes over: linked now, then planned as any linked user
    // (updated, suspension copied), in the same batch. Deletions above only ever concern
    // linked users, so they never free or take a migrated account.
    let mut refused = BTreeSet::new();
    if let Some(migration) = migration {
        for takeover in &migration.takeovers {
            let Some((username, _)) = current.users.get_key_value(&takeover.local_username) else {
                continue;
            };
            let id = takeover.server_user.server_user_id;
            if linked.contains_key(&id) || linked_elsewhere.contains(&id) {
                continue;
            }
            linked.insert(id, username.as_str());
            changes.push(Change::LinkConnectUser {
                username: username.clone(),
                link: ConnectLink {
                    idp_id: source.idp_id.to_owned(),
                    server_idnumber: source.server_idnumber.to_owned(),
                    server_user_id: id,
                },
            });
        }
        refused = migration.refused();
    }
    let remaining =
        |username: &str| current.users.contains_key(username) && !deleting.contains(username);

    // Idnumbers in use, by user, to keep them unique as the original does.
    let mut idnumbers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for user in current
        .users
        .values()
        .filter(|u| !u.idnumber.is_empty() && !deleting.contains(u.username.as_str()))
    {
        idnumbers
            .entry(user.idnumber.clone())
            .or_default()
            .insert(user.username.clone());
    }
    let taken_by_other = |idnumbers: &BTreeMap<String, BTreeSet<String>>, value: &str, me: &str| {
        !value.is_empty()
            && idnumbers
                .get(value)
                .is_some_and(|owners| owners.iter().any(|owner| owner != me))
    };

    // The idnumbers the linked users end with: each moves to the server's value once no
    // other user holds it, repeated until nobody moves, so the order of the list does not
    // matter (a value freed later in the list is taken) and a second plan moves nobody.
    let mapped_of = |user: &ServerUser| {
        linked
            .get(&user.server_user_id)
            .filter(|name| remaining(name))
            .and_then(|name| current.users.get(*name))
    };
    let mut assigned: BTreeMap<&str, String> = BTreeMap::new();
    let wanted: Vec<(&str, &str)> = users
        .iter()
        .filter(|u| !u.deleted)
        .filter_map(|u| mapped_of(u).map(|local| (local.username.as_str(), u.idnumber.as_str())))
        .collect();
    for (username, _) in &wanted {
        if let Some(local) = current.users.get(*username) {
            assigned.insert(username, local.idnumber.clone());
        }
    }
    // Without `update_existing` nobody's idnumber moves.
    let mut moving = options.update_existing;
    while moving {
        moving = false;
        for (username, desired) in &wanted {
            let Some(held) = assigned.get(username) else {
                continue;
            };
            if held != desired && !taken_by_other(&idnumbers, desired, username) {
                if let Some(owners) = idnumbers.get_mut(held) {
                    owners.remove(*username);
                }
                if !desired.is_empty() {
                    idnumbers
                        .entry((*desired).to_owned())
                        .or_default()
                        .insert((*username).to_owned());
                }
                assigned.insert(username, (*desired).to_owned());
                moving = true;
            }
        }
    }

    for user in users.iter().filter(|u| !u.deleted) {
        let mapped = linked
            .get(&user.server_user_id)
            .filter(|name| remaining(name))
            .and_then(|name| current.users.get(*name));
        match mapped {
            Some(local) => {
                let username = &local.username;
                if options.remove_user == RemoveUser::Suspend && local.suspended != user.suspended {
                    changes.push(Change::SetSuspended {
                        username: username.clone(),
                        suspended: user.suspended,
                    });
                }
                if options.update_existing {
                    // An idnumber another local user has is not copied (§4.3): `assigned`.
                    let idnumber = assigned.get(username.as_str()).unwrap_or(&local.idnumber);
                    for (field, value, stored) in [
                        (CoreField::Email, &user.email, &local.email),
                        (CoreField::Firstname, &user.firstname, &local.firstname),
                        (CoreField::Lastname, &user.lastname, &local.lastname),
                        (CoreField::Idnumber, idnumber, &local.idnumber),
                    ] {
                        if value != stored {
                            changes.push(Change::SetCore {
                                username: username.clone(),
                                field,
                                value: value.clone(),
                            });
                        }
                    }
                    if options.sync_profile_fields
                        && let Some(sent_fields) = &user.profile_fields
                    {
                        plan_fields(&mut changes, local, sent_fields, known_fields);
                    }
                }
            }
            None if options.create_users
                && !linked_elsewhere.contains(&user.server_user_id)
                && !refused.contains(&user.server_user_id) =>
            {
                let username = connect_username(user.server_user_id, source.server_idnumber);
                // A local account already has that name (not linked to this server user):
                // the original skips the user rather than take the account over.
                if remaining(&username) {
                    continue;
                }
                let idnumber = if taken_by_other(&idnumbers, &user.idnumber, &username) {
                    String::new()
                } else {
                    user.idnumber.clone()
                };
                if !idnumber.is_empty() {
                    idnumbers
                        .entry(idnumber.clone())
                        .or_default()
                        .insert(username.clone());
                }
                let fields = match (&user.profile_fields, options.sync_profile_fields) {
                    (Some(sent_fields), true) => sent_fields
                        .iter()
                        .filter(|(name, _)| known_fields.contains(*name))
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                changes.push(Change::CreateUser(DirectoryUser {
                    username: username.clone(),
                    email: user.email.clone(),
                    firstname: user.firstname.clone(),
                    lastname: user.lastname.clone(),
                    idnumber,
                    suspended: user.suspended,
                    password_hash: None,
                    fields,
                    provenance: BTreeMap::new(),
                }));
                changes.push(Change::LinkConnectUser {
                    username,
                    link: ConnectLink {
                        idp_id: source.idp_id.to_owned(),
                        server_idnumber: source.server_idnumber.to_owned(),
                        server_user_id: user.server_user_id,
                    },
                });
            }
            None => {}
        }
    }

    // Users no longer sent (they left the restricted audience, or their row vanished):
    // "delete" was planned first; "suspend" suspends; "keep" leaves them.
    if options.remove_user == RemoveUser::Suspend {
        for (server_user_id, username) in &linked {
            if let Some(local) = current.users.get(*username)
                && !sent.contains(server_user_id)
                && !local.suspended
            {
                changes.push(Change::SetSuspended {
                    username: local.username.clone(),
                    suspended: true,
                });
            }
        }
    }
    Batch { changes }
}

/// The field changes that make `local`'s known fields what the server sent.
fn plan_fields(
    changes: &mut Vec<Change>,
    local: &DirectoryUser,
    sent: &BTreeMap<String, String>,
    known_fields: &BTreeSet<String>,
) {
    for name in known_fields {
        match (sent.get(name), local.fields.get(name)) {
            (Some(value), current) if current != Some(value) => changes.push(Change::SetField {
                username: local.username.clone(),
                field: name.clone(),
                value: value.clone(),
            }),
            (None, Some(_)) => changes.push(Change::UnsetField {
                username: local.username.clone(),
                field: name.clone(),
            }),
            _ => {}
        }
    }
}

/// The server user id in `username` if it is `tc_<id>_<server idnumber>` of that server,
/// written as the server writes ids (no sign, no leading zeros).
fn connect_user_id(username: &str, server_idnumber: &str) -> Option<i64> {
    let id_text = username
        .strip_prefix("tc_")?
        .strip_suffix(server_idnumber)?
        .strip_suffix('_')?;
    let id: i64 = id_text.parse().ok()?;
    (id > 0 && id.to_string() == id_text).then_some(id)
}

/// Links the accounts a source's sign-ins made before any sync linked them: a Connect
/// sign-in creates `tc_<id>_<server idnumber>` through the host's provisioning, without a
/// link, and the planner leaves unlinked accounts alone, so without this such a user would
/// never be suspended or deleted with the server. `made_by_source` are the usernames of
/// accounts this IdP created (the store's `connect_unlinked_accounts`); only those named
/// for this server, whose server user nobody has linked yet, are adopted. The links go into
/// `current` (plan against it afterwards) and come back as the changes that record them,
/// to apply first.
pub fn adopt_signed_in_users(
    current: &mut DirectorySnapshot,
    source: SyncSource<'_>,
    made_by_source: &[String],
) -> Vec<Change> {
    let mut taken: BTreeSet<i64> = current
        .connect_links
        .values()
        .filter(|link| link.server_idnumber == source.server_idnumber)
        .map(|link| link.server_user_id)
        .collect();
    let mut changes = Vec::new();
    for username in made_by_source {
        let Some(id) = connect_user_id(username, source.server_idnumber) else {
            continue;
        };
        if !current.users.contains_key(username)
            || current.connect_links.contains_key(username)
            || !taken.insert(id)
        {
            continue;
        }
        let link = ConnectLink {
            idp_id: source.idp_id.to_owned(),
            server_idnumber: source.server_idnumber.to_owned(),
            server_user_id: id,
        };
        current.connect_links.insert(username.clone(), link.clone());
        changes.push(Change::LinkConnectUser {
            username: username.clone(),
            link,
        });
    }
    changes
}

impl crate::Store {
    /// The usernames of accounts IdP `idp_id` created (`auth_source = idp:<id>`) that have
    /// no Connect link: what [`adopt_signed_in_users`] may adopt.
    pub async fn connect_unlinked_accounts(
        &self,
        idp_id: &str,
    ) -> Result<Vec<String>, crate::StoreError> {
        use sqlx::Row as _;
        let rows = sqlx::query(
            "SELECT username FROM users u WHERE u.auth_source = $1 \
             AND NOT EXISTS (SELECT 1 FROM connect_users c WHERE c.user_id = u.id) \
             ORDER BY u.id",
        )
        .bind(format!("idp:{idp_id}"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("username").map_err(crate::StoreError::from))
            .collect()
    }
}

/// An account [`crate::Store::migration_candidates`] found: what [`matching_accounts`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAccount {
    pub id: i64,
    /// Username, email, idnumber and the provenance of the last two (no other field).
    pub user: DirectoryUser,
    pub standing: AccountStanding,
    pub linked: bool,
}

impl FoundAccount {
    pub fn candidate(&self) -> MigrationCandidate<'_> {
        MigrationCandidate {
            user: &self.user,
            standing: &self.standing,
            linked: self.linked,
        }
    }
}

impl crate::Store {
    /// The standing of every account, by username, for [`plan_migration`].
    pub async fn account_standings(
        &self,
    ) -> Result<BTreeMap<String, AccountStanding>, crate::StoreError> {
        use sqlx::Row as _;
        let rows = sqlx::query("SELECT username, is_admin, auth_source, branch FROM users")
            .fetch_all(&self.pool)
            .await?;
        let mut standings = BTreeMap::new();
        for row in &rows {
            standings.insert(
                row.try_get("username")?,
                AccountStanding {
                    is_admin: crate::get_bool(row, "is_admin")?,
                    auth_source: row.try_get("auth_source")?,
                    branch: row.try_get("branch")?,
                },
            );
        }
        Ok(standings)
    }

    /// The accounts whose `map` column equals `value` exactly (whatever their standing:
    /// [`matching_accounts`] decides), for migration at single sign-on.
    pub async fn migration_candidates(
        &self,
        map: MigrateMap,
        value: &str,
    ) -> Result<Vec<FoundAccount>, crate::StoreError> {
        use sqlx::Row as _;
        // The column comes from a fixed list; the value is bound.
        let column = match map.local_field() {
            "email" => "email",
            "idnumber" => "idnumber",
            _ => "username",
        };
        let sql = format!(
            "SELECT u.id, u.username, u.email, u.idnumber, u.is_admin, u.auth_source, u.branch, \
             (SELECT COUNT(*) FROM connect_users c WHERE c.user_id = u.id) AS links, \
             (SELECT COUNT(*) FROM field_provenance p WHERE p.user_id = u.id \
              AND p.field = 'email') AS email_set, \
             (SELECT COUNT(*) FROM field_provenance p WHERE p.user_id = u.id \
              AND p.field = 'idnumber') AS idnumber_set \
             FROM users u WHERE u.{column} = $1 ORDER BY u.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let username: String = row.try_get("username")?;
            let mut provenance = BTreeMap::new();
            for (field, column) in [("email", "email_set"), ("idnumber", "idnumber_set")] {
                if row.try_get::<i64, _>(column)? > 0 {
                    provenance.insert(field.to_owned(), String::new());
                }
            }
            found.push(FoundAccount {
                id: row.try_get("id")?,
                user: DirectoryUser {
                    username,
                    email: row.try_get("email")?,
                    idnumber: row.try_get("idnumber")?,
                    provenance,
                    ..DirectoryUser::default()
                },
                standing: AccountStanding {
                    is_admin: crate::get_bool(row, "is_admin")?,
                    auth_source: row.try_get("auth_source")?,
                    branch: row.try_get("branch")?,
                },
                linked: row.try_get::<i64, _>("links")? > 0,
            });
        }
        Ok(found)
    }

    /// The account linked to server user `server_user_id` of the server `server_idnumber`,
    /// and the Connect IdP that linked it.
    pub async fn connect_linked_account(
        &self,
        server_idnumber: &str,
        server_user_id: i64,
    ) -> Result<Option<(i64, String)>, crate::StoreError> {
        use sqlx::Row as _;
        let row = sqlx::query(
            "SELECT user_id, idp_id FROM connect_users \
             WHERE server_idnumber = $1 AND server_user_id = $2",
        )
        .bind(server_idnumber)
        .bind(server_user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.try_get("user_id")?, row.try_get("idp_id")?)))
            .transpose()
    }

    /// The Connect IdP that account `user_id` is linked to a server user through, if any.
    pub async fn connect_idp_of_account(
        &self,
        user_id: i64,
    ) -> Result<Option<String>, crate::StoreError> {
        use sqlx::Row as _;
        let row = sqlx::query("SELECT idp_id FROM connect_users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok(row.try_get("idp_id")?)).transpose()
    }

    /// Links account `user_id` to a server user, as a migration at single sign-on does:
    /// `Conflict` (and nothing written) when the account or the server user is linked
    /// already, so two sign-ins racing for one account cannot both take it.
    pub async fn link_migrated_account(
        &self,
        user_id: i64,
        link: &ConnectLink,
        now: i64,
    ) -> Result<(), crate::StoreError> {
        sqlx::query(
            "INSERT INTO connect_users (user_id, idp_id, server_idnumber, server_user_id, \
             created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(&link.idp_id)
        .bind(&link.server_idnumber)
        .bind(link.server_user_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| match crate::StoreError::from(error) {
            crate::StoreError::Conflict(_) => crate::StoreError::Conflict(format!(
                "account {user_id} or server user {} of {} is linked already",
                link.server_user_id, link.server_idnumber
            )),
            other => other,
        })?;
        Ok(())
    }
}
