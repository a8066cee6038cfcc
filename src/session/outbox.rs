//! The per-session outgoing queue and its policy (shared by WebSocket and
//! SSE): bounded in bytes, coalescing per agent when the client falls
//! behind, and reporting overflow so the session can close as slow.
//!
//! Only `delta` and `status` bytes count against the bound: a snapshot is
//! one shared buffer (the same `Bytes` for every unfiltered client at that
//! `seq`) and costs a session nothing but a reference.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::registry::encode::coalesce;
use crate::registry::{Batch, Filter, Frame};

/// One item to write to the client.
#[derive(Debug)]
pub enum Out {
    /// A message. `batch` is set for deltas (so they can be coalesced);
    /// `counted` when its bytes count against the bound.
    Msg {
        frame: Frame,
        batch: Option<Arc<Batch>>,
        counted: bool,
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
}

impl Outbox {
    /// Counted bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues an uncounted item (snapshot, control, raw).
    pub fn push(&mut self, o: Out) {
        self.items.push_back(o);
    }

    /// Queues a counted message without a batch (status, error).
    pub fn push_counted(&mut self, frame: Frame, sse: bool) {
        self.bytes += frame.len(sse);
        self.items.push_back(Out::Msg {
            frame,
            batch: None,
            counted: true,
        });
    }

    /// Next item to write.
    pub fn pop(&mut self, sse: bool) -> Option<Out> {
        let o = self.items.pop_front()?;
        if let Out::Msg {
            frame,
            counted: true,
            ..
        } = &o
        {
            self.bytes = self.bytes.saturating_sub(frame.len(sse));
        }
        // Release the queue's memory once drained (idle sessions stay small).
        if self.items.is_empty() && self.items.capacity() > 8 {
            self.items = VecDeque::new();
        }
        Some(o)
    }

    /// Drops every queued delta and status (before a fresh snapshot or a close).
    pub fn clear_messages(&mut self) {
        self.items
            .retain(|o| !matches!(o, Out::Msg { counted: true, .. }));
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
            self.bytes += len;
            self.items.push_back(Out::Msg {
                frame,
                batch: Some(batch),
                counted: true,
            });
            return Pushed::Queued;
        }
        // Fold every queued delta (and this one) into one; keep other items
        // in order, and only the latest status.
        let mut batches = Vec::new();
        let mut kept = VecDeque::new();
        let mut last_status = None;
        for o in self.items.drain(..) {
            match o {
                Out::Msg {
                    batch: Some(b),
                    counted: true,
                    ..
                } => batches.push(b),
                Out::Msg {
                    frame,
                    batch: None,
                    counted: true,
                } => last_status = Some(frame),
                other => kept.push_back(other),
            }
        }
        batches.push(batch);
        self.items = kept;
        self.bytes = 0;
        if let Some(s) = last_status {
            self.push_counted(s, sse);
        }
        let merged = coalesce(&batches);
        let frame = merged.as_ref().and_then(|m| match filter {
            None => Some(m.full.clone()),
            Some(f) => m.frame_for(Some(f)),
        });
        if let (Some(m), Some(f)) = (merged, frame) {
            self.bytes += f.len(sse);
            self.items.push_back(Out::Msg {
                frame: f,
                batch: Some(m),
                counted: true,
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
            false,
        );
        o.push_counted(
            Frame::new("status", None, r#"{"type":"status","n":2}"#.into()),
            false,
        );
        assert_eq!(push(&mut o, batch(2, "a", 3), limit), Pushed::Coalesced);
        let items = counted(&mut o);
        assert!(matches!(items[0], Out::Ping), "{items:?}");
        let texts: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                Out::Msg { frame, .. } => Some(frame.ws.to_string()),
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
}
