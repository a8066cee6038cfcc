//! Wiring: starts the registry, the upstream actor and the downstream HTTP
//! server from one [`Config`], and stops them in order. `main` calls
//! [`start`] for `serve` and `demo`; integration tests call it too, with the
//! simulator as upstream.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::dev::ServerHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::genesys::{ConversationSink, Genesys, Upstream, UpstreamStats};
use crate::history::History;
use crate::http::interactions::InteractionsState;
use crate::http::{self, AppState};
use crate::interactions::Interactions;
use crate::registry::JournalLink;
use crate::registry::Registry;
use crate::store::journal::{Journal, Prune};
use crate::store::{Store, StoreHealth};
use crate::webhooks::{WebhookApi, Webhooks};
use crate::writes::Writes;

/// Entries the leader's registry may queue for the cluster publisher before
/// it falls back to a checkpoint (Redis slow or away).
const REPLICA_QUEUE: usize = 8192;

/// The interaction hub's floor in a cluster: the leader subscribes
/// conversations at Genesys; a follower reports its watches to the leader
/// (which subscribes them once for all nodes) and gets each agent's
/// interactions, completed, from the leader.
struct ClusterFloor {
    genesys: Genesys,
    cluster: Arc<crate::cluster::Cluster>,
}

impl crate::interactions::ConversationFloor for ClusterFloor {
    fn watch_conversations(&self, user_id: &str, watch: bool) -> bool {
        self.cluster.watch_remotely(user_id, watch);
        if self.cluster.is_leader() {
            self.genesys.watch_conversations(user_id, watch)
        } else {
            true
        }
    }

    fn complete_interaction(
        &self,
        conversation_id: String,
        queue_id: Option<String>,
        wrapup_code_id: Option<String>,
        need_start: bool,
    ) -> futures_util::future::LocalBoxFuture<'static, Option<crate::interactions::Completion>>
    {
        if !self.cluster.is_leader() {
            // A follower's context comes complete from the leader.
            return Box::pin(async { None });
        }
        crate::interactions::ConversationFloor::complete_interaction(
            &self.genesys,
            conversation_id,
            queue_id,
            wrapup_code_id,
            need_start,
        )
    }
}

/// The leader registers each other node as one watcher (per agent) with
/// its hub: a pseudo-session per node, whose deliveries go nowhere (the
/// node gets the context through Redis).
fn remote_watches(hub: actix::Addr<Interactions>) -> crate::cluster::context::RemoteWatches {
    let sink = Discard.start().recipient();
    Box::new(move |node: &str, agents: Vec<String>| {
        // Ids far above any session's (sessions count up from 1).
        let session_id = u64::MAX / 2 + {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            node.hash(&mut h);
            h.finish() / 2
        };
        // In order, each waiting for room in the hub's mailbox.
        let (hub, sink) = (hub.clone(), sink.clone());
        actix::spawn(async move {
            let _ = hub.send(crate::interactions::Unwatch { session_id }).await;
            if !agents.is_empty() {
                let _ = hub
                    .send(crate::interactions::Watch {
                        session_id,
                        agents,
                        recipient: sink,
                    })
                    .await;
            }
        });
    })
}

/// Takes deliveries and drops them (another node's pseudo-session).
struct Discard;

impl Actor for Discard {
    type Context = actix::Context<Self>;
}

impl actix::Handler<crate::registry::Deliver> for Discard {
    type Result = ();
    fn handle(&mut self, _: crate::registry::Deliver, _: &mut Self::Context) {}
}

/// Prunes the journal hourly (it prunes itself at start too).
async fn prune_loop(journal: Addr<Journal>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
        if let Ok(Err(e)) = journal.send(Prune).await {
            tracing::warn!(error = %e, "pruning the journal failed");
        }
    }
}

/// A running gateway.
pub struct Gateway {
    /// Where the HTTP API listens (useful with port 0).
    pub addr: SocketAddr,
    pub registry: Addr<Registry>,
    pub upstream: Addr<Upstream>,
    pub upstream_stats: Arc<UpstreamStats>,
    pub state: AppState,
    pub store: Addr<Store>,
    /// The presence journal and webhook outbox.
    pub journal: Addr<Journal>,
    /// Webhook subscribers and their delivery counters (for `/metrics`).
    pub webhooks: Arc<Webhooks>,
    server: ServerHandle,
    stop: CancellationToken,
    /// `[server] drain_secs` / `drain_spread_secs`.
    drain: crate::shutdown::DrainConfig,
    /// The cluster this node belongs to, if any.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Gateway {
    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful drain (what SIGTERM / SIGINT do): stop accepting, close
    /// every stream client (final `status`, WS 1001, SSE `close` + `retry:`)
    /// spread over `server.drain_spread_secs`, flush the journal and the
    /// store, stop; all
    /// within `server.drain_secs`.
    pub async fn shutdown(&self) -> crate::shutdown::DrainReport {
        crate::shutdown::drain(
            crate::shutdown::DrainTargets {
                server: &self.server,
                registry: &self.registry,
                state: &self.state,
                store: &self.store,
                stop: &self.stop,
            },
            self.drain,
        )
        .await
    }

