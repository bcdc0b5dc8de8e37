//! The typed configuration a valid `plugins.toml` becomes, with where each key was written.
//! It is not the parser (see `schema`) and makes no decisions about login pages (the host's
//! resolver does).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diagnostic::Diagnostic;
use crate::position::{KeyLocations, Location};
use crate::secret::{Redactor, Secret};

/// The platform's core profile fields; additional fields are declared with `[[field]]`.
pub const CORE_FIELDS: [&str; 5] = ["username", "email", "firstname", "lastname", "idnumber"];

macro_rules! keyed {
    ($($ty:ty),* $(,)?) => {$(
        impl $ty {
            /// Where `key` was written (dotted for nested keys), falling back to the nearest
            /// written parent key and then to the table's own location.
            pub fn key_location(&self, key: &str) -> Location {
                self.key_locations.key(key).unwrap_or(self.location)
            }

            /// Where the value of `key` was written; falls back like `key_location`.
            pub fn value_location(&self, key: &str) -> Location {
                self.key_locations.value(key).unwrap_or(self.location)
            }
        }
    )*};
}

keyed!(
    HostSettings,
    Throttle,
    PluginEntry,
    FieldDef,
    Registration,
    ConnectServer,
    DomainConfig,
    IdpConfig
);

/// A checked `plugins.toml`.
#[derive(Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Its text (for rendering diagnostics).
    pub source: String,
    pub host: HostSettings,
    pub plugins: Vec<PluginEntry>,
    pub fields: Vec<FieldDef>,
    pub registration: Registration,
    /// `[connect_server]`: this host as a Totara Connect server.
    pub connect_server: ConnectServer,
    pub domains: Vec<DomainConfig>,
    pub idps: Vec<IdpConfig>,
    /// Every value that came from `{ env }` or `{ file }`, to keep out of shown text.
    pub(crate) redactor: Redactor,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("source", &format_args!("<{} bytes>", self.source.len()))
            .field("host", &self.host)
            .field("plugins", &self.plugins)
            .field("fields", &self.fields)
            .field("registration", &self.registration)
            .field("connect_server", &self.connect_server)
            .field("domains", &self.domains)
            .field("idps", &self.idps)
            .finish()
    }
}

impl Config {
    /// What removes this file's `{ env }` / `{ file }` values from text about to be shown.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Removes this file's `{ env }` / `{ file }` values from every diagnostic's message
    /// and help: findings made after loading (a plugin refusing its settings, the
    /// resolver) may quote them.
    pub fn redact(&self, diagnostics: &mut [Diagnostic]) {
        self.redactor.redact_all(diagnostics);
    }

    /// The directory relative paths in the file are resolved against.
    pub fn config_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    pub fn plugin(&self, id: &str) -> Option<&PluginEntry> {
        self.plugins.iter().find(|p| p.id == id)
    }

    pub fn domain(&self, name: &str) -> Option<&DomainConfig> {
        self.domains.iter().find(|d| d.name == name)
    }

    pub fn idp(&self, id: &str) -> Option<&IdpConfig> {
        self.idps.iter().find(|i| i.id == id)
    }

    /// The IdPs configured on one domain, in file order.
    pub fn idps_on<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = &'a IdpConfig> + 'a {
        self.idps.iter().filter(move |i| i.domain == domain)
    }

    /// The domain serving a `Host` header value (case-insensitive; a `:port` suffix is
    /// ignored unless the domain lists the host with that port).
    pub fn domain_for_host(&self, host: &str) -> Option<&DomainConfig> {
        let host = host.trim().to_ascii_lowercase();
        let find = |h: &str| self.domains.iter().find(|d| d.hosts.iter().any(|x| x == h));
        find(&host).or_else(|| {
            let bare = match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => return None,
            };
            find(bare.trim_start_matches('[').trim_end_matches(']')).or_else(|| find(bare))
        })
    }

    /// An additional field declared with `[[field]]`.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether users may change `field` on their own profile (locks aside): a core field
    /// listed in `[registration] user_editable_core`, or an additional field declared with
    /// `user_editable = true`. Unknown fields are not.
    pub fn user_editable(&self, field: &str) -> bool {
        if CORE_FIELDS.contains(&field) {
            self.registration
                .user_editable_core
                .iter()
                .any(|f| f == field)
        } else {
            self.field(field).is_some_and(|f| f.user_editable)
        }
    }

    /// A core field or a declared additional field.
    pub fn is_known_field(&self, name: &str) -> bool {
        CORE_FIELDS.contains(&name) || self.field(name).is_some()
    }
}

