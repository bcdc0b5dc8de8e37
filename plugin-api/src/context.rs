//! Plugin API 1.2 data about where an IdP instance lives (its domain and the origins
//! the host serves it at), handed to constructors of 1.2+ libraries. Plain data; the
//! host computes it from `plugins.toml`, the plugin only reads it.
//!
//! [`InstanceContext`] is frozen with 1.2 like every released `#[repr(C)]` type: more
//! about an instance's place goes into a new type passed by a new entry point.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// Where an IdP instance is served, as it crosses the ABI (API 1.2).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct InstanceContext {
    /// The name of the instance's domain (`root` or an extended-enterprise domain).
    pub domain: RString,
    /// The origin of each of the domain's hosts, in `plugins.toml`'s order, with the
    /// scheme of `[host] public_url`: `https://learn.example.com`. Never empty.
    pub base_urls: RVec<RString>,
}

/// The plain-Rust view of [`InstanceContext`] that [`InstanceConfig`](crate::InstanceConfig)
/// carries: which domain an instance serves and at which origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The domain's name (`root` or an extended-enterprise domain).
    pub domain: String,
    /// The origins of the domain's hosts (`https://learn.example.com`), first first;
    /// never empty.
    pub base_urls: Vec<String>,
}

impl Placement {
    /// A placement for `domain` served at `base_urls` (origins; a trailing `/` is dropped).
    pub fn new(domain: &str, base_urls: &[&str]) -> Self {
        Self {
            domain: domain.to_owned(),
            base_urls: base_urls
                .iter()
                .map(|url| url.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    /// The origin of the domain's first host: URLs that must not change with the host
    /// a browser came on (a SAML entity id) are built on it.
    pub fn primary_base_url(&self) -> &str {
        self.base_urls.first().map_or("", String::as_str)
    }

    /// `path` (starting with `/`) at every origin of the domain, first first.
    pub fn urls(&self, path: &str) -> Vec<String> {
        self.base_urls
            .iter()
            .map(|base| format!("{base}{path}"))
            .collect()
    }

    /// The ABI form, for the host (and the test kit) to pass to a constructor.
    pub fn to_ffi(&self) -> InstanceContext {
        InstanceContext {
            domain: self.domain.as_str().into(),
            base_urls: self
                .base_urls
                .iter()
                .map(|url| RString::from(url.as_str()))
                .collect(),
        }
    }

    pub(crate) fn from_ffi(context: &InstanceContext) -> Self {
        Self {
            domain: context.domain.to_string(),
            base_urls: context.base_urls.iter().map(|u| u.to_string()).collect(),
        }
    }
}
