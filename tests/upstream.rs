//! The upstream actor against the real simulator on loopback: start-up,
//! every fault kind of `/sim/faults`, and convergence to `GET /sim/state`.
//! Presence changes are made during and after each fault; the gateway's
//! picture must equal the simulator's ground truth within a deadline.

mod e2e;

use e2e::Env;
use presence_gateway::config::Config;
use presence_gateway::simulator::SimConfig;
use serde_json::{json, Value};

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
    assert_eq!(stats["channels"], 6, "950 agents per channel: {stats}");
    assert_eq!(stats["topics"], 5_000, "{stats}");
    assert_eq!(stats["counters"]["rateLimited"], 0, "{stats}");
    env.stop().await;
}

/// Under both readings of `deactivated=true` on `/api/v2/presence/definitions`
/// (also / only deactivated), the gateway knows every definition, active and
/// deactivated (it reads the active ones without the flag and merges).
#[actix_web::test]
async fn definitions_survive_each_reading_of_deactivated() {
    use presence_gateway::simulator::DeactivatedReading;
    for reading in [DeactivatedReading::Include, DeactivatedReading::Only] {
        let env = Env::start(10, |sim, _| sim.definitions_deactivated = reading).await;
        env.ready().await;
        let gw = e2e::get(env.gw_url("/api/v1/presence-definitions")).await;
        let defs = gw["definitions"].as_array().expect("definitions");
        let truth: Vec<(String, bool)> = env
            .sim
            .sim
            .inner
            .lock()
            .org
            .definitions
            .iter()
            .map(|d| (d.id.clone(), d.deactivated))
            .collect();
        assert!(truth.iter().any(|d| d.1) && truth.iter().any(|d| !d.1));
        for (id, deactivated) in &truth {
            assert!(
                defs.iter().any(|g| g["id"] == id.as_str()),
                "{reading:?}: {id} (deactivated: {deactivated}) missing"
            );
        }
        env.stop().await;
    }
}

/// Under both readings of `QueueMember.id` (user id / membership id), each
/// agent's queues are the queues they joined: taken from `user.id`, with
/// `joined: false` members left out, as the activity events' `activeQueueIds`.
#[actix_web::test]
async fn queue_membership_under_each_reading_of_member_id() {
    use presence_gateway::simulator::QueueMemberId;
    for reading in [QueueMemberId::User, QueueMemberId::Member] {
        // Enough agents that some queue has more than one page (100) of members:
        // QueueMemberEntityListing has no pageCount, the gateway follows nextUri.
        let env = Env::start(600, |sim, _| {
            sim.queue_member_id = reading;
            sim.unjoined_member_rate = 0.3;
        })
        .await;
        env.ready().await;
        let expected: Vec<(String, Vec<String>)> = {
            let inner = env.sim.sim.inner.lock();
            (0..inner.org.users.len())
                .map(|u| {
                    let mut qs: Vec<String> = inner
                        .active_queue_ids(u)
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    qs.sort();
                    (inner.org.users[u].id.clone(), qs)
                })
                .collect()
        };
        assert!(
            expected.iter().any(|(_, q)| !q.is_empty()),
            "queues generated"
        );
        // Membership is read after start-up: wait until the gateway shows it.
        e2e::wait_until(
            std::time::Duration::from_secs(10),
            "queues as joined",
            || async {
                for (id, qs) in &expected {
                    let a = e2e::get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
                    let mut got: Vec<String> = a["queues"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{a}"))
                        .iter()
                        .map(|q| q["id"].as_str().or(q.as_str()).unwrap().to_string())
                        .collect();
                    got.sort();
                    if &got != qs {
                        return Err(format!("{reading:?}: agent {id}: {got:?} != {qs:?}"));
                    }
                }
                Ok(())
            },
        )
        .await;
        let biggest = {
            let inner = env.sim.sim.inner.lock();
            (0..inner.org.queues.len())
                .map(|q| {
                    inner
                        .org
                        .users
                        .iter()
                        .filter(|u| u.queues.contains(&q))
                        .count()
                })
                .max()
                .unwrap_or(0)
        };
        assert!(
            biggest > 100,
            "a queue with more than one page of members ({biggest})"
        );
        let some_unjoined = {
            let inner = env.sim.sim.inner.lock();
            expected.iter().any(|(id, qs)| {
                let u = inner.user_idx(id).unwrap();
                inner.org.users[u].queues.len() > qs.len()
            })
        };
        assert!(some_unjoined, "the rate left some memberships unjoined");
        env.stop().await;
    }
}
