//! Connect's API versions (1 and 2, on both sides, in Totara 12 and 13) and their
//! negotiation, and the client types a server accepts. Not the handshake itself: which calls
//! to make is the client plugin's.

use std::fmt;

/// The lowest API version either side speaks.
pub const MIN_API_VERSION: u8 = 1;
/// The highest API version either side speaks.
pub const MAX_API_VERSION: u8 = 2;

/// An API version both sides support (1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion(u8);

impl ApiVersion {
    pub const V1: ApiVersion = ApiVersion(1);
    pub const V2: ApiVersion = ApiVersion(2);

    /// The version numbered `number`, if it is in [1, 2].
    pub fn new(number: i64) -> Option<ApiVersion> {
        let number = u8::try_from(number).ok()?;
        (MIN_API_VERSION..=MAX_API_VERSION)
            .contains(&number)
            .then_some(ApiVersion(number))
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self.0
    }

    /// Version 2 adds `profile_fields` and `jobs` to users, and positions and organisations.
    pub fn has_v2_data(self) -> bool {
        self.0 >= 2
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The client's choice from the server's range, as `auth_connect\util::select_api_version`
/// makes it: nothing for an empty or disjoint range, otherwise the highest version both
/// speak.
pub fn select_api_version(min: i64, max: i64) -> Option<ApiVersion> {
    let (ours_min, ours_max) = (i64::from(MIN_API_VERSION), i64::from(MAX_API_VERSION));
    if min > max || max < ours_min || min > ours_max {
        return None;
    }
    ApiVersion::new(max.min(ours_max))
}

/// The `clienttype` a client declares: `totaralms` (Totara Learn, and Gatehouse) or
/// `totarasocial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientType {
    TotaraLms,
    TotaraSocial,
}

impl ClientType {
    /// Exactly `totaralms` or `totarasocial` (the original compares with `!==`).
    pub fn parse(text: &str) -> Option<ClientType> {
        match text {
            "totaralms" => Some(ClientType::TotaraLms),
            "totarasocial" => Some(ClientType::TotaraSocial),
            _ => None,
        }
    }

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::TotaraLms => "totaralms",
            ClientType::TotaraSocial => "totarasocial",
        }
    }
}
