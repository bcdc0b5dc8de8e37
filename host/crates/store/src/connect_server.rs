//! This host as a Totara Connect server: its identity (the server idnumber), the registered
//! client systems with every "Add client" option, the SSO sessions handed to clients, and the
//! directory as a client is allowed to see it (users, tombstones of deleted users, profile
//! field values, password hashes). It is not the protocol: the checks, replies and which
//! client sees what are decided by the host's `connect_server` module; this only keeps and
//! returns the rows, each write in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Store, StoreError, get_bool, json_rows_sql};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// The options of the original's "Add client" form (`001_*`, protocol §2 step 3), with the
/// linked records named the way an administrator names them: audiences and frameworks by
/// idnumber, courses by shortname.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectClientOptions {
    /// "Restrict to audience": the client sees only this audience's members.
    pub restrict_audience: Option<String>,
    /// Audiences synced to the client (`get_user_collections`).
    pub audiences: Vec<String>,
    /// Courses synced to the client (`get_user_collections`), by shortname.
    pub courses: Vec<String>,
    /// Position frameworks synced to the client (`get_positions`).
    pub position_frameworks: Vec<String>,
    /// Organisation frameworks synced to the client (`get_organisations`).
    pub organisation_frameworks: Vec<String>,
    pub sync_profile_fields: bool,
    pub sync_jobs: bool,
    /// Audiences a directory import creates later are linked to the client.
    pub add_new_audiences: bool,
    /// Courses a directory import creates later are linked to the client.
    pub add_new_courses: bool,
    pub allow_plugin_services: bool,
}

/// A client system to register. The secrets are 40 lowercase hex from the caller's secure
/// random source; the URL's trailing `/` is stripped when stored, as the original does.
#[derive(Clone, PartialEq, Eq)]
pub struct NewConnectClient {
    pub client_idnumber: String,
    /// What this server presents to the client (`clientsecret`).
    pub client_secret: String,
    /// What the client presents to this server (`serversecret`).
    pub server_secret: String,
    pub client_url: String,
    pub client_name: String,
    pub client_comment: String,
    pub options: ConnectClientOptions,
}

impl fmt::Debug for NewConnectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewConnectClient")
            .field("client_idnumber", &self.client_idnumber)
            .field("client_url", &self.client_url)
            .field("client_name", &self.client_name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A registered client system (`totara_connect_clients` and its link rows).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectClient {
    pub id: i64,
    /// `status = 0`; a deleted client (status 1) keeps its row.
    pub active: bool,
    pub client_idnumber: String,
    pub client_secret: String,
    pub server_secret: String,
    /// `''` until the client's first `update_api_version`, then `totaralms` or `totarasocial`.
    pub client_type: String,
    /// Without a trailing `/`.
    pub client_url: String,
    pub client_name: String,
    pub client_comment: String,
    /// The restricting audience's id; authoritative for what the client sees. It stays set
    /// when the audience is deleted (the client then sees nobody), while
    /// `options.restrict_audience` (its idnumber) is then `None`.
    pub restrict_audience_id: Option<i64>,
    pub options: ConnectClientOptions,
    /// As stored: 1 or 2 for any client that registered; anything else is refused by the SEP.
    pub api_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for ConnectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No secrets.
        f.debug_struct("ConnectClient")
            .field("id", &self.id)
            .field("active", &self.active)
            .field("client_idnumber", &self.client_idnumber)
            .field("client_type", &self.client_type)
            .field("client_url", &self.client_url)
            .field("client_name", &self.client_name)
            .field("restrict_audience_id", &self.restrict_audience_id)
            .field("options", &self.options)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// An SSO session handed to a client (`totara_connect_sso_sessions`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectSsoSession {
    pub id: i64,
    pub client_id: i64,
    pub user_id: i64,
    /// The Gatehouse session it belongs to (`sessions.id_hash`).
    pub session_key: String,
    pub sso_token: String,
    /// Already returned by `get_sso_user` once.
    pub active: bool,
    pub created_at: i64,
}

impl fmt::Debug for ConnectSsoSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectSsoSession")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("active", &self.active)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A user as a client may see it: a directory user, or the tombstone of a deleted one
/// (`deleted`, username `deleted_<32 random>`, email and idnumber blank, no fields).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectSharedUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub idnumber: String,
    /// Only when asked for (the server's `sync_passwords`), and never for a tombstone.
    pub password_hash: Option<String>,
    pub deleted: bool,
    pub suspended: bool,
    pub created_at: i64,
    /// For a tombstone, when it was deleted.
    pub updated_at: i64,
    /// Additional profile field values by name, ordered by name (empty unless asked for).
    pub fields: Vec<(String, String)>,
    /// Job assignments in the user's order (`sortorder`; empty unless asked for).
    pub jobs: Vec<ConnectSharedJob>,
}

