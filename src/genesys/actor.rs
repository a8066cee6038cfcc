//! The Upstream actor: one shared, rate-limited, self-healing connection to
//! Genesys Cloud, as an explicit state machine per channel shard.
//!
//! ```text
//! start ─▶ read directory ─▶ Sync{Initial} ─▶ plan topics ─▶ open shards ─▶ reconcile ─▶ Connected
//!                                                              ▲    │ drop / evicted / stall
//!                                       backoff (jittered) ────┘    ▼
//!                                                     Down (attempt n) ─▶ reopen ─▶ reconcile
//! ```
//!
//! Each shard is one channel with ≤ 1 000 topics. A shard is `Down`,
//! `Opening` or `Up`; its socket reader runs as a future of this actor and
//! reports how it ended ([`DropCause`]). Any gap (reconnect, eviction,
//! stall) leads to one coalesced reconciliation: the directory is re-read
//! through REST and the registry emits only the differences. The actor
//! never touches clients; it sends [`UpstreamEvent`]s to the registry.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use super::channel::{self, ChannelInfo, DropCause, Reader, SocketClosing};
use super::directory;
use super::rest::{backoff, Lane, Rest, RestError};
use super::topics::{self, Plan};
use super::{GenesysConfig, UpstreamConfig};
use crate::model::{
    ConversationSeen, ConversationsReset, PresenceDefinition, Queue, SyncReason, UpstreamEvent,
    UpstreamHealth, UpstreamState, UserRecord,
};

/// Counters shared with `/metrics` and the health record (any thread).
#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub rest_calls: AtomicU64,
    pub rate_limited: AtomicU64,
    pub reauths: AtomicU64,
    pub token_fetches: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub handovers: AtomicU64,
    pub reconciles: AtomicU64,
    pub malformed_frames: AtomicU64,
    pub events: AtomicU64,
    /// Topics Genesys refuses to subscribe right now (dropped from their channel).
    pub refused_topics: AtomicU64,
    /// Channel re-plans after Genesys refused a channel's topic count.
    pub replans: AtomicU64,
    /// Channel retries held back because their cause had used its share of the budget.
    pub retries_held: AtomicU64,
    /// Anti-entropy sweep steps done (each re-reads up to 100 agents).
    pub sweep_steps: AtomicU64,
    /// Full sweeps over every agent completed.
    pub sweeps: AtomicU64,
    /// Definition re-reads after an event named an unknown definition.
    pub definition_rereads: AtomicU64,
    /// Agents re-read because a frame about them could not be used.
    pub agent_rereads: AtomicU64,
    /// Unix ms of the last frame of any kind; 0 = never.
    pub last_frame_ms: AtomicI64,
    /// Unix ms of the last presence/routing event; 0 = never.
    pub last_event_ms: AtomicI64,
}

