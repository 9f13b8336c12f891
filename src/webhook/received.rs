//! What `dev`'s own webhook receiver got, for the demo page: each event as delivered
//! (its Standard Webhooks headers and body) and whether its signature verified with
//! the tenant's secret. Kept in memory, the newest [`KEPT`] only.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// How many deliveries are kept.
pub const KEPT: usize = 100;

/// One delivery as the receiver got it.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedEvent {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
    /// Whether the signature verified with the tenant's secret.
    pub verified: bool,
    /// The tenant the event is about.
    pub tenant: String,
    /// The body, parsed.
    pub event: Value,
}

/// The deliveries, newest first.
#[derive(Debug, Default)]
pub struct EventLog(Mutex<VecDeque<ReceivedEvent>>);

impl EventLog {
    /// Keeps `event` (dropping the oldest past [`KEPT`]).
    pub fn push(&self, event: ReceivedEvent) {
        let mut events = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events.push_front(event);
        events.truncate(KEPT);
    }

    /// The deliveries about `tenant`, newest first.
    pub fn of_tenant(&self, tenant: &str) -> Vec<ReceivedEvent> {
        let events = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events
            .iter()
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect()
    }
}
