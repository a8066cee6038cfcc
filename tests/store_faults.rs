//! The store never fails silently (issue 19), against a real SQLite file,
//! the real simulator and real sockets. The faults are ones an operator
//! meets and that work as root: another connection holding the write lock
//! (`BEGIN EXCLUSIVE`: every write waits `store.busy_timeout_ms`, then
//! fails with "database is locked"), and the store's file deleted while
//! the gateway runs. Each test checks what the operator and the client
//! see: writes refused before Genesys (503 `store_unavailable`, the
//! simulator counts every PATCH), `/readyz` and `/metrics` saying why, the
//! webhook sender backing off with attempt numbers that only grow, and no
//! write acknowledged without its record.

mod e2e;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{client, get, wait_until, Env};
use serde_json::{json, Value};

/// `PATCH` → (status, JSON body).
async fn patch(env: &Env, id: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = client().patch(env.gw_url(&format!("/api/v1/agents/{id}/presence")));
    if let Some(k) = key {
        req = req.insert_header(("Idempotency-Key", k));
    }
    let mut r = req.send_json(&body).await.expect("PATCH");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn patches_upstream(env: &Env) -> u64 {
    env.sim_stats().await["counters"]["requestsByRoute"]["PATCH users/{id}/presences/purecloud"]
        .as_u64()
        .unwrap_or(0)
}

async fn agent_ids(env: &Env) -> Vec<String> {
    get(env.sim_url("/sim/state")).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

/// `/readyz` → (status, body).
async fn readyz(env: &Env) -> (u16, Value) {
    let mut r = client()
        .get(env.gw_url("/readyz"))
        .send()
        .await
        .expect("readyz");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The value of one series in `/metrics` (exact name with labels).
async fn metric(env: &Env, series: &str) -> u64 {
    let mut r = client()
        .get(env.gw_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = String::from_utf8(r.body().limit(4 << 20).await.unwrap().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in /metrics"))
}

/// A gateway on a store file in `dir`, failing locked writes after 100 ms
/// and probing its store every second.
async fn start_on_file(dir: &Path, agents: usize, hook: Option<String>) -> Env {
    let db = dir.join("gw.db");
    let env = Env::start(agents, move |_, cfg| {
        cfg.store.path = db;
        cfg.store.busy_timeout_ms = 100;
        cfg.store.probe_secs = 1;
        if let Some(url) = hook {
            cfg.webhooks = vec![toml::from_str(&format!(
                r#"name = "test"
url = "{url}"
secret = "0123456789abcdef"
concurrency = 2
backoff_initial_ms = 20
backoff_max_ms = 100
max_attempts = 10000"#
            ))
            .unwrap()];
        }
    })
    .await;
    env.ready().await;
    env.converged("start-up").await;
    env
}

/// Holds the store's write lock from another connection until dropped.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(db: &Path) -> WriteLock {
        let c = rusqlite::Connection::open(db).expect("open the store file");
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE")
            .expect("take the write lock");
        WriteLock(c)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// A locked store: every write is refused with 503 `store_unavailable`
/// before Genesys is called (with or without an `Idempotency-Key`), so is
/// a stream ticket, and
/// `/readyz` and `/metrics` say so; once the lock goes, the probe makes the
/// store healthy again and writes go through.
#[actix_web::test]
async fn locked_store_refuses_writes_before_genesys() {
    let dir = tempfile::tempdir().unwrap();
    let env = start_on_file(dir.path(), 20, None).await;
    let id = agent_ids(&env).await[0].clone();
    let before = patches_upstream(&env).await;

    let lock = WriteLock::take(&dir.path().join("gw.db"));
    let (s, b) = patch(&env, &id, json!({"presence": "BREAK"}), None).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "store_unavailable", "{b}");
    assert!(
        b["reason"].as_str().unwrap().contains("locked"),
        "the reason says why: {b}"
    );
    let (s, b) = patch(
        &env,
        &id,
        json!({"presence": "BREAK", "leaseSeconds": 60}),
        Some("k-1"),
    )
    .await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "store_unavailable", "{b}");
    assert_eq!(
        patches_upstream(&env).await,
        before,
        "Genesys was not called for a write the store could not record"
    );
    let (s, b) = readyz(&env).await;
    assert_eq!(s, 503, "{b}");
    assert!(
        b["reason"].as_str().unwrap().starts_with("store: "),
        "readiness names the store: {b}"
    );
    assert_eq!(metric(&env, "presence_gateway_store_healthy").await, 0);
    assert!(metric(&env, "presence_gateway_store_failures_total{op=\"begin\"}").await >= 2);
    assert!(metric(&env, "presence_gateway_store_writes_refused_total").await >= 2);
    // A stream ticket the store cannot keep is not issued either.
    let mut r = client()
        .post(env.gw_url("/api/v1/tickets"))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "{b}");
    assert_eq!(b["error"], "store_unavailable", "{b}");
    assert!(r.headers().contains_key("retry-after"), "{b}");
    assert!(metric(&env, "presence_gateway_store_failures_total{op=\"ticket\"}").await >= 1);

    drop(lock);
    wait_until(Duration::from_secs(20), "store healthy again", || async {
        match readyz(&env).await {
            (200, _) => Ok(()),
            (s, b) => Err(format!("{s} {b}")),
        }
    })
    .await;
    let (s, b) = patch(&env, &id, json!({"presence": "BREAK"}), Some("k-1")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(patches_upstream(&env).await, before + 1);
    assert_eq!(metric(&env, "presence_gateway_store_healthy").await, 1);
    let r = client()
        .post(env.gw_url("/api/v1/tickets"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    env.stop().await;
}

/// Genesys accepted a write, then the store failed before its audit record
/// (and lease) committed: the answer is 200 and says `"record": "pending"`,
/// readiness is down while the record waits in memory, and the record is
/// committed (the audit log shows `ok`, the lease is kept) once the store
/// takes writes again.
#[actix_web::test]
async fn accepted_write_is_reported_and_recorded_later() {
    let dir = tempfile::tempdir().unwrap();
    let env = Arc::new(start_on_file(dir.path(), 20, None).await);
    let id = agent_ids(&env).await[1].clone();
    let before = patches_upstream(&env).await;
    // Genesys answers slowly, so the store can fail while the write is there.
    env.fault(json!({"kind": "slow_responses", "seconds": 5, "delayMs": 1500}))
        .await;
    let pending = {
        let env = env.clone();
        let id = id.clone();
        actix_web::rt::spawn(async move {
            patch(
                &env,
                &id,
                json!({"presence": "MEAL", "leaseSeconds": 3600}),
                None,
            )
            .await
        })
    };
    wait_until(
        Duration::from_secs(10),
        "the PATCH reached Genesys",
        || async {
            let n = patches_upstream(&env).await;
            if n > before {
                Ok(())
            } else {
                Err(format!("{n} PATCHes"))
            }
        },
    )
    .await;
    let lock = WriteLock::take(&dir.path().join("gw.db"));
    let (s, b) = pending.await.unwrap();
    assert_eq!(s, 200, "Genesys accepted it, and the answer says so: {b}");
    assert_eq!(b["record"], "pending", "{b}");
    assert!(b["leaseExpiresAt"].is_string(), "{b}");
    let (s, b) = readyz(&env).await;
    assert_eq!(s, 503, "{b}");
    assert!(b["reason"].as_str().unwrap().contains("store: "), "{b}");
    assert_eq!(
        metric(&env, "presence_gateway_store_records_pending").await,
        1
    );

    drop(lock);
    wait_until(
        Duration::from_secs(30),
        "the kept record committed",
        || async {
            let a = get(env.gw_url(&format!("/api/v1/audit?agent={id}"))).await;
            let first = &a["records"][0];
            if first["result"] == "ok" && first["toPresence"].is_string() {
                Ok(())
            } else {
                Err(format!("{a}"))
            }
        },
    )
    .await;
    wait_until(Duration::from_secs(20), "ready again", || async {
        match readyz(&env).await {
            (200, _) => Ok(()),
            (s, b) => Err(format!("{s} {b}")),
        }
    })
    .await;
    assert_eq!(
        metric(&env, "presence_gateway_store_records_pending").await,
        0
    );
    // One audit record for the attempt (the intent, completed), not two.
    let a = get(env.gw_url(&format!("/api/v1/audit?agent={id}"))).await;
    assert_eq!(a["total"], 1, "{a}");
    Arc::try_unwrap(env).ok().expect("one owner").stop().await;
}

/// The store's file deleted while the gateway runs: writes are refused
/// before Genesys with the reason, `/readyz` says the file is gone, and it
/// stays that way (a restart is needed; writes would be lost otherwise).
#[actix_web::test]
async fn deleted_store_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let env = start_on_file(dir.path(), 20, None).await;
    let id = agent_ids(&env).await[2].clone();
    let before = patches_upstream(&env).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("gw.db{suffix}")));
    }
    wait_until(Duration::from_secs(20), "readiness drops", || async {
        match readyz(&env).await {
            (503, b) if b["reason"].as_str().unwrap_or("").contains("deleted") => Ok(()),
            (s, b) => Err(format!("{s} {b}")),
        }
    })
    .await;
    let (s, b) = patch(&env, &id, json!({"presence": "BREAK"}), None).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "store_unavailable");
    assert!(b["reason"].as_str().unwrap().contains("deleted"), "{b}");
    assert_eq!(patches_upstream(&env).await, before);
    assert_eq!(metric(&env, "presence_gateway_store_healthy").await, 0);
    env.stop().await;
}

