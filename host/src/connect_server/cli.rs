//! `gatehouse connect clients`: each client system this Connect server has registered, its
//! status (active / deleted), URL, API version and "Add client" options, for people or as
//! JSON. Never a secret (the client idnumber is not one: browsers carry it). Not the
//! registration (`registration`).

use gatehouse_store::{ConnectClient, Store, StoreError};
use serde_json::{Value, json};

/// Every client system, active and deleted, in the order they were added.
pub async fn clients(store: &Store) -> Result<Vec<ConnectClient>, StoreError> {
    store.connect_clients().await
}

fn status(client: &ConnectClient) -> &'static str {
    if client.active { "active" } else { "deleted" }
}

/// The restricting audience as shown: its idnumber, or its id when the audience is gone
/// (the client then sees nobody).
fn restriction(client: &ConnectClient) -> Option<String> {
    match (
        &client.options.restrict_audience,
        client.restrict_audience_id,
    ) {
        (Some(idnumber), _) => Some(idnumber.clone()),
        (None, Some(id)) => Some(format!("#{id} (deleted audience: the client sees nobody)")),
        (None, None) => None,
    }
}

/// `--format json`: `{"clients": [...]}`.
pub fn to_json(clients: &[ConnectClient]) -> Value {
    let clients: Vec<Value> = clients
        .iter()
        .map(|c| {
            let o = &c.options;
            json!({
                "id": c.id,
                "name": c.client_name,
                "url": c.client_url,
                "status": status(c),
                "client_idnumber": c.client_idnumber,
                "client_type": c.client_type,
                "api_version": c.api_version,
                "comment": c.client_comment,
                "restrict_audience": restriction(c),
                "audiences": o.audiences,
                "courses": o.courses,
                "position_frameworks": o.position_frameworks,
                "organisation_frameworks": o.organisation_frameworks,
                "sync_profile_fields": o.sync_profile_fields,
                "sync_jobs": o.sync_jobs,
                "add_new_audiences": o.add_new_audiences,
                "add_new_courses": o.add_new_courses,
                "allow_plugin_services": o.allow_plugin_services,
                "created_at": c.created_at,
                "updated_at": c.updated_at,
            })
        })
        .collect();
    json!({ "clients": clients })
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// `--format human`: one block per client.
pub fn to_human(clients: &[ConnectClient]) -> String {
    if clients.is_empty() {
        return "No client systems. Add one with `gatehouse connect add-client`.\n".to_owned();
    }
    let mut out = String::new();
    for c in clients {
        let o = &c.options;
        let client_type = if c.client_type.is_empty() {
            "not yet known"
        } else {
            c.client_type.as_str()
        };
        out.push_str(&format!(
            "{name} ({status})\n  url: {url}\n  client idnumber: {idnumber}\n  api version: {api}, client type: {client_type}\n",
            name = c.client_name,
            status = status(c),
            url = c.client_url,
            idnumber = c.client_idnumber,
            api = c.api_version,
        ));
        out.push_str(&format!(
            "  restrict to audience: {}\n",
            restriction(c).unwrap_or_else(|| "none".to_owned())
        ));
        out.push_str(&format!(
            "  audiences: {}\n  courses: {}\n  position frameworks: {}\n  organisation frameworks: {}\n",
            names(&o.audiences),
            names(&o.courses),
            names(&o.position_frameworks),
            names(&o.organisation_frameworks),
        ));
        out.push_str(&format!(
            "  sync profile fields: {}, sync jobs: {}, add new audiences: {}, add new courses: {}, plugin services: {}\n",
            yes_no(o.sync_profile_fields),
            yes_no(o.sync_jobs),
            yes_no(o.add_new_audiences),
            yes_no(o.add_new_courses),
            yes_no(o.allow_plugin_services),
        ));
        if !c.client_comment.is_empty() {
            out.push_str(&format!("  comment: {}\n", c.client_comment));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_store::ConnectClientOptions;

    fn client(active: bool) -> ConnectClient {
        ConnectClient {
            id: 7,
            active,
            client_idnumber: "c".repeat(40),
            client_secret: "1".repeat(40),
            server_secret: "2".repeat(40),
            client_type: "totaralms".into(),
            client_url: "https://lms.example".into(),
            client_name: "LMS".into(),
            client_comment: String::new(),
            restrict_audience_id: Some(3),
            options: ConnectClientOptions {
                restrict_audience: None,
                audiences: vec!["AUD-1".into()],
                sync_profile_fields: true,
                ..ConnectClientOptions::default()
            },
            api_version: 2,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn listings_show_status_options_and_no_secret() {
        let clients = [client(true), client(false)];
        let human = to_human(&clients);
        assert!(human.contains("LMS (active)"), "{human}");
        assert!(human.contains("LMS (deleted)"), "{human}");
        assert!(human.contains("sync profile fields: yes"), "{human}");
        assert!(human.contains("audiences: AUD-1"), "{human}");
        assert!(human.contains("deleted audience"), "{human}");
        let json = to_json(&clients).to_string();
        for text in [&human, &json] {
            assert!(!text.contains(&"1".repeat(40)), "{text}");
            assert!(!text.contains(&"2".repeat(40)), "{text}");
        }
        assert!(json.contains("\"status\":\"deleted\""), "{json}");
        assert!(json.contains("\"api_version\":2"), "{json}");
    }
}
