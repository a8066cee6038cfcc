//! The session actor: one per connected client (WebSocket or SSE). It holds
//! the client's filter and resume point, subscribes to the registry, queues
//! what the registry delivers in a bounded [`Outbox`] and hands each
//! message's shared, pre-encoded bytes (in the form the client negotiated:
//! plain, permessage-deflate or gzip) to its connection's body channel
//! ([`super::body`]), never blocking the registry.
//!
//! Per-client cost is bounded: every queued message counts against
//! `session.outbox_bytes`; a write the transport does not take within
//! `session.write_timeout_secs` evicts the session (4008); WebSocket
//! `subscribe`s are applied at most once per `session.subscribe_interval_ms`
//! (the last one wins). The queue's size is published in
//! [`SessionMetrics::queued_bytes`](super::SessionMetrics::queued_bytes).
//!
//! Runs on the actix-web worker arbiter that accepted the connection. The
//! registry talks to it with [`Deliver`]; the WebSocket reader feeds it
//! client frames (see `ws.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::protocol::wire::{self, GzipBlock};
use crate::registry::encode::error_frame;
use crate::registry::{
    Cursor, Deliver, Filter, Registry, Start, Subscribe, Subscribed, Unsubscribe,
};

use super::close::DisconnectReason;
use super::config::SessionConfig;
use super::limits::{ConnGuard, SessionMetrics};
use super::outbox::{Kind, Out, Outbox, Pushed};

/// Eviction lines: one per 10 s across all sessions, with the count of
/// those held back (a crowd of stalled clients must not flood the log).
static EVICTION_LOG: crate::telemetry::LogLimiter =
    crate::telemetry::LogLimiter::new(std::time::Duration::from_secs(10));

/// Session ids, unique per process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where the session writes: the response body's channel (`None` once the
/// stream has ended), and the encoding the client negotiated.
pub enum Transport {
    /// A WebSocket.
    Ws {
        /// Frames to the client.
        tx: Option<mpsc::Sender<Bytes>>,
        /// permessage-deflate was negotiated.
        deflate: bool,
    },
    /// Server-Sent Events.
    Sse {
        /// Body bytes to the client.
        tx: Option<mpsc::Sender<Bytes>>,
        /// The gzip stream's running CRC, when the body is gzip.
        gzip: Option<wire::GzipStream>,
    },
}

impl Transport {
    fn tx(&self) -> Option<&mpsc::Sender<Bytes>> {
        match self {
            Transport::Ws { tx, .. } | Transport::Sse { tx, .. } => tx.as_ref(),
        }
    }

    fn end(&mut self) {
        match self {
            Transport::Ws { tx, .. } | Transport::Sse { tx, .. } => *tx = None,
        }
    }
}

/// Everything a session needs from the HTTP layer.
pub struct SessionParams {
    /// The registry to subscribe to.
    pub registry: Addr<Registry>,
    /// Session tuning.
    pub cfg: Arc<SessionConfig>,
    /// Counters.
    pub metrics: Arc<SessionMetrics>,
    /// The client's filter (`None`: everything).
    pub filter: Option<Filter>,
    /// The client's resume point.
    pub since: Option<Cursor>,
    /// Interaction context to watch: the hub and the agents (`?interactions=1`).
    pub interactions: Option<crate::interactions::WatchSpec>,
    /// The queue hub, when the client asked for `queues` messages (`?queues=1`).
    pub queues: Option<Addr<crate::queues::QueueHub>>,
    /// The connection-limit slot, released when the session ends.
    pub guard: ConnGuard,
    /// Divisions the client is limited to (its credential's scope); a
    /// `subscribe` filter is narrowed to them. `None`: all.
    pub scope: Option<crate::auth::Principal>,
}