impl UpstreamStats {
    pub fn mark_frame(&self) {
        self.last_frame_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub fn mark_event(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
        self.last_event_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    fn time(v: &AtomicI64) -> Option<DateTime<Utc>> {
        match v.load(Ordering::Relaxed) {
            0 => None,
            ms => Utc.timestamp_millis_opt(ms).single(),
        }
    }
}

/// One channel's place in the state machine.
#[derive(Debug)]
enum ShardState {
    /// Not connected; the next attempt is scheduled (`Shard::attempts` counts them).
    Down,
    /// Creating/checking the channel, subscribing, connecting.
    Opening,
    /// Socket connected and subscribed.
    Up,
}

struct Shard {
    users: Vec<String>,
    channel: Option<ChannelInfo>,
    state: ShardState,
    /// Bumped on every (re)open and handover; stale completions are ignored.
    generation: u64,
    /// The subscribed topic list differs from `users` (re-PUT needed).
    dirty: bool,
    /// Stops the current socket reader.
    reader_stop: Option<CancellationToken>,
    /// When the subscriptions (and the channel's life) were last renewed.
    renewed_at: Instant,
    /// Conversation topics of watched agents carried by this channel.
    extra: Vec<String>,
    /// Consecutive failed opens (or drops soon after opening); grows the backoff.
    attempts: u32,
    /// When the current socket came up.
    up_since: Option<Instant>,
    /// When the recent opens started (the last minute): retries of this
    /// shard may spend at most `retry_share` of the REST budget.
    opens: std::collections::VecDeque<Instant>,
}

/// The upstream actor.
pub struct Upstream {
    genesys: GenesysConfig,
    cfg: UpstreamConfig,
    rest: Option<Rest>,
    registry: Recipient<UpstreamEvent>,
    stats: Arc<UpstreamStats>,
    plan: Plan,
    shards: Vec<Shard>,
    /// Definitions and queues from the last read, re-sent with every sync.
    definitions: Vec<PresenceDefinition>,
    queues: Vec<Queue>,
    membership: HashMap<String, Vec<String>>,
    /// A queue membership read has completed (`membership` is Genesys's).
    membership_read: bool,
    pub(super) synced: bool,
    /// Every user id of the last directory read, lower-cased: the only ids
    /// whose conversation topics the gateway will subscribe (a client's
    /// `?agent=` never reaches Genesys unchecked).
    pub(super) known_users: std::collections::HashSet<String>,
    /// Conversation watches asked for before the first directory read;
    /// checked and carried out once it is in.
    pub(super) deferred_watches: std::collections::HashSet<String>,
    sync_running: bool,
    sync_pending: Option<SyncReason>,
    sync_attempt: u32,
    /// When the retried directory reads of the last minute start (for `retry_share`).
    sync_retries: std::collections::VecDeque<Instant>,
    /// Set when Genesys refuses us (auth) or the circuit is open.
    degraded: Option<String>,
    /// Set while a channel keeps failing to open (the cause, with its attempt).
    channel_trouble: Option<String>,
    /// Topics Genesys refused, with its reason; never subscribed again until
    /// the next directory refresh.
    refused: std::collections::BTreeMap<String, String>,
    /// Users whose presence topic was refused (left to the sweep).
    excluded_users: std::collections::HashSet<String>,
    /// Users per channel learned from a topic-count refusal (below the configured one).
    learned_per_channel: Option<usize>,
    /// Every user id of the last directory read, in its order (for re-plans
    /// and the sweep).
    all_users: Vec<String>,
    /// Where the sweep goes on in `all_users`.
    sweep_cursor: usize,
    /// A sweep step is scheduled or running.
    sweep_scheduled: bool,
    /// Definition ids known (shared with the socket readers, which report an
    /// unknown one).
    known_definitions: KnownDefinitions,
    /// A definition re-read is running (single flight).
    definitions_rereading: bool,
    /// Agents whose frames could not be used, waiting for a targeted re-read.
    reread_pending: std::collections::BTreeSet<String>,
    /// A targeted re-read is running (single flight; the pending ones follow).
    reread_running: bool,
    /// When the definitions were last re-read for an unknown id.
    definitions_reread_at: Option<Instant>,
    last_health: Option<UpstreamHealth>,
    last_health_sent: Instant,
    last_directory_refresh: Instant,
    stop: CancellationToken,
    /// Presence writes in flight: user id → definition id. The event that
    /// Genesys sends for a write (often before the PATCH answer) is marked
    /// as the gateway's own write.
    pending_writes: PendingWrites,
    /// A shard came back after a gap and the reconciliation waits for the others.
    gap_since: Option<Instant>,
    /// Where conversation events of watched agents go (the interaction
    /// hub), when interaction context is served.
    pub(super) interactions: Option<ConversationSink>,
    /// `externalTag` searches: shared answers and callers waiting for one.
    pub(super) tag_cache: super::conversations::TagCache,
    /// Wrap-up code names by id (`GET /api/v2/routing/wrapupcodes`).
    pub(super) wrapup_cache: super::conversations::WrapupCache,
}

/// Where the upstream sends what it learns about watched agents'
/// conversations: each event ([`ConversationSeen`]) and complete re-reads
/// ([`ConversationsReset`]).
#[derive(Clone)]
pub struct ConversationSink {
    /// One conversation changed.
    pub seen: Recipient<ConversationSeen>,
    /// An agent's interactions, read completely.
    pub reset: Recipient<ConversationsReset>,
}

/// Writes in flight, shared with the socket readers (same arbiter).
pub type PendingWrites = Rc<RefCell<HashMap<String, String>>>;

/// A subscription refused with a 400 that is not an invalid-topic refusal
/// is read as Genesys's topic-count limit (and the plan shrunk) only when
/// the channel carried at least this many topics; a refusal of fewer is a
/// failure like any other (backoff), so one odd answer cannot split the
/// plan into tiny channels.
const MIN_TOPICS_FOR_LIMIT: usize = 100;

/// Presence definition ids known from the last read, shared with the
/// socket readers (same arbiter).
pub type KnownDefinitions = Rc<RefCell<std::collections::HashSet<String>>>;

/// A socket reader could not use a frame about this agent: re-read it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReReadAgent(pub String);

/// A socket reader saw a presence definition id the gateway does not know.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnknownDefinition(pub String);

impl Upstream {
    /// Creates the actor; call `.start()` on an actix arbiter.
    pub fn new(
        genesys: GenesysConfig,
        cfg: UpstreamConfig,
        registry: Recipient<UpstreamEvent>,
        stats: Arc<UpstreamStats>,
        stop: CancellationToken,
    ) -> Upstream {
        Upstream {
            genesys,
            cfg,
            rest: None,
            registry,
            stats,
            plan: Plan::default(),
            shards: Vec::new(),
            definitions: Vec::new(),
            queues: Vec::new(),
            membership: HashMap::new(),
            membership_read: false,
            synced: false,
            known_users: Default::default(),
            deferred_watches: Default::default(),
            sync_running: false,
            sync_pending: None,
            sync_attempt: 0,
            sync_retries: Default::default(),
            degraded: None,
            channel_trouble: None,
            refused: Default::default(),
            excluded_users: Default::default(),
            learned_per_channel: None,
            all_users: Vec::new(),
            sweep_cursor: 0,
            sweep_scheduled: false,
            known_definitions: Rc::default(),
            definitions_rereading: false,
            reread_pending: Default::default(),
            reread_running: false,
            definitions_reread_at: None,
            last_health: None,
            last_health_sent: Instant::now(),
            last_directory_refresh: Instant::now(),
            stop,
            pending_writes: Rc::default(),
            gap_since: None,
            interactions: None,
            tag_cache: Rc::default(),
            wrapup_cache: Rc::default(),
        }
    }

    /// Sends conversation events of watched agents to `sink` (the
    /// interaction hub, which sits above the upstream and is not named here).
    pub fn with_conversation_sink(mut self, sink: ConversationSink) -> Upstream {
        self.interactions = Some(sink);
        self
    }

    fn rest(&self) -> Rest {
        // unwrap: set in `started` before any message is handled
        self.rest.clone().unwrap()
    }

    /// The REST client, for the write handlers.
    pub(super) fn rest_client(&self) -> Rest {
        self.rest()
    }

    /// The name of queue `id` from the last directory read.
    pub(super) fn queue_name(&self, id: &str) -> Option<String> {
        self.queues
            .iter()
            .find(|q| q.id == id)
            .map(|q| q.name.clone())
    }

    pub(super) fn cfg_ref(&self) -> &UpstreamConfig {
        &self.cfg
    }

    pub(super) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard carrying a user's presence topic.
    pub(super) fn shard_of(&self, user_id: &str) -> Option<usize> {
        self.shards
            .iter()
            .position(|s| s.users.iter().any(|u| u == user_id))
    }

    pub(super) fn extra_len(&self, i: usize) -> usize {
        self.shards[i].extra.len()
    }

    pub(super) fn shard_holding_extra(&self, topic: &str) -> Option<usize> {
        self.shards
            .iter()
            .position(|s| s.extra.iter().any(|t| t == topic))
    }

    /// Adds a topic to shard `i`'s reserved room and re-subscribes it.
    pub(super) fn add_extra(&mut self, i: usize, topic: String, ctx: &mut Context<Self>) {
        if self.refused.contains_key(&topic) {
            return; // Genesys refused it before; asking again would only fail again
        }
        self.shards[i].extra.push(topic);
        self.topics_changed(i, ctx);
    }

    /// Removes a topic from shard `i` and re-subscribes it.
    pub(super) fn remove_extra(&mut self, i: usize, topic: &str, ctx: &mut Context<Self>) {
        self.shards[i].extra.retain(|t| t != topic);
        self.topics_changed(i, ctx);
    }

    fn topics_changed(&mut self, i: usize, ctx: &mut Context<Self>) {
        self.shards[i].dirty = true;
        if matches!(self.shards[i].state, ShardState::Up) {
            self.resubscribe(i, ctx);
        }
    }

    /// Writes in flight (see [`PendingWrites`]).
    pub(super) fn pending_writes(&self) -> PendingWrites {
        self.pending_writes.clone()
    }

    /// Where confirmed changes go.
    pub(super) fn registry_recipient(&self) -> Recipient<UpstreamEvent> {
        self.registry.clone()
    }

    /// Sends an event to the registry, waiting for mailbox room (no loss).
    fn emit(&self, ctx: &mut Context<Self>, ev: UpstreamEvent) {
        let registry = self.registry.clone();
        ctx.spawn(
            async move {
                let _ = registry.send(ev).await;
            }
            .into_actor(self),
        );
    }

    // ---- directory reads: start-up, reconciliation, refresh -------------

    fn request_sync(&mut self, reason: SyncReason, ctx: &mut Context<Self>) {
        if self.sync_running {
            // Coalesce: one more read after this one, of the widest kind asked.
            self.sync_pending = Some(match (self.sync_pending, reason) {
                (Some(SyncReason::DirectoryRefresh), _) | (_, SyncReason::DirectoryRefresh) => {
                    SyncReason::DirectoryRefresh
                }
                (Some(SyncReason::Initial), _) | (_, SyncReason::Initial) => SyncReason::Initial,
                _ => SyncReason::Reconcile,
            });
            return;
        }
        self.sync_running = true;
        let rest = self.rest();
        let lane = if reason == SyncReason::DirectoryRefresh {
            Lane::Directory
        } else {
            Lane::Reconcile
        };
        let page_size = self.cfg.page_size;
        let started = Instant::now();
        let read_at = Utc::now();
        let calls_before = self.stats.rest_calls.load(Ordering::Relaxed);
        ctx.spawn(
            async move {
                let definitions = directory::read_definitions(&rest, lane).await?;
                let users = directory::read_users(&rest, lane, page_size).await?;
                Ok::<_, RestError>((definitions, users))
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.sync_running = false;
                let calls = act.stats.rest_calls.load(Ordering::Relaxed) - calls_before;
                match res {
                    Ok((definitions, users)) => {
                        tracing::info!(
                            ?reason,
                            users = users.len(),
                            rest_calls = calls,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "directory read complete"
                        );
                        act.on_synced(reason, definitions, users, read_at, ctx)
                    }
                    Err(e) => act.on_sync_failed(reason, e, ctx),
                }
                if let Some(next) = act.sync_pending.take() {
                    act.request_sync(next, ctx);
                }
            }),
        );
    }

    fn on_synced(
        &mut self,
        reason: SyncReason,
        definitions: Vec<PresenceDefinition>,
        mut users: Vec<UserRecord>,
        read_at: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        self.sync_attempt = 0;
        self.degraded = None;
        if reason != SyncReason::Initial {
            self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        }
        for u in &mut users {
            if let Some(q) = self.membership.get(&u.id) {
                u.queue_ids = q.clone();
            }
        }
        self.set_definitions(definitions.clone());
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        self.emit(
            ctx,
            UpstreamEvent::Sync {
                reason,
                users,
                definitions,
                queues: self.queues.clone(),
                read_at,
                membership_known: self.membership_read || !self.cfg.queue_membership,
            },
        );
        let first = !self.synced;
        self.synced = true;
        self.known_users = ids.iter().map(|i| i.to_ascii_lowercase()).collect();
        if reason == SyncReason::DirectoryRefresh && !self.refused.is_empty() {
            // Permissions may have been granted since: try the refused topics again.
            self.refused.clear();
            self.excluded_users.clear();
            self.stats.refused_topics.store(0, Ordering::Relaxed);
        }
        self.all_users = ids;
        self.replan(ctx);
        if !self.sweep_scheduled {
            self.schedule_sweep(ctx);
        }
        for user_id in std::mem::take(&mut self.deferred_watches) {
            ctx.notify(super::conversations::WatchConversations {
                user_id,
                watch: true,
            });
        }
        if (first || reason == SyncReason::DirectoryRefresh) && self.cfg.queue_membership {
            self.read_membership(ctx);
        }
        self.push_health(ctx, true);
    }

    fn set_definitions(&mut self, definitions: Vec<PresenceDefinition>) {
        *self.known_definitions.borrow_mut() = definitions.iter().map(|d| d.id.clone()).collect();
        self.definitions = definitions;
    }

    // ---- anti-entropy sweep ------------------------------------------------

    /// Schedules the next sweep step (see [`UpstreamConfig::sweep_step_secs`]).
    fn schedule_sweep(&mut self, ctx: &mut Context<Self>) {
        self.sweep_scheduled = true;
        let wait = Duration::from_secs_f64(self.cfg.sweep_step_secs(self.all_users.len()));
        ctx.run_later(wait, |act, ctx| act.sweep_step(ctx));
    }

    /// Re-reads the next 100 agents' presence and routing status through the
    /// bulk endpoints and sends what was read to the registry, which applies
    /// the differences as `reconciled` changes. A step is skipped (not lost)
    /// while a full directory read runs.
    fn sweep_step(&mut self, ctx: &mut Context<Self>) {
        if self.stop.is_cancelled() {
            return;
        }
        if self.sync_running || self.all_users.is_empty() {
            self.schedule_sweep(ctx);
            return;
        }
        if self.sweep_cursor >= self.all_users.len() {
            self.sweep_cursor = 0;
        }
        let end = (self.sweep_cursor + super::SWEEP_STEP).min(self.all_users.len());
        let ids = self.all_users[self.sweep_cursor..end].to_vec();
        let rest = self.rest();
        let read_at = Utc::now();
        ctx.spawn(
            async move { directory::read_states(&rest, Lane::Directory, &ids).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    match res {
                        Ok(users) => {
                            act.stats.sweep_steps.fetch_add(1, Ordering::Relaxed);
                            act.sweep_cursor = end;
                            if end >= act.all_users.len() {
                                act.stats.sweeps.fetch_add(1, Ordering::Relaxed);
                            }
                            act.emit(ctx, UpstreamEvent::Sweep { users, read_at });
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "sweep step failed; retried at the next step");
                        }
                    }
                    act.schedule_sweep(ctx);
                }),
        );
    }

    fn on_sync_failed(&mut self, reason: SyncReason, e: RestError, ctx: &mut Context<Self>) {
        self.sync_attempt += 1;
        let mut wait = backoff(
            self.sync_attempt,
            self.cfg.backoff_initial_ms.max(1000),
            self.cfg.backoff_max_ms,
        );
        // Retried reads may spend at most `retry_share` of the budget: a
        // read costs about one call per page plus the definitions.
        let cost = (self.all_users.len().div_ceil(self.cfg.page_size) + 3) as f64;
        let allowed = ((self.cfg.retry_share * f64::from(self.cfg.rate_per_minute)) / cost)
            .floor()
            .max(1.0) as usize;
        let minute = Duration::from_secs(60);
        while self
            .sync_retries
            .front()
            .is_some_and(|t| t.elapsed() >= minute)
        {
            self.sync_retries.pop_front();
        }
        if self.sync_retries.len() >= allowed {
            if let Some(oldest) = self.sync_retries.front() {
                let room = minute.saturating_sub(oldest.elapsed());
                if room > wait {
                    wait = room;
                    self.stats.retries_held.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.sync_retries.push_back(Instant::now() + wait);
        tracing::error!(?reason, error = %e, retry_in_ms = wait.as_millis() as u64, "reading the directory from Genesys failed");
        if matches!(e, RestError::Auth(_) | RestError::Unavailable(_)) || self.sync_attempt >= 3 {
            self.degraded = Some(e.to_string());
        }
        self.push_health(ctx, true);
        ctx.run_later(wait, move |act, ctx| act.request_sync(reason, ctx));
    }

    fn read_membership(&mut self, ctx: &mut Context<Self>) {
        let rest = self.rest();
        ctx.spawn(
            async move { directory::read_queues(&rest, Lane::Directory).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok((queues, membership)) => {
                        // The first read is sent whole: the registry may
                        // hold membership from before this upstream
                        // started (a new cluster leader) and drops what
                        // does not change.
                        let first = !act.membership_read;
                        let changed: Vec<(String, Vec<String>)> = act
                            .plan
                            .shards
                            .iter()
                            .flatten()
                            .filter_map(|u| {
                                let now = membership.get(u).cloned().unwrap_or_default();
                                let before = act.membership.get(u).cloned().unwrap_or_default();
                                (first || now != before).then(|| (u.clone(), now))
                            })
                            .collect();
                        if act.queues != queues {
                            act.emit(ctx, UpstreamEvent::QueueList { queues: queues.clone() });
                        }
                        act.queues = queues;
                        act.membership = membership;
                        act.membership_read = true;
                        // The queue names ride on a sync-free path: each
                        // change is its own event, and the next sync carries the list.
                        for (user_id, queue_ids) in changed {
                            act.emit(ctx, UpstreamEvent::Queues { user_id, queue_ids });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading queue membership failed; will retry at the next refresh"),
                }),
        );
    }

    // ---- topic plan and shards ------------------------------------------

    /// Users per channel: the configured room, or less once Genesys refused a count.
    fn per_channel(&self) -> usize {
        let configured = self.cfg.topics_per_channel - self.cfg.conversation_reserve;
        self.learned_per_channel
            .map_or(configured, |l| l.min(configured))
    }

    fn replan(&mut self, ctx: &mut Context<Self>) {
        let users: Vec<String> = self
            .all_users
            .iter()
            .filter(|u| !self.excluded_users.contains(*u))
            .cloned()
            .collect();
        let (plan, changed) = topics::replan(
            &self.plan,
            &users,
            self.per_channel(),
            self.cfg.max_channels,
        );
        if !plan.uncovered.is_empty() {
            tracing::error!(
                uncovered = plan.uncovered.len(),
                capacity = self.cfg.topics_per_channel * self.cfg.max_channels,
                "more agents than notification channels can carry; those agents update only on reconciliation"
            );
        }
        self.plan = plan;
        while self.shards.len() < self.plan.shards.len() {
            self.shards.push(Shard {
                users: Vec::new(),
                channel: None,
                state: ShardState::Down,
                generation: 0,
                dirty: true,
                reader_stop: None,
                renewed_at: Instant::now(),
                extra: Vec::new(),
                attempts: 0,
                up_since: None,
                opens: Default::default(),
            });
        }
        for i in changed {
            let shard = &mut self.shards[i];
            shard.users = self.plan.shards[i].clone();
            shard.dirty = true;
            match shard.state {
                ShardState::Up => self.resubscribe(i, ctx),
                ShardState::Down => self.open_shard(i, ctx),
                ShardState::Opening => {} // picks up `dirty` when it completes
            }
        }
        tracing::info!(
            channels = self.shards.len(),
            topics = self.plan.shards.iter().map(Vec::len).sum::<usize>(),
            "topic plan"
        );
    }

    fn topics_of(&self, i: usize) -> Vec<String> {
        self.shards[i]
            .users
            .iter()
            .map(|u| topics::user_topic(self.cfg.topic_strategy, u))
            .chain(self.shards[i].extra.iter().cloned())
            .collect()
    }

    /// Opens shard `i`: reuse its channel if it still exists (`HEAD`), else
    /// create one; connect; subscribe when new or changed.
    fn open_shard(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.stop.is_cancelled() {
            return;
        }
        let shard = &mut self.shards[i];
        shard.generation += 1;
        shard.state = ShardState::Opening;
        shard.opens.push_back(Instant::now());
        let generation = shard.generation;
        let existing = shard.channel.clone();
        let dirty = shard.dirty;
        let topics = self.topics_of(i);
        let topic_count = topics.len();
        let sent = topics.clone();
        let rest = self.rest();
        ctx.spawn(
            async move {
                // The channel, once created or found, is kept even when a
                // later step fails: the retry reuses it instead of POSTing another.
                let (info, fresh) = match existing {
                    Some(info) => match channel::exists(&rest, &info.id).await {
                        Ok(true) => (info, false),
                        Ok(false) => match channel::create(&rest).await {
                            Ok(c) => (c, true),
                            Err(e) => return Err((None, e)),
                        },
                        Err(e) => return Err((Some(info), e)),
                    },
                    None => match channel::create(&rest).await {
                        Ok(c) => (c, true),
                        Err(e) => return Err((None, e)),
                    },
                };
                let socket = match channel::connect(&rest, &info.connect_uri).await {
                    Ok(s) => s,
                    Err(e) => return Err((Some(info), RestError::Transport(e))),
                };
                // Subscribe after the socket is up: nothing subscribed goes
                // undelivered, and the reconciliation after covers the rest.
                let refused = if fresh || dirty {
                    match channel::subscribe(&rest, &info.id, &topics).await {
                        Ok(r) => r,
                        Err(e) => return Err((Some(info), e)),
                    }
                } else {
                    Vec::new()
                };
                Ok((info, socket, fresh || dirty, refused))
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if act.shards[i].generation != generation {
                    return; // superseded
                }
                match res {
                    Ok((info, socket, subscribed, refused)) => {
                        let shard = &mut act.shards[i];
                        shard.state = ShardState::Up;
                        shard.up_since = Some(Instant::now());
                        if subscribed {
                            shard.renewed_at = Instant::now();
                        }
                        tracing::info!(shard = i, channel = %info.id, topics = shard.users.len(), "channel up");
                        // A re-plan while this shard was opening changed its topics.
                        let current = act.topics_of(i);
                        let shard = &mut act.shards[i];
                        if subscribed || !shard.dirty {
                            shard.dirty = current != sent;
                        }
                        shard.channel = Some(info);
                        act.channel_trouble = None;
                        act.on_refused(i, refused, ctx);
                        act.start_reader(i, generation, socket, ctx);
                        if act.shards[i].dirty {
                            act.resubscribe(i, ctx);
                        }
                        // Whatever happened while this shard was not listening:
                        // one reconciliation once every shard is back (a read
                        // that started before a shard subscribed would need
                        // another); `tick` does not wait for a shard that
                        // stays down.
                        act.gap_since.get_or_insert_with(Instant::now);
                        if act.shards.iter().all(|s| matches!(s.state, ShardState::Up)) {
                            act.gap_since = None;
                            act.request_sync(SyncReason::Reconcile, ctx);
                        }
                    }
                    Err((info, e)) => {
                        if info.is_some() {
                            act.shards[i].channel = info;
                        }
                        if matches!(e, RestError::Auth(_)) {
                            act.degraded = Some(e.to_string());
                        }
                        if channel::is_topic_limit(&e) && topic_count >= MIN_TOPICS_FOR_LIMIT {
                            act.shrink_plan(i, &e, ctx);
                        } else {
                            act.shards[i].dirty = true;
                            act.schedule_reopen(i, &e.to_string(), ctx);
                        }
                    }
                }
                act.push_health(ctx, true);
            }),
        );
    }

    /// Drops the topics Genesys refused on shard `i`: a refused presence
    /// topic takes its user off the plan (the sweep keeps that agent
    /// right), a refused conversation topic leaves the reserved room. The
    /// channel and everyone else's topics stay.
    fn on_refused(&mut self, i: usize, refused: Vec<channel::Refused>, ctx: &mut Context<Self>) {
        if refused.is_empty() {
            return;
        }
        let strategy = self.cfg.topic_strategy;
        for r in refused {
            tracing::warn!(shard = i, topic = %r.topic, reason = %r.reason, "Genesys refused a topic; dropped from the channel");
            let shard = &mut self.shards[i];
            if let Some(pos) = shard
                .users
                .iter()
                .position(|u| topics::user_topic(strategy, u).eq_ignore_ascii_case(&r.topic))
            {
                let user = shard.users.remove(pos);
                if let Some(p) = self.plan.shards.get_mut(i) {
                    p.retain(|u| *u != user);
                }
                self.excluded_users.insert(user);
            }
            shard.extra.retain(|t| !t.eq_ignore_ascii_case(&r.topic));
            self.refused.insert(r.topic, r.reason);
        }
        self.stats
            .refused_topics
            .store(self.refused.len() as u64, Ordering::Relaxed);
        self.push_health(ctx, true);
    }

    /// Genesys refused shard `i`'s topic count: learn a smaller count
    /// (half of what was refused) and re-plan every shard with it.
    fn shrink_plan(&mut self, i: usize, e: &RestError, ctx: &mut Context<Self>) {
        let refused_at = self.shards[i].users.len();
        let smaller = (refused_at / 2).max(1);
        self.learned_per_channel =
            Some(self.learned_per_channel.map_or(smaller, |l| l.min(smaller)));
        self.stats.replans.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(shard = i, refused_at, per_channel = self.per_channel(), error = %e, "Genesys refused the channel's topic count; re-planning smaller channels");
        self.shards[i].state = ShardState::Down;
        self.plan = Plan::default();
        for s in &mut self.shards {
            s.users.clear();
        }
        self.replan(ctx);
    }

    /// Schedules the next open of shard `i` after a jittered, capped
    /// exponential backoff that grows with every consecutive failure, and
    /// never sooner than the shard's share of the REST budget allows
    /// (`retry_share`: an open costs up to three calls).
    fn schedule_reopen(&mut self, i: usize, why: &str, ctx: &mut Context<Self>) {
        let rate = f64::from(self.cfg.rate_per_minute);
        let allowed = ((self.cfg.retry_share * rate) / 3.0).floor().max(1.0) as usize;
        let shard = &mut self.shards[i];
        shard.attempts += 1;
        let attempt = shard.attempts;
        let mut wait = backoff(
            attempt,
            self.cfg.backoff_initial_ms,
            self.cfg.backoff_max_ms,
        );
        let minute = Duration::from_secs(60);
        while shard.opens.front().is_some_and(|t| t.elapsed() >= minute) {
            shard.opens.pop_front();
        }
        if shard.opens.len() >= allowed {
            if let Some(oldest) = shard.opens.front() {
                let room = minute.saturating_sub(oldest.elapsed());
                if room > wait {
                    wait = room;
                    self.stats.retries_held.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // One line per 10 s during an outage (retries can come every
        // ~0.4 s), saying how many were held back.
        static RECONNECT_LOG: crate::telemetry::LogLimiter =
            crate::telemetry::LogLimiter::new(std::time::Duration::from_secs(10));
        if let Some(suppressed) = RECONNECT_LOG.allow() {
            tracing::warn!(
                shard = i,
                attempt,
                why,
                retry_in_ms = wait.as_millis() as u64,
                suppressed,
                "channel down; reconnecting ({suppressed} similar lines suppressed)"
            );
        }
        shard.state = ShardState::Down;
        shard.up_since = None;
        let generation = shard.generation;
        if attempt >= 3 {
            self.channel_trouble = Some(format!(
                "channel {} keeps failing: {why} (attempt {attempt}, next in {} ms)",
                i + 1,
                wait.as_millis()
            ));
        }
        ctx.run_later(wait, move |act, ctx| {
            if act.shards[i].generation == generation
                && matches!(act.shards[i].state, ShardState::Down)
            {
                act.open_shard(i, ctx);
            }
        });
    }

    fn start_reader(
        &mut self,
        i: usize,
        generation: u64,
        socket: channel::Socket,
        ctx: &mut Context<Self>,
    ) {
        let stop = self.stop.child_token();
        if let Some(old) = self.shards[i].reader_stop.replace(stop.clone()) {
            old.cancel();
        }
        let reader = Reader::new(
            &self.cfg,
            i,
            generation,
            self.registry.clone(),
            ctx.address().recipient(),
            self.stats.clone(),
            stop,
        )
        .with_pending_writes(self.pending_writes.clone())
        .with_known_definitions(self.known_definitions.clone(), ctx.address().recipient())
        .with_reread(ctx.address().recipient())
        .with_interactions(self.interactions.as_ref().map(|s| s.seen.clone()));
        ctx.spawn(
            reader
                .run(socket)
                .into_actor(self)
                .map(move |cause, act, ctx| act.on_reader_done(i, generation, cause, ctx)),
        );
    }

    fn on_reader_done(
        &mut self,
        i: usize,
        generation: u64,
        cause: DropCause,
        ctx: &mut Context<Self>,
    ) {
        if self.shards[i].generation != generation || self.stop.is_cancelled() {
            return; // replaced by a handover, or shutting down
        }
        if cause == DropCause::RegistryGone {
            ctx.stop();
            return;
        }
        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        if matches!(cause, DropCause::ChannelRevoked(_)) {
            self.shards[i].channel = None;
        }
        // A socket that stayed up a while starts the backoff afresh; one that
        // drops right after opening keeps growing it.
        if self.shards[i]
            .up_since
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(30))
        {
            self.shards[i].attempts = 0;
        }
        self.schedule_reopen(i, &cause.to_string(), ctx);
        self.push_health(ctx, true);
    }

    /// Re-PUTs shard `i`'s topics (changed users, or renewal before expiry).
    fn resubscribe(&mut self, i: usize, ctx: &mut Context<Self>) {
        let Some(info) = self.shards[i].channel.clone() else {
            return;
        };
        let topics = self.topics_of(i);
        let generation = self.shards[i].generation;
        let rest = self.rest();
        self.shards[i].dirty = false;
        self.shards[i].renewed_at = Instant::now();
        let topic_count = topics.len();
        ctx.spawn(
            async move { channel::subscribe(&rest, &info.id, &topics).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if act.shards[i].generation != generation {
                        return;
                    }
                    match res {
                        Ok(refused) => act.on_refused(i, refused, ctx),
                        Err(e) => {
                            tracing::warn!(shard = i, error = %e, "re-subscribing failed; reopening the channel");
                            act.shards[i].dirty = true;
                            if e.is_not_found() {
                                act.shards[i].channel = None;
                            }
                            if let Some(stop) = act.shards[i].reader_stop.take() {
                                stop.cancel();
                            }
                            act.shards[i].generation += 1;
                            if channel::is_topic_limit(&e) && topic_count >= MIN_TOPICS_FOR_LIMIT {
                                act.shrink_plan(i, &e, ctx);
                            } else {
                                act.schedule_reopen(i, &e.to_string(), ctx);
                            }
                        }
                    }
                }),
        );
    }

    // ---- health ----------------------------------------------------------

    fn health(&self) -> UpstreamHealth {
        let up = self
            .shards
            .iter()
            .filter(|s| matches!(s.state, ShardState::Up))
            .count();
        let degraded = self
            .degraded
            .clone()
            .or_else(|| self.channel_trouble.clone());
        let state = if degraded.is_some() {
            UpstreamState::Degraded
        } else if !self.synced {
            UpstreamState::Starting
        } else if up == self.shards.len() && !self.sync_running {
            UpstreamState::Connected
        } else {
            UpstreamState::Reconnecting
        };
        let detail = match state {
            UpstreamState::Degraded => degraded,
            UpstreamState::Reconnecting if up < self.shards.len() => Some(format!(
                "{} of {} channels connected",
                up,
                self.shards.len()
            )),
            UpstreamState::Reconnecting => Some("reconciling after a gap".into()),
            UpstreamState::Starting => Some("reading the directory".into()),
            UpstreamState::Connected => None,
        };
        let s = &self.stats;
        UpstreamHealth {
            state,
            detail,
            last_frame_at: UpstreamStats::time(&s.last_frame_ms),
            last_event_at: UpstreamStats::time(&s.last_event_ms),
            channels: up,
            topics: self.plan.shards.iter().map(Vec::len).sum(),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
            rest_calls: s.rest_calls.load(Ordering::Relaxed),
            malformed_frames: s.malformed_frames.load(Ordering::Relaxed),
            refused_topics: self
                .refused
                .iter()
                .take(crate::model::REFUSED_TOPICS_LISTED)
                .map(|(topic, reason)| crate::model::RefusedTopic {
                    topic: topic.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            refused_topic_count: self.refused.len(),
            staleness_bound_secs: if self.all_users.is_empty() {
                0.0
            } else {
                self.cfg.staleness_bound_secs(self.all_users.len())
            },
        }
    }

    /// Sends the health record when its state changed, or every 5 s.
    fn push_health(&mut self, ctx: &mut Context<Self>, force_check: bool) {
        let h = self.health();
        let changed = self.last_health.as_ref().is_none_or(|p| {
            p.state != h.state
                || p.detail != h.detail
                || p.channels != h.channels
                || p.refused_topics != h.refused_topics
        });
        if changed || (!force_check && self.last_health_sent.elapsed() >= Duration::from_secs(5)) {
            if changed {
                tracing::info!(state = ?h.state, detail = ?h.detail, channels = h.channels, "upstream health");
            }
            self.last_health = Some(h.clone());
            self.last_health_sent = Instant::now();
            self.emit(ctx, UpstreamEvent::Health(h));
        }
    }

    /// Once a second: health, channel renewal, token renewal, directory refresh.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.rest.as_ref().is_some_and(Rest::circuit_open) {
            if self.degraded.is_none() {
                self.degraded = Some("Genesys keeps failing (circuit open)".into());
            }
        } else if self.degraded.as_deref() == Some("Genesys keeps failing (circuit open)") {
            self.degraded = None;
        }
        self.push_health(ctx, false);
        if !self.synced {
            return;
        }
        // Shards that came back are not left unreconciled behind one that stays down.
        if self
            .gap_since
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.gap_since = None;
            self.request_sync(SyncReason::Reconcile, ctx);
        }
        // Channels live 24 h; re-subscribing extends them (§5.6).
        let ttl = Duration::from_secs(86_400)
            .saturating_sub(Duration::from_secs(self.cfg.renew_before_secs));
        let expiring: Vec<usize> = (0..self.shards.len())
            .filter(|&i| {
                let s = &self.shards[i];
                matches!(s.state, ShardState::Up)
                    && (s.renewed_at.elapsed() >= ttl
                        || s.channel.as_ref().and_then(|c| c.expires).is_some_and(|e| {
                            e - chrono::Duration::seconds(self.cfg.renew_before_secs as i64)
                                <= Utc::now()
                                && s.renewed_at.elapsed() > Duration::from_secs(60)
                        }))
            })
            .collect();
        for i in expiring {
            tracing::info!(shard = i, "renewing channel before it expires");
            if let Some(c) = self.shards[i].channel.as_mut() {
                c.expires = Some(Utc::now() + chrono::Duration::hours(24));
            }
            self.resubscribe(i, ctx);
        }
        let rest = self.rest();
        ctx.spawn(
            async move { rest.renew_token_if_due().await }
                .into_actor(self)
                .map(|res, act, _| {
                    if let Err(e) = res {
                        tracing::error!(error = %e, "renewing the Genesys token failed");
                        act.degraded = Some(e.to_string());
                    }
                }),
        );
        if self.last_directory_refresh.elapsed()
            >= Duration::from_secs(self.cfg.directory_refresh_secs)
        {
            self.last_directory_refresh = Instant::now();
            self.request_sync(SyncReason::DirectoryRefresh, ctx);
        }
    }
}

impl Actor for Upstream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        match Rest::new(&self.genesys, &self.cfg, self.stats.clone()) {
            Ok(rest) => self.rest = Some(rest),
            Err(e) => {
                tracing::error!(error = %e, "upstream configuration is invalid");
                ctx.stop();
                return;
            }
        }
        self.emit(ctx, UpstreamEvent::Health(UpstreamHealth::starting()));
        self.request_sync(SyncReason::Initial, ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.tick(ctx));
        let stop = self.stop.clone();
        ctx.spawn(
            async move { stop.cancelled().await }
                .into_actor(self)
                .map(|_, _, ctx| ctx.stop()),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for s in &mut self.shards {
            if let Some(stop) = s.reader_stop.take() {
                stop.cancel();
            }
        }
        tracing::info!("upstream stopped");
    }
}

/// `socket_closing`: connect a new socket to the same channel and switch
/// over once it is up (make-before-break; the service then drops the old).
impl Handler<SocketClosing> for Upstream {
    type Result = ();

    fn handle(&mut self, msg: SocketClosing, ctx: &mut Context<Self>) {
        let i = msg.shard;
        if i >= self.shards.len() || self.shards[i].generation != msg.generation {
            return;
        }
        let Some(info) = self.shards[i].channel.clone() else {
            return;
        };
        let rest = self.rest();
        // The handover socket is the shard's next generation; the old reader's
        // end (kicked by the new connection) is then ignored.
        self.shards[i].generation += 1;
        let generation = self.shards[i].generation;
        self.stats.handovers.fetch_add(1, Ordering::Relaxed);
        ctx.spawn(
            async move { channel::connect(&rest, &info.connect_uri).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if act.shards[i].generation != generation {
                        return;
                    }
                    match res {
                        Ok(socket) => {
                            tracing::info!(shard = i, "handover complete");
                            act.start_reader(i, generation, socket, ctx);
                            if act.cfg.reconcile_after_handover {
                                act.request_sync(SyncReason::Reconcile, ctx);
                            }
                        }
                        Err(e) => {
                            // The old socket is doomed: treat as a drop.
                            if let Some(stop) = act.shards[i].reader_stop.take() {
                                stop.cancel();
                            }
                            act.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            act.schedule_reopen(i, &e, ctx);
                        }
                    }
                }),
        );
    }
}

