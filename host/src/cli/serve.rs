//! `gatehouse serve`: load, check, bootstrap the admin account, and serve HTTP until
//! SIGTERM or Ctrl-C; SIGHUP reloads the configuration.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use gatehouse::{
    clock::{Clock, Randomness},
    config::Config,
    logging,
    passwords::{self, AdminBootstrap},
    startup,
    store::Store,
    tasks::{Scheduler, TaskSettings},
    web,
};

use super::{
    Format,
    load::{CONFIG_ENV, DEFAULT_CONFIG, Read, print_diagnostics, read_config, recorded_history},
};

pub(crate) fn serve(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Read { loaded, embedded } = match read_config(path) {
        Ok(read) => read,
        Err(unreadable) => return Ok(unreadable),
    };
    let Some(config) = loaded.config else {
        print_diagnostics(&loaded.diagnostics, &loaded.source, Format::Human);
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

pub(crate) async fn run(config: Config, site: gatehouse::site::Site) -> anyhow::Result<ExitCode> {
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

/// SIGHUP re-reads the configuration; a bad one is refused and logged with its diagnostics.
pub(crate) async fn reload_on_sighup(state: gatehouse::state::AppState) {
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

pub(crate) async fn shutdown_signal() {
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
