//! The registry actor: applies [`UpstreamEvent`]s in order to the
//! [`Directory`], numbers the resulting changes in batches (`epoch`:`seq`,
//! one `seq` per batch), keeps the replay buffer, encodes each batch once and
//! fans it out to subscribed sessions with `try_send` (a full session mailbox
//! evicts that session as a slow consumer; the registry never waits).
//!
//! Messages (defined here, one handler each; the journal tap's
//! `JournalLink` / `JournalBatch` live in `tap.rs`): [`UpstreamEvent`] from the
//! upstream actor; [`Subscribe`] / [`Unsubscribe`] from sessions;
//! [`GetSnapshot`], [`GetAgent`], [`GetDefinitions`], [`GetReadiness`],
//! [`GetStats`] from the HTTP API. Outgoing: [`Deliver`] to sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::model::{
    Origin, PresenceDefinition, Queue, UpstreamEvent, UpstreamHealth, UpstreamState,
};

use super::agent::{AgentView, Change};
use super::config::RegistryConfig;
use super::encode::{snapshot_json, status_frame, Batch, Frame};
use super::filter::{Cursor, Filter};
use super::replica::{
    ApplyReplica, Checkpoint, Entry, LeaseGate, LeaseRenewed, LoadReplica, Meta, ReplicaGap,
    ReplicaOut, ReplicaSender, SetPublishing, SetTrouble,
};
use super::state::{Directory, DropCounters};
use super::tap::{JournalLink, Tap, TapStats};

/// A leader hands an unchanged upstream health (new event times only) to
/// the other nodes at most this often.
const HEALTH_SHARE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Registry → session: something to send to the client.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum Deliver {
    /// A numbered batch, already encoded for the session's filter.
    Delta {
        /// The batch (for coalescing when the client falls behind).
        batch: Arc<Batch>,
        /// The batch encoded for this session's filter.
        frame: Frame,
    },
    /// A `status` message (upstream health); not a resumable point.
    Status(Frame),
    /// An `interaction` message (an agent's interaction context, from the
    /// interaction hub); not a resumable point.
    Interaction(Frame),
    /// A `queues` message (live queue figures, from the queue hub, for
    /// clients that asked with `?queues=1`); not a resumable point.
    Queues(Frame),
    /// The gateway is shutting down: close with 1001 (SSE: `close` event).
    Shutdown,
}

/// Shutdown → registry: tell every session to close (WS 1001, SSE `close`
/// event then end of stream) and drop every subscription. Replies with the
/// number of sessions told. actix-web does not close long-lived
/// connections on stop (actix-web issue #3169), so call this before
/// stopping the HTTP server.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

/// Session → registry: start (or change) a subscription. Replies with the
/// first messages to send, taken at the same `seq` as the subscription
/// starts, so there is never a gap nor an overlap between them and the
/// first [`Deliver::Delta`].
#[derive(Message)]
#[rtype(result = "Subscribed")]
pub struct Subscribe {
    /// The session's id (a second `Subscribe` with the same id replaces the first).
    pub id: u64,
    /// The client's filter; `None` for everything.
    pub filter: Option<Arc<Filter>>,
    /// Resume point the client holds, if any.
    pub since: Option<Cursor>,
    /// Where batches go.
    pub recipient: Recipient<Deliver>,
    /// Set by the registry when it evicts the session (mailbox full).
    pub evicted: Arc<AtomicBool>,
}

/// How a subscription starts.
#[derive(Debug)]
pub enum Start {
    /// Replace everything with this snapshot (the resume, if asked, failed).
    Snapshot(Frame),
    /// The resume succeeded: these batches (possibly none) fill the gap.
    Replay(Vec<(Arc<Batch>, Frame)>),
}

/// Reply to [`Subscribe`].
#[derive(Debug, MessageResponse)]
pub struct Subscribed {
    /// The registry's epoch.
    pub epoch: u64,
    /// The seq the subscription starts after.
    pub seq: u64,
    /// Snapshot or replay.
    pub start: Start,
    /// The current `status` message.
    pub status: Frame,
}

/// Session → registry: stop sending to this session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session's id.
    pub id: u64,
}

/// HTTP → registry: the `GET /api/v1/agents` body for a filter.
#[derive(Message)]
#[rtype(result = "String")]
pub struct GetSnapshot {
    /// Filter; `None` for everything.
    pub filter: Option<Filter>,
}

/// One agent with the state before its last change.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// Current state.
    pub agent: Arc<AgentView>,
    /// State before the last change.
    pub previous: Option<Arc<AgentView>>,
}

/// HTTP → registry: one agent.
#[derive(Message)]
#[rtype(result = "Option<AgentRecord>")]
pub struct GetAgent {
    /// Agent id.
    pub id: String,
}

/// HTTP → registry: the ids of every agent in any of `divisions` (the
/// audit log of a division-scoped caller).
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct AgentIdsIn {
    /// Division ids.
    pub divisions: Vec<String>,
}

