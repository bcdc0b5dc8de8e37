//! Properties of the collections sync's pure planner (`plan_collections_sync`) against its
//! model (`CollectionsState::apply`), on generated directories: a mix of mapped, stale,
//! adoptable, taken and other IdPs' audiences, linked and unlinked users, and server replies
//! with every collection type, renames, removals and repeats. Syncing is idempotent, every
//! sent collection ends as an audience of this IdP with the server's values and the linked
//! members, audiences keep their ids, what is not the IdP's is never touched, and removals
//! come after every type was compared.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    AudienceRef, CollectionChange, CollectionKind, CollectionsState, LocalAudience,
    ServerCollection, SkippedCollection, SyncSource, collection_idnumber, plan_collections_sync,
};
use proptest::prelude::*;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const IDP: &str = "hq";
const SOURCE: SyncSource<'static> = SyncSource {
    idp_id: IDP,
    server_idnumber: SERVER,
};

/// Server user ids 1..=8; a linked one is local user 1000 + its id.
const SERVER_USERS: std::ops::RangeInclusive<i64> = 1..=8;

/// What the directory holds for one (kind, remote id) before the sync.
#[derive(Debug, Clone)]
enum Before {
    Nothing,
    /// Mapped to an audience of this IdP.
    Mapped {
        name: String,
        members: BTreeSet<i64>,
    },
    /// Mapped, but the audience is gone.
    Stale,
    /// Not mapped; an audience of this IdP holds the idnumber (its mapping was lost).
    Adoptable,
    /// Not mapped; an administrator's audience holds the idnumber.
    TakenByAdmin,
    /// Mapped to an audience another IdP keeps.
    OtherIdp,
}

fn names() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["Sales", "Ops", "Onboarding", "Sales / EU"]).prop_map(str::to_owned)
}

fn before() -> impl Strategy<Value = Before> {
    prop_oneof![
        3 => Just(Before::Nothing),
        4 => (names(), prop::collection::btree_set(prop_oneof![1000i64..=1008, 5000i64..=5001], 0..5))
            .prop_map(|(name, members)| Before::Mapped { name, members }),
        1 => Just(Before::Stale),
        1 => Just(Before::Adoptable),
        1 => Just(Before::TakenByAdmin),
        1 => Just(Before::OtherIdp),
    ]
}

fn keys() -> Vec<(CollectionKind, i64)> {
    CollectionKind::ALL
        .into_iter()
        .flat_map(|kind| (1..=4).map(move |id| (kind, id)))
        .collect()
}

fn state() -> impl Strategy<Value = CollectionsState> {
    (
        prop::collection::vec(before(), 8),
        prop::collection::btree_set(SERVER_USERS, 0..=8),
    )
        .prop_map(|(befores, linked)| {
            let mut state = CollectionsState {
                users: linked.iter().map(|&id| (id, 1000 + id)).collect(),
                ..CollectionsState::default()
            };
            // An administrator's audience nobody syncs.
            state.audiences.insert(
                1,
                LocalAudience {
                    id: 1,
                    idnumber: "AUD-1".into(),
                    name: "Local".into(),
                    members: BTreeSet::from([1001]),
                    ..LocalAudience::default()
                },
            );
            for ((kind, remote_id), before) in keys().into_iter().zip(befores) {
                let id = 100 + state.audiences.len() as i64;
                let idnumber = collection_idnumber(kind, remote_id, SERVER);
                let audience =
                    |component: &str, name: &str, members: BTreeSet<i64>| LocalAudience {
                        id,
                        idnumber: idnumber.clone(),
                        name: name.to_owned(),
                        description: String::new(),
                        component: component.to_owned(),
                        members,
                    };
                match before {
                    Before::Nothing => {}
                    Before::Mapped { name, members } => {
                        state.audiences.insert(id, audience(IDP, &name, members));
                        state.mapped.insert((kind, remote_id), id);
                    }
                    Before::Stale => {
                        state.mapped.insert((kind, remote_id), 9000 + remote_id);
                    }
                    Before::Adoptable => {
                        state
                            .audiences
                            .insert(id, audience(IDP, "Old", BTreeSet::from([1002])));
                    }
                    Before::TakenByAdmin => {
                        state
                            .audiences
                            .insert(id, audience("", "Mine", BTreeSet::new()));
                    }
                    Before::OtherIdp => {
                        state
                            .audiences
                            .insert(id, audience("branch", "Theirs", BTreeSet::new()));
                        state.mapped.insert((kind, remote_id), id);
                    }
                }
            }
            state
        })
}

