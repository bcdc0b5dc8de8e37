//! The Connect server role's rows against real databases: the server idnumber made once,
//! client systems with their options and link rows (one transaction: an unknown record or a
//! duplicate URL leaves nothing), lookups by idnumber and by secret, `delete_client`'s purge,
//! SSO sessions and their single use (also under concurrency), tombstones written with
//! every user deletion, and the directory as a restricted or unrestricted client sees it.
//! Runs on a fresh SQLite file always, and on PostgreSQL (a schema of its own) when
//! `GATEHOUSE_TEST_DATABASE_URL` is set, like `store.rs`.

use std::collections::BTreeMap;

use gatehouse_store::{
    Batch, Change, ConnectClientOptions, DirectoryUser, NewConnectClient, Session, Store,
    StoreError, WrittenBy,
};

mod support;

use support::TestDb;

const NOW: i64 = 1_700_000_000;

on_both_backends!(
    the_server_idnumber_is_made_once,
    a_client_is_stored_with_every_option_and_link,
    a_duplicate_active_url_is_refused_and_nothing_written,
    an_unknown_linked_record_leaves_no_client_row,
    clients_are_found_by_idnumber_and_by_server_secret_only,
    the_api_version_and_client_type_are_recorded,
    delete_client_keeps_the_row_and_purges_sessions_and_links,
    a_failed_registration_deletes_the_row_and_its_links,
    sso_sessions_are_scoped_to_their_client_and_used_once,
    sso_activation_is_single_use_under_concurrency,
    sso_sessions_are_listed_and_deleted_by_gatehouse_session,
    deleted_users_leave_tombstones_for_unrestricted_clients,
    a_restricted_client_sees_only_members_and_no_tombstones,
    password_hashes_are_read_only_when_asked,
);

fn secret(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

fn new_client(url: &str, idnumber: char) -> NewConnectClient {
    NewConnectClient {
        client_idnumber: secret(idnumber),
        client_secret: format!("{}1", &secret(idnumber)[..39]),
        server_secret: format!("{}2", &secret(idnumber)[..39]),
        client_url: url.to_owned(),
        client_name: "LMS".to_owned(),
        client_comment: "test".to_owned(),
        options: ConnectClientOptions::default(),
    }
}

fn user(name: &str) -> DirectoryUser {
    DirectoryUser {
        username: name.to_owned(),
        email: format!("{name}@example.com"),
        firstname: name.to_owned(),
        idnumber: format!("ID-{name}"),
        password_hash: Some(format!("$argon2id$hash-of-{name}")),
        fields: [("department".to_owned(), format!("dept-{name}"))].into(),
        ..DirectoryUser::default()
    }
}

async fn apply(store: &Store, changes: Vec<Change>) {
    store
        .apply_batch(&Batch { changes }, WrittenBy::ADMIN_IMPORT, NOW)
        .await
        .expect("apply");
}

/// alice, bob and carol; audience AUD-1 with alice and carol.
async fn directory(store: &Store) {
    apply(
        store,
        vec![
            Change::CreateUser(user("alice")),
            Change::CreateUser(user("bob")),
            Change::CreateUser(user("carol")),
            Change::CreateAudience {
                idnumber: "AUD-1".into(),
                name: "Sales".into(),
                description: String::new(),
            },
            Change::CreateAudience {
                idnumber: "AUD-2".into(),
                name: "Ops".into(),
                description: String::new(),
            },
            Change::AddMember {
                audience: "AUD-1".into(),
                username: "alice".into(),
            },
            Change::AddMember {
                audience: "AUD-1".into(),
                username: "carol".into(),
            },
        ],
    )
    .await;
}

/// Courses and frameworks, which no store writer makes yet (part 2).
async fn courses_and_frameworks(url: &str) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    for sql in [
        "INSERT INTO courses (shortname, fullname, created_at, updated_at) VALUES ('C1', 'Onboarding', 1, 1)",
        "INSERT INTO hierarchy_frameworks (kind, idnumber, created_at, updated_at) VALUES ('position', 'PF-1', 1, 1)",
        "INSERT INTO hierarchy_frameworks (kind, idnumber, created_at, updated_at) VALUES ('organisation', 'OF-1', 1, 1)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect("insert");
    }
    conn.close().await.expect("close");
}

async fn count(url: &str, table: &str) -> i64 {
    use sqlx::Connection as _;
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&mut conn)
        .await
        .expect("count");
    conn.close().await.expect("close");
    n
}

