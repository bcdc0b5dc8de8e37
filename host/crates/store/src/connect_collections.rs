//! A Totara Connect collections sync (reference §5.4): every cohort and course a server
//! shares becomes one local audience `tc_<type>_<server id>_<server idnumber>` whose
//! `component` is the Connect IdP (so that only the sync edits it), mapped in
//! `connect_remote_ids` (kind `cohort` or `course`), named and described as on the server,
//! its members the local users linked to the server users it lists. Two halves: a **pure
//! planner** ([`plan_collections_sync`]: the [`CollectionsState`] of this source against
//! the collections sent, a [`CollectionsPlan`]; no database, no clock; property-tested with
//! the model [`CollectionsState::apply`]) and the store side that reads the state
//! ([`Store::connect_collections_state`]) and applies a plan in **one transaction**
//! ([`Store::apply_collections_plan`]).
//!
//! Unlike the original, a local audience keeps its id for as long as its collection is
//! shared (renames update it in place), and collections no longer sent are removed only
//! after every type was compared (the original removes the course audiences while it walks
//! the cohorts, then makes them again). Not the wire format (the client plugin reads the
//! server's reply) and not the users sync (`connect_sync`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sqlx::Row;

use crate::bulk::{statement, value_rows};
use crate::{Store, StoreError, SyncSource};

/// What a server shares: a cohort (audience) or a course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CollectionKind {
    Cohort,
    Course,
}

impl CollectionKind {
    /// Both, in the order the server lists them.
    pub const ALL: [CollectionKind; 2] = [CollectionKind::Cohort, CollectionKind::Course];

    /// `cohort` or `course`: the type in the audience's idnumber and the `kind` of its
    /// `connect_remote_ids` row.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionKind::Cohort => "cohort",
            CollectionKind::Course => "course",
        }
    }

    /// The inverse of [`CollectionKind::as_str`].
    pub fn parse(text: &str) -> Option<CollectionKind> {
        CollectionKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for CollectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The idnumber of the local audience of a server's collection:
/// `tc_<type>_<server id>_<server idnumber>`.
pub fn collection_idnumber(kind: CollectionKind, remote_id: i64, server_idnumber: &str) -> String {
    format!("tc_{}_{remote_id}_{server_idnumber}", kind.as_str())
}

/// A collection as the server sent it, reduced to what the audience keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCollection {
    pub kind: CollectionKind,
    /// The server's cohort or course id.
    pub remote_id: i64,
    /// The cohort's name or the course's full name.
    pub name: String,
    /// The cohort's description or the course's summary.
    pub description: String,
    /// Server user ids.
    pub members: Vec<i64>,
}

/// A local audience, by its row id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalAudience {
    pub id: i64,
    pub idnumber: String,
    pub name: String,
    pub description: String,
    /// `''` for an administrator's audience, else the Connect IdP that keeps it.
    pub component: String,
    /// Local user ids.
    pub members: BTreeSet<i64>,
}

/// What a collections sync of one source needs to know of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionsState {
    /// This server's `connect_remote_ids` rows of kind `cohort` and `course`: the local
    /// audience id each maps to.
    pub mapped: BTreeMap<(CollectionKind, i64), i64>,
    /// The audiences the sync may look at: every audience a mapping names, every audience
    /// of this IdP, and every audience holding a `tc_…_<server idnumber>` idnumber; by id.
    pub audiences: BTreeMap<i64, LocalAudience>,
    /// This source's linked users: server user id → local user id.
    pub users: BTreeMap<i64, i64>,
}

/// One change of a collections sync. Audiences are named by their row id, except the ones
/// the plan creates, which the changes after it name by `(kind, remote_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionChange {
    /// Forgets a mapping whose audience is gone.
    Unmap {
        kind: CollectionKind,
        remote_id: i64,
    },
    /// Removes the audience of a collection no longer shared, with its mapping.
    Delete {
        kind: CollectionKind,
        remote_id: i64,
        audience_id: i64,
    },
    /// Maps an unmapped audience of this IdP that already holds the collection's idnumber
    /// (its mapping was lost): the audience, and its id, stay.
    Adopt {
        kind: CollectionKind,
        remote_id: i64,
        audience_id: i64,
    },
    /// Creates the audience of a new collection (component = the IdP) and maps it.
    Create {
        kind: CollectionKind,
        remote_id: i64,
        idnumber: String,
        name: String,
        description: String,
    },
    /// Renames (or redescribes) an audience in place.
    Update {
        audience_id: i64,
        name: String,
        description: String,
    },
    AddMember {
        audience: AudienceRef,
        user_id: i64,
    },
    RemoveMember {
        audience_id: i64,
        user_id: i64,
    },
}

