//! What a running host tells its operator, through the real router and the real example
//! plugin: the log events of sign-ins, refusals (with their codes), password failures,
//! accounts, reloads and task runs, as a captured subscriber receives them (with the request
//! id of their request's span, and no secret anywhere); `GET /metrics` read by a Prometheus
//! text-format parser; the metrics token's 404 and 401; and the request id a response
//! carries. Not a test of the access log's format (`web::trace`'s unit test).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use gatehouse::tasks::{Scheduler, TaskSettings};
use gatehouse_tests::{Browser, EXAMPLE_CONFIG, Page, TestHost};
use prom_text_format_parser::{Metric, Sample, Scrape, Type, ValueType};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{
    Layer, filter::LevelFilter, layer::Context, layer::SubscriberExt as _, registry::LookupSpan,
};

const METRICS_TOKEN: &str = "test-metrics-token-0f3a9c1d";
const PASSWORD: &str = "correct horse battery staple 7";

fn config_with_token() -> String {
    EXAMPLE_CONFIG.replacen(
        "dev_mode = true\n",
        &format!("dev_mode = true\nmetrics_token = \"{METRICS_TOKEN}\"\ntrusted_proxies = [\"10.9.8.7\"]\n"),
        1,
    )
}

// ----- a subscriber that keeps every event's fields and its spans' fields -----------------

/// One event as the subscriber saw it.
#[derive(Debug, Clone)]
struct Captured {
    target: String,
    fields: BTreeMap<String, String>,
    /// The fields of the spans it was written in, outermost first (inner ones win).
    spans: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

/// The fields a span was made with, kept in its extensions.
struct SpanFields(BTreeMap<String, String>);

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Captured>>>);

impl Collector {
    fn events(&self) -> Vec<Captured> {
        self.0.lock().expect("not poisoned").clone()
    }

    /// The events of `gatehouse::events` named `name`.
    fn named(&self, name: &str) -> Vec<Captured> {
        self.events()
            .into_iter()
            .filter(|e| e.target == "gatehouse::events" && e.field("event") == Some(name))
            .collect()
    }
}

impl<S> Layer<S> for Collector
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut spans = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(recorded)) = span.extensions().get::<SpanFields>() {
                    spans.extend(recorded.clone());
                }
            }
        }
        self.0.lock().expect("not poisoned").push(Captured {
            target: event.metadata().target().to_owned(),
            fields: fields.0,
            spans,
        });
    }
}

/// The JSON log as `log_format = "json"` writes it, into memory.
#[derive(Clone, Default)]
struct JsonLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for JsonLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl JsonLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

// ----- requests ----------------------------------------------------------------------------

async fn scrape(browser: &mut Browser, authorization: Option<&str>) -> Page {
    let mut request = Request::builder()
        .uri("/metrics")
        .header(header::HOST, &browser.host);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    browser
        .send(request.body(Body::empty()).expect("request"))
        .await
}

/// The body as Prometheus reads it; a malformed line fails the test.
fn parse(page: &Page) -> Vec<Metric> {
    Scrape::parse(&page.body)
        .unwrap_or_else(|e| panic!("not the Prometheus text format ({e:?}): {}", page.body))
        .metrics
}

fn label<'a>(sample: &'a Sample, name: &str) -> Option<&'a str> {
    sample
        .labels
        .iter()
        .find(|l| l.key == name)
        .map(|l| l.value.as_str())
}

fn labels_match(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(name, value)| label(sample, name) == Some(*value))
}

/// The sum of the series of counter or gauge `metric` with these labels (0 when none).
fn counter(metrics: &[Metric], metric: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .iter()
        .filter(|m| m.name == metric)
        .inspect(|m| assert!(matches!(m.kind, Type::Counter | Type::Gauge), "{m:?}"))
        .flat_map(|m| m.samples.iter())
        .filter(|s| labels_match(s, labels))
        .map(|s| s.value.value.as_f64())
        .sum()
}

fn request_id(page: &Page) -> String {
    page.headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no X-Request-Id: {page:?}"))
        .to_owned()
}

