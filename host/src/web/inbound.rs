//! Requests to the routes plugins serve besides start and callback: an IdP's metadata
//! (`/sso/{idp}/metadata`), its logout return (`/sso/{idp}/logout`), the routes a plugin
//! declares below its mount (`/sso/{idp}/…`) and at fixed protocol paths
//! (`/auth/connect/sep.php`), which reach the IdP instance of the request's domain.
//!
//! An inbound request (from the IdP or a peer, not the browser's round trip) is read with
//! the route's body cap, handed to the plugin within the call limits, and answered with
//! the plugin's reply after the host has carried out the actions in it. A route declared as
//! a browser callback finishes the pending sign-in exactly as `/sso/{idp}/callback` does.
//! Not the plugin protocol logic, and not the sign-in flow (`flow`).

use axum::{
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_plugin_api::{Capabilities, InboundRequest, Pair, RouteDecl, RouteHandling};

use crate::{
    actions::{self, ActionSource},
    site::{SiteDomain, SiteIdp},
    state::AppState,
};

use super::{
    error::{AppError, AppResult},
    extract::{Domain, Path},
    flow::{self, Answer, BrowserRequest},
    http_util::{ClientIp, abi_pairs, decode_pairs},
    urls,
};

/// `GET /sso/{idp}/metadata`: what the plugin publishes about this IdP instance (SAML SP
/// metadata). Served while the IdP is hidden, so an admin can set up the IdP's side first.
pub async fn metadata(
    State(state): State<AppState>,
    domain: Domain,
    Path(idp_id): Path<String>,
) -> AppResult<Response> {
    let idp = domain.idp(&idp_id)?;
    if !idp.has(Capabilities::METADATA) {
        return Err(
            AppError::not_found("This sign-in method publishes no metadata.").with_detail(format!(
                "plugin `{}` has no metadata capability",
                idp.instance.plugin.id
            )),
        );
    }
    let document = state
        .caller()
        .call(idp.instance.clone(), |host, idp| {
            idp.metadata(host).into_result()
        })
        .await?;
    let content_type = HeaderValue::from_str(&document.content_type)
        .map_err(|_| AppError::internal("the plugin's metadata has an invalid content type"))?;
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        document.body.into_string(),
    )
        .into_response())
}

/// `GET|POST /sso/{idp}/logout`: the plugin's own `logout` route if it declares one (SAML
/// single logout), else the return from signing out at the IdP (OIDC's
/// `post_logout_redirect_uri`), which goes on to the IdP's logout landing page.
pub async fn logout(
    state: State<AppState>,
    domain: Domain,
    Path(idp_id): Path<String>,
    ip: ClientIp,
    request: InboundParts,
) -> AppResult<Response> {
    let idp = domain.idp(&idp_id)?;
    if let Some(route) = idp.route_below(LOGOUT_ROUTE) {
        return serve(state, domain.get(), idp, route, ip, request).await;
    }
    if !idp.has(Capabilities::LOGOUT) {
        return Err(
            AppError::not_found("This sign-in method has no sign-out.").with_detail(format!(
                "plugin `{}` has no logout capability",
                idp.instance.plugin.id
            )),
        );
    }
    Ok(Redirect::to(&idp.logout_landing()).into_response())
}

/// The route below an IdP's mount that signing out uses, when the plugin declares it.
pub const LOGOUT_ROUTE: &str = "logout";

/// `/sso/{idp}/{*path}`: a route the plugin declares below its mount.
pub async fn below_idp(
    state: State<AppState>,
    domain: Domain,
    Path((idp_id, path)): Path<(String, String)>,
    ip: ClientIp,
    request: InboundParts,
) -> AppResult<Response> {
    let idp = domain.idp(&idp_id)?;
    let route = idp.route_below(&path).ok_or_else(|| {
        AppError::not_found("There is nothing at this address.")
            .with_detail(format!("IdP `{idp_id}` serves no route `{path}`"))
    })?;
    serve(state, domain.get(), idp, route, ip, request).await
}

/// Any path no host route has: a fixed protocol path of an IdP on the request's domain,
/// else the not-found page.
pub async fn fixed_or_not_found(
    state: State<AppState>,
    domain: Result<Domain, AppError>,
    ip: ClientIp,
    request: InboundParts,
) -> AppResult<Response> {
    let not_found = || AppError::not_found("There is nothing at this address.");
    let Ok(domain) = domain else {
        return Err(not_found());
    };
    let Some((idp, route)) = domain.get().fixed_route(request.uri.path()) else {
        return Err(not_found());
    };
    serve(state, domain.get(), idp, route, ip, request).await
}

/// The parts of a request an inbound route needs, with the body still unread (its cap
/// depends on the route).
pub struct InboundParts {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
}

impl axum::extract::FromRequest<AppState> for InboundParts {
    type Rejection = std::convert::Infallible;