/// HTTP → registry: the org's presence definitions.
#[derive(Message)]
#[rtype(result = "Vec<PresenceDefinition>")]
pub struct GetDefinitions;

/// Queue hub / HTTP → registry: the queue list and every agent, from which
/// member figures are computed (`crate::queues` owns the arithmetic).
#[derive(Message)]
#[rtype(result = "QueueMembers")]
pub struct GetQueueMembers;

/// The answer to [`GetQueueMembers`].
#[derive(Debug, Clone, Default)]
pub struct QueueMembers {
    /// The queues, in the directory's order.
    pub queues: Vec<Queue>,
    /// Every agent of the map, by id.
    pub agents: Vec<Arc<AgentView>>,
}

/// Write path (and the route policy of write routes) → registry: the
/// agents a write names and the org's presence definitions, in one round
/// trip.
#[derive(Message)]
#[rtype(result = "WriteContext")]
pub struct GetWriteContext {
    /// The agents to read, in order; empty when the caller already has
    /// their records.
    pub ids: Vec<String>,
}

/// Reply to [`GetWriteContext`].
#[derive(Debug, Clone, Default, MessageResponse)]
pub struct WriteContext {
    /// One entry per asked id, in order; `None` for an unknown agent.
    pub agents: Vec<Option<AgentRecord>>,
    /// The org's presence definitions (empty before the first sync).
    pub definitions: Vec<PresenceDefinition>,
}

impl Handler<GetWriteContext> for Registry {
    type Result = WriteContext;

    fn handle(&mut self, m: GetWriteContext, _: &mut Self::Context) -> WriteContext {
        self.flush();
        WriteContext {
            agents: m
                .ids
                .iter()
                .map(|id| {
                    self.dir.get(id).map(|e| AgentRecord {
                        agent: e.view.clone(),
                        previous: e.previous.clone(),
                    })
                })
                .collect(),
            definitions: self.dir.definitions().to_vec(),
        }
    }
}

/// HTTP → registry: the division ids of the directory's agents, sorted;
/// `None` before the first complete sync (nothing is known yet).
#[derive(Message)]
#[rtype(result = "Option<Vec<String>>")]
pub struct GetDivisions;

/// Readiness as `/readyz` reports it.
#[derive(Debug, Clone, MessageResponse)]
pub struct Readiness {
    /// An `Initial` sync has been applied.
    pub synced: bool,
    /// The latest upstream health.
    pub health: UpstreamHealth,
}

/// HTTP → registry: readiness.
#[derive(Message)]
#[rtype(result = "Readiness")]
pub struct GetReadiness;

/// Registry counters (for `/metrics` and tests).
#[derive(Debug, Clone, Default, MessageResponse)]
pub struct RegistryStats {
    /// The epoch.
    pub epoch: u64,
    /// The last emitted batch.
    pub seq: u64,
    /// Agents in the directory.
    pub agents: usize,
    /// Subscribed sessions.
    pub subscribers: usize,
    /// Batches in the replay buffer.
    pub buffered: usize,
    /// Changes emitted.
    pub changes: u64,
    /// Events refused (stale, duplicate, unknown user).
    pub dropped: DropCounters,
    /// Sessions evicted because their mailbox was full.
    pub evicted_full: u64,
    /// Resumes served from the buffer.
    pub resumed: u64,
    /// Resumes that fell back to a snapshot.
    pub resume_failed: u64,
    /// Time to hand each batch to every session (`/metrics`).
    pub fanout: crate::telemetry::LocalHistogram,
}

/// HTTP → registry: counters.
#[derive(Message)]
#[rtype(result = "RegistryStats")]
pub struct GetStats;

/// One subscribed session.
struct Subscriber {
    /// The session's mailbox.
    recipient: Recipient<Deliver>,
    /// Its filter, shared with the session (and a cache key in `flush`).
    filter: Option<Arc<Filter>>,
    /// Raised when evicted.
    evicted: Arc<AtomicBool>,
}

/// The registry actor. Runs on one arbiter; every piece of presence state
/// in the gateway lives here.
pub struct Registry {
    /// Tuning.
    cfg: RegistryConfig,
    /// New per process start (milliseconds since the Unix epoch).
    epoch: u64,
    /// The last emitted batch's number (0: nothing emitted yet).
    seq: u64,
    /// The presence map.
    dir: Directory,
    /// Changes applied but not yet emitted, one per agent.
    pending: Vec<Change>,
    /// Index into `pending` by agent id.
    pending_index: HashMap<String, usize>,
    /// A flush is scheduled for the end of the batch window.
    flush_scheduled: bool,
    /// Recent batches, oldest first, contiguous in `seq`.
    ring: VecDeque<Arc<Batch>>,
    /// Sessions by id.
    subs: HashMap<u64, Subscriber>,
    /// Latest upstream health.
    health: UpstreamHealth,
    /// Latest encoded `status` message.
    status: Frame,
    /// The unfiltered stream snapshot at `seq`, if one was built since.
    snapshot_cache: Option<(u64, Frame)>,
    /// Counters.
    stats: RegistryStats,
    /// Hands every applied change to the journal (history, webhooks).
    tap: Tap,
    /// Where batches go for the other nodes of a cluster (`crate::cluster`).
    replica: Option<ReplicaSender>,
    /// This node leads: what it numbers goes to `replica`.
    publishing: bool,
    /// While leading, batches are numbered only while this lease holds.
    gate: Option<Arc<LeaseGate>>,
    /// When the upstream health was last handed to the publisher.
    health_shared: std::time::Instant,
    /// `replica` was full: send a checkpoint once there is room.
    replica_overflow: bool,
    /// Why this cluster node's state may be stale (Redis away, no leader,
    /// a lease that could not be renewed): shown over the upstream health.
    trouble: Option<String>,
}

