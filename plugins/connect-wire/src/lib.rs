//! The Totara Connect wire format, once, for both halves of Gatehouse's Connect: the client
//! plugin (`plugins/connect`) and the host's server role. JSend replies ([`jsend`]), PHP's
//! JSON quirks ([`php`]), secrets and tokens ([`token`]), API versions ([`version`]), the SEP
//! envelope and its checks ([`sep`]), registration ([`setup`]), each service's request and
//! reply ([`services`]), the user object ([`user`]), `get_user_collections`' cohorts and
//! courses ([`collections`]) and the position and organisation hierarchies ([`hierarchy`]).
//!
//! It is pure: no I/O, no async, no clock, no random source (tokens are made from bytes the
//! caller passes in), no database and no plugin ABI types. Checks that need stored state take
//! that state as arguments. Texts and field names follow the original (Totara 12/13's
//! `totara_connect` and `auth_connect`), read from its source; see
//! `../shared/reference/totara-connect-protocol.md`.

pub mod collections;
pub mod hierarchy;
pub mod jsend;
pub mod listing;
pub mod php;
pub mod sep;
pub mod services;
pub mod setup;
pub mod token;
pub mod user;
pub mod version;

pub use collections::{
    CollectionError, CollectionType, RemoteCollection, RemoteCollections, SharedCohort,
    SharedCourse,
};
pub use hierarchy::{
    HierarchyCustomField, HierarchyFramework, HierarchyItem, HierarchyKind, HierarchyReply,
};
pub use jsend::{JSend, JSendError};
pub use php::PhpValue;
pub use sep::{
    Authorized, ClientService, ClientStanding, SepEnvelope, SepRefusal, ServerService,
    ServerStanding,
};
pub use services::{ClientCall, PresentedToken, ReplyError, ServerCall, ServiceRefusal};
pub use setup::{AcceptedSetup, SetupRefusal, SetupRequest};
pub use token::{Token, TokenError};
pub use user::{
    ProfileFieldValue, RemoteJob, RemoteUser, SharedJob, SharedUser, UserError, UserWriteOptions,
    connect_username, parse_connect_username,
};
pub use version::{ApiVersion, ClientType, select_api_version};
