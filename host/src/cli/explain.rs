//! `gatehouse explain --domain NAME`: what a domain's login page does, and why; its IdPs
//! that are not served, with the reason; and the URLs to register at each IdP, per host.

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use gatehouse::idp_report::{self, Found};

use super::load::{check_all, read_config, usable};

pub(crate) fn explain(path: Option<PathBuf>, domain: &str) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = usable(&loaded) else {
        return Ok(ExitCode::FAILURE);
    };
    let (diagnostics, _, prepared) = check_all(loaded)?;
    let Some(prepared) = prepared else {
        return Ok(ExitCode::FAILURE);
    };
    // Every IdP of the domain, served or not, with the URLs to register for each host; no
    // history is read (explain says nothing about sign-ins).
    let found = Found {
        site: &prepared.site,
        load: &prepared.load,
        diagnostics: &diagnostics,
    };
    let reports: Vec<_> = idp_report::report(&config, found, &HashMap::new())
        .into_iter()
        .filter(|report| report.domain == domain)
        .collect();
    let resolved = gatehouse::resolver::Resolved {
        resolution: prepared.site.resolution().clone(),
        diagnostics,
    };
    match gatehouse::resolver::explain::explain(&resolved, domain) {
        Some(text) => {
            print!("{text}{}", idp_report::explain_section(&reports));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let names: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
            eprintln!(
                "error: no domain is named `{domain}`; the domains are: {}",
                names.join(", ")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