impl Registry {
    /// A registry with an empty directory and a fresh epoch.
    pub fn new(cfg: RegistryConfig) -> Registry {
        let epoch = chrono::Utc::now().timestamp_millis().max(1) as u64;
        let health = UpstreamHealth::starting();
        Registry {
            status: status_frame(epoch, 0, false, &health),
            cfg,
            epoch,
            seq: 0,
            dir: Directory::default(),
            pending: Vec::new(),
            pending_index: HashMap::new(),
            flush_scheduled: false,
            ring: VecDeque::new(),
            subs: HashMap::new(),
            health,
            snapshot_cache: None,
            stats: RegistryStats::default(),
            tap: Tap::default(),
            replica: None,
            publishing: false,
            gate: None,
            health_shared: std::time::Instant::now(),
            replica_overflow: false,
            trouble: None,
        }
    }

    /// The upstream health as clients and `/readyz` see it: with a cluster
    /// trouble, `reconnecting` and the trouble as `detail`.
    fn shown_health(&self) -> UpstreamHealth {
        let mut h = self.health.clone();
        if let Some(t) = &self.trouble {
            if h.state != UpstreamState::Degraded {
                h.state = UpstreamState::Reconnecting;
            }
            h.detail = Some(t.clone());
        }
        h
    }

    /// The same registry as a cluster member: while it leads
    /// ([`SetPublishing`]), every batch, meta and health change goes to
    /// `replica` (bounded; on overflow a checkpoint follows).
    pub fn with_replica(mut self, replica: ReplicaSender, gate: Arc<LeaseGate>) -> Registry {
        self.replica = Some(replica);
        self.gate = Some(gate);
        self
    }

    /// Hands `out` to the publisher while leading, never waiting.
    fn replicate(&mut self, out: ReplicaOut) {
        if !self.publishing {
            return;
        }
        let Some(tx) = self.replica.clone() else {
            return;
        };
        if self.replica_overflow {
            // Entries were lost: the followers need the whole map first.
            let cp = ReplicaOut::Checkpoint(Box::new(self.checkpoint()));
            if tx.try_send(cp).is_err() {
                return;
            }
            self.replica_overflow = false;
            if matches!(out, ReplicaOut::Batch(_) | ReplicaOut::Meta(_)) {
                return; // the checkpoint holds it
            }
        }
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(out) {
            tracing::warn!("cluster publisher queue full; a checkpoint follows");
            self.replica_overflow = true;
        }
    }

    fn meta(&self) -> Meta {
        Meta {
            definitions: self.dir.definitions().to_vec(),
            queues: self.dir.queues().to_vec(),
            synced: self.dir.synced,
        }
    }

