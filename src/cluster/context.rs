//! Interaction context across the nodes of a cluster.
//!
//! Only the leader subscribes conversation topics at Genesys, once per
//! agent whichever nodes the watchers are on:
//!
//! - each follower keeps the agents its own clients watch in
//!   `<prefix>:watching` (field: node id; value:
//!   `{"agents":[…],"until_ms":…}`, refreshed every third of the lease, so
//!   a dead node's watches lapse);
//! - the leader reads that hash every third of the lease and registers each
//!   live node as one watcher of its agents with its own interaction hub
//!   (reference counting and the release grace period stay the hub's);
//! - the leader's hub hands every agent's interactions, as they change, to
//!   [`publish_loop`]: `PUBLISH <prefix>:interactions` and `HSET
//!   <prefix>:interactions` (the latest, for a watch that starts later);
//! - followers apply them to their own hub as a `ConversationsReset`, so
//!   their clients get the same `interaction` messages.
//!
//! With `interactions.redact_customer` the leader strips the customer's
//! name and ANI before anything reaches Redis.
//!
//! Queue observations (customers waiting, longest wait) are read by the
//! leader's queue hub only; each round is `SET <prefix>:observations` and
//! `PUBLISH`ed there, and followers' hubs take it as their own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::genesys::queue_observations::ObservationRound;
use crate::model::{ConversationsReset, Customer, Interaction};

/// Registers a remote node's watched agents with the leader's hub
/// (an empty list: none any more).
pub type RemoteWatches = Box<dyn Fn(&str, Vec<String>) + Send + Sync>;

/// What `app::start` hands the cluster for interaction context.
pub struct ContextParts {
    /// This node's interaction hub (a follower applies the leader's context to it).
    pub hub: Recipient<ConversationsReset>,
    /// What this node's hub publishes (used while leading).
    pub published: mpsc::Receiver<ConversationsReset>,
    /// Called by the leader when a node's watches change.
    pub remote_watches: RemoteWatches,
    /// Strip customer names and ANIs before they reach Redis.
    pub redact_customer: bool,
    /// This node's queue hub (a follower takes the leader's rounds).
    pub queues: Recipient<ObservationRound>,
    /// What this node's queue hub shares (used while leading).
    pub rounds: mpsc::Receiver<ObservationRound>,
}

/// A follower's entry in `<prefix>:watching`.
#[derive(Debug, Serialize, Deserialize)]
struct Watching {
    agents: Vec<String>,
    until_ms: i64,
}

/// One agent's interactions as they travel.
#[derive(Debug, Serialize, Deserialize)]
struct Context {
    user_id: String,
    interactions: Vec<Interaction>,
}

/// The agents this node's clients watch (followers report them).
#[derive(Default)]
pub(crate) struct LocalWatches {
    pub agents: BTreeSet<String>,
    /// Changed since last reported.
    pub dirty: bool,
    /// Watched since the last report (their current context is fetched).
    pub added: Vec<String>,
}

impl Cluster {
    /// A follower's hub watches (or releases) `user_id`: reported to the
    /// leader, which subscribes the agent's conversations once for all.
    pub fn watch_remotely(&self, user_id: &str, watch: bool) {
        let mut w = self.watches.lock();
        let changed = if watch {
            w.agents.insert(user_id.to_string())
        } else {
            w.agents.remove(user_id)
        };
        if changed {
            w.dirty = true;
            if watch {
                w.added.push(user_id.to_string());
            }
        }
    }

    /// The agents this node's own clients watch.
    pub fn local_watches(&self) -> Vec<String> {
        self.watches.lock().agents.iter().cloned().collect()
    }
}

/// Starts the context loops.
pub(crate) fn start(cluster: Arc<Cluster>, parts: ContextParts, stop: CancellationToken) {
    let ContextParts {
        hub,
        published,
        remote_watches,
        redact_customer,
        queues,
        rounds,
    } = parts;
    *cluster.context_hub.lock() = Some(hub.clone());
    *cluster.remote_watches.lock() = Some(remote_watches);
    actix::spawn(publish_loop(
        cluster.clone(),
        published,
        rounds,
        redact_customer,
        stop.clone(),
    ));
    actix::spawn(follow_loop(cluster, hub, queues, stop));
}

