//! The SSO sign-in flow below the routes: [`begin`] asks the IdP's plugin where to send
//! the browser and keeps a pending sign-in (with its [`SignInPurpose`]); [`finish`] takes it
//! back exactly once, checks it, asks the plugin for the identity and ends it as its
//! purpose says: a real sign-in plans, provisions and starts a session
//! ([`Finished::SignedIn`]); a test sign-in plans and saves nothing ([`Finished::Tested`]).
//!
//! It is not a handler and knows no route: callers hand it the IdP instance, the URL the
//! IdP answers at, the browser's headers (cookies), the client address and the answer's
//! query and form pairs, so any inbound route (`/sso/{idp}/callback`, or a fixed path an
//! IdP insists on) finishes a sign-in the same way. Every refusal writes an audit row and
//! nothing else.

mod audit;
mod provision;
mod test_sign_in;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_plugin_api::{BeginRequest, CallbackRequest, LoginStep, StepMethod};
use gatehouse_store::{PendingLogin, SignInPurpose};

use crate::{
    site::{SiteDomain, SiteIdp},
    state::AppState,
};

use super::{
    browser_tokens::Purpose as TokenPurpose,
    error::{AppError, AppResult},
    http_util::{
        LOOP_COOKIE, PENDING_COOKIE, abi_pairs, clear_cookie, cookie, set_cookie, token_hash,
        tokens_match,
    },
    pages, session,
};

use audit::Auditor;
pub use provision::{claims_of, plan_sign_in};
pub use test_sign_in::TestReport;

/// The browser's side of a request, whichever route brought it.
#[derive(Debug, Clone, Copy)]
pub struct BrowserRequest<'a> {
    /// Read for the browser-binding and session cookies (never logged).
    pub headers: &'a HeaderMap,
    /// The client's address, for the audit log.
    pub client_ip: &'a str,
}

/// What a sign-in is begun with.
#[derive(Debug, Clone)]
pub struct Begin {
    /// Where the IdP sends the browser back (the same URL is given to [`finish`]).
    pub callback_url: String,
    /// A same-site path to go to once signed in.
    pub return_to: String,
    pub login_hint: Option<String>,
    pub purpose: SignInPurpose,
}

/// A begun sign-in: the step that sends the browser to the IdP, and the cookies to set
/// (the browser binding, when the browser had none this host issued).
#[derive(Debug)]
pub struct Begun {
    pub step: LoginStep,
    pub cookies: Vec<HeaderValue>,
}

impl IntoResponse for Begun {
    fn into_response(self) -> Response {
        let mut response = match self.step.method {
            StepMethod::Redirect => Redirect::to(&self.step.url).into_response(),
            StepMethod::PostForm => pages::post_form_page(&self.step).into_response(),
        };
        for cookie in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// Begins a sign-in (or a test sign-in) at `idp`: asks the plugin where to send the
/// browser and stores its state as a pending sign-in bound to this browser, until
/// [`finish`].
pub async fn begin(
    state: &AppState,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    begin: Begin,
) -> AppResult<Begun> {
    let idp_id = idp.id().to_owned();
    let state_token = state.token();
    let secure = state.settings().secure_cookies;
    // The host mints every binding: a value it did not issue (planted from a parent
    // domain, say) is never adopted. A binding it issued is kept, so sign-ins begun in
    // two tabs both complete.
    let key = state.browser_key().await?;
    let (binding, set_binding) = match cookie(browser.headers, PENDING_COOKIE, secure) {
        Some(existing) if key.recognises(TokenPurpose::Binding, existing) => {
            (existing.to_owned(), false)
        }
        _ => (key.mint(TokenPurpose::Binding, state.random()), true),
    };
    let request = BeginRequest {
        callback_url: begin.callback_url.into(),
        state_token: state_token.as_str().into(),
        login_hint: begin.login_hint.map(Into::into).into(),
    };
    let begun = state
        .caller()
        .call(idp.instance.clone(), move |host, idp| {
            idp.begin_login(host, request).into_result()
        })
        .await?;

    let now = state.now();
    state
        .store()
        .insert_pending(&PendingLogin {
            token_hash: token_hash(&state_token),
            idp_id,
            plugin_state: begun.state.into_vec(),
            browser_binding_hash: token_hash(&binding),
            return_to: begin.return_to,
            purpose: begin.purpose,
            created_at: now,
            expires_at: now + session::seconds(state.settings().pending_login_lifetime),
        })
        .await?;
    let cookies = if set_binding {
        vec![set_cookie(PENDING_COOKIE, &binding, None, secure)]
    } else {
        Vec::new()
    };
    Ok(Begun {
        step: begun.step,
        cookies,
    })
}

/// The IdP's answer as it reached the host, by whatever route.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The URL the sign-in was begun with ([`Begin::callback_url`]); plugins check it.
    pub callback_url: String,
    pub query: Vec<(String, String)>,
    /// The form fields of a POSTed answer (empty for a GET).
    pub form: Vec<(String, String)>,
}

/// How a finished sign-in ends; the route renders it (or returns it: it is a response).
#[derive(Debug)]
pub enum Finished {
    /// Signed in: go to `return_to` with the session cookie (and the loop count cleared).
    SignedIn(SignedIn),
    /// A test sign-in's report; nothing was saved but the IdP's success history.
    Tested(TestReport),
}

#[derive(Debug)]
pub struct SignedIn {
    pub user_id: i64,
    pub username: String,
    pub return_to: String,
    pub cookies: Vec<HeaderValue>,
}

impl IntoResponse for Finished {
    fn into_response(self) -> Response {
        match self {
            Self::SignedIn(signed_in) => {
                let mut response = Redirect::to(&signed_in.return_to).into_response();
                for cookie in signed_in.cookies {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                response
            }
            Self::Tested(report) => report.into_response(),
        }
    }
}

/// Finishes a sign-in begun by [`begin`]: takes the pending sign-in named by the answer's
/// state parameter (single use), checks it belongs to `idp`, has not expired and comes
/// back in the browser that began it, asks the plugin for the identity, and ends it as
/// the pending sign-in's purpose says (never as the other). Refusals are audited and
/// returned as errors.
pub async fn finish(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    answer: Answer,
) -> AppResult<Finished> {
    let now = state.now();
    let auditor = Auditor {
        state,
        domain: domain.name(),
        idp: idp.id(),
        ip: browser.client_ip,
        at: now,
    };
    let pending = take_pending(state, idp, browser, &answer, &auditor, now).await?;
    // A test sign-in's pending row is bound to this browser; it must still be an
    // administrator's, and that is checked before the plugin is asked anything.
    let tester = match pending.purpose {
        SignInPurpose::SignIn => None,
        SignInPurpose::TestSignIn => match session::administrator(state, browser.headers).await {
            Ok((_, admin)) => Some(admin),
            Err(refusal) => {
                auditor
                    .refused(
                        None,
                        "",
                        "a test sign-in came back to a browser without an administrator's session",
                    )
                    .await?;
                return Err(refusal);
            }
        },
    };
    let request = CallbackRequest {
        callback_url: answer.callback_url.into(),
        query: abi_pairs(answer.query).into(),
        form: abi_pairs(answer.form).into(),
        state: pending.plugin_state.into(),
    };
    let identity = match state
        .caller()
        .call(idp.instance.clone(), move |host, idp| {
            idp.complete_login(host, request).into_result()
        })
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            auditor.failed(&error.to_string()).await?;
            return Err(error.into());
        }
    };

