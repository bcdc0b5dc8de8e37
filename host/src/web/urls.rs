//! The host's own URLs that more than one handler writes: where a sign-in starts and where
//! an IdP sends the browser back. The one place that knows those route shapes besides the
//! router (`web::app`); the callback and logout URLs come from `registration_urls`, which
//! the CLI lists for the admin. Not a handler, and the sign-in flow takes these URLs as
//! inputs rather than knowing them.

use axum::http::HeaderMap;

use crate::{registration_urls, state::AppState};

use super::http_util::request_host;

/// The scheme of the public URL with the host the browser used (already matched against a
/// configured domain), so cookies and callbacks stay on that host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    registration_urls::origin(&state.settings().public_url, request_host(headers))
}

/// `/sso/{idp}/callback` on this host: where IdP `idp_id` answers, for sign-ins and test
/// sign-ins alike.
pub fn callback_url(state: &AppState, headers: &HeaderMap, idp_id: &str) -> String {
    registration_urls::callback_url(&base_url(state, headers), idp_id)
}

/// `/sso/{idp}/logout` on this host: where IdP `idp_id` sends the browser back after
/// signing out there (OIDC's `post_logout_redirect_uri`, SAML's single logout).
pub fn logout_url(state: &AppState, headers: &HeaderMap, idp_id: &str) -> String {
    registration_urls::logout_url(&base_url(state, headers), idp_id)
}

/// `/sso/{idp}/finish?handle=…`: the same-site step of an answer the IdP POSTed.
pub fn finish_url(idp_id: &str, handle: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("handle", handle)
        .finish();
    format!("/sso/{idp_id}/finish?{query}")
}

/// `/sso/{idp}/start?return_to=…`, the login page's buttons and automatic redirect.
pub fn start_url(idp_id: &str, return_to: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("/sso/{idp_id}/start?{query}")
}

/// The password page (`GET` and `POST /me/password`).
pub const PASSWORD_PATH: &str = "/me/password";

/// The password page, with where to go once the password is changed.
pub fn password_url(return_to: &str) -> String {
    if return_to == "/" {
        return PASSWORD_PATH.to_owned();
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("{PASSWORD_PATH}?{query}")
}
