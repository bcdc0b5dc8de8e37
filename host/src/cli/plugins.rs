//! `gatehouse plugins`: each configured plugin library and whether it loaded.

use std::{path::PathBuf, process::ExitCode};

use gatehouse::{plugins::load_all, startup};

use super::{
    Format,
    load::{print_diagnostics, read_config_as},
};

/// `gatehouse plugins`: the table of every `[[plugin]]`, printed even when other parts of
/// the file have errors (they are printed first, on standard error), since a library that
/// does not load is often why the admin is looking. Exit status 1 when a library failed to
/// load or the file has errors.
pub(crate) fn list_plugins(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let loaded = match read_config_as(path, format) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let file_has_errors = loaded.has_errors();
    if file_has_errors {
        print_diagnostics(&loaded.diagnostics, &loaded.source, Format::Human);
    }
    let tables = &loaded.plugin_tables;
    let requests = startup::load_requests_in(&tables.plugins, &tables.plugin_dir);
    let report = load_all(&requests, tables.dev_mode);
    let mut rows = Vec::new();
    for entry in &tables.plugins {
        let path = entry.library_path(&tables.plugin_dir);
        let loaded = report
            .loaded
            .iter()
            .find(|p| p.info.id == entry.id && p.info.path == path);
        let failure = report.failures.iter().find(|f| f.id == entry.id);
        let (status, detail) = match (entry.enabled, loaded, failure) {
            (false, _, _) => ("disabled", String::new()),
            (true, Some(_), _) => ("loaded", String::new()),
            (true, None, Some(failure)) => (
                "failed",
                format!("{}; fix: {}", failure.reason_text(), failure.fix()),
            ),
            (true, None, None) => ("failed", "not loaded".to_owned()),
        };
        let info = loaded.map(|p| &p.info);
        rows.push(serde_json::json!({
            "id": entry.id,
            "library": path.display().to_string(),
            "protocol": info.map(|i| i.protocol.clone()),
            "version": info.map(|i| i.version.clone()),
            "api_version": info.map(|i| i.api_version.to_string()),
            "capabilities": info.map(|i| i.capabilities.names()),
            "routes": info.map(|i| i.routes.iter().map(route_text).collect::<Vec<_>>()),
            "status": status,
            "reason": (!detail.is_empty()).then_some(detail),
        }));
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({ "plugins": rows, "diagnostics": loaded.diagnostics })
        ),
        Format::Human => {
            println!(
                "{:<14} {:<10} {:<9} {:<5} {:<9} LIBRARY",
                "ID", "PROTOCOL", "VERSION", "API", "STATUS"
            );
            for row in &rows {
                let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<14} {:<10} {:<9} {:<5} {:<9} {}",
                    text("id"),
                    text("protocol"),
                    text("version"),
                    text("api_version"),
                    text("status"),
                    text("library")
                );
                if let Some(reason) = row["reason"].as_str() {
                    println!("    {reason}");
                }
                for route in row["routes"].as_array().into_iter().flatten() {
                    println!("    serves {}", route.as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(if report.failures.is_empty() && !file_has_errors {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A declared plugin route as `gatehouse plugins` shows it: `POST /sso/{idp}/notify`.
pub(crate) fn route_text(route: &gatehouse_plugin_api::RouteDecl) -> String {
    use gatehouse_plugin_api::{RouteHandling, RouteMount};
    let methods: Vec<&str> = route.methods.iter().map(|m| m.as_str()).collect();
    let path = if route.mount == RouteMount::BELOW_IDP {
        format!("/sso/{{idp}}/{}", route.path)
    } else {
        route.path.to_string()
    };
    let kind = if route.handling == RouteHandling::BROWSER_CALLBACK {
        " (browser callback)"
    } else {
        ""
    };
    format!("{} {path}{kind}", methods.join("|"))
}
