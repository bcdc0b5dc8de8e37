//! What the host knows beyond the configuration file: each loaded plugin's protocol and
//! abilities, and which IdPs have completed a successful sign-in. Plain data, gathered by the
//! host (from manifests and the database) before it calls the resolver.

use std::collections::{HashMap, HashSet};

/// One loaded plugin, as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFacts {
    /// The protocol its manifest declares (`oidc`, `saml`, `auth0`, `google`, `connect`, ...).
    pub protocol: String,
    /// The plugin can sign a user out at the IdP (manifest capability `logout`).
    pub can_logout_at_idp: bool,
}

/// Everything the resolver knows besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Loaded plugins by plugin id. An IdP whose plugin is missing here is not servable; the
    /// loader has already reported why.
    pub plugins: HashMap<String, PluginFacts>,
    /// IdP ids with at least one recorded successful sign-in (real or test).
    pub proven_idps: HashSet<String>,
}

impl Facts {
    /// Adds a plugin; a builder for tests and benchmarks.
    #[must_use]
    pub fn with_plugin(mut self, id: &str, protocol: &str, can_logout_at_idp: bool) -> Self {
        self.plugins.insert(
            id.to_owned(),
            PluginFacts {
                protocol: protocol.to_owned(),
                can_logout_at_idp,
            },
        );
        self
    }

    /// Records that `idp` has signed someone in successfully.
    #[must_use]
    pub fn with_proven(mut self, idp: &str) -> Self {
        self.proven_idps.insert(idp.to_owned());
        self
    }

    pub fn protocol_of(&self, plugin: &str) -> Option<&str> {
        self.plugins.get(plugin).map(|p| p.protocol.as_str())
    }
}
