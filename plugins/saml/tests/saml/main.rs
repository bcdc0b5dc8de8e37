//! The SAML plugin's tests, in one binary (samael links heavily): settings refusals, SP
//! metadata and AuthnRequests, ACS validation and attacks, single logout, the metadata
//! URL source, the online check and the test kit's conformance check.

mod acs;
mod logout;
mod online;
mod settings;
mod sp;
mod support;