/// One client session.
pub struct Session {
    /// Registry subscription id.
    pub(super) id: u64,
    /// The transport.
    pub(super) transport: Transport,
    /// The registry.
    registry: Addr<Registry>,
    /// Tuning (shared by all sessions).
    pub(super) cfg: Arc<SessionConfig>,
    /// Counters (shared).
    pub(super) metrics: Arc<SessionMetrics>,
    /// The client's filter, shared with the registry.
    filter: Option<Arc<Filter>>,
    /// Resume point for the next subscription.
    since: Option<Cursor>,
    /// The last `seq` queued for the client.
    seq: u64,
    /// Pending output.
    outbox: Outbox,
    /// A write future is in flight.
    writing: bool,
    /// Set once the session decided to end.
    closing: Option<DisconnectReason>,
    /// Raised by the registry when it evicted us (mailbox full).
    evicted: Arc<AtomicBool>,
    /// Last frame of any kind from a WebSocket client.
    pub(super) last_heard: Instant,
    /// Malformed messages in the current one-minute window.
    malformed: u32,
    /// Start of that window.
    malformed_since: Instant,
    /// Connection-limit slot.
    guard: ConnGuard,
    /// Interaction context watched by this session.
    interactions: Option<crate::interactions::WatchSpec>,
    /// The queue hub this session gets `queues` messages from.
    queues: Option<Addr<crate::queues::QueueHub>>,
    /// Who the client is (division scope for `subscribe`).
    scope: Option<crate::auth::Principal>,
    /// The registry's epoch (for the final `status` of a drain).
    epoch: u64,
    /// When the write in flight started (`None`: no write in flight).
    write_since: Option<Instant>,
    /// A write-deadline check is scheduled.
    deadline_armed: bool,
    /// Outbox bytes last added to the shared `queued_bytes` gauge.
    reported: usize,
    /// Outbox peak last offered to the shared `queued_bytes_peak` gauge.
    reported_peak: usize,
    /// When the last `subscribe` was applied.
    last_subscribe: Option<Instant>,
    /// A `subscribe` held back by the rate limit: (filter, since). A later
    /// one replaces it.
    pending_subscribe: Option<(Filter, Option<Cursor>)>,
    /// The client was told, since the last applied `subscribe`, that its
    /// subscribes are being coalesced.
    rate_told: bool,
}

impl Session {
    /// A session over `transport`, not yet started.
    pub fn new(p: SessionParams, transport: Transport) -> Session {
        let now = Instant::now();
        Session {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            transport,
            registry: p.registry,
            cfg: p.cfg,
            metrics: p.metrics,
            filter: p.filter.filter(|f| !f.is_empty()).map(Arc::new),
            since: p.since,
            seq: 0,
            outbox: Outbox::default(),
            writing: false,
            closing: None,
            evicted: Arc::new(AtomicBool::new(false)),
            last_heard: now,
            malformed: 0,
            malformed_since: now,
            guard: p.guard,
            interactions: p.interactions,
            queues: p.queues,
            scope: p.scope,
            epoch: 0,
            write_since: None,
            deadline_armed: false,
            reported: 0,
            reported_peak: 0,
            last_subscribe: None,
            pending_subscribe: None,
            rate_told: false,
        }
    }

    fn active_gauge(&self) -> &AtomicU64 {
        if self.is_sse() {
            &self.metrics.active_sse
        } else {
            &self.metrics.active_ws
        }
    }

    fn is_sse(&self) -> bool {
        matches!(self.transport, Transport::Sse { .. })
    }

