//! Plugin API 1.1 data for requests a remote party sends to the host (not the
//! browser's sign-in round trip): the routes a plugin declares, the request the host
//! hands it, and the reply plus the actions the host carries out. Plain data, like
//! `types`; the routing, size caps and time limits are the host's.
//!
//! Every type here is new in 1.1 and frozen from now on, like the 1.0 types: later
//! data goes into new fields of [`ManifestExtension`] (a prefix type) or new types.
#![allow(non_camel_case_types)] // abi_stable names the prefix reference `ManifestExtension_Ref`

use abi_stable::{
    StableAbi,
    std_types::{RSlice, RString, RVec},
};

use crate::types::Pair;

/// Where a declared route lives.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMount(pub u8);

impl RouteMount {
    /// Below the IdP's own mount: path `logout` is served at `/sso/{idp}/logout`.
    pub const BELOW_IDP: Self = Self(0);
    /// At a fixed protocol path that another product's peers call (`/auth/connect/sep.php`),
    /// routed to this plugin's IdP instance on the request's domain.
    pub const FIXED: Self = Self(1);
}

/// What the host does with a request on a declared route.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteHandling(pub u8);

impl RouteHandling {
    /// A request from the IdP or a peer: the host calls
    /// [`IdentityProvider::handle_inbound`](crate::IdentityProvider::handle_inbound) and
    /// sends its reply.
    pub const INBOUND: Self = Self(0);
    /// The browser coming back from the IdP: the host finishes the pending sign-in named
    /// by the manifest's `state_parameter`, exactly as `/sso/{idp}/callback` does.
    pub const BROWSER_CALLBACK: Self = Self(1);
}

/// Paths the host serves itself; no fixed route may be at or below them. `/readyz` and
/// `/metrics` were added in 1.3.
pub const RESERVED_PREFIXES: [&str; 11] = [
    "/sso",
    "/admin",
    "/me",
    "/login",
    "/logout",
    "/logged-out",
    "/account",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static",
];

/// Paths below an IdP's mount the host serves itself (`/sso/{idp}/start`, …); a plugin
/// route may not be one of them (`logout` is the plugin's to take: see the host's docs).
/// `finish` was added in 1.2.
pub const RESERVED_BELOW_IDP: [&str; 4] = ["start", "callback", "finish", "metadata"];

/// One route a plugin serves.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct RouteDecl {
    /// Below the IdP: one or more segments without a leading `/` (`logout`, `slo/soap`);
    /// fixed: an absolute path (`/auth/connect/sep.php`).
    pub path: RString,
    pub mount: RouteMount,
    pub handling: RouteHandling,
    /// The methods it accepts (`GET`, `POST`); others get 405 without reaching the plugin.
    pub methods: RVec<RString>,
    /// The largest body it accepts, in bytes; 0 takes the host's default. The host never
    /// allows more than its own cap (`[host] inbound_max_body_bytes`).
    pub max_body_bytes: u32,
}

impl RouteDecl {
    /// An inbound route below the IdP's mount.
    pub fn below_idp(path: &str, methods: &[&str]) -> Self {
        Self::new(path, RouteMount::BELOW_IDP, RouteHandling::INBOUND, methods)
    }

    /// An inbound route at a fixed protocol path.
    pub fn fixed(path: &str, methods: &[&str]) -> Self {
        Self::new(path, RouteMount::FIXED, RouteHandling::INBOUND, methods)
    }

    /// A fixed path where the browser returns from the IdP to finish a sign-in.
    pub fn fixed_callback(path: &str, methods: &[&str]) -> Self {
        Self::new(
            path,
            RouteMount::FIXED,
            RouteHandling::BROWSER_CALLBACK,
            methods,
        )
    }

    fn new(path: &str, mount: RouteMount, handling: RouteHandling, methods: &[&str]) -> Self {
        Self {
            path: path.into(),
            mount,
            handling,
            methods: methods.iter().map(|m| RString::from(*m)).collect(),
            max_body_bytes: 0,
        }
    }

