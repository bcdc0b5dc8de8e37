//! The host's implementation of the capabilities lent to each plugin call: the real
//! clock, the OS's secure randomness, egress HTTP with enforced limits and the
//! instance's egress policy (`egress`), the
//! database-backed key-value store scoped to one IdP instance, and `tracing`.
//!
//! These methods run on a blocking-pool thread, so they may block on the runtime;
//! they must never panic, because a panic here would cross an FFI shim.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RVec};
use gatehouse_plugin_api::{
    HostFfi, HttpRequest, HttpResponse, LogLevel, Pair, PluginError, SessionSelector,
};
use gatehouse_store::Store;
use tokio::runtime::Handle;

use crate::clock::{Clock, Randomness};

use super::egress::{
    EgressPolicy, EgressRefusal, NameLookup, PolicyResolver, SystemLookup, refusal_in,
};

/// How long a pooled connection to an IdP may stay idle before it is dropped: below the
/// shortest common server keep-alive (5 s), so the host does not reuse one as the server closes it.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Outgoing HTTP for plugins: no redirects followed, a timeout, a response size
/// cap, http(s) URLs only, and the IdP instance's [`EgressPolicy`] applied to the
/// addresses every request connects to.
///
/// There is one reqwest client per distinct policy (in practice one per IdP), each
/// with a [`PolicyResolver`]: a connection pool is never shared between policies, so a
/// connection one IdP was allowed to open is never reused for another.
pub struct HttpEgress {
    timeout: Duration,
    max_response_bytes: usize,
    lookup: Arc<dyn NameLookup>,
    clients: Mutex<HashMap<EgressPolicy, reqwest::Client>>,
}

impl HttpEgress {
    pub fn new(timeout: Duration, max_response_bytes: usize) -> Result<Self, reqwest::Error> {
        Self::with_lookup(timeout, max_response_bytes, Arc::new(SystemLookup))
    }

    /// Like [`HttpEgress::new`], resolving names with `lookup` (tests use a table).
    pub fn with_lookup(
        timeout: Duration,
        max_response_bytes: usize,
        lookup: Arc<dyn NameLookup>,
    ) -> Result<Self, reqwest::Error> {
        let egress = Self {
            timeout,
            max_response_bytes,
            lookup,
            clients: Mutex::new(HashMap::new()),
        };
        // Build one client now so a TLS set-up failure stops start-up, not a sign-in.
        egress.client_for(&EgressPolicy::default())?;
        Ok(egress)
    }

