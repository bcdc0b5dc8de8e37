//! Reloading `plugins.toml` without downtime (SIGHUP and `POST /admin/reload`): the file is
//! read, its plugins loaded, its instances built and its rules checked off the async
//! workers; a configuration with errors is refused and the running one keeps serving, a
//! good one replaces it at once for every request that starts afterwards.
//!
//! `[host]` (listen address, database, cookie and throttle settings) is read at start only;
//! a reload applies domains, plugins, fields and IdPs.

use gatehouse_config::{Diagnostic, Severity, codes};

use crate::{events, startup, state::AppState};

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// The new configuration is serving; these are its warnings.
    Applied { warnings: Vec<Diagnostic> },
    /// The old configuration keeps serving; these are the new one's problems.
    Refused { diagnostics: Vec<Diagnostic> },
}

impl Outcome {
    pub fn applied(&self) -> bool {
        matches!(self, Self::Applied { .. })
    }
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Applied { warnings } => warnings,
            Self::Refused { diagnostics } => diagnostics,
        }
    }
}

/// Why a reload could not even be judged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the sign-in history: {0}")]
    Store(#[from] gatehouse_store::StoreError),
    #[error("the reload task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Re-reads the configuration file and swaps it in if it has no errors.
pub async fn reload(state: &AppState) -> Result<Outcome, ReloadError> {
    let _one_at_a_time = state.reload_guard().await;
    let path = state.config_path().to_owned();
    let proven = startup::proven_idps(state.store()).await?;
    // Reading the file, loading libraries and building instances all block.
    let outcome = tokio::task::spawn_blocking(move || {
        let loaded = match gatehouse_config::load(&path) {
            Ok(loaded) => loaded,
            Err(error) => {
                return Err(vec![
                    Diagnostic::error(
                        codes::READ_ERROR,
                        error.to_string(),
                        &path,
                        Default::default(),
                    )
                    .with_help(
                        "fix the file and reload again; the running configuration is unchanged",
                    ),
                ]);
            }
        };
        let Some(config) = loaded.config else {
            return Err(loaded.diagnostics);
        };
        let mut prepared = startup::prepare(&config, &proven);
        let mut diagnostics = loaded.diagnostics;
        diagnostics.append(&mut prepared.diagnostics);
        if diagnostics.iter().any(|d| d.severity == Severity::Error) {
            Err(diagnostics)
        } else {
            Ok((prepared.site, diagnostics))
        }
    })
    .await?;
    Ok(match outcome {
        Ok((site, warnings)) => {
            state.replace_site(site);
            events::config_reloaded(state.metrics(), warnings.len());
            Outcome::Applied { warnings }
        }
        Err(diagnostics) => {
            events::config_reload_refused(
                state.metrics(),
                diagnostics.iter().filter(|d| d.is_error()).count(),
            );
            Outcome::Refused { diagnostics }
        }
    })
}
