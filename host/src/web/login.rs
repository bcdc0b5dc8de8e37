//! The login page (`GET /login`) and password sign-in (`POST /login`): offered only where
//! the domain's page shows the form, for local accounts of the domain's branch, throttled
//! per address and per (account, address) (see `throttle`).

use std::collections::HashMap;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use gatehouse_store::AuditEvent;
use serde::Deserialize;

use gatehouse_resolver::{
    Entry, decide,
    decision::{self, Decision},
    loop_breaker,
};

use crate::{
    events::{self, At, Method, Reason},
    passwords::PasswordError,
    site::SiteDomain,
    state::AppState,
};

use super::{
    error::{AppError, AppResult},
    extract::{Domain, Form, Query},
    http_util::{ClientIp, LOOP_COOKIE, cookie, safe_return_to, set_cookie, set_retry_after},
    pages::{self, Button, LoginPage},
    session, throttle,
    urls::{self, start_url},
};

pub async fn show(
    State(state): State<AppState>,
    domain: Domain,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    let domain = domain.get();
    let return_to = safe_return_to(query.get("return_to").map(String::as_str));
    if session::current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(&return_to).into_response());
    }
    let now = state.now();
    let mark = cookie(&headers, LOOP_COOKIE, state.settings().secure_cookies)
        .and_then(loop_breaker::Mark::parse);
    let request = decision::Request {
        nosso: query.get("nosso").is_some_and(|v| v == "1"),
        recent_redirects: mark.as_ref(),
        now,
    };
    let (decision, rule) = decide(domain.plan, request);
    tracing::debug!(domain = domain.name(), ?rule, "login decision");
    match decision {
        Decision::External { url } => Ok(Redirect::to(url).into_response()),
        Decision::Redirect { idp } => {
            let next = loop_breaker::record(mark.as_ref(), &idp.id, now);
            let mut response = Redirect::to(&start_url(&idp.id, &return_to)).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    LOOP_COOKIE,
                    &next.encode(),
                    Some(loop_breaker::WINDOW_SECONDS.unsigned_abs()),
                    state.settings().secure_cookies,
                ),
            );
            Ok(response)
        }
        Decision::Page {
            form, loop_broken, ..
        } => {
            let notice = loop_broken.map(|idp| {
                tracing::warn!(domain = domain.name(), idp = idp.id, "redirect loop broken");
                format!(
                    "We sent you to {} several times in the last minute, but the sign-in did not complete, so we stopped redirecting you. \
                     You can try it again below, or sign in with your username and password.",
                    idp.label
                )
            });
            let mut page = Render::new(domain, &return_to);
            page.show_form = form;
            page.notice = notice.as_deref();
            // The stuck IdP gets a button so the person can still choose to try it.
            page.extra_button = loop_broken.map(|idp| (idp.label.as_str(), idp.id.as_str()));
            page.response(&state, &headers).await
        }
    }
}

/// The login page as one request renders it.
struct Render<'a> {
    domain: SiteDomain<'a>,
    return_to: &'a str,
    show_form: bool,
    username: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    extra_button: Option<(&'a str, &'a str)>,
    status: StatusCode,
}

impl<'a> Render<'a> {
    fn new(domain: SiteDomain<'a>, return_to: &'a str) -> Self {
        Self {
            domain,
            return_to,
            show_form: domain.plan.form_shown,
            username: "",
            error: None,
            notice: None,
            extra_button: None,
            status: StatusCode::OK,
        }
    }

    /// After a password attempt: the form again, with what went wrong.
    fn refused(
        domain: SiteDomain<'a>,
        return_to: &'a str,
        username: &'a str,
        error: &'a str,
        status: StatusCode,
    ) -> Self {
        Self {
            show_form: true,
            username,
            error: Some(error),
            status,
            ..Self::new(domain, return_to)
        }
    }

