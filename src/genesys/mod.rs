//! The Upstream actor and everything it owns: the only code that talks to
//! Genesys Cloud.
//!
//! - [`region`]: the 17 regions by their Genesys names and their hosts.
//! - [`auth`]: the client-credentials token, renewed well before expiry.
//! - [`rest`]: every REST call, through one rate budget with priority lanes,
//!   `Retry-After`/`inin-ratelimit-*` handling, retries and a circuit breaker.
//! - [`directory`]: reading users, presence, routing status, definitions and
//!   queues through REST (start-up, reconciliation, directory refresh).
//! - [`topics`]: the topic planner (fewest topics, ≤ 1 000 per channel, ≤ 20 channels).
//! - [`channel`]: one notification channel socket: frames, watchdog, handover.
//! - [`writes`]: presence writes on the top-priority lane.
//! - [`analytics`]: presence/routing history from Genesys analytics (lowest lane).
//! - [`actor`]: the state machine tying them together; emits
//!   [`crate::model::UpstreamEvent`]s to the registry and nothing else.

pub mod actor;
pub mod analytics;
pub mod auth;
pub mod channel;
pub mod conversations;
pub mod directory;
pub mod handle;
pub mod lenient;
pub mod queue_observations;
pub mod region;
pub mod rest;
pub mod topics;
pub mod writes;

use serde::Deserialize;

pub use actor::{ConversationSink, Upstream, UpstreamStats};
pub use handle::Genesys;

/// How presence, routing status and queue activity are subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicStrategy {
    /// `v2.users.{id}.activity`: one topic and one event per change carries
    /// presence, routing status and active queues (the default: fewest
    /// topics and fewest frames).
    Activity,
    /// `v2.users.{id}?presence&routingStatus`: one combined topic per user,
    /// separate presence and routing events.
    Combined,
}

/// Genesys connection settings (`[genesys]`); the credentials normally come
/// from `GENESYSCLOUD_*` environment variables, as Genesys's own tools use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesysConfig {
    /// Region, as Genesys names it: `us-east-1`, `us_east_1` or the domain
    /// `mypurecloud.com` (env `GENESYSCLOUD_REGION`).
    pub region: String,
    /// OAuth client id of a client-credentials client (env `GENESYSCLOUD_OAUTHCLIENT_ID`).
    pub client_id: String,
    /// Its secret (env `GENESYSCLOUD_OAUTHCLIENT_SECRET`). Never logged.
    pub client_secret: String,
    /// Override of the API base URL, e.g. the simulator's `http://127.0.0.1:9000`
    /// (env `GENESYSCLOUD_API_BASE`).
    pub api_base: Option<String>,
    /// Override of the login base URL; defaults to the API base's login host,
    /// or to the API base itself when that is not an `api.` host
    /// (env `GENESYSCLOUD_LOGIN_BASE`).
    pub login_base: Option<String>,
}

impl Default for GenesysConfig {
    fn default() -> Self {
        GenesysConfig {
            region: "us-east-1".into(),
            client_id: String::new(),
            client_secret: String::new(),
            api_base: None,
            login_base: None,
        }
    }
}

impl GenesysConfig {
    /// `(api_base, login_base)` without trailing slashes.
    pub fn bases(&self) -> Result<(String, String), String> {
        let api = match &self.api_base {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => region::Region::parse(&self.region)
                .ok_or_else(|| {
                    format!(
                        "genesys.region: unknown region {:?}; use one of {}",
                        self.region,
                        region::Region::names()
                    )
                })?
                .api_base(),
        };
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(format!(
                "genesys.api_base: {api:?} must start with http:// or https://"
            ));
        }
        let login = match &self.login_base {
            Some(b) => b.trim_end_matches('/').to_string(),
            // The SDK rule: swap `//api.` for `//login.` (genesys-api.md §1.1).
            None => api.replacen("//api.", "//login.", 1),
        };
        Ok((api, login))
    }

    /// Checks the settings, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.bases()?;
        if self.client_id.trim().is_empty() {
            return Err("genesys.client_id is empty: set GENESYSCLOUD_OAUTHCLIENT_ID to the id of a client-credentials OAuth client".into());
        }
        if self.client_secret.trim().is_empty() {
            return Err(
                "genesys.client_secret is empty: set GENESYSCLOUD_OAUTHCLIENT_SECRET".into(),
            );
        }
        Ok(())
    }
}

