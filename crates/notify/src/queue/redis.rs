//! The Redis Streams backend: one stream per lane (a priority class and an owner), each read through
//! a consumer group (so any number of worker processes share them), acknowledged and deleted after
//! delivery. A lease reads the `high` lanes first, then `normal` and `bulk` (bulk a quarter while both
//! wait), with an equal count from each owner's lane, so one owner's backlog never stands in front of
//! another's; `XAUTOCLAIM` takes over messages a
//! dead consumer left pending; a sorted set holds delayed retries until a Lua script moves the due ones
//! back into the stream; dead letters live in a sorted set + hash. A live consumer keeps what it holds
//! (leased, waiting for a delivery slot or the rate limit, or in flight) fresh with a heartbeat, so only
//! a dead consumer's messages go idle long enough to be taken over.
//!
//! Keys (all under the configured prefix, `notify` by default): `:lane:<class>:<owner>` (class 0 high,
//! 1 normal, 2 bulk), `:lanes` (the set of lane keys; an empty lane is deleted and leaves it),
//! `:stream` (the one stream of layout 2 and before, read as a lane until it is empty), `:seq` (id counter),
//! `:delayed`, `:dead` (everyone's dead letters), `:deadby:<owner>` (one owner's), `:deadmsg`,
//! `:att:<id>` (attempt history, kept 7 days), `:idem2:<owner>:<key>` (idempotency keys, per owner,
//! kept 7 days), `:run:<id>` (a run's counters and checkpoint), `:cancelled`, `:layout` (the key
//! layout's version, see [`LAYOUT`]). `<owner>` is [`owner_key_part`]: `op` or `u` + the name in hex.
//! The scripts touch keys they build themselves, so this targets a single Redis server (not Cluster).

use redis::aio::ConnectionManager;
use redis::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::{owner_key_part, Checkpoint, LatencyBuckets, OwnerScope, Queue, RunCounters};
use crate::config::PipelineConfig;
use crate::error::NotifyError;
use crate::model::*;
use crate::worker::CancelledRuns;

const GROUP: &str = "workers";

/// The key layout this code writes, kept in `:layout` (absent: layout 1, before the marker). 2: idempotency
/// keys and dead-letter sets per owner (issue 14). 3: a stream per lane (issue 18), so older code, which
/// reads only `:stream`, must not run on it. [`RedisQueue::migrate_layout`] brings older data up.
pub(crate) const LAYOUT: u32 = 3;

/// Lua: adds message `m` to its lane (named in the message's `"q"`, which no other field's text can
/// contain unescaped; a message without one goes to the old single stream), creating the lane's stream
/// and group when it is new. Pasted into every script that puts messages in a stream.
macro_rules! push_lua {
    () => {
        r#"
local function push(prefix, m)
  local q = string.match(m, '"q":"([^"]*)"')
  local lane = prefix .. ':stream'
  if q then lane = prefix .. ':lane:' .. q end
  if redis.call('SADD', prefix .. ':lanes', lane) == 1 then
    redis.pcall('XGROUP', 'CREATE', lane, 'workers', '0', 'MKSTREAM')
  end
  redis.call('XADD', lane, '*', 'm', m)
end
"#
    };
}

/// Adds a batch atomically with the run's checkpoint. KEYS: key prefix, seq, run hash (or ""), idem
/// prefix. ARGV: n, produced ("" for none), then per item: idempotency key ("" for none), wire JSON
/// without id.
const ENQUEUE_LUA: &str = concat!(
    push_lua!(),
    r#"
local n = tonumber(ARGV[1])
local last = redis.call('INCRBY', KEYS[2], n)
local ids = {}
for i = 1, n do
  local id = last - n + i
  local key = ARGV[1 + 2 * i]
  local fresh = true
  if key ~= '' then
    local ok = redis.call('SET', KEYS[4] .. key, id, 'NX', 'EX', 604800)
    if not ok then
      id = tonumber(redis.call('GET', KEYS[4] .. key))
      fresh = false
    end
  end
  if fresh then
    local body = ARGV[2 + 2 * i]
    push(KEYS[1], '{"i":' .. id .. ',' .. string.sub(body, 2))
  end
  ids[i] = id
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[3], 'produced', ARGV[2])
end
return ids
"#
);

/// Moves due retries from the sorted set back into their lanes. KEYS: delayed. ARGV: now, limit, key
/// prefix.
const MOVE_DUE_LUA: &str = concat!(
    push_lua!(),
    r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  push(ARGV[3], m)
  redis.call('ZREM', KEYS[1], m)
  -- A webhook retry leaves its cap's waiting set too: its endpoint's ("e"), or the configured
  -- receiver's ("-") for a webhook outside a run, as `Job::cap_key` has it. Others carry neither,
  -- and are not decoded.
  if string.find(m, '"e":', 1, true) or string.find(m, '"c":"webhook"', 1, true) then
    local ok, w = pcall(cjson.decode, m)
    if ok then
      local key = nil
      if type(w.e) == 'string' then key = w.e elseif w.c == 'webhook' and w.r == nil then key = '-' end
      if key then redis.call('ZREM', ARGV[3] .. ':retryby:' .. key, m) end
    end
  end
end
return #due
"#
);

/// Takes an endpoint's oldest waiting retries out of the delayed set (those still in it: one moved
/// to the stream meanwhile is being tried). KEYS: delayed, the endpoint's waiting set. ARGV: n.
/// Returns the messages taken.
const SHED_LUA: &str = r#"
local ms = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
local out = {}
for _, m in ipairs(ms) do
  redis.call('ZREM', KEYS[2], m)
  if redis.call('ZREM', KEYS[1], m) == 1 then table.insert(out, m) end
end
return out
"#;

/// Puts dead letters back. KEYS: dead, deadmsg, key prefix, run-key prefix, the owner's dead set (""
/// for anyone's: only ids in it are replayed). ARGV: ids.
const REPLAY_LUA: &str = concat!(
    push_lua!(),
    r#"
local n = 0
for _, id in ipairs(ARGV) do
  local v = nil
  if KEYS[5] == '' or redis.call('ZSCORE', KEYS[5], id) then
    v = redis.call('HGET', KEYS[2], id)
  end
  if v then
    local d = cjson.decode(v)
    push(KEYS[3], d.w)
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    if type(d.z) == 'string' then
      redis.call('ZREM', d.z, id)
    end
    -- A notification outside any run has r = null, which cjson decodes to a (truthy) sentinel.
    if d.r and d.r ~= cjson.null then
      redis.call('HINCRBY', KEYS[4] .. d.r, 'dead', -1)
    end
    n = n + 1
  end
end
return n
"#
);

