//! Telemetry primitives, a leaf every layer may use: the metric names and
//! help texts, the latency [`Histogram`]s (shared atomic and actor-local)
//! and the webhook outcome counters. Nothing here reads other modules; the
//! `/metrics` handler that gathers and renders them is
//! [`crate::http::metrics`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Metric names, in one place.
pub mod names {
    /// Open stream connections, label `transport` (`ws` | `sse`).
    pub const CONNECTIONS: &str = "presence_gateway_connections";
    /// Stream connections opened, label `transport`.
    pub const CONNECTIONS_OPENED: &str = "presence_gateway_connections_opened_total";
    /// Stream connections opened compressed (WebSocket permessage-deflate,
    /// gzip SSE), label `transport`.
    pub const CONNECTIONS_COMPRESSED: &str = "presence_gateway_connections_compressed_total";
    /// Connections refused by a limit, label `limit` (`global` | `per_ip`).
    pub const CONNECTIONS_REFUSED: &str = "presence_gateway_connections_refused_total";
    /// Messages (snapshot, delta, status) written to clients, label `transport`.
    pub const DELIVERIES: &str = "presence_gateway_deliveries_total";
    /// Deltas coalesced for a client that fell behind.
    pub const COALESCED: &str = "presence_gateway_deltas_coalesced_total";
    /// Bytes queued for stream clients (all sessions' outboxes).
    pub const QUEUED_BYTES: &str = "presence_gateway_session_queued_bytes";
    /// Most bytes any one session had queued at once.
    pub const QUEUED_BYTES_PEAK: &str = "presence_gateway_session_queued_bytes_peak";
    /// WebSocket `subscribe`s coalesced by the rate limit.
    pub const SUBSCRIBES_COALESCED: &str = "presence_gateway_subscribes_coalesced_total";
    /// Sessions evicted by the write deadline.
    pub const WRITE_TIMEOUTS: &str = "presence_gateway_session_write_timeouts_total";
    /// Sessions evicted by the registry (mailbox full).
    pub const EVICTED: &str = "presence_gateway_sessions_evicted_total";
    /// Upstream events the registry dropped, label `reason`.
    pub const EVENTS_DROPPED: &str = "presence_gateway_events_dropped_total";
    /// Sessions ended, label `reason` (see `session::close`).
    pub const DISCONNECTS: &str = "presence_gateway_disconnects_total";
    /// Malformed client messages.
    pub const MALFORMED: &str = "presence_gateway_client_messages_malformed_total";
    /// Resume attempts, label `outcome` (`replayed` | `snapshot`).
    pub const RESUMES: &str = "presence_gateway_resumes_total";
    /// Genesys event time → delivery to a client, seconds.
    pub const EVENT_LAG: &str = "presence_gateway_event_lag_seconds";
    /// Time the registry spends handing one batch to every session, seconds.
    pub const FANOUT: &str = "presence_gateway_fanout_duration_seconds";
    /// Changes emitted by the registry.
    pub const CHANGES: &str = "presence_gateway_changes_total";
    /// Agents in the directory.
    pub const AGENTS: &str = "presence_gateway_agents";
    /// Last emitted batch number.
    pub const SEQ: &str = "presence_gateway_seq";
    /// Upstream REST calls (the rate budget's use).
    pub const REST_CALLS: &str = "presence_gateway_upstream_rest_calls_total";
    /// Upstream 429 answers.
    pub const RATE_LIMITED: &str = "presence_gateway_upstream_rate_limited_total";
    /// Notification channel reconnects.
    pub const RECONNECTS: &str = "presence_gateway_upstream_reconnects_total";
    /// Topics Genesys refuses to subscribe (dropped from their channels).
    pub const REFUSED_TOPICS: &str = "presence_gateway_upstream_refused_topics";
    /// Channel re-plans after a topic-count refusal.
    pub const REPLANS: &str = "presence_gateway_upstream_replans_total";
    /// Channel retries held back by `retry_share`.
    pub const RETRIES_HELD: &str = "presence_gateway_upstream_retries_held_total";
    /// Anti-entropy sweep steps (up to 100 agents re-read each).
    pub const SWEEP_STEPS: &str = "presence_gateway_upstream_sweep_steps_total";
    /// Full anti-entropy sweeps over every agent.
    pub const SWEEPS: &str = "presence_gateway_upstream_sweeps_total";
    /// Presence definition re-reads after an event named an unknown one.
    pub const DEFINITION_REREADS: &str = "presence_gateway_upstream_definition_rereads_total";
    /// Agents re-read because a frame about them could not be used.
    pub const AGENT_REREADS: &str = "presence_gateway_upstream_agent_rereads_total";
    /// Reconciliations through REST after a gap.
    pub const RECONCILES: &str = "presence_gateway_upstream_reconciles_total";
    /// Upstream events received.
    pub const UPSTREAM_EVENTS: &str = "presence_gateway_upstream_events_total";
    /// Upstream errors (5xx, timeouts, refused).
    pub const UPSTREAM_ERRORS: &str = "presence_gateway_upstream_errors_total";
    /// Genesys records skipped because they did not parse.
    pub const RECORDS_SKIPPED: &str = "presence_gateway_upstream_records_skipped_total";
    /// Lone UTF-16 surrogate escapes in Genesys JSON rewritten as U+FFFD.
    pub const SURROGATES_REPAIRED: &str = "presence_gateway_upstream_surrogates_repaired_total";
    /// OAuth token fetches.
    pub const TOKEN_FETCHES: &str = "presence_gateway_upstream_token_fetches_total";
    /// Webhook deliveries, label `outcome` (`delivered` | `retried` | `failed`).
    pub const WEBHOOKS: &str = "presence_gateway_webhook_deliveries_total";
    /// Webhook events per subscriber, label `outcome`.
    pub const WEBHOOK_EVENTS: &str = "presence_gateway_webhook_events_total";
    /// Webhook events waiting per subscriber.
    pub const WEBHOOK_PENDING: &str = "presence_gateway_webhook_pending";
    /// Requests refused by auth, label `status` (`401` | `403`).
    pub const AUTH_REFUSED: &str = "presence_gateway_auth_refused_total";
    /// Stream tickets, label `event` (`issued` | `redeemed`).
    pub const TICKETS: &str = "presence_gateway_tickets_total";
    /// 1 while the store takes writes and no record waits, else 0.
    pub const STORE_HEALTHY: &str = "presence_gateway_store_healthy";
    pub const CLUSTER_LEADER: &str = "presence_gateway_cluster_leader";
    pub const CLUSTER_REDIS_UP: &str = "presence_gateway_cluster_redis_up";
    pub const CLUSTER_REDIS_OPS: &str = "presence_gateway_cluster_redis_ops_total";
    pub const CLUSTER_PUBLISHED: &str = "presence_gateway_cluster_published_total";
    pub const CLUSTER_APPLIED: &str = "presence_gateway_cluster_applied_total";
    pub const CLUSTER_SNAPSHOTS: &str = "presence_gateway_cluster_snapshots_loaded_total";
    pub const CLUSTER_RELAYED: &str = "presence_gateway_cluster_relayed_total";
    pub const CLUSTER_RELAY_TIMEOUTS: &str = "presence_gateway_cluster_relay_timeouts_total";
    pub const CLUSTER_REDIS_ERRORS: &str = "presence_gateway_cluster_redis_errors_total";
    /// Failed store writes, label `op` (`begin` | `commit` | `audit` |
    /// `journal` | `outbox` | `lease` | `recovery` | `probe`).
    pub const STORE_FAILURES: &str = "presence_gateway_store_failures_total";
    /// Accepted writes whose record waits in memory for the store.
    pub const STORE_RECORDS_PENDING: &str = "presence_gateway_store_records_pending";
    /// Writes refused before Genesys (503 `store_unavailable`).
    pub const STORE_WRITES_REFUSED: &str = "presence_gateway_store_writes_refused_total";
    /// Keys left in flight by a previous run, settled, label `outcome`
    /// (`applied` | `abandoned`).
    pub const STORE_KEYS_SETTLED: &str = "presence_gateway_idempotency_keys_settled_total";
}

