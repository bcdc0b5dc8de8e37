//! Job assignments within a Connect `users` task (reference §5.3): each user's `jobs` in
//! the `connect_users` section (the wire crate's `RemoteJob`, handed over only with
//! `sync_jobs` at API version 2) read strictly, then synced by the store in one transaction
//! right after the users batch, so that the users it created are there to hold them
//! (`Store::sync_connect_jobs`). Not the planning rules (`gatehouse_store::plan_jobs_sync`).

use gatehouse_connect_wire::RemoteJob;
use gatehouse_store::{JobsCounts, JobsOptions, ServerJob, ServerUserJobs};

use super::{SyncError, check_text, malformed};
use crate::state::AppState;

/// The jobs a `connect_users` section hands over: which hierarchies translate, and each
/// user's jobs (users the server sent none for are not listed, and keep theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsSync {
    pub options: JobsOptions,
    pub users: Vec<ServerUserJobs>,
}

/// One user's jobs, checked: ids positive, no control characters in any text.
pub fn read_user_jobs(
    path: &str,
    server_user_id: i64,
    jobs: Vec<RemoteJob>,
) -> Result<ServerUserJobs, SyncError> {
    let mut read = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.into_iter().enumerate() {
        let at = |key: &str| format!("{path}.jobs[{index}].{key}");
        if job.id <= 0
            || job.positionid.is_some_and(|id| id < 0)
            || job.organisationid.is_some_and(|id| id < 0)
        {
            return Err(malformed(format!(
                "{} has an id, position id or organisation id out of range",
                at("id")
            )));
        }
        let text = |value: Option<String>| value.unwrap_or_default();
        let job = ServerJob {
            remote_id: job.id,
            idnumber: text(job.idnumber),
            fullname: text(job.fullname),
            shortname: text(job.shortname),
            description: text(job.description),
            startdate: job.startdate.unwrap_or(0),
            enddate: job.enddate.unwrap_or(0),
            // Totara writes 0 for "none" as well as null.
            position: job.positionid.filter(|id| *id > 0),
            organisation: job.organisationid.filter(|id| *id > 0),
        };
        for (key, value) in [
            ("idnumber", &job.idnumber),
            ("fullname", &job.fullname),
            ("shortname", &job.shortname),
            ("description", &job.description),
        ] {
            check_text(&at(key), value)?;
        }
        read.push(job);
    }
    Ok(ServerUserJobs {
        server_user_id,
        jobs: read,
    })
}

/// Syncs `jobs` from the server `server_idnumber` in one transaction.
pub async fn apply(
    state: &AppState,
    server_idnumber: &str,
    jobs: &JobsSync,
) -> Result<JobsCounts, SyncError> {
    let plan = state
        .store()
        .sync_connect_jobs(server_idnumber, &jobs.users, jobs.options, state.now())
        .await?;
    Ok(plan.counts())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64) -> RemoteJob {
        RemoteJob {
            id,
            fullname: Some("Rep".to_owned()),
            shortname: None,
            idnumber: Some("J1".to_owned()),
            description: None,
            startdate: Some(5),
            enddate: None,
            positionid: Some(0),
            organisationid: Some(31),
            sortorder: Some(1),
            columns: Default::default(),
        }
    }

    #[test]
    fn a_job_is_read_with_none_for_zero_and_empty_for_null() {
        let read = read_user_jobs("users[0]", 7, vec![job(21)]).expect("reads");
        let job = &read.jobs[0];
        assert_eq!(
            (job.remote_id, job.position, job.organisation),
            (21, None, Some(31))
        );
        assert_eq!(
            (job.shortname.as_str(), job.startdate, job.enddate),
            ("", 5, 0)
        );
    }

    #[test]
    fn bad_jobs_are_refused() {
        let mut control = job(21);
        control.fullname = Some("R\u{0}p".to_owned());
        let mut negative = job(21);
        negative.positionid = Some(-1);
        for bad in [job(0), control, negative] {
            assert!(matches!(
                read_user_jobs("users[0]", 7, vec![bad]),
                Err(SyncError::Malformed(_))
            ));
        }
    }
}
