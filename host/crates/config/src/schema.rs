//! The schema of `plugins.toml`: walks the parsed TOML (with spans), builds the typed model
//! with defaults, resolves secrets and reports every key-level problem in one pass. It is not
//! the cross-reference check between tables (see `checks`) nor the conflict resolver.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::diagnostic::{Diagnostic, codes};
use crate::model::{
    Behaviour, ConnectServer, DomainConfig, FieldDef, FieldMapping, HOST_TASKS, HostSettings,
    IdpConfig, LogFormat, LoginForm, LogoutConfig, MatchField, OWNER_EDITABLE_CORE,
    PasswordHashing, PluginEntry, Provisioning, Registration, StartLimits, TaskSchedule, Throttle,
};
use crate::position::{KeyLocations, LineIndex, Location};
use crate::secret::{Secret, trim_one_newline};
use crate::suggest::{closest, list, quoted_choices};

/// Looks up an environment variable for `{ env = "NAME" }`.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

type Value<'i> = Spanned<DeValue<'i>>;
type Entry<'t, 'i> = (&'t Spanned<DeString<'i>>, &'t Value<'i>);

/// How to fix a missing or empty `username_attribute` (the resolver says it too).
pub const USERNAME_ATTRIBUTE_HELP: &str = "add the IdP attribute or claim that identifies the user, e.g. `username_attribute = \"email\"`";

const TOP_KEYS: &[&str] = &[
    "host",
    "plugin",
    "field",
    "registration",
    "connect_server",
    "domain",
    "idp",
];
const HOST_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "database",
    "plugin_dir",
    "dev_mode",
    "log_format",
    "session_lifetime_minutes",
    "pending_login_minutes",
    "plugin_call_timeout_seconds",
    "task_timeout_seconds",
    "http_timeout_seconds",
    "http_max_response_bytes",
    "inbound_max_body_bytes",
    "plugin_calls_per_idp",
    "plugin_calls_max",
    "idp_breaker_failures",
    "idp_breaker_cooldown_seconds",
    "login_throttle",
    "passwords",
    "limits",
    "trusted_proxies",
    "scheduler",
    "audit_retention_days",
    "tasks",
    "metrics_token",
];
/// The shortest `[host] metrics_token` accepted.
const MIN_METRICS_TOKEN_CHARS: usize = 16;
/// The keys of one task's schedule (`[host.tasks]`, an IdP's `tasks`).
const TASK_SCHEDULE_KEYS: &[&str] = &["every_minutes", "enabled"];
const THROTTLE_KEYS: &[&str] = &[
    "max_failures_per_account",
    "max_failures_per_ip",
    "window_minutes",
];
const PASSWORD_KEYS: &[&str] = &["memory_kib", "iterations", "parallelism", "queue"];
const LIMITS_KEYS: &[&str] = &["starts_per_address_per_minute"];
const PLUGIN_KEYS: &[&str] = &["id", "library", "enabled"];
const FIELD_KEYS: &[&str] = &["name", "mandatory", "type", "user_editable"];
/// The values `[[field]] type` accepts (the platform's profile field types).
pub const FIELD_TYPES: &[&str] = &[
    "text", "textarea", "checkbox", "menu", "date", "datetime", "url",
];
const REGISTRATION_KEYS: &[&str] = &["require_names", "user_editable_core"];
const CONNECT_SERVER_KEYS: &[&str] = &["enabled", "sync_passwords"];
const DOMAIN_KEYS: &[&str] = &[
    "name",
    "hosts",
    "branch",
    "login_form",
    "force_external_sso_url",
    "guest_access",
];
const IDP_KEYS: &[&str] = &[
    "id",
    "domain",
    "plugin",
    "name",
    "behaviour",
    "redirect_confirmed",
    "username_attribute",
    "match_field",
    "match_case_insensitive",
    "trust_email",
    "logout",
    "provisioning",
    "tasks",
    "http_max_response_bytes",
    "settings",
];
const LOGOUT_KEYS: &[&str] = &["landing_url", "at_idp"];
const PROVISIONING_KEYS: &[&str] = &["create_users", "update_existing", "lock_fields", "fields"];

/// Every table whose keys the parser checks, named as `docs/configuration.md` heads it,
/// with the keys it accepts: the very lists the `unknown-key` diagnostic checks against
/// (each list passed to `check_keys` must be here). `""` is the top level of the file.
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("[host]", HOST_KEYS),
    ("[host.login_throttle]", THROTTLE_KEYS),
    ("[host.passwords]", PASSWORD_KEYS),
    ("[host.limits]", LIMITS_KEYS),
    ("[host.tasks]", HOST_TASKS),
    ("[host.tasks.<task>]", TASK_SCHEDULE_KEYS),
    ("[[plugin]]", PLUGIN_KEYS),
    ("[[field]]", FIELD_KEYS),
    ("[registration]", REGISTRATION_KEYS),
    ("[connect_server]", CONNECT_SERVER_KEYS),
    ("[[domain]]", DOMAIN_KEYS),
    ("[[idp]]", IDP_KEYS),
    ("[idp.logout]", LOGOUT_KEYS),
    ("[idp.provisioning]", PROVISIONING_KEYS),
    ("[idp.tasks.<task>]", TASK_SCHEDULE_KEYS),
];

/// Tables that take any key: a plugin's own settings (checked by the plugin), the names of
/// a plugin's tasks (checked against its manifest) and the field-to-attribute mapping
/// (checked against the declared fields).
const OPEN_TABLES: &[&str] = &["[idp.settings]", "[idp.tasks]", "[idp.provisioning.fields]"];

/// The keys `plugins.toml` accepts, per table (`""` is the top level): what `unknown-key`
/// checks against, for tools and the test that keeps `docs/configuration.md` in step.
pub fn known_keys() -> &'static [(&'static str, &'static [&'static str])] {
    KNOWN_KEYS
}

/// The tables in which any key is accepted (each checked later by its own rule).
pub fn open_tables() -> &'static [&'static str] {
    OPEN_TABLES
}

/// Everything the schema pass read; tables with errors are kept (with defaults) so that the
/// cross-reference checks can still run.
pub(crate) struct Draft {
    pub host: HostSettings,
    pub plugins: Vec<PluginEntry>,
    pub fields: Vec<FieldDef>,
    pub registration: Registration,
    pub connect_server: ConnectServer,
    pub domains: Vec<DomainConfig>,
    pub idps: Vec<IdpConfig>,
}

/// What a diagnostic is about: the table (for messages) and the IdP / domain it concerns.
#[derive(Clone, Default)]
struct Scope {
    table: String,
    idp: Option<String>,
    domain: Option<String>,
}

impl Scope {
    fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            ..Self::default()
        }
    }

    fn nested(&self, table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            ..self.clone()
        }
    }
}

