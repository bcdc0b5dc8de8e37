//! The HTTP client openidconnect is given: a [`SyncHttpClient`] that forwards every
//! request to the host's `Host::http` (host-enforced timeouts, no redirects, egress
//! rules). It is not an HTTP implementation and never opens a socket.

use gatehouse_plugin_api::{Host, HttpRequest, PluginError};
use openidconnect::{HttpRequest as OidcRequest, HttpResponse as OidcResponse, SyncHttpClient};

/// Borrows the host for one plugin call and lends its HTTP to openidconnect.
pub struct HostHttp<'h, 'a> {
    host: &'h Host<'a>,
}

impl<'h, 'a> HostHttp<'h, 'a> {
    pub fn new(host: &'h Host<'a>) -> Self {
        Self { host }
    }
}

impl SyncHttpClient for HostHttp<'_, '_> {
    type Error = PluginError;

    fn call(&self, request: OidcRequest) -> Result<OidcResponse, PluginError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = HttpRequest::get(parts.uri.to_string());
        outgoing.method = parts.method.as_str().into();
        for (name, value) in &parts.headers {
            let value = value.to_str().map_err(|_| {
                PluginError::internal(format!("the `{name}` header of a request is not text"))
            })?;
            outgoing = outgoing.with_header(name.as_str(), value);
        }
        outgoing.body = body.into();
        let answer = self.host.http(outgoing)?;
        let mut response = openidconnect::http::Response::builder().status(answer.status);
        for pair in answer.headers.iter() {
            response = response.header(pair.name.as_str(), pair.value.as_str());
        }
        response.body(answer.body.into_vec()).map_err(|error| {
            PluginError::invalid_response(format!(
                "the provider's HTTP answer could not be read: {error}"
            ))
        })
    }
}
