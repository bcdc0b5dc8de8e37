//! `gatehouse users list|show|set-password|suspend|unsuspend`: accounts from the command
//! line. The rules (the password policy, what a suspension ends) are the library's
//! (`gatehouse::accounts`, the store's single transactions); this module reads, prints and
//! chooses the exit status: 0 done, 1 refused or failed (no such account, a password the
//! policy refuses, errors in the file), 2 the configuration file could not be read or parsed.
//! Not `users link|unlink` (the parent module).

use std::{
    io::{BufRead as _, IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::Subcommand;
use gatehouse::{
    accounts,
    clock::{Clock, Randomness},
    config::Config,
    passwords::Passwords,
    store::{AuditEvent, PasswordReplacement, Store, User},
};

use crate::cli::{
    ConfigArg, Format, help,
    load::{database_exists, usable_config},
    when::ago,
};

/// The account commands of `gatehouse users`. Their `--help` ends with `cli::help`'s
/// texts, like every command's.
#[derive(Subcommand)]
pub(crate) enum AccountsCommand {
    /// List every account: id, username, email, suspended, auth source, last sign-in.
    ///
    /// The last sign-in is the latest successful password or SSO sign-in the audit log still
    /// holds ([host] audit_retention_days, 90 by default); `never` when it holds none.
    #[command(after_long_help = help::USERS_LIST)]
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Show one account: its fields, IdP links, live sessions and whether it must change
    /// its password.
    ///
    /// Exit status 1 also when there is no such account.
    #[command(after_long_help = help::USERS_SHOW)]
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The account's username (exactly, case included).
        username: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Set an account's password, read from a prompt (without echo) or standard input.
    ///
    /// The password is never an argument (arguments end up in shell history and the process
    /// list). It must have at least 12 characters and at most 1024 bytes, no control
    /// characters, and must not be the username. Every session of the account ends (its
    /// Totara Connect clients are told at the next hourly cleanup); the change is audited.
    /// Exit status 1 when there is no such account, the policy refuses the password, the two
    /// entries differ or standard input is empty: nothing is changed then.
    #[command(after_long_help = help::USERS_SET_PASSWORD)]
    SetPassword {
        #[command(flatten)]
        config: ConfigArg,
        /// The account's username (exactly, case included).
        username: String,
        /// The account must choose a new password at its next sign-in.
        #[arg(long)]
        must_change: bool,
    },
    /// Suspend an account: it cannot sign in, and its sessions end.
    ///
    /// A suspended account cannot sign in by any route (password, SSO, Totara Connect), and
    /// its sessions end at once (its Connect clients are told at the next hourly cleanup).
    /// Suspending a suspended account changes nothing (exit status 0).
    #[command(after_long_help = help::USERS_SUSPEND)]
    Suspend {
        #[command(flatten)]
        config: ConfigArg,
        /// The account's username (exactly, case included).
        username: String,
    },
    /// Reinstate a suspended account: it signs in again as before.
    #[command(after_long_help = help::USERS_UNSUSPEND)]
    Unsuspend {
        #[command(flatten)]
        config: ConfigArg,
        /// The account's username (exactly, case included).
        username: String,
    },
}

/// Runs an account command.
pub(crate) fn run(command: AccountsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccountsCommand::List { config, format } => list(config.config, format),
        AccountsCommand::Show {
            config,
            username,
            format,
        } => show(config.config, &username, format),
        AccountsCommand::SetPassword {
            config,
            username,
            must_change,
        } => set_password(config.config, &username, must_change),
        AccountsCommand::Suspend { config, username } => suspend(config.config, &username, true),
        AccountsCommand::Unsuspend { config, username } => suspend(config.config, &username, false),
    }
}

/// Runs `work` on the configured database in a runtime of its own. A SQLite file that
/// does not exist yet is not created: `work` gets `None`.
fn with_store<T>(
    config: &Config,
    work: impl AsyncFnOnce(Option<&Store>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        if !database_exists(config) {
            return work(None).await;
        }
        let store = Store::connect(config.host.database.expose())
            .await
            .context("opening the database")?;
        let outcome = work(Some(&store)).await;
        store.close().await;
        outcome
    })
}

/// The account named `username` and its store, or `None` after saying there is none.
async fn account<'s>(
    store: Option<&'s Store>,
    username: &str,
) -> anyhow::Result<Option<(&'s Store, User)>> {
    if let Some(store) = store
        && let Some(user) = store.user_by_username(username).await?
    {
        return Ok(Some((store, user)));
    }
    eprintln!("error: there is no account `{username}` (`gatehouse users list` lists them)");
    Ok(None)
}