/// An audience as a change names it: an existing row, or the one this plan creates for a
/// collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AudienceRef {
    Existing(i64),
    Created {
        kind: CollectionKind,
        remote_id: i64,
    },
}

/// A collection the sync leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkippedCollection {
    /// An audience that is not this IdP's (an administrator's, or another IdP's) holds the
    /// idnumber the collection's audience would have.
    IdnumberTaken {
        kind: CollectionKind,
        remote_id: i64,
        idnumber: String,
        component: String,
    },
    /// The collection's mapping names an audience another IdP keeps (two Connect IdPs of
    /// one server); that IdP's sync keeps it.
    KeptByAnotherIdp {
        kind: CollectionKind,
        remote_id: i64,
        component: String,
    },
}

impl fmt::Display for SkippedCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkippedCollection::IdnumberTaken {
                kind,
                remote_id,
                idnumber,
                component,
            } if component.is_empty() => write!(
                f,
                "{kind} {remote_id}: the administrator's audience {idnumber:?} holds its idnumber"
            ),
            SkippedCollection::IdnumberTaken {
                kind,
                remote_id,
                idnumber,
                component,
            } => write!(
                f,
                "{kind} {remote_id}: audience {idnumber:?} of IdP `{component}` holds its idnumber"
            ),
            SkippedCollection::KeptByAnotherIdp {
                kind,
                remote_id,
                component,
            } => write!(f, "{kind} {remote_id}: kept by IdP `{component}`"),
        }
    }
}

/// The changes of one collections sync, applied together or not at all, and what it left
/// alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionsPlan {
    pub changes: Vec<CollectionChange>,
    pub skipped: Vec<SkippedCollection>,
}

/// What a collections sync did, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionsCounts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub members_added: usize,
    pub members_removed: usize,
    /// Collections sent whose audience neither changed nor was created.
    pub unchanged: usize,
    pub skipped: usize,
}

impl fmt::Display for CollectionsCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audiences created {}, updated {}, deleted {}, unchanged {}; members added {}, removed {}",
            self.created,
            self.updated,
            self.deleted,
            self.unchanged,
            self.members_added,
            self.members_removed
        )?;
        if self.skipped > 0 {
            write!(f, "; {} collections skipped", self.skipped)?;
        }
        Ok(())
    }
}

impl CollectionsPlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The plan's counts; `sent` is how many collections the server sent.
    pub fn counts(&self, sent: usize) -> CollectionsCounts {
        let mut counts = CollectionsCounts {
            skipped: self.skipped.len(),
            ..CollectionsCounts::default()
        };
        // A collection is changed once however many of its values and members change.
        let mut touched: BTreeSet<AudienceRef> = BTreeSet::new();
        for change in &self.changes {
            match change {
                CollectionChange::Create {
                    kind, remote_id, ..
                } => {
                    counts.created += 1;
                    touched.insert(AudienceRef::Created {
                        kind: *kind,
                        remote_id: *remote_id,
                    });
                }
                CollectionChange::Update { audience_id, .. } => {
                    if touched.insert(AudienceRef::Existing(*audience_id)) {
                        counts.updated += 1;
                    }
                }
                CollectionChange::Delete { .. } => counts.deleted += 1,
                CollectionChange::AddMember { audience, .. } => {
                    counts.members_added += 1;
                    if touched.insert(*audience) {
                        counts.updated += 1;
                    }
                }
                CollectionChange::RemoveMember { audience_id, .. } => {
                    counts.members_removed += 1;
                    if touched.insert(AudienceRef::Existing(*audience_id)) {
                        counts.updated += 1;
                    }
                }
                CollectionChange::Unmap { .. } | CollectionChange::Adopt { .. } => {}
            }
        }
        counts.unchanged = sent.saturating_sub(counts.created + counts.updated + counts.skipped);
        counts
    }
}

