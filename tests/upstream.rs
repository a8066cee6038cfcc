//! The upstream actor against the real simulator on loopback: start-up,
//! every fault kind of `/sim/faults`, and convergence to `GET /sim/state`.
//! Presence changes are made during and after each fault; the gateway's
//! picture must equal the simulator's ground truth within a deadline.

use std::time::Duration;

use presence_gateway::app::{self, Gateway};
use presence_gateway::config::Config;
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use presence_gateway::upstream::GenesysConfig;
use serde_json::{json, Value};

/// Polls `cond` every 50 ms until it holds or `deadline` passes.
async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let last = match cond().await {
            Ok(()) => return,
            Err(e) => e,
        };
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client() -> awc::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn get(url: String) -> Value {
    let mut r = client().get(url).send().await.expect("GET");
    assert!(r.status().is_success(), "GET status {}", r.status());
    r.json().limit(64 << 20).await.expect("json")
}

async fn post(url: String, body: Value) -> Value {
    let mut r = client().post(url).send_json(&body).await.expect("POST");
    assert!(r.status().is_success(), "POST status {}", r.status());
    r.json().await.expect("json")
}

struct Env {
    sim: SimHandle,
    gw: Gateway,
}

impl Env {
    async fn start(agents: usize, tweak: impl FnOnce(&mut SimConfig, &mut Config)) -> Env {
        let mut sim_cfg = SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            agents,
            heartbeat_secs: 0.2,
            socket_closing_grace_secs: 0.5,
            ..SimConfig::default()
        };
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.workers = 1;
        cfg.store.path = ":memory:".into();
        cfg.upstream.ping_after_secs = 0.6;
        cfg.upstream.pong_timeout_secs = 0.6;
        cfg.upstream.backoff_initial_ms = 50;
        cfg.upstream.backoff_max_ms = 500;
        tweak(&mut sim_cfg, &mut cfg);
        let sim = simulator::start(sim_cfg.clone())
            .await
            .expect("simulator starts");
        cfg.genesys = GenesysConfig {
            api_base: Some(sim.base_url()),
            client_id: sim_cfg.client_id.clone(),
            client_secret: sim_cfg.client_secret.clone(),
            ..GenesysConfig::default()
        };
        cfg.validate().expect("valid config");
        let gw = app::start(cfg).await.expect("gateway starts");
        Env { sim, gw }
    }

    fn sim_url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    fn gw_url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.base_url())
    }

    /// Differences between the gateway's agents and the simulator's truth.
    async fn diff(&self) -> Result<(), String> {
        let truth = get(self.sim_url("/sim/state")).await;
        let seen = get(self.gw_url("/api/v1/agents")).await;
        let seen: std::collections::HashMap<&str, &Value> = seen["agents"]
            .as_array()
            .ok_or("no agents array")?
            .iter()
            .map(|a| (a["id"].as_str().unwrap_or_default(), a))
            .collect();
        let users = truth["users"].as_array().ok_or("no users")?;
        if seen.len() != users.len() {
            return Err(format!(
                "gateway has {} agents, simulator {}",
                seen.len(),
                users.len()
            ));
        }
        let mut wrong = Vec::new();
        for u in users {
            let id = u["id"].as_str().unwrap_or_default();
            let Some(a) = seen.get(id) else {
                wrong.push(format!("{id} missing"));
                continue;
            };
            let checks = [
                (
                    &a["presence"]["definitionId"],
                    &u["presence"]["definitionId"],
                ),
                (
                    &a["presence"]["systemPresence"],
                    &u["presence"]["systemPresence"],
                ),
                (&a["presence"]["message"], &u["presence"]["message"]),
                (&a["routingStatus"]["status"], &u["routingStatus"]["status"]),
                (&a["name"], &u["name"]),
                (&a["division"]["id"], &u["division"]["id"]),
            ];
            if checks.iter().any(|(x, y)| x != y) {
                wrong.push(format!(
                    "{id}: gateway {} / {} vs truth {} / {}",
                    a["presence"]["systemPresence"],
                    a["routingStatus"]["status"],
                    u["presence"]["systemPresence"],
                    u["routingStatus"]["status"]
                ));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{} agents differ, e.g. {}", wrong.len(), wrong[0]))
        }
    }

    async fn converged(&self, what: &str) {
        wait_until(Duration::from_secs(30), what, || self.diff()).await;
    }

    async fn ready(&self) {
        wait_until(Duration::from_secs(30), "upstream connected", || async {
            let r = client()
                .get(self.gw_url("/readyz"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() == 200 {
                Ok(())
            } else {
                Err(format!("readyz {}", r.status()))
            }
        })
        .await;
    }

    /// Changes the presence of `n` agents starting at `offset`.
    async fn change(&self, offset: usize, n: usize, to: &str) {
        let truth = get(self.sim_url("/sim/state")).await;
        let users = truth["users"].as_array().unwrap();
        for u in users.iter().skip(offset).take(n) {
            let id = u["id"].as_str().unwrap();
            post(
                self.sim_url(&format!("/sim/users/{id}/presence")),
                json!({"systemPresence": to}),
            )
            .await;
        }
    }

    async fn fault(&self, body: Value) -> Value {
        post(self.sim_url("/sim/faults"), body).await
    }

    async fn sim_stats(&self) -> Value {
        get(self.sim_url("/sim/stats")).await
    }

    async fn stop(self) {
        self.gw.stop().await;
        self.sim.stop().await;
    }
}

/// Runs one fault scenario: ready, changes during the fault, changes after, converged.
async fn scenario(fault: Value, tweak: impl FnOnce(&mut SimConfig, &mut Config)) -> Env {
    let env = Env::start(120, tweak).await;
    env.ready().await;
    env.converged("initial state").await;
    env.fault(fault).await;
    env.change(0, 10, "BREAK").await;
    env.change(10, 5, "MEAL").await;
    env.ready().await;
    env.change(20, 10, "ON_QUEUE").await;
    env.change(0, 3, "AVAILABLE").await;
    env.converged("state after the fault").await;
    env
}

/// After start-up every agent is present with the simulator's presence, routing
/// status, name and division, and a normal run causes no 429.
#[actix_web::test]
async fn startup_matches_truth_without_rate_limits() {
    let env = Env::start(300, |_, _| {}).await;
    env.ready().await;
    env.converged("start-up").await;
    env.change(0, 20, "ON_QUEUE").await;
    env.change(20, 20, "TRAINING").await;
    env.converged("live changes").await;
    let stats = env.sim_stats().await;
    assert_eq!(
        stats["counters"]["rateLimited"], 0,
        "the gateway caused 429s: {stats}"
    );
    assert_eq!(stats["channels"], 1);
    env.stop().await;
}

/// Dropped sockets (no close frame) are detected, reconnected and reconciled.
#[actix_web::test]
async fn drop_sockets() {
    let env = scenario(json!({"kind": "drop_sockets"}), |_, _| {}).await;
    assert!(
        env.gw
            .upstream_stats
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    env.stop().await;
}

/// `socket_closing` is handled make-before-break: a new socket on the same channel.
#[actix_web::test]
async fn socket_closing() {
    let env = scenario(json!({"kind": "socket_closing", "seconds": 0.5}), |_, _| {}).await;
    assert!(
        env.gw
            .upstream_stats
            .handovers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let stats = env.sim_stats().await;
    assert_eq!(
        stats["counters"]["channelsCreated"], 1,
        "handover reused the channel: {stats}"
    );
    env.stop().await;
}

/// A silent socket (no heartbeat, no pong, events lost) trips the watchdog;
/// the gateway reconnects and reconciles the events it never saw.
#[actix_web::test]
async fn heartbeat_stall() {
    let env = scenario(
        json!({"kind": "heartbeat_stall", "seconds": 2.0}),
        |_, _| {},
    )
    .await;
    assert!(
        env.gw
            .upstream_stats
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    env.stop().await;
}

/// Injected 429s are waited out (Retry-After) and nothing is lost.
#[actix_web::test]
async fn rate_limit() {
    let env = scenario(json!({"kind": "rate_limit", "count": 3}), |_, _| {}).await;
    env.fault(json!({"kind": "rate_limit", "count": 2})).await;
    env.fault(json!({"kind": "drop_sockets"})).await;
    env.change(40, 5, "BUSY").await;
    env.converged("after 429s during reconciliation").await;
    assert!(
        env.gw
            .upstream_stats
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    env.stop().await;
}

/// 503s during reconnection and reconciliation are retried.
#[actix_web::test]
async fn service_unavailable() {
    let env = scenario(json!({"kind": "drop_sockets"}), |_, _| {}).await;
    env.fault(json!({"kind": "service_unavailable", "count": 2}))
        .await;
    env.fault(json!({"kind": "drop_sockets"})).await;
    env.change(50, 5, "MEETING").await;
    env.converged("after 503s").await;
    env.stop().await;
}

/// Expired tokens: one re-auth on 401, the closed channels replaced.
#[actix_web::test]
async fn expire_tokens() {
    let env = scenario(json!({"kind": "expire_tokens"}), |_, _| {}).await;
    let stats = env.sim_stats().await;
    assert!(
        stats["counters"]["tokensIssued"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    env.stop().await;
}

/// Evicted channels (HEAD 404) are re-created and re-subscribed.
#[actix_web::test]
async fn evict_channels() {
    let env = scenario(json!({"kind": "evict_channels"}), |_, _| {}).await;
    let stats = env.sim_stats().await;
    assert!(
        stats["counters"]["channelsCreated"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert_eq!(stats["topics"], 120);
    env.stop().await;
}

/// Slow REST answers delay reconciliation but lose nothing.
#[actix_web::test]
async fn slow_responses() {
    let env = scenario(
        json!({"kind": "slow_responses", "count": 4, "delayMs": 300}),
        |_, _| {},
    )
    .await;
    env.fault(json!({"kind": "slow_responses", "count": 4, "delayMs": 300}))
        .await;
    env.fault(json!({"kind": "drop_sockets"})).await;
    env.change(60, 5, "AWAY").await;
    env.converged("after slow responses").await;
    env.stop().await;
}

/// Expansions left out by Genesys are filled in through the bulk presence
/// endpoint and `id` lists.
#[actix_web::test]
async fn best_effort_expand_is_filled_in() {
    let env = Env::start(200, |s, _| s.expand_miss_rate = 0.2).await;
    env.ready().await;
    env.converged("start-up with missing expansions").await;
    let stats = env.sim_stats().await;
    let routes = &stats["counters"]["requestsByRoute"];
    assert!(
        routes["GET users/presences/purecloud/bulk"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{routes}"
    );
    env.stop().await;
}

/// 5 000 agents: every agent present and correct after start-up, over 5 channels.
#[actix_web::test]
async fn five_thousand_agents() {
    let env = Env::start(5_000, |_, c| c.upstream.topics_per_channel = 1_000).await;
    env.ready().await;
    env.converged("5 000 agents").await;
    let stats = env.sim_stats().await;
    assert_eq!(stats["channels"], 5, "{stats}");
    assert_eq!(stats["topics"], 5_000, "{stats}");
    assert_eq!(stats["counters"]["rateLimited"], 0, "{stats}");
    env.stop().await;
}
