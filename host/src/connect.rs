//! `gatehouse connect …`, the Totara Connect client side of the command line:
//! `new-server` ("Connect to new server") asks a Connect IdP's plugin for a setup secret
//! through its `new_server` task and hands back what the server's admin needs. Not the
//! protocol (that is `plugins/connect`), and not the server role (not built yet).

use std::sync::Arc;

use abi_stable::std_types::RStr;

use crate::{plugins::CallError, state::AppState};

/// The plugin protocol of Totara Connect client IdPs.
pub const CONNECT_PROTOCOL: &str = "connect";
/// The plugin task that opens a registration.
pub const NEW_SERVER_TASK: &str = "new_server";

/// What a server's admin needs to add this client ("Add client").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServer {
    pub idp: String,
    /// The domain's primary origin ("Client URL").
    pub client_url: String,
    /// "Client setup secret": 40 hex, single use.
    pub setup_secret: String,
    /// When the secret stops being accepted (Unix seconds).
    pub expires_at: Option<i64>,
}

/// Why no setup secret came back.
#[derive(Debug, thiserror::Error)]
pub enum ConnectCliError {
    #[error("there is no IdP `{idp}`; the Totara Connect IdPs are: {}", list(.known))]
    UnknownIdp { idp: String, known: Vec<String> },
    #[error(
        "IdP `{idp}` uses plugin `{plugin}` (protocol `{protocol}`), not Totara Connect; the Totara Connect IdPs are: {}",
        list(.known)
    )]
    NotConnect {
        idp: String,
        plugin: String,
        protocol: String,
        known: Vec<String>,
    },
    #[error("the Connect plugin of IdP `{idp}` failed: {error}")]
    Call { idp: String, error: CallError },
    /// The plugin opened no registration and says why (already connected).
    #[error("IdP `{idp}`: {summary}")]
    NoRegistration { idp: String, summary: String },
    #[error("the Connect plugin of IdP `{idp}` answered what `new_server` never answers: {why}")]
    BadOutput { idp: String, why: String },
}

fn list(known: &[String]) -> String {
    if known.is_empty() {
        "none (add an [[idp]] with plugin = \"connect\")".to_owned()
    } else {
        known.join(", ")
    }
}

/// `gatehouse connect new-server --idp ID`: runs the IdP's `new_server` task now, through
/// the same call limits as any plugin call, and reads the client URL and setup secret.
pub async fn new_server(state: &AppState, idp_id: &str) -> Result<NewServer, ConnectCliError> {
    let site = state.site();
    let known: Vec<String> = site
        .all_idps()
        .filter(|idp| idp.instance.plugin.protocol == CONNECT_PROTOCOL)
        .map(|idp| idp.id().to_owned())
        .collect();
    let Some(idp) = site.all_idps().find(|idp| idp.id() == idp_id) else {
        return Err(ConnectCliError::UnknownIdp {
            idp: idp_id.to_owned(),
            known,
        });
    };
    let plugin = &idp.instance.plugin;
    if plugin.protocol != CONNECT_PROTOCOL {
        return Err(ConnectCliError::NotConnect {
            idp: idp_id.to_owned(),
            plugin: plugin.id.clone(),
            protocol: plugin.protocol.clone(),
            known,
        });
    }
    let text = state
        .caller()
        .call(Arc::clone(&idp.instance), |host, idp| {
            idp.run_task(host, RStr::from(NEW_SERVER_TASK))
                .into_result()
        })
        .await
        .map_err(|error| ConnectCliError::Call {
            idp: idp_id.to_owned(),
            error,
        })?;
    read_output(idp_id, text.as_str())
}

/// The task's JSON: `{"summary", "client_url", "setup_secret", "expires_at"}`, or without
/// `setup_secret` when the plugin opened no registration.
fn read_output(idp: &str, text: &str) -> Result<NewServer, ConnectCliError> {
    let bad = |why: &str| ConnectCliError::BadOutput {
        idp: idp.to_owned(),
        why: why.to_owned(),
    };
    let output: serde_json::Value =
        serde_json::from_str(text).map_err(|_| bad("its output is not JSON"))?;
    let field = |name: &str| output.get(name).and_then(serde_json::Value::as_str);
    let Some(setup_secret) = field("setup_secret") else {
        return Err(ConnectCliError::NoRegistration {
            idp: idp.to_owned(),
            summary: field("summary")
                .unwrap_or("the plugin opened no registration")
                .to_owned(),
        });
    };
    let client_url = field("client_url").ok_or_else(|| bad("it has no client_url"))?;
    Ok(NewServer {
        idp: idp.to_owned(),
        client_url: client_url.to_owned(),
        setup_secret: setup_secret.to_owned(),
        expires_at: output.get("expires_at").and_then(serde_json::Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tasks_output_is_read_or_its_summary_reported() {
        let out = read_output(
            "hq",
            r#"{"summary":"registration opened","client_url":"https://learn.example.test","setup_secret":"0123456789abcdef0123456789abcdef01234567","expires_at":1767312000}"#,
        )
        .expect("a registration");
        assert_eq!(out.client_url, "https://learn.example.test");
        assert_eq!(out.setup_secret, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(out.expires_at, Some(1_767_312_000));

        let error = read_output(
            "hq",
            r#"{"summary":"already connected to https://hq.example.test (HQ)","client_url":"https://learn.example.test"}"#,
        )
        .expect_err("no registration");
        assert_eq!(
            error.to_string(),
            "IdP `hq`: already connected to https://hq.example.test (HQ)"
        );
        assert!(matches!(
            read_output("hq", "not json"),
            Err(ConnectCliError::BadOutput { .. })
        ));
        assert!(matches!(
            read_output("hq", r#"{"setup_secret":"x"}"#),
            Err(ConnectCliError::BadOutput { .. })
        ));
    }

    #[test]
    fn an_unknown_idp_names_the_connect_idps() {
        let error = ConnectCliError::UnknownIdp {
            idp: "okta".into(),
            known: vec![],
        };
        assert_eq!(
            error.to_string(),
            "there is no IdP `okta`; the Totara Connect IdPs are: none (add an [[idp]] with plugin = \"connect\")"
        );
    }
}
