//! Login decisions: `decide` for every combination of the precedence rules (force URL ×
//! `?nosso=1` × automatic redirect × form shown/hidden × buttons), the redirect-loop breaker,
//! and `Resolution::domain_for_host`.

use std::path::Path;

use gatehouse_config::codes;
use gatehouse_resolver::{
    Decision, Facts, Resolved, Rule, decide,
    decision::Request,
    loop_breaker::{self, Mark},
    resolve,
};

const PORTAL: &str = "https://portal.example.test/login";

/// One domain's login settings, as the combinations vary them.
#[derive(Debug, Clone, Copy)]
struct Setup {
    force_url: bool,
    redirect: bool,
    form_shown: bool,
    buttons: bool,
}

impl Setup {
    /// `root` with the settings, plus a hidden IdP that must never show anywhere. The
    /// redirect IdP is `auto`; the buttons are `btn-a` and `btn-b`, in that order.
    fn toml(self) -> String {
        let mut text = String::from(
            "[[plugin]]\nid = \"oidc\"\nlibrary = \"gatehouse_oidc\"\n\n\
             [[plugin]]\nid = \"saml\"\nlibrary = \"gatehouse_saml\"\n\n\
             [[plugin]]\nid = \"google\"\nlibrary = \"gatehouse_google\"\n\n\
             [[plugin]]\nid = \"auth0\"\nlibrary = \"gatehouse_auth0\"\n\n",
        );
        text.push_str(&format!(
            "[[domain]]\nname = \"root\"\nhosts = [\"localhost\"]\nlogin_form = \"{}\"\nforce_external_sso_url = \"{}\"\n\n",
            if self.form_shown { "shown" } else { "hidden" },
            if self.force_url { PORTAL } else { "" },
        ));
        text.push_str(
            "[[idp]]\nid = \"quiet\"\ndomain = \"root\"\nplugin = \"google\"\nbehaviour = \"hidden\"\nusername_attribute = \"email\"\n\n",
        );
        if self.redirect {
            text.push_str(
                "[[idp]]\nid = \"auto\"\ndomain = \"root\"\nplugin = \"oidc\"\nbehaviour = \"redirect\"\nusername_attribute = \"email\"\n\n",
            );
        }
        if self.buttons {
            text.push_str(
                "[[idp]]\nid = \"btn-a\"\nname = \"Sign in with A\"\ndomain = \"root\"\nplugin = \"saml\"\nbehaviour = \"button\"\nusername_attribute = \"upn\"\n\n\
                 [[idp]]\nid = \"btn-b\"\ndomain = \"root\"\nplugin = \"auth0\"\nusername_attribute = \"email\"\n\n",
            );
        }
        text
    }

    fn resolved(self) -> Resolved {
        resolved_from(&self.toml(), &[])
    }
}

/// Parses a configuration that must be valid, and resolves it with every plugin loaded under
/// its own id as protocol and `proven` IdPs.
fn resolved_from(text: &str, proven: &[&str]) -> Resolved {
    let loaded = gatehouse_config::parse(Path::new("decisions.toml"), text).expect("valid TOML");
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("config errors: {:#?}\n{text}", loaded.diagnostics));
    let mut facts = Facts::default();
    for plugin in &config.plugins {
        facts = facts.with_plugin(&plugin.id, &plugin.id, true);
    }
    for idp in proven {
        facts = facts.with_proven(idp);
    }
    resolve(&config, &facts)
}

/// A decision with owned data, to compare against.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    External(String),
    Redirect(String),
    Page {
        form: bool,
        buttons: Vec<(String, String)>,
        loop_broken: Option<String>,
    },
}

fn seen(decision: &Decision<'_>) -> Seen {
    match decision {
        Decision::External { url } => Seen::External((*url).to_owned()),
        Decision::Redirect { idp } => Seen::Redirect(idp.id.clone()),
        Decision::Page {
            form,
            buttons,
            loop_broken,
        } => Seen::Page {
            form: *form,
            buttons: buttons
                .iter()
                .map(|b| (b.idp_id.clone(), b.label.clone()))
                .collect(),
            loop_broken: loop_broken.map(|idp| idp.id.clone()),
        },
    }
}

