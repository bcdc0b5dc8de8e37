//! The directory against real databases: a planned batch applied in one transaction (and
//! nothing written when any change fails), the snapshot read back, deletion cascading to
//! memberships, and an import planned twice being empty the second time; courses, position and
//! organisation trees (an item moved, an item removed) and job assignments, with the planner's
//! model agreeing with the database; "add new courses / audiences" linking what an import
//! creates to the Connect clients that asked. Runs on a fresh
//! SQLite file always, and on PostgreSQL (a schema of its own) when
//! `GATEHOUSE_TEST_DATABASE_URL` is set, like `store.rs`.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    Batch, Change, ConnectClientOptions, ConnectLink, DirectoryItem, DirectorySnapshot,
    DirectoryUser, FrameworkKind, ImportAudience, ImportCourse, ImportDocument, ImportFramework,
    ImportItem, ImportJob, ImportUser, NewConnectClient, Store, StoreError, WrittenBy, plan,
};

mod support;

use support::TestDb;

on_both_backends!(
    a_batch_creates_users_fields_and_audiences,
    a_failing_change_leaves_nothing_written,
    planning_the_same_import_twice_is_empty,
    deleting_a_user_removes_its_memberships,
    connect_links_are_unique_per_server_user,
    an_idps_unlinked_accounts_are_listed,
    courses_hierarchies_and_jobs_are_applied_and_read_back,
    a_failing_hierarchy_change_leaves_nothing_written,
    creating_a_course_or_audience_links_it_to_clients_that_add_new_ones,
);

fn fields() -> BTreeSet<String> {
    ["department".to_owned()].into()
}

fn alice() -> ImportUser {
    ImportUser {
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        firstname: Some("Alice".into()),
        idnumber: Some("E100".into()),
        password_hash: Some("$argon2id$stand-in".into()),
        fields: [("department".to_owned(), Some("Sales".to_owned()))].into(),
        ..ImportUser::default()
    }
}

fn document() -> ImportDocument {
    ImportDocument {
        users: vec![
            alice(),
            ImportUser {
                username: "bob".into(),
                suspended: Some(true),
                ..ImportUser::default()
            },
        ],
        audiences: vec![ImportAudience {
            idnumber: "AUD-1".into(),
            name: Some("Sales".into()),
            description: None,
            members: Some(vec!["alice".into(), "bob".into()]),
        }],
        ..ImportDocument::default()
    }
}

async fn import(store: &Store, document: &ImportDocument, now: i64) -> Batch {
    let current = store.directory_snapshot().await.expect("snapshot");
    let batch = plan(&current, document, &fields()).expect("plan");
    store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, now)
        .await
        .expect("apply");
    batch
}

async fn a_batch_creates_users_fields_and_audiences(db: &TestDb) {
    let store = &db.store;
    let batch = import(store, &document(), 10).await;
    let summary = batch.summary();
    assert_eq!(
        (
            summary.users_created,
            summary.audiences_created,
            summary.members_added
        ),
        (2, 1, 2)
    );

    let snapshot = store.directory_snapshot().await.unwrap();
    let stored = &snapshot.users["alice"];
    assert_eq!(stored.email, "alice@example.com");
    assert_eq!(
        stored.fields.get("department").map(String::as_str),
        Some("Sales")
    );
    assert_eq!(
        stored.provenance.get("email").map(String::as_str),
        Some("@admin")
    );
    assert_eq!(
        stored.provenance.get("department").map(String::as_str),
        Some("@admin")
    );
    assert!(snapshot.users["bob"].suspended);
    let members: Vec<&str> = snapshot.audiences["AUD-1"]
        .members
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(members, ["alice", "bob"]);
    // The rest of the store sees them as users: created local accounts in the root branch.
    let user = store
        .user_by_username("alice")
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(
        (user.branch.as_str(), user.auth_source.as_str()),
        ("root", "local")
    );
    assert_eq!(user.password_hash.as_deref(), Some("$argon2id$stand-in"));
    assert_eq!(user.created_at, 10);
}

async fn a_failing_change_leaves_nothing_written(db: &TestDb) {
    let store = &db.store;
    let batch = Batch {
        changes: vec![
            Change::CreateUser(DirectoryUser {
                username: "carol".into(),
                ..DirectoryUser::default()
            }),
            Change::CreateAudience {
                idnumber: "AUD-9".into(),
                name: String::new(),
                description: String::new(),
            },
            Change::AddMember {
                audience: "AUD-404".into(),
                username: "carol".into(),
            },
        ],
    };
    let error = store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, 5)
        .await
        .expect_err("no such audience");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    let snapshot = store.directory_snapshot().await.unwrap();
    assert!(
        snapshot.users.is_empty() && snapshot.audiences.is_empty(),
        "{snapshot:?}"
    );
}

