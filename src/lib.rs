//! presence-gateway: one Genesys Cloud connection, fanned out to thousands of
//! live dashboards, wallboards and agent desktops.
//!
//! # Layout
//!
//! - [`app`]: wiring; starts registry, upstream and HTTP server from a config.
//! - [`config`]: one typed configuration, loaded from TOML plus environment
//!   overrides and validated before any port is bound.
//! - [`model`]: the normalised vocabulary (system presence, routing status,
//!   agents) and the events that cross from upstream to registry.
//! - [`upstream`]: the Upstream actor, the only code that talks to Genesys:
//!   OAuth, the REST budget, notification channels, reconciliation.
//! - [`registry`]: the Registry actor, the presence map, `epoch`/`seq`,
//!   replay buffer and once-encoded delta batches.
//! - [`session`]: one actor per WebSocket or SSE client, filtered, bounded.
//! - [`http`]: the downstream HTTP API and its error responses.
//! - [`interactions`]: live interaction context for agent desktops.
//! - [`writes`]: the guarded presence write path, leases and the audit API.
//! - [`store`]: SQLite persistence (audit, idempotency, leases).
//! - [`auth`]: API keys, JWTs, roles, division scoping, stream tickets,
//!   origins and body limits: the middleware every request passes.
//! - [`metrics`]: `/metrics`, every metric name and the Prometheus text.
//! - [`shutdown`]: the graceful drain on SIGTERM / SIGINT.
//! - [`telemetry`]: rate-limited log lines for repeating conditions.
//! - [`store`]: SQLite persistence (audit, idempotency, leases; the
//!   presence journal and webhook outbox in `store::journal`).
//! - [`history`]: presence history and daily summaries (journal + Genesys analytics).
//! - [`webhooks`]: signed, at-least-once webhook delivery from the outbox.
//! - [`board`]: the `[board]` settings pages read (thresholds, desktop
//!   presences, queue figure pacing).
//! - [`queues`]: queues with names and live figures (agents by routing
//!   status, customers waiting, longest wait) for `/api/v1/queues` and streams.
//! - [`simulator`]: a faithful Genesys Cloud simulator (real paths plus the
//!   `/sim` control API) for the demo, the tests and the benchmarks.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod board;
pub mod config;
pub mod history;
pub mod http;
pub mod interactions;
pub mod metrics;
pub mod model;
pub mod queues;
pub mod registry;
pub mod session;
pub mod shutdown;
pub use genesys_sim as simulator;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod webhooks;
pub mod writes;
