//! A Connect client's job assignments, synced within the `users` task (reference §5.3):
//! each server job mapped to a local one through `connect_remote_ids` (kind
//! `job_assignment`). A **pure planner** ([`plan_jobs_sync`]) and
//! [`Store::sync_connect_jobs`], which reads the state in bulk (a handful of queries
//! whatever the number of users), plans and writes in **one transaction** with multi-row
//! statements. Not the users themselves (the users batch, written just before) and not the
//! wire format.
//!
//! The rules, for each linked user the server sent jobs for: a server job updates its
//! mapped job or creates one (fields `fullname`, `shortname`, `idnumber`, `description`,
//! `startdate`, `enddate`); its position and organisation are translated through the
//! `pos` / `org` maps only when positions / organisations are synced, else none; a local
//! job of the user with a server job's idnumber that is not the mapped one is deleted; a
//! mapped job the server no longer sends is deleted; a job no server mapped (an
//! administrator's) is left alone, and while the user has one the server's order is not
//! copied (new jobs go last). A server job without an idnumber, or with one an earlier job
//! of the same user has, is skipped. Users the server sent no jobs for (`jobs` null or
//! absent, a deleted user) keep theirs.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::Backend;
use crate::bulk::{placeholders, rows_per_statement, statement, value_rows};
use crate::connect_server::{JOBS, JobRow, UsersOf, per_user};
use crate::{FrameworkKind, Store, StoreError, remote_id_kinds};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// `connect_remote_ids.kind` of a job assignment.
pub const JOB_ID_KIND: &str = "job_assignment";

/// A job as the server sent it; position and organisation by the server's item ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerJob {
    pub remote_id: i64,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub startdate: i64,
    pub enddate: i64,
    pub position: Option<i64>,
    pub organisation: Option<i64>,
}

/// The jobs the server sent for one of its users, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUserJobs {
    pub server_user_id: i64,
    pub jobs: Vec<ServerJob>,
}

/// Which hierarchies are synced (`sync_positions`, `sync_organisations`): only then are a
/// job's position and organisation translated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsOptions {
    pub positions: bool,
    pub organisations: bool,
}

/// A local job row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalJob {
    pub id: i64,
    pub user_id: i64,
    pub values: JobValues,
}

/// The values of a job row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobValues {
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub position_id: Option<i64>,
    pub organisation_id: Option<i64>,
    pub startdate: i64,
    pub enddate: i64,
    pub sortorder: i64,
}

/// What the planner needs: this server's linked users (server id → local user id), their
/// jobs, this server's job map and its position and organisation maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsState {
    pub users: BTreeMap<i64, i64>,
    pub jobs: BTreeMap<i64, LocalJob>,
    pub job_map: BTreeMap<i64, i64>,
    pub position_map: BTreeMap<i64, i64>,
    pub organisation_map: BTreeMap<i64, i64>,
}

/// One change; [`JobsPlan::changes`] lists deletions, then idnumbers given up, then
/// updates, then creations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobChange {
    Delete {
        id: i64,
    },
    /// The job takes a placeholder idnumber until its update (two jobs swapping idnumbers).
    ReleaseIdnumber {
        id: i64,
    },
    Update {
        id: i64,
        values: JobValues,
    },
    Create {
        remote_id: i64,
        user_id: i64,
        values: JobValues,
    },
}

/// What one jobs sync changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsPlan {
    pub changes: Vec<JobChange>,
    pub skipped: usize,
}

/// How many of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsCounts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub skipped: usize,
}

impl std::fmt::Display for JobsCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "jobs: created {}, updated {}, deleted {}, skipped {}",
            self.created, self.updated, self.deleted, self.skipped
        )
    }
}

impl JobsPlan {
    pub fn counts(&self) -> JobsCounts {
        let mut counts = JobsCounts {
            skipped: self.skipped,
            ..JobsCounts::default()
        };
        for change in &self.changes {
            match change {
                JobChange::Delete { .. } => counts.deleted += 1,
                JobChange::Update { .. } => counts.updated += 1,
                JobChange::Create { .. } => counts.created += 1,
                JobChange::ReleaseIdnumber { .. } => {}
            }
        }
        counts
    }
}

