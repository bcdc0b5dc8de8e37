//! Two `gatehouse serve` processes on one PostgreSQL database behind a round-robin TCP proxy
//! on loopback (`gatehouse_tests::proxy`), as two hosts behind a load balancer: a sign-in
//! begun on one host finishes on the other (OIDC with the npm oidc-provider; SAML with the
//! samlify IdP, its POSTed answer and its same-site finish step each on another host than
//! the step before), and under a load of whole OIDC sign-ins one host is killed with
//! `SIGKILL` and started again on its port: no sign-in that completed is lost, the database
//! holds no half-written sign-in, the other host kept signing people in while the first was
//! down, and every failed request is one the proxy gave the killed host. Each test makes its
//! own database on the server `GATEHOUSE_TEST_DATABASE_URL` names; without it the tests say
//! so and pass, unless `GATEHOUSE_REQUIRE_POSTGRES=1` (CI), when they fail. No timed
//! assertions: the load runs until enough sign-ins have completed in each phase.

use std::{
    io::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use gatehouse_tests::{
    oidc::{IdpAgent, OidcProvider, ProviderOptions},
    proxy::{Outcome, Proxy, TAG_HEADER},
    saml::{self, IdpConfig, Peer, SamlIdp},
    served::{ServedProcess, free_port},
};
use reqwest::cookie::{CookieStore as _, Jar};
use serde_json::{Value, json};
use sqlx::{Connection as _, postgres::PgPool};
use url::Url;

const PG_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";
const CLIENT_ID: &str = "gatehouse-two-hosts";
const CLIENT_SECRET: &str = "gatehouse-two-hosts-secret-0123456789-0123456789";
/// The OIDC IdP instance and the SAML one.
const OIDC_IDP: &str = "corp";
const SAML_IDP: &str = "uni";
/// Backend indexes in the proxy.
const A: usize = 0;
const B: usize = 1;

/// Writes straight to the process's stderr (the harness does not capture it), so notices and
/// figures show in a plain `cargo test` run.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

// ---------------------------------------------------------------------------------------------
// A database of its own on the test PostgreSQL server

struct Database {
    server_url: String,
    name: String,
    /// The URL the hosts use.
    url: String,
    /// The test's own connections, to read what the hosts wrote.
    pool: PgPool,
}

/// A fresh database for `test`, or `None` (after saying so) without a PostgreSQL server;
/// fails instead under `GATEHOUSE_REQUIRE_POSTGRES=1`.
async fn fresh_database(test: &str) -> Option<Database> {
    let Ok(server_url) = std::env::var(PG_ENV) else {
        say(&format!(
            "two_hosts::{test}: NOT RUN ({PG_ENV} is not set; two hosts need one PostgreSQL)"
        ));
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "GATEHOUSE_REQUIRE_POSTGRES=1 but {PG_ENV} is not set"
        );
        return None;
    };
    let name = format!("gh_two_hosts_{test}_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&server_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {PG_ENV}: {e}"));
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    admin.close().await.expect("close the admin connection");
    let mut url = Url::parse(&server_url).unwrap_or_else(|e| panic!("{PG_ENV}: {e}"));
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect to the test database");
    Some(Database {
        server_url,
        name,
        url,
        pool,
    })
}

impl Database {
    /// Drops the database (the hosts must be gone).
    async fn finish(self) {
        self.pool.close().await;
        let mut admin = sqlx::PgConnection::connect(&self.server_url)
            .await
            .expect("reconnect to the server");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The hosts, their proxy and their IdPs

/// An OIDC account's claims: everything the provisioning maps, derived from its id, so the
/// database can be checked against it in SQL.
fn account_claims(id: &str) -> Value {
    json!({
        "email": format!("{id}@example.test"),
        "email_verified": true,
        "given_name": "User",
        "family_name": id,
        "name": format!("User {id}"),
        "department": format!("dept-{id}"),
    })
}

/// The provider, with `accounts` and the host's client registered for the proxy's origin
/// (the one origin browsers see).
fn provider(origin: &str, accounts: &[String]) -> OidcProvider {
    let accounts = accounts
        .iter()
        .map(|id| (id.clone(), account_claims(id)))
        .collect();
    OidcProvider::start(ProviderOptions {
        extra_openid_claims: vec!["department".into()],
        clients: vec![json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{origin}/sso/{OIDC_IDP}/callback")],
            "post_logout_redirect_uris": [format!("{origin}/sso/{OIDC_IDP}/logout")],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        })],
        accounts,
        ..ProviderOptions::default()
    })
}

