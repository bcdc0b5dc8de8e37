//! The host's half of a Connect `user_collections` task (reference §5.4): the output's
//! `directory.connect_collections` (written by `plugins/connect`'s `sync_collections`) read
//! strictly, planned with the store's pure planner against the directory as it is, and
//! applied in one transaction: every server cohort and course a local audience of this IdP,
//! kept in place across syncs. Not the planning rules
//! (`gatehouse_store::plan_collections_sync`) and not the wire format.
//!
//! Confinement as for users: only a Connect IdP's task may sync collections, the audiences
//! it makes and changes are its own (`component` = the task's IdP, never a name in the
//! output), and their members are only the users this IdP linked to that server.

use std::collections::BTreeSet;
use std::fmt;

use gatehouse_store::{
    CollectionKind, CollectionsCounts, ServerCollection, SyncSource, plan_collections_sync,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    SyncError, check_server_idnumber, check_text, malformed, named_section_in, require_connect_idp,
};
use crate::{state::AppState, tasks::Progress};

/// The section's name in a task output's `directory`.
pub const CONNECT_COLLECTIONS: &str = "connect_collections";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputCollection {
    #[serde(rename = "type")]
    kind: String,
    id: i64,
    name: String,
    description: String,
    members: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    server_idnumber: String,
    collections: Vec<OutputCollection>,
}

/// A `connect_collections` section, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionsSection {
    pub server_idnumber: String,
    /// Everything the server shares now, both types.
    pub collections: Vec<ServerCollection>,
}

/// The `connect_collections` section of a task's output, if it has one.
pub fn collections_section_in(output: &Value) -> Result<Option<&Value>, SyncError> {
    named_section_in(output, CONNECT_COLLECTIONS)
}

/// Reads a `connect_collections` section strictly: every key known and of its type, the
/// server idnumber 40 lowercase hex, `type` cohort or course, ids and member ids positive,
/// each collection once, no control characters in a name or description (line breaks and
/// tabs aside).
pub fn read_collections_section(section: &Value) -> Result<CollectionsSection, SyncError> {
    let parsed: OutputSection = serde_json::from_value(section.clone())
        .map_err(|error| malformed(format!("`{CONNECT_COLLECTIONS}`: {error}")))?;
    check_server_idnumber(&parsed.server_idnumber)?;
    let mut seen = BTreeSet::new();
    let mut collections = Vec::with_capacity(parsed.collections.len());
    for (index, collection) in parsed.collections.into_iter().enumerate() {
        let at = |key: &str| format!("collections[{index}].{key}");
        let kind = CollectionKind::parse(&collection.kind).ok_or_else(|| {
            malformed(format!(
                "{} {:?} is not `cohort` or `course`",
                at("type"),
                collection.kind
            ))
        })?;
        if collection.id <= 0 {
            return Err(malformed(format!("{} is not a positive id", at("id"))));
        }
        if !seen.insert((kind, collection.id)) {
            return Err(malformed(format!(
                "{}: {kind} {} is listed twice",
                at("id"),
                collection.id
            )));
        }
        check_text(&at("name"), &collection.name)?;
        check_text(&at("description"), &collection.description)?;
        if let Some(position) = collection.members.iter().position(|id| *id <= 0) {
            return Err(malformed(format!(
                "{} is not a positive id",
                at(&format!("members[{position}]"))
            )));
        }
        collections.push(ServerCollection {
            kind,
            remote_id: collection.id,
            name: collection.name,
            description: collection.description,
            members: collection.members,
        });
    }
    Ok(CollectionsSection {
        server_idnumber: parsed.server_idnumber,
        collections,
    })
}

/// What one collections sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionsReport {
    pub counts: CollectionsCounts,
    /// Changes in the plan applied.
    pub changes: usize,
    /// Each collection left alone, and why.
    pub skipped: Vec<String>,
}

impl fmt::Display for CollectionsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.counts)?;
        if !self.skipped.is_empty() {
            write!(f, " ({})", self.skipped.join("; "))?;
        }
        Ok(())
    }
}