    fn client_for(&self, policy: &EgressPolicy) -> Result<reqwest::Client, reqwest::Error> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(policy) {
            return Ok(client.clone());
        }
        let resolver = PolicyResolver::new(Arc::new(policy.clone()), Arc::clone(&self.lookup));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, out of the policy's reach.
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // An idle connection is dropped before the IdP's server closes it (Node's and
            // Apache's default keep-alive is 5 s): reusing one as the server closes it fails
            // the request ("error sending request"), seen under load in tests/two_hosts.rs.
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .user_agent(concat!("Gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()?;
        clients.insert(policy.clone(), client.clone());
        Ok(client)
    }

    /// Sends `request` under `policy`, refusing anything the egress rules do not
    /// allow. A refused address gets no bytes: address literals are checked here,
    /// names by the client's resolver before it connects.
    pub async fn send(
        &self,
        request: HttpRequest,
        policy: &EgressPolicy,
    ) -> Result<HttpResponse, PluginError> {
        self.send_capped(request, policy, self.max_response_bytes)
            .await
    }

    /// [`Self::send`], reading at most `max_response_bytes` of the response (an IdP's own
    /// `[[idp]] http_max_response_bytes` instead of the host's).
    pub async fn send_capped(
        &self,
        request: HttpRequest,
        policy: &EgressPolicy,
        max_response_bytes: usize,
    ) -> Result<HttpResponse, PluginError> {
        let url = url::Url::parse(&request.url).map_err(|error| {
            PluginError::invalid_settings(format!("cannot request `{}`: {error}", request.url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PluginError::invalid_settings(format!(
                "cannot request `{}`: only http and https URLs are allowed",
                request.url
            )));
        }
        let described = format!("{} {}", request.method, redact_query(&url));
        // reqwest connects to an address literal without asking the resolver.
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(address) = literal {
            policy
                .check(url.host_str().unwrap_or_default(), address)
                .map_err(|refusal| egress_refused(&described, &refusal))?;
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            PluginError::internal(format!("`{}` is not an HTTP method", request.method))
        })?;
        let client = self.client_for(policy).map_err(|error| {
            PluginError::internal(format!("{described}: no HTTP client: {error}"))
        })?;
        let mut builder = client.request(method, url.clone());
        for header in request.headers.iter() {
            builder = builder.header(header.name.as_str(), header.value.as_str());
        }
        let mut response =
            builder.body(request.body.into_vec()).send().await.map_err(
                |error| match refusal_in(&error) {
                    Some(refusal) => egress_refused(&described, refusal),
                    None => PluginError::idp_unavailable(format!(
                        "{described}: {}",
                        describe_reqwest(&error)
                    )),
                },
            )?;
        let status = response.status().as_u16();
        let headers: Vec<Pair> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some(Pair::new(name.as_str(), value.to_str().ok()?)))
            .collect();
        // Sized from the announced length (never past the cap), so a large body is not
        // copied at every doubling nor held at up to twice its size.
        let announced = response
            .content_length()
            .and_then(|length| usize::try_from(length).ok())
            .unwrap_or(0);
        let mut body = Vec::with_capacity(announced.min(max_response_bytes));
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            PluginError::idp_unavailable(format!("{described}: {}", describe_reqwest(&error)))
        })? {
            if body.len() + chunk.len() > max_response_bytes {
                return Err(PluginError::idp_unavailable(format!(
                    "{described}: the response is larger than the {max_response_bytes} bytes allowed ([host] or [[idp]] http_max_response_bytes)"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers: headers.into(),
            body: body.into(),
        })
    }
}

/// A refused request, as the plugin (and through it the audit log) sees it. It is a
/// settings problem, not an outage: the IdP's metadata names a place the host will not
/// call, and retrying will not help.
fn egress_refused(described: &str, refusal: &EgressRefusal) -> PluginError {
    PluginError::invalid_settings(format!("{described}: {refusal}"))
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        error.to_string()
    }
}

/// Query strings can carry codes and secrets; logs get the path only.
fn redact_query(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// The capabilities lent to one plugin call for one IdP instance.
pub struct CallCapabilities<'a> {
    pub runtime: &'a Handle,
    pub store: &'a Store,
    pub egress: &'a HttpEgress,
    pub clock: &'a Clock,
    pub random: &'a Randomness,
    /// What this IdP instance's requests may reach.
    pub policy: &'a EgressPolicy,
    /// The instance's own response size cap, if it has one.
    pub max_response_bytes: Option<usize>,
    /// The IdP instance id; the key-value store is scoped to it.
    pub scope: &'a str,
    pub plugin_id: &'a str,
}

fn store_error(error: impl std::fmt::Display) -> PluginError {
    tracing::error!(%error, "plugin key-value store failed");
    PluginError::internal("the host's key-value store is unavailable")
}

impl CallCapabilities<'_> {
    /// Runs `future` on the host's runtime from this plugin thread. `block_on` panics
    /// when the runtime has shut down under a plugin thread that outlived its call (a
    /// timed-out call at shutdown), and a panic here would cross the FFI shim and end
    /// the process; so it becomes an error the plugin returns.
    fn wait_for<F: std::future::Future>(&self, future: F) -> Result<F::Output, PluginError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.runtime.block_on(future)
        }))
        .map_err(|_| {
            tracing::warn!(
                plugin = self.plugin_id,
                idp = self.scope,
                "a plugin call outlived the host's runtime"
            );
            PluginError::internal("the host is shutting down")
        })
    }
}