/// What the webhook receiver saw: `(event id, attempt)` per POST.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, u32)>>>);

impl Seen {
    fn all(&self) -> Vec<(String, u32)> {
        self.0.lock().unwrap().clone()
    }
}

/// A receiver answering 500 to everything (so events stay due and retry).
async fn failing_receiver() -> (Seen, String, actix_web::dev::ServerHandle) {
    let seen = Seen::default();
    let s = seen.clone();
    let server = actix_web::HttpServer::new(move || {
        let s = s.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest| {
                let s = s.clone();
                async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let attempt = h("X-Presence-Attempt").parse().unwrap_or(0);
                    s.0.lock()
                        .unwrap()
                        .push((h("X-Presence-Event-Id"), attempt));
                    actix_web::HttpResponse::InternalServerError().finish()
                }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (seen, format!("http://{addr}/hook"), handle)
}

/// With the store locked, the webhook sender cannot count an attempt and
/// so sends nothing new: it backs off (a few failed claims, not hundreds of
/// POSTs); every attempt it makes carries the next number for its event,
/// before, during and after the fault.
#[actix_web::test]
async fn webhook_sender_backs_off_and_attempts_only_grow() {
    let dir = tempfile::tempdir().unwrap();
    let (seen, url, receiver) = failing_receiver().await;
    let env = start_on_file(dir.path(), 10, Some(url)).await;
    env.change(0, 3, "BREAK").await;
    wait_until(Duration::from_secs(20), "retries under way", || async {
        let n = seen.all().len();
        if n >= 10 {
            Ok(())
        } else {
            Err(format!("{n} POSTs"))
        }
    })
    .await;

    let lock = WriteLock::take(&dir.path().join("gw.db"));
    let at_lock = seen.all().len();
    wait_until(Duration::from_secs(20), "claims failing", || async {
        let n = metric(&env, "presence_gateway_store_failures_total{op=\"outbox\"}").await;
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} outbox failures"))
        }
    })
    .await;
    let during = seen.all().len() - at_lock;
    assert!(
        during <= 2,
        "at most the 2 deliveries in flight may finish while nothing can be counted; {during} POSTs went out"
    );
    let (s, _) = readyz(&env).await;
    assert_eq!(s, 503);

    drop(lock);
    wait_until(Duration::from_secs(20), "retries resumed", || async {
        let n = seen.all().len();
        if n >= at_lock + during + 10 {
            Ok(())
        } else {
            Err(format!("{} POSTs since the lock", n - at_lock))
        }
    })
    .await;
    let mut per_event: HashMap<String, Vec<u32>> = HashMap::new();
    for (id, attempt) in seen.all() {
        per_event.entry(id).or_default().push(attempt);
    }
    for (id, attempts) in &per_event {
        assert!(
            attempts.windows(2).all(|w| w[1] > w[0]),
            "event {id}: attempt numbers must only grow, got {attempts:?}"
        );
        assert_eq!(attempts[0], 1, "event {id}: {attempts:?}");
    }
    env.stop().await;
    receiver.stop(true).await;
}

