//! The migration of pre-existing local accounts in a Connect users sync (reference §4.3), on
//! the pure planner (no database): a server user with no link takes over the one local
//! account its `migrate_map` value finds (username, email, idnumber or `tc_` uniqueid), never
//! an administrator's, an IdP-made, a linked or another branch's account, never by an email
//! or idnumber the account's own user typed; several matches (either way round) are refused;
//! and planning again after applying the batch does nothing.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    AccountStanding, Change, ConnectLink, DirectorySnapshot, DirectoryUser, MigrateMap, Migration,
    MigrationPlan, RemoveUser, ServerUser, SyncOptions, SyncSource, connect_username,
    count_users_sync, is_valid_email, mapping_value, plan_migration, plan_users_sync,
};
use proptest::prelude::*;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const OTHER_SERVER: &str = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8";
const BRANCH: &str = "root";
const SOURCE: SyncSource<'static> = SyncSource {
    idp_id: "hq",
    server_idnumber: SERVER,
};

const OPTIONS: SyncOptions = SyncOptions {
    remove_user: RemoveUser::Suspend,
    sync_profile_fields: false,
    create_users: true,
    update_existing: true,
};

/// A local account: its values (email and idnumber set by an administrator, so trusted).
fn account(username: &str, email: &str, idnumber: &str) -> DirectoryUser {
    let mut provenance = BTreeMap::new();
    for (field, value) in [("email", email), ("idnumber", idnumber)] {
        if !value.is_empty() {
            provenance.insert(field.to_owned(), "@admin".to_owned());
        }
    }
    DirectoryUser {
        username: username.to_owned(),
        email: email.to_owned(),
        idnumber: idnumber.to_owned(),
        firstname: "Old".to_owned(),
        provenance,
        ..DirectoryUser::default()
    }
}

fn local() -> AccountStanding {
    AccountStanding {
        is_admin: false,
        auth_source: "local".to_owned(),
        branch: BRANCH.to_owned(),
    }
}

fn server_user(id: i64, username: &str, email: &str, idnumber: &str) -> ServerUser {
    ServerUser {
        server_user_id: id,
        username: username.to_owned(),
        email: email.to_owned(),
        firstname: "New".to_owned(),
        idnumber: idnumber.to_owned(),
        ..ServerUser::default()
    }
}

/// A directory of `accounts`, each with its standing.
#[derive(Debug, Clone)]
struct Directory {
    snapshot: DirectorySnapshot,
    standings: BTreeMap<String, AccountStanding>,
}

impl Directory {
    fn new(accounts: Vec<(DirectoryUser, AccountStanding)>) -> Self {
        let mut snapshot = DirectorySnapshot::default();
        let mut standings = BTreeMap::new();
        for (user, standing) in accounts {
            standings.insert(user.username.clone(), standing);
            snapshot.users.insert(user.username.clone(), user);
        }
        Self {
            snapshot,
            standings,
        }
    }

    fn link(&mut self, username: &str, server: &str, idp: &str, id: i64) {
        self.snapshot.connect_links.insert(
            username.to_owned(),
            ConnectLink {
                idp_id: idp.to_owned(),
                server_idnumber: server.to_owned(),
                server_user_id: id,
            },
        );
    }

    fn plan(&self, map: MigrateMap, users: &[ServerUser]) -> MigrationPlan {
        plan_migration(
            &self.snapshot,
            SOURCE,
            users,
            Migration {
                map,
                branch: BRANCH,
                standings: &self.standings,
            },
        )
    }

    /// Plans the sync with migration by `map`, applies it, and checks that planning again
    /// does nothing; the directory after.
    fn sync(&self, map: MigrateMap, users: &[ServerUser]) -> DirectorySnapshot {
        let migration = self.plan(map, users);
        let batch = plan_users_sync(
            &self.snapshot,
            SOURCE,
            users,
            OPTIONS,
            &BTreeSet::new(),
            Some(&migration),
        );
        let mut after = self.snapshot.clone();
        after.apply(&batch);
        let again_migration = plan_migration(
            &after,
            SOURCE,
            users,
            Migration {
                map,
                branch: BRANCH,
                standings: &self.standings_after(&after),
            },
        );
        assert!(again_migration.takeovers.is_empty(), "{again_migration:?}");
        let again = plan_users_sync(
            &after,
            SOURCE,
            users,
            OPTIONS,
            &BTreeSet::new(),
            Some(&again_migration),
        );
        assert!(again.is_empty(), "{:?}", again.changes);
        after
    }

