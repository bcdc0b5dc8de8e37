//! The Connect server's back-channel calls to its clients (`sep_setup.php` once, `sep.php`
//! for `validate_sso_request_token`, `is_sso_user_active` and `kill_sso_user`): a form POST
//! through the host's outgoing HTTP (the same timeouts, size cap and egress rules as
//! plugins' requests), its answer read as Totara's `jsend::request` reads it. Not what the
//! answers mean: each flow judges its own.

use std::time::Duration;

use gatehouse_connect_wire::{
    ClientCall, JSend, JSendError, Token,
    sep::{CLIENT_SEP_PATH, client_call_form, endpoint_url},
};
use gatehouse_plugin_api::HttpRequest;
use thiserror::Error;

use crate::{plugins::EgressPolicy, state::AppState};

/// How long a back-channel call may take at most (the original's `jsend::request` default);
/// the host's `[host] http_timeout_seconds` may cut it shorter.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// `is_sso_user_active` gets 10 s (the original's `ignore_timeout_hook`).
pub const ACTIVE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call brought back no JSend answer. Texts never carry a secret: the URL is shown
/// without its query, and forms are never shown.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallFailure {
    /// Refused by the egress rules, not connected, timed out, or the answer was too large.
    #[error("{0}")]
    Unreachable(String),
    #[error("it answered HTTP {0}, not 200")]
    NotOk(u16),
    #[error("its answer is not JSend: {0}")]
    NotJSend(JSendError),
}

impl CallFailure {
    /// The answer Totara's `jsend::request` would have acted on instead.
    pub fn to_jsend(&self) -> JSend {
        match self {
            CallFailure::NotJSend(error) => error.to_jsend(),
            _ => JSend::error(gatehouse_connect_wire::jsend::CANNOT_CONNECT),
        }
    }
}

/// The egress rules of a call to `client_url`: the administrator named that URL (`gatehouse
/// connect add-client --url`), so its address category is allowed, as a URL in an IdP's
/// settings is for that IdP's requests.
pub fn policy_for(client_url: &str) -> EgressPolicy {
    EgressPolicy::from_settings(&serde_json::json!({ "client_url": client_url }))
}

/// `application/x-www-form-urlencoded` of `form`, in its order.
pub fn encode_form(form: &[(String, String)]) -> Vec<u8> {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        serializer.append_pair(name, value);
    }
    serializer.finish().into_bytes()
}

/// POSTs `form` to `url` (which lies under `client_url`) within `timeout`, and reads the
/// answer: HTTP 200 with a JSend body, anything else a [`CallFailure`].
pub async fn post_form(
    state: &AppState,
    client_url: &str,
    url: &str,
    form: &[(String, String)],
    timeout: Duration,
) -> Result<JSend, CallFailure> {
    let request = HttpRequest::post(url, "application/x-www-form-urlencoded", encode_form(form));
    let policy = policy_for(client_url);
    let egress = state.caller().egress();
    let response = match tokio::time::timeout(timeout, egress.send(request, &policy)).await {
        Err(_) => {
            return Err(CallFailure::Unreachable(format!(
                "{} timed out after {} s",
                shown(url),
                timeout.as_secs()
            )));
        }
        Ok(Err(error)) => return Err(CallFailure::Unreachable(error.message.to_string())),
        Ok(Ok(response)) => response,
    };
    if response.status != 200 {
        return Err(CallFailure::NotOk(response.status));
    }
    JSend::parse(&response.body).map_err(CallFailure::NotJSend)
}

/// A call to a client's `sep.php` with its credentials, within `timeout`.
pub async fn call_client(
    state: &AppState,
    client_url: &str,
    client_idnumber: &Token,
    client_secret: &Token,
    call: &ClientCall,
    timeout: Duration,
) -> Result<JSend, CallFailure> {
    let form = client_call_form(
        client_idnumber,
        client_secret,
        call.service(),
        call.params(),
    );
    let url = endpoint_url(client_url, CLIENT_SEP_PATH);
    post_form(state, client_url, &url, &form, timeout).await
}

/// A URL as logs and messages may show it: without its query.
fn shown(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    #[test]
    fn forms_are_encoded_in_order_with_escapes() {
        let form = vec![
            ("serverurl".to_owned(), "http://hq.test/a b".to_owned()),
            ("servername".to_owned(), "HQ & co".to_owned()),
        ];
        assert_eq!(
            String::from_utf8(encode_form(&form)).unwrap(),
            "serverurl=http%3A%2F%2Fhq.test%2Fa+b&servername=HQ+%26+co"
        );
    }

    #[test]
    fn the_named_client_url_opens_its_own_address_category_only() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let private = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let named = policy_for("http://127.0.0.1:8081");
        assert!(named.check("127.0.0.1", loopback).is_ok());
        assert!(named.check("10.0.0.1", private).is_err());
        let public = policy_for("https://learn.example.com");
        assert!(public.check("127.0.0.1", loopback).is_err());
    }

    #[test]
    fn a_transport_failure_reads_as_totaras_cannot_connect() {
        assert_eq!(
            CallFailure::NotOk(500).to_jsend(),
            JSend::error("Remote data request failed - cannot connect server.")
        );
        assert_eq!(
            CallFailure::NotJSend(JSendError::NotAnObject).to_jsend(),
            JSend::error("Remote data request failed - invalid response format.")
        );
    }
}
