//! The store's side of a Connect collections sync, against real databases: the state read
//! back is what the planner's model says, audiences keep their row ids across syncs and
//! renames, a collection no longer sent goes with its mapping, a failing change anywhere in
//! a plan writes nothing, and a directory import cannot change an audience a sync keeps.
//! Runs on a fresh SQLite file always, and on PostgreSQL (a schema of its own) when
//! `GATEHOUSE_TEST_DATABASE_URL` is set.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    AudienceRef, Batch, Change, CollectionChange, CollectionKind, CollectionsPlan,
    CollectionsState, ConnectLink, DirectoryUser, ImportAudience, ImportDocument, LocalAudience,
    ServerCollection, Store, StoreError, SyncSource, WrittenBy, collection_idnumber, plan,
    plan_collections_sync,
};

mod support;

use support::TestDb;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const SOURCE: SyncSource<'static> = SyncSource {
    idp_id: "hq",
    server_idnumber: SERVER,
};

on_both_backends!(
    a_sync_writes_what_the_model_says,
    audiences_keep_their_ids_across_syncs_and_renames,
    a_collection_no_longer_sent_is_removed,
    a_failing_change_anywhere_writes_nothing,
    an_import_cannot_change_a_synced_audience,
    a_large_audience_is_written_a_thousand_members_at_a_time,
);

/// ada (server user 2), bob (5) and cy (7) linked to the server; dan local only.
async fn prepare(store: &Store) {
    let user = |username: &str| {
        Change::CreateUser(DirectoryUser {
            username: username.into(),
            firstname: "F".into(),
            lastname: "L".into(),
            ..DirectoryUser::default()
        })
    };
    let link = |username: &str, server_user_id: i64| Change::LinkConnectUser {
        username: username.into(),
        link: ConnectLink {
            idp_id: "hq".into(),
            server_idnumber: SERVER.into(),
            server_user_id,
        },
    };
    let batch = Batch {
        changes: vec![
            user("ada"),
            user("bob"),
            user("cy"),
            user("dan"),
            link("ada", 2),
            link("bob", 5),
            link("cy", 7),
        ],
    };
    store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, 10)
        .await
        .expect("users");
}

fn collection(kind: CollectionKind, id: i64, name: &str, members: &[i64]) -> ServerCollection {
    ServerCollection {
        kind,
        remote_id: id,
        name: name.into(),
        description: format!("about {name}"),
        members: members.to_vec(),
    }
}

fn sent() -> Vec<ServerCollection> {
    vec![
        // 99 is a server user this client does not have.
        collection(CollectionKind::Cohort, 1, "Sales", &[2, 5, 99]),
        collection(CollectionKind::Cohort, 4, "Ops", &[]),
        collection(CollectionKind::Course, 1, "Onboarding", &[5, 7]),
    ]
}

async fn sync(store: &Store, sent: &[ServerCollection], now: i64) -> CollectionsPlan {
    let state = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    let plan = plan_collections_sync(&state, SOURCE, sent);
    store
        .apply_collections_plan(&plan, SOURCE, now)
        .await
        .expect("apply");
    plan
}

/// The state by collection, without row ids (the database picks them).
fn by_collection(state: &CollectionsState) -> BTreeMap<(CollectionKind, i64), LocalAudience> {
    state
        .mapped
        .iter()
        .map(|(key, id)| {
            let audience = LocalAudience {
                id: 0,
                ..state.audiences[id].clone()
            };
            (*key, audience)
        })
        .collect()
}

async fn a_sync_writes_what_the_model_says(db: &TestDb) {
    let store = &db.store;
    prepare(store).await;
    let before = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(before.users.len(), 3);
    let plan = plan_collections_sync(&before, SOURCE, &sent());
    let mut model = before.clone();
    let mut next = 0;
    model.apply(&plan, SOURCE, || {
        next += 1;
        next
    });
    store
        .apply_collections_plan(&plan, SOURCE, 20)
        .await
        .expect("apply");
    let after = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(by_collection(&after), by_collection(&model));
    assert_eq!(after.users, before.users);

    // The directory sees them as audiences of the IdP, members by username.
    let snapshot = store.directory_snapshot().await.expect("snapshot");
    let sales = &snapshot.audiences[&collection_idnumber(CollectionKind::Cohort, 1, SERVER)];
    assert_eq!(sales.name, "Sales");
    assert_eq!(sales.description, "about Sales");
    assert_eq!(sales.component, "hq");
    assert_eq!(
        sales.members,
        BTreeSet::from(["ada".to_owned(), "bob".to_owned()])
    );
    let course = &snapshot.audiences[&collection_idnumber(CollectionKind::Course, 1, SERVER)];
    assert_eq!(course.name, "Onboarding");
    assert_eq!(
        course.members,
        BTreeSet::from(["bob".to_owned(), "cy".to_owned()])
    );
    assert!(
        snapshot.audiences[&collection_idnumber(CollectionKind::Cohort, 4, SERVER)]
            .members
            .is_empty()
    );
    let counts = plan.counts(3);
    assert_eq!((counts.created, counts.members_added), (3, 4));
}