/// Both hosts' configuration (placeholders left for `ServedProcess::start_on`): the proxy's
/// origin as the public URL, the OIDC IdP, and the SAML IdP when its metadata is given. The
/// start limit is raised: every request of the load comes from 127.0.0.1.
fn host_template(origin: &str, issuer: &str, saml_metadata: Option<&std::path::Path>) -> String {
    let saml_plugin = if saml_metadata.is_some() {
        "[[plugin]]\nid = \"saml\"\nlibrary = \"gatehouse_saml\"\n"
    } else {
        ""
    };
    let saml_idp = saml_metadata
        .map(|metadata| saml::idp(&IdpConfig::new(SAML_IDP, metadata)))
        .unwrap_or_default();
    format!(
        r#"
[host]
public_url = "{origin}"
listen = "127.0.0.1:{{port}}"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"
http_timeout_seconds = 30
plugin_call_timeout_seconds = 60

[host.limits]
starts_per_address_per_minute = 1000000

[[domain]]
name = "root"
hosts = ["localhost"]

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

{saml_plugin}
[[field]]
name = "department"

[[idp]]
id = "{OIDC_IDP}"
domain = "root"
plugin = "oidc"
name = "Sign in with Corp"
username_attribute = "sub"

[idp.provisioning]
create_users = true
update_existing = true
lock_fields = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email", department = "department" }}

[idp.settings]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
use_userinfo = true
{saml_idp}
"#
    )
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A browser's HTTP client: the given cookie jar (none: a cross-site POST, which carries no
/// `SameSite=Lax` cookie), `localhost` on 127.0.0.1, no redirects followed, and a fresh
/// connection for every request, so each request is one connection at the proxy.
fn http_client(jar: Option<Arc<Jar>>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", loopback(0))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60));
    if let Some(jar) = jar {
        builder = builder.cookie_provider(jar);
    }
    builder.build().expect("build the HTTP client")
}

/// An answer as a browser sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// `Location`, made absolute.
    location: Option<String>,
    body: String,
}

/// Sends `request` tagged `tag` (for the proxy's record).
async fn send(request: reqwest::RequestBuilder, tag: &str) -> Result<Answer, String> {
    let response = request
        .header(TAG_HEADER, tag)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| response.url().join(value).ok())
        .map(String::from);
    let body = response.text().await.map_err(|e| format!("{e:?}"))?;
    Ok(Answer {
        status,
        location,
        body,
    })
}

/// The browser's session cookie on `origin`.
fn session_token(jar: &Jar, origin: &str) -> Option<String> {
    let url = Url::parse(origin).expect("origin");
    let cookies = jar.cookies(&url)?;
    cookies
        .to_str()
        .ok()?
        .split("; ")
        .find_map(|pair| pair.strip_prefix("gh_session="))
        .map(str::to_owned)
}

/// The backend the proxy gave the request tagged `tag`, failing the test if it has no record
/// of it or the connection failed. Call after [`Proxy::settle`].
fn served_by(proxy: &Proxy, tag: &str) -> usize {
    let connection = proxy
        .connection_tagged(tag)
        .unwrap_or_else(|| panic!("the proxy has no connection tagged {tag}"));
    assert!(
        matches!(connection.outcome, Outcome::Served { .. }),
        "{connection:?}"
    );
    connection.backend
}

