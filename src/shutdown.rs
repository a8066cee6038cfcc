//! Graceful drain (SIGTERM / SIGINT, or [`crate::app::Gateway::shutdown`]).
//!
//! One call, in order:
//! 1. stop accepting: the listener is paused; a stream request that still
//!    arrives (on an already-open keep-alive connection) is never an HTTP
//!    error: SSE gets 200 with the final `status` and `close` event and a
//!    `retry:` hint that outlasts the drain, then the connection closes;
//!    WebSocket is upgraded, gets the `status`, and is closed with 1001
//!    (`crate::session::draining`);
//! 2. tell every stream client, spread over `server.drain_spread_secs` so
//!    that they do not all reconnect at the same instant: each session
//!    sends a final `status` (`"state":"restarting"`) and closes (WebSocket
//!    1001; SSE `close` event carrying the drain's `retry:` hint, then end
//!    of stream);
//! 3. wait for the sessions to be gone, stop the upstream, let the journal
//!    commit every change the registry applied (the registry hands its tap's
//!    backlog over and sends a barrier behind it, [`FlushJournal`]), try the
//!    write records still kept in memory once more
//!    ([`crate::writes::Writes::flush_records`]), let the
//!    store finish what it was asked (a barrier message: the SQLite actor
//!    answers in order, so every earlier write is committed), stop the
//!    server;
//!
//! all within `server.drain_secs`. actix-web does not close long-lived
//! connections on stop (actix-web issue #3169), which is why the sessions
//! close themselves first.

use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::AppState;
use crate::registry::{CloseAll, CloseSome, FlushJournal, GetStats, Registry};
use crate::store::{ListLeases, Store};

/// How long a drain may take.
#[derive(Debug, Clone, Copy)]
pub struct DrainConfig {
    /// The whole drain ends within this.
    pub grace: Duration,
    /// Stream closes are spread over this window (`< grace`).
    pub spread: Duration,
}

/// What a drain did (logged, and returned to tests).
#[derive(Debug, Clone, Copy)]
pub struct DrainReport {
    /// Sessions subscribed when the drain started.
    pub sessions: usize,
    /// Stream connections still open when the server was stopped.
    pub left_open: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// The parts of a running gateway a drain stops.
pub struct DrainTargets<'a> {
    pub server: &'a ServerHandle,
    pub registry: &'a Addr<Registry>,
    pub state: &'a AppState,
    pub store: &'a Addr<Store>,
    /// Cancels the upstream and background loops.
    pub stop: &'a CancellationToken,
}

/// Interval between close waves while spreading.
const WAVE: Duration = Duration::from_millis(100);
/// Kept back from the grace period for stopping the store and server.
const STOP_MARGIN: Duration = Duration::from_millis(750);

/// The SSE `retry:` hint (ms) sent while draining: a client closed at any
/// point of the spread reconnects after the spread, the stop margin and
/// its usual `session.sse_retry_ms` have passed, i.e. once the drain is
/// over and (behind a load balancer or a restart) a new process answers.
pub fn drain_retry_ms(cfg: DrainConfig, sse_retry_ms: u64) -> u64 {
    (cfg.spread + STOP_MARGIN).as_millis() as u64 + sse_retry_ms
}

/// Drains and stops the gateway; see the module docs.
pub async fn drain(t: DrainTargets<'_>, cfg: DrainConfig) -> DrainReport {
    let started = Instant::now();
    let deadline = started + cfg.grace;
    let close_by = deadline
        .checked_sub(STOP_MARGIN)
        .filter(|d| *d > started)
        .unwrap_or(started);
    t.state
        .limits
        .begin_drain(drain_retry_ms(cfg, t.state.session.sse_retry_ms));
    t.server.pause().await;
    let sessions = t
        .registry
        .send(GetStats)
        .await
        .map(|s| s.subscribers)
        .unwrap_or(0);
    tracing::info!(
        sessions,
        grace_ms = cfg.grace.as_millis() as u64,
        spread_ms = cfg.spread.as_millis() as u64,
        "draining"
    );

    // Waves: an equal share of the sessions every WAVE across the spread.
    let waves = (cfg.spread.as_millis() / WAVE.as_millis()).max(1) as usize;
    let per_wave = sessions.div_ceil(waves).max(1);
    let spread_end = (started + cfg.spread).min(close_by);
    loop {
        let left = t
            .registry
            .send(CloseSome { max: per_wave })
            .await
            .unwrap_or(0);
        if left == 0 || Instant::now() >= spread_end {
            break;
        }
        tokio::time::sleep_until((Instant::now() + WAVE).min(spread_end)).await;
    }

    // Stragglers (a session that subscribed mid-drain), then wait until
    // every stream connection is gone.
    loop {
        let _ = t.registry.send(CloseAll).await;
        if t.state.limits.active() == 0 || Instant::now() >= close_by {
            break;
        }
        tokio::time::sleep_until((Instant::now() + Duration::from_millis(50)).min(close_by)).await;
    }
    let left_open = t.state.limits.active();

    t.stop.cancel();
    // The journal: everything the registry applied is committed (history
    // and webhooks lose nothing to a restart), or the deadline passed.
    while let Ok(Ok(false)) = tokio::time::timeout_at(deadline, t.registry.send(FlushJournal)).await
    {
        tokio::time::sleep_until((Instant::now() + Duration::from_millis(20)).min(deadline)).await;
    }
    // Records of accepted writes the store could not take yet: one more
    // try each (the record loop stopped with the rest).
    if let Some(w) = t.state.writes() {
        if let Err(left) = tokio::time::timeout_at(deadline, w.flush_records())
            .await
            .unwrap_or(Err(w.records_pending()))
        {
            tracing::error!(records = left, "drained with write records the store did not take; their audit records stay `pending` and are marked `interrupted` at the next start");
        }
    }
    // Barrier: answered after every write queued before it.
    let _ = tokio::time::timeout_at(deadline, t.store.send(ListLeases)).await;
    if tokio::time::timeout_at(deadline, t.server.stop(true))
        .await
        .is_err()
    {
        t.server.stop(false).await;
    }
    let report = DrainReport {
        sessions,
        left_open,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        sessions,
        left_open,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "drained"
    );
    report
}