async fn audiences_keep_their_ids_across_syncs_and_renames(db: &TestDb) {
    let store = &db.store;
    prepare(store).await;
    sync(store, &sent(), 20).await;
    let first = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");

    let again = sync(store, &sent(), 30).await;
    assert!(again.is_empty(), "{:?}", again.changes);

    let mut renamed = sent();
    renamed[2].name = "Onboarding 2026".into();
    renamed[2].members = vec![2];
    let plan = sync(store, &renamed, 40).await;
    assert_eq!(plan.counts(3).updated, 1);
    let after = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(after.mapped, first.mapped, "the same audiences, by id");
    let course = &after.audiences[&after.mapped[&(CollectionKind::Course, 1)]];
    assert_eq!(course.name, "Onboarding 2026");
    assert_eq!(course.members, BTreeSet::from([after.users[&2]]));
}

async fn a_collection_no_longer_sent_is_removed(db: &TestDb) {
    let store = &db.store;
    prepare(store).await;
    sync(store, &sent(), 20).await;
    let first = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    let cohort_id = first.mapped[&(CollectionKind::Cohort, 1)];

    // Cohort 1 is no longer shared; the course with the same server id stays as it is.
    let fewer: Vec<_> = sent()
        .into_iter()
        .filter(|c| (c.kind, c.remote_id) != (CollectionKind::Cohort, 1))
        .collect();
    let plan = sync(store, &fewer, 30).await;
    assert_eq!(plan.counts(2).deleted, 1);
    let after = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert!(!after.mapped.contains_key(&(CollectionKind::Cohort, 1)));
    assert!(!after.audiences.contains_key(&cohort_id));
    assert_eq!(
        after.mapped[&(CollectionKind::Course, 1)],
        first.mapped[&(CollectionKind::Course, 1)]
    );
    let snapshot = store.directory_snapshot().await.expect("snapshot");
    assert!(!snapshot.audiences.contains_key(&collection_idnumber(
        CollectionKind::Cohort,
        1,
        SERVER
    )));

    // Shared again later: a new audience, mapped again.
    sync(store, &sent(), 40).await;
    let back = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(by_collection(&back), by_collection(&first));
}

async fn a_failing_change_anywhere_writes_nothing(db: &TestDb) {
    let store = &db.store;
    prepare(store).await;
    sync(store, &sent(), 20).await;
    let before = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    let snapshot_before = store.directory_snapshot().await.expect("snapshot");

    let mut changed = sent();
    changed[0].name = "Sales EMEA".into();
    changed.push(collection(CollectionKind::Course, 9, "New", &[2]));
    changed.remove(1);
    let planned = plan_collections_sync(&before, SOURCE, &changed);
    assert!(planned.changes.len() >= 3, "{:?}", planned.changes);

    // A membership of a user that is not there (deleted meanwhile): the foreign key fails
    // the last change, after a rename, a creation and a deletion.
    let mut broken = planned.clone();
    broken.changes.push(CollectionChange::AddMember {
        audience: AudienceRef::Existing(before.mapped[&(CollectionKind::Course, 1)]),
        user_id: 999_999,
    });
    assert!(
        store
            .apply_collections_plan(&broken, SOURCE, 30)
            .await
            .is_err()
    );
    // An audience another writer removed in between: NotFound.
    let mut raced = planned.clone();
    raced.changes.push(CollectionChange::Update {
        audience_id: 999_999,
        name: "x".into(),
        description: String::new(),
    });
    assert!(matches!(
        store.apply_collections_plan(&raced, SOURCE, 30).await,
        Err(StoreError::NotFound(_))
    ));
    // The idnumber another audience took meanwhile: Conflict.
    let mut taken = planned.clone();
    taken.changes.push(CollectionChange::Create {
        kind: CollectionKind::Cohort,
        remote_id: 77,
        idnumber: collection_idnumber(CollectionKind::Course, 1, SERVER),
        name: "dup".into(),
        description: String::new(),
    });
    assert!(matches!(
        store.apply_collections_plan(&taken, SOURCE, 30).await,
        Err(StoreError::Conflict(_))
    ));

    let after = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(after, before);
    assert_eq!(
        store.directory_snapshot().await.expect("snapshot"),
        snapshot_before
    );

    // The plan itself applies.
    store
        .apply_collections_plan(&planned, SOURCE, 40)
        .await
        .expect("apply");
}

