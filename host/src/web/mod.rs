//! The HTTP face of Gatehouse: [`app`] builds the router every test drives without
//! a socket and `serve` binds to one. Handlers translate HTTP to calls on the
//! store, the site and the plugins; the decisions live elsewhere.
//!
//! Handler modules (`account`, `admin`, `login`, `profile`, `sso`) never import one
//! another: what they share lives in modules that are not handlers — the sign-in flow
//! (`flow`), the preconditions (`extract`), the error path (`error`), `session`, `pages`,
//! `urls` and `http_util`.
//!
//! Around every route: the request log (`trace`), a malformed `Host` refused
//! (`host_header`), and the browser hardening headers on every response (`headers`). The
//! JSON routes also send their errors as JSON (`error::json_errors`); every other route is
//! a page and sends the HTML error page.

mod account;
mod admin;
pub mod browser_tokens;
mod error;
pub mod extract;
pub mod flow;
pub mod headers;
pub mod host_header;
pub mod http_util;
mod inbound;
mod login;
mod metrics;
mod pages;
mod password;
mod profile;
pub mod session;
mod sso;
pub mod start_limit;
mod status;
mod throttle;
pub mod trace;
pub mod urls;

use axum::{
    Router, middleware,
    routing::{any, delete, get, post},
};

use crate::state::AppState;

pub use error::{AppError, ErrorBody, status_for};

/// The whole router, with its state.
pub fn app(state: AppState) -> Router {
    // Secure cookies are on exactly when the public URL is https, which is when HSTS is due.
    let https = state.settings().secure_cookies;
    let observed = state.clone();
    let pages = Router::new()
        .route("/", get(account::home))
        .route("/login", get(login::show).post(login::submit))
        .route("/sso/{idp}/start", get(sso::start))
        .route(
            "/sso/{idp}/callback",
            get(sso::callback_get).post(sso::callback_post),
        )
        .route("/sso/{idp}/finish", get(sso::finish))
        .route("/sso/{idp}/metadata", get(inbound::metadata))
        .route(
            "/sso/{idp}/logout",
            get(inbound::logout).post(inbound::logout),
        )
        // Routes plugins declare below their mount; the host's own above win.
        .route("/sso/{idp}/{*path}", any(inbound::below_idp))
        .route("/logout", post(account::logout))
        .route("/logged-out", get(account::logged_out))
        // The Connect server's SEP on every domain, before the plugins' fixed routes.
        .route(
            gatehouse_connect_wire::sep::SERVER_SEP_PATH,
            any(crate::connect_server::sep::handle),
        )
        .route(
            gatehouse_connect_wire::sep::SERVER_SSO_REQUEST_PATH,
            get(crate::connect_server::sso_request::show)
                .post(crate::connect_server::sso_request::cancel),
        )
        // The route is a user contract; the code calls it a test sign-in.
        .route("/admin/test-login/{idp}", get(admin::test_sign_in))
        // A page, or JSON (its errors too) with `Accept: application/json`.
        .route(
            "/admin/status",
            get(status::show).layer(middleware::from_fn(status::errors_as_asked)),
        )
        .route(
            urls::PASSWORD_PATH,
            get(password::show).post(password::submit),
        )
        // Someone who must change their password is sent to that page from any other.
        .route_layer(middleware::from_fn(password::redirect_required_change))
        // Plugins' fixed protocol paths, looked up in the current site (so a reload
        // changes them), else the not-found page.
        .fallback(inbound::fixed_or_not_found);
    let json = Router::new()
        .route("/me", get(account::me))
        .route(
            "/me/profile",
            get(profile::my_profile).patch(profile::edit_my_profile),
        )
        .route("/admin/reload", post(admin::reload))
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
        .route("/metrics", get(metrics::scrape))
        .route("/readyz", get(status::readyz))
        .route_layer(middleware::from_fn(error::json_errors));
    let routes = pages
        .merge(json)
        .with_state(state)
        .layer(middleware::from_fn(host_header::require_valid_host));
    // Outermost, so the latency and status it records are the ones the client gets.
    // The request id and the request's metrics around the span, so the span has the id.
    headers::harden(routes, https)
        .layer(trace::layer())
        .layer(middleware::from_fn_with_state(observed, trace::observe))
}

#[cfg(test)]
mod tests {
    /// The handler modules and their source.
    const HANDLERS: [(&str, &str); 8] = [
        ("account", include_str!("account.rs")),
        ("admin", include_str!("admin.rs")),
        ("inbound", include_str!("inbound.rs")),
        ("login", include_str!("login.rs")),
        ("password", include_str!("password.rs")),
        ("profile", include_str!("profile.rs")),
        ("sso", include_str!("sso.rs")),
        ("status", include_str!("status.rs")),
    ];

    /// What a module names from `super`: its `use super::{…}` block and `super::x` paths.
    fn names_from_super(source: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (index, _) in source.match_indices("super::") {
            let rest = &source[index + "super::".len()..];
            let text = match rest.strip_prefix('{') {
                Some(block) => block.split("};").next().unwrap_or_default(),
                None => rest
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or_default(),
            };
            // Only what starts a path names a module: `flow::{self, Begin}` names `flow`.
            let mut depth = 0usize;
            let mut at_start = true;
            let mut word = String::new();
            for c in text.chars().chain(std::iter::once(',')) {
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                    continue;
                }
                if !word.is_empty() {
                    if depth == 0 && at_start {
                        names.push(word.clone());
                    }
                    at_start = false;
                    word.clear();
                }
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => at_start = true,
                    _ => {}
                }
            }
        }
        names
    }

    #[test]
    fn imports_from_super_are_found() {
        let source = "use super::{\n    error::{A, B},\n    sso::{self, X},\n    pages, session,\n};\nfn f() { super::login::g() }";
        assert_eq!(
            names_from_super(source),
            ["error", "sso", "pages", "session", "login"]
        );
    }

    #[test]
    fn no_handler_module_imports_another() {
        for (name, source) in HANDLERS {
            let imported = names_from_super(source);
            assert!(
                imported.iter().any(|n| n == "error"),
                "{name}: {imported:?}"
            );
            for (other, _) in HANDLERS {
                assert!(
                    !imported.iter().any(|n| n == other),
                    "handler module `{name}` imports handler module `{other}`: {imported:?}"
                );
            }
        }
    }
}