    pub fn with_max_body_bytes(mut self, bytes: u32) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// What is wrong with this declaration, if anything: the host refuses a library
    /// that declares a bad route, and the conformance check reports it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let path = self.path.as_str();
        let segments_ok = |p: &str| {
            !p.is_empty()
                && p.split('/').all(|segment| {
                    !segment.is_empty()
                        && segment != "."
                        && segment != ".."
                        && segment
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                })
        };
        match self.mount {
            RouteMount::BELOW_IDP if !segments_ok(path) => problems.push(format!(
                "route {path:?} below the IdP must be relative segments of [A-Za-z0-9._-]"
            )),
            RouteMount::BELOW_IDP if RESERVED_BELOW_IDP.contains(&path) => problems.push(format!(
                "route {path:?} below the IdP is one the host serves itself"
            )),
            RouteMount::FIXED if !path.starts_with('/') || !segments_ok(&path[1..]) => {
                problems.push(format!(
                    "fixed route {path:?} must be an absolute path of [A-Za-z0-9._-] segments"
                ));
            }
            RouteMount::FIXED
                if RESERVED_PREFIXES
                    .iter()
                    .any(|p| path == *p || path.starts_with(&format!("{p}/"))) =>
            {
                problems.push(format!(
                    "fixed route {path:?} is inside the host's own paths"
                ));
            }
            RouteMount::BELOW_IDP | RouteMount::FIXED => {}
            other => problems.push(format!("route {path:?} has an unknown mount {other:?}")),
        }
        if self.handling != RouteHandling::INBOUND
            && self.handling != RouteHandling::BROWSER_CALLBACK
        {
            problems.push(format!(
                "route {path:?} has an unknown handling {:?}",
                self.handling
            ));
        }
        if self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| !matches!(m.as_str(), "GET" | "POST" | "PUT" | "DELETE"))
        {
            problems.push(format!(
                "route {path:?} must list its methods among GET, POST, PUT, DELETE"
            ));
        }
        problems
    }
}

/// What a plugin declares beyond the 1.0 [`Manifest`](crate::Manifest), read through the
/// root module's `manifest_extension` (absent in 1.0 libraries).
///
/// A prefix type: later minor versions append fields after `routes`, each with
/// `#[sabi(missing_field(option))]`, and the host treats a missing one as "not declared".
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ManifestExtension_Ref)))]
#[sabi(missing_field(panic))]
pub struct ManifestExtension {
    /// The routes the plugin serves besides start and callback (API 1.1). Prefix
    /// fields are read by copy, so the list is leaked once per load (libraries are
    /// never unloaded anyway).
    #[sabi(last_prefix_field)]
    pub routes: RSlice<'static, RouteDecl>,
}

/// A request from a remote party on one of the plugin's routes.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct InboundRequest {
    /// `GET`, `POST`, …
    pub method: RString,
    /// The declared route it matched ([`RouteDecl::path`]).
    pub route: RString,
    /// The host the request came on (`Host` header, checked), for URLs in replies.
    pub host: RString,
    /// Header names in lower case. `Cookie` and `Authorization` are never passed on.
    pub headers: RVec<Pair>,
    pub query: RVec<Pair>,
    /// The body as `application/x-www-form-urlencoded` pairs, when it was a form.
    pub form: RVec<Pair>,
    /// The raw body (also for forms), at most the route's cap.
    pub body: RVec<u8>,
}

impl InboundRequest {
    /// The first form parameter called `name`, else the first query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(self.query.iter())
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str())
    }

    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }
}

/// Which of the calling IdP instance's sessions an action or question is about. At least
/// one part must be set: the host never reads an empty selector as "all of them".
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionSelector {
    /// The subject the plugin returned in its [`Identity`](crate::Identity); empty = any.
    pub subject: RString,
    /// The `logout_state` it returned with that identity; empty = any.
    pub logout_state: RVec<u8>,
}

impl SessionSelector {
    /// Every session of `subject` at this IdP.
    pub fn subject(subject: &str) -> Self {
        Self {
            subject: subject.into(),
            logout_state: RVec::new(),
        }
    }