    /// The standings after a sync: accounts it created are this IdP's.
    fn standings_after(&self, after: &DirectorySnapshot) -> BTreeMap<String, AccountStanding> {
        after
            .users
            .keys()
            .map(|name| {
                let standing = self
                    .standings
                    .get(name)
                    .cloned()
                    .unwrap_or(AccountStanding {
                        is_admin: false,
                        auth_source: "idp:hq".to_owned(),
                        branch: BRANCH.to_owned(),
                    });
                (name.clone(), standing)
            })
            .collect()
    }
}

fn linked_to(snapshot: &DirectorySnapshot, id: i64) -> Option<&str> {
    snapshot
        .connect_links
        .iter()
        .find(|(_, l)| l.idp_id == "hq" && l.server_idnumber == SERVER && l.server_user_id == id)
        .map(|(name, _)| name.as_str())
}

#[test]
fn a_local_account_is_taken_over_by_each_mapping_field() {
    let uniqueid = connect_username(7, SERVER);
    for (map, local_name) in [
        (MigrateMap::Username, "ada"),
        (MigrateMap::Email, "ada.local"),
        (MigrateMap::Idnumber, "ada.local"),
        (MigrateMap::Uniqueid, uniqueid.as_str()),
    ] {
        let username = match map {
            MigrateMap::Username | MigrateMap::Uniqueid => local_name,
            _ => "ada.local",
        };
        let directory = Directory::new(vec![
            (account(username, "ada@example.test", "E7"), local()),
            (account("zed", "zed@example.test", "E9"), local()),
        ]);
        let ada = server_user(7, "ada", "ada@example.test", "E7");
        let plan = directory.plan(map, std::slice::from_ref(&ada));
        assert_eq!(plan.takeovers.len(), 1, "{map:?}: {plan:?}");
        assert_eq!(plan.takeovers[0].local_username, username);
        let after = directory.sync(map, &[ada]);
        assert_eq!(linked_to(&after, 7), Some(username), "{map:?}");
        // Taken over and updated in the same batch; no tc_ account besides.
        assert_eq!(after.users[username].firstname, "New");
        assert_eq!(after.users.len(), 2, "{map:?}: {:?}", after.users.keys());
    }
}

#[test]
fn the_batch_links_then_updates_and_counts_a_migration() {
    let directory = Directory::new(vec![(account("ada", "ada@example.test", ""), local())]);
    let users = [server_user(7, "ada", "ada@example.test", "")];
    let migration = directory.plan(MigrateMap::Email, &users);
    let batch = plan_users_sync(
        &directory.snapshot,
        SOURCE,
        &users,
        OPTIONS,
        &BTreeSet::new(),
        Some(&migration),
    );
    assert!(
        matches!(&batch.changes[0], Change::LinkConnectUser { username, link }
        if username == "ada" && link.server_user_id == 7 && link.idp_id == "hq")
    );
    assert!(
        batch
            .changes
            .iter()
            .any(|c| matches!(c, Change::SetCore { username, .. } if username == "ada"))
    );
    let counts = count_users_sync(&directory.snapshot, SOURCE, &batch);
    assert_eq!((counts.migrated, counts.created, counts.updated), (1, 0, 0));
    assert_eq!(
        counts.to_string(),
        "created 0, updated 0, suspended 0, deleted 0, unchanged 0, migrated 1"
    );
}

#[test]
fn without_migration_a_matching_local_account_is_left_alone() {
    let directory = Directory::new(vec![(account("ada", "ada@example.test", ""), local())]);
    let users = [server_user(7, "ada", "ada@example.test", "")];
    let batch = plan_users_sync(
        &directory.snapshot,
        SOURCE,
        &users,
        OPTIONS,
        &BTreeSet::new(),
        None,
    );
    assert!(batch.changes.iter().all(|c| match c {
        Change::CreateUser(user) => user.username == connect_username(7, SERVER),
        Change::LinkConnectUser { username, .. } => *username == connect_username(7, SERVER),
        _ => false,
    }));
}

