//! An upload found: by the client's completion call, by a multipart completion, or by
//! the sweeper once its tickets have expired. Whoever finds it first verifies the object
//! against its tickets, removes (or quarantines) what is refused, settles the day's
//! bytes to what landed and queues the tenant's event, in one atomic step with dropping
//! the tickets: an upload is reported once, whichever replica or route finds it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::verify::{self, Mismatch};
use super::{Deps, UploadError};
use crate::clock::{rfc3339, unix};
use crate::limits::LimitError;
use crate::limits::records::{Finish, PendingEvent, TicketRecord};
use crate::policy::content::SNIFF_BYTES;
use crate::policy::{Declared, OnRejected, StoredChecksum};
use crate::store::{ObjectHead, StoreError};
use crate::tenant::Tenant;

/// Who found the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// The client's `POST /uploads/complete`.
    Client,
    /// A multipart completion (any route).
    Multipart,
    /// The sweeper, after its tickets expired.
    Sweeper,
}

/// What was done with a refused object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "action")]
pub enum Action {
    /// Left as it is (accepted, or `on_rejected = "keep"`).
    Kept,
    /// Removed.
    Deleted,
    /// Moved to this key.
    Quarantined {
        /// Where it is now.
        quarantine_key: String,
    },
}

/// The verdict on a found upload.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What it breaks; empty when accepted.
    pub mismatches: Vec<Mismatch>,
    /// What was done with it.
    pub action: Action,
    /// The event queued for it; `None` when the tenant has no webhook, or someone else
    /// reported it first.
    pub event_id: Option<String>,
    /// Whether this call reported it (false: another route or replica did first).
    pub reported: bool,
}

impl Verdict {
    /// Whether the object keeps every rule.
    pub fn accepted(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// What became of a key looked at.
#[derive(Debug)]
pub enum Outcome {
    /// No object under the key: its tickets were released (the sweeper only).
    Missing,
    /// The object, and the verdict on it.
    Found(Box<ObjectHead>, Verdict),
}

/// The body of an upload event (Standard Webhooks: `type`, `timestamp`, `data`).
#[derive(Debug, Serialize)]
struct EventBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: EventData<'a>,
}

#[derive(Debug, Serialize)]
struct EventData<'a> {
    tenant: &'a str,
    subject: &'a str,
    bucket: &'a str,
    key: &'a str,
    size: u64,
    content_type: Option<&'a str>,
    checksum: Option<&'a StoredChecksum>,
    metadata: &'a BTreeMap<String, String>,
    etag: Option<&'a str>,
    mismatches: Vec<&'a str>,
    reasons: Vec<&'static str>,
    #[serde(flatten)]
    action: &'a Action,
    found_by: FoundBy,
    ticket_id: &'a str,
}

/// Looks at `key` of `tenant`, uploaded with `tickets` (none: not recorded, or reported
/// already), and, if there are tickets, reports it. `declared`: what the client's
/// completion call says besides. A missing object is an error unless the sweeper looks
/// (its tickets are then released).
pub async fn settle(
    deps: &Deps<'_>,
    tenant: &Tenant,
    key: &str,
    tickets: &[TicketRecord],
    by: FoundBy,
    declared: Declared<'_>,
    now: SystemTime,
) -> Result<Outcome, UploadError> {
    let rules = &tenant.rules;
    let bucket = rules.bucket.as_str();
    let head = match deps.store.head_object(bucket, key).await {
        Ok(head) => head,
        Err(StoreError::NoSuchObject) if by == FoundBy::Sweeper => {
            release(deps, tenant, key, tickets, now).await?;
            return Ok(Outcome::Missing);
        }
        Err(error) => return Err(error.into()),
    };
    let start = match head.object.size {
        0 => Some(Vec::new()),
        _ => match deps.store.read_start(bucket, key, SNIFF_BYTES).await {
            Ok(start) => Some(start),
            // An in-process test store planted without bytes: nothing to look at.
            Err(StoreError::Unsupported(_)) => None,
            Err(error) => return Err(error.into()),
        },
    };
    let mismatches = verify::verify(rules, tickets, &head.object, start.as_deref(), declared);
    if tickets.is_empty() {
        // Reported before (or never recorded): a report, but nothing done again.
        let verdict = Verdict {
            mismatches,
            action: Action::Kept,
            event_id: None,
            reported: false,
        };
        return Ok(Outcome::Found(Box::new(head), verdict));
    }
    let action = match mismatches.is_empty() {
        true => Action::Kept,
        false => act_on_rejected(deps, tenant, key).await?,
    };
    let mut verdict = Verdict {
        mismatches,
        action,
        event_id: None,
        reported: false,
    };
    let event = event(tenant, key, tickets, &head, &verdict, by, now)?;
    // What stays in the bucket counts: an accepted object, or a refused one kept.
    let landed = match verdict.action {
        Action::Kept => head.object.size,
        Action::Deleted | Action::Quarantined { .. } => 0,
    };
    let finish = Finish {
        tenant: tenant.id(),
        key,
        tickets,
        landed,
        event: event.as_ref(),
        now: unix(now),
    };
    verdict.reported = deps
        .limits
        .finish(&finish, deps.events.grace_seconds)
        .await
        .map_err(LimitError::Unavailable)?;
    if verdict.reported {
        count(tenant, &verdict);
        if let Some(event) = event {
            verdict.event_id = Some(event.id);
            deps.outbox.notify_one();
        }
    }
    Ok(Outcome::Found(Box::new(head), verdict))
}

