//! `/metrics`: gathers every counter (names and help texts in
//! [`crate::telemetry`]) and writes the Prometheus text
//! exposition (format 0.0.4), written by hand (no metrics crate: the
//! counters already live where the work happens, as atomics).
//!
//! Sources, read at scrape time: [`SessionMetrics`] (connections,
//! deliveries, event lag, disconnects), the registry's [`RegistryStats`]
//! (fan-out duration, resumes, dropped events, evictions), the upstream's
//! [`UpstreamStats`] (REST budget use, 429s, reconnects), the auth layer's
//! counters and [`WebhookMetrics`] (fed by the webhook sender). Nothing
//! here holds presence data, and no label carries a credential or token.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::genesys::UpstreamStats;
use crate::http::AppState;
use crate::registry::{GetStats, RegistryStats};
use crate::session::{DisconnectReason, SessionMetrics};

pub use crate::telemetry::{
    names, Histogram, LocalHistogram, WebhookMetrics, WebhookOutcome, BUCKETS,
};

/// What `/metrics` reads besides the registry: set by `app::start`.
#[derive(Clone, Default)]
pub struct OpsHandles {
    /// The upstream's counters (absent in registry-only test gateways).
    pub upstream: Option<Arc<UpstreamStats>>,
    /// Webhook outcomes.
    pub webhooks: Arc<WebhookMetrics>,
    /// Store health (absent in registry-only test gateways).
    pub store: Option<Arc<crate::store::StoreHealth>>,
}