/// Plans `section` for the Connect IdP `idp_id` against the directory as it is now and
/// applies it in one transaction.
pub async fn apply_collections(
    state: &AppState,
    idp_id: &str,
    section: &CollectionsSection,
    progress: Progress<'_>,
) -> Result<CollectionsReport, SyncError> {
    require_connect_idp(state, idp_id, "collections")?;
    let source = SyncSource {
        idp_id,
        server_idnumber: &section.server_idnumber,
    };
    progress(&format!(
        "planning {} server cohorts and courses against the directory",
        section.collections.len()
    ));
    let store = state.store();
    let current = store.connect_collections_state(source).await?;
    let plan = plan_collections_sync(&current, source, &section.collections);
    let counts = plan.counts(section.collections.len());
    if !plan.is_empty() {
        progress(&format!(
            "applying {} changes in one transaction ({counts})",
            plan.changes.len()
        ));
        store
            .apply_collections_plan(&plan, source, state.now())
            .await?;
    }
    Ok(CollectionsReport {
        counts,
        changes: plan.changes.len(),
        skipped: plan.skipped.iter().map(ToString::to_string).collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SERVER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";

    fn section(collections: Value) -> Value {
        json!({"server_idnumber": SERVER, "collections": collections})
    }

    fn sales() -> Value {
        json!({"type": "cohort", "id": 3, "name": "Sales", "description": "Line 1\nLine 2",
               "members": [2, 7]})
    }

    #[test]
    fn a_well_formed_section_is_read() {
        let course = json!({"type": "course", "id": 3, "name": "Onboarding", "description": "",
                            "members": []});
        let read = read_collections_section(&section(json!([sales(), course]))).expect("reads");
        assert_eq!(read.server_idnumber, SERVER);
        assert_eq!(
            read.collections,
            vec![
                ServerCollection {
                    kind: CollectionKind::Cohort,
                    remote_id: 3,
                    name: "Sales".into(),
                    description: "Line 1\nLine 2".into(),
                    members: vec![2, 7],
                },
                ServerCollection {
                    kind: CollectionKind::Course,
                    remote_id: 3,
                    name: "Onboarding".into(),
                    description: String::new(),
                    members: vec![],
                },
            ]
        );
    }

    #[test]
    fn every_malformed_section_is_refused() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut value = section(json!([sales()]));
            edit(&mut value);
            value
        };
        for bad in [
            with(&|v| v["server_idnumber"] = json!(SERVER.to_uppercase())),
            with(&|v| v["server_idnumber"] = json!("abc")),
            with(&|v| v["extra"] = json!(1)),
            with(&|v| v["collections"] = json!({"0": sales()})),
            with(&|v| v["collections"][0]["type"] = json!("group")),
            with(&|v| v["collections"][0]["id"] = json!(0)),
            with(&|v| v["collections"][0]["id"] = json!("3")),
            with(&|v| v["collections"][0]["name"] = json!("Sa\u{0}les")),
            with(&|v| v["collections"][0]["description"] = json!(null)),
            with(&|v| v["collections"][0]["members"] = json!([2, -1])),
            with(&|v| v["collections"][0]["members"] = json!(["2"])),
            with(&|v| v["collections"][0]["colour"] = json!("blue")),
            with(&|v| {
                v["collections"][0]
                    .as_object_mut()
                    .map(|o| o.remove("members"));
            }),
            with(&|v| v["collections"] = json!([sales(), sales()])),
        ] {
            assert!(
                matches!(read_collections_section(&bad), Err(SyncError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_section_is_found_beside_the_others() {
        let output = json!({"directory": {CONNECT_COLLECTIONS: section(json!([]))}});
        assert!(matches!(collections_section_in(&output), Ok(Some(_))));
        assert!(matches!(super::super::section_in(&output), Ok(None)));
        assert!(matches!(
            collections_section_in(&json!({"summary": "x"})),
            Ok(None)
        ));
    }
}
