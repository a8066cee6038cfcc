//! A Genesys Cloud simulator: one port serving the real paths, bodies,
//! spellings and limits of `genesys-api.md` (OAuth on `/oauth/token`, the
//! Platform API under `/api/v2`, the notification WebSocket at the
//! `connectUri` it returns) plus the `/sim` control API of `design.md` for
//! tests, demos and benchmarks.
//!
//! It is the default upstream of the demo, the double for every test and the
//! load source for benchmarks, so it behaves like the real service (limits,
//! at-most-once delivery, 429s, token expiry), not like our guess of the
//! gateway's needs. Where the real behaviour is UNCONFIRMED the choice is a
//! flag on [`SimConfig`] and is listed in `docs/simulator.md`.
//!
//! State lives in [`state::SimInner`] behind one lock; HTTP handlers, the
//! socket tasks, the churn task and the housekeeping tick all go through it.

pub mod api;
pub mod control;
pub mod conversations;
pub mod notifications;
pub mod org;
pub mod queues;
pub mod spelling;
pub mod state;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use parking_lot::Mutex;
use rand::{rngs::StdRng, SeedableRng};
use tokio_util::sync::CancellationToken;

use self::org::Org;
use self::state::SimInner;

/// Simulator settings; every one is a `simulate` flag.
#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Number of agents in the simulated org (1 to 20 000).
    #[arg(long, default_value_t = 500)]
    pub agents: usize,
    /// Seed for the org and the churn: the same seed gives the same org.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The OAuth client id the simulator accepts.
    #[arg(long, default_value = "sim-client")]
    pub client_id: String,
    /// The OAuth client secret the simulator accepts.
    #[arg(long, default_value = "sim-secret")]
    pub client_secret: String,
    /// Access token lifetime in seconds (Genesys default 86 400; range 300–172 800 on the real service).
    #[arg(long, default_value_t = 86_400)]
    pub token_lifetime_secs: u64,
    /// Requests per minute per token before 429 (`client.credentials.token.rate.per.minute`).
    #[arg(long, default_value_t = 300)]
    pub rate_limit_per_minute: u32,
    /// Seconds between `channel.metadata` heartbeats on each socket (30 observed).
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_secs: f64,
    /// Channel lifetime in seconds; re-subscribing extends it (24 h on the real service).
    #[arg(long, default_value_t = 86_400)]
    pub channel_ttl_secs: u64,
    /// Channels per OAuth client before the oldest is evicted.
    #[arg(long, default_value_t = 20)]
    pub max_channels: usize,
    /// Topics per channel before a subscription call gets 400.
    #[arg(long, default_value_t = 1_000)]
    pub max_topics: usize,
    /// Count each part of a combined topic toward the limit (UNCONFIRMED; default counts one).
    #[arg(long, default_value_t = false)]
    pub combined_topics_count_expanded: bool,
    /// Honour `ignoreErrors=true` on subscription calls: refused topics come back
    /// as `Rejected` entries instead of failing the call (UNCONFIRMED, inferred
    /// from the parameter's description; `false` fails the whole call).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ignore_errors_honoured: bool,
    /// Close a channel's socket when the token that created it expires (UNCONFIRMED; default yes).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub token_expiry_closes_channels: bool,
    /// Seconds between `v2.system.socket_closing` and the forced close (about 60 on the real service).
    #[arg(long, default_value_t = 60.0)]
    pub socket_closing_grace_secs: f64,
    /// Share of users whose `expand` fields are left out of `/api/v2/users` (expansions are best effort).
    #[arg(long, default_value_t = 0.0)]
    pub expand_miss_rate: f64,
    /// Largest `pageSize` on `/api/v2/users` (UNCONFIRMED; 500 claimed).
    #[arg(long, default_value_t = 500)]
    pub users_max_page_size: usize,
    /// Most items in one `PUT /api/v2/users/presences/bulk` (UNCONFIRMED; default mirrors bulk GET's 50).
    #[arg(long, default_value_t = 50)]
    pub bulk_put_max: usize,
    /// Presence changes per second from the start (0: none until `POST /sim/churn`).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Frames queued per socket before the simulator drops a socket that does not read.
    #[arg(long, default_value_t = 65_536)]
    pub socket_queue: usize,
    /// Leave `modifiedDate` out of `v2.users.{id}.presence` events, as Genesys's own
    /// example shows them (the model has the field; whether it is sent is UNCONFIRMED).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub presence_events_without_modified_date: bool,
    /// What `id` means in the answer of `PUT /api/v2/users/presences/bulk` (UNCONFIRMED):
    /// `user` (the user's id, as in `MutableUserPresence`) or `source` (the presence
    /// source's id, with no user id in the item).
    #[arg(long, value_enum, default_value_t = BulkPutAnswerId::User)]
    pub bulk_put_answer_id: BulkPutAnswerId,
    /// What `deactivated=true` on `GET /api/v2/presence/definitions` means (UNCONFIRMED):
    /// `include` (deactivated ones as well as active ones) or `only` (only deactivated ones).
    #[arg(long, value_enum, default_value_t = DeactivatedReading::Include)]
    pub definitions_deactivated: DeactivatedReading,
    /// What `QueueMember.id` is (UNCONFIRMED): `user` (the user's id) or `member`
    /// (a membership record's own id; the user's id is then only in `user.id`).
    #[arg(long, value_enum, default_value_t = QueueMemberId::User)]
    pub queue_member_id: QueueMemberId,
    /// Share (0–1) of queue memberships with `joined: false` (member, but not active in
    /// the queue: left out of `activeQueueIds`).
    #[arg(long, default_value_t = 0.0)]
    pub unjoined_member_rate: f64,
}

