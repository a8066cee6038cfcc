//! Session actors: one per connected client, WebSocket ([`ws`]) or SSE
//! ([`sse`]), sharing one actor ([`actor::Session`]) and one outbox policy
//! ([`outbox`]). A session applies the client's filter (through its registry
//! subscription), keeps a byte-bounded outgoing queue that coalesces per
//! agent when the client falls behind, closes slow, idle and abusive
//! clients with the codes in [`close`], and never blocks the registry.

pub mod actor;
pub mod body;
pub mod close;
pub mod config;
pub mod draining;
pub mod limits;
pub mod outbox;
pub mod sse;
pub mod ws;

pub use actor::{Session, SessionParams, Shutdown};
pub use close::DisconnectReason;
pub use config::SessionConfig;
pub use limits::{ConnGuard, ConnLimits, LimitError, SessionMetrics};