fn page(form: bool, with_buttons: bool) -> Seen {
    Seen::Page {
        form,
        buttons: if with_buttons {
            vec![
                ("btn-a".to_owned(), "Sign in with A".to_owned()),
                ("btn-b".to_owned(), "btn-b".to_owned()),
            ]
        } else {
            Vec::new()
        },
        loop_broken: None,
    }
}

/// BRIEF.md's precedence, written out independently of the resolver.
fn expected(setup: Setup, nosso: bool) -> (Seen, Rule) {
    if setup.force_url {
        (Seen::External(PORTAL.to_owned()), Rule::ForceExternalUrl)
    } else if nosso {
        (page(true, setup.buttons), Rule::NoSso)
    } else if setup.redirect {
        (Seen::Redirect("auto".to_owned()), Rule::AutomaticRedirect)
    } else {
        (page(setup.form_shown, setup.buttons), Rule::LoginPage)
    }
}

#[test]
fn every_combination_of_the_precedence_rules() {
    let mut checked = 0;
    for force_url in [false, true] {
        for redirect in [false, true] {
            for form_shown in [false, true] {
                for buttons in [false, true] {
                    let setup = Setup {
                        force_url,
                        redirect,
                        form_shown,
                        buttons,
                    };
                    let resolved = setup.resolved();
                    let domain = resolved.resolution.domain("root").expect("root is planned");
                    for nosso in [false, true] {
                        let (decision, rule) = decide(
                            domain,
                            Request {
                                nosso,
                                recent_redirects: None,
                                now: 1_700_000_000,
                            },
                        );
                        assert_eq!(
                            (seen(&decision), rule),
                            expected(setup, nosso),
                            "{setup:?}, nosso = {nosso}"
                        );
                        checked += 1;
                    }
                    // The lockout check agrees with the plan: it fires exactly when no
                    // request without ?nosso=1 has a way in.
                    let locked_out = !force_url && !redirect && !form_shown && !buttons;
                    let codes: Vec<&str> = resolved.diagnostics.iter().map(|d| d.code).collect();
                    assert_eq!(
                        codes.contains(&codes::LOCKOUT),
                        locked_out,
                        "{setup:?}: {codes:?}"
                    );
                    // The redirect IdP is unproven and unconfirmed; the force URL shadows it
                    // and the buttons.
                    assert_eq!(
                        codes.contains(&codes::UNTESTED_REDIRECT),
                        redirect,
                        "{setup:?}"
                    );
                    assert_eq!(
                        codes.contains(&codes::EXTERNAL_URL_SHADOWS),
                        force_url && (redirect || buttons),
                        "{setup:?}: {codes:?}"
                    );
                }
            }
        }
    }
    assert_eq!(checked, 32);
}

#[test]
fn hidden_idps_are_planned_but_never_shown() {
    let resolved = Setup {
        force_url: false,
        redirect: false,
        form_shown: true,
        buttons: true,
    }
    .resolved();
    let domain = resolved.resolution.domain("root").expect("root");
    assert!(
        domain.idp("quiet").is_some(),
        "hidden IdPs can still be tested"
    );
    assert!(domain.buttons.iter().all(|b| b.idp_id != "quiet"));
    assert_eq!(domain.redirect_idp(), None);
}

/// The redirect IdP `auto` on `root` (form hidden, one button); `form` and `forced` vary.
fn redirecting(form_shown: bool, force_url: bool) -> Resolved {
    Setup {
        force_url,
        redirect: true,
        form_shown,
        buttons: true,
    }
    .resolved()
}

fn at(now: i64, nosso: bool, mark: Option<&Mark>) -> Request<'_> {
    Request {
        nosso,
        recent_redirects: mark,
        now,
    }
}

