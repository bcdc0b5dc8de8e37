//! `GET /totara/connect/sso_request.php` (protocol §4.1 step 3, §8.4): where a Connect
//! client sends the browser to sign in. The client must be known and active (else a 404 page
//! with the original's raw identifier); a visitor who is not signed in goes to this domain's
//! login and comes back here; the request token is checked back-channel with the client
//! (`validate_sso_request_token`); a restricted client admits only its audience's members;
//! then an SSO token bound to this Gatehouse session goes back to the client's
//! `sso_finish.php`. `action=cancel` shows a confirmation whose POST (with the host's CSRF
//! token, the original's sesskey) returns `result=cancel`. Tokens are never logged.

use std::collections::HashMap;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use gatehouse_connect_wire::{
    ClientCall, JSend, Token,
    sep::{CLIENT_SSO_FINISH_PATH, SERVER_SSO_REQUEST_PATH, endpoint_url},
    token::clean_alphanum,
};
use gatehouse_store::{AuditEvent, ConnectClient};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use serde::Deserialize;

use crate::{
    state::AppState,
    web::{
        AppError,
        extract::{Domain, Form, Query},
        http_util::{ClientIp, safe_return_to},
        session,
    },
};

use super::{
    client_calls::{self, CALL_TIMEOUT},
    registration::fresh_token,
};

/// The audit log's method for Connect sign-ins at this server.
pub const AUDIT_METHOD: &str = "connect-sso";

/// What the client's browser brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoRequest {
    /// Cleaned to `[A-Za-z0-9]` (Moodle's `PARAM_ALPHANUM`).
    pub client_idnumber: String,
    /// Cleaned likewise; not yet known to be a token.
    pub request_token: String,
    pub cancel: bool,
}

/// Why the request cannot even be answered with a redirect to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswerable {
    /// A required parameter is absent or empty (Moodle's `missingparam`).
    Missing(&'static str),
}

/// Reads the query as `sso_request.php` does: both parameters required, cleaned to
/// `[A-Za-z0-9]`; `action` is `cancel` or ignored.
pub fn read_request(query: &HashMap<String, String>) -> Result<SsoRequest, Unanswerable> {
    let required = |key: &'static str| {
        let cleaned = clean_alphanum(query.get(key).map(String::as_str).unwrap_or_default());
        if cleaned.is_empty() {
            Err(Unanswerable::Missing(key))
        } else {
            Ok(cleaned)
        }
    };
    Ok(SsoRequest {
        client_idnumber: required("clientidnumber")?,
        request_token: required("requesttoken")?,
        cancel: query.get("action").is_some_and(|a| a == "cancel"),
    })
}

/// What the server tells the client at `sso_finish.php`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish<'a> {
    Success { sso_token: &'a Token },
    Cancel,
    Error,
}

/// `<clienturl>/auth/connect/sso_finish.php?clientidnumber=…&requesttoken=…[&ssotoken=…]&result=…`.
pub fn finish_url(
    client_url: &str,
    client_idnumber: &str,
    request_token: &str,
    finish: &Finish<'_>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("clientidnumber", client_idnumber)
        .append_pair("requesttoken", request_token);
    let result = match finish {
        Finish::Success { sso_token } => {
            query.append_pair("ssotoken", sso_token.as_str());
            "success"
        }
        Finish::Cancel => "cancel",
        Finish::Error => "error",
    };
    query.append_pair("result", result);
    format!(
        "{}?{}",
        endpoint_url(client_url, CLIENT_SSO_FINISH_PATH),
        query.finish()
    )
}

/// This page's own path and query, the `return_to` of the login it sends a visitor to.
pub fn return_path(request: &SsoRequest) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("clientidnumber", &request.client_idnumber)
        .append_pair("requesttoken", &request.request_token)
        .finish();
    format!("{SERVER_SSO_REQUEST_PATH}?{query}")
}

/// `/login?return_to=<this page>`.
pub fn login_url(request: &SsoRequest) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &safe_return_to(Some(&return_path(request))))
        .finish();
    format!("/login?{query}")
}

/// The 404 the original shows for its exceptions on this page: the raw string identifier
/// (§8.4: the language file has no text for them).
fn raw_identifier(identifier: &str) -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        format!("totara_connect/{identifier}"),
    )
}

fn see_other(url: &str) -> Response {
    Redirect::to(url).into_response()
}