async fn planning_the_same_import_twice_is_empty(db: &TestDb) {
    let store = &db.store;
    import(store, &document(), 10).await;
    let current = store.directory_snapshot().await.unwrap();
    let again = plan(&current, &document(), &fields()).unwrap();
    assert!(again.is_empty(), "{:?}", again.changes);

    // A changed file changes only what it changes, and unsets a field given as null.
    let mut changed = document();
    changed.users[0].firstname = Some("Alicia".into());
    changed.users[0].fields = BTreeMap::from([("department".to_owned(), None)]);
    changed.audiences[0].members = Some(vec!["alice".into()]);
    let batch = import(store, &changed, 20).await;
    assert_eq!(batch.summary().users_updated, 1);
    assert_eq!(batch.summary().members_removed, 1);
    let after = store.directory_snapshot().await.unwrap();
    assert_eq!(after.users["alice"].firstname, "Alicia");
    assert!(after.users["alice"].fields.is_empty());
    assert!(!after.users["alice"].provenance.contains_key("department"));
    assert_eq!(after.users["alice"].email, "alice@example.com");
    assert_eq!(after.audiences["AUD-1"].members.len(), 1);
    let user = store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(user.updated_at, 20);
}

async fn deleting_a_user_removes_its_memberships(db: &TestDb) {
    let store = &db.store;
    import(store, &document(), 10).await;
    let delete_bob = ImportDocument {
        users: vec![ImportUser {
            username: "bob".into(),
            deleted: true,
            ..ImportUser::default()
        }],
        ..ImportDocument::default()
    };
    let batch = import(store, &delete_bob, 11).await;
    assert_eq!(batch.summary().users_deleted, 1);
    let after = store.directory_snapshot().await.unwrap();
    assert!(!after.users.contains_key("bob"));
    assert_eq!(
        after.audiences["AUD-1"].members.iter().collect::<Vec<_>>(),
        ["alice"]
    );
    // Deleting again: nothing to do.
    let current = store.directory_snapshot().await.unwrap();
    assert!(plan(&current, &delete_bob, &fields()).unwrap().is_empty());
}

fn link(server_user_id: i64) -> ConnectLink {
    ConnectLink {
        idp_id: "hq".into(),
        server_idnumber: "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3".into(),
        server_user_id,
    }
}

async fn connect_links_are_unique_per_server_user(db: &TestDb) {
    let store = &db.store;
    import(store, &document(), 10).await;
    let linked = Batch {
        changes: vec![Change::LinkConnectUser {
            username: "alice".into(),
            link: link(7),
        }],
    };
    let summary = store
        .apply_batch(&linked, WrittenBy::ADMIN_IMPORT, 11)
        .await
        .unwrap();
    assert_eq!(summary.connect_links_added, 1);
    let snapshot = store.directory_snapshot().await.unwrap();
    assert_eq!(snapshot.connect_links.get("alice"), Some(&link(7)));

    // The same server user for bob as well: refused, and the batch's other change with it.
    let stolen = Batch {
        changes: vec![
            Change::SetSuspended {
                username: "alice".into(),
                suspended: true,
            },
            Change::LinkConnectUser {
                username: "bob".into(),
                link: link(7),
            },
        ],
    };
    let error = store
        .apply_batch(&stolen, WrittenBy::ADMIN_IMPORT, 12)
        .await
        .expect_err("one local user per server user");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let after = store.directory_snapshot().await.unwrap();
    assert!(!after.users["alice"].suspended);
    assert!(!after.connect_links.contains_key("bob"));

    // The link goes with its user; unlinking keeps the account.
    let mut model = after.clone();
    let batch = Batch {
        changes: vec![
            Change::LinkConnectUser {
                username: "bob".into(),
                link: link(8),
            },
            Change::UnlinkConnectUser {
                username: "alice".into(),
            },
            Change::DeleteUser {
                username: "bob".into(),
            },
        ],
    };
    store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, 13)
        .await
        .unwrap();
    model.apply(&batch);
    let stored = store.directory_snapshot().await.unwrap();
    assert!(stored.connect_links.is_empty());
    assert!(stored.users.contains_key("alice"));
    // The model the planner's property tests use agrees with the database.
    assert_eq!(model.connect_links, stored.connect_links);
    assert_eq!(
        model.users.keys().collect::<Vec<_>>(),
        stored.users.keys().collect::<Vec<_>>()
    );
    assert_eq!(model.audiences, stored.audiences);
}

