//! Password-attempt throttling: which counters an attempt reserves, their limits, and the
//! growing delay an attacked account gets. Every attempt is reserved in the store *before*
//! its password is checked, so parallel guesses cannot all pass a limit read earlier; a
//! successful attempt gives its reservations back and nothing else.
//!
//! The trade-off: limits are per address and per (account, address), never per account
//! alone, because a per-account lock lets anyone lock anyone out. Across addresses, an
//! account under attack only slows down, by a delay that doubles with its failures up to
//! [`MAX_ACCOUNT_DELAY`]: its owner, from an address with no failures, always gets in after
//! at most that. A distributed guesser gets at most `max_failures_per_account` guesses per
//! address per window, each slowed down.

use std::time::Duration;

use gatehouse_store::{Store, StoreError};

use crate::state::WebSettings;

/// The longest an attempt on an account under attack waits before its password is checked.
pub const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(5);
/// The first delay, once an account has had `max_failures_per_account` failures.
const FIRST_ACCOUNT_DELAY: Duration = Duration::from_millis(250);

/// Attempts with no limit still count (the account-wide counter only slows down).
const UNLIMITED: i64 = i64::MAX;

/// Why an attempt was refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures from this address.
    Address,
    /// Too many failures for this account from this address.
    AccountFromAddress,
}

impl Refusal {
    /// For the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Address => "too many failed attempts from this address",
            Self::AccountFromAddress => {
                "too many failed attempts for this account from this address"
            }
        }
    }
}

/// A reserved attempt: counted as a failure unless [`Attempt::succeeded`] gives it back.
#[derive(Debug)]
#[must_use = "a reserved attempt counts as a failure unless it is given back"]
pub struct Attempt {
    keys: Vec<String>,
    /// How long to wait before checking the password.
    pub delay: Duration,
}

impl Attempt {
    /// The password was right: this attempt was not a failure.
    pub async fn succeeded(self, store: &Store) -> Result<(), StoreError> {
        for key in &self.keys {
            store.throttle_release(key).await?;
        }
        Ok(())
    }
}

/// Reserves an attempt to sign in as `account` (as typed, case-folded) from `address`.
pub async fn reserve(
    store: &Store,
    settings: &WebSettings,
    address: &str,
    account: &str,
    now: i64,
) -> Result<Result<Attempt, Refusal>, StoreError> {
    let window = crate::web::session::seconds(settings.throttle_window);
    let account = account.to_lowercase();
    let per_address = format!("ip:{address}");
    let per_pair = format!("pair:{address}|{account}");
    let per_account = format!("account:{account}");

    if store
        .throttle_reserve(&per_address, now, window, settings.max_failures_per_ip)
        .await?
        .is_none()
    {
        return Ok(Err(Refusal::Address));
    }
    if store
        .throttle_reserve(&per_pair, now, window, settings.max_failures_per_account)
        .await?
        .is_none()
    {
        store.throttle_release(&per_address).await?;
        return Ok(Err(Refusal::AccountFromAddress));
    }
    let counted = store
        .throttle_reserve(&per_account, now, window, UNLIMITED)
        .await?
        .unwrap_or(1);
    Ok(Ok(Attempt {
        keys: vec![per_address, per_pair, per_account],
        delay: account_delay(counted - 1, settings.max_failures_per_account),
    }))
}

/// The delay before checking a password for an account with `earlier` attempts counted in
/// the window (from any address): none below `limit`, then doubling up to the cap.
pub fn account_delay(earlier: i64, limit: i64) -> Duration {
    let Some(over) = earlier.checked_sub(limit).filter(|over| *over >= 0) else {
        return Duration::ZERO;
    };
    let doublings = u32::try_from(over).unwrap_or(u32::MAX).min(16);
    FIRST_ACCOUNT_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_ACCOUNT_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attacked_account_slows_down_but_never_beyond_the_cap() {
        assert_eq!(account_delay(0, 5), Duration::ZERO);
        assert_eq!(account_delay(4, 5), Duration::ZERO);
        assert_eq!(account_delay(5, 5), FIRST_ACCOUNT_DELAY);
        assert_eq!(account_delay(6, 5), FIRST_ACCOUNT_DELAY * 2);
        assert_eq!(account_delay(1_000, 5), MAX_ACCOUNT_DELAY);
        assert_eq!(account_delay(i64::MAX, 5), MAX_ACCOUNT_DELAY);
        assert_eq!(account_delay(i64::MIN, 5), Duration::ZERO);
    }
}
