//! Property tests over generated configurations (TOML text built from random parts, then
//! parsed like a real file): parsing and resolving never panic, a domain without error
//! diagnostics always has a way to sign in, `decide` and `explain` never panic, resolver
//! diagnostics are well-formed, and resolving is deterministic.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use gatehouse_config::Severity;
use gatehouse_resolver::{
    Decision, Entry, Facts, decide,
    decision::Request,
    explain::explain,
    loop_breaker::{LIMIT, Mark},
    resolve,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

const CASES: u32 = 256;

/// Declared plugins; an IdP may also name the undeclared `ghost`.
const PLUGINS: [&str; 5] = ["oidc", "saml", "google", "connect", "auth0"];
const CORE: [&str; 5] = ["username", "email", "firstname", "lastname", "idnumber"];
const ATTRIBUTES: [&str; 6] = ["email", "sub", "given_name", "family_name", "dept", "upn"];
const MATCH_FIELDS: [&str; 3] = ["username", "email", "idnumber"];
const BEHAVIOURS: [&str; 3] = ["button", "redirect", "hidden"];
const MIGRATE_MAPS: [&str; 5] = ["username", "email", "idnumber", "f0", "f1"];

#[derive(Debug, Clone)]
struct DomainGen {
    form_hidden: bool,
    force_url: bool,
    guest_access: bool,
}

#[derive(Debug, Clone)]
struct FieldGen {
    mandatory: bool,
    user_editable: bool,
}

#[derive(Debug, Clone)]
struct PluginGen {
    enabled: bool,
    loaded: bool,
    logout: bool,
}

/// A mapped platform field: a core one, or additional field `f{n}` (maybe undeclared).
#[derive(Debug, Clone)]
enum FieldPick {
    Core(usize),
    Additional(usize),
}

#[derive(Debug, Clone)]
struct IdpGen {
    /// An index into the domains (modulo their number), or `None` for an unknown domain.
    domain: Option<usize>,
    /// An index into [`PLUGINS`], or `None` for the undeclared `ghost`.
    plugin: Option<usize>,
    behaviour: usize,
    at_idp: bool,
    redirect_confirmed: bool,
    username_attribute: usize,
    match_field: usize,
    create: bool,
    update: bool,
    lock: bool,
    mapping: Vec<(FieldPick, usize)>,
    migrate: Option<(bool, usize)>,
    proven: bool,
}

#[derive(Debug, Clone)]
struct Gen {
    require_names: bool,
    fields: Vec<FieldGen>,
    plugins: Vec<PluginGen>,
    /// `auth0` declares protocol `oidc`, so it collides with `oidc` by protocol.
    auth0_speaks_oidc: bool,
    domains: Vec<DomainGen>,
    idps: Vec<IdpGen>,
}

fn domain_gen() -> impl Strategy<Value = DomainGen> {
    (any::<bool>(), prop::bool::weighted(0.2), any::<bool>()).prop_map(
        |(form_hidden, force_url, guest_access)| DomainGen {
            form_hidden,
            force_url,
            guest_access,
        },
    )
}

fn field_gen() -> impl Strategy<Value = FieldGen> {
    (any::<bool>(), any::<bool>()).prop_map(|(mandatory, user_editable)| FieldGen {
        mandatory,
        user_editable,
    })
}

fn plugin_gen() -> impl Strategy<Value = PluginGen> {
    (
        prop::bool::weighted(0.95),
        prop::bool::weighted(0.85),
        any::<bool>(),
    )
        .prop_map(|(enabled, loaded, logout)| PluginGen {
            enabled,
            loaded,
            logout,
        })
}

fn field_pick() -> impl Strategy<Value = FieldPick> {
    prop_oneof![
        8 => (0..CORE.len()).prop_map(FieldPick::Core),
        2 => (0..2usize).prop_map(FieldPick::Additional),
    ]
}

fn idp_gen() -> impl Strategy<Value = IdpGen> {
    let place = (
        prop_oneof![19 => (0..4usize).prop_map(Some), 1 => Just(None)],
        prop_oneof![19 => (0..PLUGINS.len()).prop_map(Some), 1 => Just(None)],
        0..BEHAVIOURS.len(),
        any::<bool>(),
        any::<bool>(),
    );
    let identity = (0..ATTRIBUTES.len(), 0..MATCH_FIELDS.len());
    let provisioning = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((field_pick(), 0..ATTRIBUTES.len()), 0..5),
        prop::option::of((any::<bool>(), 0..MIGRATE_MAPS.len())),
        any::<bool>(),
    );
    (place, identity, provisioning).prop_map(
        |(
            (domain, plugin, behaviour, at_idp, redirect_confirmed),
            (username_attribute, match_field),
            (create, update, lock, mapping, migrate, proven),
        )| IdpGen {
            domain,
            plugin,
            behaviour,
            at_idp,
            redirect_confirmed,
            username_attribute,
            match_field,
            create,
            update,
            lock,
            mapping,
            migrate,
            proven,
        },
    )
}

