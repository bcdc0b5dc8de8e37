//! The pure plan of a Totara Connect users sync (reference §5.1, §4.3, §8.2–8.3): the users a
//! server sent, compared with the directory as it is, become one [`Batch`] — server-deleted
//! users deleted whatever the settings, users no longer sent kept, suspended or deleted as
//! `remove_user` says, suspension copied only in suspend mode, new users created as
//! `tc_<server user id>_<server idnumber>` and linked, custom profile fields copied by name.
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
/// (linked before, or created) counted once, the first that applies of deleted, created,
/// suspended, updated (any other value changed, unsuspension included), unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub created: usize,
    pub updated: usize,
    pub suspended: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

impl std::fmt::Display for SyncCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created {}, updated {}, suspended {}, deleted {}, unchanged {}",
            self.created, self.updated, self.suspended, self.deleted, self.unchanged
        )
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
    for change in &batch.changes {
        match change {
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
    let linked = linked_users(current, source);
    for username in linked.values() {
        if deleted.contains(username) || created.contains(username) {
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

/// Plans one users sync. `known_fields` are the platform's `[[field]]` names: only those are
/// copied, and a known field the server did not send is removed (the original deletes local
/// data of any field the server did not send). Planning again against the result is empty.
pub fn plan_users_sync(
    current: &DirectorySnapshot,
    source: SyncSource<'_>,
    users: &[ServerUser],
    options: SyncOptions,
    known_fields: &BTreeSet<String>,
) -> Batch {
    let mut changes = Vec::new();
    let linked = linked_users(current, source);
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
            None if options.create_users && !linked_elsewhere.contains(&user.server_user_id) => {
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
