//! Records and events in this process: what Redis holds for many replicas, for one.
//! The same steps as the Redis scripts, each under one lock.
//!
//! A pending ticket is kept compact (300 to 450 bytes with its key and its share of the
//! table, by the allocator): one allocation holds its strings, the key among them (the
//! table finds a key by its hash and compares the packed bytes, so the key is not kept
//! twice); what the tenant and the bucket are is said once per tenant; its id is 16
//! bytes. At most [`MAX_PENDING`] tickets are kept; past that new ones go unrecorded
//! (counted and logged): memory stays bounded whatever the ticket rate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::records::{
    Backlog, DEAD_LETTERS_KEPT, Finish, NewTicket, PendingEvent, RECORD_SLACK_SECONDS,
    RecordedChecksum, TicketKind, TicketRecord,
};

/// The most tickets kept pending in process (about 400 MB).
pub(super) const MAX_PENDING: usize = 1_000_000;

/// A pending ticket, compact: its strings (its key, the subject, the declared type and
/// metadata) packed in one allocation, each as a little-endian `u32` length and its bytes.
#[derive(Debug, Clone)]
struct Pending {
    id: uuid::Uuid,
    kind: TicketKind,
    has_type: bool,
    day: u32,
    min_size: u64,
    max_size: u64,
    reserved: u64,
    expires_at: u64,
    due: u64,
    /// The key, the subject, the declared type if `has_type`, then metadata names and
    /// values.
    strings: Box<[u8]>,
    checksum: Option<Box<RecordedChecksum>>,
}

/// `parts`, each as its length (`u32`, little-endian) and its bytes.
fn pack<'a>(parts: impl Iterator<Item = &'a str> + Clone) -> Box<[u8]> {
    let mut packed = Vec::with_capacity(parts.clone().map(|p| 4 + p.len()).sum());
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        packed.extend_from_slice(&len.to_le_bytes());
        packed.extend_from_slice(&part.as_bytes()[..len as usize]);
    }
    packed.into_boxed_slice()
}

/// The first part [`pack`] packed and the rest (empty for an ill-formed rest: there is
/// none).
fn first_part(packed: &[u8]) -> (&[u8], &[u8]) {
    packed
        .split_first_chunk::<4>()
        .and_then(|(len, rest)| rest.split_at_checked(u32::from_le_bytes(*len) as usize))
        .unwrap_or_default()
}

/// The parts [`pack`] packed.
fn unpack(mut packed: &[u8]) -> Vec<String> {
    let mut parts = Vec::new();
    while !packed.is_empty() {
        let (part, rest) = first_part(packed);
        parts.push(String::from_utf8_lossy(part).into_owned());
        packed = rest;
    }
    parts
}

impl Pending {
    fn of(ticket: &NewTicket<'_>) -> Self {
        let metadata = ticket
            .metadata
            .iter()
            .flat_map(|(name, value)| [name.as_str(), value.as_str()]);
        let strings = pack(
            [ticket.key, ticket.subject]
                .into_iter()
                .chain(ticket.content_type)
                .chain(metadata),
        );
        Self {
            id: ticket.id,
            kind: ticket.kind,
            has_type: ticket.content_type.is_some(),
            day: u32::try_from(ticket.day).unwrap_or(u32::MAX),
            min_size: ticket.min_size,
            max_size: ticket.max_size,
            reserved: ticket.reserved,
            expires_at: ticket.expires_at,
            due: ticket.due,
            strings,
            checksum: ticket.checksum.map(|c| {
                Box::new(RecordedChecksum {
                    algorithm: c.algorithm,
                    value: c.value.to_owned(),
                })
            }),
        }
    }

    /// The key's bytes, as packed.
    fn key(&self) -> &[u8] {
        first_part(&self.strings).0
    }

    fn record(&self, tenant: &str, bucket: &str) -> TicketRecord {
        let mut strings = unpack(&self.strings).into_iter();
        let key = strings.next().unwrap_or_default();
        let subject = strings.next().unwrap_or_default();
        let content_type = if self.has_type { strings.next() } else { None };
        let mut metadata = BTreeMap::new();
        while let (Some(name), Some(value)) = (strings.next(), strings.next()) {
            metadata.insert(name, value);
        }
        TicketRecord {
            id: self.id.to_string(),
            tenant: tenant.to_owned(),
            subject,
            bucket: bucket.to_owned(),
            key,
            kind: self.kind,
            min_size: self.min_size,
            max_size: self.max_size,
            reserved: self.reserved,
            day: u64::from(self.day),
            content_type,
            checksum: self.checksum.as_deref().cloned(),
            metadata,
            expires_at: self.expires_at,
            due: self.due,
        }
    }
}

/// The tickets of one key, and when the sweeper may look at it next. The first ticket
/// is kept inline (a key has one ticket but for templates without `{uuid}`).
#[derive(Debug)]
struct Slot {
    /// The key's hash: the table grows without reading every key again.
    hash: u64,
    due: u64,
    first: Pending,
    more: Vec<Pending>,
}

