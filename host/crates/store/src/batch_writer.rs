//! Writes a directory [`Batch`] inside its transaction with few round trips: the changes a
//! large import or Connect sync makes by the hundred thousand (users with their fields and
//! provenance, Connect links, job assignments, field and core updates) go out as multi-row
//! statements, and usernames and hierarchy idnumbers are resolved to row ids in bulk and
//! remembered. Not the meaning of a change (that is `directory::apply_change`, which still
//! writes every other kind one by one) and not planning.
//!
//! Order: the batch is cut into *segments*, runs of consecutive bulk kinds; every other
//! change is a barrier applied on its own, in place. Inside a segment the kinds are written
//! in a fixed order (created users first, then what names users: core values, suspension,
//! fields, links, jobs), which is the batch's own order for every batch a planner makes (a
//! change never names a user a later change creates) — and the statements of one kind do
//! not depend on each other, except that the last of two writes to the same key wins, as it
//! would one by one.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use crate::bulk::{last_per_key, placeholders, rows_per_statement, statement, value_rows};
use crate::directory::{
    Batch, Change, ConnectLink, CoreField, DirectoryJob, DirectoryUser, Tx, WrittenBy,
    apply_change, framework_kind_name,
};
use crate::{FrameworkKind, StoreError};

/// Writes `batch` in `tx`; see the module's doc for the order.
pub(crate) async fn write_batch(
    tx: &mut Tx<'_>,
    batch: &Batch,
    by: WrittenBy<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let mut writer = Writer {
        by,
        now,
        user_ids: HashMap::new(),
    };
    let mut segment = Segment::default();
    for change in &batch.changes {
        if !segment.take(change) {
            writer.flush(tx, &mut segment).await?;
            apply_change(tx, change, by, now).await?;
            // A barrier may delete a user (or make one): forget the ids it could change.
            writer.user_ids.clear();
        }
    }
    writer.flush(tx, &mut segment).await
}

/// The bulk changes of one segment, by kind, in batch order.
#[derive(Default)]
struct Segment<'b> {
    creates: Vec<&'b DirectoryUser>,
    core: Vec<(&'b str, CoreField, &'b str)>,
    suspended: Vec<(&'b str, bool)>,
    fields: Vec<(&'b str, &'b str, &'b str)>,
    links: Vec<(&'b str, &'b ConnectLink)>,
    jobs: Vec<(&'b str, &'b DirectoryJob)>,
}

impl<'b> Segment<'b> {
    /// Adds `change` if it is a bulk kind; false for a barrier.
    fn take(&mut self, change: &'b Change) -> bool {
        match change {
            Change::CreateUser(user) => self.creates.push(user),
            Change::SetCore {
                username,
                field,
                value,
            } => self.core.push((username, *field, value)),
            Change::SetSuspended {
                username,
                suspended,
            } => self.suspended.push((username, *suspended)),
            Change::SetField {
                username,
                field,
                value,
            } => self.fields.push((username, field, value)),
            Change::LinkConnectUser { username, link } => self.links.push((username, link)),
            Change::CreateJob { username, job } => self.jobs.push((username, job)),
            _ => return false,
        }
        true
    }

    fn usernames(&self) -> impl Iterator<Item = &'b str> + '_ {
        self.core
            .iter()
            .map(|c| c.0)
            .chain(self.suspended.iter().map(|c| c.0))
            .chain(self.fields.iter().map(|c| c.0))
            .chain(self.links.iter().map(|c| c.0))
            .chain(self.jobs.iter().map(|c| c.0))
    }
}

struct Writer<'w> {
    by: WrittenBy<'w>,
    now: i64,
    /// Row ids of the usernames this segment (and earlier ones since the last barrier)
    /// created or looked up.
    user_ids: HashMap<String, i64>,
}

