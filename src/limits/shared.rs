//! The counters in Redis or Valkey, shared by every replica: one Lua script per charge
//! (checked whole, then counted, atomically, in one round trip), keys that expire by
//! themselves, every call bounded in time. The connection manager reconnects on its
//! own, so a Redis that comes back is used again without a restart.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::record_scripts::{RECORD_FUNCTION, RecordScripts, TenantKeys, record_args};
use super::records::NewTicket;
use super::{Charge, Counted, Quotas, Refused, Usage, Used, Windows, calls_key, charge_keys, unix};

/// Checks a charge and counts it. KEYS: the subject's minute, the tenant's minute, the
/// tenant's day (bytes), the subject's open uploads, then the ticket's records and the
/// tenant's due set. ARGV: the subject's, the tenant's, the bytes and the open-upload
/// limits (-1: none), the bytes, the upload key ('' for none) and deadline, now, the
/// minute and the day counters' lifetimes, then the ticket's record (`record`, from 11).
/// Answers {0, 0, the subject's, the tenant's and the bytes' counts now} when counted (and
/// recorded), else {which limit (1 to 4), a number: bytes left for the quota, the first
/// upload's deadline for open uploads}.
const ADMIT: &str = r"
local now = tonumber(ARGV[8])
local subject = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
if limit >= 0 and subject >= limit then return {1, 0} end
local tenant = tonumber(redis.call('GET', KEYS[2]) or '0')
limit = tonumber(ARGV[2])
if limit >= 0 and tenant >= limit then return {2, 0} end
local bytes = tonumber(redis.call('GET', KEYS[3]) or '0')
local want = tonumber(ARGV[5])
limit = tonumber(ARGV[3])
if limit >= 0 and bytes + want > limit then return {3, math.max(limit - bytes, 0)} end
if ARGV[6] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  limit = tonumber(ARGV[4])
  if limit >= 0 and redis.call('ZCARD', KEYS[4]) >= limit then
    local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {4, tonumber(first[2] or now + 1)}
  end
  local deadline = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[4], deadline, ARGV[6])
  local ttl = redis.call('TTL', KEYS[4])
  if ttl < deadline - now then redis.call('EXPIRE', KEYS[4], deadline - now + 60) end
end
subject = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[9])
tenant = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[9])
bytes = redis.call('INCRBY', KEYS[3], want)
redis.call('EXPIRE', KEYS[3], ARGV[10])
record(KEYS[5], KEYS[6], 11)
return {0, 0, subject, tenant, bytes}
";

/// A call that reaches the store: counted unless the subject has none left this minute.
const ADMIT_CALL: &str = r"
local calls = tonumber(redis.call('GET', KEYS[1]) or '0')
if calls >= tonumber(ARGV[1]) then return 1 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
";

/// The counters in Redis.
pub struct RedisCounters {
    client: redis::Client,
    /// Made on first use, on the runtime (the manager spawns its own task).
    connection: std::sync::OnceLock<Result<ConnectionManager, String>>,
    prefix: String,
    timeout: Duration,
    admit: redis::Script,
    admit_call: redis::Script,
    pub(super) records: RecordScripts,
}