/// Drops dead letters that died before a time (retention), with their per-owner index entries.
/// KEYS: dead, deadmsg. ARGV: before (ms, exclusive), limit. Returns how many were dropped.
const PRUNE_DEAD_LUA: &str = r#"
local seqs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, seq in ipairs(seqs) do
  local m = redis.call('HGET', KEYS[2], seq)
  if m then
    local z = cjson.decode(m).z
    if type(z) == 'string' then redis.call('ZREM', z, seq) end
    redis.call('HDEL', KEYS[2], seq)
  end
  redis.call('ZREM', KEYS[1], seq)
end
return #seqs
"#;

/// Acknowledges a batch of outcomes. Only a message this call actually acknowledges (XACK = 1) has
/// effects, so a message that was reclaimed and delivered twice is counted once. KEYS: delayed, dead,
/// deadmsg, key prefix. ARGV: 9 per item — lane, entry id, id, kind (d delivered, r retry, x dead,
/// c cancelled, e expired, f deferred: back to the delayed set unattempted), run ("" for none), attempt
/// JSON, score, member, latency buckets ("a12 e40") for d or the cap key for r ("" for none).
/// Returns how many items were settled (delivered, dead, cancelled or expired).
const COMPLETE_LUA: &str = r#"
local delayed, dead, deadmsg, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local deltas = {}
local function bump(run, field, n)
  if run == '' then return end
  local t = deltas[run]
  if not t then t = {}; deltas[run] = t end
  t[field] = (t[field] or 0) + n
end
local settled = 0
for j = 1, #ARGV, 9 do
  local stream = ARGV[j]
  local i = j + 1
  local rid, seq, kind, run = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('XACK', stream, 'workers', rid) == 1 then
    redis.call('XDEL', stream, rid)
    if kind == 'c' then
      bump(run, 'cancelled', 1)
      settled = settled + 1
    elseif kind == 'e' then
      bump(run, 'expired', 1)
      settled = settled + 1
    elseif kind == 'f' then
      redis.call('ZADD', delayed, ARGV[i + 5], ARGV[i + 6])
    else
      local ak = prefix .. ':att:' .. seq
      redis.call('RPUSH', ak, ARGV[i + 4])
      redis.call('EXPIRE', ak, 604800)
      if kind == 'd' then
        bump(run, 'delivered', 1)
        for b in string.gmatch(ARGV[i + 7], '%S+') do bump(run, b, 1) end
        settled = settled + 1
      elseif kind == 'r' then
        redis.call('ZADD', delayed, ARGV[i + 5], ARGV[i + 6])
        -- A webhook retry is also in its cap's waiting set, oldest (lowest id) first.
        if ARGV[i + 7] ~= '' then redis.call('ZADD', prefix .. ':retryby:' .. ARGV[i + 7], seq, ARGV[i + 6]) end
        bump(run, 'failed', 1)
        bump(run, 'retried', 1)
      else
        redis.call('HSET', deadmsg, seq, ARGV[i + 6])
        redis.call('ZADD', dead, ARGV[i + 5], seq)
        local z = cjson.decode(ARGV[i + 6]).z
        if type(z) == 'string' then
          redis.call('ZADD', z, ARGV[i + 5], seq)
        end
        bump(run, 'failed', 1)
        bump(run, 'dead', 1)
        settled = settled + 1
      end
    end
  end
end
for run, t in pairs(deltas) do
  for f, n in pairs(t) do redis.call('HINCRBY', prefix .. ':run:' .. run, f, n) end
end
return settled
"#;

/// Hands leased messages back: re-added for any consumer, but only those still ours (XACK = 1).
/// KEYS: key prefix. ARGV: triples of lane, entry id, message.
const RELEASE_LUA: &str = concat!(
    push_lua!(),
    r#"
for i = 1, #ARGV, 3 do
  if redis.call('XACK', ARGV[i], 'workers', ARGV[i + 1]) == 1 then
    redis.call('XDEL', ARGV[i], ARGV[i + 1])
    push(KEYS[1], ARGV[i + 2])
  end
end
return 0
"#
);

/// Deletes lanes that are empty (nothing waiting, nothing pending: acknowledged entries are deleted,
/// so an empty stream holds neither) and takes them out of the set; the old single stream only
/// leaves the set. KEYS: lanes set, the old stream. Returns how many went.
const DROP_EMPTY_LANES_LUA: &str = r#"
local n = 0
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('XLEN', lane) == 0 then
    if lane ~= KEYS[2] then redis.call('DEL', lane) end
    redis.call('SREM', KEYS[1], lane)
    n = n + 1
  end
end
return n
"#;

/// Resets the idle time of messages this consumer still holds (`XCLAIM … JUSTID` to itself: no delivery
/// is counted), skipping any another consumer has taken over meanwhile, so a heartbeat never steals one
/// back. ARGV: consumer, then pairs of lane and entry id. Returns how many were refreshed.
const HEARTBEAT_LUA: &str = r#"
local n = 0
for i = 2, #ARGV, 2 do
  local lane, rid = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', lane) == 1 then
    local p = redis.call('XPENDING', lane, 'workers', rid, rid, 1)
    if p[1] and p[1][2] == ARGV[1] then
      redis.call('XCLAIM', lane, 'workers', ARGV[1], 0, rid, 'JUSTID')
      n = n + 1
    end
  end
end
return n
"#;

/// What the stream carries for one notification (short names: it is written a million times).
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    i: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    r: Option<RunId>,
    c: WireChannel,
    #[serde(borrow)]
    t: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    p: std::borrow::Cow<'a, str>,
    a: u32,
    k: i64,
    f: f32,
    l: u32,
    #[serde(borrow, skip_serializing_if = "Option::is_none", default)]
    o: Option<std::borrow::Cow<'a, str>>,
    /// The job's internal route; absent in messages written before it existed, which read as `None`.
    #[serde(borrow, skip_serializing_if = "Option::is_none", default)]
    e: Option<std::borrow::Cow<'a, str>>,
    /// The lane: `<class>:<owner key part>` (absent before lanes: the old stream).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    q: Option<String>,
    /// Priority class (0 high, 1 normal, 2 bulk; absent: normal).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    y: Option<u8>,
    /// Expiry, unix ms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    x: Option<i64>,
}

/// The lane suffix of a notification: its class and its owner's key part.
fn lane_suffix(priority: Priority, owner_part: &str) -> String {
    format!("{}:{owner_part}", priority.code())
}

/// A job's channel on the wire: its name. Messages written before channels were stored by name carry
/// the enum's position then, read through [`Channel::from_legacy_code`]; nothing rewrites them, they
/// are read as they are until they are acknowledged.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireChannel {
    Name(String),
    Legacy(i64),
}

impl WireChannel {
    fn of(c: Channel) -> Self {
        WireChannel::Name(c.as_str().into())
    }

    fn channel(&self) -> Option<Channel> {
        match self {
            WireChannel::Name(n) => n.parse().ok(),
            WireChannel::Legacy(code) => Channel::from_legacy_code(*code),
        }
    }
}

