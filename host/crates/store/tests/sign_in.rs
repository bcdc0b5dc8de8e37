//! The one-round-trip sign-in path against real databases: the lookup agrees with
//! `users_matching` and `count_matching_elsewhere` (and carries fields and links), a
//! finished sign-in writes account, session, audit row and IdP history together, and a
//! failed one (a creation that loses to a concurrent one, an unknown user) writes none of
//! them; the session and its user in one read. Runs on a fresh SQLite file always, and on
//! PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set, like `store.rs`.

use std::collections::BTreeMap;

use gatehouse_store::{
    AccountWrite, AuditEvent, FieldChange, FieldProvenance, NewUser, Session, SignInWrite, Store,
    StoreError,
};

mod support;

use support::TestDb;

on_both_backends!(
    the_lookup_agrees_with_the_separate_reads,
    a_finished_sign_in_writes_everything_at_once,
    a_lost_creation_writes_nothing,
    an_update_of_an_unknown_user_writes_nothing,
    the_session_comes_with_its_user,
);

fn user(username: &str, branch: &str, department: Option<&str>) -> NewUser {
    NewUser {
        username: username.into(),
        email: format!("{username}@example.org"),
        branch: branch.into(),
        auth_source: "idp:okta".into(),
        additional: department
            .map(|d| BTreeMap::from([("department".to_owned(), d.to_owned())]))
            .unwrap_or_default(),
        ..NewUser::default()
    }
}

fn set_by_okta(fields: &[&str]) -> Vec<FieldProvenance> {
    fields
        .iter()
        .map(|field| FieldProvenance {
            field: (*field).into(),
            idp_id: "okta".into(),
            set_at: 1,
        })
        .collect()
}

fn session(id_hash: &str) -> Session {
    Session {
        id_hash: id_hash.into(),
        user_id: 0,
        domain: "root".into(),
        idp_id: Some("okta".into()),
        subject: Some("sub-1".into()),
        logout_state: b"state".to_vec(),
        csrf_token: "csrf".into(),
        created_at: 100,
        expires_at: 1_000,
    }
}

fn audit(username: &str) -> AuditEvent {
    AuditEvent {
        at: 100,
        domain: "root".into(),
        idp_id: Some("okta".into()),
        user_id: None,
        username: username.into(),
        method: "sso".into(),
        outcome: "success".into(),
        reason: String::new(),
        ip: "192.0.2.1".into(),
    }
}

/// The live sessions of okta's subject `sub-1` (every session this file writes).
async fn sessions_of_sub_1(store: &Store) -> u64 {
    store
        .count_idp_sessions("okta", Some("sub-1"), None, 0)
        .await
        .expect("count sessions")
}

async fn the_lookup_agrees_with_the_separate_reads(db: &TestDb) {
    let store = &db.store;
    let alice = store
        .create_user(
            &user("alice", "root", Some("sales")),
            &set_by_okta(&["email", "department"]),
            1,
        )
        .await
        .expect("alice");
    store
        .link_idp(alice, "okta", "admin", 1)
        .await
        .expect("link");
    store
        .link_idp(alice, "entra", "admin", 1)
        .await
        .expect("link");
    // The same email elsewhere (set by an IdP), and a user whose username is that email.
    let mut alice2 = user("alice2", "ee", None);
    alice2.email = "alice@example.org".into();
    store
        .create_user(&alice2, &set_by_okta(&["email"]), 1)
        .await
        .expect("alice2");
    let mut named = user("alice@example.org", "ee", None);
    named.email = "other@example.org".into();
    store
        .create_user(&named, &[], 1)
        .await
        .expect("named by the email");

    for (field, value, insensitive, branch) in [
        ("email", "alice@example.org", false, "root"),
        ("email", "ALICE@example.org", true, "root"),
        ("email", "ALICE@example.org", false, "root"),
        ("username", "alice", false, "root"),
        ("username", "alice", false, "ee"),
        ("department", "sales", false, "root"),
        ("email", "nobody@example.org", false, "root"),
    ] {
        let found = store
            .sign_in_lookup(field, value, insensitive, branch)
            .await
            .expect("lookup");
        let separately = store
            .users_matching(field, value, insensitive, branch)
            .await
            .expect("users_matching");
        let mut outside = store
            .count_matching_elsewhere(field, value, insensitive, branch)
            .await
            .expect("count");
        if field != "username" {
            outside += store
                .count_matching_elsewhere("username", value, false, branch)
                .await
                .expect("count usernames");
        }
        let users: Vec<_> = found.in_branch.iter().map(|m| m.user.clone()).collect();
        assert_eq!(users, separately, "{field} = {value:?} in {branch}");
        assert_eq!(
            found.outside_branch, outside,
            "{field} = {value:?} in {branch}"
        );
    }

    let found = store
        .sign_in_lookup("email", "alice@example.org", false, "root")
        .await
        .expect("lookup");
    assert_eq!(
        found.outside_branch, 2,
        "alice2's email, and the account named by it"
    );
    let [alice_found] = found.in_branch.as_slice() else {
        panic!("one match: {found:?}");
    };
    assert_eq!(alice_found.user.id, alice);
    assert_eq!(alice_found.linked_idps, ["entra", "okta"]);
    assert_eq!(
        alice_found
            .user
            .additional
            .get("department")
            .map(String::as_str),
        Some("sales")
    );
}