    /// The whole map at the current `seq` (call after `flush`).
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            epoch: self.epoch,
            seq: self.seq,
            agents: self.dir.sorted().into_iter().cloned().collect(),
            meta: self.meta(),
            health: self.health.clone(),
        }
    }

    /// The same registry, handing every applied change to `journal`
    /// (history, webhooks) from its first batch on.
    pub fn with_journal(mut self, journal: JournalLink) -> Registry {
        self.tap.set(journal);
        self
    }

    /// Queues one change for the current batch, folding it into an earlier
    /// change of the same agent (latest state wins, first `before` kept).
    fn push(&mut self, c: Change, ctx: &mut Context<Self>) {
        self.tap.record(&c);
        match self.pending_index.get(&c.id) {
            Some(&i) => {
                let p = &mut self.pending[i];
                p.after = c.after;
                p.origin = c.origin;
            }
            None => {
                self.pending_index.insert(c.id.clone(), self.pending.len());
                self.pending.push(c);
            }
        }
        if self.cfg.batch_window_ms == 0 {
            self.flush();
        } else if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(self.cfg.batch_window(), |act, _| {
                act.flush_scheduled = false;
                act.flush();
            });
        }
    }

    /// Drops batches beyond the buffer's size or age.
    fn trim_ring(&mut self) {
        let max_age = self.cfg.replay_max_age();
        while self.ring.len() > self.cfg.replay_batches
            || self.ring.front().is_some_and(|b| b.at.elapsed() > max_age)
        {
            self.ring.pop_front();
        }
    }

    /// Numbers, encodes, buffers and fans out the pending changes.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.publishing && self.gate.as_ref().is_some_and(|g| !g.valid()) {
            // The lease may have run out: hold the changes (see `LeaseGate`).
            return;
        }
        self.seq += 1;
        self.pending_index.clear();
        let changes = std::mem::take(&mut self.pending);
        self.tap.flush(self.epoch, self.seq);
        self.stats.changes += changes.len() as u64;
        let counts = self.dir.counts.take_patch();
        let batch = Arc::new(Batch::new(self.epoch, self.seq, changes, counts));
        self.replicate(ReplicaOut::Batch(batch.clone()));
        self.emit(batch);
    }

    /// Buffers a numbered batch and fans it out.
    fn emit(&mut self, batch: Arc<Batch>) {
        self.ring.push_back(batch.clone());
        self.trim_ring();
        self.snapshot_cache = None;

        // One encoding per distinct filter in this batch.
        let fanout_started = std::time::Instant::now();
        let mut per_filter: HashMap<Arc<Filter>, Option<Frame>> = HashMap::new();
        let mut gone = Vec::new();
        for (id, sub) in &self.subs {
            let frame = match &sub.filter {
                None => Some(batch.full.clone()),
                Some(f) => per_filter
                    .entry(f.clone())
                    .or_insert_with(|| batch.frame_for(Some(f)))
                    .clone(),
            };
            let Some(frame) = frame else { continue };
            let msg = Deliver::Delta {
                batch: batch.clone(),
                frame,
            };
            if Self::offer(sub, msg, &mut self.stats) {
                gone.push(*id);
            }
        }
        for id in gone {
            self.subs.remove(&id);
        }
        self.stats.fanout.observe(fanout_started.elapsed());
    }

    /// `try_send` to one session; true when it must be dropped (mailbox
    /// full: evicted as slow; closed: the session is gone).
    fn offer(sub: &Subscriber, msg: Deliver, stats: &mut RegistryStats) -> bool {
        match sub.recipient.try_send(msg) {
            Ok(()) => false,
            Err(SendError::Full(_)) => {
                sub.evicted.store(true, Ordering::Release);
                stats.evicted_full += 1;
                tracing::debug!("session mailbox full, evicted as slow consumer");
                true
            }
            Err(SendError::Closed(_)) => true,
        }
    }

    /// Re-encodes the status and sends it to every session.
    fn broadcast_status(&mut self) {
        self.flush();
        self.status = status_frame(self.epoch, self.seq, self.dir.synced, &self.shown_health());
        let mut gone = Vec::new();
        for (id, sub) in &self.subs {
            if Self::offer(sub, Deliver::Status(self.status.clone()), &mut self.stats) {
                gone.push(*id);
            }
        }
        for id in gone {
            self.subs.remove(&id);
        }
    }

    /// The stream snapshot for a filter, at the current `seq`.
    fn snapshot_frame(&mut self, filter: Option<&Filter>) -> Frame {
        if filter.is_none() {
            if let Some((seq, f)) = &self.snapshot_cache {
                if *seq == self.seq {
                    return f.clone();
                }
            }
        }
        let json = self.snapshot_body(filter, true);
        let frame = Frame::new("snapshot", Some((self.epoch, self.seq)), json);
        if filter.is_none() {
            self.snapshot_cache = Some((self.seq, frame.clone()));
        }
        frame
    }

    /// Snapshot JSON (stream form with `type`/`recovered`, or HTTP form).
    fn snapshot_body(&self, filter: Option<&Filter>, stream: bool) -> String {
        let agents: Vec<&AgentView> = self
            .dir
            .sorted()
            .into_iter()
            .map(|a| &**a)
            .filter(|a| Filter::admits(filter, a))
            .collect();
        snapshot_json(
            self.epoch,
            self.seq,
            self.dir.synced,
            agents,
            &self.dir.counts.full(),
            stream,
        )
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.cfg.mailbox_capacity);
        ctx.run_interval(self.cfg.status_interval(), |act, _| {
            act.trim_ring();
            act.broadcast_status();
            act.tap.drain();
        });
        tracing::info!(epoch = self.epoch, "registry started");
    }
}

impl Handler<UpstreamEvent> for Registry {
    /// Resolves at once, except for the gateway's own writes: those wait
    /// until the journal has committed them, because the caller is about
    /// to be told the write is done (the mailbox is not blocked meanwhile),
    /// and carry the agent's JSON after the change.
    type Result = Applied;

    fn handle(&mut self, ev: UpstreamEvent, ctx: &mut Self::Context) -> Applied {
        if let UpstreamEvent::Presence {
            user_id,
            origin: Origin::Write,
            ..
        } = &ev
        {
            let user_id = user_id.clone();
            self.apply(ev, ctx);
            self.flush();
            let agent = self
                .dir
                .get(&user_id)
                .and_then(|e| serde_json::to_string(&*e.view).ok());
            let committed = self.tap.barrier(self.epoch, self.seq);
            return Applied(Some(Box::pin(async move {
                committed.await;
                agent
            })));
        }
        self.apply(ev, ctx);
        Applied(None)
    }
}