/// The audit row of an administrator's change made from the command line.
fn cli_audit(user: &User, method: &str, reason: &str, now: i64) -> AuditEvent {
    AuditEvent {
        at: now,
        domain: String::new(),
        idp_id: None,
        user_id: Some(user.id),
        username: user.username.clone(),
        method: method.into(),
        outcome: "success".into(),
        reason: reason.into(),
        ip: String::new(),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// `gatehouse users list`.
fn list(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let accounts = with_store(&config, async |store| match store {
        Some(store) => Ok(store.account_summaries().await?),
        None => Ok(Vec::new()),
    })?;
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = accounts
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "id": a.id,
                        "username": a.username,
                        "email": a.email,
                        "suspended": a.suspended,
                        "admin": a.is_admin,
                        "auth_source": a.auth_source,
                        "has_password": a.has_password,
                        "must_change_password": a.must_change_password,
                        "last_sign_in_at": a.last_sign_in,
                    })
                })
                .collect();
            println!("{}", serde_json::json!({ "users": rows }));
        }
        Format::Human => {
            let now = Clock::system().now_unix_seconds();
            println!(
                "{:<6} {:<24} {:<30} {:<9} {:<24} LAST SIGN-IN",
                "ID", "USERNAME", "EMAIL", "SUSPENDED", "AUTH"
            );
            for a in &accounts {
                let mut auth = a.auth_source.clone();
                if a.is_admin {
                    auth.push_str(" (admin)");
                }
                println!(
                    "{:<6} {:<24} {:<30} {:<9} {:<24} {}",
                    a.id,
                    a.username,
                    if a.email.is_empty() { "-" } else { &a.email },
                    yes_no(a.suspended),
                    auth,
                    ago(a.last_sign_in, now)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse users show USERNAME`.
fn show(path: Option<PathBuf>, username: &str, format: Format) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let now = Clock::system().now_unix_seconds();
    let found = with_store(&config, async |store| {
        let Some((store, user)) = account(store, username).await? else {
            return Ok(None);
        };
        let links = store.linked_idps(user.id).await?;
        let sessions = store.count_user_sessions(user.id, now).await?;
        let last = store.last_sign_in(user.id).await?;
        Ok(Some((user, links, sessions, last)))
    })?;
    let Some((user, links, sessions, last)) = found else {
        return Ok(ExitCode::FAILURE);
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "id": user.id,
                "username": user.username,
                "email": user.email,
                "firstname": user.firstname,
                "lastname": user.lastname,
                "idnumber": user.idnumber,
                "branch": user.branch,
                "auth_source": user.auth_source,
                "admin": user.is_admin,
                "suspended": user.suspended,
                "has_password": user.password_hash.is_some(),
                "must_change_password": user.must_change_password,
                "linked_idps": links,
                "sessions": sessions,
                "last_sign_in_at": last,
                "additional": user.additional,
                "created_at": user.created_at,
                "updated_at": user.updated_at,
            })
        ),
        Format::Human => {
            let links = if links.is_empty() {
                "none".to_owned()
            } else {
                links.join(", ")
            };
            println!("id:                   {}", user.id);
            println!("username:             {}", user.username);
            println!("email:                {}", user.email);
            println!("name:                 {} {}", user.firstname, user.lastname);
            println!("idnumber:             {}", user.idnumber);
            println!("branch:               {}", user.branch);
            println!("auth source:          {}", user.auth_source);
            println!("administrator:        {}", yes_no(user.is_admin));
            println!("suspended:            {}", yes_no(user.suspended));
            println!(
                "local password:       {}",
                yes_no(user.password_hash.is_some())
            );
            println!(
                "must change password: {}",
                yes_no(user.must_change_password)
            );
            println!("linked IdPs:          {links}");
            println!("live sessions:        {sessions}");
            println!("last sign-in:         {}", ago(last, now));
            for (name, value) in &user.additional {
                println!("field {name}: {value}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse users set-password USERNAME [--must-change]`.
fn set_password(
    path: Option<PathBuf>,
    username: &str,
    must_change: bool,
) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    with_store(&config, async |store| {
        let Some((store, user)) = account(store, username).await? else {
            return Ok(ExitCode::FAILURE);
        };
        let password = match read_new_password(&user.username) {
            Ok(password) => password,
            Err(why) => {
                eprintln!("error: {why}; the password was not changed");
                return Ok(ExitCode::FAILURE);
            }
        };
        if let Err(refusal) = accounts::check_policy(&user.username, &password) {
            eprintln!("error: {refusal} The password was not changed.");
            return Ok(ExitCode::FAILURE);
        }
        let random = Randomness::system();
        let hash = Passwords::new(&config.host.passwords, &random)
            .hash(&password, &random)
            .await
            .context("hashing the password")?;
        let now = Clock::system().now_unix_seconds();
        let reason = if must_change {
            "set from the command line; to be changed at the next sign-in"
        } else {
            "set from the command line"
        };
        let audit = cli_audit(&user, "admin-set-password", reason, now);
        let ended = store
            .replace_password(PasswordReplacement {
                user_id: user.id,
                hash: &hash,
                must_change,
                new_session: None,
                audit: &audit,
                now,
            })
            .await?;
        let then = if must_change {
            "; it must be changed at the next sign-in"
        } else {
            ""
        };
        eprintln!(
            "password set for `{}`; {ended} session(s) ended{then}",
            user.username
        );
        if user.password_hash.is_none() {
            eprintln!(
                "note: `{}` had no local password (auth source `{}`); it can now also sign in with \
                 it where its domain shows the password form",
                user.username, user.auth_source
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The new password: asked twice without echo on a terminal, else the first line of
/// standard input (without its line ending). Never an argument.
fn read_new_password(username: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = prompt_hidden(&format!("New password for `{username}`: "))?;
        let second = prompt_hidden("The same again: ")?;
        if first != second {
            return Err("the two entries differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    // Enough to see that a longer password is too long, not more: the rest is not read.
    let limit = u64::try_from(accounts::MAX_PASSWORD_BYTES + 3).unwrap_or(u64::MAX);
    let read = std::io::Read::take(stdin.lock(), limit)
        .read_line(&mut line)
        .map_err(|error| format!("could not read standard input: {error}"))?;
    if read == 0 {
        return Err("no password on standard input (its first line is read)".into());
    }
    Ok(strip_line_end(line))
}

fn strip_line_end(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// One line from the terminal with its echo off (turned back on however the read ends).
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};

    /// Puts the terminal's settings back when dropped.
    struct Restore(Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
        }
    }

    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|error| format!("cannot use the terminal: {error}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    // The Enter key still moves to the next line.
    quiet.local_modes.insert(LocalModes::ECHONL);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, OptionalActions::Now, &quiet)
        .map_err(|error| format!("cannot turn the terminal's echo off: {error}"))?;
    let restore = Restore(saved);
    let mut line = String::new();
    let read = stdin
        .lock()
        .read_line(&mut line)
        .map_err(|error| format!("could not read the terminal: {error}"));
    drop(restore);
    match read? {
        0 => Err("no password entered".into()),
        _ => Ok(strip_line_end(line)),
    }
}

/// `gatehouse users suspend|unsuspend USERNAME`.
fn suspend(path: Option<PathBuf>, username: &str, suspended: bool) -> anyhow::Result<ExitCode> {
    let config = match usable_config(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    with_store(&config, async |store| {
        let Some((store, user)) = account(store, username).await? else {
            return Ok(ExitCode::FAILURE);
        };
        if user.suspended == suspended {
            let state = if suspended {
                "suspended"
            } else {
                "not suspended"
            };
            eprintln!("`{}` already is {state}; nothing changed", user.username);
            return Ok(ExitCode::SUCCESS);
        }
        let now = Clock::system().now_unix_seconds();
        let (method, what) = if suspended {
            ("admin-suspend", "suspended from the command line")
        } else {
            ("admin-unsuspend", "reinstated from the command line")
        };
        let audit = cli_audit(&user, method, what, now);
        let ended = store.suspend_user(user.id, suspended, &audit, now).await?;
        if suspended {
            eprintln!("suspended: `{}`; {ended} session(s) ended", user.username);
        } else {
            eprintln!("reinstated: `{}`", user.username);
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_loses_its_ending_only() {
        assert_eq!(strip_line_end("pw\n".into()), "pw");
        assert_eq!(strip_line_end("pw\r\n".into()), "pw");
        assert_eq!(strip_line_end("pw".into()), "pw");
        assert_eq!(strip_line_end(" pw \n".into()), " pw ");
    }
}
