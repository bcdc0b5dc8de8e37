//! What the Connect server role reads for a client beyond plain users, against real
//! databases: job assignments and field values of every user in one read each (and only
//! when asked), the audiences and courses linked to a client with their members (deleted
//! users gone, a restricted client's members only, nobody when its audience is gone), and
//! the frameworks of one kind linked to a client with every item in them. Runs on a fresh
//! SQLite file always, and on PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set.

use gatehouse_store::{
    Batch, Change, ConnectClientOptions, ConnectUsersQuery, DirectoryItem, DirectoryJob,
    DirectoryUser, FrameworkKind, NewConnectClient, Store, WrittenBy,
};

mod support;

use support::TestDb;

const NOW: i64 = 1_700_000_000;

on_both_backends!(
    jobs_and_fields_are_read_for_every_user_only_when_asked,
    a_restricted_client_gets_jobs_and_fields_of_its_members_only,
    field_values_and_jobs_keep_every_character,
    collections_carry_their_existing_members_in_id_order,
    a_restricted_client_sees_only_its_audiences_members_in_collections,
    a_client_restricted_to_a_deleted_audience_sees_empty_collections,
    hierarchies_hold_the_linked_frameworks_of_their_kind_and_all_their_items,
);

async fn apply(store: &Store, changes: Vec<Change>) {
    store
        .apply_batch(&Batch { changes }, WrittenBy::ADMIN_IMPORT, NOW)
        .await
        .expect("apply");
}

fn user(name: &str) -> Change {
    Change::CreateUser(DirectoryUser {
        username: name.to_owned(),
        email: format!("{name}@example.com"),
        firstname: name.to_owned(),
        fields: [
            ("department".to_owned(), format!("dept-{name}")),
            ("building".to_owned(), format!("b-{name}")),
        ]
        .into(),
        ..DirectoryUser::default()
    })
}

fn item(idnumber: &str, parent: Option<&str>, type_idnumber: &str) -> DirectoryItem {
    DirectoryItem {
        idnumber: idnumber.to_owned(),
        fullname: format!("Item {idnumber}"),
        parent: parent.map(str::to_owned),
        type_idnumber: type_idnumber.to_owned(),
    }
}

fn job(idnumber: &str, sortorder: i64, position: Option<&str>) -> DirectoryJob {
    DirectoryJob {
        idnumber: idnumber.to_owned(),
        fullname: format!("Job {idnumber}"),
        shortname: idnumber.to_lowercase(),
        position: position.map(str::to_owned),
        organisation: Some("ORG-1".to_owned()),
        startdate: 5,
        enddate: 0,
        sortorder,
    }
}

/// alice, bob, carol (each with two field values); AUD-1 {alice, carol}, AUD-2 {bob,
/// carol}; course C1 {alice, bob, carol}, C2 {bob}; position framework PF-1 (POS-1 >
/// POS-2 > POS-3, POS-4), PF-2 (POS-9), organisation framework OF-1 (ORG-1); alice has jobs
/// J2 then J1 (sortorder), bob J1.
async fn directory(store: &Store) {
    let mut changes: Vec<Change> = ["alice", "bob", "carol"].map(user).into();
    for (idnumber, members) in [("AUD-1", ["alice", "carol"]), ("AUD-2", ["bob", "carol"])] {
        changes.push(Change::CreateAudience {
            idnumber: idnumber.into(),
            name: format!("Audience {idnumber}"),
            description: "about it".into(),
        });
        changes.extend(members.map(|m| Change::AddMember {
            audience: idnumber.into(),
            username: m.into(),
        }));
    }
    for (shortname, enrolled) in [("C1", &["alice", "bob", "carol"][..]), ("C2", &["bob"][..])] {
        changes.push(Change::CreateCourse {
            shortname: shortname.into(),
            fullname: format!("Course {shortname}"),
            summary: "learn".into(),
        });
        changes.extend(enrolled.iter().map(|u| Change::Enrol {
            course: shortname.into(),
            username: (*u).into(),
        }));
    }
    for (kind, framework, items) in [
        (
            FrameworkKind::Position,
            "PF-1",
            vec![
                item("POS-1", None, "T1"),
                item("POS-2", Some("POS-1"), ""),
                item("POS-3", Some("POS-2"), "T1"),
                item("POS-4", None, ""),
            ],
        ),
        (
            FrameworkKind::Position,
            "PF-2",
            vec![item("POS-9", None, "")],
        ),
        (
            FrameworkKind::Organisation,
            "OF-1",
            vec![item("ORG-1", None, "")],
        ),
    ] {
        changes.push(Change::CreateFramework {
            kind,
            idnumber: framework.into(),
            fullname: format!("Framework {framework}"),
        });
        changes.extend(items.into_iter().map(|item| Change::CreateItem {
            kind,
            framework: framework.into(),
            item,
        }));
    }
    changes.extend([
        Change::CreateJob {
            username: "alice".into(),
            job: job("J2", 1, Some("POS-3")),
        },
        Change::CreateJob {
            username: "alice".into(),
            job: job("J1", 2, None),
        },
        Change::CreateJob {
            username: "bob".into(),
            job: job("J1", 1, Some("POS-1")),
        },
    ]);
    apply(store, changes).await;
}

