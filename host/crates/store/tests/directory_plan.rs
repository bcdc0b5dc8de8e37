//! Property tests of the directory's pure planner (no database): planning a document against
//! the state that applying it produced yields an empty batch (importing twice changes
//! nothing), the result says what the document says and keeps what it does not name, and
//! bad records are refused by index and key. Covers courses, position and organisation
//! frameworks with their item trees, and job assignments too: trees are written parents
//! first and emptied children first (the tables' cascades never fire).

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    Change, DirectoryAudience, DirectoryCourse, DirectoryFramework, DirectoryItem, DirectoryJob,
    DirectorySnapshot, DirectoryUser, FrameworkKind, ImportAudience, ImportCourse, ImportDocument,
    ImportFramework, ImportItem, ImportJob, ImportUser, plan,
};
use proptest::prelude::*;

const USERNAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const FIELDS: [&str; 2] = ["department", "region"];
const AUDIENCES: [&str; 3] = ["AUD-1", "AUD-2", "AUD-3"];

fn known_fields() -> BTreeSet<String> {
    FIELDS.iter().map(|f| (*f).to_owned()).collect()
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,3}", Just("Sales".to_owned())]
}

fn fields_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..=2)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn people_snapshot() -> impl Strategy<Value = DirectorySnapshot> {
    let users = prop::collection::btree_map(
        prop::sample::select(USERNAMES.to_vec()),
        (
            value(),
            value(),
            any::<bool>(),
            proptest::option::of("h[0-9]"),
            fields_map(),
        ),
        0..=5,
    );
    let audiences = prop::collection::btree_map(
        prop::sample::select(AUDIENCES.to_vec()),
        (
            value(),
            prop::collection::btree_set(prop::sample::select(USERNAMES.to_vec()), 0..=5),
        ),
        0..=3,
    );
    (users, audiences).prop_map(|(users, audiences)| {
        let users: BTreeMap<String, DirectoryUser> = users
            .into_iter()
            .map(|(name, (email, idnumber, suspended, hash, fields))| {
                let user = DirectoryUser {
                    username: name.to_owned(),
                    email: if email.is_empty() {
                        email
                    } else {
                        format!("{email}@x")
                    },
                    idnumber,
                    suspended,
                    password_hash: hash,
                    fields,
                    ..DirectoryUser::default()
                };
                (name.to_owned(), user)
            })
            .collect();
        let audiences = audiences
            .into_iter()
            .map(|(idnumber, (name, members))| {
                let audience = DirectoryAudience {
                    idnumber: idnumber.to_owned(),
                    name,
                    description: String::new(),
                    // Memberships only of users that exist, as the foreign keys ensure.
                    members: members
                        .into_iter()
                        .filter(|m| users.contains_key(*m))
                        .map(str::to_owned)
                        .collect(),
                    component: String::new(),
                };
                (idnumber.to_owned(), audience)
            })
            .collect();
        DirectorySnapshot {
            users,
            audiences,
            connect_links: BTreeMap::new(),
            ..DirectorySnapshot::default()
        }
    })
}

fn import_user(username: &'static str) -> impl Strategy<Value = ImportUser> {
    (
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(any::<bool>()),
        proptest::option::of("h[0-9]"),
        prop::bool::weighted(0.15),
        prop::collection::btree_map(
            prop::sample::select(FIELDS.to_vec()),
            proptest::option::of(value()),
            0..=2,
        ),
    )
        .prop_map(
            move |(email, firstname, suspended, hash, deleted, fields)| ImportUser {
                username: username.to_owned(),
                email: email.map(|e| if e.is_empty() { e } else { format!("{e}@x") }),
                firstname,
                lastname: None,
                idnumber: None,
                password_hash: hash,
                suspended,
                deleted,
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                jobs: None,
            },
        )
}

