//! Signed webhooks that lose nothing: every journaled change that matches a
//! subscriber's filter is delivered at least once, per agent in order.
//!
//! The journal ([`crate::store::journal`]) writes each change and its outbox
//! rows in one SQLite transaction; here one delivery task per subscriber
//! (on the actix system arbiter; `awc` is not `Send`) claims the oldest
//! pending row of each agent, POSTs it signed, and records the outcome:
//! delivered rows are deleted, failed ones are retried with full-jitter
//! exponential backoff and dead-lettered after `max_attempts`. A crash at
//! any point leaves the row pending, so it is sent again after a restart
//! (a duplicate carries the same event `id`). `POST
//! /api/v1/webhooks/{name}/replay?from=` queues journaled events again.
//!
//! Signature (docs/webhooks.md): header `X-Presence-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::Utc;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::genesys::rest::backoff;
use crate::model::SystemPresence;
use crate::store::journal::{ClaimDue, Due, Journal, Outcome};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Presence-Signature";
/// The header carrying the event id (also in the body as `id`).
pub const EVENT_ID_HEADER: &str = "X-Presence-Event-Id";
/// The header carrying the attempt number (1 for the first).
pub const ATTEMPT_HEADER: &str = "X-Presence-Attempt";

/// Which events a subscriber receives (`[webhooks.filter]`). Each list
/// empty means "any"; all non-empty lists must match.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookFilter {
    /// Agent (Genesys user) ids.
    pub agents: Vec<String>,
    /// Division ids or names.
    pub divisions: Vec<String>,
    /// Queue ids; the agent must be a member of one.
    pub queues: Vec<String>,
    /// System presences (`BREAK`, `ON_QUEUE`, …) or presence definition
    /// ids: a presence event matches when its previous or current presence
    /// is one of them ("entered or left BREAK"). Routing events are not
    /// restricted by this list (use `kinds`).
    pub presences: Vec<String>,
    /// `presence` and/or `routing`.
    pub kinds: Vec<String>,
}

impl WebhookFilter {
    /// True when the event (its JSON body) passes the filter.
    pub fn matches(&self, ev: &Value) -> bool {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let has = |list: &[String], v: &Value| {
            v.as_str()
                .is_some_and(|x| list.iter().any(|l| l.eq_ignore_ascii_case(x)))
        };
        if !self.agents.is_empty() && !self.agents.contains(&s(&ev["agent"]["id"])) {
            return false;
        }
        if !self.divisions.is_empty()
            && !has(&self.divisions, &ev["agent"]["division"]["id"])
            && !has(&self.divisions, &ev["agent"]["division"]["name"])
        {
            return false;
        }
        if !self.queues.is_empty() {
            let qs = ev["agent"]["queues"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !qs.iter().any(|q| has(&self.queues, q)) {
                return false;
            }
        }
        if !self.kinds.is_empty() && !has(&self.kinds, &ev["kind"]) {
            return false;
        }
        if !self.presences.is_empty() && ev["kind"] == "presence" {
            let hit = |st: &Value| {
                has(&self.presences, &st["systemPresence"])
                    || has(&self.presences, &st["definitionId"])
            };
            if !hit(&ev["current"]) && !hit(&ev["previous"]) {
                return false;
            }
        }
        true
    }

    fn validate(&self, name: &str) -> Result<(), String> {
        for k in &self.kinds {
            if k != "presence" && k != "routing" {
                return Err(format!(
                    "webhooks[{name}].filter.kinds: {k:?} is not \"presence\" or \"routing\""
                ));
            }
        }
        for p in &self.presences {
            // A definition id (UUID) is fine too.
            if SystemPresence::parse(p).is_none() && uuid::Uuid::parse_str(p).is_err() {
                return Err(format!("webhooks[{name}].filter.presences: {p:?} is neither a system presence (BREAK, ON_QUEUE, …) nor a definition id"));
            }
        }
        Ok(())
    }
}

/// One webhook subscriber (`[[webhooks]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name (letters, digits, `-`, `_`), used in the replay URL and metrics.
    pub name: String,
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key the receiver verifies with (at least 16 characters).
    pub secret: String,
    /// Which events to send (default: all).
    #[serde(default)]
    pub filter: WebhookFilter,
    /// Attempts before an event is dead-lettered (1–10 000; default 12).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay in ms; doubles per attempt with full jitter (default 1000).
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    /// Largest retry delay in ms (default 300 000: five minutes).
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Seconds one delivery may take before it counts as failed (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Deliveries in flight at once, each for a different agent (default 8).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_attempts() -> u32 {
    12
}
fn default_backoff_initial() -> u64 {
    1_000
}
fn default_backoff_max() -> u64 {
    300_000
}
fn default_timeout() -> u64 {
    10
}
fn default_concurrency() -> usize {
    8
}

impl WebhookConfig {
    /// Checks one subscriber, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "webhooks.name {n:?}: use letters, digits, '-' and '_'"
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "webhooks[{n}].url {:?} must start with http:// or https://",
                self.url
            ));
        }
        if self.secret.len() < 16 {
            return Err(format!(
                "webhooks[{n}].secret must be at least 16 characters"
            ));
        }
        if !(1..=10_000).contains(&self.max_attempts) {
            return Err(format!("webhooks[{n}].max_attempts must be 1 to 10000"));
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err(format!(
                "webhooks[{n}].backoff_initial_ms must be ≥ 1 and ≤ backoff_max_ms"
            ));
        }
        if self.timeout_secs == 0 || !(1..=256).contains(&self.concurrency) {
            return Err(format!(
                "webhooks[{n}].timeout_secs ≥ 1 and concurrency 1 to 256"
            ));
        }
        self.filter.validate(n)
    }
}