#[test]
fn three_redirects_a_minute_pass_and_the_fourth_shows_the_page_with_the_form() {
    let resolved = redirecting(false, false);
    let domain = resolved.resolution.domain("root").expect("root");
    let start = 1_000;
    let mut mark = None;
    for n in 0..loop_breaker::LIMIT {
        let now = start + 10 * i64::from(n);
        let (decision, rule) = decide(domain, at(now, false, mark.as_ref()));
        assert_eq!(
            seen(&decision),
            Seen::Redirect("auto".into()),
            "redirect {n}"
        );
        assert_eq!(rule, Rule::AutomaticRedirect);
        mark = Some(loop_breaker::record(mark.as_ref(), "auto", now));
    }
    let mark = mark.expect("three redirects recorded");
    assert_eq!(mark.count, 3);

    // The fourth within the minute: the login page, with the form although it is hidden.
    let (decision, rule) = decide(domain, at(start + 30, false, Some(&mark)));
    assert_eq!(rule, Rule::LoopBroken);
    let Decision::Page {
        form,
        buttons,
        loop_broken,
    } = decision
    else {
        panic!("expected the login page, got {decision:?}");
    };
    assert!(form, "a stuck person gets the form");
    assert_eq!(loop_broken.map(|idp| idp.id.as_str()), Some("auto"));
    assert_eq!(buttons.len(), 2);
    // Still broken on the last second of the window, redirecting again after it.
    let last = start + loop_breaker::WINDOW_SECONDS - 1;
    assert_eq!(
        decide(domain, at(last, false, Some(&mark))).1,
        Rule::LoopBroken
    );
    let after = start + loop_breaker::WINDOW_SECONDS;
    let (decision, rule) = decide(domain, at(after, false, Some(&mark)));
    assert_eq!(
        (seen(&decision), rule),
        (Seen::Redirect("auto".into()), Rule::AutomaticRedirect)
    );
    // The cookie form of the same mark trips the same way.
    let cookie = Mark::parse(&mark.encode()).expect("round trip");
    assert_eq!(
        decide(domain, at(start + 30, false, Some(&cookie))).1,
        Rule::LoopBroken
    );
}

#[test]
fn another_idps_mark_does_not_trip_the_breaker() {
    let resolved = redirecting(true, false);
    let domain = resolved.resolution.domain("root").expect("root");
    let other = Mark {
        idp: "btn-a".into(),
        count: 10,
        since: 1_000,
    };
    let (decision, rule) = decide(domain, at(1_010, false, Some(&other)));
    assert_eq!(
        (seen(&decision), rule),
        (Seen::Redirect("auto".into()), Rule::AutomaticRedirect)
    );
}

#[test]
fn earlier_rules_win_over_a_tripped_breaker() {
    let tripped = Mark {
        idp: "auto".into(),
        count: loop_breaker::LIMIT,
        since: 1_000,
    };
    // ?nosso=1 shows the plain form page, not a loop-broken one.
    let resolved = redirecting(false, false);
    let domain = resolved.resolution.domain("root").expect("root");
    let (decision, rule) = decide(domain, at(1_010, true, Some(&tripped)));
    assert_eq!((seen(&decision), rule), (page(true, true), Rule::NoSso));
    // The force URL still sends everyone away.
    let resolved = redirecting(false, true);
    let domain = resolved.resolution.domain("root").expect("root");
    let (decision, rule) = decide(domain, at(1_010, false, Some(&tripped)));
    assert_eq!(
        (seen(&decision), rule),
        (Seen::External(PORTAL.into()), Rule::ForceExternalUrl)
    );
    // A page without a redirect is unaffected by a mark.
    let resolved = Setup {
        force_url: false,
        redirect: false,
        form_shown: false,
        buttons: true,
    }
    .resolved();
    let domain = resolved.resolution.domain("root").expect("root");
    let (decision, rule) = decide(domain, at(1_010, false, Some(&tripped)));
    assert_eq!(
        (seen(&decision), rule),
        (page(false, true), Rule::LoginPage)
    );
}

