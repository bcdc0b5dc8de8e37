//! The command line: the clap definitions of every command and the dispatch to the module
//! that carries it out (one module per command). Errors become messages and exit statuses
//! here and in those modules, nowhere in the library.

mod check;
mod connect;
mod directory;
mod explain;
mod help;
mod idps;
mod load;
mod plugins;
mod serve;
mod tasks;
mod users;
mod when;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

/// Gatehouse: single sign-on for every domain of a learning platform.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Each command's --help gives its exit statuses, environment variables and an example.\n\
                  The configuration is plugins.toml (--config, or GATEHOUSE_CONFIG); every key is in\n\
                  docs/configuration.md, every diagnostic in docs/diagnostics.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the plugins, check the configuration, and serve HTTP.
    #[command(after_long_help = help::SERVE)]
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Load the plugins and run every check without serving.
    #[command(after_long_help = help::CHECK)]
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// How to print the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Also ask each IdP's plugin to reach its provider through the host's HTTP (OIDC
        /// discovery and keys, SAML metadata, a Connect server's API version): problems are
        /// `idp-unreachable` errors and `idp-online-check` warnings; a plugin built before
        /// plugin API 1.3 gets a note, "no online check".
        #[arg(long)]
        online: bool,
    },
    /// Explain what the login page of a domain does, and which rule decided it.
    #[command(after_long_help = help::EXPLAIN)]
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// The domain's `name` in plugins.toml (`root` for the root platform).
        #[arg(long, value_name = "NAME")]
        domain: String,
    },
    /// List every IdP: domain, plugin, behaviour, status, last successful sign-in, and the
    /// URLs to register at the provider for each host of its domain.
    ///
    /// Status: `loaded`; `plugin failed to load` (the loader's reason and fix); `settings
    /// refused` (the plugin's message); `not served` (the finding that says why). The last
    /// sign-in is the database's record of successful sign-ins (kept to the minute), read
    /// only when the database exists: none is created. The URLs are listed for each host of
    /// the IdP's domain, because a sign-in uses the host the browser came on: register them
    /// all at the provider.
    #[command(after_long_help = help::IDPS)]
    Idps {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// List each configured plugin library: id, protocol, version, ABI, and whether it loaded.
    #[command(after_long_help = help::PLUGINS)]
    Plugins {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Account administration.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Scheduled tasks (the host's expiry cleanup, and the tasks plugins declare).
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// The directory a Totara Connect server shares: users with their fields and jobs,
    /// audiences, courses with enrolments, position and organisation frameworks.
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// Totara Connect: this host as a client of Connect servers (servers, new-server,
    /// migration-preview) and as a server to client sites (clients, add-client).
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
}

#[derive(clap::Args)]
pub(crate) struct ConfigArg {
    /// The configuration file [default: $GATEHOUSE_CONFIG, else plugins.toml; a named file
    /// must exist, and only a missing plugins.toml falls back to the embedded defaults].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    Human,
    Json,
}

/// Parses the command line and runs the command; the process's exit status.
pub fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve { config } => serve::serve(config.config),
        Command::Check {
            config,
            format,
            online,
        } => check::check(config.config, format, online),
        Command::Explain { config, domain } => explain::explain(config.config, &domain),
        Command::Idps { config, format } => idps::idps(config.config, format),
        Command::Plugins { config, format } => plugins::list_plugins(config.config, format),
        Command::Users(command) => users::run(command),
        Command::Tasks(command) => tasks::run(command),
        Command::Directory(command) => directory::run(command),
        Command::Connect(command) => connect::run(command),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every command a user can run (the leaves of the command tree), with its full name.
    fn leaves(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        if command.get_subcommands().next().is_none() {
            out.push((path, command.clone()));
            return;
        }
        for sub in command.get_subcommands() {
            leaves(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_documents_exit_statuses_environment_signals_and_an_example() {
        let mut commands = Vec::new();
        leaves(&Cli::command(), "gatehouse".into(), &mut commands);
        assert!(commands.len() >= 15, "{}", commands.len());
        for (name, command) in commands {
            let help = command
                .get_after_long_help()
                .or(command.get_after_help())
                .map(|text| text.to_string())
                .unwrap_or_default();
            for needed in ["Exit status", "GATEHOUSE_CONFIG", "SIGHUP", "Example:"] {
                assert!(
                    help.contains(needed),
                    "`{name} --help` does not say {needed:?}:\n{help}"
                );
            }
            assert!(
                help.contains(&format!("{name} ")) || help.contains(&format!("{name}\n")),
                "`{name} --help`'s example does not run it:\n{help}"
            );
        }
    }
}
