//! The store's side of the Connect server's session flows (`connect_server_flows`): the keys
//! an IdP selector matches are exactly the sessions `delete_idp_sessions` deletes, an expired
//! session can still be read and only ever extended, and the keep-alive finds exactly the
//! expired sessions that have Connect SSO sessions. On a fresh SQLite file always, and on
//! PostgreSQL (a schema of its own) when `GATEHOUSE_TEST_DATABASE_URL` is set.

use std::collections::BTreeMap;

use gatehouse_store::{
    Batch, Change, FrameworkKind, NewConnectClient, NewUser, Session, Store, WrittenBy,
};

mod support;

use support::TestDb;

on_both_backends!(
    idp_session_keys_are_what_the_selector_deletes,
    an_expired_session_is_read_and_only_extended,
    the_sweep_sees_expired_sessions_with_connect_sso_only,
    records_are_found_by_their_key_and_members_by_audience,
);

async fn user(store: &Store, username: &str) -> i64 {
    let user = NewUser {
        username: username.into(),
        email: format!("{username}@example.org"),
        firstname: "First".into(),
        lastname: "Last".into(),
        idnumber: String::new(),
        branch: "root".into(),
        auth_source: "local".into(),
        password_hash: None,
        is_admin: false,
        additional: BTreeMap::new(),
    };
    store.create_user(&user, &[], 1).await.expect("user")
}

fn session(
    id_hash: &str,
    user_id: i64,
    idp: Option<&str>,
    subject: &str,
    expires_at: i64,
) -> Session {
    Session {
        id_hash: id_hash.into(),
        user_id,
        domain: "root".into(),
        idp_id: idp.map(str::to_owned),
        subject: Some(subject.into()),
        logout_state: subject.as_bytes().to_vec(),
        csrf_token: format!("csrf-{id_hash}"),
        created_at: 100,
        expires_at,
    }
}

async fn idp_session_keys_are_what_the_selector_deletes(db: &TestDb) {
    let store = &db.store;
    let id = user(store, "ada").await;
    for s in [
        session("a1", id, Some("hq"), "s1", 1_000),
        session("a2", id, Some("hq"), "s1", 10),
        session("a3", id, Some("hq"), "s2", 1_000),
        session("a4", id, Some("other"), "s1", 1_000),
        session("a5", id, None, "s1", 1_000),
    ] {
        store.create_session(&s).await.expect("session");
    }
    let mut keys = store
        .idp_session_keys("hq", Some("s1"), None)
        .await
        .expect("keys");
    keys.sort();
    assert_eq!(
        keys,
        ["a1", "a2"],
        "live and expired, this IdP and subject only"
    );
    assert_eq!(
        store
            .idp_session_keys("hq", None, Some(b"s2".as_slice()))
            .await
            .expect("keys"),
        ["a3"]
    );
    assert!(store.idp_session_keys("hq", None, None).await.is_err());
    let deleted = store
        .delete_idp_sessions("hq", Some("s1"), None)
        .await
        .expect("delete");
    assert_eq!(deleted, 2);
    assert!(
        store
            .idp_session_keys("hq", Some("s1"), None)
            .await
            .expect("keys")
            .is_empty()
    );
}

async fn an_expired_session_is_read_and_only_extended(db: &TestDb) {
    let store = &db.store;
    let id = user(store, "ada").await;
    store
        .create_session(&session("old", id, None, "s", 500))
        .await
        .expect("session");
    assert_eq!(store.session("old", 600).await.expect("read"), None);
    let read = store
        .session_even_if_expired("old")
        .await
        .expect("read")
        .expect("the expired row");
    assert_eq!(read.expires_at, 500);
    assert_eq!(
        store.session_even_if_expired("none").await.expect("read"),
        None
    );
    assert!(
        !store.extend_session("old", 400).await.expect("earlier"),
        "moved back"
    );
    assert!(store.extend_session("old", 2_000).await.expect("later"));
    assert_eq!(
        store
            .session("old", 600)
            .await
            .expect("read")
            .map(|s| s.expires_at),
        Some(2_000)
    );
    assert!(!store.extend_session("none", 2_000).await.expect("absent"));
}

async fn the_sweep_sees_expired_sessions_with_connect_sso_only(db: &TestDb) {
    let store = &db.store;
    let id = user(store, "ada").await;
    for s in [
        session("expired-sso", id, None, "s", 10),
        session("expired-plain", id, None, "s", 10),
        session("live-sso", id, None, "s", 1_000),
    ] {
        store.create_session(&s).await.expect("session");
    }
    let client = store
        .insert_connect_client(
            &NewConnectClient {
                client_idnumber: "1".repeat(40),
                client_secret: "2".repeat(40),
                server_secret: "3".repeat(40),
                client_url: "https://learn.example.test".into(),
                client_name: "Learn".into(),
                client_comment: String::new(),
                options: Default::default(),
            },
            1,
        )
        .await
        .expect("client");
    for (key, token) in [("expired-sso", "a"), ("live-sso", "b")] {
        store
            .create_connect_sso_session(client, id, key, &token.repeat(40), 1)
            .await
            .expect("sso session");
    }
    assert_eq!(
        store
            .expired_sessions_with_connect_sso(100, 10)
            .await
            .expect("keys"),
        ["expired-sso"]
    );
    assert!(
        store
            .expired_sessions_with_connect_sso(100, 0)
            .await
            .expect("keys")
            .is_empty()
    );
}

async fn records_are_found_by_their_key_and_members_by_audience(db: &TestDb) {
    let store = &db.store;
    let ada = user(store, "ada").await;
    let bob = user(store, "bob").await;
    let batch = Batch {
        changes: vec![
            Change::CreateAudience {
                idnumber: "AUD-1".into(),
                name: "Staff".into(),
                description: String::new(),
            },
            Change::AddMember {
                audience: "AUD-1".into(),
                username: "ada".into(),
            },
        ],
    };
    store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, 1)
        .await
        .expect("audience");
    let audience = store
        .audience_id_by_idnumber("AUD-1")
        .await
        .expect("q")
        .expect("AUD-1");
    assert!(store.is_audience_member(audience, ada).await.expect("q"));
    assert!(!store.is_audience_member(audience, bob).await.expect("q"));
    assert_eq!(
        store.audience_id_by_idnumber("AUD-X").await.expect("q"),
        None
    );
    assert_eq!(store.course_id_by_shortname("C-X").await.expect("q"), None);
    assert_eq!(
        store
            .framework_id_by_idnumber(FrameworkKind::Position, "PF-X")
            .await
            .expect("q"),
        None
    );
}
