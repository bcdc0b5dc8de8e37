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

mod support;

use support::TestDb;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";

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

async fn candidates_carry_what_the_rule_needs(db: &TestDb) {
    let store = &db.store;
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

async fn a_migrated_link_is_written_once(db: &TestDb) {
    let store = &db.store;
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
