//! The redirect-loop breaker's arithmetic: how many times one browser was sent to the same
//! IdP automatically within a window. The host keeps the [`Mark`] in a cookie; a browser
//! that tampers with it can only stop its own redirects, so it needs no signature. It is
//! not the cookie plumbing (the host's web layer) nor the login decision (`decision`).
//!
//! The cookie is outside data: [`Mark::parse`] accepts only the exact form [`Mark::encode`]
//! writes, and every computation on a parsed mark is checked, so no value a browser sends
//! can overflow or panic.

/// Automatic redirects to one IdP allowed within [`WINDOW_SECONDS`] before the login page is
/// shown instead.
pub const LIMIT: u32 = 3;
/// The window the redirects are counted in.
pub const WINDOW_SECONDS: i64 = 60;
/// How far in the future a mark's `since` may lie and still count: clocks of several
/// Gatehouse processes behind one load balancer may disagree by a little, not by more.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 5;
/// The longest cookie value parsed: an IdP id, a count and a timestamp fit well within it.
pub const MAX_COOKIE_LEN: usize = 128;
/// `count` is a `u32`: at most 10 decimal digits.
const MAX_COUNT_DIGITS: usize = 10;
/// `since` is non-negative unix seconds in an `i64`: at most 19 decimal digits.
const MAX_SINCE_DIGITS: usize = 19;

/// Recent automatic redirects of one browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub idp: String,
    pub count: u32,
    /// When the first counted redirect happened (unix seconds).
    pub since: i64,
}

/// An IdP id as `plugins.toml` allows it: `[a-z0-9][a-z0-9_-]*`.
fn is_idp_id(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// ASCII digits only (no sign, no spaces, not empty), at most `max` of them.
fn digits(text: &str, max: usize) -> Option<&str> {
    (!text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_digit()))
        .then_some(text)
}

impl Mark {
    /// Parses the cookie form `idp.count.since` (`since` in unix seconds); anything else,
    /// including signs, spaces, over-long values and ids the configuration could not
    /// contain, is no mark.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_COOKIE_LEN {
            return None;
        }
        let mut parts = text.split('.');
        let (idp, count, since) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_idp_id(idp) {
            return None;
        }
        Some(Self {
            idp: idp.to_owned(),
            count: digits(count, MAX_COUNT_DIGITS)?.parse().ok()?,
            since: digits(since, MAX_SINCE_DIGITS)?.parse().ok()?,
        })
    }

    /// The cookie form.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.idp, self.count, self.since)
    }

    /// The mark counts for `idp` at `now`: its window has begun (allowing for clock skew)
    /// and not yet ended. A `since` far in the future is a forged or broken mark.
    fn current(&self, idp: &str, now: i64) -> bool {
        self.idp == idp
            && now
                .checked_sub(self.since)
                .is_some_and(|age| (-MAX_CLOCK_SKEW_SECONDS..WINDOW_SECONDS).contains(&age))
    }
}

/// True when another automatic redirect to `idp` would make a loop.
pub fn tripped(mark: Option<&Mark>, idp: &str, now: i64) -> bool {
    mark.is_some_and(|m| m.current(idp, now) && m.count >= LIMIT)
}

/// The mark after one more automatic redirect to `idp`.
pub fn record(mark: Option<&Mark>, idp: &str, now: i64) -> Mark {
    match mark {
        Some(m) if m.current(idp, now) => Mark {
            count: m.count.saturating_add(1),
            ..m.clone()
        },
        _ => Mark {
            idp: idp.to_owned(),
            count: 1,
            since: now,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_garbage_is_ignored() {
        let mark = Mark {
            idp: "okta-eu_2".into(),
            count: 2,
            since: 1_700_000_000,
        };
        assert_eq!(Mark::parse(&mark.encode()), Some(mark));
        let long_idp = format!("{}.1.1", "a".repeat(MAX_COOKIE_LEN));
        for garbage in [
            "",
            "okta",
            "okta.x.1",
            ".1.2",
            "okta.1.",
            "okta.-1.5",
            "okta.1.-5",
            "okta.+1.5",
            "okta.1.+5",
            "okta.1. 5",
            "okta.1.5.6",
            "Okta.1.5",
            "-okta.1.5",
            "ok ta.1.5",
            "okta.4294967296.5",
            "okta.1.99999999999999999999",
            "okta.1.9223372036854775808",
            long_idp.as_str(),
        ] {
            assert_eq!(Mark::parse(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn the_fourth_redirect_within_a_minute_is_refused() {
        let mut mark = None;
        for second in 0..LIMIT as i64 {
            assert!(!tripped(mark.as_ref(), "okta", 100 + second));
            mark = Some(record(mark.as_ref(), "okta", 100 + second));
        }
        assert!(tripped(mark.as_ref(), "okta", 110));
        assert!(
            !tripped(mark.as_ref(), "okta", 100 + WINDOW_SECONDS),
            "the window has passed"
        );
        assert!(!tripped(mark.as_ref(), "other", 110), "another IdP");
    }

    #[test]
    fn a_new_window_starts_the_count_again() {
        let old = Mark {
            idp: "okta".into(),
            count: 9,
            since: 0,
        };
        assert_eq!(record(Some(&old), "okta", 500).count, 1);
        assert_eq!(record(Some(&old), "other", 10).count, 1);
    }

    /// The cookie of the security report: before the fix, `now - since` overflowed.
    #[test]
    fn a_negative_since_is_no_mark_and_cannot_overflow() {
        let hostile = "example.1.-9223372036854775808";
        assert_eq!(Mark::parse(hostile), None);
        let forged = Mark {
            idp: "example".into(),
            count: u32::MAX,
            since: i64::MIN,
        };
        // Before the fix, every one of these readings of the clock overflowed `now - since`.
        for now in [-1, 0, 1_700_000_000, i64::MAX] {
            assert!(!tripped(Some(&forged), "example", now), "at {now}");
            assert_eq!(record(Some(&forged), "example", now).count, 1, "at {now}");
        }
    }

    #[test]
    fn a_mark_from_the_future_does_not_count() {
        let future = Mark {
            idp: "okta".into(),
            count: LIMIT,
            since: 1_000 + MAX_CLOCK_SKEW_SECONDS + 1,
        };
        assert!(!tripped(Some(&future), "okta", 1_000));
        let skewed = Mark {
            since: 1_000 + MAX_CLOCK_SKEW_SECONDS,
            ..future
        };
        assert!(tripped(Some(&skewed), "okta", 1_000), "within the skew");
    }
}