/// An unopenable `store.path` stops `serve` with exit code 64, naming the
/// path, before any port opens.
#[test]
fn unopenable_store_exits_64_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the store's directory should be.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let db: PathBuf = blocker.join("gw.db");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[genesys]\napi_base = \"http://127.0.0.1:9\"\nclient_id = \"x\"\nclient_secret = \"y\"\n[store]\npath = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_presence-gateway"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run the gateway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains(&db.display().to_string()),
        "names the path: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("READY"),
        "no port opened"
    );
}

/// `PATCH` against a base URL with an `Idempotency-Key` → (status, body),
/// or `None` when the connection failed (the gateway was killed).
async fn keyed_patch(base: &str, id: &str, body: &Value, key: &str) -> Option<(u16, Value)> {
    let mut r = client()
        .patch(format!("{base}/api/v1/agents/{id}/presence"))
        .insert_header(("Idempotency-Key", key))
        .timeout(Duration::from_secs(30))
        .send_json(body)
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

/// SIGKILL in the middle of a burst of keyed writes (Genesys answering
/// slowly, so keys are in flight), then a restart on the same store file:
/// every key settles. A retry with the same key and body gets 200 (the
/// remembered answer, or the change settled against Genesys's state) or 409
/// `idempotency_abandoned` (re-read and retry with a new key), never
/// `idempotency_in_progress`; answers acknowledged before the kill replay
/// unchanged; a key settled as applied matches Genesys (half of the burst
/// is made to reach Genesys's state before the restart, as when the
/// gateway dies between Genesys's answer and its record).
#[actix_web::test]
async fn sigkill_with_keys_in_flight_every_key_settles() {
    let sim_cfg = presence_gateway::simulator::SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents: 16,
        heartbeat_secs: 0.5,
        ..Default::default()
    };
    let sim = presence_gateway::simulator::start(sim_cfg.clone())
        .await
        .expect("sim");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n[genesys]\napi_base = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"error\"\n",
            sim.base_url(),
            sim_cfg.client_id,
            sim_cfg.client_secret,
            dir.path().join("gw.db").display()
        ),
    )
    .unwrap();
    let sim_url = |p: &str| format!("{}{p}", sim.base_url());
    let ids: Vec<String> = get(sim_url("/sim/state")).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    let sim_patches = || async {
        get(sim_url("/sim/stats")).await["counters"]["requestsByRoute"]
            ["PATCH users/{id}/presences/purecloud"]
            .as_u64()
            .unwrap_or(0)
    };

    let (mut child, base) = e2e::spawn_gateway(&config).await;
    // The first writes answer at once; then Genesys slows down.
    let body = json!({"presence": "BREAK", "leaseSeconds": 3600});
    let mut acked = HashMap::new();
    for (i, id) in ids.iter().enumerate().take(4) {
        let key = format!("key-{i}");
        let (s, b) = keyed_patch(&base, id, &body, &key).await.expect("answered");
        assert_eq!(s, 200, "{b}");
        acked.insert(key, b);
    }
    let before = sim_patches().await;
    e2e::post(
        sim_url("/sim/faults"),
        json!({"kind": "slow_responses", "count": 12, "delayMs": 1500}),
    )
    .await;
    let mut burst = Vec::new();
    for (i, id) in ids.iter().enumerate().skip(4) {
        let (base, id, body) = (base.clone(), id.clone(), body.clone());
        burst.push(actix_web::rt::spawn(async move {
            keyed_patch(&base, &id, &body, &format!("key-{i}")).await
        }));
    }
    wait_until(
        Duration::from_secs(20),
        "the burst reached Genesys",
        || async {
            let n = sim_patches().await - before;
            if n >= 12 {
                Ok(())
            } else {
                Err(format!("{n} of 12 PATCHes"))
            }
        },
    )
    .await;
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    for b in burst {
        if let Some((200, v)) = b.await.unwrap() {
            panic!("a slowed write was acknowledged before the kill: {v}");
        }
    }

    // Half of the burst did reach Genesys's state before the kill (the
    // gateway died between Genesys's answer and its record).
    for id in ids.iter().skip(4).take(6) {
        e2e::post(
            sim_url(&format!("/sim/users/{id}/presence")),
            json!({"systemPresence": "BREAK"}),
        )
        .await;
    }

    let (_child, base) = e2e::spawn_gateway(&config).await;
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let key = format!("key-{i}");
        let (s, b) = wait_until(Duration::from_secs(30), "the key settles", || async {
            match keyed_patch(&base, id, &body, &key).await {
                Some((409, b)) if b["error"] == "idempotency_recovering" => {
                    Err("still recovering".to_string())
                }
                Some(r) => Ok(r),
                None => Err("no answer".to_string()),
            }
        })
        .await;
        assert_ne!(b["error"], "idempotency_in_progress", "key {key}: {b}");
        if let Some(first) = acked.get(&key) {
            assert_eq!(s, 200, "acknowledged key {key} replays: {b}");
            assert_eq!(&b, first, "the same answer as before the kill");
            continue;
        }
        match s {
            200 => {
                let truth = get(sim_url("/sim/state")).await;
                let u = truth["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|u| u["id"] == id.as_str())
                    .unwrap()
                    .clone();
                assert_eq!(u["presence"]["systemPresence"], "BREAK", "key {key}: {b}");
                *outcomes.entry("applied").or_default() += 1;
            }
            409 => {
                assert_eq!(b["error"], "idempotency_abandoned", "key {key}: {b}");
                assert!(b["reason"]
                    .as_str()
                    .unwrap()
                    .contains("new Idempotency-Key"));
                *outcomes.entry("abandoned").or_default() += 1;
            }
            _ => panic!("key {key}: unexpected answer {s} {b}"),
        }
    }
    eprintln!("keys in flight at SIGKILL settled: {outcomes:?}");
    assert_eq!(
        outcomes.values().sum::<usize>(),
        12,
        "every key of the burst settled: {outcomes:?}"
    );
    assert!(
        outcomes.get("applied").copied().unwrap_or(0) >= 6,
        "the changes Genesys shows settle as applied: {outcomes:?}"
    );
    let audit = get(format!("{base}/api/v1/audit?limit=1000")).await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] != "pending"),
        "no audit record left pending: {audit}"
    );
    sim.stop().await;
}