fn people_document() -> impl Strategy<Value = ImportDocument> {
    let users = prop::sample::subsequence(USERNAMES.to_vec(), 0..=5)
        .prop_flat_map(|names| names.into_iter().map(import_user).collect::<Vec<_>>());
    let audiences = prop::sample::subsequence(AUDIENCES.to_vec(), 0..=3).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|id| {
                (
                    proptest::option::of(value()),
                    proptest::option::of(value()),
                    proptest::option::of(prop::sample::subsequence(USERNAMES.to_vec(), 0..=5)),
                )
                    .prop_map(move |(name, description, members)| ImportAudience {
                        idnumber: id.to_owned(),
                        name,
                        description,
                        members: members.map(|m| m.into_iter().map(str::to_owned).collect()),
                    })
            })
            .collect::<Vec<_>>()
    });
    (users, audiences).prop_map(|(users, audiences)| ImportDocument {
        users,
        audiences,
        ..ImportDocument::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn importing_twice_changes_nothing(current in snapshot(), document in document()) {
        let Ok(batch) = plan(&current, &document, &known_fields()) else {
            // A member the document does not let exist: refused, tested below.
            return Ok(());
        };
        let mut after = current.clone();
        after.apply(&batch);
        let again = plan(&after, &document, &known_fields()).expect("planned once, plans again");
        prop_assert!(again.is_empty(), "second plan: {:?}", again.changes);
    }

    #[test]
    fn the_result_says_what_the_document_says(current in snapshot(), document in document()) {
        let Ok(batch) = plan(&current, &document, &known_fields()) else {
            return Ok(());
        };
        let mut after = current.clone();
        after.apply(&batch);
        for user in &document.users {
            let stored = after.users.get(&user.username);
            if user.deleted {
                prop_assert!(stored.is_none());
                continue;
            }
            let stored = stored.expect("named users exist");
            if let Some(email) = &user.email { prop_assert_eq!(&stored.email, email); }
            if let Some(suspended) = user.suspended { prop_assert_eq!(stored.suspended, suspended); }
            for (name, value) in &user.fields {
                prop_assert_eq!(stored.fields.get(name), value.as_ref());
            }
            // What the document does not name is kept.
            if user.idnumber.is_none() && let Some(before) = current.users.get(&user.username) {
                prop_assert_eq!(&stored.idnumber, &before.idnumber);
            }
        }
        for name in USERNAMES {
            if !document.users.iter().any(|u| u.username == name) {
                prop_assert_eq!(after.users.get(name), current.users.get(name));
            }
        }
        for audience in &document.audiences {
            let stored = after.audiences.get(&audience.idnumber).expect("named audiences exist");
            if let Some(members) = &audience.members {
                let wanted: BTreeSet<String> = members.iter().cloned().collect();
                prop_assert_eq!(&stored.members, &wanted);
            }
        }
    }
}

fn user(name: &str) -> ImportUser {
    ImportUser {
        username: name.to_owned(),
        ..ImportUser::default()
    }
}

const COURSES: [&str; 2] = ["C1", "C2"];
const FRAMEWORKS: [&str; 2] = ["F1", "F2"];
const ITEMS: [&str; 4] = ["I1", "I2", "I3", "I4"];
const JOBS: [&str; 2] = ["J1", "J2"];
const KINDS: [FrameworkKind; 2] = [FrameworkKind::Position, FrameworkKind::Organisation];

/// Stored frameworks: each item in one of them, its parent (if any) an earlier item of the same
/// framework, so the tree has no cycles.
fn stored_frameworks() -> impl Strategy<Value = BTreeMap<String, DirectoryFramework>> {
    (
        prop::collection::btree_set(prop::sample::select(FRAMEWORKS.to_vec()), 0..=2),
        prop::collection::vec(
            (0..2usize, proptest::option::of(0..4usize), value(), value()),
            4,
        ),
    )
        .prop_map(|(frameworks, items)| {
            let mut out: BTreeMap<String, DirectoryFramework> = frameworks
                .into_iter()
                .map(|f| {
                    (
                        f.to_owned(),
                        DirectoryFramework {
                            idnumber: f.to_owned(),
                            fullname: String::new(),
                            items: BTreeMap::new(),
                        },
                    )
                })
                .collect();
            let mut placed: Vec<Option<&str>> = Vec::new();
            for (i, (framework, parent, fullname, type_idnumber)) in items.into_iter().enumerate() {
                let Some(stored) = out.get_mut(FRAMEWORKS[framework]) else {
                    placed.push(None);
                    continue;
                };
                let parent = parent
                    .filter(|p| *p < i && placed[*p] == Some(FRAMEWORKS[framework]))
                    .map(|p| ITEMS[p].to_owned());
                stored.items.insert(
                    ITEMS[i].to_owned(),
                    DirectoryItem {
                        idnumber: ITEMS[i].to_owned(),
                        fullname,
                        parent,
                        type_idnumber,
                    },
                );
                placed.push(Some(FRAMEWORKS[framework]));
            }
            out
        })
}

fn item_choice() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop::sample::select(ITEMS.to_vec()).prop_map(str::to_owned))
}

