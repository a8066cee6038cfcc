//! Shared helpers for integration tests: start a gateway (registry + HTTP)
//! on `127.0.0.1:0`, build upstream events, stream clients (WebSocket and
//! SSE) that parse messages and keep the client-side model, and
//! `wait_until` (poll a condition with a deadline; no bare sleeps).
#![allow(dead_code)]

#[path = "../ws_text/mod.rs"]
mod ws_text;

#[path = "../common/mod.rs"]
mod common;
pub use common::{client, wait_until};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::ServerHandle;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use presence_gateway::http::{self, AppState};
use presence_gateway::model::*;
use presence_gateway::registry::{GetStats, Registry, RegistryConfig, RegistryStats};
use presence_gateway::session::SessionConfig;
use serde_json::Value;
use tokio::sync::mpsc;

/// A running gateway: registry actor plus downstream HTTP server.
pub struct Gateway {
    /// The registry (feed it `UpstreamEvent`s directly).
    pub registry: Addr<Registry>,
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// The shared state (limits, metrics).
    pub state: AppState,
    /// The server handle.
    pub handle: ServerHandle,
}

impl Gateway {
    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `ws://addr` + path.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Registry counters.
    pub async fn stats(&self) -> RegistryStats {
        self.registry.send(GetStats).await.expect("registry alive")
    }

    /// Sends one upstream event to the registry.
    pub fn feed(&self, ev: UpstreamEvent) {
        self.registry
            .try_send(ev)
            .expect("registry mailbox has room");
    }

    /// `GET path` → (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let mut resp = client().get(self.url(path)).send().await.expect("GET");
        let body = resp.body().limit(64 << 20).await.expect("body");
        (
            resp.status().as_u16(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// The registry's agents, by id, as `GET /api/v1/agents` returns them.
    pub async fn agents(&self) -> BTreeMap<String, Value> {
        let (_, v) = self.get_json("/api/v1/agents").await;
        v["agents"]
            .as_array()
            .expect("agents array")
            .iter()
            .map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone()))
            .collect()
    }
}

/// Starts a registry and a 2-worker HTTP server on 127.0.0.1:0.
pub async fn start_gateway(reg: RegistryConfig, sess: SessionConfig) -> Gateway {
    let registry = Registry::new(reg).start();
    let state = AppState::core(registry.clone(), sess);
    let (handle, addr) = http::start_with_workers(state.clone(), "127.0.0.1:0".parse().unwrap(), 2)
        .await
        .expect("bind 127.0.0.1:0");
    Gateway {
        registry,
        addr,
        state,
        handle,
    }
}

/// Like [`start_gateway`], but accepted sockets get an 8 KiB send buffer
/// (inherited from the listener), so a client that stops reading backs up
/// into the gateway's outbox quickly instead of into kernel buffers.
pub async fn start_gateway_small_sndbuf(reg: RegistryConfig, sess: SessionConfig) -> Gateway {
    let registry = Registry::new(reg).start();
    let state = AppState::core(registry.clone(), sess);
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_send_buffer_size(8192).unwrap();
    sock.set_reuseaddr(true).unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(1024).unwrap().into_std().unwrap();
    let (handle, addr) = http::start_on(state.clone(), listener, 2)
        .await
        .expect("listen");
    Gateway {
        registry,
        addr,
        state,
        handle,
    }
}

/// A WebSocket client that completes the handshake on a socket with a
/// 4 KiB receive buffer and then reads nothing until told to.
pub struct StalledWs {
    /// The raw connection.
    pub stream: tokio::net::TcpStream,
}

impl StalledWs {
    /// Connects and upgrades `path`, then stops reading.
    pub async fn connect(gw: &Gateway, path: &str) -> StalledWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut stream = sock.connect(gw.addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            gw.addr
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        // Read the response head only (byte by byte, to not eat frames).
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        StalledWs { stream }
    }

    /// Reads everything until the server closes; returns the close code of
    /// the last close frame seen (server frames are unmasked).
    pub async fn drain_close_code(mut self) -> Option<u16> {
        use tokio::io::AsyncReadExt;
        let mut all = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(30), self.stream.read_to_end(&mut all)).await;
        let mut i = 0;
        let mut code = None;
        while i + 2 <= all.len() {
            let op = all[i] & 0x0f;
            let mut len = (all[i + 1] & 0x7f) as usize;
            i += 2;
            if len == 126 {
                len = u16::from_be_bytes([all[i], all[i + 1]]) as usize;
                i += 2;
            } else if len == 127 {
                len = u64::from_be_bytes(all[i..i + 8].try_into().unwrap()) as usize;
                i += 8;
            }
            if op == 8 && len >= 2 && i + 2 <= all.len() {
                code = Some(u16::from_be_bytes([all[i], all[i + 1]]));
            }
            i += len;
        }
        code
    }
}

// ---------- fixtures ----------

