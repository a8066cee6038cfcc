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
        let _viewer = client().ws(url).connect().await.expect("ws").1;
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