fn snapshot() -> impl Strategy<Value = DirectorySnapshot> {
    (
        people_snapshot(),
        prop::collection::btree_map(
            prop::sample::select(COURSES.to_vec()),
            (
                value(),
                prop::collection::btree_set(prop::sample::select(USERNAMES.to_vec()), 0..=5),
            ),
            0..=2,
        ),
        stored_frameworks(),
        stored_frameworks(),
        prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(JOBS.to_vec()),
                (value(), item_choice(), item_choice(), 0..3i64),
                0..=2,
            ),
            5,
        ),
    )
        .prop_map(|(mut snapshot, courses, positions, organisations, jobs)| {
            snapshot.courses = courses
                .into_iter()
                .map(|(shortname, (fullname, enrolled))| {
                    let course = DirectoryCourse {
                        shortname: shortname.to_owned(),
                        fullname,
                        summary: String::new(),
                        enrolled: enrolled
                            .into_iter()
                            .filter(|u| snapshot.users.contains_key(*u))
                            .map(str::to_owned)
                            .collect(),
                    };
                    (shortname.to_owned(), course)
                })
                .collect();
            snapshot.position_frameworks = positions;
            snapshot.organisation_frameworks = organisations;
            let exists = |kind: FrameworkKind, item: &Option<String>| {
                item.clone().filter(|i| {
                    snapshot
                        .frameworks(kind)
                        .values()
                        .any(|f| f.items.contains_key(i))
                })
            };
            let mut stored_jobs = BTreeMap::new();
            for (username, jobs) in USERNAMES.iter().zip(jobs) {
                if !snapshot.users.contains_key(*username) || jobs.is_empty() {
                    continue;
                }
                let jobs: BTreeMap<String, DirectoryJob> = jobs
                    .into_iter()
                    .map(
                        |(idnumber, (fullname, position, organisation, startdate))| {
                            let job = DirectoryJob {
                                idnumber: idnumber.to_owned(),
                                fullname,
                                shortname: String::new(),
                                position: exists(FrameworkKind::Position, &position),
                                organisation: exists(FrameworkKind::Organisation, &organisation),
                                startdate,
                                enddate: 0,
                                sortorder: startdate,
                            };
                            (idnumber.to_owned(), job)
                        },
                    )
                    .collect();
                stored_jobs.insert((*username).to_owned(), jobs);
            }
            snapshot.jobs = stored_jobs;
            snapshot
        })
}

fn import_frameworks() -> impl Strategy<Value = Vec<ImportFramework>> {
    prop::sample::subsequence(FRAMEWORKS.to_vec(), 0..=2).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|id| {
                let items =
                    prop::sample::subsequence(ITEMS.to_vec(), 0..=4).prop_flat_map(|items| {
                        let len = items.len();
                        (
                            Just(items),
                            prop::collection::vec(
                                (
                                    prop::option::weighted(0.4, 0..4usize),
                                    proptest::option::of(value()),
                                    proptest::option::of(value()),
                                ),
                                len,
                            ),
                        )
                    });
                (proptest::option::of(value()), proptest::option::of(items)).prop_map(
                    move |(fullname, items)| ImportFramework {
                        idnumber: id.to_owned(),
                        fullname,
                        items: items.map(|(ids, rest)| {
                            ids.iter()
                                .zip(rest)
                                .map(|(item, (parent, fullname, type_idnumber))| ImportItem {
                                    idnumber: (*item).to_owned(),
                                    fullname,
                                    // A parent among the listed items (or not: refused).
                                    parent: parent.map(|p| ids.get(p).unwrap_or(&"I9").to_string()),
                                    type_idnumber,
                                })
                                .collect()
                        }),
                    },
                )
            })
            .collect::<Vec<_>>()
    })
}

