//! Tests of `plugins.toml` loading through the public API: the INTERFACES.md example, defaults,
//! every diagnostic with its position, secrets, and rendering. Not tests of the resolver.

use std::path::{Path, PathBuf};

use gatehouse_config::{
    Behaviour, Diagnostic, LoadError, Loaded, Location, LogFormat, LoginForm, MatchField, Severity,
    codes, embedded_default, parse_with, render_human, render_json,
};

const FILE: &str = "/etc/gatehouse/plugins.toml";
const OKTA_SECRET: &str = "s3cr3t-okta-value";
const DB_SECRET: &str = "mysql://admin:hunter2@db/gatehouse";

fn env(name: &str) -> Option<String> {
    match name {
        "OKTA_CLIENT_SECRET" => Some(OKTA_SECRET.to_owned()),
        "BAD_DATABASE" => Some(DB_SECRET.to_owned()),
        "GOOD_DATABASE" => Some("postgres://app:pa55word@db/gatehouse".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn check_at(path: &Path, text: &str) -> Loaded {
    parse_with(path, text, &env).expect("the test file is valid TOML")
}

fn check(text: &str) -> Loaded {
    check_at(Path::new(FILE), text)
}

fn with_code<'a>(loaded: &'a Loaded, code: &str) -> Vec<&'a Diagnostic> {
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.code == code)
        .collect()
}