/// Checks the whole `[[webhooks]]` list (unique names).
pub fn validate_all(hooks: &[WebhookConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for h in hooks {
        h.validate()?;
        if !seen.insert(h.name.as_str()) {
            return Err(format!("webhooks: the name {:?} is used twice", h.name));
        }
    }
    Ok(())
}

/// Delivery counters of one subscriber (any thread; render in `/metrics`
/// with a `subscriber` label).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events queued (journaled changes matching the filter, and replays).
    pub enqueued: AtomicU64,
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// HTTP attempts made.
    pub attempts: AtomicU64,
    /// Attempts that failed (non-2xx, refused, timed out).
    pub failures: AtomicU64,
    /// Events given up on after `max_attempts`.
    pub dead_lettered: AtomicU64,
    /// Events queued again by replay.
    pub replayed: AtomicU64,
    /// Events waiting (gauge, refreshed by the delivery task).
    pub pending: AtomicU64,
    /// Unix ms of the last delivery; 0 = never.
    pub last_delivered_ms: AtomicI64,
}

/// One subscriber: its settings, counters and wake-up.
#[derive(Debug)]
pub struct Subscriber {
    pub cfg: WebhookConfig,
    /// Shortcut to `cfg.filter`.
    pub filter: WebhookFilter,
    pub stats: WebhookStats,
    /// Raised by the journal when it queued something for this subscriber.
    pub wake: Notify,
}

/// Every subscriber, shared by the journal, the delivery tasks and the HTTP API.
#[derive(Debug, Default)]
pub struct Webhooks {
    pub subs: Vec<Subscriber>,
}

impl Webhooks {
    /// From the validated configuration.
    pub fn new(cfgs: &[WebhookConfig]) -> Webhooks {
        Webhooks {
            subs: cfgs
                .iter()
                .map(|c| Subscriber {
                    filter: c.filter.clone(),
                    cfg: c.clone(),
                    stats: WebhookStats::default(),
                    wake: Notify::new(),
                })
                .collect(),
        }
    }

    /// `(name, counters)` of every subscriber, for `/metrics`.
    pub fn stats(&self) -> impl Iterator<Item = (&str, &WebhookStats)> {
        self.subs.iter().map(|s| (s.cfg.name.as_str(), &s.stats))
    }

    /// The subscriber named `name`.
    pub fn find(&self, name: &str) -> Option<&Subscriber> {
        self.subs.iter().find(|s| s.cfg.name == name)
    }
}

impl crate::store::journal::OutboxRouting for Webhooks {
    fn count(&self) -> usize {
        self.subs.len()
    }

    fn name(&self, i: usize) -> &str {
        &self.subs[i].cfg.name
    }

