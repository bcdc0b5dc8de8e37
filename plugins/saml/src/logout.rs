//! Single logout, both ways (samael has only the types): the SP's LogoutRequest to the
//! IdP and the check of the LogoutResponse that comes back; the IdP's LogoutRequest,
//! verified as strictly as a sign-in response, answered with a LogoutResponse and an
//! "end these sessions" action. Also the `logout_state` encoding that ties a session to
//! what an IdP's LogoutRequest names.
//!
//! `logout_state` is the JSON array `["saml2", <NameID Format>, <NameID>, <SessionIndex>]`
//! (serde_json, no whitespace), with an absent Format written as SAML's `unspecified`
//! format and an absent SessionIndex as "". An incoming LogoutRequest rebuilds the same
//! bytes from its NameID and each SessionIndex, so the host's selector matches exactly.

use std::time::Duration;

use base64::Engine as _;
use gatehouse_plugin_api::{
    Host, HostAction, InboundReply, InboundRequest, LoginStep, Pair, PluginError, SessionSelector,
};
use roxmltree::Node;
use sha2::{Digest, Sha256};

use crate::authn::{instant, new_id};
use crate::bindings;
use crate::idp_metadata::IdpConfig;
use crate::prescan;
use crate::refusal::{Check, Refusal};
use crate::settings::SpConfig;
use crate::signature;
use crate::xml::{self, NAMEID_UNSPECIFIED, NS_ASSERTION, NS_PROTOCOL, STATUS_SUCCESS, escape};

/// How long an SP-initiated LogoutRequest waits for its response.
const REQUEST_TTL: Duration = Duration::from_secs(600);
/// How long an IdP's LogoutRequest id is remembered against replay (and how old one may be).
const INBOUND_WINDOW_SECONDS: i64 = 600;
/// RelayState longer than the bindings' 80 bytes is not echoed back.
const MAX_RELAY_STATE: usize = 80;

/// The `logout_state` of a session (see the module documentation).
pub fn encode_state(format: Option<&str>, name_id: &str, session_index: Option<&str>) -> Vec<u8> {
    let format = format
        .filter(|f| !f.is_empty())
        .unwrap_or(NAMEID_UNSPECIFIED);
    serde_json::to_vec(&["saml2", format, name_id, session_index.unwrap_or("")]).unwrap_or_default()
}

/// The parts of a `logout_state`, if it is one of ours.
pub fn decode_state(state: &[u8]) -> Option<(String, String, String)> {
    let parts: Vec<String> = serde_json::from_slice(state).ok()?;
    match <[String; 4]>::try_from(parts) {
        Ok([tag, format, name_id, index]) if tag == "saml2" => Some((format, name_id, index)),
        _ => None,
    }
}

/// The SP-initiated LogoutRequest as a redirect to the IdP's SLO endpoint, or `None`
/// when the IdP has no HTTP-Redirect SingleLogoutService.
pub fn begin(
    host: &Host<'_>,
    config: &SpConfig,
    idp: &IdpConfig,
    subject: &str,
    logout_state: &[u8],
) -> Result<Option<LoginStep>, PluginError> {
    let Some(slo) = &idp.slo_redirect else {
        return Ok(None);
    };
    let (format, name_id, index) = decode_state(logout_state).unwrap_or_else(|| {
        (
            NAMEID_UNSPECIFIED.to_owned(),
            subject.to_owned(),
            String::new(),
        )
    });
    let id = new_id(host);
    let session_index = if index.is_empty() {
        String::new()
    } else {
        format!(
            "<samlp:SessionIndex>{}</samlp:SessionIndex>",
            escape(&index)
        )
    };
    let request = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\"><saml:Issuer>{}</saml:Issuer><saml:NameID Format=\"{}\">{}</saml:NameID>{session_index}</samlp:LogoutRequest>",
        instant(host),
        escape(&slo.location),
        escape(&config.entity_id),
        escape(&format),
        escape(&name_id),
    );
    host.kv_put(&format!("slo-request:{id}"), b"1", Some(REQUEST_TTL))?;
    let url = bindings::redirect_url(
        &slo.location,
        "SAMLRequest",
        &request,
        None,
        config.key.as_ref(),
    )?;
    Ok(Some(LoginStep::redirect(url)))
}

