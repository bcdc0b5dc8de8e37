//! The conformance check: what every Gatehouse plugin must do, checked through the
//! same FFI entry points the host uses (without loading a library). It is not a
//! protocol test; a plugin still needs its own.

use abi_stable::std_types::{RResult, RStr, RString, RVec};
use serde_json::{Value, json};

use crate::{
    API_VERSION, Capabilities, ErrorKind, InboundRequest, Plugin, PluginError, RouteDecl,
    RouteHandling,
    ffi::{HostFfi_TO, IdpBox},
    module::root_module,
    types::{BeginRequest, CallbackRequest, Pair, StepMethod},
};

use super::FakeHost;
use abi_stable::type_level::downcasting::TD_Opaque;

/// What the check needs to know about a plugin.
pub struct Case {
    /// Settings the plugin must accept.
    pub good_settings: Value,
    /// Settings the plugin must refuse, each with a word its message must contain
    /// (usually the name of the offending setting).
    pub bad_settings: Vec<(Value, &'static str)>,
}

/// Runs the whole check for plugin `P`, panicking with a list of every failure.
pub fn check<P: Plugin>(case: &Case) {
    check_with::<P>(case, &FakeHost::new());
}

/// Like [`check`], with a fake host the caller has prepared (scripted HTTP replies
/// for a plugin that fetches discovery documents in `begin_login`).
pub fn check_with<P: Plugin>(case: &Case, fake: &FakeHost) {
    let mut failures = Vec::new();
    let module = root_module::<P>();

    // 1. The manifest is sane.
    match module.manifest()() {
        RResult::ROk(manifest) => failures.extend(manifest_problems(&manifest)),
        RResult::RErr(error) => failures.push(format!("manifest() failed: {error}")),
    }
    let new_idp = module.new_idp();
    let build = |settings: &Value| -> Result<IdpBox, PluginError> {
        let json = settings.to_string();
        new_idp(RStr::from("conformance"), RStr::from(json.as_str())).into_result()
    };

    // 2. Bad settings are refused with a message, never a panic.
    let mut bad: Vec<(Value, &str)> = case
        .bad_settings
        .iter()
        .map(|(v, w)| (v.clone(), *w))
        .collect();
    bad.push((json!("not a table"), ""));
    bad.push((json!([1, 2, 3]), ""));
    for (settings, word) in &bad {
        match build(settings) {
            Ok(_) => failures.push(format!(
                "settings {settings} were accepted but must be refused"
            )),
            Err(error) if error.kind != ErrorKind::INVALID_SETTINGS => {
                failures.push(format!(
                    "settings {settings} were refused as {:?}, not invalid-settings: {}",
                    error.kind,
                    error.message()
                ));
            }
            Err(error) if error.message().trim().is_empty() => {
                failures.push(format!(
                    "settings {settings} were refused without a message"
                ));
            }
            Err(error) if !error.message().contains(word) => {
                failures.push(format!(
                    "refusing {settings}, the message does not mention `{word}`: {}",
                    error.message()
                ));
            }
            Err(_) => {}
        }
    }

    // 3. Good settings build an instance whose begin_login gives a well-formed step.
    let idp = match build(&case.good_settings) {
        Ok(idp) => idp,
        Err(error) => {
            failures.push(format!(
                "good settings {} were refused: {error}",
                case.good_settings
            ));
            report(failures);
            return;
        }
    };
    let host = || HostFfi_TO::from_ptr(fake, TD_Opaque);
    // 40 lowercase hex, the shape of the host's state tokens (Connect's request token is one).
    let token = "c0ffee0123456789abcdef0123456789abcdef01";
    let request = BeginRequest {
        callback_url: "https://gatehouse.test/sso/conformance/callback".into(),
        state_token: token.into(),
        login_hint: None.into(),
    };
    let begun = idp.begin_login(host(), request.clone()).into_result();
    match &begun {
        Ok(begun) => {
            let step = &begun.step;
            if !(step.url.starts_with("https://") || step.url.starts_with("http://")) {
                failures.push(format!(
                    "begin_login's URL is not absolute http(s): {}",
                    step.url
                ));
            }
            if step.method == StepMethod::Redirect && !step.form.is_empty() {
                failures.push("a redirect step must not carry form fields".into());
            }
            let carried =
                step.url.contains(token) || step.form.iter().any(|p| p.value.contains(token));
            if !carried {
                failures.push("begin_login does not send the host's state_token to the IdP".into());
            }
        }
        Err(error) => failures.push(format!("begin_login failed with good settings: {error}")),
    }

    // 4. Garbage callbacks are refused without panicking.
    let state = begun.map(|b| b.state).unwrap_or_default();
    let long = "A".repeat(64 * 1024);
    let garbage: Vec<(Vec<Pair>, RVec<u8>)> = vec![
        (vec![], state.clone()),
        (vec![], RVec::new()),
        (
            vec![Pair::new("state", token), Pair::new("code", "garbage")],
            RVec::from(b"\xff\x00garbage".to_vec()),
        ),
        (
            vec![
                Pair::new("state", "wrong"),
                Pair::new("code", long.as_str()),
            ],
            state.clone(),
        ),
        (
            vec![
                Pair::new("SAMLResponse", "%%%not-base64"),
                Pair::new("RelayState", token),
            ],
            state.clone(),
        ),
        (vec![Pair::new("error", "access_denied")], state),
    ];
    for (params, state) in garbage {
        let callback = CallbackRequest {
            callback_url: request.callback_url.clone(),
            query: params.clone().into(),
            form: params.clone().into(),
            state,
        };
        match idp.complete_login(host(), callback).into_result() {
            Ok(identity) => failures.push(format!(
                "a garbage callback {params:?} signed in {:?}",
                identity.subject
            )),
            Err(error) if error.kind == ErrorKind::INTERNAL => {
                failures.push(format!(
                    "a garbage callback caused an internal error (a panic?): {}",
                    error.message()
                ));
            }
            Err(_) => {}
        }
    }

    // 5. Declared routes are well-formed, and garbage sent to them is refused (a 4xx
    //    reply or an error, with no actions) without panicking.
    let routes = match module.manifest_extension() {
        Some(extension) => match extension().into_result() {
            Ok(extension) => extension.routes().to_vec(),
            Err(error) => {
                failures.push(format!("manifest_extension() failed: {error}"));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    for route in &routes {
        failures.extend(route.problems());
        if route.handling != RouteHandling::INBOUND {
            continue;
        }
        for request in garbage_inbound(route) {
            let described = format!("{} {} {:?}", request.method, route.path, request.query);
            match idp.handle_inbound(host(), request).into_result() {
                Ok(reply) if !is_refusal(&reply) || !reply.actions.is_empty() => {
                    failures.push(format!(
                        "a garbage inbound request {described} was answered {} with {} action(s)",
                        reply.status,
                        reply.actions.len()
                    ))
                }
                Err(error) if error.kind == ErrorKind::INTERNAL => failures.push(format!(
                    "a garbage inbound request {described} caused an internal error (a panic?): {}",
                    error.message()
                )),
                _ => {}
            }
        }
    }
    report(failures);
}

/// Whether a reply refuses: a 4xx or 5xx status, or (for protocols that answer every call
/// with HTTP 200 and say in the body, as Totara Connect's JSend does) a JSON body whose
/// `status` is `fail` or `error`.
fn is_refusal(reply: &crate::InboundReply) -> bool {
    if reply.status >= 400 {
        return true;
    }
    let body: Option<Value> = serde_json::from_slice(reply.body.as_slice()).ok();
    reply.status == 200
        && body
            .as_ref()
            .and_then(|b| b.get("status"))
            .and_then(Value::as_str)
            .is_some_and(|status| status == "fail" || status == "error")
}

/// Requests no real peer would send: empty, binary, oversized parameters, wrong types.
fn garbage_inbound(route: &RouteDecl) -> Vec<InboundRequest> {
    let long = "A".repeat(64 * 1024);
    let method = route
        .methods
        .first()
        .map_or_else(|| RString::from("POST"), Clone::clone);
    let request = |query: Vec<Pair>, form: Vec<Pair>, body: Vec<u8>| InboundRequest {
        method: method.clone(),
        route: route.path.clone(),
        host: "gatehouse.test".into(),
        headers: vec![Pair::new(
            "content-type",
            "application/x-www-form-urlencoded",
        )]
        .into(),
        query: query.into(),
        form: form.into(),
        body: body.into(),
    };
    let junk = [
        Pair::new("SAMLRequest", "%%%not-base64"),
        Pair::new("service", "../../etc/passwd"),
        Pair::new("clientidnumber", long.as_str()),
        Pair::new("serversecret", ""),
    ];
    vec![
        request(vec![], vec![], vec![]),
        request(vec![], vec![], b"\xff\x00\xfe garbage".to_vec()),
        request(junk.to_vec(), vec![], vec![]),
        request(vec![], junk.to_vec(), long.clone().into_bytes()),
    ]
}

fn manifest_problems(manifest: &crate::Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let url_safe = |s: &RString| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !url_safe(&manifest.id) {
        problems.push(format!(
            "manifest id {:?} must be non-empty lower-case [a-z0-9_-]",
            manifest.id
        ));
    }
    if !url_safe(&manifest.protocol) {
        problems.push(format!(
            "manifest protocol {:?} must be non-empty lower-case [a-z0-9_-]",
            manifest.protocol
        ));
    }
    if manifest.display_name.trim().is_empty() {
        problems.push("manifest display_name is empty".into());
    }
    if manifest.version.trim().is_empty() {
        problems.push("manifest version is empty".into());
    }
    if manifest.api_version != API_VERSION {
        problems.push(format!(
            "manifest api_version {} differs from {}",
            manifest.api_version, API_VERSION
        ));
    }
    if !manifest.capabilities.contains(Capabilities::LOGIN) {
        problems.push("manifest lacks the login capability".into());
    }
    if manifest.state_parameter.trim().is_empty() {
        problems.push("manifest state_parameter is empty".into());
    }
    if manifest.capabilities.contains(Capabilities::TASKS) == manifest.tasks.is_empty() {
        problems
            .push("manifest must list tasks exactly when it declares the tasks capability".into());
    }
    problems
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "the plugin fails the conformance check:\n- {}",
        failures.join("\n- ")
    );
}