impl Slot {
    fn tickets(&self) -> impl Iterator<Item = &Pending> {
        std::iter::once(&self.first).chain(&self.more)
    }

    fn len(&self) -> usize {
        1 + self.more.len()
    }

    /// Drops the tickets `ids` names; `None` when none is left.
    fn without(self, ids: &[uuid::Uuid]) -> Option<Self> {
        let mut left = self
            .tickets()
            .filter(|t| !ids.contains(&t.id))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter();
        let first = left.next()?;
        Some(Self {
            first,
            more: left.collect(),
            ..self
        })
    }
}

/// One tenant's pending keys.
#[derive(Debug)]
struct Tenant {
    id: Box<str>,
    bucket: Box<str>,
    slots: HashTable<Slot>,
}

impl Tenant {
    fn records(&self, slot: &Slot) -> Vec<TicketRecord> {
        let (id, bucket) = (&self.id, &self.bucket);
        slot.tickets().map(|t| t.record(id, bucket)).collect()
    }
}

/// `slot` holds the tickets of `key`.
fn holds(key: &str) -> impl Fn(&Slot) -> bool + '_ {
    move |slot| slot.first.key() == key.as_bytes()
}

/// A part of the pending keys (by the key's hash): a shard is locked, and grows, on its
/// own, so tickets of other keys neither wait for it nor for its table to be resized.
#[derive(Debug, Default)]
struct Shard {
    tenants: hashbrown::HashMap<Box<str>, Tenant>,
}

/// Events, all tenants.
#[derive(Debug, Default)]
struct Events {
    /// By tenant: event id -> (next attempt, event).
    outbox: HashMap<String, BTreeMap<String, (u64, PendingEvent)>>,
    /// By tenant, newest first.
    dead: HashMap<String, VecDeque<PendingEvent>>,
}

/// How many shards the pending keys are split in.
const SHARDS: usize = 16;

/// Records and events in this process.
#[derive(Debug)]
pub struct MemoryRecords {
    shards: [Mutex<Shard>; SHARDS],
    events: Mutex<Events>,
    /// Tickets kept, all tenants.
    pending: AtomicUsize,
    /// Whether the cap was hit (the log says so once per episode).
    full: AtomicBool,
    /// Hashes keys, for the shard and the shard's table alike.
    hasher: DefaultHashBuilder,
}

impl Default for MemoryRecords {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            events: Mutex::default(),
            pending: AtomicUsize::new(0),
            full: AtomicBool::new(false),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

/// Every update is whole before a guard drops: a poisoned lock holds sound data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryRecords {
    /// The shard of `key`, and the key's hash in the shard's tables. The shard is chosen
    /// by bits the tables do not use for a slot (they use the low bits and the top 7).
    fn shard(&self, key: &str) -> (MutexGuard<'_, Shard>, u64) {
        let hash = self.hasher.hash_one(key);
        let shard = (hash >> 32) as usize % SHARDS;
        (lock(&self.shards[shard]), hash)
    }

