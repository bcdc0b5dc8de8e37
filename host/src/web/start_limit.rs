//! The per-address limit on anonymous sign-in starts (`[host.limits]
//! starts_per_address_per_minute`): each `GET /sso/{idp}/start` writes a pending sign-in,
//! so one client must not be able to write thousands a second. Not the password throttle
//! (`throttle`, failures counted in the database).
//!
//! A window per address: an address's first start opens a minute in which it may make
//! `limit` starts; the next one is refused, told how long until the minute is over, and
//! after it the next start opens a new minute. (A smoother rate, GCRA, would refuse the
//! `limit + 1`th start only if all came at one instant; the window says exactly what the
//! setting's name says.)
//!
//! Per process, in memory: a start costs no database round trip to count (which would be
//! the very write the limit saves). Each host counts on its own, so behind a balancer that
//! spreads one client over N hosts the client gets up to N × the limit; the limit is a
//! guard against one client filling the pending sign-ins, not an exact quota, and N × 600
//! a minute is still far below what the database can absorb.
//!
//! The table has a fixed size (see [`SETS`], [`WAYS`]): spoofed or rotating addresses
//! cannot make it grow. A full set evicts the entry whose window ends first, which gives
//! that address a fresh minute: under a flood of distinct addresses the limit errs on
//! letting starts through, and never refuses an address for starts it did not make.

use std::{
    hash::BuildHasher,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::clock::Clock;

/// Sets of the table; an address's set is a keyed hash of it, so no one can aim at
/// another address's set.
pub const SETS: usize = 4096;
/// Entries per set. `SETS` × `WAYS` entries of 32 bytes: 1 MiB per host.
pub const WAYS: usize = 8;

/// The window, in nanoseconds of the host's monotonic clock.
const WINDOW_NANOS: u64 = 60_000_000_000;

/// Refused: the start is allowed again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// The limiter of one host. Shared by every request (a short lock per start).
pub struct StartLimiter {
    clock: Clock,
    /// Times are nanoseconds since this instant (of `clock`).
    epoch: Instant,
    per_minute: u32,
    hasher: std::collections::hash_map::RandomState,
    table: Mutex<Vec<Entry>>,
}

#[derive(Clone, Copy, Default)]
struct Entry {
    /// The address (IPv4 mapped into IPv6; IPv6 cut to its /64).
    key: u128,
    /// When its window ends, in nanoseconds since the epoch; at or before now the entry
    /// carries nothing.
    ends: u64,
    /// Starts in the window.
    starts: u32,
}

impl std::fmt::Debug for StartLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartLimiter")
            .field("per_minute", &self.per_minute)
            .finish_non_exhaustive()
    }
}

impl StartLimiter {
    /// At most `per_minute` starts per address in any minute (at least one).
    pub fn new(per_minute: u32, clock: Clock) -> Self {
        Self {
            epoch: clock.instant(),
            clock,
            per_minute: per_minute.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            table: Mutex::new(vec![Entry::default(); SETS * WAYS]),
        }
    }

    /// Counts a start from `address` (as [`super::http_util::ClientIp`] names it), or
    /// refuses it.
    pub fn check(&self, address: &str) -> Result<(), Refused> {
        let now = u64::try_from(
            self.clock
                .instant()
                .saturating_duration_since(self.epoch)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let key = key_of(address);
        let set = usize::try_from(self.hasher.hash_one(key) % SETS as u64).unwrap_or(0);
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ways = &mut table[set * WAYS..(set + 1) * WAYS];
        let slot = match ways.iter().position(|e| e.key == key && e.ends > now) {
            Some(found) => found,
            // A new window takes the way whose window ends first (one that has ended, if
            // any).
            None => {
                let (free, _) = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.ends)
                    .unwrap_or((0, &Entry::default()));
                ways[free] = Entry {
                    key,
                    ends: now.saturating_add(WINDOW_NANOS),
                    starts: 0,
                };
                free
            }
        };
        let entry = &mut ways[slot];
        if entry.starts >= self.per_minute {
            return Err(Refused {
                retry_after: Duration::from_nanos(entry.ends - now),
            });
        }
        entry.starts += 1;
        Ok(())
    }
}

/// The table's key of an address: IPv4 as itself, IPv6 by its /64 (one subscriber's
/// network: a client given a /64 has 2^64 addresses to rotate through). An address that
/// does not parse (`unknown`: no socket) is one key.
fn key_of(address: &str) -> u128 {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => u128::from(v4.to_ipv6_mapped()),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_starts_per_minute_then_waits_for_the_minute_to_end() {
        let (clock, hand) = Clock::manual(1_000_000);
        let limiter = StartLimiter::new(600, clock);
        assert_eq!(limiter.check("192.0.2.1"), Ok(()));
        hand.advance(Duration::from_secs(20));
        for i in 1..600 {
            assert_eq!(limiter.check("192.0.2.1"), Ok(()), "start {i}");
        }
        let refused = limiter.check("192.0.2.1").expect_err("the 601st");
        assert_eq!(refused.retry_after, Duration::from_secs(40));
        // Another address is not affected.
        assert_eq!(limiter.check("192.0.2.2"), Ok(()));
        hand.advance(Duration::from_millis(39_999));
        assert!(limiter.check("192.0.2.1").is_err());
        hand.advance(Duration::from_millis(1));
        for i in 0..600 {
            assert_eq!(
                limiter.check("192.0.2.1"),
                Ok(()),
                "start {i} of the next minute"
            );
        }
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64() {
        let (clock, _hand) = Clock::manual(1_000_000);
        let limiter = StartLimiter::new(2, clock);
        assert_eq!(limiter.check("2001:db8::1"), Ok(()));
        assert_eq!(limiter.check("2001:db8::ffff:1"), Ok(()));
        assert!(limiter.check("2001:db8::2:3:4").is_err());
        assert_eq!(limiter.check("2001:db8:0:1::1"), Ok(()));
        // IPv4 written as mapped IPv6 is the IPv4 address.
        assert_eq!(limiter.check("198.51.100.7"), Ok(()));
        assert_eq!(limiter.check("::ffff:198.51.100.7"), Ok(()));
        assert!(limiter.check("198.51.100.7").is_err());
    }

    #[test]
    fn a_flood_of_addresses_cannot_grow_the_table_or_refuse_a_fresh_address() {
        let (clock, _hand) = Clock::manual(1_000_000);
        let limiter = StartLimiter::new(1, clock);
        // Four times as many addresses as entries, each using its whole allowance.
        for n in 0..(SETS * WAYS * 4) as u32 {
            let address = std::net::Ipv4Addr::from(n.wrapping_mul(2_654_435_761)).to_string();
            let _ = limiter.check(&address);
        }
        let table = limiter.table.lock().expect("lock");
        assert_eq!(table.len(), SETS * WAYS);
        drop(table);
        // An address that made no start is never refused, however full the table.
        assert_eq!(limiter.check("203.0.113.9"), Ok(()));
    }
}
