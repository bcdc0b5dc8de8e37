//! The Connect client's `[idp.settings]` (INTERFACES.md "Connect client settings": Totara's
//! own settings, snake-cased) and what the instance knows of its place (the client URL a
//! server's admin is given). Validation only; what the settings change is elsewhere.

use gatehouse_plugin_api::{InstanceConfig, PluginError};
use serde::Deserialize;

/// "Account mapping": the field local accounts are matched by when `migrate_users` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrateMap {
    Username,
    Email,
    Idnumber,
    /// The local username is already `tc_<server user id>_<server idnumber>`.
    Uniqueid,
}

/// "Action to take when a user is removed from the restricted audience".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoveUser {
    Keep,
    Suspend,
    Delete,
}

/// The settings as written in `plugins.toml`; every one is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectSettings {
    /// Registration from any other server is refused when set.
    pub server_url: Option<String>,
    /// "Migrate local accounts".
    pub migrate_users: bool,
    /// "Account mapping".
    pub migrate_map: MigrateMap,
    /// "Synchronise custom profile fields".
    pub sync_profile_fields: bool,
    pub remove_user: RemoveUser,
    /// "Synchronise job assignments".
    pub sync_jobs: bool,
    pub sync_positions: bool,
    pub sync_organisations: bool,
    /// "Allow requests to plugin services". Gatehouse has no plugin services, so a
    /// component other than `auth_connect` is refused either way (with the original's text).
    pub allow_plugin_services: bool,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        Self {
            server_url: None,
            migrate_users: false,
            migrate_map: MigrateMap::Username,
            sync_profile_fields: false,
            remove_user: RemoveUser::Suspend,
            sync_jobs: false,
            sync_positions: false,
            sync_organisations: false,
            allow_plugin_services: false,
        }
    }
}

/// Validated settings plus the instance's place.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub instance_id: String,
    pub settings: ConnectSettings,
    /// `server_url` without its trailing `/`, as the server sends `serverurl` (`wwwroot`).
    pub server_url: Option<String>,
    /// The primary origin of the instance's domain: what `new-server` hands the server's
    /// admin, and where the server calls `sep_setup.php` and `sep.php`. `None` only where
    /// the caller gave no placement (the 1.0 entry point); `new_server` then refuses.
    pub client_url: Option<String>,
}

impl ClientConfig {
    /// Reads and checks the settings; every refusal names the setting and the fix.
    pub fn from_instance(config: &InstanceConfig) -> Result<Self, PluginError> {
        let settings: ConnectSettings = serde_json::from_value(config.settings.clone())
            .map_err(|error| {
                PluginError::invalid_settings(format!(
                    "[idp.settings] of `{}`: {error}; the settings are server_url, migrate_users, migrate_map (username | email | idnumber | uniqueid), sync_profile_fields, remove_user (keep | suspend | delete), sync_jobs, sync_positions, sync_organisations, allow_plugin_services",
                    config.instance_id
                ))
            })?;
        let server_url = match &settings.server_url {
            None => None,
            Some(url) => Some(check_server_url(url)?),
        };
        let client_url = config
            .placement
            .as_ref()
            .map(|p| p.primary_base_url().to_owned())
            .filter(|url| !url.is_empty());
        Ok(Self {
            instance_id: config.instance_id.clone(),
            settings,
            server_url,
            client_url,
        })
    }
}

/// An absolute http(s) URL of a site root: no query, fragment or credentials; the trailing
/// `/` dropped (the server sends its `wwwroot` without one).
fn check_server_url(text: &str) -> Result<String, PluginError> {
    let refuse = |why: &str| {
        PluginError::invalid_settings(format!(
            "`server_url` = {text:?} {why}: set it to the Connect server's address, e.g. server_url = \"https://hq.example.com\", or leave it out to accept any server"
        ))
    };
    let parsed = url::Url::parse(text).map_err(|_| refuse("is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("is not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refuse("has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse("has a query or a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("carries credentials"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("contains spaces or control characters"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use gatehouse_plugin_api::Placement;
    use serde_json::json;

    use super::*;

    fn build(settings: serde_json::Value) -> Result<ClientConfig, PluginError> {
        ClientConfig::from_instance(&InstanceConfig::new("hq", settings).placed(Placement::new(
            "root",
            &["https://learn.example.test/", "https://other.example.test"],
        )))
    }

    #[test]
    fn defaults_are_totaras() {
        let config = build(json!({})).expect("valid");
        assert_eq!(config.settings.remove_user, RemoveUser::Suspend);
        assert_eq!(config.settings.migrate_map, MigrateMap::Username);
        assert!(!config.settings.migrate_users);
        assert_eq!(
            config.client_url.as_deref(),
            Some("https://learn.example.test")
        );
        assert_eq!(config.server_url, None);
    }

    #[test]
    fn every_value_of_the_enumerations_is_read() {
        for (value, expected) in [
            ("keep", RemoveUser::Keep),
            ("suspend", RemoveUser::Suspend),
            ("delete", RemoveUser::Delete),
        ] {
            let config = build(json!({ "remove_user": value })).expect("valid");
            assert_eq!(config.settings.remove_user, expected);
        }
        for (value, expected) in [
            ("username", MigrateMap::Username),
            ("email", MigrateMap::Email),
            ("idnumber", MigrateMap::Idnumber),
            ("uniqueid", MigrateMap::Uniqueid),
        ] {
            let config = build(json!({ "migrate_map": value })).expect("valid");
            assert_eq!(config.settings.migrate_map, expected);
        }
    }

    #[test]
    fn the_server_url_loses_its_trailing_slash() {
        let config = build(json!({ "server_url": "https://hq.example.test/" })).expect("valid");
        assert_eq!(
            config.server_url.as_deref(),
            Some("https://hq.example.test")
        );
    }

    #[test]
    fn refusals_name_the_setting() {
        for (settings, word) in [
            (
                json!({ "server_url": "ftp://hq.example.test" }),
                "server_url",
            ),
            (json!({ "server_url": "not a url" }), "server_url"),
            (
                json!({ "server_url": "https://hq.example.test/?x=1" }),
                "server_url",
            ),
            (json!({ "remove_user": "purge" }), "remove_user"),
            (json!({ "migrate_map": "phone" }), "migrate_map"),
            (json!({ "sync_jobs": "yes" }), "sync_jobs"),
            (json!({ "colour": "blue" }), "colour"),
        ] {
            let error = build(settings.clone()).expect_err("refused");
            assert!(error.message().contains(word), "{settings}: {error}");
        }
    }

    #[test]
    fn an_instance_without_placement_has_no_client_url() {
        let config =
            ClientConfig::from_instance(&InstanceConfig::new("hq", json!({}))).expect("valid");
        assert_eq!(config.client_url, None);
    }
}