    /// Resolves when this node, having led a cluster, lost the lease to
    /// another node (it must drain and exit); never for a standalone gateway.
    pub async fn deposed(&self) {
        match &self.cluster {
            Some(c) => c.deposed.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Stops the upstream and the HTTP server.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.server.stop(true).await;
    }
}

/// Starts everything on the current actix system, bottom-up: the store and
/// the journal, the registry (handing its changes to the journal), the
/// Genesys floor (feeding the registry and the interaction hub), the
/// features on the floor's handle, and the HTTP server over all of them.
/// Each part is built once, from the parts below it. The configuration
/// must already be validated ([`Config::load`] does).
pub async fn start(cfg: Config) -> std::io::Result<Gateway> {
    let store_error = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let security = Arc::new(
        crate::auth::Security::new(
            &cfg.auth,
            &cfg.server.allowed_origins,
            &cfg.server.public_origins,
            cfg.server.max_body_bytes,
        )
        .map_err(std::io::Error::other)?,
    );
    let stop = CancellationToken::new();

    // Storage: the store (audit, idempotency keys, leases) and the journal
    // (presence history, webhook outbox) sharing its file.
    // Both report their health to `store_health` (readiness, metrics, the
    // write path's refusal before Genesys).
    let store_health = Arc::new(StoreHealth::default());
    let store =
        Store::start(cfg.store.clone(), store_health.clone()).map_err(|e| store_error(&e))?;
    let webhooks = Arc::new(Webhooks::new(&cfg.webhooks));
    let journal = Journal::start(
        cfg.store.clone(),
        cfg.history.retention_days,
        webhooks.clone(),
        store_health.clone(),
    )
    .map_err(|e| store_error(&e))?;

    // A cluster member (`[cluster] redis_url`) leads or follows; its
    // registry publishes what it numbers while it leads.
    let cluster = match cfg.cluster.redis_url {
        Some(_) => Some(
            crate::cluster::Cluster::new(cfg.cluster.clone(), &cfg.genesys.client_secret)
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let (replica_tx, replica_rx) = tokio::sync::mpsc::channel(REPLICA_QUEUE);

    // The registry, handing every applied change to the journal.
    let mut registry = Registry::new(cfg.registry.clone()).with_journal(JournalLink {
        recipient: journal.clone().recipient(),
        backlog: cfg.history.backlog_batches,
    });
    if let Some(c) = &cluster {
        registry = registry.with_replica(replica_tx, c.gate.clone());
    }
    let registry = registry.start();

    // The Genesys floor: normalised events to the registry, conversation
    // events to the interaction hub. The hub's address exists before the
    // hub, so the floor starts first with its sink, and the hub then starts
    // on the floor's handle.
    let upstream_stats = Arc::new(UpstreamStats::default());
    let hub_ctx = actix::Context::<Interactions>::new();
    let hub = actix::AsyncContext::address(&hub_ctx);
    // In a cluster only the leader runs the Upstream actor: its address
    // exists from the start (messages wait in its mailbox), the actor runs
    // once this node takes the lease.
    let upstream_ctx = actix::Context::<Upstream>::new();
    let upstream = actix::AsyncContext::address(&upstream_ctx);
    let upstream_actor = Upstream::new(
        cfg.genesys.clone(),
        cfg.upstream.clone(),
        registry.clone().recipient(),
        upstream_stats.clone(),
        stop.clone(),
    )
    .with_conversation_sink(ConversationSink {
        seen: hub.clone().recipient(),
        reset: hub.clone().recipient(),
    });
    let mut promote = None;
    match &cluster {
        None => {
            upstream_ctx.run(upstream_actor);
        }
        Some(c) => {
            let (c, g) = (c.clone(), Genesys::new(upstream.clone()));
            promote = Some(Box::new(move || {
                upstream_ctx.run(upstream_actor);
                // What this node's own clients watched while it followed.
                actix::spawn(async move {
                    for agent in c.local_watches() {
                        g.watch_conversations_waiting(&agent, true).await;
                    }
                });
            }) as Box<dyn FnOnce()>);
        }
    }
    let genesys = Genesys::new(upstream.clone());
    // A cluster member's hub reports its watches to the leader, which alone
    // subscribes conversations; the leader's hub publishes every agent's
    // interactions for the other nodes (`crate::cluster::context`).
    let (context_tx, context_rx) = tokio::sync::mpsc::channel(REPLICA_QUEUE);
    let hub_actor = match &cluster {
        None => Interactions::new(cfg.interactions.clone(), genesys.clone()),
        Some(c) => Interactions::new(
            cfg.interactions.clone(),
            ClusterFloor {
                genesys: genesys.clone(),
                cluster: c.clone(),
            },
        )
        .with_replica(context_tx),
    };
    hub_ctx.run(hub_actor);

    let hub_for_cluster = hub.clone();
    let (rounds_tx, rounds_rx) = tokio::sync::mpsc::channel(64);
    let mut queue_hub =
        crate::queues::QueueHub::new(cfg.board.clone(), registry.clone(), Some(genesys.clone()));
    if cluster.is_some() {
        queue_hub = queue_hub.with_replica(rounds_tx);
    }
    let queue_hub = queue_hub.start();
    // Features, on the floor's handle, the registry and the storage.
    let writes = Arc::new(
        Writes::new(
            registry.clone(),
            genesys.clone(),
            store.clone(),
            cfg.writes.clone(),
            store_health.clone(),
        )
        .with_cluster(cluster.clone()),
    );
    let features = http::Features {
        writes: writes.clone(),
        interactions: InteractionsState {
            hub,
            upstream: genesys.clone(),
            cfg: cfg.interactions.clone(),
        },
        history: Arc::new(History {
            journal: journal.clone(),
            upstream: genesys.clone(),
            registry: registry.clone(),
            cfg: cfg.history.clone(),
        }),
        webhooks: Arc::new(WebhookApi {
            hooks: webhooks.clone(),
            journal: journal.clone(),
        }),
        queues: queue_hub.clone(),
        upstream: upstream_stats.clone(),
        store: store_health.clone(),
    };
    let state = AppState::full(
        registry.clone(),
        cfg.session.clone(),
        security,
        Arc::new(cfg.board.clone()),
        features,
    )
    .with_cluster(cluster.clone());

    // Background loops.
    actix_web::rt::spawn(crate::writes::lease_loop(writes.clone(), stop.clone()));
    actix_web::rt::spawn(crate::writes::record_loop(writes.clone(), stop.clone()));
    actix_web::rt::spawn(crate::writes::settle_keys(writes, stop.clone()));
    actix_web::rt::spawn(crate::store::probe_loop(
        store.clone(),
        std::time::Duration::from_secs(cfg.store.probe_secs),
        stop.clone(),
    ));
    crate::webhooks::start(webhooks.clone(), journal.clone(), stop.clone());
    actix_web::rt::spawn(prune_loop(journal.clone(), stop.clone()));

    // The HTTP server over all of it.
    let workers = match cfg.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (server, addr) =
        http::start_with_workers(state.clone(), cfg.server.listen, workers).await?;
    if let (Some(c), Some(promote)) = (&cluster, promote) {
        let mut local = addr;
        if local.ip().is_unspecified() {
            local.set_ip(match local {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        tracing::info!(node = %c.node, "cluster member; following until this node takes the lease");
        crate::cluster::start(
            c.clone(),
            crate::cluster::NodeParts {
                registry: registry.clone(),
                replica: replica_rx,
                promote,
                local_base: format!("http://{local}"),
                stream_len: cfg.registry.replay_batches,
                stop: stop.clone(),
                context: Some(crate::cluster::context::ContextParts {
                    hub: hub_for_cluster.clone().recipient(),
                    published: context_rx,
                    remote_watches: remote_watches(hub_for_cluster),
                    redact_customer: cfg.interactions.redact_customer,
                    queues: queue_hub.recipient(),
                    rounds: rounds_rx,
                }),
            },
        );
    }
    Ok(Gateway {
        addr,
        registry,
        upstream,
        upstream_stats,
        state,
        store,
        journal,
        webhooks,
        server,
        stop,
        drain: crate::shutdown::DrainConfig {
            grace: std::time::Duration::from_secs(cfg.server.drain_secs),
            spread: std::time::Duration::from_secs(cfg.server.drain_spread_secs),
        },
        cluster,
    })
}
