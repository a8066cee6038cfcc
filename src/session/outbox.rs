//! The per-session outgoing queue and its policy (shared by WebSocket and
//! SSE): bounded in bytes, coalescing per agent when the client falls
//! behind, and reporting overflow so the session can close as slow.
//!
//! Every message counts against the bound: deltas, `status`, replies
//! (`error`) and snapshots. A snapshot may be one shared buffer, but a
//! session holding it pins it (and a filtered one is the session's own), so
//! a client that keeps asking for snapshots without reading them pays for
//! them. A new snapshot replaces everything queued before it, so repeated
//! `subscribe`s never stack snapshots.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::registry::encode::coalesce;
use crate::registry::{Batch, Filter, Frame};

/// One item to write to the client.
#[derive(Debug)]
pub enum Out {
    /// A message; its bytes count against the bound.
    Msg {
        /// The encoded message.
        frame: Frame,
        /// What it is (decides how it is coalesced).
        kind: Kind,
    },
    /// Raw SSE bytes (`retry:`, `: keepalive`).
    Raw(Bytes),
    /// WebSocket ping.
    Ping,
    /// WebSocket pong with the ping's payload.
    Pong(Bytes),
    /// Close the connection with this WebSocket code and reason (SSE: a
    /// final `close` event, then the end of the stream).
    Close(u16, &'static str),
}

/// What a queued message is.
#[derive(Debug)]
pub enum Kind {
    /// A numbered batch (kept so queued deltas can be coalesced per agent).
    Delta(Arc<Batch>),
    /// A `snapshot`: replaces everything queued before it.
    Snapshot,
    /// A `status` (or other latest-wins) message: only the latest is kept
    /// when deltas are coalesced.
    Status,
    /// A reply to the client (`error`): kept in order, never coalesced.
    Reply,
}

impl Kind {
    /// The batch of a delta.
    pub fn batch(&self) -> Option<&Batch> {
        match self {
            Kind::Delta(b) => Some(b),
            _ => None,
        }
    }
}

/// What [`Outbox::push_delta`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued as is.
    Queued,
    /// Queued after folding every queued delta into one.
    Coalesced,
    /// Still over the bound after coalescing: the client is too slow.
    Overflow,
}

/// A bounded queue of outgoing items.
#[derive(Debug, Default)]
pub struct Outbox {
    items: VecDeque<Out>,
    /// Counted bytes queued.
    bytes: usize,
    /// Most counted bytes ever queued at once.
    peak: usize,
}

impl Outbox {
    /// Counted bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Most counted bytes ever queued at once (for the session metrics).
    pub fn peak(&self) -> usize {
        self.peak
    }

