//! A Connect client's position or organisation sync (reference §5.5): the server's
//! frameworks and items mapped to local rows through `connect_remote_ids` (kinds
//! `pos_framework`/`org_framework` and `pos`/`org`). Two halves, as the directory's: a
//! **pure planner** ([`plan_hierarchy_sync`]: the server's rows and the local state in, the
//! changes out; property-tested) and [`Store::sync_hierarchy`], which reads the state, plans
//! and applies in **one transaction** (an interrupted sync leaves nothing half-applied).
//! Not the wire format (the client plugin read the reply) and not the directory file's
//! import of frameworks (`directory`).
//!
//! The rules: frameworks are created (appended to the local sort order), updated or, when
//! the server no longer sends them, deleted with their items; items are taken in the order
//! sent, an item whose framework or parent was not taken before it is skipped (the server
//! sends parents first), an item whose parent changed moves, and in a synced framework
//! every item not from this server is deleted. The type is kept by its idnumber. Local
//! idnumbers are the directory's keys (unique per kind), so:
//! - a server row with an empty idnumber, or one another row of the same reply already
//!   uses, is skipped (named in [`HierarchyPlan::skipped`]);
//! - a server row whose idnumber a local row holds that this sync neither maps nor deletes
//!   (an administrator's framework outside the synced ones, another server's item) is a
//!   [`HierarchyConflict`]: the whole sync is refused and nothing is written, since adopting
//!   an administrator's framework would delete its local items.
//!
//! Not kept (the directory has no column for them): custom field values, `hidecustomfields`,
//! `sortthread`, `depthlevel` and positions' validity times.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::{FrameworkKind, Store, StoreError, get_bool};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// The original's `auth_connect_ids.tablename` of a framework and of an item of `kind`.
pub fn remote_id_kinds(kind: FrameworkKind) -> (&'static str, &'static str) {
    match kind {
        FrameworkKind::Position => ("pos_framework", "pos"),
        FrameworkKind::Organisation => ("org_framework", "org"),
    }
}

/// A framework as the server sent it (the fields the directory keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFramework {
    pub remote_id: i64,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub visible: bool,
}

/// An item as the server sent it: its framework and parent by the server's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerItem {
    pub remote_id: i64,
    pub framework: i64,
    /// `None` at the top (the server's `parentid` 0).
    pub parent: Option<i64>,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    /// The type's idnumber, `""` for none.
    pub type_idnumber: String,
    pub visible: bool,
}

/// A local framework row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFramework {
    pub id: i64,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub visible: bool,
    pub sortorder: i64,
}

/// A local item row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalItem {
    pub id: i64,
    pub framework_id: i64,
    pub parent_id: Option<i64>,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub type_idnumber: String,
    pub visible: bool,
}

/// One kind's frameworks and items as they are, and this server's id maps (server id →
/// local id; a mapping whose local row is gone is ignored and replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HierarchyState {
    pub frameworks: BTreeMap<i64, LocalFramework>,
    pub items: BTreeMap<i64, LocalItem>,
    pub framework_map: BTreeMap<i64, i64>,
    pub item_map: BTreeMap<i64, i64>,
}

/// A row a change refers to: one that exists, or the one this plan creates for a server id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    Local(i64),
    Created(i64),
}

/// The values a framework is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameworkValues {
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub visible: bool,
}

/// The values an item is given; its framework and parent are [`RowRef`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemValues {
    pub framework: RowRef,
    pub parent: Option<RowRef>,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub type_idnumber: String,
    pub visible: bool,
}

/// Which table a row is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HierarchyTable {
    Framework,
    Item,
}

/// One change, in the order [`HierarchyPlan::changes`] lists them: idnumbers given up
/// first, then frameworks, then items (parents first), then item and framework deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HierarchyChange {
    /// The row gives up its idnumber for another row of this plan (it is renamed or
    /// deleted later in the same plan): a placeholder until then.
    ReleaseIdnumber {
        table: HierarchyTable,
        id: i64,
    },
    CreateFramework {
        remote_id: i64,
        values: FrameworkValues,
        sortorder: i64,
    },
    UpdateFramework {
        id: i64,
        values: FrameworkValues,
    },
    /// Maps an existing row to a server id (an earlier mapping's row was gone).
    CreateItem {
        remote_id: i64,
        values: ItemValues,
    },
    UpdateItem {
        id: i64,
        values: ItemValues,
    },
    DeleteItem {
        id: i64,
    },
    /// Deletes a framework and whatever items are still in it.
    DeleteFramework {
        id: i64,
    },
}

