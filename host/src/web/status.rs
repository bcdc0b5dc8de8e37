//! How this host is doing, for the people and machines that run it: `GET /admin/status`
//! (administrators; an HTML page, or JSON with `Accept: application/json`) and `GET /readyz`
//! (readiness: plugins loaded and the database answering). Not `/healthz`, the cheap
//! liveness probe (`account`), and not `/metrics`. It reads and shows; it changes nothing.

use std::{collections::HashMap, fmt::Write as _, time::Duration};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use gatehouse_store::{Backend, IdpActivity};
use html_escape::encode_text as text;
use serde_json::{Value, json};

use crate::{
    site::Site,
    state::AppState,
    tasks::{self, TaskStatus},
};

use super::{
    error::{self, AppResult},
    extract::{Admin, Json},
    pages,
};

/// How long a database ping may take before the database counts as unreachable: a load
/// balancer's probe must answer well within its own timeout, even when the pool would wait
/// 30 s for a connection.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the status page's reads (sign-in counts, task runs) may take in all.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The two windows the refusals are counted over.
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Whether the database answers a trivial query within [`PING_TIMEOUT`]; why not otherwise.
async fn ping(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(PING_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", PING_TIMEOUT.as_secs_f32())),
    }
}

/// The enabled plugins whose library is not loaded (none in a site that serves, since such
/// a configuration is refused; said anyway, as readiness is about what is true now).
fn plugins_not_loaded(site: &Site) -> Vec<String> {
    site.plugins()
        .iter()
        .filter(|plugin| plugin.enabled && plugin.info.is_none())
        .map(|plugin| plugin.id.clone())
        .collect()
}

/// `GET /readyz`: 200 when every enabled plugin is loaded and the database answers within
/// [`PING_TIMEOUT`]; 503 naming what failed otherwise. The database's error stays in the log:
/// the probe is public.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let not_loaded = plugins_not_loaded(&state.site());
    let database = ping(&state).await;
    if let Err(error) = &database {
        tracing::error!(%error, "readiness: the database does not answer");
    }
    let mut failed = Vec::new();
    if !not_loaded.is_empty() {
        failed.push("plugins");
    }
    if database.is_err() {
        failed.push("database");
    }
    let body = json!({
        "status": if failed.is_empty() { "ready" } else { "not_ready" },
        "failed": failed,
        "plugins": if not_loaded.is_empty() { "ok" } else { "not_loaded" },
        "plugins_not_loaded": not_loaded,
        "database": if database.is_ok() { "ok" } else { "unreachable" },
    });
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Whether the client asked for JSON (`Accept: application/json`, among others or alone).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| range.split(';').next().unwrap_or_default().trim() == "application/json")
}

/// Errors of `/admin/status` in the form the client asked for: JSON to a JSON client (a
/// script polling the page), the HTML error page to a browser.
pub async fn errors_as_asked(request: Request, next: Next) -> Response {
    if wants_json(request.headers()) {
        error::json_errors(request, next).await
    } else {
        next.run(request).await
    }
}

/// `GET /admin/status`: version, configuration, plugins, IdPs, tasks and the database.
pub async fn show(
    State(state): State<AppState>,
    _: Admin,
    headers: HeaderMap,
) -> AppResult<Response> {
    let report = gather(&state).await;
    Ok(if wants_json(&headers) {
        Json(report).into_response()
    } else {
        page(&report).into_response()
    })
}