    fn events(&self) -> MutexGuard<'_, Events> {
        lock(&self.events)
    }

    pub(super) fn record(&self, ticket: &NewTicket<'_>) {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("upload_tickets_records_skipped_total").increment(1);
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = MAX_PENDING,
                    "too many tickets pending in process: new ones go unrecorded (configure [redis] url)"
                );
            }
            return;
        }
        if self.full.load(Ordering::Relaxed) {
            self.full.store(false, Ordering::Relaxed);
        }
        let pending = Pending::of(ticket);
        let (mut shard, hash) = self.shard(ticket.key);
        let tenant = match shard.tenants.get_mut(ticket.tenant) {
            Some(tenant) => tenant,
            None => shard
                .tenants
                .entry(Box::from(ticket.tenant))
                .or_insert_with(|| Tenant {
                    id: Box::from(ticket.tenant),
                    bucket: Box::from(ticket.bucket),
                    slots: HashTable::new(),
                }),
        };
        match tenant.slots.find_mut(hash, holds(ticket.key)) {
            Some(slot) => {
                slot.due = slot.due.max(ticket.due);
                slot.more.push(pending);
            }
            None => {
                let slot = Slot {
                    hash,
                    due: ticket.due,
                    first: pending,
                    more: Vec::new(),
                };
                tenant.slots.insert_unique(hash, slot, |slot| slot.hash);
            }
        }
    }

    pub(super) fn tickets_of(&self, tenant: &str, key: &str) -> Vec<TicketRecord> {
        let (shard, hash) = self.shard(key);
        let Some(tenant) = shard.tenants.get(tenant) else {
            return Vec::new();
        };
        tenant
            .slots
            .find(hash, holds(key))
            .map(|slot| tenant.records(slot))
            .unwrap_or_default()
    }

    pub(super) fn claim_due(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Vec<Vec<TicketRecord>> {
        let mut claimed = Vec::new();
        for shard in &self.shards {
            if claimed.len() >= max {
                break;
            }
            let mut shard = lock(shard);
            let Some(Tenant { id, bucket, slots }) = shard.tenants.get_mut(tenant) else {
                continue;
            };
            // A backstop, as Redis expires keys: records nobody finished in a day go.
            let mut dropped = 0;
            slots.retain(|slot| {
                let keep = slot.due + RECORD_SLACK_SECONDS > now;
                if !keep {
                    dropped += slot.len();
                }
                keep
            });
            self.pending.fetch_sub(dropped, Ordering::Relaxed);
            for slot in slots.iter_mut() {
                if claimed.len() >= max {
                    break;
                }
                if slot.due <= now {
                    slot.due = now + lease;
                    let records = slot.tickets().map(|t| t.record(id, bucket));
                    claimed.push(records.collect());
                }
            }
        }
        claimed
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
        {
            let (mut shard, hash) = self.shard(finish.key);
            let Some(tenant) = shard.tenants.get_mut(finish.tenant) else {
                return false;
            };
            let Ok(entry) = tenant.slots.find_entry(hash, holds(finish.key)) else {
                return false;
            };
            let slot = entry.get();
            if ids.iter().any(|id| !slot.tickets().any(|t| t.id == *id)) {
                return false;
            }
            self.pending.fetch_sub(ids.len(), Ordering::Relaxed);
            let (slot, _) = entry.remove();
            if let Some(mut left) = slot.without(&ids) {
                // The key's other tickets are looked at when the last of them is due.
                left.due = left
                    .tickets()
                    .map(|t| t.expires_at + grace)
                    .max()
                    .unwrap_or(0);
                tenant.slots.insert_unique(hash, left, |slot| slot.hash);
            }
        }
        if let Some(event) = finish.event {
            self.events()
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
        let mut events = self.events();
        let Some(outbox) = events.outbox.get_mut(tenant) else {
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
        if let Some(outbox) = self.events().outbox.get_mut(tenant) {
            outbox.remove(id);
        }
    }

    pub(super) fn retry(&self, event: &PendingEvent, at: u64) {
        let mut events = self.events();
        let outbox = events.outbox.entry(event.tenant.clone()).or_default();
        outbox.insert(event.id.clone(), (at, event.clone()));
    }

    pub(super) fn dead_letter(&self, event: &PendingEvent) {
        let mut events = self.events();
        if let Some(outbox) = events.outbox.get_mut(&event.tenant) {
            outbox.remove(&event.id);
        }
        let dead = events.dead.entry(event.tenant.clone()).or_default();
        dead.push_front(event.clone());
        dead.truncate(DEAD_LETTERS_KEPT);
    }

    pub(super) fn dead_letters(&self, tenant: &str) -> Vec<PendingEvent> {
        self.events()
            .dead
            .get(tenant)
            .map(|dead| dead.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn backlog(&self, tenant: &str, now: u64) -> Backlog {
        let (mut pending_keys, mut oldest) = (0, None::<u64>);
        for shard in &self.shards {
            let shard = lock(shard);
            if let Some(tenant) = shard.tenants.get(tenant) {
                pending_keys += tenant.slots.len() as u64;
                let first = tenant.slots.iter().map(|s| s.due).min();
                oldest = match (oldest, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Backlog {
            pending_keys,
            sweep_lag: oldest.map_or(0, |due| now.saturating_sub(due)),
            events: self
                .events()
                .outbox
                .get(tenant)
                .map_or(0, |o| o.len() as u64),
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
            traceparent: None,
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
        assert_eq!(records.pending.load(Ordering::Relaxed), 1);
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
    fn every_key_finds_its_own_tickets_as_the_tables_grow() {
        let records = MemoryRecords::default();
        // Keys that are prefixes of each other, and enough to grow every shard's table.
        let keys: Vec<String> = (0..5000)
            .map(|i| "k".repeat(1 + i % 7) + &i.to_string())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            records.record(&ticket(i as u128, key, 50));
        }
        for (i, key) in keys.iter().enumerate().step_by(2) {
            let tickets = records.tickets_of("acme", key);
            assert_eq!(tickets, vec![ticket(i as u128, key, 50).to_record()]);
            assert!(records.finish(&finish(&tickets, None), 0));
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(records.tickets_of("acme", key).len(), i % 2, "{key}");
        }
        assert!(records.tickets_of("acme", "k").is_empty());
        assert!(records.tickets_of("other", &keys[1]).is_empty());
        assert_eq!(records.pending.load(Ordering::Relaxed), 2500);
        assert_eq!(records.backlog("acme", 0).pending_keys, 2500);
    }

    #[test]
    fn packed_strings_come_back_whole() {
        let parts = ["", "ü\0x", "user-42", &"k".repeat(300)];
        assert_eq!(unpack(&pack(parts.iter().copied())), parts);
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
