//! The Connect position and organisation sync (`plan_hierarchy_sync`,
//! `Store::sync_hierarchy`): properties of the pure planner (planning the result again
//! plans nothing; every server row taken is there with its values, parents and framework;
//! a synced framework holds only the server's items; a conflict plans nothing) and the
//! store on both backends (the same result as the model, a moved and a removed item, a
//! local item of a synced framework removed, a job losing its deleted position, a conflict
//! writing nothing).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    FrameworkKind, HierarchyState, ServerFramework, ServerItem, plan_hierarchy_sync,
};
use proptest::prelude::*;
use support::TestDb;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const NOW: i64 = 1_700_000_000;

fn framework(remote_id: i64, idnumber: &str) -> ServerFramework {
    ServerFramework {
        remote_id,
        idnumber: idnumber.to_owned(),
        fullname: format!("Framework {idnumber}"),
        shortname: idnumber.to_lowercase(),
        description: String::new(),
        visible: true,
    }
}

fn item(remote_id: i64, framework: i64, parent: Option<i64>, idnumber: &str) -> ServerItem {
    ServerItem {
        remote_id,
        framework,
        parent,
        idnumber: idnumber.to_owned(),
        fullname: format!("Item {idnumber}"),
        shortname: idnumber.to_lowercase(),
        description: String::new(),
        type_idnumber: String::new(),
        visible: true,
    }
}

/// A server's hierarchy: up to 3 frameworks and 8 items, parents usually sent first (an
/// item may name a later or missing parent, or a framework not sent), idnumbers from a
/// small set so that repeats and empty ones happen.
fn server_rows() -> impl Strategy<Value = (Vec<ServerFramework>, Vec<ServerItem>)> {
    let frameworks = prop::collection::vec((1..=4i64, "F[1-3]?"), 0..=3);
    let items = prop::collection::vec(
        (
            1..=9i64,
            1..=4i64,
            prop::option::of(1..=9i64),
            "I[1-6]?",
            "[ab]",
        ),
        0..=8,
    );
    (frameworks, items).prop_map(|(frameworks, items)| {
        let frameworks = frameworks
            .into_iter()
            .map(|(id, idnumber)| framework(id, &idnumber))
            .collect();
        let items = items
            .into_iter()
            .map(|(id, fw, parent, idnumber, name)| {
                let mut it = item(id, fw, parent, &idnumber);
                it.fullname = name.clone();
                it.type_idnumber = name;
                it
            })
            .collect();
        (frameworks, items)
    })
}

/// Local rows an administrator made, that no server maps: frameworks with items.
fn local_rows() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    prop::collection::vec(
        (
            "F[1-3]|L[1-2]",
            prop::collection::vec("I[1-6]|M[1-3]", 0..=3),
        ),
        0..=2,
    )
}

fn with_locals(mut state: HierarchyState, locals: &[(String, Vec<String>)]) -> HierarchyState {
    let mut next = 1000;
    let mut frameworks_seen = BTreeSet::new();
    let mut items_seen: BTreeSet<String> =
        state.items.values().map(|i| i.idnumber.clone()).collect();
    frameworks_seen.extend(state.frameworks.values().map(|f| f.idnumber.clone()));
    for (fw, items) in locals {
        if !frameworks_seen.insert(fw.clone()) {
            continue;
        }
        next += 1;
        let fw_id = next;
        state.frameworks.insert(
            fw_id,
            gatehouse_store::LocalFramework {
                id: fw_id,
                idnumber: fw.clone(),
                fullname: fw.clone(),
                shortname: String::new(),
                description: String::new(),
                visible: true,
                sortorder: fw_id,
            },
        );
        for it in items {
            if !items_seen.insert(it.clone()) {
                continue;
            }
            next += 1;
            state.items.insert(
                next,
                gatehouse_store::LocalItem {
                    id: next,
                    framework_id: fw_id,
                    parent_id: None,
                    idnumber: it.clone(),
                    fullname: it.clone(),
                    shortname: String::new(),
                    description: String::new(),
                    type_idnumber: String::new(),
                    visible: true,
                },
            );
        }
    }
    state
}

