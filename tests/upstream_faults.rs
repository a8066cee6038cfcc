//! Issue 15, the upstream half, against the real simulator on loopback: a
//! refused topic is narrowed away and never takes a channel down; a
//! topic-count refusal re-plans smaller channels; persistent failures back
//! off with growing attempts on the channel already created; the
//! anti-entropy sweep heals silent loss within its bound; after Genesys
//! restarts with older state (or with its clock skewed) its REST truth wins;
//! a presence definition created at runtime is learnt from the first event
//! that names it.

mod e2e;

use std::time::Duration;

use e2e::{client, get, wait_until, Env};
use presence_gateway::upstream::TopicStrategy;
use serde_json::{json, Value};

/// The `/readyz` body once ready (status 200), else an error.
async fn ready_body(env: &Env) -> Result<Value, String> {
    let mut r = client()
        .get(env.gw_url("/readyz"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if r.status() == 200 {
        Ok(body)
    } else {
        Err(format!("readyz {}: {body}", r.status()))
    }
}

/// The ids of the simulator's users, in order.
async fn user_ids(env: &Env) -> Vec<String> {
    let truth = get(env.sim_url("/sim/state")).await;
    truth["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

/// One value of the gateway's `/metrics`.
async fn metric(env: &Env, name: &str) -> u64 {
    let mut r = client().get(env.gw_url("/metrics")).send().await.unwrap();
    let text = String::from_utf8(r.body().await.unwrap().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics")) as u64
}

/// A refused conversation topic (403, a viewer's `?agent=…&interactions=1`)
/// and a refused presence topic (400) are dropped from the channel, which
/// stays up for everyone else: `/readyz` stays 200 and names both, the
/// metric counts them, live changes of other agents still arrive, and no
/// second channel is created. Under both readings of `ignoreErrors`
/// (`Rejected` entries, or the whole call refused and the topics found by bisection).
#[actix_web::test]
async fn refused_topics_are_dropped_never_fatal() {
    for honoured in [true, false] {
        let env = Env::start(40, |s, _| s.ignore_errors_honoured = honoured).await;
        env.ready().await;
        env.converged("start-up").await;
        let ids = user_ids(&env).await;
        let (watched, excluded) = (&ids[3], &ids[7]);
        let conv_topic = format!("v2.users.{watched}.conversations");
        let presence_topic = format!("v2.users.{excluded}.activity");
        env.fault(json!({"kind": "refuse_topic", "topic": conv_topic, "status": 403}))
            .await;
        env.fault(json!({"kind": "refuse_topic", "topic": presence_topic, "status": 400}))
            .await;
        // The presence topic is refused when the channel is subscribed anew.
        env.fault(json!({"kind": "evict_channels"})).await;
        let url = env
            .gw_url(&format!("/api/v1/ws?agent={watched}&interactions=1"))
            .replacen("http", "ws", 1);
        let mut viewer = client().ws(url).connect().await.expect("ws").1;
        let body = wait_until(
            Duration::from_secs(20),
            "both refusals reported while ready",
            || async {
                let b = ready_body(&env).await?;
                let listed: Vec<&str> = b["upstream"]["refusedTopics"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t["topic"].as_str()).collect())
                    .unwrap_or_default();
                if listed.contains(&conv_topic.as_str())
                    && listed.contains(&presence_topic.as_str())
                {
                    Ok(b)
                } else {
                    Err(format!("{b}"))
                }
            },
        )
        .await;
        assert_eq!(body["upstream"]["refusedTopicCount"], 2, "{body}");
        // The viewer's stream says so in its `status`, and stays connected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut whole = e2e::ws_text::Reassembler::default();
        loop {
            use futures_util::StreamExt;
            let frame = tokio::time::timeout_at(deadline, viewer.next())
                .await
                .expect("a status naming the refused topics")
                .expect("frame")
                .expect("ok");
            let Some(t) = whole.push(&frame) else {
                continue;
            };
            let m: Value = serde_json::from_slice(&t).unwrap();
            if m["type"] == "status"
                && m["refusedTopics"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r["topic"] == conv_topic.as_str()))
            {
                assert_eq!(m["state"], "connected", "{m}");
                break;
            }
        }
        assert_eq!(body["upstream"]["state"], "connected", "{body}");
        assert_eq!(
            metric(&env, "presence_gateway_upstream_refused_topics").await,
            2
        );
        // Everyone else still gets live events on the same channel.
        env.change(10, 10, "BREAK").await;
        env.converged("live changes after the refusals").await;
        let stats = env.sim_stats().await;
        assert_eq!(stats["channels"], 1, "{honoured}: {stats}");
        assert_eq!(
            stats["counters"]["channelsCreated"], 2,
            "{honoured}: one at start, one after the eviction: {stats}"
        );
        assert_eq!(
            stats["topics"], 39,
            "{honoured}: all but the refused: {stats}"
        );
        env.stop().await;
    }
}

/// Genesys counting each part of a combined topic (1 200 agents, combined
/// topics, 950 a channel = 1 900 counted) refuses the first channel's PUT:
/// the gateway learns a smaller count, re-plans, and every agent gets live
/// events, with a handful of channel calls instead of a loop.
#[actix_web::test]
async fn topic_count_refusal_replans_smaller_channels() {
    let env = Env::start(1_200, |s, c| {
        s.combined_topics_count_expanded = true;
        c.upstream.topic_strategy = TopicStrategy::Combined;
    })
    .await;
    env.ready().await;
    env.converged("start-up").await;
    env.change(0, 5, "BREAK").await;
    env.change(1_195, 5, "MEAL").await;
    env.converged("live changes on every channel").await;
    let stats = env.sim_stats().await;
    let routes = &stats["counters"]["requestsByRoute"];
    assert_eq!(stats["topics"], 1_200, "{stats}");
    assert_eq!(stats["channels"], 3, "475 + 475 + 250 agents: {stats}");
    assert!(
        stats["counters"]["channelsCreated"].as_u64().unwrap() <= 3,
        "the refused channel was reused: {stats}"
    );
    assert!(
        routes["PUT notifications/channels/{id}/subscriptions"]
            .as_u64()
            .unwrap()
            <= 6,
        "{routes}"
    );
    assert!(
        env.gw
            .upstream_stats
            .replans
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    env.stop().await;
}

/// While Genesys fails every call (503 for 8 s after the socket dropped),
/// the channel's retries back off with a growing attempt, the gateway says
/// `degraded` with the cause, no new channel is created (the one it has is
/// checked with HEAD and reused), and retries stay within their share of
/// the budget; afterwards everything converges.
#[actix_web::test]
async fn persistent_failures_back_off_and_reuse_the_channel() {
    let env = Env::start(60, |_, c| {
        c.upstream.circuit_open_secs = 1;
        c.upstream.max_retries = 1;
        c.upstream.backoff_initial_ms = 200;
        c.upstream.backoff_max_ms = 2_000;
    })
    .await;
    env.ready().await;
    env.converged("start-up").await;
    let before = env.sim_stats().await["counters"]["apiRequests"]
        .as_u64()
        .unwrap();
    env.fault(json!({"kind": "service_unavailable", "seconds": 8.0}))
        .await;
    env.fault(json!({"kind": "drop_sockets"})).await;
    let detail = wait_until(
        Duration::from_secs(20),
        "degraded with the cause",
        || async {
            let mut r = client()
                .get(env.gw_url("/readyz"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let b: Value = r.json().await.map_err(|e| e.to_string())?;
            let reason = b["reason"].as_str().unwrap_or_default().to_string();
            if r.status() == 503 && reason.contains("Degraded") {
                Ok(reason)
            } else {
                Err(b.to_string())
            }
        },
    )
    .await;
    assert!(!detail.is_empty());
    env.ready().await;
    env.change(0, 5, "AWAY").await;
    env.converged("after the outage").await;
    let stats = env.sim_stats().await;
    assert_eq!(
        stats["counters"]["channelsCreated"], 1,
        "the channel was reused: {stats}"
    );
    let during = stats["counters"]["apiRequests"].as_u64().unwrap() - before;
    // 8 s of 503s: the channel may retry at most retry_share (10 %) of
    // 300/min, three calls an open, plus the reconciliation after.
    assert!(during < 60, "{during} requests during and after the outage");
    env.stop().await;
}

/// Load of one counter of the gateway's upstream stats.
fn counter(v: &std::sync::atomic::AtomicU64) -> u64 {
    v.load(std::sync::atomic::Ordering::Relaxed)
}

/// A 3-second stall that no watchdog sees (pings only after 30 s of
/// silence) loses the changes made in it; the anti-entropy sweep corrects
/// every agent within its bound, with no reconnect and no reconciliation,
/// and the corrections go out as `reconciled` changes.
#[actix_web::test]
async fn silent_loss_heals_within_the_sweep_bound() {
    let env = Env::start(200, |_, c| {
        c.upstream.ping_after_secs = 30.0;
        c.upstream.pong_timeout_secs = 30.0;
        c.upstream.sweep_period_secs = 6;
        c.upstream.sweep_share = 0.5;
    })
    .await;
    env.ready().await;
    env.converged("start-up").await;
    let body = ready_body(&env).await.unwrap();
    let bound = body["upstream"]["stalenessBoundSecs"].as_f64().unwrap();
    assert!(bound > 0.0 && bound <= 6.0, "{body}");
    let reconciles = counter(&env.gw.upstream_stats.reconciles);
    let url = env.gw_url("/api/v1/ws").replacen("http", "ws", 1);
    let mut ws = client().ws(url).connect().await.expect("ws").1;
    env.fault(json!({"kind": "heartbeat_stall", "seconds": 3.0}))
        .await;
    env.change(0, 20, "BREAK").await;
    env.change(100, 15, "MEAL").await;
    assert!(env.diff().await.is_err(), "the stall lost the changes");
    // Within the bound (counted from the end of the stall, plus polling
    // slack), every agent is right.
    let deadline = Duration::from_secs_f64(bound + 3.0 + 2.0);
    wait_until(deadline, "healed by the sweep", || env.diff()).await;
    assert_eq!(counter(&env.gw.upstream_stats.reconnects), 0);
    assert_eq!(counter(&env.gw.upstream_stats.reconciles), reconciles);
    assert!(counter(&env.gw.upstream_stats.sweep_steps) >= 1);
    // The corrections reached clients as `reconciled` changes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut whole = e2e::ws_text::Reassembler::default();
    let mut reconciled = 0;
    while reconciled < 35 {
        use futures_util::StreamExt;
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("reconciled deltas in time")
            .expect("frame")
            .expect("ok");
        if let Some(t) = whole.push(&frame) {
            let m: Value = serde_json::from_slice(&t).unwrap();
            if m["type"] == "delta" {
                reconciled += m["changes"]
                    .as_array()
                    .map(|c| c.iter().filter(|c| c["origin"] == "reconciled").count())
                    .unwrap_or(0);
            }
        }
    }
    env.stop().await;
}

/// Genesys restarts with older state (`rewind`: every user another presence
/// and routing dated hours back, no events, sockets dropped): the gateway
/// converges to the truth, and an agent it showed INTERACTING before is
/// writable without `force` (no phantom INTERACTING).
#[actix_web::test]
async fn after_a_rewind_genesys_is_the_truth() {
    let env = Env::start(60, |_, _| {}).await;
    env.ready().await;
    env.converged("start-up").await;
    let id = user_ids(&env).await[5].clone();
    e2e::post(
        env.sim_url(&format!("/sim/users/{id}/presence")),
        json!({"systemPresence": "ON_QUEUE"}),
    )
    .await;
    {
        let mut inner = env.sim.sim.inner.lock();
        let u = inner.user_idx(&id).unwrap();
        inner.set_routing(
            u,
            presence_gateway::simulator::spelling::RoutingStatus::Interacting,
        );
    }
    wait_until(Duration::from_secs(10), "INTERACTING seen", || async {
        let a = get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
        if a["routingStatus"]["status"] == "INTERACTING" {
            Ok(())
        } else {
            Err(a.to_string())
        }
    })
    .await;
    env.change(10, 20, "ON_QUEUE").await;
    env.converged("before the rewind").await;
    let r = env.fault(json!({"kind": "rewind", "hours": 3})).await;
    assert_eq!(r["affected"], 60);
    env.converged("after the rewind").await;
    let truth = get(env.sim_url("/sim/state")).await;
    let now = truth["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id.as_str())
        .unwrap()["presence"]["systemPresence"]
        .as_str()
        .unwrap()
        .to_string();
    let to = if now == "AVAILABLE" {
        "MEAL"
    } else {
        "AVAILABLE"
    };
    let mut r = client()
        .patch(env.gw_url(&format!("/api/v1/agents/{id}/presence")))
        .send_json(&json!({"presence": to}))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(r.status(), 200, "no phantom INTERACTING: {body}");
    env.stop().await;
}

/// With Genesys's clock 5 s behind (and presence events without
/// `modifiedDate`, stamped at arrival by the gateway), a change lost in a
/// silent stall is still corrected by the later REST read: its older
/// `modifiedDate` is never compared with the gateway's own clock.
#[actix_web::test]
async fn skewed_genesys_clock_never_rejects_rest_truth() {
    for offset in [-5.0, 5.0] {
        let env = Env::start(50, |_, c| {
            c.upstream.ping_after_secs = 30.0;
            c.upstream.pong_timeout_secs = 30.0;
            c.upstream.sweep_period_secs = 5;
            c.upstream.topic_strategy = TopicStrategy::Combined;
        })
        .await;
        env.ready().await;
        env.converged("start-up").await;
        env.fault(json!({"kind": "clock_offset", "seconds": offset}))
            .await;
        env.change(0, 10, "BREAK").await;
        env.converged("undated events applied").await;
        env.fault(json!({"kind": "heartbeat_stall", "seconds": 1.0}))
            .await;
        env.change(0, 10, "AVAILABLE").await;
        env.change(20, 5, "ON_QUEUE").await;
        wait_until(
            Duration::from_secs(20),
            "REST truth applied despite the skew",
            || env.diff(),
        )
        .await;
        env.stop().await;
    }
}

/// A secondary presence created at runtime: the first event naming it
/// makes the gateway re-read the definitions once (single flight), after
/// which the agents show its label and it can be written.
#[actix_web::test]
async fn unknown_definition_is_learnt_from_its_first_event() {
    let env = Env::start(30, |_, _| {}).await;
    env.ready().await;
    env.converged("start-up").await;
    let added = env
        .fault(json!({"kind": "add_definition", "systemPresence": "BUSY", "label": "Escalations"}))
        .await;
    let def = added["id"].as_str().unwrap().to_string();
    let ids = user_ids(&env).await;
    for id in &ids[0..3] {
        e2e::post(
            env.sim_url(&format!("/sim/users/{id}/presence")),
            json!({"definitionId": def}),
        )
        .await;
    }
    wait_until(Duration::from_secs(10), "the new label", || async {
        for id in &ids[0..3] {
            let a = get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
            if a["presence"]["label"] != "Escalations" {
                return Err(a.to_string());
            }
        }
        Ok(())
    })
    .await;
    assert_eq!(counter(&env.gw.upstream_stats.definition_rereads), 1);
    let defs = get(env.gw_url("/api/v1/presence-definitions")).await;
    assert!(
        defs["definitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == def.as_str()),
        "{defs}"
    );
    let mut r = client()
        .patch(env.gw_url(&format!("/api/v1/agents/{}/presence", ids[5])))
        .send_json(&json!({"presence": def}))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(r.status(), 200, "writable: {body}");
    env.stop().await;
}

/// A frame about an agent that cannot be used (presence without a
/// definition id, an unknown routing status) is skipped and counted, and
/// that agent alone is re-read at once — long before the sweep would come.
#[actix_web::test]
async fn unusable_frame_triggers_a_targeted_reread() {
    let env = Env::start(40, |_, c| c.upstream.sweep_period_secs = 3_600).await;
    env.ready().await;
    env.converged("start-up").await;
    let ids = user_ids(&env).await;
    let truth = get(env.sim_url("/sim/state")).await;
    let now = truth["users"][9]["presence"]["systemPresence"]
        .as_str()
        .unwrap()
        .to_string();
    let to = if now == "BREAK" { "MEAL" } else { "BREAK" };
    env.fault(json!({"kind": "bad_event", "userId": ids[9], "systemPresence": to}))
        .await;
    wait_until(Duration::from_secs(10), "re-read agent", || env.diff()).await;
    assert!(counter(&env.gw.upstream_stats.malformed_frames) >= 1);
    assert_eq!(counter(&env.gw.upstream_stats.agent_rereads), 1);
    assert_eq!(counter(&env.gw.upstream_stats.sweeps), 0, "not the sweep");
    env.stop().await;
}
