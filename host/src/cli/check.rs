//! `gatehouse check`: every check without serving; with `--online`, also each IdP's
//! provider reached through its plugin (`gatehouse::online_check`).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use gatehouse::{
    config::{self, Config, Severity},
    online_check::{self, IdpOnline},
    site::Site,
    store::Store,
};

use super::{
    Format,
    load::{check_all, database_exists, print_diagnostics, read_config_as, state_on},
};

pub(crate) fn check(
    path: Option<PathBuf>,
    format: Format,
    online: bool,
) -> anyhow::Result<ExitCode> {
    let loaded = match read_config_as(path, format) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let config = loaded.config.clone();
    let (mut diagnostics, source, prepared) = check_all(loaded)?;
    let reached = match (online, config, prepared) {
        (true, Some(config), Some(prepared)) => Some(check_online(&config, prepared.site)?),
        (true, ..) => {
            if format == Format::Human {
                eprintln!("note: no online check: the file has errors; fix them first");
            }
            None
        }
        (false, ..) => None,
    };
    if let Some(reached) = &reached {
        diagnostics.extend(online_check::diagnostics(reached));
    }
    match (format, &reached) {
        (Format::Json, Some(reached)) => {
            // The offline report's object, with each IdP's online check beside it.
            let mut report: serde_json::Value =
                serde_json::from_str(&config::render_json(&diagnostics))
                    .context("rendering the diagnostics")?;
            report["online"] = serde_json::to_value(reached).context("rendering the report")?;
            println!("{report}");
        }
        _ => {
            if let Some(reached) = &reached {
                print_reached(reached);
            }
            if format == Format::Human && diagnostics.is_empty() {
                eprintln!("ok: no problems found");
            } else {
                // The rendering ends with the summary line ("2 errors, 1 warning") itself.
                print_diagnostics(&diagnostics, &source, format);
            }
        }
    }
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    Ok(if errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs every IdP's online check on a runtime of its own, with the plugins' stored state
/// (a Connect client's registration) from the configured database when it exists; otherwise
/// (or when it cannot be opened) an empty in-memory one, so no database is ever created.
fn check_online(config: &Config, site: Site) -> anyhow::Result<Vec<IdpOnline>> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let reached = runtime.block_on(async {
        let store = open_store(config).await?;
        let state = state_on(config, site, &store)?;
        let at_once = online_check::AT_ONCE.min(config.host.plugin_calls_max as usize);
        let reached =
            online_check::check(&state.site(), state.caller(), &config.path, at_once).await;
        store.close().await;
        Ok(reached)
    });
    // A check past its time limit may still be waiting on its HTTP request (up to
    // `http_timeout_seconds`); its answer is no longer wanted, so the command does not wait.
    runtime.shutdown_background();
    reached
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if database_exists(config) {
        match Store::connect(config.host.database.expose()).await {
            Ok(store) => return Ok(store),
            Err(error) => eprintln!(
                "note: the database could not be opened ({error}): the online check runs without the plugins' stored state"
            ),
        }
    }
    Store::connect("sqlite::memory:")
        .await
        .context("opening an in-memory store for the online check")
}

/// What each IdP's check reached, and its notes (the problems are diagnostics).
fn print_reached(reached: &[IdpOnline]) {
    for idp in reached {
        let who = format!("IdP `{}` (plugin `{}`)", idp.idp, idp.plugin);
        for checked in &idp.checked {
            eprintln!("ok: {who}: reached {checked}");
        }
        for note in &idp.notes {
            eprintln!("note: {who}: {note}");
        }
    }
}
