//! What a client sees at the edges (issue 14): the README's demo command,
//! resume points that never fail a connection, a drain that no client
//! treats as fatal, "not synced yet" made visible, unknown divisions,
//! total date parsers, JSON error bodies, and the log format flags. Real
//! sockets on loopback, the real simulator, the real binary.

// Both helper sets (the in-process registry and the simulator end to end)
// include the shared WebSocket reassembler.
#![allow(clippy::duplicate_mod)]

mod e2e;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use presence_gateway::app;
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::model::SyncReason;
use presence_gateway::registry::RegistryConfig;
use presence_gateway::session::SessionConfig;
use presence_gateway::simulator::{self, SimConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECS: Duration = Duration::from_secs(20);

/// A stream URL and the request headers that go with it.
type Attempt = (String, Vec<(&'static str, Vec<u8>)>);

// ---------- helpers ----------

/// Starts a support gateway with `n` synced agents (divisions d0, d1).
async fn ready_gateway(n: usize) -> support::Gateway {
    let gw = support::start_gateway(RegistryConfig::default(), SessionConfig::default()).await;
    gw.feed(support::sync(SyncReason::Initial, support::users(n)));
    gw.feed(support::connected());
    support::wait_until(SECS, "initial sync applied", || async {
        gw.stats().await.agents == n
    })
    .await;
    gw
}

/// `GET url` with extra headers → (status, headers, JSON body or Null).
async fn get_with(
    url: &str,
    headers: &[(&str, &[u8])],
) -> (u16, awc::http::header::HeaderMap, Value) {
    let mut req = e2e::client().get(url);
    for (k, v) in headers {
        req = req.insert_header((*k, awc::http::header::HeaderValue::from_bytes(v).unwrap()));
    }
    let mut r = req.send().await.expect("GET");
    let headers = r.headers().clone();
    let body = r.body().limit(64 << 20).await.unwrap_or_default();
    (
        r.status().as_u16(),
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// Reads an SSE response until `until` holds for the text so far (or the
/// stream ends, or the deadline passes). Returns (text, ended).
async fn sse_until(
    r: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
    until: impl Fn(&str) -> bool,
) -> (String, bool) {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + SECS;
    loop {
        if until(&text) {
            return (text, false);
        }
        match tokio::time::timeout_at(deadline, r.next()).await {
            Ok(Some(Ok(b))) => text.push_str(&String::from_utf8_lossy(&b)),
            Ok(_) => return (text, true),
            Err(_) => panic!("timed out reading SSE; so far: {text}"),
        }
    }
}

/// The `data:` JSON of the first SSE event of `kind` in `text`.
fn sse_event(text: &str, kind: &str) -> Option<Value> {
    text.split("\n\n").find_map(|frame| {
        let mut lines = frame.lines();
        lines
            .clone()
            .any(|l| l == format!("event: {kind}"))
            .then(|| {
                lines
                    .find_map(|l| l.strip_prefix("data: "))
                    .and_then(|d| serde_json::from_str(d).ok())
            })
            .flatten()
    })
}

/// Reads from a raw socket until `done` holds or EOF; returns the bytes and
/// whether the peer closed.
async fn read_raw(sock: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + SECS;
    loop {
        if done(&out) {
            return (out, false);
        }
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "timed out reading; so far: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// A raw keep-alive connection that has already served one request.
async fn warm_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let (resp, closed) = read_raw(&mut s, |b| {
        String::from_utf8_lossy(b).contains("{\"status\":\"ok\"}")
    })
    .await;
    assert!(!closed, "keep-alive connection stays open");
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    s
}

/// Spawns the binary with `args`; returns the child and the `READY` line.
fn spawn_bin(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_presence-gateway"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("PRESENCE_GATEWAY_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY ") {
                let _ = ready_tx.send(line);
            }
        }
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("READY line");
    (child, ready, rx)
}

/// SIGTERM, then wait (with a deadline) for a clean exit.
fn stop_bin(mut child: Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "SIGTERM delivered");
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collects the log lines received so far (and within `wait` for more).
fn drain_lines(rx: &std::sync::mpsc::Receiver<String>, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(l) = rx.recv_timeout(wait) {
        out.push(l);
    }
    out
}

// ---------- 1. the README's demo command; 8. logs ----------

/// `cargo run` picks the gateway binary (`default-run`), and the demo it
/// runs serves readiness and a snapshot over SSE, then stops on SIGTERM;
/// its logs on a pipe carry no ANSI colours.
#[actix_web::test]
async fn demo_runs_as_the_readme_says() {
    let manifest: toml::Value =
        toml::from_str(include_str!("../Cargo.toml")).expect("Cargo.toml parses");
    assert_eq!(
        manifest["package"]["default-run"].as_str(),
        Some("presence-gateway"),
        "`cargo run -- demo` needs default-run"
    );
    let (child, ready, logs) = spawn_bin(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--sim-listen",
            "127.0.0.1:0",
            "--agents",
            "20",
        ],
        &[],
    );
    let gw = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("gateway="))
        .expect("gateway= in READY")
        .to_owned();
    e2e::wait_until(SECS, "/readyz", || e2e::try_get(format!("{gw}/readyz"))).await;
    let mut r = e2e::client()
        .get(format!("{gw}/api/v1/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (text, _) = sse_until(&mut r, |t| sse_event(t, "snapshot").is_some()).await;
    let snap = sse_event(&text, "snapshot").unwrap();
    assert_eq!(snap["agents"].as_array().unwrap().len(), 20);
    assert_eq!(snap["synced"], true);
    drop(r);
    stop_bin(child);
    let lines = drain_lines(&logs, Duration::from_millis(500));
    assert!(!lines.is_empty(), "the demo logs");
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "no ANSI escapes on a pipe: {:?}",
        lines.iter().find(|l| l.contains('\u{1b}'))
    );
}

/// `simulate --log-format json` (and the environment variable) log JSON
/// lines; an unknown format is refused with exit code 2 (clap usage).
#[actix_web::test]
async fn simulate_log_format_json() {
    let args = ["simulate", "--listen", "127.0.0.1:0", "--agents", "3"];
    let mut with_flag = vec!["--log-format", "json"];
    with_flag.extend_from_slice(&args);
    for (argv, env) in [
        (with_flag, vec![]),
        (args.to_vec(), vec![("PRESENCE_GATEWAY_LOG_FORMAT", "json")]),
    ] {
        let (child, ready, logs) = spawn_bin(&argv, &env);
        assert!(ready.contains("simulator="), "{ready}");
        stop_bin(child);
        let lines = drain_lines(&logs, Duration::from_millis(500));
        assert!(!lines.is_empty(), "the simulator logs");
        for l in &lines {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v["level"].is_string(), "{l}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_presence-gateway"))
        .args(["simulate", "--log-format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("json"));
}

// ---------- 2. resume never fails a connection ----------

/// Any resume point the gateway cannot honour gets a fresh snapshot
/// (`recovered:false`), on SSE and WebSocket: malformed, non-ASCII, other
/// epoch, future seq. `lastEventId` is an alias; unknown parameters are
/// ignored on streams (and named in `X-Ignored-Parameters`) but stay a 400
/// on REST; bad filter values stay a 400.
#[actix_web::test]
async fn resume_points_never_fail_a_connection() {
    let gw = ready_gateway(6).await;
    let epoch = gw.stats().await.epoch;
    let seq = gw.stats().await.seq;
    let stream = gw.url("/api/v1/stream");
    let bad_points: Vec<Attempt> = vec![
        (format!("{stream}?last_event_id=nope"), vec![]),
        (format!("{stream}?lastEventId=nope"), vec![]),
        (format!("{stream}?lastEventId={}:{seq}", epoch - 1), vec![]),
        (
            format!("{stream}?last_event_id={epoch}:{}", seq + 1000),
            vec![],
        ),
        (stream.clone(), vec![("Last-Event-ID", b"1:2:3".to_vec())]),
        (
            stream.clone(),
            vec![("Last-Event-ID", b"\xe9t\xe9".to_vec())],
        ),
        (format!("{stream}?colour=red&last_event_id=x"), vec![]),
    ];
    for (url, headers) in &bad_points {
        let hs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let mut req = e2e::client().get(url.as_str());
        for (k, v) in &hs {
            req = req.insert_header((*k, awc::http::header::HeaderValue::from_bytes(v).unwrap()));
        }
        let mut r = req.send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{url} {headers:?}");
        let (text, _) = sse_until(&mut r, |t| sse_event(t, "status").is_some()).await;
        let snap = sse_event(&text, "snapshot").unwrap_or_else(|| panic!("{url}: {text}"));
        assert_eq!(snap["recovered"], false);
        assert_eq!(snap["agents"].as_array().unwrap().len(), 6);
    }
    // Unknown parameters are named in a header.
    let mut r = e2e::client()
        .get(format!(
            "{stream}?colour=red&presence=ON_QUEUE,BREAK,AVAILABLE,OFFLINE&last_event_id=x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("x-ignored-parameters").unwrap(),
        "colour,last_event_id"
    );
    let _ = sse_until(&mut r, |t| sse_event(t, "snapshot").is_some()).await;

    // The alias resumes: a readable, honourable point replays (no snapshot).
    let before = gw.stats().await.seq;
    gw.feed(support::presence(
        "u0001",
        presence_gateway::model::SystemPresence::Break,
        50,
    ));
    support::wait_until(SECS, "batch", || async { gw.stats().await.seq > before }).await;
    let mut r = e2e::client()
        .get(format!("{stream}?lastEventId={epoch}:{before}"))
        .send()
        .await
        .unwrap();
    let (text, _) = sse_until(&mut r, |t| sse_event(t, "status").is_some()).await;
    assert!(sse_event(&text, "snapshot").is_none(), "{text}");
    assert!(sse_event(&text, "delta").is_some(), "{text}");

    // WebSocket: a bad `since` (query or subscribe) gets a snapshot.
    let ws = support::ws_client(&gw, "/api/v1/ws?since=garbage&colour=red", true).await;
    ws.wait("snapshot", |m| !m.of("snapshot").is_empty()).await;
    ws.send(r#"{"type":"subscribe","since":"not-a-point"}"#);
    ws.wait("second snapshot", |m| m.of("snapshot").len() == 2)
        .await;
    assert!(ws.m().of("error").is_empty());
    assert_eq!(ws.m().of("snapshot")[1].data["recovered"], false);

    // REST stays strict; bad filter values stay a 400 everywhere.
    let (code, _, body) = get_with(&gw.url("/api/v1/agents?colour=red"), &[]).await;
    assert_eq!(code, 400);
    assert_eq!(body["parameter"], "colour");
    let (code, _, body) = get_with(&format!("{stream}?presence=NOPE"), &[]).await;
    assert_eq!(code, 400);
    assert_eq!(body["parameter"], "presence");
}

// ---------- 3. a drain no client treats as fatal ----------

/// From the moment a drain starts, no stream request gets an HTTP error:
/// open SSE clients get `close` with a `retry:` hint that outlasts the
/// drain; a stream request on an already-open keep-alive connection gets
/// 200 `text/event-stream` with the same hint, the `restarting` status and
/// `Connection: close`; a WebSocket upgrade on such a connection is
/// accepted and closed with 1001.
#[actix_web::test]
async fn drain_never_answers_streams_with_an_error() {
    let env = e2e::Env::start(12, |_, cfg| {
        cfg.server.drain_secs = 4;
        cfg.server.drain_spread_secs = 1;
        cfg.session.close_grace_secs = 1;
    })
    .await;
    env.ready().await;
    let mut sses = Vec::new();
    for _ in 0..5 {
        let mut r = e2e::client()
            .get(env.gw_url("/api/v1/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let _ = sse_until(&mut r, |t| sse_event(t, "snapshot").is_some()).await;
        sses.push(r);
    }
    let mut sse_conn = warm_connection(env.gw.addr).await;
    let mut ws_conn = warm_connection(env.gw.addr).await;

    let limits = env.gw.state.limits.clone();
    let probe = async {
        e2e::wait_until(SECS, "drain started", || {
            let d = limits.draining();
            async move { d.ok_or_else(|| "not yet".to_owned()) }
        })
        .await;
        sse_conn
            .write_all(
                b"GET /api/v1/stream HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n",
            )
            .await
            .unwrap();
        let (sse_resp, sse_closed) = read_raw(&mut sse_conn, |_| false).await;
        ws_conn
            .write_all(
                b"GET /api/v1/ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .unwrap();
        // The close frame: 0x88, length, code 1001 (0x03E9).
        let (ws_resp, _) = read_raw(&mut ws_conn, |b| {
            b.windows(4)
                .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xE9)
        })
        .await;
        (
            String::from_utf8_lossy(&sse_resp).into_owned(),
            sse_closed,
            ws_resp,
        )
    };
    let (report, (sse_resp, sse_closed, ws_resp)) = tokio::join!(env.gw.shutdown(), probe);

    let head = sse_resp.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{sse_resp}");
    assert!(
        head.contains("content-type: text/event-stream"),
        "{sse_resp}"
    );
    assert!(head.contains("connection: close"), "{sse_resp}");
    assert!(sse_closed, "the connection is closed after the answer");
    let retry_of = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("retry: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no retry: in {text}"))
    };
    let elapsed_ms = report.elapsed.as_millis() as u64;
    let hint = retry_of(&sse_resp);
    assert!(
        hint > elapsed_ms,
        "retry {hint} ms outlasts the drain ({elapsed_ms} ms)"
    );
    assert!(sse_resp.contains("\"state\":\"restarting\""), "{sse_resp}");
    assert!(
        sse_resp.contains("event: close") && sse_resp.contains("1001"),
        "{sse_resp}"
    );

    let ws_text = String::from_utf8_lossy(&ws_resp);
    assert!(ws_text.starts_with("HTTP/1.1 101"), "{ws_text}");
    assert!(ws_text.contains("\"state\":\"restarting\""), "{ws_text}");

    for mut r in sses {
        let (text, ended) = sse_until(&mut r, |_| false).await;
        assert!(ended);
        assert!(text.contains("event: close"), "{text}");
        let tail = &text[text.rfind("retry: ").unwrap()..];
        let hint = retry_of(tail);
        assert!(
            hint > elapsed_ms,
            "retry {hint} ms outlasts the drain ({elapsed_ms} ms)"
        );
    }
    assert_eq!(report.left_open, 0, "{report:?}");
    env.sim.stop().await;
}

// ---------- 4. not synced yet ----------

/// With credentials Genesys refuses, `/api/v1/agents` and the streams say
/// `"synced": false` (and the status is stale) instead of a silent empty
/// list; once synced they say `true`.
#[actix_web::test]
async fn unsynced_gateway_says_so() {
    let sim_cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents: 3,
        ..SimConfig::default()
    };
    let sim = simulator::start(sim_cfg.clone()).await.expect("simulator");
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.store.path = ":memory:".into();
    cfg.upstream.backoff_initial_ms = 50;
    cfg.upstream.backoff_max_ms = 200;
    cfg.genesys = GenesysConfig {
        api_base: Some(sim.base_url()),
        client_id: sim_cfg.client_id.clone(),
        client_secret: "wrong-secret".into(),
        ..GenesysConfig::default()
    };
    cfg.validate().expect("valid config");
    let gw = app::start(cfg).await.expect("gateway starts");
    // The stream says "not synced" from the start and after the refusal.
    let mut r = e2e::client()
        .get(format!("{}/api/v1/stream", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (text, _) = sse_until(&mut r, |t| t.contains("\"state\":\"degraded\"")).await;
    assert_eq!(sse_event(&text, "snapshot").unwrap()["synced"], false);
    for frame in text.split("\n\n").filter(|f| f.contains("event: status")) {
        let status: Value = serde_json::from_str(
            frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(status["synced"], false, "{status}");
        assert_eq!(status["stale"], true, "{status}");
    }
    let (code, _, body) = get_with(&format!("{}/api/v1/agents", gw.base_url()), &[]).await;
    assert_eq!(code, 200);
    assert_eq!(body["synced"], false, "{body}");
    assert_eq!(body["agents"].as_array().unwrap().len(), 0);
    gw.stop().await;

    // A synced gateway says true.
    let gw2 = ready_gateway(2).await;
    let (_, _, body) = get_with(&gw2.url("/api/v1/agents"), &[]).await;
    assert_eq!(body["synced"], true);
    sim.stop().await;
}

// ---------- 5. unknown divisions ----------

/// An unknown `division=` is a 400 listing the known divisions, on REST and
/// on the streams; before the first sync nothing is known and nothing is
/// refused.
#[actix_web::test]
async fn unknown_division_is_a_400_listing_known_ones() {
    let early = support::start_gateway(RegistryConfig::default(), SessionConfig::default()).await;
    let (code, _, body) = get_with(&early.url("/api/v1/agents?division=d9"), &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["synced"], false);

    let gw = ready_gateway(4).await;
    for path in [
        "/api/v1/agents?division=d0,nope",
        "/api/v1/stream?division=nope",
    ] {
        let (code, _, body) = get_with(&gw.url(path), &[]).await;
        assert_eq!(code, 400, "{path}");
        assert_eq!(body["error"], "bad_parameter");
        assert_eq!(body["parameter"], "division");
        let reason = body["reason"].as_str().unwrap();
        assert!(
            reason.contains("\"nope\"") && reason.contains("d0,d1"),
            "{reason}"
        );
    }
    let (code, _, body) = get_with(&gw.url("/api/v1/agents?division=d1"), &[]).await;
    assert_eq!(code, 200);
    assert_eq!(body["agents"].as_array().unwrap().len(), 2);
}

// ---------- 6. total date parsers; 7. JSON error bodies ----------

/// Extreme dates are a 400 (never a panic); the summary defaults to today
/// (UTC); every error body the application writes is the JSON error.
#[actix_web::test]
async fn parameters_are_total_and_errors_are_json() {
    let env = e2e::Env::start(3, |_, _| {}).await;
    env.ready().await;
    let truth = e2e::get(env.sim_url("/sim/state")).await;
    let id = truth["users"][0]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/agents/{id}");
    for path in [
        format!("{base}/history?to=-262143-01-01"),
        format!("{base}/history?from=%2B262142-12-31"),
        format!("{base}/history?to=%2B262142-12-31T00:00:00Z"),
        format!("{base}/history?to=1969-12-31"),
        format!("{base}/summary?date=%2B262142-12-31"),
        format!("{base}/summary?date=-262143-01-01"),
        format!("{base}/summary?date=0000-01-01"),
    ] {
        let (code, h, body) = get_with(&env.gw_url(&path), &[]).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert_eq!(body["error"], "bad_parameter", "{path}");
    }
    // The gateway still answers (no handler panicked).
    let (code, _, body) = get_with(&env.gw_url(&format!("{base}/summary")), &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["date"],
        chrono::Utc::now()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
    );

    // Bad requests of every kind the application sees: JSON bodies.
    let client = e2e::client();
    let url = |p: &str| env.gw_url(p);
    let cases = vec![
        client.get(url("/api/v1/agents?x=%zz")),
        client.get(url("/api/v1/agents?presence=%FF")),
        client.get(url("/api/v1/agents/%FF")),
        client.get(url(&format!("{base}/history?limit=abc"))),
        client.get(url("/api/v1/ws")),
        client.post(url("/api/v1/agents")),
        client.get(url("/no/such/route")),
        client
            .patch(url(&format!("{base}/presence")))
            .insert_header(("content-type", "application/json")),
    ];
    for req in cases {
        let what = format!("{} {}", req.get_method(), req.get_uri());
        let mut r = req.send_body("{bad").await.expect("send");
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "{what}: {status}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("application/json".to_owned()),
            "{what}"
        );
        let body: Value = r.json().await.expect("JSON body");
        assert!(
            body["error"].is_string() && body["reason"].is_string(),
            "{what}: {body}"
        );
    }
    env.stop().await;
}

/// Each `demo` run keeps its store in a directory of its own under the
/// temp dir, and removes it on SIGTERM: two concurrent runs on
/// `--listen 127.0.0.1:0` never share a file, and nothing is left after.
#[actix_web::test]
async fn demo_runs_have_their_own_store_removed_on_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_owned();
    let args = [
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--sim-listen",
        "127.0.0.1:0",
        "--agents",
        "5",
    ];
    let (a, _, _) = spawn_bin(&args, &[("TMPDIR", &tmp_path)]);
    let (b, _, _) = spawn_bin(&args, &[("TMPDIR", &tmp_path)]);
    let entries = || -> Vec<String> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut dirs = entries();
    dirs.sort();
    assert_eq!(dirs.len(), 2, "one store directory per run: {dirs:?}");
    assert!(
        dirs.iter().all(|d| d.starts_with("presence-gateway-demo-")),
        "{dirs:?}"
    );
    assert_ne!(dirs[0], dirs[1]);
    for d in &dirs {
        e2e::wait_until(SECS, "the store file exists", || {
            let p = tmp.path().join(d).join("store.db");
            async move { p.exists() }
        })
        .await;
    }
    stop_bin(a);
    stop_bin(b);
    assert!(entries().is_empty(), "left behind: {:?}", entries());
}