/// A `writes.lease_fallback` the org does not have passes start-up (it is
/// only known after the first sync), then `/readyz` says why it is not
/// ready, and a leased write is refused with 503 `lease_fallback_invalid`
/// before Genesys; writes without a lease still go through.
#[actix_web::test]
async fn lease_fallback_unknown_to_the_org_is_reported() {
    let env = Env::start(10, |_, cfg| {
        cfg.writes.lease_fallback = "Dancing".into();
    })
    .await;
    wait_until(
        Duration::from_secs(30),
        "readiness names the fallback",
        || async {
            match readyz(&env).await {
                (503, b)
                    if b["reason"]
                        .as_str()
                        .unwrap_or("")
                        .contains("lease_fallback") =>
                {
                    Ok(())
                }
                (s, b) => Err(format!("{s} {b}")),
            }
        },
    )
    .await;
    let id = agent_ids(&env).await[0].clone();
    let before = patches_upstream(&env).await;
    let (s, b) = patch(
        &env,
        &id,
        json!({"presence": "BREAK", "leaseSeconds": 60}),
        None,
    )
    .await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "lease_fallback_invalid", "{b}");
    assert!(b["reason"].as_str().unwrap().contains("Dancing"), "{b}");
    assert_eq!(patches_upstream(&env).await, before);
    let (s, b) = patch(&env, &id, json!({"presence": "BREAK"}), None).await;
    assert_eq!(s, 200, "{b}");
    env.stop().await;
}