/// Drain → registry: hand the journal every change it has not had yet and
/// answer once the journal committed them: `true` when nothing was left
/// behind, `false` while a backlog still waits for room in the journal's
/// mailbox (ask again). `true` at once without a journal.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FlushJournal;

impl Handler<FlushJournal> for Registry {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: FlushJournal, _: &mut Self::Context) -> Self::Result {
        self.flush();
        let wait = self.tap.barrier(self.epoch, self.seq);
        let done = self.tap.pending() == 0;
        Box::pin(async move {
            wait.await;
            done
        })
    }
}

/// Reply to an [`UpstreamEvent`]: `None` at once (the hot path allocates
/// and spawns nothing), or, for a write, the agent's JSON once the journal
/// has committed it.
pub struct Applied(Option<std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>>>>>);

impl actix::dev::MessageResponse<Registry, UpstreamEvent> for Applied {
    fn handle(
        self,
        _: &mut Context<Registry>,
        tx: Option<actix::dev::OneshotSender<Option<String>>>,
    ) {
        match self.0 {
            None => {
                if let Some(tx) = tx {
                    let _ = tx.send(None);
                }
            }
            Some(wait) => {
                actix::spawn(async move {
                    let agent = wait.await;
                    if let Some(tx) = tx {
                        let _ = tx.send(agent);
                    }
                });
            }
        }
    }
}

impl Registry {
    /// Applies one upstream event.
    fn apply(&mut self, ev: UpstreamEvent, ctx: &mut Context<Self>) {
        match ev {
            UpstreamEvent::Sync {
                reason,
                users,
                definitions,
                queues,
                read_at,
                membership_known,
            } => {
                let was_synced = self.dir.synced;
                let changes = self.dir.sync_with(
                    reason,
                    &users,
                    &definitions,
                    &queues,
                    read_at,
                    !membership_known,
                );
                tracing::info!(
                    ?reason,
                    users = users.len(),
                    changes = changes.len(),
                    "sync applied"
                );
                for c in changes {
                    self.push(c, ctx);
                }
                let meta = self.meta();
                self.replicate(ReplicaOut::Meta(meta));
                if !was_synced && self.dir.synced {
                    // `synced` is part of every snapshot and status.
                    self.snapshot_cache = None;
                    self.broadcast_status();
                }
            }
            UpstreamEvent::Sweep { users, read_at } => {
                let mut n = 0;
                for (id, p, r) in &users {
                    if let Some(c) = self.dir.rest_truth(id, p.as_ref(), r.as_ref(), read_at) {
                        n += 1;
                        self.push(c, ctx);
                    }
                }
                if n > 0 {
                    tracing::info!(read = users.len(), corrected = n, "sweep corrected agents");
                }
            }
            UpstreamEvent::Definitions(defs) => {
                for c in self.dir.set_definitions(&defs) {
                    self.push(c, ctx);
                }
                self.snapshot_cache = None;
                let meta = self.meta();
                self.replicate(ReplicaOut::Meta(meta));
            }
            UpstreamEvent::Presence {
                user_id,
                state,
                origin,
            } => {
                if let Some(c) = self.dir.presence(&user_id, &state, origin) {
                    self.push(c, ctx);
                }
            }
            UpstreamEvent::Routing {
                user_id,
                state,
                origin,
            } => {
                if let Some(c) = self.dir.routing(&user_id, &state, origin) {
                    self.push(c, ctx);
                }
            }
            UpstreamEvent::Queues { user_id, queue_ids } => {
                if let Some(c) = self.dir.queues_of(&user_id, &queue_ids) {
                    self.push(c, ctx);
                }
            }
            UpstreamEvent::QueueList { queues } => {
                self.dir.set_queues(queues);
                let meta = self.meta();
                self.replicate(ReplicaOut::Meta(meta));
            }
            UpstreamEvent::Health(mut h) => {
                if self.dir.synced && h.state == UpstreamState::Starting {
                    // A new cluster leader's upstream starting over a map
                    // it already holds: not "no sync yet".
                    h.state = UpstreamState::Reconnecting;
                    h.detail
                        .get_or_insert_with(|| "taking over the Genesys connection".into());
                }
                let changed = self.set_health(h);
                // Followers show the leader's freshness (last event and
                // frame times) too: sent on a change, else at most every
                // second.
                if changed || self.health_shared.elapsed() >= HEALTH_SHARE_EVERY {
                    self.health_shared = std::time::Instant::now();
                    self.replicate(ReplicaOut::Health(self.health.clone()));
                }
            }
        }
    }
}

impl Handler<SetPublishing> for Registry {
    type Result = MessageResult<SetPublishing>;