// ---------------------------------------------------------------------------------------------
// A sign-in begun on one host finishes on the other

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_begun_on_one_host_finishes_on_the_other() {
    let Some(db) = fresh_database("handover").await else {
        return;
    };
    saml::build_saml_plugin();
    let (port_a, port_b) = (free_port(), free_port());
    let proxy = Proxy::start(vec![loopback(port_a), loopback(port_b)]).await;
    let origin = format!("http://localhost:{}", proxy.port());
    let op = provider(&origin, &["carol".to_owned()]);
    let saml_idp = SamlIdp::start(Peer::Samlify, &saml::alice("Liddell"));
    let dir = tempfile::tempdir().expect("temp dir");
    let metadata = saml_idp.metadata_file(dir.path()).await;
    let template = host_template(&origin, op.issuer(), Some(&metadata));
    let host_a = ServedProcess::start_on("localhost", &template, &db.url, port_a).await;
    let host_b = ServedProcess::start_on("localhost", &template, &db.url, port_b).await;

    // OIDC: /sso/corp/start on A; the callback and /me on B, with the same cookies.
    let jar = Arc::new(Jar::default());
    let http = http_client(Some(jar.clone()));
    proxy.pin(Some(A));
    let start = send(
        http.get(format!(
            "{origin}/sso/{OIDC_IDP}/start?return_to=%2Fwelcome"
        )),
        "oidc/start",
    )
    .await
    .expect("start on A");
    assert_eq!(start.status, 303, "{start:?}\n{}", host_a.log());
    let authorize = Url::parse(start.location.as_deref().expect("to the provider")).expect("URL");
    assert!(authorize.as_str().starts_with(op.issuer()), "{authorize}");
    let callback = IdpAgent::new().authorize(&authorize, "carol").await;
    assert!(
        callback.starts_with(&format!("{origin}/sso/{OIDC_IDP}/callback?")),
        "{callback}"
    );
    proxy.pin(Some(B));
    let done = send(http.get(&callback), "oidc/callback")
        .await
        .expect("callback on B");
    assert_eq!(
        (done.status, done.location.as_deref()),
        (303, Some(format!("{origin}/welcome").as_str())),
        "B did not finish the sign-in A began: {done:?}\nB's log:\n{}\nprovider:\n{}",
        host_b.log(),
        op.log()
    );
    let me = send(http.get(format!("{origin}/me")), "oidc/me")
        .await
        .expect("/me on B");
    assert_eq!(me.status, 200, "{me:?}");
    let me: Value = serde_json::from_str(&me.body).expect("/me is JSON");
    assert_eq!(me["username"], "carol");
    assert_eq!(me["auth_source"], format!("idp:{OIDC_IDP}"));
    proxy.settle().await;
    assert_eq!(
        ["oidc/start", "oidc/callback", "oidc/me"].map(|tag| served_by(&proxy, tag)),
        [A, B, B]
    );
    // The session B wrote is in the shared database, for carol.
    let token = session_token(&jar, &origin).expect("a session cookie");
    let (user_id, idp, subject): (i64, Option<String>, Option<String>) =
        sqlx::query_as("SELECT user_id, idp_id, subject FROM sessions WHERE id_hash = $1")
            .bind(gatehouse::web::http_util::token_hash(&token))
            .fetch_one(&db.pool)
            .await
            .expect("the session row");
    assert_eq!(Some(user_id), me["id"].as_i64());
    assert_eq!(idp.as_deref(), Some(OIDC_IDP));
    assert_eq!(subject.as_deref(), Some("carol"));

    // SAML: the IdP gets the SP metadata the hosts publish (the same on both).
    proxy.pin(None);
    let sp_metadata = send(
        http_client(None).get(format!("{origin}/sso/{SAML_IDP}/metadata")),
        "saml/metadata",
    )
    .await
    .expect("SP metadata");
    assert_eq!(sp_metadata.status, 200, "{sp_metadata:?}");
    saml_idp.set_sp_metadata(&sp_metadata.body).await;
    // Begun on A, answered (the IdP's cross-site POST) on B, finished on B; then begun on B,
    // answered on A, finished on B: each step on another host than the one before it.
    for (round, hosts) in [[A, B, B], [B, A, B]].into_iter().enumerate() {
        let jar = Arc::new(Jar::default());
        let http = http_client(Some(jar.clone()));
        let tag = |step: &str| format!("saml{round}/{step}");
        proxy.pin(Some(hosts[0]));
        let start = send(
            http.get(format!(
                "{origin}/sso/{SAML_IDP}/start?return_to=%2Fcourses"
            )),
            &tag("start"),
        )
        .await
        .expect("SAML start");
        assert_eq!(start.status, 303, "{start:?}");
        let idp_url = Url::parse(start.location.as_deref().expect("to the IdP")).expect("URL");
        let form = saml_idp.sso(&idp_url, saml::ALICE).await;
        assert!(
            form.action
                .starts_with(&format!("{origin}/sso/{SAML_IDP}/callback")),
            "{form:?}"
        );
        proxy.pin(Some(hosts[1]));
        let acs = send(
            http_client(None).post(&form.action).form(&form.fields()),
            &tag("acs"),
        )
        .await
        .expect("the ACS POST");
        let finish = acs.location.clone().unwrap_or_default();
        assert!(
            acs.status == 303 && finish.contains(&format!("/sso/{SAML_IDP}/finish?")),
            "round {round}: {acs:?}\nA:\n{}\nB:\n{}",
            host_a.log(),
            host_b.log()
        );
        proxy.pin(Some(hosts[2]));
        let done = send(http.get(&finish), &tag("finish"))
            .await
            .expect("the finish step");
        assert_eq!(
            (done.status, done.location.as_deref()),
            (303, Some(format!("{origin}/courses").as_str())),
            "round {round}: {done:?}"
        );
        let me = send(http.get(format!("{origin}/me")), &tag("me"))
            .await
            .expect("/me");
        assert_eq!(me.status, 200, "{me:?}");
        let me: Value = serde_json::from_str(&me.body).expect("/me is JSON");
        assert_eq!(me["username"], saml::ALICE);
        proxy.settle().await;
        assert_eq!(
            ["start", "acs", "finish"].map(|step| served_by(&proxy, &tag(step))),
            hosts
        );
        assert!(session_token(&jar, &origin).is_some());
    }
    // One user each, and no sign-in left pending.
    let users: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE auth_source <> 'local' ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .expect("users");
    assert_eq!(users, [saml::ALICE, "carol"]);
    assert_eq!(db.count("SELECT count(*) FROM pending_logins").await, 0);

    drop((host_a, host_b));
    db.finish().await;
}