impl<'a> Wire<'a> {
    fn of_job(j: &'a Job, attempts: u32) -> Self {
        Wire {
            i: Some(j.id.seq),
            r: j.run,
            c: WireChannel::of(j.channel),
            t: j.recipient.as_str().into(),
            p: j.payload.as_str().into(),
            a: attempts,
            k: j.created_ms,
            f: j.sim.failure_rate,
            l: j.sim.latency_ms,
            o: j.owner.as_deref().map(Into::into),
            e: j.route.as_deref().map(Into::into),
            q: Some(lane_suffix(j.priority, &owner_key_part(j.owner.as_deref()))),
            y: Some(j.priority.code()),
            x: j.expires_ms,
        }
    }

    fn into_job(self, receipt: String) -> Option<Job> {
        Some(Job {
            id: NotificationId::redis(self.i?),
            run: self.r,
            channel: self.c.channel()?,
            recipient: self.t.into_owned(),
            payload: self.p.into_owned(),
            attempts: self.a,
            created_ms: self.k,
            sim: SimKnobs { failure_rate: self.f, latency_ms: self.l },
            owner: self.o.map(std::borrow::Cow::into_owned),
            route: self.e.map(std::borrow::Cow::into_owned),
            priority: Priority::from_code(self.y.unwrap_or(1).into()),
            expires_ms: self.x,
            receipt,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct DeadRecord {
    /// The wire message with a fresh attempt budget, ready to go back in the stream.
    w: String,
    r: Option<RunId>,
    e: Option<String>,
    at: i64,
    n: u32,
    /// The owner's dead set this one is also in (absent before key layout 2, until migrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    z: Option<String>,
}

pub struct RedisQueue {
    conn: ConnectionManager,
    /// Blocking reads get their own connection so they never hold up acks and enqueues.
    lease_conn: Mutex<ConnectionManager>,
    consumer: String,
    keys: Keys,
    backlog: Arc<AtomicU64>,
    /// Retries waiting in the delayed set, as last seen.
    delayed: Arc<AtomicU64>,
    reclaim_idle_ms: u64,
    last_reclaim: std::sync::Mutex<Instant>,
    /// Receipts leased by this consumer and not yet completed or released (see [`HEARTBEAT_LUA`]).
    held: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The lanes (stream keys) as last read from `:lanes`, by class.
    lanes: std::sync::Mutex<[Vec<String>; 3]>,
    /// Where each class's window of lanes starts next (when there are more lanes than a lease takes).
    turn: std::sync::atomic::AtomicUsize,
    /// Waiting messages per owner (key part) as last counted, plus what this process added since.
    owner_waiting: std::sync::Mutex<HashMap<String, u64>>,
    enqueue_script: redis::Script,
    move_script: redis::Script,
    shed_script: redis::Script,
    replay_script: redis::Script,
    complete_script: redis::Script,
    release_script: redis::Script,
    heartbeat_script: redis::Script,
    prune_dead_script: redis::Script,
    drop_lanes_script: redis::Script,
    clock: crate::Clock,
}

struct Keys {
    stream: String,
    seq: String,
    delayed: String,
    dead: String,
    deadmsg: String,
    cancelled: String,
    prefix: String,
}

impl Keys {
    fn lanes(&self) -> String {
        format!("{}:lanes", self.prefix)
    }
    fn run(&self, id: RunId) -> String {
        format!("{}:run:{id}", self.prefix)
    }
    fn attempts(&self, seq: u64) -> String {
        format!("{}:att:{seq}", self.prefix)
    }
    /// One endpoint's waiting retries (by notification id), for its pending-retry cap.
    fn retry_by(&self, route: &str) -> String {
        format!("{}:retryby:{route}", self.prefix)
    }
    /// One owner's dead letters (a sorted set by time, like `:dead`).
    fn dead_of(&self, owner: Option<&str>) -> String {
        format!("{}:deadby:{}", self.prefix, owner_key_part(owner))
    }
    /// Where an owner's idempotency key is kept: the enqueue script appends `<owner part>:<key>`.
    fn idem_base(&self) -> String {
        format!("{}:idem2:", self.prefix)
    }
    fn layout(&self) -> String {
        format!("{}:layout", self.prefix)
    }
}

fn redis_err(context: &str) -> impl Fn(redis::RedisError) -> NotifyError + '_ {
    move |e| NotifyError::internal(context, e)
}

impl RedisQueue {
    pub async fn connect(url: &str, cfg: &PipelineConfig) -> Result<Self, NotifyError> {
        let client = redis::Client::open(url).map_err(|_| NotifyError::invalid("notify.redis_url", "is not a redis:// URL"))?;
        let mut conn = ConnectionManager::new(client.clone()).await.map_err(redis_err("cannot connect to Redis"))?;
        let lease_conn = ConnectionManager::new(client).await.map_err(redis_err("cannot connect to Redis"))?;
        let p = &cfg.redis_prefix;
        let keys = Keys {
            stream: format!("{p}:stream"),
            seq: format!("{p}:seq"),
            delayed: format!("{p}:delayed"),
            dead: format!("{p}:dead"),
            deadmsg: format!("{p}:deadmsg"),
            cancelled: format!("{p}:cancelled"),
            prefix: p.clone(),
        };
        let created: Result<Value, _> =
            redis::cmd("XGROUP").arg("CREATE").arg(&keys.stream).arg(GROUP).arg("0").arg("MKSTREAM").query_async(&mut conn).await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(NotifyError::internal("cannot create the consumer group", e));
            }
        }
        let layout: Option<u32> = redis::cmd("GET").arg(format!("{p}:layout")).query_async(&mut conn).await?;
        if layout.is_some_and(|v| v > LAYOUT) {
            return Err(NotifyError::internal(
                "Redis key layout",
                format!("version {} is newer than this program knows ({LAYOUT}); upgrade the program", layout.unwrap_or(0)),
            ));
        }
        let consumer = cfg.consumer_name.clone().unwrap_or_else(default_consumer_name);
        let q = Self {
            conn,
            lease_conn: Mutex::new(lease_conn),
            consumer,
            keys,
            backlog: Arc::new(AtomicU64::new(0)),
            delayed: Arc::new(AtomicU64::new(0)),
            reclaim_idle_ms: cfg.reclaim_idle_ms.max(100),
            last_reclaim: std::sync::Mutex::new(Instant::now() - Duration::from_secs(3600)),
            held: Default::default(),
            lanes: Default::default(),
            turn: Default::default(),
            owner_waiting: Default::default(),
            enqueue_script: redis::Script::new(ENQUEUE_LUA),
            move_script: redis::Script::new(MOVE_DUE_LUA),
            shed_script: redis::Script::new(SHED_LUA),
            replay_script: redis::Script::new(REPLAY_LUA),
            complete_script: redis::Script::new(COMPLETE_LUA),
            release_script: redis::Script::new(RELEASE_LUA),
            heartbeat_script: redis::Script::new(HEARTBEAT_LUA),
            prune_dead_script: redis::Script::new(PRUNE_DEAD_LUA),
            drop_lanes_script: redis::Script::new(DROP_EMPTY_LANES_LUA),
            clock: cfg.clock.clone(),
        };
        // Messages left in the old single stream are read as one more lane until it is empty.
        let old: u64 = redis::cmd("XLEN").arg(&q.keys.stream).query_async(&mut q.conn.clone()).await?;
        if old > 0 {
            let _: i64 = redis::cmd("SADD").arg(q.keys.lanes()).arg(&q.keys.stream).query_async(&mut q.conn.clone()).await?;
        }
        q.refresh_lanes().await?;
        q.refresh_backlog().await?;
        Ok(q)
    }

    /// Drops at most `limit` dead letters that died before `before_ms` (retention).
    pub(crate) async fn prune_dead(&self, before_ms: i64, limit: usize) -> Result<u64, NotifyError> {
        let mut c = self.conn.clone();
        let k = &self.keys;
        let n: u64 = self
            .prune_dead_script
            .key(&k.dead)
            .key(&k.deadmsg)
            .arg(before_ms)
            .arg(limit)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("prune dead letters"))?;
        Ok(n)
    }

