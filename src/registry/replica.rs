//! What the registry hands to, and takes from, other gateway nodes when
//! several share one Genesys connection (`crate::cluster`, docs/scaling.md).
//!
//! The leader's registry emits [`ReplicaOut`] for every numbered batch,
//! every change of the definitions, queue list or sync flag, every upstream
//! health change, and a [`Checkpoint`] of the whole map when asked
//! ([`SetPublishing`]) or after its outgoing queue overflowed. Followers
//! apply the same entries ([`ApplyReplica`]) or load a checkpoint
//! ([`LoadReplica`]) and number nothing themselves, so every node sends its
//! clients the same `epoch`, `seq` and bytes.
//!
//! The entry's JSON ([`Entry`]) is what travels through the Redis Stream:
//! `{"k":"batch","epoch":E,"seq":S,"changes":[{"id","before","after","origin"}],"counts":{…}}`,
//! `{"k":"meta","definitions":[…],"queues":[…],"synced":bool}`,
//! `{"k":"health","health":{…}}` and `{"k":"checkpoint","epoch":E,"seq":S}`.

use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::{Origin, PresenceDefinition, Queue, UpstreamHealth};
use crate::protocol::agent::{AgentView, Change};
use crate::protocol::counts::CountsJson;
use crate::protocol::encode::Batch;

/// Leader's registry → the cluster publisher (bounded queue; on overflow
/// the registry sends a [`Checkpoint`] once there is room again).
#[derive(Debug)]
pub enum ReplicaOut {
    /// A numbered batch, as the leader's clients got it.
    Batch(Arc<Batch>),
    /// Definitions, queue list or the sync flag changed.
    Meta(Meta),
    /// The upstream health changed.
    Health(UpstreamHealth),
    /// The whole map (publishing started, or entries were lost).
    Checkpoint(Box<Checkpoint>),
}

/// The org-level state besides the agents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// Presence definitions, as Genesys listed them.
    pub definitions: Vec<PresenceDefinition>,
    /// Queues (ids, names, divisions).
    pub queues: Vec<Queue>,
    /// An initial sync from Genesys is in.
    pub synced: bool,
}

/// The whole map at one `epoch`:`seq`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub epoch: u64,
    pub seq: u64,
    /// Every agent, in id order.
    pub agents: Vec<Arc<AgentView>>,
    pub meta: Meta,
    pub health: UpstreamHealth,
}

/// One change as it travels between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeRec {
    pub id: String,
    pub before: Option<AgentView>,
    pub after: Option<AgentView>,
    pub origin: Origin,
}

/// One entry of the replicated stream (see the module docs for the JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum Entry {
    /// A numbered batch.
    Batch {
        epoch: u64,
        seq: u64,
        changes: Vec<ChangeRec>,
        counts: CountsJson,
    },
    /// Definitions, queues, sync flag.
    Meta(Meta),
    /// Upstream health (as the leader sees Genesys).
    Health { health: UpstreamHealth },
    /// The snapshot beside the stream was rewritten at this point: a node
    /// that is not exactly here reloads it.
    Checkpoint { epoch: u64, seq: u64 },
}

/// The borrowed twin of [`Entry::Batch`], to encode a batch without
/// cloning its agents.
#[derive(Serialize)]
struct BatchRef<'a> {
    k: &'static str,
    epoch: u64,
    seq: u64,
    changes: Vec<ChangeRef<'a>>,
    counts: &'a CountsJson,
}

#[derive(Serialize)]
struct ChangeRef<'a> {
    id: &'a str,
    before: Option<&'a AgentView>,
    after: Option<&'a AgentView>,
    origin: Origin,
}

impl Entry {
    /// The JSON of a batch entry.
    pub fn batch_json(b: &Batch) -> String {
        let r = BatchRef {
            k: "batch",
            epoch: b.epoch,
            seq: b.seq,
            changes: b
                .changes
                .iter()
                .map(|c| ChangeRef {
                    id: &c.id,
                    before: c.before.as_deref(),
                    after: c.after.as_deref(),
                    origin: c.origin,
                })
                .collect(),
            counts: &b.counts,
        };
        // unwrap: plain structs of strings, numbers and maps serialise.
        serde_json::to_string(&r).unwrap()
    }

