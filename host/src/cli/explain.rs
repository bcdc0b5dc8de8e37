//! `gatehouse explain --domain NAME`: what a domain's login page does, and why.

use std::{path::PathBuf, process::ExitCode};

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
    let resolved = gatehouse::resolver::Resolved {
        resolution: prepared.site.resolution().clone(),
        diagnostics,
    };
    match gatehouse::resolver::explain::explain(&resolved, domain) {
        Some(text) => {
            print!("{text}");
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
