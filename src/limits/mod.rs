//! Limits and quotas: tickets per subject and per tenant per minute, bytes per tenant per
//! day, open multipart uploads per subject, and calls per subject per minute that reach
//! the store or the webhook. Counted in this process (the default, no
//! dependency) or in Redis / Valkey, shared by every replica.
//!
//! Both backends count the same way, so a deployment behaves alike on either: fixed
//! windows (the UTC minute, the UTC day) whose counters expire by themselves, and a set
//! of open uploads per subject whose members expire with the upload's deadline. A charge
//! is checked whole before anything is counted: a refused ticket counts nothing.

pub mod event_settings;
mod memory;
mod memory_records;
pub mod rate_limit;
mod record_scripts;
pub mod records;
mod shared;
mod shared_records;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

pub use crate::policy::{Quotas, WhenUnavailable};

pub use event_settings::EventSettings;
pub use memory::MemoryCounters;
pub use memory_records::MemoryRecords;
pub use records::{Backlog, Finish, NewTicket, PendingEvent, TicketRecord};
pub use shared::RedisCounters;

/// `[limits]`: where the counters live.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSettings {
    /// `redis://` or `rediss://` URL of Redis or Valkey; absent: counted in process
    /// (each replica alone).
    pub redis_url: Option<String>,
    /// Prefix of every key; default `upload-tickets:`.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Longest a Redis call may take, in milliseconds; default 50, 1 to 5000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl std::fmt::Debug for LimitsSettings {
    // The URL may carry a password: only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsSettings")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[set]"))
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// `[redis]`: the Redis or Valkey the replicas share: limits, upload records and
/// pending events alike. (`[limits] redis_url`, its older name, still works.)
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL; absent: everything is kept in process (each
    /// replica alone; a restart loses pending records and events).
    pub url: Option<String>,
    /// Prefix of every key; default `upload-tickets:`.
    pub key_prefix: Option<String>,
    /// Longest a Redis call may take, in milliseconds; default 50, 1 to 5000.
    pub timeout_ms: Option<u64>,
}

impl std::fmt::Debug for RedisSettings {
    // The URL may carry a password: only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_ref().map(|_| "[set]"))
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl LimitsSettings {
    /// These settings with `[redis]` over them: one server for everything shared.
    /// Both URLs set and different is refused (which one was meant?).
    pub fn with_redis(&self, redis: &RedisSettings) -> Result<Self, String> {
        let mut merged = self.clone();
        if let Some(url) = &redis.url {
            if merged.redis_url.as_ref().is_some_and(|old| old != url) {
                return Err(
                    "[redis] url and [limits] redis_url differ: set [redis] url only (the other is its older name)"
                        .to_owned(),
                );
            }
            merged.redis_url = Some(url.clone());
        }
        if let Some(prefix) = &redis.key_prefix {
            merged.key_prefix.clone_from(prefix);
        }
        if let Some(timeout) = redis.timeout_ms {
            merged.timeout_ms = timeout;
        }
        Ok(merged)
    }
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: default_prefix(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_prefix() -> String {
    "upload-tickets:".to_owned()
}

fn default_timeout_ms() -> u64 {
    50
}

/// One ticket (or multipart upload) to count.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The subject.
    pub subject: &'a str,
    /// Bytes it may upload.
    pub bytes: u64,
    /// A multipart upload: its key (unique) and when it expires.
    pub upload: Option<(&'a str, SystemTime)>,
}

/// Which limit refused a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The subject's tickets this minute.
    SubjectRate,
    /// The tenant's tickets this minute.
    TenantRate,
    /// The tenant's bytes today: this many are left.
    Quota {
        /// Bytes left today.
        remaining: u64,
    },
    /// The subject's open multipart uploads.
    OpenUploads,
    /// The subject's calls this minute that reach the store or the webhook.
    StoreCalls,
}

/// Why a charge was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A limit is reached; retry after this many seconds.
    #[error("{refused:?}")]
    Refused {
        /// Which.
        refused: Refused,
        /// Seconds until its window turns (or the oldest upload expires).
        retry_after: u64,
    },
    /// The counters cannot be reached, and the tenant denies meanwhile.
    #[error("the limits backend is unavailable: {0}")]
    Unavailable(String),
}

/// What a caller has used, for `GET /uploads/usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The subject's tickets this minute.
    pub subject_this_minute: u64,
    /// The tenant's tickets this minute.
    pub tenant_this_minute: u64,
    /// The tenant's bytes today.
    pub bytes_today: u64,
    /// The subject's open multipart uploads.
    pub open_uploads: u64,
}