    async fn response(&self, state: &AppState, headers: &HeaderMap) -> AppResult<Response> {
        let (csrf, set_csrf) = session::csrf_token(state, headers).await?;
        let mut buttons: Vec<Button<'_>> = self
            .domain
            .plan
            .buttons
            .iter()
            .map(|b| Button {
                label: &b.label,
                href: start_url(&b.idp_id, self.return_to),
            })
            .collect();
        if let Some((label, id)) = self.extra_button {
            buttons.insert(
                0,
                Button {
                    label,
                    href: start_url(id, self.return_to),
                },
            );
        }
        let page = LoginPage {
            domain: self.domain.name(),
            show_form: self.show_form,
            buttons,
            csrf: &csrf,
            // Where the form is normally hidden (and shown now by `?nosso=1` or the loop
            // breaker), the POST says so: without it, password sign-in is refused there.
            form_action: if self.domain.plan.form_shown {
                "/login"
            } else {
                "/login?nosso=1"
            },
            return_to: self.return_to,
            username: self.username,
            error: self.error,
            notice: self.notice,
        };
        let mut response = (self.status, pages::login_page(&page)).into_response();
        if let Some(cookie) = set_csrf {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(response)
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: Option<String>,
}

/// Why a domain takes no password here, if it takes none: the password form exists only
/// where the login page offers it.
fn form_not_offered(domain: SiteDomain<'_>, nosso: bool) -> Option<&'static str> {
    match domain.plan.entry {
        Entry::External { .. } => {
            Some("the domain sends every visitor to its external sign-in page")
        }
        _ if !domain.plan.form_shown && !nosso => {
            Some("the domain shows only its sign-in buttons (login_form = \"hidden\")")
        }
        _ => None,
    }
}

pub async fn submit(
    State(state): State<AppState>,
    domain: Domain,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let domain = domain.get();
    if !session::csrf_ok(&state, &headers, &form.csrf).await? {
        return Err(AppError::forbidden(
            "This form has expired. Please reload the page and try again.",
        )
        .with_detail("CSRF token missing or wrong on POST /login"));
    }
    let return_to = safe_return_to(form.return_to.as_deref());
    let username = form.username.trim().to_owned();
    let settings = state.settings().clone();
    let now = state.now();
    let store = state.store();
    let audit = |outcome: &str, reason: &str, user_id: Option<i64>| AuditEvent {
        at: now,
        domain: domain.name().to_owned(),
        idp_id: None,
        user_id,
        username: username.clone(),
        method: "password".into(),
        outcome: outcome.into(),
        reason: reason.into(),
        ip: ip.clone(),
    };
    // Each audit row below has its log event (and count), with the refusal's code.
    let at = At {
        domain: domain.name(),
        idp: None,
        client: &ip,
    };
    let refused = |user_id: Option<i64>, reason: Reason| {
        events::sign_in_refused(state.metrics(), Method::Password, at, user_id, reason);
    };

    let nosso = query.get("nosso").is_some_and(|v| v == "1");
    if let Some(why) = form_not_offered(domain, nosso) {
        refused(None, Reason::PASSWORD_NOT_OFFERED);
        store
            .audit(&audit(
                "refused",
                &format!("password sign-in not offered: {why}"),
                None,
            ))
            .await?;
        return Err(AppError::forbidden(
            "Signing in with a password is not available on this site. Please use the sign-in button.",
        )
        .with_detail(format!("POST /login on domain `{}`: {why}", domain.name())));
    }

    let attempt = match throttle::reserve(store, &settings, &ip, &username, now).await? {
        Ok(attempt) => attempt,
        Err(refusal) => {
            refused(None, Reason::THROTTLED);
            store
                .audit(&audit("refused", refusal.reason(), None))
                .await?;
            let minutes = settings.throttle_window.as_secs().div_ceil(60);
            let message = format!(
                "Too many failed sign-in attempts. Please wait {minutes} minutes and try again."
            );
            let mut response = Render::refused(
                domain,
                &return_to,
                &username,
                &message,
                StatusCode::TOO_MANY_REQUESTS,
            )
            .response(&state, &headers)
            .await?;
            set_retry_after(&mut response, settings.throttle_window);
            return Ok(response);
        }
    };
    // An account under attack from many addresses slows down; it is never locked.
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }

    let user = store.user_by_username(&username).await?;
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    // An unknown username is checked against a decoy of the same cost, so it takes as
    // long as a wrong password. Argon2 runs on the hashing threads, never here.
    let checked_hash = stored_hash.unwrap_or_else(|| state.passwords().decoy());
    let matches = match state.passwords().verify(&form.password, checked_hash).await {
        Ok(matches) => matches,
        Err(busy @ PasswordError::Busy { .. }) => {
            // Not a failure of this person's: the reservation is given back.
            attempt.succeeded(store).await?;
            refused(None, Reason::HASHING_BUSY);
            store
                .audit(&audit("refused", "password hashing busy", None))
                .await?;
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many people are signing in right now. Please try again in a moment.",
            )
            .with_retry_after(crate::passwords::BUSY_RETRY_AFTER)
            .with_detail(format!("POST /login not checked: {busy}")));
        }
        Err(other) => return Err(AppError::internal(other)),
    };
    let has_hash = stored_hash.is_some();

