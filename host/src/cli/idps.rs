//! `gatehouse idps`: every configured IdP with its domain, plugin, behaviour, status, last
//! successful sign-in and the URLs to register at the provider. The listing is
//! `gatehouse::idp_report`'s; this module reads the configuration and the history and
//! chooses the exit status.

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use gatehouse::{
    clock::Clock,
    config::Config,
    idp_report::{self, Found},
    store::Store,
};

use super::{
    Format,
    load::{check_all, database_exists, read_config, usable},
};

pub(crate) fn idps(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
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
    let history = last_successes(&config)?;
    let found = Found {
        site: &prepared.site,
        load: &prepared.load,
        diagnostics: &diagnostics,
    };
    let reports = idp_report::report(&config, found, &history);
    match format {
        Format::Json => println!("{}", idp_report::to_json(&reports)),
        Format::Human if reports.is_empty() => println!("no IdP is configured"),
        Format::Human => print!(
            "{}",
            idp_report::to_human(&reports, Clock::system().now_unix_seconds())
        ),
    }
    Ok(if reports.iter().all(|r| r.usable()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Each configured IdP's last recorded successful sign-in, from a database that exists
/// (opening a missing SQLite file would create it).
fn last_successes(config: &Config) -> anyhow::Result<HashMap<String, i64>> {
    if !database_exists(config) || config.idps.is_empty() {
        return Ok(HashMap::new());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(config.host.database.expose())
            .await
            .context("opening the database to read the sign-in history")?;
        let mut found = HashMap::new();
        let mut failed = None;
        for idp in &config.idps {
            match store.idp_last_success(&idp.id).await {
                Ok(Some(at)) => {
                    found.insert(idp.id.clone(), at);
                }
                Ok(None) => {}
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        store.close().await;
        match failed {
            Some(error) => Err(error).context("reading the sign-in history"),
            None => Ok(found),
        }
    })
}