    /// The JSON of any other entry.
    pub fn json(&self) -> String {
        // unwrap: plain structs of strings, numbers and maps serialise.
        serde_json::to_string(self).unwrap()
    }

    /// Rebuilds a batch entry as the registry keeps it (`None` for other kinds).
    pub fn to_batch(&self) -> Option<Batch> {
        match self {
            Entry::Batch {
                epoch,
                seq,
                changes,
                counts,
            } => Some(Batch::new(
                *epoch,
                *seq,
                changes.iter().map(ChangeRec::to_change).collect(),
                counts.clone(),
            )),
            _ => None,
        }
    }
}

impl ChangeRec {
    fn to_change(&self) -> Change {
        Change {
            id: self.id.clone(),
            before: self.before.clone().map(Arc::new),
            after: self.after.clone().map(Arc::new),
            origin: self.origin,
        }
    }
}

/// Cluster → registry: start (`true`) or stop publishing. Starting flushes
/// and sends a [`Checkpoint`] first. Replies with the `epoch`:`seq` the
/// registry stands at.
#[derive(Message)]
#[rtype(result = "(u64, u64)")]
pub struct SetPublishing(pub bool);

/// Cluster → registry: why this node's state may be stale (`None`: it is
/// not). Shown to clients as a `reconnecting` status with this `detail`,
/// and by `/readyz` (503), over the upstream health.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetTrouble(pub Option<String>);

/// Cluster → follower's registry: apply one entry of the stream.
/// `Err(ReplicaGap)` when it does not follow on from the registry's
/// `epoch`:`seq` (the caller then loads the snapshot).
#[derive(Message)]
#[rtype(result = "Result<(), ReplicaGap>")]
pub struct ApplyReplica(pub Entry);

/// The entry does not follow on: load a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaGap {
    /// Where the registry stands.
    pub epoch: u64,
    pub seq: u64,
}

/// Cluster → follower's registry: replace everything with the leader's
/// snapshot and the batches before it (the replay ring, oldest first,
/// ending at the snapshot's `seq`). When this moves the registry anywhere
/// but where it stood, its stream clients are closed (WS 1001, SSE
/// `close`) and resume at once from the new ring. Replies with the number
/// of clients closed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LoadReplica {
    pub epoch: u64,
    pub seq: u64,
    pub agents: Vec<AgentView>,
    pub meta: Meta,
    pub health: Option<UpstreamHealth>,
    pub ring: Vec<Batch>,
}

/// Until when a cluster leader may number batches: the time its last
/// lease renewal was *sent* plus nine tenths of the lease. A leader whose
/// lease may have run out (paused past it, or Redis away) holds its
/// pending changes instead of numbering them, so no client of it ever
/// gets a `seq` the cluster's next leader numbers differently; it numbers
/// them once the lease is renewed ([`LeaseRenewed`]), or is deposed.
#[derive(Debug)]
pub struct LeaseGate {
    base: std::time::Instant,
    /// Milliseconds after `base`; 0: not valid.
    until_ms: std::sync::atomic::AtomicU64,
}

impl Default for LeaseGate {
    fn default() -> Self {
        LeaseGate {
            base: std::time::Instant::now(),
            until_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl LeaseGate {
    /// The lease holds until `t`.
    pub fn extend_to(&self, t: std::time::Instant) {
        let ms = t.saturating_duration_since(self.base).as_millis() as u64;
        self.until_ms
            .store(ms.max(1), std::sync::atomic::Ordering::Release);
    }

    /// The lease may still be held now.
    pub fn valid(&self) -> bool {
        let now = self.base.elapsed().as_millis() as u64;
        now < self.until_ms.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Cluster → leader's registry: the lease was renewed; number what was held.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaseRenewed;

/// Where the registry sends [`ReplicaOut`] (the cluster publisher's queue).
pub type ReplicaSender = tokio::sync::mpsc::Sender<ReplicaOut>;