/// `[host]`.
#[derive(Clone, Debug)]
pub struct HostSettings {
    /// Parses as a `SocketAddr`.
    pub listen: String,
    /// http or https; the base of every callback URL.
    pub public_url: url::Url,
    /// Starts with `sqlite:`, `postgres:` or `postgresql:`.
    pub database: Secret,
    /// Resolved against the config file's directory.
    pub plugin_dir: PathBuf,
    /// Allows dev-only plugins (the example plugin).
    pub dev_mode: bool,
    pub log_format: LogFormat,
    pub session_lifetime_minutes: u32,
    /// How long a begun SSO sign-in may take.
    pub pending_login_minutes: u32,
    pub plugin_call_timeout_seconds: u32,
    /// How long one run of a plugin's scheduled task may take (a Connect sync of a large
    /// directory takes longer than any sign-in call).
    pub task_timeout_seconds: u32,
    /// Plugins' outgoing HTTP.
    pub http_timeout_seconds: u32,
    pub http_max_response_bytes: u32,
    /// The largest body an IdP or peer may send to a plugin's inbound route (a route may
    /// declare less, never more).
    pub inbound_max_body_bytes: u32,
    /// Plugin calls running at once for one IdP; more are refused as busy.
    pub plugin_calls_per_idp: u32,
    /// Plugin calls running at once in the whole host (each holds a thread).
    pub plugin_calls_max: u32,
    /// Consecutive timeouts or outages of an IdP that open its circuit breaker.
    pub idp_breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe is let through.
    pub idp_breaker_cooldown_seconds: u32,
    pub login_throttle: Throttle,
    /// `[host.passwords]`: how new password hashes are made and how many checks may wait.
    pub passwords: PasswordHashing,
    /// `[host.limits]`: per-client limits on anonymous requests.
    pub limits: StartLimits,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client.
    /// Empty: the connecting peer is the client, and those headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether `serve` runs the scheduled tasks on this host. Of several hosts on one
    /// database each run happens on one host anyway (a lease in the database); `false`
    /// keeps a host out of it entirely (`gatehouse tasks run` still works there).
    pub scheduler: bool,
    /// How long audit rows (and the record of task runs) are kept, in days.
    pub audit_retention_days: u32,
    /// `[host.tasks]`: the schedules of the host's own tasks, by name (only those written).
    pub tasks: BTreeMap<String, TaskSchedule>,
    /// The bearer token `GET /metrics` requires; `None`: the endpoint is off (404).
    pub metrics_token: Option<Secret>,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            listen: String::from("127.0.0.1:8080"),
            public_url: default_public_url(),
            database: Secret::new("sqlite://gatehouse.db"),
            plugin_dir: PathBuf::from("target/release"),
            dev_mode: false,
            log_format: LogFormat::Human,
            session_lifetime_minutes: 480,
            pending_login_minutes: 10,
            plugin_call_timeout_seconds: 15,
            task_timeout_seconds: 600,
            http_timeout_seconds: 10,
            http_max_response_bytes: 1_048_576,
            inbound_max_body_bytes: 262_144,
            plugin_calls_per_idp: 64,
            plugin_calls_max: 256,
            idp_breaker_failures: 5,
            idp_breaker_cooldown_seconds: 30,
            login_throttle: Throttle::default(),
            passwords: PasswordHashing::default(),
            limits: StartLimits::default(),
            trusted_proxies: Vec::new(),
            scheduler: true,
            audit_retention_days: 90,
            tasks: BTreeMap::new(),
            metrics_token: None,
            location: Location::default(),
            key_locations: KeyLocations::default(),
        }
    }
}

impl HostSettings {
    /// `listen` as a socket address (checked when the file was loaded).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

pub(crate) fn default_public_url() -> url::Url {
    url::Url::parse("http://localhost:8080").unwrap_or_else(|_| unreachable!("constant URL"))
}

/// The host's tasks a `[host.tasks]` table may name.
pub const HOST_TASKS: &[&str] = &["cleanup"];

/// One task's schedule, `name = { every_minutes = 15, enabled = true }`, under
/// `[host.tasks]` or an IdP's `tasks`. What is not written is the host's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskSchedule {
    /// Minutes from one run's start to the next; `None`: the host's default for the task.
    pub every_minutes: Option<u32>,
    /// `false`: never run on a schedule (it can still be run by hand).
    pub enabled: bool,
    /// Where the task's name was written.
    pub location: Location,
}

