//! Loads plugin libraries through abi_stable and explains every way that can fail.
//!
//! It is not a sandbox: a library's initialisers run at `dlopen`, so only load
//! libraries you trust. Libraries are never unloaded (abi_stable cannot), and each is
//! opened with `lib_header_from_path` because `RootModule::load_from_file` caches the
//! first module of an interface and would hand every later plugin the first one.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use abi_stable::{
    StableAbi,
    abi_stability::check_layout_compatibility,
    library::{LibHeader, LibraryError, lib_header_from_path},
};
use gatehouse_plugin_api::{
    API_VERSION, ApiVersion, Capabilities, Manifest, PluginModule_Ref, RouteDecl,
};

/// One library the configuration asks for.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The id `plugins.toml` gives the plugin.
    pub id: String,
    pub path: PathBuf,
}

/// A plugin's manifest in plain Rust, for the rest of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    pub id: String,
    pub protocol: String,
    pub display_name: String,
    pub version: String,
    pub api_version: ApiVersion,
    pub capabilities: Capabilities,
    pub attributes: Vec<String>,
    pub tasks: Vec<String>,
    pub state_parameter: String,
    /// The routes it serves besides start and callback (plugin API 1.1; none before).
    pub routes: Vec<RouteDecl>,
    pub path: PathBuf,
}

impl PluginInfo {
    fn from_manifest(manifest: Manifest, routes: Vec<RouteDecl>, path: &Path) -> Self {
        Self {
            id: manifest.id.into_string(),
            protocol: manifest.protocol.into_string(),
            display_name: manifest.display_name.into_string(),
            version: manifest.version.into_string(),
            api_version: manifest.api_version,
            capabilities: manifest.capabilities,
            attributes: manifest
                .attributes
                .into_iter()
                .map(|a| a.into_string())
                .collect(),
            tasks: manifest
                .tasks
                .into_iter()
                .map(|t| t.into_string())
                .collect(),
            state_parameter: manifest.state_parameter.into_string(),
            routes,
            path: path.to_owned(),
        }
    }
}

/// A plugin library that loaded and passed every check.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub module: PluginModule_Ref,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Why a library was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadFailureReason {
    Missing,
    NotASharedLibrary {
        detail: String,
    },
    NoRootModule,
    IncompatibleAbiStable {
        detail: String,
    },
    IncompatibleApi {
        library: String,
    },
    /// Built against a newer minor version of the plugin API than this host's.
    NewerApi {
        library: String,
    },
    /// A route it declares is malformed or clashes with the host's own paths.
    BadRoute {
        detail: String,
    },
    LayoutMismatch {
        summary: String,
    },
    InitialisationFailed {
        detail: String,
    },
    ManifestFailed {
        detail: String,
    },
    IdMismatch {
        declared: String,
    },
    DuplicateId {
        declared: String,
        other: PathBuf,
    },
    DevOnly,
}

/// A library that was refused, with the reason and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub id: String,
    pub path: PathBuf,
    pub reason: LoadFailureReason,
}

impl LoadFailure {
    /// The reason in one line.
    pub fn reason_text(&self) -> String {
        use LoadFailureReason::*;
        match &self.reason {
            Missing => "the file does not exist".into(),
            NotASharedLibrary { detail } => format!("not a loadable shared library ({detail})"),
            NoRootModule => {
                "the library has no Gatehouse root module (it is not a Gatehouse plugin)".into()
            }
            IncompatibleAbiStable { detail } => {
                format!("built with an incompatible abi_stable ({detail})")
            }
            IncompatibleApi { library } => {
                format!(
                    "built against plugin API {library}, but this host speaks plugin API {API_VERSION}"
                )
            }
            NewerApi { library } => {
                format!("built against plugin API {library}, newer than this host's {API_VERSION}")
            }
            BadRoute { detail } => format!("it declares a bad route: {detail}"),
            LayoutMismatch { summary } => {
                format!("its plugin ABI layout differs from this host's: {summary}")
            }
            InitialisationFailed { detail } => {
                format!("its root module failed to initialise: {detail}")
            }
            ManifestFailed { detail } => format!("its manifest could not be read: {detail}"),
            IdMismatch { declared } => {
                format!(
                    "the library's manifest declares id `{declared}`, but plugins.toml configures it as `{}`",
                    self.id
                )
            }
            DuplicateId { declared, other } => {
                format!(
                    "declares id `{declared}`, which {} also declares",
                    other.display()
                )
            }
            DevOnly => "a development-only plugin, refused because [host] dev_mode is off".into(),
        }
    }

    /// For a missing library: the name of the library in the same directory that is closest
    /// to the one asked for (a typo in `library`), as `library` would name it.
    fn nearest_library(&self) -> Option<String> {
        let stem = |file_name: &str| {
            file_name
                .strip_prefix(std::env::consts::DLL_PREFIX)?
                .strip_suffix(std::env::consts::DLL_SUFFIX)
                .map(str::to_owned)
        };
        let wanted = stem(self.path.file_name()?.to_str()?)?;
        let present: Vec<String> = std::fs::read_dir(self.path.parent()?)
            .ok()?
            .filter_map(|entry| stem(entry.ok()?.file_name().to_str()?))
            .collect();
        let names: Vec<&str> = present.iter().map(String::as_str).collect();
        gatehouse_config::closest(&wanted, &names).map(str::to_owned)
    }

