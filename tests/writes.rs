//! The guarded write path against the real simulator: validation, the
//! transition policy, `If-Match`, `Idempotency-Key`, leases (also across a
//! restart), bulk, and the audit log. Each refusal must write nothing
//! upstream (the simulator counts every PATCH it receives).

mod e2e;

use std::time::Duration;

use e2e::{client, get, wait_until, Env};
use futures_util::StreamExt;
use presence_gateway::simulator::spelling::RoutingStatus;
use serde_json::{json, Value};

const BREAK: &str = "227b37e2-f1d0-4dd0-8f50-badd7cf6d158";
const AVAILABLE: &str = "6a3af858-942f-489d-9700-5f9bcdcdae9b";
const RETIRED: &str = "d4e3f605-7c81-4293-9da4-c5e6f708192a";

/// `PATCH` with optional headers → (status, headers, JSON body).
async fn patch(
    env: &Env,
    id: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Value) {
    let mut req = client().patch(env.gw_url(&format!("/api/v1/agents/{id}/presence")));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut r = req.send_json(&body).await.expect("PATCH");
    let status = r.status().as_u16();
    let h = r.headers().clone();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, h, v)
}

async fn patches_upstream(env: &Env) -> u64 {
    let s = env.sim_stats().await;
    s["counters"]["requestsByRoute"]["PATCH users/{id}/presences/purecloud"]
        .as_u64()
        .unwrap_or(0)
}

