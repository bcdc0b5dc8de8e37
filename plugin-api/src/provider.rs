//! The traits a plugin author implements, in plain Rust: [`Plugin`] (manifest and
//! constructor) and [`IdentityProvider`] (begin and complete a sign-in, plus
//! optional abilities). The FFI adaptation lives in `module`, not here.

use crate::{
    context::Placement,
    error::PluginError,
    host::Host,
    inbound::{InboundReply, InboundRequest, RouteDecl},
    online::OnlineReport,
    types::{
        BeginRequest, Begun, CallbackRequest, Document, Identity, LoginStep, LogoutRequest,
        Manifest,
    },
};

/// What the host hands a plugin's constructor for one IdP instance.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// The IdP instance's id from `plugins.toml` (unique, appears in URLs).
    pub instance_id: String,
    /// The instance's `[idp.settings]` as JSON, with secrets already resolved.
    pub settings: serde_json::Value,
    /// (1.2) The domain the instance serves and its origins. Set by every 1.2+ host;
    /// `None` only where a caller builds the instance without one (the 1.0 entry point).
    pub placement: Option<Placement>,
}

impl InstanceConfig {
    /// A configuration for instance `instance_id` with these settings and no placement.
    pub fn new(instance_id: &str, settings: serde_json::Value) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            settings,
            placement: None,
        }
    }

    /// The same configuration, placed on a domain.
    pub fn placed(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// The placement, or an `invalid-settings` error for plugins that cannot work
    /// without knowing their URLs.
    pub fn require_placement(&self) -> Result<&Placement, PluginError> {
        self.placement.as_ref().ok_or_else(|| {
            PluginError::invalid_settings(format!(
                "`{}` needs to know its domain's URLs: this host is older than plugin API 1.2",
                self.instance_id
            ))
        })
    }

    /// Deserialises the settings into the plugin's own type, turning serde's
    /// message into an `invalid-settings` error that names the IdP.
    pub fn settings<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_value(self.settings.clone()).map_err(|error| {
            PluginError::invalid_settings(format!(
                "[idp.settings] of `{}`: {error}",
                self.instance_id
            ))
        })
    }
}

/// A plugin: its manifest, and how to build an IdP instance from settings.
pub trait Plugin: IdentityProvider + Sized + 'static {
    /// The plugin's manifest. `api_version` is filled in by the export macro.
    fn manifest() -> Manifest;

    /// Validates the settings and builds an instance. Do no I/O here: there is no
    /// [`Host`] yet. Refuse bad settings with [`PluginError::invalid_settings`] and a
    /// message that says which setting is wrong and how to fix it.
    fn new(config: &InstanceConfig) -> Result<Self, PluginError>;

    /// (1.1) The routes the plugin serves besides start and callback: requests from
    /// the IdP or its peers ([`IdentityProvider::handle_inbound`]) and fixed-path
    /// browser callbacks. None by default.
    fn routes() -> Vec<RouteDecl> {
        Vec::new()
    }
}

/// One IdP instance: the begin/complete sign-in shape, plus optional abilities.
///
/// Every method receives a [`Host`] for the duration of the call. Panics are caught
/// by the export layer and reported as internal errors.
pub trait IdentityProvider: Send + Sync {
    /// Decides where the browser goes and what must be remembered until it returns.
    /// The plugin must send `request.state_token` to the IdP so that it comes back in
    /// the manifest's `state_parameter`.
    fn begin_login(&self, host: &Host<'_>, request: &BeginRequest) -> Result<Begun, PluginError>;

    /// Turns the IdP's answer and the remembered state into an identity, or refuses.
    fn complete_login(
        &self,
        host: &Host<'_>,
        request: &CallbackRequest,
    ) -> Result<Identity, PluginError>;

    /// Optional ([`Capabilities::LOGOUT`](crate::Capabilities::LOGOUT)): where to send
    /// the browser to sign out at the IdP, or `None` if nothing is needed.
    fn logout(
        &self,
        _host: &Host<'_>,
        _request: &LogoutRequest,
    ) -> Result<Option<LoginStep>, PluginError> {
        Err(PluginError::unsupported("logout at the IdP"))
    }

    /// Optional ([`Capabilities::METADATA`](crate::Capabilities::METADATA)).
    fn metadata(&self, _host: &Host<'_>) -> Result<Document, PluginError> {
        Err(PluginError::unsupported("metadata"))
    }

    /// Optional ([`Capabilities::TASKS`](crate::Capabilities::TASKS)): runs a named
    /// scheduled task and returns data for the host to apply.
    fn run_task(&self, _host: &Host<'_>, task: &str) -> Result<serde_json::Value, PluginError> {
        Err(PluginError::unsupported(&format!(
            "the scheduled task `{task}`"
        )))
    }

    /// [`run_task`](Self::run_task) with its output as JSON text, which is what crosses to
    /// the host: a task whose output is large (a directory of 100,000 users) overrides this
    /// to serialize typed data straight to text instead of building a JSON tree first. The
    /// default serializes `run_task`'s value.
    fn run_task_json(&self, host: &Host<'_>, task: &str) -> Result<String, PluginError> {
        self.run_task(host, task).map(|value| value.to_string())
    }

    /// Optional (1.1, with routes declared in [`Plugin::routes`]): answers a request a
    /// remote party sent to one of them. Refuse what is malformed with a 4xx reply or a
    /// [`PluginError`] (never a panic); put what the host must do (end sessions) in the
    /// reply's actions.
    fn handle_inbound(
        &self,
        _host: &Host<'_>,
        request: &InboundRequest,
    ) -> Result<InboundReply, PluginError> {
        Err(PluginError::unsupported(&format!(
            "requests to `{}`",
            request.route
        )))
    }

    /// Optional (1.3): reaches the provider through `host.http` as a sign-in would
    /// (discovery and keys, metadata, an API version) and reports what is unreachable or
    /// misconfigured, for `gatehouse check --online`. Put each problem in the report as a
    /// finding (naming the setting it is about); return an `Err` only when the check itself
    /// could not run. The default answers "unsupported", which the host reports as
    /// "no online check".
    fn check_online(&self, _host: &Host<'_>) -> Result<OnlineReport, PluginError> {
        Err(PluginError::unsupported("online checks"))
    }
}
