//! Webhooks against a real receiver (an actix-web server inside the test,
//! on 127.0.0.1:0) and the real simulator: a receiver that refuses, then
//! answers 503, then 200 gets every event, per agent in journal order, each
//! signature verifying; a gateway killed with SIGKILL mid-delivery and
//! restarted on the same store file loses nothing (duplicates carry the
//! same event id and body).

mod e2e;

use e2e::{client, post, spawn_gateway, try_get as get, wait_until};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use presence_gateway::app::{self, Gateway};
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use presence_gateway::webhooks::{verify, WebhookConfig, WebhookFilter};
use serde_json::{json, Value};

const SECRET: &str = "test-secret-0123456789";

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Unavailable,
    Ok { delay_ms: u64 },
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    body: String,
    event: Value,
    signed: bool,
    answered_ok: bool,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// First delivery of each event id, in arrival order, per agent.
    fn per_agent(&self) -> HashMap<String, Vec<Got>> {
        let mut seen = HashSet::new();
        let mut out: HashMap<String, Vec<Got>> = HashMap::new();
        for g in self.got() {
            if g.answered_ok && seen.insert(g.id.clone()) {
                out.entry(g.event["agent"]["id"].as_str().unwrap().to_string())
                    .or_default()
                    .push(g);
            }
        }
        out
    }
}

async fn hook(req: HttpRequest, body: web::Bytes, r: web::Data<Receiver>) -> HttpResponse {
    let body = String::from_utf8(body.to_vec()).unwrap();
    let sig = req
        .headers()
        .get("X-Presence-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed = verify(SECRET, sig, &body, chrono::Utc::now().timestamp(), 300);
    let event: Value = serde_json::from_str(&body).unwrap();
    let id = event["id"].as_str().unwrap().to_string();
    assert_eq!(
        req.headers()
            .get("X-Presence-Event-Id")
            .unwrap()
            .to_str()
            .unwrap(),
        id
    );
    let mode = *r.mode.lock().unwrap();
    r.got.lock().unwrap().push(Got {
        id,
        body,
        event,
        signed,
        answered_ok: mode != Mode::Unavailable,
    });
    match mode {
        Mode::Unavailable => HttpResponse::ServiceUnavailable().finish(),
        Mode::Ok { delay_ms } => {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            HttpResponse::Ok().finish()
        }
    }
}

/// Starts the receiver on `addr` (port 0 picks one).
async fn start_receiver(addr: SocketAddr, mode: Mode) -> (Receiver, SocketAddr) {
    let r = Receiver {
        mode: Arc::new(Mutex::new(mode)),
        got: Arc::new(Mutex::new(Vec::new())),
    };
    let data = web::Data::new(r.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(hook))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .expect("receiver binds");
    let bound = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (r, bound)
}

fn sim_config() -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents: 3,
        heartbeat_secs: 0.5,
        ..SimConfig::default()
    }
}

fn hook_config(url: String) -> WebhookConfig {
    WebhookConfig {
        name: "test".into(),
        url,
        secret: SECRET.into(),
        filter: WebhookFilter::default(),
        max_attempts: 1000,
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        timeout_secs: 5,
        concurrency: 4,
    }
}

/// Sets a presence in the simulator; returns its `modifiedDate`.
async fn set(sim: &SimHandle, user: &str, sp: &str) -> String {
    let v = post(
        format!("{}/sim/users/{user}/presence", sim.base_url()),
        json!({ "systemPresence": sp }),
    )
    .await;
    v["presence"]["modifiedDate"].as_str().unwrap().to_string()
}

/// Waits until the gateway at `base` journaled presence `state` at `at`.
async fn journaled(base: &str, user: &str, state: &str, at: &str) {
    let url = format!("{base}/api/v1/agents/{user}/history?kind=presence&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z");
    let url = url
        .replace(
            "2000-01-01",
            &(chrono::Utc::now() - chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string(),
        )
        .replace(
            "2100-01-01",
            &(chrono::Utc::now() + chrono::Duration::days(1))
                .format("%Y-%m-%d")
                .to_string(),
        );
    wait_until(Duration::from_secs(15), "journal record", || {
        let url = url.clone();
        async move {
            let h = get(url).await?;
            let recs = h["records"].as_array().cloned().unwrap_or_default();
            if recs
                .iter()
                .any(|r| r["current"]["state"] == state && r["at"] == at)
            {
                Ok(())
            } else {
                Err(format!("no {state} at {at} yet"))
            }
        }
    })
    .await
}

/// The journal's event ids of one agent (both kinds), in journal order.
async fn journal_ids(base: &str, user: &str) -> Vec<String> {
    let from = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    let h = get(format!(
        "{base}/api/v1/agents/{user}/history?from={from}&limit=5000"
    ))
    .await
    .unwrap();
    let mut recs: Vec<&Value> = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "journal")
        .collect();
    recs.sort_by_key(|r| r["id"].as_i64().unwrap());
    recs.iter()
        .map(|r| r["eventId"].as_str().unwrap().to_string())
        .collect()
}

