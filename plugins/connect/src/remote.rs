//! Calls to the Connect server's SEP through the host's HTTP (with the host's egress
//! policy and timeouts): a form POST whose answer is read as Totara's `jsend::request()`
//! reads it. Not the meaning of any service's reply (that is the wire crate's readers).

use gatehouse_connect_wire::{
    JSend, ServerCall,
    jsend::CANNOT_CONNECT,
    sep::{SERVER_SEP_PATH, endpoint_url, server_call_form},
};
use gatehouse_plugin_api::{Host, HttpRequest};

use crate::records::Server;

/// `application/x-www-form-urlencoded`, as PHP's `format_postdata_for_curlcall` sends it.
pub fn encode_form(form: &[(String, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
        .into_bytes()
}

/// POSTs `form` to `url` and reads the JSend answer. As in the original, a failed request,
/// any status but 200 and an empty body are "cannot connect", and a body that is not JSend
/// is "invalid response format": an `error` reply either way, never a Rust error, so that
/// `sep_setup` can relay it to the server as it is.
pub fn post(host: &Host<'_>, url: &str, form: &[(String, String)]) -> JSend {
    let request = HttpRequest::post(url, "application/x-www-form-urlencoded", encode_form(form));
    match host.http(request) {
        Err(error) => {
            host.warn(&format!("Connect: POST {url} failed: {error}"));
            JSend::error(CANNOT_CONNECT)
        }
        Ok(response) if response.status != 200 => {
            host.warn(&format!(
                "Connect: POST {url} answered HTTP {}",
                response.status
            ));
            JSend::error(CANNOT_CONNECT)
        }
        Ok(response) => JSend::parse(response.body.as_slice()).unwrap_or_else(|error| {
            host.warn(&format!("Connect: POST {url}: {error}"));
            error.to_jsend()
        }),
    }
}

/// Calls a service of the registered server's SEP with this client's credentials.
pub fn call_server(host: &Host<'_>, server: &Server, call: &ServerCall) -> JSend {
    let form = server_call_form(
        &server.server_idnumber,
        &server.server_secret,
        call.service(),
        call.params(),
    );
    post(host, &endpoint_url(&server.url, SERVER_SEP_PATH), &form)
}
