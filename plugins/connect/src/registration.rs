//! Registration with a Connect server (reference §2): the `new_server` task ("Connect to new
//! server": a one-time setup secret and the client URL for the server's admin) and
//! `sep_setup.php` (the server's registration call, checked in the original's order, with
//! the nested `update_api_version` call-back). Not the SEP services once registered (`sep`).

use gatehouse_connect_wire::{
    JSend, SetupRefusal,
    sep::{SERVER_SEP_PATH, endpoint_url},
    setup::{read_setup_form, setup_answer},
};
use gatehouse_plugin_api::{Host, PluginError};
use serde_json::{Value, json};

use crate::{
    records::{self, RecordError, Server},
    remote,
    settings::ClientConfig,
};

/// The `new_server` task. Opens a registration (a setup secret of 40 hex from the host's
/// secure random source, valid 24 h) and returns it with the client URL. While one is open
/// it returns that one unchanged, so that the scheduler running the task does not replace
/// the secret an admin has already handed out; once a server is registered it opens none.
pub fn new_server(host: &Host<'_>, config: &ClientConfig) -> Result<Value, PluginError> {
    let Some(client_url) = config.client_url.as_deref() else {
        return Err(PluginError::invalid_settings(format!(
            "`{}` does not know its domain's URL (the host is older than plugin API 1.2), so it cannot give a server its client URL",
            config.instance_id
        )));
    };
    if let Some(server) = records::server(host)? {
        return Ok(json!({
            "summary": format!(
                "already connected to {} ({}); one [[idp]] per Connect server: add another [[idp]] to connect to another server",
                server.url, server.name
            ),
            "client_url": client_url,
        }));
    }
    let (registration, opened) = match records::open_registration(host)? {
        Some(open) => (open, false),
        None => (records::open_new_registration(host)?, true),
    };
    let summary = format!(
        "registration {} until {} (Unix time): give the Connect server's admin the client URL and the setup secret (Add client)",
        if opened { "opened" } else { "open" },
        registration.expires_at
    );
    Ok(json!({
        "summary": summary,
        "client_url": client_url,
        "setup_secret": registration.secret.as_str(),
        "expires_at": registration.expires_at,
    }))
}

/// `POST /auth/connect/sep_setup.php`: the server's registration call. Answers the JSend
/// the original answers; stores the server only when every check and the call-back
/// succeeded, and only then closes the registration (the secret is single use).
pub fn sep_setup(
    host: &Host<'_>,
    config: &ClientConfig,
    form: &[(String, String)],
) -> Result<JSend, RecordError> {
    let open = records::open_registration(host)?;
    let accepted = match read_setup_form(form, open.as_ref().map(|o| &o.secret), true) {
        Ok(accepted) => accepted,
        Err(refusal) => return Ok(refusal.to_jsend()),
    };
    if config
        .server_url
        .as_deref()
        .is_some_and(|allowed| allowed != accepted.server_url)
    {
        return Ok(SetupRefusal::ServerUrlNotAllowed.to_jsend());
    }
    if let Some(existing) = records::server(host)? {
        let refusal = if existing
            .server_idnumber
            .matches(accepted.server_idnumber.as_str())
        {
            SetupRefusal::DuplicateServerIdnumber
        } else if existing
            .client_idnumber
            .matches(accepted.client_idnumber.as_str())
        {
            SetupRefusal::DuplicateClientIdnumber
        } else {
            // One server per IdP instance; `new_server` opens no registration while one is
            // registered, so this is a secret that should not have been open.
            SetupRefusal::InvalidSetupSecret
        };
        return Ok(refusal.to_jsend());
    }
    if !records::claim_registration(host)? {
        // Another registration with this secret is calling its server back right now.
        return Ok(SetupRefusal::InvalidSetupSecret.to_jsend());
    }
    let callback = remote::post(
        host,
        &endpoint_url(&accepted.server_url, SERVER_SEP_PATH),
        &accepted.update_api_version_form(),
    );
    let answer = setup_answer(&callback);
    let outcome = if callback.is_success() {
        let server = Server {
            url: accepted.server_url.clone(),
            name: accepted.server_name.clone(),
            server_idnumber: accepted.server_idnumber.clone(),
            server_secret: accepted.server_secret.clone(),
            client_idnumber: accepted.client_idnumber.clone(),
            client_secret: accepted.client_secret.clone(),
            api_version: accepted.api_version,
            registered_at: host.now_unix_seconds(),
        };
        if records::store_server(host, &server)? {
            records::close_registration(host)?;
            host.info(&format!(
                "Connect: registered with server {} at API version {}",
                server.url, server.api_version
            ));
            answer
        } else {
            SetupRefusal::DuplicateServerIdnumber.to_jsend()
        }
    } else {
        answer
    };
    records::release_registration_claim(host)?;
    Ok(outcome)
}
