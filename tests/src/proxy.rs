//! A small round-robin TCP proxy on 127.0.0.1 for tests that put several hosts behind one
//! address, as a load balancer would: each accepted connection goes to the next backend in
//! turn (or to the one the test pins), and the proxy keeps a record of every connection —
//! which backend it went to, the request's line and tag header, and whether the backend
//! refused the connection or cut it before the client was done. It reads the request's head
//! before choosing to connect, so a request whose backend is down is still identified.
//! Not an HTTP proxy (it never answers on a backend's behalf and never retries elsewhere), and
//! not for production. Test support, not a test.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The request header a test sets to name a request; the proxy records its value, so a
/// request that failed can be found among the connections (with one request a connection).
pub const TAG_HEADER: &str = "x-test-request";

/// How long [`Proxy::settle`] waits for open connections before failing the test (a hang
/// guard: a client that has its answer closes at once).
const SETTLE_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// The most of a request's head the proxy reads before connecting to the backend.
const MAX_HEAD: usize = 64 * 1024;

/// How one proxied connection went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still being proxied.
    Open,
    /// The client closed before sending a whole request head; no backend was asked.
    ClientGone,
    /// Connecting to the backend failed (it was down): the client got no answer.
    ConnectFailed(String),
    /// The client finished first (it closed after its answer) and the backend had answered.
    Served { from_backend: u64 },
    /// The backend ended the connection before the client was done, or an error broke it:
    /// the client's answer was lost or cut short.
    Cut {
        from_backend: u64,
        error: Option<String>,
    },
}

impl Outcome {
    /// Whether the backend failed this connection (refused it or cut it).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::ConnectFailed(_) | Self::Cut { .. })
    }
}

/// One accepted connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The order of acceptance, from 0.
    pub id: u64,
    /// The index of the backend it went to (in the list given to [`Proxy::start`]).
    pub backend: usize,
    /// The first line of the first request (`GET /path HTTP/1.1`), if one was read.
    pub request_line: Option<String>,
    /// The value of [`TAG_HEADER`] in the first request, if any.
    pub tag: Option<String>,
    pub outcome: Outcome,
}

struct Shared {
    backends: Vec<SocketAddr>,
    next: AtomicUsize,
    ids: AtomicU64,
    /// The backend every new connection goes to, instead of the next in turn.
    pinned: Mutex<Option<usize>>,
    connections: Mutex<Vec<Connection>>,
}

impl Shared {
    fn choose(&self) -> usize {
        let pinned = *self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        pinned.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len())
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Connection)) {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(connection) = connections.iter_mut().find(|c| c.id == id) {
            change(connection);
        }
    }
}

/// The proxy: listening on `127.0.0.1:<port>` until dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Binds a free port on 127.0.0.1 (before the backends need to exist: a backend that is
    /// not listening yet is one whose connections fail) and starts proxying to `backends`.
    pub async fn start(backends: Vec<SocketAddr>) -> Self {
        assert!(!backends.is_empty(), "a proxy needs a backend");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared {
            backends,
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
            pinned: Mutex::new(None),
            connections: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            port,
            shared,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends every new connection to backend `backend` (`None`: round robin again).
    pub fn pin(&self, backend: Option<usize>) {
        if let Some(index) = backend {
            assert!(index < self.shared.backends.len(), "no backend {index}");
        }
        *self.shared.pinned.lock().unwrap_or_else(|e| e.into_inner()) = backend;
    }

    /// Every connection accepted so far, in order.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connection whose request carried `tag` in [`TAG_HEADER`].
    pub fn connection_tagged(&self, tag: &str) -> Option<Connection> {
        self.connections()
            .into_iter()
            .find(|c| c.tag.as_deref() == Some(tag))
    }

    /// Waits until every connection accepted so far has ended: a client has its answer a
    /// moment before the proxy sees it close and records how the connection went.
    pub async fn settle(&self) {
        let started = std::time::Instant::now();
        loop {
            let open: Vec<Connection> = self
                .connections()
                .into_iter()
                .filter(|c| c.outcome == Outcome::Open)
                .collect();
            if open.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < SETTLE_GUARD,
                "connections still open after {SETTLE_GUARD:?}: {open:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let id = shared.ids.fetch_add(1, Ordering::Relaxed);
        let backend = shared.choose();
        shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Connection {
                id,
                backend,
                request_line: None,
                tag: None,
                outcome: Outcome::Open,
            });
        tokio::spawn(proxy_one(client, id, backend, shared.clone()));
    }
}

async fn proxy_one(mut client: TcpStream, id: u64, backend: usize, shared: Arc<Shared>) {
    let head = read_head(&mut client).await;
    let (request_line, tag) = parse_head(&head);
    shared.update(id, |c| {
        c.request_line = request_line;
        c.tag = tag;
    });
    if head.is_empty() {
        shared.update(id, |c| c.outcome = Outcome::ClientGone);
        return;
    }
    let mut upstream = match TcpStream::connect(shared.backends[backend]).await {
        Ok(stream) => stream,
        Err(error) => {
            shared.update(id, |c| {
                c.outcome = Outcome::ConnectFailed(error.to_string())
            });
            return;
        }
    };
    if let Err(error) = upstream.write_all(&head).await {
        shared.update(id, |c| {
            c.outcome = Outcome::Cut {
                from_backend: 0,
                error: Some(error.to_string()),
            }
        });
        return;
    }
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    // Which side ended first tells an answered connection (the client closes after its
    // answer) from a cut one (the backend went away while the client still waited).
    let order = AtomicUsize::new(0);
    let (to_backend, from_backend) = tokio::join!(
        pump(client_read, upstream_write, &order),
        pump(upstream_read, client_write, &order),
    );
    let outcome = match (to_backend, from_backend) {
        (
            Pumped {
                ended: 0,
                error: None,
                ..
            },
            Pumped {
                bytes, error: None, ..
            },
        ) if bytes > 0 => Outcome::Served {
            from_backend: bytes,
        },
        (to, from) => Outcome::Cut {
            from_backend: from.bytes,
            error: to.error.or(from.error),
        },
    };
    shared.update(id, |c| c.outcome = outcome);
}

/// Reads the client's bytes until the end of the request head (or [`MAX_HEAD`], or EOF).
async fn read_head(client: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 8192];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    head
}

/// The request line and the tag header's value.
fn parse_head(head: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
    let tag = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(TAG_HEADER))
        .map(|(_, value)| value.trim().to_owned());
    (request_line, tag)
}

struct Pumped {
    bytes: u64,
    error: Option<String>,
    /// 0 when this direction ended first.
    ended: usize,
}

/// Copies `from` to `to` until EOF or an error, then closes `to`'s write side.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    order: &AtomicUsize,
) -> Pumped {
    let mut buffer = [0u8; 16 * 1024];
    let mut bytes = 0u64;
    let mut error = None;
    loop {
        match from.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = to.write_all(&buffer[..n]).await {
                    error = Some(e.to_string());
                    break;
                }
                bytes += n as u64;
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let ended = order.fetch_add(1, Ordering::SeqCst);
    let _ = to.shutdown().await;
    Pumped {
        bytes,
        error,
        ended,
    }
}
