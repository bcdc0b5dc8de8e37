//! Property tests of the directory's pure planner (no database): planning a document against
//! the state that applying it produced yields an empty batch (importing twice changes
//! nothing), the result says what the document says and keeps what it does not name, and
//! bad records are refused by index and key.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    DirectoryAudience, DirectorySnapshot, DirectoryUser, ImportAudience, ImportDocument,
    ImportUser, plan,
};
use proptest::prelude::*;

const USERNAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const FIELDS: [&str; 2] = ["department", "region"];
const AUDIENCES: [&str; 3] = ["AUD-1", "AUD-2", "AUD-3"];

fn known_fields() -> BTreeSet<String> {
    FIELDS.iter().map(|f| (*f).to_owned()).collect()
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,3}", Just("Sales".to_owned())]
}

fn fields_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..=2)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn snapshot() -> impl Strategy<Value = DirectorySnapshot> {
    let users = prop::collection::btree_map(
        prop::sample::select(USERNAMES.to_vec()),
        (
            value(),
            value(),
            any::<bool>(),
            proptest::option::of("h[0-9]"),
            fields_map(),
        ),
        0..=5,
    );
    let audiences = prop::collection::btree_map(
        prop::sample::select(AUDIENCES.to_vec()),
        (
            value(),
            prop::collection::btree_set(prop::sample::select(USERNAMES.to_vec()), 0..=5),
        ),
        0..=3,
    );
    (users, audiences).prop_map(|(users, audiences)| {
        let users: BTreeMap<String, DirectoryUser> = users
            .into_iter()
            .map(|(name, (email, idnumber, suspended, hash, fields))| {
                let user = DirectoryUser {
                    username: name.to_owned(),
                    email: if email.is_empty() {
                        email
                    } else {
                        format!("{email}@x")
                    },
                    idnumber,
                    suspended,
                    password_hash: hash,
                    fields,
                    ..DirectoryUser::default()
                };
                (name.to_owned(), user)
            })
            .collect();
        let audiences = audiences
            .into_iter()
            .map(|(idnumber, (name, members))| {
                let audience = DirectoryAudience {
                    idnumber: idnumber.to_owned(),
                    name,
                    description: String::new(),
                    // Memberships only of users that exist, as the foreign keys ensure.
                    members: members
                        .into_iter()
                        .filter(|m| users.contains_key(*m))
                        .map(str::to_owned)
                        .collect(),
                };
                (idnumber.to_owned(), audience)
            })
            .collect();
        DirectorySnapshot {
            users,
            audiences,
            connect_links: BTreeMap::new(),
        }
    })
}

fn import_user(username: &'static str) -> impl Strategy<Value = ImportUser> {
    (
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(any::<bool>()),
        proptest::option::of("h[0-9]"),
        prop::bool::weighted(0.15),
        prop::collection::btree_map(
            prop::sample::select(FIELDS.to_vec()),
            proptest::option::of(value()),
            0..=2,
        ),
    )
        .prop_map(
            move |(email, firstname, suspended, hash, deleted, fields)| ImportUser {
                username: username.to_owned(),
                email: email.map(|e| if e.is_empty() { e } else { format!("{e}@x") }),
                firstname,
                lastname: None,
                idnumber: None,
                password_hash: hash,
                suspended,
                deleted,
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            },
        )
}