async fn a_finished_sign_in_writes_everything_at_once(db: &TestDb) {
    let store = &db.store;
    let new = user("bob", "root", Some("ops"));
    let provenance = set_by_okta(&["username", "email", "department"]);
    let created = store
        .finish_sign_in(SignInWrite {
            account: AccountWrite::Create {
                user: &new,
                provenance: &provenance,
            },
            session: &session("s1"),
            audit: &audit("bob"),
            idp_success: Some(("okta", 100)),
            now: 100,
        })
        .await
        .expect("created");
    let bob = store.user_by_id(created).await.expect("read").expect("bob");
    assert_eq!(bob.username, "bob");
    assert_eq!(
        bob.additional.get("department").map(String::as_str),
        Some("ops")
    );
    let fields: Vec<String> = store
        .provenance(created)
        .await
        .expect("provenance")
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(fields, ["department", "email", "username"]);
    let (stored, of) = store
        .session_with_user("s1", 100)
        .await
        .expect("read")
        .expect("the session");
    assert_eq!((stored.user_id, of.id), (created, created));
    let logged = store.recent_audit(5).await.expect("audit");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].user_id, Some(created));
    assert_eq!(store.proven_idps().await.expect("history"), ["okta"]);

    // Again, as an update, without recording the IdP's success.
    let changes = [FieldChange {
        field: "department".into(),
        value: "sales".into(),
        provenance: Some("okta".into()),
    }];
    store
        .finish_sign_in(SignInWrite {
            account: AccountWrite::Update {
                user_id: created,
                changes: &changes,
            },
            session: &session("s2"),
            audit: &audit("bob"),
            idp_success: None,
            now: 200,
        })
        .await
        .expect("updated");
    let bob = store.user_by_id(created).await.expect("read").expect("bob");
    assert_eq!(
        bob.additional.get("department").map(String::as_str),
        Some("sales")
    );
    assert_eq!(bob.updated_at, 200);
    assert_eq!(sessions_of_sub_1(store).await, 2);
    assert_eq!(store.recent_audit(5).await.expect("audit").len(), 2);
}

async fn a_lost_creation_writes_nothing(db: &TestDb) {
    let store = &db.store;
    let first = store
        .create_user(&user("carol", "root", None), &[], 1)
        .await
        .expect("the winner");
    let error = store
        .finish_sign_in(SignInWrite {
            account: AccountWrite::Create {
                user: &user("carol", "root", Some("ops")),
                provenance: &set_by_okta(&["username"]),
            },
            session: &session("lost"),
            audit: &audit("carol"),
            idp_success: Some(("okta", 100)),
            now: 100,
        })
        .await
        .expect_err("the username is taken");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(
        store
            .session_with_user("lost", 100)
            .await
            .expect("read")
            .is_none()
    );
    assert!(store.recent_audit(5).await.expect("audit").is_empty());
    assert!(store.proven_idps().await.expect("history").is_empty());
    assert_eq!(sessions_of_sub_1(store).await, 0);
    assert!(
        store
            .provenance(first)
            .await
            .expect("provenance")
            .is_empty()
    );
}

async fn an_update_of_an_unknown_user_writes_nothing(db: &TestDb) {
    let store = &db.store;
    let error = store
        .finish_sign_in(SignInWrite {
            account: AccountWrite::Update {
                user_id: 4242,
                changes: &[],
            },
            session: &session("nobody"),
            audit: &audit("nobody"),
            idp_success: Some(("okta", 100)),
            now: 100,
        })
        .await
        .expect_err("no such user");
    assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
    assert!(store.recent_audit(5).await.expect("audit").is_empty());
    assert!(store.proven_idps().await.expect("history").is_empty());
}

async fn the_session_comes_with_its_user(db: &TestDb) {
    let store = &db.store;
    let dave = store
        .create_user(&user("dave", "root", Some("it")), &[], 1)
        .await
        .expect("dave");
    store
        .create_session(&Session {
            user_id: dave,
            ..session("live")
        })
        .await
        .expect("session");
    let (found, of) = store
        .session_with_user("live", 999)
        .await
        .expect("read")
        .expect("live at 999");
    assert_eq!(
        found,
        Session {
            user_id: dave,
            ..session("live")
        }
    );
    assert_eq!(Some(of), store.user_by_id(dave).await.expect("read"));
    assert!(
        store
            .session_with_user("live", 1_000)
            .await
            .expect("read")
            .is_none(),
        "expired at its expires_at"
    );
    assert!(
        store
            .session_with_user("other", 1)
            .await
            .expect("read")
            .is_none()
    );
}