/// Drops the tickets of a key whose object never appeared: their bytes go back.
async fn release(
    deps: &Deps<'_>,
    tenant: &Tenant,
    key: &str,
    tickets: &[TicketRecord],
    now: SystemTime,
) -> Result<(), UploadError> {
    let finish = Finish {
        tenant: tenant.id(),
        key,
        tickets,
        landed: 0,
        event: None,
        now: unix(now),
    };
    let released = deps
        .limits
        .finish(&finish, deps.events.grace_seconds)
        .await
        .map_err(LimitError::Unavailable)?;
    if released {
        metrics::counter!("upload_tickets_tickets_released_total", "tenant" => tenant.id().to_owned())
            .increment(tickets.len() as u64);
    }
    Ok(())
}

/// Removes, quarantines or keeps a refused object, as the tenant says.
async fn act_on_rejected(
    deps: &Deps<'_>,
    tenant: &Tenant,
    key: &str,
) -> Result<Action, UploadError> {
    let bucket = tenant.rules.bucket.as_str();
    match &tenant.rules.on_rejected {
        OnRejected::Keep => Ok(Action::Kept),
        OnRejected::Delete => {
            deps.store.delete_object(bucket, key).await?;
            Ok(Action::Deleted)
        }
        OnRejected::Quarantine(prefix) => {
            let quarantine_key = format!("{prefix}{key}");
            deps.store.copy_object(bucket, key, &quarantine_key).await?;
            deps.store.delete_object(bucket, key).await?;
            Ok(Action::Quarantined { quarantine_key })
        }
    }
}

/// The event for the tenant's webhook, if it has one: its id is the newest ticket's,
/// so that whoever builds it (again) builds the same.
fn event(
    tenant: &Tenant,
    key: &str,
    tickets: &[TicketRecord],
    head: &ObjectHead,
    verdict: &Verdict,
    by: FoundBy,
    now: SystemTime,
) -> Result<Option<PendingEvent>, UploadError> {
    if tenant.webhook.is_none() {
        return Ok(None);
    }
    let Some(ticket) = tickets
        .iter()
        .max_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)))
    else {
        return Ok(None);
    };
    let kind = if verdict.accepted() {
        "upload.completed"
    } else {
        "upload.rejected"
    };
    let body = EventBody {
        kind,
        timestamp: rfc3339(now).map_err(UploadError::internal)?,
        data: EventData {
            tenant: tenant.id(),
            subject: &ticket.subject,
            bucket: tenant.rules.bucket.as_str(),
            key,
            size: head.object.size,
            content_type: head.object.content_type.as_deref(),
            checksum: head.object.checksum.as_ref(),
            metadata: &head.object.metadata,
            etag: head.etag.as_deref(),
            mismatches: verdict
                .mismatches
                .iter()
                .map(|m| m.words.as_str())
                .collect(),
            reasons: verdict
                .mismatches
                .iter()
                .map(|m| m.reason.label())
                .collect(),
            action: &verdict.action,
            found_by: by,
            ticket_id: &ticket.id,
        },
    };
    let body = serde_json::to_string(&body).map_err(UploadError::internal)?;
    Ok(Some(PendingEvent {
        id: format!("msg_{}", ticket.id),
        tenant: tenant.id().to_owned(),
        kind: kind.to_owned(),
        body,
        attempts: 0,
        queued_at: unix(now),
        last_error: None,
        traceparent: crate::telemetry::traces::traceparent(&tracing::Span::current()),
    }))
}

/// The verdict in the metrics: one count per upload, and one per reason refused.
fn count(tenant: &Tenant, verdict: &Verdict) {
    let id = tenant.id().to_owned();
    if verdict.accepted() {
        metrics::counter!("upload_tickets_uploads_verified_total", "tenant" => id, "result" => "accepted")
            .increment(1);
        return;
    }
    metrics::counter!("upload_tickets_uploads_verified_total", "tenant" => id.clone(), "result" => "rejected")
        .increment(1);
    let mut reasons: Vec<&str> = verdict
        .mismatches
        .iter()
        .map(|m| m.reason.label())
        .collect();
    reasons.dedup();
    for reason in reasons {
        metrics::counter!("upload_tickets_uploads_rejected_total", "tenant" => id.clone(), "reason" => reason)
            .increment(1);
    }
}