/// Upper bounds (seconds) of the latency histograms' buckets: 1 ms to
/// 10 s, fine around the 50 ms p99 target of design.md.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn bucket_of(secs: f64) -> usize {
    BUCKETS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(BUCKETS.len())
}

/// A latency histogram shared between threads (one atomic per bucket).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket counts (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        self.buckets[bucket_of(d.as_secs_f64())].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> LocalHistogram {
        let mut h = LocalHistogram::default();
        for (d, s) in h.buckets.iter_mut().zip(&self.buckets) {
            *d = s.load(Ordering::Relaxed);
        }
        h.sum_us = self.sum_us.load(Ordering::Relaxed);
        h
    }
}

/// A histogram owned by one actor (no atomics), e.g. the registry's
/// fan-out duration; copied out with its stats.
#[derive(Debug, Clone, Default)]
pub struct LocalHistogram {
    /// Per-bucket counts (not cumulative); the last is `+Inf`.
    pub buckets: [u64; BUCKETS.len() + 1],
    /// Sum in microseconds.
    pub sum_us: u64,
}

impl LocalHistogram {
    /// Records one observation.
    pub fn observe(&mut self, d: Duration) {
        self.buckets[bucket_of(d.as_secs_f64())] += 1;
        self.sum_us += d.as_micros() as u64;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Webhook delivery outcomes. The webhook sender calls [`Self::record`];
/// until it is wired, the series are exported at zero.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// Delivered (2xx).
    pub delivered: AtomicU64,
    /// Failed once, will be retried.
    pub retried: AtomicU64,
    /// Gave up.
    pub failed: AtomicU64,
}

/// A webhook delivery's outcome.
#[derive(Debug, Clone, Copy)]
pub enum WebhookOutcome {
    Delivered,
    Retried,
    Failed,
}

impl WebhookMetrics {
    /// Counts one outcome.
    pub fn record(&self, o: WebhookOutcome) {
        let c = match o {
            WebhookOutcome::Delivered => &self.delivered,
            WebhookOutcome::Retried => &self.retried,
            WebhookOutcome::Failed => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub use limiter::LogLimiter;

pub mod limiter {
    //! Log-line rate limiting for repeating conditions (an upstream that keeps
    //! failing to reconnect, a stream of slow-client evictions): a
    //! [`LogLimiter`] lets one line through per interval and counts the lines
    //! it held back, so the next line that gets through can say how many were
    //! suppressed. One limiter per call site, usually a `static`.
    //!
    //! Lock-free (two atomics); shared by every thread that logs at that site.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// Lets one log line through per interval and counts the rest.
    ///
    /// ```
    /// use std::time::Duration;
    /// use presence_gateway::telemetry::LogLimiter;
    /// static WARN: LogLimiter = LogLimiter::new(Duration::from_secs(10));
    /// if let Some(suppressed) = WARN.allow() {
    ///     tracing::warn!(suppressed, "upstream still unreachable");
    /// }
    /// ```
    #[derive(Debug)]
    pub struct LogLimiter {
        /// Minimum time between two lines, in milliseconds.
        every_ms: u64,
        /// Earliest time the next line may go out, in ms since [`base`] (0:
        /// nothing logged yet).
        next_ms: AtomicU64,
        /// Lines held back since the last one that went out.
        suppressed: AtomicU64,
    }

    /// The process-wide time origin of every limiter.
    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    impl LogLimiter {
        /// A limiter letting one line through per `every`.
        pub const fn new(every: Duration) -> LogLimiter {
            LogLimiter {
                every_ms: every.as_millis() as u64,
                next_ms: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
            }
        }

        /// `Some(n)`: log now, and say that `n` lines were suppressed since the
        /// previous one. `None`: skip this line (it is counted).
        pub fn allow(&self) -> Option<u64> {
            // +1 so that the very first call (at 0 ms) is distinguishable.
            self.allow_at(base().elapsed().as_millis() as u64 + 1)
        }

        /// [`Self::allow`] at an explicit time (ms on any monotonic clock that
        /// starts above 0), for tests.
        pub fn allow_at(&self, now_ms: u64) -> Option<u64> {
            let next = self.next_ms.load(Ordering::Acquire);
            if now_ms >= next
                && self
                    .next_ms
                    .compare_exchange(
                        next,
                        now_ms + self.every_ms,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
            {
                return Some(self.suppressed.swap(0, Ordering::AcqRel));
            }
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// One line per interval gets through; the next one reports how many
        /// were held back in between; a quiet period lets the next line out at
        /// once.
        #[test]
        fn one_line_per_interval_with_suppressed_count() {
            let l = LogLimiter::new(Duration::from_millis(1000));
            assert_eq!(l.allow_at(1), Some(0));
            // A reconnect WARN every 400 ms: two held back per second.
            assert_eq!(l.allow_at(401), None);
            assert_eq!(l.allow_at(801), None);
            assert_eq!(l.allow_at(1001), Some(2));
            assert_eq!(l.allow_at(1401), None);
            assert_eq!(l.allow_at(2000), None);
            assert_eq!(l.allow_at(2001), Some(2));
            // After a quiet minute the first line goes out immediately.
            assert_eq!(l.allow_at(62_000), Some(0));
            assert_eq!(l.allow_at(62_999), None);
        }

        /// Many threads at one call site: exactly one line per interval.
        #[test]
        fn concurrent_callers_let_one_line_through() {
            let l = std::sync::Arc::new(LogLimiter::new(Duration::from_secs(60)));
            let allowed: u64 = (0..8)
                .map(|_| {
                    let l = l.clone();
                    std::thread::spawn(move || {
                        (0..1000).filter(|_| l.allow_at(5).is_some()).count()
                    })
                })
                .map(|h| h.join().unwrap() as u64)
                .sum();
            assert_eq!(allowed, 1);
            assert_eq!(l.allow_at(60_005), Some(7999));
        }
    }
}
