//! `POST /totara/connect/sep.php`, the Connect server's service end point, on every domain:
//! reads only the POST body (capped; the query string is never read, as the original keeps
//! secrets out of request logs), looks up what the [`super::core`] asks for, carries out its
//! effects and sends its JSend reply with HTTP 200. Not the decisions (the core's) nor the
//! wire format (`gatehouse-connect-wire`). Secrets and tokens are never logged.

use std::collections::BTreeMap;

use axum::{
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use gatehouse_connect_wire::{
    ApiVersion, HierarchyKind, JSend, ServerCall, Token, token::TOKEN_LEN,
};
use gatehouse_store::{ConnectClient, StoreError};

use crate::state::AppState;

use super::core::{self, Effect, Outcome, ServerContext, SsoFacts, SsoUserAnswer};
use super::shares;

/// The most a SEP request body may hold (the host's inbound cap may be lower): every
/// service's form is a few hundred bytes.
pub const SEP_MAX_BODY_BYTES: usize = 64 * 1024;

/// The handler for every method: anything but a form POST reads as an empty form, which
/// the original answers "invalid parameters" (it reads only `$_POST`).
pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = SEP_MAX_BODY_BYTES.min(state.settings().inbound_max_body_bytes);
    let Ok(bytes) = to_bytes(body, limit).await else {
        return send(
            StatusCode::PAYLOAD_TOO_LARGE,
            JSend::error("request too large").to_json(),
        );
    };
    let form = if method == Method::POST && is_form(&headers) {
        form_urlencoded::parse(&bytes).into_owned().collect()
    } else {
        Vec::new()
    };
    match answer(&state, &form).await {
        Ok(body) => send(StatusCode::OK, body),
        Err(error) => {
            tracing::error!(error = %error, "connect server: sep.php failed");
            send(
                StatusCode::INTERNAL_SERVER_ERROR,
                JSend::error("internal error").to_json(),
            )
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn send(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The body of the reply to `form`, after the effects were carried out.
pub async fn answer(state: &AppState, form: &[(String, String)]) -> Result<String, StoreError> {
    let store = state.store();
    let envelope = match core::read_envelope(form) {
        Ok(envelope) => envelope,
        Err(outcome) => return Ok(outcome.body),
    };
    let client = store
        .connect_client_by_server_secret(&envelope.secret)
        .await?;
    // Only a caller that presented a client's secret is compared with this server's
    // idnumber, which exists since that client registered (so nothing is written here).
    let own = match &client {
        Some(_) => {
            let fresh = super::registration::fresh_token(state.random());
            let stored = store.connect_server_idnumber(fresh.as_str()).await?;
            Token::parse(&stored).map_err(|e| {
                StoreError::Corrupt(format!("the connect server idnumber is not a token: {e}"))
            })?
        }
        // Nothing can match: any token will do for the comparison that fails anyway.
        None => Token::from_random_bytes(&[0; TOKEN_LEN / 2]),
    };
    let (authorized, call) = match core::authorize(
        &envelope,
        client.as_ref(),
        &own,
        super::server_enabled(state),
    ) {
        Ok(found) => found,
        Err(outcome) => {
            tracing::info!(
                service = %envelope.service,
                reply = %outcome.body,
                "connect server: sep.php call refused"
            );
            return Ok(outcome.body);
        }
    };
    let Some(client) = client else {
        // authorize() refuses every call without a client.
        return Ok(JSend::error("invalid server secret or idnumber").to_json());
    };
    let outcome = serve(state, &client, authorized.api_version, &call).await?;
    for effect in &outcome.effects {
        carry_out(state, effect).await?;
    }
    Ok(outcome.body)
}

fn context(state: &AppState) -> ServerContext {
    let site = state.site();
    ServerContext {
        now: state.now(),
        sync_passwords: site.connect_server().sync_passwords,
        field_types: site
            .additional_fields()
            .iter()
            .map(|f| (f.name.clone(), f.kind.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

async fn serve(
    state: &AppState,
    client: &ConnectClient,
    api_version: ApiVersion,
    call: &ServerCall,
) -> Result<Outcome, StoreError> {
    let store = state.store();
    let context = context(state);
    Ok(match call {
        ServerCall::GetApiVersion { .. } => core::get_api_version(),
        ServerCall::UpdateApiVersion {
            api_version,
            client_type,
        } => core::update_api_version(client, *api_version, *client_type),
        ServerCall::GetUsers => {
            let users = store
                .connect_shared_users(&core::users_query(client, api_version, &context))
                .await?;
            core::get_users(client, api_version, users, &context)
        }
        ServerCall::GetUser { user_id } => {
            let user = store
                .connect_visible_user(
                    client.restrict_audience_id,
                    *user_id,
                    context.sync_passwords,
                )
                .await?;
            core::get_user(client, api_version, user.as_ref(), &context)
        }
        ServerCall::GetUserCollections => {
            let collections = store
                .connect_client_collections(client.id, client.restrict_audience_id)
                .await?;
            shares::get_user_collections(&collections)
        }
        ServerCall::GetPositions => hierarchy(state, client, HierarchyKind::Position).await?,
        ServerCall::GetOrganisations => {
            hierarchy(state, client, HierarchyKind::Organisation).await?
        }
        ServerCall::GetSsoUser { sso_token } => {
            let sso = match sso_token {
                Some(token) => {
                    store
                        .connect_sso_session_by_token(client.id, token.as_str())
                        .await?
                }
                None => None,
            };
            let (session, user) = match &sso {
                Some(sso) => (
                    store.session(&sso.session_key, context.now).await?,
                    store
                        .connect_visible_user(None, sso.user_id, context.sync_passwords)
                        .await?,
                ),
                None => (None, None),
            };
            let facts = SsoFacts {
                sso: sso.as_ref(),
                session: session.as_ref(),
                user: user.as_ref(),
            };
            match core::get_sso_user(client, api_version, facts, &context) {
                SsoUserAnswer::Refused(outcome) => outcome,
                SsoUserAnswer::ActivateThen {
                    sso_session_id,
                    user_body,
                    reused_body,
                } => {
                    let body = if store.activate_connect_sso_session(sso_session_id).await? {
                        user_body
                    } else {
                        reused_body
                    };
                    Outcome {
                        body,
                        effects: Vec::new(),
                    }
                }
            }
        }
        ServerCall::ForceSsoLogout { sso_token } => {
            let sso = match sso_token {
                Some(token) => {
                    store
                        .connect_sso_session_by_token(client.id, token.as_str())
                        .await?
                }
                None => None,
            };
            core::force_sso_logout(client, sso.as_ref())
        }
        ServerCall::DeleteClient => core::delete_client(client),
    })
}

/// `get_positions` / `get_organisations`: the frameworks of `kind` linked to `client`.
async fn hierarchy(
    state: &AppState,
    client: &ConnectClient,
    kind: HierarchyKind,
) -> Result<Outcome, StoreError> {
    let hierarchy = state
        .store()
        .connect_client_hierarchy(client.id, shares::framework_kind(kind))
        .await?;
    Ok(shares::get_hierarchy(kind, &hierarchy))
}

async fn carry_out(state: &AppState, effect: &Effect) -> Result<(), StoreError> {
    let store = state.store();
    match effect {
        Effect::UpdateApiVersion {
            client_id,
            api_version,
            client_type,
        } => {
            store
                .update_connect_client_api_version(
                    *client_id,
                    i64::from(api_version.number()),
                    client_type.as_str(),
                    state.now(),
                )
                .await?;
        }
        Effect::MarkClientDeleted { client_id } => {
            store
                .mark_connect_client_deleted(*client_id, state.now())
                .await?;
        }
        Effect::EndSessionEverywhere { session_key } => {
            // The clients are told off the request path; the reply does not wait for them.
            let _told = super::propagate::end_session_everywhere(state, session_key).await?;
        }
    }
    Ok(())
}