#[test]
fn several_matching_local_accounts_are_refused_and_nothing_is_created() {
    let directory = Directory::new(vec![
        (account("ada1", "ada@example.test", ""), local()),
        (account("ada2", "ada@example.test", ""), local()),
    ]);
    let users = [server_user(7, "ada", "ada@example.test", "")];
    let plan = directory.plan(MigrateMap::Email, &users);
    assert!(plan.takeovers.is_empty());
    assert_eq!(plan.ambiguous.len(), 1);
    assert_eq!(plan.ambiguous[0].local_usernames, ["ada1", "ada2"]);
    let after = directory.sync(MigrateMap::Email, &users);
    assert_eq!(
        after, directory.snapshot,
        "an ambiguous user is neither migrated nor created"
    );
}

#[test]
fn a_local_account_several_server_users_match_is_taken_by_none() {
    let directory = Directory::new(vec![
        (account("ada", "ada@example.test", ""), local()),
        (account("bea", "bea@example.test", ""), local()),
        (account("bea2", "bea@example.test", ""), local()),
    ]);
    // 7 and 8 both match ada; 9 matches ada's... no: 9 matches bea and bea2 (ambiguous).
    let users = [
        server_user(7, "ada", "ada@example.test", ""),
        server_user(8, "ada.too", "ada@example.test", ""),
        server_user(9, "bea", "bea@example.test", ""),
    ];
    let plan = directory.plan(MigrateMap::Email, &users);
    assert!(plan.takeovers.is_empty(), "{plan:?}");
    assert_eq!(plan.contested.len(), 1);
    assert_eq!(plan.contested[0].local_username, "ada");
    assert_eq!(plan.refused(), BTreeSet::from([7, 8, 9]));
    let after = directory.sync(MigrateMap::Email, &users);
    assert_eq!(after, directory.snapshot);
}

#[test]
fn an_account_an_ambiguous_user_also_matches_is_not_taken() {
    // 7 matches ann only; 8 matches ann and bob (by idnumber and username alike).
    let directory = Directory::new(vec![
        (account("ann", "", "E1"), local()),
        (account("bob", "", "E1"), local()),
        (account("cat", "", "E2"), local()),
    ]);
    let users = [server_user(7, "x", "", "E2"), server_user(8, "y", "", "E1")];
    let plan = directory.plan(MigrateMap::Idnumber, &users);
    assert_eq!(plan.takeovers.len(), 1);
    assert_eq!(plan.takeovers[0].local_username, "cat");
    assert_eq!(plan.ambiguous.len(), 1);
    directory.sync(MigrateMap::Idnumber, &users);
}

#[test]
fn admin_idp_made_linked_and_other_branch_accounts_are_never_taken() {
    let standing = |is_admin: bool, auth_source: &str, branch: &str| AccountStanding {
        is_admin,
        auth_source: auth_source.to_owned(),
        branch: branch.to_owned(),
    };
    for (name, standing, link) in [
        ("admin", standing(true, "local", BRANCH), None),
        ("made-by-connect", standing(false, "idp:hq", BRANCH), None),
        ("made-by-oidc", standing(false, "idp:okta", BRANCH), None),
        ("other-branch", standing(false, "local", "ee"), None),
        (
            "linked-other-server",
            local(),
            Some((OTHER_SERVER, "hq", 3)),
        ),
        ("linked-other-idp", local(), Some((SERVER, "branch-hq", 99))),
    ] {
        let mut directory =
            Directory::new(vec![(account(name, "ada@example.test", "E7"), standing)]);
        if let Some((server, idp, id)) = link {
            directory.link(name, server, idp, id);
        }
        for map in [
            MigrateMap::Username,
            MigrateMap::Email,
            MigrateMap::Idnumber,
        ] {
            let ada = server_user(7, name, "ada@example.test", "E7");
            let plan = directory.plan(map, &[ada]);
            assert!(plan.takeovers.is_empty(), "{name} by {map:?}: {plan:?}");
            assert!(plan.ambiguous.is_empty());
        }
    }
}

#[test]
fn an_email_or_idnumber_the_accounts_own_user_typed_finds_nothing() {
    let mut typed = account("ada", "ada@example.test", "E7");
    typed.provenance.clear();
    let directory = Directory::new(vec![(typed, local())]);
    let ada = server_user(7, "someone", "ada@example.test", "E7");
    for map in [MigrateMap::Email, MigrateMap::Idnumber] {
        let plan = directory.plan(map, std::slice::from_ref(&ada));
        assert!(plan.takeovers.is_empty(), "{map:?}");
    }
}

