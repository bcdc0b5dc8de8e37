//! `gatehouse connect add-client` ("Add client", protocol §2 steps 3–6): checks the
//! options, makes the client's idnumber and both secrets, stores the client with its options
//! (status 0, API version 1), and POSTs the registration to the client's `sep_setup.php`,
//! whose nested `update_api_version` call-back reaches the serving process (`sep.php`). Any
//! failure deletes the client row and its link rows again: a failed registration leaves no
//! client. Not the client's side (`plugins/connect`), and not `sep.php`.

use gatehouse_connect_wire::{
    JSend, SetupRequest, Token, TokenError,
    sep::{CLIENT_SEP_SETUP_PATH, endpoint_url},
};
use gatehouse_store::{
    AuditEvent, ConnectClient, ConnectClientOptions, FrameworkKind, NewConnectClient, StoreError,
};
use thiserror::Error;

use crate::{clock::Randomness, state::AppState};

use super::client_calls::{self, CALL_TIMEOUT, CallFailure};

/// What the administrator asked for: the "Add client" form of `001_*`, as options.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AddClient {
    /// "Client name".
    pub name: String,
    /// "Client URL" (the client's `wwwroot`).
    pub url: String,
    /// "Client setup secret", as the client's admin handed it over.
    pub setup_secret: String,
    /// "Restrict to audience": an audience idnumber.
    pub restrict_audience: Option<String>,
    /// Audiences shared with the client (idnumbers).
    pub audiences: Vec<String>,
    /// Courses shared with the client (shortnames).
    pub courses: Vec<String>,
    pub sync_profile_fields: bool,
    pub sync_jobs: bool,
    /// Position frameworks shared (idnumbers).
    pub position_frameworks: Vec<String>,
    /// Organisation frameworks shared (idnumbers).
    pub organisation_frameworks: Vec<String>,
    /// "Automatically add new courses".
    pub add_new_courses: bool,
    /// "Automatically add new audiences".
    pub add_new_audiences: bool,
    /// "Allow requests to plugin services".
    pub allow_plugin_services: bool,
    pub comment: String,
}

impl std::fmt::Debug for AddClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddClient")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A client registered and stored, as it is now (its API version and client type set by
/// its `update_api_version` call-back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub client: ConnectClient,
}

/// Why no client was registered. Every variant leaves no client row behind.
#[derive(Debug, Error)]
pub enum AddClientError {
    #[error(
        "the Connect server role is off on this host: set `enabled = true` in [connect_server] and restart `gatehouse serve`"
    )]
    ServerDisabled,
    #[error("--name must not be empty")]
    EmptyName,
    #[error("--url `{url}` is not a client URL: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error("--url {url} is this server's own URL; a client is another site")]
    OwnUrl { url: String },
    #[error("--url {url} already belongs to the active client `{name}`")]
    DuplicateClient { url: String, name: String },
    #[error(
        "--setup-secret is not a setup secret ({error}); use the 40 characters the client's `gatehouse connect new-server` (or Totara's \"Connect to new server\") printed"
    )]
    BadSetupSecret { error: TokenError },
    #[error("--{option} {value}: there is no {what} with that {key}")]
    UnknownRecord {
        option: &'static str,
        value: String,
        what: &'static str,
        key: &'static str,
    },
    #[error("the client refused: {0}")]
    Refused(String),
    #[error("the client could not be reached: {0}")]
    Unreachable(String),
    #[error("the client's answer is not a registration answer: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A client URL as stored: an absolute http(s) URL with a host, no query, fragment or