/// `[host.login_throttle]`: failed password sign-ins allowed per window.
#[derive(Clone, Debug)]
pub struct Throttle {
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
    pub window_minutes: u32,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_ip: 20,
            window_minutes: 15,
            location: Location::default(),
            key_locations: KeyLocations::default(),
        }
    }
}

/// `[host.passwords]`: the argon2id cost of new password hashes (a stored hash is checked
/// with the cost written in it), and how many checks may wait for a hashing thread.
///
/// The defaults are OWASP's first argon2id recommendation (Password Storage Cheat Sheet):
/// 19 MiB of memory, 2 iterations, 1 lane. Each hashing thread (one per core) holds one
/// buffer of `memory_kib`, so the host's hashing memory is cores × `memory_kib`.
#[derive(Clone, Debug)]
pub struct PasswordHashing {
    /// Argon2 `m`: memory per hash in KiB.
    pub memory_kib: u32,
    /// Argon2 `t`: passes over the memory.
    pub iterations: u32,
    /// Argon2 `p`: lanes (computed one after another; raises `m`'s minimum, not speed).
    pub parallelism: u32,
    /// Password checks that may wait for a busy hashing thread; beyond them a sign-in is
    /// answered "busy, try again" at once.
    pub queue: u32,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl PasswordHashing {
    /// `memory_kib`: from 1 MiB (argon2 needs 8 KiB per lane; less is no protection) to
    /// 256 MiB, which is also the most a stored hash may ask for when it is checked.
    pub const MEMORY_KIB: std::ops::RangeInclusive<u32> = 1024..=262_144;
    /// `iterations`.
    pub const ITERATIONS: std::ops::RangeInclusive<u32> = 1..=64;
    /// `parallelism` (at most 16 lanes keeps `memory_kib`'s minimum above 8 KiB a lane).
    pub const PARALLELISM: std::ops::RangeInclusive<u32> = 1..=16;
    /// `queue`: 0 (no one waits) to 65,536.
    pub const QUEUE: std::ops::RangeInclusive<u32> = 0..=65_536;
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            queue: 64,
            location: Location::default(),
            key_locations: KeyLocations::default(),
        }
    }
}

