//! The store's side of migrating local accounts to a Connect server's users, against real
//! databases: every account's standing, the accounts a mapping value finds (with whether
//! their email and idnumber are trusted and whether they are linked), and the link a
//! sign-on's migration writes, refused when the account or the server user is linked
//! already. Runs on a fresh SQLite file always, and on PostgreSQL (a schema of its own) when
//! `GATEHOUSE_TEST_DATABASE_URL` is set, like `store.rs`.

use gatehouse_store::{
    Batch, Change, ConnectLink, DirectoryUser, MigrateMap, Store, StoreError, WrittenBy,
    matching_accounts,
};

const PG_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";
const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";

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
        "ghmig_{}_{}",
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
    candidates_carry_what_the_rule_needs,
    a_migrated_link_is_written_once,
);

fn link(server_user_id: i64) -> ConnectLink {
    ConnectLink {
        idp_id: "hq".into(),
        server_idnumber: SERVER.into(),
        server_user_id,
    }
}

/// ada and bob share an email (an administrator's import, so trusted); cy's email is
/// made by a Connect sync (an IdP's account).
async fn prepare(store: &Store) {
    let user = |username: &str, email: &str, idnumber: &str| {
        Change::CreateUser(DirectoryUser {
            username: username.into(),
            email: email.into(),
            idnumber: idnumber.into(),
            firstname: "F".into(),
            lastname: "L".into(),
            ..DirectoryUser::default()
        })
    };
    let local = Batch {
        changes: vec![
            user("ada", "ada@example.test", "E1"),
            user("bob", "ada@example.test", ""),
        ],
    };
    store
        .apply_batch(&local, WrittenBy::ADMIN_IMPORT, 10)
        .await
        .expect("local accounts");
    let synced = Batch {
        changes: vec![user("cy", "ada@example.test", "E1")],
    };
    store
        .apply_batch(
            &synced,
            WrittenBy {
                provenance: "hq",
                branch: "root",
                auth_source: "idp:hq",
            },
            11,
        )
        .await
        .expect("an IdP's account");
}

async fn candidates_carry_what_the_rule_needs(store: &Store) {
    prepare(store).await;
    let standings = store.account_standings().await.expect("standings");
    assert_eq!(standings.len(), 3);
    assert_eq!(standings["ada"].auth_source, "local");
    assert_eq!(standings["ada"].branch, "root");
    assert!(!standings["ada"].is_admin);
    assert_eq!(standings["cy"].auth_source, "idp:hq");

    let found = store
        .migration_candidates(MigrateMap::Email, "ada@example.test")
        .await
        .expect("reads");
    let names: Vec<&str> = found.iter().map(|f| f.user.username.as_str()).collect();
    assert_eq!(names, ["ada", "bob", "cy"]);
    assert!(
        found
            .iter()
            .all(|f| f.user.provenance.contains_key("email"))
    );
    assert!(!found[1].user.provenance.contains_key("idnumber"));
    assert!(found.iter().all(|f| !f.linked));
    // The rule over them: two local accounts match (cy is an IdP's).
    let matched = matching_accounts(
        MigrateMap::Email,
        "root",
        "ada@example.test",
        found.iter().map(|f| f.candidate()),
    );
    assert_eq!(matched, ["ada", "bob"]);
    let by_idnumber = store
        .migration_candidates(MigrateMap::Idnumber, "E1")
        .await
        .expect("reads");
    let matched = matching_accounts(
        MigrateMap::Idnumber,
        "root",
        "E1",
        by_idnumber.iter().map(|f| f.candidate()),
    );
    assert_eq!(matched, ["ada"]);
    // Exact: another case finds nothing.
    assert!(
        store
            .migration_candidates(MigrateMap::Username, "ADA")
            .await
            .expect("reads")
            .is_empty()
    );
}

async fn a_migrated_link_is_written_once(store: &Store) {
    prepare(store).await;
    let ada = store
        .user_by_username("ada")
        .await
        .expect("reads")
        .expect("ada");
    let bob = store
        .user_by_username("bob")
        .await
        .expect("reads")
        .expect("bob");
    store
        .link_migrated_account(ada.id, &link(7), 20)
        .await
        .expect("linked");
    assert_eq!(
        store
            .connect_linked_account(SERVER, 7)
            .await
            .expect("reads"),
        Some((ada.id, "hq".to_owned()))
    );
    assert_eq!(
        store
            .connect_linked_account(SERVER, 8)
            .await
            .expect("reads"),
        None
    );
    // The same server user for bob, another for ada: both refused, nothing changed.
    for (user, server_user) in [(bob.id, 7), (ada.id, 8)] {
        let error = store
            .link_migrated_account(user, &link(server_user), 21)
            .await
            .expect_err("linked already");
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    }
    let snapshot = store.directory_snapshot().await.expect("reads");
    assert_eq!(snapshot.connect_links.len(), 1);
    assert_eq!(snapshot.connect_links.get("ada"), Some(&link(7)));
    let found = store
        .migration_candidates(MigrateMap::Username, "ada")
        .await
        .expect("reads");
    assert!(found[0].linked);
}