async fn session(store: &Store, key: &str, user_id: i64, expires_at: i64) {
    store
        .create_session(&Session {
            id_hash: key.to_owned(),
            user_id,
            domain: "root".into(),
            idp_id: None,
            subject: None,
            logout_state: Vec::new(),
            csrf_token: "csrf".into(),
            created_at: NOW,
            expires_at,
        })
        .await
        .expect("session");
}

async fn user_id(store: &Store, name: &str) -> i64 {
    store
        .user_by_username(name)
        .await
        .expect("read")
        .expect("user")
        .id
}

// ---------------------------------------------------------------------------------------------

async fn the_server_idnumber_is_made_once(db: &TestDb) {
    let store = &db.store;
    // Two hosts asking for the first time at once agree on one of their candidates.
    let (c, d) = (secret('c'), secret('d'));
    let store2 = store.clone();
    let (x, y) = tokio::join!(
        store.connect_server_idnumber(&c),
        store2.connect_server_idnumber(&d),
    );
    let (x, y) = (x.expect("x"), y.expect("y"));
    assert_eq!(x, y);
    assert!(x == c || x == d, "{x}");
    // Never changed afterwards.
    assert_eq!(
        store
            .connect_server_idnumber(&secret('b'))
            .await
            .expect("read"),
        x
    );
}

