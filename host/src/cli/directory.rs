//! `gatehouse directory import|export`: the directory file.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::Subcommand;
use gatehouse::{
    clock::{Clock, Randomness},
    directory,
    store::Store,
};

use super::{ConfigArg, help, load::usable_config};

/// `gatehouse directory …`: the directory file (JSON, see docs/directory.md).
#[derive(Subcommand)]
pub(crate) enum DirectoryCommand {
    /// Load users, custom profile field values and audiences from a JSON file, in one
    /// transaction: a refused record (named by index and key) leaves nothing written, and
    /// importing the same file twice changes nothing.
    #[command(after_long_help = help::DIRECTORY_IMPORT)]
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The directory file.
        file: PathBuf,
    },
    /// Print the whole directory as JSON in the import format.
    #[command(after_long_help = help::DIRECTORY_EXPORT)]
    Export {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `gatehouse directory import FILE`: the file's records in one transaction, or nothing.
pub(crate) fn import_directory(path: Option<PathBuf>, file: &Path) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let contents =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = match directory::parse_file(&contents) {
        Ok(parsed) => parsed,
        Err(refused) => {
            eprintln!("error: {refused}\nnothing was imported");
            return Ok(ExitCode::FAILURE);
        }
    };
    let known_fields = config.fields.iter().map(|f| f.name.clone()).collect();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(config.host.database.expose())
            .await
            .context("opening the database")?;
        let now = Clock::system().now_unix_seconds();
        let outcome =
            directory::import(&store, parsed, &known_fields, &Randomness::system(), now).await;
        store.close().await;
        match outcome {
            Ok(summary) => {
                eprintln!(
                    "imported {}: {}",
                    file.display(),
                    directory::summary_line(&summary)
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(directory::ImportError::File(refused)) => {
                eprintln!("error: {refused}\nnothing was imported");
                Ok(ExitCode::FAILURE)
            }
            Err(other) => Err(anyhow::Error::new(other).context("nothing was imported")),
        }
    })
}

/// `gatehouse directory export`: the directory as JSON on standard output.
pub(crate) fn export_directory(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(config.host.database.expose())
            .await
            .context("opening the database")?;
        let snapshot = store.directory_snapshot().await?;
        store.close().await;
        let text = serde_json::to_string_pretty(&directory::export_json(&snapshot))?;
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a `gatehouse directory …` command.
pub(crate) fn run(command: DirectoryCommand) -> anyhow::Result<ExitCode> {
    match command {
        DirectoryCommand::Import { config, file } => import_directory(config.config, &file),
        DirectoryCommand::Export { config } => export_directory(config.config),
    }
}
