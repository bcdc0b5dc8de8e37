//! The client's `positions` and `organisations` tasks (hourly; reference §5.5): with
//! `sync_positions` / `sync_organisations` on and API version 2, `get_positions` /
//! `get_organisations` through the host's HTTP, read with the wire crate, and handed to the
//! host in the task's output, which maps and applies them in one transaction (the host's
//! `connect_sync::hierarchy`):
//!
//! ```text
//! {"summary": "get_positions: 2 frameworks, 14 positions from https://hq.example.com",
//!  "directory": {"connect_hierarchy": {
//!     "server_idnumber": "<40 hex>", "kind": "position" | "organisation",
//!     "frameworks": [<HierarchyFramework>…], "items": [<HierarchyItem>…]}}}
//! ```
//!
//! With the setting off, at API version 1, or when the server sends `null` (it does not
//! share them), the task says so in its summary and hands over nothing: the directory is
//! left as it is, as the original leaves it. A reply that is not a complete answer fails
//! the task, and nothing is written.

use gatehouse_connect_wire::{
    HierarchyKind, ServerCall, hierarchy::read_hierarchy_reply, version::ApiVersion,
};
use gatehouse_plugin_api::{Host, PluginError};
use serde_json::{Value, json};

use crate::{
    remote,
    settings::ClientConfig,
    sync::{registered, reply_error, transport_error},
};

/// The directory section the host applies (the host's `connect_sync::hierarchy`).
pub const CONNECT_HIERARCHY_SECTION: &str = "connect_hierarchy";

/// `positions` (hourly).
pub fn positions(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    sync(host, config, HierarchyKind::Position)
}

/// `organisations` (hourly).
pub fn organisations(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    sync(host, config, HierarchyKind::Organisation)
}

fn setting(kind: HierarchyKind) -> &'static str {
    match kind {
        HierarchyKind::Position => "sync_positions",
        HierarchyKind::Organisation => "sync_organisations",
    }
}

/// Why the task hands nothing over, or `None` when it syncs.
fn skipped_because(kind: HierarchyKind, enabled: bool, api_version: ApiVersion) -> Option<String> {
    if !enabled {
        return Some(format!(
            "{} are not synchronised: `{}` is off",
            kind.items_key(),
            setting(kind)
        ));
    }
    if !api_version.has_v2_data() {
        return Some(format!(
            "{} are not synchronised: the server speaks API version {api_version}, and they need 2 (run the `handshake` task after the server is upgraded)",
            kind.items_key()
        ));
    }
    None
}

fn sync(host: &Host<'_>, config: &ClientConfig, kind: HierarchyKind) -> Result<Value, PluginError> {
    let server = registered(host, config)?;
    let enabled = match kind {
        HierarchyKind::Position => config.settings.sync_positions,
        HierarchyKind::Organisation => config.settings.sync_organisations,
    };
    if let Some(why) = skipped_because(kind, enabled, server.api_version) {
        return Ok(json!({ "summary": format!("skipped: {why}") }));
    }
    let call = match kind {
        HierarchyKind::Position => ServerCall::GetPositions,
        HierarchyKind::Organisation => ServerCall::GetOrganisations,
    };
    let service = kind.service().name();
    let reply = remote::exchange_with_server(host, &server, &call)
        .map_err(|error| transport_error(service, &server, &error))?;
    let reply =
        read_hierarchy_reply(kind, reply).map_err(|error| reply_error(service, &server, error))?;
    let (Some(frameworks), Some(items)) = (reply.frameworks, reply.items) else {
        return Ok(json!({
            "summary": format!(
                "skipped: the server at {} does not share {} (it sent null)",
                server.url,
                kind.items_key()
            )
        }));
    };
    Ok(json!({
        "summary": format!(
            "{service}: {} frameworks, {} {} from {}",
            frameworks.len(),
            items.len(),
            kind.items_key(),
            server.url
        ),
        "directory": {
            CONNECT_HIERARCHY_SECTION: {
                "server_idnumber": server.server_idnumber.as_str(),
                "kind": kind,
                "frameworks": frameworks,
                "items": items,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hierarchy_is_synced_only_with_its_setting_and_api_version_2() {
        let v1 = ApiVersion::new(1).expect("1");
        let v2 = ApiVersion::new(2).expect("2");
        let off = skipped_because(HierarchyKind::Position, false, v2).expect("skipped");
        assert!(off.contains("`sync_positions` is off"), "{off}");
        let old = skipped_because(HierarchyKind::Organisation, true, v1).expect("skipped");
        assert!(old.contains("API version 1"), "{old}");
        assert_eq!(skipped_because(HierarchyKind::Organisation, true, v2), None);
    }
}
