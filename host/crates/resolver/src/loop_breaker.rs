//! The redirect-loop breaker's arithmetic: how many times one browser was sent to the same
//! IdP automatically within a window. The host keeps the [`Mark`] in a cookie; a browser
//! that tampers with it can only stop its own redirects, so it needs no signature.

/// Automatic redirects to one IdP allowed within [`WINDOW_SECONDS`] before the login page is
/// shown instead.
pub const LIMIT: u32 = 3;
/// The window the redirects are counted in.
pub const WINDOW_SECONDS: i64 = 60;

/// Recent automatic redirects of one browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub idp: String,
    pub count: u32,
    /// When the first counted redirect happened (unix seconds).
    pub since: i64,
}

impl Mark {
    /// Parses the cookie form `idp.count.since`; anything malformed is no mark.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, '.');
        let since = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        let idp = parts.next()?;
        (!idp.is_empty()).then(|| Self {
            idp: idp.to_owned(),
            count,
            since,
        })
    }

    /// The cookie form.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.idp, self.count, self.since)
    }

    fn current(&self, idp: &str, now: i64) -> bool {
        self.idp == idp && (0..WINDOW_SECONDS).contains(&(now - self.since))
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
            idp: "okta.eu".into(),
            count: 2,
            since: 1_700_000_000,
        };
        assert_eq!(Mark::parse(&mark.encode()), Some(mark));
        for garbage in ["", "okta", "okta.x.1", ".1.2", "okta.1.", "okta.-1.5"] {
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
}
