//! The egress policy for plugins' outgoing HTTP: which addresses an IdP instance's
//! requests may reach. Addresses are classified after DNS resolution into
//! [`AddressCategory`]s; anything not public (loopback, private, link-local, …) is
//! refused unless the IdP's own configured URLs are in that same category, so a
//! discovery document on a public issuer cannot aim the back-channel (and the client
//! secret) at the host's own network.
//!
//! It is pure policy plus the DNS resolver that applies it ([`PolicyResolver`]):
//! resolving, checking and handing reqwest only the checked addresses is one step, so
//! there is no gap between the check and the connection for DNS rebinding to use. It
//! is not the HTTP client (`capabilities::HttpEgress`), and it does not look inside
//! TLS or follow redirects (the client follows none).

use std::{
    collections::BTreeSet,
    fmt,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
};

use url::{Host, Url};

/// What kind of network an address belongs to. Every category but `Public` is
/// refused by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressCategory {
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16 (where cloud metadata services live), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 0.0.0.0/8 and :: (on Linux, connecting to 0.0.0.0 reaches the host itself).
    Unspecified,
    /// 100.64/10, carrier-grade NAT.
    SharedAddress,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
    /// Everything else that is not globally routable: 192.0.0/24, 198.18/15
    /// (benchmarking), 240/4, 192.88.99/24, 2001::/23, fec0::/10, 100::/64,
    /// 64:ff9b:1::/48.
    Reserved,
}

impl AddressCategory {
    /// The category's name in refusal messages ("… is a private address").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::UniqueLocal => "a unique-local address",
            Self::Unspecified => "an unspecified address",
            Self::SharedAddress => "a shared (carrier-grade NAT) address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Reserved => "a reserved address",
        }
    }

    /// The categories an internal IdP plausibly lives on, which a host name the admin
    /// configured may resolve to (see [`EgressPolicy`]).
    fn is_internal_network(self) -> bool {
        matches!(
            self,
            Self::Loopback | Self::Private | Self::UniqueLocal | Self::SharedAddress
        )
    }
}

/// The category of `address`. IPv6 forms that carry an IPv4 address (mapped,
/// compatible, 6to4, NAT64) are classified by the IPv4 address they lead to.
pub fn classify(address: IpAddr) -> AddressCategory {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(address: Ipv4Addr) -> AddressCategory {
    use AddressCategory::*;
    let [a, b, c, _] = address.octets();
    match (a, b, c) {
        _ if address.is_broadcast() => Broadcast,
        (0, _, _) => Unspecified,
        (127, _, _) => Loopback,
        (10, _, _) | (192, 168, _) => Private,
        (172, 16..=31, _) => Private,
        (169, 254, _) => LinkLocal,
        (100, 64..=127, _) => SharedAddress,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => Reserved,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => Public,
    }
}

fn classify_v6(address: Ipv6Addr) -> AddressCategory {
    use AddressCategory::*;
    let segments = address.segments();
    let embedded_v4 =
        |high: u16, low: u16| classify_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    match segments {
        [0, 0, 0, 0, 0, 0, 0, 0] => Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Loopback,
        // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d).
        [0, 0, 0, 0, 0, 0xffff, high, low] | [0, 0, 0, 0, 0, 0, high, low] => {
            embedded_v4(high, low)
        }
        // NAT64 well-known prefix: the translator connects to the embedded address.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => embedded_v4(high, low),
        [0x64, 0xff9b, 1, ..] => Reserved,
        // 6to4: 2002:AABB:CCDD::/48 relays to AA.BB.CC.DD.
        [0x2002, high, low, ..] => embedded_v4(high, low),
        [0x2001, 0x0db8, ..] => Documentation,
        [0x2001, second, ..] if second < 0x0200 => Reserved,
        [0x0100, 0, 0, 0, ..] => Reserved,
        [first, ..] if first & 0xff00 == 0xff00 => Multicast,
        [first, ..] if first & 0xfe00 == 0xfc00 => UniqueLocal,
        [first, ..] if first & 0xffc0 == 0xfe80 => LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Reserved,
        // Only 2000::/3 is allocated for global unicast.
        [first, ..] if first & 0xe000 == 0x2000 => Public,
        _ => Reserved,
    }
}

/// Why a request was not sent. Its message is meant for the admin reading the audit
/// log: it names the host, the address and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused by the egress policy: {shown} is {}; the IdP's configured URLs are not",
    .category.describe()
)]
pub struct EgressRefusal {
    /// The host as the URL named it, with the address it resolved to when they differ.
    pub shown: String,
    pub address: IpAddr,
    pub category: AddressCategory,
}