async fn truth(env: &Env, id: &str) -> Value {
    let s = get(env.sim_url("/sim/state")).await;
    s["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .cloned()
        .expect("user in /sim/state")
}

async fn agent_ids(env: &Env) -> Vec<String> {
    let s = get(env.sim_url("/sim/state")).await;
    s["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

async fn started(agents: usize) -> Env {
    let env = Env::start(agents, |_, _| {}).await;
    env.ready().await;
    env.converged("start-up").await;
    env
}

/// A valid change reaches the simulator, the REST view at once (with a new
/// ETag), and a WebSocket client as a delta whose origin is `write`.
#[actix_web::test]
async fn valid_change_reaches_genesys_and_streams() {
    let env = started(50).await;
    let id = agent_ids(&env).await[3].clone();
    let (_, mut ws) = client()
        .ws(env
            .gw_url(&format!("/api/v1/ws?agent={id}"))
            .replace("http", "ws"))
        .connect()
        .await
        .expect("ws");
    let (status, headers, body) = patch(
        &env,
        &id,
        json!({"presence": "Break", "message": "back in 10", "reason": "test"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["presence"]["definitionId"], BREAK);
    assert!(headers.get("etag").is_some());
    let t = truth(&env, &id).await;
    assert_eq!(t["presence"]["definitionId"], BREAK);
    assert_eq!(t["presence"]["message"], "back in 10");
    // The stream shows it, marked as the gateway's own write.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut whole = e2e::ws_text::Reassembler::default();
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("delta within deadline")
            .expect("frame")
            .expect("ok");
        if let Some(t) = whole.push(&frame) {
            let m: Value = serde_json::from_slice(&t).unwrap();
            let hit = m["type"] == "delta"
                && m["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["id"] == id.as_str() && c["presence"]["definitionId"] == BREAK);
            if hit {
                let c = m["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["id"] == id.as_str())
                    .unwrap();
                assert_eq!(c["origin"], "write", "{m}");
                break;
            }
        }
    }
    env.stop().await;
}

/// Unknown or deactivated presences get 422 with the valid choices, unknown
/// agents 404, bad bodies 400; none of them calls Genesys.
#[actix_web::test]
async fn refusals_write_nothing() {
    let env = started(20).await;
    let id = agent_ids(&env).await[0].clone();
    let before = patches_upstream(&env).await;
    let (s, _, b) = patch(&env, &id, json!({"presence": "Dancing"}), &[]).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"], "invalid_presence");
    assert!(
        b["choices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["label"] == "Lunch"),
        "{b}"
    );
    let (s, _, b) = patch(&env, &id, json!({"presence": RETIRED}), &[]).await;
    assert_eq!(s, 422, "{b}");
    assert!(b["reason"].as_str().unwrap().contains("deactivated"));
    let (s, _, b) = patch(
        &env,
        "00000000-0000-4000-8000-000000000000",
        json!({"presence": "BREAK"}),
        &[],
    )
    .await;
    assert_eq!(s, 404, "{b}");
    let (s, _, b) = patch(&env, &id, json!({"presense": "BREAK"}), &[]).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["reason"].as_str().unwrap().contains("presence"));
    let (s, _, b) = patch(
        &env,
        &id,
        json!({"presence": "BREAK", "leaseSeconds": 0}),
        &[],
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        patches_upstream(&env).await,
        before,
        "a refusal reached Genesys"
    );
    env.stop().await;
}

/// Taking an INTERACTING agent off queue is refused (409 naming the rule)
/// unless forced.
#[actix_web::test]
async fn interacting_agents_are_protected() {
    let env = started(20).await;
    let id = agent_ids(&env).await[5].clone();
    e2e::post(
        env.sim_url(&format!("/sim/users/{id}/presence")),
        json!({"systemPresence": "ON_QUEUE"}),
    )
    .await;
    {
        // Genesys routes an interaction to the agent.
        let mut inner = env.sim.sim.inner.lock();
        let u = inner.user_idx(&id).unwrap();
        inner.set_routing(u, RoutingStatus::Interacting);
    }
    wait_until(
        Duration::from_secs(10),
        "gateway sees INTERACTING",
        || async {
            let a = get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
            if a["routingStatus"]["status"] == "INTERACTING" {
                Ok(())
            } else {
                Err(a.to_string())
            }
        },
    )
    .await;
    let before = patches_upstream(&env).await;
    let (s, _, b) = patch(&env, &id, json!({"presence": "BREAK"}), &[]).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["rule"], "protect_interacting");
    assert_eq!(patches_upstream(&env).await, before);
    let (s, _, b) = patch(&env, &id, json!({"presence": "BREAK", "force": true}), &[]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(truth(&env, &id).await["presence"]["definitionId"], BREAK);
    env.stop().await;
}

/// `If-Match` with a stale version gets 412 and writes nothing; the current one succeeds.
#[actix_web::test]
async fn if_match_guards_concurrent_changes() {
    let env = started(20).await;
    let id = agent_ids(&env).await[2].clone();
    let mut r = client()
        .get(env.gw_url(&format!("/api/v1/agents/{id}")))
        .send()
        .await
        .unwrap();
    let etag = r
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let _: Value = r.json().await.unwrap();
    // Someone else changes the agent in Genesys meanwhile.
    e2e::post(
        env.sim_url(&format!("/sim/users/{id}/presence")),
        json!({"systemPresence": "MEETING"}),
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "gateway sees the meeting",
        || async {
            let a = get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
            if a["presence"]["systemPresence"] == "MEETING" {
                Ok(())
            } else {
                Err(a.to_string())
            }
        },
    )
    .await;
    let before = patches_upstream(&env).await;
    let (s, _, b) = patch(
        &env,
        &id,
        json!({"presence": "BREAK"}),
        &[("If-Match", &etag)],
    )
    .await;
    assert_eq!(s, 412, "{b}");
    assert!(b["currentVersion"].as_u64().is_some());
    assert_eq!(patches_upstream(&env).await, before);
    let fresh = format!("\"{}\"", b["currentVersion"]);
    let (s, _, b) = patch(
        &env,
        &id,
        json!({"presence": "BREAK"}),
        &[("If-Match", &fresh)],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    env.stop().await;
}

/// A retried request with the same `Idempotency-Key` returns the first result
/// and writes to Genesys once; the key with another body is refused.
#[actix_web::test]
async fn idempotent_retry_writes_once() {
    let env = started(20).await;
    let id = agent_ids(&env).await[1].clone();
    let before = patches_upstream(&env).await;
    let key = [("Idempotency-Key", "retry-me-1")];
    let (s1, _, b1) = patch(&env, &id, json!({"presence": "BREAK"}), &key).await;
    let (s2, h2, b2) = patch(&env, &id, json!({"presence": "BREAK"}), &key).await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(b1, b2);
    assert_eq!(
        h2.get("idempotent-replayed").map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(patches_upstream(&env).await, before + 1);
    let (s3, _, b3) = patch(&env, &id, json!({"presence": "MEAL"}), &key).await;
    assert_eq!(s3, 422, "{b3}");
    assert_eq!(patches_upstream(&env).await, before + 1);
    env.stop().await;
}

/// A lease runs out to the fallback presence, and a lease survives a gateway
/// restart (the new process runs it out).
#[actix_web::test]
async fn leases_expire_to_fallback_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let db2 = db.clone();
    let env = Env::start(20, move |_, c| c.store.path = db2).await;
    env.ready().await;
    let ids = agent_ids(&env).await;
    // One lease runs out while this gateway runs.
    let (s, _, b) = patch(
        &env,
        &ids[0],
        json!({"presence": "BREAK", "leaseSeconds": 1}),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["leaseExpiresAt"].is_string());
    wait_until(Duration::from_secs(15), "lease fallback", || async {
        let t = truth(&env, &ids[0]).await;
        if t["presence"]["definitionId"] == AVAILABLE {
            Ok(())
        } else {
            Err(t.to_string())
        }
    })
    .await;
    // Another is set, then the gateway stops before it runs out.
    let (s, _, b) = patch(
        &env,
        &ids[1],
        json!({"presence": "BREAK", "leaseSeconds": 3}),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    env.gw.stop().await;
    // A new gateway on the same store and the same Genesys org.
    let mut cfg = presence_gateway::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.store.path = db.clone();
    cfg.genesys.api_base = Some(env.sim.base_url());
    cfg.genesys.client_id = "sim-client".into();
    cfg.genesys.client_secret = "sim-secret".into();
    let gw2 = presence_gateway::app::start(cfg).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "lease fallback after restart",
        || async {
            let t = truth(&env, &ids[1]).await;
            if t["presence"]["definitionId"] == AVAILABLE {
                Ok(())
            } else {
                Err(t["presence"].to_string())
            }
        },
    )
    .await;
    // The audit record lands just after Genesys confirmed the change.
    wait_until(
        Duration::from_secs(10),
        "the lease expiry audited",
        || async {
            let audit = get(format!("{}/api/v1/audit?agent={}", gw2.base_url(), ids[1])).await;
            let leased = audit["records"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["actor"] == "lease");
            if leased {
                Ok(())
            } else {
                Err(audit.to_string())
            }
        },
    )
    .await;
    gw2.stop().await;
    env.sim.stop().await;
}

/// Bulk: 500 agents at once, in chunks through Genesys's bulk endpoint,
/// with a result per agent and no 429.
#[actix_web::test]
async fn bulk_of_500_without_rate_limits() {
    let env = started(520).await;
    let ids = agent_ids(&env).await;
    let changes: Vec<Value> = ids
        .iter()
        .take(500)
        .map(|id| json!({"agent": id, "presence": "TRAINING"}))
        .collect();
    let mut r = client()
        .post(env.gw_url("/api/v1/presence/bulk"))
        .send_json(&json!({"changes": changes, "reason": "training day", "force": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().limit(1 << 22).await.unwrap();
    assert_eq!(b["succeeded"], 500, "{}", b["results"][0]);
    let state = get(env.sim_url("/sim/state")).await;
    let training = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["presence"]["systemPresence"] == "TRAINING")
        .count();
    assert!(training >= 500);
    let stats = env.sim_stats().await;
    assert_eq!(stats["counters"]["rateLimited"], 0, "{stats}");
    assert_eq!(
        stats["counters"]["requestsByRoute"]["PUT users/presences/bulk"],
        10
    );
    env.stop().await;
}

/// Every attempt, accepted or refused, is in the audit log with who, what and the result.
#[actix_web::test]
async fn every_attempt_is_audited() {
    let env = started(20).await;
    let id = agent_ids(&env).await[7].clone();
    patch(
        &env,
        &id,
        json!({"presence": "BREAK", "reason": "coffee"}),
        &[],
    )
    .await;
    patch(&env, &id, json!({"presence": "Nope"}), &[]).await;
    patch(
        &env,
        &id,
        json!({"presence": "AVAILABLE"}),
        &[("If-Match", "\"999999\"")],
    )
    .await;
    let audit = get(env.gw_url(&format!("/api/v1/audit?agent={id}"))).await;
    let recs = audit["records"].as_array().unwrap();
    assert_eq!(audit["total"], 3, "{audit}");
    let results: Vec<&str> = recs.iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(
        results,
        vec!["precondition_failed", "invalid_presence", "ok"]
    );
    let ok = &recs[2];
    assert_eq!(ok["toPresence"], BREAK);
    assert_eq!(ok["reason"], "coffee");
    assert!(ok["correlationId"].is_string(), "{ok}");
    assert!(ok["actor"]
        .as_str()
        .unwrap()
        .starts_with("anonymous@127.0.0.1"));
    let (s, _, _) = patch(&env, &id, json!({"presence": "BREAK"}), &[]).await;
    assert_eq!(s, 200);
    let bad = client()
        .get(env.gw_url("/api/v1/audit?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    env.stop().await;
}

/// Bulk writes are confirmed under both readings of the bulk PUT answer's
/// `id` (UNCONFIRMED): user ids are matched directly (no re-read); source
/// ids name no user, so the gateway re-reads those users (bulk GET, ≤ 50
/// ids) and confirms only what Genesys holds.
#[actix_web::test]
async fn bulk_confirms_under_each_reading_of_the_answer_id() {
    use presence_gateway::simulator::BulkPutAnswerId;
    for reading in [BulkPutAnswerId::User, BulkPutAnswerId::Source] {
        let env = Env::start(80, |sim, _| sim.bulk_put_answer_id = reading).await;
        env.ready().await;
        env.converged("start-up").await;
        let ids = agent_ids(&env).await;
        let changes: Vec<Value> = ids
            .iter()
            .take(60)
            .map(|id| json!({"agent": id, "presence": "TRAINING"}))
            .collect();
        let mut r = client()
            .post(env.gw_url("/api/v1/presence/bulk"))
            .send_json(&json!({"changes": changes, "force": true}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let b: Value = r.json().limit(1 << 22).await.unwrap();
        assert_eq!(b["succeeded"], 60, "{reading:?}: {}", b["results"][0]);
        let stats = env.sim_stats().await;
        let rereads = stats["counters"]["requestsByRoute"]["GET users/presences/purecloud/bulk"]
            .as_u64()
            .unwrap_or(0);
        match reading {
            BulkPutAnswerId::User => assert_eq!(rereads, 0, "user ids matched directly"),
            // 60 agents in chunks of 50 → 2 PUTs, each re-read by one GET.
            BulkPutAnswerId::Source => assert_eq!(rereads, 2, "{stats}"),
        }
        // Every stream shows the confirmed presence.
        for id in ids.iter().take(60) {
            let a = get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
            assert_eq!(
                a["presence"]["systemPresence"], "TRAINING",
                "{reading:?} {a}"
            );
        }
        env.stop().await;
    }
}
