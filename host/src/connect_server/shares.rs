//! What the Connect server sends a client beyond its users (protocol §3.1, §5.4, §5.5,
//! §8.1): `get_user_collections` (the linked audiences and courses with their members) and
//! `get_positions` / `get_organisations` (the linked frameworks of that kind with their
//! items, parents first, each with its depth, path and sort thread), turned from the
//! store's rows into the wire's. Pure, like [`super::core`]: the handler ([`super::sep`])
//! reads the rows, and which client may call what (API v2 for hierarchies) was decided by
//! the envelope's checks. The wire shapes are `gatehouse-connect-wire`'s.

use std::collections::{BTreeSet, HashMap};

use gatehouse_connect_wire::{
    HierarchyFramework, HierarchyItem, HierarchyKind, SharedCohort, SharedCourse,
    collections::user_collections_reply, hierarchy::hierarchy_reply,
};
use gatehouse_store::{ConnectCollections, ConnectHierarchy, ConnectSharedItem, FrameworkKind};

use super::core::Outcome;

/// `get_user_collections`: the audiences and courses linked to the client, each with its
/// members as the store found them (existing users, within the client's restricting
/// audience), in id order. Gatehouse's courses have no idnumber: it is sent empty.
pub fn get_user_collections(collections: &ConnectCollections) -> Outcome {
    let cohorts: Vec<SharedCohort> = collections
        .audiences
        .iter()
        .map(|audience| SharedCohort {
            id: audience.id,
            name: audience.name.clone(),
            idnumber: audience.idnumber.clone(),
            description: audience.description.clone(),
            timecreated: audience.created_at,
            timemodified: audience.updated_at,
            members: audience.members.clone(),
        })
        .collect();
    let courses: Vec<SharedCourse> = collections
        .courses
        .iter()
        .map(|course| SharedCourse {
            id: course.id,
            fullname: course.fullname.clone(),
            shortname: course.shortname.clone(),
            idnumber: String::new(),
            summary: course.summary.clone(),
            timecreated: course.created_at,
            timemodified: course.updated_at,
            members: course.members.clone(),
        })
        .collect();
    Outcome::reply(user_collections_reply(&cohorts, &courses))
}

/// The directory's framework kind of a hierarchy.
pub fn framework_kind(kind: HierarchyKind) -> FrameworkKind {
    match kind {
        HierarchyKind::Position => FrameworkKind::Position,
        HierarchyKind::Organisation => FrameworkKind::Organisation,
    }
}

/// `get_positions` / `get_organisations` (API v2; a v1 client was refused before this):
/// the frameworks of `kind` linked to the client and their items, parents first.
///
/// §8.1: in the original only `get_positions` can answer `{"frameworks":null,
/// "positions":null}`, when Totara's positions feature is disabled. Gatehouse has no such
/// feature switch, so both always share what is linked (an empty list when nothing is).
pub fn get_hierarchy(kind: HierarchyKind, hierarchy: &ConnectHierarchy) -> Outcome {
    let frameworks: Vec<HierarchyFramework> = hierarchy
        .frameworks
        .iter()
        .map(|framework| HierarchyFramework {
            id: framework.id,
            fullname: framework.fullname.clone(),
            shortname: framework.shortname.clone(),
            idnumber: framework.idnumber.clone(),
            description: framework.description.clone(),
            sortorder: framework.sortorder,
            visible: framework.visible,
            hidecustomfields: false,
            timecreated: framework.created_at,
            timemodified: framework.updated_at,
        })
        .collect();
    let items = parents_first(&hierarchy.items);
    Outcome::reply(hierarchy_reply(kind, Some((&frameworks, &items))))
}

