//! The plain data that crosses the ABI: manifests, login steps, callbacks,
//! identities and HTTP messages. Every type here is `#[repr(C)]` and `StableAbi`;
//! none of them carries behaviour beyond constructors and accessors.

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};

/// The version of the plugin API a library was built against.
///
/// A host accepts a plugin whose `major` equals its own and whose `minor` is not
/// newer than its own.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The optional abilities a plugin declares, as bit flags that later API versions
/// can extend without breaking older plugins.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// Begin and complete a sign-in. Every plugin has it.
    pub const LOGIN: Self = Self(1);
    /// Sign the user out at the IdP too.
    pub const LOGOUT: Self = Self(1 << 1);
    /// Publish service-provider metadata (SAML).
    pub const METADATA: Self = Self(1 << 2);
    /// Named scheduled tasks whose results the host applies.
    pub const TASKS: Self = Self(1 << 3);
    /// A development or test plugin: the host refuses it unless `[host] dev_mode = true`.
    pub const DEV_ONLY: Self = Self(1 << 4);

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// The names of the set flags, for `gatehouse plugins`.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::LOGIN, "login"),
            (Self::LOGOUT, "logout"),
            (Self::METADATA, "metadata"),
            (Self::TASKS, "tasks"),
            (Self::DEV_ONLY, "dev-only"),
        ]
        .into_iter()
        .filter(|(flag, _)| self.contains(*flag))
        .map(|(_, name)| name)
        .collect()
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        self.union(other)
    }
}

/// What a plugin says about itself. The host reads it before creating any IdP.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Unique among loaded plugins; `plugins.toml` must configure the library under this id.
    pub id: RString,
    /// The protocol key (`oidc`, `saml2`, …); the resolver allows one IdP per protocol per domain.
    pub protocol: RString,
    /// A human name for status pages.
    pub display_name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// The plugin API the library was built against; filled in by [`export_plugin!`](crate::export_plugin).
    pub api_version: ApiVersion,
    pub capabilities: Capabilities,
    /// The attribute names this plugin can supply, for field mapping checks.
    pub attributes: RVec<RString>,
    /// The names of the scheduled tasks the plugin offers (with [`Capabilities::TASKS`]).
    pub tasks: RVec<RString>,
    /// The name of the callback parameter that carries the host's state token back
    /// (`state` for OAuth-style protocols, `RelayState` for SAML).
    pub state_parameter: RString,
}

impl Manifest {
    /// A manifest with the `login` capability and no attributes yet.
    pub fn new(id: &str, protocol: &str, display_name: &str, version: &str) -> Self {
        Self {
            id: id.into(),
            protocol: protocol.into(),
            display_name: display_name.into(),
            version: version.into(),
            api_version: crate::API_VERSION,
            capabilities: Capabilities::LOGIN,
            attributes: RVec::new(),
            tasks: RVec::new(),
            state_parameter: "state".into(),
        }
    }
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = self.capabilities | capabilities;
        self
    }
    pub fn with_attributes(mut self, attributes: &[&str]) -> Self {
        self.attributes = attributes.iter().map(|a| RString::from(*a)).collect();
        self
    }
    pub fn with_tasks(mut self, tasks: &[&str]) -> Self {
        self.tasks = tasks.iter().map(|t| RString::from(*t)).collect();
        self
    }
    pub fn with_state_parameter(mut self, name: &str) -> Self {
        self.state_parameter = name.into();
        self
    }
}

/// A name and a value: a query or form parameter, or an HTTP header.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub name: RString,
    pub value: RString,
}

impl Pair {
    pub fn new(name: impl Into<RString>, value: impl Into<RString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The first value of `name` among `pairs`.
pub fn find_pair<'a>(pairs: &'a [Pair], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.name.as_str() == name)
        .map(|p| p.value.as_str())
}

/// How the browser is sent to the IdP.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepMethod {
    /// A `302` redirect to `url`.
    Redirect = 0,
    /// An auto-submitting HTML form that POSTs `form` to `url`.
    PostForm = 1,
}