async fn an_import_cannot_change_a_synced_audience(db: &TestDb) {
    let store = &db.store;
    prepare(store).await;
    sync(store, &sent(), 20).await;
    let snapshot = store.directory_snapshot().await.expect("snapshot");
    let idnumber = collection_idnumber(CollectionKind::Cohort, 1, SERVER);
    let import = |audience: ImportAudience| ImportDocument {
        audiences: vec![
            ImportAudience {
                idnumber: "AUD-LOCAL".into(),
                name: Some("Local".into()),
                ..ImportAudience::default()
            },
            audience,
        ],
        ..ImportDocument::default()
    };
    let known = BTreeSet::new();
    for edit in [
        ImportAudience {
            idnumber: idnumber.clone(),
            name: Some("Renamed".into()),
            ..ImportAudience::default()
        },
        ImportAudience {
            idnumber: idnumber.clone(),
            members: Some(vec!["ada".into()]),
            ..ImportAudience::default()
        },
        ImportAudience {
            idnumber: idnumber.clone(),
            description: Some(String::new()),
            ..ImportAudience::default()
        },
    ] {
        let refused = plan(&snapshot, &import(edit), &known).expect_err("refused");
        assert_eq!(refused.path, "audiences[1].idnumber");
        assert!(refused.message.contains(&idnumber), "{}", refused.message);
        assert!(refused.message.contains("`hq`"), "{}", refused.message);
    }
    // Naming it as it is (an export read back) changes nothing and is not refused.
    let same = ImportAudience {
        idnumber: idnumber.clone(),
        name: Some("Sales".into()),
        description: Some("about Sales".into()),
        members: Some(vec!["ada".into(), "bob".into()]),
    };
    let batch = plan(&snapshot, &import(same), &known).expect("unchanged");
    assert_eq!(batch.changes.len(), 1, "only the local audience is created");
}

async fn a_large_audience_is_written_a_thousand_members_at_a_time(db: &TestDb) {
    let store = &db.store;
    let count = 2_500i64;
    let mut changes = Vec::new();
    for id in 1..=count {
        let username = format!("u{id}");
        changes.push(Change::CreateUser(DirectoryUser {
            username: username.clone(),
            ..DirectoryUser::default()
        }));
        changes.push(Change::LinkConnectUser {
            username,
            link: ConnectLink {
                idp_id: "hq".into(),
                server_idnumber: SERVER.into(),
                server_user_id: id,
            },
        });
    }
    store
        .apply_batch(&Batch { changes }, WrittenBy::ADMIN_IMPORT, 10)
        .await
        .expect("users");
    let everyone: Vec<i64> = (1..=count).collect();
    let staff = |members: &[i64]| {
        vec![
            collection(CollectionKind::Cohort, 1, "Staff", members),
            collection(CollectionKind::Course, 1, "Induction", members),
        ]
    };
    sync(store, &staff(&everyone), 20).await;
    let members =
        |state: &CollectionsState, kind| state.audiences[&state.mapped[&(kind, 1)]].members.len();
    let state = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(members(&state, CollectionKind::Cohort), 2_500);
    assert_eq!(members(&state, CollectionKind::Course), 2_500);

    let plan = sync(store, &staff(&everyone[..100]), 30).await;
    assert_eq!(plan.counts(2).members_removed, 4_800);
    let state = store
        .connect_collections_state(SOURCE)
        .await
        .expect("state");
    assert_eq!(members(&state, CollectionKind::Cohort), 100);
    assert_eq!(members(&state, CollectionKind::Course), 100);
    assert!(sync(store, &staff(&everyone[..100]), 40).await.is_empty());
}