/// What one IdP instance's outgoing requests may reach, derived from what the admin
/// wrote in its `[idp.settings]`.
///
/// - A non-public category is allowed for every request of the instance when a
///   configured URL's host is an address literal of that category (`localhost` counts
///   as loopback). Categories are separate: a configured URL on 127.0.0.1 allows
///   loopback targets, not link-local or private ones.
/// - A host name the admin configured (e.g. an internal IdP at `sso.corp.example`) may
///   resolve to internal-network addresses (loopback, private, unique-local, shared),
///   because the admin named that very host; it is never let through to link-local,
///   unspecified or other special addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EgressPolicy {
    exempt: BTreeSet<AddressCategory>,
    configured_hosts: BTreeSet<String>,
}

impl EgressPolicy {
    /// The policy for an IdP whose settings are `settings`: every http(s) URL found
    /// anywhere in the JSON (the host treats the settings as opaque) counts.
    pub fn from_settings(settings: &serde_json::Value) -> Self {
        let mut policy = Self::default();
        let mut pending = vec![settings];
        while let Some(value) = pending.pop() {
            match value {
                serde_json::Value::String(text) => policy.add_configured(text),
                serde_json::Value::Array(items) => pending.extend(items),
                serde_json::Value::Object(fields) => pending.extend(fields.values()),
                _ => {}
            }
        }
        policy
    }

    fn add_configured(&mut self, text: &str) {
        let Ok(url) = Url::parse(text.trim()) else {
            return;
        };
        if !matches!(url.scheme(), "http" | "https") {
            return;
        }
        let category = match url.host() {
            Some(Host::Ipv4(v4)) => classify_v4(v4),
            Some(Host::Ipv6(v6)) => classify_v6(v6),
            Some(Host::Domain(name)) if is_localhost(name) => AddressCategory::Loopback,
            Some(Host::Domain(name)) => {
                self.configured_hosts.insert(name.to_ascii_lowercase());
                return;
            }
            None => return,
        };
        if category != AddressCategory::Public {
            self.exempt.insert(category);
        }
    }

    /// Whether a request to `host` may connect to `address`; `host` is the URL's host
    /// as written (a name, or the address itself).
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), EgressRefusal> {
        let category = classify(address);
        let named_by_admin = self
            .configured_hosts
            .contains(host.trim_end_matches('.').to_ascii_lowercase().as_str());
        if category == AddressCategory::Public
            || self.exempt.contains(&category)
            || (named_by_admin && category.is_internal_network())
        {
            return Ok(());
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let shown = if literal
            .parse::<IpAddr>()
            .is_ok_and(|parsed| parsed == address)
        {
            address.to_string()
        } else {
            format!("{host} ({address})")
        };
        Err(EgressRefusal {
            shown,
            address,
            category,
        })
    }

    /// The addresses of `addresses` that `host` may connect to, or the refusal of the
    /// first one when none may.
    pub fn filter(&self, host: &str, addresses: &[IpAddr]) -> Result<Vec<IpAddr>, ResolveError> {
        let mut allowed = Vec::new();
        let mut first_refusal = None;
        for &address in addresses {
            match self.check(host, address) {
                Ok(()) => allowed.push(address),
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match first_refusal {
            Some(refusal) if allowed.is_empty() => Err(ResolveError::Refused(refusal)),
            _ if allowed.is_empty() => Err(ResolveError::NoAddress(host.to_owned())),
            _ => Ok(allowed),
        }
    }
}

/// `localhost` and its subdomains always mean the loopback interface (RFC 6761).
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Why a name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Refused(EgressRefusal),
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("cannot resolve {name}: {source}")]
    Lookup {
        name: String,
        source: std::io::Error,
    },
}

