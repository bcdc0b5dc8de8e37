//! Benchmarks of the resolver: `check` (resolve) on a generated configuration of 10,000
//! domains with 5 IdPs each, and the per-request login decision (host lookup + decide).

use std::{hint::black_box, path::Path};

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_resolver::{Facts, decide, decision::Request, resolve};

const PROTOCOLS: [&str; 5] = ["oidc", "saml", "auth0", "google", "connect"];

fn generated(domains: usize) -> String {
    let mut text = String::from("[host]\ndev_mode = true\n\n");
    for p in PROTOCOLS {
        text.push_str(&format!(
            "[[plugin]]\nid = \"{p}\"\nlibrary = \"gatehouse_{p}\"\n\n"
        ));
    }
    text.push_str("[[field]]\nname = \"department\"\nmandatory = true\n\n");
    for d in 0..domains {
        text.push_str(&format!(
            "[[domain]]\nname = \"d{d}\"\nhosts = [\"d{d}.example.test\"]\n\n"
        ));
        // A realistic shape: one IdP provisions and locks, the others only sign people in;
        // every other domain redirects automatically to its first IdP.
        for (i, p) in PROTOCOLS.iter().enumerate() {
            let behaviour = if i == 0 && d % 2 == 0 {
                "redirect"
            } else {
                "button"
            };
            let provisioning = if i == 0 {
                "create_users = true\nupdate_existing = true\nlock_fields = true\n\
                 fields = { firstname = \"given_name\", lastname = \"family_name\", department = \"dept\" }"
            } else {
                "create_users = false"
            };
            text.push_str(&format!(
                "[[idp]]\nid = \"d{d}-{p}\"\ndomain = \"d{d}\"\nplugin = \"{p}\"\nbehaviour = \"{behaviour}\"\nusername_attribute = \"email\"\n\
                 [idp.provisioning]\n{provisioning}\n\n"
            ));
        }
    }
    text
}

fn facts(domains: usize) -> Facts {
    let mut facts = Facts::default();
    for p in PROTOCOLS {
        facts = facts.with_plugin(p, p, true);
    }
    // Most redirect IdPs have signed someone in; every tenth domain's has not.
    for d in (0..domains).filter(|d| d % 10 != 0) {
        facts = facts.with_proven(&format!("d{d}-oidc"));
    }
    facts
}

fn benches(c: &mut Criterion) {
    let domains = 10_000;
    let text = generated(domains);
    let loaded = gatehouse_config::parse(Path::new("generated.toml"), &text).expect("parses");
    let config = loaded.config.expect("a valid configuration");
    let facts = facts(domains);
    let resolved = resolve(&config, &facts);
    println!(
        "generated: {domains} domains, {} IdPs, {} bytes of TOML; resolve finds {} diagnostics",
        config.idps.len(),
        text.len(),
        resolved.diagnostics.len()
    );

    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.bench_function("parse + resolve, 10k domains x 5 IdPs", |b| {
        b.iter(|| {
            let loaded = gatehouse_config::parse(Path::new("generated.toml"), black_box(&text))
                .expect("parses");
            let config = loaded.config.expect("valid");
            black_box(resolve(&config, &facts).diagnostics.len())
        })
    });
    group.bench_function("resolve only, 10k domains x 5 IdPs", |b| {
        b.iter(|| black_box(resolve(black_box(&config), &facts).diagnostics.len()))
    });
    group.finish();

    let resolution = &resolved.resolution;
    c.bench_function("login decision (host lookup + decide)", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 7919) % domains;
            let host = format!("d{n}.example.test:8080");
            let domain = resolution
                .domain_for_host(black_box(&host))
                .expect("known host");
            black_box(decide(domain, Request::default()).1)
        })
    });
    c.bench_function("login decision, host string prepared", |b| {
        let hosts: Vec<String> = (0..1024)
            .map(|n| format!("d{}.example.test", n * 9 % domains))
            .collect();
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 1) & 1023;
            let domain = resolution
                .domain_for_host(black_box(&hosts[n]))
                .expect("known host");
            black_box(decide(domain, Request::default()).1)
        })
    });
}

criterion_group!(resolver, benches);
criterion_main!(resolver);
