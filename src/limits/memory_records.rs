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