/// The client a browser names, if the server role is on and the client is active.
async fn active_client(state: &AppState, request: &SsoRequest) -> Result<ConnectClient, AppError> {
    if !super::server_enabled(state) {
        return Err(raw_identifier("errorservernotenabled"));
    }
    match state
        .store()
        .connect_client_by_idnumber(&request.client_idnumber)
        .await?
    {
        Some(client) if client.active => Ok(client),
        _ => Err(raw_identifier("invalidclientidnumber")),
    }
}

/// `GET /totara/connect/sso_request.php`.
pub async fn show(
    State(state): State<AppState>,
    domain: Domain,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let request = read_request(&query).map_err(|Unanswerable::Missing(key)| {
        AppError::bad_request(format!("A required parameter ({key}) was missing"))
    })?;
    let client = active_client(&state, &request).await?;
    if request.cancel {
        return confirm_cancel_page(&state, &headers, &client, &request).await;
    }
    let Some((session, user)) = session::current(&state, &headers).await? else {
        return Ok(see_other(&login_url(&request)));
    };
    let domain = domain.get();
    let audit = |outcome: &str, reason: String| AuditEvent {
        at: state.now(),
        domain: domain.name().to_owned(),
        idp_id: None,
        user_id: Some(user.id),
        username: user.username.clone(),
        method: AUDIT_METHOD.into(),
        outcome: outcome.into(),
        reason,
        ip: ip.clone(),
    };
    let error_url = finish_url(
        &client.client_url,
        &client.client_idnumber,
        &request.request_token,
        &Finish::Error,
    );
    // The back-channel check that this request token is the client's own, and live; then
    // the restricted audience.
    let mut refusal = match Token::parse(&request.request_token) {
        Err(_) => Some("the request token is not 40 lowercase hex characters".to_owned()),
        Ok(token) => validate_request_token(&state, &client, token).await.err(),
    };
    if refusal.is_none()
        && let Some(audience) = client.restrict_audience_id
        && !state.store().is_audience_member(audience, user.id).await?
    {
        refusal = Some("the user is not a member of the client's restricted audience".into());
    }
    if let Some(why) = refusal {
        state
            .store()
            .audit(&audit(
                "refused",
                format!(
                    "client `{}` ({}): {why}",
                    client.client_name, client.client_url
                ),
            ))
            .await?;
        return Ok(see_other(&error_url));
    }
    let sso_token = fresh_token(state.random());
    state
        .store()
        .create_connect_sso_session(
            client.id,
            user.id,
            &session.id_hash,
            sso_token.as_str(),
            state.now(),
        )
        .await?;
    state
        .store()
        .audit(&audit(
            "success",
            format!(
                "signed in to client `{}` ({})",
                client.client_name, client.client_url
            ),
        ))
        .await?;
    Ok(see_other(&finish_url(
        &client.client_url,
        &client.client_idnumber,
        &request.request_token,
        &Finish::Success {
            sso_token: &sso_token,
        },
    )))
}

/// `validate_sso_request_token` at the client: `Ok` only for its `success`.
async fn validate_request_token(
    state: &AppState,
    client: &ConnectClient,
    request_token: Token,
) -> Result<(), String> {
    let (Ok(idnumber), Ok(secret)) = (
        Token::parse(&client.client_idnumber),
        Token::parse(&client.client_secret),
    ) else {
        return Err("the client's stored credentials are malformed".into());
    };
    let call = ClientCall::ValidateSsoRequestToken {
        request_token: Some(request_token),
    };
    match client_calls::call_client(
        state,
        &client.client_url,
        &idnumber,
        &secret,
        &call,
        CALL_TIMEOUT,
    )
    .await
    {
        Ok(JSend::Success { .. }) => Ok(()),
        Ok(JSend::Error { message, .. }) => {
            Err(format!("the client refused the request token: {message}"))
        }
        Ok(JSend::Fail { data }) => Err(format!("the client refused the request token: {data}")),
        Err(failure) => Err(format!(
            "the client could not check the request token: {failure}"
        )),
    }
}