/// What one sync changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HierarchyPlan {
    pub changes: Vec<HierarchyChange>,
    /// Server rows not taken, each with why (`frameworks[2] (id 7): …`).
    pub skipped: Vec<String>,
    pub unchanged: usize,
}

/// How many of each a plan does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HierarchyCounts {
    pub frameworks_created: usize,
    pub frameworks_updated: usize,
    pub frameworks_deleted: usize,
    pub items_created: usize,
    pub items_updated: usize,
    pub items_deleted: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl std::fmt::Display for HierarchyCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frameworks: created {}, updated {}, deleted {}; items: created {}, updated {}, deleted {}; unchanged {}, skipped {}",
            self.frameworks_created,
            self.frameworks_updated,
            self.frameworks_deleted,
            self.items_created,
            self.items_updated,
            self.items_deleted,
            self.unchanged,
            self.skipped
        )
    }
}

impl HierarchyPlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn counts(&self) -> HierarchyCounts {
        let mut counts = HierarchyCounts {
            unchanged: self.unchanged,
            skipped: self.skipped.len(),
            ..HierarchyCounts::default()
        };
        for change in &self.changes {
            match change {
                HierarchyChange::ReleaseIdnumber { .. } => {}
                HierarchyChange::CreateFramework { .. } => counts.frameworks_created += 1,
                HierarchyChange::UpdateFramework { .. } => counts.frameworks_updated += 1,
                HierarchyChange::DeleteFramework { .. } => counts.frameworks_deleted += 1,
                HierarchyChange::CreateItem { .. } => counts.items_created += 1,
                HierarchyChange::UpdateItem { .. } => counts.items_updated += 1,
                HierarchyChange::DeleteItem { .. } => counts.items_deleted += 1,
            }
        }
        counts
    }
}

/// A server row whose idnumber a local row keeps that this sync may not take over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server's {what} `{idnumber}` (server id {remote_id}) has the idnumber of a local {what} this server does not sync (local id {local_id}): rename or delete the local one, then sync again; nothing was written"
)]
pub struct HierarchyConflict {
    pub what: &'static str,
    pub idnumber: String,
    pub remote_id: i64,
    pub local_id: i64,
}

