//! The pre-computed answer for every domain: host names to domain, what a login request does
//! there, and each IdP's effective provisioning policy. Serving a request is a lookup in
//! this, never a rule evaluation.

use std::collections::HashMap;

use gatehouse_config::{Behaviour, Config, DomainConfig, IdpConfig, LoginForm};

use crate::{facts::Facts, provisioning::Policy};

/// What an unauthenticated request to the login page does before `?nosso=1` and the loop
/// breaker are considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Rule 1: every unauthenticated visitor goes to this URL.
    External { url: String },
    /// Rule 3: straight to this IdP (its index in [`DomainPlan::idps`]).
    Redirect { idp: usize },
    /// Rule 4: the login page.
    Page,
}

/// A button on the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub idp_id: String,
    pub label: String,
}

/// One IdP as the request path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpPlan {
    pub id: String,
    pub label: String,
    pub plugin: String,
    /// `None` when the plugin did not load (the IdP then cannot be served).
    pub protocol: Option<String>,
    pub behaviour: Behaviour,
    pub policy: Policy,
}

/// One domain, ready to serve.
#[derive(Debug, Clone)]
pub struct DomainPlan {
    pub name: String,
    pub hosts: Vec<String>,
    pub branch: String,
    pub entry: Entry,
    /// The password form on the login page (rule 4); `?nosso=1` shows it regardless.
    pub form_shown: bool,
    /// In file order.
    pub buttons: Vec<Button>,
    /// Every IdP on the domain whose plugin is loaded, hidden ones included, in file order.
    pub idps: Vec<IdpPlan>,
}

impl DomainPlan {
    pub fn idp(&self, id: &str) -> Option<&IdpPlan> {
        self.idps.iter().find(|idp| idp.id == id)
    }

    /// The automatic-redirect IdP, if rule 3 applies.
    pub fn redirect_idp(&self) -> Option<&IdpPlan> {
        match self.entry {
            Entry::Redirect { idp } => self.idps.get(idp),
            _ => None,
        }
    }
}

/// Every domain, found by host name.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    domains: Vec<DomainPlan>,
    hosts: HashMap<String, usize>,
}

impl Resolution {
    pub(crate) fn build(config: &Config, facts: &Facts) -> Self {
        let required_on_create = required_on_create(config);
        let mut hosts = HashMap::new();
        let mut domains = Vec::with_capacity(config.domains.len());
        // Grouped once: looking each domain's IdPs up in the whole list is quadratic.
        let mut on_domain: HashMap<&str, Vec<&IdpConfig>> = HashMap::new();
        for idp in &config.idps {
            on_domain.entry(idp.domain.as_str()).or_default().push(idp);
        }
        for domain in &config.domains {
            let index = domains.len();
            for host in &domain.hosts {
                // The first domain to claim a host keeps it (a duplicate is a config error).
                let host = host.to_ascii_lowercase();
                // `[::1]` is also found as the `::1` that `strip_port` leaves of `[::1]:8080`.
                if let Some(bare) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    hosts.entry(bare.to_owned()).or_insert(index);
                }
                hosts.entry(host).or_insert(index);
            }
            let idps = on_domain
                .get(domain.name.as_str())
                .map_or(&[][..], Vec::as_slice);
            domains.push(plan_domain(domain, idps, facts, &required_on_create));
        }
        Self { domains, hosts }
    }

    pub fn domains(&self) -> &[DomainPlan] {
        &self.domains
    }

    pub fn domain(&self, name: &str) -> Option<&DomainPlan> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// The domain serving a `Host` header (case-insensitive; a `:port` is ignored unless the
    /// domain lists the host with that port, as `gatehouse_config::Config::domain_for_host`).
    pub fn domain_for_host(&self, host: &str) -> Option<&DomainPlan> {
        self.domains.get(self.index_for_host(host)?)
    }

    /// The position of that domain in [`Resolution::domains`] (file order).
    pub fn index_for_host(&self, host: &str) -> Option<usize> {
        let host = host.trim();
        self.host_index(host)
            .or_else(|| self.host_index(strip_port(host)))
    }

    fn host_index(&self, host: &str) -> Option<usize> {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase()).copied()
        } else {
            self.hosts.get(host).copied()
        }
    }
}

fn plan_domain(
    domain: &DomainConfig,
    idps: &[&IdpConfig],
    facts: &Facts,
    required_on_create: &[String],
) -> DomainPlan {
    let idps: Vec<IdpPlan> = idps
        .iter()
        .filter_map(|idp| {
            let protocol = facts.protocol_of(&idp.plugin)?;
            Some(IdpPlan {
                id: idp.id.clone(),
                label: idp.name.clone(),
                plugin: idp.plugin.clone(),
                protocol: Some(protocol.to_owned()),
                behaviour: idp.behaviour,
                policy: Policy::of(idp, protocol, required_on_create),
            })
        })
        .collect();
    let buttons = idps
        .iter()
        .filter(|idp| idp.behaviour == Behaviour::Button)
        .map(|idp| Button {
            idp_id: idp.id.clone(),
            label: idp.label.clone(),
        })
        .collect();
    let entry = match (&domain.force_external_sso_url, redirect_index(&idps)) {
        (Some(url), _) => Entry::External {
            url: url.as_str().to_owned(),
        },
        (None, Some(idp)) => Entry::Redirect { idp },
        (None, None) => Entry::Page,
    };
    DomainPlan {
        name: domain.name.clone(),
        hosts: domain.hosts.clone(),
        branch: domain.branch.clone(),
        entry,
        form_shown: domain.login_form == LoginForm::Shown,
        buttons,
        idps,
    }
}

/// The first automatic-redirect IdP (a second one is a `multiple-redirects` error).
fn redirect_index(idps: &[IdpPlan]) -> Option<usize> {
    idps.iter()
        .position(|idp| idp.behaviour == Behaviour::Redirect)
}

/// Fields user creation requires: names when registration requires them, and every
/// mandatory additional field.
pub(crate) fn required_on_create(config: &Config) -> Vec<String> {
    let mut required = Vec::new();
    if config.registration.require_names {
        required.extend(["firstname".to_owned(), "lastname".to_owned()]);
    }
    required.extend(
        config
            .fields
            .iter()
            .filter(|f| f.mandatory)
            .map(|f| f.name.clone()),
    );
    required
}

/// The fields an IdP fills from its username attribute without a mapping entry.
pub(crate) fn identity_fields(idp: &IdpConfig) -> Vec<&str> {
    let mut fields = vec!["username"];
    let matched = idp.match_field.as_str();
    if matched != "username" {
        fields.push(matched);
    }
    fields
}

fn strip_port(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn host_headers_lose_their_port() {
        assert_eq!(strip_port("localhost:8080"), "localhost");
        assert_eq!(strip_port("example.test"), "example.test");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("odd:"), "odd:");
    }
}