/// Where the browser goes next.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct LoginStep {
    pub method: StepMethod,
    pub url: RString,
    pub form: RVec<Pair>,
}

impl LoginStep {
    pub fn redirect(url: impl Into<RString>) -> Self {
        Self {
            method: StepMethod::Redirect,
            url: url.into(),
            form: RVec::new(),
        }
    }
    pub fn post_form(url: impl Into<RString>, form: Vec<Pair>) -> Self {
        Self {
            method: StepMethod::PostForm,
            url: url.into(),
            form: form.into(),
        }
    }
}

/// The host's request to begin a sign-in.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct BeginRequest {
    /// The absolute URL the IdP must send the browser back to.
    pub callback_url: RString,
    /// An unguessable token the plugin must send to the IdP so that it comes back on
    /// the callback in the manifest's `state_parameter`. The host finds the pending
    /// sign-in by it.
    pub state_token: RString,
    /// A username or email the user already typed, if any.
    pub login_hint: ROption<RString>,
}

/// A begun sign-in: where the browser goes, and what the plugin needs to finish.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub step: LoginStep,
    /// Opaque to the host, kept server-side with an expiry and handed back once to
    /// `complete_login` (nonces, PKCE verifiers, request ids).
    pub state: RVec<u8>,
}

/// The browser's return from the IdP.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// The same callback URL that `begin_login` received.
    pub callback_url: RString,
    /// The query string parameters.
    pub query: RVec<Pair>,
    /// The `application/x-www-form-urlencoded` body parameters (POST bindings).
    pub form: RVec<Pair>,
    /// What `begin_login` returned as [`Begun::state`].
    pub state: RVec<u8>,
}

impl CallbackRequest {
    /// The first value of `name`, from the form first and then the query.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_pair(&self.form, name).or_else(|| find_pair(&self.query, name))
    }
}

/// One attribute an IdP asserted, with all its values.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: RString,
    pub values: RVec<RString>,
}

/// Who signed in, as the IdP asserted it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The IdP's stable identifier for the user.
    pub subject: RString,
    pub attributes: RVec<Attribute>,
    /// Opaque data the plugin wants back at logout (an `id_token_hint`, a SAML
    /// session index). The host keeps it with the session.
    pub logout_state: RVec<u8>,
}

impl Identity {
    pub fn new(subject: impl Into<RString>) -> Self {
        Self {
            subject: subject.into(),
            attributes: RVec::new(),
            logout_state: RVec::new(),
        }
    }
    pub fn with_attribute(mut self, name: &str, value: impl Into<RString>) -> Self {
        self.attributes.push(Attribute {
            name: name.into(),
            values: vec![value.into()].into(),
        });
        self
    }
    /// The first value of attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name.as_str() == name)
            .and_then(|a| a.values.first())
            .map(|v| v.as_str())
    }
}

/// The host's request to sign a user out at the IdP.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub subject: RString,
    /// What the plugin returned as [`Identity::logout_state`].
    pub logout_state: RVec<u8>,
    /// Where the IdP should send the browser afterwards.
    pub return_url: RString,
}

/// A document the host serves for the plugin (SP metadata).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub content_type: RString,
    pub body: RString,
}

/// An HTTP request a plugin asks the host to make.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: RString,
    pub url: RString,
    pub headers: RVec<Pair>,
    pub body: RVec<u8>,
}

impl HttpRequest {
    pub fn get(url: impl Into<RString>) -> Self {
        Self {
            method: "GET".into(),
            url: url.into(),
            headers: RVec::new(),
            body: RVec::new(),
        }
    }
    pub fn post(url: impl Into<RString>, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            method: "POST".into(),
            url: url.into(),
            headers: vec![Pair::new("content-type", content_type)].into(),
            body: body.into(),
        }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<RString>) -> Self {
        self.headers.push(Pair::new(name, value));
        self
    }
}

/// The host's answer to an [`HttpRequest`]. Redirects are returned as they are,
/// never followed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names are lower case.
    pub headers: RVec<Pair>,
    pub body: RVec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_pair(&self.headers, &name.to_ascii_lowercase())
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Severity of a plugin's log line.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}