/// The local rows holding an idnumber a wanted server row takes (`held`: idnumber → local
/// id; `wanted`: idnumber, server id, and the row it becomes): each one the sync keeps under
/// another idnumber or deletes (`movable`) gives it up first through a placeholder,
/// once; any other holder (an administrator's row, another server's) refuses the sync.
fn release_idnumbers<'a>(
    table: HierarchyTable,
    held: impl Iterator<Item = (&'a str, i64)>,
    wanted: impl Iterator<Item = (&'a str, i64, RowRef)>,
    movable: impl Fn(i64) -> bool,
    releases: &mut Vec<HierarchyChange>,
) -> Result<(), HierarchyConflict> {
    let by_idnumber: BTreeMap<&str, i64> = held.collect();
    let mut released = BTreeSet::new();
    for (idnumber, remote_id, target) in wanted {
        let Some(&holder) = by_idnumber.get(idnumber) else {
            continue;
        };
        if target == RowRef::Local(holder) {
            continue;
        }
        if !movable(holder) {
            return Err(HierarchyConflict {
                what: match table {
                    HierarchyTable::Framework => "framework",
                    HierarchyTable::Item => "item",
                },
                idnumber: idnumber.to_owned(),
                remote_id,
                local_id: holder,
            });
        }
        if released.insert(holder) {
            releases.push(HierarchyChange::ReleaseIdnumber { table, id: holder });
        }
    }
    Ok(())
}

/// Plans one kind's sync from the server's frameworks and items (in the order sent)
/// against `state`. Pure; planning the result again plans nothing.
pub fn plan_hierarchy_sync(
    state: &HierarchyState,
    frameworks: &[ServerFramework],
    items: &[ServerItem],
) -> Result<HierarchyPlan, HierarchyConflict> {
    let mut plan = HierarchyPlan::default();
    let mut releases: Vec<HierarchyChange> = Vec::new();
    let mut upserts: Vec<HierarchyChange> = Vec::new();

    // ---- Frameworks ----
    let mut taken_frameworks: BTreeMap<i64, RowRef> = BTreeMap::new();
    let mut framework_idnumbers: BTreeSet<&str> = BTreeSet::new();
    // Wanted idnumber → the row that gets it.
    let mut wanted_frameworks: Vec<(&ServerFramework, RowRef)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, framework) in frameworks.iter().enumerate() {
        let at = || format!("frameworks[{index}] (server id {})", framework.remote_id);
        if !seen.insert(framework.remote_id) {
            plan.skipped.push(format!("{}: sent twice", at()));
            continue;
        }
        if framework.idnumber.is_empty() {
            plan.skipped
                .push(format!("{}: no idnumber (its items are skipped too)", at()));
            continue;
        }
        if !framework_idnumbers.insert(&framework.idnumber) {
            plan.skipped.push(format!(
                "{}: idnumber `{}` is used by an earlier framework of the reply",
                at(),
                framework.idnumber
            ));
            continue;
        }
        let target = match state
            .framework_map
            .get(&framework.remote_id)
            .filter(|id| state.frameworks.contains_key(id))
        {
            Some(&id) => RowRef::Local(id),
            None => RowRef::Created(framework.remote_id),
        };
        taken_frameworks.insert(framework.remote_id, target);
        wanted_frameworks.push((framework, target));
    }
    let kept_frameworks: BTreeSet<i64> = taken_frameworks
        .values()
        .filter_map(|r| match r {
            RowRef::Local(id) => Some(*id),
            RowRef::Created(_) => None,
        })
        .collect();
    let deleted_frameworks: BTreeSet<i64> = state
        .framework_map
        .values()
        .filter(|id| state.frameworks.contains_key(id) && !kept_frameworks.contains(id))
        .copied()
        .collect();
    release_idnumbers(
        HierarchyTable::Framework,
        state
            .frameworks
            .values()
            .map(|f| (f.idnumber.as_str(), f.id)),
        wanted_frameworks
            .iter()
            .map(|(f, target)| (f.idnumber.as_str(), f.remote_id, *target)),
        |holder| kept_frameworks.contains(&holder) || deleted_frameworks.contains(&holder),
        &mut releases,
    )?;
    let mut next_sortorder = state
        .frameworks
        .values()
        .map(|f| f.sortorder)
        .max()
        .unwrap_or(0);
    for (framework, target) in &wanted_frameworks {
        let values = FrameworkValues {
            idnumber: framework.idnumber.clone(),
            fullname: framework.fullname.clone(),
            shortname: framework.shortname.clone(),
            description: framework.description.clone(),
            visible: framework.visible,
        };
        match target {
            RowRef::Created(remote_id) => {
                next_sortorder += 1;
                upserts.push(HierarchyChange::CreateFramework {
                    remote_id: *remote_id,
                    values,
                    sortorder: next_sortorder,
                });
            }
            RowRef::Local(id) => {
                let local = &state.frameworks[id];
                let same = local.idnumber == values.idnumber
                    && local.fullname == values.fullname
                    && local.shortname == values.shortname
                    && local.description == values.description
                    && local.visible == values.visible;
                if same {
                    plan.unchanged += 1;
                } else {
                    upserts.push(HierarchyChange::UpdateFramework { id: *id, values });
                }
            }
        }
    }

    // ---- Items, in the order sent: a parent must have been taken before its child ----
    let mut taken_items: BTreeMap<i64, (RowRef, i64)> = BTreeMap::new(); // remote → (row, remote framework)
    let mut item_idnumbers: BTreeSet<&str> = BTreeSet::new();
    let mut wanted_items: Vec<(&ServerItem, RowRef, ItemValues)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let at = || format!("items[{index}] (server id {})", item.remote_id);
        if !seen.insert(item.remote_id) {
            plan.skipped.push(format!("{}: sent twice", at()));
            continue;
        }
        let Some(&framework) = taken_frameworks.get(&item.framework) else {
            plan.skipped.push(format!(
                "{}: its framework (server id {}) was not synced",
                at(),
                item.framework
            ));
            continue;
        };
        let parent = match item.parent {
            None => None,
            Some(parent) => match taken_items.get(&parent) {
                Some((row, parent_framework)) if *parent_framework == item.framework => Some(*row),
                Some(_) => {
                    plan.skipped.push(format!(
                        "{}: its parent (server id {parent}) is in another framework",
                        at()
                    ));
                    continue;
                }
                None => {
                    plan.skipped.push(format!(
                        "{}: its parent (server id {parent}) was not synced before it",
                        at()
                    ));
                    continue;
                }
            },
        };
        if item.idnumber.is_empty() {
            plan.skipped.push(format!(
                "{}: no idnumber (its children are skipped too)",
                at()
            ));
            continue;
        }
        if !item_idnumbers.insert(&item.idnumber) {
            plan.skipped.push(format!(
                "{}: idnumber `{}` is used by an earlier item of the reply",
                at(),
                item.idnumber
            ));
            continue;
        }
        let target = match state
            .item_map
            .get(&item.remote_id)
            .filter(|id| state.items.contains_key(id))
        {
            Some(&id) => RowRef::Local(id),
            None => RowRef::Created(item.remote_id),
        };
        taken_items.insert(item.remote_id, (target, item.framework));
        let values = ItemValues {
            framework,
            parent,
            idnumber: item.idnumber.clone(),
            fullname: item.fullname.clone(),
            shortname: item.shortname.clone(),
            description: item.description.clone(),
            type_idnumber: item.type_idnumber.clone(),
            visible: item.visible,
        };
        wanted_items.push((item, target, values));
    }
    let kept_items: BTreeSet<i64> = taken_items
        .values()
        .filter_map(|(r, _)| match r {
            RowRef::Local(id) => Some(*id),
            RowRef::Created(_) => None,
        })
        .collect();
    // Deleted: this server's items not taken, every other item of a synced framework, and
    // the items of the frameworks deleted (they go with them).
    let mapped_items: BTreeSet<i64> = state.item_map.values().copied().collect();
    let deleted_items: BTreeSet<i64> = state
        .items
        .values()
        .filter(|item| !kept_items.contains(&item.id))
        .filter(|item| {
            kept_frameworks.contains(&item.framework_id)
                || deleted_frameworks.contains(&item.framework_id)
                || mapped_items.contains(&item.id)
        })
        .map(|item| item.id)
        .collect();
    release_idnumbers(
        HierarchyTable::Item,
        state.items.values().map(|i| (i.idnumber.as_str(), i.id)),
        wanted_items
            .iter()
            .map(|(i, target, _)| (i.idnumber.as_str(), i.remote_id, *target)),
        |holder| kept_items.contains(&holder) || deleted_items.contains(&holder),
        &mut releases,
    )?;
    for (_, target, values) in wanted_items {
        match target {
            RowRef::Created(remote_id) => {
                upserts.push(HierarchyChange::CreateItem { remote_id, values });
            }
            RowRef::Local(id) => {
                let local = &state.items[&id];
                let same = RowRef::Local(local.framework_id) == values.framework
                    && local.parent_id.map(RowRef::Local) == values.parent
                    && local.idnumber == values.idnumber
                    && local.fullname == values.fullname
                    && local.shortname == values.shortname
                    && local.description == values.description
                    && local.type_idnumber == values.type_idnumber
                    && local.visible == values.visible;
                if same {
                    plan.unchanged += 1;
                } else {
                    upserts.push(HierarchyChange::UpdateItem { id, values });
                }
            }
        }
    }

    // ---- Deletions: items deepest first (explicit, not left to the cascade), then
    // frameworks ----
    let depth = |mut id: i64| {
        let mut depth = 0usize;
        while let Some(parent) = state.items.get(&id).and_then(|i| i.parent_id) {
            depth += 1;
            if depth > state.items.len() {
                break;
            }
            id = parent;
        }
        depth
    };
    let mut doomed: Vec<(usize, i64)> = deleted_items.iter().map(|&id| (depth(id), id)).collect();
    doomed.sort_by(|a, b| b.cmp(a));
    plan.changes = releases;
    plan.changes.extend(upserts);
    plan.changes.extend(
        doomed
            .into_iter()
            .map(|(_, id)| HierarchyChange::DeleteItem { id }),
    );
    plan.changes.extend(
        deleted_frameworks
            .into_iter()
            .map(|id| HierarchyChange::DeleteFramework { id }),
    );
    Ok(plan)
}