    /// How to fix it, in one line.
    pub fn fix(&self) -> String {
        use LoadFailureReason::*;
        match &self.reason {
            Missing => match self.nearest_library() {
                Some(name) => format!(
                    "did you mean `library = \"{name}\"`? (it is in {}); otherwise build the plugin (`cargo build --release --workspace`) or correct `plugin_dir`",
                    self.path.parent().map_or_else(String::new, |d| d.display().to_string())
                ),
                None => "build the plugin (`cargo build --release --workspace`) or correct `library` / `plugin_dir`".into(),
            },
            NotASharedLibrary { .. } | NoRootModule => {
                "point `library` at a plugin built with gatehouse-plugin-api's export_plugin!".into()
            }
            IncompatibleAbiStable { .. } | IncompatibleApi { .. } | LayoutMismatch { .. } => {
                format!("rebuild the plugin against gatehouse-plugin-api {}.{}", API_VERSION.major, API_VERSION.minor)
            }
            NewerApi { .. } => format!(
                "upgrade Gatehouse, or use a build of the plugin for plugin API {}.{}",
                API_VERSION.major, API_VERSION.minor
            ),
            InitialisationFailed { .. } | ManifestFailed { .. } | BadRoute { .. } => {
                "report this to the plugin's author".into()
            }
            IdMismatch { declared } => format!("set `id = \"{declared}\"` in this [[plugin]] (and in the IdPs that use it)"),
            DuplicateId { .. } => "configure only one library per plugin id".into(),
            DevOnly => "set `dev_mode = true` in [host] (never in production) or disable the plugin".into(),
        }
    }
}