/// Moodle's `int2vancode` (which Totara's hierarchy sort threads are made of): the number
/// in base 36 after one character that says how many digits follow, so that the codes sort
/// as text in the order of the numbers (`1` → `01`, `10` → `0a`, `36` → `110`).
fn vancode(number: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    let mut rest = number;
    loop {
        digits.push(char::from(DIGITS[rest % 36]));
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    // At most 13 digits (u64): the length character is '0' to '<'.
    let length = u8::try_from(digits.len() - 1).map_or('?', |n| char::from(b'0'.saturating_add(n)));
    std::iter::once(length)
        .chain(digits.into_iter().rev())
        .collect()
}

/// The items as the original orders them (`depthlevel, parentid, sortthread`: every parent
/// before its children), each with its `depthlevel` (1 at the top), `path` (`/1/5/9`, the
/// ids from the top down) and `sortthread` (the parent's, then `.` and the item's place
/// among its siblings, which are in id order). An item whose parent is not in the list
/// (which the directory never leaves) is placed at the top of its framework.
///
/// `typeid`: Gatehouse's item types are only idnumbers, with no id of their own; the
/// original's clients go by `typeidnumber` alone, so each type gets its place among the
/// reply's distinct type idnumbers (0 for none), consistent within one reply.
fn parents_first(items: &[ConnectSharedItem]) -> Vec<HierarchyItem> {
    let by_id: HashMap<i64, &ConnectSharedItem> = items.iter().map(|i| (i.id, i)).collect();
    let parent_of = |item: &ConnectSharedItem| item.parent_id.filter(|p| by_id.contains_key(p));
    // Children of each parent (0 for the top of every framework), in id order.
    let mut sorted: Vec<&ConnectSharedItem> = items.iter().collect();
    sorted.sort_by_key(|i| i.id);
    let mut children: HashMap<(i64, i64), Vec<&ConnectSharedItem>> = HashMap::new();
    for item in &sorted {
        children
            .entry((item.framework_id, parent_of(item).unwrap_or(0)))
            .or_default()
            .push(item);
    }
    let types: BTreeSet<&str> = items
        .iter()
        .map(|i| i.type_idnumber.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    let type_id = |idnumber: &str| -> i64 {
        types
            .iter()
            .position(|t| *t == idnumber)
            .and_then(|place| i64::try_from(place + 1).ok())
            .unwrap_or(0)
    };

    // Breadth first from the tops: a level's items all come before the next level's. Items
    // on a cycle (which the directory refuses) are reached from no top and left out.
    let mut out: Vec<HierarchyItem> = Vec::with_capacity(items.len());
    let frameworks: BTreeSet<i64> = items.iter().map(|i| i.framework_id).collect();
    let mut level: Vec<(&ConnectSharedItem, String, String)> = Vec::new();
    for framework in frameworks {
        for (place, item) in children
            .get(&(framework, 0))
            .into_iter()
            .flatten()
            .enumerate()
        {
            level.push((item, format!("/{}", item.id), vancode(place + 1)));
        }
    }
    let mut depth = 1;
    while !level.is_empty() {
        let mut next = Vec::new();
        for (item, path, sortthread) in &level {
            for (place, child) in children
                .get(&(item.framework_id, item.id))
                .into_iter()
                .flatten()
                .enumerate()
            {
                next.push((
                    *child,
                    format!("{path}/{}", child.id),
                    format!("{sortthread}.{}", vancode(place + 1)),
                ));
            }
        }
        // The original's order within a level: by parent id, then sort thread (then by
        // framework, where top items of two frameworks share a thread).
        level.sort_by(|a, b| {
            let key = |(item, _, thread): &(&ConnectSharedItem, String, String)| {
                (
                    parent_of(item).unwrap_or(0),
                    thread.clone(),
                    item.framework_id,
                )
            };
            key(a).cmp(&key(b))
        });
        for (item, path, sortthread) in level {
            out.push(HierarchyItem {
                id: item.id,
                frameworkid: item.framework_id,
                parentid: parent_of(item).unwrap_or(0),
                fullname: item.fullname.clone(),
                shortname: item.shortname.clone(),
                idnumber: item.idnumber.clone(),
                description: item.description.clone(),
                path,
                depthlevel: depth,
                sortthread,
                visible: item.visible,
                typeid: type_id(&item.type_idnumber),
                typeidnumber: Some(item.type_idnumber.clone()).filter(|t| !t.is_empty()),
                custom_fields: Vec::new(),
                timevalidfrom: None,
                timevalidto: None,
                timecreated: item.created_at,
                timemodified: item.updated_at,
            });
        }
        level = next;
        depth += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    //! The replies' shapes from the protocol notes (§3.1: string ids, members as
    //! `[{"id":…}]`, `typeidnumber` and `custom_fields` on items, positions' validity
    //! times) and the parents-first order of §5.5.

    use gatehouse_store::{ConnectSharedAudience, ConnectSharedCourse, ConnectSharedFramework};
    use serde_json::{Value, json};

    use super::*;

    fn json_of(outcome: &Outcome) -> Value {
        assert!(outcome.effects.is_empty());
        serde_json::from_str(&outcome.body).expect("json")
    }

    fn item(
        id: i64,
        framework_id: i64,
        parent_id: Option<i64>,
        type_idnumber: &str,
    ) -> ConnectSharedItem {
        ConnectSharedItem {
            id,
            framework_id,
            parent_id,
            idnumber: format!("I{id}"),
            fullname: format!("Item {id}"),
            shortname: String::new(),
            description: String::new(),
            type_idnumber: type_idnumber.to_owned(),
            visible: true,
            created_at: 100,
            updated_at: 200,
        }
    }

    #[test]
    fn vancodes_sort_as_text_in_the_order_of_their_numbers() {
        assert_eq!(vancode(1), "01");
        assert_eq!(vancode(9), "09");
        assert_eq!(vancode(10), "0a");
        assert_eq!(vancode(35), "0z");
        assert_eq!(vancode(36), "110");
        assert_eq!(vancode(1296), "2100");
        let codes: Vec<String> = (1..2000).map(vancode).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn items_come_parents_first_with_depth_path_and_sort_thread() {
        // Framework 1: 5 > (3 > 9, 4), 2 (a later id at the top); framework 7: 6. Given in
        // an order that puts children before parents.
        let items = [
            item(9, 1, Some(3), ""),
            item(4, 1, Some(5), "T2"),
            item(3, 1, Some(5), "T1"),
            item(2, 1, None, ""),
            item(6, 7, None, "T1"),
            item(5, 1, None, "T2"),
        ];
        let ordered = parents_first(&items);
        let seen: Vec<(i64, i64, i64, &str, &str)> = ordered
            .iter()
            .map(|i| {
                (
                    i.id,
                    i.parentid,
                    i.depthlevel,
                    i.path.as_str(),
                    i.sortthread.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (2, 0, 1, "/2", "01"),
                (6, 0, 1, "/6", "01"),
                (5, 0, 1, "/5", "02"),
                (3, 5, 2, "/5/3", "02.01"),
                (4, 5, 2, "/5/4", "02.02"),
                (9, 3, 3, "/5/3/9", "02.01.01"),
            ]
        );
        // Every parent before its children.
        for (place, item) in ordered.iter().enumerate() {
            if item.parentid != 0 {
                let parent = ordered.iter().position(|p| p.id == item.parentid);
                assert!(parent.is_some_and(|p| p < place), "{item:?}");
            }
        }
        // Types: the idnumber, and a number for it consistent within the reply.
        let by_id = |id: i64| ordered.iter().find(|i| i.id == id).expect("item");
        assert_eq!(by_id(2).typeidnumber, None);
        assert_eq!(by_id(2).typeid, 0);
        assert_eq!(by_id(3).typeidnumber.as_deref(), Some("T1"));
        assert_eq!(by_id(3).typeid, by_id(6).typeid);
        assert_ne!(by_id(3).typeid, by_id(4).typeid);
        assert!(by_id(4).typeid > 0);
    }

    /// Forests of every shape from a fixed pseudo-random sequence (ids in any order relative
    /// to the tree, as moves leave them): each item once, each parent first, depth, path
    /// and sort thread following the parent's, levels in order, siblings' threads in id
    /// order.
    #[test]
    fn any_forest_comes_out_parents_first_with_consistent_depths_paths_and_threads() {
        let mut state: u64 = 0x5eed;
        let mut next = |bound: usize| -> usize {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap_or(0) % bound.max(1)
        };
        for _ in 0..300 {
            let count = 1 + next(40);
            // Distinct ids in a random order: the creation order is not the id order.
            let mut ids: Vec<i64> = (1..=i64::try_from(count).unwrap_or(1) * 3).collect();
            for i in (1..ids.len()).rev() {
                ids.swap(i, next(i + 1));
            }
            let mut items: Vec<ConnectSharedItem> = Vec::new();
            for id in ids.into_iter().take(count) {
                let framework = i64::try_from(1 + next(3)).unwrap_or(1);
                let candidates: Vec<i64> = items
                    .iter()
                    .filter(|i| i.framework_id == framework)
                    .map(|i| i.id)
                    .collect();
                let parent = match next(3) {
                    0 => None,
                    _ if candidates.is_empty() => None,
                    _ => Some(candidates[next(candidates.len())]),
                };
                items.push(item(id, framework, parent, ""));
            }
            let ordered = parents_first(&items);
            assert_eq!(ordered.len(), items.len());
            let place: HashMap<i64, usize> =
                ordered.iter().enumerate().map(|(n, i)| (i.id, n)).collect();
            assert_eq!(place.len(), items.len(), "each item once");
            for (n, out) in ordered.iter().enumerate() {
                if n > 0 {
                    assert!(
                        ordered[n - 1].depthlevel <= out.depthlevel,
                        "levels in order"
                    );
                }
                if out.parentid == 0 {
                    assert_eq!(out.depthlevel, 1);
                    assert_eq!(out.path, format!("/{}", out.id));
                    assert!(!out.sortthread.contains('.'));
                    continue;
                }
                let parent = &ordered[place[&out.parentid]];
                assert!(place[&parent.id] < n, "parent first");
                assert_eq!(parent.frameworkid, out.frameworkid);
                assert_eq!(out.depthlevel, parent.depthlevel + 1);
                assert_eq!(out.path, format!("{}/{}", parent.path, out.id));
                let own = out
                    .sortthread
                    .strip_prefix(&format!("{}.", parent.sortthread))
                    .expect("the parent's thread first");
                assert!(!own.contains('.'));
            }
            // Siblings' threads sort as their ids do.
            for a in &ordered {
                for b in &ordered {
                    if a.frameworkid == b.frameworkid && a.parentid == b.parentid && a.id < b.id {
                        assert!(a.sortthread < b.sortthread, "{a:?} {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_item_whose_parent_is_not_sent_is_placed_at_the_top() {
        let ordered = parents_first(&[item(8, 1, Some(99), "")]);
        assert_eq!(ordered.len(), 1);
        assert_eq!((ordered[0].parentid, ordered[0].depthlevel), (0, 1));
        assert_eq!(ordered[0].path, "/8");
    }

    #[test]
    fn positions_and_organisations_are_written_as_the_original_rows() {
        let hierarchy = ConnectHierarchy {
            frameworks: vec![ConnectSharedFramework {
                id: 1,
                idnumber: "PF-1".into(),
                fullname: "Positions".into(),
                shortname: String::new(),
                description: String::new(),
                visible: true,
                sortorder: 0,
                created_at: 10,
                updated_at: 20,
            }],
            items: vec![item(3, 1, Some(2), ""), item(2, 1, None, "T1")],
        };
        let reply = json_of(&get_hierarchy(HierarchyKind::Position, &hierarchy));
        assert_eq!(reply["status"], "success");
        assert_eq!(reply["data"]["frameworks"][0]["id"], "1");
        assert_eq!(reply["data"]["frameworks"][0]["idnumber"], "PF-1");
        assert_eq!(reply["data"]["frameworks"][0]["visible"], "1");
        let positions = reply["data"]["positions"].as_array().expect("positions");
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[0]["id"], "2");
        assert_eq!(positions[0]["parentid"], "0");
        assert_eq!(positions[0]["depthlevel"], "1");
        assert_eq!(positions[0]["typeidnumber"], "T1");
        assert_eq!(positions[0]["custom_fields"], json!([]));
        assert_eq!(positions[0]["timevalidfrom"], Value::Null);
        assert_eq!(positions[1]["id"], "3");
        assert_eq!(positions[1]["parentid"], "2");
        assert_eq!(positions[1]["path"], "/2/3");
        assert_eq!(positions[1]["typeidnumber"], Value::Null);

        let reply = json_of(&get_hierarchy(HierarchyKind::Organisation, &hierarchy));
        let organisations = reply["data"]["organisations"].as_array().expect("list");
        assert_eq!(organisations.len(), 2);
        assert!(organisations[0].get("timevalidfrom").is_none());
        assert!(reply["data"].get("positions").is_none());

        // Nothing linked: empty lists, never null (which would mean "not shared").
        assert_eq!(
            get_hierarchy(HierarchyKind::Position, &ConnectHierarchy::default()).body,
            r#"{"status":"success","data":{"frameworks":[],"positions":[]}}"#
        );
    }

    #[test]
    fn collections_are_cohorts_and_courses_with_members_as_id_objects() {
        let collections = ConnectCollections {
            audiences: vec![ConnectSharedAudience {
                id: 4,
                idnumber: "AUD-1".into(),
                name: "Sales".into(),
                description: "The sales team".into(),
                created_at: 10,
                updated_at: 20,
                members: vec![2, 7],
            }],
            courses: vec![ConnectSharedCourse {
                id: 9,
                shortname: "C1".into(),
                fullname: "Onboarding".into(),
                summary: "First week".into(),
                created_at: 30,
                updated_at: 40,
                members: Vec::new(),
            }],
        };
        let reply = json_of(&get_user_collections(&collections));
        let cohort = &reply["data"]["cohort"][0];
        assert_eq!(cohort["id"], "4");
        assert_eq!(cohort["idnumber"], "AUD-1");
        assert_eq!(cohort["name"], "Sales");
        assert_eq!(cohort["description"], "The sales team");
        assert_eq!(cohort["members"], json!([{"id": "2"}, {"id": "7"}]));
        let course = &reply["data"]["course"][0];
        assert_eq!(course["id"], "9");
        assert_eq!(course["fullname"], "Onboarding");
        assert_eq!(course["shortname"], "C1");
        assert_eq!(course["summary"], "First week");
        assert_eq!(
            course["category"], "1",
            "the original sends only category > 0"
        );
        assert_eq!(course["members"], json!([]));
        assert_eq!(
            get_user_collections(&ConnectCollections::default()).body,
            r#"{"status":"success","data":{"cohort":[],"course":[]}}"#
        );
    }
}