/// A placeholder idnumber for a row that gives its own up within a plan; the control
/// character keeps it from matching any idnumber an import or a sync would write.
fn released_idnumber(id: i64) -> String {
    format!("\u{1}released-{id}")
}

impl HierarchyState {
    /// The state after `plan`, as the store leaves it: created rows get ids after the
    /// largest of their table in use. The model the planner's properties check the store against.
    pub fn apply(&mut self, plan: &HierarchyPlan) {
        let mut next_framework = self.frameworks.keys().max().copied().unwrap_or(0);
        let mut next_item = self.items.keys().max().copied().unwrap_or(0);
        let mut created_frameworks: BTreeMap<i64, i64> = BTreeMap::new();
        let mut created_items: BTreeMap<i64, i64> = BTreeMap::new();
        let resolve = |r: RowRef, created: &BTreeMap<i64, i64>| match r {
            RowRef::Local(id) => id,
            RowRef::Created(remote) => created.get(&remote).copied().unwrap_or(0),
        };
        for change in &plan.changes {
            match change {
                HierarchyChange::ReleaseIdnumber { table, id } => match table {
                    HierarchyTable::Framework => {
                        if let Some(f) = self.frameworks.get_mut(id) {
                            f.idnumber = released_idnumber(*id);
                        }
                    }
                    HierarchyTable::Item => {
                        if let Some(i) = self.items.get_mut(id) {
                            i.idnumber = released_idnumber(*id);
                        }
                    }
                },
                HierarchyChange::CreateFramework {
                    remote_id,
                    values,
                    sortorder,
                } => {
                    next_framework += 1;
                    let id = next_framework;
                    created_frameworks.insert(*remote_id, id);
                    self.framework_map.insert(*remote_id, id);
                    self.frameworks.insert(
                        id,
                        LocalFramework {
                            id,
                            idnumber: values.idnumber.clone(),
                            fullname: values.fullname.clone(),
                            shortname: values.shortname.clone(),
                            description: values.description.clone(),
                            visible: values.visible,
                            sortorder: *sortorder,
                        },
                    );
                }
                HierarchyChange::UpdateFramework { id, values } => {
                    if let Some(f) = self.frameworks.get_mut(id) {
                        f.idnumber = values.idnumber.clone();
                        f.fullname = values.fullname.clone();
                        f.shortname = values.shortname.clone();
                        f.description = values.description.clone();
                        f.visible = values.visible;
                    }
                }
                HierarchyChange::CreateItem { remote_id, values } => {
                    next_item += 1;
                    let id = next_item;
                    created_items.insert(*remote_id, id);
                    self.item_map.insert(*remote_id, id);
                    let item = LocalItem {
                        id,
                        framework_id: resolve(values.framework, &created_frameworks),
                        parent_id: values.parent.map(|p| resolve(p, &created_items)),
                        idnumber: values.idnumber.clone(),
                        fullname: values.fullname.clone(),
                        shortname: values.shortname.clone(),
                        description: values.description.clone(),
                        type_idnumber: values.type_idnumber.clone(),
                        visible: values.visible,
                    };
                    self.items.insert(id, item);
                }
                HierarchyChange::UpdateItem { id, values } => {
                    let framework_id = resolve(values.framework, &created_frameworks);
                    let parent_id = values.parent.map(|p| resolve(p, &created_items));
                    if let Some(i) = self.items.get_mut(id) {
                        i.framework_id = framework_id;
                        i.parent_id = parent_id;
                        i.idnumber = values.idnumber.clone();
                        i.fullname = values.fullname.clone();
                        i.shortname = values.shortname.clone();
                        i.description = values.description.clone();
                        i.type_idnumber = values.type_idnumber.clone();
                        i.visible = values.visible;
                    }
                }
                HierarchyChange::DeleteItem { id } => self.delete_item(*id),
                HierarchyChange::DeleteFramework { id } => {
                    self.frameworks.remove(id);
                    let inside: Vec<i64> = self
                        .items
                        .values()
                        .filter(|i| i.framework_id == *id)
                        .map(|i| i.id)
                        .collect();
                    for item in inside {
                        self.delete_item(item);
                    }
                }
            }
        }
        // Mappings whose row is gone are dropped, as the store drops them.
        let frameworks = &self.frameworks;
        self.framework_map
            .retain(|_, id| frameworks.contains_key(id));
        let items = &self.items;
        self.item_map.retain(|_, id| items.contains_key(id));
    }