#[test]
fn missing_and_invalid_values_are_listed_and_the_user_is_created_as_usual() {
    let directory = Directory::new(vec![(account("ada", "", ""), local())]);
    let users = [
        server_user(7, "a", "", "E1"),
        server_user(8, "b", "not an address", ""),
        server_user(9, "", "c@example.test", ""),
    ];
    let plan = directory.plan(MigrateMap::Email, &users);
    let ids = |list: &[gatehouse_store::NamedServerUser]| {
        list.iter().map(|u| u.server_user_id).collect::<Vec<_>>()
    };
    assert_eq!(ids(&plan.missing), [7]);
    assert_eq!(ids(&plan.invalid), [8]);
    assert_eq!(
        ids(&directory.plan(MigrateMap::Idnumber, &users).missing),
        [8, 9]
    );
    assert_eq!(
        ids(&directory.plan(MigrateMap::Username, &users).missing),
        [9]
    );
    assert!(
        directory
            .plan(MigrateMap::Uniqueid, &users)
            .missing
            .is_empty()
    );
    let after = directory.sync(MigrateMap::Email, &users);
    for id in [7, 8, 9] {
        assert_eq!(
            linked_to(&after, id),
            Some(connect_username(id, SERVER).as_str())
        );
    }
}

#[test]
fn server_users_already_linked_deleted_or_guest_are_not_considered() {
    let mut directory = Directory::new(vec![
        (account("ada", "ada@example.test", ""), local()),
        (account("tc", "", ""), local()),
    ]);
    directory.link("tc", SERVER, "hq", 7);
    let mut gone = server_user(8, "gone", "ada@example.test", "");
    gone.deleted = true;
    let users = [
        server_user(7, "ada", "ada@example.test", ""),
        gone,
        server_user(9, "guest", "ada@example.test", ""),
    ];
    let plan = directory.plan(MigrateMap::Email, &users);
    assert_eq!(plan, MigrationPlan::default());
}

#[test]
fn emails_are_checked_as_moodles_validate_email_does() {
    for good in [
        "ada@example.test",
        "a.b+c@x.y.z",
        "o'neil@example.co.uk",
        "x@y.z.",
    ] {
        assert!(is_valid_email(good), "{good}");
    }
    for bad in [
        "",
        "ada",
        "ada@",
        "@example.test",
        "ada@example",
        "ada@.example",
        "a..b@example.test",
        ".ada@example.test",
        "ada@@example.test",
        "a da@example.test",
        "ada@exa mple.test",
        "adä@example.test",
    ] {
        assert!(!is_valid_email(bad), "{bad}");
    }
    let bad = server_user(7, "ada", "ada@example", "");
    assert!(mapping_value(MigrateMap::Email, &bad, SERVER).is_err());
    assert_eq!(
        mapping_value(MigrateMap::Uniqueid, &bad, SERVER),
        Ok(connect_username(7, SERVER))
    );
}

// ---- Properties ------------------------------------------------------------------------------

const NAMES: [&str; 4] = ["ann", "bob", "cat", "dan"];
const EMAILS: [&str; 4] = ["a@x.test", "b@x.test", "not-an-address", ""];
const IDNUMBERS: [&str; 3] = ["", "E1", "E2"];

fn local_accounts() -> impl Strategy<Value = Directory> {
    let one = (
        prop_oneof![
            prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned),
            (1..=4i64).prop_map(|id| connect_username(id, SERVER)),
        ],
        prop::sample::select(EMAILS.to_vec()),
        prop::sample::select(IDNUMBERS.to_vec()),
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::sample::select(vec!["local", "local", "local", "idp:hq", "idp:okta"]),
        prop::sample::select(vec![BRANCH, BRANCH, BRANCH, "ee"]),
        prop::option::weighted(0.2, (1..=6i64, any::<bool>())),
    );
    prop::collection::vec(one, 0..8).prop_map(|accounts| {
        let mut directory = Directory::new(Vec::new());
        let mut used: BTreeSet<(bool, i64)> = BTreeSet::new();
        for (name, email, idnumber, trusted, is_admin, auth_source, branch, link) in accounts {
            if directory.snapshot.users.contains_key(&name) {
                continue;
            }
            let mut user = account(&name, email, idnumber);
            if !trusted {
                user.provenance.clear();
            }
            directory.standings.insert(
                name.clone(),
                AccountStanding {
                    is_admin,
                    auth_source: auth_source.to_owned(),
                    branch: branch.to_owned(),
                },
            );
            directory.snapshot.users.insert(name.clone(), user);
            if let Some((id, this_server)) = link
                && used.insert((this_server, id))
            {
                let server = if this_server { SERVER } else { OTHER_SERVER };
                directory.link(&name, server, "hq", id);
            }
        }
        directory
    })
}