/// The cancel confirmation: a POST form back to this page with the CSRF token.
async fn confirm_cancel_page(
    state: &AppState,
    headers: &HeaderMap,
    client: &ConnectClient,
    request: &SsoRequest,
) -> Result<Response, AppError> {
    let (csrf, set_csrf) = session::csrf_token(state, headers).await?;
    let page = Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cancel sign-in</title></head><body>\
<h1>Return to {name}?</h1><p>You will not be signed in to {name}.</p>\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"clientidnumber\" value=\"{cid}\">\
<input type=\"hidden\" name=\"requesttoken\" value=\"{rt}\">\
<input type=\"hidden\" name=\"action\" value=\"cancel\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">Return to {name}</button></form></body></html>",
        name = text(&client.client_name),
        action = attr(SERVER_SSO_REQUEST_PATH),
        cid = attr(&request.client_idnumber),
        rt = attr(&request.request_token),
        csrf = attr(&csrf),
    ));
    let mut response = page.into_response();
    if let Some(cookie) = set_csrf {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The cancel form's fields.
#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    clientidnumber: String,
    #[serde(default)]
    requesttoken: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /totara/connect/sso_request.php` with `action=cancel` and the CSRF token: back to
/// the client with `result=cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Result<Response, AppError> {
    if !session::csrf_ok(&state, &headers, &form.csrf).await? || form.action != "cancel" {
        return Err(AppError::forbidden(
            "This form has expired. Please go back to the site you came from and try again.",
        )
        .with_detail("CSRF token missing or wrong (or no action=cancel) on POST sso_request.php"));
    }
    let query: HashMap<String, String> = [
        ("clientidnumber".to_owned(), form.clientidnumber),
        ("requesttoken".to_owned(), form.requesttoken),
    ]
    .into();
    let request = read_request(&query).map_err(|Unanswerable::Missing(key)| {
        AppError::bad_request(format!("A required parameter ({key}) was missing"))
    })?;
    let client = active_client(&state, &request).await?;
    Ok(see_other(&finish_url(
        &client.client_url,
        &client.client_idnumber,
        &request.request_token,
        &Finish::Cancel,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_required_and_cleaned_to_alphanumerics() {
        let read = read_request(&query(&[
            ("clientidnumber", "abc-123<script>"),
            ("requesttoken", "ff00 11"),
        ]))
        .expect("read");
        assert_eq!(read.client_idnumber, "abc123script");
        assert_eq!(read.request_token, "ff0011");
        assert!(!read.cancel);
        assert_eq!(
            read_request(&query(&[("requesttoken", "x")])),
            Err(Unanswerable::Missing("clientidnumber"))
        );
        assert_eq!(
            read_request(&query(&[("clientidnumber", "x"), ("requesttoken", "--")])),
            Err(Unanswerable::Missing("requesttoken"))
        );
        let cancel = read_request(&query(&[
            ("clientidnumber", "x"),
            ("requesttoken", "y"),
            ("action", "cancel"),
        ]))
        .expect("read");
        assert!(cancel.cancel);
    }

    #[test]
    fn the_finish_url_carries_the_token_only_on_success() {
        let token = Token::from_random_bytes(&[0xab; 20]);
        assert_eq!(
            finish_url(
                "https://learn.test/",
                "cid",
                "rt",
                &Finish::Success { sso_token: &token }
            ),
            format!(
                "https://learn.test/auth/connect/sso_finish.php?clientidnumber=cid&requesttoken=rt&ssotoken={}&result=success",
                token.as_str()
            )
        );
        assert_eq!(
            finish_url("https://learn.test", "cid", "rt", &Finish::Cancel),
            "https://learn.test/auth/connect/sso_finish.php?clientidnumber=cid&requesttoken=rt&result=cancel"
        );
        assert_eq!(
            finish_url("https://learn.test", "cid", "rt", &Finish::Error),
            "https://learn.test/auth/connect/sso_finish.php?clientidnumber=cid&requesttoken=rt&result=error"
        );
    }

    #[test]
    fn the_login_returns_to_this_same_page() {
        let request = SsoRequest {
            client_idnumber: "cid".into(),
            request_token: "rt".into(),
            cancel: false,
        };
        assert_eq!(
            return_path(&request),
            "/totara/connect/sso_request.php?clientidnumber=cid&requesttoken=rt"
        );
        assert_eq!(
            login_url(&request),
            "/login?return_to=%2Ftotara%2Fconnect%2Fsso_request.php%3Fclientidnumber%3Dcid%26requesttoken%3Drt"
        );
        assert_eq!(
            safe_return_to(Some(&return_path(&request))),
            return_path(&request)
        );
    }
}