    /// Dead letters held, and when the oldest died.
    pub(crate) async fn dead_size(&self) -> Result<StoreSize, NotifyError> {
        let mut c = self.conn.clone();
        let rows: u64 = redis::cmd("ZCARD").arg(&self.keys.dead).query_async(&mut c).await.map_err(redis_err("count dead letters"))?;
        let first: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&self.keys.dead)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut c)
            .await
            .map_err(redis_err("oldest dead letter"))?;
        Ok(StoreSize { rows, oldest_ms: first.first().map(|(_, s)| *s as i64), bytes: None })
    }

    /// Forgets the counters of runs whose records were pruned.
    pub(crate) async fn forget_runs(&self, ids: &[RunId]) -> Result<(), NotifyError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut del = redis::cmd("DEL");
        for id in ids {
            del.arg(self.keys.run(*id));
        }
        del.query_async::<()>(&mut c).await.map_err(redis_err("forget runs"))
    }

    /// Brings data written under an older key layout to [`LAYOUT`], then records it (run once at
    /// start-up by the server, which knows each run's owner from its runs table; safe to run twice).
    ///
    /// 1 -> 2: every dead letter is added to its owner's set (the owner from the message, or else from
    /// its run), and each old global idempotency key `:idem:<key>` whose notification can still be found
    /// (waiting, scheduled for retry or dead) moves to its owner's `:idem2:` key with its remaining time.
    /// Keys of notifications already delivered and gone cannot be given an owner: they are left to expire
    /// by their 7-day TTL and never read again (a retry of such a request within those days enqueues anew).
    pub(crate) async fn migrate_layout(&self, run_owners: &HashMap<RunId, String>) -> Result<(), NotifyError> {
        let mut c = self.conn.clone();
        let k = &self.keys;
        let layout: Option<u32> = redis::cmd("GET").arg(k.layout()).query_async(&mut c).await?;
        if layout.is_some_and(|v| v >= LAYOUT) {
            return Ok(());
        }
        if layout == Some(2) {
            // 2 -> 3: nothing to move; the old stream is read as a lane (see `connect`).
            let _: () = redis::cmd("SET").arg(k.layout()).arg(LAYOUT).query_async(&mut c).await?;
            return Ok(());
        }
        // Whose is notification `id`: Some(None) is the operator's; absent means not found.
        let mut owner_of: HashMap<u64, Option<String>> = HashMap::new();
        let dead: Vec<(u64, f64)> = redis::cmd("ZRANGE").arg(&k.dead).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut c).await?;
        for chunk in dead.chunks(500) {
            let ids: Vec<u64> = chunk.iter().map(|(id, _)| *id).collect();
            let recs: Vec<Option<String>> = redis::cmd("HMGET").arg(&k.deadmsg).arg(&ids).query_async(&mut c).await?;
            let mut pipe = redis::pipe();
            for ((id, score), rec) in chunk.iter().zip(recs) {
                let Some(mut rec) = rec.and_then(|r| serde_json::from_str::<DeadRecord>(&r).ok()) else { continue };
                let (owner, rewritten) = {
                    let Ok(mut w) = serde_json::from_str::<Wire>(&rec.w) else { continue };
                    let from_run = rec.r.and_then(|r| run_owners.get(&r)).cloned();
                    match (w.o.as_deref().map(str::to_owned), from_run) {
                        (Some(o), _) => (Some(o), None),
                        (None, Some(o)) => {
                            // A run's notification from before runs' jobs carried the owner.
                            w.o = Some(o.clone().into());
                            (Some(o), serde_json::to_string(&w).ok())
                        }
                        (None, None) => (None, None),
                    }
                };
                if let Some(w) = rewritten {
                    rec.w = w;
                }
                owner_of.insert(*id, owner.clone());
                if rec.z.is_some() {
                    continue;
                }
                let z = k.dead_of(owner.as_deref());
                pipe.cmd("ZADD").arg(&z).arg(*score).arg(*id).ignore();
                rec.z = Some(z);
                pipe.cmd("HSET").arg(&k.deadmsg).arg(*id).arg(serde_json::to_string(&rec).unwrap_or_default()).ignore();
            }
            let _: () = pipe.query_async(&mut c).await?;
        }
        let old_keys = self.scan(&format!("{}:idem:*", k.prefix)).await?;
        if !old_keys.is_empty() {
            // Messages still waiting or scheduled for retry carry their owner.
            let mut note = |body: &[u8]| {
                if let Ok(w) = serde_json::from_slice::<Wire>(body) {
                    if let Some(i) = w.i {
                        owner_of.entry(i).or_insert(w.o.map(|o| o.into_owned()));
                    }
                }
            };
            let delayed: Vec<Vec<u8>> = redis::cmd("ZRANGE").arg(&k.delayed).arg(0).arg(-1).query_async(&mut c).await?;
            delayed.iter().for_each(|m| note(m.as_slice()));
            let mut start = "-".to_string();
            loop {
                let v: Value = redis::cmd("XRANGE").arg(&k.stream).arg(&start).arg("+").arg("COUNT").arg(1000).query_async(&mut c).await?;
                let Value::Array(entries) = v else { break };
                let mut last = None;
                for e in &entries {
                    let Value::Array(parts) = e else { continue };
                    if let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (parts.first(), parts.get(1)) {
                        last = Some(String::from_utf8_lossy(id).into_owned());
                        for kv in fields.chunks(2) {
                            if let [Value::BulkString(f), Value::BulkString(m)] = kv {
                                if f == b"m" {
                                    note(m.as_slice());
                                }
                            }
                        }
                    }
                }
                match last {
                    Some(l) if entries.len() == 1000 => start = format!("({l}"),
                    _ => break,
                }
            }
            let old_prefix = format!("{}:idem:", k.prefix);
            for key in old_keys {
                let (id, ttl): (Option<u64>, i64) = redis::pipe().cmd("GET").arg(&key).cmd("PTTL").arg(&key).query_async(&mut c).await?;
                let (Some(id), Some(name)) = (id, key.strip_prefix(&old_prefix)) else { continue };
                let Some(owner) = owner_of.get(&id) else { continue };
                let new_key = format!("{}{}:{name}", k.idem_base(), owner_key_part(owner.as_deref()));
                let ttl = if ttl > 0 { ttl } else { 604_800_000 };
                let _: () = redis::pipe()
                    .cmd("SET")
                    .arg(&new_key)
                    .arg(id)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .ignore()
                    .cmd("DEL")
                    .arg(&key)
                    .ignore()
                    .query_async(&mut c)
                    .await?;
            }
        }
        let _: () = redis::cmd("SET").arg(k.layout()).arg(LAYOUT).query_async(&mut c).await?;
        tracing::info!(layout = LAYOUT, "Redis key layout migrated");
        Ok(())
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, NotifyError> {
        let mut c = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut out = vec![];
        loop {
            let (next, keys): (u64, Vec<String>) =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(&mut c).await?;
            out.extend(keys);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Whether Redis answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), NotifyError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await.map_err(redis_err("Redis does not answer"))?;
        Ok(())
    }

    /// A lane key's class and owner part (`<prefix>:lane:<class>:<owner>`); `None` for the old single
    /// stream.
    fn parse_lane<'l>(&self, lane: &'l str) -> Option<(usize, &'l str)> {
        let rest = lane.strip_prefix(self.keys.prefix.as_str())?.strip_prefix(":lane:")?;
        let (class, owner) = rest.split_once(':')?;
        class.parse::<usize>().ok().filter(|c| *c < 3).map(|c| (c, owner))
    }

    /// Reads the set of lanes, sorted into classes by their names.
    async fn refresh_lanes(&self) -> Result<(), NotifyError> {
        let mut c = self.conn.clone();
        let all: Vec<String> = redis::cmd("SMEMBERS").arg(self.keys.lanes()).query_async(&mut c).await?;
        let mut by_class: [Vec<String>; 3] = Default::default();
        for lane in all {
            let class = self.parse_lane(&lane).map_or(1, |(class, _)| class);
            by_class[class].push(lane);
        }
        for v in &mut by_class {
            v.sort();
        }
        *self.lanes.lock().expect("lanes lock") = by_class;
        Ok(())
    }

    async fn refresh_backlog(&self) -> Result<u64, NotifyError> {
        let mut c = self.conn.clone();
        let lanes: Vec<String> = self.lanes.lock().expect("lanes lock").iter().flatten().cloned().collect();
        let mut pipe = redis::pipe();
        pipe.cmd("ZCARD").arg(&self.keys.delayed);
        for l in &lanes {
            pipe.cmd("XLEN").arg(l);
        }
        let counts: Vec<u64> = pipe.query_async(&mut c).await?;
        let delayed = counts.first().copied().unwrap_or(0);
        let mut per_owner: HashMap<String, u64> = HashMap::new();
        let mut waiting = 0;
        for (lane, n) in lanes.iter().zip(counts.iter().skip(1)) {
            waiting += n;
            // The old single stream's messages are nobody's in particular.
            let owner = self.parse_lane(lane).map_or("", |(_, owner)| owner);
            *per_owner.entry(owner.to_string()).or_default() += n;
        }
        *self.owner_waiting.lock().expect("owner lock") = per_owner;
        self.backlog.store(waiting + delayed, Ordering::Relaxed);
        self.delayed.store(delayed, Ordering::Relaxed);
        Ok(waiting + delayed)
    }

    /// Deletes empty lanes (every few seconds): each owner's lane exists while it has work.
    async fn drop_empty_lanes(&self) -> Result<u64, NotifyError> {
        let mut c = self.conn.clone();
        let n: u64 = self.drop_lanes_script.key(self.keys.lanes()).key(&self.keys.stream).invoke_async(&mut c).await?;
        Ok(n)
    }

    async fn move_due(&self) -> Result<u64, NotifyError> {
        let mut c = self.conn.clone();
        let n: u64 = self.move_script.key(&self.keys.delayed).arg(self.clock.now_ms()).arg(1000).arg(&self.keys.prefix).invoke_async(&mut c).await?;
        Ok(n)
    }

    async fn refresh_cancelled(&self, cancelled: &CancelledRuns) -> Result<(), NotifyError> {
        let mut c = self.conn.clone();
        let ids: Vec<RunId> = redis::cmd("SMEMBERS").arg(&self.keys.cancelled).query_async(&mut c).await?;
        if let Ok(mut set) = cancelled.write() {
            set.extend(ids);
        }
        Ok(())
    }

    /// Background upkeep: due retries back into the stream (every 100 ms), the backlog figure and the
    /// set of cancelled runs (every 300 ms), the heartbeat of held messages (three times per reclaim
    /// idle time).
    pub(crate) fn spawn_maintenance(self: &Arc<Self>, mut stop: watch::Receiver<bool>, cancelled: CancelledRuns) -> Vec<JoinHandle<()>> {
        let q = self.clone();
        vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            let heartbeat_every = (q.reclaim_idle_ms / 300).max(1);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                n += 1;
                loop {
                    match q.move_due().await {
                        Ok(1000) => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "moving due retries failed");
                            break;
                        }
                    }
                }
                let _ = q.refresh_lanes().await;
                if n.is_multiple_of(3) {
                    let _ = q.refresh_backlog().await;
                    let _ = q.refresh_cancelled(&cancelled).await;
                }
                if n.is_multiple_of(50) {
                    if let Err(e) = q.drop_empty_lanes().await {
                        tracing::warn!(error = %e, "dropping empty lanes failed");
                    }
                }
                if n.is_multiple_of(heartbeat_every) {
                    if let Err(e) = q.heartbeat().await {
                        tracing::warn!(error = %e, "heartbeat of held messages failed");
                    }
                }
            }
        })]
    }

    /// Keeps every message this consumer holds from looking abandoned to the others.
    async fn heartbeat(&self) -> Result<u64, NotifyError> {
        let held: Vec<String> = self.held.lock().expect("held lock").iter().cloned().collect();
        let mut refreshed = 0;
        for chunk in held.chunks(1000) {
            let mut inv = self.heartbeat_script.prepare_invoke();
            inv.arg(&self.consumer);
            for r in chunk {
                let (lane, rid) = split_receipt(r);
                inv.arg(lane).arg(rid);
            }
            let mut c = self.conn.clone();
            let n: u64 = inv.invoke_async(&mut c).await?;
            refreshed += n;
        }
        Ok(refreshed)
    }

    fn hold(&self, jobs: &[Job]) {
        self.held.lock().expect("held lock").extend(jobs.iter().map(|j| j.receipt.clone()));
    }

    fn let_go<'a>(&self, receipts: impl Iterator<Item = &'a str>) {
        let mut held = self.held.lock().expect("held lock");
        for r in receipts {
            held.remove(r);
        }
    }

    /// Jobs from a stream read's entries (receipts name `lane`); unreadable entries' ids go to `acks`.
    fn parse_entries(lane: &str, entries: &Value, out: &mut Vec<Job>, acks: &mut Vec<(String, String)>) {
        let Value::Array(entries) = entries else { return };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (parts.first(), parts.get(1)) else { continue };
            let rid = String::from_utf8_lossy(id).into_owned();
            let body = fields.chunks(2).find_map(|kv| match kv {
                [Value::BulkString(k), Value::BulkString(v)] if k == b"m" => Some(v),
                _ => None,
            });
            match body.and_then(|b| serde_json::from_slice::<Wire>(b).ok()).and_then(|w| w.into_job(format!("{lane} {rid}"))) {
                Some(job) => out.push(job),
                // Unreadable: acknowledge and drop it rather than loop on it forever.
                None => acks.push((lane.to_string(), rid)),
            }
        }
    }

    async fn ack_garbage(&self, ids: Vec<(String, String)>) {
        if ids.is_empty() {
            return;
        }
        tracing::error!(n = ids.len(), "dropping unreadable stream entries");
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for (lane, id) in &ids {
            pipe.cmd("XACK").arg(lane).arg(GROUP).arg(id).ignore().cmd("XDEL").arg(lane).arg(id).ignore();
        }
        let _: Result<(), _> = pipe.query_async(&mut c).await;
    }

    /// Takes over messages pending on any consumer for longer than the reclaim idle time, lane by lane.
    async fn reclaim(&self, max: usize) -> Result<Vec<Job>, NotifyError> {
        let mut c = self.conn.clone();
        let mut jobs = vec![];
        let mut garbage = vec![];
        let lanes: Vec<String> = self.lanes.lock().expect("lanes lock").iter().flatten().cloned().collect();
        'lanes: for lane in lanes {
            let mut cursor = "0-0".to_string();
            for _ in 0..16 {
                let v: Result<Value, _> = redis::cmd("XAUTOCLAIM")
                    .arg(&lane)
                    .arg(GROUP)
                    .arg(&self.consumer)
                    .arg(self.reclaim_idle_ms)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(max - jobs.len())
                    .query_async(&mut c)
                    .await;
                // A lane deleted since the list was read has nothing to take over.
                let Ok(Value::Array(parts)) = v else { continue 'lanes };
                if let Some(entries) = parts.get(1) {
                    Self::parse_entries(&lane, entries, &mut jobs, &mut garbage);
                }
                cursor = match parts.first() {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => "0-0".into(),
                };
                if jobs.len() >= max {
                    break 'lanes;
                }
                if cursor == "0-0" {
                    break;
                }
            }
        }
        self.ack_garbage(garbage).await;
        if !jobs.is_empty() {
            tracing::info!(n = jobs.len(), consumer = %self.consumer, "reclaimed messages from an idle consumer");
        }
        Ok(jobs)
    }

    /// One read of up to `want` new messages from `lanes` (at most `want` of them, an equal count from
    /// each, the window turning from lease to lease), blocking up to `block_ms` when there are none.
    async fn read_lanes(&self, lanes: &[String], want: usize, block_ms: Option<u64>, out: &mut Vec<Job>) -> Result<(), NotifyError> {
        if lanes.is_empty() || want == 0 {
            return Ok(());
        }
        let k = lanes.len().min(want);
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % lanes.len();
        let window: Vec<&String> = lanes.iter().cycle().skip(start).take(k).collect();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&self.consumer).arg("COUNT").arg(want / k);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS");
        for l in &window {
            cmd.arg(*l);
        }
        for _ in &window {
            cmd.arg(">");
        }
        let mut c = self.lease_conn.lock().await;
        let v: Result<Value, _> = cmd.query_async(&mut *c).await;
        drop(c);
        let v = match v {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") || e.to_string().contains("UNBLOCKED") => {
                // A lane went (emptied and deleted) after the list was read: read the list again.
                self.refresh_lanes().await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut garbage = vec![];
        let mut got = vec![];
        if let Value::Array(streams) = v {
            for s in streams {
                if let Value::Array(parts) = s {
                    let lane = match parts.first() {
                        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                        _ => continue,
                    };
                    if let Some(entries) = parts.get(1) {
                        Self::parse_entries(&lane, entries, &mut got, &mut garbage);
                    }
                }
            }
        }
        self.ack_garbage(garbage).await;
        out.extend(got);
        Ok(())
    }
}