/// Plans the jobs of `sent` (users the server sent jobs for) against `state`. Pure;
/// planning the result again plans nothing.
pub fn plan_jobs_sync(
    state: &JobsState,
    sent: &[ServerUserJobs],
    options: JobsOptions,
) -> JobsPlan {
    let mut plan = JobsPlan::default();
    let mapped_jobs: BTreeSet<i64> = state.job_map.values().copied().collect();
    let mut jobs_of: BTreeMap<i64, Vec<&LocalJob>> = BTreeMap::new();
    for job in state.jobs.values() {
        jobs_of.entry(job.user_id).or_default().push(job);
    }
    let mut deletes = Vec::new();
    let mut releases = Vec::new();
    let mut updates = Vec::new();
    let mut creates = Vec::new();
    let mut users_done = BTreeSet::new();
    for user in sent {
        let Some(&user_id) = state.users.get(&user.server_user_id) else {
            // Not linked (a user the users sync skipped): nothing of it to sync.
            plan.skipped += user.jobs.len();
            continue;
        };
        if !users_done.insert(user_id) {
            continue;
        }
        let local: &[&LocalJob] = jobs_of.get(&user_id).map_or(&[], Vec::as_slice);
        // The server's jobs to keep: first of each id and each idnumber, with an idnumber.
        let mut seen_ids = BTreeSet::new();
        let mut seen_idnumbers = BTreeSet::new();
        let mut wanted: Vec<(&ServerJob, Option<i64>)> = Vec::new();
        for job in &user.jobs {
            if !seen_ids.insert(job.remote_id)
                || job.idnumber.is_empty()
                || !seen_idnumbers.insert(job.idnumber.as_str())
            {
                plan.skipped += 1;
                continue;
            }
            let target = state
                .job_map
                .get(&job.remote_id)
                .filter(|id| state.jobs.get(id).is_some_and(|j| j.user_id == user_id))
                .copied();
            wanted.push((job, target));
        }
        let targets: BTreeSet<i64> = wanted.iter().filter_map(|(_, t)| *t).collect();
        let doomed: BTreeSet<i64> = local
            .iter()
            .filter(|job| !targets.contains(&job.id))
            .filter(|job| {
                mapped_jobs.contains(&job.id)
                    || seen_idnumbers.contains(job.values.idnumber.as_str())
            })
            .map(|job| job.id)
            .collect();
        let manual: Vec<&&LocalJob> = local
            .iter()
            .filter(|job| !targets.contains(&job.id) && !doomed.contains(&job.id))
            .collect();
        let mut next_sortorder = local
            .iter()
            .filter(|job| !doomed.contains(&job.id))
            .map(|job| job.values.sortorder)
            .max()
            .unwrap_or(0);
        deletes.extend(doomed.iter().map(|&id| JobChange::Delete { id }));
        let translate = |on: bool, map: &BTreeMap<i64, i64>, remote: Option<i64>| {
            if on {
                remote.and_then(|r| map.get(&r).copied())
            } else {
                None
            }
        };
        for (index, (job, target)) in wanted.into_iter().enumerate() {
            let sortorder = if manual.is_empty() {
                i64::try_from(index).unwrap_or(i64::MAX - 1) + 1
            } else {
                match target {
                    Some(id) => state.jobs[&id].values.sortorder,
                    None => {
                        next_sortorder += 1;
                        next_sortorder
                    }
                }
            };
            let values = JobValues {
                idnumber: job.idnumber.clone(),
                fullname: job.fullname.clone(),
                shortname: job.shortname.clone(),
                description: job.description.clone(),
                position_id: translate(options.positions, &state.position_map, job.position),
                organisation_id: translate(
                    options.organisations,
                    &state.organisation_map,
                    job.organisation,
                ),
                startdate: job.startdate,
                enddate: job.enddate,
                sortorder,
            };
            match target {
                Some(id) => {
                    let current = &state.jobs[&id].values;
                    if *current != values {
                        if current.idnumber != values.idnumber {
                            releases.push(JobChange::ReleaseIdnumber { id });
                        }
                        updates.push(JobChange::Update { id, values });
                    }
                }
                None => creates.push(JobChange::Create {
                    remote_id: job.remote_id,
                    user_id,
                    values,
                }),
            }
        }
    }
    plan.changes = deletes;
    plan.changes.extend(releases);
    plan.changes.extend(updates);
    plan.changes.extend(creates);
    plan
}

fn released_idnumber(id: i64) -> String {
    format!("\u{1}released-{id}")
}

