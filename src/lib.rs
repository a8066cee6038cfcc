//! presence-gateway: one Genesys Cloud connection, fanned out to thousands of
//! live dashboards, wallboards and agent desktops.
//!
//! # Layout
//!
//! Laid out the way data flows (docs/architecture.md; `tests/architecture.rs`
//! fails on an arrow pointing sideways or up its layer table, on an import
//! cycle between top-level modules, or on the Genesys floor importing
//! anything above the leaves):
//!
//! ```text
//! src/                    layers, bottom up (docs/architecture.md "Layers"; known departures at its end)
//!   lib.rs                the crate root: the module map, `pub use genesys_sim as simulator`
//!   model.rs              leaf: normalised vocabulary, UpstreamEvent, Interaction + Completion, conversation events
//!   telemetry.rs          leaf: metric names, histograms, webhook outcome counters
//!   validate.rs           leaf: check_range for every config section
//!   genesys/              the floor: the only code that speaks Genesys (imports leaves only)
//!     mod.rs              GenesysConfig, UpstreamConfig; re-exports the actor's UpstreamStats, ConversationSink
//!     actor.rs            the Upstream actor: state machine, shards, sync loop, handover, health
//!     auth.rs             client-credentials token, renewal, single flight
//!     rest.rs             the REST budget and lanes, Retry-After, retries, circuit breaker
//!     directory.rs        users, presence, routing status, definitions, queues, members → model
//!     lenient.rs          tolerant JSON: lone surrogates repaired, bad records skipped and counted
//!     topics.rs           the topic planner
//!     channel.rs          notification channels: create/subscribe/connect, socket reader, watchdog
//!     conversations.rs    conversation topics and reads, from_conversation → model::Interaction,
//!                         CompleteInteraction (queue names, wrap-up code names, start time)
//!     queue_observations.rs  customers waiting and longest wait per queue (analytics, lowest lane)
//!     handle.rs           Genesys: the one handle the layers above use
//!     analytics.rs        presence/routing history from Genesys analytics
//!     writes.rs           presence writes (single and bulk) on the top lane
//!     region.rs           the 17 regions
//!   protocol/             every message clients see, built once (above model only)
//!     mod.rs              the module list
//!     encode.rs           Frame, Batch, snapshot/delta/status/error/interaction/queues/close frames, coalescing
//!     agent.rs            AgentView, Change and its wire encoding
//!     counts.rs           live counts and their JSON
//!     filter.rs           client filters and resume cursors
//!     context.rs          interaction and queue bodies (stream messages and their REST twins), customer redaction
//!     wire.rs             WebSocket frames, permessage-deflate, gzip SSE blocks, negotiation, client-frame reader
//!   registry/             the presence map and its numbering (one actor)
//!     mod.rs              re-exports (also protocol's encode/filter/agent/counts under their old `registry::` names)
//!     actor.rs            messages, batching, epoch/seq, replay ring, fan-out, write context, journal flush
//!     state.rs            the presence map: staleness rules, sync diff, counts
//!     tap.rs              hands every change to the journal without making fan-out wait
//!     replica.rs          what a cluster leader's registry publishes and a follower's applies (batches, meta, checkpoints)
//!     config.rs           RegistryConfig
//!   store/                persistence: SQLite (default) or PostgreSQL, one interface
//!     mod.rs              audit log, idempotency keys, leases, BeginWrite (intent before Genesys), CommitWrite, probe, keys left in flight
//!     health.rs           StoreHealth (readiness, metrics) and the store loops' Backoff
//!     migrate.rs          SQLite's versioned schema migrations (PRAGMA user_version)
//!     backend.rs          the two backends: Conn (SQLite | PostgreSQL), PostgreSQL's migrations, Db/Val for SQL written once
//!     ops.rs              StoreOps: the store actor's SQL, once per backend (Lite, Pg)
//!     journal.rs          presence journal and webhook outbox (subscribers via OutboxRouting; claims count attempts)
//!   auth.rs               credentials, roles, tickets, origins, division scope, AuthError (no actix-web)
//!   interactions.rs       the interaction hub: who watches which agent, reference-counted topics,
//!                         completion of what events leave out
//!   session/              one actor per stream client
//!     mod.rs              re-exports (Session, SessionParams, limits, close reasons)
//!     actor.rs            subscribe, deliver, pump, close
//!     outbox.rs           byte-bounded queue, per-agent coalescing
//!     body.rs             the response body both transports write shared bytes through (4 KiB pieces; 132 KiB past 128 KiB)
//!     ws.rs, sse.rs       one module per transport (WS: own handshake, deflate negotiation, frame reader; SSE: gzip)
//!     close.rs            every close code
//!     draining.rs         what a stream request gets during a drain
//!     limits.rs           connection limits, disconnect counters
//!     config.rs           SessionConfig
//!   writes.rs             guarded presence writes, leases, audit queries; WriteError (no actix-web)
//!   history.rs            history pages and daily summaries from journal + analytics; HistoryError
//!   webhooks.rs           signed at-least-once delivery from the outbox; Webhooks implements OutboxRouting
//!   queues.rs             the queue hub: member figures from the registry + Genesys observations, `queues` messages
//!   board.rs              `[board]` settings: thresholds, desktop presences, queue figure pacing
//!   http/                 the HTTP API: thin handlers, one ApiError
//!     mod.rs              AppState (core, or full with Features), server start
//!     table.rs            the one route table: route → handler → role, scope rule, part; route policy
//!     guard.rs            app-wide edge middleware, authentication, the Principal extractor, tickets (store or memory)
//!     error.rs            ApiError, the one error answer; feature errors convert into it
//!     routes.rs           snapshot, agents, definitions, streams, health, readiness
//!     writes.rs           PATCH presence, bulk, audit
//!     history.rs          history and summary
//!     webhooks.rs         webhook list, replay, dead letters
//!     interactions.rs     interaction reads and stream watching
//!     queues.rs           queue figures and board settings
//!     metrics.rs          /metrics: gathers counters, renders Prometheus text
//!     openapi.rs          GET /api/v1/openapi.json: the OpenAPI 3.1 description, built from the route table
//!     extract.rs          extractor errors as JSON
//!     assets.rs           the static pages, compiled in
//!   cluster/              scale-out on Redis: leader lease, replicated stream + snapshot, relay
//!     mod.rs              Cluster (role, status, counters), Redis keys
//!     config.rs           ClusterConfig (`[cluster]`)
//!     node.rs             the lease loop (acquire, renew, step down), following the stream, the fenced publisher
//!     relay.rs            requests a follower hands to the leader through Redis
//!     context.rs          interaction context and queue observations across nodes: watches reported, the leader subscribes once
//!   shutdown.rs           the graceful drain: sessions, journal, store, server
//!   config.rs             the whole configuration: file + env overrides + validate
//!   app.rs                wiring: store, registry, genesys + hub, writes, journal, features, HTTP
//!   main.rs               commands (serve, check-config, demo, simulate); exit 64
//! crates/genesys-sim/     the fake Genesys org, its own crate (no gateway imports), re-exported as `simulator`
//!   src/lib.rs            SimConfig, start(), the app (real paths + /sim), churn and housekeeping tasks
//!   src/spelling.rs       Genesys's spellings (system presences, routing statuses), written from genesys-api.md
//!   src/org.rs            the generated org: users, divisions, queues, definitions, wrap-up codes
//!   src/state.rs          SimInner: users' state, channels, tokens, faults, counters; event bodies
//!   src/api.rs            Genesys error bodies, rate budget, common request context
//!   src/users.rs          users, presences (single, bulk), routing status, definitions, queues, members, wrap-up codes
//!   src/notifications.rs  channels, subscriptions, the streaming WebSocket
//!   src/conversations.rs  conversations (REST and event shapes), analytics details queries
//!   src/queues.rs         queue observations and the waiting-customer control
//!   src/control.rs        the /sim control API: state, stats, presence, churn, faults
//! crates/loadgen/         the benchmark load generator (its own workspace member)
//!   src/main.rs           WS/SSE clients (optionally compressed), latency from modifiedDate, reconnect storms, JSON reports
//! tests/                  integration tests; common/ (wait_until, client), support/, e2e/,
//!                         architecture.rs (layering), compression.rs (negotiation, raw bytes),
//!                         browser/ (compression.test.mjs: Chromium's own deflate and gzip),
//!                         sdk/ (SDK checks; compression.py: Python websockets + zlib against demo)
//!   openapi.rs            the served description against the route table, both ways; the fuzzer's findings stay fixed
//!   openapi/run.sh        the description against the demo: Schemathesis (auth off, viewer, supervisor, admin routes)
//!   openapi/schemathesis.toml  per-operation answers JSON Schema cannot state (clock, other parameters)
//!   openapi/hooks.py      Schemathesis hook: a connection upgraded to WebSocket (101) is not reused
//!   openapi/client_check.py    a client generated by openapi-python-client lists agents, changes a presence
//!   openapi/stream_check.py    real SSE/WebSocket messages and close codes against docs/stream.schema.json
//!   openapi/requirements.txt   the pinned PyPI packages of the above
//! docs/stream.schema.json JSON Schema of every stream message and close code
//! ```
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod board;
pub mod cluster;
pub mod config;
pub mod genesys;
pub mod history;
pub mod http;
pub mod interactions;
pub mod model;
pub mod protocol;
pub mod queues;
pub mod registry;
pub mod session;
pub mod shutdown;
pub use genesys_sim as simulator;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod webhooks;
pub mod writes;

/// Old name of [`genesys`], kept so that code written against
/// `presence_gateway::upstream` (branches in flight) still builds.
pub use genesys as upstream;