/// A table being read: its entries, what it is, where it starts, and the prefix its keys are
/// recorded under in the owning struct's [`KeyLocations`].
struct Tab<'t, 'i> {
    table: &'t DeTable<'i>,
    scope: Scope,
    location: Location,
    prefix: String,
}

pub(crate) struct Schema<'a> {
    file: &'a Path,
    base_dir: PathBuf,
    index: LineIndex<'a>,
    env: EnvLookup<'a>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Every value resolved from `{ env }` or `{ file }`, for the [`crate::Redactor`].
    pub(crate) secrets: Vec<Secret>,
}

fn sorted<'t, 'i>(table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
    let mut entries: Vec<Entry<'t, 'i>> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn integer(v: &DeValue<'_>) -> Option<i128> {
    let i = v.as_integer()?;
    i128::from_str_radix(i.as_str(), i.radix()).ok()
}

/// `[a-z0-9][a-z0-9_-]*`
fn is_url_safe(id: &str) -> bool {
    let mut bytes = id.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn url_safe_version(id: &str) -> String {
    let mut out: String = id
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_start_matches(['-', '_']).to_owned();
    if out.is_empty() {
        out.push_str("my-idp");
    }
    out
}

fn json_pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn http_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(String::from("it has no host"));
    }
    Ok(url)
}