/// Plans the sync of `collections` (everything the server shares now, both types) for
/// `source` against `state`:
///
/// - a mapping whose audience is gone is forgotten, and the collection made again;
/// - a collection already mapped to an audience of this IdP is updated in place (name,
///   description, members): its audience keeps its id;
/// - a new collection adopts an unmapped audience of this IdP holding its idnumber, or gets
///   a new audience; one whose idnumber another audience holds is skipped (never taken);
/// - members are the local users linked to the listed server users (others are removed;
///   server users not linked here are left out);
/// - after all of that, the audiences of mapped collections that were not sent are deleted
///   with their mappings (never while another type is still to be compared).
///
/// A collection sent twice counts once (the first). Applying the plan and planning again
/// gives an empty plan.
pub fn plan_collections_sync(
    state: &CollectionsState,
    source: SyncSource<'_>,
    collections: &[ServerCollection],
) -> CollectionsPlan {
    let mut plan = CollectionsPlan::default();
    let ours = |audience: &LocalAudience| audience.component == source.idp_id;

    // Mappings whose audience is gone: forgotten first (their collection is made again).
    let mut mapped: BTreeMap<(CollectionKind, i64), i64> = BTreeMap::new();
    for (&(kind, remote_id), &audience_id) in &state.mapped {
        if state.audiences.contains_key(&audience_id) {
            mapped.insert((kind, remote_id), audience_id);
        } else {
            plan.changes
                .push(CollectionChange::Unmap { kind, remote_id });
        }
    }
    let mapped_ids: BTreeSet<i64> = mapped.values().copied().collect();
    let by_idnumber: BTreeMap<&str, &LocalAudience> = state
        .audiences
        .values()
        .map(|a| (a.idnumber.as_str(), a))
        .collect();

    let mut sent: BTreeSet<(CollectionKind, i64)> = BTreeSet::new();
    let mut member_changes = Vec::new();
    for collection in collections {
        let key = (collection.kind, collection.remote_id);
        if !sent.insert(key) {
            continue;
        }
        let wanted: BTreeSet<i64> = collection
            .members
            .iter()
            .filter_map(|server_user| state.users.get(server_user).copied())
            .collect();
        let existing = match mapped.get(&key) {
            Some(audience_id) => match state.audiences.get(audience_id) {
                Some(audience) if ours(audience) => Some(audience),
                Some(audience) => {
                    plan.skipped.push(SkippedCollection::KeptByAnotherIdp {
                        kind: collection.kind,
                        remote_id: collection.remote_id,
                        component: audience.component.clone(),
                    });
                    continue;
                }
                // Not reached: `mapped` keeps only mappings whose audience is there.
                None => None,
            },
            None => {
                let idnumber = collection_idnumber(
                    collection.kind,
                    collection.remote_id,
                    source.server_idnumber,
                );
                match by_idnumber.get(idnumber.as_str()) {
                    Some(holder) if ours(holder) && !mapped_ids.contains(&holder.id) => {
                        plan.changes.push(CollectionChange::Adopt {
                            kind: collection.kind,
                            remote_id: collection.remote_id,
                            audience_id: holder.id,
                        });
                        Some(*holder)
                    }
                    Some(holder) => {
                        plan.skipped.push(SkippedCollection::IdnumberTaken {
                            kind: collection.kind,
                            remote_id: collection.remote_id,
                            idnumber,
                            component: holder.component.clone(),
                        });
                        continue;
                    }
                    None => {
                        plan.changes.push(CollectionChange::Create {
                            kind: collection.kind,
                            remote_id: collection.remote_id,
                            idnumber,
                            name: collection.name.clone(),
                            description: collection.description.clone(),
                        });
                        let audience = AudienceRef::Created {
                            kind: collection.kind,
                            remote_id: collection.remote_id,
                        };
                        member_changes.extend(
                            wanted
                                .iter()
                                .map(|&user_id| CollectionChange::AddMember { audience, user_id }),
                        );
                        continue;
                    }
                }
            }
        };
        let Some(audience) = existing else {
            continue;
        };
        if audience.name != collection.name || audience.description != collection.description {
            plan.changes.push(CollectionChange::Update {
                audience_id: audience.id,
                name: collection.name.clone(),
                description: collection.description.clone(),
            });
        }
        member_changes.extend(wanted.difference(&audience.members).map(|&user_id| {
            CollectionChange::AddMember {
                audience: AudienceRef::Existing(audience.id),
                user_id,
            }
        }));
        member_changes.extend(audience.members.difference(&wanted).map(|&user_id| {
            CollectionChange::RemoveMember {
                audience_id: audience.id,
                user_id,
            }
        }));
    }
    plan.changes.extend(member_changes);

    // Only now, with every type compared: the mapped collections no longer sent.
    for (&(kind, remote_id), &audience_id) in &mapped {
        if sent.contains(&(kind, remote_id)) {
            continue;
        }
        match state.audiences.get(&audience_id) {
            Some(audience) if ours(audience) => plan.changes.push(CollectionChange::Delete {
                kind,
                remote_id,
                audience_id,
            }),
            _ => {}
        }
    }
    plan
}

