//! Account administration in the store, on SQLite and PostgreSQL: the must-change flag
//! (migration 0009), a password replaced with every session ended and one started in the
//! same transaction, suspension, and the summaries with the last sign-in.

mod support;

use gatehouse_store::{AuditEvent, NewUser, PasswordReplacement, Session, StoreError};
use support::TestDb;

fn local(username: &str) -> NewUser {
    NewUser {
        username: username.into(),
        email: format!("{username}@example.test"),
        branch: "root".into(),
        auth_source: "local".into(),
        password_hash: Some("$argon2id$old".into()),
        ..NewUser::default()
    }
}

fn session(user_id: i64, name: &str) -> Session {
    Session {
        id_hash: format!("hash-{name}"),
        user_id,
        domain: "root".into(),
        idp_id: None,
        subject: None,
        logout_state: Vec::new(),
        csrf_token: String::new(),
        created_at: 10,
        expires_at: 1_000,
    }
}

fn audit(user_id: i64, method: &str, outcome: &str, at: i64) -> AuditEvent {
    AuditEvent {
        at,
        domain: "root".into(),
        idp_id: None,
        user_id: Some(user_id),
        username: String::new(),
        method: method.into(),
        outcome: outcome.into(),
        reason: String::new(),
        ip: String::new(),
    }
}

async fn the_flag_is_kept_and_cleared(db: &TestDb) {
    let store = &db.store;
    let flagged = store
        .create_user_with_flag(&local("admin"), true, 5)
        .await
        .expect("create");
    let plain = store
        .create_user_with_flag(&local("grace"), false, 5)
        .await
        .expect("create");
    let user = |id| async move { store.user_by_id(id).await.unwrap().expect("user") };
    assert!(user(flagged).await.must_change_password);
    assert!(!user(plain).await.must_change_password);
    store
        .set_must_change_password(plain, true, 6)
        .await
        .expect("set");
    assert!(user(plain).await.must_change_password);
    assert!(matches!(
        store.set_must_change_password(9_999, true, 6).await,
        Err(StoreError::NotFound(_))
    ));
    // The session read every request makes carries it too.
    store.create_session(&session(flagged, "a")).await.unwrap();
    let (_, signed_in) = store
        .session_with_user("hash-a", 20)
        .await
        .unwrap()
        .expect("session");
    assert!(signed_in.must_change_password);
}

async fn a_replaced_password_ends_every_session_and_starts_one(db: &TestDb) {
    let store = &db.store;
    let id = store
        .create_user_with_flag(&local("admin"), true, 5)
        .await
        .unwrap();
    let other = store.create_user(&local("grace"), &[], 5).await.unwrap();
    for name in ["a", "b", "c"] {
        store.create_session(&session(id, name)).await.unwrap();
    }
    store.create_session(&session(other, "g")).await.unwrap();
    assert_eq!(
        store.user_session_keys(id).await.unwrap(),
        ["hash-a", "hash-b", "hash-c"]
    );
    let row = audit(id, "password-change", "success", 30);
    let ended = store
        .replace_password(PasswordReplacement {
            user_id: id,
            hash: "$argon2id$new",
            must_change: false,
            new_session: Some(&session(0, "fresh")),
            audit: &row,
            now: 30,
        })
        .await
        .expect("replace");
    assert_eq!(ended, 3);
    assert_eq!(store.user_session_keys(id).await.unwrap(), ["hash-fresh"]);
    assert_eq!(store.count_user_sessions(other, 20).await.unwrap(), 1);
    let user = store.user_by_id(id).await.unwrap().expect("user");
    assert_eq!(user.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(!user.must_change_password);
    assert_eq!(user.updated_at, 30);
    assert_eq!(
        store.recent_audit(1).await.unwrap(),
        std::slice::from_ref(&row)
    );

    // An unknown user: nothing written, not even the audit row.
    let missing = store
        .replace_password(PasswordReplacement {
            user_id: 9_999,
            hash: "$argon2id$x",
            must_change: true,
            new_session: Some(&session(0, "orphan")),
            audit: &audit(9_999, "admin-set-password", "success", 40),
            now: 40,
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(store.recent_audit(1).await.unwrap(), [row]);
    assert!(store.session("hash-orphan", 40).await.unwrap().is_none());
}

async fn suspension_ends_sessions_and_summaries_show_the_last_sign_in(db: &TestDb) {
    let store = &db.store;
    let admin = store.create_user(&local("admin"), &[], 5).await.unwrap();
    let sso = store
        .create_user(
            &NewUser {
                username: "ada".into(),
                auth_source: "idp:corp".into(),
                password_hash: None,
                ..local("ada")
            },
            &[],
            5,
        )
        .await
        .unwrap();
    store.create_session(&session(sso, "s1")).await.unwrap();
    store.create_session(&session(sso, "s2")).await.unwrap();
    for (at, method, outcome) in [
        (100, "password", "success"),
        (200, "sso", "success"),
        (300, "sso", "failure"),
        (400, "password-change", "success"),
        (500, "logout", "success"),
    ] {
        store.audit(&audit(sso, method, outcome, at)).await.unwrap();
    }
    let ended = store
        .suspend_user(sso, true, &audit(sso, "admin-suspend", "success", 600), 600)
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert_eq!(store.count_user_sessions(sso, 20).await.unwrap(), 0);
    assert!(store.user_by_id(sso).await.unwrap().expect("ada").suspended);
    let ended = store
        .suspend_user(
            sso,
            false,
            &audit(sso, "admin-unsuspend", "success", 700),
            700,
        )
        .await
        .unwrap();
    assert_eq!(ended, 0);
    assert!(!store.user_by_id(sso).await.unwrap().expect("ada").suspended);
    assert!(matches!(
        store
            .suspend_user(9_999, true, &audit(9_999, "admin-suspend", "success", 1), 1)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Only successful sign-ins count: password or SSO.
    assert_eq!(store.last_sign_in(sso).await.unwrap(), Some(200));
    assert_eq!(store.last_sign_in(admin).await.unwrap(), None);
    let summaries = store.account_summaries().await.unwrap();
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0].username, "admin");
    assert!(summaries[0].has_password);
    assert_eq!(summaries[0].last_sign_in, None);
    assert_eq!(summaries[1].username, "ada");
    assert!(!summaries[1].has_password);
    assert_eq!(summaries[1].auth_source, "idp:corp");
    assert_eq!(summaries[1].last_sign_in, Some(200));
    assert!(!summaries[1].suspended);
}

on_both_backends!(
    the_flag_is_kept_and_cleared,
    a_replaced_password_ends_every_session_and_starts_one,
    suspension_ends_sessions_and_summaries_show_the_last_sign_in,
);