/// The answer of a [`NameLookup`].
pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Turns a host name into addresses: the system resolver in production, a table in
/// tests (so a public-looking name can be made to resolve to an internal address).
pub trait NameLookup: Send + Sync + 'static {
    fn lookup(&self, name: &str) -> LookupFuture;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(&self, name: &str) -> LookupFuture {
        let name = name.to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok(found.map(|socket| socket.ip()).collect())
        })
    }
}

/// The reqwest resolver that applies one [`EgressPolicy`]: it resolves, drops every
/// address the policy refuses, and gives reqwest only what is left, so the connection
/// goes to an address that was checked.
pub struct PolicyResolver {
    policy: Arc<EgressPolicy>,
    lookup: Arc<dyn NameLookup>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<EgressPolicy>, lookup: Arc<dyn NameLookup>) -> Self {
        Self { policy, lookup }
    }

    /// The checked addresses for `name`.
    pub async fn resolve_checked(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let found = self
            .lookup
            .lookup(name)
            .await
            .map_err(|source| ResolveError::Lookup {
                name: name.to_owned(),
                source,
            })?;
        self.policy.filter(name, &found)
    }
}

impl fmt::Debug for PolicyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = Self {
            policy: Arc::clone(&self.policy),
            lookup: Arc::clone(&self.lookup),
        };
        Box::pin(async move {
            let addresses = resolver.resolve_checked(name.as_str()).await?;
            // reqwest puts the URL's port on these.
            let sockets: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok(sockets)
        })
    }
}