async fn an_idps_unlinked_accounts_are_listed(db: &TestDb) {
    let store = &db.store;
    let by_hq = WrittenBy {
        provenance: "hq",
        branch: "root",
        auth_source: "idp:hq",
    };
    let create = |name: &str| {
        Change::CreateUser(DirectoryUser {
            username: name.into(),
            ..DirectoryUser::default()
        })
    };
    let batch = Batch {
        changes: vec![
            create("tc_1_x"),
            create("tc_2_x"),
            Change::LinkConnectUser {
                username: "tc_2_x".into(),
                link: link(2),
            },
        ],
    };
    store.apply_batch(&batch, by_hq, 10).await.unwrap();
    let local = Batch {
        changes: vec![create("tc_3_x")],
    };
    store
        .apply_batch(&local, WrittenBy::ADMIN_IMPORT, 10)
        .await
        .unwrap();
    assert_eq!(
        store.connect_unlinked_accounts("hq").await.unwrap(),
        ["tc_1_x"]
    );
    assert!(
        store
            .connect_unlinked_accounts("other")
            .await
            .unwrap()
            .is_empty()
    );
}

/// The planner's model agrees with the database (users by key: the model keeps no provenance).
fn assert_model_is_stored(model: &DirectorySnapshot, stored: &DirectorySnapshot) {
    assert_eq!(
        model.users.keys().collect::<Vec<_>>(),
        stored.users.keys().collect::<Vec<_>>()
    );
    assert_eq!(model.audiences, stored.audiences);
    assert_eq!(model.courses, stored.courses);
    assert_eq!(model.position_frameworks, stored.position_frameworks);
    assert_eq!(
        model.organisation_frameworks,
        stored.organisation_frameworks
    );
    assert_eq!(model.jobs, stored.jobs);
}

fn item(idnumber: &str, parent: Option<&str>) -> ImportItem {
    ImportItem {
        idnumber: idnumber.into(),
        fullname: Some(format!("Item {idnumber}")),
        parent: parent.map(Into::into),
        type_idnumber: Some("T1".into()),
    }
}

fn job(idnumber: &str, position: &str, organisation: &str) -> ImportJob {
    ImportJob {
        idnumber: idnumber.into(),
        fullname: Some("Sales rep".into()),
        shortname: Some("rep".into()),
        position: Some(position.into()),
        organisation: Some(organisation.into()),
        startdate: Some(100),
        enddate: Some(0),
    }
}

fn everything() -> ImportDocument {
    let mut alice = alice();
    alice.jobs = Some(vec![job("J1", "P2", "O1")]);
    let bob = ImportUser {
        username: "bob".into(),
        jobs: Some(vec![job("J2", "P1", "")]),
        ..ImportUser::default()
    };
    ImportDocument {
        users: vec![alice, bob],
        courses: vec![ImportCourse {
            shortname: "C1".into(),
            fullname: Some("Onboarding".into()),
            summary: None,
            enrolled: Some(vec!["alice".into()]),
        }],
        position_frameworks: vec![ImportFramework {
            idnumber: "PF-1".into(),
            fullname: Some("Positions".into()),
            items: Some(vec![
                item("P2", Some("P1")),
                item("P1", None),
                item("P3", None),
            ]),
        }],
        organisation_frameworks: vec![ImportFramework {
            idnumber: "OF-1".into(),
            fullname: Some("Organisations".into()),
            items: Some(vec![item("O1", None)]),
        }],
        ..ImportDocument::default()
    }
}

async fn courses_hierarchies_and_jobs_are_applied_and_read_back(db: &TestDb) {
    let store = &db.store;
    let mut model = store.directory_snapshot().await.unwrap();
    let batch = import(store, &everything(), 10).await;
    model.apply(&batch);
    let stored = store.directory_snapshot().await.unwrap();
    assert_model_is_stored(&model, &stored);
    assert_eq!(
        stored.courses["C1"].enrolled,
        BTreeSet::from(["alice".to_owned()])
    );
    let positions = &stored.position_frameworks["PF-1"].items;
    assert_eq!(
        positions["P2"],
        DirectoryItem {
            idnumber: "P2".into(),
            fullname: "Item P2".into(),
            parent: Some("P1".into()),
            type_idnumber: "T1".into(),
        }
    );
    let alices = &stored.jobs["alice"]["J1"];
    assert_eq!(
        (
            alices.position.as_deref(),
            alices.organisation.as_deref(),
            alices.startdate
        ),
        (Some("P2"), Some("O1"), 100)
    );
    assert_eq!(stored.jobs["bob"]["J2"].organisation, None);
    let again = plan(&stored, &everything(), &fields()).unwrap();
    assert!(again.is_empty(), "{:?}", again.changes);

    // P2 moves under P3 and P1 goes; bob (not named) keeps his job without its position.
    let moved = ImportDocument {
        position_frameworks: vec![ImportFramework {
            idnumber: "PF-1".into(),
            fullname: None,
            items: Some(vec![item("P3", None), item("P2", Some("P3"))]),
        }],
        ..ImportDocument::default()
    };
    let batch = import(store, &moved, 11).await;
    let summary = batch.summary();
    assert_eq!((summary.items_updated, summary.items_deleted), (1, 1));
    model.apply(&batch);
    let stored = store.directory_snapshot().await.unwrap();
    assert_model_is_stored(&model, &stored);
    let positions = &stored.position_frameworks["PF-1"].items;
    assert_eq!(positions.keys().collect::<Vec<_>>(), ["P2", "P3"]);
    assert_eq!(positions["P2"].parent.as_deref(), Some("P3"));
    assert_eq!(stored.jobs["bob"]["J2"].position, None);
    assert_eq!(stored.jobs["alice"]["J1"].position.as_deref(), Some("P2"));
    assert!(plan(&stored, &moved, &fields()).unwrap().is_empty());

    // Deleting a user takes its enrolments and jobs with it.
    let delete_alice = ImportDocument {
        users: vec![ImportUser {
            username: "alice".into(),
            deleted: true,
            ..ImportUser::default()
        }],
        ..ImportDocument::default()
    };
    let batch = import(store, &delete_alice, 12).await;
    model.apply(&batch);
    let stored = store.directory_snapshot().await.unwrap();
    assert_model_is_stored(&model, &stored);
    assert!(stored.courses["C1"].enrolled.is_empty());
    assert!(!stored.jobs.contains_key("alice"));
}