impl CollectionsState {
    /// The state after `plan`, computed without a database, as
    /// [`Store::apply_collections_plan`] leaves the tables; a created audience gets the id
    /// `next_id` returns (the store's is the database's). The property tests check the
    /// planner against it.
    pub fn apply(
        &mut self,
        plan: &CollectionsPlan,
        source: SyncSource<'_>,
        mut next_id: impl FnMut() -> i64,
    ) {
        let mut created: BTreeMap<(CollectionKind, i64), i64> = BTreeMap::new();
        for change in &plan.changes {
            match change {
                CollectionChange::Unmap { kind, remote_id } => {
                    self.mapped.remove(&(*kind, *remote_id));
                }
                CollectionChange::Delete {
                    kind,
                    remote_id,
                    audience_id,
                } => {
                    self.mapped.remove(&(*kind, *remote_id));
                    self.audiences.remove(audience_id);
                }
                CollectionChange::Adopt {
                    kind,
                    remote_id,
                    audience_id,
                } => {
                    self.mapped.insert((*kind, *remote_id), *audience_id);
                }
                CollectionChange::Create {
                    kind,
                    remote_id,
                    idnumber,
                    name,
                    description,
                } => {
                    let id = next_id();
                    created.insert((*kind, *remote_id), id);
                    self.mapped.insert((*kind, *remote_id), id);
                    self.audiences.insert(
                        id,
                        LocalAudience {
                            id,
                            idnumber: idnumber.clone(),
                            name: name.clone(),
                            description: description.clone(),
                            component: source.idp_id.to_owned(),
                            members: BTreeSet::new(),
                        },
                    );
                }
                CollectionChange::Update {
                    audience_id,
                    name,
                    description,
                } => {
                    if let Some(audience) = self.audiences.get_mut(audience_id) {
                        audience.name = name.clone();
                        audience.description = description.clone();
                    }
                }
                CollectionChange::AddMember { audience, user_id } => {
                    let id = match audience {
                        AudienceRef::Existing(id) => Some(*id),
                        AudienceRef::Created { kind, remote_id } => {
                            created.get(&(*kind, *remote_id)).copied()
                        }
                    };
                    if let Some(audience) = id.and_then(|id| self.audiences.get_mut(&id)) {
                        audience.members.insert(*user_id);
                    }
                }
                CollectionChange::RemoveMember {
                    audience_id,
                    user_id,
                } => {
                    if let Some(audience) = self.audiences.get_mut(audience_id) {
                        audience.members.remove(user_id);
                    }
                }
            }
        }
    }
}

// ---- The store side -------------------------------------------------------------------------

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// The pattern of this server's collection idnumbers (`tc_<type>_<id>_<server idnumber>`)
/// for LIKE; `_` matches any character, so the rows are checked again exactly.
fn idnumber_pattern(server_idnumber: &str) -> String {
    format!("tc_%_{server_idnumber}")
}

