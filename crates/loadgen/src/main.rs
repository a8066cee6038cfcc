//! `loadgen`: the fan-out load client for `bench/run.sh` (issue 10).
//!
//! Opens N WebSocket and/or SSE clients (raw tokio sockets: a hand-written
//! HTTP/1.1 + RFC 6455 client costs a few KB per connection where awc would
//! need an actix system per thread), keeps every client's copy of the
//! presence map, and measures what `docs/benchmarks.md` reports:
//!
//! - delivery latency, per change and per client: arrival (wall clock when
//!   the socket read returned) minus emission at the simulator. The emission
//!   time is the newest of the change's `presence.since` and
//!   `routingStatus.since`: the simulator stamps `modifiedDate` /
//!   `startTime` with `Utc::now()` at the moment it changes the agent and
//!   emits the events (crates/genesys-sim/src/state.rs `set_presence`,
//!   `apply_routing`), and the unchanged field of the pair is always older.
//!   Both run on the same host clock. The stamps have ms precision (rounded
//!   down), so latencies read up to 1 ms high. Only `origin:"event"` changes
//!   are timed (reconciled ones carry old stamps).
//! - fan-out-only latency for nchan: the relay adds `"pubAtUs"` (wall clock
//!   in µs just before its POST to nchan), and clients time arrival − that.
//! - deliveries/s, loss (every client's final state vs `GET /sim/state`,
//!   plus `seq` gaps), server RSS per idle connection and server CPU from
//!   `/proc/<pid>/{status,stat}`.
//! - `upstream`: the simulator's `counters.apiRequests` over a fixed window
//!   with a given number of clients connected.
//!
//! Only talks to 127.0.0.1 (or whatever addresses it is given).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, BytesMut};
use clap::{Parser, ValueEnum};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Fan-out load client for presence-gateway and nchan.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// `fanout` (latency, loss, RSS, CPU) or `upstream` (REST calls/min).
    #[arg(value_enum)]
    mode: Mode,
    /// What the clients subscribe to.
    #[arg(long, value_enum, default_value = "gateway")]
    target: Target,
    /// Gateway address (host:port).
    #[arg(long)]
    gateway: SocketAddr,
    /// Simulator address (host:port): ground truth and churn control.
    #[arg(long)]
    sim: SocketAddr,
    /// nchan (nginx) address, for `--target nchan`.
    #[arg(long)]
    nchan: Option<SocketAddr>,
    /// Server pids to sample (RSS and CPU): the gateway, or nginx's master + workers.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Number of clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Percentage of clients that use WebSocket (the rest use SSE).
    #[arg(long, default_value_t = 50)]
    ws_percent: usize,
    /// Churn rate during the measurement (simulator events/s).
    #[arg(long, default_value_t = 10.0)]
    events: f64,
    /// Measurement length in seconds (upstream mode: the counting window).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Source addresses 127.0.0.2 … 127.0.0.(1+sources), round robin
    /// (the gateway allows 2 000 streams per IP; ephemeral ports are per IP).
    #[arg(long, default_value_t = 16)]
    sources: u8,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Ask for compression: WebSocket clients offer permessage-deflate,
    /// SSE clients send `Accept-Encoding: gzip`; both inflate what arrives.
    #[arg(long)]
    compress: bool,
    /// Label for the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Mode {
    Fanout,
    Upstream,
    /// Reconnect storm: all clients connect at once; time until each holds
    /// a complete snapshot, and the server's peak RSS meanwhile.
    Storm,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Target {
    Gateway,
    Nchan,
}

/// A connect slot, held until the client holds its initial state.
type Permit = tokio::sync::OwnedSemaphorePermit;

// ---------------------------------------------------------------- metrics

/// Histogram bucket width in µs and bucket count (0.1 ms up to 30 s).
const BUCKET_US: i64 = 100;
const BUCKETS: usize = 300_000;