#[test]
fn an_idp_whose_plugin_did_not_load_is_never_the_redirect_or_a_button() {
    let text = Setup {
        force_url: false,
        redirect: true,
        form_shown: true,
        buttons: true,
    }
    .toml();
    let loaded = gatehouse_config::parse(Path::new("decisions.toml"), &text).expect("valid TOML");
    let config = loaded.config.expect("valid");
    // Only saml (btn-a) and google (quiet) loaded.
    let facts = Facts::default()
        .with_plugin("saml", "saml", true)
        .with_plugin("google", "google", true);
    let resolved = resolve(&config, &facts);
    let domain = resolved.resolution.domain("root").expect("root");
    assert_eq!(domain.redirect_idp(), None);
    let (decision, rule) = decide(domain, Request::default());
    assert_eq!(rule, Rule::LoginPage);
    assert_eq!(
        seen(&decision),
        Seen::Page {
            form: true,
            buttons: vec![("btn-a".into(), "Sign in with A".into())],
            loop_broken: None
        }
    );
}

#[test]
fn a_proven_redirect_resolves_without_errors() {
    let text = Setup {
        force_url: false,
        redirect: true,
        form_shown: false,
        buttons: false,
    }
    .toml();
    let resolved = resolved_from(&text, &["auto"]);
    assert!(!resolved.has_errors(), "{:#?}", resolved.diagnostics);
    let domain = resolved.resolution.domain("root").expect("root");
    assert_eq!(domain.redirect_idp().map(|i| i.id.as_str()), Some("auto"));
}

#[test]
fn domains_are_found_by_host_header() {
    let text = "[[domain]]\nname = \"root\"\nhosts = [\"localhost\", \"127.0.0.1\", \"::1\"]\n\n\
                [[domain]]\nname = \"acme\"\nhosts = [\"Acme.Example.test\", \"learn.acme.test\"]\n";
    let resolved = resolved_from(text, &[]);
    let found = |host: &str| {
        resolved
            .resolution
            .domain_for_host(host)
            .map(|d| d.name.as_str())
    };
    assert_eq!(found("localhost"), Some("root"));
    assert_eq!(found("LOCALHOST"), Some("root"));
    assert_eq!(found("localhost:8080"), Some("root"));
    assert_eq!(found("127.0.0.1:8080"), Some("root"));
    assert_eq!(found("[::1]:8080"), Some("root"));
    assert_eq!(
        found("acme.example.test"),
        Some("acme"),
        "hosts are lower-cased"
    );
    assert_eq!(found("ACME.example.TEST"), Some("acme"));
    assert_eq!(found("Acme.Example.Test:8443"), Some("acme"));
    assert_eq!(found("learn.acme.test"), Some("acme"));
    assert_eq!(found("unknown.test"), None);
    assert_eq!(found("unknown.test:8080"), None);
    assert_eq!(found("acme.example.test.evil.test"), None);
    assert_eq!(found("example.test"), None);
    assert_eq!(found(""), None);
}

#[test]
fn hosts_written_with_a_port_or_in_brackets_are_found_as_the_config_crate_finds_them() {
    let text = "[[domain]]\nname = \"root\"\nhosts = [\"localhost\", \"[::1]\"]\n\n\
                [[domain]]\nname = \"alt\"\nhosts = [\"sso.example.test:8443\"]\n";
    let loaded = gatehouse_config::parse(Path::new("hosts.toml"), text).expect("TOML");
    let config = loaded.config.expect("valid");
    let resolved = resolve(&config, &Facts::default());
    for host in [
        "[::1]",
        "[::1]:8080",
        "sso.example.test:8443",
        "SSO.Example.Test:8443",
        "sso.example.test:9000",
        "sso.example.test",
        "localhost:8443",
    ] {
        assert_eq!(
            resolved
                .resolution
                .domain_for_host(host)
                .map(|d| d.name.as_str()),
            config.domain_for_host(host).map(|d| d.name.as_str()),
            "{host}"
        );
    }
    // And what that is, spelt out.
    let found = |host| {
        resolved
            .resolution
            .domain_for_host(host)
            .map(|d| d.name.clone())
    };
    assert_eq!(found("[::1]:8080").as_deref(), Some("root"));
    assert_eq!(found("sso.example.test:8443").as_deref(), Some("alt"));
    assert_eq!(
        found("sso.example.test:9000"),
        None,
        "another port is another site"
    );
}