async fn a_failing_hierarchy_change_leaves_nothing_written(db: &TestDb) {
    let store = &db.store;
    let batch = Batch {
        changes: vec![
            Change::CreateCourse {
                shortname: "C1".into(),
                fullname: String::new(),
                summary: String::new(),
            },
            Change::CreateFramework {
                kind: FrameworkKind::Position,
                idnumber: "PF-1".into(),
                fullname: String::new(),
            },
            Change::CreateItem {
                kind: FrameworkKind::Position,
                framework: "PF-1".into(),
                item: DirectoryItem {
                    idnumber: "P2".into(),
                    parent: Some("P404".into()),
                    ..DirectoryItem::default()
                },
            },
        ],
    };
    let error = store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, 5)
        .await
        .expect_err("no such parent");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    let snapshot = store.directory_snapshot().await.unwrap();
    assert_eq!(snapshot, DirectorySnapshot::default());
}

fn client(name: &str, add_new: bool) -> NewConnectClient {
    let secret = |c: char| c.to_string().repeat(40);
    NewConnectClient {
        client_idnumber: format!("{name}-idnumber"),
        client_secret: secret(name.chars().next().unwrap_or('a')),
        server_secret: format!("{}{}", &secret('0')[..39], name.len()),
        client_url: format!("https://{name}.example.com"),
        client_name: name.into(),
        client_comment: String::new(),
        options: ConnectClientOptions {
            add_new_audiences: add_new,
            add_new_courses: add_new,
            ..ConnectClientOptions::default()
        },
    }
}

async fn creating_a_course_or_audience_links_it_to_clients_that_add_new_ones(db: &TestDb) {
    let store = &db.store;
    let before = ImportDocument {
        courses: vec![ImportCourse {
            shortname: "C0".into(),
            ..ImportCourse::default()
        }],
        audiences: vec![ImportAudience {
            idnumber: "AUD-0".into(),
            ..ImportAudience::default()
        }],
        ..ImportDocument::default()
    };
    import(store, &before, 5).await;
    let asking = store
        .insert_connect_client(&client("asking", true), 6)
        .await
        .unwrap();
    let other = store
        .insert_connect_client(&client("other", false), 6)
        .await
        .unwrap();
    let gone = store
        .insert_connect_client(&client("gone", true), 6)
        .await
        .unwrap();
    assert!(store.mark_connect_client_deleted(gone, 7).await.unwrap());
    let after = ImportDocument {
        courses: vec![
            ImportCourse {
                shortname: "C0".into(),
                fullname: Some("Renamed".into()),
                ..ImportCourse::default()
            },
            ImportCourse {
                shortname: "C1".into(),
                ..ImportCourse::default()
            },
        ],
        audiences: vec![
            ImportAudience {
                idnumber: "AUD-0".into(),
                name: Some("Renamed".into()),
                ..ImportAudience::default()
            },
            ImportAudience {
                idnumber: "AUD-1".into(),
                ..ImportAudience::default()
            },
        ],
        ..ImportDocument::default()
    };
    import(store, &after, 8).await;
    let clients = store.connect_clients().await.unwrap();
    let options = |id: i64| {
        let client = clients.iter().find(|c| c.id == id).expect("client");
        (
            client.options.courses.clone(),
            client.options.audiences.clone(),
        )
    };
    // Only what the import created, and only for the active client that asked.
    assert_eq!(
        options(asking),
        (vec!["C1".to_owned()], vec!["AUD-1".to_owned()])
    );
    assert_eq!(options(other), (vec![], vec![]));
    assert_eq!(options(gone), (vec![], vec![]));
}
