//! Tests of `gatehouse-store` against real databases: every test body runs on a fresh SQLite
//! file always, and on PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set (each Postgres test
//! in its own schema). Not unit tests of private helpers, and not benchmarks.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use gatehouse_store::{
    AuditEvent, Backend, CleanupCounts, FieldChange, FieldProvenance, NewTaskRun, NewUser,
    PendingLogin, PendingStage, Session, SignInPurpose, Store, StoreError, TaskOutcome,
};

const PG_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";

/// Writes straight to the process's stderr, which the test harness does not capture, so the
/// message shows in a plain `cargo test` run.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Backends

struct Db {
    store: Store,
    /// A URL that reaches the same database (to open a second `Store`, like a second host).
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let store = Store::connect(&url).await.expect("connect to SQLite");
    Db {
        store,
        url,
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A fresh schema for one test, or `None` (after saying so) when Postgres is not configured.
async fn postgres_db(test: &str) -> Option<Db> {
    use sqlx::Connection as _;

    let Ok(admin_url) = std::env::var(PG_ENV) else {
        say(&format!("postgres::{test}: NOT RUN ({PG_ENV} is not set)"));
        return None;
    };
    let short: String = test.chars().take(40).collect();
    let schema = format!("gh_{short}_{}", std::process::id());
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .expect("connect to Postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await
    .expect("drop old schema");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create schema");
    admin.close().await.expect("close admin connection");

    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
    let store = Store::connect(&url).await.expect("connect to Postgres");
    Some(Db {
        store,
        url,
        cleanup: Cleanup::Postgres { admin_url, schema },
    })
}

impl Db {
    async fn finish(self) {
        self.store.close().await;
        if let Cleanup::Postgres { admin_url, schema } = self.cleanup {
            use sqlx::Connection as _;
            let mut admin = sqlx::AnyConnection::connect(&admin_url)
                .await
                .expect("reconnect");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .expect("drop schema");
        }
    }
}

/// Declares each test body twice: `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite_db().await;
                    super::$name(&db.store, &db.url).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::postgres_db(stringify!($name)).await else { return };
                    assert_eq!(db.store.backend(), gatehouse_store::Backend::Postgres);
                    super::$name(&db.store, &db.url).await;
                    db.finish().await;
                }
            )*
        }
    };
}

on_both_backends!(
    ping_and_backend,
    create_and_read_user,
    duplicate_username_conflicts_and_writes_nothing,
    update_user_fields_is_one_transaction,
    password_and_suspension,
    users_matching_case_and_branch,
    users_matching_an_additional_field_needs_its_provenance,
    sessions_create_read_expire_delete,
    idp_sessions_by_subject_and_logout_state,
    take_pending_is_single_use,
    take_pending_concurrent_takers,
    take_pending_only_in_its_stage,
    kv_ttl_and_only_if_absent,
    kv_concurrent_put_if_absent,
    audit_newest_first,
    throttle_counts,
    throttle_parallel_reservations_admit_exactly_the_limit,
    typed_in_values_never_match,
    idp_links_and_host_keys,
    idp_history,
    idp_activity_counts_refusals_in_two_windows,
    cleanup_cleans_every_table,
    task_lease_is_exclusive_until_it_expires,
    task_lease_concurrent_acquirers,
    task_runs_record_and_read,
    admins_and_matches_elsewhere,
);

