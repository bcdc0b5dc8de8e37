//! The HTTP face of Gatehouse: [`app`] builds the router every test drives without
//! a socket and `serve` binds to one. Handlers translate HTTP to calls on the
//! store, the site and the plugins; the decisions live elsewhere.
//!
//! Around every route: a malformed `Host` is refused before routing (`host_header`), and
//! every response carries the browser hardening headers (`headers`).

mod account;
mod admin;
pub mod browser_tokens;
mod error;
pub mod headers;
pub mod host_header;
pub mod http_util;
mod login;
mod pages;
mod profile;
mod session;
mod sso;
mod throttle;

use axum::{
    Router, middleware,
    routing::{delete, get, post},
};

use crate::state::AppState;

pub use error::{AppError, status_for};

/// The whole router, with its state.
pub fn app(state: AppState) -> Router {
    // Secure cookies are on exactly when the public URL is https, which is when HSTS is due.
    let https = state.settings().secure_cookies;
    let routes = Router::new()
        .route("/", get(account::home))
        .route("/login", get(login::show).post(login::submit))
        .route("/sso/{idp}/start", get(sso::start))
        .route(
            "/sso/{idp}/callback",
            get(sso::callback_get).post(sso::callback_post),
        )
        .route("/logout", post(account::logout))
        .route("/logged-out", get(account::logged_out))
        .route("/me", get(account::me))
        .route(
            "/me/profile",
            get(profile::my_profile).patch(profile::edit_my_profile),
        )
        .route("/admin/reload", post(admin::reload))
        .route("/admin/test-login/{idp}", get(admin::test_login))
        .route(
            "/admin/users/{id}/profile",
            get(profile::user_profile).patch(profile::edit_user_profile),
        )
        .route(
            "/admin/users/{id}/links",
            get(admin::links).post(admin::link_idp),
        )
        .route("/admin/users/{id}/links/{idp}", delete(admin::unlink_idp))
        .route("/healthz", get(account::healthz))
        .with_state(state)
        .layer(middleware::from_fn(host_header::require_valid_host));
    headers::harden(routes, https)
}