    fn handle(&mut self, m: SetPublishing, _: &mut Self::Context) -> Self::Result {
        self.flush();
        self.publishing = m.0;
        if m.0 {
            self.replica_overflow = true; // a checkpoint goes first
            self.replicate(ReplicaOut::Health(self.health.clone()));
        }
        MessageResult((self.epoch, self.seq))
    }
}

impl Handler<LeaseRenewed> for Registry {
    type Result = ();

    fn handle(&mut self, _: LeaseRenewed, _: &mut Self::Context) {
        self.flush();
    }
}

impl Handler<SetTrouble> for Registry {
    type Result = ();

    fn handle(&mut self, m: SetTrouble, _: &mut Self::Context) {
        if self.trouble != m.0 {
            self.trouble = m.0;
            self.broadcast_status();
        }
    }
}

impl Handler<ApplyReplica> for Registry {
    type Result = Result<(), ReplicaGap>;

    fn handle(&mut self, m: ApplyReplica, _: &mut Self::Context) -> Self::Result {
        let gap = ReplicaGap {
            epoch: self.epoch,
            seq: self.seq,
        };
        match m.0 {
            Entry::Batch { epoch, seq, .. } if epoch == self.epoch && seq <= self.seq => Ok(()),
            ref e @ Entry::Batch { epoch, seq, .. }
                if epoch == self.epoch && seq == self.seq + 1 =>
            {
                self.flush();
                // unwrap-free: `to_batch` is `Some` for a batch entry.
                let Some(batch) = e.to_batch() else {
                    return Ok(());
                };
                for c in &batch.changes {
                    self.dir.put_replica(&c.id, c.after.clone());
                }
                let _ = self.dir.counts.take_patch();
                self.seq = seq;
                self.stats.changes += batch.changes.len() as u64;
                self.emit(Arc::new(batch));
                Ok(())
            }
            Entry::Batch { .. } => Err(gap),
            Entry::Meta(meta) => {
                let was_synced = self.dir.synced;
                self.dir
                    .set_replica_meta(&meta.definitions, meta.queues, meta.synced);
                self.snapshot_cache = None;
                if was_synced != self.dir.synced {
                    self.broadcast_status();
                }
                Ok(())
            }
            Entry::Health { health } => {
                self.set_health(health);
                Ok(())
            }
            Entry::Checkpoint { epoch, seq } if epoch == self.epoch && seq == self.seq => Ok(()),
            Entry::Checkpoint { .. } => Err(gap),
        }
    }
}

impl Handler<LoadReplica> for Registry {
    type Result = usize;

    fn handle(&mut self, m: LoadReplica, _: &mut Self::Context) -> usize {
        self.flush();
        let moved = m.epoch != self.epoch || m.seq != self.seq;
        self.dir
            .set_replica_meta(&m.meta.definitions, m.meta.queues, m.meta.synced);
        if let Some(h) = m.health {
            self.health = h;
        }
        let mut closed = 0;
        if moved {
            self.dir.load_replica(m.agents);
            self.epoch = m.epoch;
            self.seq = m.seq;
            self.ring = m.ring.into_iter().map(Arc::new).collect();
            self.trim_ring();
            closed = self.subs.len();
            for (_, sub) in self.subs.drain() {
                // They resume at once, from the ring just loaded.
                let _ = sub.recipient.try_send(Deliver::Shutdown);
            }
            tracing::info!(
                epoch = self.epoch,
                seq = self.seq,
                agents = self.dir.len(),
                closed,
                "loaded the leader's snapshot"
            );
        }
        self.snapshot_cache = None;
        self.broadcast_status();
        closed
    }
}

impl Registry {
    /// Takes a new upstream health; every client hears of a change
    /// (state, detail or refused topics), and `true` says there was one.
    fn set_health(&mut self, h: UpstreamHealth) -> bool {
        let changed = h.state != self.health.state
            || h.detail != self.health.detail
            || h.refused_topics != self.health.refused_topics;
        self.health = h;
        if changed {
            self.broadcast_status();
        } else {
            self.status = status_frame(self.epoch, self.seq, self.dir.synced, &self.shown_health());
        }
        changed
    }
}

/// HTTP/metrics → registry: the journal tap's counters.
#[derive(Message)]
#[rtype(result = "TapStats")]
pub struct GetTapStats;

impl Handler<GetTapStats> for Registry {
    type Result = MessageResult<GetTapStats>;

    fn handle(&mut self, _: GetTapStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.tap.stats)
    }
}

