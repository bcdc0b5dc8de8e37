//! `GET /metrics`: the host's metrics in the Prometheus text format, for a scraper holding
//! `[host] metrics_token` (`Authorization: Bearer <token>`, compared in constant time).
//! Without a configured token the route does not exist (404); a missing or wrong token is
//! 401. Not where anything is counted (`crate::metrics`, `crate::events`).

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};

use crate::state::AppState;

use super::{
    error::{AppError, AppResult},
    http_util::{token_hash, tokens_match},
};

/// The bearer token of an `Authorization` header, if that is what it carries.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let Some(expected) = state.settings().metrics_token.as_ref() else {
        return Err(AppError::not_found("Not found.")
            .with_detail("GET /metrics: no [host] metrics_token is configured"));
    };
    // Hashes of equal length are compared, so the time taken says nothing of the token's
    // length or its first differing byte.
    let presented = bearer(&headers).map(token_hash).unwrap_or_default();
    if !tokens_match(&presented, &token_hash(expected.expose())) {
        let mut refusal = AppError::unauthorized("A valid metrics token is required.")
            .with_detail("GET /metrics without the configured bearer token")
            .into_response();
        refusal
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(refusal);
    }
    let body = state.metrics().render(state.store().pool_status());
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn only_a_bearer_token_is_read() {
        assert_eq!(bearer(&with_authorization("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with_authorization("bearer abc")), Some("abc"));
        assert_eq!(bearer(&with_authorization("Basic abc")), None);
        assert_eq!(bearer(&with_authorization("Bearer ")), None);
        assert_eq!(bearer(&with_authorization("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