/// `/sso/{idp}/logout`: a LogoutResponse to our request, or the IdP's LogoutRequest.
/// Anything malformed or unverifiable is a plain 400 with no actions.
pub fn handle(
    host: &Host<'_>,
    config: &SpConfig,
    idp: &IdpConfig,
    request: &InboundRequest,
) -> InboundReply {
    let outcome = match message(request) {
        Some(("SAMLResponse", value)) => logout_response(host, config, idp, request, value),
        Some((_, value)) => logout_request(host, config, idp, request, value),
        None => Err(Check::Malformed.refuse("neither a SAMLRequest nor a SAMLResponse")),
    };
    outcome.unwrap_or_else(|error| {
        host.warn(&format!(
            "a single-logout message was refused: {}",
            error.message()
        ));
        InboundReply::new(
            400,
            "text/plain; charset=utf-8",
            "The logout message could not be accepted.",
        )
    })
}

/// The message's parameter: the query for the redirect binding (GET), the form for POST.
fn message(request: &InboundRequest) -> Option<(&'static str, &str)> {
    let pairs = if request.method.as_str() == "GET" {
        &request.query
    } else {
        &request.form
    };
    ["SAMLResponse", "SAMLRequest"]
        .into_iter()
        .find_map(|name| gatehouse_plugin_api::find_pair(pairs, name).map(|value| (name, value)))
}

/// Decodes, checks the shape and verifies the signature of a logout message; calls
/// `check` with the signed element (from the canonical signed bytes for POST, from the
/// strictly parsed message for a redirect whose query signature verified).
fn verified<T>(
    request: &InboundRequest,
    idp: &IdpConfig,
    param: &str,
    value: &str,
    root_name: &str,
    check: impl FnOnce(Node<'_, '_>) -> Result<T, Refusal>,
) -> Result<T, Refusal> {
    let redirect = request.method.as_str() == "GET";
    let xml = if redirect {
        bindings::inflate_b64(value)?
    } else {
        bindings::decode_post(value)?
    };
    prescan::refuse_declarations(&xml)?;
    let document = prescan::parse(&xml)?;
    let shape = prescan::scan(&document, NS_PROTOCOL, root_name)?;
    if shape.assertion_count != 0 {
        return Err(Check::AssertionCount.refuse("a logout message carries no assertion"));
    }
    if redirect {
        bindings::verify_redirect(&request.query, param, &idp.signing_certs)?;
        return check(document.root_element());
    }
    if !shape.root_signed {
        return Err(Check::Signature.refuse(format!("the {root_name} is not signed")));
    }
    let predigest = signature::verify(&xml, &idp.signing_certs)?;
    let signed = roxmltree::Document::parse(&predigest)
        .map_err(|_| Check::Malformed.refuse("the signed content does not parse"))?;
    let root = signed.root_element();
    if !xml::is(root, NS_PROTOCOL, root_name)
        || root.attribute("ID") != Some(shape.root_id.as_str())
    {
        return Err(
            Check::Signature.refuse(format!("the signature does not cover the {root_name}"))
        );
    }
    check(root)
}