impl fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}` ({}): {}; fix: {}",
            self.id,
            self.path.display(),
            self.reason_text(),
            self.fix()
        )
    }
}

/// The outcome of loading every requested library: all successes and all failures.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<LoadedPlugin>,
    pub failures: Vec<LoadFailure>,
}

/// Loads each library, collecting every failure rather than stopping at the first.
pub fn load_all(requests: &[LoadRequest], dev_mode: bool) -> LoadReport {
    let mut report = LoadReport::default();
    let mut by_declared_id: HashMap<String, PathBuf> = HashMap::new();
    for request in requests {
        let failure = |reason| LoadFailure {
            id: request.id.clone(),
            path: request.path.clone(),
            reason,
        };
        let loaded = match load_one(&request.path) {
            Ok(loaded) => loaded,
            Err(reason) => {
                report.failures.push(failure(reason));
                continue;
            }
        };
        let declared = loaded.info.id.clone();
        if let Some(other) = by_declared_id
            .get(&declared)
            .filter(|other| **other != request.path)
        {
            report
                .failures
                .push(failure(LoadFailureReason::DuplicateId {
                    declared,
                    other: other.clone(),
                }));
            continue;
        }
        by_declared_id.insert(declared.clone(), request.path.clone());
        if declared != request.id {
            report
                .failures
                .push(failure(LoadFailureReason::IdMismatch { declared }));
            continue;
        }
        if loaded.info.capabilities.contains(Capabilities::DEV_ONLY) && !dev_mode {
            report.failures.push(failure(LoadFailureReason::DevOnly));
            continue;
        }
        report.loaded.push(loaded);
    }
    report
}

/// Opens one library and checks it, from "does the file exist" to the manifest.
pub fn load_one(path: &Path) -> Result<LoadedPlugin, LoadFailureReason> {
    if !path.is_file() {
        return Err(LoadFailureReason::Missing);
    }
    let header = lib_header_from_path(path).map_err(classify)?;

    // abi_stable records the plugin-api version the library was built with; checking
    // it ourselves first gives a one-line answer instead of a layout dump.
    if let Ok(library) = header.version_strings().parsed() {
        let version = format!("{}.{}", library.major, library.minor);
        if library.major != u32::from(API_VERSION.major) {
            return Err(LoadFailureReason::IncompatibleApi { library: version });
        }
        if library.minor > u32::from(API_VERSION.minor) {
            return Err(LoadFailureReason::NewerApi { library: version });
        }
    }
    let module = checked_root_module(header)?;
    let manifest =
        (module.manifest())()
            .into_result()
            .map_err(|error| LoadFailureReason::ManifestFailed {
                detail: error.to_string(),
            })?;
    // The root module's own field and the manifest must agree; the newer of the two
    // decides, so a library cannot slip past by declaring 1.0 in one of them.
    let declared = [module.api_version(), manifest.api_version];
    if let Some(api) = declared.iter().find(|api| api.major != API_VERSION.major) {
        return Err(LoadFailureReason::IncompatibleApi {
            library: api.to_string(),
        });
    }
    if let Some(api) = declared.iter().find(|api| api.minor > API_VERSION.minor) {
        return Err(LoadFailureReason::NewerApi {
            library: api.to_string(),
        });
    }
    let routes = declared_routes(module)?;
    Ok(LoadedPlugin {
        info: PluginInfo::from_manifest(manifest, routes, path),
        module,
    })
}

/// The library's root module, after checking its layout against this host's with the
/// roles that fit a host newer than its plugins.
///
/// abi_stable checks an *interface* (normally the loader's) against an *implementation*
/// (normally the library) that may have appended more prefix fields than the interface
/// knows: it expects libraries to be as new as their loader or newer. A Gatehouse host is
/// the newer side: it runs plugins built against any earlier 1.x. So the library's layout
/// is checked as the interface and the host's as the implementation: everything the
/// library knows must be exactly what this host has (the same prefix, the same
/// `last_prefix_field`, the same frozen types), and the host may have appended more —
/// vtable methods whose default bodies answer for an older plugin, and root-module
/// fields read as `Option`. A library newer than the host was refused before this by its
/// version.
fn checked_root_module(header: &LibHeader) -> Result<PluginModule_Ref, LoadFailureReason> {
    let library_layout = header
        .layout()
        .ok_or_else(|| LoadFailureReason::LayoutMismatch {
            summary: "the library was built without layout information to check".into(),
        })?;
    let host_layout = <PluginModule_Ref as StableAbi>::LAYOUT;
    check_layout_compatibility(library_layout, host_layout)
        .into_result()
        .map_err(|error| classify(LibraryError::AbiInstability(error)))?;
    // SAFETY: the root module's whole layout was checked just above (with the roles
    // explained there), which is what this function leaves to its caller.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModule_Ref>() }.map_err(classify)
}

/// The routes of a 1.1+ library (a 1.0 library has no `manifest_extension`: none).
fn declared_routes(module: PluginModule_Ref) -> Result<Vec<RouteDecl>, LoadFailureReason> {
    let Some(extension) = module.manifest_extension() else {
        return Ok(Vec::new());
    };
    let extension =
        extension()
            .into_result()
            .map_err(|error| LoadFailureReason::ManifestFailed {
                detail: error.to_string(),
            })?;
    let routes = extension.routes().to_vec();
    if let Some(detail) = routes.iter().flat_map(RouteDecl::problems).next() {
        return Err(LoadFailureReason::BadRoute { detail });
    }
    Ok(routes)
}

fn classify(error: LibraryError) -> LoadFailureReason {
    match error {
        LibraryError::OpenError { err, .. } => LoadFailureReason::NotASharedLibrary {
            detail: short_dl_error(&err.to_string()),
        },
        LibraryError::GetSymbolError { .. } => LoadFailureReason::NoRootModule,
        LibraryError::InvalidAbiHeader(header) => LoadFailureReason::IncompatibleAbiStable {
            detail: format!("{header:?}"),
        },
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => {
            LoadFailureReason::IncompatibleApi {
                library: format!("{}.{}", actual_version.major, actual_version.minor),
            }
        }
        LibraryError::AbiInstability(error) => {
            let full = error.to_string();
            tracing::debug!(layout_error = %full, "plugin ABI layout mismatch (full report)");
            LoadFailureReason::LayoutMismatch {
                summary: summarise_layout_error(&full),
            }
        }
        LibraryError::RootModule { err, .. } => LoadFailureReason::InitialisationFailed {
            detail: err.to_string(),
        },
        other => LoadFailureReason::InitialisationFailed {
            detail: short_dl_error(&other.to_string()),
        },
    }
}

/// dlopen's messages repeat the path; keep the part after the last colon.
fn short_dl_error(message: &str) -> String {
    message
        .rsplit(": ")
        .next()
        .unwrap_or(message)
        .trim()
        .to_owned()
}

/// abi_stable's layout report runs to hundreds of lines; the `Error:` lines near its
/// end say what differs.
fn summarise_layout_error(full: &str) -> String {
    let mut errors: Vec<&str> = full
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("Error:"))
        .map(|line| line.trim_start_matches("Error:").trim())
        .filter(|line| !line.is_empty())
        .collect();
    errors.dedup();
    match errors.len() {
        0 => full
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("layouts differ")
            .trim()
            .to_owned(),
        n if n <= 2 => errors.join("; "),
        n => format!(
            "{} (and {} more differences)",
            errors[..2].join("; "),
            n - 2
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_errors_are_summarised_to_their_error_lines() {
        let dump =
            "lots of layout\n  field: x\nError:too many fields\n...\nError:unexpected field\n";
        assert_eq!(
            summarise_layout_error(dump),
            "too many fields; unexpected field"
        );
    }

    #[test]
    fn dl_errors_keep_the_reason() {
        assert_eq!(
            short_dl_error("/tmp/libx.so: invalid ELF header"),
            "invalid ELF header"
        );
    }
}