    let refuse = |message: &'static str, status| {
        Render::refused(domain, &return_to, &username, message, status)
    };
    match user {
        Some(user) if matches && has_hash => {
            attempt.succeeded(store).await?;
            if user.suspended {
                refused(Some(user.id), Reason::ACCOUNT_SUSPENDED);
                store
                    .audit(&audit("refused", "account suspended", Some(user.id)))
                    .await?;
                return refuse("Your account is suspended.", StatusCode::FORBIDDEN)
                    .response(&state, &headers)
                    .await;
            }
            // A local account belongs to the domain of its branch (the bootstrap admin:
            // root); its password does not open other domains.
            if user.branch != domain.plan.branch {
                refused(Some(user.id), Reason::OTHER_BRANCH);
                store
                    .audit(&audit(
                        "refused",
                        &format!(
                            "the account belongs to branch `{}`, not this domain's `{}`",
                            user.branch, domain.plan.branch
                        ),
                        Some(user.id),
                    ))
                    .await?;
                return refuse(
                    "This account does not sign in on this site. Please sign in on your own organisation's site.",
                    StatusCode::FORBIDDEN,
                )
                .response(&state, &headers)
                .await;
            }
            // "Totara Connect accounts can log in only via single sign-on": an account a
            // Connect server took over (migration) keeps its old password hash, which no
            // longer opens it. Said only to someone who knew the password.
            if let Some(idp) = store.connect_idp_of_account(user.id).await? {
                refused(Some(user.id), Reason::CONNECT_ACCOUNT);
                store
                    .audit(&audit(
                        "refused",
                        &format!("the account is a Totara Connect account of IdP `{idp}`"),
                        Some(user.id),
                    ))
                    .await?;
                return refuse(
                    "This account signs in through your organisation's main site. Please use its button on this page.",
                    StatusCode::FORBIDDEN,
                )
                .response(&state, &headers)
                .await;
            }
            let cookie = session::start(
                &state,
                &headers,
                domain.name(),
                user.id,
                None,
                None,
                Vec::new(),
            )
            .await?;
            store.audit(&audit("success", "", Some(user.id))).await?;
            events::sign_in_succeeded(state.metrics(), Method::Password, at, user.id);
            // A generated (or administrator-reset) password is replaced before anything else.
            let destination = if user.must_change_password {
                urls::password_url(&return_to)
            } else {
                return_to
            };
            let mut response = Redirect::to(&destination).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            Ok(response)
        }
        user => {
            // The reservation stays: it was a failure.
            drop(attempt);
            let (reason, code) = if user.is_none() {
                ("unknown username", Reason::UNKNOWN_USERNAME)
            } else {
                ("wrong password", Reason::WRONG_PASSWORD)
            };
            let user_id = user.as_ref().map(|u| u.id);
            events::password_failed(state.metrics(), at, user_id, code);
            store
                .audit(&audit("failure", reason, user.map(|u| u.id)))
                .await?;
            refuse(
                "The username or password is not correct.",
                StatusCode::UNAUTHORIZED,
            )
            .response(&state, &headers)
            .await
        }
    }
}