fn configurations() -> impl Strategy<Value = Gen> {
    (
        any::<bool>(),
        prop::collection::vec(field_gen(), 0..=2),
        prop::collection::vec(plugin_gen(), PLUGINS.len()),
        any::<bool>(),
        prop::collection::vec(domain_gen(), 1..=4),
        prop::collection::vec(idp_gen(), 0..=5),
    )
        .prop_map(
            |(require_names, fields, plugins, auth0_speaks_oidc, domains, idps)| Gen {
                require_names,
                fields,
                plugins,
                auth0_speaks_oidc,
                domains,
                idps,
            },
        )
}

impl Gen {
    fn domain_name(&self, idp: &IdpGen) -> String {
        match idp.domain {
            Some(i) => format!("d{}", i % self.domains.len()),
            None => String::from("nowhere"),
        }
    }

    fn toml(&self) -> String {
        let mut t = String::new();
        for (id, p) in PLUGINS.iter().zip(&self.plugins) {
            let _ = writeln!(
                t,
                "[[plugin]]\nid = \"{id}\"\nlibrary = \"gatehouse_{id}\"\nenabled = {}\n",
                p.enabled
            );
        }
        for (i, f) in self.fields.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[field]]\nname = \"f{i}\"\nmandatory = {}\nuser_editable = {}\n",
                f.mandatory, f.user_editable
            );
        }
        let _ = writeln!(
            t,
            "[registration]\nrequire_names = {}\n",
            self.require_names
        );
        for (i, d) in self.domains.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[domain]]\nname = \"d{i}\"\nhosts = [\"d{i}.example.test\"]\nlogin_form = \"{}\"\nforce_external_sso_url = \"{}\"\nguest_access = {}\n",
                if d.form_hidden { "hidden" } else { "shown" },
                if d.force_url {
                    "https://portal.example.test/"
                } else {
                    ""
                },
                d.guest_access
            );
        }
        for (i, idp) in self.idps.iter().enumerate() {
            let plugin = idp.plugin.map_or("ghost", |p| PLUGINS[p]);
            let _ = writeln!(
                t,
                "[[idp]]\nid = \"i{i}\"\ndomain = \"{}\"\nplugin = \"{plugin}\"\nbehaviour = \"{}\"\nredirect_confirmed = {}\nusername_attribute = \"{}\"\nmatch_field = \"{}\"\nlogout = {{ at_idp = {} }}\n",
                self.domain_name(idp),
                BEHAVIOURS[idp.behaviour],
                idp.redirect_confirmed,
                ATTRIBUTES[idp.username_attribute],
                MATCH_FIELDS[idp.match_field],
                idp.at_idp,
            );
            // A TOML table cannot repeat a key: the last pick of a field wins.
            let mapping: BTreeMap<String, &str> = idp
                .mapping
                .iter()
                .map(|(field, attribute)| {
                    let field = match field {
                        FieldPick::Core(c) => CORE[*c].to_owned(),
                        FieldPick::Additional(a) => format!("f{a}"),
                    };
                    (field, ATTRIBUTES[*attribute])
                })
                .collect();
            let fields = mapping
                .iter()
                .map(|(field, attribute)| format!("{field} = \"{attribute}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                t,
                "[idp.provisioning]\ncreate_users = {}\nupdate_existing = {}\nlock_fields = {}\nfields = {{ {fields} }}\n",
                idp.create, idp.update, idp.lock
            );
            if let Some((migrate, map)) = idp.migrate {
                let _ = writeln!(
                    t,
                    "[idp.settings]\nmigrate_users = {migrate}\nmigrate_map = \"{}\"\n",
                    MIGRATE_MAPS[map]
                );
            }
        }
        t
    }

    fn facts(&self) -> Facts {
        let mut facts = Facts::default();
        for (id, p) in PLUGINS.iter().zip(&self.plugins) {
            if p.loaded {
                let protocol = if *id == "auth0" && self.auth0_speaks_oidc {
                    "oidc"
                } else {
                    id
                };
                facts = facts.with_plugin(id, protocol, p.logout);
            }
        }
        for (i, idp) in self.idps.iter().enumerate() {
            if idp.proven {
                facts = facts.with_proven(&format!("i{i}"));
            }
        }
        facts
    }
}

/// How many generated cases exercised what, so that no property passes vacuously.
#[derive(Default)]
struct Seen {
    valid_configs: Cell<u32>,
    invalid_configs: Cell<u32>,
    error_free_domains: Cell<u32>,
    redirects: Cell<u32>,
    locked_out: Cell<u32>,
    resolver_diagnostics: Cell<u32>,
}