/// Leader: publishes what its hub hands over.
async fn publish_loop(
    cluster: Arc<Cluster>,
    mut rx: mpsc::Receiver<ConversationsReset>,
    mut rounds: mpsc::Receiver<ObservationRound>,
    redact: bool,
    stop: CancellationToken,
) {
    let channel = cluster.keys.interactions.clone();
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return,
            r = rounds.recv() => {
                let Some(r) = r else { return };
                if cluster.is_leader() {
                    publish_round(&cluster, &r).await;
                }
                continue;
            }
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        if !cluster.is_leader() {
            continue; // a follower's hub replaying the leader's context
        }
        let mut interactions = m.interactions;
        if redact {
            for i in &mut interactions {
                i.customer = Customer::default();
            }
        }
        let c = Context {
            user_id: m.user_id,
            interactions,
        };
        // unwrap: plain structs serialise.
        let json = serde_json::to_string(&c).unwrap();
        let mut ctl = cluster.ctl.clone();
        cluster.stats.op(2);
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("HSET")
            .arg(&channel)
            .arg(&c.user_id)
            .arg(&json)
            .ignore()
            .cmd("PUBLISH")
            .arg(&channel)
            .arg(&json)
            .ignore()
            .query_async(&mut ctl)
            .await;
        if let Err(e) = r {
            cluster.redis_failed(&e);
        }
    }
}

/// Leader: shares one queue observation round.
async fn publish_round(cluster: &Cluster, r: &ObservationRound) {
    // unwrap: plain structs serialise.
    let json = serde_json::to_string(r).unwrap();
    let mut ctl = cluster.ctl.clone();
    cluster.stats.op(2);
    let sent: redis::RedisResult<()> = redis::pipe()
        .cmd("SET")
        .arg(&cluster.keys.observations)
        .arg(&json)
        .ignore()
        .cmd("PUBLISH")
        .arg(&cluster.keys.observations)
        .arg(&json)
        .ignore()
        .query_async(&mut ctl)
        .await;
    if let Err(e) = sent {
        cluster.redis_failed(&e);
    }
}

/// Follower: applies the leader's context and queue observations as they
/// are published; after any reconnect, re-reads the context of every agent
/// its clients watch and the latest observations.
async fn follow_loop(
    cluster: Arc<Cluster>,
    hub: Recipient<ConversationsReset>,
    queues: Recipient<ObservationRound>,
    stop: CancellationToken,
) {
    let channel = cluster.keys.interactions.clone();
    let rounds = cluster.keys.observations.clone();
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() && !cluster.deposed.is_cancelled() {
        let subscribed = async {
            let mut ps = cluster.redis_client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            ps.subscribe(&rounds).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let mut ps = match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(ps)) => ps,
            _ => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // Anything published while not subscribed is read again.
        let watched = cluster.local_watches();
        fetch(&cluster, &hub, watched).await;
        if !cluster.is_leader() {
            let mut ctl = cluster.ctl.clone();
            let last: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(&rounds).query_async(&mut ctl).await;
            if let Some(r) = last
                .ok()
                .flatten()
                .and_then(|j| serde_json::from_str::<ObservationRound>(&j).ok())
            {
                let _ = queues.send(r).await;
            }
        }
        let mut messages = ps.on_message();
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(msg) = msg else { break }; // connection lost: resubscribe
            if cluster.is_leader() {
                continue;
            }
            let Ok(json) = msg.get_payload::<String>() else {
                continue;
            };
            if msg.get_channel_name() == rounds {
                if let Ok(r) = serde_json::from_str::<ObservationRound>(&json) {
                    let _ = queues.send(r).await;
                }
                continue;
            }
            match serde_json::from_str::<Context>(&json) {
                Ok(c) => {
                    // Waits for room in the hub's mailbox (the reader
                    // falls behind, not the hub's bound).
                    let _ = hub
                        .send(ConversationsReset {
                            user_id: c.user_id,
                            interactions: c.interactions,
                        })
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: unreadable interaction context skipped")
                }
            }
        }
    }
}

