//! Scale-out on Redis (`[cluster] redis_url`, docs/scaling.md): several
//! gateway nodes, one Genesys connection.
//!
//! - **Leader lease** (`node.rs`): `<prefix>:leader` holds `<node>|<token>`,
//!   set only when absent, with `lease_ms` expiry, renewed every
//!   `lease_ms / 3` by a script that checks the value; the token comes from
//!   `INCR <prefix>:fence`, and every publication checks the value in the
//!   same script, so a paused old leader cannot write after losing it. Only
//!   the holder runs the Upstream actor (Genesys: token, REST budget,
//!   channels, reconciliation, sweeps).
//! - **Replication** (`node.rs`): the leader's registry hands every numbered
//!   batch, meta and health change to the publisher, which appends it to
//!   the Redis Stream `<prefix>:stream` (trimmed to `registry.replay_batches`)
//!   and, in the same script, updates the snapshot beside it
//!   (`<prefix>:agents` hash of agent JSON, `<prefix>:meta` hash of
//!   `epoch`, `seq`, `last_id`, definitions, queues, health). Followers read
//!   the stream and apply it to their own registry, so every node numbers
//!   and encodes identically; a follower that finds a gap loads the snapshot
//!   and the stream before it (its replay ring).
//! - **Relay** (`relay.rs`): requests that need Genesys or the store
//!   (writes, audit, history, interactions, webhooks) arriving at a
//!   follower are carried out by the leader: pushed to `<prefix>:relay`, run
//!   by the leader against its own HTTP API (same authentication and
//!   checks), answered through `<prefix>:relay:reply:<node>`.
//!
//! A deposed leader (another node holds the lease) cannot know what its
//! Genesys connection did meanwhile: it drains its clients and the process
//! exits with 75 (`EX_TEMPFAIL`) for its supervisor to restart it as a
//! follower.

mod config;
pub mod context;
mod node;
pub mod relay;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use config::ClusterConfig;
pub use node::{start, NodeParts};
pub use relay::{Relayed, RELAY_HEADER};

/// This node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease and Genesys.
    Leader,
    /// Applies the leader's stream.
    Follower,
}

/// What `/readyz` and `/metrics` say of the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// This node.
    pub node: String,
    pub role: Role,
    /// The lease holder, when one is known.
    pub leader: Option<String>,
    /// `ok`, or why Redis cannot be used right now.
    pub redis: String,
}

/// Redis key names under the prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub lease: String,
    pub fence: String,
    pub stream: String,
    pub agents: String,
    pub meta: String,
    pub relay: String,
    pub watching: String,
    pub interactions: String,
    pub observations: String,
    pub prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            lease: format!("{prefix}:leader"),
            fence: format!("{prefix}:fence"),
            stream: format!("{prefix}:stream"),
            agents: format!("{prefix}:agents"),
            meta: format!("{prefix}:meta"),
            relay: format!("{prefix}:relay"),
            watching: format!("{prefix}:watching"),
            interactions: format!("{prefix}:interactions"),
            observations: format!("{prefix}:observations"),
            prefix: prefix.to_string(),
        }
    }

    /// Where `node`'s relay replies go.
    pub fn replies(&self, node: &str) -> String {
        format!("{}:relay:reply:{node}", self.prefix)
    }
}

/// Counters for `/metrics` (any thread).
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Redis commands sent (scripts count once).
    pub redis_ops: std::sync::atomic::AtomicU64,
    /// Entries published (leader).
    pub published: std::sync::atomic::AtomicU64,
    /// Entries applied (follower).
    pub applied: std::sync::atomic::AtomicU64,
    /// Snapshots loaded (follower).
    pub snapshots_loaded: std::sync::atomic::AtomicU64,
    /// Requests relayed to the leader (follower) / carried out for another node (leader).
    pub relayed_out: std::sync::atomic::AtomicU64,
    pub relayed_in: std::sync::atomic::AtomicU64,
    /// Relayed requests that got no answer in time.
    pub relay_timeouts: std::sync::atomic::AtomicU64,
    /// Redis errors seen.
    pub redis_errors: std::sync::atomic::AtomicU64,
}

impl ClusterStats {
    pub(crate) fn op(&self, n: u64) {
        self.redis_ops.fetch_add(n, Ordering::Relaxed);
    }
}

