//! The protocol clients see (docs/protocol.md): every message the gateway
//! sends downstream is built here, once, as a [`Frame`] (the WebSocket text
//! and the complete SSE frame). Below the registry and the sessions, above
//! only [`crate::model`]: the agent view and its change encoding
//! ([`agent`]), the counts ([`counts`]), snapshot/delta/status/error frames
//! and delta batches ([`encode`]), and the subscription filter and resume
//! cursor clients send ([`filter`]), the interaction and queue messages
//! and their REST twins ([`context`]), and their bytes on the wire:
//! WebSocket frames, permessage-deflate and gzip, each made once ([`wire`]).

pub mod agent;
pub mod context;
pub mod counts;
pub mod encode;
pub mod filter;
pub mod wire;

pub use agent::{AgentView, Change};
pub use encode::{Batch, Frame};
pub use filter::{Cursor, Filter, FilterError};