/// A receipt is `<lane> <entry id>` (entry ids have no spaces).
fn split_receipt(r: &str) -> (&str, &str) {
    r.rsplit_once(' ').unwrap_or(("", r))
}

fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

fn wire_json(j: &Job, attempts: u32) -> String {
    serde_json::to_string(&Wire::of_job(j, attempts)).unwrap_or_default()
}

impl Queue for RedisQueue {
    fn backend(&self) -> Backend {
        Backend::Redis
    }

    async fn enqueue(&self, items: Vec<Prepared>, checkpoint: Option<Checkpoint>) -> Result<Vec<NotificationId>, NotifyError> {
        let mut inv = self.enqueue_script.prepare_invoke();
        inv.key(&self.keys.prefix).key(&self.keys.seq);
        inv.key(checkpoint.map(|c| self.keys.run(c.run)).unwrap_or_default());
        inv.key(self.keys.idem_base());
        inv.arg(items.len()).arg(checkpoint.map(|c| c.produced.to_string()).unwrap_or_default());
        let created = self.clock.now_ms();
        let parts: Vec<String> = items.iter().map(|it| owner_key_part(it.owner.as_deref())).collect();
        for (it, part) in items.iter().zip(&parts) {
            let w = Wire {
                i: None,
                r: it.run,
                c: WireChannel::of(it.channel),
                t: it.recipient.as_str().into(),
                p: it.payload.as_str().into(),
                a: 0,
                k: created,
                f: it.sim.failure_rate,
                l: it.sim.latency_ms,
                o: it.owner.as_deref().map(Into::into),
                e: it.route.as_deref().map(Into::into),
                q: Some(lane_suffix(it.priority, part)),
                y: Some(it.priority.code()),
                x: it.expires_ms,
            };
            // Scoped by owner: the same key from two owners names two notifications.
            let key = it.idempotency_key.as_deref().map(|k| format!("{part}:{k}"));
            inv.arg(key.unwrap_or_default()).arg(serde_json::to_string(&w).unwrap_or_default());
        }
        let mut c = self.conn.clone();
        let ids: Vec<u64> = inv.invoke_async(&mut c).await?;
        self.backlog.fetch_add(ids.len() as u64, Ordering::Relaxed);
        {
            let mut per_owner = self.owner_waiting.lock().expect("owner lock");
            for part in parts {
                *per_owner.entry(part).or_default() += 1;
            }
        }
        Ok(ids.into_iter().map(NotificationId::redis).collect())
    }