fn import_jobs() -> impl Strategy<Value = Option<Vec<ImportJob>>> {
    let item = || {
        proptest::option::of(prop_oneof![
            Just(String::new()),
            prop::sample::select(ITEMS.to_vec()).prop_map(str::to_owned)
        ])
    };
    proptest::option::of(
        prop::sample::subsequence(JOBS.to_vec(), 0..=2).prop_flat_map(move |ids| {
            ids.into_iter()
                .map(|id| {
                    (
                        proptest::option::of(value()),
                        item(),
                        item(),
                        proptest::option::of(0..3i64),
                    )
                        .prop_map(
                            move |(fullname, position, organisation, startdate)| ImportJob {
                                idnumber: id.to_owned(),
                                fullname,
                                shortname: None,
                                position,
                                organisation,
                                startdate,
                                enddate: None,
                            },
                        )
                })
                .collect::<Vec<_>>()
        }),
    )
}

fn document() -> impl Strategy<Value = ImportDocument> {
    let courses = prop::sample::subsequence(COURSES.to_vec(), 0..=2).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|id| {
                (
                    proptest::option::of(value()),
                    proptest::option::of(prop::sample::subsequence(USERNAMES.to_vec(), 0..=5)),
                )
                    .prop_map(move |(fullname, enrolled)| ImportCourse {
                        shortname: id.to_owned(),
                        fullname,
                        summary: None,
                        enrolled: enrolled.map(|m| m.into_iter().map(str::to_owned).collect()),
                    })
            })
            .collect::<Vec<_>>()
    });
    (
        people_document(),
        courses,
        import_frameworks(),
        import_frameworks(),
        prop::collection::vec(import_jobs(), 5),
    )
        .prop_map(|(mut document, courses, positions, organisations, jobs)| {
            document.courses = courses;
            document.position_frameworks = positions;
            document.organisation_frameworks = organisations;
            for (user, jobs) in document.users.iter_mut().zip(jobs) {
                user.jobs = jobs;
            }
            document
        })
}

