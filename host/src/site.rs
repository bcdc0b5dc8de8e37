//! The configuration the request path serves from: domains found by host name,
//! IdP instances with their plugins, and each IdP's provisioning policy, all
//! computed once when the configuration is loaded. Not the parser (that is
//! `gatehouse-config`) and not the loader (that is `plugins::loader`).

use std::{collections::HashMap, sync::Arc};

use gatehouse_config::{Behaviour, Config, DomainConfig, IdpConfig, LoginForm};
use gatehouse_plugin_api::Capabilities;

use crate::{
    plugins::{IdpInstance, LoadedPlugin},
    provisioning::Policy,
};

/// One IdP ready to serve.
#[derive(Debug)]
pub struct SiteIdp {
    pub config: IdpConfig,
    pub instance: Arc<IdpInstance>,
    pub policy: Policy,
}

impl SiteIdp {
    pub fn id(&self) -> &str {
        &self.config.id
    }
    pub fn can_logout_at_idp(&self) -> bool {
        self.instance
            .plugin
            .capabilities
            .contains(Capabilities::LOGOUT)
    }
}

/// One domain and the IdPs on it, in file order.
#[derive(Debug)]
pub struct SiteDomain {
    pub config: DomainConfig,
    pub idps: Vec<Arc<SiteIdp>>,
}

impl SiteDomain {
    pub fn name(&self) -> &str {
        &self.config.name
    }
    pub fn form_shown(&self) -> bool {
        self.config.login_form == LoginForm::Shown
    }
    /// The IdPs shown as buttons.
    pub fn buttons(&self) -> impl Iterator<Item = &Arc<SiteIdp>> {
        self.idps
            .iter()
            .filter(|idp| idp.config.behaviour == Behaviour::Button)
    }
    /// The IdP that signs everyone in automatically, if any.
    pub fn redirect_idp(&self) -> Option<&Arc<SiteIdp>> {
        self.idps
            .iter()
            .find(|idp| idp.config.behaviour == Behaviour::Redirect)
    }
    pub fn idp(&self, id: &str) -> Option<&Arc<SiteIdp>> {
        self.idps.iter().find(|idp| idp.id() == id)
    }
}

/// Everything the request path needs, immutable once built.
#[derive(Debug)]
pub struct Site {
    pub domains: Vec<SiteDomain>,
    hosts: HashMap<String, usize>,
}

/// An IdP whose plugin refused its settings.
#[derive(Debug, Clone)]
pub struct IdpBuildFailure {
    pub idp: String,
    pub message: String,
}

impl Site {
    /// Builds the site from a checked configuration and the loaded plugins. IdPs
    /// whose plugin is not loaded or refuses the settings are reported, not served.
    pub fn build(config: &Config, plugins: &[LoadedPlugin]) -> (Self, Vec<IdpBuildFailure>) {
        let mut failures = Vec::new();
        let mut domains: Vec<SiteDomain> = config
            .domains
            .iter()
            .map(|d| SiteDomain {
                config: d.clone(),
                idps: Vec::new(),
            })
            .collect();
        let mut hosts = HashMap::new();
        for (index, domain) in config.domains.iter().enumerate() {
            for host in &domain.hosts {
                hosts.insert(host.to_ascii_lowercase(), index);
            }
        }
        let required_on_create = required_on_create(config);
        for idp in &config.idps {
            let Some(plugin) = plugins.iter().find(|p| p.info.id == idp.plugin) else {
                failures.push(IdpBuildFailure {
                    idp: idp.id.clone(),
                    message: format!("its plugin `{}` is not loaded", idp.plugin),
                });
                continue;
            };
            let instance = match IdpInstance::build(plugin, &idp.id, &idp.settings) {
                Ok(instance) => Arc::new(instance),
                Err(error) => {
                    failures.push(IdpBuildFailure {
                        idp: idp.id.clone(),
                        message: error.message().to_owned(),
                    });
                    continue;
                }
            };
            let policy = Policy {
                idp_id: idp.id.clone(),
                username_attribute: idp.username_attribute.clone(),
                match_field: idp.match_field.as_str().to_owned(),
                case_insensitive: idp.match_case_insensitive,
                create_users: idp.provisioning.create_users,
                update_existing: idp.provisioning.update_existing,
                mapping: idp
                    .provisioning
                    .fields
                    .iter()
                    .map(|m| (m.field.clone(), m.attribute.clone()))
                    .collect(),
                required_on_create: required_on_create.clone(),
            };
            if let Some(domain) = domains.iter_mut().find(|d| d.config.name == idp.domain) {
                domain.idps.push(Arc::new(SiteIdp {
                    config: idp.clone(),
                    instance,
                    policy,
                }));
            }
        }
        (Self { domains, hosts }, failures)
    }

    /// The domain serving `host` (a `Host` header, with or without a port).
    pub fn domain_for_host(&self, host: &str) -> Option<&SiteDomain> {
        let name = strip_port(host).to_ascii_lowercase();
        self.hosts
            .get(&name)
            .and_then(|&index| self.domains.get(index))
    }

    pub fn domain(&self, name: &str) -> Option<&SiteDomain> {
        self.domains.iter().find(|d| d.config.name == name)
    }
}

fn required_on_create(config: &Config) -> Vec<String> {
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

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8080
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
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
    }
}