/// The refusal somewhere in `error`'s chain of sources, if that is why it failed.
pub fn refusal_in<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e EgressRefusal> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refusal) = error.downcast_ref::<EgressRefusal>() {
            return Some(refusal);
        }
        if let Some(ResolveError::Refused(refusal)) = error.downcast_ref::<ResolveError>() {
            return Some(refusal);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use AddressCategory::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn classifies_every_special_range_including_ipv6_forms() {
        let table = [
            ("93.184.215.14", Public),
            ("8.8.8.8", Public),
            ("172.15.255.255", Public),
            ("172.32.0.1", Public),
            ("100.63.255.255", Public),
            ("100.128.0.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.5", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("100.64.0.1", SharedAddress),
            ("100.127.255.255", SharedAddress),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.10", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.9", Documentation),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("240.0.0.1", Reserved),
            ("2606:4700::1111", Public),
            ("2a00:1450:4001::200e", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fd00::1", UniqueLocal),
            ("fc00::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("fec0::1", Reserved),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.0.0.5", Private),
            ("::ffff:8.8.8.8", Public),
            ("::10.0.0.5", Private),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::808:808", Public),
            ("64:ff9b:1::1", Reserved),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("2002:7f00:1::1", Loopback),
            ("2002:808:808::1", Public),
            ("4000::1", Reserved),
        ];
        for (address, expected) in table {
            assert_eq!(classify(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn a_public_issuer_may_reach_only_public_addresses() {
        let policy = EgressPolicy::from_settings(&json!({
            "issuer": "https://idp.example.com",
            "client_secret": "not a url",
        }));
        assert!(policy.check("idp.example.com", ip("93.184.215.14")).is_ok());
        for refused in [
            "127.0.0.1",
            "169.254.169.254",
            "10.0.0.5",
            "fd00::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            let refusal = policy
                .check(refused, ip(refused))
                .expect_err("an internal address is refused");
            assert_eq!(refusal.address, ip(refused));
        }
        let refusal = policy
            .check("10.0.0.5", ip("10.0.0.5"))
            .expect_err("refused");
        assert_eq!(
            refusal.to_string(),
            "refused by the egress policy: 10.0.0.5 is a private address; \
             the IdP's configured URLs are not"
        );
    }

    #[test]
    fn exemptions_follow_the_category_of_each_configured_url() {
        let policy = EgressPolicy::from_settings(&json!({
            "issuer": "http://127.0.0.1:8080",
            "nested": { "urls": ["https://[fd00::5]/metadata"] },
        }));
        assert!(policy.check("127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(policy.check("::1", ip("::1")).is_ok());
        assert!(policy.check("fd12::9", ip("fd12::9")).is_ok());
        for refused in ["169.254.169.254", "10.0.0.5", "fe80::1", "0.0.0.0"] {
            assert!(policy.check(refused, ip(refused)).is_err(), "{refused}");
        }
        let localhost = EgressPolicy::from_settings(&json!({ "issuer": "http://localhost:9" }));
        assert!(localhost.check("127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(localhost.check("192.168.0.1", ip("192.168.0.1")).is_err());
    }

    #[test]
    fn a_configured_name_may_be_internal_but_never_link_local() {
        let policy = EgressPolicy::from_settings(&json!({ "issuer": "https://SSO.corp.example/" }));
        assert!(policy.check("sso.corp.example", ip("10.1.2.3")).is_ok());
        assert!(policy.check("sso.corp.example.", ip("fd00::7")).is_ok());
        let metadata = policy
            .check("sso.corp.example", ip("169.254.169.254"))
            .expect_err("link-local is never implied by a name");
        assert_eq!(metadata.shown, "sso.corp.example (169.254.169.254)");
        // Another name on the same network is what discovery might point at: refused.
        assert!(policy.check("other.corp.example", ip("10.1.2.3")).is_err());
    }

    #[test]
    fn filtering_keeps_allowed_addresses_and_reports_the_refusal_when_none_are() {
        let policy = EgressPolicy::default();
        assert_eq!(
            policy
                .filter("dual.example", &[ip("10.0.0.1"), ip("93.184.215.14")])
                .expect("one public address"),
            vec![ip("93.184.215.14")]
        );
        match policy.filter("internal.example", &[ip("10.0.0.1")]) {
            Err(ResolveError::Refused(refusal)) => {
                assert_eq!(refusal.category, Private);
                assert!(refusal.to_string().contains("internal.example (10.0.0.1)"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(matches!(
            policy.filter("empty.example", &[]),
            Err(ResolveError::NoAddress(_))
        ));
    }

    /// A resolver answering from a table, as a hostile DNS server would.
    struct TableLookup(HashMap<&'static str, Vec<IpAddr>>);

    impl NameLookup for TableLookup {
        fn lookup(&self, name: &str) -> LookupFuture {
            let found = self.0.get(name).cloned().unwrap_or_default();
            Box::pin(async move { Ok(found) })
        }
    }

    #[tokio::test]
    async fn a_public_name_resolving_to_an_internal_address_is_refused_after_resolution() {
        let lookup = Arc::new(TableLookup(HashMap::from([
            ("idp.example.com", vec![ip("93.184.215.14")]),
            ("rebound.example.com", vec![ip("169.254.169.254")]),
        ])));
        let policy = Arc::new(EgressPolicy::from_settings(
            &json!({ "issuer": "https://idp.example.com" }),
        ));
        let resolver = PolicyResolver::new(policy, lookup);
        assert_eq!(
            resolver
                .resolve_checked("idp.example.com")
                .await
                .expect("public"),
            vec![ip("93.184.215.14")]
        );
        let error = resolver
            .resolve_checked("rebound.example.com")
            .await
            .expect_err("metadata service refused");
        let refusal = refusal_in(&error).expect("the refusal is findable in the chain");
        assert_eq!(refusal.category, LinkLocal);
        assert!(
            error
                .to_string()
                .contains("rebound.example.com (169.254.169.254) is a link-local address"),
            "{error}"
        );
    }
}