fn check_issuer_and_destination(
    message: Node<'_, '_>,
    config: &SpConfig,
    idp: &IdpConfig,
    request: &InboundRequest,
) -> Result<(), Refusal> {
    let issuer = xml::child(message, NS_ASSERTION, "Issuer").map(xml::trimmed_text);
    if issuer.as_deref() != Some(idp.entity_id.as_str()) {
        return Err(Check::Issuer.refuse("the logout message's Issuer is not the IdP's entity id"));
    }
    let destination = message.attribute("Destination").ok_or_else(|| {
        Check::Destination.refuse("a signed logout message must name its Destination")
    })?;
    let ours = if config.slo_urls.is_empty() {
        // Without a placement, the logout URL on the host the request came on.
        destination.contains(&format!("//{}/", request.host)) && destination.ends_with("/logout")
    } else {
        config.slo_urls.iter().any(|url| url == destination)
    };
    if !ours {
        return Err(Check::Destination
            .refuse("the logout message's Destination is not this SP's logout URL"));
    }
    Ok(())
}

fn status_is_success(message: Node<'_, '_>) -> bool {
    xml::child(message, NS_PROTOCOL, "Status")
        .and_then(|s| xml::child(s, NS_PROTOCOL, "StatusCode"))
        .and_then(|c| c.attribute("Value"))
        == Some(STATUS_SUCCESS)
}

/// The IdP's answer to our LogoutRequest: the browser goes on to the logout landing page.
fn logout_response(
    host: &Host<'_>,
    config: &SpConfig,
    idp: &IdpConfig,
    request: &InboundRequest,
    value: &str,
) -> Result<InboundReply, Refusal> {
    let in_response_to = verified(
        request,
        idp,
        "SAMLResponse",
        value,
        "LogoutResponse",
        |message| {
            check_issuer_and_destination(message, config, idp, request)?;
            if !status_is_success(message) {
                return Err(Check::Status.refuse("the IdP did not complete the logout"));
            }
            message
                .attribute("InResponseTo")
                .map(str::to_owned)
                .ok_or_else(|| Check::InResponseTo.refuse("the LogoutResponse names no request"))
        },
    )?;
    let known = host
        .kv_get(&format!("slo-request:{in_response_to}"))?
        .is_some();
    // Single use, atomically across hosts.
    let first = known
        && host.kv_put_if_absent(
            &format!("slo-answered:{in_response_to}"),
            b"1",
            Some(REQUEST_TTL),
        )?;
    if !first {
        return Err(Check::InResponseTo.refuse(
            "the LogoutResponse answers no pending logout of this SP (or one already answered)",
        ));
    }
    host.kv_delete(&format!("slo-request:{in_response_to}"))?;
    Ok(InboundReply::redirect("/logged-out").with_action(HostAction::show_logout_landing()))
}

/// What an IdP's LogoutRequest asks for.
struct InboundLogout {
    id: String,
    name_id: String,
    format: Option<String>,
    session_indexes: Vec<String>,
}

