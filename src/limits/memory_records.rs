//! Records and events in this process: what Redis holds for many replicas, for one.
//! The same steps as the Redis scripts, each under one lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::records::{
    Backlog, DEAD_LETTERS_KEPT, Finish, PendingEvent, RECORD_SLACK_SECONDS, TicketRecord,
};

/// The tickets of one key, and when the sweeper may look at it next.
#[derive(Debug, Default)]
struct Slot {
    due: u64,
    tickets: Vec<TicketRecord>,
}

#[derive(Debug, Default)]
struct State {
    /// By tenant, then key.
    slots: HashMap<String, HashMap<String, Slot>>,
    /// By tenant: event id -> (next attempt, event).
    outbox: HashMap<String, BTreeMap<String, (u64, PendingEvent)>>,
    /// By tenant, newest first.
    dead: HashMap<String, VecDeque<PendingEvent>>,
}

/// Records and events behind one mutex.
#[derive(Debug, Default)]
pub struct MemoryRecords {
    state: Mutex<State>,
}

impl MemoryRecords {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is whole before the guard drops: a poisoned lock holds sound data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn record(&self, record: TicketRecord) {
        let mut state = self.state();
        let slot = state
            .slots
            .entry(record.tenant.clone())
            .or_default()
            .entry(record.key.clone())
            .or_default();
        slot.due = slot.due.max(record.due);
        slot.tickets.push(record);
    }

    pub(super) fn tickets_of(&self, tenant: &str, key: &str) -> Vec<TicketRecord> {
        let state = self.state();
        state
            .slots
            .get(tenant)
            .and_then(|slots| slots.get(key))
            .map(|slot| slot.tickets.clone())
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
        let Some(slots) = state.slots.get_mut(tenant) else {
            return Vec::new();
        };
        // A backstop, as Redis expires keys: records nobody finished in a day go.
        slots.retain(|_, slot| slot.due + RECORD_SLACK_SECONDS > now);
        let mut claimed = Vec::new();
        for slot in slots.values_mut() {
            if claimed.len() >= max {
                break;
            }
            if slot.due <= now {
                slot.due = now + lease;
                claimed.push(slot.tickets.clone());
            }
        }
        claimed
    }

    pub(super) fn finish(&self, finish: &Finish<'_>, grace: u64) -> bool {
        let mut state = self.state();
        let Some(slots) = state.slots.get_mut(finish.tenant) else {
            return false;
        };
        let Some(slot) = slots.get_mut(finish.key) else {
            return false;
        };
        let done = |t: &TicketRecord| finish.tickets.iter().any(|f| f.id == t.id);
        if finish
            .tickets
            .iter()
            .any(|f| !slot.tickets.iter().any(|t| t.id == f.id))
        {
            return false;
        }
        slot.tickets.retain(|t| !done(t));
        if slot.tickets.is_empty() {
            slots.remove(finish.key);
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
        let slots = state.slots.get(tenant);
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
    use crate::limits::records::TicketKind;

    fn ticket(id: &str, key: &str, expires_at: u64) -> TicketRecord {
        TicketRecord {
            id: id.to_owned(),
            tenant: "acme".to_owned(),
            subject: "u".to_owned(),
            bucket: "bucket".to_owned(),
            key: key.to_owned(),
            kind: TicketKind::Put,
            min_size: 0,
            max_size: 10,
            reserved: 10,
            day: 0,
            content_type: None,
            checksum: None,
            metadata: BTreeMap::new(),
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
        records.record(ticket("a", "k1", 50));
        records.record(ticket("b", "k2", 500));
        assert!(
            records.claim_due("acme", 40, 60, 10).is_empty(),
            "not due yet"
        );
        let claimed = records.claim_due("acme", 100, 60, 10);
        assert_eq!(claimed.len(), 1);
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
    }

    #[test]
    fn a_key_with_two_tickets_waits_for_the_later_one() {
        let records = MemoryRecords::default();
        records.record(ticket("a", "k", 50));
        records.record(ticket("b", "k", 80));
        assert!(records.claim_due("acme", 60, 60, 10).is_empty());
        let first = [ticket("a", "k", 50)];
        assert!(records.finish(&finish(&first, None), 5));
        assert_eq!(records.tickets_of("acme", "k").len(), 1);
        assert_eq!(
            records.claim_due("acme", 85, 60, 10).len(),
            1,
            "due at 80 + 5"
        );
    }
}
