//! The downstream HTTP API (design.md "Downstream contract v1"): the route
//! table ([`table`]), the edge middleware (`guard`), and thin handlers per
//! area (`routes`: snapshot, agents, definitions, streams, health;
//! `writes`, `history`, `webhooks`, `interactions`, `queues`, `metrics`).
//! Handlers parse parameters, call the registry or a feature, or start a
//! session actor. Errors are [`ApiError`].

pub mod assets;
mod error;
pub mod extract;
pub mod guard;
pub mod history;
pub mod interactions;
pub mod metrics;
pub mod openapi;
pub mod queues;
mod routes;
pub mod table;
pub mod webhooks;
pub mod writes;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use error::ApiError;
pub use routes::{parse_query, ParsedQuery, QueryMode};

use crate::registry::Registry;
use crate::session::{ConnLimits, SessionConfig, SessionMetrics};

/// The parts of a full gateway above the registry and the sessions, built
/// bottom-up by `app::start` (store → journal → registry → Genesys floor →
/// features) and mounted all at once with [`AppState::full`]. A
/// registry-only gateway ([`AppState::core`], used by tests that drive the
/// registry directly) mounts none and answers their routes 404.
pub struct Features {
    /// The guarded write path.
    pub writes: Arc<crate::writes::Writes>,
    /// Interaction context (hub, Genesys handle, settings).
    pub interactions: crate::http::interactions::InteractionsState,
    /// Presence history and summaries.
    pub history: Arc<crate::history::History>,
    /// Webhook replay and counters.
    pub webhooks: Arc<crate::webhooks::WebhookApi>,
    /// The queue hub (observations, `queues` stream messages).
    pub queues: Addr<crate::queues::QueueHub>,
    /// The upstream's counters (for `/metrics`).
    pub upstream: Arc<crate::genesys::UpstreamStats>,
    /// The store's health (for `/readyz` and `/metrics`).
    pub store: Arc<crate::store::StoreHealth>,
}

/// What every handler shares. Cheap to clone. Built once, by
/// [`AppState::core`] or [`AppState::full`]; nothing is filled in later.
#[derive(Clone)]
pub struct AppState {
    /// The registry actor.
    pub registry: Addr<Registry>,
    /// Session tuning.
    pub session: Arc<SessionConfig>,
    /// Connection limits (from `session`).
    pub limits: Arc<ConnLimits>,
    /// Session counters.
    pub metrics: Arc<SessionMetrics>,
    /// Authentication, origins, body limits, drain flag (`crate::auth`).
    pub security: Arc<crate::auth::Security>,
    /// What `/metrics` reads besides the registry and sessions.
    pub ops: crate::http::metrics::OpsHandles,
    /// `[board]` settings served on `/api/v1/board`.
    pub board: Arc<crate::board::BoardConfig>,
    /// Writes, interactions, history, webhooks and queues; `None` in a
    /// registry-only gateway (their routes are not mounted).
    pub features: Option<Arc<Features>>,
    /// The cluster this node belongs to (`[cluster] redis_url`); `None`
    /// for a standalone gateway.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl AppState {
    /// A registry-only gateway: snapshot, agents, streams, health, with
    /// default security (auth off) and no features.
    pub fn core(registry: Addr<Registry>, session: SessionConfig) -> AppState {
        AppState {
            limits: ConnLimits::new(session.max_connections, session.max_connections_per_ip),
            registry,
            session: Arc::new(session),
            metrics: Arc::new(SessionMetrics::default()),
            security: Arc::new(crate::auth::Security::default()),
            ops: crate::http::metrics::OpsHandles::default(),
            board: Arc::new(crate::board::BoardConfig::default()),
            features: None,
            cluster: None,
        }
    }

