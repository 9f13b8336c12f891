//! Upload records and pending events: what every replica must see of a ticket between
//! its issue and its report, kept beside the counters (in process, or in the same
//! Redis, under the same tenant hash tag, so that recording a ticket rides on the
//! limits' one round trip).
//!
//! A record per ticket, grouped by object key (a key template without `{uuid}` may hand
//! out two tickets for one key: one object then answers for both). A key is *due* once
//! the last of its tickets has expired and the grace period passed; a sweeper claims due
//! keys for a lease, so that one replica looks at each while a dead one's claims come
//! back. Finishing a key is one atomic step: its tickets are dropped, the day's bytes
//! settled and the event queued, or nothing happens because someone else finished it
//! first: each upload is reported once. Events wait in an outbox, claimed for a lease
//! by the replica that attempts them, until delivered or dead-lettered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use s3_presigned_post::ChecksumAlgorithm;

/// How a ticket uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// A POST form.
    Post,
    /// A presigned PUT URL.
    Put,
    /// A multipart upload.
    Multipart,
}

/// A checksum a ticket declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedChecksum {
    /// Its algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Its base64 value.
    pub value: String,
}

/// What one ticket allowed, as issued: what its upload is verified against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The ticket's own id (a UUID): the root of its event's id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The subject it was issued to.
    pub subject: String,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// POST, PUT or multipart.
    pub kind: TicketKind,
    /// The smallest object the ticket allows.
    pub min_size: u64,
    /// The largest object the ticket allows.
    pub max_size: u64,
    /// Bytes counted against the tenant's day when it was issued.
    pub reserved: u64,
    /// The UTC day (days since the epoch) those bytes were counted in.
    pub day: u64,
    /// The declared content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The declared checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<RecordedChecksum>,
    /// The declared metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When the ticket (or the multipart upload) expires, unix seconds.
    pub expires_at: u64,
    /// When the sweeper may look for its object: expiry plus grace, unix seconds.
    pub due: u64,
}

/// A ticket to record, borrowed from the request that issued it: what [`TicketRecord`]
/// holds, with nothing copied on the way (the ticket path pays only for what the backend
/// keeps). Serialises as a [`TicketRecord`] does.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NewTicket<'a> {
    /// The ticket's own id.
    #[serde(serialize_with = "as_string")]
    pub id: uuid::Uuid,
    /// The tenant.
    pub tenant: &'a str,
    /// The subject it is issued to.
    pub subject: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The key.
    pub key: &'a str,
    /// POST, PUT or multipart.
    pub kind: TicketKind,
    /// The smallest object the ticket allows.
    pub min_size: u64,
    /// The largest object the ticket allows.
    pub max_size: u64,
    /// Bytes counted against the tenant's day.
    pub reserved: u64,
    /// The UTC day they are counted in.
    pub day: u64,
    /// The declared content type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'a str>,
    /// The declared checksum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumRef<'a>>,
    /// The declared metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: &'a BTreeMap<String, String>,
    /// When the ticket expires, unix seconds.
    pub expires_at: u64,
    /// When the sweeper may look for its object.
    pub due: u64,
}

/// A declared checksum, borrowed; serialises as a [`RecordedChecksum`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChecksumRef<'a> {
    /// Its algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Its base64 value.
    pub value: &'a str,
}

fn as_string<S: serde::Serializer>(id: &uuid::Uuid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

impl NewTicket<'_> {
    /// The owned record.
    pub fn to_record(&self) -> TicketRecord {
        TicketRecord {
            id: self.id.to_string(),
            tenant: self.tenant.to_owned(),
            subject: self.subject.to_owned(),
            bucket: self.bucket.to_owned(),
            key: self.key.to_owned(),
            kind: self.kind,
            min_size: self.min_size,
            max_size: self.max_size,
            reserved: self.reserved,
            day: self.day,
            content_type: self.content_type.map(str::to_owned),
            checksum: self.checksum.map(|c| RecordedChecksum {
                algorithm: c.algorithm,
                value: c.value.to_owned(),
            }),
            metadata: self.metadata.clone(),
            expires_at: self.expires_at,
            due: self.due,
        }
    }
}

/// What finishing a key changes: which of its tickets are done, and the event to send.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The key.
    pub key: &'a str,
    /// The tickets of the key this finishes (their reserved bytes are settled).
    pub tickets: &'a [TicketRecord],
    /// Bytes that really landed and count against the day: the object's size when it
    /// is kept, 0 when none appeared or it was refused.
    pub landed: u64,
    /// The event to queue, if the tenant has a webhook.
    pub event: Option<&'a PendingEvent>,
    /// Now, unix seconds.
    pub now: u64,
}

impl Finish<'_> {
    /// Per UTC day, what the day's byte counter changes by: the landed bytes replace
    /// what the tickets reserved (counted in the newest ticket's day).
    pub(crate) fn adjustments(&self) -> BTreeMap<u64, i64> {
        let mut by_day = BTreeMap::new();
        for ticket in self.tickets {
            *by_day.entry(ticket.day).or_insert(0i64) -= signed(ticket.reserved);
        }
        if let Some(newest) = self.tickets.iter().map(|t| t.day).max() {
            *by_day.entry(newest).or_insert(0) += signed(self.landed);
        }
        by_day.retain(|_, delta| *delta != 0);
        by_day
    }
}

fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// An event waiting to be delivered to a tenant's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEvent {
    /// `webhook-id`: the same on every attempt.
    pub id: String,
    /// The tenant whose webhook receives it.
    pub tenant: String,
    /// `upload.completed` or `upload.rejected`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was queued, unix seconds.
    pub queued_at: u64,
    /// How the last attempt went, in words (for the dead letter and the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The W3C `traceparent` of the request that found the upload (with traces on):
    /// each delivery continues that trace and passes it on to the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What is waiting, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Keys with tickets not yet finished.
    pub pending_keys: u64,
    /// Seconds the oldest due key has waited past its due time (0: none overdue).
    pub sweep_lag: u64,
    /// Events waiting for delivery.
    pub events: u64,
}

/// How long the records of a key and a queued event live at most: a backstop for a
/// deployment whose sweepers all stopped (they are removed long before when one runs).
pub(crate) const RECORD_SLACK_SECONDS: u64 = 86_400;

/// How long a queued or dead-lettered event is kept.
pub(crate) const EVENT_RETENTION_SECONDS: u64 = 7 * 86_400;

/// How many dead letters a tenant keeps (the newest).
pub(crate) const DEAD_LETTERS_KEPT: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(day: u64, reserved: u64) -> TicketRecord {
        TicketRecord {
            id: "t".to_owned(),
            tenant: "acme".to_owned(),
            subject: "u".to_owned(),
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            kind: TicketKind::Post,
            min_size: 0,
            max_size: reserved,
            reserved,
            day,
            content_type: None,
            checksum: None,
            metadata: BTreeMap::new(),
            expires_at: 0,
            due: 0,
        }
    }

    #[test]
    fn settling_replaces_reserved_bytes_by_landed_ones() {
        let tickets = [ticket(10, 100), ticket(11, 50)];
        let finish = |landed| Finish {
            tenant: "acme",
            key: "k",
            tickets: &tickets,
            landed,
            event: None,
            now: 0,
        };
        assert_eq!(
            finish(0).adjustments(),
            BTreeMap::from([(10, -100), (11, -50)])
        );
        assert_eq!(
            finish(30).adjustments(),
            BTreeMap::from([(10, -100), (11, -20)])
        );
        assert_eq!(finish(50).adjustments(), BTreeMap::from([(10, -100)]));
    }
}
