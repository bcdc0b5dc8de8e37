//! `gatehouse check`: every check without serving.

use std::{path::PathBuf, process::ExitCode};

use gatehouse::config::Severity;

use super::{
    Format,
    load::{check_all, print_diagnostics, read_config_as},
};

pub(crate) fn check(path: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let loaded = match read_config_as(path, format) {
        Ok(read) => read.loaded,
        Err(unreadable) => return Ok(unreadable),
    };
    let (diagnostics, source, _) = check_all(loaded)?;
    if format == Format::Human && diagnostics.is_empty() {
        eprintln!("ok: no problems found");
    } else {
        // The rendering ends with the summary line ("2 errors, 1 warning") itself.
        print_diagnostics(&diagnostics, &source, format);
    }
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    Ok(if errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
