//! The `gatehouse` command: `serve`, `check`, `explain` and `plugins`. A thin edge over the
//! library; errors become messages and exit statuses here and nowhere else.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use gatehouse::{
    clock::{Clock, Randomness},
    config::{self, Config, Diagnostic, LoadError, Severity},
    logging,
    passwords::{self, AdminBootstrap},
    plugins::load_all,
    startup,
    store::Store,
    web,
};

/// Gatehouse: single sign-on for every domain of a learning platform.
#[derive(Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the plugins, check the configuration, and serve HTTP.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Load the plugins and run every check without serving.
    ///
    /// Exit status 0: no errors (warnings allowed); 1: at least one error; 2: the
    /// file could not be read or parsed.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// How to print the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Explain what the login page of a domain does, and which rule decided it.
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// The domain's `name` in plugins.toml (`root` for the root platform).
        #[arg(long, value_name = "NAME")]
        domain: String,
    },
    /// List each configured plugin library: id, protocol, version, ABI, and whether it loaded.
    Plugins {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Account administration.
    #[command(subcommand)]
    Users(UsersCommand),
}

/// `gatehouse users …`: account administration from the command line.
#[derive(Subcommand)]
enum UsersCommand {
    /// Link an existing account (a local or administrator's account, which SSO otherwise
    /// never signs into) to an IdP, so that signing in through that IdP reaches it.
    Link {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        /// The IdP's `id` in plugins.toml.
        #[arg(long, value_name = "ID")]
        idp: String,
    },
    /// Remove such a link.
    Unlink {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        #[arg(long, value_name = "ID")]
        idp: String,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The configuration file [default: $GATEHOUSE_CONFIG, else plugins.toml; a named file
    /// must exist, and only a missing plugins.toml falls back to the embedded defaults].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve { config } => serve(config.config),
        Command::Check { config, format } => check(config.config, format),
        Command::Explain { config, domain } => explain(config.config, &domain),
        Command::Plugins { config, format } => list_plugins(config.config, format),
        Command::Users(UsersCommand::Link {
            config,
            username,
            idp,
        }) => link_account(config.config, &username, &idp, true),
        Command::Users(UsersCommand::Unlink {
            config,
            username,
            idp,
        }) => link_account(config.config, &username, &idp, false),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The environment variable that names the configuration file.
const CONFIG_ENV: &str = "GATEHOUSE_CONFIG";
/// The file read when nothing names one, relative to the working directory.
const DEFAULT_CONFIG: &str = "plugins.toml";

/// Where the configuration comes from.
enum ConfigSource {
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
struct Read {
    loaded: config::Loaded,
    embedded: bool,
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
fn read_config(flag: Option<PathBuf>) -> Result<Read, ExitCode> {
    let unusable = |error: LoadError, by: Option<&str>| {
        match by {
            Some(by) => eprintln!("error: {error} (the file named by {by})"),
            None => eprintln!("error: {error}"),
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

/// `gatehouse users link|unlink`: an administrator's deliberate link of an account to an
/// IdP (or its removal), in the configured database, audited as done from the CLI.
fn link_account(
    path: Option<PathBuf>,
    username: &str,
    idp: &str,
    link: bool,
) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = usable(&loaded) else {
        return Ok(ExitCode::FAILURE);
    };
    if !config.idps.iter().any(|i| i.id == idp) {
        eprintln!(
            "error: there is no IdP `{idp}` in {}",
            config.path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(config.host.database.expose())
            .await
            .context("opening the database")?;
        let Some(user) = store.user_by_username(username).await? else {
            eprintln!("error: there is no account `{username}`");
            return Ok(ExitCode::FAILURE);
        };
        let now = Clock::system().now_unix_seconds();
        if !gatehouse::links::change(&store, &user, idp, "the command line", link, now).await? {
            eprintln!("error: `{username}` is not linked to `{idp}`");
            return Ok(ExitCode::FAILURE);
        }
        let what = if link { "linked" } else { "unlinked" };
        store.close().await;
        eprintln!("{what}: `{username}` and IdP `{idp}`");
        Ok(ExitCode::SUCCESS)
    })
}

/// The configuration, or `None` after printing why it has none (errors in the file).
fn usable(loaded: &config::Loaded) -> Option<Config> {
    let config = loaded.config.clone();
    if config.is_none() {
        print_diagnostics(&loaded.diagnostics, "", Format::Human);
        eprintln!("error: the configuration has errors; fix them first (`gatehouse check`)");
    }
    config
}

fn print_diagnostics(diagnostics: &[Diagnostic], source: &str, format: Format) {
    match format {
        Format::Human => eprint!("{}", config::render_human(diagnostics, source)),
        Format::Json => println!("{}", config::render_json(diagnostics)),
    }
}

/// The IdPs with a recorded successful sign-in in the configured database, without creating
/// or migrating anything: a database that does not exist yet has no history.
fn recorded_history(config: &Config) -> anyhow::Result<HashSet<String>> {
    let url = config.host.database.expose();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let file = path.split('?').next().unwrap_or(path);
        if file.is_empty() || file == ":memory:" || !Path::new(file).exists() {
            return Ok(HashSet::new());
        }
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
fn check_all(
    loaded: config::Loaded,
) -> anyhow::Result<(Vec<Diagnostic>, String, Option<startup::Prepared>)> {
    let mut diagnostics = loaded.diagnostics;
    let Some(config) = &loaded.config else {
        return Ok((diagnostics, String::new(), None));
    };
    let proven = recorded_history(config)?;
    let mut prepared = startup::prepare(config, &proven);
    diagnostics.append(&mut prepared.diagnostics);
    Ok((diagnostics, config.source.clone(), Some(prepared)))
}

fn check(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let (diagnostics, source, _) = check_all(loaded)?;
    print_diagnostics(&diagnostics, &source, format);
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    if format == Format::Human {
        if diagnostics.is_empty() {
            eprintln!("ok: no problems found");
        } else {
            eprintln!("{}", config::summary(&diagnostics));
        }
    }
    Ok(if errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn explain(path: Option<PathBuf>, domain: &str) -> anyhow::Result<ExitCode> {
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

fn list_plugins(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = loaded.config else {
        print_diagnostics(&loaded.diagnostics, "", Format::Human);
        return Ok(ExitCode::FAILURE);
    };
    let requests = startup::load_requests(&config);
    let report = load_all(&requests, config.host.dev_mode);
    let mut rows = Vec::new();
    for entry in &config.plugins {
        let path = entry.library_path(&config.host.plugin_dir);
        let loaded = report
            .loaded
            .iter()
            .find(|p| p.info.id == entry.id && p.info.path == path);
        let failure = report.failures.iter().find(|f| f.id == entry.id);
        let (status, detail) = match (entry.enabled, loaded, failure) {
            (false, _, _) => ("disabled", String::new()),
            (true, Some(_), _) => ("loaded", String::new()),
            (true, None, Some(failure)) => (
                "failed",
                format!("{}; fix: {}", failure.reason_text(), failure.fix()),
            ),
            (true, None, None) => ("failed", "not loaded".to_owned()),
        };
        let info = loaded.map(|p| &p.info);
        rows.push(serde_json::json!({
            "id": entry.id,
            "library": path.display().to_string(),
            "protocol": info.map(|i| i.protocol.clone()),
            "version": info.map(|i| i.version.clone()),
            "api_version": info.map(|i| i.api_version.to_string()),
            "capabilities": info.map(|i| i.capabilities.names()),
            "status": status,
            "reason": (!detail.is_empty()).then_some(detail),
        }));
    }
    match format {
        Format::Json => println!("{}", serde_json::json!({ "plugins": rows })),
        Format::Human => {
            println!(
                "{:<14} {:<10} {:<9} {:<5} {:<9} LIBRARY",
                "ID", "PROTOCOL", "VERSION", "API", "STATUS"
            );
            for row in &rows {
                let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<14} {:<10} {:<9} {:<5} {:<9} {}",
                    text("id"),
                    text("protocol"),
                    text("version"),
                    text("api_version"),
                    text("status"),
                    text("library")
                );
                if let Some(reason) = row["reason"].as_str() {
                    println!("    {reason}");
                }
            }
        }
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Read { loaded, embedded } = match read_config(path) {
        Ok(read) => read,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = loaded.config else {
        print_diagnostics(&loaded.diagnostics, "", Format::Human);
        eprintln!("error: the configuration has errors; not serving");
        return Ok(ExitCode::FAILURE);
    };
    if !loaded.diagnostics.is_empty() {
        print_diagnostics(&loaded.diagnostics, &config.source, Format::Human);
    }
    if let Err(error) = logging::init(config.host.log_format) {
        eprintln!("warning: logging is not set up: {error}");
    }
    if embedded {
        tracing::warn!(
            "serving the embedded development defaults (dev_mode and the example IdP, which signs anyone in): no {DEFAULT_CONFIG} in the working directory and neither --config nor {CONFIG_ENV} names a file"
        );
    }
    // Everything is checked before the database is created: a configuration that cannot
    // be served writes nothing.
    let proven = recorded_history(&config)?;
    let site = match startup::prepare(&config, &proven).into_servable() {
        Ok((site, warnings)) => {
            if !warnings.is_empty() {
                print_diagnostics(&warnings, &config.source, Format::Human);
            }
            site
        }
        Err(problems) => {
            print_diagnostics(&problems.diagnostics, &config.source, Format::Human);
            eprintln!(
                "error: {} problem(s) stop Gatehouse from starting",
                problems.error_count()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(config, site))
}

async fn run(config: Config, site: gatehouse::site::Site) -> anyhow::Result<ExitCode> {
    let store = Store::connect(config.host.database.expose())
        .await
        .context("opening the database")?;
    let admin_branch = config
        .domains
        .iter()
        .find(|d| d.name == "root")
        .or(config.domains.first())
        .map_or("root", |d| d.branch.as_str());
    let (clock, random) = (Clock::system(), Randomness::system());
    let given = std::env::var("GATEHOUSE_ADMIN_PASSWORD").ok();
    match passwords::ensure_admin(&store, given.as_deref(), admin_branch, &clock, &random)
        .await
        .context("creating the admin account")?
    {
        AdminBootstrap::Existing => {}
        AdminBootstrap::CreatedWithGivenPassword => {
            tracing::info!(
                "created the `admin` account with the password from GATEHOUSE_ADMIN_PASSWORD"
            );
        }
        AdminBootstrap::CreatedWithPassword(password) => {
            // Printed once, to the terminal only: it is never logged or stored in clear.
            println!("Created the `admin` account. Its one-time password is: {password}");
            println!("Sign in at {} and change it.", config.host.public_url);
        }
    }
    let state = startup::state(&config, site, store, clock, random)
        .context("building the HTTP client for plugins")?;
    tokio::spawn(reload_on_sighup(state.clone()));
    let listener = tokio::net::TcpListener::bind(&config.host.listen)
        .await
        .with_context(|| format!("listening on {}", config.host.listen))?;
    tracing::info!(listen = %config.host.listen, public_url = %config.host.public_url, "Gatehouse is serving");
    axum::serve(
        listener,
        web::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;
    tracing::info!("Gatehouse stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP re-reads the configuration; a bad one is refused and logged with its diagnostics.
async fn reload_on_sighup(state: gatehouse::state::AppState) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /admin/reload instead");
        return;
    };
    while hangups.recv().await.is_some() {
        match gatehouse::reload::reload(&state).await {
            Ok(outcome) => {
                for d in outcome.diagnostics() {
                    tracing::warn!(code = d.code, line = d.location.line, "{}", d.message);
                }
            }
            Err(error) => tracing::error!(%error, "reload failed"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