// ---------------------------------------------------------------------------------------------
// A host killed under load

/// Concurrent sign-in loops, each its own browser per sign-in.
const LOOPS: usize = 8;
/// Accounts per loop at the provider (a loop's later sign-ins match the users its first ones
/// created).
const ACCOUNTS_PER_LOOP: usize = 40;
/// Sign-ins to complete before the kill, while A is down, and after A is back.
const BEFORE: usize = 16;
const WHILE_DOWN: usize = 8;
const AFTER: usize = 16;
/// How long the test waits for one phase's sign-ins before failing (a hang guard; no
/// assertion is about speed).
const PHASE_GUARD: Duration = Duration::from_secs(600);

/// Both hosts up, A being killed, A dead, A starting again, A back. The moments of the kill
/// and of the restart are phases of their own, so a sign-in counted as "while A was down"
/// began after A was reaped and ended before it could answer again: regression for a run
/// where a sign-in that began between the phase change and the SIGKILL was served by A.
const UP: u8 = 0;
const A_DYING: u8 = 1;
const A_DOWN: u8 = 2;
const A_RESTARTING: u8 = 3;
const A_BACK: u8 = 4;

/// One request of a sign-in.
#[derive(Debug, Clone)]
struct Sent {
    tag: String,
    /// The phase when it was sent and when its answer (or failure) came.
    phases: (u8, u8),
    /// Why it failed (no answer, or not the answer a sign-in gets), if it did.
    failure: Option<String>,
}

/// One sign-in attempt: start, provider, callback, `/me`; it stops at the first failure.
#[derive(Debug)]
struct Attempt {
    account: String,
    phases: (u8, u8),
    sent: Vec<Sent>,
    /// The session token and user id, when the sign-in reached `/me` as its user.
    completed: Option<(String, i64)>,
}

struct Load {
    origin: String,
    issuer: String,
    phase: AtomicU8,
    stop: AtomicBool,
    attempts: Mutex<Vec<Attempt>>,
}

impl Load {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    /// Sign-ins that completed within `phase` (begun and ended in it).
    fn completed_in(&self, phase: u8) -> usize {
        self.attempts
            .lock()
            .expect("attempts")
            .iter()
            .filter(|a| a.completed.is_some() && a.phases == (phase, phase))
            .count()
    }

