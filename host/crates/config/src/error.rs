//! Why a configuration file could not be used at all (unreadable, or not TOML): the only
//! failures of loading. It is not for findings about the content; those are diagnostics.

use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, codes};
use crate::position::Location;

/// The file could not be read or parsed (`gatehouse check` exits with status 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{location}: not valid TOML: {message}", path.display())]
    Parse {
        path: PathBuf,
        location: Location,
        message: String,
    },
}

impl LoadError {
    /// The same failure as a diagnostic (`read-error` or `syntax-error`), for `check`'s output.
    pub fn to_diagnostic(&self) -> Diagnostic {
        match self {
            LoadError::Read { path, source } => Diagnostic::error(
                codes::READ_ERROR,
                format!("could not read the configuration file: {source}"),
                path.clone(),
                Location::default(),
            )
            .with_help(
                "check the path (--config or GATEHOUSE_CONFIG) and that the file is readable",
            ),
            LoadError::Parse {
                path,
                location,
                message,
            } => Diagnostic::error(
                codes::SYNTAX_ERROR,
                format!("not valid TOML: {message}"),
                path.clone(),
                *location,
            )
            .with_help("fix the TOML syntax at this position (see https://toml.io)"),
        }
    }
}
