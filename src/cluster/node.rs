//! The node's loops: the lease (acquire, renew, step down), following the
//! stream, and publishing (see the module docs of `crate::cluster`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{conn_config, Cluster};
use crate::model::UpstreamHealth;
use crate::registry::replica::{
    ApplyReplica, Entry, LoadReplica, Meta, ReplicaOut, SetPublishing, SetTrouble,
};
use crate::registry::Registry;

/// Takes the lease when absent: `INCR` the fence, `SET NX PX` the value
/// `<node>|<token>`; returns the value, or nil when someone holds it.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local v = ARGV[1] .. '|' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return v";

/// Claims this node's id for this process: 1, or 0 when another running
/// process uses the same `node_id`.
const CLAIM_ID: &str = r"
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

/// Renews the lease if this node still holds it: 1, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

/// Gives the lease up on a graceful stop (only if still ours).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Publishes one entry, fenced: KEYS lease, stream, agents, meta; ARGV
/// lease value, stream length, entry JSON, kind, epoch, seq, meta JSON,
/// health JSON, then agent id / JSON pairs (empty JSON: the agent left).
const PUBLISH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED this node no longer holds the leader lease')
end
if ARGV[4] == 'checkpoint' then redis.call('DEL', KEYS[3]) end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[3])
local i = 9
local set = {}
while i < #ARGV do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[3], ARGV[i])
  else
    set[#set + 1] = ARGV[i]
    set[#set + 1] = ARGV[i + 1]
    if #set >= 1000 then
      redis.call('HSET', KEYS[3], unpack(set))
      set = {}
    end
  end
  i = i + 2
end
if #set > 0 then redis.call('HSET', KEYS[3], unpack(set)) end
local m = {'last_id', id}
if ARGV[5] ~= '' then
  m[#m + 1] = 'epoch'; m[#m + 1] = ARGV[5]; m[#m + 1] = 'seq'; m[#m + 1] = ARGV[6]
end
if ARGV[7] ~= '' then m[#m + 1] = 'meta'; m[#m + 1] = ARGV[7] end
if ARGV[8] ~= '' then m[#m + 1] = 'health'; m[#m + 1] = ARGV[8] end
if ARGV[4] == 'checkpoint' then m[#m + 1] = 'complete'; m[#m + 1] = '1' end
redis.call('HSET', KEYS[4], unpack(m))
return id";

/// Entries read per `XREAD`.
const READ_COUNT: usize = 512;

/// What `app::start` hands the cluster.
pub struct NodeParts {
    /// This node's registry.
    pub registry: Addr<Registry>,
    /// What the registry publishes while this node leads.
    pub replica: mpsc::Receiver<ReplicaOut>,
    /// Starts the Genesys floor; called once, when this node first leads.
    pub promote: Box<dyn FnOnce()>,
    /// `http://127.0.0.1:<port>`: where relayed requests are carried out.
    pub local_base: String,
    /// The stream length kept in Redis (`registry.replay_batches`).
    pub stream_len: usize,
    /// Stops the loops (graceful shutdown; the leader gives the lease up).
    pub stop: CancellationToken,
    /// Interaction context across nodes (when interaction context is served).
    pub context: Option<super::context::ContextParts>,
}

/// Starts the node's loops on the current actix arbiter.
pub fn start(cluster: Arc<Cluster>, parts: NodeParts) {
    let NodeParts {
        registry,
        replica,
        promote,
        local_base,
        stream_len,
        stop,
        context,
    } = parts;
    if let Some(c) = context {
        super::context::start(cluster.clone(), c, stop.clone());
    }
    let lease = Arc::new(parking_lot::Mutex::new(None::<String>));
    actix::spawn(publish_loop(
        cluster.clone(),
        replica,
        lease.clone(),
        stream_len,
        stop.clone(),
    ));
    actix::spawn(super::relay::serve_loop(
        cluster.clone(),
        local_base,
        stop.clone(),
    ));
    actix::spawn(super::relay::reply_loop(cluster.clone(), stop.clone()));
    actix::spawn(
        Node {
            cluster,
            registry,
            lease,
            promote: Some(promote),
            last_id: None,
            need_snapshot: true,
            absent_since: None,
            renew_failing_since: None,
            lease_checked: Instant::now(),
            id_claimed: Instant::now() - Duration::from_secs(3600),
            id_taken: false,
            trouble: None,
            watch_report: Instant::now(),
            remote: Default::default(),
            stop,
        }
        .run(),
    );
}

/// The lease-and-follow loop's state.
struct Node {
    cluster: Arc<Cluster>,
    registry: Addr<Registry>,
    /// The lease value while leading (shared with the publisher).
    lease: Arc<parking_lot::Mutex<Option<String>>>,
    promote: Option<Box<dyn FnOnce()>>,
    /// The last stream entry applied.
    last_id: Option<String>,
    /// Load the snapshot before reading on.
    need_snapshot: bool,
    /// Since when the lease has been seen absent while no snapshot exists.
    absent_since: Option<Instant>,
    /// Since when this leader has failed to renew its lease.
    renew_failing_since: Option<Instant>,
    /// When the follower last looked at the lease.
    lease_checked: Instant,
    /// When this process last claimed its `node_id` in Redis.
    id_claimed: Instant,
    /// Another running process uses this `node_id`.
    id_taken: bool,
    /// Why this follower's state may be stale (shown in `status`).
    trouble: Option<String>,
    /// When this follower last reported its interaction watches.
    watch_report: Instant,
    /// The leader's view of other nodes' interaction watches.
    remote: std::collections::BTreeMap<String, Vec<String>>,
    stop: CancellationToken,
}

impl Node {
    fn poll(&self) -> Duration {
        Duration::from_millis((self.cluster.cfg.lease_ms / 10).max(50))
    }

    async fn run(mut self) {
        let mut block = match ConnectionManager::new_lazy_with_config(
            self.cluster.redis_client.clone(),
            conn_config(None),
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cluster: cannot set up the Redis connection");
                return;
            }
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.stop.is_cancelled() {
                self.release().await;
                return;
            }
            if self.id_claimed.elapsed() >= Duration::from_millis(self.cluster.cfg.lease_ms / 3) {
                self.id_claimed = Instant::now();
                self.claim_id().await;
            }
            let step = if self.cluster.is_leader() {
                self.lead().await
            } else {
                self.follow(&mut block).await
            };
            match step {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    if self.cluster.is_leader() {
                        self.renew_failing_since = None;
                        self.recovered().await;
                    }
                }
                Err(e) => {
                    self.cluster.redis_failed(&e);
                    if !self.cluster.is_leader() {
                        self.stale(format!(
                            "cluster: Redis unreachable ({e}); serving the last state"
                        ))
                        .await;
                    } else {
                        // Past the lease another node may lead once Redis
                        // is back: this node's stream is no longer certain
                        // to be the cluster's.
                        let since = *self.renew_failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= Duration::from_millis(self.cluster.cfg.lease_ms) {
                            self.stale(format!(
                                "cluster: Redis unreachable ({e}) for longer than the leader lease; this node serves Genesys's state but may no longer lead"
                            ))
                            .await;
                        }
                    }
                    tokio::select! {
                        _ = self.stop.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if self.cluster.deposed.is_cancelled() {
                self.release().await;
                return;
            }
        }
    }

    /// One leader step: renew, then wait a third of the lease.
    async fn lead(&mut self) -> redis::RedisResult<()> {
        let mut ctl = self.cluster.ctl.clone();
        let value = self.lease.lock().clone().unwrap_or_default();
        let ms = self.cluster.cfg.lease_ms;
        self.cluster.stats.op(1);
        let sent = Instant::now();
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.cluster.keys.lease)
            .arg(&value)
            .arg(ms)
            .invoke_async(&mut ctl)
            .await?;
        self.cluster.redis_ok();
        if renewed == 1 {
            self.hold_until(sent).await;
        } else {
            // Gone (Redis restarted empty, or it ran out while Redis was
            // away) or taken.
            self.cluster.stats.op(1);
            let holder: Option<String> = redis::cmd("GET")
                .arg(&self.cluster.keys.lease)
                .query_async(&mut ctl)
                .await?;
            match holder {
                Some(other) => {
                    tracing::error!(
                        holder = %other,
                        "cluster: another node holds the leader lease; this node steps down (drain, exit 75)"
                    );
                    self.cluster.set_leader(false);
                    *self.lease.lock() = None;
                    self.cluster.deposed.cancel();
                    return Ok(());
                }
                None => {
                    let sent = Instant::now();
                    if let Some(v) = self.acquire().await? {
                        tracing::warn!(lease = %v, "cluster: the leader lease was gone; taken again");
                        self.hold_until(sent).await;
                        *self.lease.lock() = Some(v);
                        // The stream and snapshot may be gone with it.
                        let _ = self.registry.send(SetPublishing(true)).await;
                    }
                }
            }
        }
        super::context::gather(&self.cluster, &mut self.remote).await?;
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(ms / 3)) => {}
        }
        Ok(())
    }

    /// The lease, renewed or taken by a request sent at `sent`, holds for
    /// nine tenths of `lease_ms` from then (a margin for clock rates): the
    /// registry numbers batches until that time ([`crate::registry::replica::LeaseGate`]).
    async fn hold_until(&self, sent: Instant) {
        let ms = self.cluster.cfg.lease_ms * 9 / 10;
        self.cluster
            .gate
            .extend_to(sent + Duration::from_millis(ms));
        let _ = self
            .registry
            .send(crate::registry::replica::LeaseRenewed)
            .await;
    }

    async fn acquire(&self) -> redis::RedisResult<Option<String>> {
        let mut ctl = self.cluster.ctl.clone();
        self.cluster.stats.op(1);
        redis::Script::new(ACQUIRE)
            .key(&self.cluster.keys.lease)
            .key(&self.cluster.keys.fence)
            .arg(&self.cluster.node)
            .arg(self.cluster.cfg.lease_ms)
            .invoke_async(&mut ctl)
            .await
    }

    async fn release(&self) {
        let mut ctl = self.cluster.ctl.clone();
        // This process's claim on its node_id, so a restart is not taken
        // for a second process.
        let _: redis::RedisResult<i64> = redis::Script::new(RELEASE)
            .key(format!(
                "{}:node:{}",
                self.cluster.keys.prefix, self.cluster.node
            ))
            .arg(&self.cluster.instance)
            .invoke_async(&mut ctl)
            .await;
        let Some(v) = self.lease.lock().clone() else {
            return;
        };
        let r: redis::RedisResult<i64> = redis::Script::new(RELEASE)
            .key(&self.cluster.keys.lease)
            .arg(&v)
            .invoke_async(&mut ctl)
            .await;
        if r.is_ok() {
            tracing::info!("cluster: leader lease released");
        }
    }

    /// Claims `<prefix>:node:<id>` for this process (3 leases long,
    /// renewed every third of one); another live process with the same id
    /// makes this one unready, naming the problem (their relay answers
    /// would cross).
    async fn claim_id(&mut self) {
        let mut ctl = self.cluster.ctl.clone();
        self.cluster.stats.op(1);
        let got: redis::RedisResult<i64> = redis::Script::new(CLAIM_ID)
            .key(format!(
                "{}:node:{}",
                self.cluster.keys.prefix, self.cluster.node
            ))
            .arg(&self.cluster.instance)
            .arg(self.cluster.cfg.lease_ms * 3)
            .invoke_async(&mut ctl)
            .await;
        let taken = matches!(got, Ok(0));
        if taken != self.id_taken {
            self.id_taken = taken;
            self.cluster.set_id_conflict(taken);
            if taken {
                tracing::error!(node = %self.cluster.node, "cluster: another running process uses this node_id; give every node its own cluster.node_id");
            }
        }
    }

    /// Marks the state stale for this node's clients.
    async fn stale(&mut self, why: String) {
        if self.trouble.as_deref() == Some(why.as_str()) {
            return;
        }
        self.trouble = Some(why.clone());
        let _ = self.registry.send(SetTrouble(Some(why))).await;
    }

    /// The trouble is over.
    async fn recovered(&mut self) {
        if self.trouble.take().is_some() {
            let _ = self.registry.send(SetTrouble(None)).await;
        }
    }

    /// One follower step: catch up with the stream (or the snapshot), then
    /// look at the lease and take it when it is free.
    async fn follow(&mut self, block: &mut ConnectionManager) -> redis::RedisResult<()> {
        if self.need_snapshot {
            self.load_snapshot().await?;
        }
        if let Some(id) = self.last_id.clone() {
            self.cluster.stats.op(1);
            let reply: Option<StreamReadReply> = tokio::time::timeout(
                self.poll() + Duration::from_secs(2),
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(self.poll().as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.cluster.keys.stream)
                    .arg(&id)
                    .query_async(block),
            )
            .await
            .map_err(|_| timeout_error("XREAD"))??;
            if let Some(reply) = reply {
                for key in reply.keys {
                    self.apply_all(key.ids).await;
                }
            }
        } else {
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = tokio::time::sleep(self.poll()) => {}
            }
        }
        self.cluster.redis_ok();
        let refresh =
            self.watch_report.elapsed() >= Duration::from_millis(self.cluster.cfg.lease_ms / 3);
        if refresh {
            self.watch_report = Instant::now();
        }
        super::context::report(&self.cluster, refresh).await?;
        // The lease is looked at once per poll, not after every entry read.
        if self.lease_checked.elapsed() < self.poll() && self.cluster.status().leader.is_some() {
            return Ok(());
        }
        self.lease_checked = Instant::now();
        self.check_lease().await
    }

    /// Applies entries in order; a gap stops and asks for the snapshot.
    async fn apply_all(&mut self, ids: Vec<StreamId>) {
        for e in ids {
            let Some(json) = e.get::<String>("e") else {
                self.last_id = Some(e.id);
                continue;
            };
            let entry: Entry = match serde_json::from_str(&json) {
                Ok(x) => x,
                Err(err) => {
                    tracing::warn!(id = %e.id, error = %err, "cluster: unreadable stream entry skipped; reloading the snapshot");
                    self.need_snapshot = true;
                    return;
                }
            };
            match self.registry.send(ApplyReplica(entry)).await {
                Ok(Ok(())) => {
                    self.cluster.stats.applied.fetch_add(1, Ordering::Relaxed);
                    self.last_id = Some(e.id);
                }
                Ok(Err(gap)) => {
                    tracing::info!(
                        at_epoch = gap.epoch,
                        at_seq = gap.seq,
                        "cluster: gap in the stream; loading the snapshot"
                    );
                    self.need_snapshot = true;
                    return;
                }
                Err(_) => return, // the registry stopped
            }
        }
    }

    /// Loads the leader's snapshot and the stream before it; leaves
    /// `need_snapshot` set when there is no complete snapshot yet.
    async fn load_snapshot(&mut self) -> redis::RedisResult<()> {
        let mut ctl = self.cluster.ctl.clone();
        let k = &self.cluster.keys;
        self.cluster.stats.op(3);
        let (meta, agents, range): (
            HashMap<String, String>,
            HashMap<String, String>,
            StreamRangeReply,
        ) = redis::pipe()
            .atomic()
            .cmd("HGETALL")
            .arg(&k.meta)
            .cmd("HGETALL")
            .arg(&k.agents)
            .cmd("XRANGE")
            .arg(&k.stream)
            .arg("-")
            .arg("+")
            .query_async(&mut ctl)
            .await?;
        if meta.get("complete").map(String::as_str) != Some("1") {
            return Ok(()); // no leader has written one yet
        }
        let num = |f: &str| meta.get(f).and_then(|v| v.parse::<u64>().ok());
        let (Some(epoch), Some(seq), Some(last_id)) =
            (num("epoch"), num("seq"), meta.get("last_id"))
        else {
            tracing::warn!("cluster: the snapshot in Redis lacks epoch/seq/last_id; waiting for the next checkpoint");
            return Ok(());
        };
        let parsed_meta: Option<Meta> = meta.get("meta").and_then(|m| serde_json::from_str(m).ok());
        let health: Option<UpstreamHealth> = meta
            .get("health")
            .and_then(|m| serde_json::from_str(m).ok());
        let mut views = Vec::with_capacity(agents.len());
        for (id, json) in &agents {
            match serde_json::from_str(json) {
                Ok(v) => views.push(v),
                Err(e) => {
                    tracing::warn!(agent = %id, error = %e, "cluster: unreadable agent in the snapshot skipped")
                }
            }
        }
        // The replay ring: the batches of this epoch up to `seq`, contiguous.
        let mut ring: Vec<crate::registry::Batch> = Vec::new();
        for e in &range.ids {
            let Some(entry) = e
                .get::<String>("e")
                .and_then(|j| serde_json::from_str::<Entry>(&j).ok())
            else {
                continue;
            };
            if let Entry::Batch {
                epoch: be, seq: bs, ..
            } = &entry
            {
                if *be != epoch || *bs > seq {
                    continue;
                }
                if ring.last().is_some_and(|b| b.seq + 1 != *bs) {
                    ring.clear();
                }
                if let Some(b) = entry.to_batch() {
                    ring.push(b);
                }
            }
        }
        if ring.last().is_some_and(|b| b.seq != seq) {
            ring.clear();
        }
        let closed = self
            .registry
            .send(LoadReplica {
                epoch,
                seq,
                agents: views,
                meta: parsed_meta.unwrap_or(Meta {
                    definitions: Vec::new(),
                    queues: Vec::new(),
                    synced: false,
                }),
                health,
                ring,
            })
            .await
            .unwrap_or(0);
        self.cluster
            .stats
            .snapshots_loaded
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(epoch, seq, closed, "cluster: snapshot loaded");
        self.last_id = Some(last_id.clone());
        self.need_snapshot = false;
        Ok(())
    }

    /// Who leads; take the lease when nobody does.
    async fn check_lease(&mut self) -> redis::RedisResult<()> {
        let mut ctl = self.cluster.ctl.clone();
        self.cluster.stats.op(2);
        let (holder, has_snapshot): (Option<String>, bool) = redis::pipe()
            .cmd("GET")
            .arg(&self.cluster.keys.lease)
            .cmd("HEXISTS")
            .arg(&self.cluster.keys.meta)
            .arg("complete")
            .query_async(&mut ctl)
            .await?;
        if let Some(h) = holder {
            let node = h.split('|').next().unwrap_or_default().to_string();
            self.cluster.set_known_leader(Some(node));
            self.absent_since = None;
            self.recovered().await;
            return Ok(());
        }
        self.cluster.set_known_leader(None);
        self.stale("cluster: no leader; another node takes over within the lease time".into())
            .await;
        if self.id_taken {
            return Ok(()); // a process whose node_id is in use never leads
        }
        // With the cluster's state in Redis the lease ran out: take it now.
        // Without (a new cluster, or Redis restarted empty) give the old
        // leader one lease time to come back first.
        let since = *self.absent_since.get_or_insert_with(Instant::now);
        if !has_snapshot && since.elapsed() < Duration::from_millis(self.cluster.cfg.lease_ms) {
            return Ok(());
        }
        let sent = Instant::now();
        let Some(value) = self.acquire().await? else {
            return Ok(());
        };
        self.hold_until(sent).await;
        self.promote(value).await
    }

    /// Became the leader: catch up with the stream, start publishing, start Genesys.
    async fn promote(&mut self, value: String) -> redis::RedisResult<()> {
        tracing::info!(lease = %value, "cluster: this node took the leader lease");
        *self.lease.lock() = Some(value);
        // Everything the old leader published, then our own from there.
        if self.need_snapshot {
            let _ = self.load_snapshot().await;
        }
        if let Some(id) = self.last_id.clone() {
            let mut ctl = self.cluster.ctl.clone();
            self.cluster.stats.op(1);
            let range: redis::RedisResult<StreamRangeReply> = redis::cmd("XRANGE")
                .arg(&self.cluster.keys.stream)
                .arg(format!("({id}"))
                .arg("+")
                .query_async(&mut ctl)
                .await;
            if let Ok(range) = range {
                self.apply_all(range.ids).await;
            }
        }
        self.recovered().await;
        self.cluster.set_leader(true);
        let _ = self.registry.send(SetPublishing(true)).await;
        if let Some(start) = self.promote.take() {
            start();
        }
        Ok(())
    }
}

fn timeout_error(what: &str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Io,
        "timed out",
        format!("{what} got no answer"),
    ))
}

/// Publishes what the registry hands over while this node leads, in order,
/// retrying with backoff (Redis away) until it lands or the node is deposed.
async fn publish_loop(
    cluster: Arc<Cluster>,
    mut rx: mpsc::Receiver<ReplicaOut>,
    lease: Arc<parking_lot::Mutex<Option<String>>>,
    stream_len: usize,
    stop: CancellationToken,
) {
    let script = redis::Script::new(PUBLISH);
    loop {
        let out = tokio::select! {
            _ = stop.cancelled() => return,
            o = rx.recv() => match o { Some(o) => o, None => return },
        };
        let args = publish_args(&out);
        let mut backoff = Duration::from_millis(50);
        loop {
            if cluster.deposed.is_cancelled() || stop.is_cancelled() {
                return;
            }
            let Some(value) = lease.lock().clone() else {
                // Not leading (yet, or any more): nothing to publish.
                break;
            };
            let mut ctl = cluster.ctl.clone();
            let mut inv = script.prepare_invoke();
            inv.key(&cluster.keys.lease)
                .key(&cluster.keys.stream)
                .key(&cluster.keys.agents)
                .key(&cluster.keys.meta)
                .arg(&value)
                .arg(stream_len);
            for a in &args {
                inv.arg(a.as_str());
            }
            cluster.stats.op(1);
            let r: redis::RedisResult<String> = inv.invoke_async(&mut ctl).await;
            match r {
                Ok(_) => {
                    cluster.stats.published.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    if !e.to_string().contains("FENCED") {
                        cluster.redis_failed(&e);
                    }
                    // FENCED: the lease loop re-takes the lease (or steps
                    // down); retry with its new value.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// The script's ARGV after the lease value and stream length.
fn publish_args(out: &ReplicaOut) -> Vec<String> {
    match out {
        ReplicaOut::Batch(b) => {
            let mut v = vec![
                Entry::batch_json(b),
                "batch".into(),
                b.epoch.to_string(),
                b.seq.to_string(),
                String::new(),
                String::new(),
            ];
            for c in &b.changes {
                v.push(c.id.clone());
                v.push(c.after.as_deref().map(json).unwrap_or_default());
            }
            v
        }
        ReplicaOut::Meta(m) => vec![
            Entry::Meta(m.clone()).json(),
            "meta".into(),
            String::new(),
            String::new(),
            json(m),
            String::new(),
        ],
        ReplicaOut::Health(h) => vec![
            Entry::Health { health: h.clone() }.json(),
            "health".into(),
            String::new(),
            String::new(),
            String::new(),
            json(h),
        ],
        ReplicaOut::Checkpoint(cp) => {
            let mut v = vec![
                Entry::Checkpoint {
                    epoch: cp.epoch,
                    seq: cp.seq,
                }
                .json(),
                "checkpoint".into(),
                cp.epoch.to_string(),
                cp.seq.to_string(),
                json(&cp.meta),
                json(&cp.health),
            ];
            for a in &cp.agents {
                v.push(a.id.clone());
                v.push(json(&**a));
            }
            v
        }
    }
}

/// The JSON of a value the publisher stores.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // unwrap: plain structs of strings, numbers and maps serialise.
    serde_json::to_string(v).unwrap()
}
