//! Reading the configuration for a command (the file named by `--config` or
//! `GATEHOUSE_CONFIG`, else `plugins.toml`, else the embedded defaults), checking it, and the
//! state one-off commands call plugins with. Not any command's output.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use gatehouse::{
    clock::{Clock, Randomness},
    config::{self, Config, Diagnostic, LoadError},
    startup,
    store::Store,
};

use super::Format;

/// The environment variable that names the configuration file.
pub(crate) const CONFIG_ENV: &str = "GATEHOUSE_CONFIG";
/// The file read when nothing names one, relative to the working directory.
pub(crate) const DEFAULT_CONFIG: &str = "plugins.toml";

/// Where the configuration comes from.
pub(crate) enum ConfigSource {
    /// A file named by `--config` or [`CONFIG_ENV`] (`by` says which): it must exist, since
    /// serving anything else than what the operator named (above all the development
    /// defaults, which sign anyone in) would be worse than not starting.
    Named { path: PathBuf, by: &'static str },
    /// Nothing named a file: [`DEFAULT_CONFIG`] if it exists, else the embedded defaults.
    Default,
}

impl ConfigSource {
    fn choose(flag: Option<PathBuf>) -> Self {
        match (flag, std::env::var_os(CONFIG_ENV)) {
            (Some(path), _) => Self::Named {
                path,
                by: "--config",
            },
            (None, Some(path)) => Self::Named {
                path: path.into(),
                by: CONFIG_ENV,
            },
            (None, None) => Self::Default,
        }
    }
}

/// A configuration that was read, and whether it is the embedded development defaults.
pub(crate) struct Read {
    pub(crate) loaded: config::Loaded,
    pub(crate) embedded: bool,
}

impl Read {
    fn file(loaded: config::Loaded) -> Self {
        Self {
            loaded,
            embedded: false,
        }
    }

    fn embedded(loaded: config::Loaded) -> Self {
        Self {
            loaded,
            embedded: true,
        }
    }
}

/// Reads the configuration. A named file must exist; only the default path falls back to
/// the embedded defaults, so that a fresh checkout runs.
///
/// A file that cannot be read or parsed is reported here and becomes exit status 2.
pub(crate) fn read_config(flag: Option<PathBuf>) -> Result<Read, ExitCode> {
    read_config_as(flag, Format::Human)
}

/// [`read_config`] for a command with `--format`: in JSON, a file that cannot be read or
/// parsed is also one diagnostic on standard output (`read-error` / `syntax-error`), so a
/// script reading the output gets the object it expects whatever the exit status.
pub(crate) fn read_config_as(flag: Option<PathBuf>, format: Format) -> Result<Read, ExitCode> {
    let unusable = |error: LoadError, by: Option<&str>| {
        match by {
            Some(by) => eprintln!("error: {error} (the file named by {by})"),
            None => eprintln!("error: {error}"),
        }
        if format == Format::Json {
            print_diagnostics(&[error.to_diagnostic()], "", Format::Json);
        }
        ExitCode::from(2)
    };
    match ConfigSource::choose(flag) {
        ConfigSource::Named { path, by } => config::load(&path)
            .map(Read::file)
            .map_err(|error| unusable(error, Some(by))),
        ConfigSource::Default => {
            let path = Path::new(DEFAULT_CONFIG);
            // Only a file that is certainly absent falls back; one that exists but cannot
            // be inspected or read is an error like any other.
            if matches!(path.try_exists(), Ok(false)) {
                eprintln!(
                    "note: {DEFAULT_CONFIG} not found in the working directory and neither --config nor {CONFIG_ENV} names a file; using the embedded development defaults (dev_mode, the example IdP)"
                );
                config::parse_embedded_default()
                    .map(Read::embedded)
                    .map_err(|error| unusable(error, None))
            } else {
                config::load(path)
                    .map(Read::file)
                    .map_err(|error| unusable(error, None))
            }
        }
    }
}

/// The configuration, or the exit status that says why there is none (2 unreadable, 1
/// errors in it; both already printed).
pub(crate) fn usable_config(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    let loaded = read_config(path)?.loaded;
    usable(&loaded).ok_or(ExitCode::FAILURE)
}

/// The configuration, or `None` after printing why it has none (errors in the file).
pub(crate) fn usable(loaded: &config::Loaded) -> Option<Config> {
    let config = loaded.config.clone();
    if config.is_none() {
        print_diagnostics(&loaded.diagnostics, &loaded.source, Format::Human);
        eprintln!("error: the configuration has errors; fix them first (`gatehouse check`)");
    }
    config
}

pub(crate) fn print_diagnostics(diagnostics: &[Diagnostic], source: &str, format: Format) {
    match format {
        Format::Human => eprint!("{}", config::render_human(diagnostics, source)),
        Format::Json => println!("{}", config::render_json(diagnostics)),
    }
}

/// False for a SQLite database whose file does not exist yet (or an in-memory one): it
/// holds nothing, and opening it would create it.
pub(crate) fn database_exists(config: &Config) -> bool {
    let url = config.host.database.expose();
    match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(path) => {
            let file = path.split('?').next().unwrap_or(path);
            !(file.is_empty() || file == ":memory:" || !Path::new(file).exists())
        }
        None => true,
    }
}

