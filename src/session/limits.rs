//! Connection limits (global and per source IP) and per-reason counters,
//! shared by every session through [`crate::http::AppState`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::close::DisconnectReason;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    /// `session.max_connections` reached (503).
    Global(usize),
    /// `session.max_connections_per_ip` reached for this IP (429).
    PerIp(IpAddr, usize),
}

/// Live connection counts.
#[derive(Debug)]
pub struct ConnLimits {
    max: usize,
    per_ip: usize,
    total: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    /// While a drain runs: the `retry:` hint in ms (0: not draining).
    drain_retry_ms: AtomicU64,
}

/// Held by a session for its lifetime; releases its slot on drop.
#[derive(Debug)]
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    /// Limits with the given maxima.
    pub fn new(max: usize, per_ip: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max,
            per_ip,
            total: AtomicUsize::new(0),
            by_ip: Mutex::new(HashMap::new()),
            drain_retry_ms: AtomicU64::new(0),
        })
    }

    /// Marks the start of a drain: from now on stream requests get a
    /// draining answer (not an HTTP error) carrying this reconnect hint,
    /// and sessions closed by the drain send it as their SSE `retry:`.
    pub fn begin_drain(&self, retry_ms: u64) {
        self.drain_retry_ms
            .store(retry_ms.max(1), Ordering::Release);
    }

    /// The drain's reconnect hint in ms, while a drain runs.
    pub fn draining(&self) -> Option<u64> {
        Some(self.drain_retry_ms.load(Ordering::Acquire)).filter(|ms| *ms > 0)
    }

    /// Current number of connections.
    pub fn active(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Takes a slot for a new connection from `ip`.
    pub fn try_acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnGuard, LimitError> {
        // unwrap: the lock is never held across a panic point.
        let mut by_ip = self.by_ip.lock().unwrap();
        if self.total.load(Ordering::Acquire) >= self.max {
            return Err(LimitError::Global(self.max));
        }
        if let Some(ip) = ip {
            let n = by_ip.entry(ip).or_insert(0);
            if *n >= self.per_ip {
                return Err(LimitError::PerIp(ip, self.per_ip));
            }
            *n += 1;
        }
        self.total.fetch_add(1, Ordering::AcqRel);
        Ok(ConnGuard {
            limits: self.clone(),
            ip,
        })
    }
}

impl ConnGuard {
    /// The drain's reconnect hint in ms, while a drain runs
    /// ([`ConnLimits::draining`]).
    pub fn draining(&self) -> Option<u64> {
        self.limits.draining()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // unwrap: the lock is never held across a panic point.
        let mut by_ip = self.limits.by_ip.lock().unwrap();
        if let Some(ip) = self.ip {
            if let Some(n) = by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Session counters (exported by `/metrics`; read by tests).
#[derive(Debug, Default)]
pub struct SessionMetrics {
    /// WebSocket sessions opened.
    pub opened_ws: AtomicU64,
    /// SSE sessions opened.
    pub opened_sse: AtomicU64,
    /// WebSocket sessions opened with permessage-deflate.
    pub compressed_ws: AtomicU64,
    /// SSE sessions opened with a gzip body.
    pub compressed_sse: AtomicU64,
    /// Refused: global limit.
    pub refused_global: AtomicU64,
    /// Refused: per-IP limit.
    pub refused_ip: AtomicU64,
    /// Times a session's queued deltas were coalesced.
    pub coalesced: AtomicU64,
    /// Malformed client messages.
    pub malformed: AtomicU64,
    /// Disconnects by reason, indexed by [`DisconnectReason::index`].
    pub disconnects: [AtomicU64; DisconnectReason::ALL.len()],
    /// Open WebSocket sessions.
    pub active_ws: AtomicU64,
    /// Open SSE sessions.
    pub active_sse: AtomicU64,
    /// Messages written to WebSocket clients.
    pub delivered_ws: AtomicU64,
    /// Messages written to SSE clients.
    pub delivered_sse: AtomicU64,
    /// Bytes queued in every session's outbox right now (snapshots,
    /// deltas, status and replies; what sits in the transport's own small
    /// buffers is not included).
    pub queued_bytes: AtomicU64,
    /// Most bytes any one session has had queued at once since start.
    pub queued_bytes_peak: AtomicU64,
    /// WebSocket `subscribe`s replaced by a later one before they were
    /// applied (rate limit, `session.subscribe_interval_ms`).
    pub subscribes_coalesced: AtomicU64,
    /// Sessions evicted because the connection took no write for
    /// `session.write_timeout_secs` (also counted as `slow_consumer`).
    pub write_timeouts: AtomicU64,
    /// Genesys event time → delivery, per delta delivered.
    pub event_lag: crate::telemetry::Histogram,
}

impl SessionMetrics {
    /// Counts one disconnect.
    pub fn disconnect(&self, r: DisconnectReason) {
        self.disconnects[r.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Disconnects so far for one reason.
    pub fn disconnects(&self, r: DisconnectReason) -> u64 {
        self.disconnects[r.index()].load(Ordering::Relaxed)
    }
}
