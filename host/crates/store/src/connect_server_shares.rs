//! What this host as a Connect server sends a client beyond its users: the audiences and
//! courses linked to the client with their members (`get_user_collections`), and the
//! position or organisation frameworks linked to it with their items (`get_positions`,
//! `get_organisations`). Rows only, each set read in one transaction: the wire shapes, the
//! items' order and which services a client may call are the host's `connect_server` core's.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{FrameworkKind, Store, StoreError, get_bool};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// An audience linked to a client (`totara_connect_client_cohorts`), with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSharedAudience {
    pub id: i64,
    pub idnumber: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Member user ids, ascending: only users who exist (a deleted user's membership went
    /// with it) and, for a restricted client, who are members of its restricting audience.
    pub members: Vec<i64>,
}

/// A course linked to a client (`totara_connect_client_courses`), with its enrolled users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSharedCourse {
    pub id: i64,
    pub shortname: String,
    pub fullname: String,
    pub summary: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Enrolled user ids, ascending, with the same rules as an audience's members.
    pub members: Vec<i64>,
}

/// The collections a client is sent, each list ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectCollections {
    pub audiences: Vec<ConnectSharedAudience>,
    pub courses: Vec<ConnectSharedCourse>,
}

/// A position or organisation framework linked to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSharedFramework {
    pub id: i64,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    pub visible: bool,
    pub sortorder: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An item of a linked framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSharedItem {
    pub id: i64,
    pub framework_id: i64,
    /// The parent item (in the same framework); `None` at the top.
    pub parent_id: Option<i64>,
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    pub description: String,
    /// The item type's idnumber, `""` for none.
    pub type_idnumber: String,
    pub visible: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The frameworks of one kind a client is sent (by `sortorder`, then id) and all their
/// items (by id; the caller puts parents first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectHierarchy {
    pub frameworks: Vec<ConnectSharedFramework>,
    pub items: Vec<ConnectSharedItem>,
}

/// The members of every collection linked to client `$1`, as `(collection_id, user_id)`
/// ordered by both; `restricted` adds the join on the restricting audience `$2`.
fn members_sql(
    link_table: &str,
    link_column: &str,
    member_table: &str,
    restricted: bool,
) -> String {
    // The member table names its collection by the link table's column (audience_id, course_id).
    let restriction = if restricted {
        " JOIN audience_members r ON r.user_id = m.user_id AND r.audience_id = $2"
    } else {
        ""
    };
    format!(
        "SELECT l.{link_column} AS collection_id, m.user_id FROM {link_table} l \
         JOIN {member_table} m ON m.{link_column} = l.{link_column}{restriction} \
         WHERE l.client_id = $1 ORDER BY 1, 2"
    )
}

/// Member user ids by collection id, read by `sql` (from [`members_sql`]).
async fn members(
    tx: &mut Tx<'_>,
    sql: String,
    client_id: i64,
    restrict_audience_id: Option<i64>,
) -> Result<HashMap<i64, Vec<i64>>, StoreError> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(client_id);
    if let Some(audience) = restrict_audience_id {
        query = query.bind(audience);
    }
    let mut grouped: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        grouped
            .entry(row.try_get("collection_id")?)
            .or_default()
            .push(row.try_get("user_id")?);
    }
    Ok(grouped)
}

