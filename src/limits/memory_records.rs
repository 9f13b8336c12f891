//! Records and events in this process: what Redis holds for many replicas, for one.
//! The same steps as the Redis scripts, each under one lock.
//!
//! A pending ticket is kept compact (about 200 bytes with its key): what the tenant and
//! the bucket are is said once per tenant, its id is 16 bytes, what it declared is
//! allocated only when it declared something. At most [`MAX_PENDING`] tickets are kept;
//! past that new ones go unrecorded (counted and logged): memory stays bounded whatever
//! the ticket rate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::records::{
    Backlog, DEAD_LETTERS_KEPT, Finish, NewTicket, PendingEvent, RECORD_SLACK_SECONDS,
    RecordedChecksum, TicketKind, TicketRecord,
};

/// The most tickets kept pending in process (about 200 MB).
pub(super) const MAX_PENDING: usize = 1_000_000;

/// What a ticket declared beyond its bounds: allocated only when there is something.
#[derive(Debug, Clone)]
struct Declared {
    content_type: Option<Box<str>>,
    checksum: Option<RecordedChecksum>,
    metadata: BTreeMap<String, String>,
}

/// A pending ticket, compact.
#[derive(Debug, Clone)]
struct Pending {
    id: uuid::Uuid,
    subject: Box<str>,
    kind: TicketKind,
    min_size: u64,
    max_size: u64,
    reserved: u64,
    day: u32,
    expires_at: u64,
    due: u64,
    declared: Option<Box<Declared>>,
}

impl Pending {
    fn of(ticket: &NewTicket<'_>) -> Self {
        let declared = (ticket.content_type.is_some()
            || ticket.checksum.is_some()
            || !ticket.metadata.is_empty())
        .then(|| {
            Box::new(Declared {
                content_type: ticket.content_type.map(Box::from),
                checksum: ticket.checksum.map(|c| RecordedChecksum {
                    algorithm: c.algorithm,
                    value: c.value.to_owned(),
                }),
                metadata: ticket.metadata.clone(),
            })
        });
        Self {
            id: ticket.id,
            subject: Box::from(ticket.subject),
            kind: ticket.kind,
            min_size: ticket.min_size,
            max_size: ticket.max_size,
            reserved: ticket.reserved,
            day: u32::try_from(ticket.day).unwrap_or(u32::MAX),
            expires_at: ticket.expires_at,
            due: ticket.due,
            declared,
        }
    }

    fn record(&self, tenant: &Tenant, key: &str) -> TicketRecord {
        let declared = self.declared.as_deref();
        TicketRecord {
            id: self.id.to_string(),
            tenant: tenant.id.to_string(),
            subject: self.subject.to_string(),
            bucket: tenant.bucket.to_string(),
            key: key.to_owned(),
            kind: self.kind,
            min_size: self.min_size,
            max_size: self.max_size,
            reserved: self.reserved,
            day: u64::from(self.day),
            content_type: declared.and_then(|d| d.content_type.as_deref().map(str::to_owned)),
            checksum: declared.and_then(|d| d.checksum.clone()),
            metadata: declared.map(|d| d.metadata.clone()).unwrap_or_default(),
            expires_at: self.expires_at,
            due: self.due,
        }
    }
}

/// The tickets of one key, and when the sweeper may look at it next.
#[derive(Debug)]
struct Slot {
    due: u64,
    tickets: Vec<Pending>,
}

/// One tenant's pending keys.
#[derive(Debug)]
struct Tenant {
    id: Box<str>,
    bucket: Box<str>,
    slots: HashMap<Box<str>, Slot>,
}

impl Tenant {
    fn records(&self, key: &str, slot: &Slot) -> Vec<TicketRecord> {
        slot.tickets.iter().map(|t| t.record(self, key)).collect()
    }
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<Box<str>, Tenant>,
    /// Tickets kept, all tenants.
    pending: usize,
    /// By tenant: event id -> (next attempt, event).
    outbox: HashMap<String, BTreeMap<String, (u64, PendingEvent)>>,
    /// By tenant, newest first.
    dead: HashMap<String, VecDeque<PendingEvent>>,
}

/// Records and events behind one mutex.
#[derive(Debug, Default)]
pub struct MemoryRecords {
    state: Mutex<State>,
    /// Whether the cap was hit (the log says so once per episode).
    full: AtomicBool,
}