/// What a counted ticket left used in the windows it fell in, from the counters it
/// incremented: the `RateLimit` header says what is left without another look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// The subject's tickets this minute, this one included.
    pub subject: u64,
    /// The tenant's tickets this minute, this one included.
    pub tenant: u64,
    /// The tenant's bytes today, this ticket's reservation included.
    pub bytes: u64,
    /// Seconds until the minute turns.
    pub minute_left: u64,
    /// Seconds until the day turns.
    pub day_left: u64,
}

/// The counters' answer to a checked charge, before the fault policy.
pub(crate) type Counted<T = ()> = Result<Result<T, (Refused, u64)>, String>;

/// The windows a moment falls in: the UTC minute and day, and the seconds left in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Windows {
    pub minute: u64,
    pub day: u64,
    pub minute_left: u64,
    pub day_left: u64,
    pub now: u64,
}

impl Windows {
    pub(crate) fn at(now: SystemTime) -> Self {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self {
            minute: now / 60,
            day: now / 86_400,
            minute_left: 60 - now % 60,
            day_left: 86_400 - now % 86_400,
            now,
        }
    }
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The backend: in process or Redis.
#[derive(Debug)]
enum Counters {
    Memory(MemoryCounters, Box<MemoryRecords>),
    Redis(Box<RedisCounters>),
}

/// The limits of every tenant, checked against one backend.
#[derive(Debug)]
pub struct Limits {
    counters: Counters,
    /// Whether the last call reached the counters: the log says a fault once per episode.
    healthy: AtomicBool,
}

impl Limits {
    /// Counters in this process.
    pub fn in_process() -> Self {
        Self {
            counters: Counters::Memory(MemoryCounters::default(), Box::default()),
            healthy: AtomicBool::new(true),
        }
    }

    /// The backend `settings` name: Redis when a URL is given (checked here; the
    /// connection itself is made in the background and retried), else in process.
    pub fn from_settings(settings: &LimitsSettings) -> Result<Self, String> {
        let Some(url) = &settings.redis_url else {
            return Ok(Self::in_process());
        };
        if !(1..=5000).contains(&settings.timeout_ms) {
            return Err(format!(
                "limits.timeout_ms is {}: 1 to 5000",
                settings.timeout_ms
            ));
        }
        let redis = RedisCounters::new(
            url,
            &settings.key_prefix,
            Duration::from_millis(settings.timeout_ms),
        )?;
        Ok(Self {
            counters: Counters::Redis(Box::new(redis)),
            healthy: AtomicBool::new(true),
        })
    }

    /// Whether counters are shared between replicas.
    pub fn is_shared(&self) -> bool {
        matches!(self.counters, Counters::Redis(_))
    }

