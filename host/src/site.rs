//! The configuration the request path serves from: the resolver's pre-computed
//! [`Resolution`] joined with the IdP instances the plugins built, computed once per
//! (re)load and then only read. Not the parser (`gatehouse-config`), not the rules
//! (`gatehouse-resolver`) and not the loader (`plugins::loader`).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use gatehouse_config::{Config, Diagnostic, DomainConfig, FieldDef, IdpConfig, Severity, codes};
use gatehouse_plugin_api::{Capabilities, Placement, RouteDecl, RouteMount};
use gatehouse_resolver::{
    DomainPlan, Facts, PluginFacts, Resolution, locks::FieldKind, provisioning::Policy,
};

use crate::plugins::{IdpInstance, LoadedPlugin};

/// One IdP ready to serve.
#[derive(Debug)]
pub struct SiteIdp {
    pub config: IdpConfig,
    pub instance: Arc<IdpInstance>,
    pub policy: Policy,
    /// When this host last recorded a successful sign-in through this IdP
    /// (`idp_history`); see [`SiteIdp::success_to_record`].
    success_recorded_at: AtomicI64,
}

/// How often a busy IdP's last successful sign-in is written: its readers (the
/// `untested-redirect` check, the status pages) need "has one", and roughly when.
const SUCCESS_RECORD_INTERVAL_SECONDS: i64 = 60;

impl SiteIdp {
    pub fn new(config: IdpConfig, instance: Arc<IdpInstance>, policy: Policy) -> Self {
        Self {
            config,
            instance,
            policy,
            success_recorded_at: AtomicI64::new(i64::MIN),
        }
    }

    /// Whether a successful sign-in at `now` should be recorded in the database: the first
    /// one this configuration sees, then at most one a minute (a sign-in spared the write
    /// saves a statement; a reload starts over, so the first success is always written).
    pub fn success_to_record(&self, now: i64) -> bool {
        let last = self.success_recorded_at.load(Ordering::Relaxed);
        now.saturating_sub(last) >= SUCCESS_RECORD_INTERVAL_SECONDS
            && self
                .success_recorded_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }
    /// The route the plugin declared below this IdP's mount at `path` (`logout`).
    pub fn route_below(&self, path: &str) -> Option<&RouteDecl> {
        self.instance
            .plugin
            .routes
            .iter()
            .find(|r| r.mount == RouteMount::BELOW_IDP && r.path.as_str() == path)
    }
    /// Where the browser lands after signing out through this IdP.
    pub fn logout_landing(&self) -> String {
        self.config
            .logout
            .landing_url
            .as_deref()
            .filter(|l| !l.is_empty())
            .unwrap_or("/logged-out")
            .to_owned()
    }
    pub fn has(&self, capability: Capabilities) -> bool {
        self.instance.plugin.capabilities.contains(capability)
    }
    pub fn can_logout_at_idp(&self) -> bool {
        self.instance
            .plugin
            .capabilities
            .contains(Capabilities::LOGOUT)
    }
}

/// One domain: its configuration, its resolved plan and its IdPs (hidden ones included).
#[derive(Debug, Clone, Copy)]
pub struct SiteDomain<'s> {
    pub config: &'s DomainConfig,
    pub plan: &'s DomainPlan,
    idps: &'s [Arc<SiteIdp>],
}

impl<'s> SiteDomain<'s> {
    pub fn name(&self) -> &'s str {
        &self.config.name
    }
    pub fn idp(&self, id: &str) -> Option<&'s Arc<SiteIdp>> {
        self.idps.iter().find(|idp| idp.id() == id)
    }
    pub fn idps(&self) -> &'s [Arc<SiteIdp>] {
        self.idps
    }
    /// The IdP of this domain that serves the fixed protocol path `path`, and how. One
    /// IdP per protocol per domain, and [`Site::build`] refuses two IdPs declaring one
    /// path, so there is at most one.
    pub fn fixed_route(&self, path: &str) -> Option<(&'s Arc<SiteIdp>, &'s RouteDecl)> {
        self.idps.iter().find_map(|idp| {
            idp.instance
                .plugin
                .routes
                .iter()
                .find(|r| r.mount == RouteMount::FIXED && r.path.as_str() == path)
                .map(|route| (idp, route))
        })
    }
}