impl JobsState {
    /// The state after `plan`, as the store leaves it (new jobs numbered after the largest
    /// id): the model the planner's properties check.
    pub fn apply(&mut self, plan: &JobsPlan) {
        let mut next = self.jobs.keys().max().copied().unwrap_or(0);
        for change in &plan.changes {
            match change {
                JobChange::Delete { id } => {
                    self.jobs.remove(id);
                }
                JobChange::ReleaseIdnumber { id } => {
                    if let Some(job) = self.jobs.get_mut(id) {
                        job.values.idnumber = released_idnumber(*id);
                    }
                }
                JobChange::Update { id, values } => {
                    if let Some(job) = self.jobs.get_mut(id) {
                        job.values = values.clone();
                    }
                }
                JobChange::Create {
                    remote_id,
                    user_id,
                    values,
                } => {
                    next += 1;
                    self.jobs.insert(
                        next,
                        LocalJob {
                            id: next,
                            user_id: *user_id,
                            values: values.clone(),
                        },
                    );
                    self.job_map.insert(*remote_id, next);
                }
            }
        }
        let jobs = &self.jobs;
        self.job_map.retain(|_, id| jobs.contains_key(id));
    }
}

// ---- The store ------------------------------------------------------------------------------

impl Store {
    /// Syncs the jobs of the users the server `server_idnumber` sent jobs for: reads the
    /// state, plans ([`plan_jobs_sync`]) and writes in one transaction.
    pub async fn sync_connect_jobs(
        &self,
        server_idnumber: &str,
        sent: &[ServerUserJobs],
        options: JobsOptions,
        now: i64,
    ) -> Result<JobsPlan, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first, so that SQLite takes the write lock at once (see apply_batch).
        sqlx::query("DELETE FROM connect_remote_ids WHERE 1 = 0")
            .execute(&mut *tx)
            .await?;
        let state = read_jobs_state(&mut tx, self.backend(), server_idnumber).await?;
        let plan = plan_jobs_sync(&state, sent, options);
        if !plan.changes.is_empty() {
            apply_jobs_plan(&mut tx, server_idnumber, &plan, now).await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    /// The state the jobs sync of `server_idnumber` plans against (tests, the model).
    pub async fn connect_jobs_state(&self, server_idnumber: &str) -> Result<JobsState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state = read_jobs_state(&mut tx, self.backend(), server_idnumber).await?;
        tx.commit().await?;
        Ok(state)
    }
}

async fn read_pairs(
    tx: &mut Tx<'_>,
    sql: &'static str,
    binds: &[&str],
) -> Result<BTreeMap<i64, i64>, StoreError> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let mut map = BTreeMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        map.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(map)
}

const ITEM_MAP: &str = "SELECT r.remote_id, r.local_id FROM connect_remote_ids r \
     JOIN hierarchy_items i ON i.id = r.local_id AND i.kind = $3 \
     WHERE r.server_idnumber = $1 AND r.kind = $2";

async fn read_jobs_state(
    tx: &mut Tx<'_>,
    backend: Backend,
    server_idnumber: &str,
) -> Result<JobsState, StoreError> {
    let mut state = JobsState {
        users: read_pairs(
            tx,
            "SELECT server_user_id, user_id FROM connect_users WHERE server_idnumber = $1",
            &[server_idnumber],
        )
        .await?,
        job_map: read_pairs(
            tx,
            "SELECT remote_id, local_id FROM connect_remote_ids \
             WHERE server_idnumber = $1 AND kind = $2",
            &[server_idnumber, JOB_ID_KIND],
        )
        .await?,
        ..JobsState::default()
    };
    for (kind, map) in [
        (FrameworkKind::Position, &mut state.position_map),
        (FrameworkKind::Organisation, &mut state.organisation_map),
    ] {
        *map = read_pairs(
            tx,
            ITEM_MAP,
            &[server_idnumber, remote_id_kinds(kind).1, kind.column()],
        )
        .await?;
    }
    // The jobs of the users linked to this server, one aggregated row per user (as the
    // server role reads them): a row costs far more to hand over than its bytes.
    let linked: std::collections::HashSet<i64> = state.users.values().copied().collect();
    let per_user: std::collections::HashMap<i64, Vec<JobRow>> =
        per_user(tx, backend, JOBS, UsersOf::All).await?;
    for (user_id, rows) in per_user {
        if !linked.contains(&user_id) {
            continue;
        }
        for row in rows {
            let job = LocalJob {
                id: row.id,
                user_id,
                values: JobValues {
                    idnumber: row.idnumber,
                    fullname: row.fullname,
                    shortname: row.shortname,
                    description: row.description,
                    position_id: row.position_id,
                    organisation_id: row.organisation_id,
                    startdate: row.startdate,
                    enddate: row.enddate,
                    sortorder: row.sortorder,
                },
            };
            state.jobs.insert(job.id, job);
        }
    }
    Ok(state)
}

