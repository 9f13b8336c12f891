//! Records and events in Redis or Valkey: one hash of tickets per key, a sorted set of
//! keys by due time and one of events by next attempt, per tenant (all under the
//! tenant's hash tag: each script touches one Redis Cluster slot). Claims and the
//! finishing step are scripts: atomic, so two replicas never both report one upload.

use redis::aio::ConnectionManager;

use super::record_scripts::{TenantKeys, record_args};
use super::records::{
    Backlog, DEAD_LETTERS_KEPT, EVENT_RETENTION_SECONDS, Finish, NewTicket, PendingEvent,
    TicketRecord,
};
use super::shared::RedisCounters;

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_str(text)
        .inspect_err(|error| tracing::warn!(%error, "an unreadable record in Redis: skipped"))
        .ok()
}

impl RedisCounters {
    /// Claims up to `max` members of the sorted set `zset` scored at or before `now`,
    /// for `lease` seconds (`CLAIM_DUE`): the due keys, or the events due an attempt.
    async fn claim(
        &self,
        connection: &mut ConnectionManager,
        zset: &str,
        (now, lease, max): (u64, u64, usize),
    ) -> Result<Vec<String>, String> {
        let mut invocation = self.records.claim.prepare_invoke();
        invocation.key(zset).arg(now).arg(lease).arg(max);
        self.bounded(invocation.invoke_async(connection)).await
    }

    pub(super) async fn record(&self, record: &NewTicket<'_>, now: u64) -> Result<(), String> {
        let keys = TenantKeys::new(self.prefix(), record.tenant);
        let mut invocation = self.records.record.prepare_invoke();
        invocation.key(keys.records(record.key)).key(keys.due());
        for arg in record_args(Some(record), now)? {
            invocation.arg(arg);
        }
        let mut connection = self.connection()?;
        self.bounded(invocation.invoke_async::<i64>(&mut connection))
            .await
            .map(drop)
    }

