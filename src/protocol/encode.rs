//! Wire encoding, done once per batch and shared: a [`Frame`] holds the
//! complete WebSocket frame (header + JSON object), the SSE frame
//! (`event:`, `id:`, `data:`) and, made on first use, their compressed
//! forms ([`super::wire`]), all reference-counted so that every session
//! that wants the same bytes gets a cheap clone.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;

use crate::model::{iso, UpstreamHealth, UpstreamState};

use super::agent::{encode_change, AgentView, Change};
use super::counts::CountsJson;
use super::filter::Filter;
use super::wire::{self, GzipBlock};

/// One encoded message in every form a client may take it in, built once
/// and shared (one reference count for all forms) by every session that
/// sends it.
#[derive(Debug, Clone)]
pub struct Frame(Arc<Forms>);

/// The forms of a [`Frame`].
#[derive(Debug)]
struct Forms {
    /// The complete WebSocket text message (header + JSON, in 8 KiB
    /// continuation frames when longer), unmasked: the same bytes for
    /// every client.
    ws_frame: Bytes,
    /// Complete SSE frame: `event: <type>\n[id: <epoch>:<seq>\n]data: <json>\n\n`.
    sse: Bytes,
    /// permessage-deflate text frame (RSV1), made on first use (only when
    /// some client negotiated compression).
    ws_deflate: OnceLock<Bytes>,
    /// The SSE frame as a gzip body piece, made on first use.
    sse_gzip: OnceLock<GzipBlock>,
}

impl Frame {
    /// Builds the forms from the JSON text. `id` is set on snapshots and
    /// deltas (resumable points), not on status or error messages.
    pub fn new(kind: &str, id: Option<(u64, u64)>, json: String) -> Frame {
        let mut sse = String::with_capacity(json.len() + 48);
        sse.push_str("event: ");
        sse.push_str(kind);
        sse.push('\n');
        if let Some((e, s)) = id {
            // unwrap: writing to a String cannot fail.
            writeln!(sse, "id: {e}:{s}").unwrap();
        }
        sse.push_str("data: ");
        sse.push_str(&json);
        sse.push_str("\n\n");
        Frame(Arc::new(Forms {
            ws_frame: wire::ws_message(wire::op::TEXT, false, json.as_bytes()),
            sse: Bytes::from(sse),
            ws_deflate: OnceLock::new(),
            sse_gzip: OnceLock::new(),
        }))
    }

    /// The complete SSE frame.
    pub fn sse(&self) -> &Bytes {
        &self.0.sse
    }

    /// The JSON text of the message (what a WebSocket client receives):
    /// the SSE frame's `data:` line (compact JSON has no newline).
    pub fn json(&self) -> &str {
        let sse = &self.0.sse[..];
        let start = sse
            .windows(7)
            .position(|w| w == b"\ndata: ")
            .map_or(sse.len(), |p| p + 7);
        let end = sse.len().saturating_sub(2).max(start);
        // The frame was built from Strings.
        std::str::from_utf8(&sse[start..end]).unwrap_or_default()
    }

    /// The WebSocket message bytes, permessage-deflate compressed or not.
    pub fn ws_wire(&self, deflate: bool) -> Bytes {
        if !deflate {
            return self.0.ws_frame.clone();
        }
        self.0
            .ws_deflate
            .get_or_init(|| wire::ws_deflated_text(self.json().as_bytes()))
            .clone()
    }

    /// The SSE frame as a piece of a gzip body.
    pub fn sse_gzip(&self) -> GzipBlock {
        self.0
            .sse_gzip
            .get_or_init(|| GzipBlock::deflated(&self.0.sse))
            .clone()
    }

    /// Size in the given transport's form (outbox accounting).
    pub fn len(&self, sse: bool) -> usize {
        if sse {
            self.0.sse.len()
        } else {
            self.0.ws_frame.len()
        }
    }

    /// True for an empty frame (never produced).
    pub fn is_empty(&self) -> bool {
        self.0.ws_frame.len() <= 2
    }
}

/// One numbered batch of changes, as kept in the replay buffer.
#[derive(Debug)]
pub struct Batch {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// Its sequence number (one per batch, contiguous).
    pub seq: u64,
    /// When it was emitted (replay buffer ageing).
    pub at: Instant,
    /// The changes, one per agent (coalesced within the batch).
    pub changes: Vec<Change>,
    /// Each change encoded once (`None` for removals), index-aligned with `changes`.
    pub encoded: Vec<Option<String>>,
    /// The counts buckets that changed in this batch.
    pub counts: CountsJson,
    /// The counts patch, encoded once.
    pub counts_json: String,
    /// The whole batch for unfiltered sessions.
    pub full: Frame,
    /// Genesys time (Unix ms) of the newest live event in the batch, for
    /// the event-lag metric; `None` when no change came from an event.
    pub event_ms: Option<i64>,
}

