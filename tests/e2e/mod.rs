//! End-to-end helpers: the real simulator and the real gateway on
//! `127.0.0.1:0`, HTTP helpers, convergence checks against `/sim/state`, and
//! `wait_until` and `client` from `tests/common` (one contract for all tests).
#![allow(dead_code)]

#[path = "../ws_text/mod.rs"]
pub mod ws_text;

#[path = "../common/mod.rs"]
mod common;
pub use common::{client, wait_until};

use std::time::Duration;

use presence_gateway::app::{self, Gateway};
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use serde_json::{json, Value};

pub async fn get(url: String) -> Value {
    let mut r = client().get(url).send().await.expect("GET");
    assert!(r.status().is_success(), "GET status {}", r.status());
    r.json().limit(64 << 20).await.expect("json")
}

/// `GET` as a `Result`, for polling: a non-2xx status is an `Err`.
pub async fn try_get(url: String) -> Result<Value, String> {
    let mut r = client().get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("status {}", r.status()));
    }
    r.json().limit(64 << 20).await.map_err(|e| e.to_string())
}

pub async fn post(url: String, body: Value) -> Value {
    let mut r = client().post(url).send_json(&body).await.expect("POST");
    assert!(r.status().is_success(), "POST status {}", r.status());
    r.json().await.expect("json")
}

/// Differences between the agents of the gateway at `gw` and the truth of
/// the simulator at `sim` (base URLs): presence (definition, system
/// presence, message), routing status, name and division of every agent.
pub async fn diff_urls(sim: &str, gw: &str) -> Result<(), String> {
    let truth = try_get(format!("{sim}/sim/state")).await?;
    let seen = try_get(format!("{gw}/api/v1/agents")).await?;
    let seen: std::collections::HashMap<&str, &Value> = seen["agents"]
        .as_array()
        .ok_or("no agents array")?
        .iter()
        .map(|a| (a["id"].as_str().unwrap_or_default(), a))
        .collect();
    let users = truth["users"].as_array().ok_or("no users")?;
    if seen.len() != users.len() {
        return Err(format!(
            "{gw} has {} agents, the simulator {}",
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
        Err(format!(
            "{gw}: {} agents differ, e.g. {}",
            wrong.len(),
            wrong[0]
        ))
    }
}

pub struct Env {
    pub sim: SimHandle,
    pub gw: Gateway,
}

impl Env {
    pub async fn start(agents: usize, tweak: impl FnOnce(&mut SimConfig, &mut Config)) -> Env {
        // `TEST_LOG=debug cargo test …` shows the gateway's logs.
        if let Ok(level) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(level)
                .with_test_writer()
                .try_init();
        }
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

    pub fn sim_url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn gw_url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.base_url())
    }

    /// Differences between the gateway's agents and the simulator's truth.
    pub async fn diff(&self) -> Result<(), String> {
        diff_urls(&self.sim_url(""), &self.gw_url("")).await
    }

    pub async fn converged(&self, what: &str) {
        wait_until(Duration::from_secs(30), what, || self.diff()).await;
    }

    pub async fn ready(&self) {
        // A deadline, not a timing claim: a large org on a loaded machine
        // takes a while; the wait ends as soon as /readyz says 200.
        wait_until(Duration::from_secs(120), "upstream connected", || async {
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
    pub async fn change(&self, offset: usize, n: usize, to: &str) {
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

    pub async fn fault(&self, body: Value) -> Value {
        post(self.sim_url("/sim/faults"), body).await
    }

    pub async fn sim_stats(&self) -> Value {
        get(self.sim_url("/sim/stats")).await
    }

    pub async fn stop(self) {
        self.gw.stop().await;
        self.sim.stop().await;
    }
}

/// The gateway binary, killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `presence-gateway serve --config <file>`; returns it with its base URL once ready.
pub async fn spawn_gateway(config: &std::path::Path) -> (Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_presence-gateway"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gateway binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let child = Child(child);
    let base = wait_until(Duration::from_secs(30), "READY line", || {
        let got = rx.try_recv();
        async move {
            match got {
                Ok(line) => match line.strip_prefix("READY gateway=") {
                    Some(url) => Ok(url.trim().to_string()),
                    None => Err(format!("line {line:?}")),
                },
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    let ready = format!("{base}/readyz");
    wait_until(Duration::from_secs(30), "gateway ready", || {
        let url = ready.clone();
        async move { try_get(url).await.map(|_| ()) }
    })
    .await;
    (child, base)
}