/// An event named a definition the gateway does not know (created at
/// runtime): re-read the definitions once (single flight, at most once in
/// 10 s), then the registry re-labels and accepts writes of it.
impl Handler<UnknownDefinition> for Upstream {
    type Result = ();

    fn handle(&mut self, msg: UnknownDefinition, ctx: &mut Context<Self>) {
        if self.definitions_rereading
            || self.known_definitions.borrow().contains(&msg.0)
            || self
                .definitions_reread_at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.definitions_rereading = true;
        self.definitions_reread_at = Some(Instant::now());
        self.stats
            .definition_rereads
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(definition = %msg.0, "an event named an unknown presence definition; re-reading the definitions");
        let rest = self.rest();
        ctx.spawn(
            async move { directory::read_definitions(&rest, Lane::Reconcile).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.definitions_rereading = false;
                    match res {
                        Ok(defs) => {
                            act.set_definitions(defs.clone());
                            act.emit(ctx, UpstreamEvent::Definitions(defs));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "re-reading the presence definitions failed")
                        }
                    }
                }),
        );
    }
}

/// A frame about an agent could not be used: re-read that agent's presence
/// and routing status through REST (up to 100 at once, one read at a time;
/// ids asked for meanwhile go in the next), on the reconciliation lane.
impl Handler<ReReadAgent> for Upstream {
    type Result = ();