/// The one diagnostic with `code`; fails listing all diagnostics otherwise.
fn only<'a>(loaded: &'a Loaded, code: &str) -> &'a Diagnostic {
    let found = with_code(loaded, code);
    assert_eq!(
        found.len(),
        1,
        "expected one {code}, got {:#?}",
        loaded.diagnostics
    );
    found[0]
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn at(text: &str, needle: &str) -> Location {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Location::new(line as u32, column as u32)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const INTERFACES_EXAMPLE: &str = r#"[host]
listen = "127.0.0.1:8080"
public_url = "http://localhost:8080"     # base of every callback URL an IdP is given
database = "sqlite://gatehouse.db"        # or "postgres://user@host/db"
plugin_dir = "target/release"             # where plugin libraries are looked up by name

[[plugin]]
id = "oidc"                  # must equal the id the library's manifest declares
library = "gatehouse_oidc"   # a name looked up in plugin_dir (lib<name>.so), or a path
enabled = true

[[field]]                    # an additional (custom) profile field of the platform
name = "department"
mandatory = true

[registration]
require_names = true         # first and last name are required to create a user

[[domain]]
name = "root"                # "root" is the root platform; any other name is an EE domain
hosts = ["localhost", "127.0.0.1"]
branch = "root"              # where users created on this domain are placed
login_form = "shown"         # "shown" | "hidden" (show only SSO buttons)
force_external_sso_url = ""  # when set, every unauthenticated visitor goes there
guest_access = false

[[idp]]
id = "okta"                  # unique across the file; appears in URLs
domain = "root"
plugin = "oidc"
name = "Sign in with Okta"   # the button's label
behaviour = "button"         # "button" | "redirect" | "hidden"
redirect_confirmed = false   # admin's override of untested-redirect
username_attribute = "email" # the IdP attribute or claim that identifies the user
match_field = "username"     # the platform field it is matched against: username | email | idnumber
logout = { landing_url = "", at_idp = false }

[idp.provisioning]
create_users = true          # create users that do not exist yet
update_existing = true       # "If user already exists, update the user information"
lock_fields = true           # "Lock provisioned user fields"
fields = { firstname = "given_name", lastname = "family_name", email = "email", department = "dept" }

[idp.settings]               # the plugin's own settings; the plugin validates them
issuer = "https://example.okta.com"
client_id = "gatehouse"
client_secret = { env = "OKTA_CLIENT_SECRET" }   # any secret may come from the environment or a file
"#;

/// A valid file the other tests add to or change.
const BASE: &str = r#"[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "okta"
domain = "root"
plugin = "oidc"
username_attribute = "email"
"#;

#[test]
fn the_interfaces_example_parses() {
    let loaded = check(INTERFACES_EXAMPLE);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    assert_eq!(config.path, PathBuf::from(FILE));
    assert_eq!(config.source, INTERFACES_EXAMPLE);
    assert_eq!(config.host.listen, "127.0.0.1:8080");
    assert_eq!(config.host.public_url.as_str(), "http://localhost:8080/");
    assert_eq!(config.host.database.expose(), "sqlite://gatehouse.db");
    assert_eq!(
        config.host.plugin_dir,
        PathBuf::from("/etc/gatehouse/target/release")
    );

    assert_eq!(config.plugins.len(), 1);
    let plugin = &config.plugins[0];
    assert_eq!(
        (plugin.id.as_str(), plugin.library.as_str()),
        ("oidc", "gatehouse_oidc")
    );
    assert!(plugin.enabled);
    assert_eq!(plugin.location, at(INTERFACES_EXAMPLE, "[[plugin]]"));
    let lib = plugin.library_path(&config.host.plugin_dir);
    assert!(lib.starts_with("/etc/gatehouse/target/release"), "{lib:?}");
    assert!(lib.to_string_lossy().contains("gatehouse_oidc"));

    assert_eq!(config.fields.len(), 1);
    assert_eq!(config.fields[0].name, "department");
    assert!(config.fields[0].mandatory);
    assert!(config.registration.require_names);

    let root = config.domain("root").expect("root domain");
    assert_eq!(root.hosts, ["localhost", "127.0.0.1"]);
    assert_eq!(root.branch, "root");
    assert_eq!(root.login_form, LoginForm::Shown);
    assert_eq!(root.force_external_sso_url, None);
    assert!(!root.guest_access);
    assert_eq!(
        root.key_location("hosts"),
        at(INTERFACES_EXAMPLE, "hosts =")
    );
    assert_eq!(
        config
            .domain_for_host("LOCALHOST:8080")
            .map(|d| d.name.as_str()),
        Some("root")
    );

    let okta = config.idp("okta").expect("okta");
    assert_eq!(okta.domain, "root");
    assert_eq!(okta.plugin, "oidc");
    assert_eq!(okta.name, "Sign in with Okta");
    assert_eq!(okta.behaviour, Behaviour::Button);
    assert!(!okta.redirect_confirmed);
    assert_eq!(okta.username_attribute, "email");
    assert_eq!(okta.match_field, MatchField::username());
    assert_eq!(okta.logout.landing_url, None);
    assert!(!okta.logout.at_idp);
    let p = &okta.provisioning;
    assert!(p.create_users && p.update_existing && p.lock_fields);
    let mapped: Vec<(&str, &str)> = p
        .fields
        .iter()
        .map(|m| (m.field.as_str(), m.attribute.as_str()))
        .collect();
    assert_eq!(
        mapped,
        [
            ("firstname", "given_name"),
            ("lastname", "family_name"),
            ("email", "email"),
            ("department", "dept")
        ]
    );
    assert_eq!(
        p.fields[3].location,
        at(INTERFACES_EXAMPLE, "department = \"dept\"")
    );
    assert_eq!(
        okta.settings,
        serde_json::json!({
            "issuer": "https://example.okta.com",
            "client_id": "gatehouse",
            "client_secret": OKTA_SECRET,
        })
    );
    assert_eq!(okta.secret_pointers, ["/client_secret"]);
    assert_eq!(
        okta.settings_location,
        at(INTERFACES_EXAMPLE, "[idp.settings]")
    );
    assert_eq!(okta.location, at(INTERFACES_EXAMPLE, "[[idp]]"));
    assert_eq!(
        okta.key_location("behaviour"),
        at(INTERFACES_EXAMPLE, "behaviour =")
    );
    assert_eq!(
        okta.value_location("behaviour"),
        at(INTERFACES_EXAMPLE, "\"button\"  ")
    );
    assert_eq!(
        okta.key_location("logout.at_idp"),
        at(INTERFACES_EXAMPLE, "at_idp")
    );
    assert_eq!(
        okta.key_location("provisioning.lock_fields"),
        at(INTERFACES_EXAMPLE, "lock_fields =")
    );
    assert_eq!(
        okta.key_location("settings.client_secret"),
        at(INTERFACES_EXAMPLE, "client_secret")
    );
    // Not written: falls back to the [[idp]] header.
    assert_eq!(okta.key_location("match_case_insensitive"), okta.location);
}

#[test]
fn defaults_apply() {
    let text = format!("{BASE}\n[[field]]\nname = \"dept\"\n");
    let loaded = check(&text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    let h = &config.host;
    assert_eq!(h.listen, "127.0.0.1:8080");
    assert_eq!(h.public_url.as_str(), "http://localhost:8080/");
    assert_eq!(h.database.expose(), "sqlite://gatehouse.db");
    assert_eq!(h.plugin_dir, PathBuf::from("/etc/gatehouse/target/release"));
    assert!(!h.dev_mode);
    assert_eq!(h.log_format, LogFormat::Human);
    assert_eq!(h.session_lifetime_minutes, 480);
    assert_eq!(h.pending_login_minutes, 10);
    assert_eq!(h.plugin_call_timeout_seconds, 15);
    assert_eq!(h.task_timeout_seconds, 600);
    assert_eq!(h.http_timeout_seconds, 10);
    assert_eq!(h.http_max_response_bytes, 1_048_576);
    assert_eq!(h.login_throttle.max_failures_per_account, 5);
    assert_eq!(h.login_throttle.max_failures_per_ip, 20);
    assert_eq!(h.login_throttle.window_minutes, 15);
    // OWASP's argon2id recommendation, and the anonymous start limit.
    assert_eq!(
        (
            h.passwords.memory_kib,
            h.passwords.iterations,
            h.passwords.parallelism,
            h.passwords.queue
        ),
        (19_456, 2, 1, 64)
    );
    assert_eq!(h.limits.starts_per_address_per_minute, 600);
    assert!(config.plugins[0].enabled);
    assert!(config.registration.require_names);
    let field = &config.fields[0];
    assert_eq!(
        (field.kind.as_str(), field.mandatory, field.user_editable),
        ("text", false, true)
    );
    let root = &config.domains[0];
    assert_eq!(root.branch, "root");
    assert_eq!(root.login_form, LoginForm::Shown);
    assert!(!root.guest_access);
    let idp = &config.idps[0];
    assert_eq!(idp.name, "okta");
    assert_eq!(idp.behaviour, Behaviour::Button);
    assert_eq!(idp.match_field, MatchField::username());
    assert!(!idp.match_case_insensitive && !idp.redirect_confirmed);
    assert!(!idp.provisioning.create_users && !idp.provisioning.update_existing);
    assert!(!idp.provisioning.lock_fields && idp.provisioning.fields.is_empty());
    assert_eq!(idp.settings, serde_json::json!({}));
}

#[test]
fn host_settings_are_read() {
    let text = format!(
        r#"[host]
listen = "[::]:9000"
public_url = "https://sso.example.com"
database = {{ env = "GOOD_DATABASE" }}
plugin_dir = "/opt/gatehouse/plugins"
dev_mode = true
log_format = "json"
session_lifetime_minutes = 60
http_max_response_bytes = 0x10000

[host.login_throttle]
max_failures_per_account = 3
window_minutes = 1_0

{BASE}"#
    );
    let loaded = check(&text);
    let config = loaded.config.expect("config");
    let h = &config.host;
    assert_eq!(h.listen_addr().map(|a| a.port()), Some(9000));
    assert_eq!(h.public_url.host_str(), Some("sso.example.com"));
    assert!(h.database.expose().starts_with("postgres://"));
    assert_eq!(h.plugin_dir, PathBuf::from("/opt/gatehouse/plugins"));
    assert!(h.dev_mode);
    assert_eq!(h.log_format, LogFormat::Json);
    assert_eq!(h.session_lifetime_minutes, 60);
    assert_eq!(h.http_max_response_bytes, 65536);
    assert_eq!(h.login_throttle.max_failures_per_account, 3);
    assert_eq!(h.login_throttle.max_failures_per_ip, 20);
    assert_eq!(h.login_throttle.window_minutes, 10);
    assert_eq!(h.key_location("dev_mode"), at(&text, "dev_mode"));
    assert_eq!(
        h.login_throttle.location,
        at(&text, "[host.login_throttle]")
    );
    assert!(!format!("{config:?}").contains("pa55word"));
}

#[test]
fn the_embedded_default_parses_cleanly() {
    let loaded =
        parse_with(Path::new("plugins.toml"), embedded_default(), &|_| None).expect("valid TOML");
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    assert!(config.host.dev_mode);
    assert_eq!(config.host.plugin_dir, PathBuf::from("target/release"));
    let root = config.domain("root").expect("root");
    assert_eq!(root.hosts, ["localhost", "127.0.0.1"]);
    let plugin = config.plugin("example").expect("example plugin");
    assert!(plugin.enabled);
    let idp = config.idp("example").expect("example idp");
    assert_eq!(
        (idp.domain.as_str(), idp.plugin.as_str()),
        ("root", "example")
    );
    assert_eq!(idp.behaviour, Behaviour::Button);
    assert_eq!(idp.username_attribute, "email");
    assert!(idp.provisioning.create_users);
    assert_eq!(
        idp.provisioning.attribute_for("firstname"),
        Some("given_name")
    );
    assert_eq!(
        idp.provisioning.attribute_for("lastname"),
        Some("family_name")
    );
    assert_eq!(idp.provisioning.attribute_for("email"), Some("email"));
    assert_eq!(idp.settings, serde_json::json!({}));
    assert!(gatehouse_config::parse_embedded_default().is_ok());
}

#[test]
fn a_syntax_error_is_a_load_error_with_its_line() {
    let text = "[host]\nlisten = \"127.0.0.1:8080\"\npublic_url = \n";
    match parse_with(Path::new(FILE), text, &env) {
        Err(LoadError::Parse {
            path,
            location,
            message,
        }) => {
            assert_eq!(path, PathBuf::from(FILE));
            assert_eq!(location.line, 3);
            assert!(!message.is_empty());
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let dup = "[host]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n";
    let Err(err) = parse_with(Path::new(FILE), dup, &env) else {
        panic!("a duplicate key is a TOML error");
    };
    let d = err.to_diagnostic();
    assert_eq!((d.code, d.location.line), (codes::SYNTAX_ERROR, 3));
}

#[test]
fn an_unreadable_file_is_a_read_error() {
    let missing = temp_dir("missing").join("nope.toml");
    match gatehouse_config::load(&missing) {
        Err(LoadError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn unknown_keys_everywhere_are_reported_with_suggestions() {
    let text = format!(
        r#"[host]
listn = "127.0.0.1:8080"

[host.login_throttle]
window = 5

[registration]
require_name = true

{BASE}behavour = "button"
logout = {{ landing_url = "", at_ipd = true }}

[idp.provisioning]
create_user = true

[idp.settings]
anything_goes = 1
nested = {{ whatever = true }}

[[idps]]
id = "x"
"#
    );
    let loaded = check(&text);
    assert!(loaded.config.is_none());
    let found: Vec<(Location, Option<&str>)> = with_code(&loaded, codes::UNKNOWN_KEY)
        .iter()
        .map(|d| (d.location, d.help.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (at(&text, "listn"), Some("did you mean `listen`?")),
            (
                at(&text, "window ="),
                Some("did you mean `window_minutes`?")
            ),
            (
                at(&text, "require_name "),
                Some("did you mean `require_names`?")
            ),
            (at(&text, "behavour"), Some("did you mean `behaviour`?")),
            (at(&text, "at_ipd"), Some("did you mean `at_idp`?")),
            (
                at(&text, "create_user "),
                Some("did you mean `create_users`?")
            ),
            (at(&text, "idps"), Some("did you mean `idp`?")),
        ]
    );
    assert_eq!(loaded.diagnostics.len(), 7, "{:#?}", loaded.diagnostics);
    let behavour = with_code(&loaded, codes::UNKNOWN_KEY)[3];
    assert_eq!(behavour.idp.as_deref(), Some("okta"));
    assert_eq!(behavour.domain.as_deref(), Some("root"));
    assert_eq!(behavour.file, PathBuf::from(FILE));
}

#[test]
fn an_unknown_key_without_a_close_match_lists_the_known_keys() {
    let text = format!("{BASE}client_id = \"abc\"\n");
    let loaded = check(&text);
    let d = only(&loaded, codes::UNKNOWN_KEY);
    let help = d.help.as_deref().unwrap_or_default();
    assert!(help.contains("[idp.settings]"), "{help}");
    assert!(help.contains("`username_attribute`"), "{help}");
}

#[test]
fn bad_values_are_invalid_values() {
    let text = format!(
        r#"[host]
listen = "nope"
public_url = "ftp://files.example.com"
database = "mysql://db"
log_format = "xml"
session_lifetime_minutes = 0
http_timeout_seconds = "10"
dev_mode = "yes"

[[domain]]
name = "ee"
hosts = "ee.example.com"
login_form = "Hidden"

[[domain]]
name = "ee2"
hosts = ["ee2.example.com", 5, "https://x.example.com/"]
force_external_sso_url = "not a url"

{BASE}behaviour = "redirct"
logout = {{ landing_url = "javascript:alert(1)" }}
"#
    );
    let loaded = check(&text);
    let found: Vec<Location> = with_code(&loaded, codes::INVALID_VALUE)
        .iter()
        .map(|d| d.location)
        .collect();
    assert_eq!(
        found,
        [
            at(&text, "\"nope\""),
            at(&text, "\"ftp:"),
            at(&text, "\"mysql:"),
            at(&text, "\"xml\""),
            at(&text, "0\n"),
            at(&text, "\"10\""),
            at(&text, "\"yes\""),
            at(&text, "\"ee.example.com\""),
            at(&text, "\"Hidden\""),
            at(&text, "5,"),
            at(&text, "\"https://x"),
            at(&text, "\"not a url\""),
            at(&text, "\"redirct\""),
            at(&text, "\"javascript"),
        ],
        "{:#?}",
        loaded.diagnostics
    );
    assert_eq!(
        loaded.diagnostics.len(),
        found.len(),
        "{:#?}",
        loaded.diagnostics
    );
    let redirct = loaded
        .diagnostics
        .iter()
        .find(|d| d.message.contains("redirct"))
        .expect("behaviour diagnostic");
    assert!(
        redirct.message.contains("`behaviour`"),
        "{}",
        redirct.message
    );
    assert!(
        redirct
            .message
            .contains("\"button\", \"redirect\" or \"hidden\"")
    );
    assert_eq!(redirct.help.as_deref(), Some("did you mean \"redirect\"?"));
    assert_eq!(redirct.idp.as_deref(), Some("okta"));
    let hidden = loaded
        .diagnostics
        .iter()
        .find(|d| d.message.contains("Hidden"))
        .expect("login_form");
    assert_eq!(hidden.help.as_deref(), Some("did you mean \"hidden\"?"));
    assert_eq!(hidden.domain.as_deref(), Some("ee"));
}

#[test]
fn numbers_out_of_range_are_invalid() {
    let text = format!(
        "[host.login_throttle]\nwindow_minutes = -1\nmax_failures_per_ip = 99999999999\n\n{BASE}"
    );
    let loaded = check(&text);
    let lines: Vec<u32> = with_code(&loaded, codes::INVALID_VALUE)
        .iter()
        .map(|d| d.location.line)
        .collect();
    assert_eq!(lines, [2, 3]);
}

#[test]
fn password_hashing_and_start_limits_are_read() {
    let text = format!(
        "[host.passwords]\nmemory_kib = 65536\niterations = 3\nparallelism = 4\nqueue = 0\n\n\
         [host.limits]\nstarts_per_address_per_minute = 100000\n\n{BASE}"
    );
    let loaded = check(&text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    let h = &config.host;
    assert_eq!(
        (
            h.passwords.memory_kib,
            h.passwords.iterations,
            h.passwords.parallelism,
            h.passwords.queue
        ),
        (65_536, 3, 4, 0)
    );
    assert_eq!(h.passwords.location, at(&text, "[host.passwords]"));
    assert_eq!(h.limits.starts_per_address_per_minute, 100_000);
}

#[test]
fn password_hashing_and_start_limits_out_of_range_are_invalid() {
    let text = format!(
        "[host.passwords]\nmemory_kib = 512\niterations = 0\nparallelism = 17\nqueue = 70000\nmemory = 1\n\n\
         [host.limits]\nstarts_per_address_per_minute = 0\n\n{BASE}"
    );
    let loaded = check(&text);
    let found: Vec<(u32, String)> = with_code(&loaded, codes::INVALID_VALUE)
        .iter()
        .map(|d| (d.location.line, d.message.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (
                2,
                "`memory_kib` in [host.passwords] must be from 1024 to 262144, found 512".into()
            ),
            (
                3,
                "`iterations` in [host.passwords] must be from 1 to 64, found 0".into()
            ),
            (
                4,
                "`parallelism` in [host.passwords] must be from 1 to 16, found 17".into()
            ),
            (
                5,
                "`queue` in [host.passwords] must be from 0 to 65536, found 70000".into()
            ),
            (
                9,
                "`starts_per_address_per_minute` in [host.limits] must be from 1 to 4294967295, found 0"
                    .into()
            ),
        ]
    );
    // A misspelt key is named, with the keys the table takes.
    let unknown = only(&loaded, codes::UNKNOWN_KEY);
    assert_eq!(unknown.location.line, 6);
    assert!(
        unknown
            .help
            .as_deref()
            .is_some_and(|h| h.contains("memory_kib")),
        "{unknown:#?}"
    );
    assert!(loaded.config.is_none());
}

#[test]
fn missing_required_keys_are_reported_at_their_table() {
    let text = r#"[[plugin]]
enabled = true

[[domain]]
branch = "x"

[[idp]]
name = "nothing"
"#;
    let loaded = check(text);
    let found: Vec<(u32, String)> = with_code(&loaded, codes::MISSING_KEY)
        .iter()
        .map(|d| (d.location.line, d.message.clone()))
        .collect();
    let expect = |line: u32, table: &str, key: &str| {
        (line, format!("{table} is missing the required key `{key}`"))
    };
    assert_eq!(
        found,
        [
            expect(1, "[[plugin]]", "id"),
            expect(1, "[[plugin]]", "library"),
            expect(4, "[[domain]]", "name"),
            expect(4, "[[domain]]", "hosts"),
            expect(7, "[[idp]]", "id"),
            expect(7, "[[idp]]", "domain"),
            expect(7, "[[idp]]", "plugin"),
        ]
    );
    // Nothing cascades from the missing names. (`username_attribute` is the resolver's to
    // require: Connect IdPs go without.)
    assert_eq!(loaded.diagnostics.len(), 7, "{:#?}", loaded.diagnostics);
    assert!(loaded.diagnostics.iter().all(|d| d.help.is_some()));
}

#[test]
fn duplicates_are_reported_on_the_second_occurrence() {
    let text = format!(
        r#"{BASE}
[[plugin]]
id = "oidc"
library = "other"

[[field]]
name = "dept"

[[field]]
name = "dept"

[[field]]
name = "email"

[[domain]]
name = "root"
hosts = ["ee.example.com"]

[[domain]]
name = "ee"
hosts = ["LocalHost", "ee2.example.com", "ee2.example.com"]

[[idp]]
id = "okta"
domain = "ee"
plugin = "oidc"
username_attribute = "sub"
"#
    );
    let loaded = check(&text);
    let found: Vec<(Location, &str)> = with_code(&loaded, codes::DUPLICATE_ID)
        .iter()
        .map(|d| (d.location, d.message.as_str()))
        .collect();
    let second = |needle: &str| {
        let first = text.find(needle).expect("first");
        let offset = first + 1 + text[first + 1..].find(needle).expect("second");
        let before = &text[..offset];
        Location::new(
            before.matches('\n').count() as u32 + 1,
            before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1,
        )
    };
    assert_eq!(
        found,
        [
            (
                second("\"oidc\"\nlibrary"),
                "plugin id `oidc` is declared twice"
            ),
            (second("\"dept\""), "field `dept` is declared twice"),
            (
                second("\"email\"\n"),
                "`email` is a core field and cannot be declared again"
            ),
            (second("\"root\"\nhosts"), "domain `root` is declared twice"),
            (second("\"okta\"\ndomain"), "IdP id `okta` is used twice"),
        ],
        "{:#?}",
        loaded.diagnostics
    );
    // A host in two domains, or twice in one, has a code of its own.
    let hosts: Vec<(Location, &str)> = with_code(&loaded, codes::DUPLICATE_HOST)
        .iter()
        .map(|d| (d.location, d.message.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [
            (
                at(&text, "\"LocalHost\""),
                "host `localhost` is served by two domains: `root` and `ee`"
            ),
            (
                second("\"ee2.example.com\""),
                "host `ee2.example.com` is listed twice in domain `ee`"
            ),
        ]
    );
    assert_eq!(loaded.diagnostics.len(), 7, "{:#?}", loaded.diagnostics);
    let dup_idp = with_code(&loaded, codes::DUPLICATE_ID)[4];
    assert!(
        dup_idp
            .help
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("line {}", at(&text, "id = \"okta\"").line))
    );
}

#[test]
fn idps_must_name_enabled_plugins_existing_domains_and_known_fields() {
    let text = r#"[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[plugin]]
id = "saml"
library = "gatehouse_saml"
enabled = false

[[field]]
name = "department"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "a"
domain = "root"
plugin = "odic"
username_attribute = "sub"

[[idp]]
id = "b"
domain = "rooot"
plugin = "saml"
username_attribute = "uid"

[idp.provisioning]
fields = { firstname = "givenName", departement = "ou", shoe_size = "s" }
"#;
    let loaded = check(text);
    let summary: Vec<(&str, Location, Option<&str>, Option<&str>)> = loaded
        .diagnostics
        .iter()
        .map(|d| (d.code, d.location, d.idp.as_deref(), d.help.as_deref()))
        .collect();
    assert_eq!(
        summary[..3],
        [
            (
                codes::UNKNOWN_PLUGIN,
                at(text, "\"odic\""),
                Some("a"),
                Some("did you mean `oidc`?")
            ),
            (
                codes::UNKNOWN_DOMAIN,
                at(text, "\"rooot\""),
                Some("b"),
                Some("did you mean `root`?")
            ),
            (
                codes::UNKNOWN_PLUGIN,
                at(text, "\"saml\"\nuser"),
                Some("b"),
                summary[2].3
            ),
        ]
    );
    assert!(
        loaded.diagnostics[2].message.contains("disabled"),
        "{}",
        loaded.diagnostics[2].message
    );
    assert!(summary[2].3.unwrap_or_default().contains("enabled = true"));
    let fields: Vec<(Location, Option<&str>)> = with_code(&loaded, codes::UNKNOWN_FIELD)
        .iter()
        .map(|d| (d.location, d.help.as_deref()))
        .collect();
    assert_eq!(
        fields[0],
        (at(text, "departement"), Some("did you mean `department`?"))
    );
    assert_eq!(fields[1].0, at(text, "shoe_size"));
    assert!(fields[1].1.unwrap_or_default().contains("[[field]]"));
    assert_eq!(loaded.diagnostics.len(), 5, "{:#?}", loaded.diagnostics);
}

#[test]
fn idp_ids_must_be_url_safe() {
    let text = BASE.replace("id = \"okta\"", "id = \"My Okta\"");
    let loaded = check(&text);
    let d = only(&loaded, codes::INVALID_VALUE);
    assert_eq!(d.location, at(&text, "\"My Okta\""));
    assert!(
        d.help
            .as_deref()
            .unwrap_or_default()
            .contains("\"my-okta\"")
    );
}

#[test]
fn a_file_without_domains_says_how_to_add_one() {
    let loaded = check("[host]\nlisten = \"127.0.0.1:8080\"\n");
    let d = only(&loaded, codes::NO_DOMAINS);
    assert_eq!(d.location, Location::default());
    assert!(
        d.help
            .as_deref()
            .unwrap_or_default()
            .contains("[[domain]]\nname = \"root\"")
    );
    let empty = check("");
    assert_eq!(only(&empty, codes::NO_DOMAINS).severity, Severity::Error);
    assert!(empty.config.is_none());
}

#[test]
fn secrets_come_from_env_and_files() {
    let dir = temp_dir("secrets");
    std::fs::write(dir.join("client_secret"), "from-a-file\n").expect("write secret");
    std::fs::write(dir.join("empty"), "\n").expect("write empty");
    let path = dir.join("plugins.toml");
    let text = format!(
        r#"{BASE}
[idp.settings]
a = {{ file = "client_secret" }}
b = {{ env = "OKTA_CLIENT_SECRET" }}
list = [{{ env = "OKTA_CLIENT_SECRET" }}, 1]
plain = {{ env = "X", other = 1 }}
"#
    );
    let loaded = check_at(&path, &text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    let idp = &config.idps[0];
    assert_eq!(idp.settings["a"], "from-a-file");
    assert_eq!(idp.settings["b"], OKTA_SECRET);
    assert_eq!(idp.settings["list"], serde_json::json!([OKTA_SECRET, 1]));
    assert_eq!(
        idp.settings["plain"],
        serde_json::json!({"env": "X", "other": 1})
    );
    assert_eq!(idp.secret_pointers, ["/a", "/b", "/list/0"]);
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(OKTA_SECRET) && !debug.contains("from-a-file"),
        "{debug}"
    );
    assert_eq!(idp.settings_redacted()["a"], "[redacted]");

    let bad = format!(
        r#"{BASE}
[idp.settings]
a = {{ env = "UNSET_VARIABLE" }}
b = {{ env = "EMPTY" }}
c = {{ file = "no-such-file" }}
d = {{ file = "empty" }}
e = {{ env = "OKTA_CLIENT_SECRET", file = "client_secret" }}
"#
    );
    let loaded = check_at(&path, &bad);
    let found: Vec<(&str, Location)> = loaded
        .diagnostics
        .iter()
        .map(|d| (d.code, d.location))
        .collect();
    assert_eq!(
        found,
        [
            (codes::SECRET_UNAVAILABLE, at(&bad, "\"UNSET_VARIABLE\"")),
            (codes::SECRET_UNAVAILABLE, at(&bad, "\"EMPTY\"")),
            (codes::SECRET_UNAVAILABLE, at(&bad, "\"no-such-file\"")),
            (codes::SECRET_UNAVAILABLE, at(&bad, "\"empty\"")),
            (
                codes::INVALID_VALUE,
                at(&bad, "{ env = \"OKTA_CLIENT_SECRET\", file")
            ),
        ]
    );
    assert!(loaded.diagnostics[0].message.contains("UNSET_VARIABLE"));
    assert!(loaded.diagnostics[2].message.contains("no-such-file"));
    assert_eq!(loaded.diagnostics[0].idp.as_deref(), Some("okta"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn secret_values_never_appear_in_diagnostics_or_renderings() {
    // A database URL from the environment that is rejected, and an IdP secret next to errors.
    let text = format!(
        r#"[host]
database = {{ env = "BAD_DATABASE" }}

{BASE}behavour = "button"

[idp.settings]
client_secret = {{ env = "OKTA_CLIENT_SECRET" }}
"#
    );
    let loaded = check(&text);
    assert_eq!(loaded.diagnostics.len(), 2, "{:#?}", loaded.diagnostics);
    let rendered = format!(
        "{}{}{:?}",
        render_human(&loaded.diagnostics, &text),
        render_json(&loaded.diagnostics),
        loaded
    );
    for secret in [OKTA_SECRET, DB_SECRET, "hunter2"] {
        assert!(!rendered.contains(secret), "{secret} leaked: {rendered}");
    }
    let db = &loaded.diagnostics[0];
    assert_eq!(db.location, at(&text, "{ env = \"BAD_DATABASE\" }"));
}

#[test]
fn several_errors_in_one_file_are_all_reported() {
    let text = r#"[host]
listen = "nope"
colour = "blue"

[[plugin]]
id = "oidc"

[[idp]]
id = "Bad Id"
domain = "nowhere"
plugin = "saml"
username_attribute = "email"
behaviour = "popup"
"#;
    let loaded = check(text);
    let codes_found: Vec<(&str, u32)> = loaded
        .diagnostics
        .iter()
        .map(|d| (d.code, d.location.line))
        .collect();
    assert_eq!(
        codes_found,
        [
            (codes::INVALID_VALUE, 2),
            (codes::UNKNOWN_KEY, 3),
            (codes::MISSING_KEY, 5),
            (codes::INVALID_VALUE, 9),
            (codes::UNKNOWN_DOMAIN, 10),
            (codes::UNKNOWN_PLUGIN, 11),
            (codes::INVALID_VALUE, 13),
            (codes::NO_DOMAINS, 0),
        ]
    );
    assert!(loaded.config.is_none());
    assert!(render_human(&loaded.diagnostics, text).ends_with("\n8 errors\n"));
}

#[test]
fn human_rendering_puts_a_caret_under_the_key() {
    let text = format!("{BASE}behavour = \"button\"\n");
    let loaded = check_at(Path::new("plugins.toml"), &text);
    let rendered = render_human(&loaded.diagnostics, &text);
    let expected = "\
error[unknown-key]: unknown key `behavour` in [[idp]]
  --> plugins.toml:14:1
   |
14 | behavour = \"button\"
   | ^^^^^^^^
   = note: in idp `okta`, domain `root`
   = help: did you mean `behaviour`?

1 error
";
    assert_eq!(rendered, expected);
}

#[test]
fn human_rendering_of_values_warnings_and_whole_file_findings() {
    let text = "[host]\n  listen = \"nope\"\n";
    let loaded = check(text);
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.push(
        Diagnostic::warning(
            codes::MULTIPLE_PROVISIONERS,
            "two provisioners",
            FILE,
            Location::new(1, 1),
        )
        .with_domain("root"),
    );
    let rendered = render_human(&diagnostics, text);
    assert!(
        rendered.contains("2 |   listen = \"nope\"\n  |            ^^^^^^\n"),
        "{rendered}"
    );
    assert!(rendered.contains(&format!("error[no-domains]: the configuration declares no [[domain]], so no login page can be served\n --> {FILE}\n  = help: add one, e.g.:\n          [[domain]]\n")), "{rendered}");
    assert!(
        rendered.contains("warning[multiple-provisioners]: two provisioners\n"),
        "{rendered}"
    );
    assert!(rendered.ends_with("\n2 errors, 1 warning\n"), "{rendered}");
    assert_eq!(render_human(&[], ""), "no errors or warnings\n");
}

#[test]
fn json_rendering_matches_the_interface() {
    let text = format!("{BASE}behavour = \"button\"\n");
    let loaded = check(&text);
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.push(Diagnostic::warning(
        codes::LOCKOUT,
        "plain",
        FILE,
        Location::new(2, 3),
    ));
    let json: serde_json::Value = serde_json::from_str(&render_json(&diagnostics)).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({"diagnostics": [
            {
                "code": "unknown-key",
                "severity": "error",
                "message": "unknown key `behavour` in [[idp]]",
                "file": FILE,
                "line": 14,
                "column": 1,
                "idp": "okta",
                "domain": "root",
                "help": "did you mean `behaviour`?"
            },
            {
                "code": "lockout",
                "severity": "warning",
                "message": "plain",
                "file": FILE,
                "line": 2,
                "column": 3
            }
        ]})
    );
    let keys: Vec<&str> = json["diagnostics"][0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 9);
    assert_eq!(render_json(&[]), "{\"diagnostics\":[]}");
}

#[test]
fn plugin_libraries_resolve_against_the_config_directory() {
    let text = BASE.replace(
        "library = \"gatehouse_oidc\"",
        "library = \"plugins/libgatehouse_oidc.so\"",
    );
    let config = check(&text).config.expect("config");
    let plugin = &config.plugins[0];
    assert_eq!(
        plugin.library_path(&config.host.plugin_dir),
        PathBuf::from("/etc/gatehouse/plugins/libgatehouse_oidc.so")
    );
}

#[test]
fn written_as_single_tables_the_arrays_are_rejected_with_a_fix() {
    let text = BASE.replacen("[[plugin]]", "[plugin]", 1);
    let loaded = check(&text);
    let d = only(&loaded, codes::INVALID_VALUE);
    assert_eq!(d.location.line, 1);
    assert!(d.help.as_deref().unwrap_or_default().contains("[[plugin]]"));
}

const MINIMAL_WITH_REGISTRATION: &str = r#"[[domain]]
name = "root"
hosts = ["localhost"]

[registration]
user_editable_core = ["firstname", "lastname", "firstname"]
"#;

#[test]
fn user_editable_core_defaults_to_the_three_names_and_may_drop_email() {
    let loaded = check(MINIMAL_WITH_REGISTRATION);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("valid");
    assert_eq!(
        config.registration.user_editable_core,
        ["firstname", "lastname"]
    );
    assert!(!config.user_editable("email"));
    assert!(config.user_editable("firstname"));
    let defaults = check("[[domain]]\nname = \"root\"\nhosts = [\"localhost\"]\n")
        .config
        .expect("valid");
    assert_eq!(
        defaults.registration.user_editable_core,
        ["email", "firstname", "lastname"]
    );
    assert!(defaults.user_editable("email"));
    assert!(!defaults.user_editable("username"));
}

#[test]
fn user_editable_core_refuses_identifying_and_unknown_fields() {
    let text = MINIMAL_WITH_REGISTRATION.replace(
        "[\"firstname\", \"lastname\", \"firstname\"]",
        "[\"username\", \"department\", 7]",
    );
    let loaded = check(&text);
    let refused = with_code(&loaded, codes::INVALID_VALUE);
    assert_eq!(refused.len(), 3, "{:#?}", loaded.diagnostics);
    assert_eq!(refused[0].location, at(&text, "\"username\""));
    assert!(refused[0].message.contains("identifies the account"));
    assert_eq!(refused[1].location, at(&text, "\"department\""));
}

#[test]
fn secrets_from_the_environment_are_redacted_in_later_diagnostics() {
    let text = format!(
        "{MINIMAL_WITH_REGISTRATION}\n[[idp]]\nid = \"okta\"\ndomain = \"root\"\nplugin = \"oidc\"\nusername_attribute = \"sub\"\n\n[idp.settings]\nclient_secret = {{ env = \"OKTA_CLIENT_SECRET\" }}\n\n[[plugin]]\nid = \"oidc\"\nlibrary = \"gatehouse_oidc\"\n"
    );
    let config = check(&text).config.expect("valid");
    let mut found = vec![
        Diagnostic::error(
            codes::INVALID_SETTINGS,
            format!("`client_secret` = {OKTA_SECRET:?} is too short"),
            FILE,
            Location::default(),
        )
        .with_help(format!("replace {OKTA_SECRET}")),
    ];
    config.redact(&mut found);
    assert_eq!(
        found[0].message,
        "`client_secret` = \"[redacted]\" is too short"
    );
    assert_eq!(found[0].help.as_deref(), Some("replace [redacted]"));
}

#[test]
fn trusted_proxies_take_cidr_blocks_and_single_addresses() {
    let text = "[host]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1/128\", \"10.1.2.3/8\"]\n\n[[domain]]\nname = \"root\"\nhosts = [\"localhost\"]\n";
    let loaded = check(text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let proxies: Vec<String> = loaded
        .config
        .expect("valid")
        .host
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    // A block written with host bits is read as its network.
    assert_eq!(
        proxies,
        ["10.0.0.0/8", "192.0.2.7/32", "::1/128", "10.0.0.0/8"]
    );
}

#[test]
fn bad_trusted_proxies_are_refused_at_their_value() {
    let text = "[host]\ntrusted_proxies = [\"10.0.0.0/33\", \"proxy.example\", 7]\n\n[[domain]]\nname = \"root\"\nhosts = [\"localhost\"]\n";
    let loaded = check(text);
    let refused = with_code(&loaded, codes::INVALID_VALUE);
    assert_eq!(refused.len(), 3, "{:#?}", loaded.diagnostics);
    assert_eq!(refused[0].location, at(text, "\"10.0.0.0/33\""));
    assert_eq!(refused[2].location, at(text, "7"));
    assert!(
        refused[1].message.contains("proxy.example"),
        "{}",
        refused[1].message
    );
    assert!(
        refused[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("10.0.0.0/8"))
    );
    assert!(
        loaded.config.is_none(),
        "a file with errors yields no configuration"
    );

    let text = "[host]\ntrusted_proxies = \"10.0.0.0/8\"\n\n[[domain]]\nname = \"root\"\nhosts = [\"localhost\"]\n";
    let loaded = check(text);
    assert!(loaded.config.is_none(), "{:#?}", loaded.diagnostics);
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("trusted_proxies")
                && d.location == at(text, "\"10.0.0.0/8\"")),
        "{:#?}",
        loaded.diagnostics
    );
}

#[test]
fn scheduler_keys_default_to_on_hourly_and_ninety_days() {
    let loaded = check(BASE);
    let config = loaded.config.expect("config");
    assert!(config.host.scheduler);
    assert_eq!(config.host.audit_retention_days, 90);
    assert!(config.host.tasks.is_empty());
    assert!(config.idps[0].tasks.is_empty());
}

#[test]
fn scheduler_keys_and_task_schedules_are_read_with_positions() {
    let text = format!(
        r#"[host]
scheduler = false
audit_retention_days = 30

[host.tasks]
cleanup = {{ every_minutes = 15, enabled = false }}

{BASE}tasks = {{ users = {{ every_minutes = 5 }}, positions = {{ enabled = false }} }}
"#
    );
    let loaded = check(&text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    let h = &config.host;
    assert!(!h.scheduler);
    assert_eq!(h.audit_retention_days, 30);
    let cleanup = &h.tasks["cleanup"];
    assert_eq!((cleanup.every_minutes, cleanup.enabled), (Some(15), false));
    assert_eq!(cleanup.location, at(&text, "cleanup"));
    assert_eq!(
        h.key_location("tasks.cleanup.every_minutes"),
        at(&text, "every_minutes = 15")
    );
    let idp = &config.idps[0];
    assert_eq!(idp.tasks["users"].every_minutes, Some(5));
    assert!(idp.tasks["users"].enabled);
    assert_eq!(idp.tasks["positions"].every_minutes, None);
    assert!(!idp.tasks["positions"].enabled);
    assert_eq!(idp.tasks["users"].location, at(&text, "users ="));
    assert_eq!(idp.key_location("tasks.users"), at(&text, "users ="));
}

#[test]
fn unknown_task_keys_are_refused_with_suggestions() {
    let text = format!(
        r#"[host]
schedular = true

[host.tasks]
clenaup = {{ every_minutes = 15 }}

{BASE}tasks = {{ users = {{ every_minute = 5 }} }}
"#
    );
    let loaded = check(&text);
    assert!(loaded.config.is_none());
    let unknown = with_code(&loaded, codes::UNKNOWN_KEY);
    assert_eq!(unknown.len(), 3, "{:#?}", loaded.diagnostics);
    assert_eq!(unknown[0].location, at(&text, "schedular"));
    assert_eq!(
        unknown[0].help.as_deref(),
        Some("did you mean `scheduler`?")
    );
    assert_eq!(unknown[1].location, at(&text, "clenaup"));
    assert_eq!(unknown[1].help.as_deref(), Some("did you mean `cleanup`?"));
    assert!(
        unknown[1].message.contains("[host.tasks]"),
        "{}",
        unknown[1].message
    );
    assert_eq!(unknown[2].location, at(&text, "every_minute "));
    assert_eq!(
        unknown[2].help.as_deref(),
        Some("did you mean `every_minutes`?")
    );
    assert_eq!(unknown[2].idp.as_deref(), Some("okta"));
}

#[test]
fn bad_task_values_are_invalid_values() {
    let text = format!(
        r#"[host]
scheduler = "yes"
audit_retention_days = 0

[host.tasks]
cleanup = {{ every_minutes = 0 }}

{BASE}tasks = {{ users = 15, roles = {{ enabled = 1 }} }}
"#
    );
    let loaded = check(&text);
    assert!(loaded.config.is_none());
    let found: Vec<Location> = with_code(&loaded, codes::INVALID_VALUE)
        .iter()
        .map(|d| d.location)
        .collect();
    assert_eq!(
        found,
        [
            at(&text, "\"yes\""),
            at(&text, "0\n"),
            at(&text, "0 }"),
            at(&text, "15,"),
            at(&text, "1 }"),
        ],
        "{:#?}",
        loaded.diagnostics
    );
}

#[test]
fn inbound_max_body_bytes_defaults_to_256_kib_and_refuses_zero_or_a_string() {
    let defaults = check(&format!("[host]\n{BASE}")).config.expect("valid");
    assert_eq!(defaults.host.inbound_max_body_bytes, 262_144);
    let set = check(&format!("[host]\ninbound_max_body_bytes = 4096\n{BASE}"))
        .config
        .expect("valid");
    assert_eq!(set.host.inbound_max_body_bytes, 4096);
    for bad in ["0", "\"1MB\""] {
        let text = format!("[host]\ninbound_max_body_bytes = {bad}\n{BASE}");
        let loaded = check(&text);
        let found = with_code(&loaded, codes::INVALID_VALUE);
        assert_eq!(found.len(), 1, "{bad}: {:#?}", loaded.diagnostics);
        assert_eq!(found[0].location, at(&text, bad));
        assert!(
            found[0].message.contains("inbound_max_body_bytes"),
            "{}",
            found[0].message
        );
    }
}

#[test]
fn match_field_may_be_any_core_or_declared_field_and_names_the_unknown_one() {
    let text = format!(
        "{BASE}match_field = \"employee\"\n\n[[field]]\nname = \"employee\"\nmandatory = false\n"
    );
    let loaded = check(&text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    assert_eq!(config.idps[0].match_field.as_str(), "employee");

    let text = format!("{BASE}match_field = \"lastname\"\n");
    assert!(check(&text).diagnostics.is_empty());

    let text = format!("{BASE}match_field = \"emial\"\n");
    let loaded = check(&text);
    let d = only(&loaded, codes::UNKNOWN_FIELD);
    assert_eq!(d.location, at(&text, "\"emial\""));
    assert!(
        d.message.contains("matches users by `emial`"),
        "{}",
        d.message
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `email`?"));

    let text = format!("{BASE}match_field = \"badge_number\"\n");
    let d = only(&check(&text), codes::UNKNOWN_FIELD).clone();
    assert!(
        d.help
            .unwrap_or_default()
            .contains("[[field]] name = \"badge_number\"")
    );
}

#[test]
fn connect_server_is_off_unless_enabled() {
    let config = check(BASE).config.expect("valid");
    assert!(!config.connect_server.enabled);
    assert!(!config.connect_server.sync_passwords);
    let text = format!("{BASE}\n[connect_server]\nenabled = true\nsync_passwords = true\n");
    let loaded = check(&text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("valid");
    assert!(config.connect_server.enabled);
    assert!(config.connect_server.sync_passwords);
    assert_eq!(
        config.connect_server.key_location("sync_passwords"),
        at(&text, "sync_passwords")
    );
}

#[test]
fn connect_server_refuses_unknown_keys_and_wrong_types() {
    let text = format!("{BASE}\n[connect_server]\nenable = true\nsync_passwords = \"yes\"\n");
    let loaded = check(&text);
    let unknown = only(&loaded, codes::UNKNOWN_KEY);
    assert_eq!(unknown.location, at(&text, "enable ="));
    assert!(
        unknown
            .help
            .as_deref()
            .unwrap_or_default()
            .contains("enabled"),
        "{unknown:#?}"
    );
    assert!(loaded.has_errors());
    assert!(loaded.config.is_none());
    let text = format!("{BASE}\nconnect_server = true\n");
    assert!(check(&text).has_errors());
}

#[test]
fn an_idp_may_read_larger_responses_than_the_host_default() {
    let loaded = check(&format!("{BASE}http_max_response_bytes = 67108864\n"));
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("valid");
    assert_eq!(config.idps[0].http_max_response_bytes, Some(67_108_864));
    assert_eq!(config.host.http_max_response_bytes, 1_048_576);

    let unset = check(BASE).config.expect("valid");
    assert_eq!(unset.idps[0].http_max_response_bytes, None);

    for bad in ["0", "\"64M\"", "-1"] {
        let loaded = check(&format!("{BASE}http_max_response_bytes = {bad}\n"));
        let found = with_code(&loaded, codes::INVALID_VALUE);
        assert_eq!(found.len(), 1, "{bad}: {:#?}", loaded.diagnostics);
        assert!(
            found[0].message.contains("http_max_response_bytes"),
            "{bad}"
        );
    }
}

#[test]
fn relative_paths_resolve_against_the_configuration_files_directory() {
    let dir = temp_dir("relative-paths");
    let etc = dir.join("etc");
    std::fs::create_dir_all(etc.join("secrets")).expect("secrets dir");
    std::fs::write(etc.join("secrets/db"), "postgres://app@db/gatehouse\n").expect("db");
    std::fs::write(etc.join("secrets/client"), "from-etc").expect("client");
    let text = format!(
        r#"[host]
plugin_dir = "plugins"
database = {{ file = "secrets/db" }}

{BASE}
[idp.settings]
client_secret = {{ file = "secrets/client" }}
"#
    )
    .replace(
        "library = \"gatehouse_oidc\"",
        "library = \"lib/libgatehouse_oidc.so\"",
    );
    // Wherever the process runs, the paths follow the file.
    let loaded = check_at(&etc.join("plugins.toml"), &text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    assert_eq!(config.config_dir(), etc);
    assert_eq!(config.host.plugin_dir, etc.join("plugins"));
    assert_eq!(config.host.database.expose(), "postgres://app@db/gatehouse");
    assert_eq!(config.idps[0].settings["client_secret"], "from-etc");
    assert_eq!(
        config.plugins[0].library_path(&config.host.plugin_dir),
        etc.join("lib/libgatehouse_oidc.so")
    );

    // A file named by a relative path: its paths stay relative to it (and so to the
    // working directory the file itself was named from).
    let nested = check_at(
        Path::new("conf/plugins.toml"),
        &format!("[host]\nplugin_dir = \"plugins\"\n\n{BASE}"),
    );
    let nested = nested.config.expect("config");
    assert_eq!(nested.host.plugin_dir, PathBuf::from("conf/plugins"));
    let beside = check_at(
        Path::new("plugins.toml"),
        &format!("[host]\nplugin_dir = \"target/release\"\n\n{BASE}"),
    );
    assert_eq!(
        beside.config.expect("config").host.plugin_dir,
        PathBuf::from("target/release")
    );

    // An absolute path is used as written.
    let absolute = check_at(
        &etc.join("plugins.toml"),
        &format!("[host]\nplugin_dir = \"/usr/lib/gatehouse\"\n\n{BASE}"),
    );
    assert_eq!(
        absolute.config.expect("config").host.plugin_dir,
        PathBuf::from("/usr/lib/gatehouse")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_embedded_defaults_resolve_against_the_working_directory() {
    let config = gatehouse_config::parse_embedded_default()
        .expect("valid TOML")
        .config
        .expect("no errors");
    assert_eq!(config.config_dir(), Path::new(""));
    assert_eq!(config.host.plugin_dir, PathBuf::from("target/release"));
    let example = config.plugin("example").expect("the example plugin");
    assert_eq!(
        example.library_path(&config.host.plugin_dir).parent(),
        Some(Path::new("target/release"))
    );
}

#[test]
fn the_embedded_defaults_are_the_shipped_file_and_declare_every_shipped_plugin() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../plugins.toml");
    let text = std::fs::read_to_string(&shipped).expect("the repository's plugins.toml");
    assert_eq!(embedded_default(), text);
    let config = gatehouse_config::parse_embedded_default()
        .expect("valid TOML")
        .config
        .expect("no errors");
    for (id, library) in [
        ("example", "gatehouse_example"),
        ("oidc", "gatehouse_oidc"),
        ("auth0", "gatehouse_auth0"),
        ("google", "gatehouse_google"),
        ("saml", "gatehouse_saml"),
        ("connect", "gatehouse_connect"),
    ] {
        let plugin = config
            .plugin(id)
            .unwrap_or_else(|| panic!("plugins.toml declares no `{id}`"));
        assert_eq!(plugin.library, library);
        assert!(plugin.enabled, "`{id}` is enabled");
    }
    assert!(
        !text.contains("explains every key"),
        "`gatehouse check` does not explain keys; docs/configuration.md does"
    );
    assert!(text.contains("docs/configuration.md"));
}

#[test]
fn metrics_token_is_off_by_default_a_secret_and_at_least_16_characters() {
    let off = check(BASE);
    assert!(off.diagnostics.is_empty(), "{:#?}", off.diagnostics);
    assert!(off.config.expect("config").host.metrics_token.is_none());

    let from_env = check(&format!(
        "[host]\nmetrics_token = {{ env = \"OKTA_CLIENT_SECRET\" }}\n\n{BASE}"
    ));
    assert!(
        from_env.diagnostics.is_empty(),
        "{:#?}",
        from_env.diagnostics
    );
    let token = from_env.config.expect("config").host.metrics_token;
    assert_eq!(token.as_ref().map(|t| t.expose()), Some(OKTA_SECRET));
    assert_eq!(format!("{token:?}"), "Some([redacted])");

    // 15 characters: one short of the limit; 16 is accepted.
    let text = format!("[host]\nmetrics_token = \"123456789012345\"\n\n{BASE}");
    let short = check(&text);
    let d = only(&short, codes::INVALID_VALUE);
    assert_eq!(d.location, at(&text, "\"123456789012345\""));
    assert!(d.message.contains("at least 16"), "{}", d.message);
    assert!(!d.message.contains("123456789012345"), "{}", d.message);
    let enough = check(&format!(
        "[host]\nmetrics_token = \"1234567890123456\"\n\n{BASE}"
    ));
    assert!(enough.diagnostics.is_empty(), "{:#?}", enough.diagnostics);
}