/// Everything the page shows, as JSON (which the HTML page is rendered from).
async fn gather(state: &AppState) -> Value {
    let site = state.site();
    let now = state.now();
    let database = ping(state).await;
    let catalogue = tasks::catalogue(&site, &state.settings().tasks);
    // Only a database that answered is asked more; the reads share one time limit, so a
    // database that stops answering now makes the page say so instead of hanging.
    let (activity, task_statuses, read_error) = if database.is_ok() {
        let reads = async {
            let activity = state
                .store()
                .idp_activity(now.saturating_sub(DAY), now.saturating_sub(HOUR))
                .await?;
            let statuses = tasks::statuses(Some(state.store()), &catalogue, now).await?;
            Ok::<_, gatehouse_store::StoreError>((activity, statuses))
        };
        match tokio::time::timeout(READ_TIMEOUT, reads).await {
            Ok(Ok((activity, statuses))) => (activity, statuses, None),
            Ok(Err(error)) => (Vec::new(), Vec::new(), Some(error.to_string())),
            Err(_) => (
                Vec::new(),
                Vec::new(),
                Some(format!(
                    "the reads took longer than {} s",
                    READ_TIMEOUT.as_secs()
                )),
            ),
        }
    } else {
        (Vec::new(), Vec::new(), None)
    };
    let task_statuses = if task_statuses.is_empty() {
        // Without the runs, the schedule is still known.
        tasks::statuses(None, &catalogue, now)
            .await
            .unwrap_or_default()
    } else {
        task_statuses
    };
    let history_known = database.is_ok() && read_error.is_none();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now": now,
        "configuration": {
            "path": state.config_path().display().to_string(),
            "loaded_at": state.loaded_at(),
        },
        "database": {
            "backend": match state.store().backend() {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            },
            "reachable": database.is_ok(),
            "error": database.err().or(read_error),
        },
        "plugins": plugin_rows(&site),
        "idps": idp_rows(state, &site, &activity, history_known),
        "tasks": {
            "scheduler": state.settings().tasks.scheduler,
            "tasks": task_statuses.iter().map(TaskStatus::to_json).collect::<Vec<_>>(),
        },
    })
}

fn plugin_rows(site: &Site) -> Vec<Value> {
    site.plugins()
        .iter()
        .map(|plugin| {
            let info = plugin.info.as_ref();
            json!({
                "id": plugin.id,
                "status": match (plugin.enabled, info) {
                    (false, _) => "disabled",
                    (true, Some(_)) => "loaded",
                    (true, None) => "not_loaded",
                },
                "loaded": info.is_some(),
                "protocol": info.map(|i| i.protocol.clone()),
                "version": info.map(|i| i.version.clone()),
                "api_version": info.map(|i| i.api_version.to_string()),
                "library": info.map(|i| i.path.display().to_string()),
            })
        })
        .collect()
}

/// Each served IdP; `last_success_at` and `refusals` are `null` when the database could not
/// be read (unknown, which is not "never").
fn idp_rows(
    state: &AppState,
    site: &Site,
    activity: &[IdpActivity],
    history_known: bool,
) -> Vec<Value> {
    let by_id: HashMap<&str, &IdpActivity> =
        activity.iter().map(|a| (a.idp_id.as_str(), a)).collect();
    site.all_idps()
        .map(|idp| {
            let health = state.caller().health(idp.id());
            let seen = by_id.get(idp.id());
            let refusals = history_known.then(|| {
                json!({
                    "last_hour": seen.map_or(0, |a| a.refusals_recent),
                    "last_day": seen.map_or(0, |a| a.refusals),
                })
            });
            json!({
                "id": idp.id(),
                "name": idp.config.name,
                "domain": idp.config.domain,
                "plugin": idp.config.plugin,
                "behaviour": idp.config.behaviour.as_str(),
                "status": {
                    "breaker": health.breaker.as_str(),
                    "running_calls": health.running,
                },
                "last_success_at": seen.and_then(|a| a.last_success_at),
                "refusals": refusals,
            })
        })
        .collect()
}

/// A JSON value as table text: strings as they are, numbers and booleans written out,
/// `null` as a dash.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Unix time as `2026-12-03 17:32:44 UTC`, or a dash for `null`.
fn when(value: &Value) -> String {
    value
        .as_i64()
        .map_or_else(|| "–".to_owned(), crate::clock::utc_text)
}

