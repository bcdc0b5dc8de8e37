//! The SAML plugin's tests, in one binary (samael links heavily): settings refusals, SP
//! metadata and AuthnRequests, ACS validation and attacks, single logout, the metadata
//! URL source and the test kit's conformance check.

mod acs;
mod logout;
mod settings;
mod sp;
mod support;