impl MemoryRecords {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is whole before the guard drops: a poisoned lock holds sound data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn record(&self, ticket: &NewTicket<'_>) {
        let pending = Pending::of(ticket);
        let mut state = self.state();
        if state.pending >= MAX_PENDING {
            drop(state);
            metrics::counter!("upload_tickets_records_skipped_total").increment(1);
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = MAX_PENDING,
                    "too many tickets pending in process: new ones go unrecorded (configure [redis] url)"
                );
            }
            return;
        }
        self.full.store(false, Ordering::Relaxed);
        state.pending += 1;
        let tenant = match state.tenants.get_mut(ticket.tenant) {
            Some(tenant) => tenant,
            None => state
                .tenants
                .entry(Box::from(ticket.tenant))
                .or_insert_with(|| Tenant {
                    id: Box::from(ticket.tenant),
                    bucket: Box::from(ticket.bucket),
                    slots: HashMap::new(),
                }),
        };
        match tenant.slots.get_mut(ticket.key) {
            Some(slot) => {
                slot.due = slot.due.max(ticket.due);
                slot.tickets.push(pending);
            }
            None => {
                let slot = Slot {
                    due: ticket.due,
                    tickets: vec![pending],
                };
                tenant.slots.insert(Box::from(ticket.key), slot);
            }
        }
    }

    pub(super) fn tickets_of(&self, tenant: &str, key: &str) -> Vec<TicketRecord> {
        let state = self.state();
        let Some(tenant) = state.tenants.get(tenant) else {
            return Vec::new();
        };
        tenant
            .slots
            .get(key)
            .map(|slot| tenant.records(key, slot))
            .unwrap_or_default()
    }

    pub(super) fn claim_due(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Vec<Vec<TicketRecord>> {
        let mut state = self.state();
        let state = &mut *state;
        let Some(tenant) = state.tenants.get_mut(tenant) else {
            return Vec::new();
        };
        // A backstop, as Redis expires keys: records nobody finished in a day go.
        let before: usize = tenant.slots.values().map(|s| s.tickets.len()).sum();
        tenant
            .slots
            .retain(|_, slot| slot.due + RECORD_SLACK_SECONDS > now);
        let after: usize = tenant.slots.values().map(|s| s.tickets.len()).sum();
        state.pending -= before - after;
        let mut claimed = Vec::new();
        for (key, slot) in &mut tenant.slots {
            if claimed.len() >= max {
                break;
            }
            if slot.due <= now {
                slot.due = now + lease;
                claimed.push((key.clone(), slot.tickets.clone()));
            }
        }
        claimed
            .into_iter()
            .map(|(key, tickets)| tickets.iter().map(|t| t.record(tenant, &key)).collect())
            .collect()
    }

    pub(super) fn finish(&self, finish: &Finish<'_>, grace: u64) -> bool {
        let ids: Vec<uuid::Uuid> = finish
            .tickets
            .iter()
            .filter_map(|t| uuid::Uuid::parse_str(&t.id).ok())
            .collect();
        if ids.len() != finish.tickets.len() {
            return false;
        }
        let mut state = self.state();
        let state = &mut *state;
        let Some(tenant) = state.tenants.get_mut(finish.tenant) else {
            return false;
        };
        let Some(slot) = tenant.slots.get_mut(finish.key) else {
            return false;
        };
        if ids
            .iter()
            .any(|id| !slot.tickets.iter().any(|t| t.id == *id))
        {
            return false;
        }
        slot.tickets.retain(|t| !ids.contains(&t.id));
        state.pending -= ids.len();
        if slot.tickets.is_empty() {
            tenant.slots.remove(finish.key);
        } else {
            // The key's other tickets are looked at when the last of them is due.
            slot.due = slot
                .tickets
                .iter()
                .map(|t| t.expires_at + grace)
                .max()
                .unwrap_or(0);
        }
        if let Some(event) = finish.event {
            state
                .outbox
                .entry(event.tenant.clone())
                .or_default()
                .insert(event.id.clone(), (finish.now, event.clone()));
        }
        true
    }

    pub(super) fn claim_events(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Vec<PendingEvent> {
        let mut state = self.state();
        let Some(outbox) = state.outbox.get_mut(tenant) else {
            return Vec::new();
        };
        let mut claimed = Vec::new();
        for (next, event) in outbox.values_mut() {
            if claimed.len() >= max {
                break;
            }
            if *next <= now {
                *next = now + lease;
                claimed.push(event.clone());
            }
        }
        claimed
    }

    pub(super) fn delivered(&self, tenant: &str, id: &str) {
        if let Some(outbox) = self.state().outbox.get_mut(tenant) {
            outbox.remove(id);
        }
    }

    pub(super) fn retry(&self, event: &PendingEvent, at: u64) {
        let mut state = self.state();
        let outbox = state.outbox.entry(event.tenant.clone()).or_default();
        outbox.insert(event.id.clone(), (at, event.clone()));
    }

    pub(super) fn dead_letter(&self, event: &PendingEvent) {
        let mut state = self.state();
        if let Some(outbox) = state.outbox.get_mut(&event.tenant) {
            outbox.remove(&event.id);
        }
        let dead = state.dead.entry(event.tenant.clone()).or_default();
        dead.push_front(event.clone());
        dead.truncate(DEAD_LETTERS_KEPT);
    }

    pub(super) fn dead_letters(&self, tenant: &str) -> Vec<PendingEvent> {
        let state = self.state();
        state
            .dead
            .get(tenant)
            .map(|dead| dead.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn backlog(&self, tenant: &str, now: u64) -> Backlog {
        let state = self.state();
        let slots = state.tenants.get(tenant).map(|t| &t.slots);
        let oldest = slots.and_then(|slots| slots.values().map(|s| s.due).min());
        Backlog {
            pending_keys: slots.map_or(0, |slots| slots.len() as u64),
            sweep_lag: oldest.map_or(0, |due| now.saturating_sub(due)),
            events: state.outbox.get(tenant).map_or(0, |o| o.len() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_METADATA: BTreeMap<String, String> = BTreeMap::new();

    fn ticket(id: u128, key: &str, expires_at: u64) -> NewTicket<'_> {
        NewTicket {
            id: uuid::Uuid::from_u128(id),
            tenant: "acme",
            subject: "u",
            bucket: "bucket",
            key,
            kind: TicketKind::Put,
            min_size: 0,
            max_size: 10,
            reserved: 10,
            day: 0,
            content_type: None,
            checksum: None,
            metadata: &NO_METADATA,
            expires_at,
            due: expires_at,
        }
    }

    fn finish<'a>(tickets: &'a [TicketRecord], event: Option<&'a PendingEvent>) -> Finish<'a> {
        Finish {
            tenant: "acme",
            key: &tickets[0].key,
            tickets,
            landed: 0,
            event,
            now: 100,
        }
    }

    #[test]
    fn a_due_key_is_claimed_once_per_lease_and_finished_once() {
        let records = MemoryRecords::default();
        records.record(&ticket(1, "k1", 50));
        records.record(&ticket(2, "k2", 500));
        assert!(
            records.claim_due("acme", 40, 60, 10).is_empty(),
            "not due yet"
        );
        let claimed = records.claim_due("acme", 100, 60, 10);
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            claimed[0],
            vec![ticket(1, "k1", 50).to_record()],
            "kept whole"
        );
        assert!(records.claim_due("acme", 120, 60, 10).is_empty(), "leased");
        assert_eq!(
            records.claim_due("acme", 161, 60, 10).len(),
            1,
            "lease over"
        );
        let event = PendingEvent {
            id: "msg_a".to_owned(),
            tenant: "acme".to_owned(),
            kind: "upload.completed".to_owned(),
            body: "{}".to_owned(),
            attempts: 0,
            queued_at: 100,
            last_error: None,
        };
        assert!(records.finish(&finish(&claimed[0], Some(&event)), 0));
        assert!(
            !records.finish(&finish(&claimed[0], Some(&event)), 0),
            "once"
        );
        assert_eq!(records.claim_events("acme", 100, 30, 10).len(), 1);
        assert!(
            records.claim_events("acme", 110, 30, 10).is_empty(),
            "claimed"
        );
        records.dead_letter(&event);
        assert_eq!(records.dead_letters("acme").len(), 1);
        assert!(records.claim_events("acme", 1000, 30, 10).is_empty());
        assert_eq!(records.backlog("acme", 100).pending_keys, 1);
        assert_eq!(records.state().pending, 1);
    }

    #[test]
    fn a_key_with_two_tickets_waits_for_the_later_one() {
        let records = MemoryRecords::default();
        records.record(&ticket(1, "k", 50));
        records.record(&ticket(2, "k", 80));
        assert!(records.claim_due("acme", 60, 60, 10).is_empty());
        let first = [ticket(1, "k", 50).to_record()];
        assert!(records.finish(&finish(&first, None), 5));
        assert_eq!(records.tickets_of("acme", "k").len(), 1);
        assert_eq!(
            records.claim_due("acme", 85, 60, 10).len(),
            1,
            "due at 80 + 5"
        );
    }

    #[test]
    fn what_a_ticket_declared_comes_back_as_declared() {
        let metadata = BTreeMap::from([("album".to_owned(), "x".to_owned())]);
        let declared = NewTicket {
            content_type: Some("image/png"),
            checksum: Some(crate::limits::records::ChecksumRef {
                algorithm: s3_presigned_post::ChecksumAlgorithm::Sha256,
                value: "AAAA",
            }),
            metadata: &metadata,
            ..ticket(7, "k", 10)
        };
        let records = MemoryRecords::default();
        records.record(&declared);
        assert_eq!(records.tickets_of("acme", "k"), vec![declared.to_record()]);
    }
}