    async fn from_request(
        request: axum::extract::Request,
        _: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        Ok(Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

async fn serve(
    State(state): State<AppState>,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    route: &RouteDecl,
    ClientIp(ip): ClientIp,
    request: InboundParts,
) -> AppResult<Response> {
    if !route
        .methods
        .iter()
        .any(|m| m.as_str() == request.method.as_str())
    {
        let allow: Vec<&str> = route.methods.iter().map(|m| m.as_str()).collect();
        let mut response = AppError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "This address does not accept that kind of request.",
        )
        .into_response();
        if let Ok(allow) = HeaderValue::from_str(&allow.join(", ")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return Ok(response);
    }
    let cap = body_cap(route, state.settings().inbound_max_body_bytes);
    let body = to_bytes(request.body, cap).await.map_err(|_| {
        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.").with_detail(
            format!("an inbound body over {cap} bytes to `{}`", route.path),
        )
    })?;
    let query = decode_pairs(request.uri.query().unwrap_or_default().as_bytes());
    let is_form = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        decode_pairs(&body)
    } else {
        Vec::new()
    };

    if route.handling == RouteHandling::BROWSER_CALLBACK {
        let answer = Answer {
            callback_url: urls::callback_url(&state, &request.headers, idp.id()),
            query,
            form,
        };
        let browser = BrowserRequest {
            headers: &request.headers,
            client_ip: &ip,
        };
        if request.method == Method::POST {
            // Posted from the IdP's site: no binding cookie comes with it (see
            // `flow::accept_posted`).
            let answered = flow::accept_posted(&state, domain, idp, browser, answer).await?;
            return Ok(Redirect::to(&urls::finish_url(idp.id(), &answered.handle)).into_response());
        }
        return Ok(flow::finish(&state, domain, idp, browser, answer)
            .await?
            .into_response());
    }

    let origin = format!("{} {}", request.method, request.uri.path());
    let inbound = InboundRequest {
        method: request.method.as_str().into(),
        route: route.path.clone(),
        host: super::http_util::request_host(&request.headers).into(),
        headers: passed_headers(&request.headers).into(),
        query: abi_pairs(query).into(),
        form: abi_pairs(form).into(),
        body: body.to_vec().into(),
    };
    let reply = state
        .caller()
        .call(idp.instance.clone(), move |host, idp| {
            idp.handle_inbound(host, inbound).into_result()
        })
        .await?;
    let source = ActionSource {
        idp_id: idp.id(),
        domain: domain.name(),
        ip: &ip,
        origin: &origin,
    };
    let applied = actions::apply(&state, source, &reply.actions).await?;
    if applied.show_logout_landing {
        // The end of a single logout the plugin began: only the host knows where the
        // IdP's logout lands.
        return Ok(Redirect::to(&idp.logout_landing()).into_response());
    }
    respond(reply)
}

/// The route's own cap, never above the host's.
fn body_cap(route: &RouteDecl, host_cap: usize) -> usize {
    match route.max_body_bytes {
        0 => host_cap,
        declared => host_cap.min(declared as usize),
    }
}

/// Headers a plugin sees: all but the browser's credentials (sessions are the host's).
fn passed_headers(headers: &HeaderMap) -> Vec<Pair> {
    headers
        .iter()
        .filter(|(name, _)| **name != header::COOKIE && **name != header::AUTHORIZATION)
        .filter_map(|(name, value)| Some(Pair::new(name.as_str(), value.to_str().ok()?)))
        .collect()
}

/// Headers a plugin's reply may not set: the host's sessions and framing are its own.
const REFUSED_REPLY_HEADERS: [HeaderName; 4] = [
    header::SET_COOKIE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

fn respond(reply: gatehouse_plugin_api::InboundReply) -> AppResult<Response> {
    let status = StatusCode::from_u16(reply.status)
        .ok()
        .filter(|s| !s.is_informational())
        .ok_or_else(|| {
            AppError::internal(format!("the plugin replied with status {}", reply.status))
        })?;
    let mut response = (status, reply.body.to_vec()).into_response();
    let headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&reply.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    for pair in &reply.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(pair.name.as_bytes()),
            HeaderValue::from_str(&pair.value),
        ) else {
            continue;
        };
        if REFUSED_REPLY_HEADERS.contains(&name) {
            tracing::warn!(header = %name, "a plugin's inbound reply tried to set a refused header");
            continue;
        }
        headers.append(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_never_gets_more_than_the_hosts_cap() {
        let route = RouteDecl::fixed("/x", &["POST"]);
        assert_eq!(body_cap(&route, 1000), 1000);
        assert_eq!(body_cap(&route.clone().with_max_body_bytes(10), 1000), 10);
        assert_eq!(body_cap(&route.with_max_body_bytes(5000), 1000), 1000);
    }

    #[test]
    fn cookies_and_authorization_never_reach_a_plugin() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("gh_session=secret"),
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        let passed = passed_headers(&headers);
        assert_eq!(passed, vec![Pair::new("content-type", "text/xml")]);
    }
}