/// Readings of the bulk presence PUT answer's `id` (`--bulk-put-answer-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BulkPutAnswerId {
    /// `id` is the user's id.
    User,
    /// `id` is the presence source's id; no user id in the answer.
    Source,
}

/// Readings of `deactivated=true` on `/api/v2/presence/definitions` (`--definitions-deactivated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeactivatedReading {
    /// `deactivated=true` adds deactivated definitions to the active ones.
    Include,
    /// `deactivated=true` returns only the deactivated definitions.
    Only,
}

/// Readings of `QueueMember.id` (`--queue-member-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueMemberId {
    /// `id` is the member's user id.
    User,
    /// `id` is the membership's own id; the user id is in `user.id`.
    Member,
}

/// The fidelity choices the event and answer builders need (from [`SimConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Fidelity {
    /// See [`SimConfig::presence_events_without_modified_date`].
    pub presence_events_without_modified_date: bool,
    /// See [`SimConfig::unjoined_member_rate`].
    pub unjoined_member_rate: f64,
}

impl Default for Fidelity {
    fn default() -> Self {
        Fidelity {
            presence_events_without_modified_date: true,
            unjoined_member_rate: 0.0,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            cfg: SimConfig,
        }
        // unwrap: the defaults above always parse
        Wrap::try_parse_from(["sim"]).unwrap().cfg
    }
}

impl SimConfig {
    /// Checks the settings, naming the flag at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.agents == 0 || self.agents > 20_000 {
            return Err(format!("--agents must be 1 to 20000, got {}", self.agents));
        }
        if self.rate_limit_per_minute == 0 {
            return Err("--rate-limit-per-minute must be at least 1".into());
        }
        if self.heartbeat_secs <= 0.0 || self.heartbeat_secs.is_nan() {
            return Err("--heartbeat-secs must be positive".into());
        }
        if self.token_lifetime_secs == 0 {
            return Err("--token-lifetime-secs must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.expand_miss_rate) {
            return Err("--expand-miss-rate must be between 0 and 1".into());
        }
        if self.max_channels == 0 || self.max_topics == 0 || self.bulk_put_max == 0 {
            return Err(
                "--max-channels, --max-topics and --bulk-put-max must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.unjoined_member_rate) {
            return Err("--unjoined-member-rate must be between 0 and 1".into());
        }
        if self.churn < 0.0 || self.churn.is_nan() {
            return Err("--churn must be 0 or more".into());
        }
        Ok(())
    }
}

/// The simulator, shared by every handler and task.
pub struct Sim {
    pub cfg: SimConfig,
    pub inner: Mutex<SimInner>,
    /// Stops the background tasks when the simulator stops.
    pub stop: CancellationToken,
}

/// A running simulator.
pub struct SimHandle {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    server: ServerHandle,
}

impl SimHandle {
    /// `http://ADDR`, the base of every simulator URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and its background tasks.
    pub async fn stop(&self) {
        self.sim.stop.cancel();
        self.server.stop(false).await;
    }
}

/// Builds the org and binds the server; the returned future serves until stopped.
pub async fn start(cfg: SimConfig) -> std::io::Result<SimHandle> {
    cfg.validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let org = Org::generate(cfg.agents, cfg.seed, chrono::Utc::now());
    let rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(0x5eed));
    let mut inner = SimInner::new(org, rng);
    inner.churn_rate = cfg.churn;
    inner.fidelity = Fidelity {
        presence_events_without_modified_date: cfg.presence_events_without_modified_date,
        unjoined_member_rate: cfg.unjoined_member_rate,
    };
    let sim = Arc::new(Sim {
        cfg: cfg.clone(),
        inner: Mutex::new(inner),
        stop: CancellationToken::new(),
    });
    let data = web::Data::from(sim.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(512_000))
            .configure(routes)
    })
    .workers(cfg.workers.max(1))
    .disable_signals()
    .shutdown_timeout(1)
    .bind(cfg.listen)?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    actix_web::rt::spawn(housekeeping(sim.clone()));
    actix_web::rt::spawn(conversations::churn_task(sim.clone()));
    actix_web::rt::spawn(queues::arrivals_task(sim.clone()));
    tracing::info!(%addr, agents = cfg.agents, seed = cfg.seed, "simulator listening");
    Ok(SimHandle {
        addr,
        sim,
        server: handle,
    })
}

/// Every route of the simulator.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/token", web::post().to(api::token))
        .route(
            "/channels/{channel_id}",
            web::get().to(notifications::socket),
        )
        .configure(queues::control)
        .service(control::scope())
        .service(
            web::scope("/api/v2")
                .wrap(actix_web::middleware::from_fn(api::gate))
                .configure(users::routes)
                .configure(notifications::routes)
                .configure(conversations::routes)
                .configure(queues::routes)
                .default_service(web::to(api::not_found)),
        );
}

/// Expires tokens and channels and enforces `socket_closing` deadlines.
async fn housekeeping(sim: Arc<Sim>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = sim.stop.cancelled() => return,
            _ = tick.tick() => sim.inner.lock().housekeeping(&sim.cfg),
        }
    }
}
