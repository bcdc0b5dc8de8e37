//! When a task is due: pure arithmetic over times passed in (the last run's start, now).
//! No clock, no database, no sleeping; the runner asks, then acts.

use std::time::Duration;

use gatehouse_config::TaskSchedule;

/// How often the host runs a task unless `plugins.toml` says otherwise: hourly, for the
/// host's `cleanup` and for every plugin task alike.
pub const DEFAULT_EVERY_MINUTES: u32 = 60;

/// A task's effective schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From one run's start to the next.
    pub every: Duration,
    /// `false`: never due (it can still be run by hand).
    pub enabled: bool,
}

impl Schedule {
    /// The schedule `configured` (a `plugins.toml` entry, if any) makes of the host's
    /// default of `default_minutes`.
    pub fn from_config(configured: Option<&TaskSchedule>, default_minutes: u32) -> Self {
        let minutes = configured
            .and_then(|c| c.every_minutes)
            .unwrap_or(default_minutes)
            .max(1);
        Self {
            every: Duration::from_secs(u64::from(minutes) * 60),
            enabled: configured.is_none_or(|c| c.enabled),
        }
    }

    /// A task run on demand (by a command) unless `plugins.toml` schedules it: disabled
    /// when `configured` is absent, else as [`Self::from_config`] reads it.
    pub fn on_demand_unless(configured: Option<&TaskSchedule>, default_minutes: u32) -> Self {
        let schedule = Self::from_config(configured, default_minutes);
        Self {
            enabled: configured.is_some() && schedule.enabled,
            ..schedule
        }
    }

    fn every_seconds(&self) -> i64 {
        i64::try_from(self.every.as_secs()).unwrap_or(i64::MAX)
    }

    /// When the next run is due (Unix seconds), given when the last one started: at once
    /// (`None`) when it never ran, never (`None` too) when disabled — see [`Self::is_due`].
    pub fn next_due(&self, last_start: Option<i64>) -> Option<i64> {
        if !self.enabled {
            return None;
        }
        last_start.map(|last| last.saturating_add(self.every_seconds()))
    }

    /// Whether a run should start at `now`. A task that never ran is due at once; one whose
    /// last run started in the future (another host's clock ahead of ours) waits for it, so
    /// hosts with skewed clocks do not run it twice.
    pub fn is_due(&self, last_start: Option<i64>, now: i64) -> bool {
        if !self.enabled {
            return false;
        }
        match self.next_due(last_start) {
            None => true,
            Some(due) => now >= due,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(minutes: u32) -> Schedule {
        Schedule {
            every: Duration::from_secs(u64::from(minutes) * 60),
            enabled: true,
        }
    }

    #[test]
    fn a_task_that_never_ran_is_due_at_once() {
        assert!(every(60).is_due(None, 0));
        assert_eq!(every(60).next_due(None), None);
    }

    #[test]
    fn a_task_is_due_once_its_interval_has_passed_since_the_last_start() {
        let hourly = every(60);
        assert!(!hourly.is_due(Some(1_000), 1_000));
        assert!(!hourly.is_due(Some(1_000), 4_599));
        assert!(hourly.is_due(Some(1_000), 4_600));
        assert!(hourly.is_due(Some(1_000), 100_000));
        assert_eq!(hourly.next_due(Some(1_000)), Some(4_600));
        // A start recorded ahead of this host's clock is waited for.
        assert!(!hourly.is_due(Some(10_000), 9_000));
    }

    #[test]
    fn a_disabled_task_is_never_due() {
        let off = Schedule {
            enabled: false,
            ..every(1)
        };
        assert!(!off.is_due(None, 0));
        assert!(!off.is_due(Some(0), i64::MAX));
        assert_eq!(off.next_due(Some(0)), None);
    }

    #[test]
    fn configuration_overrides_the_default() {
        let default = Schedule::from_config(None, DEFAULT_EVERY_MINUTES);
        assert_eq!(default, every(60));
        let configured = TaskSchedule {
            every_minutes: Some(15),
            enabled: true,
            ..TaskSchedule::default()
        };
        assert_eq!(Schedule::from_config(Some(&configured), 60), every(15));
        let only_disabled = TaskSchedule {
            every_minutes: None,
            enabled: false,
            ..TaskSchedule::default()
        };
        let off = Schedule::from_config(Some(&only_disabled), 60);
        assert_eq!((off.every, off.enabled), (every(60).every, false));
    }

    #[test]
    fn huge_intervals_saturate_instead_of_wrapping() {
        let rare = every(u32::MAX);
        assert!(!rare.is_due(Some(i64::MAX - 10), i64::MAX - 1));
        assert_eq!(rare.next_due(Some(i64::MAX - 10)), Some(i64::MAX));
    }
}