/// Always runs: says whether the Postgres variants above ran. With
/// `GATEHOUSE_REQUIRE_POSTGRES=1` (for CI) it fails when they did not.
#[test]
fn postgres_backend_status() {
    match std::env::var(PG_ENV) {
        Ok(_) => say("PostgreSQL store tests: RUN (postgres::* above)"),
        Err(_) => {
            say(&format!(
                "PostgreSQL store tests: NOT RUN, the postgres::* tests returned early; set {PG_ENV}"
            ));
            assert!(
                std::env::var("GATEHOUSE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "GATEHOUSE_REQUIRE_POSTGRES=1 but {PG_ENV} is not set"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Provenance rows saying IdP `okta` set each of `fields`.
fn from_idp(fields: &[&str]) -> Vec<FieldProvenance> {
    fields
        .iter()
        .map(|field| FieldProvenance {
            field: (*field).into(),
            idp_id: "okta".into(),
            set_at: 1,
        })
        .collect()
}

fn new_user(username: &str, branch: &str) -> NewUser {
    NewUser {
        username: username.into(),
        email: format!("{username}@example.org"),
        firstname: "First".into(),
        lastname: "Last".into(),
        idnumber: String::new(),
        branch: branch.into(),
        auth_source: "local".into(),
        password_hash: None,
        is_admin: false,
        additional: BTreeMap::new(),
    }
}

fn session(id_hash: &str, user_id: i64, expires_at: i64) -> Session {
    Session {
        id_hash: id_hash.into(),
        user_id,
        domain: "root".into(),
        idp_id: None,
        subject: None,
        logout_state: Vec::new(),
        csrf_token: format!("csrf-{id_hash}"),
        created_at: 100,
        expires_at,
    }
}

fn pending(token_hash: &str, expires_at: i64) -> PendingLogin {
    PendingLogin {
        token_hash: token_hash.into(),
        idp_id: "okta".into(),
        plugin_state: vec![0, 1, 2, 255],
        browser_binding_hash: "binding".into(),
        return_to: "/course/view.php?id=3".into(),
        purpose: SignInPurpose::TestSignIn,
        stage: PendingStage::Begun,
        created_at: 100,
        expires_at,
    }
}

fn change(field: &str, value: &str, provenance: Option<&str>) -> FieldChange {
    FieldChange {
        field: field.into(),
        value: value.into(),
        provenance: provenance.map(Into::into),
    }
}

// ---------------------------------------------------------------------------------------------
// Test bodies, written once for both backends

async fn ping_and_backend(store: &Store, url: &str) {
    store.ping().await.expect("ping");
    assert_eq!(Backend::from_url(url).expect("backend"), store.backend());
    // A second connect to the same database finds the migrations applied and changes nothing.
    let again = Store::connect(url).await.expect("second connect");
    assert_eq!(again.count_users().await.expect("count"), 0);
    again.close().await;
}

async fn create_and_read_user(store: &Store, _url: &str) {
    let mut user = new_user("alice", "branch-a");
    user.idnumber = "ID-1".into();
    user.auth_source = "idp:okta".into();
    user.additional
        .insert("department".into(), "Physics".into());
    user.additional.insert("employee_no".into(), "42".into());
    let provenance = vec![
        FieldProvenance {
            field: "email".into(),
            idp_id: "okta".into(),
            set_at: 1000,
        },
        FieldProvenance {
            field: "department".into(),
            idp_id: "okta".into(),
            set_at: 1000,
        },
    ];
    let id = store
        .create_user(&user, &provenance, 1000)
        .await
        .expect("create");
    assert!(id > 0);

    let got = store.user_by_id(id).await.expect("by id").expect("exists");
    assert_eq!(got.id, id);
    assert_eq!(got.username, "alice");
    assert_eq!(got.email, "alice@example.org");
    assert_eq!(got.firstname, "First");
    assert_eq!(got.lastname, "Last");
    assert_eq!(got.idnumber, "ID-1");
    assert_eq!(got.branch, "branch-a");
    assert_eq!(got.auth_source, "idp:okta");
    assert_eq!(got.password_hash, None);
    assert!(!got.suspended);
    assert_eq!(got.additional, user.additional);
    assert_eq!((got.created_at, got.updated_at), (1000, 1000));

    let by_name = store
        .user_by_username("alice")
        .await
        .expect("by name")
        .expect("exists");
    assert_eq!(by_name, got);
    assert!(
        store
            .user_by_username("Alice")
            .await
            .expect("by name")
            .is_none()
    );
    assert!(store.user_by_id(id + 1000).await.expect("by id").is_none());

    let mut prov = store.provenance(id).await.expect("provenance");
    prov.sort_by(|a, b| a.field.cmp(&b.field));
    assert_eq!(prov, {
        let mut p = provenance.clone();
        p.sort_by(|a, b| a.field.cmp(&b.field));
        p
    });

    // A second user gets another id; count sees both.
    let id2 = store
        .create_user(&new_user("bob", "branch-a"), &[], 1001)
        .await
        .expect("bob");
    assert_ne!(id, id2);
    assert_eq!(store.count_users().await.expect("count"), 2);
    assert!(store.provenance(id2).await.expect("provenance").is_empty());
    assert!(
        store
            .user_by_id(id2)
            .await
            .expect("bob")
            .expect("bob")
            .additional
            .is_empty()
    );
}

async fn duplicate_username_conflicts_and_writes_nothing(store: &Store, _url: &str) {
    let mut first = new_user("carol", "b");
    first.additional.insert("colour".into(), "blue".into());
    let id = store
        .create_user(
            &first,
            &[FieldProvenance {
                field: "colour".into(),
                idp_id: "idp1".into(),
                set_at: 5,
            }],
            5,
        )
        .await
        .expect("first carol");

    let mut second = new_user("carol", "other-branch");
    second.email = "impostor@example.org".into();
    second.additional.insert("colour".into(), "red".into());
    second.additional.insert("extra".into(), "x".into());
    let err = store
        .create_user(
            &second,
            &[FieldProvenance {
                field: "email".into(),
                idp_id: "idp2".into(),
                set_at: 6,
            }],
            6,
        )
        .await
        .expect_err("duplicate must fail");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("carol"), "{err}");

    assert_eq!(store.count_users().await.expect("count"), 1);
    let got = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(got.email, "carol@example.org");
    assert_eq!(got.additional, first.additional);
    let prov = store.provenance(id).await.expect("provenance");
    assert_eq!(prov.len(), 1);
    assert_eq!(prov[0].idp_id, "idp1");

    // The transaction really rolled back: the next user is created normally.
    store
        .create_user(&new_user("dave", "b"), &[], 7)
        .await
        .expect("dave");
    assert_eq!(store.count_users().await.expect("count"), 2);

    // Names that would shadow user columns are refused before anything is written.
    let mut bad = new_user("erin", "b");
    bad.additional.insert("branch".into(), "x".into());
    let err = store
        .create_user(&bad, &[], 8)
        .await
        .expect_err("reserved name");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(store.count_users().await.expect("count"), 2);
}

async fn update_user_fields_is_one_transaction(store: &Store, _url: &str) {
    let mut user = new_user("frank", "b");
    user.additional.insert("dept".into(), "old".into());
    let id = store
        .create_user(
            &user,
            &[
                FieldProvenance {
                    field: "firstname".into(),
                    idp_id: "okta".into(),
                    set_at: 10,
                },
                FieldProvenance {
                    field: "dept".into(),
                    idp_id: "okta".into(),
                    set_at: 10,
                },
            ],
            10,
        )
        .await
        .expect("create");
    store
        .create_user(&new_user("grace", "b"), &[], 10)
        .await
        .expect("grace");

    store
        .update_user_fields(
            id,
            &[
                change("email", "frank@new.example", Some("azure")),
                change("firstname", "Francis", None),
                change("dept", "new", Some("azure")),
                change("office", "B12", Some("okta")),
            ],
            20,
        )
        .await
        .expect("update");
    let got = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(got.email, "frank@new.example");
    assert_eq!(got.firstname, "Francis");
    assert_eq!(got.additional.get("dept").map(String::as_str), Some("new"));
    assert_eq!(
        got.additional.get("office").map(String::as_str),
        Some("B12")
    );
    assert_eq!((got.created_at, got.updated_at), (10, 20));
    let prov: BTreeMap<String, (String, i64)> = store
        .provenance(id)
        .await
        .expect("provenance")
        .into_iter()
        .map(|p| (p.field, (p.idp_id, p.set_at)))
        .collect();
    let expected: BTreeMap<String, (String, i64)> = [
        ("dept".to_string(), ("azure".to_string(), 20)),
        ("email".to_string(), ("azure".to_string(), 20)),
        ("office".to_string(), ("okta".to_string(), 20)),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        prov, expected,
        "firstname's provenance must be gone (typed by a person)"
    );

    // A batch whose last change fails (username taken) leaves everything as it was.
    let err = store
        .update_user_fields(
            id,
            &[
                change("email", "should-not-stick@example", Some("x")),
                change("dept", "should-not-stick", None),
                change("username", "grace", Some("x")),
            ],
            30,
        )
        .await
        .expect_err("username taken");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let after = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(after, got);
    assert_eq!(store.provenance(id).await.expect("provenance").len(), 3);

    // Renaming to a free username works.
    store
        .update_user_fields(id, &[change("username", "francis", None)], 40)
        .await
        .expect("rename");
    assert!(
        store
            .user_by_username("frank")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store
            .user_by_username("francis")
            .await
            .expect("read")
            .expect("renamed")
            .id,
        id
    );

    let err = store
        .update_user_fields(id + 1000, &[], 50)
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    for field in [
        "branch",
        "suspended",
        "password_hash",
        "auth_source",
        "id",
        "",
    ] {
        let err = store
            .update_user_fields(id, &[change(field, "x", None)], 50)
            .await
            .expect_err("refused field");
        assert!(matches!(err, StoreError::Invalid(_)), "{field}: {err:?}");
    }
    assert_eq!(
        store
            .user_by_id(id)
            .await
            .expect("read")
            .expect("exists")
            .updated_at,
        40
    );
}

async fn password_and_suspension(store: &Store, _url: &str) {
    let id = store
        .create_user(&new_user("heidi", "b"), &[], 1)
        .await
        .expect("create");
    store
        .set_password_hash(id, "$argon2id$v=19$m=19456,t=2,p=1$abc$def", 2)
        .await
        .expect("set");
    let got = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(
        got.password_hash.as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$abc$def")
    );
    assert_eq!(got.updated_at, 2);

    store.set_suspended(id, true, 3).await.expect("suspend");
    assert!(
        store
            .user_by_id(id)
            .await
            .expect("read")
            .expect("exists")
            .suspended
    );
    store.set_suspended(id, false, 4).await.expect("reinstate");
    assert!(
        !store
            .user_by_id(id)
            .await
            .expect("read")
            .expect("exists")
            .suspended
    );

    let err = store
        .set_password_hash(id + 1000, "x", 5)
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// `match_field` may name an additional field (SAML admins match on an employee number):
/// only a value an IdP or an administrator set matches, exactly or ignoring case, within
/// the branch; so do the core name fields.
async fn users_matching_an_additional_field_needs_its_provenance(store: &Store, _url: &str) {
    let mut set_by_idp = new_user("nora", "north");
    set_by_idp
        .additional
        .insert("employee".into(), "E-77".into());
    let mut typed_by_user = new_user("olaf", "north");
    typed_by_user
        .additional
        .insert("employee".into(), "E-88".into());
    let mut elsewhere = new_user("pia", "south");
    elsewhere
        .additional
        .insert("employee".into(), "E-77".into());
    let nora = store
        .create_user(&set_by_idp, &from_idp(&["employee", "firstname"]), 1)
        .await
        .expect("nora");
    store
        .create_user(&typed_by_user, &[], 1)
        .await
        .expect("olaf");
    store
        .create_user(&elsewhere, &from_idp(&["employee"]), 1)
        .await
        .expect("pia");
    let ids =
        |users: Vec<gatehouse_store::User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();

    let found = store
        .users_matching("employee", "E-77", false, "north")
        .await
        .unwrap();
    assert_eq!(ids(found), [nora]);
    assert!(
        store
            .users_matching("employee", "e-77", false, "north")
            .await
            .unwrap()
            .is_empty()
    );
    let found = store
        .users_matching("employee", "e-77", true, "north")
        .await
        .unwrap();
    assert_eq!(ids(found), [nora]);
    assert!(
        store
            .users_matching("employee", "E-88", false, "north")
            .await
            .unwrap()
            .is_empty(),
        "a value without provenance (typed by the user) never matches"
    );
    assert!(
        store
            .users_matching("department", "E-77", false, "north")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .count_matching_elsewhere("employee", "E-77", false, "north")
            .await
            .unwrap(),
        1
    );
    let found = store
        .users_matching("firstname", "First", false, "north")
        .await
        .unwrap();
    assert_eq!(ids(found), [nora], "only nora's firstname came from an IdP");
}

async fn users_matching_case_and_branch(store: &Store, _url: &str) {
    let mut a1 = new_user("Ivan", "north");
    a1.email = "Ivan@Example.org".into();
    a1.idnumber = "X-1".into();
    let mut a2 = new_user("judy", "north");
    a2.email = "shared@example.org".into();
    let mut a3 = new_user("ken", "north");
    a3.email = "SHARED@example.org".into();
    let mut a4 = new_user("lea", "north");
    a4.email = "shared@example.org".into();
    let mut b1 = new_user("ivan", "south");
    b1.email = "ivan@example.org".into();
    let from_idp = from_idp(&["email", "idnumber"]);
    let id1 = store.create_user(&a1, &from_idp, 1).await.expect("a1");
    let id2 = store.create_user(&a2, &from_idp, 1).await.expect("a2");
    let id3 = store.create_user(&a3, &from_idp, 1).await.expect("a3");
    store.create_user(&a4, &from_idp, 1).await.expect("a4");
    let id5 = store.create_user(&b1, &from_idp, 1).await.expect("b1");

    let ids =
        |users: Vec<gatehouse_store::User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();

    // Exact match honours case and branch.
    assert_eq!(
        ids(store
            .users_matching("username", "Ivan", false, "north")
            .await
            .unwrap()),
        [id1]
    );
    assert!(
        store
            .users_matching("username", "ivan", false, "north")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(store
            .users_matching("username", "ivan", false, "south")
            .await
            .unwrap()),
        [id5]
    );
    // Case-insensitive finds across case, still within the branch.
    assert_eq!(
        ids(store
            .users_matching("username", "IVAN", true, "north")
            .await
            .unwrap()),
        [id1]
    );
    assert_eq!(
        ids(store
            .users_matching("email", "ivan@example.ORG", true, "north")
            .await
            .unwrap()),
        [id1]
    );
    assert!(
        store
            .users_matching("email", "ivan@example.ORG", false, "north")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(store
            .users_matching("idnumber", "x-1", true, "north")
            .await
            .unwrap()),
        [id1]
    );
    assert!(
        store
            .users_matching("idnumber", "x-1", false, "north")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .users_matching("idnumber", "X-1", false, "south")
            .await
            .unwrap()
            .is_empty()
    );
    // Several matches: at most two, lowest ids first.
    assert_eq!(
        ids(store
            .users_matching("email", "shared@example.org", false, "north")
            .await
            .unwrap())
        .len(),
        2
    );
    assert_eq!(
        ids(store
            .users_matching("email", "shared@EXAMPLE.org", true, "north")
            .await
            .unwrap()),
        [id2, id3]
    );
    // Matches carry their additional fields like any other read.
    let m = store
        .users_matching("username", "Ivan", false, "north")
        .await
        .unwrap();
    assert_eq!(m[0], store.user_by_id(id1).await.unwrap().unwrap());

    // Other names are additional fields, bound as values and never interpolated: a
    // column that is no profile field (`branch`) or a hostile name matches nobody.
    for field in ["username; DROP TABLE users", "branch", "north", ""] {
        let found = store
            .users_matching(field, "north", false, "north")
            .await
            .expect("a query, not an error");
        assert!(found.is_empty(), "{field}: {found:?}");
    }
    assert_eq!(store.count_users().await.unwrap(), 5);
}

async fn sessions_create_read_expire_delete(store: &Store, _url: &str) {
    let uid = store
        .create_user(&new_user("mallory", "b"), &[], 1)
        .await
        .expect("user");
    let s1 = session("hash-1", uid, 1000);
    let mut s2 = session("hash-2", uid, 500);
    s2.idp_id = Some("okta".into());
    s2.logout_state = vec![9, 0, 8, 0, 255];
    store.create_session(&s1).await.expect("s1");
    store.create_session(&s2).await.expect("s2");

    assert_eq!(
        store.session("hash-1", 999).await.expect("read"),
        Some(s1.clone())
    );
    assert_eq!(
        store.session("hash-2", 100).await.expect("read"),
        Some(s2.clone())
    );
    // Expired at expires_at.
    assert_eq!(store.session("hash-2", 500).await.expect("read"), None);
    assert_eq!(store.session("hash-1", 1000).await.expect("read"), None);
    assert_eq!(store.session("nope", 0).await.expect("read"), None);

    let err = store.create_session(&s1).await.expect_err("duplicate id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = store
        .create_session(&session("hash-3", uid + 1000, 10))
        .await
        .expect_err("no user");
    assert!(
        !matches!(err, StoreError::Conflict(_)),
        "foreign key, not conflict: {err:?}"
    );

    store.delete_session("hash-1").await.expect("delete");
    assert_eq!(store.session("hash-1", 0).await.expect("read"), None);
    store
        .delete_session("hash-1")
        .await
        .expect("delete twice is fine");
    assert_eq!(store.session("hash-2", 0).await.expect("read"), Some(s2));
}

async fn idp_sessions_by_subject_and_logout_state(store: &Store, _url: &str) {
    let uid = store
        .create_user(&new_user("ada", "b"), &[], 1)
        .await
        .expect("user");
    let at_idp = |hash: &str, idp: &str, subject: &str, state: &[u8], expires_at| {
        let mut s = session(hash, uid, expires_at);
        s.idp_id = Some(idp.into());
        s.subject = Some(subject.into());
        s.logout_state = state.to_vec();
        s
    };
    for s in [
        at_idp("a1", "saml", "ada", b"index-1", 1000),
        at_idp("a2", "saml", "ada", b"index-2", 1000),
        at_idp("a3", "saml", "ada", b"index-3", 50),
        at_idp("g1", "saml", "grace", b"index-1", 1000),
        at_idp("o1", "oidc", "ada", b"index-1", 1000),
    ] {
        store.create_session(&s).await.expect("session");
    }
    let count = |subject, state| store.count_idp_sessions("saml", subject, state, 100);
    assert_eq!(
        count(Some("ada"), None).await.expect("count"),
        2,
        "live only"
    );
    assert_eq!(count(None, Some(&b"index-1"[..])).await.expect("count"), 2);
    assert_eq!(
        count(Some("ada"), Some(&b"index-2"[..]))
            .await
            .expect("count"),
        1
    );
    assert!(matches!(
        count(None, None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.delete_idp_sessions("saml", None, None).await,
        Err(StoreError::Invalid(_))
    ));

    // Only that IdP's sessions of that subject: the other IdP's and subject's stay.
    let ended = store
        .delete_idp_sessions("saml", Some("ada"), None)
        .await
        .expect("delete");
    assert_eq!(ended, 3, "expired ones too");
    assert!(store.session("g1", 0).await.expect("read").is_some());
    assert!(store.session("o1", 0).await.expect("read").is_some());
    let ended = store
        .delete_idp_sessions("saml", None, Some(&b"index-1"[..]))
        .await
        .expect("delete");
    assert_eq!(ended, 1);
    assert!(store.session("g1", 0).await.expect("read").is_none());
}

async fn take_pending_is_single_use(store: &Store, _url: &str) {
    let live = pending("tok-live", 1000);
    let mut expired = pending("tok-old", 50);
    expired.purpose = SignInPurpose::SignIn;
    expired.plugin_state = Vec::new();
    store.insert_pending(&live).await.expect("insert");
    store.insert_pending(&expired).await.expect("insert");
    let err = store.insert_pending(&live).await.expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(
        store
            .take_pending("tok-live", PendingStage::Begun)
            .await
            .expect("take"),
        Some(live)
    );
    assert_eq!(
        store
            .take_pending("tok-live", PendingStage::Begun)
            .await
            .expect("take again"),
        None
    );
    // Expired: still handed back once (the caller says "expired"), and gone afterwards.
    assert_eq!(
        store
            .take_pending("tok-old", PendingStage::Begun)
            .await
            .expect("take"),
        Some(expired)
    );
    assert_eq!(
        store
            .take_pending("tok-old", PendingStage::Begun)
            .await
            .expect("take again"),
        None
    );
    assert_eq!(
        store
            .take_pending("never", PendingStage::Begun)
            .await
            .expect("take"),
        None
    );
}

/// A token is taken only by the step of its own stage: an answered sign-in's handle is no
/// state token, and a begun sign-in's state token no finish handle.
async fn take_pending_only_in_its_stage(store: &Store, _url: &str) {
    store
        .insert_pending(&pending("tok-begun", i64::MAX))
        .await
        .expect("insert");
    let answered = PendingLogin {
        stage: PendingStage::Answered,
        ..pending("tok-answered", i64::MAX)
    };
    store.insert_pending(&answered).await.expect("insert");
    assert_eq!(
        store
            .take_pending("tok-begun", PendingStage::Answered)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_pending("tok-answered", PendingStage::Begun)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_pending("tok-answered", PendingStage::Answered)
            .await
            .expect("take"),
        Some(answered),
        "the wrong stage neither took nor deleted it"
    );
    assert!(
        store
            .take_pending("tok-begun", PendingStage::Begun)
            .await
            .expect("take")
            .is_some()
    );
}

async fn take_pending_concurrent_takers(store: &Store, url: &str) {
    // A second store on the same database plays a second host behind the load balancer.
    let other = Store::connect(url).await.expect("second host");
    for round in 0..5 {
        let token = format!("race-{round}");
        store
            .insert_pending(&pending(&token, 1000))
            .await
            .expect("insert");
        let token = Arc::new(token);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let token = Arc::clone(&token);
            tasks.push(tokio::spawn(async move {
                s.take_pending(&token, PendingStage::Begun).await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            if task.await.expect("join").expect("take").is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one taker may win");
    }
    other.close().await;
}

async fn kv_ttl_and_only_if_absent(store: &Store, _url: &str) {
    assert_eq!(store.kv_get("saml:1", "a", 0).await.unwrap(), None);
    assert!(
        store
            .kv_put("saml:1", "a", b"one", Some(100), false, 0)
            .await
            .unwrap()
    );
    assert_eq!(
        store.kv_get("saml:1", "a", 99).await.unwrap(),
        Some(b"one".to_vec())
    );
    assert_eq!(
        store.kv_get("saml:1", "a", 100).await.unwrap(),
        None,
        "expired at expires_at"
    );
    // Scopes are separate.
    assert_eq!(store.kv_get("saml:2", "a", 0).await.unwrap(), None);

    // Live value: put_if_absent refuses and leaves it alone.
    assert!(
        !store
            .kv_put("saml:1", "a", b"two", Some(500), true, 50)
            .await
            .unwrap()
    );
    assert_eq!(
        store.kv_get("saml:1", "a", 50).await.unwrap(),
        Some(b"one".to_vec())
    );
    // Expired value counts as absent.
    assert!(
        store
            .kv_put("saml:1", "a", b"three", Some(500), true, 100)
            .await
            .unwrap()
    );
    assert_eq!(
        store.kv_get("saml:1", "a", 499).await.unwrap(),
        Some(b"three".to_vec())
    );
    // Unconditional put overwrites, and can remove the expiry.
    assert!(
        store
            .kv_put("saml:1", "a", b"", None, false, 100)
            .await
            .unwrap()
    );
    assert_eq!(
        store.kv_get("saml:1", "a", i64::MAX).await.unwrap(),
        Some(Vec::new())
    );
    // A value without expiry is never absent.
    assert!(
        !store
            .kv_put("saml:1", "a", b"four", None, true, i64::MAX)
            .await
            .unwrap()
    );
    // Absent key: put_if_absent writes.
    assert!(
        store
            .kv_put("saml:2", "a", &[0, 255], None, true, 0)
            .await
            .unwrap()
    );
    assert_eq!(
        store.kv_get("saml:2", "a", 0).await.unwrap(),
        Some(vec![0, 255])
    );

    store.kv_delete("saml:1", "a").await.unwrap();
    assert_eq!(store.kv_get("saml:1", "a", 0).await.unwrap(), None);
    store
        .kv_delete("saml:1", "a")
        .await
        .expect("deleting twice is fine");
    assert_eq!(
        store.kv_get("saml:2", "a", 0).await.unwrap(),
        Some(vec![0, 255])
    );
}

async fn kv_concurrent_put_if_absent(store: &Store, url: &str) {
    let other = Store::connect(url).await.expect("second host");
    for round in 0..5 {
        let key = Arc::new(format!("assertion-{round}"));
        // Rounds 3 and 4 race over an expired row, which must behave like an absent one.
        if round >= 3 {
            store
                .kv_put("replay", &key, b"old", Some(10), false, 0)
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let key = Arc::clone(&key);
            tasks.push(tokio::spawn(async move {
                s.kv_put("replay", &key, &[i], Some(1000), true, 100).await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            if task.await.expect("join").expect("put") {
                winners += 1;
            }
        }
        assert_eq!(
            winners, 1,
            "round {round}: exactly one put_if_absent may win"
        );
        assert!(store.kv_get("replay", &key, 100).await.unwrap().is_some());
    }
    other.close().await;
}

async fn audit_newest_first(store: &Store, _url: &str) {
    let event = |at: i64, username: &str, outcome: &str| AuditEvent {
        at,
        domain: "learn.example.org".into(),
        idp_id: (at % 2 == 0).then(|| "okta".to_string()),
        user_id: (at > 15).then_some(at * 10),
        username: username.into(),
        method: "sso".into(),
        outcome: outcome.into(),
        reason: format!("reason {at}"),
        ip: "192.0.2.7".into(),
    };
    let events = [
        event(10, "a", "success"),
        event(30, "b", "failure"),
        event(20, "c", "refused"),
        event(30, "d", "success"),
    ];
    for e in &events {
        store.audit(e).await.expect("audit");
    }
    let recent = store.recent_audit(10).await.expect("recent");
    let order: Vec<&str> = recent.iter().map(|e| e.username.as_str()).collect();
    // Newest first; among equal times the later insertion first.
    assert_eq!(order, ["d", "b", "c", "a"]);
    assert_eq!(recent[0], events[3]);
    assert_eq!(recent[3], events[0]);
    assert_eq!(recent[3].user_id, None);
    assert_eq!(recent[3].idp_id.as_deref(), Some("okta"));
    assert_eq!(store.recent_audit(2).await.expect("recent").len(), 2);
    assert!(store.recent_audit(0).await.expect("recent").is_empty());
    assert!(store.recent_audit(-1).await.expect("recent").is_empty());
}

async fn throttle_counts(store: &Store, _url: &str) {
    // Three attempts allowed in a 60-second window that starts at the first one.
    for (at, expected) in [(100, 1), (110, 2), (120, 3)] {
        assert_eq!(
            store.throttle_reserve("ip:a", at, 60, 3).await.unwrap(),
            Some(expected)
        );
    }
    assert_eq!(
        store.throttle_reserve("ip:a", 130, 60, 3).await.unwrap(),
        None,
        "the fourth attempt in the window is refused"
    );
    assert_eq!(store.throttle_count("ip:a", 130, 60).await.unwrap(), 3);
    assert_eq!(store.throttle_count("ip:other", 130, 60).await.unwrap(), 0);
    // A released reservation frees one place; the others stay counted.
    store.throttle_release("ip:a").await.unwrap();
    assert_eq!(
        store.throttle_reserve("ip:a", 131, 60, 3).await.unwrap(),
        Some(3)
    );
    // Once the window that began at 100 has passed, counting starts again.
    assert_eq!(store.throttle_count("ip:a", 160, 60).await.unwrap(), 0);
    assert_eq!(
        store.throttle_reserve("ip:a", 160, 60, 3).await.unwrap(),
        Some(1)
    );
    // Releasing never goes below zero.
    for _ in 0..3 {
        store.throttle_release("ip:b").await.unwrap();
    }
    assert_eq!(store.throttle_count("ip:b", 160, 60).await.unwrap(), 0);
}

/// Regression (login throttling read the count before hashing and wrote it after): 40
/// parallel reservations against a limit of 5 admit exactly 5.
async fn throttle_parallel_reservations_admit_exactly_the_limit(store: &Store, _url: &str) {
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let store = store.clone();
        attempts.spawn(async move { store.throttle_reserve("pair:x", 1_000, 900, 5).await });
    }
    let mut admitted = 0;
    while let Some(outcome) = attempts.join_next().await {
        if outcome.expect("task").expect("reserve").is_some() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
}

/// Regression (a user could take over accounts by editing their own email): a value the
/// account's own user typed never makes a match; one an IdP or an admin set does.
async fn typed_in_values_never_match(store: &Store, _url: &str) {
    let attacker = store
        .create_user(&new_user("mallory", "root"), &from_idp(&["email"]), 1)
        .await
        .unwrap();
    let victim_email = "victim@example.org";
    store
        .update_user_fields(
            attacker,
            &[FieldChange {
                field: "email".into(),
                value: victim_email.into(),
                provenance: None,
            }],
            2,
        )
        .await
        .unwrap();
    for ci in [false, true] {
        assert!(
            store
                .users_matching("email", victim_email, ci, "root")
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        store
            .count_matching_elsewhere("email", victim_email, false, "acme")
            .await
            .unwrap(),
        0,
        "a typed value does not block creations elsewhere either"
    );
    // An administrator's value counts.
    store
        .update_user_fields(
            attacker,
            &[FieldChange {
                field: "email".into(),
                value: victim_email.into(),
                provenance: Some(gatehouse_store::ADMIN_PROVENANCE.into()),
            }],
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .users_matching("email", victim_email, false, "root")
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn idp_links_and_host_keys(store: &Store, _url: &str) {
    let uid = store
        .create_user(&new_user("local", "root"), &[], 1)
        .await
        .unwrap();
    assert!(store.linked_idps(uid).await.unwrap().is_empty());
    store.link_idp(uid, "okta", "admin", 5).await.unwrap();
    store
        .link_idp(uid, "okta", "admin", 6)
        .await
        .expect("twice is a no-op");
    store.link_idp(uid, "azure", "admin", 6).await.unwrap();
    assert_eq!(store.linked_idps(uid).await.unwrap(), ["azure", "okta"]);
    assert!(store.unlink_idp(uid, "okta").await.unwrap());
    assert!(!store.unlink_idp(uid, "okta").await.unwrap());
    assert_eq!(store.linked_idps(uid).await.unwrap(), ["azure"]);
    let err = store
        .link_idp(uid + 1000, "okta", "admin", 7)
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let first = store.host_key("binding", b"first", 1).await.unwrap();
    let second = store.host_key("binding", b"second", 2).await.unwrap();
    assert_eq!(first, b"first");
    assert_eq!(second, b"first", "the key stored first is kept");
}

async fn idp_history(store: &Store, _url: &str) {
    assert_eq!(store.idp_last_success("okta").await.unwrap(), None);
    store.record_idp_success("okta", 100).await.unwrap();
    assert_eq!(store.idp_last_success("okta").await.unwrap(), Some(100));
    store.record_idp_success("okta", 50).await.unwrap();
    assert_eq!(
        store.idp_last_success("okta").await.unwrap(),
        Some(100),
        "never moves back"
    );
    store.record_idp_success("okta", 200).await.unwrap();
    assert_eq!(store.idp_last_success("okta").await.unwrap(), Some(200));
    assert_eq!(store.idp_last_success("azure").await.unwrap(), None);
    store.record_idp_success("azure", 5).await.unwrap();
    assert_eq!(store.proven_idps().await.unwrap(), ["azure", "okta"]);
}

/// The status page's one query: last success and SSO refusals per IdP, over two windows;
/// successes, other methods, audit rows without an IdP and rows before the window are not
/// counted.
async fn idp_activity_counts_refusals_in_two_windows(store: &Store, _url: &str) {
    let row = |at: i64, idp: Option<&str>, method: &str, outcome: &str| AuditEvent {
        at,
        domain: "root".into(),
        idp_id: idp.map(str::to_owned),
        user_id: None,
        username: String::new(),
        method: method.into(),
        outcome: outcome.into(),
        reason: "because".into(),
        ip: "192.0.2.1".into(),
    };
    assert_eq!(store.idp_activity(1_000, 2_000).await.unwrap(), []);
    store.record_idp_success("okta", 2_500).await.unwrap();
    for event in [
        row(999, Some("okta"), "sso", "refused"), // before both windows
        row(1_000, Some("okta"), "sso", "refused"), // the day's first instant
        row(1_500, Some("okta"), "sso", "failure"),
        row(2_000, Some("okta"), "sso", "refused"), // the hour's first instant
        row(2_100, Some("okta"), "sso", "success"),
        row(2_200, Some("okta"), "test", "refused"),
        row(2_300, Some("azure"), "sso", "refused"),
        row(2_400, None, "password", "refused"),
    ] {
        store.audit(&event).await.unwrap();
    }
    let activity = store.idp_activity(1_000, 2_000).await.unwrap();
    assert_eq!(
        activity,
        [
            gatehouse_store::IdpActivity {
                idp_id: "azure".into(),
                last_success_at: None,
                refusals_recent: 1,
                refusals: 1,
            },
            gatehouse_store::IdpActivity {
                idp_id: "okta".into(),
                last_success_at: Some(2_500),
                refusals_recent: 1,
                refusals: 3,
            },
        ]
    );
}

async fn admins_and_matches_elsewhere(store: &Store, _url: &str) {
    let admin = NewUser {
        is_admin: true,
        ..new_user("root-admin", "root")
    };
    let admin_id = store.create_user(&admin, &[], 1).await.unwrap();
    let learner_id = store
        .create_user(&new_user("Ada", "acme"), &from_idp(&["email"]), 1)
        .await
        .unwrap();
    assert!(store.user_by_id(admin_id).await.unwrap().unwrap().is_admin);
    assert!(
        !store
            .user_by_id(learner_id)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );

    // Ada lives in `acme`: from `root` she is elsewhere, from `acme` she is not.
    let elsewhere = |field: &'static str, value: &'static str, ci: bool, branch: &'static str| {
        store.count_matching_elsewhere(field, value, ci, branch)
    };
    assert_eq!(
        elsewhere("username", "Ada", false, "root").await.unwrap(),
        1
    );
    assert_eq!(
        elsewhere("username", "ada", false, "root").await.unwrap(),
        0
    );
    assert_eq!(elsewhere("username", "ada", true, "root").await.unwrap(), 1);
    assert_eq!(
        elsewhere("email", "Ada@example.org", false, "root")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        elsewhere("username", "Ada", false, "acme").await.unwrap(),
        0
    );
    // `branch` is no profile field: read as an additional field's name (bound, never
    // interpolated), it matches nobody.
    assert_eq!(elsewhere("branch", "acme", false, "root").await.unwrap(), 0);
}

async fn cleanup_cleans_every_table(store: &Store, _url: &str) {
    let uid = store
        .create_user(&new_user("olga", "b"), &[], 1)
        .await
        .expect("user");
    store
        .create_session(&session("old", uid, 100))
        .await
        .unwrap();
    store
        .create_session(&session("live", uid, 1000))
        .await
        .unwrap();
    store.insert_pending(&pending("old", 100)).await.unwrap();
    store.insert_pending(&pending("live", 1000)).await.unwrap();
    store
        .kv_put("s", "old", b"x", Some(100), false, 0)
        .await
        .unwrap();
    store
        .kv_put("s", "live", b"x", Some(1000), false, 0)
        .await
        .unwrap();
    store
        .kv_put("s", "forever", b"x", None, false, 0)
        .await
        .unwrap();
    let now = 100_000;
    let ancient = now - gatehouse_store::THROTTLE_RETENTION_SECS - 1;
    store.throttle_reserve("old", ancient, 60, 5).await.unwrap();
    store
        .throttle_reserve("recent", now - 10, 60, 5)
        .await
        .unwrap();
    for at in [10, 20, 5_000] {
        store.audit(&audit_at(at)).await.unwrap();
    }
    // Two old runs of `cleanup` (the later one is its latest and stays), one old run of
    // `users` for IdP `okta` (its only one: stays), one recent run.
    for (task, idp, at) in [
        ("cleanup", None, 10),
        ("cleanup", None, 20),
        ("users", Some("okta"), 10),
        ("users", None, 5_000),
    ] {
        store
            .record_task_run(&task_run(task, idp, at))
            .await
            .unwrap();
    }

    let first = store.cleanup(500, 100).await.expect("first sweep");
    assert_eq!(
        first,
        CleanupCounts {
            sessions: 1,
            pending_logins: 1,
            kv: 1,
            throttle: 0,
            audit: 2,
            task_runs: 1,
        }
    );
    assert_eq!(first.total(), 6);
    assert!(store.session("live", 500).await.unwrap().is_some());
    assert_eq!(
        store.kv_get("s", "live", 500).await.unwrap(),
        Some(b"x".to_vec())
    );
    assert_eq!(
        store
            .take_pending("old", PendingStage::Begun)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .take_pending("live", PendingStage::Begun)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.recent_audit(10).await.unwrap().len(), 1);
    let cleanup_runs = store.task_runs("cleanup", None, 10).await.unwrap();
    assert_eq!(cleanup_runs.len(), 1, "the latest run of a task stays");
    assert_eq!(cleanup_runs[0].run.started_at, 20);
    assert_eq!(
        store
            .task_runs("users", Some("okta"), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // At `now` the live session and kv row have expired too, and the ancient counter is past
    // retention; only the kv row without expiry and the recent counter survive.
    let second = store.cleanup(now, 100).await.expect("second sweep");
    assert_eq!(
        second,
        CleanupCounts {
            sessions: 1,
            kv: 1,
            throttle: 1,
            ..CleanupCounts::default()
        }
    );
    assert_eq!(
        store.kv_get("s", "forever", now).await.unwrap(),
        Some(b"x".to_vec())
    );
    assert_eq!(store.throttle_count("recent", now, 60).await.unwrap(), 1);
    assert!(
        store.user_by_id(uid).await.unwrap().is_some(),
        "users are never swept"
    );
    assert_eq!(store.cleanup(now, 100).await.unwrap().total(), 0);
}

fn audit_at(at: i64) -> AuditEvent {
    AuditEvent {
        at,
        domain: "root".into(),
        idp_id: None,
        user_id: None,
        username: "u".into(),
        method: "password".into(),
        outcome: "failure".into(),
        reason: "test".into(),
        ip: "192.0.2.1".into(),
    }
}

fn task_run(task: &str, idp: Option<&str>, started_at: i64) -> NewTaskRun {
    NewTaskRun {
        task: task.into(),
        idp_id: idp.map(Into::into),
        holder: "host-a".into(),
        started_at,
        finished_at: started_at + 1,
        outcome: TaskOutcome::Ok,
        duration_ms: 1_000,
        summary: format!("{task} at {started_at}"),
        error: None,
    }
}

async fn task_lease_is_exclusive_until_it_expires(store: &Store, url: &str) {
    let other = Store::connect(url).await.expect("second host");
    assert!(
        store
            .acquire_task_lease("cleanup", "", "a", 100, 160)
            .await
            .unwrap()
    );
    // Another host is refused while the lease lives, up to its last second.
    assert!(
        !other
            .acquire_task_lease("cleanup", "", "b", 100, 160)
            .await
            .unwrap()
    );
    assert!(
        !other
            .acquire_task_lease("cleanup", "", "b", 159, 219)
            .await
            .unwrap()
    );
    // The same task for an IdP is another lease.
    assert!(
        other
            .acquire_task_lease("cleanup", "okta", "b", 100, 160)
            .await
            .unwrap()
    );
    // The holder may take it again (and extend it), and renew it.
    assert!(
        store
            .acquire_task_lease("cleanup", "", "a", 120, 180)
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_task_lease("cleanup", "", "a", 200)
            .await
            .unwrap()
    );
    assert!(
        !other
            .renew_task_lease("cleanup", "", "b", 300)
            .await
            .unwrap()
    );
    let lease = store
        .task_lease("cleanup", "")
        .await
        .unwrap()
        .expect("lease");
    assert_eq!(
        (lease.holder.as_str(), lease.acquired_at, lease.expires_at),
        ("a", 120, 200)
    );

    // Expired (`expires_at <= now`): a crashed holder's lease is taken over.
    assert!(
        !other
            .acquire_task_lease("cleanup", "", "b", 199, 260)
            .await
            .unwrap()
    );
    assert!(
        other
            .acquire_task_lease("cleanup", "", "b", 200, 260)
            .await
            .unwrap()
    );
    // The old holder can neither renew nor release it any more.
    assert!(
        !store
            .renew_task_lease("cleanup", "", "a", 400)
            .await
            .unwrap()
    );
    assert!(!store.release_task_lease("cleanup", "", "a").await.unwrap());
    assert_eq!(
        store
            .task_lease("cleanup", "")
            .await
            .unwrap()
            .map(|l| l.holder),
        Some("b".to_owned())
    );
    // Released, it is free at once.
    assert!(other.release_task_lease("cleanup", "", "b").await.unwrap());
    assert_eq!(store.task_lease("cleanup", "").await.unwrap(), None);
    assert!(
        store
            .acquire_task_lease("cleanup", "", "a", 201, 261)
            .await
            .unwrap()
    );
    // A lease must end after it starts.
    assert!(matches!(
        store.acquire_task_lease("x", "", "a", 100, 100).await,
        Err(StoreError::Invalid(_))
    ));
    other.close().await;
}

/// Many hosts racing for one free (or expired) lease: exactly one wins each round.
async fn task_lease_concurrent_acquirers(store: &Store, url: &str) {
    let other = Store::connect(url).await.expect("second host");
    for round in 0..5i64 {
        let now = 1_000 + round * 100;
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..16 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            racers.spawn(async move {
                s.acquire_task_lease("users", "okta", &format!("host-{i}"), now, now + 60)
                    .await
            });
        }
        let mut winners = 0;
        while let Some(won) = racers.join_next().await {
            if won.expect("task").expect("acquire") {
                winners += 1;
            }
        }
        // Each round's lease expires before the next round (60 < 100), so it is free again.
        assert_eq!(
            winners, 1,
            "round {round}: exactly one host may hold the lease"
        );
    }
    other.close().await;
}

async fn task_runs_record_and_read(store: &Store, _url: &str) {
    assert_eq!(store.last_task_run("cleanup", None).await.unwrap(), None);
    let mut failed = task_run("cleanup", None, 50);
    failed.outcome = TaskOutcome::Failed;
    failed.error = Some("database is locked".into());
    let id = store.record_task_run(&failed).await.unwrap();
    store
        .record_task_run(&task_run("cleanup", None, 40))
        .await
        .unwrap();
    store
        .record_task_run(&task_run("cleanup", Some("okta"), 60))
        .await
        .unwrap();
    let mut skipped = task_run("users", Some("okta"), 70);
    skipped.outcome = TaskOutcome::Skipped;
    store.record_task_run(&skipped).await.unwrap();

    let last = store
        .last_task_run("cleanup", None)
        .await
        .unwrap()
        .expect("a run");
    assert_eq!(last.id, id, "the latest start, not the latest insertion");
    assert_eq!(last.run, failed);
    let runs = store.task_runs("cleanup", None, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run.started_at).collect::<Vec<_>>(),
        [50, 40]
    );
    assert_eq!(
        store
            .last_task_run("cleanup", Some("okta"))
            .await
            .unwrap()
            .map(|r| r.run.started_at),
        Some(60)
    );
    assert_eq!(
        store
            .last_task_run("users", Some("okta"))
            .await
            .unwrap()
            .map(|r| r.run.outcome),
        Some(TaskOutcome::Skipped)
    );
    assert!(
        store
            .task_runs("cleanup", None, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// SQLite only

#[tokio::test]
async fn sqlite_file_uses_wal_and_is_created_if_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sub-less.db");
    assert!(!path.exists());
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.expect("connect");
    assert!(path.exists(), "created if missing");
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(
        store
            .sqlite_journal_mode()
            .await
            .expect("pragma")
            .as_deref(),
        Some("wal")
    );
    let id = store
        .create_user(&new_user("pat", "b"), &[], 1)
        .await
        .expect("user");
    store.close().await;

    // Reopening keeps the data and WAL; migrations are not re-applied.
    let store = Store::connect(&url).await.expect("reconnect");
    assert_eq!(
        store
            .sqlite_journal_mode()
            .await
            .expect("pragma")
            .as_deref(),
        Some("wal")
    );
    assert_eq!(
        store
            .user_by_id(id)
            .await
            .expect("read")
            .expect("kept")
            .username,
        "pat"
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_enforces_foreign_keys() {
    let db = sqlite_db().await;
    let err = db
        .store
        .create_session(&session("x", 12345, 10))
        .await
        .expect_err("no user");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_url_works() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    assert_eq!(
        store
            .sqlite_journal_mode()
            .await
            .expect("pragma")
            .as_deref(),
        Some("memory")
    );
    let id = store
        .create_user(&new_user("quinn", "b"), &[], 1)
        .await
        .expect("user");
    // Every later call sees the same database (the pool keeps its one connection).
    assert_eq!(
        store
            .user_by_id(id)
            .await
            .expect("read")
            .expect("kept")
            .username,
        "quinn"
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.kv_put("m", "k", &[i], None, true, 0).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("join").expect("put"));
    }
    assert_eq!(winners, 1);
    assert_eq!(store.count_users().await.expect("count"), 1);
}

// ---------------------------------------------------------------------------------------------
// Connection errors

#[tokio::test]
async fn connect_error_does_not_leak_password() {
    // Nothing listens on port 1, so this fails fast, after the URL has been parsed.
    let err = Store::connect("postgres://gatehouse:Sup3r%2BSecret@127.0.0.1:1/gatehouse")
        .await
        .expect_err("nothing listens on port 1");
    let shown = format!("{err} / {err:?}");
    assert!(matches!(err, StoreError::Connect(_)), "{shown}");
    assert!(!shown.contains("Sup3r"), "password leaked: {shown}");

    let err = Store::connect("mysql://root:hunter2@localhost/db")
        .await
        .expect_err("unsupported");
    let shown = format!("{err} / {err:?}");
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