/// A lock-free latency histogram.
struct Hist {
    buckets: Vec<AtomicU64>,
    max_us: AtomicI64,
    n: AtomicU64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicI64::new(0),
            n: AtomicU64::new(0),
        }
    }
    fn record(&self, us: i64) {
        let us = us.max(0);
        let b = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        self.n.fetch_add(1, Ordering::Relaxed);
    }
    /// Percentile in ms (upper edge of the bucket).
    fn pct(&self, p: f64) -> f64 {
        let n = self.n.load(Ordering::Relaxed);
        if n == 0 {
            return f64::NAN;
        }
        let want = ((n as f64) * p / 100.0).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            if acc >= want {
                return ((i as i64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        f64::NAN
    }
    fn summary(&self) -> Value {
        json!({
            "n": self.n.load(Ordering::Relaxed),
            "p50_ms": self.pct(50.0), "p95_ms": self.pct(95.0), "p99_ms": self.pct(99.0),
            "p999_ms": self.pct(99.9),
            "max_ms": self.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        })
    }
}

/// Shared by every client task.
struct Shared {
    /// Agent id → index in the per-client arrays.
    index: HashMap<String, usize>,
    /// Recording window open.
    recording: AtomicBool,
    /// Emission → arrival.
    e2e: Hist,
    /// nchan relay publish → arrival.
    fanout: Hist,
    /// Changes applied during the window.
    deliveries: AtomicU64,
    /// Messages (deltas) received during the window.
    messages: AtomicU64,
    /// Message bytes (inflated text) read during the window.
    bytes: AtomicU64,
    /// Bytes read off the sockets during the window (compressed or not).
    wire_bytes: AtomicU64,
    /// Sum over clients of the socket bytes read until the snapshot was complete.
    snapshot_wire_bytes: AtomicU64,
    /// Sum over clients of the snapshot's text bytes.
    snapshot_text_bytes: AtomicU64,
    /// Time from the start until each client held its snapshot (storm).
    ready_at: Hist,
    /// Start of the storm.
    t0: Instant,
    /// Clients holding their initial state.
    ready: AtomicUsize,
    /// Clients whose stream ended or failed.
    failed: AtomicUsize,
    /// Last failure reasons (a few).
    errors: Mutex<Vec<String>>,
}

/// One agent as a client holds it (enough to compare with `/sim/state`).
#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct AgentSt {
    presence: u8,
    routing: u8,
    presence_since: i64,
    routing_since: i64,
}

/// One client's copy of the world.
#[derive(Default)]
struct ClientState {
    /// Socket bytes read so far.
    wire: u64,
    agents: Vec<AgentSt>,
    last_seq: u64,
    gaps: u64,
    deltas: u64,
    snapshots: u64,
    done: Option<String>,
}

const PRESENCES: [&str; 11] = [
    "AVAILABLE",
    "AWAY",
    "BUSY",
    "OFFLINE",
    "IDLE",
    "ON_QUEUE",
    "MEAL",
    "TRAINING",
    "MEETING",
    "BREAK",
    "UNKNOWN",
];
const ROUTINGS: [&str; 5] = [
    "OFF_QUEUE",
    "IDLE",
    "INTERACTING",
    "NOT_RESPONDING",
    "COMMUNICATING",
];

fn code(list: &[&str], s: &str) -> u8 {
    list.iter().position(|x| *x == s).map_or(254, |i| i as u8)
}

/// `2024-06-01T09:00:00.000Z` → ms since the Unix epoch (fixed format, fast).
fn iso_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let ms = if b.len() >= 23 && b[19] == b'.' {
        n(20..23)?
    } else {
        0
    };
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

// ---------------------------------------------------------------- messages

#[derive(Deserialize)]
struct PresenceLite<'a> {
    #[serde(rename = "systemPresence", borrow)]
    system_presence: &'a str,
    #[serde(borrow)]
    since: &'a str,
}

#[derive(Deserialize)]
struct RoutingLite<'a> {
    #[serde(borrow)]
    status: &'a str,
    #[serde(borrow)]
    since: &'a str,
}

#[derive(Deserialize)]
struct AgentLite<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    presence: Option<PresenceLite<'a>>,
    #[serde(rename = "routingStatus", borrow)]
    routing_status: Option<RoutingLite<'a>>,
    #[serde(default, borrow)]
    origin: Option<&'a str>,
}

#[derive(Deserialize)]
struct MsgLite<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    seq: u64,
    #[serde(rename = "pubAtUs", default)]
    pub_at_us: Option<i64>,
    #[serde(default, borrow)]
    changes: Vec<AgentLite<'a>>,
    #[serde(default, borrow)]
    agents: Vec<AgentLite<'a>>,
    #[serde(default, borrow)]
    removed: Vec<&'a str>,
}

fn agent_st(a: &AgentLite) -> AgentSt {
    let (presence, presence_since) = a.presence.as_ref().map_or((255, 0), |p| {
        (
            code(&PRESENCES, p.system_presence),
            iso_ms(p.since).unwrap_or(0),
        )
    });
    let (routing, routing_since) = a.routing_status.as_ref().map_or((255, 0), |r| {
        (code(&ROUTINGS, r.status), iso_ms(r.since).unwrap_or(0))
    });
    AgentSt {
        presence,
        routing,
        presence_since,
        routing_since,
    }
}