impl Batch {
    /// Numbers and encodes a batch.
    pub fn new(epoch: u64, seq: u64, changes: Vec<Change>, counts: CountsJson) -> Batch {
        let encoded: Vec<Option<String>> = changes
            .iter()
            .map(|c| {
                c.after
                    .as_ref()
                    .map(|a| encode_change(a, c.before.as_deref(), c.origin))
            })
            .collect();
        // unwrap: serialising maps of strings and integers cannot fail.
        let counts_json = serde_json::to_string(&counts).unwrap();
        let event_ms = changes
            .iter()
            .filter(|c| c.origin == crate::model::Origin::Event)
            .filter_map(|c| c.after.as_deref())
            .flat_map(|a| {
                let p = a.presence.as_ref().map(|p| p.since);
                let r = a.routing_status.as_ref().map(|r| r.since);
                p.into_iter().chain(r)
            })
            .max()
            .map(|t| t.timestamp_millis());
        let mut b = Batch {
            event_ms,
            epoch,
            seq,
            at: Instant::now(),
            changes,
            encoded,
            counts,
            counts_json,
            full: Frame::new("delta", None, String::new()),
        };
        b.full = b.frame_for(None).unwrap_or_else(|| b.assemble(&[], &[]));
        b
    }

    /// Encodes the batch for one filter: matching changes in `changes`,
    /// agents that left the filter (or the directory) in `removed`. `None`
    /// when neither the filter's agents nor the counts changed.
    pub fn frame_for(&self, filter: Option<&Filter>) -> Option<Frame> {
        let mut included = Vec::new();
        let mut removed = Vec::new();
        for (i, c) in self.changes.iter().enumerate() {
            let now = c
                .after
                .as_deref()
                .is_some_and(|a| Filter::admits(filter, a));
            let was = c
                .before
                .as_deref()
                .is_some_and(|b| Filter::admits(filter, b));
            if now {
                included.push(i);
            } else if was || (filter.is_none() && c.after.is_none()) {
                removed.push(c.id.as_str());
            }
        }
        if included.is_empty() && removed.is_empty() && self.counts.is_empty() {
            return None;
        }
        Some(self.assemble(&included, &removed))
    }

