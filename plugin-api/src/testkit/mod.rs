//! The plugin test kit (feature `testkit`): a fake [`Host`](crate::Host) with a
//! settable clock, scripted HTTP, an in-memory store and seeded randomness, and a
//! conformance check every plugin should pass. It is for tests only: its
//! randomness is predictable on purpose.

mod fake_host;

pub mod conformance;

pub use fake_host::{Expectation, FakeHost};