    /// The sessions whose identity came with this `logout_state` (a SAML session index,
    /// a Connect SSO token).
    pub fn logout_state(state: &[u8]) -> Self {
        Self {
            subject: RString::new(),
            logout_state: state.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.subject.is_empty() && self.logout_state.is_empty()
    }

    /// The subject and the logout state to match, `None` where either part is "any".
    pub fn filters(&self) -> (Option<&str>, Option<&[u8]>) {
        (
            (!self.subject.is_empty()).then_some(self.subject.as_str()),
            (!self.logout_state.is_empty()).then_some(self.logout_state.as_slice()),
        )
    }
}

/// The kind of a [`HostAction`]: an integer newtype, so later versions add kinds without
/// breaking the layout. A host that does not know a kind logs and skips it.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionKind(pub u32);

impl ActionKind {
    /// End the selected sessions of this IdP (IdP-initiated logout, a peer's "kill").
    pub const END_SESSIONS: Self = Self(1);
    /// (1.2) Send the browser on to this IdP's logout landing page (`logout.landing_url`,
    /// else `/logged-out`) instead of the reply: the end of a single logout the plugin
    /// began (a SAML LogoutResponse), which only the host knows where to take.
    pub const SHOW_LOGOUT_LANDING: Self = Self(2);
}

/// Something the plugin asks the host to do, as data: the host validates and carries it
/// out, scoped to the calling IdP instance.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct HostAction {
    pub kind: ActionKind,
    pub sessions: SessionSelector,
    /// Parameters of kinds that need more than a selector; none so far.
    pub params: RVec<Pair>,
}

impl HostAction {
    pub fn end_sessions(sessions: SessionSelector) -> Self {
        Self {
            kind: ActionKind::END_SESSIONS,
            sessions,
            params: RVec::new(),
        }
    }

    /// (1.2) Replace the reply with a redirect to the IdP's logout landing page.
    pub fn show_logout_landing() -> Self {
        Self {
            kind: ActionKind::SHOW_LOGOUT_LANDING,
            sessions: SessionSelector::default(),
            params: RVec::new(),
        }
    }
}

/// The plugin's answer to an [`InboundRequest`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct InboundReply {
    pub status: u16,
    pub content_type: RString,
    /// Extra headers (`Location` for a redirect). The host sets its own security headers
    /// and refuses `Set-Cookie`: sessions are the host's.
    pub headers: RVec<Pair>,
    pub body: RVec<u8>,
    /// Carried out by the host before the reply is sent.
    pub actions: RVec<HostAction>,
}

impl InboundReply {
    /// A reply with `status`, `content_type` and `body`, and no actions.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            headers: RVec::new(),
            body: body.into().into(),
            actions: RVec::new(),
        }
    }

    /// A `200 application/json` reply.
    pub fn json(value: &serde_json::Value) -> Self {
        Self::new(200, "application/json", value.to_string())
    }

    /// A `303 See Other` to `url`.
    pub fn redirect(url: &str) -> Self {
        let mut reply = Self::new(303, "text/plain; charset=utf-8", Vec::new());
        reply.headers.push(Pair::new("location", url));
        reply
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_action(mut self, action: HostAction) -> Self {
        self.actions.push(action);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_below_the_idp_may_not_be_one_the_host_serves() {
        for path in RESERVED_BELOW_IDP {
            let problems = RouteDecl::below_idp(path, &["GET"]).problems();
            assert_eq!(problems.len(), 1, "{path}: {problems:?}");
            assert!(
                problems[0].contains("the host serves itself"),
                "{problems:?}"
            );
        }
        assert!(
            RouteDecl::below_idp("logout", &["GET", "POST"])
                .problems()
                .is_empty()
        );
        assert!(
            RouteDecl::below_idp("slo/soap", &["POST"])
                .problems()
                .is_empty()
        );
    }

    #[test]
    fn a_fixed_route_may_not_be_inside_the_hosts_paths() {
        for path in [
            "/sso/x",
            "/healthz",
            "/readyz",
            "/metrics",
            "/admin/status",
            "/me/password",
        ] {
            let problems = RouteDecl::fixed(path, &["GET"]).problems();
            assert!(
                problems[0].contains("host's own paths"),
                "{path}: {problems:?}"
            );
        }
        assert!(
            RouteDecl::fixed("/auth/connect/sep.php", &["POST"])
                .problems()
                .is_empty()
        );
    }
}
