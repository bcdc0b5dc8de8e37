//! The long help each command prints after its options (`gatehouse <command> --help`): exit
//! statuses, environment variables, signals and an example. The text only; clap prints it.

/// The environment every command reads, and the signal that reloads a serving host.
macro_rules! common {
    () => {
        common!("")
    };
    ($more_environment:expr) => {
        concat!(
            "\nEnvironment:\n  \
             GATEHOUSE_CONFIG  the configuration file when --config is not given (else plugins.toml in\n                    \
             the working directory; only that default falls back to the embedded development\n                    \
             defaults when absent)\n  \
             RUST_LOG          the log level of `serve` and of commands that call plugins (default: info)\n",
            $more_environment,
            "\nSignals:\n  \
             A running `gatehouse serve` re-reads its configuration on SIGHUP (`kill -HUP <pid>`) or\n  \
             POST /admin/reload; a configuration with errors is refused and the running one kept.\n"
        )
    };
}

/// Exit statuses of a command that reads the configuration and does one thing.
macro_rules! exit_statuses {
    () => {
        "Exit status:\n  \
         0  done\n  \
         1  it failed, or the configuration has errors (the message says which and why)\n  \
         2  the configuration file could not be read or is not valid TOML\n"
    };
}

pub(crate) const SERVE: &str = concat!(
    "Exit status:\n  \
     0  stopped by SIGTERM or Ctrl-C after finishing the requests in flight\n  \
     1  the configuration has errors (each printed with its line and fix), or the database or\n     \
     the listen address could not be opened\n  \
     2  the configuration file could not be read or is not valid TOML\n",
    common!(
        "  GATEHOUSE_ADMIN_PASSWORD\n                    \
         the password of the `admin` account created when the database has no\n                    \
         administrator; ignored (with a warning) once one exists. Without it a one-time\n                    \
         password is generated, printed once, and must be changed at the first sign-in.\n"
    ),
    "  SIGTERM and Ctrl-C stop serving after the requests in flight.\n",
    "\nExample:\n  gatehouse serve --config /etc/gatehouse/plugins.toml\n"
);

pub(crate) const CHECK: &str = concat!(
    "Exit status:\n  \
     0  no errors (warnings allowed)\n  \
     1  at least one error\n  \
     2  the file could not be read or is not valid TOML (with --format json, still one object)\n",
    common!(),
    "\nEvery code is explained in docs/diagnostics.md.\n",
    "\nExample:\n  gatehouse check --config /etc/gatehouse/plugins.toml && kill -HUP \"$(pidof gatehouse)\"\n"
);

pub(crate) const EXPLAIN: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse explain --domain acme\n"
);

pub(crate) const PLUGINS: &str = concat!(
    "Exit status:\n  \
     0  every enabled library loaded and the file has no errors\n  \
     1  a library did not load, or the file has errors (the table is printed anyway)\n  \
     2  the file could not be read or is not valid TOML\n",
    common!(),
    "\nExample:\n  gatehouse plugins --format json\n"
);

pub(crate) const USERS_LINK: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse users link --username alice --idp okta\n"
);

pub(crate) const USERS_UNLINK: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse users unlink --username alice --idp okta\n"
);

pub(crate) const TASKS_LIST: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse tasks list --format json\n"
);

pub(crate) const TASKS_RUN: &str = concat!(
    "Exit status:\n  \
     0  the task ran and succeeded\n  \
     1  it failed or was skipped, is unknown, or is running on another host\n  \
     2  the configuration file could not be read or is not valid TOML\n",
    common!(),
    "\nExample:\n  gatehouse tasks run users --idp hq\n"
);

pub(crate) const DIRECTORY_IMPORT: &str = concat!(
    "Exit status:\n  \
     0  imported\n  \
     1  a record was refused (named by its index and key) and nothing was written, or the\n     \
     configuration has errors\n  \
     2  the configuration file could not be read or is not valid TOML\n",
    common!(),
    "\nExample:\n  gatehouse directory import directory.json\n"
);

pub(crate) const DIRECTORY_EXPORT: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse directory export > directory.json\n"
);

pub(crate) const CONNECT_SERVERS: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse connect servers --format json\n"
);

pub(crate) const CONNECT_NEW_SERVER: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse connect new-server --idp hq\n"
);

pub(crate) const CONNECT_MIGRATION_PREVIEW: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse connect migration-preview --idp hq\n"
);

pub(crate) const CONNECT_CLIENTS: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse connect clients\n"
);

pub(crate) const CONNECT_ADD_CLIENT: &str = concat!(
    "Exit status:\n  \
     0  the client is registered\n  \
     1  nothing was registered (the client's refusal, or the serving host did not answer its\n     \
     call-back), or the configuration has errors\n  \
     2  the configuration file could not be read or is not valid TOML\n",
    common!(),
    "\nExample:\n  gatehouse connect add-client --name Branch --url https://branch.example.com \\\n    \
     --setup-secret 0123abcd… --audience AUD-1 --sync-profile-fields\n"
);

pub(crate) const IDPS: &str = concat!(
    "Exit status:\n  \
     0  every IdP is served\n  \
     1  an IdP is not served (its plugin did not load, its settings were refused, or a rule\n     \
     stops it), or the configuration has errors\n  \
     2  the configuration file could not be read or is not valid TOML\n",
    common!(),
    "\nExample:\n  gatehouse idps --format json\n"
);

pub(crate) const USERS_LIST: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse users list --format json\n"
);

pub(crate) const USERS_SHOW: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse users show alice\n"
);

pub(crate) const USERS_SET_PASSWORD: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nThe password is read from a prompt on a terminal (twice, not echoed), else one line of\n\
     standard input; never from an argument, which other users could see.\n",
    "\nExample:\n  gatehouse users set-password alice\n  \
     printf '%s\\n' \"$NEW_PASSWORD\" | gatehouse users set-password alice\n"
);

pub(crate) const USERS_SUSPEND: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse users suspend alice\n"
);

pub(crate) const USERS_UNSUSPEND: &str = concat!(
    exit_statuses!(),
    common!(),
    "\nExample:\n  gatehouse users unsuspend alice\n"
);
