//! This host as a Totara Connect server (`[connect_server]`, protocol §1–§4 and §8): the
//! SEP that client systems call (`sep.php`: the deterministic [`core`], [`shares`] for what
//! it sends beyond users, and their handler [`sep`]), registration of client systems
//! (`registration`, `gatehouse connect add-client`), the browser's SSO entry
//! (`sso_request`), the calls to clients (`client_calls`), logout propagation
//! (`propagate`), the keep-alive (`keep_alive`) and `gatehouse connect clients` ([`cli`]).
//! It is not the client role (the `connect` plugin) nor the wire format
//! (`gatehouse-connect-wire`); the rows are the store's (`connect_server` there).

use crate::state::AppState;

pub mod cli;
pub mod client_calls;
pub mod core;
pub mod keep_alive;
pub mod propagate;
pub mod registration;
pub mod sep;
pub mod shares;
pub mod sso_request;

/// Whether `[connect_server] enabled` is on in the current site (it follows reloads).
pub fn server_enabled(state: &AppState) -> bool {
    state.site().connect_server().enabled
}

/// Whether `[connect_server] sync_passwords` is on in the current site.
pub fn sync_passwords(state: &AppState) -> bool {
    state.site().connect_server().sync_passwords
}
