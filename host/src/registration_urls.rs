//! The URLs an admin registers at an identity provider for one IdP instance: the one
//! definition of the host's callback, post-logout and metadata URLs. The request path
//! (`web::urls`) builds them for the host the browser came on; `gatehouse explain` and
//! `gatehouse idps` list them for every host of the IdP's domain, so the two cannot
//! disagree. Not a handler, not the router, and not the plugins' own URL logic (a SAML
//! `sp_entity_id` is only read back here to show it).

use gatehouse_config::{Config, DomainConfig, IdpConfig};
use gatehouse_plugin_api::Capabilities;
use serde::Serialize;

use crate::plugins::PluginInfo;

/// `http` or `https`: the scheme of `[host] public_url`, which every host of every domain
/// is served with (a TLS-terminating proxy in front decides it, not the `Host` header).
pub fn scheme(public_url: &str) -> &'static str {
    if public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    }
}

/// The origin a browser sees: `public_url`'s scheme and `authority`, the host as the
/// browser sent it (a request's `Host` header, with its port if it has one).
pub fn origin(public_url: &str, authority: &str) -> String {
    format!("{}://{authority}", scheme(public_url))
}

/// The origin of a domain's `host` as browsers reach it: `public_url`'s port is added to a
/// host written without one, since browsers then send `Host: host:port`.
pub fn host_origin(public_url: &url::Url, host: &str) -> String {
    match public_url.port() {
        Some(port) if !host_has_port(host) => {
            origin(public_url.as_str(), &format!("{host}:{port}"))
        }
        _ => origin(public_url.as_str(), host),
    }
}

/// The origin of each of `domain`'s hosts, in `plugins.toml`'s order (the first is the
/// primary one: a SAML entity id or a Connect client URL is built on it).
pub fn domain_origins(config: &Config, domain: &DomainConfig) -> Vec<String> {
    domain
        .hosts
        .iter()
        .map(|host| host_origin(&config.host.public_url, host))
        .collect()
}

/// `host:port` or `[v6]:port`, as a domain's `hosts` may be written.
fn host_has_port(host: &str) -> bool {
    match host.rfind(']') {
        Some(bracket) => host[bracket..].contains(':'),
        None => host.contains(':'),
    }
}

/// `/sso/{idp}/callback` at `origin`: the redirect URI (OpenID Connect) or Assertion
/// Consumer Service (SAML) where IdP `idp_id` answers a sign-in.
pub fn callback_url(origin: &str, idp_id: &str) -> String {
    format!("{origin}/sso/{idp_id}/callback")
}

/// `/sso/{idp}/logout` at `origin`: where IdP `idp_id` sends the browser back after
/// signing out there (OIDC's `post_logout_redirect_uri`, SAML's single logout).
pub fn logout_url(origin: &str, idp_id: &str) -> String {
    format!("{origin}/sso/{idp_id}/logout")
}

/// `/sso/{idp}/metadata` at `origin`: the SP metadata a SAML IdP can import.
pub fn metadata_url(origin: &str, idp_id: &str) -> String {
    format!("{origin}/sso/{idp_id}/metadata")
}

/// Which URLs an IdP's plugin needs registered, from its manifest's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A redirect-based protocol (OpenID Connect, Auth0, Google, the example): the
    /// callback, and the post-logout URI when the plugin signs out at the IdP.
    Redirect,
    /// SAML: the SP metadata, entity id, ACS and single logout URLs.
    Saml,
    /// Totara Connect: the client URL, given to the server's admin.
    Connect,
    /// The plugin did not load, so its protocol is unknown: the callback and logout URLs.
    Unknown,
}

/// The URLs on one host of the IdP's domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUrls {
    /// `https://learn.example.com`.
    pub origin: String,
    /// The redirect URI / ACS URL; `None` for Connect (its server is given the client URL).
    pub callback: Option<String>,
    /// The post-logout redirect URI / single logout URL; `None` when the plugin cannot sign
    /// out at the IdP.
    pub logout: Option<String>,
    /// The SP metadata URL (a plugin that publishes metadata: SAML).
    pub metadata: Option<String>,
}

