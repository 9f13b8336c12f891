//! The work after the bytes land, run by every replica in the background: the sweeper
//! (finds the uploads nobody reported, once their tickets have expired, and releases
//! the tickets never used) and the delivery of queued events to tenants' webhooks,
//! retried with backoff until delivered or dead-lettered.
//!
//! Both claim their work for a lease in the shared records, so replicas split it and a
//! replica that dies mid-way leaves its claims to the others once the lease is over.

mod delivery;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::app::App;
use crate::clock::unix;
use crate::policy::Declared;
use crate::upload::found::{self, FoundBy};

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

/// How long a sweeper's claim on a key lasts: far longer than looking at a batch takes.
const SWEEP_LEASE_SECONDS: u64 = 120;

/// Keys a sweeper claims at once.
const SWEEP_BATCH: usize = 50;

/// Starts the sweeper and the delivery of events for `app`.
pub fn start(app: &Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let sweeper = {
        let app = Arc::clone(app);
        tokio::spawn(async move {
            let every = Duration::from_secs(app.events.sweep_interval_seconds);
            loop {
                tokio::time::sleep(every).await;
                sweep(&app).await;
            }
        })
    };
    vec![sweeper, delivery::start(app)]
}

/// One round of the sweeper over every tenant: each due key claimed, looked at and
/// reported (or its tickets released), then the backlog measured.
pub async fn sweep(app: &App) {
    let deps = app.deps();
    for tenant in app.tenants.values() {
        loop {
            let now = app.clock.now();
            let claimed = match app
                .limits
                .claim_due(tenant.id(), unix(now), SWEEP_LEASE_SECONDS, SWEEP_BATCH)
                .await
            {
                Ok(claimed) => claimed,
                Err(reason) => {
                    tracing::debug!(%reason, "the sweeper cannot reach the records");
                    break;
                }
            };
            let full = claimed.len() == SWEEP_BATCH;
            for tickets in claimed {
                let Some(key) = tickets.first().map(|t| t.key.clone()) else {
                    continue;
                };
                let settled = found::settle(
                    &deps,
                    tenant,
                    &key,
                    &tickets,
                    FoundBy::Sweeper,
                    Declared::default(),
                    now,
                )
                .await;
                if let Err(error) = settled {
                    // The claim runs out and the key is looked at again.
                    tracing::warn!(tenant = tenant.id(), %key, %error, "the sweeper could not settle an upload; it tries again");
                }
            }
            if !full {
                break;
            }
        }
        measure(app, tenant.id()).await;
    }
}

/// The backlog of `tenant` in the metrics.
async fn measure(app: &App, tenant: &str) {
    let Ok(backlog) = app.limits.backlog(tenant, unix(app.clock.now())).await else {
        return;
    };
    let label = tenant.to_owned();
    metrics::gauge!("upload_tickets_uploads_pending", "tenant" => label.clone())
        .set(backlog.pending_keys as f64);
    metrics::gauge!("upload_tickets_sweep_lag_seconds", "tenant" => label.clone())
        .set(backlog.sweep_lag as f64);
    metrics::gauge!("upload_tickets_events_pending", "tenant" => label).set(backlog.events as f64);
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