fn server_users() -> impl Strategy<Value = Vec<ServerUser>> {
    let one = (
        1..=6i64,
        prop::sample::select(vec!["ann", "bob", "cat", "dan", "eve", "", "guest"]),
        prop::sample::select(EMAILS.to_vec()),
        prop::sample::select(IDNUMBERS.to_vec()),
        prop::bool::weighted(0.1),
    );
    prop::collection::vec(one, 0..6).prop_map(|users| {
        users
            .into_iter()
            .map(|(id, name, email, idnumber, deleted)| {
                let mut user = server_user(id, name, email, idnumber);
                user.deleted = deleted;
                user
            })
            .collect()
    })
}

fn check_migration(
    map: MigrateMap,
    directory: &Directory,
    users: &[ServerUser],
) -> Result<(), TestCaseError> {
    let plan = directory.plan(map, users);
    let after = directory.sync(map, users);
    let mut taken = BTreeSet::new();
    for takeover in &plan.takeovers {
        let name = takeover.local_username.as_str();
        prop_assert!(taken.insert(name), "{name} taken twice");
        let standing = &directory.standings[name];
        prop_assert!(
            !standing.is_admin && standing.auth_source == "local" && standing.branch == BRANCH
        );
        prop_assert!(!directory.snapshot.connect_links.contains_key(name));
        // The user a sync reads: the first sent with that id, the guest aside.
        let user = users
            .iter()
            .filter(|u| u.username != "guest")
            .find(|u| u.server_user_id == takeover.server_user.server_user_id)
            .expect("a sent user");
        let value = mapping_value(map, user, SERVER).expect("a value");
        let before = &directory.snapshot.users[name];
        let local_value = match map {
            MigrateMap::Username | MigrateMap::Uniqueid => before.username.clone(),
            MigrateMap::Email => before.email.clone(),
            MigrateMap::Idnumber => before.idnumber.clone(),
        };
        prop_assert_eq!(local_value, value);
        if matches!(map, MigrateMap::Email | MigrateMap::Idnumber) {
            prop_assert!(before.provenance.contains_key(map.local_field()));
        }
        prop_assert_eq!(linked_to(&after, user.server_user_id), Some(name));
    }
    // Refused users get no account at all.
    for id in plan.refused() {
        prop_assert!(linked_to(&after, id).is_none());
    }
    // Local accounts that were not taken over keep their values and stay unlinked.
    for (name, before) in &directory.snapshot.users {
        if !taken.contains(name.as_str()) && !directory.snapshot.connect_links.contains_key(name) {
            prop_assert_eq!(after.users.get(name), Some(before));
            prop_assert!(!after.connect_links.contains_key(name));
        }
    }
    // One local account per server user.
    let mut ids = BTreeSet::new();
    for link in after
        .connect_links
        .values()
        .filter(|l| l.server_idnumber == SERVER)
    {
        prop_assert!(ids.insert(link.server_user_id));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn migration_by_username(directory in local_accounts(), users in server_users()) {
        check_migration(MigrateMap::Username, &directory, &users)?;
    }

    #[test]
    fn migration_by_email(directory in local_accounts(), users in server_users()) {
        check_migration(MigrateMap::Email, &directory, &users)?;
    }

    #[test]
    fn migration_by_idnumber(directory in local_accounts(), users in server_users()) {
        check_migration(MigrateMap::Idnumber, &directory, &users)?;
    }

    #[test]
    fn migration_by_uniqueid(directory in local_accounts(), users in server_users()) {
        check_migration(MigrateMap::Uniqueid, &directory, &users)?;
    }
}