/// A fixed instant plus `secs` seconds.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// The primary definition id of a system presence in the fixtures.
pub fn def_id(sp: SystemPresence) -> String {
    format!("def-{}", sp.upper_snake().to_lowercase())
}

/// One primary definition per system presence plus a secondary "Lunch" (MEAL).
pub fn definitions() -> Vec<PresenceDefinition> {
    let mut v: Vec<PresenceDefinition> = SystemPresence::ALL
        .iter()
        .map(|sp| PresenceDefinition {
            id: def_id(*sp),
            system_presence: *sp,
            label: format!("Org {}", sp.legacy()),
            language_labels: Default::default(),
            primary: true,
            deactivated: false,
        })
        .collect();
    v.push(PresenceDefinition {
        id: "def-lunch".into(),
        system_presence: SystemPresence::Meal,
        label: "Lunch".into(),
        language_labels: Default::default(),
        primary: false,
        deactivated: false,
    });
    v
}

/// A user `u<i>` in division `d<i % 2>`, queue `q<i % 3>`, available / off queue.
pub fn user(i: usize) -> UserRecord {
    UserRecord {
        id: format!("u{i:04}"),
        name: format!("Agent {i}"),
        division: Division {
            id: format!("d{}", i % 2),
            name: format!("Division {}", i % 2),
        },
        queue_ids: vec![format!("q{}", i % 3)],
        presence: Some(PresenceState {
            definition_id: def_id(SystemPresence::Available),
            system_presence: SystemPresence::Available,
            message: String::new(),
            modified: t(0),
            arrival: false,
        }),
        routing: Some(RoutingState {
            status: RoutingStatus::OffQueue,
            since: t(0),
        }),
    }
}

/// `n` users from [`user`].
pub fn users(n: usize) -> Vec<UserRecord> {
    (0..n).map(user).collect()
}

/// A sync event.
pub fn sync(reason: SyncReason, users: Vec<UserRecord>) -> UpstreamEvent {
    UpstreamEvent::Sync {
        reason,
        users,
        definitions: definitions(),
        queues: (0..3)
            .map(|q| Queue {
                id: format!("q{q}"),
                name: format!("Queue {q}"),
                division: None,
            })
            .collect(),
        read_at: chrono::Utc::now(),
        membership_known: true,
    }
}

/// A presence event (primary definition of `sp`) at `t(secs)`.
pub fn presence(user_id: &str, sp: SystemPresence, secs: i64) -> UpstreamEvent {
    UpstreamEvent::Presence {
        user_id: user_id.into(),
        state: PresenceState {
            definition_id: def_id(sp),
            system_presence: sp,
            message: String::new(),
            modified: t(secs),
            arrival: false,
        },
        origin: Origin::Event,
    }
}

/// A routing event at `t(secs)`.
pub fn routing(user_id: &str, rs: RoutingStatus, secs: i64) -> UpstreamEvent {
    UpstreamEvent::Routing {
        user_id: user_id.into(),
        state: RoutingState {
            status: rs,
            since: t(secs),
        },
        origin: Origin::Event,
    }
}

/// A connected health record.
pub fn connected() -> UpstreamEvent {
    let mut h = UpstreamHealth::starting();
    h.state = UpstreamState::Connected;
    h.last_event_at = Some(Utc::now());
    h.last_frame_at = Some(Utc::now());
    UpstreamEvent::Health(h)
}

// ---------- stream clients ----------

/// One message as a client sees it.
#[derive(Debug, Clone)]
pub struct Msg {
    /// `snapshot`, `delta`, `status`, `error`, `close`.
    pub kind: String,
    /// SSE `id:` (None on WebSocket).
    pub id: Option<String>,
    /// The JSON object.
    pub data: Value,
}

/// What a client has built from its messages.
#[derive(Debug, Default)]
pub struct Model {
    /// Agents by id (`origin`/`previous` stripped).
    pub agents: BTreeMap<String, Value>,
    /// Epoch of the last snapshot/delta.
    pub epoch: u64,
    /// Seq of the last snapshot/delta.
    pub seq: u64,
    /// Every message, in order.
    pub log: Vec<Msg>,
    /// Close code (WS close frame or SSE `close` event), once closed.
    pub closed: Option<u16>,
    /// The transport ended.
    pub ended: bool,
    /// Whether to keep `log` (off for crowds).
    pub keep_log: bool,
    /// Messages received.
    pub count: usize,
}

