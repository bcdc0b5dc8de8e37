//! Registration: the server's POST to the client's `sep_setup.php` (its fields, in the
//! original's order), the client's reading of it in `sep_setup.php`'s order with its exact
//! error texts, and the nested `update_api_version` call-back the client makes before it
//! answers. The duplicate checks and the call-back itself need stored state and HTTP: they
//! are the caller's, with the texts from here.

use std::fmt;

use thiserror::Error;

use crate::jsend::JSend;
use crate::sep::{ServerService, form_value, server_call_form, setup_secret_matches};
use crate::token::{Token, TokenError, clean_alphanum};
use crate::version::{
    ApiVersion, ClientType, MAX_API_VERSION, MIN_API_VERSION, select_api_version,
};

/// What the server sends to `<clienturl>/auth/connect/sep_setup.php`.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupRequest {
    pub setup_secret: Token,
    pub server_idnumber: Token,
    pub server_secret: Token,
    /// The server's `wwwroot` (no trailing `/`).
    pub server_url: String,
    /// The server site's full name.
    pub server_name: String,
    pub client_idnumber: Token,
    pub client_secret: Token,
    pub min_api_version: i64,
    pub max_api_version: i64,
}

impl fmt::Debug for SetupRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupRequest")
            .field("server_url", &self.server_url)
            .field("server_name", &self.server_name)
            .field("min_api_version", &self.min_api_version)
            .field("max_api_version", &self.max_api_version)
            .finish_non_exhaustive()
    }
}

impl SetupRequest {
    /// A request offering this crate's API range (1–2), as `add_client` sends it.
    pub fn new(
        setup_secret: Token,
        server_idnumber: Token,
        server_secret: Token,
        server_url: &str,
        server_name: &str,
        client_idnumber: Token,
        client_secret: Token,
    ) -> SetupRequest {
        SetupRequest {
            setup_secret,
            server_idnumber,
            server_secret,
            server_url: server_url.trim_end_matches('/').to_owned(),
            server_name: server_name.to_owned(),
            client_idnumber,
            client_secret,
            min_api_version: i64::from(MIN_API_VERSION),
            max_api_version: i64::from(MAX_API_VERSION),
        }
    }

