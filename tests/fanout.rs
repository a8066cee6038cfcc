//! Registry + session fan-out over real sockets on loopback: snapshots,
//! deltas, stale events, resume, filters, backpressure, crowds, malformed
//! client messages and reconciliation. The upstream is played by feeding
//! `UpstreamEvent`s straight into the registry actor.

mod support;

use std::time::Duration;

use presence_gateway::model::{RoutingStatus, SyncReason, SystemPresence, UpstreamEvent};
use presence_gateway::registry::RegistryConfig;
use presence_gateway::session::{DisconnectReason, SessionConfig};
use serde_json::Value;
use support::*;

const SECS: Duration = Duration::from_secs(20);

/// Starts a gateway, feeds an initial sync of `n` users and a connected health.
async fn ready_gateway(n: usize, reg: RegistryConfig, sess: SessionConfig) -> Gateway {
    let gw = start_gateway(reg, sess).await;
    gw.feed(sync(SyncReason::Initial, users(n)));
    gw.feed(connected());
    wait_until(SECS, "initial sync applied", || async {
        gw.stats().await.agents == n
    })
    .await;
    gw
}

fn epoch_seq(m: &Model) -> String {
    format!("{}:{}", m.epoch, m.seq)
}

/// The snapshot a WebSocket and an SSE client get equals what was fed (and
/// what `GET /api/v1/agents` returns); readiness and single-agent reads work.
#[actix_web::test]
async fn snapshot_over_ws_and_sse_equals_registry() {
    let gw = start_gateway(RegistryConfig::default(), SessionConfig::default()).await;
    let (code, body) = gw.get_json("/readyz").await;
    assert_eq!(code, 503, "not ready before the initial sync");
    assert_eq!(body["error"], "not_ready");
    gw.feed(sync(SyncReason::Initial, users(10)));
    gw.feed(connected());
    wait_until(SECS, "ready", || async {
        gw.get_json("/readyz").await.0 == 200
    })
    .await;
    assert_eq!(gw.get_json("/healthz").await.0, 200);

    let ws = ws_client(&gw, "/api/v1/ws", true).await;
    let sse = sse_client(&gw, "/api/v1/stream", None, true).await;
    ws.wait("ws snapshot", |m| !m.of("snapshot").is_empty())
        .await;
    sse.wait("sse snapshot", |m| !m.of("snapshot").is_empty())
        .await;
    let registry = gw.agents().await;
    assert_eq!(registry.len(), 10);
    assert_eq!(ws.m().agents, registry);
    assert_eq!(sse.m().agents, registry);

    let a = &registry["u0001"];
    assert_eq!(a["name"], "Agent 1");
    assert_eq!(a["division"]["id"], "d1");
    assert_eq!(a["presence"]["systemPresence"], "AVAILABLE");
    assert_eq!(a["presence"]["label"], "Org Available");
    assert_eq!(a["presence"]["since"], "2024-06-01T09:00:00.000Z");
    assert_eq!(a["routingStatus"]["status"], "OFF_QUEUE");
    assert_eq!(a["version"], 1);

    let snap = ws.m().of("snapshot")[0].data.clone();
    assert_eq!(snap["recovered"], false);
    assert_eq!(snap["counts"]["all"]["agents"], 10);
    assert_eq!(snap["counts"]["all"]["presence"]["AVAILABLE"], 10);
    assert_eq!(snap["counts"]["divisions"]["d0"]["agents"], 5);
    let sse_snap = &sse.m().of("snapshot")[0];
    assert_eq!(
        sse_snap.id.as_deref(),
        Some(format!("{}:{}", sse_snap.data["epoch"], sse_snap.data["seq"]).as_str())
    );
    // A status message follows the snapshot.
    ws.wait("status", |m| !m.of("status").is_empty()).await;
    assert_eq!(ws.m().of("status")[0].data["state"], "connected");

    // One agent, with its version as ETag; unknown agent is a JSON 404.
    let resp = client()
        .get(gw.url("/api/v1/agents/u0001"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers().get("etag").unwrap(), "\"1\"");
    let (code, body) = gw.get_json("/api/v1/agents/nobody").await;
    assert_eq!(code, 404);
    assert_eq!(body["error"], "agent_not_found");
    let (code, body) = gw.get_json("/api/v1/presence-definitions").await;
    assert_eq!(code, 200);
    assert_eq!(body["definitions"].as_array().unwrap().len(), 11);
}

/// A presence event reaches WebSocket and SSE clients as one delta with the
/// new state, `previous`, `origin` and a bumped version.
#[actix_web::test]
async fn presence_event_reaches_clients_as_delta_with_previous() {
    let gw = ready_gateway(5, RegistryConfig::default(), SessionConfig::default()).await;
    let ws = ws_client(&gw, "/api/v1/ws", true).await;
    let sse = sse_client(&gw, "/api/v1/stream", None, true).await;
    ws.wait("ws snapshot", |m| m.count > 0).await;
    sse.wait("sse snapshot", |m| m.count > 0).await;

    gw.feed(presence("u0002", SystemPresence::OnQueue, 10));
    for c in [&ws, &sse] {
        c.wait("delta", |m| !m.of("delta").is_empty()).await;
        let d = c.m().of("delta")[0].clone();
        let ch = &d.data["changes"][0];
        assert_eq!(ch["id"], "u0002");
        assert_eq!(ch["presence"]["systemPresence"], "ON_QUEUE");
        assert_eq!(ch["presence"]["label"], "Org On Queue");
        assert_eq!(ch["previous"]["presence"]["systemPresence"], "AVAILABLE");
        assert_eq!(ch["origin"], "event");
        assert_eq!(ch["version"], 2);
        assert_eq!(d.data["counts"]["all"]["presence"]["ON_QUEUE"], 1);
    }
    let d = sse.m().of("delta")[0].clone();
    assert_eq!(
        d.id.unwrap(),
        format!("{}:{}", d.data["epoch"], d.data["seq"])
    );
    let registry = gw.agents().await;
    assert_eq!(ws.m().agents, registry);
}

/// Presence older than the held `modified` and routing older than the held
/// `since` are dropped and never reach clients.
#[actix_web::test]
async fn stale_events_are_dropped() {
    let gw = ready_gateway(3, RegistryConfig::default(), SessionConfig::default()).await;
    let ws = ws_client(&gw, "/api/v1/ws", true).await;
    ws.wait("snapshot", |m| m.count > 0).await;
    gw.feed(presence("u0001", SystemPresence::Break, 20));
    gw.feed(presence("u0001", SystemPresence::Meal, 10)); // older: stale
    gw.feed(routing("u0001", RoutingStatus::Idle, 20));
    gw.feed(routing("u0001", RoutingStatus::Interacting, 5)); // older: stale
    gw.feed(presence("nobody", SystemPresence::Break, 20)); // unknown user
    wait_until(SECS, "events applied", || async {
        gw.stats().await.dropped.stale == 2
    })
    .await;
    let st = gw.stats().await;
    assert_eq!(st.dropped.unknown_user, 1);
    let a = &gw.agents().await["u0001"];
    assert_eq!(a["presence"]["systemPresence"], "BREAK");
    assert_eq!(a["routingStatus"]["status"], "IDLE");
    ws.wait("client converged", |m| m.agents["u0001"] == *a)
        .await;
    for d in ws.m().of("delta") {
        for c in d.data["changes"].as_array().unwrap() {
            assert_ne!(c["presence"]["systemPresence"], "MEAL");
            assert_ne!(c["routingStatus"]["status"], "INTERACTING");
        }
    }
}

/// Feeds one event and waits until the registry numbered it in its own batch.
async fn feed_batch(gw: &Gateway, ev: presence_gateway::model::UpstreamEvent) -> u64 {
    let before = gw.stats().await.seq;
    gw.feed(ev);
    wait_until(SECS, "batch emitted", || async {
        gw.stats().await.seq > before
    })
    .await;
    gw.stats().await.seq
}

/// Reconnecting with a cursor still in the buffer replays exactly the
/// missed batches, no snapshot, on WebSocket (`?since=`) and SSE
/// (`Last-Event-ID` and `?last_event_id=`).
#[actix_web::test]
async fn resume_inside_buffer_replays_exactly_the_gap() {
    let gw = ready_gateway(5, RegistryConfig::default(), SessionConfig::default()).await;
    let ws = ws_client(&gw, "/api/v1/ws", true).await;
    ws.wait("snapshot", |m| m.count > 0).await;
    feed_batch(&gw, presence("u0000", SystemPresence::Break, 10)).await;
    let s1 = feed_batch(&gw, presence("u0001", SystemPresence::Break, 10)).await;
    ws.wait("caught up", |m| m.seq == s1).await;
    let cursor = epoch_seq(&ws.m());
    let mut expected = ws.m().agents.clone();

    // Missed while away.
    feed_batch(&gw, presence("u0002", SystemPresence::Meal, 10)).await;
    let s3 = feed_batch(&gw, routing("u0003", RoutingStatus::Idle, 10)).await;
    let registry = gw.agents().await;
    expected.insert("u0002".into(), registry["u0002"].clone());
    expected.insert("u0003".into(), registry["u0003"].clone());

    let resumed = [
        ws_client(&gw, &format!("/api/v1/ws?since={cursor}"), true).await,
        sse_client(&gw, "/api/v1/stream", Some(&cursor), true).await,
        sse_client(
            &gw,
            &format!("/api/v1/stream?last_event_id={cursor}"),
            None,
            true,
        )
        .await,
    ];
    for c in &resumed {
        c.wait("replay + status", |m| !m.of("status").is_empty())
            .await;
        let m = c.m();
        assert!(m.of("snapshot").is_empty(), "no snapshot on a good resume");
        let seqs: Vec<u64> = m
            .of("delta")
            .iter()
            .map(|d| d.data["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, vec![s1 + 1, s3], "exactly the gap");
        let ids: Vec<Value> = m
            .of("delta")
            .iter()
            .map(|d| d.data["changes"][0]["id"].clone())
            .collect();
        assert_eq!(ids, vec![Value::from("u0002"), Value::from("u0003")]);
    }
    // Applying the gap to the old state gives the registry's state.
    let mut model = Model {
        agents: ws.m().agents.clone(),
        ..Model::default()
    };
    for d in resumed[0].m().of("delta") {
        for c in d.data["changes"].as_array().unwrap() {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("origin");
            c.as_object_mut().unwrap().remove("previous");
            model.agents.insert(c["id"].as_str().unwrap().into(), c);
        }
    }
    assert_eq!(model.agents, registry);
    assert_eq!(expected, registry);
}

/// A cursor older than the buffer, from another epoch, or from the future
/// gets a fresh, correct snapshot with `recovered: false`.
#[actix_web::test]
async fn resume_outside_buffer_gets_fresh_snapshot() {
    let reg = RegistryConfig {
        replay_batches: 2,
        ..RegistryConfig::default()
    };
    let gw = ready_gateway(5, reg, SessionConfig::default()).await;
    let epoch = gw.stats().await.epoch;
    let first = gw.stats().await.seq;
    for (i, u) in ["u0000", "u0001", "u0002", "u0003"].iter().enumerate() {
        feed_batch(&gw, presence(u, SystemPresence::Break, 10 + i as i64)).await;
    }
    let registry = gw.agents().await;
    let seq = gw.stats().await.seq;
    for cursor in [
        format!("{epoch}:{first}"),
        format!("{}:{seq}", epoch - 1),
        format!("{epoch}:{}", seq + 5),
    ] {
        let c = ws_client(&gw, &format!("/api/v1/ws?since={cursor}"), true).await;
        c.wait("snapshot", |m| !m.of("snapshot").is_empty()).await;
        let snap = c.m().of("snapshot")[0].data.clone();
        assert_eq!(snap["recovered"], false);
        assert_eq!(snap["seq"], seq);
        assert_eq!(c.m().agents, registry, "cursor {cursor}");
    }
    // Inside the (2-batch) buffer still resumes.
    let c = sse_client(
        &gw,
        "/api/v1/stream",
        Some(&format!("{epoch}:{}", seq - 2)),
        true,
    )
    .await;
    c.wait("status", |m| !m.of("status").is_empty()).await;
    assert!(c.m().of("snapshot").is_empty());
    assert_eq!(c.m().of("delta").len(), 2);
    // A malformed cursor is not an error: a fresh snapshot (tests/client_facing.rs).
}

/// Filters deliver exactly the matching agents; an agent that leaves the
/// filter comes in `removed`; `subscribe` changes the filter on an open
/// WebSocket with a fresh snapshot.
#[actix_web::test]
async fn filters_deliver_exactly_matching_agents() {
    let gw = ready_gateway(12, RegistryConfig::default(), SessionConfig::default()).await;
    let on_queue = ws_client(&gw, "/api/v1/ws?presence=ON_QUEUE", true).await;
    let div = sse_client(&gw, "/api/v1/stream?division=d0&queue=q0,q1", None, true).await;
    let ids = ws_client(&gw, "/api/v1/ws?agent=u0001&agent=u0002", true).await;
    on_queue.wait("snapshot", |m| m.count > 0).await;
    div.wait("snapshot", |m| m.count > 0).await;
    ids.wait("snapshot", |m| m.count > 0).await;
    assert!(on_queue.m().agents.is_empty());
    // d0 = even ids; q0/q1 = i % 3 in {0,1}
    let want: Vec<String> = (0..12)
        .filter(|i| i % 2 == 0 && i % 3 != 2)
        .map(|i| format!("u{i:04}"))
        .collect();
    assert_eq!(div.m().agents.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(
        ids.m().agents.keys().cloned().collect::<Vec<_>>(),
        vec!["u0001", "u0002"]
    );
    let (_, body) = gw.get_json("/api/v1/agents?division=d0&queue=q0,q1").await;
    assert_eq!(body["agents"].as_array().unwrap().len(), want.len());

    gw.feed(presence("u0003", SystemPresence::OnQueue, 10));
    on_queue
        .wait("u0003 enters", |m| m.agents.contains_key("u0003"))
        .await;
    feed_batch(&gw, presence("u0003", SystemPresence::Break, 20)).await;
    on_queue
        .wait("u0003 leaves", |m| !m.agents.contains_key("u0003"))
        .await;
    let removed: Vec<Value> = on_queue
        .m()
        .of("delta")
        .iter()
        .filter_map(|d| d.data.get("removed").cloned())
        .collect();
    assert_eq!(removed, vec![serde_json::json!(["u0003"])]);
    // Filtered-out changes never show up as changes.
    for d in ids.m().of("delta") {
        for c in d.data["changes"].as_array().unwrap() {
            assert!(c["id"] == "u0001" || c["id"] == "u0002");
        }
    }

    // Change the filter on the open socket: fresh snapshot for the new filter.
    ids.send(r#"{"type":"subscribe","filter":{"presence":["BREAK"]}}"#);
    ids.wait("second snapshot", |m| m.of("snapshot").len() == 2)
        .await;
    assert_eq!(
        ids.m().agents.keys().cloned().collect::<Vec<_>>(),
        vec!["u0003"]
    );

    // Bad filter values are 400s naming the parameter.
    let (code, body) = gw.get_json("/api/v1/agents?presence=LUNCH").await;
    assert_eq!(code, 400);
    assert_eq!(body["error"], "bad_parameter");
    assert_eq!(body["parameter"], "presence");
    let (code, body) = gw.get_json("/api/v1/agents?presense=BREAK").await;
    assert_eq!(code, 400);
    assert_eq!(body["parameter"], "presense");
}

/// A client that stops reading is disconnected with close code 4008 while
/// 100 others keep receiving every change.
#[actix_web::test]
async fn slow_client_is_disconnected_while_others_keep_up() {
    let reg = RegistryConfig {
        batch_window_ms: 1,
        ..RegistryConfig::default()
    };
    let sess = SessionConfig {
        outbox_bytes: 64 * 1024,
        // The stalled client is drained at the end of the test; its close
        // frame must still be waiting then, however loaded the machine.
        close_grace_secs: 120,
        ..SessionConfig::default()
    };
    let gw = start_gateway_small_sndbuf(reg, sess).await;
    let n = 200;
    gw.feed(sync(SyncReason::Initial, users(n)));
    gw.feed(connected());
    wait_until(SECS, "sync", || async { gw.stats().await.agents == n }).await;

    let slow = StalledWs::connect(&gw, "/api/v1/ws").await;
    let mut others = Vec::new();
    for _ in 0..100 {
        others.push(ws_client(&gw, "/api/v1/ws", false).await);
    }
    wait_until(SECS, "all subscribed", || async {
        gw.stats().await.subscribers == 101
    })
    .await;

    // 200 batches of 5 changes, each change ~600 bytes on the wire. The
    // stats round trip flushes the batch and paces the feed.
    let message = "x".repeat(100);
    for i in 0..1000usize {
        let mut ev = presence(
            &format!("u{:04}", i % n),
            SystemPresence::ALL[i % 10],
            100 + i as i64,
        );
        if let presence_gateway::model::UpstreamEvent::Presence { state, .. } = &mut ev {
            state.message = message.clone();
        }
        gw.feed(ev);
        if i % 5 == 4 {
            gw.stats().await;
        }
        // Readers that keep reading stay within a small lag of the registry
        // even on a loaded machine (the test's own clients share one thread);
        // the stalled one falls ever further behind.
        if i % 25 == 24 {
            let seq = gw.stats().await.seq;
            for (n, c) in others.iter().enumerate() {
                c.wait(&format!("client {n} keeps up"), |m| m.seq >= seq)
                    .await;
            }
        }
    }
    let metrics = gw.state.metrics.clone();
    wait_until(SECS, "slow client disconnected", || {
        let m = metrics.clone();
        async move { m.disconnects(DisconnectReason::SlowConsumer) >= 1 }
    })
    .await;
    let seq = gw.stats().await.seq;
    let registry = gw.agents().await;
    for (i, c) in others.iter().enumerate() {
        c.wait(&format!("client {i} caught up"), |m| m.seq == seq)
            .await;
        assert_eq!(c.m().agents, registry, "client {i}");
        assert!(c.m().closed.is_none());
    }
    assert_eq!(metrics.disconnects(DisconnectReason::SlowConsumer), 1);
    assert_eq!(slow.drain_close_code().await, Some(4008));
}

/// 1 000 concurrent clients (half WebSocket, half SSE) all end with the
/// registry's state.
#[actix_web::test]
async fn thousand_clients_converge() {
    let gw = ready_gateway(30, RegistryConfig::default(), SessionConfig::default()).await;
    let mut clients = Vec::new();
    for i in 0..1000 {
        let c = if i % 2 == 0 {
            ws_client(&gw, "/api/v1/ws", false).await
        } else {
            sse_client(&gw, "/api/v1/stream", None, false).await
        };
        clients.push(c);
    }
    wait_until(Duration::from_secs(60), "all subscribed", || async {
        gw.stats().await.subscribers == 1000
    })
    .await;
    for i in 0..60usize {
        gw.feed(presence(
            &format!("u{:04}", i % 30),
            SystemPresence::ALL[i % 10],
            10 + i as i64,
        ));
        if i % 3 == 0 {
            gw.feed(routing(
                &format!("u{:04}", (i * 7) % 30),
                RoutingStatus::ALL[i % 5],
                10 + i as i64,
            ));
        }
    }
    // The registry handles messages in order: this reply comes after every event.
    let seq = gw.stats().await.seq;
    let registry = gw.agents().await;
    for (i, c) in clients.iter().enumerate() {
        c.wait(&format!("client {i} at seq {seq}"), |m| m.seq == seq)
            .await;
        assert_eq!(c.m().agents, registry, "client {i}");
    }
}

/// Malformed client messages get an `error` naming the problem; more than
/// ten in a minute close the socket with 1008.
#[actix_web::test]
async fn malformed_client_messages_get_errors() {
    let gw = ready_gateway(2, RegistryConfig::default(), SessionConfig::default()).await;
    let c = ws_client(&gw, "/api/v1/ws", true).await;
    c.wait("snapshot", |m| m.count > 0).await;
    c.send("not json");
    c.send(r#"{"type":"dance"}"#);
    c.send(r#"{"type":"subscribe","filter":{"presence":"LUNCH"}}"#);
    // A string that is not a resume point is not an error (a fresh
    // snapshot comes, tests/client_facing.rs); a non-string is.
    c.send(r#"{"type":"subscribe","since":42}"#);
    c.wait("four errors", |m| m.of("error").len() == 4).await;
    let reasons: Vec<String> = c
        .m()
        .of("error")
        .iter()
        .map(|e| e.data["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("unknown message type"), "{reasons:?}");
    assert!(reasons[2].contains("filter.presence"), "{reasons:?}");
    assert!(reasons[3].contains("since"), "{reasons:?}");
    for _ in 0..7 {
        c.send("{");
    }
    c.wait("closed", |m| m.closed.is_some()).await;
    assert_eq!(c.m().closed, Some(1008));
}

/// A reconcile sync emits only the differences (changed, added, removed),
/// marked `reconciled`, and keeps state an event brought after the read was sent.
#[actix_web::test]
async fn reconcile_sync_emits_only_differences() {
    let gw = ready_gateway(5, RegistryConfig::default(), SessionConfig::default()).await;
    let read_at = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    feed_batch(&gw, presence("u0003", SystemPresence::Break, 30)).await;
    let c = ws_client(&gw, "/api/v1/ws", true).await;
    c.wait("snapshot", |m| m.count > 0).await;

    let mut truth = users(5);
    // u0001 changed while we were disconnected.
    truth[1].presence.as_mut().unwrap().system_presence = SystemPresence::Meal;
    truth[1].presence.as_mut().unwrap().definition_id = "def-lunch".into();
    truth[1].presence.as_mut().unwrap().modified = t(20);
    // u0002 left; u0007 joined; u0003's event arrived after the read was sent.
    truth.remove(2);
    truth.push(user(7));
    let mut ev = sync(SyncReason::Reconcile, truth);
    if let UpstreamEvent::Sync { read_at: r, .. } = &mut ev {
        *r = read_at;
    }
    gw.feed(ev);

    c.wait("delta", |m| !m.of("delta").is_empty()).await;
    let d = c.m().of("delta")[0].data.clone();
    let mut changed: Vec<String> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["origin"], "reconciled");
            c["id"].as_str().unwrap().to_owned()
        })
        .collect();
    changed.sort();
    assert_eq!(changed, vec!["u0001", "u0007"]);
    assert_eq!(d["removed"], serde_json::json!(["u0002"]));
    let registry = gw.agents().await;
    assert_eq!(registry["u0001"]["presence"]["label"], "Lunch");
    assert_eq!(registry["u0003"]["presence"]["systemPresence"], "BREAK");
    c.wait("converged", |m| m.agents == registry).await;
}

/// Connection limits refuse with JSON: 429 per IP.
#[actix_web::test]
async fn connection_limits_refuse_with_json() {
    let sess = SessionConfig {
        max_connections_per_ip: 2,
        ..SessionConfig::default()
    };
    let gw = ready_gateway(2, RegistryConfig::default(), sess).await;
    let _a = ws_client(&gw, "/api/v1/ws", false).await;
    let _b = sse_client(&gw, "/api/v1/stream", None, false).await;
    let (code, body) = gw.get_json("/api/v1/stream").await;
    assert_eq!(code, 429);
    assert_eq!(body["error"], "too_many_connections_from_ip");
}

/// `CloseAll` (graceful shutdown) closes WebSocket clients with 1001 and
/// ends SSE streams with a `close` event.
#[actix_web::test]
async fn close_all_closes_sessions_with_going_away() {
    let gw = ready_gateway(2, RegistryConfig::default(), SessionConfig::default()).await;
    let ws = ws_client(&gw, "/api/v1/ws", true).await;
    let sse = sse_client(&gw, "/api/v1/stream", None, true).await;
    ws.wait("snapshot", |m| m.count > 0).await;
    sse.wait("snapshot", |m| m.count > 0).await;
    wait_until(SECS, "subscribed", || async {
        gw.stats().await.subscribers == 2
    })
    .await;
    let n = gw
        .registry
        .send(presence_gateway::registry::CloseAll)
        .await
        .unwrap();
    assert_eq!(n, 2);
    ws.wait("ws closed", |m| m.closed.is_some()).await;
    assert_eq!(ws.m().closed, Some(1001));
    sse.wait("sse ended", |m| m.ended).await;
    assert_eq!(sse.m().closed, Some(1001));
}

/// A WebSocket client that never answers pings is closed with 4000 (idle
/// timeout) after `idle_timeout_secs`.
#[actix_web::test]
async fn silent_websocket_client_hits_idle_timeout() {
    let sess = SessionConfig {
        keepalive_secs: 1,
        idle_timeout_secs: 2,
        ..SessionConfig::default()
    };
    let gw = ready_gateway(2, RegistryConfig::default(), sess).await;
    let silent = StalledWs::connect(&gw, "/api/v1/ws").await;
    let metrics = gw.state.metrics.clone();
    wait_until(Duration::from_secs(10), "idle timeout", || {
        let m = metrics.clone();
        async move { m.disconnects(DisconnectReason::IdleTimeout) == 1 }
    })
    .await;
    assert_eq!(silent.drain_close_code().await, Some(4000));
}
