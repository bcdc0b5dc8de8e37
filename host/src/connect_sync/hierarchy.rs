//! The host's half of a Connect `positions` or `organisations` task: the output's
//! `directory.connect_hierarchy` (written by `plugins/connect`'s `sync_hierarchy`, the wire
//! crate's rows as they are) read strictly and checked, then handed to the store, which
//! plans it against the directory and applies it in one transaction
//! (`Store::sync_hierarchy`). Not the planning rules (`gatehouse_store::plan_hierarchy_sync`)
//! and not the wire format.
//!
//! Confinement as for users: only a Connect IdP's task may sync a hierarchy, and only the
//! rows of the server it names are mapped (a server's ids never reach another server's).

use gatehouse_connect_wire::{HierarchyFramework, HierarchyItem, HierarchyKind};
use gatehouse_store::{FrameworkKind, HierarchyCounts, ServerFramework, ServerItem};
use serde::Deserialize;
use serde_json::Value;

use super::{SyncError, check_text, malformed, require_connect_idp};
use crate::{connect_server::shares::framework_kind, state::AppState, tasks::Progress};

/// The section's name in a task output's `directory`.
pub const CONNECT_HIERARCHY: &str = "connect_hierarchy";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    server_idnumber: String,
    kind: HierarchyKind,
    frameworks: Vec<HierarchyFramework>,
    items: Vec<HierarchyItem>,
}

/// A `connect_hierarchy` section, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchySection {
    pub server_idnumber: String,
    pub kind: FrameworkKind,
    pub frameworks: Vec<ServerFramework>,
    pub items: Vec<ServerItem>,
}

/// Reads a `connect_hierarchy` section strictly: every key known and of its type, the
/// server idnumber 40 lowercase hex, ids positive, no control characters in any text.
pub fn read_section(section: &Value) -> Result<HierarchySection, SyncError> {
    let parsed: OutputSection = serde_json::from_value(section.clone())
        .map_err(|error| malformed(format!("`{CONNECT_HIERARCHY}`: {error}")))?;
    super::check_server_idnumber(&parsed.server_idnumber)?;
    let mut frameworks = Vec::with_capacity(parsed.frameworks.len());
    for (index, framework) in parsed.frameworks.into_iter().enumerate() {
        let at = |key: &str| format!("frameworks[{index}].{key}");
        if framework.id <= 0 {
            return Err(malformed(format!("{} is not a positive id", at("id"))));
        }
        for (key, value) in [
            ("idnumber", &framework.idnumber),
            ("fullname", &framework.fullname),
            ("shortname", &framework.shortname),
            ("description", &framework.description),
        ] {
            check_text(&at(key), value)?;
        }
        frameworks.push(ServerFramework {
            remote_id: framework.id,
            idnumber: framework.idnumber,
            fullname: framework.fullname,
            shortname: framework.shortname,
            description: framework.description,
            visible: framework.visible,
        });
    }
    let mut items = Vec::with_capacity(parsed.items.len());
    for (index, item) in parsed.items.into_iter().enumerate() {
        let at = |key: &str| format!("items[{index}].{key}");
        if item.id <= 0 || item.frameworkid <= 0 || item.parentid < 0 {
            return Err(malformed(format!(
                "{} has an id, framework id or parent id out of range",
                at("id")
            )));
        }
        let type_idnumber = item.typeidnumber.unwrap_or_default();
        for (key, value) in [
            ("idnumber", &item.idnumber),
            ("fullname", &item.fullname),
            ("shortname", &item.shortname),
            ("description", &item.description),
            ("typeidnumber", &type_idnumber),
        ] {
            check_text(&at(key), value)?;
        }
        items.push(ServerItem {
            remote_id: item.id,
            framework: item.frameworkid,
            parent: (item.parentid > 0).then_some(item.parentid),
            idnumber: item.idnumber,
            fullname: item.fullname,
            shortname: item.shortname,
            description: item.description,
            type_idnumber,
            visible: item.visible,
        });
    }
    Ok(HierarchySection {
        server_idnumber: parsed.server_idnumber,
        kind: framework_kind(parsed.kind),
        frameworks,
        items,
    })
}

/// What one hierarchy sync did: its counts and the server rows it skipped (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HierarchyReport {
    pub counts: HierarchyCounts,
    pub skipped: Vec<String>,
}

impl std::fmt::Display for HierarchyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.counts)?;
        if let Some(first) = self.skipped.first() {
            write!(f, " (first skipped: {first})")?;
        }
        Ok(())
    }
}

/// Applies `section` for the Connect IdP `idp_id`: the store plans and writes it in one
/// transaction, or writes nothing.
pub async fn apply(
    state: &AppState,
    idp_id: &str,
    section: &HierarchySection,
    progress: Progress<'_>,
) -> Result<HierarchyReport, SyncError> {
    require_connect_idp(state, idp_id, "a hierarchy")?;
    progress(&format!(
        "syncing {} frameworks and {} items in one transaction",
        section.frameworks.len(),
        section.items.len()
    ));
    let plan = state
        .store()
        .sync_hierarchy(
            &section.server_idnumber,
            section.kind,
            &section.frameworks,
            &section.items,
            state.now(),
        )
        .await?;
    for skipped in &plan.skipped {
        tracing::info!(idp = idp_id, "Connect hierarchy sync skipped {skipped}");
    }
    Ok(HierarchyReport {
        counts: plan.counts(),
        skipped: plan.skipped,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SERVER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";

    fn section() -> Value {
        json!({
            "server_idnumber": SERVER,
            "kind": "position",
            "frameworks": [{"id": 3, "fullname": "Roles", "shortname": "roles", "idnumber": "PF-1",
                            "description": "", "sortorder": 1, "visible": true,
                            "hidecustomfields": false, "timecreated": 0, "timemodified": 0}],
            "items": [{"id": 11, "frameworkid": 3, "parentid": 0, "fullname": "Head",
                       "shortname": "head", "idnumber": "P-1", "description": "", "path": "/11",
                       "depthlevel": 1, "sortthread": "01", "visible": true, "typeid": 4,
                       "typeidnumber": "T1", "custom_fields": [], "timevalidfrom": null,
                       "timevalidto": null, "timecreated": 0, "timemodified": 0}],
        })
    }

    #[test]
    fn a_well_formed_section_is_read() {
        let read = read_section(&section()).expect("reads");
        assert_eq!(read.kind, FrameworkKind::Position);
        assert_eq!(read.frameworks[0].remote_id, 3);
        assert_eq!(read.items[0].parent, None);
        assert_eq!(read.items[0].type_idnumber, "T1");
    }

    #[test]
    fn every_malformed_section_is_refused() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut value = section();
            edit(&mut value);
            value
        };
        for bad in [
            with(&|v| v["server_idnumber"] = json!("abc")),
            with(&|v| v["kind"] = json!("course")),
            with(&|v| v["extra"] = json!(1)),
            with(&|v| v["frameworks"][0]["id"] = json!(0)),
            with(&|v| v["frameworks"][0]["colour"] = json!("blue")),
            with(&|v| v["frameworks"][0]["fullname"] = json!("R\u{0}les")),
            with(&|v| v["items"][0]["parentid"] = json!(-1)),
            with(&|v| v["items"][0]["id"] = json!("11")),
            with(&|v| v["items"][0]["typeidnumber"] = json!("T\u{1b}1")),
            with(&|v| v["items"] = json!(null)),
        ] {
            assert!(
                matches!(read_section(&bad), Err(SyncError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