/// Applies one message (snapshot or delta) to a client's state and records
/// latencies. Returns false when the message was not JSON we understand.
fn apply(shared: &Shared, st: &mut ClientState, text: &[u8], arrival_us: i64) -> bool {
    let Ok(m) = serde_json::from_slice::<MsgLite>(text) else {
        return false;
    };
    let rec = shared.recording.load(Ordering::Relaxed);
    match m.kind {
        "snapshot" => {
            st.agents = vec![AgentSt::default(); shared.index.len()];
            for a in &m.agents {
                if let Some(&i) = shared.index.get(a.id) {
                    st.agents[i] = agent_st(a);
                }
            }
            st.last_seq = m.seq;
            if st.deltas == 0 && st.snapshots == 0 {
                shared
                    .ready_at
                    .record(shared.t0.elapsed().as_micros() as i64);
                shared
                    .snapshot_wire_bytes
                    .fetch_add(st.wire, Ordering::Relaxed);
                shared
                    .snapshot_text_bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
            }
            st.snapshots += 1;
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        "delta" => {
            if st.last_seq != 0 && m.seq > st.last_seq + 1 {
                st.gaps += m.seq - st.last_seq - 1;
            }
            if m.seq > st.last_seq {
                st.last_seq = m.seq;
            }
            st.deltas += 1;
            for c in &m.changes {
                let s = agent_st(c);
                if let Some(&i) = shared.index.get(c.id) {
                    if i < st.agents.len() {
                        st.agents[i] = s;
                    }
                }
                if rec {
                    if c.origin == Some("event") {
                        let emitted_ms = s.presence_since.max(s.routing_since);
                        shared.e2e.record(arrival_us - emitted_ms * 1000);
                    }
                    if let Some(p) = m.pub_at_us {
                        shared.fanout.record(arrival_us - p);
                    }
                }
            }
            for id in &m.removed {
                if let Some(&i) = shared.index.get(*id) {
                    if i < st.agents.len() {
                        st.agents[i] = AgentSt::default();
                    }
                }
            }
            if rec {
                shared.messages.fetch_add(1, Ordering::Relaxed);
                shared
                    .deliveries
                    .fetch_add(m.changes.len() as u64, Ordering::Relaxed);
            }
        }
        _ => {}
    }
    true
}

// ---------------------------------------------------------------- transports

/// Opens a TCP connection from 127.0.0.(2 + k % sources).
async fn connect_from(dst: SocketAddr, k: usize, sources: u8) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if dst.ip().is_loopback() && sources > 0 {
        let src = Ipv4Addr::new(127, 0, 0, 2 + (k % sources as usize) as u8);
        sock.bind(SocketAddr::V4(SocketAddrV4::new(src, 0)))?;
    }
    let s = sock.connect(dst).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Reads until the end of the HTTP response head; returns (status, head,
/// leftover body bytes).
async fn read_head(s: &mut TcpStream, buf: &mut BytesMut) -> anyhow::Result<(u16, String)> {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            buf.advance(p + 4);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| anyhow!("bad status line"))?;
            return Ok((status, head));
        }
        if s.read_buf(buf).await? == 0 {
            bail!("connection closed before the response head");
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One WebSocket client: handshake, then read frames until the stop flag.
#[allow(clippy::too_many_arguments)]
async fn ws_client(
    mut s: TcpStream,
    host: &str,
    path: &str,
    shared: &Shared,
    st: &Mutex<ClientState>,
    mut permit: Option<Permit>,
    ready_on_handshake: bool,
    compress: bool,
) -> anyhow::Result<()> {
    let ext = if compress {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let (status, head) = read_head(&mut s, &mut buf).await?;
    if status != 101 {
        bail!("websocket handshake answered {status}");
    }
    let deflate =
        header(&head, "sec-websocket-extensions").is_some_and(|v| v.contains("permessage-deflate"));
    if compress && !deflate {
        bail!("permessage-deflate asked for but not negotiated");
    }
    let mut inflater = flate2::Decompress::new(false);
    let mut compressed = false;
    let mut plain: Vec<u8> = Vec::new();
    st.lock().wire += buf.len() as u64;
    if ready_on_handshake {
        shared.ready.fetch_add(1, Ordering::Relaxed);
        permit = None;
    }
    let mut msg: Vec<u8> = Vec::new();
    loop {
        // Parse every complete frame in the buffer.
        let arrival = now_us();
        loop {
            if buf.len() < 2 {
                break;
            }
            let fin = buf[0] & 0x80 != 0;
            let op = buf[0] & 0x0f;
            let masked = buf[1] & 0x80 != 0;
            let (len, hl) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(a) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            let hl = hl + if masked { 4 } else { 0 };
            if buf.len() < hl + len {
                buf.reserve(hl + len - buf.len());
                break;
            }
            let payload = buf[hl..hl + len].to_vec();
            if op != 0 && op < 8 {
                compressed = buf[0] & 0x40 != 0;
            }
            buf.advance(hl + len);
            match op {
                0x0..=0x2 => {
                    msg.extend_from_slice(&payload);
                    if fin && compressed {
                        // permessage-deflate, no context takeover: each
                        // message inflates on its own.
                        msg.extend_from_slice(&[0, 0, 0xff, 0xff]);
                        inflater.reset(false);
                        plain.clear();
                        plain.reserve(msg.len() * 8 + 4096);
                        loop {
                            let at = inflater.total_in() as usize;
                            inflater
                                .decompress_vec(
                                    &msg[at..],
                                    &mut plain,
                                    flate2::FlushDecompress::Sync,
                                )
                                .context("inflate")?;
                            if inflater.total_in() as usize >= msg.len()
                                && plain.len() < plain.capacity()
                            {
                                break;
                            }
                            plain.reserve(plain.capacity());
                        }
                        std::mem::swap(&mut msg, &mut plain);
                    }
                    if fin {
                        if shared.recording.load(Ordering::Relaxed) {
                            shared.bytes.fetch_add(msg.len() as u64, Ordering::Relaxed);
                        }
                        apply(shared, &mut st.lock(), &msg, arrival);
                        if permit.is_some() && !st.lock().agents.is_empty() {
                            permit = None;
                        }
                        msg.clear();
                        if msg.capacity() > 65536 {
                            msg = Vec::new();
                        }
                    }
                }
                0x8 => {
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        0
                    };
                    bail!(
                        "closed by server: {code} {}",
                        String::from_utf8_lossy(payload.get(2..).unwrap_or_default())
                    );
                }
                0x9 => {
                    // Pong with the ping's payload; client frames are masked (key 0).
                    let mut f = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    f.extend_from_slice(&payload);
                    s.write_all(&f).await?;
                }
                _ => {}
            }
        }
        if buf.capacity() > 256 * 1024 && buf.is_empty() {
            buf = BytesMut::with_capacity(4096);
        }
        let n = s.read_buf(&mut buf).await?;
        if n == 0 {
            bail!("connection closed");
        }
        count_wire(shared, st, n);
    }
}

/// Accounts bytes read off a socket.
fn count_wire(shared: &Shared, st: &Mutex<ClientState>, n: usize) {
    st.lock().wire += n as u64;
    if shared.recording.load(Ordering::Relaxed) {
        shared.wire_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One SSE client: GET, then parse `data:` events (chunked or not).
#[allow(clippy::too_many_arguments)]
async fn sse_client(
    mut s: TcpStream,
    host: &str,
    path: &str,
    shared: &Shared,
    st: &Mutex<ClientState>,
    mut permit: Option<Permit>,
    ready_on_handshake: bool,
    compress: bool,
) -> anyhow::Result<()> {
    let ae = if compress {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{ae}\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = BytesMut::with_capacity(4096);
    let (status, head) = read_head(&mut s, &mut raw).await?;
    if status != 200 {
        bail!("SSE answered {status}");
    }
    let gzip = header(&head, "content-encoding").is_some_and(|v| v.contains("gzip"));
    // One gzip stream per connection, inflated as it arrives.
    let mut gz = gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
    let mut zbody = BytesMut::new();
    st.lock().wire += raw.len() as u64;
    if ready_on_handshake {
        shared.ready.fetch_add(1, Ordering::Relaxed);
        permit = None;
    }
    let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut body = BytesMut::with_capacity(4096);
    let mut data: Vec<u8> = Vec::new();
    loop {
        let arrival = now_us();
        // De-chunk what we have.
        if chunked {
            while let Some(p) = raw.windows(2).position(|w| w == b"\r\n") {
                let size_str = std::str::from_utf8(&raw[..p]).unwrap_or("");
                let size =
                    usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| anyhow!("bad chunk size {size_str:?}"))?;
                if size == 0 {
                    bail!("stream ended");
                }
                if raw.len() < p + 2 + size + 2 {
                    break;
                }
                if gz.is_some() {
                    zbody.extend_from_slice(&raw[p + 2..p + 2 + size]);
                } else {
                    body.extend_from_slice(&raw[p + 2..p + 2 + size]);
                }
                raw.advance(p + 2 + size + 2);
            }
        } else if gz.is_some() {
            zbody.extend_from_slice(&raw);
            raw.clear();
        } else {
            body.extend_from_slice(&raw);
            raw.clear();
        }
        if let Some(d) = gz.as_mut() {
            use std::io::Write as _;
            d.write_all(&zbody).context("gunzip")?;
            d.flush().context("gunzip")?;
            zbody.clear();
            body.extend_from_slice(d.get_ref());
            d.get_mut().clear();
        }
        // Dispatch complete lines.
        while let Some(p) = body.iter().position(|&c| c == b'\n') {
            let line = &body[..p];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if !data.is_empty() {
                    if shared.recording.load(Ordering::Relaxed) {
                        shared.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    apply(shared, &mut st.lock(), &data, arrival);
                    if permit.is_some() && !st.lock().agents.is_empty() {
                        permit = None;
                    }
                    data.clear();
                    if data.capacity() > 65536 {
                        data = Vec::new();
                    }
                }
            } else if let Some(d) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
            }
            body.advance(p + 1);
        }
        if raw.capacity() > 256 * 1024 && raw.is_empty() {
            raw = BytesMut::with_capacity(4096);
        }
        let n = s.read_buf(&mut raw).await?;
        if n == 0 {
            bail!("connection closed");
        }
        count_wire(shared, st, n);
    }
}

// ---------------------------------------------------------------- HTTP helpers

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    let b = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = BytesMut::new();
    let (status, head) = read_head(&mut s, &mut buf).await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    buf.extend_from_slice(&rest);
    let body = if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut r = &buf[..];
        while let Some(p) = r.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(std::str::from_utf8(&r[..p])?.trim(), 16)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&r[p + 2..p + 2 + n]);
            r = &r[p + 2 + n + 2..];
        }
        out
    } else {
        buf.to_vec()
    };
    Ok((status, body))
}