fn document() -> impl Strategy<Value = ImportDocument> {
    let users = prop::sample::subsequence(USERNAMES.to_vec(), 0..=5)
        .prop_flat_map(|names| names.into_iter().map(import_user).collect::<Vec<_>>());
    let audiences = prop::sample::subsequence(AUDIENCES.to_vec(), 0..=3).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|id| {
                (
                    proptest::option::of(value()),
                    proptest::option::of(value()),
                    proptest::option::of(prop::sample::subsequence(USERNAMES.to_vec(), 0..=5)),
                )
                    .prop_map(move |(name, description, members)| ImportAudience {
                        idnumber: id.to_owned(),
                        name,
                        description,
                        members: members.map(|m| m.into_iter().map(str::to_owned).collect()),
                    })
            })
            .collect::<Vec<_>>()
    });
    (users, audiences).prop_map(|(users, audiences)| ImportDocument { users, audiences })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn importing_twice_changes_nothing(current in snapshot(), document in document()) {
        let Ok(batch) = plan(&current, &document, &known_fields()) else {
            // A member the document does not let exist: refused, tested below.
            return Ok(());
        };
        let mut after = current.clone();
        after.apply(&batch);
        let again = plan(&after, &document, &known_fields()).expect("planned once, plans again");
        prop_assert!(again.is_empty(), "second plan: {:?}", again.changes);
    }

    #[test]
    fn the_result_says_what_the_document_says(current in snapshot(), document in document()) {
        let Ok(batch) = plan(&current, &document, &known_fields()) else {
            return Ok(());
        };
        let mut after = current.clone();
        after.apply(&batch);
        for user in &document.users {
            let stored = after.users.get(&user.username);
            if user.deleted {
                prop_assert!(stored.is_none());
                continue;
            }
            let stored = stored.expect("named users exist");
            if let Some(email) = &user.email { prop_assert_eq!(&stored.email, email); }
            if let Some(suspended) = user.suspended { prop_assert_eq!(stored.suspended, suspended); }
            for (name, value) in &user.fields {
                prop_assert_eq!(stored.fields.get(name), value.as_ref());
            }
            // What the document does not name is kept.
            if user.idnumber.is_none() && let Some(before) = current.users.get(&user.username) {
                prop_assert_eq!(&stored.idnumber, &before.idnumber);
            }
        }
        for name in USERNAMES {
            if !document.users.iter().any(|u| u.username == name) {
                prop_assert_eq!(after.users.get(name), current.users.get(name));
            }
        }
        for audience in &document.audiences {
            let stored = after.audiences.get(&audience.idnumber).expect("named audiences exist");
            if let Some(members) = &audience.members {
                let wanted: BTreeSet<String> = members.iter().cloned().collect();
                prop_assert_eq!(&stored.members, &wanted);
            }
        }
    }
}

fn user(name: &str) -> ImportUser {
    ImportUser {
        username: name.to_owned(),
        ..ImportUser::default()
    }
}

#[test]
fn bad_records_are_named_by_index_and_key() {
    let current = DirectorySnapshot::default();
    let refuse = |document: ImportDocument| {
        plan(&current, &document, &known_fields())
            .expect_err("refused")
            .to_string()
    };
    let mut spaced = user("x");
    spaced.email = Some(" a@x".to_owned());
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a"), user("b"), user("c"), spaced],
            audiences: vec![]
        }),
        "users[3].email: must not begin or end with white space"
    );
    let mut not_email = user("x");
    not_email.email = Some("nobody".to_owned());
    assert_eq!(
        refuse(ImportDocument {
            users: vec![not_email],
            audiences: vec![]
        }),
        "users[0].email: \"nobody\" is not an email address"
    );
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a"), user("a")],
            audiences: vec![]
        }),
        "users[1].username: \"a\" is already named by users[0]"
    );
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("")],
            audiences: vec![]
        }),
        "users[0].username: must not be empty"
    );
    let mut unknown_field = user("a");
    unknown_field
        .fields
        .insert("shoe".to_owned(), Some("42".to_owned()));
    assert_eq!(
        refuse(ImportDocument {
            users: vec![unknown_field],
            audiences: vec![]
        }),
        "users[0].fields.shoe: the platform has no [[field]] named \"shoe\""
    );
    let mut core_as_field = user("a");
    core_as_field
        .fields
        .insert("email".to_owned(), Some("a@x".to_owned()));
    assert_eq!(
        refuse(ImportDocument {
            users: vec![core_as_field],
            audiences: vec![]
        }),
        "users[0].fields.email: \"email\" is a core field, not a custom profile field"
    );
    let mut gone = user("b");
    gone.deleted = true;
    let audience = ImportAudience {
        idnumber: "AUD-1".to_owned(),
        members: Some(vec!["a".to_owned(), "b".to_owned()]),
        ..ImportAudience::default()
    };
    assert_eq!(
        refuse(ImportDocument {
            users: vec![user("a"), gone],
            audiences: vec![audience]
        }),
        "audiences[0].members[1]: there is no user \"b\" (or the file deletes it)"
    );
}