impl HostFfi for CallCapabilities<'_> {
    fn now_unix_millis(&self) -> i64 {
        self.clock.now_unix_millis()
    }

    fn random_bytes(&self, len: u32) -> RVec<u8> {
        self.random.bytes(len as usize).into()
    }

    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, PluginError> {
        let response = self
            .wait_for(
                self.egress.send_capped(
                    request,
                    self.policy,
                    self.max_response_bytes
                        .unwrap_or(self.egress.max_response_bytes),
                ),
            )
            .and_then(|sent| sent);
        if let Err(error) = &response {
            tracing::warn!(plugin = self.plugin_id, idp = self.scope, %error, "plugin HTTP request failed");
        }
        response.into()
    }

    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        self.wait_for(
            self.store
                .kv_get(self.scope, key.as_str(), self.clock.now_unix_seconds()),
        )
        .and_then(|found| found.map_err(store_error))
        .map(|value| ROption::from(value.map(RVec::from)))
        .into()
    }

    fn kv_put(
        &self,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
        ttl_seconds: u64,
        only_if_absent: bool,
    ) -> RResult<bool, PluginError> {
        let now = self.clock.now_unix_seconds();
        let expires_at = (ttl_seconds > 0)
            .then(|| now.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX)));
        self.wait_for(self.store.kv_put(
            self.scope,
            key.as_str(),
            value.as_slice(),
            expires_at,
            only_if_absent,
            now,
        ))
        .and_then(|written| written.map_err(store_error))
        .into()
    }

    fn kv_delete(&self, key: RStr<'_>) -> RResult<(), PluginError> {
        self.wait_for(self.store.kv_delete(self.scope, key.as_str()))
            .and_then(|deleted| deleted.map_err(store_error))
            .into()
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let (plugin, idp, message) = (self.plugin_id, self.scope, message.as_str());
        match level {
            LogLevel::Debug => tracing::debug!(plugin, idp, "{message}"),
            LogLevel::Info => tracing::info!(plugin, idp, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, idp, "{message}"),
            LogLevel::Error => tracing::error!(plugin, idp, "{message}"),
        }
    }

    fn sessions_alive(&self, sessions: SessionSelector) -> RResult<u32, PluginError> {
        let (subject, state) = sessions.filters();
        if sessions.is_empty() {
            return RResult::RErr(PluginError::internal(
                "a session selector needs a subject or a logout state",
            ));
        }
        self.wait_for(self.store.count_idp_sessions(
            self.scope,
            subject,
            state,
            self.clock.now_unix_seconds(),
        ))
        .and_then(|counted| counted.map_err(store_error))
        .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
        .into()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use gatehouse_plugin_api::ErrorKind;
    use serde_json::json;
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
        sync::mpsc,
    };

    use super::*;
    use crate::plugins::egress::LookupFuture;

    /// Every name resolves to 127.0.0.1, as a hostile DNS answer for a public name would.
    struct EverythingIsLocal;

    impl NameLookup for EverythingIsLocal {
        fn lookup(&self, _: &str) -> LookupFuture {
            Box::pin(async { Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]) })
        }
    }

    /// A server on 127.0.0.1 that reports the request line of every request it gets.
    async fn recording_server() -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (seen, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let _ = seen.send(text.lines().next().unwrap_or_default().to_owned());
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        (port, requests)
    }

    fn egress() -> HttpEgress {
        HttpEgress::with_lookup(Duration::from_secs(10), 1024, Arc::new(EverythingIsLocal))
            .expect("egress")
    }

    /// A server on 127.0.0.1 that answers every request with `size` bytes.
    async fn sized_server(size: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&vec![b'x'; size]).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn an_idps_own_cap_replaces_the_hosts() {
        let egress = egress();
        let port = sized_server(4096).await;
        let local = EgressPolicy::from_settings(&json!({ "server_url": "http://127.0.0.1:1" }));
        let url = format!("http://127.0.0.1:{port}/get_users");
        let error = egress
            .send(HttpRequest::get(url.as_str()), &local)
            .await
            .expect_err("over the host's 1024 bytes");
        assert!(
            error
                .message()
                .contains("larger than the 1024 bytes allowed"),
            "{error}"
        );
        let answer = egress
            .send_capped(HttpRequest::get(url.as_str()), &local, 4096)
            .await
            .expect("within the IdP's own cap");
        assert_eq!(answer.body.len(), 4096);
        let error = egress
            .send_capped(HttpRequest::get(url.as_str()), &local, 4095)
            .await
            .expect_err("one byte over");
        assert!(error.message().contains("4095 bytes"), "{error}");
    }

    #[tokio::test]
    async fn refused_addresses_get_no_bytes_whether_named_or_literal() {
        let (port, mut requests) = recording_server().await;
        let egress = egress();
        // The discovery document names another host, which DNS puts on loopback.
        let public = EgressPolicy::from_settings(&json!({ "issuer": "https://idp.example.com" }));
        for (url, shown) in [
            (
                format!("http://tokens.example.net:{port}/named"),
                "tokens.example.net (127.0.0.1) is a loopback address",
            ),
            (
                format!("http://127.0.0.1:{port}/literal"),
                "127.0.0.1 is a loopback address",
            ),
            (
                format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
                "::ffff:127.0.0.1 is a loopback address",
            ),
        ] {
            let error = egress
                .send(HttpRequest::get(url.as_str()), &public)
                .await
                .expect_err("refused");
            assert_eq!(error.kind, ErrorKind::INVALID_SETTINGS, "{error}");
            assert!(
                error
                    .message()
                    .contains(&format!("refused by the egress policy: {shown}")),
                "{url}: {error}"
            );
        }

        // The same server, allowed because the IdP's own URL is on loopback: the first
        // request it ever sees is this one, so the refused ones sent nothing.
        let local = EgressPolicy::from_settings(&json!({ "issuer": "http://127.0.0.1:1" }));
        let answer = egress
            .send(
                HttpRequest::get(format!("http://tokens.example.net:{port}/allowed")),
                &local,
            )
            .await
            .expect("allowed");
        assert_eq!(answer.status, 200);
        assert_eq!(
            requests.recv().await.as_deref(),
            Some("GET /allowed HTTP/1.1")
        );
        assert!(requests.try_recv().is_err(), "no other request arrived");
    }

    #[test]
    fn a_plugin_thread_that_outlives_the_runtime_gets_an_error_not_a_panic() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let handle = runtime.handle().clone();
        let store = runtime
            .block_on(Store::connect("sqlite::memory:"))
            .expect("store");
        let egress = runtime.block_on(async { egress() });
        drop(runtime);
        let capabilities = CallCapabilities {
            runtime: &handle,
            store: &store,
            egress: &egress,
            clock: &Clock::system(),
            random: &Randomness::system(),
            policy: &EgressPolicy::default(),
            max_response_bytes: None,
            scope: "late",
            plugin_id: "test",
        };
        let answer = capabilities.http(HttpRequest::get("http://tokens.example.net:9/"));
        let error = answer.into_result().expect_err("no runtime, no request");
        assert_eq!(error.message(), "the host is shutting down", "{error}");
    }
}