impl Model {
    fn apply(&mut self, m: Msg) {
        self.count += 1;
        match m.kind.as_str() {
            "snapshot" => {
                self.agents = m.data["agents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone()))
                    .collect();
                self.epoch = m.data["epoch"].as_u64().unwrap();
                self.seq = m.data["seq"].as_u64().unwrap();
            }
            "delta" => {
                for c in m.data["changes"].as_array().unwrap() {
                    let mut c = c.clone();
                    let o = c.as_object_mut().unwrap();
                    o.remove("origin");
                    o.remove("previous");
                    self.agents.insert(c["id"].as_str().unwrap().to_owned(), c);
                }
                if let Some(r) = m.data["removed"].as_array() {
                    for id in r {
                        self.agents.remove(id.as_str().unwrap());
                    }
                }
                self.epoch = m.data["epoch"].as_u64().unwrap();
                self.seq = m.data["seq"].as_u64().unwrap();
            }
            "close" => self.closed = m.data["code"].as_u64().map(|c| c as u16),
            _ => {}
        }
        if self.keep_log {
            self.log.push(m);
        }
    }

    /// Messages of one kind.
    pub fn of(&self, kind: &str) -> Vec<Msg> {
        self.log
            .iter()
            .filter(|m| m.kind == kind)
            .cloned()
            .collect()
    }
}

/// A stream client (WS or SSE) whose reader task keeps a [`Model`].
#[derive(Clone)]
pub struct Client {
    /// The model, updated by the reader task.
    pub model: Arc<Mutex<Model>>,
    /// Outgoing text (WebSocket only).
    tx: Option<mpsc::UnboundedSender<String>>,
}

impl Client {
    /// Locks the model.
    pub fn m(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap()
    }

    /// Sends a text message (WebSocket only).
    pub fn send(&self, text: &str) {
        self.tx
            .as_ref()
            .expect("websocket client")
            .send(text.into())
            .unwrap();
    }

    /// Waits until the model satisfies `f`.
    pub async fn wait(&self, what: &str, f: impl Fn(&Model) -> bool) {
        let model = self.model.clone();
        wait_until(Duration::from_secs(20), what, || {
            let ok = f(&model.lock().unwrap());
            async move { ok }
        })
        .await
    }
}

fn parse_msg(kind_hint: Option<String>, id: Option<String>, data: &str) -> Msg {
    let data: Value = serde_json::from_str(data).expect("message is JSON");
    let kind = kind_hint.unwrap_or_else(|| data["type"].as_str().unwrap_or("").to_owned());
    Msg { kind, id, data }
}

/// Opens a WebSocket at `path` (e.g. `/api/v1/ws?since=…`).
pub async fn ws_client(gw: &Gateway, path: &str, keep_log: bool) -> Client {
    let (_, mut framed) = client()
        .ws(gw.ws_url(path))
        .max_frame_size(64 << 20)
        .connect()
        .await
        .expect("websocket connect");
    let model = Arc::new(Mutex::new(Model {
        keep_log,
        ..Model::default()
    }));
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let m = model.clone();
    actix_web::rt::spawn(async move {
        let mut whole = ws_text::Reassembler::default();
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(t) => { let _ = framed.send(awc::ws::Message::Text(t.into())).await; }
                    None => break,
                },
                fr = framed.next() => match fr {
                    Some(Ok(f @ (awc::ws::Frame::Text(_) | awc::ws::Frame::Continuation(_)))) => {
                        if let Some(b) = whole.push(&f) {
                            let s = std::str::from_utf8(&b).unwrap();
                            m.lock().unwrap().apply(parse_msg(None, None, s));
                        }
                    }
                    Some(Ok(awc::ws::Frame::Ping(p))) => {
                        let _ = framed.send(awc::ws::Message::Pong(p)).await;
                    }
                    Some(Ok(awc::ws::Frame::Close(r))) => {
                        let mut g = m.lock().unwrap();
                        g.closed = Some(r.map_or(1005, |r| u16::from(r.code)));
                        g.ended = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => { m.lock().unwrap().ended = true; break; }
                },
            }
        }
    });
    Client {
        model,
        tx: Some(tx),
    }
}

/// Opens an SSE stream at `path`, with an optional `Last-Event-ID`.
pub async fn sse_client(
    gw: &Gateway,
    path: &str,
    last_event_id: Option<&str>,
    keep_log: bool,
) -> Client {
    let mut req = client()
        .get(gw.url(path))
        .insert_header(("Accept", "text/event-stream"));
    if let Some(id) = last_event_id {
        req = req.insert_header(("Last-Event-ID", id));
    }
    let mut resp = req.send().await.expect("SSE GET");
    assert_eq!(resp.status().as_u16(), 200, "SSE status");
    let model = Arc::new(Mutex::new(Model {
        keep_log,
        ..Model::default()
    }));
    let m = model.clone();
    actix_web::rt::spawn(async move {
        let mut buf = String::new();
        while let Some(chunk) = resp.next().await {
            let Ok(chunk) = chunk else { break };
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let (mut ev, mut id, mut data) = (None, None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        ev = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(v.to_owned());
                    }
                }
                if let Some(d) = data {
                    m.lock().unwrap().apply(parse_msg(ev, id, &d));
                }
            }
        }
        m.lock().unwrap().ended = true;
    });
    Client { model, tx: None }
}

/// Compares a client's agents with the registry's (ignoring nothing).
pub fn same_agents(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> bool {
    a == b
}

/// Agents from a snapshot/delta list as a map.
pub fn by_id(list: &Value) -> HashMap<String, Value> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone()))
        .collect()
}
