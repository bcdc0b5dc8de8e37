//! Large batches against real databases: thousands of users with fields, Connect links and
//! job assignments written with multi-row statements (several statements per kind, so the
//! chunking is crossed) read back exactly as planned; a batch whose last statement fails
//! leaves nothing; a segment interrupted by a barrier (a deletion) keeps the batch's order;
//! and the last of two writes to the same field wins, as it would one by one. Runs on SQLite
//! always and on PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set.

use std::collections::BTreeMap;

use gatehouse_store::{
    Batch, Change, ConnectLink, CoreField, DirectoryItem, DirectoryJob, DirectoryUser,
    FrameworkKind, StoreError, WrittenBy,
};

mod support;

use support::TestDb;

on_both_backends!(
    thousands_of_users_fields_links_and_jobs_are_written_and_read_back,
    a_failure_in_the_last_statement_leaves_nothing,
    a_barrier_keeps_the_batch_order,
    the_last_write_to_a_field_wins,
);

/// More users than one statement takes (1,000 rows), so every kind spans several.
const USERS: usize = 2_345;

fn user(i: usize) -> DirectoryUser {
    DirectoryUser {
        username: format!("user{i:05}"),
        email: format!("user{i:05}@example.test"),
        firstname: format!("First{i}"),
        lastname: format!("Last{i}"),
        idnumber: format!("E{i:05}"),
        fields: BTreeMap::from([
            ("department".to_owned(), format!("D{}", i % 7)),
            ("region".to_owned(), format!("R{}", i % 3)),
        ]),
        ..DirectoryUser::default()
    }
}

fn job(i: usize, j: usize) -> DirectoryJob {
    DirectoryJob {
        idnumber: format!("J{i}-{j}"),
        fullname: format!("Job {j}"),
        shortname: format!("j{j}"),
        position: Some(format!("POS-{}", (i + j) % 3)),
        organisation: (j == 0).then(|| "ORG-0".to_owned()),
        startdate: i64::try_from(i).expect("small"),
        enddate: 0,
        sortorder: i64::try_from(j).expect("small"),
    }
}

fn hierarchies() -> Vec<Change> {
    let mut changes = Vec::new();
    for (kind, framework, prefix, count) in [
        (FrameworkKind::Position, "PF", "POS", 3),
        (FrameworkKind::Organisation, "OF", "ORG", 1),
    ] {
        changes.push(Change::CreateFramework {
            kind,
            idnumber: framework.into(),
            fullname: framework.into(),
        });
        for k in 0..count {
            changes.push(Change::CreateItem {
                kind,
                framework: framework.into(),
                item: DirectoryItem {
                    idnumber: format!("{prefix}-{k}"),
                    fullname: format!("{prefix} {k}"),
                    parent: None,
                    type_idnumber: String::new(),
                },
            });
        }
    }
    changes
}

/// What a Connect sync plans for `USERS` new server users: each user created, linked, and
/// given two jobs — interleaved per user, as a planner writes them.
fn sync_batch() -> Batch {
    let mut changes = hierarchies();
    for i in 0..USERS {
        let user = user(i);
        let username = user.username.clone();
        changes.push(Change::CreateUser(user));
        changes.push(Change::LinkConnectUser {
            username: username.clone(),
            link: ConnectLink {
                idp_id: "hq".into(),
                server_idnumber: "S1".into(),
                server_user_id: i64::try_from(i).expect("small") + 1,
            },
        });
        for j in 0..2 {
            changes.push(Change::CreateJob {
                username: username.clone(),
                job: job(i, j),
            });
        }
    }
    Batch { changes }
}

const BY: WrittenBy<'static> = WrittenBy::ADMIN_IMPORT;

