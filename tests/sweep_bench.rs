//! Benchmark of the anti-entropy sweep (issue 15), not a test: run it
//! explicitly, it prints figures for docs/operations.md.
//!
//! ```text
//! SWEEP_BENCH_AGENTS=1000,5000,20000 cargo test --release --test sweep_bench -- --ignored --nocapture
//! ```
//!
//! For each org size, against the real simulator with the default
//! `[upstream]` budget (300/min, `sweep_period_secs = 60`, `sweep_share =
//! 0.2`): the sweep's REST calls per minute (measured over one minute), and
//! the time to heal a silent loss — 20 agents spread over the directory
//! changed during a 3 s stall no watchdog sees, until the gateway equals
//! `/sim/state` again.

mod e2e;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use e2e::{get, post, Env};
use serde_json::json;

#[actix_web::test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn sweep_cost_and_time_to_heal() {
    let sizes: Vec<usize> = std::env::var("SWEEP_BENCH_AGENTS")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("| agents | staleness bound (s) | sweep REST calls/min | all REST calls/min | time to heal a silent loss (s) |");
    println!("|---|---|---|---|---|");
    for agents in sizes {
        let env = Env::start(agents, |_, c| {
            c.upstream.ping_after_secs = 40.0;
            c.upstream.pong_timeout_secs = 10.0;
            c.upstream.queue_membership = false;
        })
        .await;
        e2e::wait_until(Duration::from_secs(600), "ready", || async {
            e2e::try_get(env.gw_url("/readyz")).await.map(|_| ())
        })
        .await;
        let bound = get(env.gw_url("/readyz")).await["upstream"]["stalenessBoundSecs"]
            .as_f64()
            .unwrap();
        let stats = &env.gw.upstream_stats;
        let (steps0, calls0, t0) = (
            stats.sweep_steps.load(Ordering::Relaxed),
            stats.rest_calls.load(Ordering::Relaxed),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        let minutes = t0.elapsed().as_secs_f64() / 60.0;
        let sweep_per_min =
            (stats.sweep_steps.load(Ordering::Relaxed) - steps0) as f64 * 3.0 / minutes;
        let all_per_min = (stats.rest_calls.load(Ordering::Relaxed) - calls0) as f64 / minutes;
        let truth = get(env.sim_url("/sim/state")).await;
        let ids: Vec<String> = truth["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        env.fault(json!({"kind": "heartbeat_stall", "seconds": 3.0}))
            .await;
        let started = Instant::now();
        let mut changed = Vec::new();
        for k in 0..20 {
            let id = ids[k * ids.len() / 20].clone();
            let to = if k % 2 == 0 { "BREAK" } else { "MEAL" };
            post(
                env.sim_url(&format!("/sim/users/{id}/presence")),
                json!({"systemPresence": to}),
            )
            .await;
            changed.push((id, to));
        }
        // Only the changed agents are polled (a whole-org diff every 50 ms
        // would load the machine being measured).
        let deadline = started + Duration::from_secs_f64(bound * 2.0 + 60.0);
        loop {
            let mut wrong = 0;
            for (id, to) in &changed {
                let a = get(env.gw_url(&format!("/api/v1/agents/{id}"))).await;
                if a["presence"]["systemPresence"] != *to {
                    wrong += 1;
                }
            }
            if wrong == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{wrong} agents still wrong");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let heal = started.elapsed().as_secs_f64();
        assert_eq!(
            stats.reconnects.load(Ordering::Relaxed),
            0,
            "healed by the sweep, not a reconnect"
        );
        println!("| {agents} | {bound:.0} | {sweep_per_min:.0} | {all_per_min:.0} | {heal:.1} |");
        env.stop().await;
    }
}