    fn handle(&mut self, msg: ReReadAgent, ctx: &mut Context<Self>) {
        if !self.known_users.contains(&msg.0.to_ascii_lowercase()) {
            return;
        }
        if let Some(id) = self
            .all_users
            .iter()
            .find(|u| u.eq_ignore_ascii_case(&msg.0))
        {
            self.reread_pending.insert(id.clone());
        }
        self.run_reread(ctx);
    }
}

impl Upstream {
    fn run_reread(&mut self, ctx: &mut Context<Self>) {
        if self.reread_running || self.reread_pending.is_empty() {
            return;
        }
        self.reread_running = true;
        let ids: Vec<String> = std::iter::from_fn(|| self.reread_pending.pop_first())
            .take(super::SWEEP_STEP)
            .collect();
        self.stats
            .agent_rereads
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        let rest = self.rest();
        let read_at = Utc::now();
        ctx.spawn(
            async move { directory::read_states(&rest, Lane::Reconcile, &ids).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.reread_running = false;
                    match res {
                        Ok(users) => act.emit(ctx, UpstreamEvent::Sweep { users, read_at }),
                        Err(e) => tracing::warn!(error = %e, "re-reading agents after unusable frames failed; the sweep will"),
                    }
                    act.run_reread(ctx);
                }),
        );
    }
}

/// Asks for the current health record (for `/readyz`, tests).
#[derive(Message)]
#[rtype(result = "UpstreamHealth")]
pub struct GetHealth;

impl Handler<GetHealth> for Upstream {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.health())
    }
}
