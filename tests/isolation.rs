//! One client's traffic never hurts the others (issue 15, session half),
//! over real sockets on loopback: a WebSocket client that never reads but
//! keeps sending valid `subscribe`s is evicted with its queue bounded; SSE
//! clients that stop reading are evicted by the write deadline while a
//! reading client keeps up; a `subscribe` flood is coalesced to the
//! configured rate. Assertions are on the session metrics and registry
//! stats, never on RSS or wall-clock limits.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use presence_gateway::model::{SyncReason, SystemPresence, UpstreamEvent};
use presence_gateway::registry::RegistryConfig;
use presence_gateway::session::{DisconnectReason, SessionConfig};
use support::*;
use tokio::io::AsyncWriteExt;

const SECS: Duration = Duration::from_secs(30);

/// A masked client text frame (RFC 6455 §5.3: client frames are masked).
fn client_text_frame(text: &str) -> Vec<u8> {
    let p = text.as_bytes();
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81u8];
    if p.len() < 126 {
        f.push(0x80 | p.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(p.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Feeds one presence change with a long message (bigger frames fill the
/// buffers of clients that do not read sooner).
fn change(i: usize, n: usize) -> UpstreamEvent {
    let mut ev = presence(
        &format!("u{:04}", i % n),
        SystemPresence::ALL[i % 10],
        1000 + i as i64,
    );
    if let UpstreamEvent::Presence { state, .. } = &mut ev {
        state.message = "m".repeat(200);
    }
    ev
}

/// A WebSocket client that never reads and sends valid `subscribe`s (each
/// would queue a full snapshot) is evicted as a slow consumer by the write
/// deadline; what the gateway queued for it never exceeds its bound, and a
/// reading client on the same gateway keeps receiving.
#[actix_web::test]
async fn subscribing_websocket_that_never_reads_is_evicted_with_bounded_queue() {
    let outbox = 512 * 1024;
    let sess = SessionConfig {
        outbox_bytes: outbox,
        write_timeout_secs: 2,
        subscribe_interval_ms: 20,
        ..SessionConfig::default()
    };
    let gw = start_gateway_small_sndbuf(RegistryConfig::default(), sess).await;
    let n = 1000;
    gw.feed(sync(SyncReason::Initial, users(n)));
    gw.feed(connected());
    wait_until(SECS, "sync", || async { gw.stats().await.agents == n }).await;

    let reader = ws_client(&gw, "/api/v1/ws", false).await;
    reader
        .wait("reader snapshot", |m| m.agents.len() == n)
        .await;

    let mut stalled = StalledWs::connect(&gw, "/api/v1/ws").await;
    let metrics = gw.state.metrics.clone();
    // 2 000 valid subscribes, alternating filters so that no snapshot is a
    // shared one, paced so that many are applied (one per interval), sent
    // until the gateway has evicted the session.
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    while sent < 2000 && metrics.disconnects(DisconnectReason::SlowConsumer) == 0 {
        tick.tick().await;
        let filter = if sent % 2 == 0 { "AVAILABLE" } else { "BREAK" };
        let msg = format!(r#"{{"type":"subscribe","filter":{{"presence":"{filter}"}}}}"#);
        if tokio::time::timeout(
            Duration::from_secs(5),
            stalled.stream.write_all(&client_text_frame(&msg)),
        )
        .await
        .is_err()
        {
            break;
        }
        sent += 1;
    }
    wait_until(SECS, "stalled client evicted", || {
        let m = metrics.clone();
        async move { m.disconnects(DisconnectReason::SlowConsumer) == 1 }
    })
    .await;
    assert!(
        metrics.write_timeouts.load(Ordering::Relaxed) >= 1,
        "evicted by the write deadline"
    );
    assert!(metrics.subscribes_coalesced.load(Ordering::Relaxed) > 0);
    // Never more than the bound plus one message over it (the one that
    // tipped it over), however many subscribes were sent.
    let peak = metrics.queued_bytes_peak.load(Ordering::Relaxed) as usize;
    assert!(peak <= outbox + 64 * 1024, "peak {peak} bytes queued");
    // Everything the stalled session held is released.
    wait_until(SECS, "queue released", || {
        let m = metrics.clone();
        async move { m.queued_bytes.load(Ordering::Relaxed) == 0 }
    })
    .await;

    // The reading client is unaffected.
    for i in 0..20 {
        gw.feed(change(i, n));
    }
    let seq = gw.stats().await.seq;
    reader.wait("reader keeps up", |m| m.seq >= seq).await;
    let registry = gw.agents().await;
    assert_eq!(reader.m().agents, registry);
    assert!(reader.m().closed.is_none());
    assert_eq!(metrics.disconnects(DisconnectReason::SlowConsumer), 1);
}

/// SSE clients that stop reading are evicted by the write deadline (their
/// queue, coalesced per agent, fits the byte bound, so only the deadline
/// can catch them), counted as slow consumers; a reading SSE client keeps
/// receiving every change.
#[actix_web::test]
async fn sse_clients_that_stop_reading_are_evicted_by_the_write_deadline() {
    let write_timeout = 2;
    let sess = SessionConfig {
        // Large enough that coalescing always fits: the bug was exactly
        // this (never evicted, ~1 MiB pinned per client).
        outbox_bytes: 4 << 20,
        write_timeout_secs: write_timeout,
        // The kernel aborts stalled connections after write deadline +
        // close grace: well after the session's own deadline, so the
        // session decides (and counts) first even on a loaded machine.
        close_grace_secs: 5,
        ..SessionConfig::default()
    };
    let reg = RegistryConfig {
        batch_window_ms: 1,
        ..RegistryConfig::default()
    };
    let gw = start_gateway_small_sndbuf(reg, sess).await;
    let n = 300;
    gw.feed(sync(SyncReason::Initial, users(n)));
    gw.feed(connected());
    wait_until(SECS, "sync", || async { gw.stats().await.agents == n }).await;

    let reader = sse_client(&gw, "/api/v1/stream", None, false).await;
    reader
        .wait("reader snapshot", |m| m.agents.len() == n)
        .await;

    // N clients that send the request and then never read (4 KiB receive
    // buffers).
    let stalled_n = 40;
    let mut stalled = Vec::new();
    for _ in 0..stalled_n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(gw.addr).await.unwrap();
        let req = format!(
            "GET /api/v1/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            gw.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    let metrics = gw.state.metrics.clone();
    wait_until(SECS, "all subscribed", || async {
        gw.stats().await.subscribers == stalled_n + 1
    })
    .await;

    // Changes until every stalled client is evicted; the stats round trip
    // paces the feed and flushes each batch.
    let mut i = 0;
    let started = Instant::now();
    while metrics.disconnects(DisconnectReason::SlowConsumer) < stalled_n as u64 {
        gw.feed(change(i, n));
        i += 1;
        if i % 10 == 0 {
            let seq = gw.stats().await.seq;
            reader.wait("reader keeps up", |m| m.seq >= seq).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stalled SSE clients never evicted: {} of {stalled_n}",
            metrics.disconnects(DisconnectReason::SlowConsumer)
        );
    }
    assert_eq!(
        metrics.write_timeouts.load(Ordering::Relaxed),
        stalled_n as u64,
        "every one by the write deadline"
    );
    wait_until(SECS, "only the reader remains", || {
        let m = metrics.clone();
        async move {
            m.active_sse.load(Ordering::Relaxed) == 1 && m.queued_bytes.load(Ordering::Relaxed) == 0
        }
    })
    .await;
    assert_eq!(gw.stats().await.subscribers, 1);

    // The reader has every change.
    let seq = gw.stats().await.seq;
    reader.wait("reader caught up", |m| m.seq == seq).await;
    let registry = gw.agents().await;
    assert_eq!(reader.m().agents, registry);
    assert!(reader.m().closed.is_none());

    // The evicted connections themselves do not linger: the kernel aborts
    // them (TCP_USER_TIMEOUT = write deadline + close grace) without a
    // word, so each stalled client sees a reset once it sends something
    // (a blank line, which an open HTTP/1.1 connection would ignore).
    let mut reset = vec![false; stalled_n];
    wait_until(SECS, "stalled connections reset", || {
        for (s, r) in stalled.iter().zip(reset.iter_mut()) {
            if !*r {
                *r = matches!(s.take_error(), Ok(Some(_)))
                    || matches!(s.try_write(b"\r\n"), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
            }
        }
        let all = reset.iter().all(|r| *r);
        async move { all }
    })
    .await;
}

/// A `subscribe` flood is coalesced: the client gets at most one snapshot
/// per `subscribe_interval_ms` (plus the first), one `error` saying so per
/// applied subscribe, and ends on the last filter it sent.
#[actix_web::test]
async fn subscribe_flood_is_coalesced_to_the_configured_rate() {
    let interval_ms = 200;
    let sess = SessionConfig {
        subscribe_interval_ms: interval_ms,
        ..SessionConfig::default()
    };
    let gw = start_gateway(RegistryConfig::default(), sess).await;
    let n = 50;
    gw.feed(sync(SyncReason::Initial, users(n)));
    gw.feed(connected());
    wait_until(SECS, "sync", || async { gw.stats().await.agents == n }).await;

    let c = ws_client(&gw, "/api/v1/ws", true).await;
    c.wait("first snapshot", |m| m.agents.len() == n).await;
    let started = Instant::now();
    let sent = 300;
    for i in 0..sent {
        c.send(&format!(
            r#"{{"type":"subscribe","filter":{{"agent":"u{:04}"}}}}"#,
            i % n
        ));
    }
    // The last one asked for this agent only.
    let want = vec![format!("u{:04}", (sent - 1) % n)];
    let metrics = gw.state.metrics.clone();
    wait_until(SECS, "all subscribes handled", || {
        let m = metrics.clone();
        let c = c.clone();
        let want = want.clone();
        async move {
            let applied = c.m().of("snapshot").len() - 1;
            let coalesced = m.subscribes_coalesced.load(Ordering::Relaxed) as usize;
            applied + coalesced == sent && c.m().agents.keys().cloned().collect::<Vec<_>>() == want
        }
    })
    .await;
    let elapsed = started.elapsed().as_millis() as usize;
    let snapshots = c.m().of("snapshot").len() - 1;
    assert!(
        snapshots <= elapsed / interval_ms as usize + 1,
        "{snapshots} snapshots in {elapsed} ms"
    );
    assert!(
        snapshots < sent / 10,
        "{snapshots} snapshots for {sent} subscribes"
    );
    let errors = c.m().of("error");
    assert!(!errors.is_empty());
    assert!(errors.len() <= snapshots, "one error per applied subscribe");
    assert!(errors[0].data["reason"]
        .as_str()
        .unwrap()
        .contains("subscribe rate exceeded"));
    assert!(c.m().closed.is_none());
}