async fn a_client_is_stored_with_every_option_and_link(db: &TestDb) {
    let (store, url) = (&db.store, db.url.as_str());
    directory(store).await;
    courses_and_frameworks(url).await;
    let mut client = new_client("https://lms.example/", 'c');
    client.options = ConnectClientOptions {
        restrict_audience: Some("AUD-1".into()),
        audiences: vec!["AUD-2".into(), "AUD-1".into()],
        courses: vec!["C1".into()],
        position_frameworks: vec!["PF-1".into()],
        organisation_frameworks: vec!["OF-1".into()],
        sync_profile_fields: true,
        sync_jobs: true,
        add_new_audiences: true,
        add_new_courses: true,
        allow_plugin_services: true,
    };
    let id = store
        .insert_connect_client(&client, NOW)
        .await
        .expect("insert");
    let clients = store.connect_clients().await.expect("list");
    assert_eq!(clients.len(), 1);
    let stored = &clients[0];
    assert_eq!(stored.id, id);
    assert!(stored.active);
    assert_eq!(
        stored.client_url, "https://lms.example",
        "trailing / stripped"
    );
    assert_eq!(stored.client_type, "");
    assert_eq!(stored.api_version, 1);
    assert_eq!(stored.client_secret, client.client_secret);
    assert_eq!(stored.server_secret, client.server_secret);
    assert_eq!(stored.client_comment, "test");
    assert_eq!(stored.created_at, NOW);
    assert!(stored.restrict_audience_id.is_some());
    let mut expected = client.options.clone();
    expected.audiences.sort();
    assert_eq!(stored.options, expected);
    // Not a position framework under another kind's name.
    let mut wrong_kind = new_client("https://other.example", 'd');
    wrong_kind.options.position_frameworks = vec!["OF-1".into()];
    assert!(matches!(
        store.insert_connect_client(&wrong_kind, NOW).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_duplicate_active_url_is_refused_and_nothing_written(db: &TestDb) {
    let (store, url) = (&db.store, db.url.as_str());
    let first = store
        .insert_connect_client(&new_client("https://lms.example", 'c'), NOW)
        .await
        .expect("first");
    let again = store
        .insert_connect_client(&new_client("https://lms.example/", 'd'), NOW)
        .await;
    assert!(
        matches!(&again, Err(StoreError::DuplicateConnectClient(u)) if u == "https://lms.example"),
        "{again:?}"
    );
    assert_eq!(count(url, "connect_clients").await, 1);
    // A deleted client's URL may be registered again.
    store
        .mark_connect_client_deleted(first, NOW)
        .await
        .expect("delete");
    store
        .insert_connect_client(&new_client("https://lms.example", 'd'), NOW)
        .await
        .expect("after delete");
    // The same idnumber twice is a conflict.
    let same_idnumber = store
        .insert_connect_client(&new_client("https://third.example", 'd'), NOW)
        .await;
    assert!(
        matches!(same_idnumber, Err(StoreError::Conflict(_))),
        "{same_idnumber:?}"
    );
    assert_eq!(count(url, "connect_clients").await, 2);
}

async fn an_unknown_linked_record_leaves_no_client_row(db: &TestDb) {
    let (store, url) = (&db.store, db.url.as_str());
    directory(store).await;
    for options in [
        ConnectClientOptions {
            restrict_audience: Some("NOPE".into()),
            ..ConnectClientOptions::default()
        },
        ConnectClientOptions {
            audiences: vec!["AUD-1".into(), "NOPE".into()],
            ..ConnectClientOptions::default()
        },
        ConnectClientOptions {
            courses: vec!["NOPE".into()],
            ..ConnectClientOptions::default()
        },
        ConnectClientOptions {
            organisation_frameworks: vec!["NOPE".into()],
            ..ConnectClientOptions::default()
        },
    ] {
        let mut client = new_client("https://lms.example", 'c');
        client.options = options;
        let refused = store.insert_connect_client(&client, NOW).await;
        assert!(
            matches!(&refused, Err(StoreError::NotFound(what)) if what.contains("NOPE")),
            "{refused:?}"
        );
        assert_eq!(count(url, "connect_clients").await, 0);
        assert_eq!(count(url, "connect_client_audiences").await, 0);
    }
}

async fn clients_are_found_by_idnumber_and_by_server_secret_only(db: &TestDb) {
    let store = &db.store;
    let client = new_client("https://lms.example", 'c');
    let id = store
        .insert_connect_client(&client, NOW)
        .await
        .expect("insert");
    let by_secret = store
        .connect_client_by_server_secret(&client.server_secret)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_secret.id, id);
    for wrong in [
        client.client_secret.as_str(),
        client.client_idnumber.as_str(),
        "",
        &client.server_secret[..39],
    ] {
        assert!(
            store
                .connect_client_by_server_secret(wrong)
                .await
                .expect("read")
                .is_none()
        );
    }
    let by_idnumber = store
        .connect_client_by_idnumber(&client.client_idnumber)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_idnumber.id, id);
    assert!(
        store
            .connect_client_by_idnumber(&secret('9'))
            .await
            .expect("read")
            .is_none()
    );
}

async fn the_api_version_and_client_type_are_recorded(db: &TestDb) {
    let store = &db.store;
    let client = new_client("https://lms.example", 'c');
    let id = store
        .insert_connect_client(&client, NOW)
        .await
        .expect("insert");
    assert!(
        store
            .update_connect_client_api_version(id, 2, "totaralms", NOW + 5)
            .await
            .expect("update")
    );
    let stored = store
        .connect_client_by_idnumber(&client.client_idnumber)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(stored.api_version, 2);
    assert_eq!(stored.client_type, "totaralms");
    assert_eq!(stored.updated_at, NOW + 5);
    assert!(
        !store
            .update_connect_client_api_version(id + 100, 2, "totaralms", NOW)
            .await
            .expect("update")
    );
}

async fn delete_client_keeps_the_row_and_purges_sessions_and_links(db: &TestDb) {
    let (store, url) = (&db.store, db.url.as_str());
    directory(store).await;
    let mut client = new_client("https://lms.example", 'c');
    client.options.audiences = vec!["AUD-1".into()];
    let id = store
        .insert_connect_client(&client, NOW)
        .await
        .expect("insert");
    let alice = user_id(store, "alice").await;
    session(store, "s1", alice, NOW + 600).await;
    store
        .create_connect_sso_session(id, alice, "s1", &secret('e'), NOW)
        .await
        .expect("sso");
    assert!(
        store
            .mark_connect_client_deleted(id, NOW + 1)
            .await
            .expect("delete")
    );
    let stored = store
        .connect_client_by_server_secret(&client.server_secret)
        .await
        .expect("read")
        .expect("row kept");
    assert!(!stored.active);
    assert!(stored.options.audiences.is_empty());
    assert_eq!(count(url, "connect_client_audiences").await, 0);
    assert_eq!(count(url, "connect_sso_sessions").await, 0);
    assert!(store.session("s1", NOW).await.expect("read").is_some());
}

async fn a_failed_registration_deletes_the_row_and_its_links(db: &TestDb) {
    let (store, url) = (&db.store, db.url.as_str());
    directory(store).await;
    let mut client = new_client("https://lms.example", 'c');
    client.options.audiences = vec!["AUD-1".into(), "AUD-2".into()];
    let id = store
        .insert_connect_client(&client, NOW)
        .await
        .expect("insert");
    assert!(store.delete_connect_client_row(id).await.expect("delete"));
    assert!(!store.delete_connect_client_row(id).await.expect("again"));
    assert_eq!(count(url, "connect_clients").await, 0);
    assert_eq!(count(url, "connect_client_audiences").await, 0);
    // The URL is free again.
    store
        .insert_connect_client(&client, NOW)
        .await
        .expect("registered again");
}

async fn sso_sessions_are_scoped_to_their_client_and_used_once(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let one = store
        .insert_connect_client(&new_client("https://one.example", 'c'), NOW)
        .await
        .expect("one");
    let two = store
        .insert_connect_client(&new_client("https://two.example", 'd'), NOW)
        .await
        .expect("two");
    let alice = user_id(store, "alice").await;
    session(store, "s1", alice, NOW + 600).await;
    let token = secret('e');
    let id = store
        .create_connect_sso_session(one, alice, "s1", &token, NOW)
        .await
        .expect("sso");
    let duplicate = store
        .create_connect_sso_session(two, alice, "s1", &token, NOW)
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert!(
        store
            .connect_sso_session_by_token(two, &token)
            .await
            .expect("read")
            .is_none(),
        "another client's token is not found"
    );
    let found = store
        .connect_sso_session_by_token(one, &token)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(found.user_id, alice);
    assert_eq!(found.session_key, "s1");
    assert_eq!(found.sso_token, token);
    assert!(!found.active);
    assert!(store.activate_connect_sso_session(id).await.expect("first"));
    assert!(
        !store
            .activate_connect_sso_session(id)
            .await
            .expect("second")
    );
    assert!(
        store
            .connect_sso_session_by_token(one, &token)
            .await
            .expect("read")
            .expect("found")
            .active
    );
}

async fn sso_activation_is_single_use_under_concurrency(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let client = store
        .insert_connect_client(&new_client("https://one.example", 'c'), NOW)
        .await
        .expect("client");
    let alice = user_id(store, "alice").await;
    session(store, "s1", alice, NOW + 600).await;
    let id = store
        .create_connect_sso_session(client, alice, "s1", &secret('e'), NOW)
        .await
        .expect("sso");
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.activate_connect_sso_session(id).await })
        })
        .collect();
    let mut won = 0;
    for attempt in tries {
        if attempt.await.expect("join").expect("activate") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

async fn sso_sessions_are_listed_and_deleted_by_gatehouse_session(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let one = store
        .insert_connect_client(&new_client("https://one.example", 'c'), NOW)
        .await
        .expect("one");
    let two = store
        .insert_connect_client(&new_client("https://two.example", 'd'), NOW)
        .await
        .expect("two");
    let alice = user_id(store, "alice").await;
    let bob = user_id(store, "bob").await;
    session(store, "s1", alice, NOW + 600).await;
    session(store, "s2", bob, NOW + 600).await;
    for (client, user, key, token) in [
        (one, alice, "s1", secret('1')),
        (two, alice, "s1", secret('2')),
        (one, bob, "s2", secret('3')),
    ] {
        store
            .create_connect_sso_session(client, user, key, &token, NOW)
            .await
            .expect("sso");
    }
    let of_s1 = store
        .connect_sso_sessions_of_session("s1")
        .await
        .expect("list");
    let seen: Vec<(i64, String)> = of_s1.iter().map(|(c, t)| (c.id, t.clone())).collect();
    assert_eq!(seen, [(one, secret('1')), (two, secret('2'))]);
    assert_eq!(of_s1[1].0.client_url, "https://two.example");
    assert_eq!(
        store
            .delete_connect_sso_sessions_of_session("s1")
            .await
            .expect("delete"),
        2
    );
    assert!(
        store
            .connect_sso_sessions_of_session("s1")
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .connect_sso_sessions_of_session("s2")
            .await
            .expect("list")
            .len(),
        1
    );
    // A Gatehouse session that is gone takes its SSO sessions with it at cleanup.
    store.delete_session("s2").await.expect("end");
    assert_eq!(
        store
            .delete_orphaned_connect_sso_sessions()
            .await
            .expect("orphans"),
        1
    );
}

async fn deleted_users_leave_tombstones_for_unrestricted_clients(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let bob = user_id(store, "bob").await;
    apply(
        store,
        vec![Change::DeleteUser {
            username: "bob".into(),
        }],
    )
    .await;
    let users = store
        .connect_visible_users(None, false)
        .await
        .expect("users");
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names.len(), 3);
    assert_eq!(names[0], "alice");
    assert_eq!(names[2], "carol");
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by id");
    let tomb = &users[1];
    assert_eq!(tomb.id, bob);
    assert!(tomb.deleted);
    assert!(!tomb.suspended);
    let suffix = tomb
        .username
        .strip_prefix("deleted_")
        .expect("deleted_ prefix");
    assert_eq!(suffix.len(), 32, "{}", tomb.username);
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(tomb.email, "");
    assert_eq!(tomb.idnumber, "");
    assert_eq!(tomb.password_hash, None);
    assert!(tomb.fields.is_empty());
    assert_eq!(tomb.updated_at, NOW);
    // The live ones carry their fields.
    assert_eq!(
        users[0].fields,
        [("department".to_owned(), "dept-alice".to_owned())]
    );
    assert!(!users[0].deleted);
    // One by id, the same way; a stable name across reads.
    let one = store
        .connect_visible_user(None, bob, false)
        .await
        .expect("read")
        .expect("tombstone");
    assert_eq!(one.username, tomb.username);
    assert!(
        store
            .connect_visible_user(None, bob + 100, false)
            .await
            .expect("read")
            .is_none()
    );
}