fn is_collection_idnumber(idnumber: &str, server_idnumber: &str) -> bool {
    CollectionKind::ALL.into_iter().any(|kind| {
        idnumber
            .strip_prefix("tc_")
            .and_then(|rest| rest.strip_prefix(kind.as_str()))
            .and_then(|rest| rest.strip_prefix('_'))
            .and_then(|rest| rest.strip_suffix(server_idnumber))
            .and_then(|rest| rest.strip_suffix('_'))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A change that must have touched a row: none is another writer's doing, `NotFound`.
fn expect_one(rows_affected: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    expect_rows(rows_affected, 1, what)
}

/// Changes that must have touched `expected` rows: fewer is another writer's doing.
fn expect_rows(
    rows_affected: u64,
    expected: usize,
    what: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    if rows_affected < expected as u64 {
        return Err(StoreError::NotFound(what()));
    }
    Ok(())
}

impl Store {
    /// What a collections sync of `source` needs (see [`CollectionsState`]), read in one
    /// transaction.
    pub async fn connect_collections_state(
        &self,
        source: SyncSource<'_>,
    ) -> Result<CollectionsState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut state = CollectionsState::default();
        for row in sqlx::query(
            "SELECT kind, remote_id, local_id FROM connect_remote_ids \
             WHERE server_idnumber = $1 AND kind IN ('cohort', 'course')",
        )
        .bind(source.server_idnumber)
        .fetch_all(&mut *tx)
        .await?
        {
            let kind: String = row.try_get("kind")?;
            let kind = CollectionKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("collection kind {kind:?}")))?;
            state
                .mapped
                .insert((kind, row.try_get("remote_id")?), row.try_get("local_id")?);
        }
        let rows = sqlx::query(
            "SELECT a.id, a.idnumber, a.name, a.description, a.component FROM audiences a \
             WHERE a.component = $1 OR a.idnumber LIKE $2 OR a.id IN (SELECT local_id \
             FROM connect_remote_ids WHERE server_idnumber = $3 AND kind IN ('cohort', 'course'))",
        )
        .bind(source.idp_id)
        .bind(idnumber_pattern(source.server_idnumber))
        .bind(source.server_idnumber)
        .fetch_all(&mut *tx)
        .await?;
        let mapped_ids: BTreeSet<i64> = state.mapped.values().copied().collect();
        for row in rows {
            let audience = LocalAudience {
                id: row.try_get("id")?,
                idnumber: row.try_get("idnumber")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                component: row.try_get("component")?,
                members: BTreeSet::new(),
            };
            if audience.component == source.idp_id
                || mapped_ids.contains(&audience.id)
                || is_collection_idnumber(&audience.idnumber, source.server_idnumber)
            {
                state.audiences.insert(audience.id, audience);
            }
        }
        // Only this IdP's audiences are ever compared member by member.
        for row in sqlx::query(
            "SELECT m.audience_id, m.user_id FROM audience_members m \
             JOIN audiences a ON a.id = m.audience_id WHERE a.component = $1",
        )
        .bind(source.idp_id)
        .fetch_all(&mut *tx)
        .await?
        {
            let audience: i64 = row.try_get("audience_id")?;
            if let Some(audience) = state.audiences.get_mut(&audience) {
                audience.members.insert(row.try_get("user_id")?);
            }
        }
        for row in sqlx::query(
            "SELECT user_id, server_user_id FROM connect_users \
             WHERE idp_id = $1 AND server_idnumber = $2",
        )
        .bind(source.idp_id)
        .bind(source.server_idnumber)
        .fetch_all(&mut *tx)
        .await?
        {
            state
                .users
                .insert(row.try_get("server_user_id")?, row.try_get("user_id")?);
        }
        tx.commit().await?;
        Ok(state)
    }

    /// Applies `plan` for `source` in one transaction: every change or none. A change
    /// naming an audience or mapping that is no longer there (another writer got in between)
    /// is `NotFound`, an idnumber or mapping taken meanwhile `Conflict`; either way nothing
    /// is written.
    pub async fn apply_collections_plan(
        &self,
        plan: &CollectionsPlan,
        source: SyncSource<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first, so that SQLite takes the write lock at once (see apply_batch).
        sqlx::query("DELETE FROM audience_members WHERE 1 = 0")
            .execute(&mut *tx)
            .await?;
        let mut created: BTreeMap<(CollectionKind, i64), i64> = BTreeMap::new();
        // Memberships go out a statement's worth at a time: an audience of the whole staff is one
        // statement per thousand members, not one per member.
        let mut adds: Vec<(i64, i64)> = Vec::new();
        let mut removals: Vec<(i64, i64)> = Vec::new();
        for change in &plan.changes {
            match change {
                CollectionChange::AddMember { audience, user_id } => {
                    flush_removals(&mut tx, &mut removals).await?;
                    adds.push((created_or_existing(audience, &created)?, *user_id));
                    if adds.len() == MEMBERSHIPS_PER_STATEMENT {
                        flush_adds(&mut tx, &mut adds, now).await?;
                    }
                }
                CollectionChange::RemoveMember {
                    audience_id,
                    user_id,
                } => {
                    flush_adds(&mut tx, &mut adds, now).await?;
                    removals.push((*audience_id, *user_id));
                    if removals.len() == MEMBERSHIPS_PER_STATEMENT {
                        flush_removals(&mut tx, &mut removals).await?;
                    }
                }
                other => {
                    flush_adds(&mut tx, &mut adds, now).await?;
                    flush_removals(&mut tx, &mut removals).await?;
                    apply_change(&mut tx, other, source, now, &mut created).await?;
                }
            }
        }
        flush_adds(&mut tx, &mut adds, now).await?;
        flush_removals(&mut tx, &mut removals).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Memberships per statement (two parameters each; see `bulk` for why not more).
const MEMBERSHIPS_PER_STATEMENT: usize = crate::bulk::MAX_PARAMETERS / 2;

/// The row id of an audience a change names.
fn created_or_existing(
    audience: &AudienceRef,
    created: &BTreeMap<(CollectionKind, i64), i64>,
) -> Result<i64, StoreError> {
    match audience {
        AudienceRef::Existing(id) => Ok(*id),
        AudienceRef::Created { kind, remote_id } => {
            created.get(&(*kind, *remote_id)).copied().ok_or_else(|| {
                StoreError::NotFound(format!(
                    "the audience of {kind} {remote_id} (not created before its members)"
                ))
            })
        }
    }
}

/// Inserts the buffered memberships. Both ids must exist (foreign keys): a user deleted
/// meanwhile fails the whole plan; a membership already there is a `Conflict`.
async fn flush_adds(
    tx: &mut Tx<'_>,
    adds: &mut Vec<(i64, i64)>,
    now: i64,
) -> Result<(), StoreError> {
    if adds.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO audience_members (audience_id, user_id, added_at) VALUES {}",
        value_rows(2, adds.len(), ", $0")
    );
    let mut query = statement(sql).bind(now);
    for (audience_id, user_id) in adds.iter() {
        query = query.bind(*audience_id).bind(*user_id);
    }
    query.execute(&mut **tx).await?;
    adds.clear();
    Ok(())
}

/// Deletes the buffered memberships; each must have been there (`NotFound` otherwise:
/// another writer got in between).
async fn flush_removals(tx: &mut Tx<'_>, removals: &mut Vec<(i64, i64)>) -> Result<(), StoreError> {
    if removals.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM audience_members WHERE (audience_id, user_id) IN (VALUES {})",
        value_rows(2, removals.len(), "")
    );
    let mut query = statement(sql);
    for (audience_id, user_id) in removals.iter() {
        query = query.bind(*audience_id).bind(*user_id);
    }
    let done = query.execute(&mut **tx).await?;
    let expected = removals.len();
    expect_rows(done.rows_affected(), expected, || {
        format!("{expected} memberships to remove")
    })?;
    removals.clear();
    Ok(())
}