/// credentials, and no trailing `/` (the original `rtrim`s it).
pub fn normalize_client_url(text: &str) -> Result<String, AddClientError> {
    let bad = |why| AddClientError::BadUrl {
        url: text.to_owned(),
        why,
    };
    let trimmed = text.trim();
    let url = url::Url::parse(trimmed).map_err(|_| bad("it does not parse as a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https URLs are allowed"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a site URL has no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a site URL carries no user name or password"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Whether two site URLs name the same site: scheme, host and port (default ports
/// included) and path, compared as URLs.
pub fn same_site(a: &str, b: &str) -> bool {
    let parse = |text: &str| url::Url::parse(text.trim()).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        }
        _ => false,
    }
}

/// This host's own site URLs: the public URL and the origin of every configured host of
/// every domain, as the host serves them (the public URL's scheme, and its port for hosts
/// written without one). A client is never one of them.
pub fn own_urls(state: &AppState) -> Vec<String> {
    let public_url = state.settings().public_url.clone();
    let mut urls = vec![public_url.clone()];
    let Ok(public) = url::Url::parse(&public_url) else {
        return urls;
    };
    let site = state.site();
    for domain in site.resolution().domains() {
        for host in &domain.hosts {
            let has_port = match host.rfind(']') {
                Some(bracket) => host[bracket..].contains(':'),
                None => host.contains(':'),
            };
            urls.push(match public.port() {
                Some(port) if !has_port => format!("{}://{host}:{port}", public.scheme()),
                _ => format!("{}://{host}", public.scheme()),
            });
        }
    }
    urls
}

/// Three distinct tokens (client idnumber, client secret, server secret) from `random`.
pub fn fresh_tokens(random: &Randomness) -> [Token; 3] {
    loop {
        let tokens = [(); 3].map(|()| fresh_token(random));
        // 160 random bits each: a repeat is as good as impossible, but cheap to rule out.
        if tokens[0] != tokens[1] && tokens[1] != tokens[2] && tokens[0] != tokens[2] {
            return tokens;
        }
    }
}

/// One token (40 lowercase hex) from 20 bytes of `random`.
pub fn fresh_token(random: &Randomness) -> Token {
    let mut bytes = [0u8; 20];
    random.fill(&mut bytes);
    Token::from_random_bytes(&bytes)
}

/// The client's answer to `sep_setup.php`, judged as `util::add_client` judges it (only
/// `success` registers), with the refusal's text for the administrator.
pub fn judge_setup_answer(answer: Result<JSend, CallFailure>) -> Result<(), AddClientError> {
    match answer {
        Ok(JSend::Success { .. }) => Ok(()),
        Ok(JSend::Error { message, .. }) => Err(AddClientError::Refused(message)),
        Ok(JSend::Fail { data }) => Err(AddClientError::Refused(fail_text(&data))),
        Err(CallFailure::Unreachable(why)) => Err(AddClientError::Unreachable(why)),
        Err(failure @ CallFailure::NotOk(_)) => Err(AddClientError::BadAnswer(failure.to_string())),
        Err(CallFailure::NotJSend(error)) => Err(AddClientError::BadAnswer(error.to_string())),
    }
}

/// A `fail` reply's messages, `param: message` each.
fn fail_text(data: &serde_json::Value) -> String {
    match data {
        serde_json::Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(key, value)| match value.as_str() {
                Some(text) => format!("{key}: {text}"),
                None => format!("{key}: {value}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => format!("fail {other}"),
    }
}

/// The options' linked records, each looked up by its key: an unknown one is named with the
/// option that named it, before anything is written.
async fn check_linked_records(state: &AppState, request: &AddClient) -> Result<(), AddClientError> {
    let store = state.store();
    let unknown = |option, value: &str, what, key| AddClientError::UnknownRecord {
        option,
        value: value.to_owned(),
        what,
        key,
    };
    let audiences = request
        .restrict_audience
        .iter()
        .map(|a| ("restrict-audience", a))
        .chain(request.audiences.iter().map(|a| ("audience", a)));
    for (option, idnumber) in audiences {
        if store.audience_id_by_idnumber(idnumber).await?.is_none() {
            return Err(unknown(option, idnumber, "audience", "idnumber"));
        }
    }
    for shortname in &request.courses {
        if store.course_id_by_shortname(shortname).await?.is_none() {
            return Err(unknown("course", shortname, "course", "shortname"));
        }
    }
    let frameworks = request
        .position_frameworks
        .iter()
        .map(|f| {
            (
                FrameworkKind::Position,
                "position-framework",
                "position framework",
                f,
            )
        })
        .chain(request.organisation_frameworks.iter().map(|f| {
            (
                FrameworkKind::Organisation,
                "organisation-framework",
                "organisation framework",
                f,
            )
        }));
    for (kind, option, what, idnumber) in frameworks {
        if store
            .framework_id_by_idnumber(kind, idnumber)
            .await?
            .is_none()
        {
            return Err(unknown(option, idnumber, what, "idnumber"));
        }
    }
    Ok(())
}

/// Everything checked before a row is written: the role is on, a name, a usable URL that is
/// neither this host nor an active client's, a well-formed setup secret, and every linked
/// record. Returns the URL as stored and the setup secret.
async fn check_request(
    state: &AppState,
    request: &AddClient,
) -> Result<(String, Token), AddClientError> {
    if !super::server_enabled(state) {
        return Err(AddClientError::ServerDisabled);
    }
    if request.name.trim().is_empty() {
        return Err(AddClientError::EmptyName);
    }
    let url = normalize_client_url(&request.url)?;
    if own_urls(state).iter().any(|own| same_site(own, &url)) {
        return Err(AddClientError::OwnUrl { url });
    }
    if let Some(active) = state
        .store()
        .connect_clients()
        .await?
        .into_iter()
        .find(|client| client.active && same_site(&client.client_url, &url))
    {
        return Err(AddClientError::DuplicateClient {
            url,
            name: active.client_name,
        });
    }
    let setup_secret = Token::parse(request.setup_secret.trim())
        .map_err(|error| AddClientError::BadSetupSecret { error })?;
    check_linked_records(state, request).await?;
    Ok((url, setup_secret))
}

/// `gatehouse connect add-client`: registers the client, or leaves no row and says why.
/// `server_name` is what the client shows as the server's name (`servername`).
pub async fn add_client(
    state: &AppState,
    request: &AddClient,
    server_name: &str,
) -> Result<Registered, AddClientError> {
    let (url, setup_secret) = check_request(state, request).await?;
    let store = state.store();
    let server_idnumber = Token::parse(
        &store
            .connect_server_idnumber(fresh_token(state.random()).as_str())
            .await?,
    )
    .map_err(|error| StoreError::Corrupt(format!("the stored Connect server idnumber: {error}")))?;
    let [client_idnumber, client_secret, server_secret] = fresh_tokens(state.random());
    let new = NewConnectClient {
        client_idnumber: client_idnumber.as_str().to_owned(),
        client_secret: client_secret.as_str().to_owned(),
        server_secret: server_secret.as_str().to_owned(),
        client_url: url.clone(),
        client_name: request.name.trim().to_owned(),
        client_comment: request.comment.clone(),
        options: ConnectClientOptions {
            restrict_audience: request.restrict_audience.clone(),
            audiences: request.audiences.clone(),
            courses: request.courses.clone(),
            position_frameworks: request.position_frameworks.clone(),
            organisation_frameworks: request.organisation_frameworks.clone(),
            sync_profile_fields: request.sync_profile_fields,
            sync_jobs: request.sync_jobs,
            add_new_audiences: request.add_new_audiences,
            add_new_courses: request.add_new_courses,
            allow_plugin_services: request.allow_plugin_services,
        },
    };
    let id = store
        .insert_connect_client(&new, state.now())
        .await
        .map_err(|error| match error {
            StoreError::DuplicateConnectClient(url) => AddClientError::DuplicateClient {
                url,
                name: "(registered meanwhile)".into(),
            },
            other => AddClientError::Store(other),
        })?;
    let setup = SetupRequest::new(
        setup_secret,
        server_idnumber,
        server_secret,
        &state.settings().public_url,
        server_name,
        client_idnumber.clone(),
        client_secret,
    );
    let answer = client_calls::post_form(
        state,
        &url,
        &endpoint_url(&url, CLIENT_SEP_SETUP_PATH),
        &setup.to_form(),
        CALL_TIMEOUT,
    )
    .await;
    let judged = judge_setup_answer(answer);
    let registered = match judged {
        Ok(()) => store
            .connect_client_by_idnumber(client_idnumber.as_str())
            .await
            .map_err(AddClientError::from),
        Err(refused) => Err(refused),
    };
    let outcome = match registered {
        Ok(Some(client)) => Ok(Registered { client }),
        Ok(None) => Err(AddClientError::Store(StoreError::NotFound(
            "the client row vanished during its registration".into(),
        ))),
        Err(error) => Err(error),
    };
    if outcome.is_err() {
        // No leftovers: the row and (by cascade) its link rows go.
        store.delete_connect_client_row(id).await?;
    }
    audit(state, &url, &request.name, &outcome).await?;
    outcome
}

/// One audit row per registration attempt that reached the client.
async fn audit(
    state: &AppState,
    url: &str,
    name: &str,
    outcome: &Result<Registered, AddClientError>,
) -> Result<(), StoreError> {
    let (result, reason) = match outcome {
        Ok(registered) => (
            "success",
            format!(
                "client `{name}` ({url}) registered, API version {}",
                registered.client.api_version
            ),
        ),
        Err(error) => ("refused", format!("client `{name}` ({url}): {error}")),
    };
    state
        .store()
        .audit(&AuditEvent {
            at: state.now(),
            domain: String::new(),
            idp_id: None,
            user_id: None,
            username: String::new(),
            method: "connect-add-client".into(),
            outcome: result.into(),
            reason,
            ip: String::new(),
        })
        .await
}

/// The server's name as clients show it (`servername`; the original sends `$SITE->fullname`):
/// Gatehouse has no site name, so the public URL's host (and port).
pub fn server_name(config: &gatehouse_config::Config) -> String {
    let url = &config.host.public_url;
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => url.as_str().trim_end_matches('/').to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_are_http_sites_stored_without_a_trailing_slash() {
        assert_eq!(
            normalize_client_url(" https://Learn.Example.test/ ").unwrap(),
            "https://learn.example.test"
        );
        assert_eq!(
            normalize_client_url("http://localhost:8081/totara/").unwrap(),
            "http://localhost:8081/totara"
        );
        for bad in [
            "ftp://learn.test",
            "learn.test",
            "https://learn.test/?x=1",
            "https://learn.test/#top",
            "https://user:pw@learn.test",
            "",
        ] {
            assert!(
                matches!(
                    normalize_client_url(bad),
                    Err(AddClientError::BadUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_same_site_ignores_case_default_ports_and_trailing_slashes() {
        assert!(same_site("http://127.0.0.1:8080/", "http://127.0.0.1:8080"));
        assert!(same_site("https://HQ.test", "https://hq.test:443/"));
        assert!(!same_site("http://127.0.0.1:8080", "http://127.0.0.1:8081"));
        assert!(!same_site("http://hq.test", "https://hq.test"));
        assert!(!same_site("https://hq.test/a", "https://hq.test/b"));
        assert!(!same_site("not a url", "not a url"));
    }

    #[test]
    fn only_a_success_registers_and_refusals_read_plainly() {
        assert!(judge_setup_answer(Ok(JSend::success_empty())).is_ok());
        let refused =
            judge_setup_answer(Ok(JSend::error("invalid setup secret"))).expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "the client refused: invalid setup secret"
        );
        let failed =
            judge_setup_answer(Ok(JSend::fail("apiversion", "unsupported"))).expect_err("refused");
        assert_eq!(
            failed.to_string(),
            "the client refused: apiversion: unsupported"
        );
        assert!(matches!(
            judge_setup_answer(Err(CallFailure::Unreachable("could not connect".into()))),
            Err(AddClientError::Unreachable(_))
        ));
        assert!(matches!(
            judge_setup_answer(Err(CallFailure::NotOk(404))),
            Err(AddClientError::BadAnswer(_))
        ));
    }

    #[test]
    fn fresh_tokens_are_distinct_lowercase_hex() {
        let random = Randomness::system();
        let [a, b, c] = fresh_tokens(&random);
        for token in [&a, &b, &c] {
            assert!(Token::parse(token.as_str()).is_ok());
        }
        assert!(a != b && b != c && a != c);
    }
}
