//! `gatehouse-config`: reads `plugins.toml` into a typed [`Config`], resolving secrets and
//! reporting every problem as a positioned [`Diagnostic`], and renders diagnostics for people
//! and programs. It is not the conflict resolver, the plugin loader or the server; it does no
//! I/O besides reading the configuration file, the secret files it names and environment
//! variables for secrets.

mod checks;
mod diagnostic;
mod error;
mod model;
mod position;
mod render;
mod schema;
mod secret;
mod settings_refusal;
mod suggest;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Severity, codes};
pub use error::LoadError;
pub use model::{
    Behaviour, CORE_FIELDS, Config, ConnectServer, DomainConfig, FieldDef, FieldMapping,
    HOST_TASKS, HostSettings, IdpConfig, LogFormat, LoginForm, LogoutConfig, MatchField,
    OWNER_EDITABLE_CORE, PasswordHashing, PluginEntry, Provisioning, Registration, StartLimits,
    TaskSchedule, Throttle,
};
pub use position::{KeyLocations, Location};
pub use render::{render_human, render_json, summary};
pub use schema::{EnvLookup, FIELD_TYPES, USERNAME_ATTRIBUTE_HELP, known_keys, open_tables};
pub use secret::{REDACTED, Redactor, Secret};
pub use settings_refusal::{SettingsRefusal, settings_refusal};
pub use suggest::closest;

/// The path [`parse_embedded_default`] reports diagnostics against.
pub const EMBEDDED_DEFAULT_PATH: &str = "(built-in default plugins.toml)";

/// The outcome of reading a file that is valid TOML.
#[derive(Debug)]
pub struct Loaded {
    /// `Some` when there were no error diagnostics.
    pub config: Option<Config>,
    /// Every finding, ordered by position (findings about the whole file last).
    pub diagnostics: Vec<Diagnostic>,
    /// The file's text, which the diagnostics point into.
    pub source: String,
    /// The `[[plugin]]` tables and `[host]`'s plugin keys as read, even when other parts of
    /// the file have errors: `gatehouse plugins` lists the libraries whatever else is wrong.
    pub plugin_tables: PluginTables,
}

/// What locates and admits the plugin libraries: `[[plugin]]`, `[host] plugin_dir` and
/// `[host] dev_mode`.
#[derive(Clone, Debug, Default)]
pub struct PluginTables {
    pub plugins: Vec<PluginEntry>,
    pub plugin_dir: PathBuf,
    pub dev_mode: bool,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The text of the default `plugins.toml` compiled into the binary, used when no
/// configuration file exists: the repository's own `plugins.toml` (the root domain on
/// localhost, every shipped plugin, the example IdP in dev mode), so the two cannot drift.
pub fn embedded_default() -> &'static str {
    include_str!("../../../../plugins.toml")
}

/// Parses [`embedded_default`].
pub fn parse_embedded_default() -> Result<Loaded, LoadError> {
    parse(Path::new(EMBEDDED_DEFAULT_PATH), embedded_default())
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and checks the file at `path`; `{ env = ... }` secrets come from the process
/// environment.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_with(path, &process_env)
}

/// Like [`load`], with environment variables looked up by `env`.
pub fn load_with(path: &Path, env: EnvLookup<'_>) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_with(path, &text, env)
}

/// Checks `text` as the contents of `path` (which locates diagnostics and relative paths).
/// Pure apart from secrets: reads secret files and the process environment.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, LoadError> {
    parse_with(path, text, &process_env)
}

/// Like [`parse`], with environment variables looked up by `env`.
pub fn parse_with(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Loaded, LoadError> {
    let root = toml::de::DeTable::parse(text).map_err(|e| LoadError::Parse {
        path: path.to_path_buf(),
        location: e
            .span()
            .map(|s| position::LineIndex::new(text).location(s.start))
            .unwrap_or_default(),
        message: e.message().trim().to_owned(),
    })?;
    let mut schema = schema::Schema::new(path, text, env);
    let draft = schema.read(root.get_ref());
    let mut diagnostics = std::mem::take(&mut schema.diagnostics);
    diagnostics.extend(checks::check(path, &draft));
    diagnostics.sort_by_key(|d| (d.location.is_unknown(), d.location));
    let redactor = Redactor::new(schema.secrets.iter().map(Secret::expose));
    redactor.redact_all(&mut diagnostics);

    let plugin_tables = PluginTables {
        plugins: draft.plugins.clone(),
        plugin_dir: draft.host.plugin_dir.clone(),
        dev_mode: draft.host.dev_mode,
    };
    let config = (!diagnostics.iter().any(Diagnostic::is_error)).then(|| Config {
        path: path.to_path_buf(),
        source: text.to_owned(),
        host: draft.host,
        plugins: draft.plugins,
        fields: draft.fields,
        registration: draft.registration,
        connect_server: draft.connect_server,
        domains: draft.domains,
        idps: draft.idps,
        redactor,
    });
    Ok(Loaded {
        config,
        diagnostics,
        source: text.to_owned(),
        plugin_tables,
    })
}
