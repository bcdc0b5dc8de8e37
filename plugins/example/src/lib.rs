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
//!
//! It also shows the optional abilities: signing out (nothing to do at the IdP),
//! metadata (a JSON description at `/sso/{idp}/metadata`), the online check of plugin API
//! 1.3 (`gatehouse check --online`: nothing to reach, so it reports ok), and inbound
//! requests (plugin API 1.1) from a pretend IdP or peer, enabled by `inbound_secret`:
//! - `POST /sso/{idp}/notify` (`secret`, `subject`): IdP-initiated sign-out, which asks
//!   the host to end that subject's sessions;
//! - `POST /example/sep.php` (`secret`, `service` = `is_active` | `kill`, `subject`): a
//!   peer at a fixed protocol path, asking whether the subject is signed in (through
//!   the host's `sessions_alive`) or ending their sessions;
//! - `GET /example/sso_finish.php`: with `finish_at_fixed_path = true`, the browser
//!   returns there instead of `/sso/{idp}/callback`, and the host finishes the sign-in
//!   exactly as at the callback.
//!
//! With `answer_by_post = true` it answers as SAML's HTTP-POST binding does (an
//! auto-submitting form to the callback), and with `allow_unsolicited = true` it accepts
//! an answer to no sign-in, as an IdP-initiated SAML sign-in would be.

use gatehouse_plugin_api::{
    BeginRequest, Begun, CallbackRequest, Capabilities, Document, Host, HostAction, Identity,
    IdentityProvider, InboundReply, InboundRequest, InstanceConfig, LoginStep, LogoutRequest,
    Manifest, OnlineReport, Pair, Plugin, PluginError, RouteDecl, SessionSelector,
    constant_time_eq,
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
    /// The shared secret inbound requests must carry; empty refuses them all.
    pub inbound_secret: String,
    /// Send the browser back to `/example/sso_finish.php` rather than the callback.
    pub finish_at_fixed_path: bool,
    /// Answer as SAML's HTTP-POST binding does: an auto-submitting form POSTs `state` and
    /// `code` to the callback (the host then finishes at `/sso/{idp}/finish`).
    pub answer_by_post: bool,
    /// Accept an unsolicited POSTed answer (no state; its `code` must equal
    /// `inbound_secret`), as an IdP-initiated SAML sign-in would be.
    pub allow_unsolicited: bool,
}

impl Default for ExampleSettings {
    fn default() -> Self {
        Self {
            subject: "example-user".into(),
            email: "example.user@example.test".into(),
            given_name: "Example".into(),
            family_name: "User".into(),
            extra: BTreeMap::new(),
            inbound_secret: String::new(),
            finish_at_fixed_path: false,
            answer_by_post: false,
            allow_unsolicited: false,
        }
    }
}

