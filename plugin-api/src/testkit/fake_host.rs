//! [`FakeHost`]: a deterministic stand-in for the host's capabilities, for plugin
//! unit tests. Nothing here touches the network, the disk or the real clock.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use abi_stable::{
    std_types::{ROption, RResult, RSlice, RStr, RVec},
    type_level::downcasting::TD_Opaque,
};

use crate::{
    error::PluginError,
    ffi::{HostFfi, HostFfi_TO},
    host::Host,
    inbound::SessionSelector,
    types::{HttpRequest, HttpResponse, LogLevel, Pair},
};

/// Checks a request beyond its method and URL; `Err` says what is wrong.
type RequestCheck = Box<dyn Fn(&HttpRequest) -> Result<(), String> + Send>;

/// One scripted HTTP exchange: the request the plugin must make, and the reply.
pub struct Expectation {
    method: String,
    url: String,
    check: Option<RequestCheck>,
    reply: Result<HttpResponse, PluginError>,
}

impl Expectation {
    /// Expects `method url` and answers `200` with an empty body until told otherwise.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_owned(),
            url: url.to_owned(),
            check: None,
            reply: Ok(HttpResponse {
                status: 200,
                headers: RVec::new(),
                body: RVec::new(),
            }),
        }
    }
    /// Answers with `status` and a JSON body.
    pub fn reply_json(mut self, status: u16, body: &serde_json::Value) -> Self {
        self.reply = Ok(HttpResponse {
            status,
            headers: vec![Pair::new("content-type", "application/json")].into(),
            body: body.to_string().into_bytes().into(),
        });
        self
    }
    /// Answers with `status`, the given content type and body.
    pub fn reply(mut self, status: u16, content_type: &str, body: &[u8]) -> Self {
        self.reply = Ok(HttpResponse {
            status,
            headers: vec![Pair::new("content-type", content_type)].into(),
            body: body.to_vec().into(),
        });
        self
    }
    /// Answers as if the host's HTTP call failed (timeout, refused connection).
    pub fn fail(mut self, error: PluginError) -> Self {
        self.reply = Err(error);
        self
    }
    /// Also checks the request (headers, body); an `Err` fails the exchange.
    pub fn check(
        mut self,
        check: impl Fn(&HttpRequest) -> Result<(), String> + Send + 'static,
    ) -> Self {
        self.check = Some(Box::new(check));
        self
    }
}

struct State {
    now_millis: i64,
    rng: u64,
    script: VecDeque<Expectation>,
    requests: Vec<HttpRequest>,
    failures: Vec<String>,
    store: HashMap<String, (Vec<u8>, Option<i64>)>,
    logs: Vec<(LogLevel, String)>,
    /// The IdP's live sessions, as (subject, logout state), for `sessions_alive`.
    sessions: Vec<(String, Vec<u8>)>,
}

/// A fake host for plugin tests.
///
/// ```text
/// let fake = FakeHost::new();
/// fake.expect(Expectation::new("GET", "https://idp.test/.well-known/openid-configuration").reply_json(200, &doc));
/// let begun = fake.call(|host| idp.begin_login(host, &request))?;
/// fake.assert_script_done();
/// ```
pub struct FakeHost {
    state: Mutex<State>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

/// 2026-01-01T00:00:00Z: a fixed, unremarkable starting time.
const DEFAULT_NOW_MILLIS: i64 = 1_767_225_600_000;

impl FakeHost {
    /// A fake host at a fixed time with randomness seeded by 0.
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// A fake host whose random bytes follow `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                now_millis: DEFAULT_NOW_MILLIS,
                rng: seed,
                script: VecDeque::new(),
                requests: Vec::new(),
                failures: Vec::new(),
                store: HashMap::new(),
                logs: Vec::new(),
                sessions: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has already failed; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `body` with a [`Host`] backed by this fake.
    pub fn call<T>(&self, body: impl FnOnce(&Host<'_>) -> T) -> T {
        let object = HostFfi_TO::from_ptr(self, TD_Opaque);
        body(&Host::new(object))
    }

    /// The current fake time, in Unix seconds.
    pub fn now_unix_seconds(&self) -> i64 {
        self.state().now_millis / 1000
    }
    /// Sets the fake clock to `unix_seconds`.
    pub fn set_time(&self, unix_seconds: i64) {
        self.state().now_millis = unix_seconds * 1000;
    }
    /// Moves the fake clock forward.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let mut state = self.state();
        state.now_millis = state.now_millis.saturating_add(millis);
    }

    /// Adds an exchange to the script; requests must arrive in script order.
    pub fn expect(&self, expectation: Expectation) {
        self.state().script.push_back(expectation);
    }
    /// Every request the plugin made, in order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.state().requests.clone()
    }
    /// Panics if a request did not match the script or an expected one never came.
    pub fn assert_script_done(&self) {
        let state = self.state();
        assert!(
            state.failures.is_empty(),
            "unexpected HTTP requests:\n{}",
            state.failures.join("\n")
        );
        let left: Vec<String> = state
            .script
            .iter()
            .map(|e| format!("{} {}", e.method, e.url))
            .collect();
        assert!(
            left.is_empty(),
            "expected HTTP requests that never came: {left:?}"
        );
    }