    pub(super) async fn tickets_of(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Vec<TicketRecord>, String> {
        let keys = TenantKeys::new(self.prefix(), tenant);
        let mut connection = self.connection()?;
        let values: Vec<String> = self
            .bounded(
                redis::cmd("HVALS")
                    .arg(keys.records(key))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(values.iter().filter_map(|v| decode(v)).collect())
    }

    pub(super) async fn claim_due(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Result<Vec<Vec<TicketRecord>>, String> {
        let keys = TenantKeys::new(self.prefix(), tenant);
        let mut connection = self.connection()?;
        let claimed = self
            .claim(&mut connection, &keys.due(), (now, lease, max))
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for object_key in &claimed {
            pipe.cmd("HVALS").arg(keys.records(object_key));
        }
        let values: Vec<Vec<String>> = self.bounded(pipe.query_async(&mut connection)).await?;
        let mut found = Vec::new();
        let mut stale = redis::pipe();
        for (object_key, values) in claimed.iter().zip(values) {
            let tickets: Vec<TicketRecord> = values.iter().filter_map(|v| decode(v)).collect();
            if tickets.is_empty() {
                stale.cmd("ZREM").arg(keys.due()).arg(object_key).ignore();
            } else {
                found.push(tickets);
            }
        }
        if found.len() < claimed.len() {
            self.bounded(stale.query_async::<()>(&mut connection))
                .await?;
        }
        Ok(found)
    }

    pub(super) async fn finish(&self, finish: &Finish<'_>, grace: u64) -> Result<bool, String> {
        let keys = TenantKeys::new(self.prefix(), finish.tenant);
        let adjustments = finish.adjustments();
        let (event_id, event_json) = match finish.event {
            Some(event) => (
                event.id.clone(),
                serde_json::to_string(event).map_err(|e| format!("event: {e}"))?,
            ),
            None => (String::new(), String::new()),
        };
        let mut invocation = self.records.finish.prepare_invoke();
        invocation
            .key(keys.records(finish.key))
            .key(keys.due())
            .key(keys.outbox())
            .key(keys.event(if event_id.is_empty() { "-" } else { &event_id }));
        for day in adjustments.keys() {
            invocation.key(keys.day(*day));
        }
        invocation
            .arg(finish.key)
            .arg(grace)
            .arg(finish.now)
            .arg(&event_id)
            .arg(&event_json)
            .arg(EVENT_RETENTION_SECONDS)
            .arg(finish.tickets.len());
        for ticket in finish.tickets {
            invocation.arg(&ticket.id);
        }
        for delta in adjustments.values() {
            invocation.arg(*delta);
        }
        let mut connection = self.connection()?;
        let done: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(done == 1)
    }

    pub(super) async fn claim_events(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Result<Vec<PendingEvent>, String> {
        let keys = TenantKeys::new(self.prefix(), tenant);
        let mut connection = self.connection()?;
        let ids = self
            .claim(&mut connection, &keys.outbox(), (now, lease, max))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let event_keys: Vec<String> = ids.iter().map(|id| keys.event(id)).collect();
        let values: Vec<Option<String>> = self
            .bounded(
                redis::cmd("MGET")
                    .arg(&event_keys)
                    .query_async(&mut connection),
            )
            .await?;
        let mut events = Vec::new();
        for (id, value) in ids.iter().zip(values) {
            match value.as_deref().and_then(decode::<PendingEvent>) {
                Some(event) => events.push(event),
                None => {
                    // Expired past its retention: nothing left to send.
                    let _: Result<i64, _> = self
                        .bounded(
                            redis::cmd("ZREM")
                                .arg(keys.outbox())
                                .arg(id)
                                .query_async(&mut connection),
                        )
                        .await;
                }
            }
        }
        Ok(events)
    }

    pub(super) async fn delivered(&self, tenant: &str, id: &str) -> Result<(), String> {
        let keys = TenantKeys::new(self.prefix(), tenant);
        let mut connection = self.connection()?;
        self.bounded(
            redis::pipe()
                .atomic()
                .cmd("ZREM")
                .arg(keys.outbox())
                .arg(id)
                .ignore()
                .cmd("DEL")
                .arg(keys.event(id))
                .ignore()
                .query_async::<()>(&mut connection),
        )
        .await
    }

    pub(super) async fn retry(&self, event: &PendingEvent, at: u64) -> Result<(), String> {
        let keys = TenantKeys::new(self.prefix(), &event.tenant);
        let json = serde_json::to_string(event).map_err(|e| format!("event: {e}"))?;
        let mut connection = self.connection()?;
        self.bounded(
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(keys.event(&event.id))
                .arg(json)
                .arg("EX")
                .arg(EVENT_RETENTION_SECONDS)
                .ignore()
                .cmd("ZADD")
                .arg(keys.outbox())
                .arg(at)
                .arg(&event.id)
                .ignore()
                .query_async::<()>(&mut connection),
        )
        .await
    }

    pub(super) async fn dead_letter(&self, event: &PendingEvent) -> Result<(), String> {
        let keys = TenantKeys::new(self.prefix(), &event.tenant);
        let json = serde_json::to_string(event).map_err(|e| format!("event: {e}"))?;
        let mut connection = self.connection()?;
        self.bounded(
            redis::pipe()
                .atomic()
                .cmd("LPUSH")
                .arg(keys.dead())
                .arg(json)
                .ignore()
                .cmd("LTRIM")
                .arg(keys.dead())
                .arg(0)
                .arg(DEAD_LETTERS_KEPT - 1)
                .ignore()
                .cmd("EXPIRE")
                .arg(keys.dead())
                .arg(EVENT_RETENTION_SECONDS)
                .ignore()
                .cmd("ZREM")
                .arg(keys.outbox())
                .arg(&event.id)
                .ignore()
                .cmd("DEL")
                .arg(keys.event(&event.id))
                .ignore()
                .query_async::<()>(&mut connection),
        )
        .await
    }

    pub(super) async fn dead_letters(&self, tenant: &str) -> Result<Vec<PendingEvent>, String> {
        let keys = TenantKeys::new(self.prefix(), tenant);
        let mut connection = self.connection()?;
        let values: Vec<String> = self
            .bounded(
                redis::cmd("LRANGE")
                    .arg(keys.dead())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(values.iter().filter_map(|v| decode(v)).collect())
    }

    pub(super) async fn backlog(&self, tenant: &str, now: u64) -> Result<Backlog, String> {
        let keys = TenantKeys::new(self.prefix(), tenant);
        let mut connection = self.connection()?;
        let (pending, oldest, events): (u64, Vec<(String, f64)>, u64) = self
            .bounded(
                redis::pipe()
                    .zcard(keys.due())
                    .cmd("ZRANGE")
                    .arg(keys.due())
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
                    .zcard(keys.outbox())
                    .query_async(&mut connection),
            )
            .await?;
        let oldest = oldest.first().map(|(_, score)| *score as u64);
        Ok(Backlog {
            pending_keys: pending,
            sweep_lag: oldest.map_or(0, |due| now.saturating_sub(due)),
            events,
        })
    }
}
