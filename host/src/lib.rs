//! Gatehouse, the single sign-on host: loads identity-provider plugins, serves the
//! login pages of every domain, and signs people in.
//!
//! The binary (`main.rs`) is a thin CLI over this library, so integration tests
//! drive the same code: [`startup::build_site`] turns a configuration into a running
//! state, and [`web::app`] turns that state into a router.

pub mod accounts;
pub mod actions;
pub mod clock;
pub mod connect;
pub mod connect_migration;
pub mod connect_server;
pub mod connect_sync;
pub mod directory;
pub mod events;
pub mod idp_report;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod online_check;
pub mod passwords;
pub mod plugins;
pub mod registration_urls;
pub mod reload;
pub mod site;
pub mod startup;
pub mod state;
pub mod tasks;
pub mod web;

pub use gatehouse_config as config;
pub use gatehouse_resolver as resolver;
pub use gatehouse_store as store;