async fn user_id(store: &Store, name: &str) -> i64 {
    store
        .user_by_username(name)
        .await
        .expect("read")
        .expect("user")
        .id
}

fn client(options: ConnectClientOptions) -> NewConnectClient {
    NewConnectClient {
        client_idnumber: "c".repeat(40),
        client_secret: "d".repeat(40),
        server_secret: "e".repeat(40),
        client_url: "https://lms.example.com".into(),
        client_name: "LMS".into(),
        client_comment: String::new(),
        options,
    }
}

async fn jobs_and_fields_are_read_for_every_user_only_when_asked(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    apply(
        store,
        vec![Change::DeleteUser {
            username: "carol".into(),
        }],
    )
    .await;
    let everything = ConnectUsersQuery {
        fields: true,
        jobs: true,
        ..ConnectUsersQuery::default()
    };
    let users = store
        .connect_shared_users(&everything)
        .await
        .expect("users");
    let names: Vec<(&str, bool)> = users
        .iter()
        .map(|u| (u.username.as_str(), u.deleted))
        .collect();
    assert_eq!(names[..2], [("alice", false), ("bob", false)]);
    assert!(names[2].1, "carol's tombstone: {names:?}");
    let alice = &users[0];
    assert_eq!(
        alice.fields,
        [
            ("building".to_owned(), "b-alice".to_owned()),
            ("department".to_owned(), "dept-alice".to_owned()),
        ]
    );
    // In the user's order (sortorder), with this server's item ids.
    let jobs: Vec<&str> = alice.jobs.iter().map(|j| j.idnumber.as_str()).collect();
    assert_eq!(jobs, ["J2", "J1"]);
    let j2 = &alice.jobs[0];
    assert_eq!(j2.fullname, "Job J2");
    assert_eq!(j2.shortname, "j2");
    assert_eq!((j2.startdate, j2.enddate, j2.sortorder), (5, 0, 1));
    assert!(j2.position_id.is_some() && j2.organisation_id.is_some());
    assert_eq!(alice.jobs[1].position_id, None);
    assert_eq!(users[1].jobs.len(), 1);
    // The tombstone carries nothing.
    assert!(users[2].fields.is_empty() && users[2].jobs.is_empty());
    // The same users as the plain read, which gets everything too.
    assert_eq!(
        store
            .connect_visible_users(None, false)
            .await
            .expect("users"),
        users
    );
    // get_user's read: the same fields and jobs for one user.
    let one = store
        .connect_visible_user(None, alice.id, false)
        .await
        .expect("read")
        .expect("alice");
    assert_eq!(&one, alice);

    // Not asked: nothing read.
    for query in [
        ConnectUsersQuery::default(),
        ConnectUsersQuery {
            fields: true,
            ..ConnectUsersQuery::default()
        },
        ConnectUsersQuery {
            jobs: true,
            ..ConnectUsersQuery::default()
        },
    ] {
        let users = store.connect_shared_users(&query).await.expect("users");
        assert_eq!(users.len(), 3);
        for u in &users {
            assert_eq!(
                !u.fields.is_empty(),
                query.fields && !u.deleted,
                "{query:?}"
            );
            assert!(query.jobs || u.jobs.is_empty(), "{query:?}");
            assert_eq!(u.password_hash, None);
        }
    }
}

