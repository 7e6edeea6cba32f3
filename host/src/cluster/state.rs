//! The policy state store shared by the fleet (what bandits learn). Each replica keeps
//! its own copy of each tenant's store, which policies read and write at memory speed;
//! this sync sends the local writes to Redis and takes the other replicas' back, ten
//! times a second, in one script call per tenant that changed.
//!
//! Counters (`state-add`) are exact across the fleet: a replica sends the deltas it
//! added, never the sums it saw, and Redis adds them in its script, so two replicas
//! counting into one key at once lose nothing. Plain values (`state-set`,
//! `state-delete`) are last-writer-wins across the fleet as within one replica.
//!
//! In Redis, per tenant: `…:state:<tenant>` (a hash: key → value) and
//! `…:state:<tenant>:log` (a sorted set: key → the revision of its last change,
//! removed keys included, trimmed when removed keys pile up); and one hash
//! `…:state:rev` of every tenant's revision (and, as `<tenant>:floor`, the newest
//! revision trimmed from its log: a replica that has not seen it reads the store
//! whole).
//!
//! While Redis is unreachable, writes wait in a bounded queue and policies keep
//! reading and writing their replica's copy; the queue is sent when Redis returns. A
//! write that finds the queue full is dropped, logged and counted
//! (`signalbox_state_sync_dropped_total`). A replica joining the fleet takes the
//! fleet's values over any it restored from its own snapshot; keys only it has stay
//! until written.

use super::Cluster;
use crate::deploy::LiveTenants;
use crate::policy::{StateChange, StateStore};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// How often changes are sent and taken.
const SYNC: Duration = Duration::from_millis(100);

/// The bound on one sync call: a first sync may read a whole store (4 MiB at most).
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes waiting for Redis, across tenants; more are dropped and counted.
pub(super) const QUEUE: usize = 100_000;

/// Removed keys kept in a tenant's log beyond its live keys before it is trimmed.
const TOMBSTONES: usize = 4096;

/// A local write on its way to Redis.
pub(super) type Queued = (Arc<str>, StateChange);

/// Applies one tenant's queued writes and returns what changed since the caller's
/// revision. KEYS: the tenant's hash, its log, the revisions hash, and this
/// replica's last batch number for the tenant. ARGV: tenant, revision seen, this
/// batch's number, number of writes, then per write its kind (`s`, `d`, `a`), key and
/// payload (the value; nothing; the deltas as a JSON array), and last the tombstone
/// allowance. A batch whose number was applied already (its answer was lost, and it
/// was sent again) is not applied twice. Returns the new
/// revision, whether the answer is the whole store, then key/value pairs (a missing
/// value: the key was removed).
///
/// Counters follow `signalbox_contract::add_counters`: absent counts as zeros,
/// shorter arrays are extended; a value that is not an array of numbers is replaced
/// by the deltas. Sums are written with 17 significant digits, which read back to
/// the same double.
const SYNC_SCRIPT: &str = r"
local hash, log, revs, applied = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tenant, seen, batch, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rev = tonumber(redis.call('HGET', revs, tenant) or '0')
if n > 0 then
  if tonumber(redis.call('GET', applied) or '0') >= batch then
    n = 0
  else
    redis.call('SET', applied, batch, 'EX', 3600)
  end
end
local function counters(text)
  if not text then return {} end
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= 'table' then return {} end
  for i = 1, #v do
    if type(v[i]) ~= 'number' then return {} end
  end
  return v
end
for i = 0, n - 1 do
  local kind, key, payload = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]
  if kind == 's' then
    redis.call('HSET', hash, key, payload)
  elseif kind == 'd' then
    redis.call('HDEL', hash, key)
  else
    local deltas = cjson.decode(payload)
    local values = counters(redis.call('HGET', hash, key))
    for j = 1, #deltas do values[j] = (values[j] or 0) + deltas[j] end
    local parts = {}
    for j = 1, #values do parts[j] = string.format('%.17g', values[j]) end
    redis.call('HSET', hash, key, '[' .. table.concat(parts, ',') .. ']')
  end
  rev = rev + 1
  redis.call('ZADD', log, rev, key)