async fn thousands_of_users_fields_links_and_jobs_are_written_and_read_back(db: &TestDb) {
    db.store
        .apply_batch(&sync_batch(), BY, 1_000)
        .await
        .expect("apply");
    let snapshot = db.store.directory_snapshot().await.expect("snapshot");
    assert_eq!(snapshot.users.len(), USERS);
    // What a users sync plans against: the same users and links, without provenance.
    let users = db.store.users_snapshot().await.expect("users snapshot");
    assert_eq!(users.connect_links, snapshot.connect_links);
    assert!(users.jobs.is_empty() && users.position_frameworks.is_empty());
    for (name, user) in &users.users {
        let full = &snapshot.users[name];
        assert!(user.provenance.is_empty());
        assert_eq!((&user.email, &user.fields), (&full.email, &full.fields));
    }
    assert_eq!(users.users.len(), USERS);
    // What migration's matching rule reads: the same, with who set each value.
    let with_provenance = db
        .store
        .users_snapshot_with_provenance()
        .await
        .expect("users snapshot with provenance");
    assert_eq!(with_provenance.users, snapshot.users);
    for i in [0, 999, 1_000, 1_001, USERS - 1] {
        let expected = user(i);
        let stored = &snapshot.users[&expected.username];
        assert_eq!(stored.email, expected.email);
        assert_eq!(stored.idnumber, expected.idnumber);
        assert_eq!(
            stored.fields, expected.fields,
            "fields of {}",
            expected.username
        );
        let jobs = &snapshot.jobs[&expected.username];
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[&format!("J{i}-0")].position, job(i, 0).position);
        assert_eq!(
            jobs[&format!("J{i}-0")].organisation.as_deref(),
            Some("ORG-0")
        );
        assert_eq!(jobs[&format!("J{i}-1")].organisation, None);
    }
    let links = &snapshot.connect_links;
    assert_eq!(links.len(), USERS);
    assert_eq!(
        links.get("user01000").map(|l| l.server_user_id),
        Some(1_001)
    );
    let provenance = &snapshot.users["user01234"].provenance;
    for field in ["region", "department", "email", "idnumber"] {
        assert!(provenance.contains_key(field), "{field}: {provenance:?}");
    }
}

async fn a_failure_in_the_last_statement_leaves_nothing(db: &TestDb) {
    let mut batch = sync_batch();
    // A job naming a position nobody has: found only when the jobs are written, last.
    batch.changes.push(Change::CreateJob {
        username: "user00000".into(),
        job: DirectoryJob {
            position: Some("POS-404".into()),
            ..job(0, 9)
        },
    });
    let error = db
        .store
        .apply_batch(&batch, BY, 1_000)
        .await
        .expect_err("an unknown position");
    assert!(
        matches!(&error, StoreError::NotFound(what) if what.contains("POS-404")),
        "{error:?}"
    );
    let snapshot = db.store.directory_snapshot().await.expect("snapshot");
    assert!(snapshot.users.is_empty(), "nothing may be written");
    assert!(snapshot.position_frameworks.is_empty());
}

async fn a_barrier_keeps_the_batch_order(db: &TestDb) {
    // Created, deleted (a barrier), created again under the same name with other values:
    // the second account is the one that stays, with its own fields and job.
    let first = user(1);
    let mut second = user(2);
    second.username = first.username.clone();
    let mut changes = hierarchies();
    changes.extend([
        Change::CreateUser(first.clone()),
        Change::CreateJob {
            username: first.username.clone(),
            job: job(1, 0),
        },
        Change::DeleteUser {
            username: first.username.clone(),
        },
        Change::CreateUser(second.clone()),
        Change::CreateJob {
            username: second.username.clone(),
            job: job(2, 1),
        },
    ]);
    db.store
        .apply_batch(&Batch { changes }, BY, 1_000)
        .await
        .expect("apply");
    let snapshot = db.store.directory_snapshot().await.expect("snapshot");
    let stored = &snapshot.users[&second.username];
    assert_eq!(stored.email, second.email);
    assert_eq!(stored.fields, second.fields);
    let jobs: Vec<&String> = snapshot.jobs[&second.username].keys().collect();
    assert_eq!(jobs, vec!["J2-1"]);
}

async fn the_last_write_to_a_field_wins(db: &TestDb) {
    let alice = user(7);
    let changes = vec![
        Change::CreateUser(alice.clone()),
        Change::SetField {
            username: alice.username.clone(),
            field: "department".into(),
            value: "first".into(),
        },
        Change::SetCore {
            username: alice.username.clone(),
            field: CoreField::Email,
            value: "first@example.test".into(),
        },
        Change::SetField {
            username: alice.username.clone(),
            field: "department".into(),
            value: "last".into(),
        },
        Change::SetCore {
            username: alice.username.clone(),
            field: CoreField::Email,
            value: "last@example.test".into(),
        },
        Change::SetSuspended {
            username: alice.username.clone(),
            suspended: true,
        },
    ];
    db.store
        .apply_batch(&Batch { changes }, BY, 1_000)
        .await
        .expect("apply");
    let snapshot = db.store.directory_snapshot().await.expect("snapshot");
    let stored = &snapshot.users[&alice.username];
    assert_eq!(stored.fields["department"], "last");
    assert_eq!(stored.email, "last@example.test");
    assert!(stored.suspended);
}