/// Upstream behaviour (`[upstream]`). Defaults follow `genesys-api.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// REST requests per minute for the whole gateway (Genesys:
    /// `client.credentials.token.rate.per.minute`, 300 by default).
    pub rate_per_minute: u32,
    /// Requests that may go at once after a quiet spell (start-up, a
    /// reconnect); the steady rate is lowered to `rate_per_minute - burst`
    /// a minute, so that no minute ever sees more than `rate_per_minute`.
    pub burst: u32,
    /// Renew the token when this share of its lifetime has passed (0.5–0.95).
    pub token_renew_fraction: f64,
    /// Users per page when reading the directory (Genesys allows up to 500).
    pub page_size: usize,
    /// Topics per channel (Genesys limit 1 000).
    pub topics_per_channel: usize,
    /// Channels at most (Genesys limit 20 per OAuth client).
    pub max_channels: usize,
    /// Which topics carry presence and routing status.
    pub topic_strategy: TopicStrategy,
    /// Seconds without any frame before the watchdog sends `{"message":"ping"}`
    /// (Genesys heartbeats every ~30 s).
    pub ping_after_secs: f64,
    /// Seconds to wait for any frame after a ping before the socket is declared dead.
    pub pong_timeout_secs: f64,
    /// Re-subscribe (extending the channel) this many seconds before it expires (24 h life).
    pub renew_before_secs: u64,
    /// First reconnect and REST retry delay; doubles per failure, each wait
    /// drawn uniformly from [d/2, d].
    pub backoff_initial_ms: u64,
    /// Largest reconnect delay.
    pub backoff_max_ms: u64,
    /// Re-read the whole directory (users added, removed, moved) this often.
    pub directory_refresh_secs: u64,
    /// Read queue membership (`/routing/queues/{id}/members`) after start-up and each refresh.
    pub queue_membership: bool,
    /// Consecutive 5xx answers that open the circuit (upstream reported degraded).
    pub circuit_threshold: u32,
    /// Seconds the circuit stays open before a trial request.
    pub circuit_open_secs: u64,
    /// Give up on a REST call after this many retries (429 and 5xx).
    pub max_retries: u32,
    /// Reconcile after a `socket_closing` handover too (the handover itself loses nothing
    /// when the new socket is up before the old one is dropped).
    pub reconcile_after_handover: bool,
    /// Seconds a single REST request may take.
    pub request_timeout_secs: u64,
    /// Topics kept free on each channel for watched agents' conversations
    /// (interaction context); the presence plan uses the rest.
    pub conversation_reserve: usize,
    /// Largest share (0.01–0.5) of `rate_per_minute` that the retries of any
    /// one failing channel may spend; further retries wait for room.
    pub retry_share: f64,
    /// Largest share (0.01–0.9) of `rate_per_minute` that client-driven
    /// lookups (tag searches, history backfill, interaction reads) may use
    /// while writes, reconnects or reconciliation want the budget (any of
    /// them in the last 10 s); in a quiet budget they may use the rest.
    pub client_share: f64,
    /// Client-driven lookups that may wait for the budget at once; more are
    /// refused at once (`503 upstream_busy`-style errors to the caller).
    pub client_lane_waiting: usize,
    /// Target staleness bound in seconds: the anti-entropy sweep re-reads
    /// every agent's presence and routing status through the bulk endpoints
    /// (3 calls per 100 agents) so that a silently lost or wrong state is
    /// corrected within this long (one pass plus one step), differences sent
    /// as `reconciled` changes. Larger orgs take longer, as `sweep_share`
    /// allows (docs/operations.md).
    pub sweep_period_secs: u64,
    /// Largest share (0.01–0.5) of `rate_per_minute` the sweep may use.
    pub sweep_share: f64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            rate_per_minute: 300,
            burst: 60,
            token_renew_fraction: 0.8,
            page_size: 500,
            topics_per_channel: 1_000,
            max_channels: 20,
            topic_strategy: TopicStrategy::Activity,
            ping_after_secs: 35.0,
            pong_timeout_secs: 10.0,
            renew_before_secs: 3_600,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            directory_refresh_secs: 900,
            queue_membership: true,
            circuit_threshold: 5,
            circuit_open_secs: 30,
            max_retries: 4,
            reconcile_after_handover: false,
            request_timeout_secs: 30,
            conversation_reserve: 50,
            retry_share: 0.1,
            client_share: 0.5,
            client_lane_waiting: 64,
            sweep_period_secs: 60,
            sweep_share: 0.2,
        }
    }
}

