//! Where the IdP's configuration comes from at call time: the inline metadata validated
//! at start-up, or `idp_metadata_url` fetched through the host, kept in the instance's
//! store (fresh for 24 h, a stale copy serving on while the endpoint is down) and
//! refreshed by the `refresh_metadata` task. Fetched metadata passes the same checks as
//! inline metadata.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_plugin_api::{Host, PluginError};
use serde::{Deserialize, Serialize};

use crate::idp_metadata::{self, IdpConfig};
use crate::settings::IdpSource;

const KV_KEY: &str = "idp-metadata";
/// A fetched copy younger than this is used without asking the IdP again.
const FRESH_SECONDS: i64 = 24 * 3600;
/// How long a copy is kept at all: a stale one keeps serving while the IdP is down.
const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_at: i64,
    xml: String,
}

/// The IdP configuration of one instance.
pub struct Source {
    inline: Option<Arc<IdpConfig>>,
    url: Option<String>,
    /// The last parsed copy, by its fetch time, so a stored copy is parsed once.
    parsed: Mutex<Option<(i64, Arc<IdpConfig>)>>,
}

impl Source {
    pub fn new(source: &IdpSource) -> Self {
        match source {
            IdpSource::Inline(idp) => Self {
                inline: Some(Arc::new((**idp).clone())),
                url: None,
                parsed: Mutex::new(None),
            },
            IdpSource::Url(url) => Self {
                inline: None,
                url: Some(url.clone()),
                parsed: Mutex::new(None),
            },
        }
    }

    /// The IdP's configuration now: inline, a fresh stored copy, a new fetch, or (when
    /// the fetch fails) a stale stored copy.
    pub fn get(&self, host: &Host<'_>) -> Result<Arc<IdpConfig>, PluginError> {
        let Some(url) = &self.url else {
            return self
                .inline
                .clone()
                .ok_or_else(|| PluginError::internal("no IdP metadata"));
        };
        let cached = self.stored(host)?;
        if let Some(cached) = &cached
            && host.now_unix_seconds() - cached.fetched_at < FRESH_SECONDS
            && let Ok(idp) = self.parse(cached)
        {
            return Ok(idp);
        }
        match self.fetch(host, url) {
            Ok(idp) => Ok(idp),
            Err(error) => match cached.as_ref().map(|c| self.parse(c)) {
                Some(Ok(idp)) => {
                    host.warn(&format!(
                        "refreshing the IdP metadata failed, the stored copy serves on: {}",
                        error.message()
                    ));
                    Ok(idp)
                }
                _ => Err(error),
            },
        }
    }

    /// Fetches the metadata now (the `refresh_metadata` task); `None` for inline metadata.
    pub fn refresh(&self, host: &Host<'_>) -> Result<Option<Arc<IdpConfig>>, PluginError> {
        match &self.url {
            Some(url) => self.fetch(host, url).map(Some),
            None => Ok(None),
        }
    }

    fn stored(&self, host: &Host<'_>) -> Result<Option<Cached>, PluginError> {
        Ok(host
            .kv_get(KV_KEY)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Where the metadata is fetched from (`idp_metadata_url`), if it is not inline.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The metadata as the IdP serves it now, fetched and checked but neither stored nor
    /// remembered (the online check); the inline copy for inline metadata.
    pub fn current(&self, host: &Host<'_>) -> Result<Arc<IdpConfig>, PluginError> {
        match &self.url {
            Some(url) => download(host, url).map(|(_, idp)| Arc::new(idp)),
            None => self.get(host),
        }
    }

    fn fetch(&self, host: &Host<'_>, url: &str) -> Result<Arc<IdpConfig>, PluginError> {
        let (xml, idp) = download(host, url)?;
        let cached = Cached {
            fetched_at: host.now_unix_seconds(),
            xml,
        };
        let bytes = serde_json::to_vec(&cached)
            .map_err(|e| PluginError::internal(format!("storing the metadata: {e}")))?;
        host.kv_put(KV_KEY, &bytes, Some(KEEP))?;
        let idp = Arc::new(idp);
        self.remember(cached.fetched_at, &idp);
        Ok(idp)
    }

    fn parse(&self, cached: &Cached) -> Result<Arc<IdpConfig>, PluginError> {
        if let Ok(guard) = self.parsed.lock()
            && let Some((at, idp)) = guard.as_ref()
            && *at == cached.fetched_at
        {
            return Ok(idp.clone());
        }
        let idp = Arc::new(
            idp_metadata::parse(&cached.xml)
                .map_err(|e| PluginError::invalid_settings(format!("`idp_metadata_url`: {e}")))?,
        );
        self.remember(cached.fetched_at, &idp);
        Ok(idp)
    }

    fn remember(&self, at: i64, idp: &Arc<IdpConfig>) {
        if let Ok(mut guard) = self.parsed.lock() {
            *guard = Some((at, idp.clone()));
        }
    }
}

/// Fetches the metadata at `url` through the host and checks it as inline metadata is.
fn download(host: &Host<'_>, url: &str) -> Result<(String, IdpConfig), PluginError> {
    let body = host.http_get(url)?;
    let xml = String::from_utf8(body).map_err(|_| {
        PluginError::invalid_settings(format!(
            "`idp_metadata_url`: {url} did not answer UTF-8 XML"
        ))
    })?;
    let idp = idp_metadata::parse(&xml)
        .map_err(|e| PluginError::invalid_settings(format!("`idp_metadata_url` ({url}): {e}")))?;
    Ok((xml, idp))
}
