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

mod answered;
mod audit;
mod provision;
mod test_sign_in;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_plugin_api::{BeginRequest, CallbackRequest, Identity, LoginStep, StepMethod};
use gatehouse_store::{PendingLogin, PendingStage, SignInPurpose, User};

use crate::{
    events::Reason,
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
    // 160 bits as 40 lowercase hex: unguessable, and it survives protocols that clean the
    // state parameter to [A-Za-z0-9] and require 40 characters (Totara Connect's
    // `requesttoken`, which its server echoes back to `sso_finish.php`).
    let state_token: String = state
        .random()
        .bytes(20)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
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
            stage: PendingStage::Begun,
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

/// Finishes a sign-in begun by [`begin`] whose answer came back as a same-site request
/// (an OAuth redirect, a GET): takes the pending sign-in named by the answer's state
/// parameter (single use), checks it belongs to `idp`, has not expired and comes back in
/// the browser that began it, asks the plugin for the identity, and ends it as the pending
/// sign-in's purpose says (never as the other). Refusals are audited and returned as errors.
pub async fn finish(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    answer: Answer,
) -> AppResult<Finished> {
    let now = state.now();
    let auditor = auditor(state, domain, idp, browser, now);
    let Some(token) = state_token(idp, &answer) else {
        auditor
            .refused(
                None,
                "",
                "the callback carries no state",
                Reason::MISSING_STATE,
            )
            .await?;
        return Err(AppError::bad_request(
            "The sign-in answer is incomplete. Please start again.",
        ));
    };
    let pending = take_pending(state, idp, token, PendingStage::Begun, &auditor, now).await?;
    check_binding(state, browser, &pending, &auditor).await?;
    // A test sign-in's pending row is bound to this browser; it must still be an
    // administrator's, and that is checked before the plugin is asked anything.
    let tester = tester(state, browser, &pending, &auditor).await?;
    let identity =
        complete_login(state, idp, &answer, pending.plugin_state.clone(), &auditor).await?;
    conclude(
        state, domain, idp, browser, &pending, identity, tester, &auditor,
    )
    .await
}

/// A POSTed answer that was checked and is waiting for the browser's finish step.
#[derive(Debug)]
pub struct Answered {
    /// The one-time handle [`finish_answered`] takes it by (256 random bits; only its hash
    /// is stored).
    pub handle: String,
}

/// How long an answered sign-in waits for the browser's finish step, which follows at
/// once (a `303` the browser acts on).
const ANSWERED_LIFETIME_SECONDS: i64 = 60;

/// Accepts an IdP's answer POSTed across sites (SAML's HTTP-POST binding to the ACS).
///
/// A browser does not send its `SameSite=Lax` binding cookie with another site's POST,
/// so the binding cannot be checked here. Instead the answer is validated now — the
/// pending sign-in taken (single use; not expired; this IdP's), the plugin asked for the
/// identity — and kept as an *answered* pending sign-in with the binding of the begun one
/// under a fresh one-time handle, which the caller sends the browser to the same-site
/// finish step with ([`finish_answered`]), where the cookie is sent and checked. A
/// response stolen and posted from another browser (login CSRF) is validated, then
/// refused there.
///
/// An answer without the state parameter is unsolicited (SAML IdP-initiated sign-in): the
/// plugin is asked with empty state and refuses unless it is configured to accept such
/// answers; one it accepts is bound to no browser and lands on `/`.
pub async fn accept_posted(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    answer: Answer,
) -> AppResult<Answered> {
    let now = state.now();
    let auditor = auditor(state, domain, idp, browser, now);
    let begun = match state_token(idp, &answer) {
        Some(token) => {
            Some(take_pending(state, idp, token, PendingStage::Begun, &auditor, now).await?)
        }
        None => None,
    };
    let plugin_state = begun
        .as_ref()
        .map(|pending| pending.plugin_state.clone())
        .unwrap_or_default();
    let identity = complete_login(state, idp, &answer, plugin_state, &auditor).await?;
    let handle = state.token();
    let (browser_binding_hash, return_to, purpose) = match begun {
        Some(pending) => (
            pending.browser_binding_hash,
            pending.return_to,
            pending.purpose,
        ),
        // Unsolicited: bound to no browser (there was no request to bind).
        None => (String::new(), "/".to_owned(), SignInPurpose::SignIn),
    };
    state
        .store()
        .insert_pending(&PendingLogin {
            token_hash: token_hash(&handle),
            idp_id: idp.id().to_owned(),
            plugin_state: answered::encode(&identity),
            browser_binding_hash,
            return_to,
            purpose,
            stage: PendingStage::Answered,
            created_at: now,
            expires_at: now + ANSWERED_LIFETIME_SECONDS,
        })
        .await?;
    Ok(Answered { handle })
}

/// The same-site step after [`accept_posted`]: takes the answered sign-in by its handle
/// (single use; this IdP's; not expired), checks this is the browser that began it (an
/// unsolicited answer was bound to none), and ends it as its purpose says.
pub async fn finish_answered(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    handle: &str,
) -> AppResult<Finished> {
    let now = state.now();
    let auditor = auditor(state, domain, idp, browser, now);
    let pending = take_pending(state, idp, handle, PendingStage::Answered, &auditor, now).await?;
    if !pending.browser_binding_hash.is_empty() {
        check_binding(state, browser, &pending, &auditor).await?;
    }
    let tester = tester(state, browser, &pending, &auditor).await?;
    let Some(identity) = answered::decode(&pending.plugin_state) else {
        auditor
            .failed(
                "an answered sign-in holds no identity this host can read",
                Reason::STORED_ANSWER_UNREADABLE,
            )
            .await?;
        return Err(AppError::bad_request(
            "Your sign-in could not be completed. Please start again.",
        ));
    };
    conclude(
        state, domain, idp, browser, &pending, identity, tester, &auditor,
    )
    .await
}

/// Audits an answer refused before it could be read (over the body cap): a refusal like
/// every other, though no plugin saw it.
pub async fn refused_unread(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    reason: &str,
) -> AppResult<()> {
    auditor(state, domain, idp, browser, state.now())
        .refused(None, "", reason, Reason::ANSWER_UNREADABLE)
        .await
}

fn auditor<'a>(
    state: &'a AppState,
    domain: SiteDomain<'a>,
    idp: &'a SiteIdp,
    browser: BrowserRequest<'a>,
    now: i64,
) -> Auditor<'a> {
    Auditor {
        state,
        domain: domain.name(),
        idp: idp.id(),
        ip: browser.client_ip,
        at: now,
    }
}