async fn a_restricted_client_sees_only_members_and_no_tombstones(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let mut client = new_client("https://lms.example", 'c');
    client.options.restrict_audience = Some("AUD-1".into());
    store
        .insert_connect_client(&client, NOW)
        .await
        .expect("insert");
    let restrict = store
        .connect_client_by_idnumber(&client.client_idnumber)
        .await
        .expect("read")
        .expect("client")
        .restrict_audience_id;
    assert!(restrict.is_some());
    let carol = user_id(store, "carol").await;
    let bob = user_id(store, "bob").await;
    apply(
        store,
        vec![Change::DeleteUser {
            username: "carol".into(),
        }],
    )
    .await;
    let users = store
        .connect_visible_users(restrict, false)
        .await
        .expect("users");
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(
        names,
        ["alice"],
        "no bob (not a member), no carol's tombstone"
    );
    assert_eq!(
        users[0].fields,
        [("department".to_owned(), "dept-alice".to_owned())]
    );
    for unseen in [bob, carol] {
        assert!(
            store
                .connect_visible_user(restrict, unseen, false)
                .await
                .expect("read")
                .is_none()
        );
    }
    // The audience deleted: the client sees nobody, not everybody.
    apply(
        store,
        vec![Change::DeleteAudience {
            idnumber: "AUD-1".into(),
        }],
    )
    .await;
    assert!(
        store
            .connect_visible_users(restrict, false)
            .await
            .expect("users")
            .is_empty()
    );
    let stored = store
        .connect_client_by_idnumber(&client.client_idnumber)
        .await
        .expect("read")
        .expect("client");
    assert_eq!(stored.restrict_audience_id, restrict);
    assert_eq!(stored.options.restrict_audience, None);
}

async fn password_hashes_are_read_only_when_asked(db: &TestDb) {
    let store = &db.store;
    directory(store).await;
    let alice = user_id(store, "alice").await;
    let without = store
        .connect_visible_users(None, false)
        .await
        .expect("users");
    assert!(without.iter().all(|u| u.password_hash.is_none()));
    let with: BTreeMap<String, Option<String>> = store
        .connect_visible_users(None, true)
        .await
        .expect("users")
        .into_iter()
        .map(|u| (u.username, u.password_hash))
        .collect();
    assert_eq!(with["alice"].as_deref(), Some("$argon2id$hash-of-alice"));
    let one = store
        .connect_visible_user(None, alice, true)
        .await
        .expect("read")
        .expect("alice");
    assert_eq!(
        one.password_hash.as_deref(),
        Some("$argon2id$hash-of-alice")
    );
    assert_eq!(
        store
            .connect_user_password_hash(alice)
            .await
            .expect("read")
            .as_deref(),
        Some("$argon2id$hash-of-alice")
    );
    assert_eq!(
        store
            .connect_user_field_values(alice)
            .await
            .expect("fields"),
        [("department".to_owned(), "dept-alice".to_owned())]
    );
}