/// Agents re-read per sweep step (three REST calls: two bulk presence
/// reads of 50 ids, one routing read of 100 ids).
pub const SWEEP_STEP: usize = 100;
/// REST calls per sweep step.
pub const SWEEP_STEP_CALLS: u32 = 3;

impl UpstreamConfig {
    /// Seconds between sweep steps for `agents` agents: chosen so that one
    /// pass plus one step (the staleness bound) fits `sweep_period_secs`,
    /// but never faster than `sweep_share` of the budget allows.
    pub fn sweep_step_secs(&self, agents: usize) -> f64 {
        let steps = agents.div_ceil(SWEEP_STEP).max(1) as f64;
        let by_period = self.sweep_period_secs as f64 / (steps + 1.0);
        let calls_per_sec = f64::from(self.rate_per_minute) * self.sweep_share / 60.0;
        let by_budget = f64::from(SWEEP_STEP_CALLS) / calls_per_sec;
        by_period.max(by_budget)
    }

    /// The staleness bound for `agents` agents, in seconds: a state silently
    /// lost or wrong is corrected within one sweep pass plus one step
    /// (`sweep_period_secs` while the budget share allows it, longer for
    /// large orgs; docs/operations.md).
    pub fn staleness_bound_secs(&self, agents: usize) -> f64 {
        (agents.div_ceil(SWEEP_STEP).max(1) + 1) as f64 * self.sweep_step_secs(agents)
    }

    /// Checks the settings, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_per_minute < 2 {
            return Err("upstream.rate_per_minute must be at least 2 (one request of burst plus a steady rate)".into());
        }
        if self.burst == 0 || self.burst >= self.rate_per_minute {
            return Err(format!(
                "upstream.burst must be between 1 and rate_per_minute - 1 ({}), got {}",
                self.rate_per_minute.saturating_sub(1),
                self.burst
            ));
        }
        if !(0.5..=0.95).contains(&self.token_renew_fraction) {
            return Err("upstream.token_renew_fraction must be between 0.5 and 0.95".into());
        }
        if !(1..=500).contains(&self.page_size) {
            return Err("upstream.page_size must be 1 to 500".into());
        }
        if !(1..=1_000).contains(&self.topics_per_channel) {
            return Err("upstream.topics_per_channel must be 1 to 1000 (Genesys limit)".into());
        }
        if !(1..=20).contains(&self.max_channels) {
            return Err("upstream.max_channels must be 1 to 20 (Genesys limit)".into());
        }
        let sane = |v: f64| v.is_finite() && v > 0.0 && v <= 3_600.0;
        if !sane(self.ping_after_secs) || !sane(self.pong_timeout_secs) {
            return Err("upstream.ping_after_secs and upstream.pong_timeout_secs must be between 0 and 3600 seconds".into());
        }
        if self.circuit_threshold == 0 {
            return Err("upstream.circuit_threshold must be at least 1".into());
        }
        if self.renew_before_secs == 0 || self.renew_before_secs > 43_200 {
            return Err(
                "upstream.renew_before_secs must be 1 to 43200 (channels live 24 h)".into(),
            );
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err("upstream.backoff_initial_ms must be ≥ 1 and ≤ backoff_max_ms".into());
        }
        if self.directory_refresh_secs < 10 {
            return Err("upstream.directory_refresh_secs must be at least 10".into());
        }
        if self.conversation_reserve >= self.topics_per_channel {
            return Err(
                "upstream.conversation_reserve must be less than upstream.topics_per_channel"
                    .into(),
            );
        }
        if !(0.01..=0.5).contains(&self.retry_share) {
            return Err(format!(
                "upstream.retry_share must be between 0.01 and 0.5 (a share of rate_per_minute), got {}",
                self.retry_share
            ));
        }
        if !(0.01..=0.9).contains(&self.client_share) {
            return Err(format!(
                "upstream.client_share must be between 0.01 and 0.9 (a share of rate_per_minute), got {}",
                self.client_share
            ));
        }
        if self.client_lane_waiting == 0 {
            return Err("upstream.client_lane_waiting must be at least 1".into());
        }
        if !(5..=86_400).contains(&self.sweep_period_secs) {
            return Err(format!(
                "upstream.sweep_period_secs must be 5 to 86400 (seconds for one pass over every agent), got {}",
                self.sweep_period_secs
            ));
        }
        if !(0.01..=0.5).contains(&self.sweep_share) {
            return Err(format!(
                "upstream.sweep_share must be between 0.01 and 0.5 (a share of rate_per_minute), got {}",
                self.sweep_share
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err("upstream.request_timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}
