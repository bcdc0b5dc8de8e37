//! The preconditions handlers state in their signatures: the domain a request is for
//! ([`Domain`]), a signed-in user ([`SignedIn`]) or administrator ([`Admin`]), a CSRF token
//! in the header of a JSON request ([`CsrfHeader`]), and axum's body, query and path
//! extractors wrapped ([`Json`], [`Form`], [`Query`], [`Path`]) so that a malformed request
//! gets our 400 through [`AppError`] — JSON or HTML as the route is — never axum's plain
//! text. Not a handler, and it decides nothing the store or the resolver decide.
//!
//! Extractors run in the order of the handler's arguments: put [`CsrfHeader`] before
//! [`Admin`] where a refusal should not say whether the session was an admin's, and the
//! body last (axum requires it).

use axum::{
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use gatehouse_store::{Session, User};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    site::{SharedDomain, SiteDomain, SiteIdp},
    state::AppState,
};

use super::{
    error::{AppError, AppResult},
    http_util::request_host,
    session,
};

/// The CSRF token of a JSON request, from the `X-CSRF-Token` header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The domain the request's `Host` names, in the site the request started with; 404 when no
/// domain serves that host (a malformed `Host` was already a 400 in `host_header`).
#[derive(Debug, Clone)]
pub struct Domain(pub SharedDomain);

impl Domain {
    pub fn get(&self) -> SiteDomain<'_> {
        self.0.get()
    }

    /// The IdP instance `id` of this domain (hidden ones included); 404 otherwise.
    pub fn idp(&self, id: &str) -> AppResult<&std::sync::Arc<SiteIdp>> {
        let domain = self.get();
        domain.idp(id).ok_or_else(|| {
            AppError::not_found("This sign-in method is not available here.")
                .with_detail(format!("no IdP `{id}` on domain `{}`", domain.name()))
        })
    }
}

impl FromRequestParts<AppState> for Domain {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let host = request_host(&parts.headers);
        SharedDomain::for_host(state.site(), host)
            .map(Self)
            .ok_or_else(|| {
                AppError::not_found("This address is not served here.")
                    .with_detail(format!("no domain has host `{host}`"))
            })
    }
}

/// The signed-in user (on this request's domain) and their session; 401 otherwise.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: Session,
    pub user: User,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        match session::current(state, &parts.headers).await? {
            Some((session, user)) => Ok(Self { session, user }),
            None => Err(AppError::unauthorized("Please sign in first.")),
        }
    }
}

/// A signed-in administrator; 401 when signed out, 403 for anyone else
/// ([`session::administrator`]).
#[derive(Debug, Clone)]
pub struct Admin {
    pub session: Session,
    pub user: User,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let (session, user) = session::administrator(state, &parts.headers).await?;
        Ok(Self { session, user })
    }
}

/// A state-changing JSON request carries the browser's CSRF token in `X-CSRF-Token`
/// (forms carry theirs in a field, checked by their handler); 403 otherwise.
#[derive(Debug, Clone, Copy)]
pub struct CsrfHeader;

impl FromRequestParts<AppState> for CsrfHeader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let submitted = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if session::csrf_ok(state, &parts.headers, submitted).await? {
            Ok(Self)
        } else {
            Err(AppError::forbidden(
                "This request has no valid CSRF token. Reload the page and try again.",
            )
            .with_detail("X-CSRF-Token header missing or wrong"))
        }
    }
}

/// A rejection of axum's, as our error. Malformed input (what the client sent does not
/// parse or does not fit) is a 400 whatever axum would say (it answers 422 for some);
/// anything else (a missing content type, a body too large) keeps axum's status.
fn rejected(status: StatusCode, malformed: bool, what: &str, text: String) -> AppError {
    let status = if malformed {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let code = match (malformed, what) {
        (true, "body") => "invalid_body",
        (true, "query") => "invalid_query",
        (true, _) => "invalid_path",
        (false, _) => "unreadable_request",
    };
    AppError::new(
        status,
        format!("The request's {what} is not acceptable: {text}"),
    )
    .with_code(code)
}

/// A JSON body, or a 400 saying what is wrong with it. As a response, JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> AppResult<Self> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let malformed = matches!(
                    rejection,
                    JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_)
                );
                Err(rejected(
                    rejection.status(),
                    malformed,
                    "body",
                    rejection.body_text(),
                ))
            }
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A form body (`application/x-www-form-urlencoded`), or a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> AppResult<Self> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                let malformed = matches!(
                    rejection,
                    FormRejection::FailedToDeserializeForm(_)
                        | FormRejection::FailedToDeserializeFormBody(_)
                );
                Err(rejected(
                    rejection.status(),
                    malformed,
                    "form",
                    rejection.body_text(),
                ))
            }
        }
    }
}

/// The query string, or a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AppResult<Self> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let malformed =
                    matches!(rejection, QueryRejection::FailedToDeserializeQueryString(_));
                Err(rejected(
                    rejection.status(),
                    malformed,
                    "query",
                    rejection.body_text(),
                ))
            }
        }
    }
}

/// The path parameters, or a 400 (a user id that is not a number, say).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AppResult<Self> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                let malformed =
                    matches!(rejection, PathRejection::FailedToDeserializePathParams(_));
                Err(rejected(
                    rejection.status(),
                    malformed,
                    "path",
                    rejection.body_text(),
                ))
            }
        }
    }
}
