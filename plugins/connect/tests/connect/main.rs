//! The Connect client plugin's tests, in one binary: registration (`new_server`,
//! `sep_setup.php`), the client's SEP services, single sign-on through the server, logout,
//! the sync tasks (`handshake`, `users`, `user_collections`, `positions`, `organisations`, `cleanup`, `server`), the online check, and the test kit's conformance check. The server's replies are
//! written here as the reference shows them (string ids, `[]` for empty data, PHP's `\/`),
//! never produced by Gatehouse's own code.

mod collections;
mod hierarchy;
mod online;
mod registration;
mod sep;
mod sso;
mod support;
mod sync;