    fn assemble(&self, included: &[usize], removed: &[&str]) -> Frame {
        let mut json = String::with_capacity(
            64 + self.counts_json.len()
                + included
                    .iter()
                    .map(|&i| self.encoded[i].as_ref().map_or(0, String::len) + 1)
                    .sum::<usize>(),
        );
        // unwrap: writing to a String cannot fail.
        write!(
            json,
            r#"{{"type":"delta","epoch":{},"seq":{},"changes":["#,
            self.epoch, self.seq
        )
        .unwrap();
        let mut first = true;
        for &i in included {
            if let Some(s) = &self.encoded[i] {
                if !first {
                    json.push(',');
                }
                first = false;
                json.push_str(s);
            }
        }
        json.push(']');
        if !removed.is_empty() {
            json.push_str(r#","removed":"#);
            // unwrap: serialising strings cannot fail.
            json.push_str(&serde_json::to_string(removed).unwrap());
        }
        json.push_str(r#","counts":"#);
        json.push_str(&self.counts_json);
        json.push('}');
        Frame::new("delta", Some((self.epoch, self.seq)), json)
    }
}

/// Folds several consecutive batches into one (latest state per agent
/// wins; `previous` is the state before the first folded change), carrying
/// the last batch's `seq`. Used by a session whose outbox overflowed; the
/// caller encodes it for its filter with [`Batch::frame_for`].
pub fn coalesce(batches: &[Arc<Batch>]) -> Option<Arc<Batch>> {
    let last = batches.last()?;
    let mut order: Vec<String> = Vec::new();
    let mut map: std::collections::HashMap<String, Change> = std::collections::HashMap::new();
    let mut counts = CountsJson::default();
    for b in batches {
        counts.merge(&b.counts);
        for c in &b.changes {
            match map.get_mut(&c.id) {
                Some(prev) => {
                    prev.after = c.after.clone();
                    prev.origin = c.origin;
                }
                None => {
                    order.push(c.id.clone());
                    map.insert(c.id.clone(), c.clone());
                }
            }
        }
    }
    let changes: Vec<Change> = order.into_iter().filter_map(|id| map.remove(&id)).collect();
    Some(Arc::new(Batch::new(last.epoch, last.seq, changes, counts)))
}

/// A snapshot message: every agent matching the filter, and all counts.
#[derive(Serialize)]
struct SnapshotJson<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    epoch: u64,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    /// False until the first complete sync from Genesys Cloud: an empty
    /// `agents` then means "not known yet", not "no agents".
    synced: bool,
    agents: Vec<&'a AgentView>,
    counts: &'a CountsJson,
}

/// Encodes a snapshot. `stream` adds `"type":"snapshot"` and `recovered`
/// (stream form); without it, the `GET /api/v1/agents` body. `synced` is
/// false until the first complete sync from Genesys Cloud.
pub fn snapshot_json(
    epoch: u64,
    seq: u64,
    synced: bool,
    agents: Vec<&AgentView>,
    counts: &CountsJson,
    stream: bool,
) -> String {
    // unwrap: serialising plain structs cannot fail.
    serde_json::to_string(&SnapshotJson {
        kind: stream.then_some("snapshot"),
        epoch,
        seq,
        recovered: stream.then_some(false),
        synced,
        agents,
        counts,
    })
    .unwrap()
}

/// A `status` message body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    epoch: u64,
    seq: u64,
    state: UpstreamState,
    stale: bool,
    synced: bool,
    detail: Option<&'a str>,
    last_event_at: Option<String>,
    last_event_age_ms: Option<i64>,
    last_frame_age_ms: Option<i64>,
    /// Topics Genesys refused (dropped from their channels); left out when none.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    refused_topics: &'a [crate::model::RefusedTopic],
    /// The staleness bound in seconds (the anti-entropy sweep).
    #[serde(skip_serializing_if = "is_zero")]
    staleness_bound_secs: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Encodes a `status` message from the latest upstream health. `synced`
/// is false until the first complete sync from Genesys Cloud.
pub fn status_frame(epoch: u64, seq: u64, synced: bool, h: &UpstreamHealth) -> Frame {
    let now = Utc::now();
    let age = |t: Option<chrono::DateTime<Utc>>| t.map(|t| (now - t).num_milliseconds().max(0));
    // unwrap: serialising plain structs cannot fail.
    let json = serde_json::to_string(&StatusJson {
        kind: "status",
        epoch,
        seq,
        state: h.state,
        stale: h.state != UpstreamState::Connected || !synced,
        synced,
        detail: h.detail.as_deref(),
        last_event_at: h.last_event_at.map(iso),
        last_event_age_ms: age(h.last_event_at),
        last_frame_age_ms: age(h.last_frame_at),
        refused_topics: &h.refused_topics,
        staleness_bound_secs: h.staleness_bound_secs,
    })
    .unwrap();
    Frame::new("status", None, json)
}

/// Encodes an `error` message (`{"type":"error","reason":…}`).
pub fn error_frame(reason: &str) -> Frame {
    let json = serde_json::json!({"type": "error", "reason": reason}).to_string();
    Frame::new("error", None, json)
}

/// The final `status` a session sends before a drain closes it
/// (`state: "restarting"`, stale, with the resume point `epoch`/`seq`).
pub fn restarting_status(epoch: u64, seq: u64) -> Frame {
    let json = serde_json::json!({
        "type": "status",
        "epoch": epoch,
        "seq": seq,
        "state": "restarting",
        "stale": true,
        "detail": "the gateway is restarting; reconnect with your resume point",
        "lastEventAt": null,
        "lastEventAgeMs": null,
        "lastFrameAgeMs": null,
    })
    .to_string();
    Frame::new("status", None, json)
}

/// Encodes an `interaction` message: the interactions agent `agent_id` is
/// handling now (each already normalised and, if configured, redacted).
pub fn interaction_frame(agent_id: &str, interactions: Vec<serde_json::Value>) -> Frame {
    let json = serde_json::json!({"type": "interaction", "agentId": agent_id, "interactions": interactions});
    Frame::new("interaction", None, json.to_string())
}

/// Encodes a `queues` message: the body as
/// [`super::context::queues_body`] shapes it (with `"type": "queues"`).
pub fn queues_frame(body: &serde_json::Value) -> Frame {
    Frame::new("queues", None, body.to_string())
}

/// The last SSE frame of a stream the gateway closes: a `retry:` hint in
/// milliseconds, then a `close` event with the close `code` (docs/protocol.md
/// close-code table) and its `reason`.
pub fn sse_close(retry_ms: u64, code: u16, reason: &str) -> Bytes {
    Bytes::from(format!(
        "retry: {}\nevent: close\ndata: {}\n\n",
        retry_ms,
        serde_json::json!({"type": "close", "code": code, "reason": reason})
    ))
}
