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

use crate::app::App;
use crate::clock::unix;
use crate::policy::Declared;
use crate::upload::found::{self, FoundBy};

pub use crate::limits::EventSettings;

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