/// One domain of a shared site, owned: what a request extracts and keeps for its whole
/// life, while a reload may swap in another site for later requests.
#[derive(Debug, Clone)]
pub struct SharedDomain {
    site: Arc<Site>,
    /// A position valid in `site` (checked when made; the site never changes).
    index: usize,
}

impl SharedDomain {
    /// The domain of `site` serving `host`, if any.
    pub fn for_host(site: Arc<Site>, host: &str) -> Option<Self> {
        let index = site.resolution.index_for_host(host)?;
        site.at(index)?;
        Some(Self { site, index })
    }

    pub fn get(&self) -> SiteDomain<'_> {
        let site = &*self.site;
        // `index` was checked against this very (immutable) site in `for_host`.
        SiteDomain {
            config: &site.configs[self.index],
            plan: &site.resolution.domains()[self.index],
            idps: &site.idps[self.index],
        }
    }

    /// The site the domain belongs to (the one the request started with).
    pub fn site(&self) -> &Site {
        &self.site
    }
}

/// Everything the request path needs, immutable once built.
#[derive(Debug)]
pub struct Site {
    resolution: Resolution,
    configs: Vec<DomainConfig>,
    /// Per domain, in the order of `configs`.
    idps: Vec<Vec<Arc<SiteIdp>>>,
    /// Every IdP configuration by id, including those without an instance.
    idp_configs: Vec<IdpConfig>,
    /// The additional profile fields (`[[field]]`).
    fields: Vec<FieldDef>,
    /// `[registration] user_editable_core`.
    user_editable_core: Vec<String>,
    /// `[connect_server]`: this host as a Totara Connect server.
    connect_server: gatehouse_config::ConnectServer,
    /// Every `[[plugin]]`, in configuration order, with its library's manifest if it loaded.
    plugins: Vec<SitePlugin>,
}

/// A `[[plugin]]` of the configuration a site was built from (for the status page).
#[derive(Debug, Clone)]
pub struct SitePlugin {
    pub id: String,
    pub enabled: bool,
    /// The manifest of its library; `None` when disabled or not loaded.
    pub info: Option<crate::plugins::PluginInfo>,
}

/// A site and what was found while building it.
#[derive(Debug)]
pub struct Built {
    pub site: Site,
    /// The plugins' refusals of settings (`invalid-settings`) and the resolver's findings.
    pub diagnostics: Vec<Diagnostic>,
}

/// Where a domain's IdPs are served: its name and the origin of each of its hosts, with
/// `public_url`'s scheme, and its port for hosts written without one (the origins
/// `registration_urls` lists for the admin, so the plugin and the admin see the same).
pub fn placement(config: &Config, domain: &DomainConfig) -> Placement {
    let origins = crate::registration_urls::domain_origins(config, domain);
    let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
    Placement::new(&domain.name, &origins)
}