/// The IdPs with a recorded successful sign-in in the configured database, without creating
/// or migrating anything: a database that does not exist yet has no history.
pub(crate) fn recorded_history(config: &Config) -> anyhow::Result<HashSet<String>> {
    let url = config.host.database.expose();
    if !database_exists(config) {
        return Ok(HashSet::new());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(url)
            .await
            .context("opening the database to read the sign-in history")?;
        let proven = startup::proven_idps(&store).await?;
        store.close().await;
        Ok(proven)
    })
}

/// Parses, loads the plugins and runs every check: the diagnostics and the prepared site.
pub(crate) fn check_all(
    loaded: config::Loaded,
) -> anyhow::Result<(Vec<Diagnostic>, String, Option<startup::Prepared>)> {
    let mut diagnostics = loaded.diagnostics;
    let Some(config) = &loaded.config else {
        return Ok((diagnostics, loaded.source, None));
    };
    let proven = recorded_history(config)?;
    let mut prepared = startup::prepare(config, &proven);
    diagnostics.append(&mut prepared.diagnostics);
    Ok((diagnostics, config.source.clone(), Some(prepared)))
}

/// The configuration and its site, ready to serve, or the exit status after printing why not
/// (the same checks as `serve`).
pub(crate) fn servable_site(
    path: Option<PathBuf>,
) -> Result<(Config, gatehouse::site::Site), ExitCode> {
    let config = usable_config(path)?;
    let proven = recorded_history(&config).map_err(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })?;
    match startup::prepare(&config, &proven).into_servable() {
        Ok((site, _warnings)) => Ok((config, site)),
        Err(problems) => {
            print_diagnostics(&problems.diagnostics, &config.source, Format::Human);
            eprintln!(
                "error: {} problem(s) in the configuration; fix them first (`gatehouse check`)",
                problems.error_count()
            );
            Err(ExitCode::FAILURE)
        }
    }
}

/// The state a one-off command calls plugins with (the database opened, the real clock and
/// randomness); the caller closes the store when done.
pub(crate) async fn command_state(
    config: &Config,
    site: gatehouse::site::Site,
) -> anyhow::Result<(Store, gatehouse::state::AppState)> {
    let store = Store::connect(config.host.database.expose())
        .await
        .context("opening the database")?;
    let state = state_on(config, site, &store)?;
    Ok((store, state))
}

/// The state a one-off command calls plugins with, on `store`, with the real clock and
/// randomness.
pub(crate) fn state_on(
    config: &Config,
    site: gatehouse::site::Site,
    store: &Store,
) -> anyhow::Result<gatehouse::state::AppState> {
    startup::state(
        config,
        site,
        store.clone(),
        Clock::system(),
        Randomness::system(),
    )
    .context("building the HTTP client for plugins")
}

/// Runs a one-off command's async work against [`command_state`] on a runtime of its own,
/// closing the store afterwards, whatever the work answered.
pub(crate) fn with_command_state<T>(
    config: &Config,
    site: gatehouse::site::Site,
    work: impl AsyncFnOnce(&gatehouse::state::AppState) -> T,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (store, state) = command_state(config, site).await?;
        let outcome = work(&state).await;
        store.close().await;
        Ok(outcome)
    })
}