async fn a_restricted_client_gets_jobs_and_fields_of_its_members_only(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let audience = store
        .audience_id_by_idnumber("AUD-2")
        .await
        .expect("read")
        .expect("AUD-2");
    let users = store
        .connect_shared_users(&ConnectUsersQuery {
            restrict_audience_id: Some(audience),
            password_hashes: false,
            fields: true,
            jobs: true,
        })
        .await
        .expect("users");
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["bob", "carol"]);
    assert_eq!(users[0].jobs.len(), 1);
    assert_eq!(users[0].fields.len(), 2);
    assert!(users[1].jobs.is_empty());
    assert_eq!(users[1].fields.len(), 2);
}

async fn collections_carry_their_existing_members_in_id_order(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let id = store
        .insert_connect_client(
            &client(ConnectClientOptions {
                audiences: vec!["AUD-2".into(), "AUD-1".into()],
                courses: vec!["C1".into()],
                ..ConnectClientOptions::default()
            }),
            NOW,
        )
        .await
        .expect("client");
    let [alice, bob, carol] = [
        user_id(store, "alice").await,
        user_id(store, "bob").await,
        user_id(store, "carol").await,
    ];
    let collections = store
        .connect_client_collections(id, None)
        .await
        .expect("collections");
    let audiences: Vec<(&str, &[i64])> = collections
        .audiences
        .iter()
        .map(|a| (a.idnumber.as_str(), a.members.as_slice()))
        .collect();
    assert_eq!(
        audiences,
        [("AUD-1", &[alice, carol][..]), ("AUD-2", &[bob, carol][..])]
    );
    assert_eq!(collections.audiences[0].name, "Audience AUD-1");
    assert_eq!(collections.audiences[0].description, "about it");
    assert_eq!(collections.courses.len(), 1, "C2 is not linked");
    let c1 = &collections.courses[0];
    assert_eq!(
        (
            c1.shortname.as_str(),
            c1.fullname.as_str(),
            c1.summary.as_str()
        ),
        ("C1", "Course C1", "learn")
    );
    assert_eq!(c1.members, [alice, bob, carol]);

    // A deleted user is no member of anything; a suspended one still is.
    apply(
        store,
        vec![
            Change::DeleteUser {
                username: "carol".into(),
            },
            Change::SetSuspended {
                username: "bob".into(),
                suspended: true,
            },
        ],
    )
    .await;
    let collections = store
        .connect_client_collections(id, None)
        .await
        .expect("collections");
    assert_eq!(collections.audiences[0].members, [alice]);
    assert_eq!(collections.audiences[1].members, [bob]);
    assert_eq!(collections.courses[0].members, [alice, bob]);
    // Another client has none of them.
    assert_eq!(
        store
            .connect_client_collections(id + 1, None)
            .await
            .expect("collections"),
        Default::default()
    );
}

async fn a_restricted_client_sees_only_its_audiences_members_in_collections(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let id = store
        .insert_connect_client(
            &client(ConnectClientOptions {
                restrict_audience: Some("AUD-1".into()),
                audiences: vec!["AUD-2".into()],
                courses: vec!["C1".into(), "C2".into()],
                ..ConnectClientOptions::default()
            }),
            NOW,
        )
        .await
        .expect("client");
    let restrict = store.audience_id_by_idnumber("AUD-1").await.expect("read");
    let [alice, carol] = [user_id(store, "alice").await, user_id(store, "carol").await];
    let collections = store
        .connect_client_collections(id, restrict)
        .await
        .expect("collections");
    // AUD-2 is bob and carol; only carol is in AUD-1.
    assert_eq!(collections.audiences[0].members, [carol]);
    assert_eq!(collections.courses[0].members, [alice, carol]);
    // C2 is bob's alone: listed, with nobody.
    assert_eq!(collections.courses[1].shortname, "C2");
    assert!(collections.courses[1].members.is_empty());
}