/// Checks, for each agent: every journaled event was delivered (2xx), in
/// journal order; each kind's events chain (previous = last current); all
/// signatures verify; duplicates carry identical bodies.
async fn check_complete(r: &Receiver, base: &str, users: &[String]) {
    let got = r.got();
    assert!(got.iter().all(|g| g.signed), "every signature verifies");
    let mut bodies: HashMap<&str, &str> = HashMap::new();
    for g in &got {
        let b = bodies.entry(&g.id).or_insert(&g.body);
        assert_eq!(*b, g.body, "a duplicate has the same body");
    }
    let per = r.per_agent();
    for u in users {
        let want = journal_ids(base, u).await;
        let have: Vec<String> = per
            .get(u)
            .map(|v| v.iter().map(|g| g.id.clone()).collect())
            .unwrap_or_default();
        assert_eq!(have, want, "agent {u}: delivered in journal order");
        for kind in ["presence", "routing"] {
            let evs: Vec<&Got> = per[u].iter().filter(|g| g.event["kind"] == kind).collect();
            for w in evs.windows(2) {
                let (a, b) = (&w[0].event["current"], &w[1].event["previous"]);
                let key = if kind == "presence" {
                    "systemPresence"
                } else {
                    "status"
                };
                assert_eq!(a[key], b[key], "agent {u} {kind}: chain {a} → {b}");
            }
        }
    }
}

async fn wait_delivered(r: &Receiver, base: &str, users: &[String]) {
    wait_until(Duration::from_secs(30), "every event delivered", || async {
        let per = r.per_agent();
        for u in users {
            let want = journal_ids(base, u).await;
            let n = per.get(u).map_or(0, Vec::len);
            if n < want.len() {
                return Err(format!("agent {u}: {n} of {} delivered", want.len()));
            }
        }
        Ok(())
    })
    .await
}

async fn start_gateway(
    sim: &SimHandle,
    sim_cfg: &SimConfig,
    db: &std::path::Path,
    hook: WebhookConfig,
) -> Gateway {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.store.path = db.to_path_buf();
    cfg.genesys = GenesysConfig {
        api_base: Some(sim.base_url()),
        client_id: sim_cfg.client_id.clone(),
        client_secret: sim_cfg.client_secret.clone(),
        ..GenesysConfig::default()
    };
    cfg.webhooks = vec![hook];
    cfg.validate().expect("valid config");
    let gw = app::start(cfg).await.expect("gateway starts");
    let url = format!("{}/readyz", gw.base_url());
    wait_until(Duration::from_secs(20), "gateway ready", || {
        let url = url.clone();
        async move { get(url).await.map(|_| ()) }
    })
    .await;
    gw
}

