//! The example Gatehouse plugin: the template to copy when writing a new IdP plugin.
//!
//! It signs in one fixed test identity through a real redirect round trip, with no
//! identity provider behind it: `begin_login` sends the browser straight back to the
//! host's callback URL with a one-time code, and `complete_login` checks that code
//! against what it remembered. It is a development tool, not a way to sign anyone in
//! for real, so its manifest says `DEV_ONLY` and the host refuses to load it unless
//! `[host] dev_mode = true`.
//!
//! What to keep when you copy it:
//! - all settings are parsed and validated in [`Plugin::new`], with messages that name
//!   the setting and say how to fix it;
//! - all I/O, time and randomness come from the [`Host`] passed to each call;
//! - everything needed to finish the sign-in goes into [`Begun::state`], which the
//!   host keeps server-side and hands back exactly once;
//! - secrets are compared in constant time.

use gatehouse_plugin_api::{
    BeginRequest, Begun, CallbackRequest, Capabilities, Host, Identity, IdentityProvider,
    InstanceConfig, LoginStep, LogoutRequest, Manifest, Plugin, PluginError, constant_time_eq,
};
use std::collections::BTreeMap;

use serde::Deserialize;

/// The example plugin's `[idp.settings]`. Every setting has a default, so an empty
/// table signs in "Example User".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExampleSettings {
    /// The identity's subject (the IdP's stable id for the user).
    pub subject: String,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    /// More attributes to assert, e.g. `extra = { department = "R&D" }`.
    pub extra: BTreeMap<String, String>,
}

impl Default for ExampleSettings {
    fn default() -> Self {
        Self {
            subject: "example-user".into(),
            email: "example.user@example.test".into(),
            given_name: "Example".into(),
            family_name: "User".into(),
            extra: BTreeMap::new(),
        }
    }
}

/// One configured example IdP.
#[derive(Debug)]
pub struct ExampleIdp {
    instance_id: String,
    settings: ExampleSettings,
}

/// The scheduled tasks this plugin offers: `heartbeat` only says it ran (a template for a
/// real task, which would fetch something over the host's HTTP and return it).
pub const TASKS: [&str; 1] = ["heartbeat"];

/// The attributes this plugin supplies; admins map them to platform fields.
pub const ATTRIBUTES: [&str; 5] = [
    "sub",
    "email",
    "email_verified",
    "given_name",
    "family_name",
];

impl Plugin for ExampleIdp {
    fn manifest() -> Manifest {
        Manifest::new(
            "example",
            "example",
            "Example (development only)",
            env!("CARGO_PKG_VERSION"),
        )
        .with_capabilities(Capabilities::LOGOUT | Capabilities::DEV_ONLY | Capabilities::TASKS)
        .with_attributes(&ATTRIBUTES)
        .with_tasks(&TASKS)
        .with_state_parameter("state")
    }

    fn new(config: &InstanceConfig) -> Result<Self, PluginError> {
        let settings: ExampleSettings = config.settings()?;
        if settings.subject.trim().is_empty() {
            return Err(PluginError::invalid_settings(
                "`subject` must not be empty: set it to the test user's id, e.g. subject = \"example-user\"",
            ));
        }
        if !settings.email.is_empty() && !settings.email.contains('@') {
            return Err(PluginError::invalid_settings(format!(
                "`email` = {:?} is not an email address: use the form name@example.test",
                settings.email
            )));
        }
        Ok(Self {
            instance_id: config.instance_id.clone(),
            settings,
        })
    }
}

impl IdentityProvider for ExampleIdp {
    fn begin_login(&self, host: &Host<'_>, request: &BeginRequest) -> Result<Begun, PluginError> {
        // A real plugin would redirect to its IdP; this one "is" the IdP, so it sends
        // the browser straight back with a one-time code only this sign-in knows.
        let code = host.random_token();
        let url = format!(
            "{}{}state={}&code={}",
            request.callback_url,
            if request.callback_url.contains('?') {
                '&'
            } else {
                '?'
            },
            request.state_token,
            code
        );
        Ok(Begun {
            step: LoginStep::redirect(url),
            state: code.into_bytes().into(),
        })
    }

    fn complete_login(
        &self,
        host: &Host<'_>,
        request: &CallbackRequest,
    ) -> Result<Identity, PluginError> {
        if let Some(error) = request.param("error") {
            return Err(PluginError::access_denied(format!(
                "the IdP refused the sign-in: {error}"
            )));
        }
        let code = request
            .param("code")
            .ok_or_else(|| PluginError::invalid_response("the callback has no `code` parameter"))?;
        if !constant_time_eq(code.as_bytes(), &request.state) {
            return Err(PluginError::invalid_response(
                "the callback's `code` does not match this sign-in",
            ));
        }
        host.debug("example sign-in completed");
        let s = &self.settings;
        let identity = Identity::new(s.subject.as_str())
            .with_attribute("sub", s.subject.as_str())
            .with_attribute("email", s.email.as_str())
            // The address is the one the admin configured, so the IdP vouches for it
            // (`extra = { email_verified = "false" }` says otherwise).
            .with_attribute("email_verified", "true")
            .with_attribute("given_name", s.given_name.as_str())
            .with_attribute("family_name", s.family_name.as_str());
        Ok(s.extra.iter().fold(identity, |identity, (name, value)| {
            identity.with_attribute(name, value.as_str())
        }))
    }