/// What to paste into the IdP's console for one IdP instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationUrls {
    pub kind: Kind,
    /// One entry per host of the domain, in `plugins.toml`'s order.
    pub hosts: Vec<HostUrls>,
    /// SAML: the SP entity id (`sp_entity_id`, else the metadata URL on the first host).
    pub entity_id: Option<String>,
    /// Connect: the client URL (the first host's origin).
    pub client_url: Option<String>,
    /// Whether the IdP is configured to sign out there (`logout = { at_idp = true }`): the
    /// logout URL is used only then.
    pub logout_at_idp: bool,
}

/// The URLs to register for `idp`, whose plugin is `plugin` (`None`: it did not load).
/// An IdP of an unknown domain has no hosts.
pub fn for_idp(config: &Config, idp: &IdpConfig, plugin: Option<&PluginInfo>) -> RegistrationUrls {
    let origins = config
        .domains
        .iter()
        .find(|d| d.name == idp.domain)
        .map(|domain| domain_origins(config, domain))
        .unwrap_or_default();
    let kind = match plugin.map(|p| p.protocol.as_str()) {
        None => Kind::Unknown,
        Some("saml") => Kind::Saml,
        Some("connect") => Kind::Connect,
        Some(_) => Kind::Redirect,
    };
    let can_logout = plugin.is_none_or(|p| p.capabilities.contains(Capabilities::LOGOUT));
    // `/sso/{idp}/metadata` is served only for a plugin with the metadata ability.
    let has_metadata = plugin.is_some_and(|p| p.capabilities.contains(Capabilities::METADATA));
    let id = idp.id.as_str();
    let hosts = origins
        .iter()
        .map(|origin| HostUrls {
            origin: origin.clone(),
            callback: (kind != Kind::Connect).then(|| callback_url(origin, id)),
            logout: (kind != Kind::Connect && can_logout).then(|| logout_url(origin, id)),
            metadata: (kind != Kind::Connect && has_metadata).then(|| metadata_url(origin, id)),
        })
        .collect();
    let primary = origins.first();
    let entity_id = (kind == Kind::Saml)
        .then(|| {
            idp.settings
                .get("sp_entity_id")
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .or_else(|| primary.map(|origin| metadata_url(origin, id)))
        })
        .flatten();
    RegistrationUrls {
        kind,
        hosts,
        entity_id,
        client_url: (kind == Kind::Connect).then(|| primary.cloned()).flatten(),
        logout_at_idp: idp.logout.at_idp,
    }
}

