//! The login decision for one request, in BRIEF.md's precedence: force external SSO URL →
//! `?nosso=1` → the automatic-redirect IdP (unless the loop breaker trips) → the login page.
//! A lookup in a [`DomainPlan`]; no rule is evaluated here.

use crate::{
    loop_breaker::{self, Mark},
    resolution::{Button, DomainPlan, Entry, IdpPlan},
};

/// What the request needs to know beyond the domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `?nosso=1`.
    pub nosso: bool,
    /// The browser's recent automatic redirects (the loop breaker's cookie).
    pub recent_redirects: Option<&'a Mark>,
    /// Unix seconds.
    pub now: i64,
}

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// 1: `force_external_sso_url` is set.
    ForceExternalUrl,
    /// 2: `?nosso=1` asked for the platform's own form.
    NoSso,
    /// 3: an IdP has `behaviour = "redirect"`.
    AutomaticRedirect,
    /// 3, refused: the browser was sent to that IdP too often without completing.
    LoopBroken,
    /// 4: the login page.
    LoginPage,
}

impl Rule {
    /// One line for `explain` and the logs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ForceExternalUrl => {
                "rule 1: force_external_sso_url is set, so every unauthenticated visitor goes there"
            }
            Self::NoSso => "rule 2: ?nosso=1 shows the platform's own login form",
            Self::AutomaticRedirect => {
                "rule 3: an IdP has behaviour = \"redirect\", so visitors go straight to it"
            }
            Self::LoopBroken => {
                "rule 3 refused by the loop breaker: this browser was sent to the IdP too often without signing in"
            }
            Self::LoginPage => "rule 4: the login page with its form and buttons",
        }
    }
}

/// What the login page does for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    External {
        url: &'a str,
    },
    Redirect {
        idp: &'a IdpPlan,
    },
    Page {
        form: bool,
        buttons: &'a [Button],
        /// Set when the loop breaker stopped a redirect to this IdP.
        loop_broken: Option<&'a IdpPlan>,
    },
}

/// Decides, for one request to `domain`'s login page.
pub fn decide<'a>(domain: &'a DomainPlan, request: Request<'_>) -> (Decision<'a>, Rule) {
    let page = |form, loop_broken| Decision::Page {
        form,
        buttons: &domain.buttons,
        loop_broken,
    };
    match &domain.entry {
        Entry::External { url } => (Decision::External { url }, Rule::ForceExternalUrl),
        _ if request.nosso => (page(true, None), Rule::NoSso),
        Entry::Redirect { idp } => match domain.idps.get(*idp) {
            Some(idp) if loop_breaker::tripped(request.recent_redirects, &idp.id, request.now) => {
                // The form is offered even where it is normally hidden: the IdP is not
                // working for this browser, and a stuck person needs some way in.
                (page(true, Some(idp)), Rule::LoopBroken)
            }
            Some(idp) => (Decision::Redirect { idp }, Rule::AutomaticRedirect),
            None => (page(domain.form_shown, None), Rule::LoginPage),
        },
        Entry::Page => (page(domain.form_shown, None), Rule::LoginPage),
    }
}