/// A table of `rows` (each already text), every cell escaped.
fn table(out: &mut String, caption: &str, headings: &[&str], rows: &[Vec<String>]) {
    let _ = write!(out, "<h2>{}</h2>", text(caption));
    if rows.is_empty() {
        out.push_str("<p>None.</p>");
        return;
    }
    out.push_str("<table><thead><tr>");
    for heading in headings {
        let _ = write!(out, "<th scope=\"col\">{}</th>", text(heading));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for value in row {
            let _ = write!(out, "<td>{}</td>", text(value));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The HTML page, from the JSON report. Every value is escaped: IdP ids, names, task
/// summaries and errors come from the configuration, plugins and the database.
fn page(report: &Value) -> axum::response::Html<String> {
    let mut body = String::from("<h1>Status</h1>");
    let database = &report["database"];
    let _ = write!(
        body,
        "<p>Gatehouse {}. Configuration <code>{}</code>, loaded {}.</p>",
        text(&cell(&report["version"])),
        text(&cell(&report["configuration"]["path"])),
        text(&when(&report["configuration"]["loaded_at"])),
    );
    if database["reachable"] == true && database["error"].is_null() {
        let _ = write!(
            body,
            "<p role=\"status\">Database ({}): answering.</p>",
            text(&cell(&database["backend"]))
        );
    } else {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\">Database ({}): {}</p>",
            text(&cell(&database["backend"])),
            text(&format!(
                "{} {}",
                if database["reachable"] == true {
                    "answers, but could not be read:"
                } else {
                    "does not answer:"
                },
                cell(&database["error"])
            ))
        );
    }
    let rows = |key: &str, row: &dyn Fn(&Value) -> Vec<String>| -> Vec<Vec<String>> {
        report[key]
            .as_array()
            .map(|items| items.iter().map(row).collect())
            .unwrap_or_default()
    };
    let plugins = rows("plugins", &|p| {
        ["id", "protocol", "version", "api_version", "status"]
            .iter()
            .map(|key| cell(&p[*key]))
            .collect()
    });
    table(
        &mut body,
        "Plugins",
        &["Plugin", "Protocol", "Version", "Plugin API", "Status"],
        &plugins,
    );
    let idps = rows("idps", &|idp| {
        vec![
            cell(&idp["id"]),
            cell(&idp["name"]),
            cell(&idp["domain"]),
            cell(&idp["plugin"]),
            cell(&idp["behaviour"]),
            cell(&idp["status"]["breaker"]),
            when(&idp["last_success_at"]),
            cell(&idp["refusals"]["last_hour"]),
            cell(&idp["refusals"]["last_day"]),
        ]
    });
    table(
        &mut body,
        "Identity providers",
        &[
            "IdP",
            "Name",
            "Domain",
            "Plugin",
            "Behaviour",
            "Breaker",
            "Last sign-in",
            "Refusals (1 h)",
            "Refusals (24 h)",
        ],
        &idps,
    );
    let tasks = report["tasks"]["tasks"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|task| {
                    let last = &task["last_run"];
                    vec![
                        cell(&task["task"]),
                        cell(&task["idp"]),
                        format!("{} min", cell(&task["every_minutes"])),
                        when(&last["started_at"]),
                        cell(&last["outcome"]),
                        match (&last["error"], &last["summary"]) {
                            (Value::String(error), _) => error.clone(),
                            (_, summary) => cell(summary),
                        },
                        if task["enabled"] == true {
                            when(&task["next_due_at"])
                        } else {
                            "disabled".to_owned()
                        },
                    ]
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    table(
        &mut body,
        "Scheduled tasks",
        &[
            "Task", "IdP", "Every", "Last run", "Outcome", "Summary", "Next run",
        ],
        &tasks,
    );
    if report["tasks"]["scheduler"] == false {
        body.push_str(
            "<p class=\"notice\">This host runs no tasks (<code>[host] scheduler = false</code>); other hosts on the database may.</p>",
        );
    }
    body.push_str("<p><a href=\"/\">Home</a></p>");
    pages::layout("Status", &body)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_is_asked_for_by_media_range() {
        let asks = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            wants_json(&headers)
        };
        assert!(asks("application/json"));
        assert!(asks("text/html;q=0.9, application/json;q=1"));
        assert!(!asks("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(!asks("application/jsonx"));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let report = json!({
            "version": "1.0",
            "configuration": { "path": "/etc/<g>.toml", "loaded_at": 0 },
            "database": { "backend": "sqlite", "reachable": false, "error": "<gone>" },
            "plugins": [],
            "idps": [{ "id": "<script>x</script>", "status": {}, "refusals": null }],
            "tasks": { "scheduler": true, "tasks": [] },
        });
        let html = page(&report).0;
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("/etc/&lt;g&gt;.toml"), "{html}");
        assert!(html.contains("&lt;gone&gt;"), "{html}");
    }
}
