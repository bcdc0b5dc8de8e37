//! Cross-reference checks between the tables of `plugins.toml`: duplicate ids, IdPs naming
//! plugins, domains or fields that do not exist, a file without domains. It is not the conflict
//! resolver (login behaviour, provisioning conflicts); the host runs that on a valid `Config`.

use std::collections::HashMap;
use std::path::Path;

use crate::diagnostic::{Diagnostic, codes};
use crate::model::CORE_FIELDS;
use crate::position::Location;
use crate::schema::Draft;
use crate::suggest::{closest, list};

const MINIMAL_DOMAIN: &str = "add one, e.g.:\n[[domain]]\nname = \"root\"\nhosts = [\"localhost\"]";

pub(crate) fn check(file: &Path, draft: &Draft) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let error = |code, message: String, at: Location, help: String| {
        Diagnostic::error(code, message, file, at).with_help(help)
    };

    // [[plugin]] ids.
    let mut plugin_ids: HashMap<&str, Location> = HashMap::new();
    for p in draft.plugins.iter().filter(|p| !p.id.is_empty()) {
        let at = p.value_location("id");
        if let Some(first) = plugin_ids.get(p.id.as_str()) {
            out.push(error(
                codes::DUPLICATE_ID,
                format!("plugin id `{}` is declared twice", p.id),
                at,
                format!(
                    "the first [[plugin]] with this id is at line {}; remove one of them",
                    first.line
                ),
            ));
        } else {
            plugin_ids.insert(&p.id, at);
        }
    }

    // [[field]] names.
    let mut field_names: HashMap<&str, Location> = HashMap::new();
    for f in draft.fields.iter().filter(|f| !f.name.is_empty()) {
        let at = f.value_location("name");
        if CORE_FIELDS.contains(&f.name.as_str()) {
            out.push(error(
                codes::DUPLICATE_ID,
                format!("`{}` is a core field and cannot be declared again", f.name),
                at,
                format!(
                    "the core fields ({}) always exist; remove this [[field]] or give it another name",
                    list(&CORE_FIELDS)
                ),
            ));
        } else if let Some(first) = field_names.get(f.name.as_str()) {
            out.push(error(
                codes::DUPLICATE_ID,
                format!("field `{}` is declared twice", f.name),
                at,
                format!(
                    "the first [[field]] with this name is at line {}; remove one of them",
                    first.line
                ),
            ));
        } else {
            field_names.insert(&f.name, at);
        }
    }

    // [[domain]] names and hosts.
    if draft.domains.is_empty() {
        out.push(error(
            codes::NO_DOMAINS,
            String::from(
                "the configuration declares no [[domain]], so no login page can be served",
            ),
            Location::default(),
            String::from(MINIMAL_DOMAIN),
        ));
    }
    let mut domain_names: HashMap<&str, Location> = HashMap::new();
    let mut hosts: HashMap<&str, &str> = HashMap::new();
    for d in &draft.domains {
        if !d.name.is_empty() {
            let at = d.value_location("name");
            if let Some(first) = domain_names.get(d.name.as_str()) {
                out.push(
                    error(
                        codes::DUPLICATE_ID,
                        format!("domain `{}` is declared twice", d.name),
                        at,
                        format!(
                            "the first [[domain]] with this name is at line {}; give each domain its own name",
                            first.line
                        ),
                    )
                    .with_domain(&d.name),
                );
            } else {
                domain_names.insert(&d.name, at);
            }
        }
        let mut seen_here: Vec<&str> = Vec::new();
        for (i, host) in d.hosts.iter().enumerate() {
            let at = d.value_location(&format!("hosts.{i}"));
            if seen_here.contains(&host.as_str()) {
                out.push(
                    error(
                        codes::DUPLICATE_HOST,
                        format!("host `{host}` is listed twice in domain `{}`", d.name),
                        at,
                        String::from("remove the repeated entry from `hosts`"),
                    )
                    .with_domain(&d.name),
                );
                continue;
            }
            seen_here.push(host);
            if let Some(other) = hosts.get(host.as_str()) {
                out.push(
                    error(
                        codes::DUPLICATE_HOST,
                        format!(
                            "host `{host}` is served by two domains: `{other}` and `{}`",
                            d.name
                        ),
                        at,
                        String::from(
                            "a host name picks exactly one domain; remove it from one of them",
                        ),
                    )
                    .with_domain(&d.name),
                );
            } else {
                hosts.insert(host, &d.name);
            }
        }
    }

    // [[idp]]s.
    let all_plugins_named = draft.plugins.iter().all(|p| !p.id.is_empty());
    let all_domains_named = draft.domains.iter().all(|d| !d.name.is_empty());
    let plugin_names: Vec<&str> = draft.plugins.iter().map(|p| p.id.as_str()).collect();
    let domain_list: Vec<&str> = draft.domains.iter().map(|d| d.name.as_str()).collect();
    // A set too: thousands of IdPs each looked up in thousands of domains add up.
    let domain_set: std::collections::HashSet<&str> = domain_list.iter().copied().collect();
    let mut known_fields: Vec<&str> = CORE_FIELDS.to_vec();
    known_fields.extend(draft.fields.iter().map(|f| f.name.as_str()));
    let mut idp_ids: HashMap<&str, Location> = HashMap::new();
    for idp in &draft.idps {
        let scoped = |d: Diagnostic| {
            let d = if idp.id.is_empty() {
                d
            } else {
                d.with_idp(&idp.id)
            };
            if idp.domain.is_empty() {
                d
            } else {
                d.with_domain(&idp.domain)
            }
        };
        if !idp.id.is_empty() {
            let at = idp.value_location("id");
            if let Some(first) = idp_ids.get(idp.id.as_str()) {
                out.push(scoped(error(
                    codes::DUPLICATE_ID,
                    format!("IdP id `{}` is used twice", idp.id),
                    at,
                    format!(
                        "the first [[idp]] with this id is at line {}; IdP ids are unique across the file (they appear in URLs)",
                        first.line
                    ),
                )));
            } else {
                idp_ids.insert(&idp.id, at);
            }
        }

        if !idp.plugin.is_empty() {
            let at = idp.value_location("plugin");
            match draft.plugins.iter().find(|p| p.id == idp.plugin) {
                Some(p) if !p.enabled => out.push(scoped(error(
                    codes::UNKNOWN_PLUGIN,
                    format!(
                        "IdP `{}` uses plugin `{}`, which is disabled (enabled = false)",
                        idp.id, idp.plugin
                    ),
                    at,
                    format!(
                        "set `enabled = true` in the [[plugin]] at line {}, or choose an enabled plugin",
                        p.location.line
                    ),
                ))),
                Some(_) => {}
                None if all_plugins_named => {
                    let help = match closest(&idp.plugin, &plugin_names) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None if plugin_names.is_empty() => format!(
                            "declare it: [[plugin]] id = \"{}\" library = \"gatehouse_{}\"",
                            idp.plugin, idp.plugin
                        ),
                        None => format!(
                            "declare it with a [[plugin]], or use one of {}",
                            list(&plugin_names)
                        ),
                    };
                    out.push(scoped(error(
                        codes::UNKNOWN_PLUGIN,
                        format!(
                            "IdP `{}` uses plugin `{}`, which no [[plugin]] declares",
                            idp.id, idp.plugin
                        ),
                        at,
                        help,
                    )));
                }
                None => {}
            }
        }

        if !idp.domain.is_empty() && all_domains_named && !domain_set.contains(idp.domain.as_str())
        {
            let help = match closest(&idp.domain, &domain_list) {
                Some(best) => format!("did you mean `{best}`?"),
                None if domain_list.is_empty() => String::from(MINIMAL_DOMAIN),
                None => format!("use one of {}", list(&domain_list)),
            };
            out.push(scoped(error(
                codes::UNKNOWN_DOMAIN,
                format!(
                    "IdP `{}` is on domain `{}`, which no [[domain]] declares",
                    idp.id, idp.domain
                ),
                idp.value_location("domain"),
                help,
            )));
        }

        let match_field = idp.match_field.as_str();
        if !known_fields.contains(&match_field) {
            let help = match closest(match_field, &known_fields) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "match on one of {}, or declare it with [[field]] name = \"{match_field}\"",
                    list(&known_fields)
                ),
            };
            out.push(scoped(error(
                codes::UNKNOWN_FIELD,
                format!(
                    "IdP `{}` matches users by `{match_field}`, which is neither a core field nor a declared [[field]]",
                    idp.id
                ),
                idp.value_location("match_field"),
                help,
            )));
        }

        for m in &idp.provisioning.fields {
            if known_fields.contains(&m.field.as_str()) {
                continue;
            }
            let help = match closest(&m.field, &known_fields) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "declare it with [[field]] name = \"{}\", or map one of {}",
                    m.field,
                    list(&known_fields)
                ),
            };
            out.push(scoped(error(
                codes::UNKNOWN_FIELD,
                format!(
                    "IdP `{}` maps the platform field `{}`, which is neither a core field nor a declared [[field]]",
                    idp.id, m.field
                ),
                m.location,
                help,
            )));
        }
    }
    out
}
