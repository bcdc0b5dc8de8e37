//! `gatehouse-resolver`: the pure heart of Gatehouse. A checked [`Config`] and the facts
//! the host knows about its plugins and history go in; a [`Resolution`] (everything the
//! request path needs, pre-computed per domain) and the [`Diagnostic`]s come out.
//!
//! It is not the parser (`gatehouse-config`), not the loader and not the web layer: it does
//! no I/O, no async, touches no database and knows no ABI types. Conflicts are data, not
//! `Err`: [`resolve`] always returns a resolution, and callers refuse to serve one whose
//! diagnostics contain an error.

pub mod decision;
pub mod explain;
mod facts;
pub mod locks;
pub mod loop_breaker;
pub mod provisioning;
mod resolution;
mod rules;

use gatehouse_config::{Config, Diagnostic};

pub use decision::{Decision, Rule, decide};
pub use facts::{Facts, PluginFacts};
pub use resolution::{Button, DomainPlan, Entry, IdpPlan, Resolution};

/// A resolution and the findings made while computing it.
#[derive(Debug)]
pub struct Resolved {
    pub resolution: Resolution,
    /// In file order within each rule; errors and warnings mixed.
    pub diagnostics: Vec<Diagnostic>,
}

impl Resolved {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks `config` against every rule and pre-computes what each domain's requests need.
///
/// Never panics and never fails: a configuration with conflicts still resolves, and the
/// conflicts are in [`Resolved::diagnostics`].
pub fn resolve(config: &Config, facts: &Facts) -> Resolved {
    let resolution = Resolution::build(config, facts);
    let diagnostics = rules::check(config, facts);
    Resolved {
        resolution,
        diagnostics,
    }
}