fn bump(cell: &Cell<u32>) {
    cell.set(cell.get() + 1);
}

fn check(g: &Gen, seen: &Seen) -> Result<(), TestCaseError> {
    let text = g.toml();
    let path = Path::new("generated.toml");
    let loaded = gatehouse_config::parse(path, &text)
        .map_err(|e| TestCaseError::fail(format!("generated TOML did not parse: {e}\n{text}")))?;
    let Some(config) = loaded.config else {
        // No configuration without a reason.
        prop_assert!(
            loaded.has_errors(),
            "config is None without an error\n{text}"
        );
        bump(&seen.invalid_configs);
        return Ok(());
    };
    bump(&seen.valid_configs);
    let facts = g.facts();

    // (a) resolving never panics (a panic fails the case) ...
    let resolved = resolve(&config, &facts);

    // ... and every resolver diagnostic is well-formed and about something that exists.
    for d in &resolved.diagnostics {
        bump(&seen.resolver_diagnostics);
        prop_assert!(
            d.help.as_deref().is_some_and(|h| !h.trim().is_empty()),
            "{d:?}"
        );
        prop_assert!(d.location.line > 0, "{d:?}\n{text}");
        let domain = d.domain.as_deref();
        prop_assert!(
            domain.is_some_and(|name| config.domain(name).is_some()),
            "{d:?}"
        );
        prop_assert!(
            d.idp.as_deref().is_none_or(|id| config.idp(id).is_some()),
            "{d:?}"
        );
    }

    // (d) deterministic: the same input gives the same findings and plans.
    let again = resolve(&config, &facts);
    prop_assert_eq!(&resolved.diagnostics, &again.diagnostics);
    prop_assert_eq!(
        format!("{:?}", resolved.resolution.domains()),
        format!("{:?}", again.resolution.domains())
    );

    prop_assert_eq!(resolved.resolution.domains().len(), g.domains.len());
    for domain in resolved.resolution.domains() {
        let has_errors = resolved
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error && d.domain.as_deref() == Some(&domain.name));
        let way_in = matches!(
            domain.entry,
            Entry::External { .. } | Entry::Redirect { .. }
        ) || domain.form_shown
            || !domain.buttons.is_empty();
        // (b) a domain without errors can always be signed in to.
        if !has_errors {
            bump(&seen.error_free_domains);
            prop_assert!(way_in, "no way in on `{}`\n{text}", domain.name);
        }
        if !way_in {
            bump(&seen.locked_out);
        }
        // Found by its host as the config crate finds it, with any port and case.
        for host in &domain.hosts {
            for asked in [
                host.clone(),
                format!("{host}:8080"),
                host.to_ascii_uppercase(),
            ] {
                prop_assert_eq!(
                    resolved
                        .resolution
                        .domain_for_host(&asked)
                        .map(|d| d.name.as_str()),
                    Some(domain.name.as_str()),
                    "{}",
                    asked
                );
                prop_assert_eq!(
                    config.domain_for_host(&asked).map(|d| d.name.as_str()),
                    Some(domain.name.as_str())
                );
            }
        }

        // (c) deciding never panics, with or without ?nosso=1 or a tripped loop breaker.
        let tripped = domain.redirect_idp().map(|idp| Mark {
            idp: idp.id.clone(),
            count: LIMIT,
            since: 0,
        });
        if tripped.is_some() {
            bump(&seen.redirects);
        }
        for nosso in [false, true] {
            for mark in [None, tripped.as_ref()] {
                let (decision, _) = decide(
                    domain,
                    Request {
                        nosso,
                        recent_redirects: mark,
                        now: 1,
                    },
                );
                if nosso && !matches!(decision, Decision::External { .. }) {
                    prop_assert!(
                        matches!(decision, Decision::Page { form: true, .. }),
                        "?nosso=1 shows the form: {decision:?}"
                    );
                }
            }
        }
        prop_assert!(explain(&resolved, &domain.name).is_some());
    }

    // (a) again, on what the config crate would have refused: dangling domains, plugins and
    // fields, and a domain declared twice with the same hosts. Resolving must not panic.
    let mut broken = config.clone();
    for (i, idp) in broken.idps.iter_mut().enumerate() {
        if i % 2 == 1 {
            idp.domain = String::from("nowhere");
            idp.plugin = String::from("ghost");
        }
        for mapping in &mut idp.provisioning.fields {
            mapping.field = format!("undeclared_{}", mapping.field);
        }
    }
    if let Some(first) = broken.domains.first().cloned() {
        broken.domains.push(first);
    }
    let resolved = resolve(&broken, &facts);
    for domain in resolved.resolution.domains() {
        let _ = decide(domain, Request::default());
        let _ = explain(&resolved, &domain.name);
    }
    Ok(())
}