    fn add(&mut self, n: usize) {
        self.bytes += n;
        self.peak = self.peak.max(self.bytes);
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues a control item (ping, pong, raw SSE line, close). These are
    /// a few bytes each and at most one of each kind is pending.
    pub fn push(&mut self, o: Out) {
        debug_assert!(!matches!(o, Out::Msg { .. }), "messages are counted");
        self.items.push_back(o);
    }

    /// Queues a snapshot, dropping every message queued before it (they
    /// are all older than the snapshot). Always accepted, however large:
    /// it is the one message a client cannot do without; what follows it
    /// is bounded.
    pub fn push_snapshot(&mut self, frame: Frame, sse: bool) {
        self.clear_messages();
        self.add(frame.len(sse));
        self.items.push_back(Out::Msg {
            frame,
            kind: Kind::Snapshot,
        });
    }

    /// Queues a message without a batch (`Status` or `Reply`); true when
    /// the queue is now over `limit` (the client is too slow).
    pub fn push_counted(&mut self, frame: Frame, kind: Kind, sse: bool, limit: usize) -> bool {
        debug_assert!(matches!(kind, Kind::Status | Kind::Reply));
        self.add(frame.len(sse));
        self.items.push_back(Out::Msg { frame, kind });
        self.bytes > limit
    }

    /// Next item to write.
    pub fn pop(&mut self, sse: bool) -> Option<Out> {
        let o = self.items.pop_front()?;
        if let Out::Msg { frame, .. } = &o {
            self.bytes = self.bytes.saturating_sub(frame.len(sse));
        }
        // Release the queue's memory once drained (idle sessions stay small).
        if self.items.is_empty() && self.items.capacity() > 8 {
            self.items = VecDeque::new();
        }
        Some(o)
    }

    /// Drops every queued message (before a fresh snapshot or a close);
    /// control items stay.
    pub fn clear_messages(&mut self) {
        self.items.retain(|o| !matches!(o, Out::Msg { .. }));
        self.bytes = 0;
    }

    /// Queues a delta within `limit` bytes; coalesces queued deltas per agent
    /// when it would not fit.
    pub fn push_delta(
        &mut self,
        batch: Arc<Batch>,
        frame: Frame,
        filter: Option<&Filter>,
        sse: bool,
        limit: usize,
    ) -> Pushed {
        let len = frame.len(sse);
        // An empty queue always takes one message, however large: a single
        // batch is bounded by the directory, and refusing it would drop
        // every client at once.
        if self.bytes == 0 || self.bytes + len <= limit {
            self.add(len);
            self.items.push_back(Out::Msg {
                frame,
                kind: Kind::Delta(batch),
            });
            return Pushed::Queued;
        }
        // Fold every queued delta (and this one) into one; keep other items
        // (snapshot, replies, control) in order, and only the latest status.
        let mut batches = Vec::new();
        let mut kept = VecDeque::new();
        let mut last_status = None;
        for o in self.items.drain(..) {
            match o {
                Out::Msg {
                    kind: Kind::Delta(b),
                    ..
                } => batches.push(b),
                Out::Msg {
                    frame,
                    kind: Kind::Status,
                } => last_status = Some(frame),
                other => kept.push_back(other),
            }
        }
        batches.push(batch);
        self.bytes = kept
            .iter()
            .map(|o| match o {
                Out::Msg { frame, .. } => frame.len(sse),
                _ => 0,
            })
            .sum();
        self.items = kept;
        if let Some(s) = last_status {
            self.push_counted(s, Kind::Status, sse, limit);
        }
        let merged = coalesce(&batches);
        let frame = merged.as_ref().and_then(|m| match filter {
            None => Some(m.full.clone()),
            Some(f) => m.frame_for(Some(f)),
        });
        if let (Some(m), Some(f)) = (merged, frame) {
            self.add(f.len(sse));
            self.items.push_back(Out::Msg {
                frame: f,
                kind: Kind::Delta(m),
            });
        }
        if self.bytes > limit {
            Pushed::Overflow
        } else {
            Pushed::Coalesced
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Division, Origin, SystemPresence};
    use crate::protocol::agent::{AgentView, Change, PresenceView};
    use crate::protocol::counts::CountsJson;
    use crate::protocol::encode::error_frame;
    use chrono::{TimeZone, Utc};

    fn agent(id: &str, division: &str, version: u64) -> Arc<AgentView> {
        Arc::new(AgentView {
            id: id.into(),
            name: format!("Agent {id}"),
            division: Division {
                id: division.into(),
                name: division.into(),
            },
            queues: Vec::new(),
            presence: Some(PresenceView {
                definition_id: "def-busy".into(),
                system_presence: SystemPresence::Busy,
                label: "Busy".into(),
                message: "x".repeat(200),
                since: Utc
                    .timestamp_opt(1_700_000_000 + version as i64, 0)
                    .unwrap(),
            }),
            routing_status: None,
            version,
        })
    }

    /// Batch `seq` changing agent `id` to `version`.
    fn batch(seq: u64, id: &str, version: u64) -> Arc<Batch> {
        let change = Change {
            id: id.into(),
            before: Some(agent(id, "d1", version - 1)),
            after: Some(agent(id, "d1", version)),
            origin: Origin::Event,
        };
        Arc::new(Batch::new(7, seq, vec![change], CountsJson::default()))
    }

    fn push(o: &mut Outbox, b: Arc<Batch>, limit: usize) -> Pushed {
        let f = b.full.clone();
        o.push_delta(b, f, None, false, limit)
    }

    fn counted(o: &mut Outbox) -> Vec<Out> {
        std::iter::from_fn(|| o.pop(false)).collect()
    }

    /// Within the bound deltas queue as they are and count their bytes;
    /// popping gives the bytes back.
    #[test]
    fn queues_within_the_bound() {
        let mut o = Outbox::default();
        let b1 = batch(1, "a", 2);
        let len = b1.full.len(false);
        assert_eq!(push(&mut o, b1, 10 * len), Pushed::Queued);
        assert_eq!(push(&mut o, batch(2, "b", 2), 10 * len), Pushed::Queued);
        assert!(o.bytes() >= 2 * len - 2, "{} vs {len}", o.bytes());
        assert_eq!(counted(&mut o).len(), 2);
        assert_eq!(o.bytes(), 0);
        assert!(o.is_empty());
    }

    /// An empty queue takes one message however large it is.
    #[test]
    fn an_empty_queue_takes_one_large_message() {
        let mut o = Outbox::default();
        assert_eq!(push(&mut o, batch(1, "a", 2), 1), Pushed::Queued);
    }

    /// Over the bound, queued deltas fold into one per agent (latest state,
    /// last seq); uncounted items keep their place and only the latest
    /// status survives.
    #[test]
    fn coalesces_per_agent_when_full() {
        let mut o = Outbox::default();
        let len = batch(1, "a", 2).full.len(false);
        let limit = len + len / 2;
        o.push(Out::Ping);
        assert_eq!(push(&mut o, batch(1, "a", 2), limit), Pushed::Queued);
        o.push_counted(
            Frame::new("status", None, r#"{"type":"status","n":1}"#.into()),
            Kind::Status,
            false,
            usize::MAX,
        );
        o.push_counted(
            Frame::new("status", None, r#"{"type":"status","n":2}"#.into()),
            Kind::Status,
            false,
            usize::MAX,
        );
        assert_eq!(push(&mut o, batch(2, "a", 3), limit), Pushed::Coalesced);
        let items = counted(&mut o);
        assert!(matches!(items[0], Out::Ping), "{items:?}");
        let texts: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                Out::Msg { frame, .. } => Some(frame.json().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(
            texts[0].contains(r#""n":2"#),
            "the latest status only: {texts:?}"
        );
        let delta: serde_json::Value = serde_json::from_str(&texts[1]).unwrap();
        assert_eq!(delta["seq"], 2);
        let changes = delta["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "one change per agent: {delta}");
        assert_eq!(changes[0]["version"], 3);
        assert_eq!(
            changes[0]["previous"]["version"], 1,
            "state before the first folded change"
        );
    }

    /// Still over the bound after folding: the client is too slow.
    #[test]
    fn overflow_when_folding_is_not_enough() {
        let mut o = Outbox::default();
        let len = batch(1, "a", 2).full.len(false);
        assert_eq!(push(&mut o, batch(1, "a", 2), len), Pushed::Queued);
        assert_eq!(push(&mut o, batch(2, "b", 2), len), Pushed::Overflow);
    }

    /// Clearing drops deltas and statuses, keeps uncounted items.
    #[test]
    fn clear_keeps_uncounted_items() {
        let mut o = Outbox::default();
        push(&mut o, batch(1, "a", 2), usize::MAX);
        o.push(Out::Raw(Bytes::from_static(b": keepalive\n\n")));
        o.clear_messages();
        assert_eq!(o.bytes(), 0);
        let items = counted(&mut o);
        assert_eq!(items.len(), 1);
        assert!(matches!(items[0], Out::Raw(_)));
    }

    fn snapshot(n: usize) -> Frame {
        Frame::new("snapshot", Some((1, 1)), "x".repeat(n))
    }

    /// Snapshots count against the bound, and a new one replaces every
    /// message queued before it: a thousand snapshots never read cost one.
    #[test]
    fn snapshots_are_counted_and_replace_each_other() {
        let mut o = Outbox::default();
        for _ in 0..1000 {
            o.push(Out::Ping);
            o.push_snapshot(snapshot(145_000), false);
            assert!(!o.push_counted(error_frame("e"), Kind::Reply, false, 1 << 20));
        }
        let one = snapshot(145_000).len(false) + error_frame("e").len(false);
        assert_eq!(o.bytes(), one);
        assert!(o.peak() <= one + snapshot(145_000).len(false));
        // Control items stay; exactly one snapshot and one reply are queued.
        let mut msgs = 0;
        while let Some(item) = o.pop(false) {
            if let Out::Msg { .. } = item {
                msgs += 1;
            }
        }
        assert_eq!(msgs, 2);
        assert_eq!(o.bytes(), 0);
    }

    /// A reply past the bound reports overflow.
    #[test]
    fn replies_past_the_bound_overflow() {
        let mut o = Outbox::default();
        o.push_snapshot(snapshot(4000), true);
        assert!(!o.push_counted(error_frame("a"), Kind::Reply, true, 4200));
        assert!(o.push_counted(error_frame(&"b".repeat(300)), Kind::Reply, true, 4200));
    }
}