/// The fixed path a pretend peer calls (as Totara Connect servers call `sep.php`).
pub const SEP_PATH: &str = "/example/sep.php";
/// The fixed path the browser returns to with `finish_at_fixed_path`.
pub const FINISH_PATH: &str = "/example/sso_finish.php";

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
        .with_capabilities(
            Capabilities::LOGOUT
                | Capabilities::METADATA
                | Capabilities::TASKS
                | Capabilities::DEV_ONLY,
        )
        .with_attributes(&ATTRIBUTES)
        .with_tasks(&TASKS)
        .with_state_parameter("state")
    }

    fn routes() -> Vec<RouteDecl> {
        vec![
            RouteDecl::below_idp("notify", &["POST"]).with_max_body_bytes(4096),
            RouteDecl::fixed(SEP_PATH, &["POST"]).with_max_body_bytes(4096),
            RouteDecl::fixed_callback(FINISH_PATH, &["GET"]),
        ]
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
        let return_to = if self.settings.finish_at_fixed_path {
            fixed_path_url(&request.callback_url, FINISH_PATH)?
        } else {
            request.callback_url.to_string()
        };
        let step = if self.settings.answer_by_post {
            LoginStep::post_form(
                return_to,
                vec![
                    Pair::new("state", request.state_token.as_str()),
                    Pair::new("code", code.as_str()),
                ],
            )
        } else {
            LoginStep::redirect(format!(
                "{return_to}{}state={}&code={code}",
                if return_to.contains('?') { '&' } else { '?' },
                request.state_token,
            ))
        };
        Ok(Begun {
            step,
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
        // Empty state: the host found no state parameter, so the answer is unsolicited.
        let expected = if request.state.is_empty() {
            if !self.settings.allow_unsolicited || self.settings.inbound_secret.is_empty() {
                return Err(PluginError::invalid_response(
                    "unsolicited: an answer to no sign-in, and `allow_unsolicited` is off",
                ));
            }
            self.settings.inbound_secret.as_bytes()
        } else {
            request.state.as_slice()
        };
        if !constant_time_eq(code.as_bytes(), expected) {
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

    fn metadata(&self, _host: &Host<'_>) -> Result<Document, PluginError> {
        let description = serde_json::json!({
            "plugin": "example",
            "subject": self.settings.subject,
            "attributes": ATTRIBUTES,
        });
        Ok(Document {
            content_type: "application/json".into(),
            body: description.to_string().into(),
        })
    }

    fn handle_inbound(
        &self,
        host: &Host<'_>,
        request: &InboundRequest,
    ) -> Result<InboundReply, PluginError> {
        let refuse = |status: u16, message: &str| {
            InboundReply::json(&serde_json::json!({ "status": "fail", "message": message }))
                .with_status(status)
        };
        let secret = self.settings.inbound_secret.as_bytes();
        let given = request.param("secret").unwrap_or_default().as_bytes();
        if secret.is_empty() || !constant_time_eq(given, secret) {
            return Ok(refuse(403, "wrong or missing secret"));
        }
        let Some(subject) = request.param("subject").filter(|s| !s.is_empty()) else {
            return Ok(refuse(400, "a subject is required"));
        };
        let end = HostAction::end_sessions(SessionSelector::subject(subject));
        let success = |data: serde_json::Value| {
            InboundReply::json(&serde_json::json!({ "status": "success", "data": data }))
        };
        match (request.route.as_str(), request.param("service")) {
            ("notify", _) | (SEP_PATH, Some("kill")) => {
                host.info("the IdP signed a subject out");
                Ok(success(serde_json::json!([])).with_action(end))
            }
            (SEP_PATH, Some("is_active")) => {
                let live = host.sessions_alive(SessionSelector::subject(subject))?;
                Ok(success(serde_json::json!({ "active": live > 0 })))
            }
            (SEP_PATH, _) => Ok(refuse(400, "unknown service")),
            (other, _) => Err(PluginError::invalid_response(format!(
                "no inbound route `{other}`"
            ))),
        }
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

    /// (API 1.3) `gatehouse check --online`. A real plugin reaches its provider here through
    /// `host.http` and reports each problem as a finding naming its setting; this one has no
    /// provider to reach, so all is well.
    fn check_online(&self, _host: &Host<'_>) -> Result<OnlineReport, PluginError> {
        let mut report = OnlineReport::new();
        report.checked("nothing: the example IdP has no provider");
        Ok(report)
    }
}

/// `path` on the scheme and host of the callback URL (which the host built from the
/// host the browser came on).
fn fixed_path_url(callback_url: &str, path: &str) -> Result<String, PluginError> {
    let origin_end = callback_url
        .find("://")
        .and_then(|scheme| callback_url[scheme + 3..].find('/').map(|i| scheme + 3 + i))
        .ok_or_else(|| PluginError::internal("the callback URL has no path"))?;
    Ok(format!("{}{path}", &callback_url[..origin_end]))
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
            good_settings: json!({ "inbound_secret": "s3cret" }),
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
        let idp = ExampleIdp::new(&InstanceConfig::new(
            "example",
            json!({ "subject": "u-1", "email": "ada@example.test" }),
        ))
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
        let idp =
            ExampleIdp::new(&InstanceConfig::new("example", json!({}))).expect("valid settings");
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

    fn inbound(route: &str, form: &[(&str, &str)]) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            route: route.into(),
            host: "sso.example.test".into(),
            headers: Default::default(),
            query: Default::default(),
            form: form
                .iter()
                .map(|(n, v)| gatehouse_plugin_api::Pair::new(*n, *v))
                .collect(),
            body: Default::default(),
        }
    }

    #[test]
    fn inbound_requests_need_the_secret_and_end_sessions_as_data() {
        let fake = FakeHost::new();
        fake.add_session("u-1", b"");
        let idp = ExampleIdp::new(&InstanceConfig::new(
            "example",
            json!({ "inbound_secret": "s3cret" }),
        ))
        .expect("valid settings");
        let call = |route: &str, form: &[(&str, &str)]| {
            fake.call(|host| idp.handle_inbound(host, &inbound(route, form)))
                .expect("answers")
        };
        let wrong = call("notify", &[("secret", "guess"), ("subject", "u-1")]);
        assert_eq!((wrong.status, wrong.actions.len()), (403, 0));
        let notified = call("notify", &[("secret", "s3cret"), ("subject", "u-1")]);
        assert_eq!(notified.status, 200);
        assert_eq!(
            notified.actions.as_slice(),
            [HostAction::end_sessions(SessionSelector::subject("u-1"))]
        );
        let active = |subject| {
            let reply = call(
                SEP_PATH,
                &[
                    ("secret", "s3cret"),
                    ("service", "is_active"),
                    ("subject", subject),
                ],
            );
            String::from_utf8(reply.body.to_vec()).expect("utf-8")
        };
        assert!(
            active("u-1").contains(r#""active":true"#),
            "{}",
            active("u-1")
        );
        assert!(active("u-2").contains(r#""active":false"#));
    }

    #[test]
    fn finishing_at_the_fixed_path_keeps_the_callbacks_host() {
        let idp = ExampleIdp::new(&InstanceConfig::new(
            "example",
            json!({ "finish_at_fixed_path": true }),
        ))
        .expect("valid settings");
        let begun = FakeHost::new()
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        assert!(
            begun.step.url.starts_with(
                "https://sso.example.test/example/sso_finish.php?state=host-token&code="
            ),
            "{}",
            begun.step.url
        );
    }

    #[test]
    fn the_heartbeat_task_returns_a_summary_and_other_tasks_are_refused() {
        let fake = FakeHost::new();
        let idp = ExampleIdp::new(&InstanceConfig::new("dev", json!({}))).expect("valid settings");
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
        let idp =
            ExampleIdp::new(&InstanceConfig::new("example", json!({}))).expect("valid settings");
        let first = FakeHost::with_seed(7)
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        let second = FakeHost::with_seed(7)
            .call(|host| idp.begin_login(host, &begin_request()))
            .expect("begins");
        assert_eq!(first, second);
    }
}