/// `[host.limits]`: what one client address may ask of one host.
#[derive(Clone, Debug)]
pub struct StartLimits {
    /// `GET /sso/{idp}/start` per client address per minute (each writes a pending sign-in);
    /// more are answered 429. At least 1: the limit cannot be turned off, only raised.
    pub starts_per_address_per_minute: u32,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl Default for StartLimits {
    fn default() -> Self {
        Self {
            starts_per_address_per_minute: 600,
            location: Location::default(),
            key_locations: KeyLocations::default(),
        }
    }
}

macro_rules! choice {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { #[default] $($variant),* }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The spelling used in `plugins.toml`.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// `log_format`: `"human"` (default) or `"json"`.
    LogFormat { Human = "human", Json = "json" }
);
choice!(
    /// `login_form`: `"shown"` (default) or `"hidden"` (show only SSO buttons).
    LoginForm { Shown = "shown", Hidden = "hidden" }
);
choice!(
    /// An IdP's `behaviour`: a button (default), automatic redirect, or hidden while tested.
    Behaviour { Button = "button", Redirect = "redirect", Hidden = "hidden" }
);
/// The platform field an IdP's username attribute is matched against (`match_field`):
/// any core field (`username`, the default, `email`, `idnumber`, …) or an additional field
/// declared with `[[field]]` (SAML admins often match on an employee number). The schema
/// takes any string; `checks` refuses a name that is no field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchField(String);

impl MatchField {
    pub fn new(field: &str) -> Self {
        Self(field.to_owned())
    }
    pub fn username() -> Self {
        Self::new("username")
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_username(&self) -> bool {
        self.0 == "username"
    }
    pub fn is_email(&self) -> bool {
        self.0 == "email"
    }
}

impl Default for MatchField {
    fn default() -> Self {
        Self::username()
    }
}

impl fmt::Display for MatchField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[[plugin]]`.
#[derive(Clone, Debug, Default)]
pub struct PluginEntry {
    /// Must equal the id the library's manifest declares.
    pub id: String,
    /// A name looked up in `plugin_dir`, or a path.
    pub library: String,
    pub enabled: bool,
    /// The config file's directory, against which a path-like `library` is resolved.
    pub base_dir: PathBuf,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl PluginEntry {
    /// True when `library` is a path rather than a name: it contains a path separator or ends
    /// with `.so`, `.dylib` or `.dll`.
    pub fn library_is_path(&self) -> bool {
        let l = &self.library;
        l.contains('/')
            || l.contains('\\')
            || [".so", ".dylib", ".dll"].iter().any(|s| l.ends_with(s))
    }

    /// The library file: a path-like `library` relative to the config file's directory, or
    /// `plugin_dir/lib{library}.so` (with the platform's prefix and suffix).
    pub fn library_path(&self, plugin_dir: &Path) -> PathBuf {
        if self.library_is_path() {
            self.base_dir.join(&self.library)
        } else {
            plugin_dir.join(format!(
                "{}{}{}",
                std::env::consts::DLL_PREFIX,
                self.library,
                std::env::consts::DLL_SUFFIX
            ))
        }
    }
}

/// `[[field]]`: an additional profile field of the platform.
#[derive(Clone, Debug, Default)]
pub struct FieldDef {
    pub name: String,
    pub mandatory: bool,
    /// Key `type`; default `"text"`.
    pub kind: String,
    pub user_editable: bool,
    pub location: Location,
    pub key_locations: KeyLocations,
}

/// Core fields users may change on their own profile (when no IdP lock applies): the
/// default and the most `[registration] user_editable_core` may list. `username` and
/// `idnumber` identify the account and are never user-editable.
pub const OWNER_EDITABLE_CORE: [&str; 3] = ["email", "firstname", "lastname"];

/// `[registration]`.
#[derive(Clone, Debug)]
pub struct Registration {
    /// First and last name are required to create a user.
    pub require_names: bool,
    /// Core fields users may edit themselves, a subset of [`OWNER_EDITABLE_CORE`]; removing
    /// `email` makes email an administrator's and IdPs' field, safe to match users by.
    pub user_editable_core: Vec<String>,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl Default for Registration {
    fn default() -> Self {
        Self {
            require_names: true,
            user_editable_core: OWNER_EDITABLE_CORE.map(str::to_owned).to_vec(),
            location: Location::default(),
            key_locations: KeyLocations::default(),
        }
    }
}

/// `[connect_server]`: this host as a Totara Connect server ("Enable Totara Connect server",
/// "Sync user passwords"). Both off when the table is absent.
#[derive(Clone, Debug, Default)]
pub struct ConnectServer {
    /// Serve `/totara/connect/*` to registered client systems.
    pub enabled: bool,
    /// Send users' password hashes to clients (as stored), as the original's `syncpasswords`.
    pub sync_passwords: bool,
    pub location: Location,
    pub key_locations: KeyLocations,
}

/// `[[domain]]`: the root platform (`name = "root"`) or an EE domain.
#[derive(Clone, Debug, Default)]
pub struct DomainConfig {
    pub name: String,
    /// Lower-cased host names.
    pub hosts: Vec<String>,
    /// Where users created on this domain are placed; default = name.
    pub branch: String,
    pub login_form: LoginForm,
    /// `""` in the file is `None`.
    pub force_external_sso_url: Option<url::Url>,
    pub guest_access: bool,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl DomainConfig {
    pub fn is_root(&self) -> bool {
        self.name == "root"
    }
}

/// `[[idp]]`: one IdP instance.
#[derive(Clone, Default)]
pub struct IdpConfig {
    /// URL-safe: `[a-z0-9][a-z0-9_-]*`.
    pub id: String,
    pub domain: String,
    /// The id of a `[[plugin]]`.
    pub plugin: String,
    /// The button's label; default = id.
    pub name: String,
    pub behaviour: Behaviour,
    /// The admin's override of `untested-redirect`.
    pub redirect_confirmed: bool,
    pub username_attribute: String,
    pub match_field: MatchField,
    pub match_case_insensitive: bool,
    /// The admin vouches that this IdP verifies every email address it sends, so an
    /// email without `email_verified = "true"` may still identify a user.
    pub trust_email: bool,
    pub logout: LogoutConfig,
    pub provisioning: Provisioning,
    /// `tasks = { name = { every_minutes = 15 } }`: schedules of the plugin's tasks for this
    /// instance (names checked against the plugin's manifest by the host).
    pub tasks: BTreeMap<String, TaskSchedule>,
    /// The largest response this IdP's outgoing requests may read, instead of `[host]
    /// http_max_response_bytes` (a Connect server's `get_users` grows with its users).
    pub http_max_response_bytes: Option<u32>,
    /// `[idp.settings]` as JSON, secrets resolved. Never log it; use
    /// [`IdpConfig::settings_redacted`].
    pub settings: serde_json::Value,
    /// JSON pointers (RFC 6901) into `settings` of the values that came from
    /// `{ env = ... }` / `{ file = ... }`.
    pub secret_pointers: Vec<String>,
    pub settings_location: Location,
    pub location: Location,
    pub key_locations: KeyLocations,
}

impl IdpConfig {
    /// `settings` with every value that came from the environment or a file replaced by
    /// `"[redacted]"`.
    pub fn settings_redacted(&self) -> serde_json::Value {
        let mut settings = self.settings.clone();
        for pointer in &self.secret_pointers {
            if let Some(v) = settings.pointer_mut(pointer) {
                *v = serde_json::Value::String(String::from("[redacted]"));
            }
        }
        settings
    }
}

impl fmt::Debug for IdpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpConfig")
            .field("id", &self.id)
            .field("domain", &self.domain)
            .field("plugin", &self.plugin)
            .field("name", &self.name)
            .field("behaviour", &self.behaviour)
            .field("redirect_confirmed", &self.redirect_confirmed)
            .field("username_attribute", &self.username_attribute)
            .field("match_field", &self.match_field)
            .field("match_case_insensitive", &self.match_case_insensitive)
            .field("trust_email", &self.trust_email)
            .field("logout", &self.logout)
            .field("http_max_response_bytes", &self.http_max_response_bytes)
            .field("provisioning", &self.provisioning)
            .field("tasks", &self.tasks)
            .field("settings", &self.settings_redacted())
            .field("settings_location", &self.settings_location)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// An IdP's `logout = { landing_url = "...", at_idp = false }`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogoutConfig {
    /// Where to send the browser after sign-out; `""` is `None` (the default landing page).
    pub landing_url: Option<String>,
    /// Also sign out at the IdP.
    pub at_idp: bool,
}

/// `[idp.provisioning]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provisioning {
    pub create_users: bool,
    pub update_existing: bool,
    pub lock_fields: bool,
    /// In file order.
    pub fields: Vec<FieldMapping>,
}

impl Provisioning {
    /// True when this IdP writes user data (creates or updates users).
    pub fn provisions(&self) -> bool {
        self.create_users || self.update_existing
    }

    pub fn attribute_for(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|m| m.field == field)
            .map(|m| m.attribute.as_str())
    }
}

/// One `platform_field = "idp_attribute"` entry of `provisioning.fields`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldMapping {
    pub field: String,
    pub attribute: String,
    /// Where the field name (the key) was written.
    pub location: Location,
    /// Where the attribute (the value) was written.
    pub attribute_location: Location,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_and_paths() {
        let mut p = PluginEntry {
            library: "gatehouse_oidc".into(),
            base_dir: PathBuf::from("/etc/gh"),
            ..Default::default()
        };
        let expected = format!(
            "/opt/p/{}gatehouse_oidc{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        assert_eq!(p.library_path(Path::new("/opt/p")), PathBuf::from(expected));
        p.library = "plugins/libx.so".into();
        assert_eq!(
            p.library_path(Path::new("/opt/p")),
            PathBuf::from("/etc/gh/plugins/libx.so")
        );
        p.library = "libx.dylib".into();
        assert_eq!(
            p.library_path(Path::new("/opt/p")),
            PathBuf::from("/etc/gh/libx.dylib")
        );
    }

    #[test]
    fn choices_round_trip() {
        for b in Behaviour::ALL {
            assert_eq!(Behaviour::from_name(b.as_str()), Some(*b));
        }
        assert_eq!(MatchField::default(), MatchField::username());
        assert_eq!(LoginForm::default(), LoginForm::Shown);
    }
}