/// The value of the plugin's state parameter in the answer (form first), if any.
fn state_token<'a>(idp: &SiteIdp, answer: &'a Answer) -> Option<&'a str> {
    let state_param = &idp.instance.plugin.state_parameter;
    answer
        .form
        .iter()
        .chain(answer.query.iter())
        .find(|(k, _)| k == state_param)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The administrator running a test sign-in, checked before it goes on; `None` for a real
/// sign-in.
async fn tester(
    state: &AppState,
    browser: BrowserRequest<'_>,
    pending: &PendingLogin,
    auditor: &Auditor<'_>,
) -> AppResult<Option<User>> {
    match pending.purpose {
        SignInPurpose::SignIn => Ok(None),
        SignInPurpose::TestSignIn => match session::administrator(state, browser.headers).await {
            Ok((_, admin)) => Ok(Some(admin)),
            Err(refusal) => {
                auditor
                    .refused(
                        None,
                        "",
                        "a test sign-in came back to a browser without an administrator's session",
                        Reason::TEST_SIGN_IN_WITHOUT_ADMIN,
                    )
                    .await?;
                Err(refusal)
            }
        },
    }
}

/// Asks the plugin for the identity in the answer; a refusal or failure is audited.
async fn complete_login(
    state: &AppState,
    idp: &SiteIdp,
    answer: &Answer,
    plugin_state: Vec<u8>,
    auditor: &Auditor<'_>,
) -> AppResult<Identity> {
    let request = CallbackRequest {
        callback_url: answer.callback_url.as_str().into(),
        query: abi_pairs(answer.query.clone()).into(),
        form: abi_pairs(answer.form.clone()).into(),
        state: plugin_state.into(),
    };
    match state
        .caller()
        .call(idp.instance.clone(), move |host, idp| {
            idp.complete_login(host, request).into_result()
        })
        .await
    {
        Ok(identity) => Ok(identity),
        Err(error) => {
            auditor
                .failed(&error.to_string(), Reason::of_call(&error))
                .await?;
            Err(error.into())
        }
    }
}