    /// What the plugin logged.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.state().logs.clone()
    }
    /// Pretends the IdP instance has a live session of `subject` with `logout_state`.
    pub fn add_session(&self, subject: &str, logout_state: &[u8]) {
        self.state()
            .sessions
            .push((subject.to_owned(), logout_state.to_vec()));
    }
    /// A live value from the fake store.
    pub fn stored(&self, key: &str) -> Option<Vec<u8>> {
        let state = self.state();
        let now = state.now_millis;
        state
            .store
            .get(key)
            .filter(|(_, exp)| exp.is_none_or(|exp| exp > now))
            .map(|(v, _)| v.clone())
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// The trait methods must never panic: a panic here would cross an FFI shim.
impl HostFfi for FakeHost {
    fn now_unix_millis(&self) -> i64 {
        self.state().now_millis
    }

    fn random_bytes(&self, len: u32) -> RVec<u8> {
        let mut state = self.state();
        let mut bytes = Vec::with_capacity(len as usize);
        while bytes.len() < len as usize {
            bytes.extend_from_slice(&splitmix64(&mut state.rng).to_le_bytes());
        }
        bytes.truncate(len as usize);
        bytes.into()
    }

    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, PluginError> {
        let mut state = self.state();
        state.requests.push(request.clone());
        let described = format!("{} {}", request.method, request.url);
        let Some(expected) = state.script.pop_front() else {
            state
                .failures
                .push(format!("{described} (the script was empty)"));
            return RResult::RErr(PluginError::idp_unavailable(format!(
                "testkit: no reply scripted for {described}"
            )));
        };
        if expected.method != request.method.as_str() || expected.url != request.url.as_str() {
            state.failures.push(format!(
                "{described} (expected {} {})",
                expected.method, expected.url
            ));
            return RResult::RErr(PluginError::idp_unavailable(format!(
                "testkit: unexpected request {described}"
            )));
        }
        if let Some(check) = &expected.check
            && let Err(problem) = check(&request)
        {
            state.failures.push(format!("{described}: {problem}"));
            return RResult::RErr(PluginError::idp_unavailable(format!("testkit: {problem}")));
        }
        expected.reply.into()
    }

    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        let value = self.stored(key.as_str()).map(RVec::from);
        RResult::ROk(value.into())
    }

    fn kv_put(
        &self,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
        ttl_seconds: u64,
        only_if_absent: bool,
    ) -> RResult<bool, PluginError> {
        if only_if_absent && self.stored(key.as_str()).is_some() {
            return RResult::ROk(false);
        }
        let mut state = self.state();
        let expires = (ttl_seconds > 0).then(|| {
            state
                .now_millis
                .saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 1000) * 1000)
        });
        state
            .store
            .insert(key.as_str().to_owned(), (value.to_vec(), expires));
        RResult::ROk(true)
    }

    fn kv_delete(&self, key: RStr<'_>) -> RResult<(), PluginError> {
        self.state().store.remove(key.as_str());
        RResult::ROk(())
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.state().logs.push((level, message.as_str().to_owned()));
    }

    fn sessions_alive(&self, sessions: SessionSelector) -> RResult<u32, PluginError> {
        let matches = |(subject, state): &&(String, Vec<u8>)| {
            (sessions.subject.is_empty() || sessions.subject.as_str() == subject)
                && (sessions.logout_state.is_empty() || sessions.logout_state.as_slice() == state)
        };
        let count = self.state().sessions.iter().filter(matches).count();
        RResult::ROk(u32::try_from(count).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_honours_the_fake_clock() {
        let fake = FakeHost::new();
        fake.call(|host| host.kv_put("k", b"v", Some(Duration::from_secs(60))))
            .expect("put");
        assert_eq!(fake.stored("k"), Some(b"v".to_vec()));
        fake.advance(Duration::from_secs(61));
        assert_eq!(fake.stored("k"), None);
        assert!(
            fake.call(|host| host.kv_put_if_absent("k", b"w", None))
                .expect("put")
        );
        assert!(
            !fake
                .call(|host| host.kv_put_if_absent("k", b"x", None))
                .expect("put")
        );
    }

    #[test]
    fn scripted_http_replies_in_order_and_reports_strays() {
        let fake = FakeHost::new();
        fake.expect(Expectation::new("GET", "https://idp.test/a").reply(200, "text/plain", b"one"));
        let body = fake
            .call(|host| host.http_get("https://idp.test/a"))
            .expect("scripted");
        assert_eq!(body, b"one");
        let error = fake
            .call(|host| host.http_get("https://idp.test/b"))
            .expect_err("not scripted");
        assert!(error.message().contains("no reply scripted"));
        let outcome = std::panic::catch_unwind(|| fake.assert_script_done());
        assert!(outcome.is_err(), "a stray request must fail the script");
    }

    #[test]
    fn seeded_randomness_repeats_and_differs_by_seed() {
        let a = FakeHost::with_seed(1).call(|host| host.random_bytes(40));
        let b = FakeHost::with_seed(1).call(|host| host.random_bytes(40));
        let c = FakeHost::with_seed(2).call(|host| host.random_bytes(40));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 40);
    }
}