fn collections() -> impl Strategy<Value = Vec<ServerCollection>> {
    prop::collection::vec(
        (
            prop::sample::select(keys()),
            names(),
            prop::sample::select(vec!["", "about"]),
            prop::collection::vec(1i64..=10, 0..6),
        )
            .prop_map(
                |((kind, remote_id), name, description, members)| ServerCollection {
                    kind,
                    remote_id,
                    name,
                    description: description.to_owned(),
                    members,
                },
            ),
        0..10,
    )
}

fn applied(state: &CollectionsState, plan: &gatehouse_store::CollectionsPlan) -> CollectionsState {
    let mut after = state.clone();
    let mut next = after.audiences.keys().max().copied().unwrap_or(0) + 10_000;
    after.apply(plan, SOURCE, || {
        next += 1;
        next
    });
    after
}

/// The first of each (kind, remote id) sent: what the audience must end as.
fn first_sent(
    collections: &[ServerCollection],
) -> BTreeMap<(CollectionKind, i64), &ServerCollection> {
    let mut sent = BTreeMap::new();
    for collection in collections {
        sent.entry((collection.kind, collection.remote_id))
            .or_insert(collection);
    }
    sent
}

fn skipped_key(skipped: &SkippedCollection) -> (CollectionKind, i64) {
    match skipped {
        SkippedCollection::IdnumberTaken {
            kind, remote_id, ..
        }
        | SkippedCollection::KeptByAnotherIdp {
            kind, remote_id, ..
        } => (*kind, *remote_id),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn syncing_again_plans_nothing(state in state(), sent in collections()) {
        let plan = plan_collections_sync(&state, SOURCE, &sent);
        let after = applied(&state, &plan);
        let again = plan_collections_sync(&after, SOURCE, &sent);
        prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
        prop_assert_eq!(again.skipped, plan.skipped);
    }

    #[test]
    fn every_sent_collection_is_an_audience_of_the_idp_with_the_servers_values(
        state in state(),
        sent in collections(),
    ) {
        let plan = plan_collections_sync(&state, SOURCE, &sent);
        let after = applied(&state, &plan);
        let skipped: BTreeSet<_> = plan.skipped.iter().map(skipped_key).collect();
        for (key, collection) in first_sent(&sent) {
            if skipped.contains(&key) {
                continue;
            }
            let id = after.mapped.get(&key).copied();
            prop_assert!(id.is_some(), "{:?} is not mapped", key);
            let audience = &after.audiences[&id.unwrap_or_default()];
            prop_assert_eq!(&audience.component, IDP);
            prop_assert_eq!(&audience.idnumber, &collection_idnumber(key.0, key.1, SERVER));
            prop_assert_eq!(&audience.name, &collection.name);
            prop_assert_eq!(&audience.description, &collection.description);
            let members: BTreeSet<i64> = collection
                .members
                .iter()
                .filter_map(|server_user| state.users.get(server_user).copied())
                .collect();
            prop_assert_eq!(&audience.members, &members);
        }
    }

    #[test]
    fn only_collections_still_sent_or_kept_elsewhere_stay_mapped(
        state in state(),
        sent in collections(),
    ) {
        let plan = plan_collections_sync(&state, SOURCE, &sent);
        let after = applied(&state, &plan);
        let sent_keys: BTreeSet<_> = sent.iter().map(|c| (c.kind, c.remote_id)).collect();
        for (key, id) in &after.mapped {
            let audience = after.audiences.get(id);
            prop_assert!(audience.is_some(), "{:?} maps to no audience", key);
            let kept_elsewhere = audience.is_some_and(|a| a.component != IDP);
            prop_assert!(sent_keys.contains(key) || kept_elsewhere, "{:?} was not sent", key);
        }
    }

    #[test]
    fn audiences_keep_their_ids(state in state(), sent in collections()) {
        let plan = plan_collections_sync(&state, SOURCE, &sent);
        let after = applied(&state, &plan);
        for (key, id) in &state.mapped {
            if state.audiences.get(id).is_some_and(|a| a.component == IDP)
                && sent.iter().any(|c| (c.kind, c.remote_id) == *key)
            {
                prop_assert_eq!(after.mapped.get(key), Some(id));
            }
        }
        // A sent collection whose audience exists unmapped takes that audience, not a new one.
        for (key, _) in first_sent(&sent) {
            let idnumber = collection_idnumber(key.0, key.1, SERVER);
            if let Some(holder) = state.audiences.values().find(|a| a.idnumber == idnumber)
                && holder.component == IDP
            {
                prop_assert_eq!(after.mapped.get(&key), Some(&holder.id));
            }
        }
    }

    #[test]
    fn what_is_not_the_idps_is_never_touched(state in state(), sent in collections()) {
        let plan = plan_collections_sync(&state, SOURCE, &sent);
        let after = applied(&state, &plan);
        for (id, audience) in &state.audiences {
            if audience.component != IDP {
                prop_assert_eq!(after.audiences.get(id), Some(audience));
            }
        }
        for change in &plan.changes {
            let touched = match change {
                CollectionChange::Update { audience_id, .. }
                | CollectionChange::Delete { audience_id, .. }
                | CollectionChange::Adopt { audience_id, .. }
                | CollectionChange::RemoveMember { audience_id, .. }
                | CollectionChange::AddMember { audience: AudienceRef::Existing(audience_id), .. } => {
                    Some(*audience_id)
                }
                _ => None,
            };
            if let Some(id) = touched {
                prop_assert_eq!(&state.audiences[&id].component, IDP);
            }
        }
    }

    #[test]
    fn removals_come_after_every_type_was_compared(state in state(), sent in collections()) {
        let plan = plan_collections_sync(&state, SOURCE, &sent);
        let first_delete = plan
            .changes
            .iter()
            .position(|c| matches!(c, CollectionChange::Delete { .. }));
        if let Some(first) = first_delete {
            let only_deletes = plan.changes[first..]
                .iter()
                .all(|c| matches!(c, CollectionChange::Delete { .. }));
            prop_assert!(only_deletes, "{:?}", plan.changes);
        }
        // Members are added only to audiences that exist by then.
        let created: Vec<_> = plan
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                CollectionChange::Create { kind, remote_id, .. } => Some((i, (*kind, *remote_id))),
                _ => None,
            })
            .collect();
        for (i, change) in plan.changes.iter().enumerate() {
            if let CollectionChange::AddMember {
                audience: AudienceRef::Created { kind, remote_id },
                ..
            } = change
            {
                let created_before = created
                    .iter()
                    .any(|(at, key)| *at < i && *key == (*kind, *remote_id));
                prop_assert!(created_before, "{:?}", plan.changes);
            }
        }
    }
}