    fn wants(&self, i: usize, event: &Value) -> bool {
        self.subs[i].filter.matches(event)
    }

    fn queued(&self, i: usize, n: u64, replayed: bool) {
        let sub = &self.subs[i];
        if replayed {
            sub.stats.replayed.fetch_add(n, Ordering::Relaxed);
        }
        sub.stats.enqueued.fetch_add(n, Ordering::Relaxed);
        sub.wake.notify_one();
    }
}

/// `hex(HMAC-SHA256(secret, "<t>.<body>"))`.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    // unwrap: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a `t=…,v1=…` header against the body (constant-time compare),
/// refusing timestamps more than `tolerance_secs` from `now`. For receivers
/// written in Rust, and for the tests.
pub fn verify(secret: &str, header: &str, body: &str, now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    // unwrap: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    sigs.iter().any(|s| {
        hex::decode(s)
            .ok()
            .is_some_and(|raw| mac.clone().verify_slice(&raw).is_ok())
    })
}

/// Starts one delivery task per subscriber on the current arbiter.
pub fn start(hooks: Arc<Webhooks>, journal: Addr<Journal>, stop: CancellationToken) {
    for i in 0..hooks.subs.len() {
        let span = tracing::info_span!("webhook", subscriber = %hooks.subs[i].cfg.name);
        actix::spawn(tracing::Instrument::instrument(
            run(hooks.clone(), i, journal.clone(), stop.clone()),
            span,
        ));
    }
}

/// One attempt: POST the signed body.
async fn attempt(client: &awc::Client, sub: &Subscriber, d: &Due) -> Result<(), String> {
    let t = Utc::now().timestamp();
    let sig = sign(&sub.cfg.secret, t, &d.body);
    let resp = client
        .post(&sub.cfg.url)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("User-Agent", "presence-gateway-webhooks"))
        .insert_header((SIGNATURE_HEADER, format!("t={t},v1={sig}")))
        .insert_header((EVENT_ID_HEADER, d.event_id.as_str()))
        .insert_header((ATTEMPT_HEADER, (d.attempts + 1).to_string()))
        .send_body(d.body.clone())
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status().as_u16()))
    }
}

/// How long a claim holds an outbox row beyond the delivery's own
/// timeout: a row whose outcome could not be recorded is sent again (with
/// the next attempt number) only after this.
const CLAIM_SLACK_MS: i64 = 30_000;