    fn logout(
        &self,
        _host: &Host<'_>,
        _request: &LogoutRequest,
    ) -> Result<Option<LoginStep>, PluginError> {
        // Nothing to end at an IdP that does not exist.
        Ok(None)
    }

    fn run_task(&self, host: &Host<'_>, task: &str) -> Result<serde_json::Value, PluginError> {
        match task {
            // A task returns JSON for the host; `summary` is the line it records.
            "heartbeat" => Ok(serde_json::json!({
                "summary": format!(
                    "example IdP `{}` is alive at {}",
                    self.instance_id,
                    host.now_unix_seconds()
                ),
            })),
            other => Err(PluginError::unsupported(&format!(
                "the scheduled task `{other}`"
            ))),
        }
    }
}

gatehouse_plugin_api::export_plugin!(ExampleIdp);

#[cfg(test)]
mod tests {
    use gatehouse_plugin_api::testkit::{FakeHost, conformance};
    use serde_json::json;

    use super::*;

    fn begin_request() -> BeginRequest {
        BeginRequest {
            callback_url: "https://sso.example.test/sso/example/callback".into(),
            state_token: "host-token".into(),
            login_hint: None.into(),
        }
    }

    #[test]
    fn passes_the_conformance_check() {
        conformance::check::<ExampleIdp>(&conformance::Case {
            good_settings: json!({}),
            bad_settings: vec![
                (json!({ "subject": "" }), "subject"),
                (json!({ "email": "not-an-address" }), "email"),
                (json!({ "colour": "blue" }), "colour"),
            ],
        });
    }

    #[test]
    fn round_trip_signs_in_the_configured_identity() {
        let fake = FakeHost::new();
        let idp = ExampleIdp::new(&InstanceConfig {
            instance_id: "example".into(),
            settings: json!({ "subject": "u-1", "email": "ada@example.test" }),
        })
        .expect("valid settings");

        let begun = fake
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        let url = begun.step.url.as_str();
        assert!(
            url.starts_with("https://sso.example.test/sso/example/callback?state=host-token&code=")
        );
        let code = url.rsplit("code=").next().expect("code in URL");

        let callback = CallbackRequest {
            callback_url: begin_request().callback_url,
            query: vec![gatehouse_plugin_api::Pair::new("code", code)].into(),
            form: Default::default(),
            state: begun.state,
        };
        let identity = fake
            .call(|host| idp.complete_login(host, &callback))
            .expect("completes");
        assert_eq!(identity.subject.as_str(), "u-1");
        assert_eq!(identity.attribute("email"), Some("ada@example.test"));
        assert_eq!(identity.attribute("given_name"), Some("Example"));
    }

    #[test]
    fn a_code_from_another_sign_in_is_refused() {
        let fake = FakeHost::new();
        let idp = ExampleIdp::new(&InstanceConfig {
            instance_id: "example".into(),
            settings: json!({}),
        })
        .expect("valid settings");
        let begun = fake
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        let callback = CallbackRequest {
            callback_url: begin_request().callback_url,
            query: vec![gatehouse_plugin_api::Pair::new("code", "guessed")].into(),
            form: Default::default(),
            state: begun.state,
        };
        let error = fake
            .call(|host| idp.complete_login(host, &callback))
            .expect_err("refused");
        assert_eq!(
            error.kind,
            gatehouse_plugin_api::ErrorKind::INVALID_RESPONSE
        );
    }

    #[test]
    fn the_heartbeat_task_returns_a_summary_and_other_tasks_are_refused() {
        let fake = FakeHost::new();
        let idp = ExampleIdp::new(&InstanceConfig {
            instance_id: "dev".into(),
            settings: json!({}),
        })
        .expect("valid settings");
        let out = fake
            .call(|host| idp.run_task(host, "heartbeat"))
            .expect("runs");
        let summary = out["summary"].as_str().expect("a summary");
        assert!(
            summary.starts_with("example IdP `dev` is alive at "),
            "{summary}"
        );
        let error = fake
            .call(|host| idp.run_task(host, "users"))
            .expect_err("not a task of this plugin");
        assert_eq!(error.kind, gatehouse_plugin_api::ErrorKind::UNSUPPORTED);
    }

    #[test]
    fn seeded_randomness_makes_begin_login_deterministic() {
        let idp = ExampleIdp::new(&InstanceConfig {
            instance_id: "example".into(),
            settings: json!({}),
        })
        .expect("valid settings");
        let first = FakeHost::with_seed(7)
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        let second = FakeHost::with_seed(7)
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        assert_eq!(first, second);
    }
}