impl Writer<'_> {
    async fn flush(
        &mut self,
        tx: &mut Tx<'_>,
        segment: &mut Segment<'_>,
    ) -> Result<(), StoreError> {
        let segment = std::mem::take(segment);
        if !segment.creates.is_empty() {
            self.create_users(tx, &segment.creates).await?;
        }
        let wanted: Vec<&str> = segment
            .usernames()
            .filter(|name| !self.user_ids.contains_key(*name))
            .collect();
        self.look_up_users(tx, wanted).await?;
        if !segment.core.is_empty() {
            self.set_core(tx, &segment.core).await?;
        }
        if !segment.suspended.is_empty() {
            self.set_suspended(tx, &segment.suspended).await?;
        }
        if !segment.fields.is_empty() {
            let rows: Vec<(i64, &str, &str)> = segment
                .fields
                .iter()
                .map(|(user, field, value)| Ok((self.id(user)?, *field, *value)))
                .collect::<Result<_, StoreError>>()?;
            upsert_fields(tx, &rows).await?;
            let named: Vec<(i64, &str)> = rows.iter().map(|(id, field, _)| (*id, *field)).collect();
            self.record_provenance(tx, &named).await?;
            let touched: Vec<i64> = rows.iter().map(|row| row.0).collect();
            self.touch(tx, &touched).await?;
        }
        if !segment.links.is_empty() {
            self.link(tx, &segment.links).await?;
        }
        if !segment.jobs.is_empty() {
            self.create_jobs(tx, &segment.jobs).await?;
        }
        Ok(())
    }

    fn id(&self, username: &str) -> Result<i64, StoreError> {
        self.user_ids
            .get(username)
            .copied()
            .ok_or_else(|| StoreError::NotFound(format!("user {username:?}")))
    }

    async fn look_up_users(
        &mut self,
        tx: &mut Tx<'_>,
        mut wanted: Vec<&str>,
    ) -> Result<(), StoreError> {
        wanted.sort_unstable();
        wanted.dedup();
        for chunk in wanted.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT id, username FROM users WHERE username IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = statement(sql);
            for name in chunk {
                query = query.bind(*name);
            }
            for row in query.fetch_all(&mut **tx).await? {
                self.user_ids
                    .insert(row.try_get("username")?, row.try_get("id")?);
            }
        }
        Ok(())
    }

    async fn create_users(
        &mut self,
        tx: &mut Tx<'_>,
        users: &[&DirectoryUser],
    ) -> Result<(), StoreError> {
        const WIDTH: usize = 9;
        for chunk in users.chunks(rows_per_statement(WIDTH)) {
            let sql = format!(
                "INSERT INTO users (username, email, firstname, lastname, idnumber, branch, \
                 auth_source, password_hash, suspended, created_at, updated_at, is_admin) \
                 VALUES {} RETURNING id, username",
                value_rows(WIDTH, chunk.len(), ", $0, $0, 0")
            );
            let mut query = statement(sql).bind(self.now);
            for user in chunk {
                query = query
                    .bind(&user.username)
                    .bind(&user.email)
                    .bind(&user.firstname)
                    .bind(&user.lastname)
                    .bind(&user.idnumber)
                    .bind(self.by.branch)
                    .bind(self.by.auth_source)
                    .bind(user.password_hash.as_deref())
                    .bind(i64::from(user.suspended));
            }
            let rows = query
                .fetch_all(&mut **tx)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "one of the usernames {:?} … {:?} is already taken",
                        chunk.first().map(|u| &u.username),
                        chunk.last().map(|u| &u.username)
                    )),
                    other => other,
                })?;
            for row in rows {
                self.user_ids
                    .insert(row.try_get("username")?, row.try_get("id")?);
            }
        }
        let mut ids = Vec::with_capacity(users.len());
        let mut fields: Vec<(i64, &str, &str)> = Vec::new();
        for user in users {
            let id = self.id(&user.username)?;
            ids.push(id);
            for (name, value) in &user.fields {
                fields.push((id, name, value));
            }
        }
        upsert_fields(tx, &fields).await?;
        self.record_creations(tx, &ids).await
    }

    /// Who set the values of the users just created (`ids`): every non-empty core value and
    /// every field, read back by the database itself, so a user costs one parameter here
    /// instead of two per value. New rows have no provenance yet: ids are never reused.
    async fn record_creations(&self, tx: &mut Tx<'_>, ids: &[i64]) -> Result<(), StoreError> {
        let core_names = CoreField::ALL
            .iter()
            .map(|field| format!("SELECT '{}' AS field", field.name()))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let core_value = CoreField::ALL
            .iter()
            .map(|field| format!("WHEN '{0}' THEN u.{0}", field.name()))
            .collect::<Vec<_>>()
            .join(" ");
        for chunk in ids.chunks(rows_per_statement(1)) {
            let listed = placeholders(3, chunk.len());
            let sql = format!(
                "INSERT INTO field_provenance (user_id, field, idp_id, set_at) \
                 SELECT u.id, c.field, $1, $2 FROM users u CROSS JOIN ({core_names}) c \
                 WHERE u.id IN ({listed}) AND (CASE c.field {core_value} END) <> '' \
                 UNION ALL \
                 SELECT f.user_id, f.name, $1, $2 FROM user_fields f WHERE f.user_id IN ({listed})"
            );
            let mut query = statement(sql).bind(self.by.provenance).bind(self.now);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn record_provenance(
        &self,
        tx: &mut Tx<'_>,
        rows: &[(i64, &str)],
    ) -> Result<(), StoreError> {
        let rows = last_per_key(rows, |row| (row.0, row.1));
        const WIDTH: usize = 2;
        for chunk in rows.chunks(rows_per_statement(WIDTH)) {
            let sql = format!(
                "INSERT INTO field_provenance (user_id, field, idp_id, set_at) VALUES {} \
                 ON CONFLICT (user_id, field) DO UPDATE SET idp_id = excluded.idp_id, \
                 set_at = excluded.set_at",
                value_rows(WIDTH, chunk.len(), ", $0, $00")
            );
            let mut query = statement(sql).bind(self.by.provenance).bind(self.now);
            for (user, field) in chunk {
                query = query.bind(*user).bind(*field);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn set_core(
        &self,
        tx: &mut Tx<'_>,
        changes: &[(&str, CoreField, &str)],
    ) -> Result<(), StoreError> {
        let mut provenance = Vec::with_capacity(changes.len());
        for (username, field, value) in changes {
            let id = self.id(username)?;
            let sql = match field {
                CoreField::Email => "UPDATE users SET email = $1, updated_at = $2 WHERE id = $3",
                CoreField::Firstname => {
                    "UPDATE users SET firstname = $1, updated_at = $2 WHERE id = $3"
                }
                CoreField::Lastname => {
                    "UPDATE users SET lastname = $1, updated_at = $2 WHERE id = $3"
                }
                CoreField::Idnumber => {
                    "UPDATE users SET idnumber = $1, updated_at = $2 WHERE id = $3"
                }
            };
            sqlx::query(sql)
                .bind(*value)
                .bind(self.now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            provenance.push((id, field.name()));
        }
        self.record_provenance(tx, &provenance).await
    }

    async fn set_suspended(
        &self,
        tx: &mut Tx<'_>,
        changes: &[(&str, bool)],
    ) -> Result<(), StoreError> {
        let changes = last_per_key(changes, |c| c.0);
        for suspended in [false, true] {
            let ids: Vec<i64> = changes
                .iter()
                .filter(|c| c.1 == suspended)
                .map(|c| self.id(c.0))
                .collect::<Result<_, _>>()?;
            for chunk in ids.chunks(rows_per_statement(1)) {
                let sql = format!(
                    "UPDATE users SET suspended = $1, updated_at = $2 WHERE id IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut query = statement(sql).bind(i64::from(suspended)).bind(self.now);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    async fn touch(&self, tx: &mut Tx<'_>, ids: &[i64]) -> Result<(), StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "UPDATE users SET updated_at = $1 WHERE id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = statement(sql).bind(self.now);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn link(
        &self,
        tx: &mut Tx<'_>,
        links: &[(&str, &ConnectLink)],
    ) -> Result<(), StoreError> {
        let links = last_per_key(links, |l| l.0);
        const WIDTH: usize = 4;
        for chunk in links.chunks(rows_per_statement(WIDTH)) {
            let sql = format!(
                "INSERT INTO connect_users (user_id, idp_id, server_idnumber, server_user_id, \
                 created_at) VALUES {} \
                 ON CONFLICT (user_id) DO UPDATE SET idp_id = excluded.idp_id, \
                 server_idnumber = excluded.server_idnumber, \
                 server_user_id = excluded.server_user_id",
                value_rows(WIDTH, chunk.len(), ", $0")
            );
            let mut query = statement(sql).bind(self.now);
            for (username, link) in chunk {
                query = query
                    .bind(self.id(username)?)
                    .bind(&link.idp_id)
                    .bind(&link.server_idnumber)
                    .bind(link.server_user_id);
            }
            query
                .execute(&mut **tx)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "a server user of {} is already linked to another user",
                        chunk.first().map_or("", |l| l.1.server_idnumber.as_str())
                    )),
                    other => other,
                })?;
        }
        Ok(())
    }

    async fn create_jobs(
        &self,
        tx: &mut Tx<'_>,
        jobs: &[(&str, &DirectoryJob)],
    ) -> Result<(), StoreError> {
        let positions = item_ids(
            tx,
            FrameworkKind::Position,
            jobs.iter().filter_map(|j| j.1.position.as_deref()),
        )
        .await?;
        let organisations = item_ids(
            tx,
            FrameworkKind::Organisation,
            jobs.iter().filter_map(|j| j.1.organisation.as_deref()),
        )
        .await?;
        let item = |ids: &BTreeMap<String, i64>,
                    kind,
                    idnumber: &Option<String>|
         -> Result<Option<i64>, StoreError> {
            match idnumber {
                None => Ok(None),
                Some(idnumber) => ids.get(idnumber).copied().map(Some).ok_or_else(|| {
                    StoreError::NotFound(format!("{} {idnumber:?}", framework_kind_name(kind)))
                }),
            }
        };
        const WIDTH: usize = 9;
        for chunk in jobs.chunks(rows_per_statement(WIDTH)) {
            let sql = format!(
                "INSERT INTO job_assignments (user_id, idnumber, fullname, shortname, \
                 position_id, organisation_id, startdate, enddate, sortorder, created_at, \
                 updated_at) VALUES {}",
                value_rows(WIDTH, chunk.len(), ", $0, $0")
            );
            let mut query = statement(sql).bind(self.now);
            for (username, job) in chunk {
                query = query
                    .bind(self.id(username)?)
                    .bind(&job.idnumber)
                    .bind(&job.fullname)
                    .bind(&job.shortname)
                    .bind(item(&positions, FrameworkKind::Position, &job.position)?)
                    .bind(item(
                        &organisations,
                        FrameworkKind::Organisation,
                        &job.organisation,
                    )?)
                    .bind(job.startdate)
                    .bind(job.enddate)
                    .bind(job.sortorder);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// Row ids of the hierarchy items of `kind` named by `idnumbers`.
async fn item_ids(
    tx: &mut Tx<'_>,
    kind: FrameworkKind,
    idnumbers: impl Iterator<Item = &str>,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut wanted: Vec<&str> = idnumbers.collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids = BTreeMap::new();
    for chunk in wanted.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT id, idnumber FROM hierarchy_items WHERE kind = $1 AND idnumber IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query = statement(sql).bind(framework_kind_name(kind));
        for idnumber in chunk {
            query = query.bind(*idnumber);
        }
        for row in query.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get("idnumber")?, row.try_get("id")?);
        }
    }
    Ok(ids)
}

async fn upsert_fields(tx: &mut Tx<'_>, rows: &[(i64, &str, &str)]) -> Result<(), StoreError> {
    let rows = last_per_key(rows, |row| (row.0, row.1));
    const WIDTH: usize = 3;
    for chunk in rows.chunks(rows_per_statement(WIDTH)) {
        let sql = format!(
            "INSERT INTO user_fields (user_id, name, value) VALUES {} \
             ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value",
            value_rows(WIDTH, chunk.len(), "")
        );
        let mut query = statement(sql);
        for (user, name, value) in chunk {
            query = query.bind(*user).bind(*name).bind(*value);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