/// Reads the leader's latest context of `agents` into this node's hub.
pub(crate) async fn fetch(
    cluster: &Cluster,
    hub: &Recipient<ConversationsReset>,
    agents: Vec<String>,
) {
    if agents.is_empty() || cluster.is_leader() {
        return;
    }
    let mut ctl = cluster.ctl.clone();
    cluster.stats.op(1);
    let got: redis::RedisResult<Vec<Option<String>>> = redis::cmd("HMGET")
        .arg(&cluster.keys.interactions)
        .arg(&agents)
        .query_async(&mut ctl)
        .await;
    let Ok(got) = got else { return };
    for json in got.into_iter().flatten() {
        if let Ok(c) = serde_json::from_str::<Context>(&json) {
            let _ = hub
                .send(ConversationsReset {
                    user_id: c.user_id,
                    interactions: c.interactions,
                })
                .await;
        }
    }
}

/// Follower step: reports this node's watches (when changed, and every
/// third of the lease so they do not lapse) and fetches the context of
/// agents watched since the last report.
pub(crate) async fn report(cluster: &Cluster, refresh: bool) -> redis::RedisResult<()> {
    let (agents, added, dirty) = {
        let mut w = cluster.watches.lock();
        let dirty = std::mem::take(&mut w.dirty);
        (
            w.agents.iter().cloned().collect::<Vec<_>>(),
            std::mem::take(&mut w.added),
            dirty,
        )
    };
    if !dirty && !refresh {
        return Ok(());
    }
    let mut ctl = cluster.ctl.clone();
    let until_ms = chrono::Utc::now().timestamp_millis() + 3 * cluster.cfg.lease_ms as i64;
    cluster.stats.op(1);
    let r: redis::RedisResult<()> = if agents.is_empty() {
        redis::cmd("HDEL")
            .arg(&cluster.keys.watching)
            .arg(&cluster.node)
            .query_async(&mut ctl)
            .await
    } else {
        // unwrap: plain structs serialise.
        let json = serde_json::to_string(&Watching { agents, until_ms }).unwrap();
        redis::cmd("HSET")
            .arg(&cluster.keys.watching)
            .arg(&cluster.node)
            .arg(json)
            .query_async(&mut ctl)
            .await
    };
    if let Err(e) = r {
        // Reported again next time.
        cluster.watches.lock().dirty = true;
        return Err(e);
    }
    let hub = cluster.context_hub.lock().clone();
    if let (false, Some(hub)) = (added.is_empty(), hub) {
        fetch(cluster, &hub, added).await;
    }
    Ok(())
}

/// Leader step: reads every node's watches and tells the hub what changed.
pub(crate) async fn gather(
    cluster: &Cluster,
    known: &mut BTreeMap<String, Vec<String>>,
) -> redis::RedisResult<()> {
    let mut ctl = cluster.ctl.clone();
    cluster.stats.op(1);
    let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&cluster.keys.watching)
        .query_async(&mut ctl)
        .await?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut live: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (node, json) in all {
        if node == cluster.node {
            continue;
        }
        if let Ok(w) = serde_json::from_str::<Watching>(&json) {
            if w.until_ms >= now && !w.agents.is_empty() {
                live.insert(node, w.agents);
            }
        }
    }
    let guard = cluster.remote_watches.lock();
    let Some(tell) = guard.as_ref() else {
        return Ok(());
    };
    for (node, agents) in &live {
        if known.get(node) != Some(agents) {
            tell(node, agents.clone());
        }
    }
    for node in known.keys() {
        if !live.contains_key(node) {
            tell(node, Vec::new());
        }
    }
    *known = live;
    Ok(())
}