    /// The POST form in `util::add_client`'s order: `setupsecret`, `serveridnumber`,
    /// `serversecret`, `serverurl`, `servername`, `clientidnumber`, `clientsecret`,
    /// `minapiversion`, `maxapiversion`.
    pub fn to_form(&self) -> Vec<(String, String)> {
        [
            ("setupsecret", self.setup_secret.as_str().to_owned()),
            ("serveridnumber", self.server_idnumber.as_str().to_owned()),
            ("serversecret", self.server_secret.as_str().to_owned()),
            ("serverurl", self.server_url.clone()),
            ("servername", self.server_name.clone()),
            ("clientidnumber", self.client_idnumber.as_str().to_owned()),
            ("clientsecret", self.client_secret.as_str().to_owned()),
            ("minapiversion", self.min_api_version.to_string()),
            ("maxapiversion", self.max_api_version.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A registration the client accepted so far: the server's details and the version chosen.
#[derive(Clone, PartialEq, Eq)]
pub struct AcceptedSetup {
    pub server_idnumber: Token,
    pub server_secret: Token,
    pub server_url: String,
    pub server_name: String,
    pub client_idnumber: Token,
    pub client_secret: Token,
    pub api_version: ApiVersion,
}

impl fmt::Debug for AcceptedSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptedSetup")
            .field("server_url", &self.server_url)
            .field("server_name", &self.server_name)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// Why a client refuses a registration. The texts are the original's (typos included),
/// except the two marked as Gatehouse's own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SetupRefusal {
    /// The client plugin is off, no registration is open (or it expired), or the secret
    /// differs.
    #[error("invalid setup secret")]
    InvalidSetupSecret,
    /// Moodle's `missingparam` text (§8.6).
    #[error("A required parameter ({0}) was missing")]
    MissingParameter(&'static str),
    #[error("api version not supported")]
    ApiVersionNotSupported,
    /// Gatehouse's own: a credential that is not 40 lowercase hex could not have been made
    /// by a Connect server (the original stores whatever it got).
    #[error("invalid {field}: {error}")]
    MalformedCredential {
        field: &'static str,
        error: TokenError,
    },
    /// Gatehouse's own: `serverurl` is not an http(s) URL (the original cleans it to empty
    /// and fails later, at the call-back).
    #[error("invalid serverurl")]
    MalformedServerUrl,
    /// Gatehouse's own: the client's settings name the one server it registers with
    /// (`server_url`), and `serverurl` is another.
    #[error("serverurl not allowed")]
    ServerUrlNotAllowed,
    #[error("dupplicate server idnumber")]
    DuplicateServerIdnumber,
    #[error("dupplicate client idnumber")]
    DuplicateClientIdnumber,
}

impl SetupRefusal {
    /// The `error` reply.
    pub fn to_jsend(&self) -> JSend {
        JSend::error(self.to_string())
    }
}

/// PHP's `(int)` of a POST value (Moodle's `PARAM_INT`): leading whitespace, an optional
/// sign and the leading digits; anything else is 0.
pub fn php_intval(text: &str) -> i64 {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}']);
    let (negative, rest) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    let magnitude = digits
        .parse::<i64>()
        .unwrap_or(if digits.is_empty() { 0 } else { i64::MAX });
    if negative { -magnitude } else { magnitude }
}

/// `sep_setup.php` up to the duplicate checks, in its order: the setup secret (`expected` is
/// the open registration's secret, `None` when there is none or it expired; `enabled` is
/// whether the client plugin is on), the two API numbers, the version choice, then the
/// server's details.
pub fn read_setup_form(
    form: &[(String, String)],
    expected: Option<&Token>,
    enabled: bool,
) -> Result<AcceptedSetup, SetupRefusal> {
    let presented = clean_alphanum(form_value(form, "setupsecret").unwrap_or_default());
    let secret_ok = enabled
        && !presented.is_empty()
        && expected.is_some_and(|stored| setup_secret_matches(stored, &presented));
    if !secret_ok {
        return Err(SetupRefusal::InvalidSetupSecret);
    }
    let required =
        |key: &'static str| form_value(form, key).ok_or(SetupRefusal::MissingParameter(key));
    let min = php_intval(required("minapiversion")?);
    let max = php_intval(required("maxapiversion")?);
    let api_version = select_api_version(min, max).ok_or(SetupRefusal::ApiVersionNotSupported)?;
    let token = |key: &'static str| -> Result<Token, SetupRefusal> {
        Token::parse(&clean_alphanum(required(key)?))
            .map_err(|error| SetupRefusal::MalformedCredential { field: key, error })
    };
    let server_idnumber = token("serveridnumber")?;
    let server_secret = token("serversecret")?;
    let server_url = required("serverurl")?;
    if !is_http_url(server_url) {
        return Err(SetupRefusal::MalformedServerUrl);
    }
    let server_name = required("servername")?.to_owned();
    let client_idnumber = token("clientidnumber")?;
    let client_secret = token("clientsecret")?;
    Ok(AcceptedSetup {
        server_idnumber,
        server_secret,
        server_url: server_url.trim_end_matches('/').to_owned(),
        server_name,
        client_idnumber,
        client_secret,
        api_version,
    })
}

/// An absolute http(s) URL with a host and no whitespace or control characters.
fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

impl AcceptedSetup {
    /// The call-back the client makes before it answers: `update_api_version` on the
    /// server's SEP with `serveridnumber`, `serversecret`, `service`, `apiversion`,
    /// `clienttype=totaralms`.
    pub fn update_api_version_form(&self) -> Vec<(String, String)> {
        server_call_form(
            &self.server_idnumber,
            &self.server_secret,
            ServerService::UpdateApiVersion,
            vec![
                ("apiversion", self.api_version.to_string()),
                ("clienttype", ClientType::TotaraLms.as_str().to_owned()),
            ],
        )
    }
}

/// The client's answer to the server once the call-back came back: its own
/// `{"status":"success","data":[]}`, or, when the call-back did not succeed, the server's
/// JSend reply relayed unchanged (with a transport failure as Totara reports it locally).
pub fn setup_answer(callback: &JSend) -> JSend {
    if callback.is_success() {
        JSend::success_empty()
    } else {
        callback.clone()
    }
}
