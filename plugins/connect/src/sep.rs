//! The client's SEP, `POST /auth/connect/sep.php` (reference §1.4 and §3.2): the server's
//! calls `validate_sso_request_token`, `is_sso_user_active` and `kill_sso_user`, checked in
//! the original's order with its exact JSend replies. It asks the host questions
//! (`sessions_alive`) and returns what the host must do as actions (`END_SESSIONS`); it
//! never changes host state itself. Not registration (`registration`).

use gatehouse_connect_wire::{
    ClientCall, ServerStanding,
    sep::read_client_sep_form,
    services::{ServiceRefusal, active_reply, empty_reply},
};
use gatehouse_plugin_api::{Host, HostAction, SessionSelector};

use crate::records::{self, RecordError};

/// What `sep.php` answers: the JSend body and the host's actions.
#[derive(Debug, Clone, PartialEq)]
pub struct SepAnswer {
    pub body: String,
    pub actions: Vec<HostAction>,
}

impl SepAnswer {
    fn reply(body: String) -> Self {
        Self {
            body,
            actions: Vec::new(),
        }
    }
}

/// Answers one call of the server's.
pub fn answer(host: &Host<'_>, form: &[(String, String)]) -> Result<SepAnswer, RecordError> {
    let envelope = match read_client_sep_form(form) {
        Ok(envelope) => envelope,
        Err(refusal) => return Ok(SepAnswer::reply(refusal.to_jsend().to_json())),
    };
    let standing = records::server(host)?.map(|server| ServerStanding {
        client_idnumber: server.client_idnumber,
        client_secret: server.client_secret,
        // A registered server is active until the client disconnects (not built yet).
        active: true,
        api_version: i64::from(server.api_version.number()),
    });
    // The plugin is loaded, so `auth_connect` is enabled.
    let authorized = match envelope.authorize_at_client(standing.as_ref(), true) {
        Ok(authorized) => authorized,
        Err(refusal) => return Ok(SepAnswer::reply(refusal.to_jsend().to_json())),
    };
    let call = match ClientCall::read(authorized, &envelope.params) {
        Ok(call) => call,
        Err(refusal) => return Ok(SepAnswer::reply(refusal.to_jsend().to_json())),
    };
    match call {
        ClientCall::ValidateSsoRequestToken { request_token } => {
            let live = match &request_token {
                Some(token) => records::live_request(host, token)?.is_some(),
                // 40 characters but not hex: not a token this client made.
                None => false,
            };
            Ok(SepAnswer::reply(if live {
                empty_reply()
            } else {
                ServiceRefusal::SsoRequestTimedOut.to_jsend().to_json()
            }))
        }
        ClientCall::IsSsoUserActive { sso_token } => {
            let active = match &sso_token {
                Some(token) => {
                    host.sessions_alive(SessionSelector::logout_state(token.as_str().as_bytes()))
                        .map_err(RecordError::Store)?
                        > 0
                }
                None => false,
            };
            Ok(SepAnswer::reply(active_reply(active)))
        }
        ClientCall::KillSsoUser { sso_token } => {
            // Always success for a well-formed token; a token this client never gave out
            // selects no session, so it asks the host for nothing.
            let actions = sso_token
                .map(|token| {
                    HostAction::end_sessions(SessionSelector::logout_state(
                        token.as_str().as_bytes(),
                    ))
                })
                .into_iter()
                .collect();
            Ok(SepAnswer {
                body: empty_reply(),
                actions,
            })
        }
    }
}
