//! `gatehouse users …`: account administration from the command line.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Subcommand;
use gatehouse::{clock::Clock, store::Store};

mod accounts;

use super::{ConfigArg, help, load::usable_config};

/// `gatehouse users …`: account administration from the command line.
#[derive(Subcommand)]
pub(crate) enum UsersCommand {
    /// Link an existing account (a local or administrator's account, which SSO otherwise
    /// never signs into) to an IdP, so that signing in through that IdP reaches it.
    #[command(after_long_help = help::USERS_LINK)]
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
    #[command(after_long_help = help::USERS_UNLINK)]
    Unlink {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        #[arg(long, value_name = "ID")]
        idp: String,
    },
    #[command(flatten)]
    Accounts(accounts::AccountsCommand),
}

/// `gatehouse users link|unlink`: an administrator's deliberate link of an account to an
/// IdP (or its removal), in the configured database, audited as done from the CLI.
pub(crate) fn link_account(
    path: Option<PathBuf>,
    username: &str,
    idp: &str,
    link: bool,
) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
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

/// Runs a `gatehouse users …` command.
pub(crate) fn run(command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::Link {
            config,
            username,
            idp,
        } => link_account(config.config, &username, &idp, true),
        UsersCommand::Unlink {
            config,
            username,
            idp,
        } => link_account(config.config, &username, &idp, false),
        UsersCommand::Accounts(command) => accounts::run(command),
    }
}