impl Site {
    /// Builds the site from a configuration, the loaded plugins and the IdPs with a recorded
    /// successful sign-in. IdPs whose plugin refuses the settings are reported and left out.
    pub fn build(config: &Config, plugins: &[LoadedPlugin], proven: &HashSet<String>) -> Built {
        let facts = Facts {
            plugins: plugins
                .iter()
                .map(|p| {
                    (
                        p.info.id.clone(),
                        PluginFacts {
                            protocol: p.info.protocol.clone(),
                            can_logout_at_idp: p.info.capabilities.contains(Capabilities::LOGOUT),
                        },
                    )
                })
                .collect(),
            proven_idps: proven.clone(),
        };
        let resolved = gatehouse_resolver::resolve(config, &facts);
        let mut diagnostics = Vec::new();
        let mut idps: Vec<Vec<Arc<SiteIdp>>> = vec![Vec::new(); config.domains.len()];
        let by_id: HashMap<&str, &IdpConfig> = config
            .idps
            .iter()
            .map(|idp| (idp.id.as_str(), idp))
            .collect();
        for (index, plan) in resolved.resolution.domains().iter().enumerate() {
            for idp_plan in &plan.idps {
                let Some(idp) = by_id.get(idp_plan.id.as_str()).copied() else {
                    continue;
                };
                let Some(plugin) = plugins.iter().find(|p| p.info.id == idp.plugin) else {
                    continue;
                };
                let placement = placement(config, &config.domains[index]);
                match IdpInstance::build(plugin, &idp.id, &idp.settings, &placement).map(|built| {
                    let default =
                        crate::connect::default_max_response_bytes(&built.plugin.protocol);
                    built.with_max_response_bytes(idp.http_max_response_bytes.or(default))
                }) {
                    Ok(instance) => {
                        diagnostics.extend(unknown_tasks(config, idp, &instance));
                        idps[index].push(Arc::new(SiteIdp::new(
                            idp.clone(),
                            Arc::new(instance),
                            idp_plan.policy.clone(),
                        )));
                    }
                    Err(error) => diagnostics.push(invalid_settings(config, idp, error.message())),
                }
            }
        }
        for (domain, served) in config.domains.iter().zip(&idps) {
            diagnostics.extend(route_conflicts(config, domain, served));
        }
        diagnostics.extend(resolved.diagnostics);
        Built {
            site: Self {
                resolution: resolved.resolution,
                configs: config.domains.clone(),
                idps,
                idp_configs: config.idps.clone(),
                fields: config.fields.clone(),
                user_editable_core: config.registration.user_editable_core.clone(),
                connect_server: config.connect_server.clone(),
                plugins: config
                    .plugins
                    .iter()
                    .map(|entry| SitePlugin {
                        id: entry.id.clone(),
                        enabled: entry.enabled,
                        info: plugins
                            .iter()
                            .find(|loaded| loaded.info.id == entry.id)
                            .map(|loaded| loaded.info.clone()),
                    })
                    .collect(),
            },
            diagnostics,
        }
    }

    fn at(&self, index: usize) -> Option<SiteDomain<'_>> {
        Some(SiteDomain {
            config: self.configs.get(index)?,
            plan: self.resolution.domains().get(index)?,
            idps: self.idps.get(index)?,
        })
    }

    /// The domain serving `host` (a `Host` header, with or without a port).
    pub fn domain_for_host(&self, host: &str) -> Option<SiteDomain<'_>> {
        self.at(self.resolution.index_for_host(host)?)
    }

    pub fn domain(&self, name: &str) -> Option<SiteDomain<'_>> {
        self.at(self.configs.iter().position(|d| d.name == name)?)
    }

    pub fn resolution(&self) -> &Resolution {
        &self.resolution
    }

    /// How a profile field may be edited; `None` for a field that does not exist.
    pub fn field_kind(&self, name: &str) -> Option<FieldKind> {
        FieldKind::of_core(name, &self.user_editable_core).or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| FieldKind::Additional {
                    user_editable: f.user_editable,
                })
        })
    }

    /// `[connect_server]`: whether this host is a Totara Connect server, and its options.
    pub fn connect_server(&self) -> &gatehouse_config::ConnectServer {
        &self.connect_server
    }

    /// The additional profile fields (`[[field]]`), in file order.
    pub fn additional_fields(&self) -> &[gatehouse_config::FieldDef] {
        &self.fields
    }

    /// Every profile field: the core ones, then the additional ones in file order.
    pub fn field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = gatehouse_resolver::provisioning::CORE_FIELDS.to_vec();
        names.extend(self.fields.iter().map(|f| f.name.as_str()));
        names
    }

    /// Every IdP instance that was built, domain by domain in configuration order.
    /// Every `[[plugin]]` and whether its library loaded.
    pub fn plugins(&self) -> &[SitePlugin] {
        &self.plugins
    }

    pub fn all_idps(&self) -> impl Iterator<Item = &Arc<SiteIdp>> {
        self.idps.iter().flatten()
    }

    /// Whether an IdP instance `id` is configured (on any domain).
    pub fn has_idp(&self, id: &str) -> bool {
        self.idp_configs.iter().any(|idp| idp.id == id)
    }

    /// Whether the IdP instance `id` locks the fields it provisions (false for an IdP that
    /// is no longer configured: its locks went with it).
    pub fn idp_locks_fields(&self, id: &str) -> bool {
        self.idp_configs
            .iter()
            .any(|idp| idp.id == id && idp.provisioning.lock_fields)
    }
}