async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let (st, body) = http(addr, "GET", path, None).await?;
    if st != 200 {
        bail!("GET {path}: {st} {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn set_churn(sim: SocketAddr, eps: f64) -> anyhow::Result<()> {
    let (st, body) = http(
        sim,
        "POST",
        "/sim/churn",
        Some(&json!({ "eventsPerSecond": eps }).to_string()),
    )
    .await?;
    if st != 200 {
        bail!("POST /sim/churn: {st} {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

async fn api_requests(sim: SocketAddr) -> anyhow::Result<u64> {
    let v = get_json(sim, "/sim/stats").await?;
    v["counters"]["apiRequests"]
        .as_u64()
        .ok_or_else(|| anyhow!("no counters.apiRequests in /sim/stats: {v}"))
}

// ---------------------------------------------------------------- /proc

/// Sum of VmRSS (KiB) over pids.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

/// Sum of utime + stime (clock ticks, 100 Hz on Linux x86-64) over pids.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // Fields after the ")" of comm: state is field 3, utime 14, stime 15.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn self_cpu_ticks() -> u64 {
    cpu_ticks(&[std::process::id()])
}

// ---------------------------------------------------------------- nchan relay

/// Subscribes once to the gateway (WebSocket) and republishes every delta to
/// nchan's publisher endpoint, with `"pubAtUs"` inserted first.
async fn relay(gw: SocketAddr, nchan: SocketAddr, published: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut gws = TcpStream::connect(gw).await?;
    gws.set_nodelay(true)?;
    let req = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: {gw}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    gws.write_all(req.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(65536);
    let (status, _) = read_head(&mut gws, &mut buf).await?;
    if status != 101 {
        bail!("relay handshake: {status}");
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    // Publisher: one keep-alive connection, one POST at a time.
    let publisher = tokio::spawn(async move {
        let mut ps = TcpStream::connect(nchan).await?;
        ps.set_nodelay(true)?;
        let mut rb = BytesMut::with_capacity(4096);
        while let Some(delta) = rx.recv().await {
            let mut body = format!("{{\"pubAtUs\":{},", now_us()).into_bytes();
            body.extend_from_slice(&delta[1..]);
            let head = format!(
                "POST /pub/bench HTTP/1.1\r\nHost: {nchan}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            ps.write_all(head.as_bytes()).await?;
            ps.write_all(&body).await?;
            let (st, h) = read_head(&mut ps, &mut rb).await?;
            let len: usize = header(&h, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while rb.len() < len {
                if ps.read_buf(&mut rb).await? == 0 {
                    bail!("nchan closed the publisher connection");
                }
            }
            rb.advance(len);
            if !(200..300).contains(&st) {
                bail!("nchan publish answered {st}");
            }
            published.fetch_add(1, Ordering::Relaxed);
        }
        anyhow::Ok(())
    });
    let mut msg = Vec::new();
    loop {
        while buf.len() >= 2 {
            let fin = buf[0] & 0x80 != 0;
            let op = buf[0] & 0x0f;
            let (len, hl) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(a) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < hl + len {
                break;
            }
            let payload = buf[hl..hl + len].to_vec();
            buf.advance(hl + len);
            match op {
                0 | 1 => {
                    msg.extend_from_slice(&payload);
                    if fin {
                        if msg.starts_with(br#"{"type":"delta""#) {
                            tx.send(std::mem::take(&mut msg))?;
                        }
                        msg.clear();
                    }
                }
                9 => {
                    let mut f = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    f.extend_from_slice(&payload);
                    gws.write_all(&f).await?;
                }
                8 => bail!("gateway closed the relay"),
                _ => {}
            }
        }
        if publisher.is_finished() {
            return publisher.await?;
        }
        if gws.read_buf(&mut buf).await? == 0 {
            bail!("gateway closed the relay");
        }
    }
}

// ---------------------------------------------------------------- main flow

struct Clients {
    states: Vec<Arc<Mutex<ClientState>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Opens `n` clients and waits (up to `deadline`) until every one holds its
/// initial state (gateway: snapshot; nchan: the subscribe answer + the
/// shared initial map).
async fn open_clients(
    a: &Args,
    shared: &Arc<Shared>,
    n: usize,
    initial: Option<(Vec<AgentSt>, u64)>,
) -> anyhow::Result<Clients> {
    let sem = Arc::new(tokio::sync::Semaphore::new(a.connect_concurrency));
    let mut states = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let st = Arc::new(Mutex::new(ClientState::default()));
        if let Some((agents, seq)) = &initial {
            let mut g = st.lock();
            g.agents = agents.clone();
            g.last_seq = *seq;
        }
        states.push(st.clone());
        let shared = shared.clone();
        let sem = sem.clone();
        let ws = (k * 100 / n.max(1)) < a.ws_percent;
        let (dst, path) = match a.target {
            Target::Gateway => (
                a.gateway,
                if ws { "/api/v1/ws" } else { "/api/v1/stream" }.to_string(),
            ),
            // unwrap-free: checked in main.
            Target::Nchan => (a.nchan.unwrap_or(a.gateway), "/sub/bench".to_string()),
        };
        let nchan = a.target == Target::Nchan;
        let sources = a.sources;
        let compress = a.compress;
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.ok();
            let host = dst.to_string();
            let res = async {
                let s = connect_from(dst, k, sources).await.context("connect")?;
                // nchan sends no snapshot: a client is ready once subscribed.
                if ws {
                    ws_client(s, &host, &path, &shared, &st, permit, nchan, compress).await
                } else {
                    sse_client(s, &host, &path, &shared, &st, permit, nchan, compress).await
                }
            }
            .await;
            if let Err(e) = res {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let mut errs = shared.errors.lock();
                if errs.len() < 5 {
                    errs.push(format!("{e:#}"));
                }
                st.lock().done = Some(format!("{e:#}"));
            }
        }));
    }
    let t0 = Instant::now();
    let deadline = Duration::from_secs(120 + n as u64 / 100);
    loop {
        let ready = shared.ready.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        if ready + failed >= n {
            break;
        }
        if t0.elapsed() > deadline {
            eprintln!("loadgen: only {ready}/{n} clients ready after {deadline:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "loadgen: {} clients ready, {} failed in {:.1}s",
        shared.ready.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    );
    Ok(Clients { states, tasks })
}

/// Ground truth from `/sim/state`, in the clients' layout.
fn truth(v: &Value, index: &HashMap<String, usize>) -> Vec<AgentSt> {
    let mut out = vec![AgentSt::default(); index.len()];
    for u in v["users"].as_array().into_iter().flatten() {
        let Some(&i) = u["id"].as_str().and_then(|id| index.get(id)) else {
            continue;
        };
        out[i] = AgentSt {
            presence: code(
                &PRESENCES,
                u["presence"]["systemPresence"].as_str().unwrap_or(""),
            ),
            routing: code(
                &ROUTINGS,
                u["routingStatus"]["status"].as_str().unwrap_or(""),
            ),
            presence_since: u["presence"]["modifiedDate"]
                .as_str()
                .and_then(iso_ms)
                .unwrap_or(0),
            routing_since: u["routingStatus"]["startTime"]
                .as_str()
                .and_then(iso_ms)
                .unwrap_or(0),
        };
    }
    out
}

async fn fanout(a: Args) -> anyhow::Result<Value> {
    let sim_state = get_json(a.sim, "/sim/state").await?;
    let index: HashMap<String, usize> = sim_state["users"]
        .as_array()
        .ok_or_else(|| anyhow!("/sim/state has no users"))?
        .iter()
        .enumerate()
        .filter_map(|(i, u)| Some((u["id"].as_str()?.to_string(), i)))
        .collect();
    let shared = Arc::new(Shared {
        index,
        recording: AtomicBool::new(false),
        e2e: Hist::new(),
        fanout: Hist::new(),
        deliveries: AtomicU64::new(0),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        wire_bytes: AtomicU64::new(0),
        snapshot_wire_bytes: AtomicU64::new(0),
        snapshot_text_bytes: AtomicU64::new(0),
        ready_at: Hist::new(),
        t0: Instant::now(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        errors: Mutex::new(Vec::new()),
    });
    set_churn(a.sim, 0.0).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // nchan: start the relay, and take the initial map from the gateway.
    let published = Arc::new(AtomicU64::new(0));
    let mut relay_task = None;
    let mut initial = None;
    if a.target == Target::Nchan {
        let nchan = a
            .nchan
            .ok_or_else(|| anyhow!("--target nchan needs --nchan"))?;
        relay_task = Some(tokio::spawn(relay(a.gateway, nchan, published.clone())));
        let snap = get_json(a.gateway, "/api/v1/agents").await?;
        let mut agents = vec![AgentSt::default(); shared.index.len()];
        for u in snap["agents"].as_array().into_iter().flatten() {
            let a: AgentLite = AgentLite::deserialize(u)?;
            if let Some(&i) = shared.index.get(a.id) {
                agents[i] = agent_st(&a);
            }
        }
        initial = Some((agents, snap["seq"].as_u64().unwrap_or(0)));
    }

    let rss0 = rss_kib(&a.pid);
    let clients = open_clients(&a, &shared, a.clients, initial).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(&a.pid);
    let connected = shared.ready.load(Ordering::Relaxed);
    let per_conn_kib = if connected > 0 {
        (rss1 as f64 - rss0 as f64) / connected as f64
    } else {
        f64::NAN
    };
    eprintln!(
        "loadgen: server RSS {rss0} KiB → {rss1} KiB with {connected} idle clients ({per_conn_kib:.2} KiB each)"
    );

    // Measurement window.
    let failed_before = shared.failed.load(Ordering::Relaxed);
    shared.recording.store(true, Ordering::Relaxed);
    let cpu0 = cpu_ticks(&a.pid);
    let me0 = self_cpu_ticks();
    let t0 = Instant::now();
    set_churn(a.sim, a.events).await?;
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    set_churn(a.sim, 0.0).await?;
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_ticks(&a.pid);
    let me1 = self_cpu_ticks();
    let deliveries = shared.deliveries.load(Ordering::Relaxed);
    let messages = shared.messages.load(Ordering::Relaxed);
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let wire = shared.wire_bytes.load(Ordering::Relaxed);
    // Drain: let everything in flight arrive (recorded too: late is late):
    // at least 3 s, then until every live client has the gateway's last
    // batch (a saturated machine may be seconds behind), at most 60 s.
    let drain0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = get_json(a.gateway, "/api/v1/agents?agent=none")
        .await
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .unwrap_or(0);
    while drain0.elapsed() < Duration::from_secs(60) {
        let behind = clients
            .states
            .iter()
            .filter(|st| {
                let g = st.lock();
                g.done.is_none() && g.last_seq < last
            })
            .count();
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_s = drain0.elapsed().as_secs_f64();
    shared.recording.store(false, Ordering::Relaxed);
    let rss2 = rss_kib(&a.pid);

    // Loss: every client's map vs the simulator.
    let truth_v = get_json(a.sim, "/sim/state").await?;
    let truth = truth(&truth_v, &shared.index);
    let gw_stats = get_json(a.gateway, "/api/v1/agents?agent=none").await.ok();
    let mut wrong_clients = 0usize;
    let mut wrong_agents = 0usize;
    let mut gaps = 0u64;
    let mut dead = 0usize;
    let mut max_seq = 0u64;
    let mut min_seq = u64::MAX;
    for st in &clients.states {
        let g = st.lock();
        if g.done.is_some() {
            dead += 1;
        }
        gaps += g.gaps;
        max_seq = max_seq.max(g.last_seq);
        min_seq = min_seq.min(g.last_seq);
        let bad = g.agents.iter().zip(&truth).filter(|(x, y)| x != y).count()
            + if g.agents.len() != truth.len() {
                truth.len()
            } else {
                0
            };
        if bad > 0 {
            wrong_clients += 1;
            wrong_agents += bad;
        }
    }
    let final_seq = gw_stats
        .as_ref()
        .and_then(|v| v["seq"].as_u64())
        .unwrap_or(0);
    for t in &clients.tasks {
        t.abort();
    }
    if let Some(r) = relay_task {
        r.abort();
    }
    let errors = shared.errors.lock().clone();
    Ok(json!({
        "label": a.label,
        "target": format!("{:?}", a.target).to_lowercase(),
        "clients": a.clients,
        "ws_percent": a.ws_percent,
        "connected": connected,
        "failed_before_window": failed_before,
        "failed_total": shared.failed.load(Ordering::Relaxed),
        "errors": errors,
        "events_per_s_asked": a.events,
        "window_s": window,
        "drain_s": drain_s,
        "deliveries": deliveries,
        "deliveries_per_s": deliveries as f64 / window,
        "messages_per_s": messages as f64 / window,
        "mbytes_per_s": bytes as f64 / window / 1e6,
        "compress": a.compress,
        "wire_mbytes_per_s": wire as f64 / window / 1e6,
        "wire_bytes_per_message": wire as f64 / messages.max(1) as f64,
        "text_bytes_per_message": bytes as f64 / messages.max(1) as f64,
        "snapshot_wire_bytes_avg": shared.snapshot_wire_bytes.load(Ordering::Relaxed) as f64 / connected.max(1) as f64,
        "snapshot_text_bytes_avg": shared.snapshot_text_bytes.load(Ordering::Relaxed) as f64 / connected.max(1) as f64,
        "server_cpu_us_per_message": (cpu1 - cpu0) as f64 * 1e4 / messages.max(1) as f64,
        "server_cpu_us_per_change_delivered": (cpu1 - cpu0) as f64 * 1e4 / deliveries.max(1) as f64,
        "changes_per_s_per_client": deliveries as f64 / window / connected.max(1) as f64,
        "latency_emit_to_client": shared.e2e.summary(),
        "latency_publish_to_client": shared.fanout.summary(),
        "loss": {
            "clients_with_wrong_state": wrong_clients,
            "agent_mismatches": wrong_agents,
            "seq_gaps": gaps,
            "clients_dead": dead,
            "final_seq_gateway": final_seq,
            "client_last_seq_min": if min_seq == u64::MAX { 0 } else { min_seq },
            "client_last_seq_max": max_seq,
            "relay_published": published.load(Ordering::Relaxed),
        },
        "server": {
            "pids": a.pid,
            "rss_before_kib": rss0,
            "rss_idle_kib": rss1,
            "rss_after_kib": rss2,
            "rss_per_idle_conn_kib": per_conn_kib,
            "cpu_percent": (cpu1 - cpu0) as f64 / window,
        },
        "loadgen_cpu_percent": (me1 - me0) as f64 / window,
    }))
}

/// Reconnect storm: churn on, then `clients` connect at once (no connect
/// limit); reports when each held a complete snapshot (all agents of the
/// org), failures, clients still without one at the deadline, and the
/// server's RSS before and at its peak (sampled every 20 ms).
async fn storm(a: Args) -> anyhow::Result<Value> {
    let sim_state = get_json(a.sim, "/sim/state").await?;
    let index: HashMap<String, usize> = sim_state["users"]
        .as_array()
        .ok_or_else(|| anyhow!("/sim/state has no users"))?
        .iter()
        .enumerate()
        .filter_map(|(i, u)| Some((u["id"].as_str()?.to_string(), i)))
        .collect();
    let agents = index.len();
    set_churn(a.sim, a.events).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(&a.pid);
    let cpu0 = cpu_ticks(&a.pid);
    let me0 = self_cpu_ticks();
    let shared = Arc::new(Shared {
        index,
        recording: AtomicBool::new(false),
        e2e: Hist::new(),
        fanout: Hist::new(),
        deliveries: AtomicU64::new(0),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        wire_bytes: AtomicU64::new(0),
        snapshot_wire_bytes: AtomicU64::new(0),
        snapshot_text_bytes: AtomicU64::new(0),
        ready_at: Hist::new(),
        t0: Instant::now(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let peak = Arc::new(AtomicU64::new(rss0));
    let sampler = {
        let (peak, pids) = (peak.clone(), a.pid.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(&pids), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut storm_args = a.clone();
    storm_args.connect_concurrency = a.clients.max(1);
    let clients = open_clients(&storm_args, &shared, a.clients, None).await?;
    let all_ms = shared.t0.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampler.abort();
    let cpu1 = cpu_ticks(&a.pid);
    let me1 = self_cpu_ticks();
    set_churn(a.sim, 0.0).await?;
    let mut complete = 0;
    for st in &clients.states {
        let g = st.lock();
        if g.snapshots > 0 && g.agents.len() == agents {
            complete += 1;
        }
    }
    for t in &clients.tasks {
        t.abort();
    }
    Ok(json!({
        "label": a.label,
        "clients": a.clients,
        "ws_percent": a.ws_percent,
        "agents": agents,
        "events_per_s": a.events,
        "compress": a.compress,
        "complete": complete,
        "failed": shared.failed.load(Ordering::Relaxed),
        "errors": shared.errors.lock().clone(),
        "time_to_all_complete_ms": all_ms,
        "time_to_complete": shared.ready_at.summary(),
        "snapshot_text_bytes_avg": shared.snapshot_text_bytes.load(Ordering::Relaxed) as f64 / complete.max(1) as f64,
        "snapshot_wire_bytes_avg": shared.snapshot_wire_bytes.load(Ordering::Relaxed) as f64 / complete.max(1) as f64,
        "server": {
            "rss_before_kib": rss0,
            "rss_peak_kib": peak.load(Ordering::Relaxed),
            "cpu_s": (cpu1 - cpu0) as f64 / 100.0,
        },
        "loadgen_cpu_s": (me1 - me0) as f64 / 100.0,
    }))
}

async fn upstream(a: Args) -> anyhow::Result<Value> {
    let sim_state = get_json(a.sim, "/sim/state").await?;
    let index: HashMap<String, usize> = sim_state["users"]
        .as_array()
        .ok_or_else(|| anyhow!("/sim/state has no users"))?
        .iter()
        .enumerate()
        .filter_map(|(i, u)| Some((u["id"].as_str()?.to_string(), i)))
        .collect();
    let shared = Arc::new(Shared {
        index,
        recording: AtomicBool::new(false),
        e2e: Hist::new(),
        fanout: Hist::new(),
        deliveries: AtomicU64::new(0),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        wire_bytes: AtomicU64::new(0),
        snapshot_wire_bytes: AtomicU64::new(0),
        snapshot_text_bytes: AtomicU64::new(0),
        ready_at: Hist::new(),
        t0: Instant::now(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let clients = open_clients(&a, &shared, a.clients, None).await?;
    set_churn(a.sim, a.events).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r0 = api_requests(a.sim).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    let r1 = api_requests(a.sim).await?;
    let window = t0.elapsed().as_secs_f64();
    set_churn(a.sim, 0.0).await?;
    for t in &clients.tasks {
        t.abort();
    }
    Ok(json!({
        "label": a.label,
        "clients": a.clients,
        "connected": shared.ready.load(Ordering::Relaxed),
        "events_per_s": a.events,
        "window_s": window,
        "api_requests": r1 - r0,
        "api_requests_per_min": (r1 - r0) as f64 * 60.0 / window,
    }))
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        match a.mode {
            Mode::Fanout => fanout(a.clone()).await,
            Mode::Upstream => upstream(a.clone()).await,
            Mode::Storm => storm(a.clone()).await,
        }
    })?;
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(p) = &a.json {
        std::fs::write(p, &text)?;
    }
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}