#[test]
fn generated_configurations_resolve_sanely() {
    // PROPTEST_CASES=5000 for a deeper run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let seen = Seen::default();
    let result = runner.run(&configurations(), |g| check(&g, &seen));
    if let Err(e) = result {
        panic!("{e}");
    }
    let stats = format!(
        "valid {}, invalid {}, error-free domains {}, redirects {}, domains without a way in {}, resolver diagnostics {}",
        seen.valid_configs.get(),
        seen.invalid_configs.get(),
        seen.error_free_domains.get(),
        seen.redirects.get(),
        seen.locked_out.get(),
        seen.resolver_diagnostics.get()
    );
    println!("{stats}");
    // The generator must reach both sides of every property, or they pass vacuously.
    assert!(seen.valid_configs.get() >= cases / 4, "{stats}");
    assert!(seen.invalid_configs.get() > 0, "{stats}");
    assert!(seen.error_free_domains.get() >= cases / 4, "{stats}");
    assert!(seen.redirects.get() > 0, "{stats}");
    assert!(seen.locked_out.get() > 0, "{stats}");
    assert!(seen.resolver_diagnostics.get() > 0, "{stats}");
}

/// The generator itself makes the configurations it claims: one hand-picked value.
#[test]
fn the_generator_writes_what_it_is_given() {
    let g = Gen {
        require_names: false,
        fields: vec![FieldGen {
            mandatory: true,
            user_editable: false,
        }],
        plugins: (0..PLUGINS.len())
            .map(|_| PluginGen {
                enabled: true,
                loaded: true,
                logout: true,
            })
            .collect(),
        auth0_speaks_oidc: false,
        domains: vec![DomainGen {
            form_hidden: true,
            force_url: false,
            guest_access: false,
        }],
        idps: vec![IdpGen {
            domain: Some(0),
            plugin: Some(0),
            behaviour: 0,
            at_idp: false,
            redirect_confirmed: false,
            // `sub`: identifying by email would add `email-trust-unset`.
            username_attribute: 1,
            match_field: 0,
            create: true,
            update: false,
            lock: true,
            mapping: vec![(FieldPick::Additional(0), 4)],
            migrate: None,
            proven: false,
        }],
    };
    let loaded = gatehouse_config::parse(Path::new("g.toml"), &g.toml()).expect("TOML");
    let config = loaded.config.expect("valid");
    let resolved = resolve(&config, &g.facts());
    assert!(
        resolved.diagnostics.is_empty(),
        "{:#?}",
        resolved.diagnostics
    );
    let domain = resolved.resolution.domain("d0").expect("d0");
    assert!(!domain.form_shown);
    assert_eq!(domain.buttons.len(), 1);
    assert_eq!(
        domain.idp("i0").expect("i0").policy.mapping,
        vec![("f0".to_owned(), "dept".to_owned())]
    );
}

/// Cookie-shaped text: arbitrary strings, strings over the cookie's own alphabet, and
/// well-formed `idp.count.since` with extreme (signed, oversized) numbers.
fn cookie_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9_.+ -]{0,40}",
        (
            "[a-z0-9][a-z0-9_-]{0,8}",
            any::<i64>(),
            any::<i128>(),
            "0{0,3}"
        )
            .prop_map(|(idp, count, since, zeros)| format!("{idp}.{zeros}{count}.{since}")),
    ]
}

proptest! {
    #![proptest_config(RunnerConfig { cases: CASES, failure_persistence: None, ..RunnerConfig::default() })]

    /// No cookie and no clock reading makes the loop breaker panic or overflow, and what
    /// it accepts is what it writes.
    #[test]
    fn the_loop_breaker_never_panics(
        text in cookie_text(),
        now in any::<i64>(),
        idp in "[a-z0-9][a-z0-9_-]{0,8}",
        forged_count in any::<u32>(),
        forged_since in any::<i64>(),
    ) {
        let parsed = Mark::parse(&text);
        if let Some(mark) = &parsed {
            prop_assert!(mark.since >= 0, "{text:?} gave {mark:?}");
            let again = Mark::parse(&mark.encode());
            prop_assert_eq!(again.as_ref(), Some(mark));
        }
        // Marks that parse, and marks no cookie could produce (the type is public).
        let forged = Mark { idp: idp.clone(), count: forged_count, since: forged_since };
        let marks = [parsed.as_ref(), Some(&forged), None];
        for mark in marks {
            let tripped = gatehouse_resolver::loop_breaker::tripped(mark, &idp, now);
            let next = gatehouse_resolver::loop_breaker::record(mark, &idp, now);
            prop_assert!(next.count >= 1);
            prop_assert_eq!(&next.idp, &idp);
            if tripped {
                prop_assert!(next.count >= LIMIT);
            }
        }
    }
}