/// The IdP's LogoutRequest: end the sessions it names and answer with a LogoutResponse.
fn logout_request(
    host: &Host<'_>,
    config: &SpConfig,
    idp: &IdpConfig,
    request: &InboundRequest,
    value: &str,
) -> Result<InboundReply, Refusal> {
    let now = host.now_unix_seconds() * 1000;
    let skew = config.clock_skew_seconds * 1000;
    let logout = verified(
        request,
        idp,
        "SAMLRequest",
        value,
        "LogoutRequest",
        |message| {
            check_issuer_and_destination(message, config, idp, request)?;
            let time = |name: &str| {
                message
                    .attribute(name)
                    .map(|v| {
                        chrono::DateTime::parse_from_rfc3339(v.trim())
                            .map(|t| t.timestamp_millis())
                            .map_err(|_| {
                                Check::Malformed.refuse(format!("{name} is not a date and time"))
                            })
                    })
                    .transpose()
            };
            let issued = time("IssueInstant")?
                .ok_or_else(|| Check::Malformed.refuse("the LogoutRequest has no IssueInstant"))?;
            if now < issued - skew {
                return Err(Check::NotYetValid.refuse("the LogoutRequest is issued in the future"));
            }
            if now >= issued + INBOUND_WINDOW_SECONDS * 1000 + skew {
                return Err(Check::Expired.refuse("the LogoutRequest is too old (IssueInstant)"));
            }
            if let Some(end) = time("NotOnOrAfter")?
                && now >= end + skew
            {
                return Err(Check::Expired.refuse("the LogoutRequest has expired (NotOnOrAfter)"));
            }
            let name_id = xml::child(message, NS_ASSERTION, "NameID").ok_or_else(|| {
                Check::NameId
                    .refuse("the LogoutRequest has no NameID (encrypted NameIDs are not supported)")
            })?;
            let value = xml::text(name_id);
            if value.trim().is_empty() {
                return Err(Check::NameId.refuse("the NameID is empty"));
            }
            Ok(InboundLogout {
                id: message.attribute("ID").unwrap_or_default().to_owned(),
                name_id: value,
                format: name_id.attribute("Format").map(str::to_owned),
                session_indexes: xml::children(message, NS_PROTOCOL, "SessionIndex")
                    .map(xml::text)
                    .collect(),
            })
        },
    )?;

    let digest = Sha256::digest(format!("{}\n{}", idp.entity_id, logout.id));
    let replay_key = format!("slo-inbound:{}", hex(&digest));
    let ttl = Duration::from_secs(
        u64::try_from(INBOUND_WINDOW_SECONDS * 2 + config.clock_skew_seconds).unwrap_or(1200),
    );
    if !host.kv_put_if_absent(&replay_key, b"1", Some(ttl))? {
        return Err(Check::Replay.refuse("this LogoutRequest was already received"));
    }

    let mut actions: Vec<HostAction> = if logout.session_indexes.is_empty() {
        vec![HostAction::end_sessions(SessionSelector::subject(
            &logout.name_id,
        ))]
    } else {
        logout
            .session_indexes
            .iter()
            .map(|index| {
                HostAction::end_sessions(SessionSelector {
                    subject: logout.name_id.as_str().into(),
                    logout_state: encode_state(
                        logout.format.as_deref(),
                        &logout.name_id,
                        Some(index),
                    )
                    .into(),
                })
            })
            .collect()
    };
    host.info("the IdP signed a subject out (single logout)");

    let relay_state = request
        .param("RelayState")
        .filter(|r| r.len() <= MAX_RELAY_STATE);
    let mut reply = answer(host, config, idp, &logout.id, relay_state)?;
    reply.actions.extend(actions.drain(..));
    Ok(reply)
}

/// The LogoutResponse (Success) to the IdP's SLO endpoint: a signed redirect when the IdP
/// has an HTTP-Redirect endpoint, else a POST page, else a plain confirmation.
fn answer(
    host: &Host<'_>,
    config: &SpConfig,
    idp: &IdpConfig,
    in_response_to: &str,
    relay_state: Option<&str>,
) -> Result<InboundReply, PluginError> {
    let endpoint = idp.slo_redirect.as_ref().or(idp.slo_post.as_ref());
    let Some(endpoint) = endpoint else {
        return Ok(InboundReply::new(
            200,
            "text/plain; charset=utf-8",
            "Signed out.",
        ));
    };
    let destination = endpoint.response_url();
    let response = format!(
        "<samlp:LogoutResponse xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\"><saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status></samlp:LogoutResponse>",
        new_id(host),
        instant(host),
        escape(destination),
        escape(in_response_to),
        escape(&config.entity_id),
    );
    if idp.slo_redirect.is_some() {
        let url = bindings::redirect_url(
            destination,
            "SAMLResponse",
            &response,
            relay_state,
            config.key.as_ref(),
        )?;
        return Ok(InboundReply::redirect(&url));
    }
    let mut fields = vec![Pair::new(
        "SAMLResponse",
        base64::engine::general_purpose::STANDARD.encode(response),
    )];
    if let Some(relay_state) = relay_state {
        fields.push(Pair::new("RelayState", relay_state));
    }
    Ok(InboundReply::new(
        200,
        "text/html; charset=utf-8",
        bindings::post_form_page(destination, &fields),
    ))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
