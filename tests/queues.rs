//! Queues against the real simulator on loopback: `GET /api/v1/queues`
//! names every queue and its division, its member figures equal what the
//! simulator holds (`/sim/state`), its waiting customers and longest wait
//! equal the simulator's queue observations (`/sim/queues`), streams that
//! ask for it (`?queues=1`) get `queues` messages that follow a change, a
//! division-scoped caller sees only its divisions' queues, and
//! `GET /api/v1/board` serves the `[board]` settings.

mod e2e;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{client, get, wait_until, Env};
use futures_util::StreamExt;
use presence_gateway::auth::{ApiKeyConfig, Role};
use serde_json::{json, Value};

const SECS: Duration = Duration::from_secs(20);

fn sha(key: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn start(keys: Vec<ApiKeyConfig>) -> Env {
    Env::start(40, |_, cfg| {
        cfg.board.queue_observations_secs = 2;
        cfg.board.queue_figures_ms = 200;
        cfg.auth.api_keys = keys;
    })
    .await
}

/// Member figures per queue id, computed from the simulator's truth.
fn expected_members(state: &Value) -> BTreeMap<String, [u64; 7]> {
    let mut out: BTreeMap<String, [u64; 7]> = BTreeMap::new();
    for u in state["users"].as_array().unwrap() {
        let on = u["presence"]["systemPresence"] == "ON_QUEUE";
        let rs = u["routingStatus"]["status"].as_str().unwrap_or_default();
        for q in u["queues"].as_array().unwrap() {
            let f = out.entry(q["id"].as_str().unwrap().to_owned()).or_default();
            f[0] += 1;
            if !on {
                f[6] += 1;
                continue;
            }
            f[1] += 1;
            match rs {
                "IDLE" => f[2] += 1,
                "INTERACTING" => f[3] += 1,
                "COMMUNICATING" => f[4] += 1,
                "NOT_RESPONDING" => f[5] += 1,
                _ => {}
            }
        }
    }
    out
}

fn members_of(q: &Value) -> [u64; 7] {
    [
        "members",
        "onQueue",
        "idle",
        "interacting",
        "communicating",
        "notResponding",
        "offQueue",
    ]
    .map(|k| q[k].as_u64().unwrap_or(u64::MAX))
}

/// Differences between `/api/v1/queues` and the simulator.
async fn diff(env: &Env, body: &Value) -> Result<(), String> {
    let state = get(env.sim_url("/sim/state")).await;
    let truth = get(env.sim_url("/sim/queues")).await;
    let members = expected_members(&state);
    let queues = body["queues"].as_array().ok_or("no queues")?;
    let sim_queues = truth["queues"].as_array().unwrap();
    if queues.len() != sim_queues.len() {
        return Err(format!(
            "{} queues, simulator has {}",
            queues.len(),
            sim_queues.len()
        ));
    }
    for t in sim_queues {
        let id = t["id"].as_str().unwrap();
        let q = queues
            .iter()
            .find(|q| q["id"] == id)
            .ok_or(format!("queue {id} missing"))?;
        if q["name"] != t["name"] || q["division"] != t["division"] {
            return Err(format!("queue {id}: {q} vs {t}"));
        }
        let want = members.get(id).copied().unwrap_or_default();
        if members_of(q) != want {
            return Err(format!(
                "queue {id}: members {:?}, simulator {want:?}",
                members_of(q)
            ));
        }
        let waiting: u64 = t["waiting"]
            .as_object()
            .unwrap()
            .values()
            .map(|w| w["count"].as_u64().unwrap())
            .sum();
        if q["waiting"] != json!(waiting) {
            return Err(format!("queue {id}: waiting {} vs {waiting}", q["waiting"]));
        }
        for (media, w) in t["waiting"].as_object().unwrap() {
            if q["media"][media]["waiting"] != w["count"] {
                return Err(format!("queue {id} {media}: {} vs {w}", q["media"][media]));
            }
        }
    }
    Ok(())
}

#[actix_web::test]
async fn queue_figures_equal_the_simulator() {
    let env = start(vec![]).await;
    env.ready().await;
    let sim_queues = get(env.sim_url("/sim/queues")).await;
    let q0 = sim_queues["queues"][0]["id"].as_str().unwrap().to_owned();
    let r = client()
        .post(env.sim_url(&format!("/sim/queues/{q0}/waiting")))
        .send_json(&json!({"mediaType": "voice", "count": 3, "waitingSecs": 40}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    client()
        .post(env.sim_url(&format!("/sim/queues/{q0}/waiting")))
        .send_json(&json!({"mediaType": "chat", "count": 1, "waitingSecs": 5}))
        .await
        .unwrap();
    let body = wait_until(SECS, "queue figures equal the simulator", || async {
        let b = get(env.gw_url("/api/v1/queues")).await;
        if b["observations"] != "ok" {
            return Err(format!("observations {}", b["observations"]));
        }
        diff(&env, &b).await.map(|_| b)
    })
    .await;
    let q = body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == q0.as_str())
        .unwrap();
    assert_eq!(q["waiting"], 4);
    let longest = q["longestWaitMs"].as_u64().unwrap();
    assert!(
        (40_000..60_000).contains(&longest),
        "longest wait {longest} ms"
    );
    assert!(q["media"]["voice"]["longestWaitMs"].as_u64().unwrap() >= 40_000);

    // A presence change moves the member figures the same way.
    env.change(0, 5, "BREAK").await;
    wait_until(SECS, "figures follow a change", || async {
        diff(&env, &get(env.gw_url("/api/v1/queues")).await).await
    })
    .await;
    // A bad simulator request is refused with a reason.
    let r = client()
        .post(env.sim_url(&format!("/sim/queues/{q0}/waiting")))
        .send_json(&json!({"mediaType": "fax", "count": 1}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    env.stop().await;
}

#[actix_web::test]
async fn streams_carry_queue_messages_on_request() {
    let env = start(vec![]).await;
    env.ready().await;
    let q0 = get(env.sim_url("/sim/queues")).await["queues"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut r = client()
        .get(env.gw_url("/api/v1/stream?queues=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut text = String::new();
    let mut asked = false;
    let deadline = tokio::time::Instant::now() + SECS;
    loop {
        // The last `queues` message so far.
        let last = text
            .split("\n\n")
            .filter(|f| f.starts_with("event: queues"))
            .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .last();
        if let Some(m) = &last {
            assert_eq!(m["type"], "queues");
            // The queue list is read after the first sync: an early
            // message may not hold the queue yet.
            let q = m["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["id"] == q0.as_str())
                .cloned();
            if let Some(q) = q {
                assert!(q["name"].as_str().is_some_and(|n| !n.is_empty()));
                if q["waiting"] == 7 {
                    break;
                }
                if !asked {
                    asked = true;
                    post_waiting(&env, &q0, 7).await;
                }
            }
        }
        match tokio::time::timeout_at(deadline, r.next()).await {
            Ok(Some(Ok(b))) => text.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("stream ended or timed out ({other:?}); so far: {text}"),
        }
    }
    // Without `queues=1` a stream gets none.
    let mut plain = client()
        .get(env.gw_url("/api/v1/stream"))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("event: status") {
        match tokio::time::timeout(SECS, plain.next()).await {
            Ok(Some(Ok(b))) => text.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("no status ({other:?}): {text}"),
        }
    }
    assert!(!text.contains("event: queues"), "{text}");
    env.stop().await;
}

async fn post_waiting(env: &Env, queue: &str, n: u64) {
    let r = client()
        .post(env.sim_url(&format!("/sim/queues/{queue}/waiting")))
        .send_json(&json!({"mediaType": "email", "count": n, "waitingSecs": 3}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

#[actix_web::test]
async fn scoped_callers_see_their_divisions_and_the_board() {
    // The simulated org is generated from the seed: read its divisions first.
    let probe = start(vec![]).await;
    probe.ready().await;
    let sim_queues = get(probe.sim_url("/sim/queues")).await;
    probe.stop().await;
    let div = sim_queues["queues"][0]["division"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = start(vec![
        ApiKeyConfig {
            name: "scoped".into(),
            sha256: sha("scoped-key"),
            role: Role::Viewer,
            divisions: vec![div.clone()],
        },
        ApiKeyConfig {
            name: "all".into(),
            sha256: sha("all-key"),
            role: Role::Viewer,
            divisions: vec![],
        },
    ])
    .await;
    let read = |key: &'static str, path: &'static str| {
        let url = env.gw_url(path);
        async move {
            let mut r = client()
                .get(url)
                .insert_header(("Authorization", format!("Bearer {key}")))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (all, scoped) = wait_until(SECS, "queues listed", || async {
        let (s1, all) = read("all-key", "/api/v1/queues").await;
        let (s2, scoped) = read("scoped-key", "/api/v1/queues").await;
        match (s1, s2, all["queues"].as_array().map(Vec::len)) {
            (200, 200, Some(n)) if n > 0 => Ok((all, scoped)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let scoped = scoped["queues"].as_array().unwrap();
    assert!(!scoped.is_empty());
    assert!(scoped.len() < all["queues"].as_array().unwrap().len());
    assert!(scoped.iter().all(|q| q["division"]["id"] == div.as_str()));
    let (status, _) = read("nobody", "/api/v1/queues").await;
    assert_eq!(status, 401);
    let (status, board) = read("scoped-key", "/api/v1/board").await;
    assert_eq!(status, 200);
    assert_eq!(board["routingThresholdsSecs"]["NOT_RESPONDING"], 30);
    assert_eq!(
        board["caller"],
        json!({"role": "viewer", "divisions": [div]})
    );
    let offered: Vec<&str> = board["desktopPresences"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        offered.contains(&"ON_QUEUE")
            && !offered.contains(&"IDLE")
            && !offered.contains(&"OFFLINE")
    );
    env.stop().await;
}

/// Observations older than 3 poll intervals are reported `stale`, then
/// `ok` again once a poll answers: here every Genesys answer is delayed
/// 9 s for 10 s (polls every 2 s, so stale after 6 s; the request timeout
/// is 30 s, so the delayed polls do not fail).
#[actix_web::test]
async fn delayed_observations_turn_stale_then_ok() {
    let env = start(vec![]).await;
    env.ready().await;
    wait_until(SECS, "observations ok", || async {
        let b = get(env.gw_url("/api/v1/queues")).await;
        (b["observations"] == "ok")
            .then_some(())
            .ok_or(format!("{}", b["observations"]))
    })
    .await;
    let r = client()
        .post(env.sim_url("/sim/faults"))
        .send_json(&json!({"kind": "slow_responses", "seconds": 10, "delayMs": 9000}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let stale = wait_until(SECS, "observations stale", || async {
        let b = get(env.gw_url("/api/v1/queues")).await;
        (b["observations"] == "stale")
            .then_some(b.clone())
            .ok_or(format!("{}", b["observations"]))
    })
    .await;
    assert!(stale["observedAt"].is_string(), "{stale}");
    wait_until(Duration::from_secs(40), "observations ok again", || async {
        let b = get(env.gw_url("/api/v1/queues")).await;
        (b["observations"] == "ok")
            .then_some(())
            .ok_or(format!("{}", b["observations"]))
    })
    .await;
    env.stop().await;
}
