//! Job assignments synced from a Connect server (`plan_jobs_sync`,
//! `Store::sync_connect_jobs`): properties of the pure planner (planning the result again
//! plans nothing; each user's server jobs are there with their values; an administrator's
//! job is never touched unless a server job takes its idnumber; users the server sent no
//! jobs for keep theirs) and the store on both backends (positions and organisations
//! translated only when synced, a renamed and a removed job, a local job with a server
//! job's idnumber replaced, the model equal to the store).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    Batch, Change, ConnectLink, DirectoryJob, DirectoryUser, FrameworkKind, JobValues, JobsOptions,
    JobsState, LocalJob, ServerFramework, ServerItem, ServerJob, ServerUserJobs, WrittenBy,
    plan_jobs_sync,
};
use proptest::prelude::*;
use support::TestDb;

const SERVER: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const NOW: i64 = 1_700_000_000;

fn job(remote_id: i64, idnumber: &str) -> ServerJob {
    ServerJob {
        remote_id,
        idnumber: idnumber.to_owned(),
        fullname: format!("Job {idnumber}"),
        shortname: idnumber.to_lowercase(),
        description: String::new(),
        startdate: 0,
        enddate: 0,
        position: None,
        organisation: None,
    }
}

fn values(idnumber: &str, sortorder: i64) -> JobValues {
    JobValues {
        idnumber: idnumber.to_owned(),
        fullname: format!("Manual {idnumber}"),
        shortname: String::new(),
        description: String::new(),
        position_id: None,
        organisation_id: None,
        startdate: 0,
        enddate: 0,
        sortorder,
    }
}

/// Three linked users (server ids 1..=3 → local 11..=13), a few manual jobs.
fn state_with_manual() -> impl Strategy<Value = JobsState> {
    prop::collection::vec((11..=13i64, "J[1-4]|M[1-2]"), 0..=4).prop_map(|manual| {
        let mut state = JobsState {
            users: (1..=3).map(|id| (id, id + 10)).collect(),
            position_map: BTreeMap::from([(100, 500)]),
            organisation_map: BTreeMap::from([(200, 600)]),
            ..JobsState::default()
        };
        let mut taken = BTreeSet::new();
        for (index, (user, idnumber)) in manual.into_iter().enumerate() {
            if taken.insert((user, idnumber.clone())) {
                let id = 900 + i64::try_from(index).expect("small");
                state.jobs.insert(
                    id,
                    LocalJob {
                        id,
                        user_id: user,
                        values: values(&idnumber, id),
                    },
                );
            }
        }
        state
    })
}