/// The delivery loop of subscriber `i`.
///
/// Every attempt is counted in the outbox before it is sent ([`ClaimDue`]);
/// an outcome the store refuses is kept here and recorded again, with
/// backoff, before anything else is claimed, so a failing store slows the
/// sender down instead of making it send the same event again and again.
async fn run(hooks: Arc<Webhooks>, i: usize, journal: Addr<Journal>, stop: CancellationToken) {
    let sub = &hooks.subs[i];
    let name = sub.cfg.name.clone();
    let client = crate::genesys::rest::http_client(Duration::from_secs(sub.cfg.timeout_secs));
    let claim_ms = sub.cfg.timeout_secs as i64 * 1000 + CLAIM_SLACK_MS;
    let mut inflight = FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    // Outcomes the store has not taken yet, oldest first.
    let mut unrecorded: std::collections::VecDeque<Outcome> = std::collections::VecDeque::new();
    let mut backoff = crate::store::Backoff::store();
    loop {
        let mut next_ms = None;
        let mut store_trouble = false;
        while let Some(o) = unrecorded.front() {
            match journal.send(o.clone()).await {
                Ok(Ok(())) => {
                    unrecorded.pop_front();
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, waiting = unrecorded.len(), "recording webhook outcomes still fails");
                    store_trouble = true;
                    break;
                }
                Err(_) => return,
            }
        }
        if !store_trouble && inflight.len() < sub.cfg.concurrency {
            match journal
                .send(ClaimDue {
                    subscriber: name.clone(),
                    limit: sub.cfg.concurrency - inflight.len(),
                    now_ms: Utc::now().timestamp_millis(),
                    busy: busy.iter().cloned().collect(),
                    claim_ms,
                })
                .await
            {
                Ok(Ok(c)) => {
                    sub.stats.pending.store(c.pending, Ordering::Relaxed);
                    next_ms = c.next_ms;
                    for d in c.due {
                        busy.insert(d.agent_id.clone());
                        let client = &client;
                        inflight.push(async move {
                            let r = attempt(client, sub, &d).await;
                            (d, r)
                        });
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "claiming webhook deliveries failed");
                    store_trouble = true;
                }
                Err(_) => return, // the journal stopped: shutting down
            }
        }
        let wait = if store_trouble {
            backoff.fail()
        } else {
            backoff.reset();
            next_ms.map_or(Duration::from_secs(30), |n| {
                Duration::from_millis((n - Utc::now().timestamp_millis()).clamp(1, 30_000) as u64)
            })
        };
        tokio::select! {
            Some((d, r)) = inflight.next(), if !inflight.is_empty() => {
                busy.remove(&d.agent_id);
                sub.stats.attempts.fetch_add(1, Ordering::Relaxed);
                let outcome = match r {
                    Ok(()) => {
                        sub.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        sub.stats.last_delivered_ms.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
                        Outcome::Delivered { outbox_id: d.outbox_id }
                    }
                    Err(error) => {
                        sub.stats.failures.fetch_add(1, Ordering::Relaxed);
                        let attempts = d.attempts + 1;
                        let dead = attempts >= sub.cfg.max_attempts;
                        if dead {
                            sub.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(event_id = %d.event_id, agent = %d.agent_id, attempts, %error, "webhook dead-lettered");
                        } else {
                            tracing::debug!(event_id = %d.event_id, attempts, %error, "webhook delivery failed; will retry");
                        }
                        let delay = backoff_delay(attempts, &sub.cfg);
                        Outcome::Failed {
                            outbox_id: d.outbox_id,
                            attempts,
                            next_ms: Utc::now().timestamp_millis() + delay.as_millis() as i64,
                            dead,
                            error,
                        }
                    }
                };
                match journal.send(outcome.clone()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "recording a webhook outcome failed; kept to record again");
                        unrecorded.push_back(outcome);
                    }
                    Err(_) => return,
                }
            }
            _ = sub.wake.notified(), if !store_trouble => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// The retry delay after `attempts` failed attempts (full jitter).
fn backoff_delay(attempts: u32, cfg: &WebhookConfig) -> Duration {
    backoff(attempts, cfg.backoff_initial_ms, cfg.backoff_max_ms)
}

/// What the webhook routes share.
pub struct WebhookApi {
    pub hooks: Arc<Webhooks>,
    pub journal: Addr<Journal>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A signature made by `sign` verifies; a changed body, secret or an
    /// old timestamp does not.
    #[test]
    fn signatures_verify() {
        let body = r#"{"id":"e1"}"#;
        let t = 1_700_000_000;
        let h = format!("t={t},v1={}", sign("0123456789abcdef", t, body));
        assert!(verify("0123456789abcdef", &h, body, t + 10, 300));
        assert!(!verify("0123456789abcdef", &h, r#"{"id":"e2"}"#, t, 300));
        assert!(!verify("fedcba9876543210", &h, body, t, 300));
        assert!(!verify("0123456789abcdef", &h, body, t + 301, 300));
    }

    /// Filters: empty matches all; presences match entering or leaving.
    #[test]
    fn filters() {
        let ev = json!({"kind": "presence", "agent": {"id": "a1", "division": {"id": "d1", "name": "Sales"}, "queues": ["q1"]},
                        "previous": {"systemPresence": "BREAK"}, "current": {"systemPresence": "AVAILABLE"}});
        assert!(WebhookFilter::default().matches(&ev));
        let f = |p: &[&str]| WebhookFilter {
            presences: p.iter().map(|s| s.to_string()).collect(),
            ..WebhookFilter::default()
        };
        assert!(f(&["BREAK"]).matches(&ev));
        assert!(!f(&["MEAL"]).matches(&ev));
        let d = WebhookFilter {
            divisions: vec!["sales".into()],
            queues: vec!["q1".into()],
            kinds: vec!["presence".into()],
            ..WebhookFilter::default()
        };
        assert!(d.matches(&ev));
        let k = WebhookFilter {
            kinds: vec!["routing".into()],
            ..WebhookFilter::default()
        };
        assert!(!k.matches(&ev));
    }
}
