//! The registry: the single source of truth inside the gateway. One actor
//! ([`Registry`]) owns the presence map ([`state::Directory`]), the live
//! counts, the `epoch`/`seq` numbering and the replay buffer; it consumes
//! [`crate::model::UpstreamEvent`]s from the upstream actor and emits
//! numbered batches, encoded once ([`encode::Frame`]), to session actors.
//!
//! # Numbering
//!
//! `epoch` is fixed per process start (milliseconds since the Unix epoch at
//! start). `seq` counts batches: every `delta` message carries one `seq`,
//! contiguous from 1, and `<epoch>:<seq>` names the state after that batch —
//! the resume point a client hands back. A snapshot carries the `seq` of
//! the last batch it includes. In a cluster (docs/scaling.md) followers
//! take the leader's `epoch` and `seq` with its batches ([`replica`]).

pub mod actor;
pub mod config;
pub mod replica;
pub mod state;
pub mod tap;

/// The wire vocabulary lives in [`crate::protocol`]; re-exported under
/// its old paths.
pub use crate::protocol::{agent, counts, encode, filter};

pub use actor::{
    AgentIdsIn, AgentRecord, CloseAll, CloseSome, Deliver, FlushJournal, GetAgent, GetDefinitions,
    GetDivisions, GetQueueMembers, GetReadiness, GetSnapshot, GetStats, GetTapStats,
    GetWriteContext, QueueMembers, Readiness, Registry, RegistryStats, Start, Subscribe,
    Subscribed, Unsubscribe, WriteContext,
};
pub use agent::{AgentView, Change};
pub use config::RegistryConfig;
pub use encode::{Batch, Frame};
pub use filter::{Cursor, Filter, FilterError};
pub use tap::{JournalBatch, JournalLink, TapStats};