impl RegistrationUrls {
    /// The URLs as lines of text, each indented by `indent`: what `gatehouse explain` and
    /// `gatehouse idps` print, host by host.
    pub fn to_human(&self, indent: &str) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: &str| {
            out.push_str(&format!("{indent}{label:<19}{value}\n"));
        };
        if let Some(client_url) = &self.client_url {
            line("client url:", client_url);
            line(
                "",
                "(on the Connect server: Client systems > Add client, with the setup secret of `gatehouse connect new-server`)",
            );
        }
        if let Some(entity_id) = &self.entity_id {
            line("SP entity id:", entity_id);
        }
        let (callback, logout) = match self.kind {
            Kind::Saml => ("ACS URL:", "single logout:"),
            Kind::Unknown => ("callback URL:", "logout URL:"),
            Kind::Redirect | Kind::Connect => ("redirect URI:", "post-logout URI:"),
        };
        // A SAML IdP may start a single logout whatever `at_idp` says; a post-logout URI is
        // only sent when Gatehouse signs out at the IdP.
        let logout_note = if self.logout_at_idp || self.kind == Kind::Saml {
            ""
        } else {
            "  (used with logout = { at_idp = true })"
        };
        for host in &self.hosts {
            if let Some(metadata) = &host.metadata {
                line("SP metadata:", metadata);
            }
            if let Some(url) = &host.callback {
                line(callback, url);
            }
            if let Some(url) = &host.logout {
                line(logout, &format!("{url}{logout_note}"));
            }
        }
        if self.kind == Kind::Unknown {
            line(
                "",
                "(the plugin did not load, so which of these its protocol uses is unknown)",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = r#"
[host]
public_url = "https://sso.example.test:8443"

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[domain]]
name = "root"
hosts = ["learn.example.test", "ee.example.test:9443", "[::1]"]

[[idp]]
id = "okta"
domain = "root"
plugin = "oidc"
username_attribute = "email"
"#;

    fn config() -> Config {
        gatehouse_config::parse(Path::new("plugins.toml"), CONFIG)
            .expect("parses")
            .config
            .expect("no errors")
    }

    #[test]
    fn a_host_without_a_port_gets_the_public_urls_port() {
        let config = config();
        assert_eq!(
            domain_origins(&config, &config.domains[0]),
            [
                "https://learn.example.test:8443",
                "https://ee.example.test:9443",
                "https://[::1]:8443",
            ]
        );
    }

    #[test]
    fn an_unloaded_plugin_lists_the_callback_and_logout_per_host() {
        let config = config();
        let urls = for_idp(&config, &config.idps[0], None);
        assert_eq!(urls.kind, Kind::Unknown);
        assert_eq!(urls.hosts.len(), 3);
        assert_eq!(
            urls.hosts[1].callback.as_deref(),
            Some("https://ee.example.test:9443/sso/okta/callback")
        );
        assert_eq!(
            urls.hosts[1].logout.as_deref(),
            Some("https://ee.example.test:9443/sso/okta/logout")
        );
        assert_eq!(
            urls.hosts[2].callback.as_deref(),
            Some("https://[::1]:8443/sso/okta/callback")
        );
        assert_eq!(
            urls.hosts[2].metadata, None,
            "no metadata without the ability"
        );
        let text = urls.to_human("  ");
        assert!(
            text.contains("https://learn.example.test:8443/sso/okta/callback"),
            "{text}"
        );
        assert!(text.contains("did not load"), "{text}");
    }

    fn plugin(protocol: &str, capabilities: Capabilities) -> PluginInfo {
        PluginInfo {
            id: protocol.to_owned(),
            protocol: protocol.to_owned(),
            display_name: protocol.to_owned(),
            version: "1.0.0".to_owned(),
            api_version: gatehouse_plugin_api::API_VERSION,
            capabilities,
            attributes: Vec::new(),
            tasks: Vec::new(),
            state_parameter: "state".to_owned(),
            routes: Vec::new(),
            path: "/nowhere".into(),
        }
    }

    #[test]
    fn each_protocol_gets_the_urls_it_uses() {
        let mut config = config();
        let mut idp = config.idps.remove(0);

        // Login only (Google): a redirect URI, no post-logout URI.
        let google = for_idp(&config, &idp, Some(&plugin("google", Capabilities::LOGIN)));
        assert_eq!(google.kind, Kind::Redirect);
        assert!(
            google
                .hosts
                .iter()
                .all(|h| h.logout.is_none() && h.metadata.is_none())
        );
        assert_eq!(google.entity_id, None);

        // SAML: metadata, ACS and SLO on every host; the entity id on the first, unless set.
        let saml = plugin(
            "saml",
            Capabilities::LOGIN | Capabilities::LOGOUT | Capabilities::METADATA,
        );
        let urls = for_idp(&config, &idp, Some(&saml));
        assert_eq!(urls.kind, Kind::Saml);
        assert_eq!(
            urls.entity_id.as_deref(),
            Some("https://learn.example.test:8443/sso/okta/metadata")
        );
        assert_eq!(
            urls.hosts[1].metadata.as_deref(),
            Some("https://ee.example.test:9443/sso/okta/metadata")
        );
        idp.settings = serde_json::json!({ "sp_entity_id": "urn:acme:sp" });
        let urls = for_idp(&config, &idp, Some(&saml));
        assert_eq!(urls.entity_id.as_deref(), Some("urn:acme:sp"));

        // Connect: the client URL, the first host's origin, and nothing per host.
        let connect = for_idp(
            &config,
            &idp,
            Some(&plugin(
                "connect",
                Capabilities::LOGIN | Capabilities::LOGOUT,
            )),
        );
        assert_eq!(connect.kind, Kind::Connect);
        assert_eq!(
            connect.client_url.as_deref(),
            Some("https://learn.example.test:8443")
        );
        assert!(
            connect
                .hosts
                .iter()
                .all(|h| h.callback.is_none() && h.logout.is_none())
        );
        assert!(connect.to_human("").contains("Add client"));
    }

    /// The request path's origin (scheme of `public_url` + the `Host` header) gives back
    /// each listed origin for a browser that came on that host.
    #[test]
    fn the_request_paths_origin_agrees_with_the_listed_ones() {
        let config = config();
        let public = config.host.public_url.as_str();
        for listed in domain_origins(&config, &config.domains[0]) {
            let authority = listed.strip_prefix("https://").expect("https");
            assert_eq!(origin(public, authority), listed);
        }
    }
}