    /// The same state as a member of `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> AppState {
        self.cluster = cluster;
        self
    }

    /// A full gateway: the core with `security`, `board` and every feature.
    pub fn full(
        registry: Addr<Registry>,
        session: SessionConfig,
        security: Arc<crate::auth::Security>,
        board: Arc<crate::board::BoardConfig>,
        features: Features,
    ) -> AppState {
        let core = AppState::core(registry, session);
        AppState {
            security,
            board,
            ops: crate::http::metrics::OpsHandles {
                upstream: Some(features.upstream.clone()),
                store: Some(features.store.clone()),
                ..core.ops
            },
            features: Some(Arc::new(features)),
            ..core
        }
    }

    /// The write path, when mounted.
    pub fn writes(&self) -> Option<&Arc<crate::writes::Writes>> {
        self.features.as_deref().map(|f| &f.writes)
    }

    /// Interaction context, when mounted.
    pub fn interactions(&self) -> Option<&crate::http::interactions::InteractionsState> {
        self.features.as_deref().map(|f| &f.interactions)
    }

    /// Webhook replay and counters, when mounted.
    pub fn webhooks(&self) -> Option<&Arc<crate::webhooks::WebhookApi>> {
        self.features.as_deref().map(|f| &f.webhooks)
    }

    /// The queue hub, when mounted.
    pub fn queues(&self) -> Option<&Addr<crate::queues::QueueHub>> {
        self.features.as_deref().map(|f| &f.queues)
    }
}

/// Registers every route of the downstream API (from the route table,
/// [`table::register`]) and `state` on an app.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    extract::configure(cfg);
    guard::configure(cfg, &state.security);
    if let Some(f) = state.features.as_deref() {
        cfg.app_data(web::Data::new(f.writes.clone()))
            .app_data(web::Data::new(f.history.clone()))
            .app_data(web::Data::new(f.webhooks.clone()));
    }
    table::register(cfg, &state);
    cfg.app_data(web::Data::new(state))
        .default_service(web::to(routes::not_found));
}

/// Binds `listen` (port 0 picks a free one), starts the downstream server
/// with `workers` worker threads on the current actix system, and returns
/// its handle and the bound address. The server runs until the handle's
/// `stop` is called (it does not install signal handlers).
pub async fn start_with_workers(
    state: AppState,
    listen: SocketAddr,
    workers: usize,
) -> io::Result<(ServerHandle, SocketAddr)> {
    let listener = std::net::TcpListener::bind(listen)?;
    start_on(state, listener, workers).await
}

/// Like [`start_with_workers`] on an already bound listener (accepted
/// sockets inherit its options, e.g. buffer sizes).
pub async fn start_on(
    state: AppState,
    listener: std::net::TcpListener,
    workers: usize,
) -> io::Result<(ServerHandle, SocketAddr)> {
    let addr = listener.local_addr()?;
    state.security.set_listen_addr(addr);
    // Accepted sockets inherit TCP_USER_TIMEOUT: the kernel aborts a
    // connection whose client has stopped reading (zero window) once data
    // has waited this long, so a session evicted by its write deadline
    // (session.write_timeout_secs) does not leave its connection and the
    // buffers on the way pinned for as long as the client stays connected.
    // It fires after the session's own deadline and close grace, so the
    // session decides (and counts) first. Linux only.
    #[cfg(target_os = "linux")]
    socket2::SockRef::from(&listener).set_tcp_user_timeout(Some(
        state.session.write_timeout() + state.session.close_grace(),
    ))?;
    let server = HttpServer::new(move || {
        let st = state.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(guard::edge))
            .configure(move |cfg| configure(cfg, st))
    })
    .workers(workers.max(1))
    // Small write buffers: stream messages reach the HTTP layer in 4 KiB
    // pieces (session/body.rs), so an idle connection keeps under 8 KiB of
    // write buffer instead of a snapshot-sized one.
    .h1_write_buffer_size(crate::session::body::PIECE)
    .max_connections(100_000)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tracing::info!(%addr, "downstream API listening");
    Ok((handle, addr))
}

/// [`start_with_workers`] with one worker per available core.
pub async fn start(state: AppState, listen: SocketAddr) -> io::Result<(ServerHandle, SocketAddr)> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    start_with_workers(state, listen, workers).await
}
