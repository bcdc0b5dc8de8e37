//! Property tests of the pure Connect users-sync planner (no database): syncing again
//! against the result changes nothing; server-deleted users are deleted whatever the
//! settings; users no longer sent are kept, suspended or deleted as `remove_user` says;
//! suspension is copied only in suspend mode; users of other servers are never touched.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    Change, ConnectLink, DirectorySnapshot, DirectoryUser, RemoveUser, ServerUser, SyncOptions,
    SyncSource, adopt_signed_in_users, connect_username, count_users_sync, plan_users_sync,
};
use proptest::prelude::*;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const OTHER_SERVER: &str = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8";
const OTHER_IDP: &str = "branch-hq";
const SOURCE: SyncSource<'static> = SyncSource {
    idp_id: "hq",
    server_idnumber: SERVER,
};

fn known_fields() -> BTreeSet<String> {
    ["department".to_owned(), "region".to_owned()].into()
}

fn idnumber() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "E[1-3]"]
}

fn fields() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["department", "region", "shoe"]),
        "[a-b]{0,1}",
        0..=3,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Local users: some linked to this server (ids 1..=6), some to another server, some not
/// linked (one of them may hold a `tc_` name this server would give).
fn current() -> impl Strategy<Value = DirectorySnapshot> {
    let local = (
        idnumber(),
        any::<bool>(),
        fields(),
        0..4u8,
        1..=6i64,
        "[a-c]{1}",
    );
    prop::collection::vec(local, 0..8).prop_map(|locals| {
        let mut snapshot = DirectorySnapshot::default();
        let mut used_ids = BTreeSet::new();
        for (i, (idnumber, suspended, fields, kind, server_id, first)) in
            locals.into_iter().enumerate()
        {
            let username = match kind {
                2 => connect_username(server_id, SERVER),
                _ => format!("local{i}"),
            };
            if snapshot.users.contains_key(&username) {
                continue;
            }
            snapshot.users.insert(
                username.clone(),
                DirectoryUser {
                    username: username.clone(),
                    idnumber,
                    suspended,
                    firstname: first,
                    fields: fields.into_iter().filter(|(k, _)| k != "shoe").collect(),
                    ..DirectoryUser::default()
                },
            );
            // Kind 3: linked to this server by another Connect IdP (another domain that is
            // a client of the same server).
            let (server, idp) = match kind {
                0 => (SERVER, "hq"),
                1 => (OTHER_SERVER, "hq"),
                3 => (SERVER, OTHER_IDP),
                _ => continue,
            };
            if server == SERVER && !used_ids.insert(server_id) {
                continue;
            }
            snapshot.connect_links.insert(
                username,
                ConnectLink {
                    idp_id: idp.into(),
                    server_idnumber: server.into(),
                    server_user_id: server_id,
                },
            );
        }
        snapshot
    })
}

fn server_users() -> impl Strategy<Value = Vec<ServerUser>> {
    let user = (
        1..=6i64,
        idnumber(),
        "[a-c]{1}",
        any::<bool>(),
        prop::bool::weighted(0.2),
        proptest::option::of(fields()),
    );
    prop::collection::vec(user, 0..8).prop_map(|users| {
        users
            .into_iter()
            .map(
                |(id, idnumber, first, suspended, deleted, profile_fields)| ServerUser {
                    server_user_id: id,
                    username: format!("user{id}"),
                    email: format!("user{id}@example.com"),
                    firstname: first,
                    lastname: String::new(),
                    idnumber,
                    suspended,
                    deleted,
                    profile_fields,
                },
            )
            .collect()
    })
}