impl std::fmt::Debug for RedisCounters {
    // The URL may hold a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// A client for `url`; it connects on first use and reconnects by itself.
    pub(super) fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        // The parse error names the URL's shape, never its password.
        let client = redis::Client::open(url)
            .map_err(|e| format!("limits.redis_url is not a Redis URL: {}", e.category()))?;
        Ok(Self {
            client,
            connection: std::sync::OnceLock::new(),
            prefix: prefix.to_owned(),
            timeout,
            admit: redis::Script::new(&format!("{RECORD_FUNCTION}{ADMIT}")),
            admit_call: redis::Script::new(ADMIT_CALL),
            records: RecordScripts::default(),
        })
    }

    /// The prefix of every key.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection manager: connecting lazily, reconnecting by itself.
    pub(super) fn connection(&self) -> Result<ConnectionManager, String> {
        self.connection
            .get_or_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .map_err(|e| format!("redis: {}", e.category()))
            })
            .clone()
    }

    /// Runs `call` within the bound; a late or failed call is an error in words.
    pub(super) async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(format!("redis: {}", error.category())),
            Err(_) => Err(format!("redis: no answer within {:?}", self.timeout)),
        }
    }

    pub(super) async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection()?;
        self.bounded(redis::cmd("PING").query_async::<String>(&mut connection))
            .await
            .map(drop)
    }

    pub(super) async fn admit(
        &self,
        limits: &Quotas,
        charge: &Charge<'_>,
        record: Option<&NewTicket<'_>>,
        w: Windows,
    ) -> Counted<Used> {
        let keys = charge_keys(&self.prefix, charge.tenant, charge.subject, w);
        let limit = |n: Option<u64>| n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let (member, deadline) = charge.upload.map_or(("", 0), |(key, at)| (key, unix(at)));
        let mut invocation = self.admit.prepare_invoke();
        for key in &keys {
            invocation.key(key);
        }
        let tenant_keys = TenantKeys::new(&self.prefix, charge.tenant);
        let object_key = record.map_or("", |r| r.key);
        invocation
            .key(tenant_keys.records(object_key))
            .key(tenant_keys.due());
        invocation
            .arg(limit(limits.subject_per_minute.map(u64::from)))
            .arg(limit(limits.tenant_per_minute.map(u64::from)))
            .arg(limit(limits.bytes_per_day))
            .arg(limit(limits.open_uploads.map(u64::from)))
            .arg(charge.bytes)
            .arg(member)
            .arg(deadline)
            .arg(w.now)
            .arg(w.minute_left + 60)
            .arg(w.day_left + 3600);
        for arg in record_args(record, w.now)? {
            invocation.arg(arg);
        }
        let mut connection = self.connection()?;
        let answer: Vec<u64> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        let at = |i: usize| answer.get(i).copied().unwrap_or(0);
        let number = at(1);
        Ok(match at(0) {
            0 => Ok(Used {
                subject: at(2),
                tenant: at(3),
                bytes: at(4),
                minute_left: w.minute_left,
                day_left: w.day_left,
            }),
            1 => Err((Refused::SubjectRate, w.minute_left)),
            2 => Err((Refused::TenantRate, w.minute_left)),
            3 => Err((Refused::Quota { remaining: number }, w.day_left)),
            _ => Err((Refused::OpenUploads, number.saturating_sub(w.now).max(1))),
        })
    }

    pub(super) async fn admit_call(
        &self,
        limit: u32,
        tenant: &str,
        subject: &str,
        w: Windows,
    ) -> Counted {
        let key = calls_key(&self.prefix, tenant, subject, w);
        let mut invocation = self.admit_call.prepare_invoke();
        invocation.key(&key).arg(limit).arg(w.minute_left + 60);
        let mut connection = self.connection()?;
        let refused: u8 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(match refused {
            0 => Ok(()),
            _ => Err((Refused::StoreCalls, w.minute_left)),
        })
    }

    pub(super) async fn release(
        &self,
        tenant: &str,
        subject: &str,
        member: &str,
    ) -> Result<(), String> {
        let [.., open] = charge_keys(
            &self.prefix,
            tenant,
            subject,
            Windows::at(std::time::SystemTime::now()),
        );
        let mut connection = self.connection()?;
        self.bounded(
            redis::cmd("ZREM")
                .arg(&open)
                .arg(member)
                .query_async::<i64>(&mut connection),
        )
        .await
        .map(drop)
    }

    pub(super) async fn usage(
        &self,
        tenant: &str,
        subject: &str,
        w: Windows,
    ) -> Result<Usage, String> {
        let [subject_key, tenant_key, bytes_key, open_key] =
            charge_keys(&self.prefix, tenant, subject, w);
        let mut connection = self.connection()?;
        let (subject_n, tenant_n, bytes, open): (Option<u64>, Option<u64>, Option<u64>, u64) = self
            .bounded(
                redis::pipe()
                    .get(&subject_key)
                    .get(&tenant_key)
                    .get(&bytes_key)
                    .zcount(&open_key, format!("({}", w.now), "+inf")
                    .query_async(&mut connection),
            )
            .await?;
        Ok(Usage {
            subject_this_minute: subject_n.unwrap_or(0),
            tenant_this_minute: tenant_n.unwrap_or(0),
            bytes_today: bytes.unwrap_or(0),
            open_uploads: open,
        })
    }
}
