//! Calls to the Connect server's SEP through the host's HTTP (with the host's egress
//! policy and timeouts): a form POST whose answer is read as Totara's `jsend::request()`
//! reads it. Not the meaning of any service's reply (that is the wire crate's readers).

use gatehouse_connect_wire::{
    JSend, ServerCall,
    jsend::CANNOT_CONNECT,
    sep::{SERVER_SEP_PATH, endpoint_url, server_call_form},
};
use gatehouse_plugin_api::{Host, HttpRequest, PluginError};

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
    exchange(host, url, form).unwrap_or_else(|error| {
        host.warn(&format!("Connect: {error}"));
        JSend::error(CANNOT_CONNECT)
    })
}

/// [`post`], except that a request that failed or answered another status than 200 is the
/// host's error (`idp_unavailable`, with its cause: a timeout, a refused address, a reply
/// over the size cap), for callers that report it rather than relay it (the sync tasks).
pub fn exchange(
    host: &Host<'_>,
    url: &str,
    form: &[(String, String)],
) -> Result<JSend, PluginError> {
    let body = exchange_raw(host, url, form)?;
    Ok(JSend::parse(&body).unwrap_or_else(|error| {
        host.warn(&format!("Connect: POST {url}: {error}"));
        error.to_jsend()
    }))
}

/// [`exchange`] without reading the answer: the body of a 200, for a caller that reads a
/// large reply as a stream (`get_users`).
pub fn exchange_raw(
    host: &Host<'_>,
    url: &str,
    form: &[(String, String)],
) -> Result<Vec<u8>, PluginError> {
    let request = HttpRequest::post(url, "application/x-www-form-urlencoded", encode_form(form));
    let response = host.http(request).map_err(|error| {
        PluginError::new(
            error.kind,
            format!("POST {url} failed ({CANNOT_CONNECT}): {}", error.message()),
        )
    })?;
    if response.status != 200 {
        return Err(PluginError::idp_unavailable(format!(
            "POST {url} answered HTTP {} ({CANNOT_CONNECT})",
            response.status
        )));
    }
    Ok(response.body.into_vec())
}

fn server_call(server: &Server, call: &ServerCall) -> (String, Vec<(String, String)>) {
    let form = server_call_form(
        &server.server_idnumber,
        &server.server_secret,
        call.service(),
        call.params(),
    );
    (endpoint_url(&server.url, SERVER_SEP_PATH), form)
}

/// Calls a service of the registered server's SEP with this client's credentials.
pub fn call_server(host: &Host<'_>, server: &Server, call: &ServerCall) -> JSend {
    let (url, form) = server_call(server, call);
    post(host, &url, &form)
}

/// [`call_server`] with [`exchange_raw`]'s errors and the body unread.
pub fn exchange_raw_with_server(
    host: &Host<'_>,
    server: &Server,
    call: &ServerCall,
) -> Result<Vec<u8>, PluginError> {
    let (url, form) = server_call(server, call);
    exchange_raw(host, &url, &form)
}

/// [`call_server`] with [`exchange`]'s errors.
pub fn exchange_with_server(
    host: &Host<'_>,
    server: &Server,
    call: &ServerCall,
) -> Result<JSend, PluginError> {
    let (url, form) = server_call(server, call);
    exchange(host, &url, &form)
}