    /// Removes an item and, as the foreign key's cascade does, its descendants.
    fn delete_item(&mut self, id: i64) {
        if self.items.remove(&id).is_none() {
            return;
        }
        let children: Vec<i64> = self
            .items
            .values()
            .filter(|i| i.parent_id == Some(id))
            .map(|i| i.id)
            .collect();
        for child in children {
            self.delete_item(child);
        }
    }
}

// ---- The store ------------------------------------------------------------------------------

impl Store {
    /// Syncs one kind of hierarchy from the server `server_idnumber`: reads the local state
    /// and this server's id maps, plans ([`plan_hierarchy_sync`]) and applies the plan, all
    /// in one transaction. A [`HierarchyConflict`] is `StoreError::Invalid` with its text;
    /// either way nothing is written.
    pub async fn sync_hierarchy(
        &self,
        server_idnumber: &str,
        kind: FrameworkKind,
        frameworks: &[ServerFramework],
        items: &[ServerItem],
        now: i64,
    ) -> Result<HierarchyPlan, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first, so that SQLite takes the write lock at once (see apply_batch).
        sqlx::query("DELETE FROM connect_remote_ids WHERE 1 = 0")
            .execute(&mut *tx)
            .await?;
        let state = read_state(&mut tx, server_idnumber, kind).await?;
        let plan = plan_hierarchy_sync(&state, frameworks, items)
            .map_err(|conflict| StoreError::Invalid(conflict.to_string()))?;
        apply_plan(&mut tx, server_idnumber, kind, &plan, now).await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// One kind's frameworks, items and the id maps of `server_idnumber`, as the sync sees
    /// them (for tests and the model).
    pub async fn hierarchy_state(
        &self,
        server_idnumber: &str,
        kind: FrameworkKind,
    ) -> Result<HierarchyState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state = read_state(&mut tx, server_idnumber, kind).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// The local item ids of `server_idnumber`'s items of `kind`, by server id (a job's
    /// position or organisation is translated through it).
    pub async fn connect_item_map(
        &self,
        server_idnumber: &str,
        kind: FrameworkKind,
    ) -> Result<BTreeMap<i64, i64>, StoreError> {
        let (_, item_kind) = remote_id_kinds(kind);
        let mut map = BTreeMap::new();
        for row in sqlx::query(
            "SELECT r.remote_id, r.local_id FROM connect_remote_ids r \
             JOIN hierarchy_items i ON i.id = r.local_id AND i.kind = $3 \
             WHERE r.server_idnumber = $1 AND r.kind = $2",
        )
        .bind(server_idnumber)
        .bind(item_kind)
        .bind(kind.column())
        .fetch_all(&self.pool)
        .await?
        {
            map.insert(row.try_get("remote_id")?, row.try_get("local_id")?);
        }
        Ok(map)
    }
}