/// A cluster member's shared handle: role, status, relay.
pub struct Cluster {
    pub cfg: ClusterConfig,
    /// This node's id.
    pub node: String,
    pub(crate) keys: Keys,
    /// Non-blocking commands (lease, scripts, pushes).
    pub(crate) ctl: ConnectionManager,
    pub(crate) redis_client: redis::Client,
    leader: AtomicBool,
    status: Mutex<ClusterStatus>,
    pub stats: ClusterStats,
    pub(crate) relay: relay::RelayState,
    /// The agents this node's clients watch (interaction context).
    pub(crate) watches: Mutex<context::LocalWatches>,
    /// This node's interaction hub, once known.
    pub(crate) context_hub: Mutex<Option<actix::Recipient<crate::model::ConversationsReset>>>,
    /// How the leader registers other nodes' watches with its hub.
    pub(crate) remote_watches: Mutex<Option<context::RemoteWatches>>,
    /// Raised when this node lost the lease to another: drain and exit 75.
    pub deposed: CancellationToken,
    /// Until when this node may number batches as leader (its registry's gate).
    pub gate: Arc<crate::registry::replica::LeaseGate>,
    /// This process (tells two processes with the same `node_id` apart).
    pub(crate) instance: String,
    /// Another running process uses this `node_id`.
    id_conflict: AtomicBool,
}

impl Cluster {
    /// A handle for `cfg` (which must carry `redis_url`); connects lazily.
    /// `shared_secret` is held by every node of the cluster (the Genesys
    /// client secret): relayed requests are signed with a key derived from it.
    pub fn new(cfg: ClusterConfig, shared_secret: &str) -> Result<Arc<Cluster>, String> {
        let url = cfg
            .redis_url
            .clone()
            .ok_or("cluster.redis_url is not set")?;
        let client =
            redis::Client::open(url.as_str()).map_err(|e| format!("cluster.redis_url: {e}"))?;
        let ctl = ConnectionManager::new_lazy_with_config(client.clone(), conn_config(Some(2_000)))
            .map_err(|e| format!("cluster.redis_url: {e}"))?;
        let node = cfg.node();
        let keys = Keys::new(&cfg.key_prefix);
        Ok(Arc::new(Cluster {
            status: Mutex::new(ClusterStatus {
                node: node.clone(),
                role: Role::Follower,
                leader: None,
                redis: "connecting".into(),
            }),
            relay: relay::RelayState::new(shared_secret),
            watches: Mutex::default(),
            context_hub: Mutex::default(),
            remote_watches: Mutex::default(),
            cfg,
            node,
            keys,
            ctl,
            redis_client: client,
            leader: AtomicBool::new(false),
            stats: ClusterStats::default(),
            deposed: CancellationToken::new(),
            gate: Arc::default(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            id_conflict: AtomicBool::new(false),
        }))
    }

    /// This node leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Role, leader, Redis state.
    pub fn status(&self) -> ClusterStatus {
        self.status.lock().clone()
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Release);
        let mut s = self.status.lock();
        s.role = if leader { Role::Leader } else { Role::Follower };
        if leader {
            s.leader = Some(self.node.clone());
        }
    }

    pub(crate) fn set_known_leader(&self, leader: Option<String>) {
        self.status.lock().leader = leader;
    }

    pub(crate) fn redis_ok(&self) {
        let mut s = self.status.lock();
        if s.redis != "ok" {
            tracing::info!("cluster: Redis reachable");
            s.redis = "ok".into();
        }
    }

    pub(crate) fn redis_failed(&self, e: &redis::RedisError) {
        self.stats.redis_errors.fetch_add(1, Ordering::Relaxed);
        let text = format!("Redis unreachable: {e}");
        let mut s = self.status.lock();
        if s.redis != text {
            tracing::warn!(error = %e, "cluster: Redis command failed");
            s.redis = text;
        }
    }

    /// Another running process uses this node's `node_id`.
    pub fn id_conflict(&self) -> bool {
        self.id_conflict.load(Ordering::Acquire)
    }

    pub(crate) fn set_id_conflict(&self, taken: bool) {
        self.id_conflict.store(taken, Ordering::Release);
    }

    /// `Err(why)` when this node cannot serve as a follower right now
    /// (readiness): Redis unreachable, no leader, or its `node_id` in use
    /// by another process.
    pub fn check(&self) -> Result<(), String> {
        if self.id_conflict.load(Ordering::Acquire) {
            return Err(format!(
                "cluster: another running process uses node_id {:?}; give every node its own cluster.node_id",
                self.node
            ));
        }
        let s = self.status.lock();
        if s.redis != "ok" {
            return Err(format!("cluster: {}", s.redis));
        }
        if s.role == Role::Follower && s.leader.is_none() {
            return Err("cluster: no leader holds the lease yet".into());
        }
        Ok(())
    }
}

/// A connection manager setup: reconnects forever with backoff up to 2 s.
/// `response_ms`: `None` for connections that block (`XREAD BLOCK`,
/// `BLPOP`), whose callers bound the wait themselves.
pub(crate) fn conn_config(response_ms: Option<u64>) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(response_ms.map(std::time::Duration::from_millis))
        .set_max_delay(std::time::Duration::from_secs(2))
        .set_number_of_retries(3)
}