/// A user's job assignment as a client may see it (`job_assignment`); the position and
/// organisation are this server's hierarchy item ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSharedJob {
    pub id: i64,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub position_id: Option<i64>,
    pub organisation_id: Option<i64>,
    pub startdate: i64,
    pub enddate: i64,
    /// From 1, the first the primary one.
    pub sortorder: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What [`Store::connect_shared_users`] reads besides the users themselves: each extra is
/// one query over every user the client sees (never one per user), and skipped when the
/// reply will not carry it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectUsersQuery {
    /// Only this audience's members, and no tombstones (§8.3).
    pub restrict_audience_id: Option<i64>,
    pub password_hashes: bool,
    pub fields: bool,
    pub jobs: bool,
}

impl fmt::Debug for ConnectSharedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectSharedUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("deleted", &self.deleted)
            .field("suspended", &self.suspended)
            .finish_non_exhaustive()
    }
}

/// The index key of a server secret: a SEP call is looked up by this, so that the database
/// never compares the secret itself (in time that depends on where it differs).
fn secret_lookup_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

const CLIENT_COLUMNS: &str = "c.id, c.status, c.clientidnumber, c.clientsecret, c.serversecret, \
     c.clienttype, c.clienturl, c.clientname, c.clientcomment, c.restrict_audience_id, \
     a.idnumber AS restrict_audience, c.syncprofilefields, c.addnewaudiences, c.addnewcourses, \
     c.syncjobs, c.allowpluginsepservices, c.apiversion, c.created_at, c.updated_at";
const CLIENT_FROM: &str =
    "FROM connect_clients c LEFT JOIN audiences a ON a.id = c.restrict_audience_id";

