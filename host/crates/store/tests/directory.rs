//! The directory against real databases: a planned batch applied in one transaction (and
//! nothing written when any change fails), the snapshot read back, deletion cascading to
//! memberships, and an import planned twice being empty the second time. Runs on a fresh
//! SQLite file always, and on PostgreSQL (a schema of its own) when
//! `GATEHOUSE_TEST_DATABASE_URL` is set, like `store.rs`.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    Batch, Change, ConnectLink, DirectoryUser, ImportAudience, ImportDocument, ImportUser, Store,
    StoreError, WrittenBy, plan,
};

const PG_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";

/// A database for one test: a SQLite file in a temporary directory, or a fresh Postgres schema.
async fn open(backend: &str, test: &str) -> Option<(Store, Box<dyn std::any::Any>)> {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gh.db").display());
        return Some((Store::connect(&url).await.expect("SQLite"), Box::new(dir)));
    }
    use sqlx::Connection as _;
    let Ok(admin_url) = std::env::var(PG_ENV) else {
        eprintln!("postgres::{test}: NOT RUN ({PG_ENV} is not set)");
        return None;
    };
    let schema = format!(
        "ghdir_{}_{}",
        &test[..test.len().min(30)],
        std::process::id()
    );
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .expect("Postgres");
    for sql in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("schema");
    }
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
    Some((Store::connect(&url).await.expect("Postgres"), Box::new(())))
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _keep) = super::open("sqlite", stringify!($name)).await.expect("SQLite");
                super::$name(&store).await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _keep)) = super::open("postgres", stringify!($name)).await else { return };
                super::$name(&store).await;
            }
        )* }
    };
}

on_both_backends!(
    a_batch_creates_users_fields_and_audiences,
    a_failing_change_leaves_nothing_written,
    planning_the_same_import_twice_is_empty,
    deleting_a_user_removes_its_memberships,
    connect_links_are_unique_per_server_user,
    an_idps_unlinked_accounts_are_listed,
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

async fn a_batch_creates_users_fields_and_audiences(store: &Store) {
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

async fn a_failing_change_leaves_nothing_written(store: &Store) {
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

async fn planning_the_same_import_twice_is_empty(store: &Store) {
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

async fn deleting_a_user_removes_its_memberships(store: &Store) {
    import(store, &document(), 10).await;
    let delete_bob = ImportDocument {
        users: vec![ImportUser {
            username: "bob".into(),
            deleted: true,
            ..ImportUser::default()
        }],
        audiences: vec![],
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

async fn connect_links_are_unique_per_server_user(store: &Store) {
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

async fn an_idps_unlinked_accounts_are_listed(store: &Store) {
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