/// Writes Prometheus text.
struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: u64) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {v}");
    }

    fn labelled(&mut self, name: &str, kind: &str, help: &str, label: &str, vs: &[(&str, u64)]) {
        self.head(name, kind, help);
        for (l, v) in vs {
            let _ = writeln!(self.0, "{name}{{{label}=\"{l}\"}} {v}");
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &LocalHistogram) {
        self.head(name, "histogram", help);
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += h.buckets[i];
            let _ = writeln!(self.0, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += h.buckets[BUCKETS.len()];
        let _ = writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(self.0, "{name}_sum {}", h.sum_us as f64 / 1e6);
        let _ = writeln!(self.0, "{name}_count {cum}");
    }
}

fn ld(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Renders every series.
pub fn render(
    s: &SessionMetrics,
    r: &RegistryStats,
    ops: &OpsHandles,
    auth: &crate::auth::AuthMetrics,
) -> String {
    use names::*;
    let mut o = Out(String::with_capacity(8192));
    o.labelled(
        CONNECTIONS,
        "gauge",
        "Open stream connections by transport.",
        "transport",
        &[("ws", ld(&s.active_ws)), ("sse", ld(&s.active_sse))],
    );
    o.labelled(
        CONNECTIONS_OPENED,
        "counter",
        "Stream connections opened by transport.",
        "transport",
        &[("ws", ld(&s.opened_ws)), ("sse", ld(&s.opened_sse))],
    );
    o.labelled(
        CONNECTIONS_COMPRESSED,
        "counter",
        "Stream connections opened compressed (WebSocket permessage-deflate, gzip SSE).",
        "transport",
        &[("ws", ld(&s.compressed_ws)), ("sse", ld(&s.compressed_sse))],
    );
    o.labelled(
        CONNECTIONS_REFUSED,
        "counter",
        "Stream connections refused by a connection limit.",
        "limit",
        &[
            ("global", ld(&s.refused_global)),
            ("per_ip", ld(&s.refused_ip)),
        ],
    );
    o.labelled(
        DELIVERIES,
        "counter",
        "Messages written to stream clients by transport.",
        "transport",
        &[("ws", ld(&s.delivered_ws)), ("sse", ld(&s.delivered_sse))],
    );
    o.one(
        COALESCED,
        "counter",
        "Times a slow client's queued deltas were coalesced.",
        ld(&s.coalesced),
    );
    o.one(
        QUEUED_BYTES,
        "gauge",
        "Bytes queued for stream clients (snapshots, deltas, status, replies), all sessions.",
        ld(&s.queued_bytes),
    );
    o.one(
        QUEUED_BYTES_PEAK,
        "gauge",
        "Most bytes any one stream session had queued at once since start.",
        ld(&s.queued_bytes_peak),
    );
    o.one(
        SUBSCRIBES_COALESCED,
        "counter",
        "WebSocket subscribes replaced by a later one before being applied (rate limit).",
        ld(&s.subscribes_coalesced),
    );
    o.one(
        WRITE_TIMEOUTS,
        "counter",
        "Sessions evicted because their connection took no write within the write deadline.",
        ld(&s.write_timeouts),
    );
    o.one(
        EVICTED,
        "counter",
        "Sessions evicted by the registry because their mailbox was full.",
        r.evicted_full,
    );
    o.labelled(
        EVENTS_DROPPED,
        "counter",
        "Upstream events the registry dropped, by reason.",
        "reason",
        &[
            ("stale", r.dropped.stale),
            ("duplicate", r.dropped.duplicate),
            ("unknown_user", r.dropped.unknown_user),
        ],
    );
    let disc: Vec<(&str, u64)> = DisconnectReason::ALL
        .iter()
        .map(|d| (d.label(), s.disconnects(*d)))
        .collect();
    o.labelled(
        DISCONNECTS,
        "counter",
        "Stream sessions ended, by reason.",
        "reason",
        &disc,
    );
    o.one(
        MALFORMED,
        "counter",
        "Malformed messages received from clients.",
        ld(&s.malformed),
    );
    o.labelled(
        RESUMES,
        "counter",
        "Resume attempts by outcome.",
        "outcome",
        &[("replayed", r.resumed), ("snapshot", r.resume_failed)],
    );
    o.histogram(
        EVENT_LAG,
        "Genesys event time to delivery to a client.",
        &s.event_lag.snapshot(),
    );
    o.histogram(
        FANOUT,
        "Time to hand one batch to every session.",
        &r.fanout,
    );
    o.one(CHANGES, "counter", "Agent changes emitted.", r.changes);
    o.one(AGENTS, "gauge", "Agents in the directory.", r.agents as u64);
    o.one(SEQ, "gauge", "Last emitted batch number.", r.seq);
    let up = ops.upstream.as_deref();
    let u = |f: fn(&UpstreamStats) -> &AtomicU64| up.map_or(0, |u| ld(f(u)));
    o.one(
        REST_CALLS,
        "counter",
        "Upstream REST calls (use of the rate budget).",
        u(|u| &u.rest_calls),
    );
    o.one(
        RATE_LIMITED,
        "counter",
        "Upstream 429 answers.",
        u(|u| &u.rate_limited),
    );
    o.one(
        RECONNECTS,
        "counter",
        "Notification channel reconnects.",
        u(|u| &u.reconnects),
    );
    o.one(
        REFUSED_TOPICS,
        "gauge",
        "Topics Genesys refuses to subscribe (dropped from their channels; see /readyz).",
        u(|u| &u.refused_topics),
    );
    o.one(
        REPLANS,
        "counter",
        "Channel re-plans after Genesys refused a channel's topic count.",
        u(|u| &u.replans),
    );
    o.one(
        RETRIES_HELD,
        "counter",
        "Channel retries held back because their cause used its share of the REST budget.",
        u(|u| &u.retries_held),
    );
    o.one(
        SWEEP_STEPS,
        "counter",
        "Anti-entropy sweep steps (up to 100 agents re-read through the bulk endpoints each).",
        u(|u| &u.sweep_steps),
    );
    o.one(
        SWEEPS,
        "counter",
        "Full anti-entropy sweeps over every agent.",
        u(|u| &u.sweeps),
    );
    o.one(
        DEFINITION_REREADS,
        "counter",
        "Presence definition re-reads after an event named an unknown definition.",
        u(|u| &u.definition_rereads),
    );
    o.one(
        AGENT_REREADS,
        "counter",
        "Agents re-read through REST because a notification frame about them could not be used.",
        u(|u| &u.agent_rereads),
    );
    o.one(
        RECONCILES,
        "counter",
        "Reconciliations through REST after a gap.",
        u(|u| &u.reconciles),
    );
    o.one(
        UPSTREAM_EVENTS,
        "counter",
        "Upstream presence and routing events received.",
        u(|u| &u.events),
    );
    o.one(
        UPSTREAM_ERRORS,
        "counter",
        "Upstream errors.",
        u(|u| &u.upstream_errors),
    );
    o.one(
        RECORDS_SKIPPED,
        "counter",
        "Genesys records skipped because they did not parse (the rest of their page was kept).",
        crate::genesys::lenient::SKIPPED_RECORDS.load(Ordering::Relaxed),
    );
    o.one(
        SURROGATES_REPAIRED,
        "counter",
        "Lone UTF-16 surrogate escapes in Genesys JSON rewritten as U+FFFD.",
        crate::genesys::lenient::REPAIRED_SURROGATES.load(Ordering::Relaxed),
    );
    o.one(
        TOKEN_FETCHES,
        "counter",
        "OAuth token fetches.",
        u(|u| &u.token_fetches),
    );
    let w = &ops.webhooks;
    o.labelled(
        WEBHOOKS,
        "counter",
        "Webhook deliveries by outcome.",
        "outcome",
        &[
            ("delivered", ld(&w.delivered)),
            ("retried", ld(&w.retried)),
            ("failed", ld(&w.failed)),
        ],
    );
    o.labelled(
        AUTH_REFUSED,
        "counter",
        "Requests refused by authentication (401) or authorisation (403).",
        "status",
        &[
            ("401", ld(&auth.unauthenticated)),
            ("403", ld(&auth.forbidden)),
        ],
    );
    o.labelled(
        TICKETS,
        "counter",
        "Stream tickets issued and redeemed.",
        "event",
        &[
            ("issued", ld(&auth.tickets_issued)),
            ("redeemed", ld(&auth.tickets_redeemed)),
        ],
    );
    o.0
}

/// Per-subscriber webhook series from the delivery counters.
fn render_webhooks(out: &mut String, hooks: &crate::webhooks::Webhooks) {
    use std::fmt::Write;
    let subs: Vec<_> = hooks.stats().collect();
    let _ = writeln!(
        out,
        "# HELP {} Webhook events by subscriber and outcome.",
        names::WEBHOOK_EVENTS
    );
    let _ = writeln!(out, "# TYPE {} counter", names::WEBHOOK_EVENTS);
    for (name, st) in &subs {
        for (outcome, v) in [
            ("enqueued", &st.enqueued),
            ("delivered", &st.delivered),
            ("attempts", &st.attempts),
            ("failures", &st.failures),
            ("dead_lettered", &st.dead_lettered),
            ("replayed", &st.replayed),
        ] {
            let _ = writeln!(
                out,
                "{}{{subscriber=\"{name}\",outcome=\"{outcome}\"}} {}",
                names::WEBHOOK_EVENTS,
                ld(v)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {} Webhook events waiting for delivery.",
        names::WEBHOOK_PENDING
    );
    let _ = writeln!(out, "# TYPE {} gauge", names::WEBHOOK_PENDING);
    for (name, st) in &subs {
        let _ = writeln!(
            out,
            "{}{{subscriber=\"{name}\"}} {}",
            names::WEBHOOK_PENDING,
            ld(&st.pending)
        );
    }
}

/// Store health series.
fn render_store(out: &mut String, h: &crate::store::StoreHealth) {
    use crate::store::Op;
    let mut o = Out(std::mem::take(out));
    o.one(
        names::STORE_HEALTHY,
        "gauge",
        "1 while the store takes writes and no accepted write waits for its record, else 0 (/readyz says why).",
        u64::from(h.check().is_ok()),
    );
    let failures: Vec<(&str, u64)> = Op::ALL
        .iter()
        .map(|op| (op.as_str(), h.failures(*op)))
        .collect();
    o.labelled(
        names::STORE_FAILURES,
        "counter",
        "Store writes that failed, by what was being written.",
        "op",
        &failures,
    );
    o.one(
        names::STORE_RECORDS_PENDING,
        "gauge",
        "Presence writes Genesys accepted whose audit record waits in memory for the store.",
        ld(&h.records_pending),
    );
    o.one(
        names::STORE_WRITES_REFUSED,
        "counter",
        "Presence writes refused before Genesys because the store could not record them (503 store_unavailable).",
        ld(&h.writes_refused),
    );
    o.labelled(
        names::STORE_KEYS_SETTLED,
        "counter",
        "Idempotency keys a previous run left in flight, settled at start-up, by outcome.",
        "outcome",
        &[
            ("applied", ld(&h.keys_settled)),
            ("abandoned", ld(&h.keys_abandoned)),
        ],
    );
    *out = o.0;
}

/// Cluster series (`[cluster] redis_url` set).
fn render_cluster(out: &mut String, c: &crate::cluster::Cluster) {
    let mut o = Out(std::mem::take(out));
    let s = c.status();
    o.one(
        names::CLUSTER_LEADER,
        "gauge",
        "1 while this node holds the cluster's leader lease (and Genesys), else 0.",
        u64::from(c.is_leader()),
    );
    o.one(
        names::CLUSTER_REDIS_UP,
        "gauge",
        "1 while Redis answers this node, else 0 (/readyz says why).",
        u64::from(s.redis == "ok"),
    );
    let st = &c.stats;
    o.one(
        names::CLUSTER_REDIS_OPS,
        "counter",
        "Redis commands this node sent (a script counts once).",
        ld(&st.redis_ops),
    );
    o.one(
        names::CLUSTER_PUBLISHED,
        "counter",
        "Stream entries published while leading (batches, meta, health, checkpoints).",
        ld(&st.published),
    );
    o.one(
        names::CLUSTER_APPLIED,
        "counter",
        "Stream entries applied while following.",
        ld(&st.applied),
    );
    o.one(
        names::CLUSTER_SNAPSHOTS,
        "counter",
        "Leader snapshots loaded (start, or a gap in the stream).",
        ld(&st.snapshots_loaded),
    );
    o.labelled(
        names::CLUSTER_RELAYED,
        "counter",
        "Requests relayed to the leader (out) or carried out for another node (in).",
        "direction",
        &[("out", ld(&st.relayed_out)), ("in", ld(&st.relayed_in))],
    );
    o.one(
        names::CLUSTER_RELAY_TIMEOUTS,
        "counter",
        "Relayed requests no leader answered in cluster.relay_timeout_ms (503 leader_unavailable).",
        ld(&st.relay_timeouts),
    );
    o.one(
        names::CLUSTER_REDIS_ERRORS,
        "counter",
        "Redis commands that failed.",
        ld(&st.redis_errors),
    );
    *out = o.0;
}

/// `GET /metrics`.
pub(crate) async fn metrics(st: web::Data<AppState>) -> HttpResponse {
    let r = st.registry.send(GetStats).await.unwrap_or_default();
    if let Some(w) = st.webhooks() {
        // The aggregate outcome series is derived from the per-subscriber counters.
        let sum = |f: fn(&crate::webhooks::WebhookStats) -> &AtomicU64| {
            w.hooks.stats().map(|(_, s)| ld(f(s))).sum::<u64>()
        };
        st.ops
            .webhooks
            .delivered
            .store(sum(|s| &s.delivered), Ordering::Relaxed);
        st.ops
            .webhooks
            .retried
            .store(sum(|s| &s.failures), Ordering::Relaxed);
        st.ops
            .webhooks
            .failed
            .store(sum(|s| &s.dead_lettered), Ordering::Relaxed);
    }
    let mut body = render(&st.metrics, &r, &st.ops, &st.security.metrics);
    if let Some(w) = st.webhooks() {
        render_webhooks(&mut body, &w.hooks);
    }
    if let Some(h) = &st.ops.store {
        render_store(&mut body, h);
    }
    if let Some(c) = &st.cluster {
        render_cluster(&mut body, c);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Buckets are cumulative and end in `+Inf` = count.
    #[test]
    fn histogram_text() {
        let mut h = LocalHistogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut o = Out(String::new());
        o.histogram("x", "help", &h);
        assert!(o.0.contains("x_bucket{le=\"0.005\"} 1"), "{}", o.0);
        assert!(o.0.contains("x_bucket{le=\"+Inf\"} 2"), "{}", o.0);
        assert!(o.0.contains("x_count 2"), "{}", o.0);
    }
}
