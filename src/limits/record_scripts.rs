//! The Redis side of upload records and events: the scripts (atomic, one round trip
//! each) and the keys, per tenant under its hash tag. `shared.rs` runs the record
//! script inside the charge script; `shared_records.rs` runs the others.

use super::key;
use super::records::{NewTicket, RECORD_SLACK_SECONDS};

/// Records a ticket. Shared with the charge script (`ADMIT`), which calls it once the
/// charge is counted: the record rides on the limits' round trip. ARGV from `a`: the
/// ticket id ('' for none), its JSON, its due time, the lifetime of the key's records,
/// the object key.
pub(super) const RECORD_FUNCTION: &str = r"
local function record(rk, dk, a)
  if ARGV[a] == '' then return end
  local ttl = tonumber(ARGV[a + 3])
  redis.call('HSET', rk, ARGV[a], ARGV[a + 1])
  if redis.call('TTL', rk) < ttl then redis.call('EXPIRE', rk, ttl) end
  local due = tonumber(ARGV[a + 2])
  local old = tonumber(redis.call('ZSCORE', dk, ARGV[a + 4]) or '0')
  if old < due then redis.call('ZADD', dk, due, ARGV[a + 4]) end
  if redis.call('TTL', dk) < ttl then redis.call('EXPIRE', dk, ttl) end
end
";

/// A record alone (a tenant without limits has no charge to ride on).
const RECORD: &str = "record(KEYS[1], KEYS[2], 1)\nreturn 0\n";

/// Claims up to ARGV[3] keys due at ARGV[1] for ARGV[2] seconds; answers them.
const CLAIM_DUE: &str = r"
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local lease = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, k in ipairs(keys) do redis.call('ZADD', KEYS[1], lease, k) end
return keys
";

/// Finishes a key's tickets (see `Finish`): 1 if done here, 0 if any of them was
/// already finished elsewhere (then nothing changes). KEYS: the key's records, the due
/// set, the outbox, the event, then the day counters to settle. ARGV: the object key,
/// the grace, now, the event id ('' for none), its JSON, its lifetime, the number of
/// tickets, their ids, then one change per day counter.
const FINISH: &str = r"
local n = tonumber(ARGV[7])
for i = 1, n do
  if redis.call('HEXISTS', KEYS[1], ARGV[7 + i]) == 0 then return 0 end
end
for i = 1, n do redis.call('HDEL', KEYS[1], ARGV[7 + i]) end
local left = redis.call('HVALS', KEYS[1])
if #left == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  local due = 0
  for _, v in ipairs(left) do
    local at = tonumber(cjson.decode(v)['expires_at']) + tonumber(ARGV[2])
    if at > due then due = at end
  end
  redis.call('ZADD', KEYS[2], due, ARGV[1])
end
for k = 5, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    local v = redis.call('INCRBY', KEYS[k], ARGV[7 + n + k - 4])
    if v < 0 then redis.call('SET', KEYS[k], '0', 'KEEPTTL') end
  end
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return 1
";

/// The scripts of this file, prepared once.
#[derive(Debug)]
pub(super) struct RecordScripts {
    pub(super) record: redis::Script,
    pub(super) claim: redis::Script,
    pub(super) finish: redis::Script,
}

impl Default for RecordScripts {
    fn default() -> Self {
        Self {
            record: redis::Script::new(&format!("{RECORD_FUNCTION}{RECORD}")),
            claim: redis::Script::new(CLAIM_DUE),
            finish: redis::Script::new(FINISH),
        }
    }
}

/// The keys of a tenant's records and events.
pub(super) struct TenantKeys<'a> {
    prefix: &'a str,
    tenant: &'a str,
}

impl<'a> TenantKeys<'a> {
    pub(super) fn new(prefix: &'a str, tenant: &'a str) -> Self {
        Self { prefix, tenant }
    }
    pub(super) fn records(&self, object_key: &str) -> String {
        key(self.prefix, self.tenant, "rec", object_key)
    }
    pub(super) fn due(&self) -> String {
        key(self.prefix, self.tenant, "due", "keys")
    }
    pub(super) fn outbox(&self) -> String {
        key(self.prefix, self.tenant, "ob", "events")
    }
    pub(super) fn event(&self, id: &str) -> String {
        key(self.prefix, self.tenant, "ev", id)
    }
    pub(super) fn dead(&self) -> String {
        key(self.prefix, self.tenant, "dl", "events")
    }
    pub(super) fn day(&self, day: u64) -> String {
        key(self.prefix, self.tenant, "bd", &day.to_string())
    }
}

/// The ARGV a record adds to a script: id, JSON, due, lifetime, object key (an empty
/// id for none).
pub(super) fn record_args(record: Option<&NewTicket<'_>>, now: u64) -> Result<[String; 5], String> {
    let Some(record) = record else {
        return Ok(Default::default());
    };
    let json = serde_json::to_string(record).map_err(|e| format!("record: {e}"))?;
    let ttl = record.due.saturating_sub(now) + RECORD_SLACK_SECONDS;
    Ok([
        record.id.to_string(),
        json,
        record.due.to_string(),
        ttl.to_string(),
        record.key.to_owned(),
    ])
}
