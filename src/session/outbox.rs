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
