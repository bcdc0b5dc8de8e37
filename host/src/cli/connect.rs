//! `gatehouse connect …`: Totara Connect, client side (servers, new-server,
//! migration-preview) and server side (clients, add-client).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Subcommand;
use gatehouse::{clock::Clock, connect, store::Store};

use super::{
    ConfigArg, Format, help,
    load::{servable_site, usable_config, with_command_state},
    when::{ago, until},
};

/// `gatehouse connect …`: the Totara Connect client side.
#[derive(Subcommand)]
pub(crate) enum ConnectCommand {
    /// Each Connect server this host is registered with: IdP, server name and URL, API
    /// version, status, and the last run of each sync task.
    #[command(after_long_help = help::CONNECT_SERVERS)]
    Servers {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// "Connect to new server": make a one-time setup secret (valid 24 h) for a Connect IdP
    /// and print the client URL and the secret to give the server's admin (Add client).
    #[command(after_long_help = help::CONNECT_NEW_SERVER)]
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
    #[command(after_long_help = help::CONNECT_MIGRATION_PREVIEW)]
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
    #[command(after_long_help = help::CONNECT_CLIENTS)]
    Clients {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Connect server side, "Add client": register a client system with the setup secret its
    /// admin handed over. `gatehouse serve` must be running on the same database (the client
    /// calls it back during registration); a failed registration leaves no client behind.
    #[command(after_long_help = help::CONNECT_ADD_CLIENT)]
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
pub(crate) struct AddClientArgs {
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

/// `gatehouse connect clients`: the client systems this host serves as a Connect server.
pub(crate) fn connect_clients(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
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

/// `gatehouse connect servers`: each Connect IdP, the server it is registered with (asked
/// of its plugin) and the last run of each sync task.
pub(crate) fn connect_servers(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
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
pub(crate) fn connect_new_server(
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
pub(crate) fn connect_migration_preview(
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
pub(crate) fn connect_add_client(
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

/// Runs a `gatehouse connect …` command.
pub(crate) fn run(command: ConnectCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConnectCommand::Clients { config, format } => connect_clients(config.config, format),
        ConnectCommand::Servers { config, format } => connect_servers(config.config, format),
        ConnectCommand::NewServer {
            config,
            idp,
            format,
        } => connect_new_server(config.config, &idp, format),
        ConnectCommand::MigrationPreview {
            config,
            idp,
            format,
        } => connect_migration_preview(config.config, &idp, format),
        ConnectCommand::AddClient {
            config,
            client,
            format,
        } => connect_add_client(config.config, client, format),
    }
}