async fn map_collection(
    tx: &mut Tx<'_>,
    source: SyncSource<'_>,
    kind: CollectionKind,
    remote_id: i64,
    audience_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO connect_remote_ids (server_idnumber, kind, remote_id, local_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(source.server_idnumber)
    .bind(kind.as_str())
    .bind(remote_id)
    .bind(audience_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn apply_change(
    tx: &mut Tx<'_>,
    change: &CollectionChange,
    source: SyncSource<'_>,
    now: i64,
    created: &mut BTreeMap<(CollectionKind, i64), i64>,
) -> Result<(), StoreError> {
    match change {
        CollectionChange::Unmap { kind, remote_id } => {
            let done = sqlx::query(
                "DELETE FROM connect_remote_ids \
                 WHERE server_idnumber = $1 AND kind = $2 AND remote_id = $3",
            )
            .bind(source.server_idnumber)
            .bind(kind.as_str())
            .bind(remote_id)
            .execute(&mut **tx)
            .await?;
            expect_one(done.rows_affected(), || {
                format!("the mapping of {kind} {remote_id}")
            })?;
        }
        CollectionChange::Delete {
            kind,
            remote_id,
            audience_id,
        } => {
            let done = sqlx::query(
                "DELETE FROM connect_remote_ids \
                 WHERE server_idnumber = $1 AND kind = $2 AND remote_id = $3 AND local_id = $4",
            )
            .bind(source.server_idnumber)
            .bind(kind.as_str())
            .bind(remote_id)
            .bind(audience_id)
            .execute(&mut **tx)
            .await?;
            expect_one(done.rows_affected(), || {
                format!("the mapping of {kind} {remote_id}")
            })?;
            // Its members and client links go with it (ON DELETE CASCADE).
            let done = sqlx::query("DELETE FROM audiences WHERE id = $1 AND component = $2")
                .bind(audience_id)
                .bind(source.idp_id)
                .execute(&mut **tx)
                .await?;
            expect_one(done.rows_affected(), || {
                format!("audience {audience_id} of {kind} {remote_id}")
            })?;
        }
        CollectionChange::Adopt {
            kind,
            remote_id,
            audience_id,
        } => {
            map_collection(tx, source, *kind, *remote_id, *audience_id, now).await?;
        }
        CollectionChange::Create {
            kind,
            remote_id,
            idnumber,
            name,
            description,
        } => {
            // Not linked to "add new audiences" clients: a synced audience is the server's,
            // not one an administrator made here.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO audiences (idnumber, name, description, component, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(idnumber)
            .bind(name)
            .bind(description)
            .bind(source.idp_id)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            map_collection(tx, source, *kind, *remote_id, id, now).await?;
            created.insert((*kind, *remote_id), id);
        }
        CollectionChange::Update {
            audience_id,
            name,
            description,
        } => {
            let done = sqlx::query(
                "UPDATE audiences SET name = $1, description = $2, updated_at = $3 \
                 WHERE id = $4 AND component = $5",
            )
            .bind(name)
            .bind(description)
            .bind(now)
            .bind(audience_id)
            .bind(source.idp_id)
            .execute(&mut **tx)
            .await?;
            expect_one(done.rows_affected(), || format!("audience {audience_id}"))?;
        }
        // Written in bulk by `apply_collections_plan`.
        CollectionChange::AddMember { .. } | CollectionChange::RemoveMember { .. } => {
            return Err(StoreError::Invalid(
                "a membership is written with its neighbours, not on its own".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";

    #[test]
    fn collection_idnumbers_are_recognised_exactly() {
        let cohort = collection_idnumber(CollectionKind::Cohort, 12, SERVER);
        assert_eq!(cohort, format!("tc_cohort_12_{SERVER}"));
        assert!(is_collection_idnumber(&cohort, SERVER));
        assert!(is_collection_idnumber(
            &collection_idnumber(CollectionKind::Course, 3, SERVER),
            SERVER
        ));
        for other in [
            format!("tc_group_12_{SERVER}"),
            format!("tc_cohort__{SERVER}"),
            format!("tc_cohort_1x_{SERVER}"),
            format!("tc_cohort_12{SERVER}"),
            "tc_cohort_12_other".to_owned(),
            format!("xtc_cohort_12_{SERVER}"),
        ] {
            assert!(!is_collection_idnumber(&other, SERVER), "{other}");
        }
    }
}