impl Handler<Subscribe> for Registry {
    type Result = Subscribed;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> Subscribed {
        // Emit what is pending first, so the state is exactly `seq`.
        self.flush();
        self.trim_ring();
        let filter = msg.filter.as_deref();
        let resumable = msg.since.filter(|c| {
            c.epoch == self.epoch
                && c.seq <= self.seq
                && (c.seq == self.seq || self.ring.front().is_some_and(|b| b.seq <= c.seq + 1))
        });
        let start = match resumable {
            Some(c) => {
                self.stats.resumed += 1;
                Start::Replay(
                    self.ring
                        .iter()
                        .filter(|b| b.seq > c.seq)
                        .filter_map(|b| {
                            let f = match filter {
                                None => Some(b.full.clone()),
                                Some(f) => b.frame_for(Some(f)),
                            };
                            f.map(|f| (b.clone(), f))
                        })
                        .collect(),
                )
            }
            None => {
                if msg.since.is_some() {
                    self.stats.resume_failed += 1;
                }
                Start::Snapshot(self.snapshot_frame(filter))
            }
        };
        self.status = status_frame(self.epoch, self.seq, self.dir.synced, &self.shown_health());
        self.subs.insert(
            msg.id,
            Subscriber {
                recipient: msg.recipient,
                filter: msg.filter,
                evicted: msg.evicted,
            },
        );
        Subscribed {
            epoch: self.epoch,
            seq: self.seq,
            start,
            status: self.status.clone(),
        }
    }
}

impl Handler<Unsubscribe> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        self.subs.remove(&msg.id);
    }
}

impl Handler<GetSnapshot> for Registry {
    type Result = String;

    fn handle(&mut self, msg: GetSnapshot, _: &mut Self::Context) -> String {
        self.flush();
        self.snapshot_body(msg.filter.as_ref(), false)
    }
}

impl Handler<GetAgent> for Registry {
    type Result = Option<AgentRecord>;

    fn handle(&mut self, msg: GetAgent, _: &mut Self::Context) -> Option<AgentRecord> {
        self.flush();
        self.dir.get(&msg.id).map(|e| AgentRecord {
            agent: e.view.clone(),
            previous: e.previous.clone(),
        })
    }
}

impl Handler<AgentIdsIn> for Registry {
    type Result = Vec<String>;

    fn handle(&mut self, msg: AgentIdsIn, _: &mut Self::Context) -> Vec<String> {
        self.flush();
        self.dir
            .sorted()
            .into_iter()
            .filter(|a| msg.divisions.contains(&a.division.id))
            .map(|a| a.id.clone())
            .collect()
    }
}

impl Handler<GetQueueMembers> for Registry {
    type Result = MessageResult<GetQueueMembers>;

    /// The queue list and every agent of the map as it stands (changes
    /// still waiting for their batch included); the queue hub and
    /// `GET /api/v1/queues` compute member figures from it
    /// (`queues::agent_figures`), so the registry does no more than clone
    /// `Arc`s.
    fn handle(&mut self, _: GetQueueMembers, _: &mut Self::Context) -> Self::Result {
        MessageResult(QueueMembers {
            queues: self.dir.queues().to_vec(),
            agents: self.dir.sorted().into_iter().cloned().collect(),
        })
    }
}

impl Handler<GetDefinitions> for Registry {
    type Result = Vec<PresenceDefinition>;

    fn handle(&mut self, _: GetDefinitions, _: &mut Self::Context) -> Vec<PresenceDefinition> {
        self.dir.definitions().to_vec()
    }
}

impl Handler<GetDivisions> for Registry {
    type Result = Option<Vec<String>>;

    fn handle(&mut self, _: GetDivisions, _: &mut Self::Context) -> Option<Vec<String>> {
        if !self.dir.synced {
            return None;
        }
        let mut ids: Vec<String> = self
            .dir
            .sorted()
            .into_iter()
            .map(|a| a.division.id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        Some(ids)
    }
}

impl Handler<GetReadiness> for Registry {
    type Result = Readiness;

    fn handle(&mut self, _: GetReadiness, _: &mut Self::Context) -> Readiness {
        Readiness {
            synced: self.dir.synced,
            health: self.shown_health(),
        }
    }
}

impl Handler<CloseAll> for Registry {
    type Result = usize;

    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) -> usize {
        self.flush();
        let n = self.subs.len();
        for (_, sub) in self.subs.drain() {
            // A full mailbox means the session is evicted anyway.
            let _ = sub.recipient.try_send(Deliver::Shutdown);
        }
        n
    }
}

impl Handler<GetStats> for Registry {
    type Result = RegistryStats;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> RegistryStats {
        self.flush();
        RegistryStats {
            epoch: self.epoch,
            seq: self.seq,
            agents: self.dir.len(),
            subscribers: self.subs.len(),
            buffered: self.ring.len(),
            dropped: self.dir.dropped,
            ..self.stats.clone()
        }
    }
}

