//! `[events]`: when uploads are looked for, how events are retried. Here, beside the
//! records it times (a ticket is due its grace after its expiry), low enough that the
//! configuration, the use cases and the background work (`crate::events`) all read it.

use serde::Deserialize;

/// `[events]`: when uploads are looked for, how events are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// How often the sweeper looks for due tickets, in seconds; default 30.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_seconds: u64,
    /// How long past a ticket's expiry the sweeper waits before it looks for its object
    /// (an upload that started just before expiry may still be arriving); default 300.
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
    /// Attempts to deliver an event before it is dead-lettered; default 12.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the second attempt, in seconds; each next one waits twice as long;
    /// default 5.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_seconds: u64,
    /// The longest wait between attempts, in seconds; default 3600.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
}

fn default_sweep_interval() -> u64 {
    30
}
fn default_grace() -> u64 {
    300
}
fn default_max_attempts() -> u32 {
    12
}
fn default_retry_initial() -> u64 {
    5
}
fn default_retry_max() -> u64 {
    3600
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            sweep_interval_seconds: default_sweep_interval(),
            grace_seconds: default_grace(),
            max_attempts: default_max_attempts(),
            retry_initial_seconds: default_retry_initial(),
            retry_max_seconds: default_retry_max(),
        }
    }
}

impl EventSettings {
    /// Refuses values out of their ranges, naming the setting.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let within = |name: &'static str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err((name, format!("{value}: {low} to {high}")))
            }
        };
        within(
            "sweep_interval_seconds",
            self.sweep_interval_seconds,
            1,
            3600,
        )?;
        within("grace_seconds", self.grace_seconds, 0, 86_400)?;
        within("max_attempts", u64::from(self.max_attempts), 1, 100)?;
        within(
            "retry_initial_seconds",
            self.retry_initial_seconds,
            1,
            86_400,
        )?;
        within(
            "retry_max_seconds",
            self.retry_max_seconds,
            self.retry_initial_seconds,
            86_400,
        )
    }

    /// How long to wait after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(40);
        self.retry_initial_seconds
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let settings = EventSettings {
            retry_initial_seconds: 5,
            retry_max_seconds: 60,
            ..EventSettings::default()
        };
        let waits: Vec<u64> = (1..=6).map(|n| settings.backoff(n)).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(settings.backoff(u32::MAX), 60);
    }

    #[test]
    fn settings_are_checked() {
        assert!(EventSettings::default().check().is_ok());
        let bad = EventSettings {
            retry_max_seconds: 1,
            ..EventSettings::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "retry_max_seconds");
    }
}