async fn read_map(
    tx: &mut Tx<'_>,
    server_idnumber: &str,
    kind: &str,
) -> Result<BTreeMap<i64, i64>, StoreError> {
    let mut map = BTreeMap::new();
    for row in sqlx::query(
        "SELECT remote_id, local_id FROM connect_remote_ids \
         WHERE server_idnumber = $1 AND kind = $2",
    )
    .bind(server_idnumber)
    .bind(kind)
    .fetch_all(&mut **tx)
    .await?
    {
        map.insert(row.try_get("remote_id")?, row.try_get("local_id")?);
    }
    Ok(map)
}

async fn read_state(
    tx: &mut Tx<'_>,
    server_idnumber: &str,
    kind: FrameworkKind,
) -> Result<HierarchyState, StoreError> {
    let mut state = HierarchyState::default();
    for row in sqlx::query(
        "SELECT id, idnumber, fullname, shortname, description, visible, sortorder \
         FROM hierarchy_frameworks WHERE kind = $1",
    )
    .bind(kind.column())
    .fetch_all(&mut **tx)
    .await?
    {
        let framework = LocalFramework {
            id: row.try_get("id")?,
            idnumber: row.try_get("idnumber")?,
            fullname: row.try_get("fullname")?,
            shortname: row.try_get("shortname")?,
            description: row.try_get("description")?,
            visible: get_bool(&row, "visible")?,
            sortorder: row.try_get("sortorder")?,
        };
        state.frameworks.insert(framework.id, framework);
    }
    for row in sqlx::query(
        "SELECT id, framework_id, parent_id, idnumber, fullname, shortname, description, \
         type_idnumber, visible FROM hierarchy_items WHERE kind = $1",
    )
    .bind(kind.column())
    .fetch_all(&mut **tx)
    .await?
    {
        let item = LocalItem {
            id: row.try_get("id")?,
            framework_id: row.try_get("framework_id")?,
            parent_id: row.try_get("parent_id")?,
            idnumber: row.try_get("idnumber")?,
            fullname: row.try_get("fullname")?,
            shortname: row.try_get("shortname")?,
            description: row.try_get("description")?,
            type_idnumber: row.try_get("type_idnumber")?,
            visible: get_bool(&row, "visible")?,
        };
        state.items.insert(item.id, item);
    }
    let (framework_kind, item_kind) = remote_id_kinds(kind);
    state.framework_map = read_map(tx, server_idnumber, framework_kind).await?;
    state.item_map = read_map(tx, server_idnumber, item_kind).await?;
    Ok(state)
}