/// The original deletes the course audiences while it walks the cohorts (its "delete
/// missing" loop runs inside the per-type loop) and makes them again with new ids.
#[test]
fn course_audiences_survive_the_cohort_pass() {
    let state = CollectionsState {
        mapped: BTreeMap::from([
            ((CollectionKind::Cohort, 1), 100),
            ((CollectionKind::Course, 1), 101),
        ]),
        audiences: BTreeMap::from([
            (
                100,
                LocalAudience {
                    id: 100,
                    idnumber: collection_idnumber(CollectionKind::Cohort, 1, SERVER),
                    name: "Sales".into(),
                    component: IDP.into(),
                    ..LocalAudience::default()
                },
            ),
            (
                101,
                LocalAudience {
                    id: 101,
                    idnumber: collection_idnumber(CollectionKind::Course, 1, SERVER),
                    name: "Onboarding".into(),
                    component: IDP.into(),
                    ..LocalAudience::default()
                },
            ),
        ]),
        users: BTreeMap::new(),
    };
    let sent = [
        ServerCollection {
            kind: CollectionKind::Cohort,
            remote_id: 1,
            name: "Sales".into(),
            description: String::new(),
            members: vec![],
        },
        ServerCollection {
            kind: CollectionKind::Course,
            remote_id: 1,
            name: "Onboarding 2".into(),
            description: String::new(),
            members: vec![],
        },
    ];
    let plan = plan_collections_sync(&state, SOURCE, &sent);
    assert_eq!(
        plan.changes,
        vec![CollectionChange::Update {
            audience_id: 101,
            name: "Onboarding 2".into(),
            description: String::new(),
        }]
    );
}

#[test]
fn an_administrators_audience_holding_the_idnumber_is_left_alone() {
    let idnumber = collection_idnumber(CollectionKind::Cohort, 3, SERVER);
    let state = CollectionsState {
        audiences: BTreeMap::from([(
            7,
            LocalAudience {
                id: 7,
                idnumber: idnumber.clone(),
                name: "Mine".into(),
                ..LocalAudience::default()
            },
        )]),
        ..CollectionsState::default()
    };
    let sent = [ServerCollection {
        kind: CollectionKind::Cohort,
        remote_id: 3,
        name: "Sales".into(),
        description: String::new(),
        members: vec![1],
    }];
    let plan = plan_collections_sync(&state, SOURCE, &sent);
    assert!(plan.changes.is_empty());
    assert_eq!(
        plan.skipped,
        vec![SkippedCollection::IdnumberTaken {
            kind: CollectionKind::Cohort,
            remote_id: 3,
            idnumber,
            component: String::new(),
        }]
    );
    assert_eq!(plan.counts(1).skipped, 1);
    assert_eq!(plan.counts(1).unchanged, 0);
}
