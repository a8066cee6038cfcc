//! The registry's journal tap: every change the registry applies is also
//! handed, unfolded and in order, to one journal recipient (the SQLite
//! [`crate::store::journal::Journal`]), without ever making fan-out wait.
//!
//! # Why a tap and not a subscription
//!
//! Sessions see *batches* in which several changes of one agent within the
//! batch window are folded into one (latest state wins). History and
//! webhooks must see every state, so the tap records each change as it is
//! pushed, before folding, and hands the list over when the batch is
//! numbered ([`JournalBatch`] carries the batch's `epoch`/`seq`).
//!
//! Hand-over is `try_send`; when the journal's mailbox is momentarily full
//! the batch waits in a bounded backlog (oldest first, retried on the next
//! flush and on the registry's status tick), so order is kept. Only when
//! the backlog itself overflows (the disk has been stuck for a long time)
//! is the oldest batch dropped, counted and logged; the journal then
//! records the next change of each agent against its own last known state,
//! so the history stays a consistent chain, with one step missing.
//!
//! The gateway's own writes are different: the caller is acknowledged, so
//! the registry waits (without blocking its mailbox) for the journal to
//! commit those before it answers ([`Tap::barrier`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use actix::prelude::*;

use super::agent::Change;

/// Registry → journal: the changes of one numbered batch, in the order they
/// were applied, not folded. Replies when they are committed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct JournalBatch {
    /// The registry's epoch.
    pub epoch: u64,
    /// The batch's `seq` (the changes are in the delta with this `seq`).
    pub seq: u64,
    /// Every change applied, in order (several per agent possible).
    pub changes: Vec<Change>,
}

/// Where the registry hands its changes, given before it starts
/// ([`super::Registry::with_journal`]).
pub struct JournalLink {
    /// The journal's mailbox.
    pub recipient: Recipient<JournalBatch>,
    /// Batches kept while the journal's mailbox is full (≥ 1).
    pub backlog: usize,
}

/// Counters of the tap (read by tests and `/metrics`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TapStats {
    /// Batches handed to the journal.
    pub sent: u64,
    /// Batches currently waiting in the backlog.
    pub backlog: usize,
    /// Batches dropped because the backlog overflowed.
    pub dropped: u64,
}

/// The tap's state, owned by the registry actor.
#[derive(Default)]
pub struct Tap {
    /// The journal; `None` in a registry without one (nothing is recorded).
    recipient: Option<Recipient<JournalBatch>>,
    /// Largest backlog.
    max_backlog: usize,
    /// Changes applied since the last flush, unfolded.
    pending: Vec<Change>,
    /// Batches the journal could not take yet, oldest first.
    backlog: VecDeque<JournalBatch>,
    /// Counters.
    pub stats: TapStats,
}

impl Tap {
    /// Connects the journal.
    pub fn set(&mut self, m: JournalLink) {
        self.recipient = Some(m.recipient);
        self.max_backlog = m.backlog.max(1);
    }

    /// Records one applied change (before the registry folds it).
    pub fn record(&mut self, c: &Change) {
        if self.recipient.is_some() {
            self.pending.push(c.clone());
        }
    }

    /// Hands what was recorded to the journal as batch `seq`; never waits.
    pub fn flush(&mut self, epoch: u64, seq: u64) {
        if let Some(b) = self.take(epoch, seq) {
            self.backlog.push_back(b);
        }
        self.drain();
    }

    /// A future that resolves when the journal has committed everything
    /// handed to it so far (used before acknowledging a write): an empty
    /// batch sent with `send` behind the earlier ones; the journal handles
    /// its mailbox in order on one thread, so its reply means all before
    /// it are on disk. With a backlog in the way it resolves at once
    /// (the backlog keeps the order; waiting on it could take long).
    pub fn barrier(&mut self, epoch: u64, seq: u64) -> Pin<Box<dyn Future<Output = ()> + 'static>> {
        self.drain();
        match &self.recipient {
            Some(r) if self.backlog.is_empty() => {
                let fut = r.send(JournalBatch {
                    epoch,
                    seq,
                    changes: Vec::new(),
                });
                Box::pin(async move {
                    let _ = fut.await;
                })
            }
            _ => Box::pin(async {}),
        }
    }

    /// Batches waiting for room in the journal's mailbox.
    pub fn pending(&self) -> usize {
        self.backlog.len()
    }

    /// Retries the backlog (called on every flush and on the status tick).
    pub fn drain(&mut self) {
        let Some(r) = &self.recipient else { return };
        while let Some(b) = self.backlog.pop_front() {
            match r.try_send(b) {
                Ok(()) => self.stats.sent += 1,
                Err(SendError::Full(b)) => {
                    self.backlog.push_front(b);
                    break;
                }
                Err(SendError::Closed(_)) => {
                    tracing::error!("journal is gone; history and webhooks stop here");
                    self.recipient = None;
                    self.backlog.clear();
                    break;
                }
            }
        }
        while self.backlog.len() > self.max_backlog {
            self.backlog.pop_front();
            self.stats.dropped += 1;
            tracing::error!(
                backlog = self.max_backlog,
                "journal backlog overflowed: oldest batch dropped from history"
            );
        }
        self.stats.backlog = self.backlog.len();
    }

    fn take(&mut self, epoch: u64, seq: u64) -> Option<JournalBatch> {
        if self.pending.is_empty() || self.recipient.is_none() {
            return None;
        }
        Some(JournalBatch {
            epoch,
            seq,
            changes: std::mem::take(&mut self.pending),
        })
    }
}