    match tester {
        Some(admin) => {
            let report = test_sign_in::report(state, domain, idp, &identity, &admin, now).await?;
            Ok(Finished::Tested(report))
        }
        None => {
            let user_id = match provision::provision(state, domain, idp, &identity, now).await? {
                Ok(user_id) => user_id,
                Err((username, reason)) => {
                    auditor.refused(None, &username, &reason).await?;
                    return Err(AppError::new(
                        StatusCode::FORBIDDEN,
                        format!("You cannot be signed in: {reason}."),
                    ));
                }
            };
            state.store().record_idp_success(idp.id(), now).await?;
            let session_cookie = session::start(
                state,
                browser.headers,
                domain.name(),
                user_id,
                Some(idp.id().to_owned()),
                Some(identity.subject.to_string()),
                identity.logout_state.into_vec(),
            )
            .await?;
            let username = state
                .store()
                .user_by_id(user_id)
                .await?
                .map(|u| u.username)
                .unwrap_or_default();
            auditor.succeeded(user_id, &username).await?;
            let secure = state.settings().secure_cookies;
            let mut cookies = vec![session_cookie];
            // A completed sign-in ends any redirect-loop count.
            if cookie(browser.headers, LOOP_COOKIE, secure).is_some() {
                cookies.push(clear_cookie(LOOP_COOKIE, secure));
            }
            Ok(Finished::SignedIn(SignedIn {
                user_id,
                username,
                return_to: pending.return_to,
                cookies,
            }))
        }
    }
}

/// The pending sign-in the answer names, taken (deleted) and checked: for `idp`, not
/// expired, back in the browser that began it.
async fn take_pending(
    state: &AppState,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    answer: &Answer,
    auditor: &Auditor<'_>,
    now: i64,
) -> AppResult<PendingLogin> {
    let state_param = &idp.instance.plugin.state_parameter;
    let token = answer
        .form
        .iter()
        .chain(answer.query.iter())
        .find(|(k, _)| k == state_param)
        .map(|(_, v)| v.as_str());
    let Some(token) = token else {
        auditor
            .refused(None, "", "the callback carries no state")
            .await?;
        return Err(AppError::bad_request(
            "The sign-in answer is incomplete. Please start again.",
        ));
    };
    // Taking the pending sign-in deletes it: a replayed callback finds nothing.
    let Some(pending) = state.store().take_pending(&token_hash(token)).await? else {
        auditor
            .refused(None, "", "unknown, tampered or already used state")
            .await?;
        return Err(AppError::bad_request(
            "This sign-in link is not valid or has already been used. Please start again.",
        ));
    };
    if pending.idp_id != idp.id() {
        auditor
            .refused(
                None,
                "",
                &format!("state belongs to IdP `{}`", pending.idp_id),
            )
            .await?;
        return Err(AppError::bad_request(
            "This sign-in answer belongs to another sign-in method. Please start again.",
        ));
    }
    if pending.expires_at <= now {
        auditor
            .refused(None, "", "the pending sign-in expired")
            .await?;
        return Err(AppError::bad_request(
            "The sign-in took too long. Please start again.",
        ));
    }
    let binding_ok = cookie(
        browser.headers,
        PENDING_COOKIE,
        state.settings().secure_cookies,
    )
    .is_some_and(|b| tokens_match(&token_hash(b), &pending.browser_binding_hash));
    if !binding_ok {
        auditor
            .refused(
                None,
                "",
                "callback arrived in a browser other than the one that started",
            )
            .await?;
        return Err(AppError::bad_request(
            "This sign-in was started in another browser. Please start again here.",
        ));
    }
    Ok(pending)
}