async fn map_remote(
    tx: &mut Tx<'_>,
    server_idnumber: &str,
    kind: &str,
    remote_id: i64,
    local_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO connect_remote_ids (server_idnumber, kind, remote_id, local_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (server_idnumber, kind, remote_id) DO UPDATE SET local_id = excluded.local_id",
    )
    .bind(server_idnumber)
    .bind(kind)
    .bind(remote_id)
    .bind(local_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn resolve(reference: RowRef, created: &BTreeMap<i64, i64>) -> Result<i64, StoreError> {
    match reference {
        RowRef::Local(id) => Ok(id),
        RowRef::Created(remote) => created.get(&remote).copied().ok_or_else(|| {
            StoreError::Invalid(format!(
                "the plan refers to server row {remote} before creating it"
            ))
        }),
    }
}

/// Fails when an update or delete found no row: another writer got in between.
fn one_row(affected: u64, what: &str, id: i64) -> Result<(), StoreError> {
    if affected == 0 {
        return Err(StoreError::NotFound(format!("{what} {id}")));
    }
    Ok(())
}

async fn apply_plan(
    tx: &mut Tx<'_>,
    server_idnumber: &str,
    kind: FrameworkKind,
    plan: &HierarchyPlan,
    now: i64,
) -> Result<(), StoreError> {
    let (framework_kind, item_kind) = remote_id_kinds(kind);
    let mut created_frameworks: BTreeMap<i64, i64> = BTreeMap::new();
    let mut created_items: BTreeMap<i64, i64> = BTreeMap::new();
    for change in &plan.changes {
        match change {
            HierarchyChange::ReleaseIdnumber { table, id } => {
                let sql = match table {
                    HierarchyTable::Framework => {
                        "UPDATE hierarchy_frameworks SET idnumber = $1 WHERE id = $2"
                    }
                    HierarchyTable::Item => {
                        "UPDATE hierarchy_items SET idnumber = $1 WHERE id = $2"
                    }
                };
                let done = sqlx::query(sql)
                    .bind(released_idnumber(*id))
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                one_row(done.rows_affected(), "hierarchy row", *id)?;
            }
            HierarchyChange::CreateFramework {
                remote_id,
                values,
                sortorder,
            } => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO hierarchy_frameworks \
                     (kind, idnumber, fullname, shortname, description, visible, sortorder, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                )
                .bind(kind.column())
                .bind(&values.idnumber)
                .bind(&values.fullname)
                .bind(&values.shortname)
                .bind(&values.description)
                .bind(i64::from(values.visible))
                .bind(sortorder)
                .bind(now)
                .fetch_one(&mut **tx)
                .await?;
                created_frameworks.insert(*remote_id, id);
                map_remote(tx, server_idnumber, framework_kind, *remote_id, id, now).await?;
            }
            HierarchyChange::UpdateFramework { id, values } => {
                let done = sqlx::query(
                    "UPDATE hierarchy_frameworks SET idnumber = $1, fullname = $2, shortname = $3, \
                     description = $4, visible = $5, updated_at = $6 WHERE id = $7",
                )
                .bind(&values.idnumber)
                .bind(&values.fullname)
                .bind(&values.shortname)
                .bind(&values.description)
                .bind(i64::from(values.visible))
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                one_row(done.rows_affected(), "framework", *id)?;
            }
            HierarchyChange::CreateItem { remote_id, values } => {
                let framework = resolve(values.framework, &created_frameworks)?;
                let parent = values
                    .parent
                    .map(|p| resolve(p, &created_items))
                    .transpose()?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO hierarchy_items \
                     (kind, framework_id, parent_id, idnumber, fullname, shortname, description, \
                      type_idnumber, visible, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                )
                .bind(kind.column())
                .bind(framework)
                .bind(parent)
                .bind(&values.idnumber)
                .bind(&values.fullname)
                .bind(&values.shortname)
                .bind(&values.description)
                .bind(&values.type_idnumber)
                .bind(i64::from(values.visible))
                .bind(now)
                .fetch_one(&mut **tx)
                .await?;
                created_items.insert(*remote_id, id);
                map_remote(tx, server_idnumber, item_kind, *remote_id, id, now).await?;
            }
            HierarchyChange::UpdateItem { id, values } => {
                let framework = resolve(values.framework, &created_frameworks)?;
                let parent = values
                    .parent
                    .map(|p| resolve(p, &created_items))
                    .transpose()?;
                let done = sqlx::query(
                    "UPDATE hierarchy_items SET framework_id = $1, parent_id = $2, idnumber = $3, \
                     fullname = $4, shortname = $5, description = $6, type_idnumber = $7, \
                     visible = $8, updated_at = $9 WHERE id = $10",
                )
                .bind(framework)
                .bind(parent)
                .bind(&values.idnumber)
                .bind(&values.fullname)
                .bind(&values.shortname)
                .bind(&values.description)
                .bind(&values.type_idnumber)
                .bind(i64::from(values.visible))
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                one_row(done.rows_affected(), "item", *id)?;
            }
            HierarchyChange::DeleteItem { id } => {
                // Deepest first, so each is still there; jobs naming it keep no position.
                let done = sqlx::query("DELETE FROM hierarchy_items WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                one_row(done.rows_affected(), "item", *id)?;
            }
            HierarchyChange::DeleteFramework { id } => {
                let done = sqlx::query("DELETE FROM hierarchy_frameworks WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                one_row(done.rows_affected(), "framework", *id)?;
            }
        }
    }
    // Mappings of either kind whose row is gone (deleted here, or by an administrator).
    sqlx::query(
        "DELETE FROM connect_remote_ids WHERE kind = $1 AND NOT EXISTS \
         (SELECT 1 FROM hierarchy_frameworks f WHERE f.id = connect_remote_ids.local_id)",
    )
    .bind(framework_kind)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM connect_remote_ids WHERE kind = $1 AND NOT EXISTS \
         (SELECT 1 FROM hierarchy_items i WHERE i.id = connect_remote_ids.local_id)",
    )
    .bind(item_kind)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
