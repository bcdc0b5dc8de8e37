//! The `gatehouse` command: `serve`, `check`, `explain`, `plugins`, `users`, `tasks`,
//! `directory` and `connect`. A thin edge over the library; errors become messages and exit statuses here
//! and nowhere else.

use std::{
    collections::HashSet,
    io::IsTerminal as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use gatehouse::{
    clock::{Clock, Randomness},
    config::{self, Config, Diagnostic, LoadError, Severity},
    connect, directory, logging,
    passwords::{self, AdminBootstrap},
    plugins::load_all,
    startup,
    store::Store,
    tasks::{self, Scheduler, TaskError, TaskSettings},
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
    /// Scheduled tasks (the host's expiry cleanup, and the tasks plugins declare).
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// The directory a Totara Connect server shares: users, their fields, audiences.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Totara Connect: this host as a client of Connect servers.
    #[command(subcommand)]
    Connect(ConnectCommand),
}

/// `gatehouse connect …`: the Totara Connect client side.
#[derive(Subcommand)]
enum ConnectCommand {
    /// Each Connect server this host is registered with: IdP, server name and URL, API
    /// version, status, and the last run of each sync task.
    Servers {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// "Connect to new server": make a one-time setup secret (valid 24 h) for a Connect IdP
    /// and print the client URL and the secret to give the server's admin (Add client).
    NewServer {
        #[command(flatten)]
        config: ConfigArg,
        /// The Connect IdP's `id` in plugins.toml.
        #[arg(long, value_name = "ID")]
        idp: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// What account migration (`migrate_users`) would do, before it is switched on: fetches
    /// the server's users as the `users` task does and lists the local accounts that would be
    /// taken over and by whom, and the server users whose `migrate_map` value is missing,
    /// invalid or matches several local accounts. Writes nothing.
    MigrationPreview {
        #[command(flatten)]
        config: ConfigArg,
        /// The Connect IdP's `id` in plugins.toml.
        #[arg(long, value_name = "ID")]
        idp: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Connect server side: each client system, its status (active / deleted), URL, API
    /// version and "Add client" options.
    Clients {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Connect server side, "Add client": register a client system with the setup secret its
    /// admin handed over. `gatehouse serve` must be running on the same database (the client
    /// calls it back during registration); a failed registration leaves no client behind.
    AddClient {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        client: AddClientArgs,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

/// The options of "Add client" (`001_*`).
#[derive(clap::Args)]
struct AddClientArgs {
    /// "Client name".
    #[arg(long, value_name = "N")]
    name: String,
    /// "Client URL": the client site's address (http or https).
    #[arg(long, value_name = "URL")]
    url: String,
    /// "Client setup secret", from the client's "Connect to new server".
    #[arg(long, value_name = "S")]
    setup_secret: String,
    /// "Restrict to audience": the client sees only this audience's members.
    #[arg(long, value_name = "IDNUMBER")]
    restrict_audience: Option<String>,
    /// An audience to share with the client (repeatable).
    #[arg(long = "audience", value_name = "IDNUMBER")]
    audiences: Vec<String>,
    /// A course to share with the client (repeatable).
    #[arg(long = "course", value_name = "SHORTNAME")]
    courses: Vec<String>,
    /// "Synchronise custom profile fields".
    #[arg(long)]
    sync_profile_fields: bool,
    /// "Synchronise job assignments".
    #[arg(long)]
    sync_jobs: bool,
    /// A position framework to share (repeatable).
    #[arg(long = "position-framework", value_name = "IDNUMBER")]
    position_frameworks: Vec<String>,
    /// An organisation framework to share (repeatable).
    #[arg(long = "organisation-framework", value_name = "IDNUMBER")]
    organisation_frameworks: Vec<String>,
    /// "Automatically add new courses".
    #[arg(long)]
    add_new_courses: bool,
    /// "Automatically add new audiences".
    #[arg(long)]
    add_new_audiences: bool,
    /// "Allow requests to plugin services".
    #[arg(long)]
    allow_plugin_services: bool,
    /// "Client comment".
    #[arg(long, value_name = "TEXT", default_value = "")]
    comment: String,
}

/// `gatehouse directory …`: the directory file (JSON, see the README).
#[derive(Subcommand)]
enum DirectoryCommand {
    /// Load users, custom profile field values and audiences from a JSON file, in one
    /// transaction: a refused record (named by index and key) leaves nothing written, and
    /// importing the same file twice changes nothing.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The directory file.
        file: PathBuf,
    },
    /// Print the whole directory as JSON in the import format.
    Export {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `gatehouse tasks …`: the scheduled tasks `serve` runs.
#[derive(Subcommand)]
enum TasksCommand {
    /// Each task: its IdP, schedule, and last run (outcome, time, duration, summary).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run a task now, due or not, under the same lease as scheduled runs (so never at the
    /// same time as another host). Exit status 0 when it ran and succeeded.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// The task's name (`cleanup`, or a name from a plugin's manifest).
        name: String,
        /// The IdP whose plugin task to run (needed when several IdPs have that task).
        #[arg(long, value_name = "ID")]
        idp: Option<String>,
    },
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
        Command::Connect(ConnectCommand::Clients { config, format }) => {
            connect_clients(config.config, format)
        }
        Command::Connect(ConnectCommand::Servers { config, format }) => {
            connect_servers(config.config, format)
        }
        Command::Tasks(TasksCommand::List { config, format }) => list_tasks(config.config, format),
        Command::Tasks(TasksCommand::Run { config, name, idp }) => {
            run_task(config.config, &name, idp.as_deref())
        }
        Command::Directory(DirectoryCommand::Import { config, file }) => {
            import_directory(config.config, &file)
        }
        Command::Directory(DirectoryCommand::Export { config }) => export_directory(config.config),
        Command::Connect(ConnectCommand::NewServer {
            config,
            idp,
            format,
        }) => connect_new_server(config.config, &idp, format),
        Command::Connect(ConnectCommand::MigrationPreview {
            config,
            idp,
            format,
        }) => connect_migration_preview(config.config, &idp, format),
        Command::Connect(ConnectCommand::AddClient {
            config,
            client,
            format,
        }) => connect_add_client(config.config, client, format),
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

/// `gatehouse directory import FILE`: the file's records in one transaction, or nothing.
fn import_directory(path: Option<PathBuf>, file: &Path) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = usable(&loaded) else {
        return Ok(ExitCode::FAILURE);
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
fn export_directory(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = usable(&loaded) else {
        return Ok(ExitCode::FAILURE);
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

/// False for a SQLite database whose file does not exist yet (or an in-memory one): it
/// holds nothing, and opening it would create it.
fn database_exists(config: &Config) -> bool {
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
fn recorded_history(config: &Config) -> anyhow::Result<HashSet<String>> {
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
    if format == Format::Human && diagnostics.is_empty() {
        eprintln!("ok: no problems found");
    } else {
        // The rendering ends with the summary line ("2 errors, 1 warning") itself.
        print_diagnostics(&diagnostics, &source, format);
    }
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
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
            "routes": info.map(|i| i.routes.iter().map(route_text).collect::<Vec<_>>()),
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
                for route in row["routes"].as_array().into_iter().flatten() {
                    println!("    serves {}", route.as_str().unwrap_or_default());
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

/// A declared plugin route as `gatehouse plugins` shows it: `POST /sso/{idp}/notify`.
fn route_text(route: &gatehouse_plugin_api::RouteDecl) -> String {
    use gatehouse_plugin_api::{RouteHandling, RouteMount};
    let methods: Vec<&str> = route.methods.iter().map(|m| m.as_str()).collect();
    let path = if route.mount == RouteMount::BELOW_IDP {
        format!("/sso/{{idp}}/{}", route.path)
    } else {
        route.path.to_string()
    };
    let kind = if route.handling == RouteHandling::BROWSER_CALLBACK {
        " (browser callback)"
    } else {
        ""
    };
    format!("{} {path}{kind}", methods.join("|"))
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
    let hashing = passwords::Passwords::new(&config.host.passwords, &random);
    match passwords::ensure_admin(
        &hashing,
        &store,
        given.as_deref(),
        admin_branch,
        &clock,
        &random,
    )
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
    let task_settings = TaskSettings::from_config(&config);
    if task_settings.scheduler {
        tokio::spawn(Scheduler::new(state.clone(), task_settings, "host").run_forever());
    } else {
        tracing::info!("the task scheduler is off on this host ([host] scheduler = false)");
    }
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

/// The configuration and its site, ready to serve, or the exit status after printing why not
/// (the same checks as `serve`).
fn servable_site(path: Option<PathBuf>) -> Result<(Config, gatehouse::site::Site), ExitCode> {
    let loaded = read_config(path)?.loaded;
    let config = usable(&loaded).ok_or(ExitCode::FAILURE)?;
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

/// How long ago `at` was, for people: `never`, `40s ago`, `5m ago`, `3h ago`, `2d ago`.
fn ago(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let secs = now.saturating_sub(at).max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// When `at` comes, for people: `now`, `in 5m`, `in 3h`.
fn until(at: i64, now: i64) -> String {
    let secs = at.saturating_sub(now);
    match secs {
        ..=0 => "now".to_owned(),
        1..60 => format!("in {secs}s"),
        60..3600 => format!("in {}m", (secs + 59) / 60),
        3600..86_400 => format!("in {}h", secs / 3600),
        _ => format!("in {}d", secs / 86_400),
    }
}

/// `gatehouse tasks list`: every task with its schedule and last run, from the configured
/// database (without creating it: a database that does not exist has no runs).
fn list_tasks(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let settings = TaskSettings::from_config(&config);
    let catalogue = tasks::catalogue(&site, &settings);
    let now = Clock::system().now_unix_seconds();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let statuses = runtime.block_on(async {
        if !database_exists(&config) {
            return tasks::statuses(None, &catalogue, now).await;
        }
        let store = Store::connect(config.host.database.expose()).await?;
        let statuses = tasks::statuses(Some(&store), &catalogue, now).await;
        store.close().await;
        statuses
    })?;
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = statuses
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "task": s.id.name,
                        "idp": s.id.idp,
                        "every_minutes": s.schedule.every.as_secs() / 60,
                        "enabled": s.schedule.enabled,
                        "next_due_at": s.next_due,
                        "last_run": s.last.as_ref().map(|r| serde_json::json!({
                            "outcome": r.run.outcome.as_str(),
                            "host": r.run.holder,
                            "started_at": r.run.started_at,
                            "finished_at": r.run.finished_at,
                            "duration_ms": r.run.duration_ms,
                            "summary": r.run.summary,
                            "error": r.run.error,
                        })),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "scheduler": settings.scheduler, "tasks": rows })
            );
        }
        Format::Human => {
            println!(
                "{:<14} {:<12} {:<10} {:<9} {:<8} {:<9} {:<8} SUMMARY",
                "TASK", "IDP", "EVERY", "LAST RUN", "OUTCOME", "DURATION", "NEXT"
            );
            for s in &statuses {
                let last = s.last.as_ref().map(|r| &r.run);
                let every = format!("{}m", s.schedule.every.as_secs() / 60);
                let summary = last.map_or(String::new(), |r| match &r.error {
                    Some(error) if r.summary.is_empty() => error.clone(),
                    Some(error) => format!("{}; {error}", r.summary),
                    None => r.summary.clone(),
                });
                println!(
                    "{:<14} {:<12} {:<10} {:<9} {:<8} {:<9} {:<8} {}",
                    s.id.name,
                    s.id.idp.as_deref().unwrap_or("-"),
                    every,
                    ago(last.map(|r| r.started_at), now),
                    last.map_or("-", |r| r.outcome.as_str()),
                    last.map_or("-".to_owned(), |r| format!("{} ms", r.duration_ms)),
                    s.next_due
                        .map_or("disabled".to_owned(), |at| until(at, now)),
                    summary
                );
            }
            if !settings.scheduler {
                eprintln!(
                    "note: [host] scheduler = false: `serve` on this host runs no tasks (other hosts on the database may)"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The state a one-off command calls plugins with (the database opened, the real clock and
/// randomness); the caller closes the store when done.
async fn command_state(
    config: &Config,
    site: gatehouse::site::Site,
) -> anyhow::Result<(Store, gatehouse::state::AppState)> {
    let store = Store::connect(config.host.database.expose())
        .await
        .context("opening the database")?;
    let state = startup::state(
        config,
        site,
        store.clone(),
        Clock::system(),
        Randomness::system(),
    )
    .context("building the HTTP client for plugins")?;
    Ok((store, state))
}

/// Runs a one-off command's async work against [`command_state`] on a runtime of its own,
/// closing the store afterwards, whatever the work answered.
fn with_command_state<T>(
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

/// `gatehouse tasks run NAME [--idp ID]`: runs one task now through the scheduler's runner
/// and lease, with progress on stderr when it is a terminal, and one result line on stdout.
/// Exit status 1 when the task failed or was skipped, is unknown, or runs elsewhere.
fn run_task(path: Option<PathBuf>, name: &str, idp: Option<&str>) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (store, state) = command_state(&config, site).await?;
        let scheduler = Scheduler::new(state, TaskSettings::from_config(&config), "cli");
        let ticker = std::io::stderr()
            .is_terminal()
            .then(|| TerminalProgress::start(std::time::Instant::now()));
        let progress = |line: &str| {
            if let Some(ticker) = &ticker {
                ticker.stage(line);
            }
        };
        let outcome = scheduler.run_now(name, idp, &progress).await;
        if let Some(ticker) = ticker {
            ticker.finish();
        }
        store.close().await;
        match outcome {
            Ok(report) => {
                let run = &report.run;
                let mut line = format!(
                    "{} {} in {} ms",
                    report.task,
                    run.outcome.as_str(),
                    run.duration_ms
                );
                if !run.summary.is_empty() {
                    line.push_str(&format!(": {}", run.summary));
                }
                if let Some(error) = &run.error {
                    line.push_str(&format!(" (error: {error})"));
                }
                println!("{line}");
                Ok(if run.outcome == gatehouse::store::TaskOutcome::Ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Err(error @ (TaskError::Unknown { .. } | TaskError::Leased { .. })) => {
                eprintln!("error: {error}");
                Ok(ExitCode::FAILURE)
            }
            Err(error) => Err(error.into()),
        }
    })
}

/// `gatehouse connect clients`: the client systems this host serves as a Connect server.
fn connect_clients(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let loaded = match read_config(path) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = usable(&loaded) else {
        return Ok(ExitCode::FAILURE);
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let clients = runtime.block_on(async {
        let store = Store::connect(config.host.database.expose())
            .await
            .context("opening the database")?;
        let clients = gatehouse::connect_server::cli::clients(&store).await;
        store.close().await;
        anyhow::Ok(clients?)
    })?;
    match format {
        Format::Json => println!("{}", gatehouse::connect_server::cli::to_json(&clients)),
        Format::Human => print!("{}", gatehouse::connect_server::cli::to_human(&clients)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The progress of `gatehouse tasks run` on a terminal (stderr): each stage on its own line
/// with the time since the start, and below it a spinner with the time the current stage
/// has taken, redrawn every 100 ms until the run ends (a sync's plugin call or transaction
/// can take a while).
struct TerminalProgress {
    started: std::time::Instant,
    stage_started: std::sync::Arc<std::sync::Mutex<std::time::Instant>>,
    ticking: tokio::task::JoinHandle<()>,
}

impl TerminalProgress {
    const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

    fn start(started: std::time::Instant) -> Self {
        let stage_started = std::sync::Arc::new(std::sync::Mutex::new(started));
        let shared = std::sync::Arc::clone(&stage_started);
        let ticking = tokio::spawn(async move {
            for turn in 0usize.. {
                let since = shared.lock().map(|at| at.elapsed()).unwrap_or_default();
                eprint!(
                    "\r\x1b[2K {} {:.1}s",
                    Self::SPINNER[turn % Self::SPINNER.len()],
                    since.as_secs_f64()
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Self {
            started,
            stage_started,
            ticking,
        }
    }

    fn stage(&self, line: &str) {
        if let Ok(mut at) = self.stage_started.lock() {
            *at = std::time::Instant::now();
        }
        eprintln!(
            "\r\x1b[2K[{:>6.1}s] {line}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn finish(self) {
        self.ticking.abort();
        eprint!("\r\x1b[2K");
    }
}

/// `gatehouse connect servers`: each Connect IdP, the server it is registered with (asked
/// of its plugin) and the last run of each sync task.
fn connect_servers(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let servers = with_command_state(&config, site, async |state| connect::servers(state).await)??;
    let now = Clock::system().now_unix_seconds();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = servers
                .iter()
                .map(|s| {
                    let tasks: serde_json::Map<String, serde_json::Value> = s
                        .last_runs
                        .iter()
                        .map(|(task, last)| {
                            let run = last.as_ref().map(|r| {
                                serde_json::json!({
                                    "outcome": r.run.outcome.as_str(),
                                    "started_at": r.run.started_at,
                                    "finished_at": r.run.finished_at,
                                    "summary": r.run.summary,
                                    "error": r.run.error,
                                })
                            });
                            ((*task).to_owned(), run.unwrap_or(serde_json::Value::Null))
                        })
                        .collect();
                    serde_json::json!({
                        "idp": s.idp,
                        "domain": s.domain,
                        "status": s.status,
                        "error": s.error,
                        "server_name": s.server.as_ref().map(|v| &v.name),
                        "server_url": s.server.as_ref().map(|v| &v.url),
                        "server_idnumber": s.server.as_ref().map(|v| &v.server_idnumber),
                        "api_version": s.server.as_ref().map(|v| v.api_version),
                        "registered_at": s.server.as_ref().map(|v| v.registered_at),
                        "tasks": tasks,
                    })
                })
                .collect();
            println!("{}", serde_json::json!({ "servers": rows }));
        }
        Format::Human => {
            if servers.is_empty() {
                println!(
                    "No Totara Connect IdP is configured (add an [[idp]] with plugin = \"connect\")."
                );
                return Ok(ExitCode::SUCCESS);
            }
            for s in &servers {
                match &s.server {
                    Some(server) => println!(
                        "{} (domain {}): {} <{}>, API version {}, {}",
                        s.idp, s.domain, server.name, server.url, server.api_version, s.status
                    ),
                    None => println!(
                        "{} (domain {}): {}{}",
                        s.idp,
                        s.domain,
                        s.status,
                        s.error
                            .as_ref()
                            .map_or(String::new(), |e| format!(" ({e})"))
                    ),
                }
                for (task, last) in &s.last_runs {
                    let line = match last {
                        None => "never run".to_owned(),
                        Some(r) => {
                            let mut line = format!(
                                "{} {}",
                                r.run.outcome.as_str(),
                                ago(Some(r.run.started_at), now)
                            );
                            if !r.run.summary.is_empty() {
                                line.push_str(&format!(": {}", r.run.summary));
                            }
                            if let Some(error) = &r.run.error {
                                line.push_str(&format!(" (error: {error})"));
                            }
                            line
                        }
                    };
                    println!("  {task:<10} {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse connect new-server --idp ID`: the Connect IdP's `new_server` task, run now
/// through the plugin (not the scheduler: its output holds the secret, which is never
/// recorded); prints the client URL and the setup secret.
fn connect_new_server(
    path: Option<PathBuf>,
    idp: &str,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let outcome = with_command_state(&config, site, async |state| {
        connect::new_server(state, idp).await
    })?;
    let opened = match outcome {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "idp": opened.idp,
                "client_url": opened.client_url,
                "setup_secret": opened.setup_secret,
                "expires_at": opened.expires_at,
            })
        ),
        Format::Human => {
            println!("Client url: {}", opened.client_url);
            println!("Client setup secret: {}", opened.setup_secret);
            if let Some(at) = opened.expires_at {
                println!(
                    "The secret works once, until {at} (Unix time, {}). On the Connect server: Client systems > Add client, with this client url and setup secret.",
                    until(at, Clock::system().now_unix_seconds())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse connect migration-preview --idp ID`: what `migrate_users` would do with the
/// server's users as they are now; writes nothing.
fn connect_migration_preview(
    path: Option<PathBuf>,
    idp: &str,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let outcome = with_command_state(&config, site, async |state| {
        gatehouse::connect_migration::preview(state, idp).await
    })?;
    match outcome {
        Ok(preview) => {
            match format {
                Format::Json => println!("{}", gatehouse::connect_migration::to_json(&preview)),
                Format::Human => print!("{}", gatehouse::connect_migration::to_human(&preview)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `gatehouse connect add-client …`: registers a client system through its `sep_setup.php`
/// (the serving process answers its call-back); prints what was registered, or the client's
/// refusal. Exit status 1 when nothing was registered.
fn connect_add_client(
    path: Option<PathBuf>,
    args: AddClientArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let (config, site) = match servable_site(path) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let request = gatehouse::connect_server::registration::AddClient {
        name: args.name,
        url: args.url,
        setup_secret: args.setup_secret,
        restrict_audience: args.restrict_audience,
        audiences: args.audiences,
        courses: args.courses,
        sync_profile_fields: args.sync_profile_fields,
        sync_jobs: args.sync_jobs,
        position_frameworks: args.position_frameworks,
        organisation_frameworks: args.organisation_frameworks,
        add_new_courses: args.add_new_courses,
        add_new_audiences: args.add_new_audiences,
        allow_plugin_services: args.allow_plugin_services,
        comment: args.comment,
    };
    let server_name = gatehouse::connect_server::registration::server_name(&config);
    let outcome = with_command_state(&config, site, async |state| {
        gatehouse::connect_server::registration::add_client(state, &request, &server_name).await
    })?;
    let registered = match outcome {
        Ok(registered) => registered,
        Err(error) => {
            eprintln!("error: {error}\nno client was registered");
            return Ok(ExitCode::FAILURE);
        }
    };
    let clients = [registered.client];
    match format {
        Format::Json => println!(
            "{}",
            gatehouse::connect_server::cli::to_json(&clients)["clients"][0]
        ),
        Format::Human => {
            print!(
                "Registered:\n{}",
                gatehouse::connect_server::cli::to_human(&clients)
            );
        }
    }
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