/// Two IdPs of `domain` whose plugins declare the same fixed path: the second is refused,
/// because a peer's request to that path could not tell which IdP it is for.
fn route_conflicts(
    config: &Config,
    domain: &DomainConfig,
    served: &[Arc<SiteIdp>],
) -> Vec<Diagnostic> {
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    let mut found = Vec::new();
    for idp in served {
        for route in idp
            .instance
            .plugin
            .routes
            .iter()
            .filter(|r| r.mount == RouteMount::FIXED)
        {
            match claimed.get(route.path.as_str()) {
                Some(first) if *first != idp.id() => found.push(Diagnostic {
                    code: codes::ROUTE_CONFLICT,
                    severity: Severity::Error,
                    message: format!(
                        "IdPs `{first}` and `{}` on domain `{}` both serve `{}`",
                        idp.id(),
                        domain.name,
                        route.path
                    ),
                    file: config.path.clone(),
                    location: idp.config.location,
                    domain: Some(domain.name.clone()),
                    idp: Some(idp.id().to_owned()),
                    help: Some(format!(
                        "move `{}` to another domain, or disable one of the two",
                        idp.id()
                    )),
                }),
                Some(_) => {}
                None => {
                    claimed.insert(route.path.as_str(), idp.id());
                }
            }
        }
    }
    found
}

/// A schedule in the IdP's `tasks` for a task its plugin does not offer would never run:
/// an error at the task's name, listing the tasks the plugin has.
fn unknown_tasks(config: &Config, idp: &IdpConfig, instance: &IdpInstance) -> Vec<Diagnostic> {
    let offered = &instance.plugin.tasks;
    idp.tasks
        .iter()
        .filter(|(name, _)| !offered.iter().any(|t| t == *name))
        .map(|(name, schedule)| {
            let help = if offered.is_empty() {
                format!(
                    "plugin `{}` has no scheduled tasks: remove `tasks`",
                    idp.plugin
                )
            } else {
                let names: Vec<String> = offered.iter().map(|t| format!("`{t}`")).collect();
                format!("plugin `{}` offers {}", idp.plugin, names.join(", "))
            };
            Diagnostic {
                code: codes::UNKNOWN_TASK,
                severity: Severity::Error,
                message: format!(
                    "IdP `{}` schedules the task `{name}`, which plugin `{}` does not offer",
                    idp.id, idp.plugin
                ),
                file: config.path.clone(),
                location: schedule.location,
                domain: Some(idp.domain.clone()),
                idp: Some(idp.id.clone()),
                help: Some(help),
            }
        })
        .collect()
}

fn invalid_settings(config: &Config, idp: &IdpConfig, message: &str) -> Diagnostic {
    let refusal = gatehouse_config::settings_refusal(idp, message);
    Diagnostic {
        code: codes::INVALID_SETTINGS,
        severity: Severity::Error,
        message: format!(
            "plugin `{}` refused the settings of IdP `{}`: {message}",
            idp.plugin, idp.id
        ),
        file: config.path.clone(),
        location: refusal.location,
        domain: Some(idp.domain.clone()),
        idp: Some(idp.id.clone()),
        help: Some(refusal.help),
    }
}