impl<'a> Schema<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str, env: EnvLookup<'a>) -> Self {
        Self {
            file,
            base_dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            index: LineIndex::new(text),
            env,
            diagnostics: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn loc(&self, span: std::ops::Range<usize>) -> Location {
        self.index.location(span.start)
    }

    fn emit(
        &mut self,
        code: &'static str,
        message: String,
        location: Location,
        scope: &Scope,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::error(code, message, self.file, location);
        d.idp = scope.idp.clone();
        d.domain = scope.domain.clone();
        d.help = help;
        self.diagnostics.push(d);
    }

    fn invalid(&mut self, v: &Value<'_>, scope: &Scope, message: String, help: String) {
        let at = self.loc(v.span());
        self.emit(codes::INVALID_VALUE, message, at, scope, Some(help));
    }

    fn wrong_type(
        &mut self,
        v: &Value<'_>,
        key: &str,
        scope: &Scope,
        expected: &str,
        help: String,
    ) {
        let message = format!(
            "`{key}` in {} must be {expected}, found {}",
            scope.table,
            a_type(v.get_ref())
        );
        self.invalid(v, scope, message, help);
    }

    // ----- keys -------------------------------------------------------------------------

    fn check_keys(&mut self, tab: &Tab<'_, '_>, known: &[&str], extra_help: Option<&str>) {
        for (k, _) in sorted(tab.table) {
            let key: &str = k.get_ref();
            if known.contains(&key) {
                continue;
            }
            let help = match closest(key, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => {
                    let known_list = format!("{} accepts {}", tab.scope.table, list(known));
                    match extra_help {
                        Some(extra) => format!("{extra}; {known_list}"),
                        None => known_list,
                    }
                }
            };
            let at = self.loc(k.span());
            self.emit(
                codes::UNKNOWN_KEY,
                format!("unknown key `{key}` in {}", tab.scope.table),
                at,
                &tab.scope,
                Some(help),
            );
        }
    }

    /// The value of `key`, recording where it was written.
    fn get<'t, 'i>(
        &self,
        tab: &Tab<'t, 'i>,
        key: &str,
        keys: &mut KeyLocations,
    ) -> Option<&'t Value<'i>> {
        let (k, v) = tab.table.get_key_value(key)?;
        keys.insert(
            format!("{}{key}", tab.prefix),
            self.loc(k.span()),
            self.loc(v.span()),
        );
        Some(v)
    }

    // ----- typed values -------------------------------------------------------------------

    fn string(&mut self, v: &Value<'_>, key: &str, scope: &Scope) -> Option<String> {
        match v.get_ref().as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(
                    v,
                    key,
                    scope,
                    "a string",
                    format!("put the value in quotes: `{key} = \"...\"`"),
                );
                None
            }
        }
    }

    fn nonempty(&mut self, v: &Value<'_>, key: &str, scope: &Scope, hint: &str) -> Option<String> {
        let s = self.string(v, key, scope)?;
        if s.trim().is_empty() {
            self.invalid(
                v,
                scope,
                format!("`{key}` in {} must not be empty", scope.table),
                hint.to_owned(),
            );
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, v: &Value<'_>, key: &str, scope: &Scope) -> Option<bool> {
        let b = v.get_ref().as_bool();
        if b.is_none() {
            self.wrong_type(
                v,
                key,
                scope,
                "true or false",
                format!("write `{key} = true` or `{key} = false` (without quotes)"),
            );
        }
        b
    }

    fn count(&mut self, v: &Value<'_>, key: &str, scope: &Scope, min: u32, eg: u32) -> Option<u32> {
        self.count_in(v, key, scope, min..=u32::MAX, eg)
    }

    /// A whole number within `range` (`eg` is the example the help shows).
    fn count_in(
        &mut self,
        v: &Value<'_>,
        key: &str,
        scope: &Scope,
        range: std::ops::RangeInclusive<u32>,
        eg: u32,
    ) -> Option<u32> {
        let Some(n) = integer(v.get_ref()) else {
            self.wrong_type(
                v,
                key,
                scope,
                "a whole number",
                format!("write a number without quotes, e.g. `{key} = {eg}`"),
            );
            return None;
        };
        match u32::try_from(n) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.invalid(
                    v,
                    scope,
                    format!(
                        "`{key}` in {} must be from {} to {}, found {n}",
                        scope.table,
                        range.start(),
                        range.end()
                    ),
                    format!("e.g. `{key} = {eg}`"),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        v: &Value<'_>,
        key: &str,
        scope: &Scope,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
        let Some(s) = v.get_ref().as_str() else {
            self.wrong_type(
                v,
                key,
                scope,
                &format!("one of {}", quoted_choices(&names)),
                format!("write e.g. `{key} = \"{}\"`", names.first().unwrap_or(&"")),
            );
            return None;
        };
        if let Some(found) = all.iter().find(|&&t| name(t) == s) {
            return Some(*found);
        }
        let help = match closest(s, &names) {
            Some(best) => format!("did you mean \"{best}\"?"),
            None => format!("use one of {}", quoted_choices(&names)),
        };
        self.invalid(
            v,
            scope,
            format!(
                "`{key}` in {} must be one of {}, found \"{s}\"",
                scope.table,
                quoted_choices(&names)
            ),
            help,
        );
        None
    }

    fn table_value<'t, 'i>(
        &mut self,
        v: &'t Value<'i>,
        key: &str,
        scope: &Scope,
        help: String,
    ) -> Option<&'t DeTable<'i>> {
        let t = v.get_ref().as_table();
        if t.is_none() {
            self.wrong_type(v, key, scope, "a table", help);
        }
        t
    }

    // ----- keyed helpers ------------------------------------------------------------------

    fn opt_nonempty(
        &mut self,
        tab: &Tab<'_, '_>,
        keys: &mut KeyLocations,
        key: &str,
        hint: &str,
    ) -> Option<String> {
        let v = self.get(tab, key, keys)?;
        self.nonempty(v, key, &tab.scope, hint)
    }

    /// A required non-empty string; `missing-key` at the table when absent.
    fn required(
        &mut self,
        tab: &Tab<'_, '_>,
        keys: &mut KeyLocations,
        key: &str,
        hint: &str,
    ) -> String {
        match self.get(tab, key, keys) {
            Some(v) => self.nonempty(v, key, &tab.scope, hint).unwrap_or_default(),
            None => {
                self.emit(
                    codes::MISSING_KEY,
                    format!("{} is missing the required key `{key}`", tab.scope.table),
                    tab.location,
                    &tab.scope,
                    Some(hint.to_owned()),
                );
                String::new()
            }
        }
    }

    fn flag(
        &mut self,
        tab: &Tab<'_, '_>,
        keys: &mut KeyLocations,
        key: &str,
        default: bool,
    ) -> bool {
        self.get(tab, key, keys)
            .and_then(|v| self.boolean(v, key, &tab.scope))
            .unwrap_or(default)
    }

    fn number(
        &mut self,
        tab: &Tab<'_, '_>,
        keys: &mut KeyLocations,
        key: &str,
        default: u32,
        min: u32,
    ) -> u32 {
        self.get(tab, key, keys)
            .and_then(|v| self.count(v, key, &tab.scope, min, default))
            .unwrap_or(default)
    }

    /// [`Self::number`] within `range`.
    fn number_in(
        &mut self,
        tab: &Tab<'_, '_>,
        keys: &mut KeyLocations,
        key: &str,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> u32 {
        self.get(tab, key, keys)
            .and_then(|v| self.count_in(v, key, &tab.scope, range, default))
            .unwrap_or(default)
    }

    fn pick<T: Copy + Default>(
        &mut self,
        tab: &Tab<'_, '_>,
        keys: &mut KeyLocations,
        key: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> T {
        self.get(tab, key, keys)
            .and_then(|v| self.choice(v, key, &tab.scope, all, name))
            .unwrap_or_default()
    }

    // ----- secrets ------------------------------------------------------------------------

    /// `None` when `table` is an ordinary table; `Some(None)` when it is a secret reference
    /// that failed (reported); `Some(Some(secret))` when resolved.
    fn secret_ref(
        &mut self,
        table: &DeTable<'_>,
        at: &Value<'_>,
        key: &str,
        scope: &Scope,
    ) -> Option<Option<Secret>> {
        let mut names: Vec<&str> = table.keys().map(|k| k.get_ref().as_ref()).collect();
        names.sort_unstable();
        match names.as_slice() {
            ["env"] | ["file"] => {}
            ["env", "file"] => {
                self.invalid(
                    at,
                    scope,
                    format!("`{key}` names both an environment variable and a file"),
                    String::from(
                        "a secret comes from one place: keep either `env = \"NAME\"` or `file = \"path\"`",
                    ),
                );
                return Some(None);
            }
            _ => return None,
        }
        let (k, v) = table.iter().next()?;
        let source: &str = k.get_ref();
        let inner_key = format!("{key}.{source}");
        let Some(name) = self.nonempty(
            v,
            &inner_key,
            scope,
            if source == "env" {
                "name the environment variable, e.g. `{ env = \"CLIENT_SECRET\" }`"
            } else {
                "name the file, e.g. `{ file = \"secrets/client_secret\" }`"
            },
        ) else {
            return Some(None);
        };
        let where_ = self.loc(v.span());
        if source == "env" {
            match (self.env)(&name).filter(|s| !s.is_empty()) {
                Some(value) => Some(Some(self.keep(Secret::new(value)))),
                None => {
                    self.emit(
                        codes::SECRET_UNAVAILABLE,
                        format!(
                            "`{key}` comes from the environment variable `{name}`, which is not set or empty"
                        ),
                        where_,
                        scope,
                        Some(format!(
                            "set `{name}` in the environment Gatehouse runs in, or use `{{ file = \"path\" }}`"
                        )),
                    );
                    Some(None)
                }
            }
        } else {
            let path = self.base_dir.join(&name);
            let problem = match std::fs::read_to_string(&path) {
                Ok(content) => {
                    let content = trim_one_newline(content);
                    if !content.is_empty() {
                        return Some(Some(self.keep(Secret::new(content))));
                    }
                    String::from("is empty")
                }
                Err(e) => format!("could not be read: {e}"),
            };
            self.emit(
                codes::SECRET_UNAVAILABLE,
                format!(
                    "`{key}` comes from the file `{}`, which {problem}",
                    path.display()
                ),
                where_,
                scope,
                Some(String::from(
                    "put the secret in that file, readable by the user Gatehouse runs as (a relative path is relative to the configuration file's directory)",
                )),
            );
            Some(None)
        }
    }

    /// Remembers a value from the environment or a file, so it is redacted wherever shown.
    fn keep(&mut self, secret: Secret) -> Secret {
        self.secrets.push(secret.clone());
        secret
    }

    /// A string, or a `{ env }` / `{ file }` reference.
    fn secret(&mut self, v: &Value<'_>, key: &str, scope: &Scope) -> Option<Secret> {
        match v.get_ref() {
            DeValue::String(s) => Some(Secret::new(s.as_ref())),
            DeValue::Table(t) => match self.secret_ref(t, v, key, scope) {
                Some(resolved) => resolved,
                None => {
                    self.wrong_type(
                        v,
                        key,
                        scope,
                        "a string, `{ env = \"NAME\" }` or `{ file = \"path\" }`",
                        format!("e.g. `{key} = {{ env = \"GATEHOUSE_DATABASE\" }}`"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(
                    v,
                    key,
                    scope,
                    "a string, `{ env = \"NAME\" }` or `{ file = \"path\" }`",
                    format!("put the value in quotes: `{key} = \"...\"`"),
                );
                None
            }
        }
    }

    // ----- the file -----------------------------------------------------------------------

    pub(crate) fn read(&mut self, root: &DeTable<'_>) -> Draft {
        let top = Tab {
            table: root,
            scope: Scope::new("the top level of the file"),
            location: Location::new(1, 1),
            prefix: String::new(),
        };
        self.check_keys(&top, TOP_KEYS, None);

        let host = match root.get("host") {
            Some(v) => match self.table_value(
                v,
                "host",
                &top.scope,
                String::from("write the host settings under a `[host]` header"),
            ) {
                Some(t) => self.host(t, self.loc(v.span())),
                None => self.default_host(),
            },
            None => self.default_host(),
        };
        let registration = match root.get("registration") {
            Some(v) => match self.table_value(
                v,
                "registration",
                &top.scope,
                String::from("write `[registration]` followed by `require_names = true`"),
            ) {
                Some(t) => self.registration(t, self.loc(v.span())),
                None => Registration::default(),
            },
            None => Registration::default(),
        };
        let connect_server = match root.get("connect_server") {
            Some(v) => match self.table_value(
                v,
                "connect_server",
                &top.scope,
                String::from("write `[connect_server]` followed by `enabled = true`"),
            ) {
                Some(t) => self.connect_server(t, self.loc(v.span())),
                None => ConnectServer::default(),
            },
            None => ConnectServer::default(),
        };
        let plugins = self
            .array_of_tables(root, "plugin")
            .into_iter()
            .map(|(t, at)| self.plugin(t, at))
            .collect();
        let fields = self
            .array_of_tables(root, "field")
            .into_iter()
            .map(|(t, at)| self.field(t, at))
            .collect();
        let domains = self
            .array_of_tables(root, "domain")
            .into_iter()
            .map(|(t, at)| self.domain(t, at))
            .collect();
        let idps = self
            .array_of_tables(root, "idp")
            .into_iter()
            .map(|(t, at)| self.idp(t, at))
            .collect();
        Draft {
            host,
            plugins,
            fields,
            registration,
            connect_server,
            domains,
            idps,
        }
    }

    fn array_of_tables<'t, 'i>(
        &mut self,
        root: &'t DeTable<'i>,
        key: &str,
    ) -> Vec<(&'t DeTable<'i>, Location)> {
        let scope = Scope::new("the top level of the file");
        let Some(v) = root.get(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => out.push((t, self.loc(item.span()))),
                        other => self.invalid(
                            item,
                            &scope,
                            format!(
                                "each `{key}` entry must be a table, found {}",
                                a_type(other)
                            ),
                            format!("declare each one under its own `[[{key}]]` header"),
                        ),
                    }
                }
                out
            }
            DeValue::Table(t) => {
                self.invalid(
                    v,
                    &scope,
                    format!("`{key}` must be a list of tables, written `[[{key}]]`"),
                    format!("write `[[{key}]]` with two brackets, once per {key}"),
                );
                vec![(t, self.loc(v.span()))]
            }
            other => {
                self.invalid(
                    v,
                    &scope,
                    format!("`{key}` must be a list of tables, found {}", a_type(other)),
                    format!("declare each {key} under its own `[[{key}]]` header"),
                );
                Vec::new()
            }
        }
    }

    fn default_host(&self) -> HostSettings {
        let mut host = HostSettings::default();
        host.plugin_dir = self.base_dir.join(&host.plugin_dir);
        host
    }

    fn host(&mut self, table: &DeTable<'_>, location: Location) -> HostSettings {
        let tab = Tab {
            table,
            scope: Scope::new("[host]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, HOST_KEYS, None);
        let mut h = self.default_host();
        h.location = location;
        let mut keys = KeyLocations::default();

        if let Some(v) = self.get(&tab, "listen", &mut keys)
            && let Some(s) = self.string(v, "listen", &tab.scope)
        {
            if s.parse::<std::net::SocketAddr>().is_ok() {
                h.listen = s;
            } else {
                self.invalid(
                    v,
                    &tab.scope,
                    format!("`listen` must be an IP address and port, found \"{s}\""),
                    String::from(
                        "write e.g. `listen = \"127.0.0.1:8080\"` or `listen = \"[::]:8080\"` (an IP address, not a host name)",
                    ),
                );
            }
        }
        if let Some(v) = self.get(&tab, "public_url", &mut keys)
            && let Some(s) = self.string(v, "public_url", &tab.scope)
        {
            match http_url(&s) {
                Ok(url) => h.public_url = url,
                Err(why) => self.invalid(
                    v,
                    &tab.scope,
                    format!("`public_url` must be an http or https URL ({why}), found \"{s}\""),
                    String::from(
                        "write the address browsers use to reach Gatehouse, e.g. `public_url = \"https://sso.example.com\"`",
                    ),
                ),
            }
        }
        if let Some(v) = self.get(&tab, "database", &mut keys)
            && let Some(secret) = self.secret(v, "database", &tab.scope)
        {
            let db = secret.expose();
            if ["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|p| db.starts_with(p))
            {
                h.database = secret;
            } else {
                // Never echo the value: a database URL may hold a password.
                self.invalid(
                    v,
                    &tab.scope,
                    String::from(
                        "`database` must be a database URL starting with sqlite:, postgres: or postgresql:",
                    ),
                    String::from(
                        "write e.g. `database = \"sqlite://gatehouse.db\"` or `database = \"postgres://user@host/db\"`",
                    ),
                );
            }
        }
        if let Some(dir) = self.opt_nonempty(
            &tab,
            &mut keys,
            "plugin_dir",
            "name the directory holding the plugin libraries, e.g. `plugin_dir = \"target/release\"`",
        ) {
            h.plugin_dir = self.base_dir.join(dir);
        }
        h.dev_mode = self.flag(&tab, &mut keys, "dev_mode", false);
        h.log_format = self.pick(
            &tab,
            &mut keys,
            "log_format",
            LogFormat::ALL,
            LogFormat::as_str,
        );
        h.session_lifetime_minutes =
            self.number(&tab, &mut keys, "session_lifetime_minutes", 480, 1);
        h.pending_login_minutes = self.number(&tab, &mut keys, "pending_login_minutes", 10, 1);
        h.plugin_call_timeout_seconds =
            self.number(&tab, &mut keys, "plugin_call_timeout_seconds", 15, 1);
        h.task_timeout_seconds = self.number(&tab, &mut keys, "task_timeout_seconds", 600, 1);
        h.http_timeout_seconds = self.number(&tab, &mut keys, "http_timeout_seconds", 10, 1);
        h.http_max_response_bytes =
            self.number(&tab, &mut keys, "http_max_response_bytes", 1_048_576, 1);
        h.inbound_max_body_bytes =
            self.number(&tab, &mut keys, "inbound_max_body_bytes", 262_144, 1);
        h.plugin_calls_per_idp = self.number(&tab, &mut keys, "plugin_calls_per_idp", 64, 1);
        h.plugin_calls_max = self.number(&tab, &mut keys, "plugin_calls_max", 256, 1);
        h.idp_breaker_failures = self.number(&tab, &mut keys, "idp_breaker_failures", 5, 1);
        h.idp_breaker_cooldown_seconds =
            self.number(&tab, &mut keys, "idp_breaker_cooldown_seconds", 30, 1);
        if let Some(v) = self.get(&tab, "login_throttle", &mut keys)
            && let Some(t) = self.table_value(
                v,
                "login_throttle",
                &tab.scope,
                String::from("write the throttle under a `[host.login_throttle]` header"),
            )
        {
            h.login_throttle = self.throttle(t, self.loc(v.span()));
        }
        if let Some(v) = self.get(&tab, "passwords", &mut keys)
            && let Some(t) = self.table_value(
                v,
                "passwords",
                &tab.scope,
                String::from("write the hashing settings under a `[host.passwords]` header"),
            )
        {
            h.passwords = self.password_hashing(t, self.loc(v.span()));
        }
        if let Some(v) = self.get(&tab, "limits", &mut keys)
            && let Some(t) = self.table_value(
                v,
                "limits",
                &tab.scope,
                String::from("write the limits under a `[host.limits]` header"),
            )
        {
            h.limits = self.limits(t, self.loc(v.span()));
        }
        if let Some(v) = self.get(&tab, "trusted_proxies", &mut keys) {
            h.trusted_proxies = self.cidrs(v, "trusted_proxies", &tab.scope);
        }
        h.scheduler = self.flag(&tab, &mut keys, "scheduler", true);
        h.audit_retention_days = self.number(&tab, &mut keys, "audit_retention_days", 90, 1);
        if let Some(v) = self.get(&tab, "tasks", &mut keys) {
            h.tasks =
                self.task_schedules(v, &tab.scope, "[host.tasks]", Some(HOST_TASKS), &mut keys);
        }
        if let Some(v) = self.get(&tab, "metrics_token", &mut keys)
            && let Some(token) = self.secret(v, "metrics_token", &tab.scope)
        {
            // A bearer token short enough to guess would open the endpoint to anyone.
            if token.expose().chars().count() >= MIN_METRICS_TOKEN_CHARS {
                h.metrics_token = Some(token);
            } else {
                self.invalid(
                    v,
                    &tab.scope,
                    format!(
                        "`metrics_token` must be at least {MIN_METRICS_TOKEN_CHARS} characters long"
                    ),
                    String::from(
                        "generate one, e.g. `openssl rand -hex 32`, and keep it out of the file: `metrics_token = { env = \"GATEHOUSE_METRICS_TOKEN\" }`",
                    ),
                );
            }
        }
        h.key_locations = keys;
        h
    }

    /// A list of CIDR blocks (`"10.0.0.0/8"`, `"::1/128"`); a bare address is one host.
    fn cidrs(&mut self, v: &Value<'_>, key: &str, scope: &Scope) -> Vec<ipnet::IpNet> {
        let help = format!("write e.g. `{key} = [\"10.0.0.0/8\", \"::1/128\"]`");
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(v, key, scope, "a list of CIDR blocks", help);
            return Vec::new();
        };
        let mut blocks = Vec::new();
        for item in items.iter() {
            let Some(text) = item.get_ref().as_str() else {
                self.wrong_type(item, key, scope, "a list of strings", help.clone());
                continue;
            };
            let parsed = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(block) => blocks.push(block.trunc()),
                Err(_) => self.invalid(
                    item,
                    scope,
                    format!("\"{text}\" in `{key}` is not an IP address or CIDR block"),
                    help.clone(),
                ),
            }
        }
        blocks
    }

    fn throttle(&mut self, table: &DeTable<'_>, location: Location) -> Throttle {
        let tab = Tab {
            table,
            scope: Scope::new("[host.login_throttle]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, THROTTLE_KEYS, None);
        let mut keys = KeyLocations::default();
        let defaults = Throttle::default();
        Throttle {
            max_failures_per_account: self.number(
                &tab,
                &mut keys,
                "max_failures_per_account",
                defaults.max_failures_per_account,
                1,
            ),
            max_failures_per_ip: self.number(
                &tab,
                &mut keys,
                "max_failures_per_ip",
                defaults.max_failures_per_ip,
                1,
            ),
            window_minutes: self.number(
                &tab,
                &mut keys,
                "window_minutes",
                defaults.window_minutes,
                1,
            ),
            location,
            key_locations: keys,
        }
    }

    /// `[host.passwords]`: argon2id's cost for new hashes and the hashing queue.
    fn password_hashing(&mut self, table: &DeTable<'_>, location: Location) -> PasswordHashing {
        let tab = Tab {
            table,
            scope: Scope::new("[host.passwords]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, PASSWORD_KEYS, None);
        let mut keys = KeyLocations::default();
        let defaults = PasswordHashing::default();
        PasswordHashing {
            memory_kib: self.number_in(
                &tab,
                &mut keys,
                "memory_kib",
                defaults.memory_kib,
                PasswordHashing::MEMORY_KIB,
            ),
            iterations: self.number_in(
                &tab,
                &mut keys,
                "iterations",
                defaults.iterations,
                PasswordHashing::ITERATIONS,
            ),
            parallelism: self.number_in(
                &tab,
                &mut keys,
                "parallelism",
                defaults.parallelism,
                PasswordHashing::PARALLELISM,
            ),
            queue: self.number_in(
                &tab,
                &mut keys,
                "queue",
                defaults.queue,
                PasswordHashing::QUEUE,
            ),
            location,
            key_locations: keys,
        }
    }

    /// `[host.limits]`: what one client may ask of the host.
    fn limits(&mut self, table: &DeTable<'_>, location: Location) -> StartLimits {
        let tab = Tab {
            table,
            scope: Scope::new("[host.limits]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, LIMITS_KEYS, None);
        let mut keys = KeyLocations::default();
        let defaults = StartLimits::default();
        StartLimits {
            starts_per_address_per_minute: self.number(
                &tab,
                &mut keys,
                "starts_per_address_per_minute",
                defaults.starts_per_address_per_minute,
                1,
            ),
            location,
            key_locations: keys,
        }
    }

    fn registration(&mut self, table: &DeTable<'_>, location: Location) -> Registration {
        let tab = Tab {
            table,
            scope: Scope::new("[registration]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, REGISTRATION_KEYS, None);
        let mut keys = KeyLocations::default();
        let require_names = self.flag(&tab, &mut keys, "require_names", true);
        let user_editable_core = match self.get(&tab, "user_editable_core", &mut keys) {
            Some(v) => self.editable_core(v, &tab.scope),
            None => Registration::default().user_editable_core,
        };
        Registration {
            require_names,
            user_editable_core,
            location,
            key_locations: keys,
        }
    }

    fn connect_server(&mut self, table: &DeTable<'_>, location: Location) -> ConnectServer {
        let tab = Tab {
            table,
            scope: Scope::new("[connect_server]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, CONNECT_SERVER_KEYS, None);
        let mut keys = KeyLocations::default();
        let enabled = self.flag(&tab, &mut keys, "enabled", false);
        let sync_passwords = self.flag(&tab, &mut keys, "sync_passwords", false);
        ConnectServer {
            enabled,
            sync_passwords,
            location,
            key_locations: keys,
        }
    }

    /// `user_editable_core`: a list drawn from [`OWNER_EDITABLE_CORE`].
    fn editable_core(&mut self, v: &Value<'_>, scope: &Scope) -> Vec<String> {
        const KEY: &str = "user_editable_core";
        let help = format!(
            "list the core fields users may change themselves, e.g. `{KEY} = [\"firstname\", \"lastname\"]` (any of {})",
            quoted_choices(&OWNER_EDITABLE_CORE)
        );
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(v, KEY, scope, "a list of field names", help);
            return Registration::default().user_editable_core;
        };
        let mut fields = Vec::new();
        for item in items.iter() {
            let Some(name) = item.get_ref().as_str() else {
                self.wrong_type(item, KEY, scope, "a list of strings", help.clone());
                continue;
            };
            if OWNER_EDITABLE_CORE.contains(&name) {
                if !fields.iter().any(|f| f == name) {
                    fields.push(name.to_owned());
                }
            } else if name == "username" || name == "idnumber" {
                self.invalid(
                    item,
                    scope,
                    format!(
                        "`{name}` in `{KEY}` cannot be user-editable: it identifies the account"
                    ),
                    format!("remove \"{name}\"; only administrators change it"),
                );
            } else {
                self.invalid(
                    item,
                    scope,
                    format!("\"{name}\" in `{KEY}` is not a core field users may edit"),
                    help.clone(),
                );
            }
        }
        fields
    }

    fn plugin(&mut self, table: &DeTable<'_>, location: Location) -> PluginEntry {
        let tab = Tab {
            table,
            scope: Scope::new("[[plugin]]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, PLUGIN_KEYS, None);
        let mut keys = KeyLocations::default();
        PluginEntry {
            id: self.required(
                &tab,
                &mut keys,
                "id",
                "add the id the plugin library declares, e.g. `id = \"oidc\"`",
            ),
            library: self.required(
                &tab,
                &mut keys,
                "library",
                "add the library's name (looked up in plugin_dir) or path, e.g. `library = \"gatehouse_oidc\"`",
            ),
            enabled: self.flag(&tab, &mut keys, "enabled", true),
            base_dir: self.base_dir.clone(),
            location,
            key_locations: keys,
        }
    }

    fn field(&mut self, table: &DeTable<'_>, location: Location) -> FieldDef {
        let tab = Tab {
            table,
            scope: Scope::new("[[field]]"),
            location,
            prefix: String::new(),
        };
        self.check_keys(&tab, FIELD_KEYS, None);
        let mut keys = KeyLocations::default();
        let name = self.required(
            &tab,
            &mut keys,
            "name",
            "add the field's short name, e.g. `name = \"department\"`",
        );
        let mandatory = self.flag(&tab, &mut keys, "mandatory", false);
        let mut kind = String::from("text");
        if let Some(v) = self.get(&tab, "type", &mut keys)
            && let Some(t) = self.choice(v, "type", &tab.scope, FIELD_TYPES, |s| s)
        {
            kind = t.to_owned();
        }
        FieldDef {
            name,
            mandatory,
            kind,
            user_editable: self.flag(&tab, &mut keys, "user_editable", true),
            location,
            key_locations: keys,
        }
    }

    fn domain(&mut self, table: &DeTable<'_>, location: Location) -> DomainConfig {
        let mut tab = Tab {
            table,
            scope: Scope::new("[[domain]]"),
            location,
            prefix: String::new(),
        };
        let mut keys = KeyLocations::default();
        let name = self.required(
            &tab,
            &mut keys,
            "name",
            "add the domain's name, e.g. `name = \"root\"` (\"root\" is the root platform)",
        );
        if !name.is_empty() {
            tab.scope.domain = Some(name.clone());
        }
        self.check_keys(&tab, DOMAIN_KEYS, None);

        let hosts = match self.get(&tab, "hosts", &mut keys) {
            Some(v) => self.hosts(v, &tab.scope, &mut keys),
            None => {
                self.emit(
                    codes::MISSING_KEY,
                    String::from("[[domain]] is missing the required key `hosts`"),
                    location,
                    &tab.scope,
                    Some(String::from(
                        "list the host names this domain is served on, e.g. `hosts = [\"sso.example.com\"]`",
                    )),
                );
                Vec::new()
            }
        };
        let branch = self
            .opt_nonempty(
                &tab,
                &mut keys,
                "branch",
                "name the branch users created here are placed in, or remove `branch` to use the domain's name",
            )
            .unwrap_or_else(|| name.clone());
        let login_form = self.pick(
            &tab,
            &mut keys,
            "login_form",
            LoginForm::ALL,
            LoginForm::as_str,
        );
        let mut force_external_sso_url = None;
        if let Some(v) = self.get(&tab, "force_external_sso_url", &mut keys)
            && let Some(s) = self.string(v, "force_external_sso_url", &tab.scope)
            && !s.trim().is_empty()
        {
            match http_url(s.trim()) {
                Ok(url) => force_external_sso_url = Some(url),
                Err(why) => self.invalid(
                    v,
                    &tab.scope,
                    format!("`force_external_sso_url` must be an http or https URL ({why}), found \"{s}\""),
                    String::from(
                        "write a full URL such as \"https://portal.example.com/login\", or \"\" to turn it off",
                    ),
                ),
            }
        }
        let guest_access = self.flag(&tab, &mut keys, "guest_access", false);
        DomainConfig {
            name,
            hosts,
            branch,
            login_form,
            force_external_sso_url,
            guest_access,
            location,
            key_locations: keys,
        }
    }

    fn hosts(&mut self, v: &Value<'_>, scope: &Scope, keys: &mut KeyLocations) -> Vec<String> {
        let help = "write e.g. `hosts = [\"sso.example.com\", \"localhost\"]`";
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(v, "hosts", scope, "a list of host names", help.to_owned());
            return Vec::new();
        };
        if items.is_empty() {
            self.invalid(
                v,
                scope,
                String::from("`hosts` must name at least one host"),
                help.to_owned(),
            );
        }
        let mut hosts = Vec::new();
        for item in items.iter() {
            let Some(host) = item.get_ref().as_str() else {
                self.wrong_type(item, "hosts", scope, "a list of strings", help.to_owned());
                continue;
            };
            let host = host.trim().to_ascii_lowercase();
            if host.is_empty()
                || host.contains("://")
                || host.contains('/')
                || host.chars().any(char::is_whitespace)
            {
                self.invalid(
                    item,
                    scope,
                    format!("\"{host}\" in `hosts` is not a host name"),
                    String::from(
                        "write only the host name as browsers send it, without scheme or path, e.g. \"sso.example.com\"",
                    ),
                );
                continue;
            }
            let at = self.loc(item.span());
            keys.insert(format!("hosts.{}", hosts.len()), at, at);
            hosts.push(host);
        }
        hosts
    }

    fn idp(&mut self, table: &DeTable<'_>, location: Location) -> IdpConfig {
        let mut tab = Tab {
            table,
            scope: Scope::new("[[idp]]"),
            location,
            prefix: String::new(),
        };
        let mut keys = KeyLocations::default();
        let id = self.required(
            &tab,
            &mut keys,
            "id",
            "add a unique id made of a-z, 0-9, - and _, e.g. `id = \"okta\"` (it appears in URLs)",
        );
        if !id.is_empty() {
            tab.scope.idp = Some(id.clone());
            if !is_url_safe(&id)
                && let Some(v) = table.get("id")
            {
                let suggestion = url_safe_version(&id);
                self.invalid(
                    v,
                    &tab.scope,
                    format!(
                        "IdP id \"{id}\" is not URL-safe: it must start with a-z or 0-9 and contain only a-z, 0-9, - and _"
                    ),
                    format!("the id appears in URLs (/sso/{{id}}/...); try `id = \"{suggestion}\"`"),
                );
            }
        }
        let domain = self.required(
            &tab,
            &mut keys,
            "domain",
            "add the name of the [[domain]] this IdP belongs to, e.g. `domain = \"root\"`",
        );
        if !domain.is_empty() {
            tab.scope.domain = Some(domain.clone());
        }
        self.check_keys(
            &tab,
            IDP_KEYS,
            Some("the plugin's own settings go under [idp.settings]"),
        );
        let plugin = self.required(
            &tab,
            &mut keys,
            "plugin",
            "add the id of a [[plugin]], e.g. `plugin = \"oidc\"`",
        );
        let name = self
            .opt_nonempty(
                &tab,
                &mut keys,
                "name",
                "write the button's label, e.g. `name = \"Sign in with Okta\"`, or remove `name` to use the id",
            )
            .unwrap_or_else(|| id.clone());
        let behaviour = self.pick(
            &tab,
            &mut keys,
            "behaviour",
            Behaviour::ALL,
            Behaviour::as_str,
        );
        let redirect_confirmed = self.flag(&tab, &mut keys, "redirect_confirmed", false);
        // Required of every protocol but Connect, whose usernames are its own: the resolver
        // decides, once it knows the plugin's protocol.
        let username_attribute = self
            .opt_nonempty(
                &tab,
                &mut keys,
                "username_attribute",
                USERNAME_ATTRIBUTE_HELP,
            )
            .unwrap_or_default();
        // Any field name: `checks` refuses one that is neither core nor declared.
        let match_field = self
            .get(&tab, "match_field", &mut keys)
            .and_then(|v| self.string(v, "match_field", &tab.scope))
            .map_or_else(MatchField::default, |field| MatchField::new(&field));
        let match_case_insensitive = self.flag(&tab, &mut keys, "match_case_insensitive", false);
        let trust_email = self.flag(&tab, &mut keys, "trust_email", false);
        let logout = match self.get(&tab, "logout", &mut keys) {
            Some(v) => self.logout(v, &tab.scope, &mut keys),
            None => LogoutConfig::default(),
        };
        let provisioning = match self.get(&tab, "provisioning", &mut keys) {
            Some(v) => self.provisioning(v, &tab.scope, &mut keys),
            None => Provisioning::default(),
        };
        let tasks = match self.get(&tab, "tasks", &mut keys) {
            Some(v) => self.task_schedules(v, &tab.scope, "`tasks` of [[idp]]", None, &mut keys),
            None => BTreeMap::new(),
        };
        let http_max_response_bytes = self
            .get(&tab, "http_max_response_bytes", &mut keys)
            .and_then(|v| self.count(v, "http_max_response_bytes", &tab.scope, 1, 16_777_216));
        let mut secret_pointers = Vec::new();
        let mut settings = serde_json::Value::Object(serde_json::Map::new());
        let mut settings_location = location;
        if let Some(v) = self.get(&tab, "settings", &mut keys) {
            settings_location = self.loc(v.span());
            if v.get_ref().is_table() {
                let scope = tab.scope.nested("[idp.settings]");
                settings = self.json(
                    v,
                    ("settings", "", "settings"),
                    &scope,
                    &mut secret_pointers,
                    &mut keys,
                );
            } else {
                self.wrong_type(
                    v,
                    "settings",
                    &tab.scope,
                    "a table",
                    String::from("write the plugin's settings under an `[idp.settings]` header"),
                );
            }
        }
        IdpConfig {
            id,
            domain,
            plugin,
            name,
            behaviour,
            redirect_confirmed,
            username_attribute,
            match_field,
            match_case_insensitive,
            trust_email,
            logout,
            provisioning,
            tasks,
            http_max_response_bytes,
            settings,
            secret_pointers,
            settings_location,
            location,
            key_locations: keys,
        }
    }

    fn logout(&mut self, v: &Value<'_>, scope: &Scope, keys: &mut KeyLocations) -> LogoutConfig {
        let Some(table) = self.table_value(
            v,
            "logout",
            scope,
            String::from("write e.g. `logout = { landing_url = \"\", at_idp = false }`"),
        ) else {
            return LogoutConfig::default();
        };
        let tab = Tab {
            table,
            scope: scope.nested("`logout` of [[idp]]"),
            location: self.loc(v.span()),
            prefix: String::from("logout."),
        };
        self.check_keys(&tab, LOGOUT_KEYS, None);
        let mut landing_url = None;
        if let Some(v) = self.get(&tab, "landing_url", keys)
            && let Some(s) = self.string(v, "landing_url", &tab.scope)
            && !s.trim().is_empty()
        {
            let s = s.trim().to_owned();
            let local = s.starts_with('/') && !s.starts_with("//");
            if local || http_url(&s).is_ok() {
                landing_url = Some(s);
            } else {
                self.invalid(
                    v,
                    &tab.scope,
                    format!("`landing_url` must be a path on this site or an http(s) URL, found \"{s}\""),
                    String::from(
                        "write e.g. `landing_url = \"/logged-out\"` or `\"https://www.example.com/\"`, or \"\" for the default page",
                    ),
                );
            }
        }
        LogoutConfig {
            landing_url,
            at_idp: self.flag(&tab, keys, "at_idp", false),
        }
    }

    /// A table of task schedules, `name = { every_minutes = 15, enabled = true }`, recorded
    /// under `tasks.{name}.…` in `keys`. With `known`, other task names are unknown keys (the
    /// host's tasks); without, any name is read (a plugin's, checked against its manifest
    /// later).
    fn task_schedules(
        &mut self,
        v: &Value<'_>,
        scope: &Scope,
        table_name: &str,
        known: Option<&[&str]>,
        keys: &mut KeyLocations,
    ) -> BTreeMap<String, TaskSchedule> {
        let mut schedules = BTreeMap::new();
        let Some(table) = self.table_value(
            v,
            "tasks",
            scope,
            String::from("write e.g. `tasks = { cleanup = { every_minutes = 60 } }`"),
        ) else {
            return schedules;
        };
        let tab = Tab {
            table,
            scope: scope.nested(table_name),
            location: self.loc(v.span()),
            prefix: String::from("tasks."),
        };
        if let Some(known) = known {
            self.check_keys(&tab, known, None);
        }
        for (k, tv) in sorted(table) {
            let name: &str = k.get_ref();
            if known.is_some_and(|known| !known.contains(&name)) {
                continue;
            }
            let Some(entry) = self.get(&tab, name, keys) else {
                continue;
            };
            let Some(inner) = self.table_value(
                entry,
                name,
                &tab.scope,
                format!("write e.g. `{name} = {{ every_minutes = 60 }}`"),
            ) else {
                continue;
            };
            let task_tab = Tab {
                table: inner,
                scope: tab.scope.nested(format!("`{name}` of {table_name}")),
                location: self.loc(tv.span()),
                prefix: format!("tasks.{name}."),
            };
            self.check_keys(&task_tab, TASK_SCHEDULE_KEYS, None);
            let every_minutes = self
                .get(&task_tab, "every_minutes", keys)
                .and_then(|ev| self.count(ev, "every_minutes", &task_tab.scope, 1, 60));
            let enabled = self.flag(&task_tab, keys, "enabled", true);
            schedules.insert(
                name.to_owned(),
                TaskSchedule {
                    every_minutes,
                    enabled,
                    location: self.loc(k.span()),
                },
            );
        }
        schedules
    }

    fn provisioning(
        &mut self,
        v: &Value<'_>,
        scope: &Scope,
        keys: &mut KeyLocations,
    ) -> Provisioning {
        let Some(table) = self.table_value(
            v,
            "provisioning",
            scope,
            String::from("write the provisioning settings under an `[idp.provisioning]` header"),
        ) else {
            return Provisioning::default();
        };
        let tab = Tab {
            table,
            scope: scope.nested("[idp.provisioning]"),
            location: self.loc(v.span()),
            prefix: String::from("provisioning."),
        };
        self.check_keys(&tab, PROVISIONING_KEYS, None);
        let mut p = Provisioning {
            create_users: self.flag(&tab, keys, "create_users", false),
            update_existing: self.flag(&tab, keys, "update_existing", false),
            lock_fields: self.flag(&tab, keys, "lock_fields", false),
            fields: Vec::new(),
        };
        let Some(fv) = self.get(&tab, "fields", keys) else {
            return p;
        };
        let Some(fields) = self.table_value(
            fv,
            "fields",
            &tab.scope,
            String::from(
                "map platform fields to IdP attributes, e.g. `fields = { firstname = \"given_name\", email = \"email\" }`",
            ),
        ) else {
            return p;
        };
        for (k, v) in sorted(fields) {
            let field: &str = k.get_ref();
            let key = format!("fields.{field}");
            keys.insert(
                format!("provisioning.{key}"),
                self.loc(k.span()),
                self.loc(v.span()),
            );
            let Some(attribute) = self.nonempty(
                v,
                &key,
                &tab.scope,
                "name the IdP attribute that feeds this field, e.g. `email = \"email\"`, or remove the entry",
            ) else {
                continue;
            };
            p.fields.push(FieldMapping {
                field: field.to_owned(),
                attribute,
                location: self.loc(k.span()),
                attribute_location: self.loc(v.span()),
            });
        }
        p
    }

    /// `[idp.settings]` (or a value inside it) as JSON, with secret references resolved.
    fn json(
        &mut self,
        v: &Value<'_>,
        (path, pointer, key): (&str, &str, &str),
        scope: &Scope,
        secrets: &mut Vec<String>,
        keys: &mut KeyLocations,
    ) -> serde_json::Value {
        use serde_json::Value as J;
        match v.get_ref() {
            DeValue::String(s) => J::String(s.as_ref().to_owned()),
            DeValue::Boolean(b) => J::Bool(*b),
            DeValue::Datetime(d) => J::String(d.to_string()),
            DeValue::Integer(_) => match integer(v.get_ref()) {
                Some(n) => i64::try_from(n)
                    .map(J::from)
                    .or_else(|_| u64::try_from(n).map(J::from))
                    .unwrap_or(J::Null),
                None => {
                    self.invalid(
                        v,
                        scope,
                        format!("`{key}` is too large a number"),
                        String::from("settings numbers must fit in 64 bits; write it as a string"),
                    );
                    J::Null
                }
            },
            DeValue::Float(f) => {
                match f
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    Some(n) => J::Number(n),
                    None => {
                        self.invalid(
                            v,
                            scope,
                            format!("`{key}` cannot be inf or nan"),
                            String::from("write a finite number"),
                        );
                        J::Null
                    }
                }
            }
            DeValue::Array(items) => J::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let p = format!("{path}.{i}");
                        let ptr = format!("{pointer}/{i}");
                        self.json(item, (&p, &ptr, key), scope, secrets, keys)
                    })
                    .collect(),
            ),
            DeValue::Table(t) => {
                if !pointer.is_empty()
                    && let Some(secret) = self.secret_ref(t, v, key, scope)
                {
                    secrets.push(pointer.to_owned());
                    return J::String(secret.map(|s| s.expose().to_owned()).unwrap_or_default());
                }
                let mut map = serde_json::Map::new();
                for (k, item) in sorted(t) {
                    let name: &str = k.get_ref();
                    let p = format!("{path}.{name}");
                    let ptr = format!("{pointer}/{}", json_pointer_escape(name));
                    keys.insert(p.clone(), self.loc(k.span()), self.loc(item.span()));
                    let value = self.json(item, (&p, &ptr, name), scope, secrets, keys);
                    map.insert(name.to_owned(), value);
                }
                J::Object(map)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_safe_ids() {
        assert!(is_url_safe("okta"));
        assert!(is_url_safe("okta-2_b"));
        assert!(is_url_safe("0x"));
        assert!(!is_url_safe("Okta"));
        assert!(!is_url_safe("-x"));
        assert!(!is_url_safe("my idp"));
        assert!(!is_url_safe(""));
        assert_eq!(url_safe_version("My IdP"), "my-idp");
    }

    /// `known_keys` is only as good as its completeness: every key list the parser checks
    /// a table against (a constant passed to `check_keys`) must be one of its tables.
    #[test]
    fn every_list_the_parser_checks_is_a_known_table() {
        let source = include_str!("schema.rs");
        let listed = source
            .split_once("const KNOWN_KEYS")
            .and_then(|(_, rest)| rest.split_once("];"))
            .map(|(tables, _)| tables)
            .expect("KNOWN_KEYS is in this file");
        let mut checked = 0;
        for call in source.split("self.check_keys(").skip(1) {
            let argument = call.split(',').nth(1).unwrap_or("").trim();
            // `known` is a parameter (HOST_TASKS, passed in by the caller, listed itself).
            if !argument.is_empty() && argument.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            {
                assert!(
                    listed.contains(&format!(" {argument})")),
                    "`{argument}` is checked by the parser but missing from KNOWN_KEYS"
                );
                checked += 1;
            }
        }
        assert!(checked >= 13, "found only {checked} check_keys calls");
        assert!(listed.contains(" HOST_TASKS)"));
    }
}