/// Ends a checked sign-in with its identity: a test sign-in's report, or a real sign-in
/// (plan, provision, session).
#[allow(clippy::too_many_arguments)] // each is a distinct input of the one ending
async fn conclude(
    state: &AppState,
    domain: SiteDomain<'_>,
    idp: &SiteIdp,
    browser: BrowserRequest<'_>,
    pending: &PendingLogin,
    identity: Identity,
    tester: Option<User>,
    auditor: &Auditor<'_>,
) -> AppResult<Finished> {
    let now = auditor.at;
    if let Some(admin) = tester {
        let report = test_sign_in::report(state, domain, idp, &identity, &admin, now).await?;
        return Ok(Finished::Tested(report));
    }
    // The session is minted first (user id unknown yet) and written with the account and
    // the audit row in one transaction.
    let (session, session_cookie) = session::mint(
        state,
        domain.name(),
        0,
        Some(idp.id().to_owned()),
        Some(identity.subject.to_string()),
        identity.logout_state.to_vec(),
    );
    let ending = provision::Ending {
        session: &session,
        audit: auditor.success(None, ""),
        record_success: idp.success_to_record(now),
    };
    let (user_id, username) =
        match provision::provision(state, domain, idp, &identity, now, ending).await? {
            Ok(signed_in) => signed_in,
            Err((username, reason, code)) => {
                auditor.refused(None, &username, &reason, code).await?;
                return Err(AppError::new(
                    StatusCode::FORBIDDEN,
                    format!("You cannot be signed in: {reason}."),
                ));
            }
        };
    auditor.succeeded(user_id);
    // The browser's earlier session ends now that the new one is written.
    session::end_presented(state, browser.headers).await?;
    let secure = state.settings().secure_cookies;
    let mut cookies = vec![session_cookie];
    // A completed sign-in ends any redirect-loop count.
    if cookie(browser.headers, LOOP_COOKIE, secure).is_some() {
        cookies.push(clear_cookie(LOOP_COOKIE, secure));
    }
    Ok(Finished::SignedIn(SignedIn {
        user_id,
        username,
        return_to: pending.return_to.clone(),
        cookies,
    }))
}

/// The pending sign-in of `stage` named by `token`, taken (deleted) and checked: for `idp`
/// and not expired.
async fn take_pending(
    state: &AppState,
    idp: &SiteIdp,
    token: &str,
    stage: PendingStage,
    auditor: &Auditor<'_>,
    now: i64,
) -> AppResult<PendingLogin> {
    // Taking the pending sign-in deletes it: a replayed callback finds nothing.
    let Some(pending) = state
        .store()
        .take_pending(&token_hash(token), stage)
        .await?
    else {
        auditor
            .refused(
                None,
                "",
                "unknown, tampered or already used state",
                Reason::UNKNOWN_STATE,
            )
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
                Reason::STATE_OF_ANOTHER_IDP,
            )
            .await?;
        return Err(AppError::bad_request(
            "This sign-in answer belongs to another sign-in method. Please start again.",
        ));
    }
    if pending.expires_at <= now {
        auditor
            .refused(None, "", "the pending sign-in expired", Reason::EXPIRED)
            .await?;
        return Err(AppError::bad_request(
            "The sign-in took too long. Please start again.",
        ));
    }
    Ok(pending)
}

/// Refuses unless this browser carries the binding the sign-in was begun with.
async fn check_binding(
    state: &AppState,
    browser: BrowserRequest<'_>,
    pending: &PendingLogin,
    auditor: &Auditor<'_>,
) -> AppResult<()> {
    let binding_ok = cookie(
        browser.headers,
        PENDING_COOKIE,
        state.settings().secure_cookies,
    )
    .is_some_and(|b| tokens_match(&token_hash(b), &pending.browser_binding_hash));
    if binding_ok {
        return Ok(());
    }
    auditor
        .refused(
            None,
            "",
            "callback arrived in a browser other than the one that started",
            Reason::OTHER_BROWSER,
        )
        .await?;
    Err(AppError::bad_request(
        "This sign-in was started in another browser. Please start again here.",
    ))
}