    /// Waits until `wanted` sign-ins completed within `phase`.
    async fn wait_for(&self, phase: u8, wanted: usize) {
        let started = Instant::now();
        while self.completed_in(phase) < wanted {
            assert!(
                started.elapsed() < PHASE_GUARD,
                "only {} of {wanted} sign-ins completed in phase {phase}; attempts: {:#?}",
                self.completed_in(phase),
                self.attempts
                    .lock()
                    .expect("attempts")
                    .iter()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one request of `attempt`; `expected` judges its answer. `None` when it failed.
    async fn step(
        &self,
        attempt: &mut Attempt,
        tag: String,
        request: reqwest::RequestBuilder,
        expected: impl FnOnce(&Answer) -> bool,
    ) -> Option<Answer> {
        let sent_in = self.phase();
        let answer = send(request, &tag).await;
        let failure = match &answer {
            Err(error) => Some(error.clone()),
            Ok(answer) if !expected(answer) => Some(format!("unexpected answer {answer:?}")),
            Ok(_) => None,
        };
        attempt.sent.push(Sent {
            tag,
            phases: (sent_in, self.phase()),
            failure: failure.clone(),
        });
        match failure {
            None => answer.ok(),
            Some(_) => None,
        }
    }

    /// One whole sign-in as `account` in a new browser.
    async fn sign_in(&self, label: &str, account: String) -> Attempt {
        let mut attempt = Attempt {
            account,
            phases: (self.phase(), self.phase()),
            sent: Vec::new(),
            completed: None,
        };
        let jar = Arc::new(Jar::default());
        let http = http_client(Some(jar.clone()));
        let origin = &self.origin;
        if let Some(start) = self
            .step(
                &mut attempt,
                format!("{label}/start"),
                http.get(format!(
                    "{origin}/sso/{OIDC_IDP}/start?return_to=%2Fwelcome"
                )),
                |a| {
                    a.status == 303
                        && a.location
                            .as_deref()
                            .is_some_and(|l| l.starts_with(&self.issuer))
                },
            )
            .await
        {
            let authorize = Url::parse(start.location.as_deref().unwrap_or_default())
                .expect("the authorization URL");
            let callback = IdpAgent::new()
                .authorize(&authorize, &attempt.account)
                .await;
            let welcome = format!("{origin}/welcome");
            let signed_in = self
                .step(
                    &mut attempt,
                    format!("{label}/callback"),
                    http.get(&callback),
                    |a| a.status == 303 && a.location.as_deref() == Some(welcome.as_str()),
                )
                .await
                .is_some();
            let account = attempt.account.clone();
            let me = if signed_in {
                self.step(
                    &mut attempt,
                    format!("{label}/me"),
                    http.get(format!("{origin}/me")),
                    |a| {
                        a.status == 200
                            && serde_json::from_str::<Value>(&a.body)
                                .is_ok_and(|me| me["username"] == account.as_str())
                    },
                )
                .await
            } else {
                None
            };
            if let Some(me) = me {
                let id = serde_json::from_str::<Value>(&me.body).expect("JSON")["id"]
                    .as_i64()
                    .expect("/me has the user's id");
                let token = session_token(&jar, origin).expect("a session cookie");
                attempt.completed = Some((token, id));
            }
        }
        attempt.phases.1 = self.phase();
        attempt
    }
}

async fn sign_in_loop(load: Arc<Load>, index: usize) {
    let mut n = 0;
    while !load.stop.load(Ordering::SeqCst) {
        let account = format!("u{index}-{}", n % ACCOUNTS_PER_LOOP);
        let attempt = load.sign_in(&format!("l{index}-n{n}"), account).await;
        load.attempts.lock().expect("attempts").push(attempt);
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_under_load_loses_no_sign_in_and_the_other_keeps_serving() {
    let Some(db) = fresh_database("kill").await else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    let proxy = Proxy::start(vec![loopback(port_a), loopback(port_b)]).await;
    let origin = format!("http://localhost:{}", proxy.port());
    let accounts: Vec<String> = (0..LOOPS)
        .flat_map(|l| (0..ACCOUNTS_PER_LOOP).map(move |k| format!("u{l}-{k}")))
        .collect();
    let op = provider(&origin, &accounts);
    let template = host_template(&origin, op.issuer(), None);
    let mut host_a = ServedProcess::start_on("localhost", &template, &db.url, port_a).await;
    let host_b = ServedProcess::start_on("localhost", &template, &db.url, port_b).await;

    let load = Arc::new(Load {
        origin: origin.clone(),
        issuer: op.issuer().to_owned(),
        phase: AtomicU8::new(UP),
        stop: AtomicBool::new(false),
        attempts: Mutex::new(Vec::new()),
    });
    let loops: Vec<_> = (0..LOOPS)
        .map(|index| tokio::spawn(sign_in_loop(load.clone(), index)))
        .collect();

    load.wait_for(UP, BEFORE).await;
    // Requests in flight at A now are cut; those the proxy gives A until it is back fail to
    // connect.
    load.phase.store(A_DYING, Ordering::SeqCst);
    host_a.kill();
    load.phase.store(A_DOWN, Ordering::SeqCst);
    load.wait_for(A_DOWN, WHILE_DOWN).await;
    let log_a = host_a.log();
    drop(host_a);
    load.phase.store(A_RESTARTING, Ordering::SeqCst);
    let host_a = ServedProcess::start_on("localhost", &template, &db.url, port_a).await;
    load.phase.store(A_BACK, Ordering::SeqCst);
    load.wait_for(A_BACK, AFTER).await;
    load.stop.store(true, Ordering::SeqCst);
    for task in loops {
        task.await.expect("a sign-in loop panicked");
    }
    let attempts = std::mem::take(&mut *load.attempts.lock().expect("attempts"));
    proxy.settle().await;
    let connections = proxy.connections();

    // Figures.
    let completed: Vec<&Attempt> = attempts.iter().filter(|a| a.completed.is_some()).collect();
    let failed: Vec<(&Attempt, &Sent)> = attempts
        .iter()
        .flat_map(|a| a.sent.iter().map(move |s| (a, s)))
        .filter(|(_, s)| s.failure.is_some())
        .collect();
    let completed_within = |phase: u8| {
        completed
            .iter()
            .filter(|a| a.phases == (phase, phase))
            .count()
    };
    let per_backend = |backend: usize, wanted: fn(&Outcome) -> bool| {
        connections
            .iter()
            .filter(|c| c.backend == backend && wanted(&c.outcome))
            .count()
    };
    say(&format!(
        "two_hosts: {} sign-ins attempted, {} completed ({} before the kill, {} while A was \
         down, {} after A came back, the rest across a change); {} requests failed; proxy \
         connections A: {} served, {} refused, {} cut; B: {} served, {} refused, {} cut",
        attempts.len(),
        completed.len(),
        completed_within(UP),
        completed_within(A_DOWN),
        completed_within(A_BACK),
        failed.len(),
        per_backend(A, |o| matches!(o, Outcome::Served { .. })),
        per_backend(A, |o| matches!(o, Outcome::ConnectFailed(_))),
        per_backend(A, |o| matches!(o, Outcome::Cut { .. })),
        per_backend(B, |o| matches!(o, Outcome::Served { .. })),
        per_backend(B, |o| matches!(o, Outcome::ConnectFailed(_))),
        per_backend(B, |o| matches!(o, Outcome::Cut { .. })),
    ));

    // Every failed request is one the proxy gave A and A refused or cut, sent before A was
    // back and ended after it was killed.
    for (attempt, sent) in &failed {
        let connection = proxy.connection_tagged(&sent.tag).unwrap_or_else(|| {
            panic!("a failed request the proxy never saw: {sent:?} of {attempt:?}")
        });
        assert!(
            connection.backend == A && connection.outcome.is_failure(),
            "a request failed that the killed host was not handling: {sent:?} on {connection:?}\
             \nA's log before the kill:\n{log_a}\nB's log:\n{}",
            host_b.log()
        );
        assert!(
            sent.phases.0 != A_BACK && sent.phases.1 != UP,
            "a request failed outside A's outage: {sent:?} on {connection:?}"
        );
    }
    assert!(
        !failed.is_empty(),
        "no request failed, so the proxy never gave the killed host one"
    );
    // B kept signing people in while A was down: those sign-ins were served by B alone.
    let while_down: Vec<&&Attempt> = completed
        .iter()
        .filter(|a| a.phases == (A_DOWN, A_DOWN))
        .collect();
    assert!(while_down.len() >= WHILE_DOWN);
    for attempt in &while_down {
        for sent in &attempt.sent {
            assert_eq!(served_by(&proxy, &sent.tag), B, "{attempt:?}");
        }
    }
    // A came back and signs people in again.
    assert!(
        completed.iter().any(|a| a.phases == (A_BACK, A_BACK)
            && a.sent.iter().any(|s| served_by(&proxy, &s.tag) == A)),
        "no sign-in after the restart used A"
    );

    // No completed sign-in is lost: each one's session is in the database, for its user, with
    // the sign-in's audit row.
    for attempt in &completed {
        let (token, user_id) = attempt.completed.as_ref().expect("completed");
        let row: Option<(i64, Option<String>, Option<String>, String)> = sqlx::query_as(
            "SELECT s.user_id, s.idp_id, s.subject, u.username \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(gatehouse::web::http_util::token_hash(token))
        .fetch_optional(&db.pool)
        .await
        .expect("read a session");
        assert_eq!(
            row,
            Some((
                *user_id,
                Some(OIDC_IDP.to_owned()),
                Some(attempt.account.clone()),
                attempt.account.clone()
            )),
            "the session of a completed sign-in: {attempt:?}"
        );
        let audited: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log \
             WHERE method = 'sso' AND outcome = 'success' AND idp_id = $1 AND user_id = $2",
        )
        .bind(OIDC_IDP)
        .bind(*user_id)
        .fetch_one(&db.pool)
        .await
        .expect("read the audit log");
        assert!(audited >= 1, "no audit row for {attempt:?}");
    }

    // Nothing half-written, wherever the kill fell: no session without its user; every
    // session of the IdP is its user's, by subject; every user the IdP created has all its
    // values as the provider stated them, each with its provenance, and its profile field.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM sessions s LEFT JOIN users u ON u.id = s.user_id \
             WHERE u.id IS NULL"
        )
        .await,
        0,
        "sessions without their user"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.idp_id = 'corp' AND (s.subject IS DISTINCT FROM u.username \
               OR u.auth_source <> 'idp:corp' OR s.domain <> 'root')"
        )
        .await,
        0,
        "sessions that are not their user's"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM users u WHERE u.auth_source = 'idp:corp' AND ( \
               u.email <> u.username || '@example.test' OR u.firstname <> 'User' \
               OR u.lastname <> u.username \
               OR (SELECT count(*) FROM field_provenance p WHERE p.user_id = u.id \
                   AND p.idp_id = 'corp' \
                   AND p.field IN ('username', 'email', 'firstname', 'lastname', 'department')) \
                  <> 5 \
               OR NOT EXISTS (SELECT 1 FROM user_fields f WHERE f.user_id = u.id \
                   AND f.name = 'department' AND f.value = 'dept-' || u.username))"
        )
        .await,
        0,
        "users written in part"
    );
    let users = db
        .count("SELECT count(*) FROM users WHERE auth_source = 'idp:corp'")
        .await;
    assert!(users as usize <= accounts.len());
    let sessions = db
        .count("SELECT count(*) FROM sessions WHERE idp_id = 'corp'")
        .await;
    assert!(sessions as usize >= completed.len());
    // A sign-in writes its account, session and audit row in one transaction, so a kill
    // leaves all of them or none: as many success rows as sessions, and no account the IdP
    // created without the session of the sign-in that created it.
    let audited = db
        .count("SELECT count(*) FROM audit_log WHERE idp_id = 'corp' AND outcome = 'success'")
        .await;
    let sessionless = db
        .count(
            "SELECT count(*) FROM users u WHERE u.auth_source = 'idp:corp' \
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)",
        )
        .await;
    say(&format!(
        "two_hosts: {users} users, {sessions} sessions and {audited} success audit rows \
         written; {sessionless} users without a session"
    ));
    assert_eq!(audited, sessions, "sessions and their audit rows");
    assert_eq!(
        sessionless, 0,
        "users created without their sign-in's session"
    );

    drop((host_a, host_b));
    db.finish().await;
}