/// The tree by idnumbers (ids differ between the model and a database): each framework's
/// idnumber with its items (idnumber, parent's idnumber, fullname, type).
type Shape = BTreeMap<String, BTreeSet<(String, Option<String>, String, String)>>;

fn shape(state: &HierarchyState) -> Shape {
    let mut out: Shape = state
        .frameworks
        .values()
        .map(|f| (f.idnumber.clone(), BTreeSet::new()))
        .collect();
    for item in state.items.values() {
        let framework = &state.frameworks[&item.framework_id].idnumber;
        let parent = item.parent_id.map(|p| state.items[&p].idnumber.clone());
        out.get_mut(framework).expect("framework").insert((
            item.idnumber.clone(),
            parent,
            item.fullname.clone(),
            item.type_idnumber.clone(),
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn syncing_the_result_again_plans_nothing_and_the_result_is_the_servers(
        first in server_rows(),
        second in server_rows(),
        locals in local_rows(),
    ) {
        // A first sync from an empty directory, then local rows, then a second sync.
        let mut state = HierarchyState::default();
        let plan = plan_hierarchy_sync(&state, &first.0, &first.1).expect("nothing local to collide with");
        state.apply(&plan);
        let mut state = with_locals(state, &locals);
        let Ok(plan) = plan_hierarchy_sync(&state, &second.0, &second.1) else {
            // A conflict: a local row outside the synced ones holds a server idnumber.
            return Ok(());
        };
        state.apply(&plan);
        let again = plan_hierarchy_sync(&state, &second.0, &second.1).expect("no conflict the second time");
        prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
        prop_assert_eq!(again.skipped, plan.skipped);

        // Every server row taken is mapped, with its values; parents and frameworks follow
        // the server's.
        let mut seen = BTreeSet::new();
        for fw in second.0.iter().filter(|f| seen.insert(f.remote_id)) {
            if let Some(local) = state.framework_map.get(&fw.remote_id) {
                prop_assert_eq!(&state.frameworks[local].idnumber, &fw.idnumber);
            }
        }
        let mut seen = BTreeSet::new();
        for it in second.1.iter().filter(|i| seen.insert(i.remote_id)) {
            if let Some(local) = state.item_map.get(&it.remote_id) {
                let row = &state.items[local];
                prop_assert_eq!(&row.idnumber, &it.idnumber);
                prop_assert_eq!(&row.fullname, &it.fullname);
                prop_assert_eq!(Some(row.framework_id), state.framework_map.get(&it.framework).copied());
                prop_assert_eq!(row.parent_id, it.parent.and_then(|p| state.item_map.get(&p).copied()));
            }
        }
        // A synced framework holds the server's items only; no mapping points at nothing.
        let synced: BTreeSet<i64> = state.framework_map.values().copied().collect();
        let mapped: BTreeSet<i64> = state.item_map.values().copied().collect();
        for row in state.items.values() {
            if synced.contains(&row.framework_id) {
                prop_assert!(mapped.contains(&row.id), "local item {} left in a synced framework", row.idnumber);
            }
        }
        // Idnumbers stay unique per kind.
        let idnumbers: BTreeSet<&str> = state.items.values().map(|i| i.idnumber.as_str()).collect();
        prop_assert_eq!(idnumbers.len(), state.items.len());
    }
}

#[test]
fn an_administrators_framework_with_a_server_idnumber_is_a_conflict() {
    let state = with_locals(HierarchyState::default(), &[("PF".to_owned(), vec![])]);
    let conflict = plan_hierarchy_sync(&state, &[framework(1, "PF")], &[]).expect_err("refused");
    assert!(conflict.to_string().contains("`PF`"), "{conflict}");
}

#[test]
fn items_out_of_order_or_without_an_idnumber_are_skipped_with_their_children() {
    let frameworks = [framework(1, "PF")];
    let items = [
        item(2, 1, Some(1), "CHILD-FIRST"),
        item(1, 1, None, "TOP"),
        item(3, 1, None, ""),
        item(4, 1, Some(3), "UNDER-EMPTY"),
        item(5, 2, None, "NO-FRAMEWORK"),
        item(6, 1, None, "TOP"),
    ];
    let plan = plan_hierarchy_sync(&HierarchyState::default(), &frameworks, &items).expect("plans");
    assert_eq!(plan.counts().items_created, 1, "{:?}", plan.changes);
    assert_eq!(plan.skipped.len(), 5, "{:?}", plan.skipped);
}

// ---- The store ------------------------------------------------------------------------------

async fn sync(
    db: &TestDb,
    kind: FrameworkKind,
    frameworks: &[ServerFramework],
    items: &[ServerItem],
) -> Result<gatehouse_store::HierarchyPlan, gatehouse_store::StoreError> {
    db.store
        .sync_hierarchy(SERVER, kind, frameworks, items, NOW)
        .await
}

async fn state(db: &TestDb, kind: FrameworkKind) -> HierarchyState {
    db.store.hierarchy_state(SERVER, kind).await.expect("state")
}

async fn the_store_does_what_the_model_does(db: &TestDb) {
    let runs: [(Vec<ServerFramework>, Vec<ServerItem>); 3] = [
        (
            vec![framework(1, "PF-1"), framework(2, "PF-2")],
            vec![
                item(10, 1, None, "A"),
                item(11, 1, Some(10), "B"),
                item(12, 1, Some(11), "C"),
                item(20, 2, None, "D"),
            ],
        ),
        // C moves under A; B gives its idnumber to D and takes "E"; PF-2 is gone.
        (
            vec![framework(1, "PF-1")],
            vec![
                item(10, 1, None, "A"),
                item(11, 1, Some(10), "E"),
                item(12, 1, Some(10), "C"),
                item(20, 1, None, "B"),
            ],
        ),
        (vec![framework(1, "PF-1")], vec![item(10, 1, None, "A")]),
    ];
    let mut model = HierarchyState::default();
    for (frameworks, items) in &runs {
        let plan = sync(db, FrameworkKind::Position, frameworks, items)
            .await
            .expect("syncs");
        let model_plan = plan_hierarchy_sync(&model, frameworks, items).expect("plans");
        assert_eq!(model_plan.counts(), plan.counts());
        model.apply(&model_plan);
        let stored = state(db, FrameworkKind::Position).await;
        assert_eq!(shape(&stored), shape(&model));
        let again = sync(db, FrameworkKind::Position, frameworks, items)
            .await
            .expect("syncs");
        assert!(again.is_empty(), "{:?}", again.changes);
    }
    // Organisations are another kind: untouched.
    assert_eq!(
        state(db, FrameworkKind::Organisation).await,
        HierarchyState::default()
    );
}

async fn a_moved_item_moves_and_a_removed_one_goes_with_local_items_of_synced_frameworks(
    db: &TestDb,
) {
    let frameworks = [framework(1, "OF-1")];
    let mut items = vec![
        item(10, 1, None, "HQ"),
        item(11, 1, Some(10), "SALES"),
        item(12, 1, Some(11), "EMEA"),
        item(13, 1, Some(10), "OPS"),
    ];
    items[2].type_idnumber = "REGION".to_owned();
    let kind = FrameworkKind::Organisation;
    let first = sync(db, kind, &frameworks, &items).await.expect("syncs");
    assert_eq!(first.counts().items_created, 4);
    let stored = state(db, kind).await;
    let emea = stored
        .items
        .values()
        .find(|i| i.idnumber == "EMEA")
        .expect("EMEA");
    assert_eq!(emea.type_idnumber, "REGION");

    // An administrator adds an item to the synced framework; the server moves EMEA under
    // OPS and removes SALES.
    let framework_id = *stored.framework_map.get(&1).expect("mapped");
    db.store
        .apply_batch(
            &gatehouse_store::Batch {
                changes: vec![gatehouse_store::Change::CreateItem {
                    kind,
                    framework: "OF-1".to_owned(),
                    item: gatehouse_store::DirectoryItem {
                        idnumber: "MINE".to_owned(),
                        fullname: "Mine".to_owned(),
                        parent: None,
                        type_idnumber: String::new(),
                    },
                }],
            },
            gatehouse_store::WrittenBy::ADMIN_IMPORT,
            NOW,
        )
        .await
        .expect("local item");
    let moved = vec![
        item(10, 1, None, "HQ"),
        item(13, 1, Some(10), "OPS"),
        ServerItem {
            type_idnumber: "REGION".to_owned(),
            ..item(12, 1, Some(13), "EMEA")
        },
    ];
    let second = sync(db, kind, &frameworks, &moved).await.expect("syncs");
    let counts = second.counts();
    assert_eq!(
        (counts.items_updated, counts.items_deleted),
        (1, 2),
        "{counts}"
    );
    let stored = state(db, kind).await;
    let by_idnumber: BTreeMap<&str, _> = stored
        .items
        .values()
        .map(|i| (i.idnumber.as_str(), i))
        .collect();
    assert_eq!(
        by_idnumber.keys().copied().collect::<Vec<_>>(),
        ["EMEA", "HQ", "OPS"]
    );
    assert_eq!(by_idnumber["EMEA"].parent_id, Some(by_idnumber["OPS"].id));
    assert!(
        stored
            .items
            .values()
            .all(|i| i.framework_id == framework_id)
    );
    assert_eq!(
        stored.item_map.len(),
        3,
        "the removed item's mapping went with it"
    );
}

async fn a_conflict_writes_nothing(db: &TestDb) {
    let kind = FrameworkKind::Position;
    sync(db, kind, &[framework(1, "PF-1")], &[item(10, 1, None, "A")])
        .await
        .expect("syncs");
    // An administrator's framework outside the synced ones holds "TAKEN".
    db.store
        .apply_batch(
            &gatehouse_store::Batch {
                changes: vec![
                    gatehouse_store::Change::CreateFramework {
                        kind,
                        idnumber: "ADMIN".to_owned(),
                        fullname: "Admin's".to_owned(),
                    },
                    gatehouse_store::Change::CreateItem {
                        kind,
                        framework: "ADMIN".to_owned(),
                        item: gatehouse_store::DirectoryItem {
                            idnumber: "TAKEN".to_owned(),
                            fullname: "Taken".to_owned(),
                            parent: None,
                            type_idnumber: String::new(),
                        },
                    },
                ],
            },
            gatehouse_store::WrittenBy::ADMIN_IMPORT,
            NOW,
        )
        .await
        .expect("local rows");
    let before = state(db, kind).await;
    let error = sync(
        db,
        kind,
        &[framework(1, "PF-RENAMED")],
        &[item(10, 1, None, "A2"), item(11, 1, None, "TAKEN")],
    )
    .await
    .expect_err("refused");
    assert!(error.to_string().contains("`TAKEN`"), "{error}");
    assert_eq!(state(db, kind).await, before, "nothing written");
}

async fn an_item_map_translates_server_ids(db: &TestDb) {
    let kind = FrameworkKind::Position;
    sync(db, kind, &[framework(1, "PF-1")], &[item(10, 1, None, "A")])
        .await
        .expect("syncs");
    let map = db.store.connect_item_map(SERVER, kind).await.expect("map");
    let stored = state(db, kind).await;
    assert_eq!(map, stored.item_map);
    assert_eq!(map.len(), 1);
    assert!(
        db.store
            .connect_item_map(SERVER, FrameworkKind::Organisation)
            .await
            .expect("map")
            .is_empty()
    );
}

on_both_backends!(
    the_store_does_what_the_model_does,
    a_moved_item_moves_and_a_removed_one_goes_with_local_items_of_synced_frameworks,
    a_conflict_writes_nothing,
    an_item_map_translates_server_ids,
);
