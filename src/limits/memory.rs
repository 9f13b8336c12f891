//! The counters in this process: what Redis does for many replicas, for one. The same
//! keys, windows and order of checks as the Redis script.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Charge, Counted, Quotas, Refused, Usage, Used, Windows, calls_key, charge_keys, unix};

#[derive(Debug, Default)]
struct State {
    /// Counter by key: its value and the unix second it expires at.
    counters: HashMap<String, (u64, u64)>,
    /// Open uploads by key: each member's deadline (unix seconds).
    open: HashMap<String, HashMap<String, u64>>,
}

/// Counters in a mutex: one short critical section per ticket.
#[derive(Debug, Default, Clone)]
pub struct MemoryCounters {
    state: Arc<Mutex<State>>,
}

impl MemoryCounters {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is whole before the guard drops: a poisoned lock holds sound data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops expired counters and uploads every minute, as Redis expires keys.
    pub(super) fn start_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let counters = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let now = unix(std::time::SystemTime::now());
                let mut state = counters.state();
                state.counters.retain(|_, (_, expires)| *expires > now);
                for members in state.open.values_mut() {
                    members.retain(|_, deadline| *deadline > now);
                }
                state.open.retain(|_, members| !members.is_empty());
            }
        })
    }

    pub(super) fn admit(&self, limits: &Quotas, charge: &Charge<'_>, w: Windows) -> Counted<Used> {
        let [subject_key, tenant_key, bytes_key, open_key] =
            charge_keys("", charge.tenant, charge.subject, w);
        let mut state = self.state();
        let now = w.now;
        let value = |state: &State, key: &str| {
            state
                .counters
                .get(key)
                .filter(|(_, expires)| *expires > now)
                .map_or(0, |(value, _)| *value)
        };
        let subject = value(&state, &subject_key);
        if limits
            .subject_per_minute
            .is_some_and(|n| subject >= u64::from(n))
        {
            return Ok(Err((Refused::SubjectRate, w.minute_left)));
        }
        if limits
            .tenant_per_minute
            .is_some_and(|n| value(&state, &tenant_key) >= u64::from(n))
        {
            return Ok(Err((Refused::TenantRate, w.minute_left)));
        }
        let bytes = value(&state, &bytes_key);
        if let Some(quota) = limits.bytes_per_day
            && bytes.saturating_add(charge.bytes) > quota
        {
            let remaining = quota.saturating_sub(bytes);
            return Ok(Err((Refused::Quota { remaining }, w.day_left)));
        }
        if let Some((member, deadline)) = charge.upload {
            let open = state.open.entry(open_key).or_default();
            open.retain(|_, d| *d > now);
            if let Some(limit) = limits.open_uploads
                && open.len() >= limit as usize
            {
                let first = open.values().min().copied().unwrap_or(now + 1);
                return Ok(Err((
                    Refused::OpenUploads,
                    first.saturating_sub(now).max(1),
                )));
            }
            open.insert(member.to_owned(), unix(deadline));
        }
        let minute_end = now + w.minute_left + 60;
        let day_end = now + w.day_left + 3600;
        let [subject, tenant, bytes] = [
            (subject_key, 1, minute_end),
            (tenant_key, 1, minute_end),
            (bytes_key, charge.bytes, day_end),
        ]
        .map(|(key, add, expires)| {
            let entry = state.counters.entry(key).or_insert((0, expires));
            if entry.1 <= now {
                *entry = (0, expires);
            }
            entry.0 = entry.0.saturating_add(add);
            entry.0
        });
        Ok(Ok(Used {
            subject,
            tenant,
            bytes,
            minute_left: w.minute_left,
            day_left: w.day_left,
        }))
    }

    /// Changes tenant's byte counter of `day` by `delta` (never below 0), if it is
    /// still counted.
    pub(super) fn settle(&self, tenant: &str, day: u64, delta: i64) {
        let key = super::key("", tenant, "bd", &day.to_string());
        if let Some((value, _)) = self.state().counters.get_mut(&key) {
            *value = value.saturating_add_signed(delta);
        }
    }

    pub(super) fn admit_call(
        &self,
        limit: u32,
        tenant: &str,
        subject: &str,
        w: Windows,
    ) -> Counted {
        let key = calls_key("", tenant, subject, w);
        let mut state = self.state();
        let expires = w.now + w.minute_left + 60;
        let entry = state.counters.entry(key).or_insert((0, expires));
        if entry.1 <= w.now {
            *entry = (0, expires);
        }
        if entry.0 >= u64::from(limit) {
            return Ok(Err((Refused::StoreCalls, w.minute_left)));
        }
        entry.0 += 1;
        Ok(Ok(()))
    }

    pub(super) fn release(&self, tenant: &str, subject: &str, member: &str) {
        let [.., open_key] = charge_keys(
            "",
            tenant,
            subject,
            Windows::at(std::time::SystemTime::now()),
        );
        if let Some(open) = self.state().open.get_mut(&open_key) {
            open.remove(member);
        }
    }

    pub(super) fn usage(&self, tenant: &str, subject: &str, w: Windows) -> Usage {
        let [subject_key, tenant_key, bytes_key, open_key] = charge_keys("", tenant, subject, w);
        let state = self.state();
        let value = |key: &str| {
            state
                .counters
                .get(key)
                .filter(|(_, expires)| *expires > w.now)
                .map_or(0, |(value, _)| *value)
        };
        Usage {
            subject_this_minute: value(&subject_key),
            tenant_this_minute: value(&tenant_key),
            bytes_today: value(&bytes_key),
            open_uploads: state.open.get(&open_key).map_or(0, |open| {
                open.values().filter(|deadline| **deadline > w.now).count() as u64
            }),
        }
    }
}