    /// (Re)subscribes with the current filter and resume point. Mailbox
    /// processing waits for the reply, so every delivery that follows it is
    /// newer than what it starts with.
    pub(super) fn subscribe(&mut self, ctx: &mut Context<Self>) {
        let msg = Subscribe {
            id: self.id,
            filter: self.filter.clone(),
            since: self.since.take(),
            recipient: ctx.address().recipient(),
            evicted: self.evicted.clone(),
        };
        self.registry
            .send(msg)
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(sub) => act.on_subscribed(sub, ctx),
                Err(_) => act.close(DisconnectReason::Shutdown, ctx),
            })
            .wait(ctx);
    }

    fn on_subscribed(&mut self, sub: Subscribed, ctx: &mut Context<Self>) {
        let sse = self.is_sse();
        self.outbox.clear_messages();
        self.seq = sub.seq;
        self.epoch = sub.epoch;
        match sub.start {
            Start::Snapshot(frame) => self.outbox.push_snapshot(frame, sse),
            Start::Replay(batches) => {
                for (batch, frame) in batches {
                    if self.push_delta(batch, frame, ctx) {
                        return;
                    }
                }
            }
        }
        self.push_message(sub.status, Kind::Status, ctx);
    }

    /// Queues a `status` or reply and writes; closes as slow when the
    /// queue is over its bound.
    fn push_message(&mut self, frame: crate::registry::Frame, kind: Kind, ctx: &mut Context<Self>) {
        let sse = self.is_sse();
        if self
            .outbox
            .push_counted(frame, kind, sse, self.cfg.outbox_bytes)
        {
            self.close(DisconnectReason::SlowConsumer, ctx);
            return;
        }
        self.pump(ctx);
    }

    /// Queues one delta; true when the session is closing as slow.
    fn push_delta(
        &mut self,
        batch: Arc<crate::registry::Batch>,
        frame: crate::registry::Frame,
        ctx: &mut Context<Self>,
    ) -> bool {
        let sse = self.is_sse();
        match self.outbox.push_delta(
            batch,
            frame,
            self.filter.as_deref(),
            sse,
            self.cfg.outbox_bytes,
        ) {
            Pushed::Queued => false,
            Pushed::Coalesced => {
                self.metrics.coalesced.fetch_add(1, Ordering::Relaxed);
                false
            }
            Pushed::Overflow => {
                self.close(DisconnectReason::SlowConsumer, ctx);
                true
            }
        }
    }

    /// Sends an `error` message; closes with 1008 when the client keeps
    /// sending malformed messages.
    pub(super) fn client_error(&mut self, reason: &str, ctx: &mut Context<Self>) {
        self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
        if self.malformed_since.elapsed().as_secs() >= 60 {
            self.malformed_since = Instant::now();
            self.malformed = 0;
        }
        self.malformed += 1;
        if self.malformed > self.cfg.max_malformed_per_minute {
            self.close(DisconnectReason::PolicyViolation, ctx);
            return;
        }
        self.push_message(error_frame(reason), Kind::Reply, ctx);
    }

    /// Applies a new filter and/or resume point from the client and answers
    /// with a fresh snapshot (or the replay, when `since` is resumable).
    pub(super) fn resubscribe(
        &mut self,
        filter: Filter,
        since: Option<Cursor>,
        ctx: &mut Context<Self>,
    ) {
        let filter = match &self.scope {
            Some(p) => match crate::auth::scope_filter(p, filter) {
                Ok(f) => f,
                Err(e) => return self.client_error(&e.to_string(), ctx),
            },
            None => filter,
        };
        // Rate limit: at most one applied subscribe per interval; one that
        // comes sooner waits for the end of the interval, and a later one
        // replaces it (only the last matters).
        let now = Instant::now();
        let due = self
            .last_subscribe
            .map(|t| t + self.cfg.subscribe_interval())
            .filter(|due| *due > now);
        let Some(due) = due else {
            return self.apply_subscribe(filter, since, ctx);
        };
        if self.pending_subscribe.replace((filter, since)).is_none() {
            ctx.run_later(due - now, |act, ctx| {
                if let Some((filter, since)) = act.pending_subscribe.take() {
                    if act.closing.is_none() {
                        act.apply_subscribe(filter, since, ctx);
                    }
                }
            });
            return;
        }
        self.metrics
            .subscribes_coalesced
            .fetch_add(1, Ordering::Relaxed);
        if !self.rate_told {
            self.rate_told = true;
            let ms = self.cfg.subscribe_interval_ms;
            self.push_message(
                error_frame(&format!(
                    "subscribe rate exceeded: at most one subscribe per {ms} ms is applied; \
                     earlier ones are replaced by the latest, which is applied when the interval ends"
                )),
                Kind::Reply,
                ctx,
            );
        }
    }

    /// Applies a (scoped) filter and resume point now.
    fn apply_subscribe(&mut self, filter: Filter, since: Option<Cursor>, ctx: &mut Context<Self>) {
        self.last_subscribe = Some(Instant::now());
        self.rate_told = false;
        self.filter = Some(filter).filter(|f| !f.is_empty()).map(Arc::new);
        self.since = since;
        self.subscribe(ctx);
    }

    /// Starts ending the session: stop the subscription, drop what is
    /// queued, send the close (WS close frame / SSE `close` event), and stop
    /// after `close_grace` even if the close cannot get through.
    pub(super) fn close(&mut self, reason: DisconnectReason, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        tracing::debug!(
            session = self.id,
            reason = reason.label(),
            "closing session"
        );
        self.closing = Some(reason);
        self.metrics.disconnect(reason);
        let _ = self.registry.try_send(Unsubscribe { id: self.id });
        self.outbox.clear_messages();
        if reason == DisconnectReason::TransportClosed {
            ctx.stop();
            return;
        }
        if reason == DisconnectReason::SlowConsumer {
            if let Some(suppressed) = EVICTION_LOG.allow() {
                tracing::warn!(
                    session = self.id,
                    transport = if self.is_sse() { "sse" } else { "ws" },
                    queued_bytes = self.outbox.bytes(),
                    write_stalled_ms = self.write_since.map(|t| t.elapsed().as_millis() as u64),
                    suppressed,
                    "evicting slow client ({suppressed} similar lines suppressed)"
                );
            }
        }
        if reason == DisconnectReason::Shutdown {
            // Tell the client why before the close, so it can show it.
            let sse = self.is_sse();
            self.outbox.push_counted(
                crate::protocol::encode::restarting_status(self.epoch, self.seq),
                Kind::Status,
                sse,
                usize::MAX,
            );
        }
        self.outbox.push(Out::Close(reason.code(), reason.text()));
        ctx.run_later(self.cfg.close_grace(), |_, ctx| ctx.stop());
        self.pump(ctx);
    }

    /// Counts one message handed to the transport (and, for deltas of
    /// live events, the event's age).
    fn count_delivery(&self, batch: Option<&crate::registry::Batch>, sse: bool) {
        let c = if sse {
            &self.metrics.delivered_sse
        } else {
            &self.metrics.delivered_ws
        };
        c.fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = batch.and_then(|b| b.event_ms) {
            let lag = chrono::Utc::now().timestamp_millis() - ms;
            self.metrics
                .event_lag
                .observe(std::time::Duration::from_millis(lag.max(0) as u64));
        }
    }

    /// Queues an uncounted item (control frames).
    pub(super) fn push_raw(&mut self, o: Out) {
        self.outbox.push(o);
    }

    /// Keepalive tick: eviction check, idle timeout, ping / comment.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        if self.evicted.load(Ordering::Acquire) {
            self.close(DisconnectReason::SlowConsumer, ctx);
            return;
        }
        match self.transport {
            Transport::Ws { .. } => {
                if self.last_heard.elapsed() > self.cfg.idle_timeout() {
                    self.close(DisconnectReason::IdleTimeout, ctx);
                    return;
                }
                self.outbox.push(Out::Ping);
            }
            Transport::Sse { .. } => {
                if self.outbox.is_empty() {
                    self.outbox
                        .push(Out::Raw(Bytes::from_static(b": keepalive\n\n")));
                }
            }
        }
        self.pump(ctx);
    }

    /// Marks a write as in flight and arms the write deadline: a write the
    /// connection does not take within `write_timeout` evicts the session
    /// (the client stopped reading; for SSE, actix-web stops polling the
    /// body once its write buffer is full, so the body channel stays full).
    fn begin_write(&mut self, ctx: &mut Context<Self>) {
        self.writing = true;
        self.write_since = Some(Instant::now());
        if !self.deadline_armed {
            self.deadline_armed = true;
            ctx.run_later(self.cfg.write_timeout(), |act, ctx| act.check_write(ctx));
        }
    }

    /// The write in flight completed (or failed).
    fn end_write(&mut self) {
        self.writing = false;
        self.write_since = None;
    }

    /// Write-deadline check: evict when the write in flight is older than
    /// `write_timeout`, else check again when the current one would expire.
    fn check_write(&mut self, ctx: &mut Context<Self>) {
        self.deadline_armed = false;
        let Some(since) = self.write_since else {
            return;
        };
        let limit = self.cfg.write_timeout();
        let age = since.elapsed();
        if age >= limit {
            if self.closing.is_none() {
                self.metrics.write_timeouts.fetch_add(1, Ordering::Relaxed);
                self.close(DisconnectReason::SlowConsumer, ctx);
            }
            return;
        }
        self.deadline_armed = true;
        ctx.run_later(limit - age, |act, ctx| act.check_write(ctx));
    }

    /// Publishes this session's queued bytes to the shared gauges.
    fn report_queued(&mut self) {
        let now = self.outbox.bytes();
        if now > self.reported {
            self.metrics
                .queued_bytes
                .fetch_add((now - self.reported) as u64, Ordering::Relaxed);
        } else if now < self.reported {
            self.metrics
                .queued_bytes
                .fetch_sub((self.reported - now) as u64, Ordering::Relaxed);
        }
        self.reported = now;
        let peak = self.outbox.peak();
        if peak > self.reported_peak {
            self.reported_peak = peak;
            self.metrics
                .queued_bytes_peak
                .fetch_max(peak as u64, Ordering::Relaxed);
        }
    }

    /// Writes queued items while the transport takes them, then publishes
    /// the queue's size.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_items(ctx);
        self.report_queued();
    }

    /// The bytes of one queued item in this client's form (`None`: nothing
    /// to send on this transport), and whether it ends the stream.
    fn wire_bytes(&mut self, item: Out) -> Option<(Bytes, bool)> {
        let retry = self.guard.draining().unwrap_or(self.cfg.sse_retry_ms);
        match &mut self.transport {
            Transport::Ws { deflate, .. } => Some(match item {
                Out::Msg { frame, .. } => (frame.ws_wire(*deflate), false),
                Out::Raw(_) => return None,
                Out::Ping => (wire::ws_ping(), false),
                Out::Pong(b) => (wire::ws_pong(&b), false),
                Out::Close(code, reason) => (wire::ws_close(code, reason), true),
            }),
            Transport::Sse { gzip, .. } => {
                let (block, last) = match (item, gzip.is_some()) {
                    (Out::Msg { frame, .. }, false) => return Some((frame.sse().clone(), false)),
                    (Out::Msg { frame, .. }, true) => (frame.sse_gzip(), false),
                    (Out::Raw(b), false) => return Some((b, false)),
                    (Out::Raw(b), true) => (GzipBlock::stored(&b), false),
                    (Out::Ping | Out::Pong(_), _) => return None,
                    (Out::Close(code, reason), z) => {
                        let b = crate::protocol::encode::sse_close(retry, code, reason);
                        if !z {
                            return Some((b, true));
                        }
                        (GzipBlock::stored(&b), true)
                    }
                };
                // gzip: account the block; the close also ends the member.
                let z = gzip.as_mut()?;
                z.add(&block);
                if last {
                    let mut all = bytes::BytesMut::from(&block.bytes[..]);
                    all.extend_from_slice(&z.trailer());
                    return Some((all.freeze(), true));
                }
                Some((block.bytes, false))
            }
        }
    }

    /// Hands queued items to the connection while its channel has room;
    /// when it is full, one write waits (under the write deadline) and the
    /// rest stay queued. Each message's shared bytes go whole: no copy, no
    /// future per message.
    fn pump_items(&mut self, ctx: &mut Context<Self>) {
        while !self.writing {
            if self.transport.tx().is_none() {
                return;
            }
            let sse = self.is_sse();
            let Some(item) = self.outbox.pop(sse) else {
                return;
            };
            if let Out::Msg { kind, .. } = &item {
                self.count_delivery(kind.batch(), sse);
            }
            let Some((bytes, last)) = self.wire_bytes(item) else {
                continue;
            };
            let Some(tx) = self.transport.tx() else {
                return;
            };
            match tx.try_send(bytes) {
                Ok(()) if last => {
                    self.transport.end();
                    ctx.stop();
                    return;
                }
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(bytes)) => {
                    let tx = tx.clone();
                    self.begin_write(ctx);
                    ctx.spawn(
                        async move { tx.send(bytes).await.is_ok() }
                            .into_actor(self)
                            .map(move |ok, act, ctx| {
                                act.end_write();
                                if !ok {
                                    act.close(DisconnectReason::TransportClosed, ctx);
                                } else if last {
                                    act.transport.end();
                                    ctx.stop();
                                } else {
                                    act.pump(ctx);
                                }
                            }),
                    );
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.close(DisconnectReason::TransportClosed, ctx);
                    return;
                }
            }
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.cfg.mailbox_capacity);
        self.active_gauge().fetch_add(1, Ordering::Relaxed);
        if let Transport::Sse { .. } = self.transport {
            self.outbox.push(Out::Raw(Bytes::from(format!(
                "retry: {}\n\n",
                self.cfg.sse_retry_ms
            ))));
        }
        self.subscribe(ctx);
        if let Some((hub, agents)) = self.interactions.clone() {
            // A division-scoped client watches only agents of its divisions.
            let divisions = self.scope.as_ref().and_then(|p| p.divisions.clone());
            let registry = self.registry.clone();
            let watch = crate::interactions::Watch {
                session_id: self.id,
                agents: Vec::new(),
                recipient: ctx.address().recipient(),
            };
            ctx.spawn(
                async move {
                    let mut watch = watch;
                    for a in agents {
                        let allowed = match &divisions {
                            None => true,
                            Some(d) => matches!(
                                registry.send(crate::registry::GetAgent { id: a.clone() }).await,
                                Ok(Some(r)) if d.contains(&r.agent.division.id)
                            ),
                        };
                        if allowed {
                            watch.agents.push(a);
                        }
                    }
                    if !watch.agents.is_empty() {
                        let _ = hub.try_send(watch);
                    }
                }
                .into_actor(self),
            );
        }
        if let Some(hub) = &self.queues {
            let _ = hub.try_send(crate::queues::WatchQueues {
                session_id: self.id,
                divisions: self.scope.as_ref().and_then(|p| p.divisions.clone()),
                recipient: ctx.address().recipient(),
            });
        }
        ctx.run_interval(self.cfg.keepalive(), |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(hub) = &self.queues {
            let _ = hub.try_send(crate::queues::UnwatchQueues {
                session_id: self.id,
            });
        }
        if let Some((hub, _)) = &self.interactions {
            let _ = hub.try_send(crate::interactions::Unwatch {
                session_id: self.id,
            });
        }
        self.active_gauge().fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .queued_bytes
            .fetch_sub(self.reported as u64, Ordering::Relaxed);
        self.reported = 0;
        if self.closing.is_none() {
            self.metrics.disconnect(DisconnectReason::TransportClosed);
            let _ = self.registry.try_send(Unsubscribe { id: self.id });
        }
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if self.closing.is_some() {
            return;
        }
        if self.evicted.load(Ordering::Acquire) {
            self.close(DisconnectReason::SlowConsumer, ctx);
            return;
        }
        match msg {
            Deliver::Delta { batch, frame } => {
                // Anything at or before our starting point is already covered.
                if batch.seq <= self.seq {
                    return;
                }
                self.seq = batch.seq;
                if self.push_delta(batch, frame, ctx) {
                    return;
                }
            }
            Deliver::Status(frame) => {
                return self.push_message(frame, Kind::Status, ctx);
            }
            // Interaction and queue messages are kept in order (never folded
            // into "the latest status"): each one carries its own agent or queue.
            Deliver::Interaction(frame) | Deliver::Queues(frame) => {
                return self.push_message(frame, Kind::Reply, ctx);
            }
            Deliver::Shutdown => {
                self.close(DisconnectReason::Shutdown, ctx);
                return;
            }
        }
        self.pump(ctx);
    }
}

/// Stops a session (graceful shutdown): it closes with 1001 / SSE `close`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Session {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.close(DisconnectReason::Shutdown, ctx);
    }
}