fn is_host_request_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn sign_ins_refusals_and_failures_are_logged_once_each_and_counted_in_the_metrics() {
    let host = TestHost::start(&config_with_token()).await;
    let collector = Collector::default();
    let json_log = JsonLog::default();
    let writer = json_log.clone();
    let subscriber = tracing_subscriber::registry()
        .with(collector.clone().with_filter(LevelFilter::INFO))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || writer.clone())
                .with_filter(LevelFilter::INFO),
        );
    let _guard = tracing::subscriber::set_default(subscriber);

    // An SSO sign-in that creates the account.
    let mut browser = host.browser("localhost");
    let begun = browser.get("/sso/example/start").await;
    assert_eq!(begun.status, StatusCode::SEE_OTHER, "{begun:?}");
    let callback_url = begun.location.clone().expect("redirect");
    let state_token = callback_url
        .split("state=")
        .nth(1)
        .expect("a state parameter")
        .to_owned();
    let signed_in = browser.follow(&begun).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{signed_in:?}");
    let session = browser
        .cookies
        .get("gh_session")
        .expect("a session")
        .clone();

    // A replay of the same answer: refused, code `unknown_state`.
    let mut other = host.browser("localhost");
    let replayed = other.follow(&begun).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST, "{replayed:?}");

    // A wrong password, and a right one.
    let local_id = host
        .create_password_user("grace", "root", PASSWORD, false)
        .await;
    let mut local = host.browser("localhost");
    let wrong = local.password_sign_in("grace", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    let right = local.password_sign_in("grace", PASSWORD).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{right:?}");

    // A reload and a task run.
    let reloaded = gatehouse::reload::reload(&host.state)
        .await
        .expect("reload");
    assert!(reloaded.applied(), "{reloaded:?}");
    let scheduler = Scheduler::new(
        host.state.clone(),
        TaskSettings::from_config(&host.config()),
        "test",
    );
    let run = scheduler
        .run_now("cleanup", None, &|_| {})
        .await
        .expect("cleanup runs");

    // One event each, with its fields and its request's id.
    let successes = collector.named("sign_in_succeeded");
    assert_eq!(successes.len(), 2, "{successes:#?}");
    let sso = &successes[0];
    assert_eq!(sso.field("method"), Some("sso"));
    assert_eq!(sso.field("domain"), Some("root"));
    assert_eq!(sso.field("idp"), Some("example"));
    assert_eq!(
        sso.field("client"),
        Some("unknown"),
        "no socket in these tests"
    );
    let sso_user = sso.field("user_id").expect("user_id").to_owned();
    assert_eq!(
        sso.spans.get("request_id").map(String::as_str),
        Some(request_id(&signed_in).as_str()),
        "the event carries the id its response was sent with: {sso:#?}"
    );
    assert_eq!(
        sso.spans.get("route").map(String::as_str),
        Some("/sso/{idp}/callback")
    );
    let password = &successes[1];
    assert_eq!(password.field("method"), Some("password"));
    assert_eq!(password.field("idp"), None);
    assert_eq!(
        password.field("user_id"),
        Some(local_id.to_string().as_str())
    );

    let created = collector.named("account_created");
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0].field("user_id"), Some(sso_user.as_str()));
    assert_eq!(created[0].field("idp"), Some("example"));

    let refused = collector.named("sign_in_refused");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0].field("reason"), Some("unknown_state"));
    assert_eq!(refused[0].field("idp"), Some("example"));
    assert_eq!(
        refused[0].spans.get("request_id").map(String::as_str),
        Some(request_id(&replayed).as_str())
    );

    let failed = collector.named("password_failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].field("reason"), Some("wrong_password"));
    assert_eq!(
        failed[0].field("user_id"),
        Some(local_id.to_string().as_str())
    );
    assert_eq!(failed[0].field("domain"), Some("root"));
    assert_eq!(
        failed[0].spans.get("request_id").map(String::as_str),
        Some(request_id(&wrong).as_str())
    );

    let reloads = collector.named("config_reloaded");
    assert_eq!(reloads.len(), 1, "{reloads:#?}");
    let tasks = collector.named("task_ran");
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0].field("task"), Some("cleanup"));
    assert_eq!(tasks[0].field("outcome"), Some("ok"));
    assert_eq!(run.task.name, "cleanup");

    // The JSON log has the same events with the request id in their span.
    let json = json_log.text();
    let sso_line = json
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"))
        .find(|line| line["fields"]["event"] == "sign_in_succeeded")
        .expect("the JSON log has the sign-in");
    assert_eq!(sso_line["span"]["request_id"], request_id(&signed_in));
    assert_eq!(sso_line["fields"]["idp"], "example");

    // No secret, token, password or claim value anywhere in the log.
    let csrf = local.cookies.get("gh_csrf").cloned().unwrap_or_default();
    let everything = format!("{json}\n{:?}", collector.events());
    for secret in [
        PASSWORD,
        "not the password",
        METRICS_TOKEN,
        state_token.as_str(),
        session.as_str(),
        csrf.as_str(),
    ] {
        assert!(!secret.is_empty());
        assert!(
            !everything.contains(secret),
            "the log contains a secret: {secret}"
        );
    }
    for event in collector
        .events()
        .iter()
        .filter(|e| e.target == "gatehouse::events")
    {
        let text = format!("{event:?}");
        for claim in ["ada@example.test", "Lovelace", "grace"] {
            assert!(!text.contains(claim), "an event carries `{claim}`: {text}");
        }
    }

    // The same counts in /metrics, as Prometheus reads them.
    let mut scraper = host.browser("localhost");
    let page = scrape(&mut scraper, Some(&format!("Bearer {METRICS_TOKEN}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(
        page.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse(&page);
    let sign_ins = "gatehouse_sign_ins_total";
    let sso_success = [
        ("method", "sso"),
        ("idp", "example"),
        ("outcome", "success"),
    ];
    assert_eq!(
        counter(&samples, sign_ins, &sso_success),
        1.0,
        "{}",
        page.body
    );
    assert_eq!(
        counter(
            &samples,
            sign_ins,
            &[
                ("method", "sso"),
                ("idp", "example"),
                ("outcome", "refused")
            ]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            sign_ins,
            &[("method", "password"), ("outcome", "failure")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            sign_ins,
            &[("method", "password"), ("outcome", "success")]
        ),
        1.0
    );
    let refusals = "gatehouse_sign_in_refusals_total";
    assert_eq!(
        counter(&samples, refusals, &[("reason", "unknown_state")]),
        1.0
    );
    assert_eq!(
        counter(&samples, refusals, &[("reason", "wrong_password")]),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            "gatehouse_account_changes_total",
            &[("idp", "example"), ("change", "created")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            "gatehouse_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/sso/{idp}/callback"),
                ("status", "303")
            ]
        ),
        1.0,
        "{}",
        page.body
    );
    assert_eq!(
        counter(
            &samples,
            "gatehouse_http_requests_total",
            &[("route", "/sso/{idp}/callback"), ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            "gatehouse_http_requests_total",
            &[("route", "/login"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            "gatehouse_task_runs_total",
            &[("task", "cleanup"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &samples,
            "gatehouse_config_reloads_total",
            &[("outcome", "applied")]
        ),
        1.0
    );
    // Two calls of the example plugin ran: begin_login and complete_login.
    let latency = samples
        .iter()
        .find(|m| m.name == "gatehouse_plugin_call_duration_seconds")
        .unwrap_or_else(|| panic!("no plugin latency histogram: {}", page.body));
    assert_eq!(latency.kind, Type::Histogram);
    let buckets: Vec<(f64, f64)> = latency
        .samples
        .iter()
        .filter(|s| {
            s.value.value_type == ValueType::Sample && labels_match(s, &[("idp", "example")])
        })
        .map(|s| {
            let le = label(s, "le").expect("a bucket's bound");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("a number")
            };
            (bound, s.value.value.as_f64())
        })
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf: {buckets:?}");
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 2.0)), "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "cumulative, in order: {buckets:?}"
    );
    let count = latency
        .samples
        .iter()
        .find(|s| s.value.value_type == ValueType::Count && labels_match(s, &[("idp", "example")]))
        .expect("a _count");
    assert_eq!(count.value.value.as_f64(), 2.0);
    assert!(
        samples
            .iter()
            .any(|m| m.name == "gatehouse_http_request_duration_seconds"
                && m.kind == Type::Histogram),
        "{}",
        page.body
    );
    assert!(
        counter(
            &samples,
            "gatehouse_db_pool_connections",
            &[("state", "open")]
        ) >= 1.0
    );
    assert!(counter(&samples, "gatehouse_db_pool_max_connections", &[]) >= 1.0);

    // A wrong or missing token is 401 and shows no metric.
    for authorization in [
        None,
        Some("Bearer wrong-token-of-some-length"),
        Some(&format!("Bearer {METRICS_TOKEN}x")[..]),
        Some(&format!("Basic {METRICS_TOKEN}")[..]),
    ] {
        let refused = scrape(&mut scraper, authorization).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        assert_eq!(
            refused
                .headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert!(!refused.body.contains("gatehouse_"), "{}", refused.body);
    }
}

#[tokio::test]
async fn metrics_are_off_without_a_token() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    for authorization in [None, Some("Bearer anything-at-all-0123456789")] {
        let page = scrape(&mut browser, authorization).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{page:?}");
        assert!(!page.body.contains("gatehouse_"), "{}", page.body);
    }
}

#[tokio::test]
async fn each_response_carries_a_request_id_a_trusted_proxy_may_set() {
    let host = TestHost::start(&config_with_token()).await;
    let get_with_id = |browser: &Browser, id: &str| {
        Request::builder()
            .uri("/login")
            .header(header::HOST, &browser.host)
            .header("x-request-id", id)
            .body(Body::empty())
            .expect("request")
    };

    // Made by the host, fresh each time.
    let mut browser = host.browser("localhost");
    let first = request_id(&browser.get("/login").await);
    let second = request_id(&browser.get("/login").await);
    assert!(is_host_request_id(&first), "{first}");
    assert_ne!(first, second);
    // Error responses and unrouted paths carry one too.
    let missing = browser.get("/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(is_host_request_id(&request_id(&missing)));

    // A client's own id is ignored.
    let mut client = host.browser("localhost").from_address("192.0.2.10");
    let page = client.send(get_with_id(&client, "client-chosen-id")).await;
    assert!(is_host_request_id(&request_id(&page)), "{page:?}");

    // A trusted proxy's is kept when well-formed and up to 64 characters.
    let mut proxy = host.browser("localhost").from_address("10.9.8.7");
    let kept = proxy.send(get_with_id(&proxy, "lb-7f3a.2026:req_1")).await;
    assert_eq!(request_id(&kept), "lb-7f3a.2026:req_1");
    let longest = "a".repeat(64);
    let kept = proxy.send(get_with_id(&proxy, &longest)).await;
    assert_eq!(request_id(&kept), longest);
    for refused in ["a".repeat(65), "has space".into(), "semi;colon".into()] {
        let page = proxy.send(get_with_id(&proxy, &refused)).await;
        let id = request_id(&page);
        assert!(is_host_request_id(&id), "{refused:?} gave {id}");
    }
}