    async fn lease(&self, max: usize) -> Result<Vec<Job>, NotifyError> {
        let due_reclaim = {
            let mut last = self.last_reclaim.lock().expect("reclaim lock");
            let due = last.elapsed() >= Duration::from_millis((self.reclaim_idle_ms / 2).clamp(50, 5_000));
            if due {
                *last = Instant::now();
            }
            due
        };
        if due_reclaim {
            let jobs = self.reclaim(max).await?;
            if !jobs.is_empty() {
                self.hold(&jobs);
                return Ok(jobs);
            }
        }
        let [high, normal, bulk] = self.lanes.lock().expect("lanes lock").clone();
        let mut jobs = Vec::with_capacity(max);
        self.read_lanes(&high, max, None, &mut jobs).await?;
        let room = max - jobs.len();
        if room > 0 {
            let normal_share = if bulk.is_empty() { room } else { room - room / 4 };
            let before = jobs.len();
            self.read_lanes(&normal, normal_share, None, &mut jobs).await?;
            let normal_full = jobs.len() - before >= normal_share;
            self.read_lanes(&bulk, max - jobs.len(), None, &mut jobs).await?;
            if normal_full && jobs.len() < max {
                // What bulk left unused.
                self.read_lanes(&normal, max - jobs.len(), None, &mut jobs).await?;
            }
        }
        if jobs.is_empty() {
            // Nothing anywhere: wait for new messages on every lane (briefly, so new lanes are seen).
            let all: Vec<String> = [high, normal, bulk].concat();
            if all.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.refresh_lanes().await?;
            } else {
                self.read_lanes(&all, max, Some(100), &mut jobs).await?;
            }
        }
        self.hold(&jobs);
        Ok(jobs)
    }

    async fn complete(&self, done: Vec<Completion>) -> Result<(), NotifyError> {
        if done.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let k = &self.keys;
        let mut inv = self.complete_script.prepare_invoke();
        inv.key(&k.delayed).key(&k.dead).key(&k.deadmsg).key(&k.prefix);
        for c in &done {
            let run = c.job.run.map(|r| r.to_string()).unwrap_or_default();
            let (lane, rid) = split_receipt(&c.job.receipt);
            inv.arg(lane).arg(rid).arg(c.job.id.seq);
            match c.kind {
                Settle::Cancelled => {
                    inv.arg("c").arg(run).arg("").arg(0).arg("").arg("");
                    continue;
                }
                Settle::Expired => {
                    inv.arg("e").arg(run).arg("").arg(0).arg("").arg("");
                    continue;
                }
                Settle::Deferred => {
                    inv.arg("f").arg(run).arg("").arg(c.retry_at_ms.unwrap_or(now)).arg(wire_json(&c.job, c.job.attempts)).arg("");
                    continue;
                }
                Settle::Attempted => {}
            }
            let a = &c.attempt;
            let att = serde_json::to_string(a).unwrap_or_default();
            match a.outcome {
                AttemptOutcome::Delivered => {
                    let e2e_us = ((now - c.job.created_ms).max(0) as u64) * 1000;
                    let buckets = format!("a{} e{}", LatencyBuckets::bucket_of(a.latency_us), LatencyBuckets::bucket_of(e2e_us));
                    inv.arg("d").arg(run).arg(att).arg(0).arg("").arg(buckets);
                }
                AttemptOutcome::Retrying => {
                    let cap_key = c.job.cap_key().unwrap_or_default();
                    inv.arg("r").arg(run).arg(att).arg(c.retry_at_ms.unwrap_or(now)).arg(wire_json(&c.job, a.number)).arg(cap_key);
                }
                AttemptOutcome::DeadLettered => {
                    let rec = DeadRecord {
                        w: wire_json(&c.job, 0),
                        r: c.job.run,
                        e: a.error.clone(),
                        at: a.at_ms,
                        n: a.number,
                        z: Some(k.dead_of(c.job.owner.as_deref())),
                    };
                    inv.arg("x").arg(run).arg(att).arg(a.at_ms).arg(serde_json::to_string(&rec).unwrap_or_default()).arg("");
                }
            }
        }
        let mut c = self.conn.clone();
        let settled: Result<u64, _> = inv.invoke_async(&mut c).await;
        // Recorded or not, these are no longer kept fresh: if recording failed they stay pending and
        // are delivered again once idle (at-least-once).
        self.let_go(done.iter().map(|c| c.job.receipt.as_str()));
        let settled = settled?;
        let _ = self.backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(settled)));
        // Until the next refresh reads the delayed set's size.
        let retries = done.iter().filter(|c| c.attempted() && c.attempt.outcome == AttemptOutcome::Retrying).count() as u64;
        self.delayed.fetch_add(retries, Ordering::Relaxed);
        Ok(())
    }

    async fn release(&self, jobs: Vec<Job>) -> Result<(), NotifyError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut inv = self.release_script.prepare_invoke();
        inv.key(&self.keys.prefix);
        for j in &jobs {
            let (lane, rid) = split_receipt(&j.receipt);
            inv.arg(lane).arg(rid).arg(wire_json(j, j.attempts));
        }
        let mut c = self.conn.clone();
        let released: Result<i64, _> = inv.invoke_async(&mut c).await;
        self.let_go(jobs.iter().map(|j| j.receipt.as_str()));
        released?;
        Ok(())
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn retries_waiting(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    fn clock(&self) -> &crate::Clock {
        &self.clock
    }

    fn owner_backlog(&self, owner: Option<&str>) -> u64 {
        self.owner_waiting.lock().expect("owner lock").get(&owner_key_part(owner)).copied().unwrap_or(0)
    }

    async fn route_retries(&self, route: &str) -> Result<u64, NotifyError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("ZCARD").arg(self.keys.retry_by(route)).query_async(&mut c).await?)
    }

    async fn shed_oldest(&self, route: &str, n: usize, why: &str) -> Result<Vec<Job>, NotifyError> {
        let mut c = self.conn.clone();
        let members: Vec<String> = self.shed_script.key(&self.keys.delayed).key(self.keys.retry_by(route)).arg(n).invoke_async(&mut c).await?;
        let jobs: Vec<Job> = members.iter().filter_map(|m| serde_json::from_str::<Wire>(m).ok()?.into_job(String::new())).collect();
        if jobs.is_empty() {
            return Ok(jobs);
        }
        // Out of the delayed set (atomically, so no other worker has them): now their dead letters,
        // written together.
        let now = self.clock.now_ms();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for j in &jobs {
            let z = self.keys.dead_of(j.owner.as_deref());
            let rec = DeadRecord { w: wire_json(j, 0), r: j.run, e: Some(why.to_string()), at: now, n: j.attempts, z: Some(z.clone()) };
            let attempt =
                Attempt { number: j.attempts, at_ms: now, outcome: AttemptOutcome::DeadLettered, latency_us: 0, error: Some(why.to_string()) };
            let seq = j.id.seq;
            pipe.hset(&self.keys.deadmsg, seq, serde_json::to_string(&rec).unwrap_or_default()).ignore();
            pipe.zadd(&self.keys.dead, seq, now).ignore();
            pipe.zadd(&z, seq, now).ignore();
            pipe.rpush(self.keys.attempts(seq), serde_json::to_string(&attempt).unwrap_or_default()).ignore();
            pipe.expire(self.keys.attempts(seq), 604_800).ignore();
        }
        let _: () = pipe.query_async(&mut c).await?;
        let k = jobs.len() as u64;
        let _ = self.backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(k)));
        let _ = self.delayed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some(d.saturating_sub(k)));
        Ok(jobs)
    }

    async fn dead_letters(&self, scope: OwnerScope, limit: usize) -> Result<Vec<DeadLetter>, NotifyError> {
        let set = match &scope {
            OwnerScope::All => self.keys.dead.clone(),
            OwnerScope::Of(owner) => self.keys.dead_of(owner.as_deref()),
        };
        let mut c = self.conn.clone();
        let ids: Vec<u64> = redis::cmd("ZREVRANGE").arg(&set).arg(0).arg(limit.saturating_sub(1)).query_async(&mut c).await?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let recs: Vec<Option<String>> = redis::cmd("HMGET").arg(&self.keys.deadmsg).arg(&ids).query_async(&mut c).await?;
        Ok(ids
            .into_iter()
            .zip(recs)
            .filter_map(|(id, rec)| {
                let rec: DeadRecord = serde_json::from_str(rec.as_deref()?).ok()?;
                let w: Wire = serde_json::from_str(&rec.w).ok()?;
                Some(DeadLetter {
                    id: NotificationId::redis(id),
                    run: rec.r,
                    channel: w.c.channel()?,
                    recipient: w.t.into_owned(),
                    attempts: rec.n,
                    last_error: rec.e,
                    dead_at_ms: rec.at,
                })
            })
            .collect())
    }

    async fn replay(&self, scope: OwnerScope, which: Replay) -> Result<u64, NotifyError> {
        let (set, only) = match &scope {
            OwnerScope::All => (self.keys.dead.clone(), String::new()),
            OwnerScope::Of(owner) => {
                let s = self.keys.dead_of(owner.as_deref());
                (s.clone(), s)
            }
        };
        let mut c = self.conn.clone();
        let ids: Vec<u64> = match which {
            Replay::All => redis::cmd("ZRANGE").arg(&set).arg(0).arg(-1).query_async(&mut c).await?,
            Replay::Ids(ids) => ids.into_iter().filter(|i| i.backend == Backend::Redis).map(|i| i.seq).collect(),
        };
        let mut total = 0;
        for chunk in ids.chunks(1000) {
            let n: u64 = self
                .replay_script
                .key(&self.keys.dead)
                .key(&self.keys.deadmsg)
                .key(&self.keys.prefix)
                .key(format!("{}:run:", self.keys.prefix))
                .key(&only)
                .arg(chunk)
                .invoke_async(&mut c)
                .await?;
            total += n;
        }
        self.backlog.fetch_add(total, Ordering::Relaxed);
        Ok(total)
    }

    async fn attempts(&self, id: NotificationId) -> Result<Vec<Attempt>, NotifyError> {
        if id.backend != Backend::Redis {
            return Err(NotifyError::NotFound);
        }
        let mut c = self.conn.clone();
        let rows: Vec<String> = redis::cmd("LRANGE").arg(self.keys.attempts(id.seq)).arg(0).arg(-1).query_async(&mut c).await?;
        Ok(rows.iter().filter_map(|r| serde_json::from_str(r).ok()).collect())
    }

    async fn run_counters(&self, run: RunId) -> Result<RunCounters, NotifyError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, i64> = redis::cmd("HGETALL").arg(self.keys.run(run)).query_async(&mut c).await?;
        let get = |k: &str| h.get(k).copied().unwrap_or(0).max(0) as u64;
        let mut out = RunCounters {
            produced: get("produced"),
            delivered: get("delivered"),
            failed_attempts: get("failed"),
            retried: get("retried"),
            dead_lettered: get("dead"),
            cancelled: get("cancelled"),
            expired: get("expired"),
            ..Default::default()
        };
        for (k, v) in &h {
            let (hist, rest): (&mut LatencyBuckets, &str) = match k.split_at(1) {
                ("a", rest) => (&mut out.attempt_latency, rest),
                ("e", rest) => (&mut out.end_to_end, rest),
                _ => continue,
            };
            if let Ok(b) = rest.parse::<usize>() {
                hist.add(b, (*v).max(0) as u64);
            }
        }
        Ok(out)
    }

    async fn cancel_run(&self, run: RunId) -> Result<u64, NotifyError> {
        // Workers everywhere drop this run's messages as they read them (see the cancelled set).
        let mut c = self.conn.clone();
        let _: i64 = redis::cmd("SADD").arg(&self.keys.cancelled).arg(run).query_async(&mut c).await?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_written_by_older_code_still_reads_and_routes_round_trip() {
        // As the code before routes wrote it: no `e` field.
        let old = r#"{"i":9,"c":0,"t":"endpoint:ep_1","p":"{\"message_id\":\"msg_1\"}","a":2,"k":5,"f":0.0,"l":0}"#;
        let job = serde_json::from_str::<Wire>(old).unwrap().into_job("1-0".into()).unwrap();
        assert_eq!((job.id, job.attempts, job.owner.as_deref(), job.route.as_deref()), (NotificationId::redis(9), 2, None, None));
        assert_eq!(job.recipient, "endpoint:ep_1");
        let mut routed = job.clone();
        routed.route = Some("ep_1".into());
        routed.owner = Some("alice".into());
        let back = serde_json::from_str::<Wire>(&wire_json(&routed, 3)).unwrap().into_job(String::new()).unwrap();
        assert_eq!((back.route.as_deref(), back.owner.as_deref(), back.attempts), (Some("ep_1"), Some("alice"), 3));
        // Without a route nothing new is written, so older workers read new messages too.
        assert!(!wire_json(&job, 0).contains("\"e\""));
    }
}
