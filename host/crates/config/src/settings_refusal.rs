//! Where a plugin's refusal of an IdP's `[idp.settings]` points, and what it suggests: the
//! plugin answers with text, and this finds the setting that text is about. It does not judge
//! settings (each plugin does) nor print anything.

use crate::{
    model::IdpConfig,
    position::Location,
    suggest::{closest, list},
};

/// The place and help for an `invalid-settings` diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsRefusal {
    /// The offending key when the message names one the file wrote, else the
    /// `[idp.settings]` header (or the `[[idp]]` table when that header is absent).
    pub location: Location,
    pub help: String,
}

/// Reads a plugin's refusal `message` of `idp`'s settings.
///
/// The first name in backticks that is a key of `[idp.settings]` in the file is the offending
/// one (serde's own messages, which every shipped plugin passes on, put the key in backticks:
/// "unknown field `clientid`, expected one of `issuer`, `client_id`"). For an unknown key the
/// help suggests the closest expected one; for a missing one (serde's "missing field `x`")
/// it says to add it.
pub fn settings_refusal(idp: &IdpConfig, message: &str) -> SettingsRefusal {
    let names = backticked(message);
    let header = if idp.settings_location == Location::default() {
        idp.location
    } else {
        idp.settings_location
    };
    let written = names
        .iter()
        .find(|name| idp.key_locations.contains(&format!("settings.{name}")));
    let expected = message
        .split_once("expected one of")
        .or_else(|| message.split_once("expected"))
        .map(|(_, rest)| backticked(rest))
        .unwrap_or_default();
    if let Some(key) = written {
        let location = idp.key_location(&format!("settings.{key}"));
        let help = if message.contains("unknown field") {
            match closest(key, &expected) {
                Some(near) => format!("did you mean `{near}`?"),
                None if expected.is_empty() => format!("remove `{key}`"),
                None => format!("remove `{key}`; the plugin knows {}", list(&expected)),
            }
        } else {
            format!("correct `{key}` as the message says")
        };
        return SettingsRefusal { location, help };
    }
    let help = match message
        .split_once("missing field")
        .map(|(_, rest)| backticked(rest))
    {
        Some(missing) if !missing.is_empty() => {
            format!("add `{} = …` to the IdP's [idp.settings]", missing[0])
        }
        _ => "correct the IdP's [idp.settings] as the message says".to_owned(),
    };
    SettingsRefusal {
        location: header,
        help,
    }
}

/// Every `name` written in backticks in `text`, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::KeyLocations;

    fn idp_with_settings(keys: &[(&str, u32)]) -> IdpConfig {
        let mut key_locations = KeyLocations::default();
        for &(key, line) in keys {
            key_locations.insert(
                format!("settings.{key}"),
                Location::new(line, 1),
                Location::new(line, key.len() as u32 + 4),
            );
        }
        IdpConfig {
            id: "okta".into(),
            location: Location::new(10, 1),
            settings_location: Location::new(20, 1),
            key_locations,
            ..IdpConfig::default()
        }
    }

    #[test]
    fn an_unknown_setting_points_at_its_key_and_suggests_the_closest_expected_one() {
        let idp = idp_with_settings(&[("issuer", 21), ("clientid", 22)]);
        let refusal = settings_refusal(
            &idp,
            "[idp.settings] of `okta`: `clientid`: unknown field `clientid`, expected one of `issuer`, `client_id`, `client_secret`",
        );
        assert_eq!(refusal.location, Location::new(22, 1));
        assert_eq!(refusal.help, "did you mean `client_id`?");
    }

    #[test]
    fn an_unknown_setting_with_nothing_close_lists_what_the_plugin_knows() {
        let idp = idp_with_settings(&[("colour", 23)]);
        let refusal = settings_refusal(
            &idp,
            "unknown field `colour`, expected one of `issuer`, `client_id`",
        );
        assert_eq!(refusal.location, Location::new(23, 1));
        assert_eq!(
            refusal.help,
            "remove `colour`; the plugin knows `issuer`, `client_id`"
        );
    }

    #[test]
    fn a_bad_value_points_at_its_key() {
        let idp = idp_with_settings(&[("issuer", 21)]);
        let refusal = settings_refusal(&idp, "`issuer` must be an https URL");
        assert_eq!(refusal.location, Location::new(21, 1));
        assert_eq!(refusal.help, "correct `issuer` as the message says");
    }

    #[test]
    fn a_missing_setting_points_at_the_header_and_says_to_add_it() {
        let idp = idp_with_settings(&[("issuer", 21)]);
        let refusal = settings_refusal(&idp, "missing field `client_id`");
        assert_eq!(refusal.location, Location::new(20, 1));
        assert_eq!(
            refusal.help,
            "add `client_id = …` to the IdP's [idp.settings]"
        );
    }

    #[test]
    fn without_a_settings_header_the_idp_table_is_pointed_at() {
        let mut idp = idp_with_settings(&[]);
        idp.settings_location = Location::default();
        let refusal = settings_refusal(&idp, "something is wrong");
        assert_eq!(refusal.location, Location::new(10, 1));
    }
}