    /// Starts what the backend runs in the background: dropping expired counters in
    /// process; for Redis a ping every second, so that `/readyz` and the log know its
    /// state between tickets (and the connection is remade as soon as it can be).
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        match &self.counters {
            Counters::Memory(memory, _) => memory.start_upkeep(),
            Counters::Redis(_) => {
                let limits = Arc::clone(self);
                tokio::spawn(async move {
                    loop {
                        if let Counters::Redis(redis) = &limits.counters {
                            let _ = limits.observe(redis.ping().await);
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            }
        }
    }

    /// Counts `charge` if every limit of `limits` lets it through, and keeps the
    /// ticket's `record` if so (in Redis, in the same script: one round trip). Answers
    /// what is used now, when the tenant has limits and they were counted.
    pub async fn admit(
        &self,
        limits: &Quotas,
        charge: Charge<'_>,
        record: Option<NewTicket<'_>>,
        now: SystemTime,
    ) -> Result<Option<Used>, LimitError> {
        let windows = Windows::at(now);
        if !limits.any() {
            // No charge to ride on: the record alone.
            let Some(record) = record else {
                return Ok(None);
            };
            let recorded = match &self.counters {
                Counters::Memory(_, records) => {
                    // Nothing to fail: no health to observe either.
                    records.record(&record);
                    return Ok(None);
                }
                Counters::Redis(redis) => redis.record(&record, windows.now).await.map(Ok),
            };
            return self.decide(limits, charge.tenant, recorded).map(|_| None);
        }
        let counted = match &self.counters {
            Counters::Memory(memory, records) => {
                let counted = memory.admit(limits, &charge, windows);
                if let (Ok(Ok(_)), Some(record)) = (&counted, record) {
                    records.record(&record);
                }
                counted
            }
            Counters::Redis(redis) => redis.admit(limits, &charge, record.as_ref(), windows).await,
        };
        // Counters out of reach and the tenant allowing: nothing counted to tell.
        self.decide(limits, charge.tenant, counted.map(|c| c.map(Some)))
            .map(Option::flatten)
    }

    /// What the counters answered, after the tenant's fault policy (`None`: unreachable
    /// and allowed anyway).
    fn decide<T>(
        &self,
        limits: &Quotas,
        tenant: &str,
        counted: Counted<T>,
    ) -> Result<Option<T>, LimitError> {
        match self.observe(counted) {
            Ok(Ok(used)) => Ok(Some(used)),
            Ok(Err((refused, retry_after))) => {
                metrics::counter!("upload_tickets_limit_refusals_total",
                    "tenant" => tenant.to_owned(), "code" => refused.code())
                .increment(1);
                Err(LimitError::Refused {
                    refused,
                    retry_after,
                })
            }
            Err(reason) => {
                metrics::counter!("upload_tickets_limits_unavailable_total",
                "tenant" => tenant.to_owned(),
                "decision" => match limits.when_unavailable {
                    WhenUnavailable::Deny => "deny",
                    WhenUnavailable::Allow => "allow",
                })
                .increment(1);
                match limits.when_unavailable {
                    WhenUnavailable::Deny => Err(LimitError::Unavailable(reason)),
                    WhenUnavailable::Allow => Ok(None),
                }
            }
        }
    }

    /// Counts a call of `subject` that reaches the store or the webhook, if the subject
    /// has calls left this minute (`limits.store_calls_per_minute`); a refused call
    /// counts nothing.
    pub async fn admit_store_call(
        &self,
        limits: &Quotas,
        tenant: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<(), LimitError> {
        let limit = limits.store_calls_per_minute;
        if limit == 0 {
            return Ok(());
        }
        let windows = Windows::at(now);
        let counted = match &self.counters {
            Counters::Memory(memory, _) => memory.admit_call(limit, tenant, subject, windows),
            Counters::Redis(redis) => redis.admit_call(limit, tenant, subject, windows).await,
        };
        self.decide(limits, tenant, counted).map(|_| ())
    }

    /// Frees a multipart upload's place (completed or aborted). Best effort: a place
    /// not freed expires with the upload's deadline anyway.
    pub async fn release(&self, tenant: &str, subject: &str, key: &str) {
        let result = match &self.counters {
            Counters::Memory(memory, _) => {
                memory.release(tenant, subject, key);
                Ok(())
            }
            Counters::Redis(redis) => redis.release(tenant, subject, key).await,
        };
        let _ = self.observe(result);
    }

    /// What `subject` of `tenant` has used at `now`.
    pub async fn usage(
        &self,
        tenant: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<Usage, LimitError> {
        let windows = Windows::at(now);
        let usage = match &self.counters {
            Counters::Memory(memory, _) => Ok(memory.usage(tenant, subject, windows)),
            Counters::Redis(redis) => redis.usage(tenant, subject, windows).await,
        };
        self.observe(usage).map_err(LimitError::Unavailable)
    }

    /// The records of the tickets issued for `key` of `tenant` and not yet finished.
    pub async fn tickets_of(&self, tenant: &str, key: &str) -> Result<Vec<TicketRecord>, String> {
        let tickets = match &self.counters {
            Counters::Memory(_, records) => Ok(records.tickets_of(tenant, key)),
            Counters::Redis(redis) => redis.tickets_of(tenant, key).await,
        };
        self.observe(tickets)
    }

    /// Claims up to `max` keys of `tenant` due at `now` for `lease` seconds (no other
    /// replica claims them meanwhile); answers each one's tickets.
    pub async fn claim_due(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Result<Vec<Vec<TicketRecord>>, String> {
        let claimed = match &self.counters {
            Counters::Memory(_, records) => Ok(records.claim_due(tenant, now, lease, max)),
            Counters::Redis(redis) => redis.claim_due(tenant, now, lease, max).await,
        };
        self.observe(claimed)
    }

    /// Finishes a key's tickets at once: drops them, settles the day's bytes to what
    /// landed and queues the event. `false` when another caller finished any of them
    /// first (nothing then changes). `grace`: what the key's remaining tickets wait
    /// past their expiry before they are due.
    pub async fn finish(&self, finish: &Finish<'_>, grace: u64) -> Result<bool, String> {
        let done = match &self.counters {
            Counters::Memory(memory, records) => {
                let done = records.finish(finish, grace);
                if done {
                    for (day, delta) in finish.adjustments() {
                        memory.settle(finish.tenant, day, delta);
                    }
                }
                Ok(done)
            }
            Counters::Redis(redis) => redis.finish(finish, grace).await,
        };
        self.observe(done)
    }

    /// Claims up to `max` events of `tenant` due for an attempt at `now`, for `lease`
    /// seconds.
    pub async fn claim_events(
        &self,
        tenant: &str,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Result<Vec<PendingEvent>, String> {
        let claimed = match &self.counters {
            Counters::Memory(_, records) => Ok(records.claim_events(tenant, now, lease, max)),
            Counters::Redis(redis) => redis.claim_events(tenant, now, lease, max).await,
        };
        self.observe(claimed)
    }

    /// Drops a delivered event.
    pub async fn event_delivered(&self, tenant: &str, id: &str) -> Result<(), String> {
        let done = match &self.counters {
            Counters::Memory(_, records) => {
                records.delivered(tenant, id);
                Ok(())
            }
            Counters::Redis(redis) => redis.delivered(tenant, id).await,
        };
        self.observe(done)
    }

    /// Keeps `event` (its attempts counted) for another attempt at `at`.
    pub async fn event_retry(&self, event: &PendingEvent, at: u64) -> Result<(), String> {
        let done = match &self.counters {
            Counters::Memory(_, records) => {
                records.retry(event, at);
                Ok(())
            }
            Counters::Redis(redis) => redis.retry(event, at).await,
        };
        self.observe(done)
    }

    /// Moves `event` out of the outbox into the tenant's dead letters.
    pub async fn event_dead(&self, event: &PendingEvent) -> Result<(), String> {
        let done = match &self.counters {
            Counters::Memory(_, records) => {
                records.dead_letter(event);
                Ok(())
            }
            Counters::Redis(redis) => redis.dead_letter(event).await,
        };
        self.observe(done)
    }

    /// A tenant's dead letters, newest first.
    pub async fn dead_letters(&self, tenant: &str) -> Result<Vec<PendingEvent>, String> {
        let dead = match &self.counters {
            Counters::Memory(_, records) => Ok(records.dead_letters(tenant)),
            Counters::Redis(redis) => redis.dead_letters(tenant).await,
        };
        self.observe(dead)
    }

    /// What waits for `tenant`: pending keys, the sweeper's lag, queued events.
    pub async fn backlog(&self, tenant: &str, now: u64) -> Result<Backlog, String> {
        let backlog = match &self.counters {
            Counters::Memory(_, records) => Ok(records.backlog(tenant, now)),
            Counters::Redis(redis) => redis.backlog(tenant, now).await,
        };
        self.observe(backlog)
    }

    /// `None` while healthy, else why not: for `/readyz`.
    pub fn unavailable(&self) -> Option<&'static str> {
        (!self.healthy.load(Ordering::Relaxed)).then_some("the limits backend is unreachable")
    }

    /// Logs the first failure of an episode and the recovery, not every request.
    fn observe<T>(&self, result: Result<T, String>) -> Result<T, String> {
        match &result {
            Ok(_) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("limits backend reachable again");
                }
            }
            Err(reason) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%reason, "limits backend unreachable; tenants' on_limits_unavailable decides until it is back");
                }
            }
        }
        result
    }
}

impl Refused {
    /// The problem code.
    pub fn code(self) -> &'static str {
        match self {
            Self::SubjectRate => "rate_limited",
            Self::TenantRate => "tenant_rate_limited",
            Self::Quota { .. } => "quota_exceeded",
            Self::OpenUploads => "too_many_uploads",
            Self::StoreCalls => "store_rate_limited",
        }
    }
}

/// The key of a counter or set: every key of a tenant shares the `{tenant}` hash tag,
/// so one script touches one Redis Cluster slot.
pub(crate) fn key(prefix: &str, tenant: &str, kind: &str, rest: &str) -> String {
    format!("{prefix}{{{tenant}}}:{kind}:{rest}")
}

/// The key counting a subject's store calls in the minute of `w`.
pub(crate) fn calls_key(prefix: &str, tenant: &str, subject: &str, w: Windows) -> String {
    key(prefix, tenant, "cm", &format!("{}:{subject}", w.minute))
}

/// The four keys a charge touches at `windows`.
pub(crate) fn charge_keys(prefix: &str, tenant: &str, subject: &str, w: Windows) -> [String; 4] {
    [
        key(prefix, tenant, "sm", &format!("{}:{subject}", w.minute)),
        key(prefix, tenant, "tm", &w.minute.to_string()),
        key(prefix, tenant, "bd", &w.day.to_string()),
        key(prefix, tenant, "open", subject),
    ]
}

#[cfg(test)]
mod tests;