fn client_from_row(row: &AnyRow) -> Result<ConnectClient, StoreError> {
    let status: i64 = row.try_get("status")?;
    Ok(ConnectClient {
        id: row.try_get("id")?,
        active: status == 0,
        client_idnumber: row.try_get("clientidnumber")?,
        client_secret: row.try_get("clientsecret")?,
        server_secret: row.try_get("serversecret")?,
        client_type: row.try_get("clienttype")?,
        client_url: row.try_get("clienturl")?,
        client_name: row.try_get("clientname")?,
        client_comment: row.try_get("clientcomment")?,
        restrict_audience_id: row.try_get("restrict_audience_id")?,
        options: ConnectClientOptions {
            restrict_audience: row.try_get("restrict_audience")?,
            sync_profile_fields: get_bool(row, "syncprofilefields")?,
            sync_jobs: get_bool(row, "syncjobs")?,
            add_new_audiences: get_bool(row, "addnewaudiences")?,
            add_new_courses: get_bool(row, "addnewcourses")?,
            allow_plugin_services: get_bool(row, "allowpluginsepservices")?,
            ..ConnectClientOptions::default()
        },
        api_version: row.try_get("apiversion")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn sso_session_from_row(row: &AnyRow) -> Result<ConnectSsoSession, StoreError> {
    Ok(ConnectSsoSession {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        session_key: row.try_get("session_id_hash")?,
        sso_token: row.try_get("ssotoken")?,
        active: get_bool(row, "active")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The clients' linked records, filled into `clients` (each list in name order).
async fn fill_links<'e, E>(executor: E, clients: &mut [ConnectClient]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any> + Copy,
{
    if clients.is_empty() {
        return Ok(());
    }
    let mut by_id: BTreeMap<i64, &mut ConnectClient> =
        clients.iter_mut().map(|c| (c.id, c)).collect();
    // One query per link table over every client; the lists are short.
    let rows = sqlx::query(
        "SELECT l.client_id, 'audience' AS kind, a.idnumber AS name \
         FROM connect_client_audiences l JOIN audiences a ON a.id = l.audience_id \
         UNION ALL SELECT l.client_id, 'course' AS kind, c.shortname AS name \
         FROM connect_client_courses l JOIN courses c ON c.id = l.course_id \
         UNION ALL SELECT l.client_id, f.kind AS kind, f.idnumber AS name \
         FROM connect_client_frameworks l JOIN hierarchy_frameworks f ON f.id = l.framework_id \
         ORDER BY 1, 2, 3",
    )
    .fetch_all(executor)
    .await?;
    for row in rows {
        let client_id: i64 = row.try_get("client_id")?;
        let kind: String = row.try_get("kind")?;
        let name: String = row.try_get("name")?;
        let Some(client) = by_id.get_mut(&client_id) else {
            continue;
        };
        let list = match kind.as_str() {
            "audience" => &mut client.options.audiences,
            "course" => &mut client.options.courses,
            "position" => &mut client.options.position_frameworks,
            "organisation" => &mut client.options.organisation_frameworks,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown connect client link kind {other:?}"
                )));
            }
        };
        list.push(name);
    }
    Ok(())
}

/// The id of the record named `name` by `sql` (one `$1`), or `NotFound` naming `what`.
async fn resolve(
    tx: &mut Tx<'_>,
    sql: &'static str,
    what: &str,
    name: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(sql)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{what} {name:?}")))?;
    Ok(row.try_get("id")?)
}

const AUDIENCE_BY_IDNUMBER: &str = "SELECT id FROM audiences WHERE idnumber = $1";
const COURSE_BY_SHORTNAME: &str = "SELECT id FROM courses WHERE shortname = $1";
const POSITION_FRAMEWORK_BY_IDNUMBER: &str =
    "SELECT id FROM hierarchy_frameworks WHERE kind = 'position' AND idnumber = $1";
const ORGANISATION_FRAMEWORK_BY_IDNUMBER: &str =
    "SELECT id FROM hierarchy_frameworks WHERE kind = 'organisation' AND idnumber = $1";

/// Writes the tombstone of user `user_id` (about to be deleted in the same transaction), so
/// that Connect clients keep being told it is deleted. Called by every user deletion.
pub(crate) async fn write_tombstone(
    tx: &mut Tx<'_>,
    user_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    // The username default (deleted_<32 random>) is the database's: see the migration.
    sqlx::query(
        "INSERT INTO deleted_users (user_id, created_at, deleted_at) \
         SELECT id, created_at, $2 FROM users WHERE id = $1 \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The live users (and, unrestricted, the tombstones) a client may see, as SQL over `$1`
/// (the restricting audience, when `restricted`), with an optional extra condition on the
/// user id, ordered by id.
fn visible_users_sql(restricted: bool, one: bool, with_password_hashes: bool) -> String {
    let password = if with_password_hashes {
        "u.password_hash"
    } else {
        "NULL"
    };
    let (live_from, tomb, first) = if restricted {
        // §8.3: a restricted client never sees a deleted user; it simply disappears.
        (
            "FROM users u JOIN audience_members m ON m.user_id = u.id AND m.audience_id = $1",
            false,
            2,
        )
    } else {
        ("FROM users u", true, 1)
    };
    let live_filter = if one {
        format!(" WHERE u.id = ${first}")
    } else {
        String::new()
    };
    let mut sql = format!(
        "SELECT u.id, u.username, u.email, u.firstname, u.lastname, u.idnumber, \
         {password} AS password_hash, 0 AS deleted, u.suspended, u.created_at, u.updated_at \
         {live_from}{live_filter}"
    );
    if tomb {
        let tomb_filter = if one {
            format!(" WHERE d.user_id = ${first}")
        } else {
            String::new()
        };
        sql.push_str(&format!(
            " UNION ALL SELECT d.user_id AS id, d.username, '' AS email, '' AS firstname, \
             '' AS lastname, '' AS idnumber, NULL AS password_hash, 1 AS deleted, \
             0 AS suspended, d.created_at, d.deleted_at AS updated_at \
             FROM deleted_users d{tomb_filter}"
        ));
    }
    sql.push_str(" ORDER BY 1");
    sql
}

fn shared_user_from_row(row: &AnyRow) -> Result<ConnectSharedUser, StoreError> {
    Ok(ConnectSharedUser {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        firstname: row.try_get("firstname")?,
        lastname: row.try_get("lastname")?,
        idnumber: row.try_get("idnumber")?,
        password_hash: row.try_get("password_hash")?,
        deleted: get_bool(row, "deleted")?,
        suspended: get_bool(row, "suspended")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        fields: Vec::new(),
        jobs: Vec::new(),
    })
}

/// Whose field values or jobs one read takes: every user, the members of a restricting
/// audience (bound as `$1`), or one user (bound as `$1`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum UsersOf {
    All,
    AudienceMembers(i64),
    One(i64),
}

impl UsersOf {
    /// The join and condition on `alias.user_id`.
    fn sql(self, alias: &str) -> String {
        match self {
            UsersOf::All => String::new(),
            UsersOf::AudienceMembers(_) => format!(
                " JOIN audience_members m ON m.user_id = {alias}.user_id AND m.audience_id = $1"
            ),
            UsersOf::One(_) => format!(" WHERE {alias}.user_id = $1"),
        }
    }

    fn bound(self) -> Option<i64> {
        match self {
            UsersOf::All => None,
            UsersOf::AudienceMembers(id) | UsersOf::One(id) => Some(id),
        }
    }
}

/// A job assignment as [`json_rows_sql`] lists it: a JSON array in the column order of
/// [`JOB_COLUMNS`], which serde reads into these fields in the same order.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct JobRow {
    pub id: i64,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub position_id: Option<i64>,
    pub organisation_id: Option<i64>,
    pub startdate: i64,
    pub enddate: i64,
    pub sortorder: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "j.id, j.idnumber, j.fullname, j.shortname, j.description, \
     j.position_id, j.organisation_id, j.startdate, j.enddate, j.sortorder, j.created_at, \
     j.updated_at";

fn shared_job(row: JobRow) -> ConnectSharedJob {
    ConnectSharedJob {
        id: row.id,
        idnumber: row.idnumber,
        fullname: row.fullname,
        shortname: row.shortname,
        description: row.description,
        position_id: row.position_id,
        organisation_id: row.organisation_id,
        startdate: row.startdate,
        enddate: row.enddate,
        sortorder: row.sortorder,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Each user's rows of `table` (aliased `alias`) as `columns` in `order`, read from one
/// JSON list per user (see [`json_rows_sql`]) into `T`s, by user id.
pub(crate) async fn per_user<T: serde::de::DeserializeOwned>(
    tx: &mut Tx<'_>,
    backend: Backend,
    (table, alias, columns, order): (&str, &str, &str, &str),
    users: UsersOf,
) -> Result<HashMap<i64, Vec<T>>, StoreError> {
    let sql = format!(
        "SELECT {alias}.user_id, {list} AS list FROM {table} {alias}{users} \
         GROUP BY {alias}.user_id",
        list = json_rows_sql(backend, columns, order),
        users = users.sql(alias),
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(id) = users.bound() {
        query = query.bind(id);
    }
    let mut rows = query.fetch(&mut **tx);
    let mut grouped: HashMap<i64, Vec<T>> = HashMap::new();
    while let Some(row) = rows.try_next().await? {
        let list: String = row.try_get("list")?;
        let values = serde_json::from_str(&list).map_err(|e| {
            StoreError::Corrupt(format!("{table} of one user do not read back: {e}"))
        })?;
        grouped.insert(row.try_get("user_id")?, values);
    }
    Ok(grouped)
}

pub(crate) const FIELD_VALUES: (&str, &str, &str, &str) =
    ("user_fields", "f", "f.name, f.value", "f.name");
pub(crate) const JOBS: (&str, &str, &str, &str) =
    ("job_assignments", "j", JOB_COLUMNS, "j.sortorder, j.id");

/// Field values (by name) and jobs (in the user's order) of `users`, each read as asked.
async fn fields_and_jobs(
    tx: &mut Tx<'_>,
    backend: Backend,
    users: UsersOf,
    fields: bool,
    jobs: bool,
) -> Result<
    (
        HashMap<i64, Vec<(String, String)>>,
        HashMap<i64, Vec<JobRow>>,
    ),
    StoreError,
> {
    let fields = if fields {
        per_user(tx, backend, FIELD_VALUES, users).await?
    } else {
        HashMap::new()
    };
    let jobs = if jobs {
        per_user(tx, backend, JOBS, users).await?
    } else {
        HashMap::new()
    };
    Ok((fields, jobs))
}

/// Gives each live user of `users` its field values and jobs (a tombstone's id is a
/// deleted user's, whose rows are gone: it gets none).
fn attach(
    users: &mut [ConnectSharedUser],
    mut fields: HashMap<i64, Vec<(String, String)>>,
    mut jobs: HashMap<i64, Vec<JobRow>>,
) {
    for user in users.iter_mut().filter(|u| !u.deleted) {
        user.fields = fields.remove(&user.id).unwrap_or_default();
        user.jobs = jobs
            .remove(&user.id)
            .unwrap_or_default()
            .into_iter()
            .map(shared_job)
            .collect();
    }
}

impl Store {
    /// This server's idnumber: the stored one, or `fresh` (40 lowercase hex from the caller's
    /// secure random source) stored now if there is none yet. Race-safe between hosts on
    /// one database: whichever insert lands first wins, and every caller gets that one.
    pub async fn connect_server_idnumber(&self, fresh: &str) -> Result<String, StoreError> {
        const READ: &str = "SELECT idnumber FROM connect_server_identity WHERE id = 1";
        // Read first: every SEP call asks, and only the very first one writes.
        if let Some(idnumber) = sqlx::query_scalar::<_, String>(READ)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(idnumber);
        }
        sqlx::query(
            "INSERT INTO connect_server_identity (id, idnumber) VALUES (1, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar(READ).fetch_one(&self.pool).await?)
    }

    /// Registers a client system (status active, API version 1, client type `''`) with its
    /// link rows, in one transaction; returns its id. `DuplicateConnectClient` when another
    /// active client has the URL; `NotFound` naming a linked record that does not exist;
    /// `Conflict` for a duplicate idnumber or secret. Nothing is written on any error.
    pub async fn insert_connect_client(
        &self,
        client: &NewConnectClient,
        now: i64,
    ) -> Result<i64, StoreError> {
        let url = client.client_url.trim_end_matches('/');
        let options = &client.options;
        let mut tx = self.pool.begin().await?;
        let restrict_audience_id = match &options.restrict_audience {
            None => None,
            Some(idnumber) => {
                Some(resolve(&mut tx, AUDIENCE_BY_IDNUMBER, "audience", idnumber).await?)
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO connect_clients (status, clientidnumber, clientsecret, serversecret, \
             serversecret_hash, clienttype, clienturl, clientname, clientcomment, \
             restrict_audience_id, syncprofilefields, addnewaudiences, addnewcourses, syncjobs, \
             allowpluginsepservices, apiversion, created_at, updated_at) \
             VALUES (0, $1, $2, $3, $4, '', $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $14) \
             RETURNING id",
        )
        .bind(&client.client_idnumber)
        .bind(&client.client_secret)
        .bind(&client.server_secret)
        .bind(secret_lookup_key(&client.server_secret))
        .bind(url)
        .bind(&client.client_name)
        .bind(&client.client_comment)
        .bind(restrict_audience_id)
        .bind(i64::from(options.sync_profile_fields))
        .bind(i64::from(options.add_new_audiences))
        .bind(i64::from(options.add_new_courses))
        .bind(i64::from(options.sync_jobs))
        .bind(i64::from(options.allow_plugin_services))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(message)
                if message.contains("clienturl") || message.contains("active_url") =>
            {
                StoreError::DuplicateConnectClient(url.to_owned())
            }
            other => other,
        })?;
        let id: i64 = inserted.try_get("id")?;
        let links: [(&str, &[String], &'static str, &str); 4] = [
            (
                "INSERT INTO connect_client_audiences (client_id, audience_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &options.audiences,
                AUDIENCE_BY_IDNUMBER,
                "audience",
            ),
            (
                "INSERT INTO connect_client_courses (client_id, course_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &options.courses,
                COURSE_BY_SHORTNAME,
                "course",
            ),
            (
                "INSERT INTO connect_client_frameworks (client_id, framework_id) \
                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &options.position_frameworks,
                POSITION_FRAMEWORK_BY_IDNUMBER,
                "position framework",
            ),
            (
                "INSERT INTO connect_client_frameworks (client_id, framework_id) \
                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &options.organisation_frameworks,
                ORGANISATION_FRAMEWORK_BY_IDNUMBER,
                "organisation framework",
            ),
        ];
        for (insert, names, lookup, what) in links {
            for name in names {
                let linked = resolve(&mut tx, lookup, what, name).await?;
                sqlx::query(insert)
                    .bind(id)
                    .bind(linked)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes a client row outright, with its link rows and SSO sessions (a registration
    /// that failed leaves nothing behind). True if there was one.
    pub async fn delete_connect_client_row(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM connect_clients WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every client system, active and deleted, with its options, ordered by id.
    pub async fn connect_clients(&self) -> Result<Vec<ConnectClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} {CLIENT_FROM} ORDER BY c.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let mut clients = rows
            .iter()
            .map(client_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        fill_links(&self.pool, &mut clients).await?;
        Ok(clients)
    }

    async fn connect_client_where(
        &self,
        condition: &'static str,
        value: &str,
    ) -> Result<Option<ConnectClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} {CLIENT_FROM} WHERE {condition}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut clients = [client_from_row(&row)?];
        fill_links(&self.pool, &mut clients).await?;
        let [client] = clients;
        Ok(Some(client))
    }

    /// The client (active or deleted) with this `clientidnumber`.
    pub async fn connect_client_by_idnumber(
        &self,
        client_idnumber: &str,
    ) -> Result<Option<ConnectClient>, StoreError> {
        self.connect_client_where("c.clientidnumber = $1", client_idnumber)
            .await
    }

    /// The client (active or deleted) whose `serversecret` is `secret`, found by the secret's
    /// SHA-256 so that the database never compares the secret itself. The caller still
    /// compares [`ConnectClient::server_secret`] with the presented one in constant time
    /// (`authorize_at_server` does).
    pub async fn connect_client_by_server_secret(
        &self,
        secret: &str,
    ) -> Result<Option<ConnectClient>, StoreError> {
        self.connect_client_where("c.serversecret_hash = $1", &secret_lookup_key(secret))
            .await
    }

    /// Records the API version and client type a client chose (`update_api_version`).
    /// True if the client exists.
    pub async fn update_connect_client_api_version(
        &self,
        id: i64,
        api_version: i64,
        client_type: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connect_clients SET apiversion = $1, clienttype = $2, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(api_version)
        .bind(client_type)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// `delete_client`: marks the client deleted (status 1) and purges its SSO sessions and
    /// link rows, in one transaction, keeping the row. True if the client exists.
    pub async fn mark_connect_client_deleted(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE connect_clients SET status = 1, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        for sql in [
            "DELETE FROM connect_sso_sessions WHERE client_id = $1",
            "DELETE FROM connect_client_audiences WHERE client_id = $1",
            "DELETE FROM connect_client_courses WHERE client_id = $1",
            "DELETE FROM connect_client_frameworks WHERE client_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores an SSO session (not yet active) for `user_id` at client `client_id`, belonging
    /// to Gatehouse session `session_key` (`sessions.id_hash`); returns its id. `Conflict` if
    /// the token exists.
    pub async fn create_connect_sso_session(
        &self,
        client_id: i64,
        user_id: i64,
        session_key: &str,
        sso_token: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO connect_sso_sessions (client_id, user_id, session_id_hash, ssotoken, \
             active, created_at) VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
        )
        .bind(client_id)
        .bind(user_id)
        .bind(session_key)
        .bind(sso_token)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The SSO session of client `client_id` with this token (another client's token is not
    /// found).
    pub async fn connect_sso_session_by_token(
        &self,
        client_id: i64,
        sso_token: &str,
    ) -> Result<Option<ConnectSsoSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, client_id, user_id, session_id_hash, ssotoken, active, created_at \
             FROM connect_sso_sessions WHERE client_id = $1 AND ssotoken = $2",
        )
        .bind(client_id)
        .bind(sso_token)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(sso_session_from_row).transpose()
    }

    /// Marks an SSO session active, once: of any number of concurrent callers on any number
    /// of hosts exactly one gets `true` (`get_sso_user`'s single use).
    pub async fn activate_connect_sso_session(&self, id: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE connect_sso_sessions SET active = 1 WHERE id = $1 AND active = 0")
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Each client holding an SSO session of Gatehouse session `session_key`, with the token
    /// it holds (to tell it `kill_sso_user`), ordered by SSO session id.
    pub async fn connect_sso_sessions_of_session(
        &self,
        session_key: &str,
    ) -> Result<Vec<(ConnectClient, String)>, StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS}, s.ssotoken FROM connect_sso_sessions s \
             JOIN connect_clients c ON c.id = s.client_id \
             LEFT JOIN audiences a ON a.id = c.restrict_audience_id \
             WHERE s.session_id_hash = $1 ORDER BY s.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session_key)
            .fetch_all(&self.pool)
            .await?;
        let mut clients = rows
            .iter()
            .map(client_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        fill_links(&self.pool, &mut clients).await?;
        rows.iter()
            .zip(clients)
            .map(|(row, client)| Ok((client, row.try_get::<String, _>("ssotoken")?)))
            .collect()
    }

    /// Deletes every SSO session of Gatehouse session `session_key`; returns how many.
    pub async fn delete_connect_sso_sessions_of_session(
        &self,
        session_key: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM connect_sso_sessions WHERE session_id_hash = $1")
            .bind(session_key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The Gatehouse sessions Connect SSO sessions still name although their user is gone or
    /// suspended, or the session itself is gone (a deleted user's, by the schema's cascade):
    /// their clients were never told.
    pub async fn orphaned_connect_sso_session_keys(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.session_id_hash FROM connect_sso_sessions s \
             WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE sessions.id_hash = s.session_id_hash) \
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id AND u.suspended = 0) \
             ORDER BY s.session_id_hash",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("session_id_hash")?))
            .collect()
    }

    /// Deletes the SSO sessions whose Gatehouse session no longer exists (ended or swept);
    /// returns how many. For the host's cleanup.
    pub async fn delete_orphaned_connect_sso_sessions(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM connect_sso_sessions WHERE NOT EXISTS \
             (SELECT 1 FROM sessions WHERE sessions.id_hash = connect_sso_sessions.session_id_hash)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The users a client sees (`get_users`), ordered by id: every user and every tombstone
    /// of a deleted user; with a restricting audience only that audience's members, and no
    /// tombstones (§8.3). Each with its additional field values and job assignments and
    /// password hashes as `query` asks: one query each over all the users, in one read
    /// transaction (a consistent view), however many users there are.
    pub async fn connect_shared_users(
        &self,
        query: &ConnectUsersQuery,
    ) -> Result<Vec<ConnectSharedUser>, StoreError> {
        let restrict = query.restrict_audience_id;
        let sql = visible_users_sql(restrict.is_some(), false, query.password_hashes);
        let mut users_query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(audience) = restrict {
            users_query = users_query.bind(audience);
        }
        let mut tx = self.pool.begin().await?;
        let rows = users_query.fetch_all(&mut *tx).await?;
        let mut users = rows
            .iter()
            .map(shared_user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        drop(rows);
        let whose = restrict.map_or(UsersOf::All, UsersOf::AudienceMembers);
        let (fields, jobs) =
            fields_and_jobs(&mut tx, self.backend, whose, query.fields, query.jobs).await?;
        tx.commit().await?;
        attach(&mut users, fields, jobs);
        Ok(users)
    }

    /// [`Store::connect_shared_users`] with every field value and job.
    pub async fn connect_visible_users(
        &self,
        restrict_audience_id: Option<i64>,
        with_password_hashes: bool,
    ) -> Result<Vec<ConnectSharedUser>, StoreError> {
        self.connect_shared_users(&ConnectUsersQuery {
            restrict_audience_id,
            password_hashes: with_password_hashes,
            fields: true,
            jobs: true,
        })
        .await
    }

    /// One user as a client sees it (`get_user`, `get_sso_user`), with the same rules as
    /// [`Store::connect_visible_users`] and every field value and job: `None` when there is no such user or tombstone, or
    /// the client is restricted and the user is not a member.
    pub async fn connect_visible_user(
        &self,
        restrict_audience_id: Option<i64>,
        user_id: i64,
        with_password_hashes: bool,
    ) -> Result<Option<ConnectSharedUser>, StoreError> {
        let sql = visible_users_sql(restrict_audience_id.is_some(), true, with_password_hashes);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(audience) = restrict_audience_id {
            query = query.bind(audience);
        }
        let mut tx = self.pool.begin().await?;
        let row = query.bind(user_id).fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut users = [shared_user_from_row(&row)?];
        let (fields, jobs) =
            fields_and_jobs(&mut tx, self.backend, UsersOf::One(users[0].id), true, true).await?;
        tx.commit().await?;
        attach(&mut users, fields, jobs);
        let [user] = users;
        Ok(Some(user))
    }

    /// A user's additional profile field values, ordered by name.
    pub async fn connect_user_field_values(
        &self,
        user_id: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT name, value FROM user_fields WHERE user_id = $1 ORDER BY name")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("value")?)))
            .collect()
    }

    /// A user's stored password hash (sent to clients only with `sync_passwords`).
    pub async fn connect_user_password_hash(
        &self,
        user_id: i64,
    ) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(hash.flatten())
    }
}
