//! Delivery of queued events: claimed for a lease, attempted concurrently, then
//! dropped (delivered), kept for a later attempt with backoff, or dead-lettered after
//! `max_attempts`. Woken at once when this replica queues an event; otherwise it polls
//! the outbox every second, for events queued by other replicas or due for a retry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::Instrument as _;

use crate::app::App;
use crate::clock::unix;
use crate::limits::PendingEvent;
use crate::telemetry::traces;
use crate::tenant::Tenant;
use crate::webhook::{Attempt, Webhook};

/// How long a claim on an event lasts: longer than one attempt may take.
const LEASE_SECONDS: u64 = 30;

/// Events claimed at once per tenant.
const BATCH: usize = 32;

/// How often the outbox is looked at without a wake-up.
const POLL: Duration = Duration::from_secs(1);

pub(super) fn start(app: &Arc<App>) -> tokio::task::JoinHandle<()> {
    let app = Arc::clone(app);
    tokio::spawn(async move {
        loop {
            let mut busy = false;
            for tenant in app.tenants.values() {
                if tenant.webhook.is_some() {
                    busy |= deliver_due(&app, tenant).await;
                }
            }
            if !busy {
                tokio::select! {
                    () = app.outbox.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    })
}

/// Attempts the due events of `tenant`; whether there were as many as a batch holds.
async fn deliver_due(app: &Arc<App>, tenant: &Arc<Tenant>) -> bool {
    let now = unix(app.clock.now());
    let claimed = match app
        .limits
        .claim_events(tenant.id(), now, LEASE_SECONDS, BATCH)
        .await
    {
        Ok(claimed) => claimed,
        Err(reason) => {
            tracing::debug!(%reason, "delivery cannot reach the outbox");
            return false;
        }
    };
    let full = claimed.len() == BATCH;
    let mut attempts = tokio::task::JoinSet::new();
    for event in claimed {
        let app = Arc::clone(app);
        let tenant = Arc::clone(tenant);
        attempts.spawn(async move { attempt(&app, &tenant, event).await });
    }
    while attempts.join_next().await.is_some() {}
    full
}

/// The span of one delivery attempt: a client call in the trace of the request that
/// found the upload (a sweeper's find starts a trace of its own).
fn delivery_span(hook: &Webhook, event: &PendingEvent) -> tracing::Span {
    let span = tracing::debug_span!(
        "webhook.deliver",
        otel.kind = "client",
        event = %event.id,
        tenant = %event.tenant,
        attempt = event.attempts + 1,
    );
    if traces::on() {
        if let Some(traceparent) = &event.traceparent {
            traces::continue_traceparent(&span, traceparent);
        }
        traces::attribute(&span, "http.request.method", "POST");
        traces::attribute(&span, "url.full", traces::url_without_query(hook.url()));
    }
    span
}

/// One attempt at `event`, and what follows from it.
async fn attempt(app: &App, tenant: &Tenant, mut event: PendingEvent) {
    let (Some(hook), Some(client)) = (&tenant.webhook, &app.webhook_client) else {
        return;
    };
    // The receiver compares the timestamp with its own clock: the real one.
    let sent_at = unix(SystemTime::now());
    let span = delivery_span(hook, &event);
    let traceparent = traces::traceparent(&span);
    let outcome = hook
        .attempt(
            client,
            &event.id,
            sent_at,
            &event.body,
            traceparent.as_deref(),
        )
        .instrument(span.clone())
        .await;
    match outcome {
        Attempt::Delivered(status) | Attempt::Refused(status) => {
            traces::attribute(&span, "http.response.status_code", i64::from(status));
        }
        Attempt::NoAnswer => {}
    }
    if !matches!(outcome, Attempt::Delivered(_)) {
        traces::failed(&span, "the receiver did not accept the event");
    }
    event.attempts += 1;
    let label = tenant.id().to_owned();
    let stored = match outcome {
        Attempt::Delivered(_) => {
            metrics::counter!("upload_tickets_events_total", "tenant" => label, "result" => "delivered")
                .increment(1);
            app.limits.event_delivered(tenant.id(), &event.id).await
        }
        Attempt::Refused(_) | Attempt::NoAnswer => {
            event.last_error = Some(match outcome {
                Attempt::Refused(status) => format!("the receiver answered {status}"),
                _ => "no answer from the receiver".to_owned(),
            });
            if event.attempts >= app.events.max_attempts {
                metrics::counter!("upload_tickets_events_total", "tenant" => label, "result" => "dead_lettered")
                    .increment(1);
                tracing::error!(
                    tenant = tenant.id(),
                    event = %event.id,
                    kind = %event.kind,
                    attempts = event.attempts,
                    last_error = event.last_error.as_deref().unwrap_or(""),
                    url = hook.url(),
                    "an event could not be delivered: dead-lettered"
                );
                app.limits.event_dead(&event).await
            } else {
                metrics::counter!("upload_tickets_events_total", "tenant" => label, "result" => "retried")
                    .increment(1);
                let wait = app.events.backoff(event.attempts);
                tracing::warn!(
                    tenant = tenant.id(),
                    event = %event.id,
                    attempts = event.attempts,
                    retry_in_seconds = wait,
                    last_error = event.last_error.as_deref().unwrap_or(""),
                    "an event was not accepted; it is tried again"
                );
                app.limits
                    .event_retry(&event, unix(app.clock.now()) + wait)
                    .await
            }
        }
    };
    if let Err(reason) = stored {
        // The claim runs out and the event is attempted again: at least once.
        tracing::warn!(event = %event.id, %reason, "the outbox could not be updated");
    }
}