/// Applies a batch change by change, checking that no item is created before its parent and
/// none deleted while it still has children (so the tables' cascades never fire).
fn apply_in_order(state: &mut DirectorySnapshot, changes: &[Change]) -> Result<(), TestCaseError> {
    for change in changes {
        match change {
            Change::CreateItem {
                kind,
                framework,
                item,
            } => {
                let framework = &state.frameworks(*kind)[framework];
                if let Some(parent) = &item.parent {
                    prop_assert!(
                        framework.items.contains_key(parent),
                        "{change:?} before its parent"
                    );
                }
            }
            Change::DeleteItem { kind, idnumber } => {
                for framework in state.frameworks(*kind).values() {
                    prop_assert!(
                        !framework
                            .items
                            .values()
                            .any(|i| i.parent.as_ref() == Some(idnumber)),
                        "{change:?} while it has children"
                    );
                }
            }
            _ => {}
        }
        state.apply(&gatehouse_store::Batch {
            changes: vec![change.clone()],
        });
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trees_are_written_parents_first_and_emptied_children_first(
        current in snapshot(),
        document in document(),
    ) {
        // Audience memberships are covered above; without them more documents plan.
        let mut document = document;
        document.audiences.clear();
        let Ok(batch) = plan(&current, &document, &known_fields()) else {
            return Ok(());
        };
        let mut stepwise = current.clone();
        apply_in_order(&mut stepwise, &batch.changes)?;
        let mut at_once = current.clone();
        at_once.apply(&batch);
        prop_assert_eq!(stepwise, at_once);
    }

    #[test]
    fn courses_frameworks_and_jobs_say_what_the_document_says(
        current in snapshot(),
        document in document(),
    ) {
        // Audience memberships are covered above; without them more documents plan.
        let mut document = document;
        document.audiences.clear();
        let Ok(batch) = plan(&current, &document, &known_fields()) else {
            return Ok(());
        };
        let mut after = current.clone();
        after.apply(&batch);
        for course in &document.courses {
            let stored = &after.courses[&course.shortname];
            if let Some(enrolled) = &course.enrolled {
                let wanted: BTreeSet<String> = enrolled.iter().cloned().collect();
                prop_assert_eq!(&stored.enrolled, &wanted);
            }
            if let Some(fullname) = &course.fullname {
                prop_assert_eq!(&stored.fullname, fullname);
            }
        }
        for kind in KINDS {
            for framework in document.frameworks(kind) {
                let stored = &after.frameworks(kind)[&framework.idnumber];
                let Some(items) = &framework.items else { continue };
                let named: BTreeSet<&String> = items.iter().map(|i| &i.idnumber).collect();
                let kept: BTreeSet<&String> = stored.items.keys().collect();
                prop_assert_eq!(named, kept);
                for item in items {
                    prop_assert_eq!(&stored.items[&item.idnumber].parent, &item.parent);
                }
            }
            // Frameworks the document does not name are kept as they were.
            for (idnumber, before) in current.frameworks(kind) {
                if !document.frameworks(kind).iter().any(|f| &f.idnumber == idnumber) {
                    prop_assert_eq!(after.frameworks(kind).get(idnumber), Some(before));
                }
            }
        }
        for user in &document.users {
            let (Some(jobs), false) = (&user.jobs, user.deleted) else { continue };
            let stored: BTreeSet<&String> = after
                .jobs
                .get(&user.username)
                .map(|j| j.keys().collect())
                .unwrap_or_default();
            let named: BTreeSet<&String> = jobs.iter().map(|j| &j.idnumber).collect();
            prop_assert_eq!(stored, named);
            for (place, job) in (1..).zip(jobs) {
                let stored = &after.jobs[&user.username][&job.idnumber];
                // The file's order is kept: the first job is the primary one.
                prop_assert_eq!(stored.sortorder, place);
                if let Some(position) = &job.position {
                    prop_assert_eq!(stored.position.as_deref().unwrap_or(""), position.as_str());
                }
            }
        }
    }
}

#[test]
fn bad_records_are_named_by_index_and_key() {
    let current = DirectorySnapshot::default();
    let refuse = |document: ImportDocument| {
        plan(&current, &document, &known_fields())
            .expect_err("refused")
            .to_string()
    };
    let mut spaced = user("x");
    spaced.email = Some(" a@x".to_owned());
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a"), user("b"), user("c"), spaced],
            audiences: vec![],
            ..ImportDocument::default()
        }),
        "users[3].email: must not begin or end with white space"
    );
    let mut not_email = user("x");
    not_email.email = Some("nobody".to_owned());
    assert_eq!(
        refuse(ImportDocument {
            users: vec![not_email],
            audiences: vec![],
            ..ImportDocument::default()
        }),
        "users[0].email: \"nobody\" is not an email address"
    );
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a"), user("a")],
            audiences: vec![],
            ..ImportDocument::default()
        }),
        "users[1].username: \"a\" is already named by users[0]"
    );
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("")],
            audiences: vec![],
            ..ImportDocument::default()
        }),
        "users[0].username: must not be empty"
    );
    let mut unknown_field = user("a");
    unknown_field
        .fields
        .insert("shoe".to_owned(), Some("42".to_owned()));
    assert_eq!(
        refuse(ImportDocument {
            users: vec![unknown_field],
            audiences: vec![],
            ..ImportDocument::default()
        }),
        "users[0].fields.shoe: the platform has no [[field]] named \"shoe\""
    );
    let mut core_as_field = user("a");
    core_as_field
        .fields
        .insert("email".to_owned(), Some("a@x".to_owned()));
    assert_eq!(
        refuse(ImportDocument {
            users: vec![core_as_field],
            audiences: vec![],
            ..ImportDocument::default()
        }),
        "users[0].fields.email: \"email\" is a core field, not a custom profile field"
    );
    let mut gone = user("b");
    gone.deleted = true;
    let audience = ImportAudience {
        idnumber: "AUD-1".to_owned(),
        members: Some(vec!["a".to_owned(), "b".to_owned()]),
        ..ImportAudience::default()
    };
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a"), gone],
            audiences: vec![audience],
            ..ImportDocument::default()
        }),
        "audiences[0].members[1]: there is no user \"b\" (or the file deletes it)"
    );

    // Courses, frameworks and jobs.
    let course = |enrolled: &[&str]| ImportCourse {
        shortname: "C1".to_owned(),
        enrolled: Some(enrolled.iter().map(|u| (*u).to_owned()).collect()),
        ..ImportCourse::default()
    };
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a")],
            courses: vec![course(&["a"]), course(&["zed"])],
            ..ImportDocument::default()
        }),
        "courses[1].shortname: \"C1\" is already named by courses[0]"
    );
    let mut other = course(&["zed"]);
    other.shortname = "C2".to_owned();
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a")],
            courses: vec![course(&["a"]), other],
            ..ImportDocument::default()
        }),
        "courses[1].enrolled[0]: there is no user \"zed\" (or the file deletes it)"
    );
    let item = |idnumber: &str, parent: Option<&str>| ImportItem {
        idnumber: idnumber.to_owned(),
        parent: parent.map(str::to_owned),
        ..ImportItem::default()
    };
    let tree = |items: Vec<ImportItem>| ImportDocument {
        position_frameworks: vec![ImportFramework {
            idnumber: "PF".to_owned(),
            fullname: None,
            items: Some(items),
        }],
        ..ImportDocument::default()
    };
    assert_eq!(
        refuse(tree(vec![item("P1", None), item("P2", Some("P9"))])),
        "position_frameworks[0].items[1].parent: \"P9\" is not an item of this framework's list (the list is the framework's whole tree)"
    );
    assert_eq!(
        refuse(tree(vec![
            item("P0", None),
            item("P1", Some("P2")),
            item("P2", Some("P1"))
        ])),
        "position_frameworks[0].items[1].parent: makes a cycle: P1 → P2 → P1"
    );
    // Named at the cycle, not at an item that leads into it.
    assert_eq!(
        refuse(tree(vec![
            item("P0", Some("P3")),
            item("P1", None),
            item("P2", Some("P3")),
            item("P3", Some("P2"))
        ])),
        "position_frameworks[0].items[2].parent: makes a cycle: P2 → P3 → P2"
    );
    assert_eq!(
        refuse(tree(vec![item("P0", Some("P1")), item("P1", Some("P1"))])),
        "position_frameworks[0].items[1].parent: makes a cycle: P1 → P1"
    );
    assert_eq!(
        refuse(tree(vec![item("P1", None), item("P1", None)])),
        "position_frameworks[0].items[1].idnumber: \"P1\" is already named by position_frameworks[0].items[0]"
    );
    let mut stored = DirectorySnapshot::default();
    stored.position_frameworks.insert(
        "PF-OTHER".to_owned(),
        DirectoryFramework {
            idnumber: "PF-OTHER".to_owned(),
            fullname: String::new(),
            items: [(
                "P1".to_owned(),
                DirectoryItem {
                    idnumber: "P1".to_owned(),
                    ..DirectoryItem::default()
                },
            )]
            .into(),
        },
    );
    assert_eq!(
        plan(&stored, &tree(vec![item("P1", None)]), &known_fields())
            .expect_err("refused")
            .to_string(),
        "position_frameworks[0].items[0].idnumber: \"P1\" is an item of framework \"PF-OTHER\"; items do not move between frameworks"
    );
    let mut employed = user("a");
    employed.jobs = Some(vec![ImportJob {
        idnumber: "J1".to_owned(),
        position: Some("P1".to_owned()),
        organisation: Some("P1".to_owned()),
        ..ImportJob::default()
    }]);
    let mut document = tree(vec![item("P1", None)]);
    document.users = vec![employed];
    // P1 is a position, not an organisation.
    assert_eq!(
        refuse(document),
        "users[0].jobs[0].organisation: there is no organisation \"P1\" (or the file removes it)"
    );
}