fn options() -> impl Strategy<Value = SyncOptions> {
    (
        prop::sample::select(vec![
            RemoveUser::Keep,
            RemoveUser::Suspend,
            RemoveUser::Delete,
        ]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(remove_user, sync_profile_fields, create_users, update_existing)| SyncOptions {
                remove_user,
                sync_profile_fields,
                create_users,
                update_existing,
            },
        )
}

/// The local user this source (IdP `hq`, server `SERVER`) keeps for a server user.
fn linked_to(snapshot: &DirectorySnapshot, server_user_id: i64) -> Option<&DirectoryUser> {
    snapshot
        .connect_links
        .iter()
        .find(|(_, l)| {
            l.idp_id == "hq" && l.server_idnumber == SERVER && l.server_user_id == server_user_id
        })
        .and_then(|(name, _)| snapshot.users.get(name))
}

/// Whether another IdP has linked that server user of the same server.
fn linked_elsewhere(snapshot: &DirectorySnapshot, server_user_id: i64) -> bool {
    snapshot.connect_links.values().any(|l| {
        l.idp_id != "hq" && l.server_idnumber == SERVER && l.server_user_id == server_user_id
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn syncing_twice_changes_nothing(
        current in current(),
        users in server_users(),
        options in options(),
    ) {
        let batch = plan_users_sync(&current, SOURCE, &users, options, &known_fields(), None);
        let mut after = current.clone();
        after.apply(&batch);
        let again = plan_users_sync(&after, SOURCE, &users, options, &known_fields(), None);
        prop_assert!(again.is_empty(), "first {:?}\nagain {:?}", batch.changes, again.changes);
    }

    #[test]
    fn the_rules_of_a_users_sync(
        current in current(),
        users in server_users(),
        options in options(),
    ) {
        let batch = plan_users_sync(&current, SOURCE, &users, options, &known_fields(), None);
        let mut after = current.clone();
        after.apply(&batch);
        let first_of: BTreeMap<i64, &ServerUser> =
            users.iter().rev().map(|u| (u.server_user_id, u)).collect();
        for (id, user) in &first_of {
            if user.deleted {
                // Deleted on the server: gone here, whatever the settings.
                prop_assert!(linked_to(&after, *id).is_none());
            } else if let Some(local) = linked_to(&current, *id) {
                let now = linked_to(&after, *id).expect("a sent, linked user stays");
                let expected = if options.remove_user == RemoveUser::Suspend { user.suspended } else { local.suspended };
                prop_assert_eq!(now.suspended, expected);
                if options.update_existing {
                    prop_assert_eq!(&now.firstname, &user.firstname);
                }
            } else if options.create_users
                && !current.users.contains_key(&connect_username(*id, SERVER))
                && !linked_elsewhere(&current, *id)
            {
                let created = linked_to(&after, *id).expect("created and linked");
                prop_assert_eq!(&created.username, &connect_username(*id, SERVER));
            }
        }
        // Linked users the server no longer sends.
        for (name, link) in &current.connect_links {
            if link.idp_id != "hq"
                || link.server_idnumber != SERVER
                || first_of.contains_key(&link.server_user_id)
            {
                continue;
            }
            let Some(before) = current.users.get(name) else { continue };
            match options.remove_user {
                RemoveUser::Keep => prop_assert_eq!(after.users.get(name), Some(before)),
                RemoveUser::Suspend => prop_assert!(after.users.get(name).is_some_and(|u| u.suspended)),
                RemoveUser::Delete => prop_assert!(!after.users.contains_key(name)),
            }
        }
        // Users not linked to this server are never touched.
        for change in &batch.changes {
            let touched = match change {
                Change::CreateUser(_) | Change::LinkConnectUser { .. } => continue,
                Change::SetCore { username, .. }
                | Change::SetSuspended { username, .. }
                | Change::SetField { username, .. }
                | Change::UnsetField { username, .. }
                | Change::DeleteUser { username } => username,
                other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
            };
            prop_assert!(
                current
                    .connect_links
                    .get(touched)
                    .is_some_and(|l| l.idp_id == "hq" && l.server_idnumber == SERVER),
                "{change:?}"
            );
        }
        // A server user is linked to one local user, whichever IdP linked it.
        let mut linked_ids = BTreeSet::new();
        for link in after.connect_links.values().filter(|l| l.server_idnumber == SERVER) {
            prop_assert!(linked_ids.insert(link.server_user_id), "{link:?} twice");
        }
        // The counts cover each of this source's users once.
        let counts = count_users_sync(&current, SOURCE, &batch);
        let before = current
            .connect_links
            .iter()
            .filter(|(n, l)| l.idp_id == "hq" && l.server_idnumber == SERVER && current.users.contains_key(*n))
            .count();
        prop_assert_eq!(
            counts.deleted + counts.suspended + counts.updated + counts.unchanged,
            before,
            "{:?}", counts
        );
        prop_assert_eq!(counts.created, batch.summary().users_created);
        // An idnumber the sync writes is held by that user alone.
        for user in after.users.values().filter(|u| !u.idnumber.is_empty()) {
            let written = after
                .connect_links
                .get(&user.username)
                .is_some_and(|l| l.server_idnumber == SERVER)
                && current
                    .users
                    .get(&user.username)
                    .is_none_or(|before| before.idnumber != user.idnumber);
            if written {
                let holders = after.users.values().filter(|u| u.idnumber == user.idnumber).count();
                prop_assert_eq!(holders, 1, "{} shared", user.idnumber);
            }
        }
    }
}

#[test]
fn a_server_deleted_user_is_deleted_even_in_keep_mode() {
    let mut current = DirectorySnapshot::default();
    let name = connect_username(3, SERVER);
    current.users.insert(
        name.clone(),
        DirectoryUser {
            username: name.clone(),
            ..DirectoryUser::default()
        },
    );
    current.connect_links.insert(
        name.clone(),
        ConnectLink {
            idp_id: "hq".into(),
            server_idnumber: SERVER.into(),
            server_user_id: 3,
        },
    );
    let gone = ServerUser {
        server_user_id: 3,
        username: "deleted_0123".into(),
        deleted: true,
        ..ServerUser::default()
    };
    let options = SyncOptions {
        remove_user: RemoveUser::Keep,
        sync_profile_fields: false,
        create_users: true,
        update_existing: true,
    };
    let batch = plan_users_sync(&current, SOURCE, &[gone], options, &known_fields(), None);
    assert_eq!(batch.changes, [Change::DeleteUser { username: name }]);
}

#[test]
fn only_this_servers_unlinked_tc_accounts_are_adopted() {
    let mut current = DirectorySnapshot::default();
    let names = [
        connect_username(3, SERVER),
        connect_username(4, SERVER),
        connect_username(5, OTHER_SERVER),
        format!("tc_007_{SERVER}"),
        format!("tc_-8_{SERVER}"),
        "alice".to_owned(),
    ];
    for name in &names {
        current.users.insert(
            name.clone(),
            DirectoryUser {
                username: name.clone(),
                ..DirectoryUser::default()
            },
        );
    }
    // Server user 4 is already another account's (another IdP linked it).
    current.users.insert(
        "branch4".into(),
        DirectoryUser {
            username: "branch4".into(),
            ..DirectoryUser::default()
        },
    );
    current.connect_links.insert(
        "branch4".into(),
        ConnectLink {
            idp_id: OTHER_IDP.into(),
            server_idnumber: SERVER.into(),
            server_user_id: 4,
        },
    );
    let mut made_here = names.to_vec();
    made_here.push(connect_username(9, SERVER)); // no such user any more
    let adopted = adopt_signed_in_users(&mut current, SOURCE, &made_here);
    assert_eq!(
        adopted,
        [Change::LinkConnectUser {
            username: connect_username(3, SERVER),
            link: ConnectLink {
                idp_id: "hq".into(),
                server_idnumber: SERVER.into(),
                server_user_id: 3,
            },
        }]
    );
    assert!(
        current
            .connect_links
            .contains_key(&connect_username(3, SERVER))
    );
    // Adopting again finds nothing new.
    assert!(adopt_signed_in_users(&mut current, SOURCE, &made_here).is_empty());
}
