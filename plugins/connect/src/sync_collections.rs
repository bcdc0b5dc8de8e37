//! The client's `user_collections` task (reference §5.4): `get_user_collections` through
//! the host's HTTP, read by the wire crate, handed to the host as task output. The plugin
//! cannot see the directory, so it plans nothing: the host turns every cohort and course
//! into a local audience kept by this IdP (its `connect_sync::collections`), against the
//! directory as it is, in one transaction. Not the users sync (`sync`).

use gatehouse_connect_wire::{
    RemoteCollection, ServerCall, collections::read_user_collections_reply,
};
use gatehouse_plugin_api::{Host, PluginError};
use serde_json::{Value, json};

use crate::{
    remote,
    settings::ClientConfig,
    sync::{registered, reply_error, transport_error},
};

/// The name of the directory section the host applies (the host's
/// `connect_sync::collections`).
pub const CONNECT_COLLECTIONS_SECTION: &str = "connect_collections";

/// `user_collections` (hourly): every cohort and course the server shares with this
/// client, with the server user ids of their members:
///
/// ```text
/// {"summary": "get_user_collections: 2 cohorts, 1 course from https://hq.example.com",
///  "directory": {"connect_collections": {
///     "server_idnumber": "<40 hex>",
///     "collections": [{"type": "cohort" | "course", "id": 3, "name": "Sales",
///                      "description": "…", "members": [2, 7]}, …]}}}
/// ```
///
/// `name` is the cohort's name or the course's full name, `description` its description or
/// summary (empty when the server sent none). The list is everything the server shares now:
/// the host removes the audiences of collections it no longer lists. A reply that is not a
/// complete `get_user_collections` (refused, unreachable, cut, a row that cannot be read)
/// fails the task, and the host writes nothing.
pub fn user_collections(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    let server = registered(host, config)?;
    let service = "get_user_collections";
    let reply = remote::exchange_with_server(host, &server, &ServerCall::GetUserCollections)
        .map_err(|error| transport_error(service, &server, &error))?;
    let collections =
        read_user_collections_reply(reply).map_err(|error| reply_error(service, &server, error))?;
    let listed: Vec<Value> = collections.iter().map(collection_output).collect();
    Ok(json!({
        "summary": format!(
            "{service}: {} cohorts, {} courses from {}",
            collections.cohorts.len(),
            collections.courses.len(),
            server.url
        ),
        "directory": {
            CONNECT_COLLECTIONS_SECTION: {
                "server_idnumber": server.server_idnumber.as_str(),
                "collections": listed,
            }
        }
    }))
}

/// One collection of the output: what the audience keeps of it.
fn collection_output(collection: &RemoteCollection) -> Value {
    json!({
        "type": collection.collection_type.as_str(),
        "id": collection.id,
        "name": collection.name,
        "description": collection.description,
        "members": collection.members,
    })
}