end
if n > 0 then
  redis.call('HSET', revs, tenant, rev)
  if redis.call('ZCARD', log) > redis.call('HLEN', hash) + tonumber(ARGV[#ARGV]) then
    local floor = tonumber(redis.call('HGET', revs, tenant .. ':floor') or '0')
    local all = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      if redis.call('HEXISTS', hash, all[i]) == 0 then
        redis.call('ZREM', log, all[i])
        floor = math.max(floor, tonumber(all[i + 1]))
      end
    end
    redis.call('HSET', revs, tenant .. ':floor', floor)
  end
end
local out = {rev}
local floor = tonumber(redis.call('HGET', revs, tenant .. ':floor') or '0')
if seen < floor then
  out[2] = 1
  local pairs = redis.call('HGETALL', hash)
  for i = 1, #pairs do out[#out + 1] = pairs[i] end
else
  out[2] = 0
  local keys = redis.call('ZRANGEBYSCORE', log, '(' .. seen, '+inf')
  for _, key in ipairs(keys) do
    out[#out + 1] = key
    out[#out + 1] = redis.call('HGET', hash, key)
  end
end
return out
";

static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SYNC_SCRIPT));

/// What one sync call brought back.
struct Taken {
    revision: u64,
    /// The whole store (keys absent from it were removed).
    whole: bool,
    values: Vec<(String, Option<Vec<u8>>)>,
}

impl Cluster {
    fn state_key(&self, tenant: &str, what: &str) -> String {
        format!("{}:state:{tenant}{what}", self.prefix())
    }

    /// Queues a local write of `tenant`'s store for the fleet; a full queue drops it,
    /// counted.
    pub fn queue_state(&self, tenant: &Arc<str>, change: StateChange) {
        if self
            .state_outbox
            .try_send((tenant.clone(), change))
            .is_err()
        {
            self.metrics.state_sync_dropped(tenant);
            if self
                .state_dropping
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            tracing::error!(
                %tenant,
                "policy state writes are being dropped: the queue to the shared store is full"
            );
        }
    }

    async fn state_revisions(&self) -> Result<HashMap<String, u64>, super::ClusterError> {
        let key = format!("{}:state:rev", self.prefix());
        self.call_within("state_poll", SYNC, async |c| {
            redis::cmd("HGETALL").arg(&key).query_async(c).await
        })
        .await
    }

    /// Sends batch number `batch` of `tenant`'s writes and takes what changed since
    /// `seen`.
    async fn sync_state(
        &self,
        tenant: &str,
        seen: u64,
        (batch, writes): &(u64, Vec<StateChange>),
    ) -> Result<Taken, super::ClusterError> {
        let mut invocation = SCRIPT.key(self.state_key(tenant, ""));
        invocation
            .key(self.state_key(tenant, ":log"))
            .key(format!("{}:state:rev", self.prefix()))
            .key(self.state_key(tenant, &format!(":applied:{}", self.replica_id)))
            .arg(tenant)
            .arg(seen)
            .arg(batch)
            .arg(writes.len());
        for write in writes {
            match write {
                StateChange::Set(key, value) => invocation.arg("s").arg(key).arg(value.as_slice()),
                StateChange::Delete(key) => invocation.arg("d").arg(key).arg(""),
                StateChange::Add(key, deltas) => invocation
                    .arg("a")
                    .arg(key)
                    .arg(signalbox_contract::encode_counters(deltas)),
            };
        }
        invocation.arg(TOMBSTONES);
        let reply: Vec<redis::Value> = self
            .call_within("state_sync", SYNC_TIMEOUT, async |c| {
                invocation.invoke_async(c).await
            })
            .await?;
        Ok(taken(reply))
    }
}

/// Reads the script's answer.
fn taken(reply: Vec<redis::Value>) -> Taken {
    let mut items = reply.into_iter();
    let mut number = || match items.next() {
        Some(redis::Value::Int(n)) => u64::try_from(n).unwrap_or(0),
        _ => 0,
    };
    let revision = number();
    let whole = number() == 1;
    let mut values = Vec::new();
    while let Some(key) = items.next() {
        let redis::Value::BulkString(key) = key else {
            break;
        };
        let value = match items.next() {
            Some(redis::Value::BulkString(v)) => Some(v),
            _ => None,
        };
        values.push((String::from_utf8_lossy(&key).into_owned(), value));
    }
    Taken {
        revision,
        whole,
        values,
    }
}

/// Takes the fleet's values into `store`, except where this replica has writes the
/// fleet has not seen yet: a set or removal waiting to be sent stands, and counters
/// get the deltas still waiting added on top.
fn apply(store: &StateStore, taken: Taken, waiting: &[StateChange]) {
    let mut pending: HashMap<&str, Option<Vec<f64>>> = HashMap::new();
    for change in waiting {
        match change {
            StateChange::Set(key, _) | StateChange::Delete(key) => {
                pending.insert(key, None);
            }
            StateChange::Add(key, deltas) => {
                if let Some(sum) = pending.entry(key).or_insert_with(|| Some(Vec::new())) {
                    if sum.len() < deltas.len() {
                        sum.resize(deltas.len(), 0.0);
                    }
                    sum.iter_mut().zip(deltas).for_each(|(s, d)| *s += d);
                }
            }
        }
    }
    let mut fleet_keys = HashSet::new();
    for (key, value) in taken.values {
        match pending.get(key.as_str()) {
            Some(None) => {}
            Some(Some(deltas)) => {
                let value = value.and_then(|v| {
                    signalbox_contract::add_counters(Some(&v), deltas)
                        .ok()
                        .map(|(_, encoded)| encoded)
                });
                store.apply_fleet(&key, value);
            }
            None => store.apply_fleet(&key, value),
        }
        fleet_keys.insert(key);
    }
    if taken.whole {
        for key in store.keys() {
            if !fleet_keys.contains(&key) && !pending.contains_key(key.as_str()) {
                store.apply_fleet(&key, None);
            }
        }
    }
}

/// Hands every tenant's local writes to the fleet and takes the fleet's, until
/// aborted (the gateway's stop aborts it).
pub fn spawn_state_sync(
    cluster: Arc<Cluster>,
    live: Arc<dyn LiveTenants>,
) -> tokio::task::JoinHandle<()> {
    let stores: HashMap<Arc<str>, Arc<StateStore>> = live
        .policies()
        .map(|p| (p.context.tenant.clone(), p.context.state.clone()))
        .collect();
    for (tenant, store) in &stores {
        let (cluster, tenant) = (cluster.clone(), tenant.clone());
        store.replicate_to(move |change| cluster.queue_state(&tenant, change));
    }
    let inbox = cluster.state_inbox();
    tokio::spawn(async move {
        let Some(mut inbox) = inbox else {
            return;
        };
        let mut sync = Sync::default();
        let mut every = tokio::time::interval(SYNC);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            sync.take_queue(&mut inbox);
            let Ok(revisions) = cluster.state_revisions().await else {
                continue;
            };
            for (tenant, store) in &stores {
                let fleet = revisions.get(&**tenant).copied().unwrap_or(0);
                if !sync.due(tenant, fleet) {
                    continue;
                }
                let batch = sync.batch(tenant);
                let seen = sync.seen.get(tenant).copied().unwrap_or(0);
                let Ok(taken) = cluster.sync_state(tenant, seen, &batch).await else {
                    // The same batch goes again with the next tick; Redis skips it if
                    // this call applied it after all.
                    sync.sending.insert(tenant.clone(), batch);
                    break;
                };
                sync.queued -= batch.1.len();
                // Writes made while the call was out are not in the answer yet.
                sync.take_queue(&mut inbox);
                sync.seen.insert(tenant.clone(), taken.revision);
                let later = sync.waiting.get(tenant).map(Vec::as_slice).unwrap_or(&[]);
                apply(store, taken, later);
            }
            if sync.queued == 0 {
                cluster
                    .state_dropping
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            cluster
                .state_unsent
                .store(sync.queued, std::sync::atomic::Ordering::Release);
        }
    })
}

/// Where each tenant's sync stands.
#[derive(Default)]
struct Sync {
    /// The fleet's revision each tenant's copy has taken (none yet: the first sync
    /// takes the fleet's whole store).
    seen: HashMap<Arc<str>, u64>,
    /// A batch sent whose answer did not come: sent again, alone, before any other.
    sending: HashMap<Arc<str>, (u64, Vec<StateChange>)>,
    /// Writes not sent yet.
    waiting: HashMap<Arc<str>, Vec<StateChange>>,
    /// Writes in `sending` and `waiting`, bounded by [`QUEUE`]: while Redis is away
    /// the queue behind fills, and later writes are dropped and counted.
    queued: usize,
    /// The last batch number given out.
    batches: u64,
}

impl Sync {
    fn take_queue(&mut self, inbox: &mut tokio::sync::mpsc::Receiver<Queued>) {
        while self.queued < QUEUE {
            let Ok((tenant, change)) = inbox.try_recv() else {
                break;
            };
            self.waiting.entry(tenant).or_default().push(change);
            self.queued += 1;
        }
    }

    /// Whether `tenant` has writes to send or the fleet's revision moved past its copy.
    fn due(&self, tenant: &Arc<str>, fleet: u64) -> bool {
        self.sending.contains_key(tenant)
            || self.waiting.get(tenant).is_some_and(|w| !w.is_empty())
            || self.seen.get(tenant).is_none_or(|&s| s < fleet)
    }

    /// The batch to send for `tenant`: the one whose answer was lost, or what waits.
    fn batch(&mut self, tenant: &Arc<str>) -> (u64, Vec<StateChange>) {
        if let Some(batch) = self.sending.remove(tenant) {
            return batch;
        }
        let writes = self.waiting.remove(tenant).unwrap_or_default();
        if writes.is_empty() {
            return (0, writes);
        }
        self.batches += 1;
        (self.batches, writes)
    }
}