async fn users(sim: &SimHandle) -> Vec<String> {
    let s = get(format!("{}/sim/state", sim.base_url())).await.unwrap();
    s["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

/// Changes every agent's presence through `states`, waiting for each to be journaled.
async fn churn(sim: &SimHandle, base: &str, users: &[String], states: &[&str]) {
    for sp in states {
        for u in users {
            let at = set(sim, u, sp).await;
            journaled(base, u, sp, &at).await;
        }
    }
}

/// A receiver that refuses connections, then answers 503, then 200 gets
/// every event, per agent in journal order, each signature verifying.
#[actix_web::test]
async fn receiver_down_then_up_gets_everything_in_order() {
    let sim_cfg = sim_config();
    let sim = simulator::start(sim_cfg.clone()).await.expect("sim");
    // Reserve a port, then leave it closed: connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = start_gateway(
        &sim,
        &sim_cfg,
        &dir.path().join("gw.db"),
        hook_config(format!("http://{addr}/hook")),
    )
    .await;
    let base = gw.base_url();
    let users = users(&sim).await;
    churn(&sim, &base, &users, &["BREAK", "AVAILABLE", "MEAL"]).await;
    let stats = || async {
        get(format!("{base}/api/v1/webhooks"))
            .await
            .map(|v| v["webhooks"][0].clone())
    };
    wait_until(Duration::from_secs(10), "refused attempts", || async {
        let s = stats().await?;
        if s["failures"].as_u64() >= Some(3) {
            Ok(())
        } else {
            Err(format!("{s}"))
        }
    })
    .await;
    // Up, but unavailable.
    let (r, _) = start_receiver(addr, Mode::Unavailable).await;
    wait_until(Duration::from_secs(10), "503 answers", || async {
        let n = r.got().len();
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} requests"))
        }
    })
    .await;
    churn(&sim, &base, &users, &["ON_QUEUE"]).await;
    // Up.
    r.set(Mode::Ok { delay_ms: 0 });
    wait_delivered(&r, &base, &users).await;
    check_complete(&r, &base, &users).await;
    let s = stats().await.unwrap();
    assert_eq!(s["deadLettered"], 0, "{s}");
    assert!(s["delivered"].as_u64().unwrap() >= 3 * 5, "{s}");

    // Replay resends with the same ids.
    let before = r.got().len();
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mut resp = client()
        .post(format!(
            "{base}/api/v1/webhooks/test/replay?from={}",
            form_urlencoded::byte_serialize(from.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    let queued = v["queued"].as_u64().unwrap() as usize;
    assert!(queued >= 15, "{v}");
    wait_until(Duration::from_secs(20), "replay delivered", || async {
        let n = r.got().len();
        if n >= before + queued {
            Ok(())
        } else {
            Err(format!("{} of {queued}", n - before))
        }
    })
    .await;
    let first: HashSet<String> = r.got()[..before].iter().map(|g| g.id.clone()).collect();
    assert!(r.got()[before..].iter().all(|g| first.contains(&g.id)));
    check_complete(&r, &base, &users).await;
    gw.stop().await;
    sim.stop().await;
}

/// A gateway killed with SIGKILL while deliveries are in flight, then
/// started again on the same store file, loses no event: every journaled
/// event reaches the receiver, per agent in order; a duplicate carries the
/// same id and body.
#[actix_web::test]
async fn sigkill_during_deliveries_loses_nothing() {
    let sim_cfg = sim_config();
    let sim = simulator::start(sim_cfg.clone()).await.expect("sim");
    let (r, raddr) = start_receiver("127.0.0.1:0".parse().unwrap(), Mode::Unavailable).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
workers = 1

[genesys]
api_base = "{api}"
client_id = "{id}"
client_secret = "{secret}"

[store]
path = "{db}"

[log]
level = "error"

[[webhooks]]
name = "test"
url = "http://{raddr}/hook"
secret = "{SECRET}"
concurrency = 1
backoff_initial_ms = 20
backoff_max_ms = 200
max_attempts = 1000
"#,
            api = sim.base_url(),
            id = sim_cfg.client_id,
            secret = sim_cfg.client_secret,
            db = dir.path().join("gw.db").display(),
        ),
    )
    .unwrap();
    let users = users(&sim).await;

    let (mut child, base) = spawn_gateway(&config).await;
    churn(&sim, &base, &users, &["BREAK", "AVAILABLE", "MEAL", "AWAY"]).await;
    // Deliveries go slowly now (one at a time, 100 ms each): kill mid-way.
    r.set(Mode::Ok { delay_ms: 100 });
    wait_until(Duration::from_secs(20), "some deliveries", || async {
        let n = r.got().iter().filter(|g| g.answered_ok).count();
        if n >= 5 {
            Ok(())
        } else {
            Err(format!("{n} delivered"))
        }
    })
    .await;
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    let delivered_before_kill = r.per_agent().values().map(Vec::len).sum::<usize>();

    let (_child, base) = spawn_gateway(&config).await;
    churn(&sim, &base, &users, &["ON_QUEUE"]).await;
    r.set(Mode::Ok { delay_ms: 0 });
    wait_delivered(&r, &base, &users).await;
    check_complete(&r, &base, &users).await;
    let total = r.per_agent().values().map(Vec::len).sum::<usize>();
    assert!(
        total > delivered_before_kill,
        "the restart delivered the rest ({delivered_before_kill} before, {total} after)"
    );
    sim.stop().await;
}