async fn apply_jobs_plan(
    tx: &mut Tx<'_>,
    server_idnumber: &str,
    plan: &JobsPlan,
    now: i64,
) -> Result<(), StoreError> {
    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    for change in &plan.changes {
        match change {
            JobChange::Delete { id } => deletes.push(*id),
            JobChange::Create {
                remote_id,
                user_id,
                values,
            } => creates.push((*remote_id, *user_id, values)),
            JobChange::ReleaseIdnumber { .. } | JobChange::Update { .. } => {}
        }
    }
    for chunk in deletes.chunks(rows_per_statement(1)) {
        let sql = format!(
            "DELETE FROM job_assignments WHERE id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = statement(sql);
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut **tx).await?;
    }
    // Updates are few after the first sync: one statement each.
    for change in &plan.changes {
        match change {
            JobChange::ReleaseIdnumber { id } => {
                sqlx::query("UPDATE job_assignments SET idnumber = $1 WHERE id = $2")
                    .bind(released_idnumber(*id))
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            JobChange::Update { id, values } => {
                let done = sqlx::query(
                    "UPDATE job_assignments SET idnumber = $1, fullname = $2, shortname = $3, \
                     description = $4, position_id = $5, organisation_id = $6, startdate = $7, \
                     enddate = $8, sortorder = $9, updated_at = $10 WHERE id = $11",
                )
                .bind(&values.idnumber)
                .bind(&values.fullname)
                .bind(&values.shortname)
                .bind(&values.description)
                .bind(values.position_id)
                .bind(values.organisation_id)
                .bind(values.startdate)
                .bind(values.enddate)
                .bind(values.sortorder)
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("job assignment {id}")));
                }
            }
            JobChange::Delete { .. } | JobChange::Create { .. } => {}
        }
    }
    const JOB_WIDTH: usize = 12;
    for chunk in creates.chunks(rows_per_statement(JOB_WIDTH)) {
        let sql = format!(
            "INSERT INTO job_assignments (user_id, idnumber, fullname, shortname, description, \
             position_id, organisation_id, startdate, enddate, sortorder, created_at, updated_at) \
             VALUES {}",
            value_rows(JOB_WIDTH, chunk.len(), "")
        );
        let mut query = statement(sql);
        for (_, user_id, values) in chunk {
            query = query
                .bind(*user_id)
                .bind(&values.idnumber)
                .bind(&values.fullname)
                .bind(&values.shortname)
                .bind(&values.description)
                .bind(values.position_id)
                .bind(values.organisation_id)
                .bind(values.startdate)
                .bind(values.enddate)
                .bind(values.sortorder)
                .bind(now)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    if !creates.is_empty() {
        // The new rows' ids, by (user, idnumber), read back in one query to map them.
        let mut ids: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for row in sqlx::query(
            "SELECT j.id, j.user_id, j.idnumber FROM job_assignments j \
             JOIN connect_users c ON c.user_id = j.user_id WHERE c.server_idnumber = $1",
        )
        .bind(server_idnumber)
        .fetch_all(&mut **tx)
        .await?
        {
            ids.insert(
                (row.try_get("user_id")?, row.try_get("idnumber")?),
                row.try_get("id")?,
            );
        }
        const MAP_WIDTH: usize = 5;
        for chunk in creates.chunks(rows_per_statement(MAP_WIDTH)) {
            let sql = format!(
                "INSERT INTO connect_remote_ids (server_idnumber, kind, remote_id, local_id, created_at) \
                 VALUES {} ON CONFLICT (server_idnumber, kind, remote_id) \
                 DO UPDATE SET local_id = excluded.local_id",
                value_rows(MAP_WIDTH, chunk.len(), "")
            );
            let mut query = statement(sql);
            for (remote_id, user_id, values) in chunk {
                let local = ids
                    .get(&(*user_id, values.idnumber.clone()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "the job assignment {:?} of user {user_id} just written",
                            values.idnumber
                        ))
                    })?;
                query = query
                    .bind(server_idnumber)
                    .bind(JOB_ID_KIND)
                    .bind(*remote_id)
                    .bind(local)
                    .bind(now);
            }
            query.execute(&mut **tx).await?;
        }
    }
    if !deletes.is_empty() {
        sqlx::query(
            "DELETE FROM connect_remote_ids WHERE kind = $1 AND NOT EXISTS \
             (SELECT 1 FROM job_assignments j WHERE j.id = connect_remote_ids.local_id)",
        )
        .bind(JOB_ID_KIND)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