fn sent() -> impl Strategy<Value = Vec<ServerUserJobs>> {
    prop::collection::vec(
        (
            1..=4i64,
            prop::collection::vec(
                (
                    1..=6i64,
                    "J[1-4]?",
                    prop::option::of(prop_oneof![Just(100i64), Just(101)]),
                    any::<bool>(),
                ),
                0..=3,
            ),
        ),
        0..=3,
    )
    .prop_map(|users| {
        users
            .into_iter()
            .map(|(server_user_id, jobs)| ServerUserJobs {
                server_user_id,
                jobs: jobs
                    .into_iter()
                    .map(|(id, idnumber, position, org)| ServerJob {
                        position,
                        organisation: org.then_some(200),
                        ..job(id * 10 + server_user_id, &idnumber)
                    })
                    .collect(),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn syncing_the_result_again_plans_nothing(
        start in state_with_manual(),
        first in sent(),
        second in sent(),
        positions in any::<bool>(),
    ) {
        let options = JobsOptions { positions, organisations: true };
        let mut state = start.clone();
        state.apply(&plan_jobs_sync(&state, &first, options));
        let plan = plan_jobs_sync(&state, &second, options);
        state.apply(&plan);
        let again = plan_jobs_sync(&state, &second, options);
        prop_assert!(again.changes.is_empty(), "{:?}", again.changes);

        let sent_users: BTreeSet<i64> = second.iter().map(|u| u.server_user_id + 10).collect();
        let first_users: BTreeSet<i64> = first.iter().map(|u| u.server_user_id + 10).collect();
        let mut users_seen = BTreeSet::new();
        for user in second.iter().filter(|u| users_seen.insert(u.server_user_id)) {
            let user_id = user.server_user_id + 10;
            if user.server_user_id > 3 {
                continue;
            }
            // Every kept server job is mapped, on this user, with its values.
            let mut seen = BTreeSet::new();
            let mut seen_idnumbers = BTreeSet::new();
            for server_job in &user.jobs {
                if !seen.insert(server_job.remote_id) || server_job.idnumber.is_empty()
                    || !seen_idnumbers.insert(server_job.idnumber.clone()) {
                    continue;
                }
                let local = state.job_map.get(&server_job.remote_id).and_then(|id| state.jobs.get(id));
                prop_assert!(local.is_some_and(|j| j.user_id == user_id), "{server_job:?}");
                let local = local.expect("checked");
                prop_assert_eq!(&local.values.idnumber, &server_job.idnumber);
                let expected_position = if positions { server_job.position.and_then(|p| state.position_map.get(&p).copied()) } else { None };
                prop_assert_eq!(local.values.position_id, expected_position);
            }
            // Idnumbers stay unique per user.
            let idnumbers: Vec<&str> = state.jobs.values().filter(|j| j.user_id == user_id).map(|j| j.values.idnumber.as_str()).collect();
            let unique: BTreeSet<&str> = idnumbers.iter().copied().collect();
            prop_assert_eq!(unique.len(), idnumbers.len());
        }
        // A manual job survives unless a server job of its user took its idnumber; users
        // the server sent nothing for keep every job.
        for manual in start.jobs.values() {
            if !sent_users.contains(&manual.user_id) && !first_users.contains(&manual.user_id) {
                prop_assert!(state.jobs.contains_key(&manual.id));
            }
        }
    }
}

#[test]
fn an_administrators_job_is_kept_and_the_servers_order_then_not_copied() {
    let mut state = JobsState {
        users: BTreeMap::from([(1, 11)]),
        ..JobsState::default()
    };
    state.jobs.insert(
        5,
        LocalJob {
            id: 5,
            user_id: 11,
            values: values("MINE", 1),
        },
    );
    let sent = [ServerUserJobs {
        server_user_id: 1,
        jobs: vec![job(7, "J1"), job(8, "J2")],
    }];
    let plan = plan_jobs_sync(&state, &sent, JobsOptions::default());
    state.apply(&plan);
    let orders: BTreeMap<&str, i64> = state
        .jobs
        .values()
        .map(|j| (j.values.idnumber.as_str(), j.values.sortorder))
        .collect();
    assert_eq!(orders, BTreeMap::from([("MINE", 1), ("J1", 2), ("J2", 3)]));
}

// ---- The store ------------------------------------------------------------------------------

async fn users_with_links(db: &TestDb) {
    let mut changes = Vec::new();
    for id in 1..=2 {
        let username = format!("tc_{id}_{SERVER}");
        changes.push(Change::CreateUser(DirectoryUser {
            username: username.clone(),
            firstname: format!("User {id}"),
            ..DirectoryUser::default()
        }));
        changes.push(Change::LinkConnectUser {
            username,
            link: ConnectLink {
                idp_id: "hq".to_owned(),
                server_idnumber: SERVER.to_owned(),
                server_user_id: id,
            },
        });
    }
    db.store
        .apply_batch(&Batch { changes }, WrittenBy::ADMIN_IMPORT, NOW)
        .await
        .expect("users");
    // Positions and organisations synced from the server: item 100 is POS-1, 200 ORG-1.
    for (kind, fw, item, idnumber) in [
        (FrameworkKind::Position, 1, 100, "POS-1"),
        (FrameworkKind::Organisation, 2, 200, "ORG-1"),
    ] {
        db.store
            .sync_hierarchy(
                SERVER,
                kind,
                &[ServerFramework {
                    remote_id: fw,
                    idnumber: format!("FW-{fw}"),
                    fullname: String::new(),
                    shortname: String::new(),
                    description: String::new(),
                    visible: true,
                }],
                &[ServerItem {
                    remote_id: item,
                    framework: fw,
                    parent: None,
                    idnumber: idnumber.to_owned(),
                    fullname: idnumber.to_owned(),
                    shortname: String::new(),
                    description: String::new(),
                    type_idnumber: String::new(),
                    visible: true,
                }],
                NOW,
            )
            .await
            .expect("hierarchy");
    }
}

async fn jobs_are_synced_with_positions_and_organisations_translated(db: &TestDb) {
    users_with_links(db).await;
    // A manual job of user 1 and a local job with a server job's idnumber for user 2.
    let username = |id: i64| format!("tc_{id}_{SERVER}");
    db.store
        .apply_batch(
            &Batch {
                changes: vec![
                    Change::CreateJob {
                        username: username(1),
                        job: DirectoryJob {
                            idnumber: "MINE".to_owned(),
                            fullname: "Mine".to_owned(),
                            sortorder: 1,
                            ..DirectoryJob::default()
                        },
                    },
                    Change::CreateJob {
                        username: username(2),
                        job: DirectoryJob {
                            idnumber: "J1".to_owned(),
                            fullname: "Local J1".to_owned(),
                            sortorder: 1,
                            ..DirectoryJob::default()
                        },
                    },
                ],
            },
            WrittenBy::ADMIN_IMPORT,
            NOW,
        )
        .await
        .expect("local jobs");
    let both = JobsOptions {
        positions: true,
        organisations: true,
    };
    let sent = vec![
        ServerUserJobs {
            server_user_id: 1,
            jobs: vec![ServerJob {
                position: Some(100),
                organisation: Some(200),
                ..job(7, "J1")
            }],
        },
        ServerUserJobs {
            server_user_id: 2,
            jobs: vec![job(8, "J1"), job(9, "J2")],
        },
    ];
    let mut model = db.store.connect_jobs_state(SERVER).await.expect("state");
    let plan = db
        .store
        .sync_connect_jobs(SERVER, &sent, both, NOW)
        .await
        .expect("syncs");
    let counts = plan.counts();
    assert_eq!((counts.created, counts.deleted), (3, 1), "{counts}");
    model.apply(&plan_jobs_sync(&model, &sent, both));
    let stored = db.store.connect_jobs_state(SERVER).await.expect("state");
    let shape = |state: &JobsState| -> BTreeSet<(i64, JobValues)> {
        state
            .jobs
            .values()
            .map(|j| (j.user_id, j.values.clone()))
            .collect()
    };
    assert_eq!(shape(&stored), shape(&model));
    let j1 = stored
        .jobs
        .values()
        .find(|j| {
            j.values.idnumber == "J1"
                && j.values.fullname == "Job J1"
                && j.values.position_id.is_some()
        })
        .expect("user 1's J1");
    assert_eq!(
        j1.values.position_id,
        stored.position_map.get(&100).copied()
    );
    assert_eq!(
        j1.values.organisation_id,
        stored.organisation_map.get(&200).copied()
    );
    assert!(
        stored.jobs.values().any(|j| j.values.idnumber == "MINE"),
        "the administrator's job stays"
    );
    assert!(
        !stored
            .jobs
            .values()
            .any(|j| j.values.fullname == "Local J1"),
        "the local job with the server's idnumber went"
    );

    // Again: nothing. Then J2 is renamed to J3 and J1 of user 2 removed; positions off.
    let again = db
        .store
        .sync_connect_jobs(SERVER, &sent, both, NOW)
        .await
        .expect("syncs");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let renamed = vec![
        ServerUserJobs {
            server_user_id: 1,
            jobs: vec![ServerJob {
                position: Some(100),
                organisation: Some(200),
                ..job(7, "J1")
            }],
        },
        ServerUserJobs {
            server_user_id: 2,
            jobs: vec![job(9, "J3")],
        },
    ];
    let off = JobsOptions {
        positions: false,
        organisations: true,
    };
    let plan = db
        .store
        .sync_connect_jobs(SERVER, &renamed, off, NOW)
        .await
        .expect("syncs");
    let counts = plan.counts();
    assert_eq!(
        (counts.updated, counts.deleted, counts.created),
        (2, 1, 0),
        "{counts}"
    );
    let stored = db.store.connect_jobs_state(SERVER).await.expect("state");
    let user2: BTreeSet<&str> = stored
        .jobs
        .values()
        .filter(|j| stored.users.get(&2) == Some(&j.user_id))
        .map(|j| j.values.idnumber.as_str())
        .collect();
    assert_eq!(user2, BTreeSet::from(["J3"]));
    assert!(
        stored.jobs.values().all(|j| j.values.position_id.is_none()),
        "positions are not synced any more"
    );
    assert_eq!(
        stored.job_map.len(),
        2,
        "the removed job's mapping went with it"
    );
}

on_both_backends!(jobs_are_synced_with_positions_and_organisations_translated);
