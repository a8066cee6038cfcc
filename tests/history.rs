//! Presence history against the real simulator on loopback: the journal
//! records the changes made through `/sim/users/{id}/presence` (times and
//! states as the simulator made them), the range before the gateway ran
//! comes from Genesys analytics (marked so), the daily summary adds up,
//! CSV works, and the journal survives a restart on the same file.

mod e2e;

use e2e::{client, post, try_get as get, wait_until};
use std::time::Duration;

use presence_gateway::app::{self, Gateway};
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use serde_json::{json, Value};

fn sim_config() -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents: 4,
        heartbeat_secs: 0.5,
        ..SimConfig::default()
    }
}

async fn start_gateway(sim: &SimHandle, sim_cfg: &SimConfig, db: &std::path::Path) -> Gateway {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.store.path = db.to_path_buf();
    cfg.registry.batch_window_ms = 20;
    cfg.genesys = GenesysConfig {
        api_base: Some(sim.base_url()),
        client_id: sim_cfg.client_id.clone(),
        client_secret: sim_cfg.client_secret.clone(),
        ..GenesysConfig::default()
    };
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

/// Sets a presence in the simulator; returns its `modifiedDate`.
async fn set(sim: &SimHandle, user: &str, sp: &str) -> String {
    let v = post(
        format!("{}/sim/users/{user}/presence", sim.base_url()),
        json!({ "systemPresence": sp }),
    )
    .await;
    v["presence"]["modifiedDate"]
        .as_str()
        .expect("modifiedDate")
        .to_string()
}

/// Presence records of the journal, waiting until the last one is `state`
/// at `at`.
async fn journal_until(gw: &Gateway, user: &str, from: &str, state: &str, at: &str) -> Value {
    let url = format!(
        "{}/api/v1/agents/{user}/history?kind=presence&from={from}",
        gw.base_url()
    );
    wait_until(Duration::from_secs(10), "journal record", || {
        let url = url.clone();
        async move {
            let h = get(url).await?;
            let recs = h["records"].as_array().cloned().unwrap_or_default();
            match recs.last() {
                Some(r) if r["current"]["state"] == state && r["at"] == at => Ok(h),
                other => Err(format!("last record {other:?}")),
            }
        }
    })
    .await
}

/// The journal holds exactly the changes made through the simulator, in
/// order, with the simulator's times and the previous state's duration;
/// the part before the gateway ran comes from Genesys analytics; the
/// summary of the day adds up to the covered interval; CSV has a line per
/// record; and after a restart on the same file the history is still there.
#[actix_web::test]
async fn history_matches_simulator_and_summary_adds_up() {
    let sim_cfg = sim_config();
    let sim = simulator::start(sim_cfg.clone()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("gw.db");
    let state = get(format!("{}/sim/state", sim.base_url())).await.unwrap();
    let user = state["users"][0]["id"].as_str().unwrap().to_string();
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let from = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    // Before the gateway runs: only Genesys knows.
    let pre = [
        set(&sim, &user, "AWAY").await,
        set(&sim, &user, "MEETING").await,
    ];
    assert_ne!(pre[0], pre[1], "distinct times");

    let gw = start_gateway(&sim, &sim_cfg, &db).await;
    let mut made = Vec::new();
    for sp in ["BREAK", "AVAILABLE", "MEAL", "TRAINING"] {
        let at = set(&sim, &user, sp).await;
        journal_until(&gw, &user, &from, sp, &at).await;
        made.push((sp, at));
    }
    let h = get(format!(
        "{}/api/v1/agents/{user}/history?kind=presence&from={from}",
        gw.base_url()
    ))
    .await
    .unwrap();
    let recs = h["records"].as_array().unwrap().clone();
    let journal: Vec<&Value> = recs.iter().filter(|r| r["source"] == "journal").collect();
    let analytics: Vec<&Value> = recs
        .iter()
        .filter(|r| r["source"] == "genesys_analytics")
        .collect();
    // The journal: the state found at start (MEETING, reconciled), then each change.
    assert_eq!(journal[0]["current"]["state"], "MEETING", "{h:#}");
    assert_eq!(journal[0]["origin"], "reconciled");
    assert_eq!(journal[0]["at"], pre[1].as_str());
    let tail: Vec<(String, String)> = journal[1..]
        .iter()
        .map(|r| {
            (
                r["current"]["state"].as_str().unwrap().to_string(),
                r["at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = made
        .iter()
        .map(|(s, a)| (s.to_string(), a.clone()))
        .collect();
    assert_eq!(tail, want, "{h:#}");
    for w in journal.windows(2) {
        assert_eq!(w[1]["previous"]["state"], w[0]["current"]["state"]);
        assert_eq!(w[1]["origin"], "event");
        let d = chrono::DateTime::parse_from_rfc3339(w[1]["at"].as_str().unwrap()).unwrap()
            - chrono::DateTime::parse_from_rfc3339(w[0]["at"].as_str().unwrap()).unwrap();
        assert_eq!(w[1]["previousDurationMs"], d.num_milliseconds());
    }
    // Before the journal: Genesys analytics, including AWAY (MEETING is the journal's).
    assert!(
        analytics
            .iter()
            .any(|r| r["current"]["state"] == "AWAY" && r["at"] == pre[0].as_str()),
        "{h:#}"
    );
    assert!(analytics
        .iter()
        .all(|r| r["at"].as_str() < Some(pre[1].as_str())));

    // Summary of today adds up.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let s = get(format!(
        "{}/api/v1/agents/{user}/summary?date={today}",
        gw.base_url()
    ))
    .await
    .unwrap();
    for kind in ["presence", "routing"] {
        let k = &s[kind];
        let sum: i64 = k["totalsMs"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert_eq!(sum, k["coveredMs"].as_i64().unwrap(), "{kind}: {s:#}");
        assert!(sum > 0, "{s:#}");
    }
    assert!(s["presence"]["totalsMs"]["BREAK"].as_i64().unwrap() > 0);

    // CSV: a header and one line per record.
    let mut r = client()
        .get(format!(
            "{}/api/v1/agents/{user}/history?kind=presence&from={from}",
            gw.base_url()
        ))
        .insert_header(("Accept", "text/csv"))
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = String::from_utf8(r.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(csv.lines().count(), recs.len() + 1, "{csv}");
    assert!(csv.contains(",journal,") && csv.contains(",genesys_analytics,"));

    // Paging: limit 2 pages through the same records.
    let p = get(format!(
        "{}/api/v1/agents/{user}/history?kind=presence&from={from}&limit=2",
        gw.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(p["records"].as_array().unwrap().len(), 2);
    assert!(p["next"].as_str().unwrap().contains("offset=2"));

    // The journal survives a restart on the same file: nothing new recorded.
    gw.stop().await;
    let gw = start_gateway(&sim, &sim_cfg, &db).await;
    let again = journal_until(&gw, &user, &from, "TRAINING", &made[3].1).await;
    let journal_again: Vec<&Value> = again["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "journal")
        .collect();
    assert_eq!(journal_again.len(), journal.len(), "{again:#}");
    gw.stop().await;
    sim.stop().await;
}

/// Bad parameters are refused with the parameter's name; unknown agents are 404.
#[actix_web::test]
async fn bad_parameters_are_named() {
    let sim_cfg = sim_config();
    let sim = simulator::start(sim_cfg.clone()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_gateway(&sim, &sim_cfg, &dir.path().join("gw.db")).await;
    for (q, param) in [
        ("history?from=yesterday", "from"),
        ("history?kind=mood", "kind"),
        ("summary?date=2026-13-01", "date"),
    ] {
        let mut r = client()
            .get(format!("{}/api/v1/agents/x/{q}", gw.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{q}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["parameter"], param, "{q}: {v}");
    }
    let r = client()
        .get(format!("{}/api/v1/agents/nobody/history", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    gw.stop().await;
    sim.stop().await;
}