impl Readiness {
    /// `Ok` when ready; otherwise why not.
    pub fn check(&self) -> Result<(), String> {
        if !self.synced {
            return Err("waiting for the initial sync from Genesys Cloud".into());
        }
        if self.health.state != UpstreamState::Connected {
            return Err(format!(
                "upstream is {:?}{}",
                self.health.state,
                self.health
                    .detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// Drain → registry: tell up to `max` sessions to close (WS 1001, SSE
/// `close`), so a drain can spread closes over a window. Replies with how
/// many sessions are still subscribed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseSome {
    /// At most this many sessions now.
    pub max: usize,
}

impl Handler<CloseSome> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: CloseSome, _: &mut Self::Context) -> usize {
        self.flush();
        let ids: Vec<u64> = self.subs.keys().copied().take(msg.max).collect();
        for id in ids {
            if let Some(sub) = self.subs.remove(&id) {
                // A full mailbox means the session is evicted anyway.
                let _ = sub.recipient.try_send(Deliver::Shutdown);
            }
        }
        self.subs.len()
    }
}

/// The registry's timing under paused tokio time (no waiting): changes in
/// one batch window go out as one numbered delta, and the replay buffer
/// ages out so that a resume older than `replay_max_age_secs` gets a
/// snapshot.
#[cfg(test)]
mod paused_time {
    use std::sync::Mutex;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::{
        Division, PresenceDefinition, PresenceState, SyncReason, SystemPresence, UserRecord,
    };

    /// Records `(seq, changes)` of every delta it is handed.
    struct Probe(Arc<Mutex<Vec<(u64, usize)>>>);
    impl Actor for Probe {
        type Context = Context<Self>;
    }
    impl Handler<Deliver> for Probe {
        type Result = ();
        fn handle(&mut self, d: Deliver, _: &mut Context<Self>) {
            if let Deliver::Delta { batch, .. } = d {
                self.0
                    .lock()
                    .unwrap()
                    .push((batch.seq, batch.changes.len()));
            }
        }
    }

    fn presence(sp: SystemPresence, secs: i64) -> PresenceState {
        PresenceState {
            definition_id: format!("def-{sp:?}"),
            system_presence: sp,
            message: String::new(),
            modified: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            arrival: false,
        }
    }

    fn user(id: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            name: id.into(),
            division: Division {
                id: "d".into(),
                name: "d".into(),
            },
            queue_ids: Vec::new(),
            presence: Some(presence(SystemPresence::Available, 0)),
            routing: None,
        }
    }

    /// Lets every ready actor run (paused time does not move).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn one_delta_per_window_and_the_replay_buffer_ages() {
        let rt = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
        };
        actix::System::with_tokio_rt(rt).block_on(async {
            let cfg = RegistryConfig {
                batch_window_ms: 50,
                replay_max_age_secs: 60,
                status_interval_secs: 1,
                ..RegistryConfig::default()
            };
            let registry = Registry::new(cfg).start();
            let definitions = [SystemPresence::Available, SystemPresence::Busy]
                .map(|sp| PresenceDefinition {
                    id: format!("def-{sp:?}"),
                    system_presence: sp,
                    label: format!("{sp:?}"),
                    language_labels: Default::default(),
                    primary: true,
                    deactivated: false,
                })
                .to_vec();
            registry
                .send(UpstreamEvent::Sync {
                    reason: SyncReason::Initial,
                    users: vec![user("a"), user("b")],
                    definitions,
                    queues: Vec::new(),
                    read_at: Utc::now(),
                    membership_known: true,
                })
                .await
                .unwrap();
            tokio::time::advance(Duration::from_millis(60)).await;
            settle().await;
            let seen = Arc::new(Mutex::new(Vec::new()));
            let subscribed = registry
                .send(Subscribe {
                    id: 1,
                    filter: None,
                    since: None,
                    recipient: Probe(seen.clone()).start().recipient(),
                    evicted: Arc::default(),
                })
                .await
                .unwrap();
            let before = Cursor {
                epoch: subscribed.epoch,
                seq: subscribed.seq,
            };

            // Two agents change within one window: nothing before it ends,
            // one delta with both after.
            for id in ["a", "b"] {
                registry
                    .send(UpstreamEvent::Presence {
                        user_id: id.into(),
                        state: presence(SystemPresence::Busy, 10),
                        origin: Origin::Event,
                    })
                    .await
                    .unwrap();
            }
            tokio::time::advance(Duration::from_millis(40)).await;
            settle().await;
            assert!(
                seen.lock().unwrap().is_empty(),
                "sent before the window ended"
            );
            tokio::time::advance(Duration::from_millis(20)).await;
            settle().await;
            assert_eq!(*seen.lock().unwrap(), [(before.seq + 1, 2)]);

            let resume = |since| Subscribe {
                id: 2,
                filter: None,
                since: Some(since),
                recipient: Probe(Arc::default()).start().recipient(),
                evicted: Arc::default(),
            };
            // Within the replay age the gap is replayed...
            let r = registry.send(resume(before)).await.unwrap();
            assert!(
                matches!(&r.start, Start::Replay(b) if b.len() == 1),
                "{:?}",
                r.start
            );
            // ...past it (the status tick trims the buffer), a snapshot.
            tokio::time::advance(Duration::from_secs(61)).await;
            settle().await;
            let r = registry.send(resume(before)).await.unwrap();
            assert!(matches!(r.start, Start::Snapshot(_)), "{:?}", r.start);
        });
    }
}