fn framework_from_row(row: &AnyRow) -> Result<ConnectSharedFramework, StoreError> {
    Ok(ConnectSharedFramework {
        id: row.try_get("id")?,
        idnumber: row.try_get("idnumber")?,
        fullname: row.try_get("fullname")?,
        shortname: row.try_get("shortname")?,
        description: row.try_get("description")?,
        visible: get_bool(row, "visible")?,
        sortorder: row.try_get("sortorder")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn item_from_row(row: &AnyRow) -> Result<ConnectSharedItem, StoreError> {
    Ok(ConnectSharedItem {
        id: row.try_get("id")?,
        framework_id: row.try_get("framework_id")?,
        parent_id: row.try_get("parent_id")?,
        idnumber: row.try_get("idnumber")?,
        fullname: row.try_get("fullname")?,
        shortname: row.try_get("shortname")?,
        description: row.try_get("description")?,
        type_idnumber: row.try_get("type_idnumber")?,
        visible: get_bool(row, "visible")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The audiences and courses linked to client `client_id` with their members
    /// (`get_user_collections`): members are users who exist and, when the client is
    /// restricted to audience `restrict_audience_id`, members of it too (a restricting
    /// audience that is gone leaves every list of members empty, never unrestricted).
    pub async fn connect_client_collections(
        &self,
        client_id: i64,
        restrict_audience_id: Option<i64>,
    ) -> Result<ConnectCollections, StoreError> {
        let restricted = restrict_audience_id.is_some();
        let mut tx = self.pool.begin().await?;
        let audience_rows = sqlx::query(
            "SELECT a.id, a.idnumber, a.name, a.description, a.created_at, a.updated_at \
             FROM connect_client_audiences l JOIN audiences a ON a.id = l.audience_id \
             WHERE l.client_id = $1 ORDER BY a.id",
        )
        .bind(client_id)
        .fetch_all(&mut *tx)
        .await?;
        let course_rows = sqlx::query(
            "SELECT c.id, c.shortname, c.fullname, c.summary, c.created_at, c.updated_at \
             FROM connect_client_courses l JOIN courses c ON c.id = l.course_id \
             WHERE l.client_id = $1 ORDER BY c.id",
        )
        .bind(client_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut audience_members = members(
            &mut tx,
            members_sql(
                "connect_client_audiences",
                "audience_id",
                "audience_members",
                restricted,
            ),
            client_id,
            restrict_audience_id,
        )
        .await?;
        let mut course_members = members(
            &mut tx,
            members_sql(
                "connect_client_courses",
                "course_id",
                "course_enrolments",
                restricted,
            ),
            client_id,
            restrict_audience_id,
        )
        .await?;
        tx.commit().await?;
        let audiences = audience_rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                Ok(ConnectSharedAudience {
                    id,
                    idnumber: row.try_get("idnumber")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    members: audience_members.remove(&id).unwrap_or_default(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let courses = course_rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                Ok(ConnectSharedCourse {
                    id,
                    shortname: row.try_get("shortname")?,
                    fullname: row.try_get("fullname")?,
                    summary: row.try_get("summary")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    members: course_members.remove(&id).unwrap_or_default(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ConnectCollections { audiences, courses })
    }

    /// The frameworks of `kind` linked to client `client_id` and every item in them
    /// (`get_positions`, `get_organisations`).
    pub async fn connect_client_hierarchy(
        &self,
        client_id: i64,
        kind: FrameworkKind,
    ) -> Result<ConnectHierarchy, StoreError> {
        let mut tx = self.pool.begin().await?;
        let frameworks = sqlx::query(
            "SELECT f.id, f.idnumber, f.fullname, f.shortname, f.description, f.visible, \
             f.sortorder, f.created_at, f.updated_at \
             FROM connect_client_frameworks l JOIN hierarchy_frameworks f ON f.id = l.framework_id \
             WHERE l.client_id = $1 AND f.kind = $2 ORDER BY f.sortorder, f.id",
        )
        .bind(client_id)
        .bind(kind.column())
        .fetch_all(&mut *tx)
        .await?;
        let items = sqlx::query(
            "SELECT i.id, i.framework_id, i.parent_id, i.idnumber, i.fullname, i.shortname, \
             i.description, i.type_idnumber, i.visible, i.created_at, i.updated_at \
             FROM connect_client_frameworks l JOIN hierarchy_frameworks f ON f.id = l.framework_id \
             JOIN hierarchy_items i ON i.framework_id = f.id \
             WHERE l.client_id = $1 AND f.kind = $2 ORDER BY i.id",
        )
        .bind(client_id)
        .bind(kind.column())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ConnectHierarchy {
            frameworks: frameworks
                .iter()
                .map(framework_from_row)
                .collect::<Result<_, _>>()?,
            items: items.iter().map(item_from_row).collect::<Result<_, _>>()?,
        })
    }
}