async fn a_client_restricted_to_a_deleted_audience_sees_empty_collections(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let id = store
        .insert_connect_client(
            &client(ConnectClientOptions {
                restrict_audience: Some("AUD-1".into()),
                audiences: vec!["AUD-2".into()],
                courses: vec!["C1".into()],
                ..ConnectClientOptions::default()
            }),
            NOW,
        )
        .await
        .expect("client");
    apply(
        store,
        vec![Change::DeleteAudience {
            idnumber: "AUD-1".into(),
        }],
    )
    .await;
    let stored = store
        .connect_clients()
        .await
        .expect("clients")
        .into_iter()
        .find(|c| c.id == id)
        .expect("client");
    assert!(stored.restrict_audience_id.is_some(), "kept on purpose");
    let collections = store
        .connect_client_collections(id, stored.restrict_audience_id)
        .await
        .expect("collections");
    assert_eq!(collections.audiences.len(), 1);
    assert!(collections.audiences[0].members.is_empty());
    assert!(collections.courses[0].members.is_empty());
}

async fn hierarchies_hold_the_linked_frameworks_of_their_kind_and_all_their_items(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let id = store
        .insert_connect_client(
            &client(ConnectClientOptions {
                position_frameworks: vec!["PF-1".into()],
                organisation_frameworks: vec!["OF-1".into()],
                ..ConnectClientOptions::default()
            }),
            NOW,
        )
        .await
        .expect("client");
    let positions = store
        .connect_client_hierarchy(id, FrameworkKind::Position)
        .await
        .expect("positions");
    assert_eq!(positions.frameworks.len(), 1, "PF-2 is not linked");
    let pf1 = &positions.frameworks[0];
    assert_eq!(
        (pf1.idnumber.as_str(), pf1.fullname.as_str(), pf1.visible),
        ("PF-1", "Framework PF-1", true)
    );
    let items: Vec<(&str, Option<&str>, &str)> = positions
        .items
        .iter()
        .map(|i| {
            let parent = i.parent_id.map(|p| {
                positions
                    .items
                    .iter()
                    .find(|x| x.id == p)
                    .expect("parent in the list")
                    .idnumber
                    .as_str()
            });
            (i.idnumber.as_str(), parent, i.type_idnumber.as_str())
        })
        .collect();
    assert_eq!(
        items,
        [
            ("POS-1", None, "T1"),
            ("POS-2", Some("POS-1"), ""),
            ("POS-3", Some("POS-2"), "T1"),
            ("POS-4", None, ""),
        ]
    );
    assert!(positions.items.iter().all(|i| i.framework_id == pf1.id));
    assert_eq!(positions.items[0].fullname, "Item POS-1");
    let organisations = store
        .connect_client_hierarchy(id, FrameworkKind::Organisation)
        .await
        .expect("organisations");
    assert_eq!(organisations.frameworks[0].idnumber, "OF-1");
    assert_eq!(organisations.items.len(), 1);
    assert_eq!(organisations.items[0].idnumber, "ORG-1");
}

/// Values go through the database's JSON aggregation: quotes, backslashes, control
/// characters, non-ASCII text and SQL-looking text all come back as they were written.
async fn field_values_and_jobs_keep_every_character(db: &TestDb) {
    let store = &db.store;
    let tricky = "\"quoted\" back\\slash\ttab\nline \u{1f} ünï 中文 '); DROP TABLE users; --";
    apply(
        store,
        vec![
            Change::CreateUser(DirectoryUser {
                username: "erin".into(),
                fields: [("department".to_owned(), tricky.to_owned())].into(),
                ..DirectoryUser::default()
            }),
            Change::CreateJob {
                username: "erin".into(),
                job: DirectoryJob {
                    idnumber: tricky.into(),
                    fullname: tricky.into(),
                    shortname: String::new(),
                    position: None,
                    organisation: None,
                    startdate: i64::MAX,
                    enddate: -1,
                    sortorder: 1,
                },
            },
        ],
    )
    .await;
    let users = store
        .connect_visible_users(None, false)
        .await
        .expect("users");
    let erin = users.iter().find(|u| u.username == "erin").expect("erin");
    assert_eq!(erin.fields, [("department".to_owned(), tricky.to_owned())]);
    assert_eq!(erin.jobs[0].idnumber, tricky);
    assert_eq!(erin.jobs[0].fullname, tricky);
    assert_eq!(
        (erin.jobs[0].startdate, erin.jobs[0].enddate),
        (i64::MAX, -1)
    );
    let one = store
        .connect_visible_user(None, erin.id, false)
        .await
        .expect("read")
        .expect("erin");
    assert_eq!(&one, erin);
}
