//! Scale-out on Redis (issue 20): a real `redis-server` started here on a
//! free port with persistence off, the simulator in-process, and three
//! gateway processes (`presence-gateway serve --config`, each with its own
//! config file and SQLite store) joined through `[cluster] redis_url`.
//!
//! What is proved, one test each: one node holds Genesys (the simulator
//! sees one client's channels); a change reaches every node, byte for byte
//! the same deltas; a resume point taken on one node is honoured on
//! another; SIGKILL of the leader hands over within the lease and the
//! survivors' clients keep their stream without a gap; a write sent to a
//! follower reaches Genesys once and is audited with the follower's node
//! id; Redis killed and started again, every node converges and is ready.
//!
//! Without `redis-server` (Debian's `redis-server` package; `.ci/run`
//! installs it) the tests are skipped with a loud message, unless `CI` is
//! set: then they fail. The tests run one at a time (each starts three
//! gateways on a 2-core machine, and a starved leader loses its lease).
//! A failing test prints the tail of every node's and Redis's log.

mod e2e;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{client, get, post, try_get, wait_until, Child};
use futures_util::{SinkExt, StreamExt};
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use serde_json::{json, Value};

/// `[cluster] lease_ms` of every node: short, so failover tests are quick.
const LEASE_MS: u64 = 1500;
/// Node ids (`[cluster] node_id`), one gateway process each.
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// Agents in the simulated org.
const AGENTS: usize = 20;
/// Deadline for convergence and readiness (a loaded 2-core machine).
const SETTLE: Duration = Duration::from_secs(30);
/// The simulator's route for a single presence write.
const PATCH_ROUTE: &str = "PATCH users/{id}/presences/purecloud";

/// One cluster at a time in this binary (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------- Redis

/// Whether `redis-server` can be run; `false` (after a loud message) only
/// when `CI` is unset, else a panic.
fn redis_installed() -> bool {
    let ok = std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and redis-server is not installed (Debian: apt-get install redis-server; .ci/run does)");
    }
    eprintln!(
        "\n!!! SKIPPED {}: redis-server is not installed. Install Debian's `redis-server` \
         (.ci/run does). In CI this fails.\n",
        module_path!()
    );
    false
}

/// A port nobody listens on right now (bound on `:0`, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `PING` over RESP: `Ok` once the server answers `+PONG`.
async fn ping(port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"PING\r\n").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
        .await
        .map_err(|_| "no answer to PING".to_string())?
        .map_err(|e| e.to_string())?;
    if buf[..n].starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "PING answered {:?}",
            String::from_utf8_lossy(&buf[..n])
        ))
    }
}

/// A `redis-server` of this test: its own port and directory, nothing
/// saved (`--save '' --appendonly no`), killed on drop.
struct Redis {
    /// The port, kept across a restart.
    port: u16,
    /// Working directory and `redis.log`.
    dir: PathBuf,
    /// The running server; `None` while it is killed.
    child: Option<Child>,
}

impl Redis {
    async fn start(dir: PathBuf) -> Redis {
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = Redis {
            port: free_port(),
            dir,
            child: None,
        };
        r.launch().await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Starts the server on `self.port` and waits until it answers.
    async fn launch(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let mut child = Child(child);
        let port = self.port;
        let log = self.log();
        wait_until(Duration::from_secs(10), "redis-server answers PING", || {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!(
                    "redis-server exited ({status}) on port {port}:\n{}",
                    tail(&log, 20)
                );
            }
            ping(port)
        })
        .await;
        self.child = Some(child);
    }

    /// SIGKILL, reaped.
    fn kill(&mut self) {
        self.child = None;
    }
}

// ---------------------------------------------------------------- nodes

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One gateway process of the cluster.
struct Node {
    /// `[cluster] node_id`.
    id: String,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// The process (SIGKILLed on drop).
    child: Child,
}

impl Node {
    /// Writes the node's config (its own store, the shared Redis) and
    /// starts `serve --config` with stderr to `<dir>/<id>/stderr.log`.
    async fn spawn(
        dir: &Path,
        id: &str,
        sim: &SimHandle,
        sim_cfg: &SimConfig,
        redis: &str,
    ) -> Node {
        let home = dir.join(id);
        std::fs::create_dir_all(&home).expect("node dir");
        let config = home.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:0"
workers = 1
drain_secs = 5
drain_spread_secs = 1

[genesys]
api_base = "{api}"
client_id = "{client_id}"
client_secret = "{client_secret}"

[upstream]
ping_after_secs = 0.6
pong_timeout_secs = 0.6
backoff_initial_ms = 50
backoff_max_ms = 500

[store]
path = "{store}"

[log]
level = "info"

[cluster]
redis_url = "{redis}"
node_id = "{id}"
lease_ms = {LEASE_MS}
"#,
                api = sim.base_url(),
                client_id = sim_cfg.client_id,
                client_secret = sim_cfg.client_secret,
                store = home.join("store.db").display(),
            ),
        )
        .expect("node config");
        let (child, base) = spawn_logged(&config, &home.join("stderr.log")).await;
        Node {
            id: id.to_string(),
            base,
            child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `None` while the process runs, else its exit code (-1: a signal).
    fn exited(&mut self) -> Option<i32> {
        self.child
            .0
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))
    }
}

/// `e2e::spawn_gateway`, but stderr goes to `log` (printed when a test
/// fails) and a process that exits before its `READY` line fails at once;
/// readiness is waited for by the caller, for all nodes together.
async fn spawn_logged(config: &Path, log: &Path) -> (Child, String) {
    use std::io::BufRead;
    let stderr = std::fs::File::create(log).expect("log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_presence-gateway"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("gateway binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut child = Child(child);
    let base = wait_until(Duration::from_secs(30), "READY line", || {
        let got = rx.try_recv();
        if got.is_err() {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("gateway exited before READY ({status}):\n{}", tail(log, 30));
            }
        }
        async move {
            match got {
                Ok(line) => match line.strip_prefix("READY gateway=") {
                    Some(url) => Ok(url.trim().to_string()),
                    None => Err(format!("line {line:?}")),
                },
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    (child, base)
}

/// `/readyz` as (status, body), for 200 and 503 alike.
async fn readyz(base: &str) -> Result<(u16, Value), String> {
    let mut r = client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let code = r.status().as_u16();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    Ok((code, v))
}

/// (`epoch`, `seq`) of a node's `GET /api/v1/agents`.
async fn point(base: &str) -> Result<(u64, u64), String> {
    let v = try_get(format!("{base}/api/v1/agents")).await?;
    match (v["epoch"].as_u64(), v["seq"].as_u64()) {
        (Some(e), Some(s)) => Ok((e, s)),
        _ => Err(format!("no epoch/seq in {v}")),
    }
}

/// Differences between a node's agents and the simulator's truth.
async fn diff(sim: &str, base: &str) -> Result<(), String> {
    e2e::diff_urls(sim, base).await
}

/// Prints the tail of every log when the test fails.
struct LogsOnPanic(Vec<(String, PathBuf)>);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, path) in &self.0 {
                eprintln!(
                    "\n----- {name}: {} -----\n{}",
                    path.display(),
                    tail(path, 60)
                );
            }
        }
    }
}

/// Redis, the simulator and three nodes. Fields drop in order: logs first
/// (while the files exist), the directory last.
struct Cluster {
    _logs: LogsOnPanic,
    nodes: Vec<Node>,
    redis: Redis,
    sim: SimHandle,
    _dir: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts everything and waits until every node is ready under one
    /// leader; `None` when redis-server is not installed (and CI unset).
    async fn start() -> Option<Cluster> {
        let serial = SERIAL.lock().await;
        if !redis_installed() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start(dir.path().join("redis")).await;
        let sim_cfg = SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            agents: AGENTS,
            heartbeat_secs: 0.2,
            socket_closing_grace_secs: 0.5,
            ..SimConfig::default()
        };
        let sim = simulator::start(sim_cfg.clone())
            .await
            .expect("simulator starts");
        let mut logs = vec![("redis".to_string(), redis.log())];
        let mut nodes = Vec::new();
        for id in NODES {
            logs.push((id.to_string(), dir.path().join(id).join("stderr.log")));
            nodes.push(Node::spawn(dir.path(), id, &sim, &sim_cfg, &redis.url()).await);
        }
        let c = Cluster {
            _logs: LogsOnPanic(logs),
            nodes,
            redis,
            sim,
            _dir: dir,
            _serial: serial,
        };
        c.all_ready(SETTLE).await;
        let sim = c.sim.base_url();
        for n in &c.nodes {
            wait_until(SETTLE, "start-up: the node equals /sim/state", || {
                diff(&sim, &n.base)
            })
            .await;
        }
        Some(c)
    }

    fn sim_url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// Waits until every node answers `/readyz` 200 and all name the
    /// same leader, which is one of them and the only one with role
    /// `leader`; returns the leader's index.
    async fn all_ready(&self, deadline: Duration) -> usize {
        let idx: Vec<usize> = (0..self.nodes.len()).collect();
        self.ready_among(&idx, deadline).await
    }

    /// [`Self::all_ready`] over the nodes at `idx`.
    async fn ready_among(&self, idx: &[usize], deadline: Duration) -> usize {
        wait_until(deadline, "every node ready under one leader", || async {
            let mut leaders = Vec::new();
            let mut named = std::collections::BTreeSet::new();
            for &i in idx {
                let n = &self.nodes[i];
                let (code, b) = readyz(&n.base).await?;
                if code != 200 {
                    return Err(format!("{}: readyz {code} {b}", n.id));
                }
                if b["role"] == "leader" {
                    leaders.push(i);
                }
                named.insert(b["cluster"]["leader"].to_string());
            }
            match leaders.as_slice() {
                [l] if named.len() == 1
                    && named.contains(&Value::from(self.nodes[*l].id.as_str()).to_string()) =>
                {
                    Ok(*l)
                }
                _ => Err(format!("leaders {leaders:?}, named {named:?}")),
            }
        })
        .await
    }

    /// Sets one agent's presence at the simulator, as Genesys would.
    async fn change(&self, id: &str, to: &str) {
        post(
            self.sim_url(&format!("/sim/users/{id}/presence")),
            json!({"systemPresence": to}),
        )
        .await;
    }

    /// Waits until each node at `idx` equals `/sim/state` and all report
    /// the same (`epoch`, `seq`); returns that point.
    async fn converged(&self, idx: &[usize], what: &str) -> (u64, u64) {
        let sim = self.sim.base_url();
        wait_until(SETTLE, what, || async {
            let mut points = std::collections::BTreeSet::new();
            for &i in idx {
                diff(&sim, &self.nodes[i].base).await?;
                points.insert(point(&self.nodes[i].base).await?);
            }
            match points.len() {
                1 => Ok(points.into_iter().next().unwrap_or_default()),
                _ => Err(format!("nodes at different points {points:?}")),
            }
        })
        .await
    }

    async fn stop(self) {
        let Cluster { nodes, sim, .. } = self;
        drop(nodes);
        sim.stop().await;
    }
}

// ---------------------------------------------------------------- stream clients

/// One message a stream client received: its JSON and its exact text.
#[derive(Clone, Debug)]
struct Got {
    v: Value,
    text: String,
}

#[derive(Default)]
struct WsState {
    got: Vec<Got>,
    /// Why the stream ended, once it has.
    ended: Option<String>,
}

/// A WebSocket client that keeps every message, answers pings, and closes
/// when dropped.
struct Ws {
    state: Arc<Mutex<WsState>>,
    _close: tokio::sync::oneshot::Sender<()>,
}

impl Ws {
    /// Opens `GET {base}{path}` (e.g. `/api/v1/ws?since=E:S`).
    async fn open(base: &str, path: &str) -> Ws {
        let url = format!("{base}{path}").replacen("http", "ws", 1);
        let (_, mut framed) = client()
            .ws(url)
            .max_frame_size(64 << 20)
            .connect()
            .await
            .expect("websocket connect");
        let state = Arc::new(Mutex::new(WsState::default()));
        let (close, mut closed) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        actix_web::rt::spawn(async move {
            let mut whole = e2e::ws_text::Reassembler::default();
            let why = loop {
                tokio::select! {
                    _ = &mut closed => {
                        let _ = framed.send(awc::ws::Message::Close(None)).await;
                        break "closed by the test".to_string();
                    }
                    fr = framed.next() => match fr {
                        Some(Ok(f @ (awc::ws::Frame::Text(_) | awc::ws::Frame::Continuation(_)))) => {
                            if let Some(b) = whole.push(&f) {
                                let text = String::from_utf8(b.to_vec()).expect("UTF-8 text");
                                let v: Value = serde_json::from_str(&text).expect("JSON message");
                                st.lock().unwrap().got.push(Got { v, text });
                            }
                        }
                        Some(Ok(awc::ws::Frame::Ping(p))) => {
                            let _ = framed.send(awc::ws::Message::Pong(p)).await;
                        }
                        Some(Ok(awc::ws::Frame::Close(r))) => break format!("close frame {r:?}"),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("transport error {e}"),
                        None => break "end of stream".to_string(),
                    },
                }
            };
            st.lock().unwrap().ended = Some(why);
        });
        Ws {
            state,
            _close: close,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.state.lock().unwrap().got.clone()
    }

    fn ended(&self) -> Option<String> {
        self.state.lock().unwrap().ended.clone()
    }

    /// (`epoch`, `seq`) of the last snapshot or delta.
    fn point(&self) -> Option<(u64, u64)> {
        self.got()
            .iter()
            .rev()
            .find(|g| g.v["type"] == "snapshot" || g.v["type"] == "delta")
            .and_then(|g| Some((g.v["epoch"].as_u64()?, g.v["seq"].as_u64()?)))
    }

    /// Deltas received: `seq` → exact text.
    fn deltas(&self) -> std::collections::BTreeMap<u64, String> {
        self.got()
            .into_iter()
            .filter(|g| g.v["type"] == "delta")
            .map(|g| (g.v["seq"].as_u64().expect("seq"), g.text))
            .collect()
    }

    /// Waits until the client holds state at `want` or later in the same
    /// epoch (the node may have numbered more batches since).
    async fn wait_point(&self, want: (u64, u64), what: &str) {
        wait_until(SETTLE, what, || {
            let p = self.point();
            let ended = self.ended();
            async move {
                match (p, ended) {
                    (_, Some(why)) => Err(format!("stream ended: {why}")),
                    (Some(p), None) if p.0 == want.0 && p.1 >= want.1 => Ok(()),
                    (p, None) => Err(format!("at {p:?}, want {want:?}")),
                }
            }
        })
        .await
    }

    /// Waits for the first snapshot.
    async fn wait_snapshot(&self, what: &str) {
        wait_until(SETTLE, what, || {
            let ok = self.got().iter().any(|g| g.v["type"] == "snapshot");
            async move { ok }
        })
        .await
    }
}

/// Opens an SSE stream with `Last-Event-ID` and reads events up to and
/// including the first `status`: (event, id, JSON) each.
async fn sse_until_status(base: &str, last_event_id: &str) -> Vec<(String, Option<String>, Value)> {
    let mut resp = client()
        .get(format!("{base}/api/v1/stream"))
        .insert_header(("Accept", "text/event-stream"))
        .insert_header(("Last-Event-ID", last_event_id))
        .send()
        .await
        .expect("SSE GET");
    assert_eq!(resp.status().as_u16(), 200, "SSE status");
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut buf = String::new();
    let mut out = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.next())
            .await
            .expect("a status within the deadline")
            .expect("stream open")
            .expect("chunk");
        buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut ev, mut id, mut data) = (None, None, None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    ev = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_string());
                }
            }
            if let (Some(ev), Some(d)) = (ev, data) {
                let v: Value = serde_json::from_str(&d).expect("JSON data");
                let last = ev == "status";
                out.push((ev, id, v));
                if last {
                    return out;
                }
            }
        }
    }
}

/// The user ids whose presence a test may change: not interacting (the
/// write policy protects those) and not already on `BREAK`.
async fn writable(c: &Cluster) -> Vec<String> {
    get(c.sim_url("/sim/state")).await["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| {
            u["routingStatus"]["status"] != "INTERACTING"
                && u["presence"]["systemPresence"] != "BREAK"
        })
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

async fn sim_patches(c: &Cluster) -> u64 {
    get(c.sim_url("/sim/stats")).await["counters"]["requestsByRoute"][PATCH_ROUTE]
        .as_u64()
        .unwrap_or(0)
}

// ---------------------------------------------------------------- tests

/// Exactly one node is the leader and every node names it; Genesys sees
/// one client: the simulator's channels, sockets and topics are the
/// leader's (`/readyz` `upstream.channels`), as many as one standalone
/// gateway opens on the same org, and one token was issued.
#[actix_web::test]
async fn exactly_one_node_holds_genesys() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let li = c.all_ready(SETTLE).await;
    for (i, n) in c.nodes.iter().enumerate() {
        let (code, b) = readyz(&n.base).await.expect("readyz");
        let role = if i == li { "leader" } else { "follower" };
        assert_eq!(code, 200, "{b}");
        assert_eq!(b["role"], role, "{}: {b}", n.id);
        assert_eq!(b["cluster"]["role"], role, "{}: {b}", n.id);
        assert_eq!(b["cluster"]["node"], n.id.as_str(), "{b}");
        assert_eq!(b["cluster"]["leader"], c.nodes[li].id.as_str(), "{b}");
        assert_eq!(b["cluster"]["redis"], "ok", "{b}");
    }
    let (_, lb) = readyz(&c.nodes[li].base).await.expect("leader readyz");
    let channels = lb["upstream"]["channels"]
        .as_u64()
        .unwrap_or_else(|| panic!("leader readyz has upstream.channels: {lb}"));
    assert!(channels >= 1, "{lb}");
    let stats = wait_until(
        SETTLE,
        "the simulator sees the leader's channels",
        || async {
            let s = try_get(c.sim_url("/sim/stats")).await?;
            if s["channels"] == channels && s["sockets"] == channels {
                Ok(s)
            } else {
                Err(format!("leader has {channels} channels; simulator: {s}"))
            }
        },
    )
    .await;
    assert_eq!(
        stats["counters"]["channelsCreated"], channels,
        "no follower opened a channel: {stats}"
    );
    assert_eq!(
        stats["counters"]["tokensIssued"], 1,
        "only the leader authenticated: {stats}"
    );
    if let Some(t) = lb["upstream"]["topics"].as_u64() {
        assert_eq!(stats["topics"], t, "{stats} vs {lb}");
    }

    // What one standalone gateway opens on the same org.
    let solo = e2e::Env::start(AGENTS, |_, _| {}).await;
    solo.ready().await;
    let solo_stats = wait_until(SETTLE, "standalone channels settled", || async {
        let s = try_get(solo.sim_url("/sim/stats")).await?;
        if s["channels"].as_u64() >= Some(1) && s["sockets"] == s["channels"] {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    assert_eq!(stats["channels"], solo_stats["channels"], "as one gateway");
    assert_eq!(stats["topics"], solo_stats["topics"], "as one gateway");
    solo.stop().await;
    c.stop().await;
}

/// A change made at Genesys reaches every node: each node's agents equal
/// `/sim/state` at the same `epoch`/`seq`, and WebSocket clients on every
/// node receive the same deltas, byte for byte, under the same `seq`.
#[actix_web::test]
async fn a_change_reaches_every_node_byte_identical() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    let mut clients = Vec::new();
    for n in &c.nodes {
        let ws = Ws::open(&n.base, "/api/v1/ws").await;
        ws.wait_snapshot(&format!("snapshot on {}", n.id)).await;
        clients.push(ws);
    }
    let from = clients
        .iter()
        .filter_map(|w| w.point())
        .map(|p| p.1)
        .max()
        .unwrap_or(0);
    let ids = writable(&c).await;
    for (k, id) in ids.iter().take(6).enumerate() {
        c.change(id, ["BREAK", "MEAL", "AWAY"][k % 3]).await;
    }
    let at = c.converged(&all, "every node equals /sim/state").await;
    assert!(
        at.1 > from,
        "the changes were numbered: {at:?} after {from}"
    );
    for (ws, n) in clients.iter().zip(&c.nodes) {
        ws.wait_point(at, &format!("client on {} caught up", n.id))
            .await;
    }
    let window = |s: u64| s > from && s <= at.1;
    let reference: Vec<(u64, String)> = clients[0]
        .deltas()
        .into_iter()
        .filter(|(s, _)| window(*s))
        .collect();
    assert!(!reference.is_empty(), "deltas arrived");
    for (ws, n) in clients.iter().zip(&c.nodes).skip(1) {
        let these: Vec<(u64, String)> = ws
            .deltas()
            .into_iter()
            .filter(|(s, _)| window(*s))
            .collect();
        assert_eq!(
            these.iter().map(|d| d.0).collect::<Vec<_>>(),
            reference.iter().map(|d| d.0).collect::<Vec<_>>(),
            "{} got the same seqs as {}",
            n.id,
            c.nodes[0].id
        );
        for ((seq, a), (_, b)) in these.iter().zip(&reference) {
            assert_eq!(a, b, "seq {seq}: {} and {} differ", n.id, c.nodes[0].id);
        }
    }
    c.stop().await;
}

/// A resume point taken on one node is honoured on another: a WebSocket
/// `since=` on a second node and an SSE `Last-Event-ID` on a third get
/// exactly the missed batches (no snapshot), equal to what a live client
/// there received, then a `status`.
#[actix_web::test]
async fn resume_on_another_node_replays_exactly_the_gap() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    let li = c.all_ready(SETTLE).await;
    // A: the leader; B and C: the followers.
    let (a, b, cc) = (li, (li + 1) % 3, (li + 2) % 3);
    let live_b = Ws::open(&c.nodes[b].base, "/api/v1/ws").await;
    live_b.wait_snapshot("live client on B").await;
    let ids = writable(&c).await;

    let first = Ws::open(&c.nodes[a].base, "/api/v1/ws").await;
    first.wait_snapshot("client on A").await;
    c.change(&ids[0], "BREAK").await;
    let at = c.converged(&all, "first change everywhere").await;
    first.wait_point(at, "client on A has the change").await;
    let (epoch, seq) = first.point().expect("a resume point");
    drop(first);

    // Missed while away: one batch per change.
    let mut last = seq;
    for (id, to) in ids[1..4].iter().zip(["MEAL", "AWAY", "BUSY"]) {
        c.change(id, to).await;
        let p = c.converged(&all, "change everywhere").await;
        assert!(p.1 > last, "numbered: {p:?}");
        assert_eq!(p.0, epoch, "same epoch");
        last = p.1;
    }
    live_b.wait_point((epoch, last), "live client on B").await;
    let live: std::collections::BTreeMap<u64, String> = live_b.deltas();
    let expected: Vec<u64> = (seq + 1..=last).collect();

    // WebSocket on B.
    let resumed = Ws::open(&c.nodes[b].base, &format!("/api/v1/ws?since={epoch}:{seq}")).await;
    wait_until(SETTLE, "the replay and a status on B", || {
        let ok = resumed.got().iter().any(|g| g.v["type"] == "status");
        async move { ok }
    })
    .await;
    let got = resumed.got();
    let until_status: Vec<&Got> = got.iter().take_while(|g| g.v["type"] != "status").collect();
    assert!(
        until_status.iter().all(|g| g.v["type"] == "delta"),
        "only deltas before the status: {until_status:?}"
    );
    assert!(
        got.iter().all(|g| g.v["recovered"] != false),
        "no recovered:false"
    );
    let seqs: Vec<u64> = until_status
        .iter()
        .map(|g| g.v["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, expected, "exactly the gap, on {}", c.nodes[b].id);
    for g in &until_status {
        let s = g.v["seq"].as_u64().unwrap_or_default();
        assert_eq!(g.v["epoch"], epoch);
        assert_eq!(
            Some(&g.text),
            live.get(&s),
            "seq {s} as the live client got it"
        );
    }

    // SSE with Last-Event-ID on C.
    let events = sse_until_status(&c.nodes[cc].base, &format!("{epoch}:{seq}")).await;
    let (deltas, rest): (Vec<_>, Vec<_>) = events.iter().partition(|e| e.0 == "delta");
    assert_eq!(rest.len(), 1, "only deltas, then one status: {events:?}");
    let seqs: Vec<u64> = deltas
        .iter()
        .map(|e| e.2["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs, expected,
        "exactly the gap over SSE on {}",
        c.nodes[cc].id
    );
    for (_, id, v) in &deltas {
        let s = v["seq"].as_u64().unwrap_or_default();
        assert_eq!(id.as_deref(), Some(format!("{epoch}:{s}").as_str()));
        let live_v: Value = serde_json::from_str(&live[&s]).expect("JSON");
        assert_eq!(v, &live_v, "seq {s} as on the WebSocket of another node");
    }
    c.stop().await;
}

/// SIGKILL of the leader: another node reports `leader` within the lease
/// (plus slack); WebSocket clients on the survivors keep their socket,
/// see `status` go stale and back, and their `seq` continues without a
/// gap with changes for only the agents that changed meanwhile; after more
/// changes every survivor equals `/sim/state`.
#[actix_web::test]
async fn leader_killed_a_follower_takes_over_without_a_gap() {
    let Some(mut c) = Cluster::start().await else {
        return;
    };
    let li = c.all_ready(SETTLE).await;
    let survivors: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != li).collect();
    let clients: Vec<Ws> = {
        let mut v = Vec::new();
        for &i in &survivors {
            let ws = Ws::open(&c.nodes[i].base, "/api/v1/ws").await;
            ws.wait_snapshot(&format!("snapshot on {}", c.nodes[i].id))
                .await;
            v.push(ws);
        }
        v
    };
    let ids = writable(&c).await;
    c.change(&ids[0], "BREAK").await;
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    let before = c.converged(&all, "a change before the kill").await;
    for ws in &clients {
        ws.wait_point(before, "survivor client before the kill")
            .await;
    }
    let seen_before: Vec<usize> = clients.iter().map(|w| w.got().len()).collect();

    let killed = c.nodes[li].id.clone();
    c.nodes[li].child.0.kill().expect("SIGKILL");
    let _ = c.nodes[li].child.0.wait();
    let t0 = Instant::now();
    let deadline = Duration::from_millis(LEASE_MS) + Duration::from_millis(4500);
    let new = wait_until(deadline, "a survivor reports role leader", || async {
        for &i in &survivors {
            if let Ok((_, b)) = readyz(&c.nodes[i].base).await {
                if b["role"] == "leader" {
                    return Ok(i);
                }
            }
        }
        Err(format!("no leader since {killed} was killed"))
    })
    .await;
    eprintln!(
        "{} took over {:.0} ms after {killed} was killed (lease {LEASE_MS} ms)",
        c.nodes[new].id,
        t0.elapsed().as_secs_f64() * 1000.0
    );

    for (k, id) in ids[1..5].iter().enumerate() {
        c.change(id, ["MEAL", "AWAY"][k % 2]).await;
    }
    let at = c.converged(&survivors, "survivors equal /sim/state").await;
    assert_eq!(at.0, before.0, "the same epoch after failover");
    assert!(
        at.1 > before.1,
        "numbering goes on: {at:?} after {before:?}"
    );
    assert_eq!(c.ready_among(&survivors, SETTLE).await, new);
    wait_until(
        SETTLE,
        "the simulator's sockets are the new leader's",
        || async {
            let s = try_get(c.sim_url("/sim/stats")).await?;
            let (_, b) = readyz(&c.nodes[new].base).await?;
            if b["upstream"]["channels"].is_u64() && s["sockets"] == b["upstream"]["channels"] {
                Ok(())
            } else {
                Err(format!("simulator {s}; new leader {b}"))
            }
        },
    )
    .await;

    for ((ws, &i), &seen) in clients.iter().zip(&survivors).zip(&seen_before) {
        let id = &c.nodes[i].id;
        ws.wait_point(at, &format!("client on {id} after failover"))
            .await;
        assert_eq!(ws.ended(), None, "client on {id} kept its socket");
        let got = ws.got();
        assert_eq!(
            got.iter().filter(|g| g.v["type"] == "snapshot").count(),
            1,
            "no second snapshot on {id}"
        );
        let seqs: Vec<u64> = got
            .iter()
            .filter(|g| g.v["type"] == "delta")
            .map(|g| g.v["seq"].as_u64().expect("seq"))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "no gap on {id}: {seqs:?}"
        );
        assert!(got
            .iter()
            .filter(|g| g.v["type"] == "delta")
            .all(|g| g.v["epoch"] == before.0));
        // The new leader re-read Genesys and emitted only the differences:
        // the agents changed at the simulator after the kill, nobody else.
        let allowed: std::collections::BTreeSet<&str> =
            ids[1..5].iter().map(String::as_str).collect();
        let others: Vec<&Value> = got[seen.min(got.len())..]
            .iter()
            .filter(|g| g.v["type"] == "delta")
            .flat_map(|g| g.v["changes"].as_array().into_iter().flatten())
            .filter(|ch| !allowed.contains(ch["id"].as_str().unwrap_or_default()))
            .collect();
        assert!(
            others.is_empty(),
            "only agents changed at Genesys after the handover; {id} also got {} changes, e.g. {}",
            others.len(),
            others.first().map(|v| v.to_string()).unwrap_or_default()
        );
        let after: Vec<&Got> = got[seen.min(got.len())..]
            .iter()
            .filter(|g| g.v["type"] == "status")
            .collect();
        let stale_at = after
            .iter()
            .position(|g| g.v["stale"] == true)
            .unwrap_or_else(|| panic!("status went stale on {id}: {after:?}"));
        assert!(
            after[stale_at..].iter().any(|g| g.v["stale"] == false),
            "status came back on {id}: {after:?}"
        );
    }
    assert_eq!(clients[0].deltas(), clients[1].deltas(), "same deltas");
    c.stop().await;
}

/// Every command Redis runs, as `MONITOR` prints it, until dropped.
struct Monitor {
    seen: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    async fn start(port: u16) -> Monitor {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to redis");
        s.write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .await
            .expect("MONITOR");
        let mut ok = [0u8; 5];
        s.read_exact(&mut ok).await.expect("+OK");
        assert_eq!(&ok, b"+OK\r\n");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Monitor { seen, task }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request relayed by a follower is judged exactly as the leader would
/// judge it sent directly: a header value that is not text (here an
/// `If-Match` with a Latin-1 byte) is refused the same way, not dropped on
/// the way; the follower's own `Origin` is accepted (nodes have their own
/// public origins). No client credential reaches Redis: the relay carries
/// the principal the follower authenticated, not `Authorization` or
/// `Cookie` (checked with `MONITOR`).
#[actix_web::test]
async fn a_relayed_request_is_judged_as_the_leader_would_and_carries_no_credential() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let li = c.all_ready(SETTLE).await;
    let f = (li + 1) % 3;
    let id = writable(&c).await[0].clone();
    let path = format!("/api/v1/agents/{id}/presence");
    let body = json!({"presence": "BREAK", "reason": "relay judged"});
    let bad = actix_web::http::header::HeaderValue::from_bytes(b"\"1\xe9\"").expect("header");
    let mut answers = Vec::new();
    for i in [li, f] {
        let mut r = client()
            .patch(c.nodes[i].url(&path))
            .insert_header(("If-Match", bad.clone()))
            .send_json(&body)
            .await
            .expect("PATCH");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        answers.push((r.status().as_u16(), v["error"].clone()));
    }
    assert_eq!(
        answers[0],
        (400, json!("bad_if_match")),
        "the leader: {answers:?}"
    );
    assert_eq!(
        answers[1], answers[0],
        "the follower answers as the leader does"
    );

    let monitor = Monitor::start(c.redis.port).await;
    let secret = "relay-test-credential-7f3a";
    let mut r = client()
        .patch(c.nodes[f].url(&path))
        .insert_header(("Origin", c.nodes[f].base.as_str()))
        .insert_header(("Authorization", format!("Bearer {secret}")))
        .insert_header(("Cookie", format!("session={secret}")))
        .send_json(&body)
        .await
        .expect("PATCH");
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(
        r.status().as_u16(),
        200,
        "a page of the follower writes: {v}"
    );
    wait_until(SETTLE, "the relay seen by MONITOR", || {
        let t = monitor.text();
        async move {
            if t.contains("presence-gateway:relay") {
                Ok(())
            } else {
                Err("no relay command yet".to_string())
            }
        }
    })
    .await;
    let seen = monitor.text();
    // As sent, or as the relay would encode a header value (base64).
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    for needle in [
        secret.to_string(),
        b64.encode(format!("Bearer {secret}")),
        b64.encode(format!("session={secret}")),
    ] {
        assert!(
            !seen.contains(&needle),
            "a client credential reached Redis ({needle}): {}",
            &seen[seen.find(&needle).unwrap_or(0).saturating_sub(200)..]
        );
    }
    c.stop().await;
}

/// A leader paused (SIGSTOP) past its lease is replaced; once it resumes
/// (SIGCONT) it finds another node holding the lease and exits with 75,
/// and it never sends its own clients a batch under a `seq` the new
/// leader numbered otherwise: its lease gate held what it read while it
/// could not be sure it still led.
#[actix_web::test]
async fn a_paused_leader_is_fenced_and_steps_down() {
    let Some(mut c) = Cluster::start().await else {
        return;
    };
    let li = c.all_ready(SETTLE).await;
    let survivors: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != li).collect();
    let on_old = Ws::open(&c.nodes[li].base, "/api/v1/ws").await;
    on_old.wait_snapshot("snapshot on the leader").await;
    let on_new = Ws::open(&c.nodes[survivors[0]].base, "/api/v1/ws").await;
    on_new.wait_snapshot("snapshot on a follower").await;
    let ids = writable(&c).await;

    let pid = c.nodes[li].child.0.id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, pid.as_str()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let new = wait_until(
        Duration::from_millis(LEASE_MS) + Duration::from_millis(4500),
        "a follower takes the lease from the paused leader",
        || async {
            for &i in &survivors {
                if let Ok((_, b)) = readyz(&c.nodes[i].base).await {
                    if b["role"] == "leader" {
                        return Ok(i);
                    }
                }
            }
            Err("no new leader yet".to_string())
        },
    )
    .await;
    // Changes the paused leader's Genesys socket also carries (its
    // channel lives until it is replaced): it reads them on SIGCONT.
    for (k, id) in ids[..4].iter().enumerate() {
        c.change(id, ["MEAL", "AWAY"][k % 2]).await;
    }
    c.converged(&survivors, "survivors equal /sim/state").await;
    signal("-CONT");
    let code = wait_until(SETTLE, "the old leader steps down", || {
        let code = c.nodes[li].exited();
        async move { code.ok_or_else(|| "still running".to_string()) }
    })
    .await;
    assert_eq!(code, 75, "a deposed leader exits with EX_TEMPFAIL");
    assert_eq!(c.ready_among(&survivors, SETTLE).await, new);
    let truth = on_new.deltas();
    for (seq, text) in on_old.deltas() {
        if let Some(t) = truth.get(&seq) {
            assert_eq!(&text, t, "seq {seq} means the same on every node");
        }
    }
    c.stop().await;
}

/// A presence write sent to a follower is carried out by the leader: the
/// simulator gets one PATCH, every node shows the change, the audit (read
/// through either node) has one `ok` record with `node` = the follower's
/// id, and a retry with the same `Idempotency-Key` through the other
/// follower is replayed without writing again.
#[actix_web::test]
async fn a_write_through_a_follower_reaches_genesys_once_and_is_audited() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let li = c.all_ready(SETTLE).await;
    let (f, g) = ((li + 1) % 3, (li + 2) % 3);
    let id = writable(&c).await[0].clone();
    let before = sim_patches(&c).await;
    let body = json!({"presence": "BREAK", "reason": "cluster test"});
    let key = ("Idempotency-Key", "cluster-write-1");
    let mut r = client()
        .patch(c.nodes[f].url(&format!("/api/v1/agents/{id}/presence")))
        .insert_header(key)
        .send_json(&body)
        .await
        .expect("PATCH");
    let first: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(r.status().as_u16(), 200, "{first}");
    assert_eq!(first["presence"]["systemPresence"], "BREAK", "{first}");
    assert_eq!(sim_patches(&c).await, before + 1, "one write at Genesys");
    let truth = get(c.sim_url("/sim/state")).await;
    let u = truth["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == id.as_str())
        .expect("the agent");
    assert_eq!(u["presence"]["systemPresence"], "BREAK", "{u}");
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    c.converged(&all, "the write on every node").await;

    // The same key through the other follower: the first answer, no write.
    let mut r = client()
        .patch(c.nodes[g].url(&format!("/api/v1/agents/{id}/presence")))
        .insert_header(key)
        .send_json(&body)
        .await
        .expect("PATCH retry");
    let replay: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(r.status().as_u16(), 200, "{replay}");
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true"),
        "{replay}"
    );
    assert_eq!(sim_patches(&c).await, before + 1, "still one write");

    for i in [f, li] {
        let audit = get(c.nodes[i].url(&format!("/api/v1/audit?agent={id}"))).await;
        let ok: Vec<&Value> = audit["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["result"] == "ok")
            .collect();
        assert_eq!(
            ok.len(),
            1,
            "one ok record, read on {}: {audit}",
            c.nodes[i].id
        );
        assert_eq!(ok[0]["node"], c.nodes[f].id.as_str(), "{audit}");
        assert_eq!(ok[0]["reason"], "cluster test", "{audit}");
        assert!(
            ok[0]["actor"]
                .as_str()
                .unwrap_or_default()
                .starts_with("anonymous@127.0.0.1"),
            "the client is the actor, not a node: {audit}"
        );
    }
    c.stop().await;
}

/// Redis killed: every node keeps serving, goes 503 naming Redis, and its
/// clients see `status` go stale; Redis started again (empty) on the same
/// port: every node converges to `/sim/state`, changes made meanwhile
/// included, and is ready under one leader. Only a leader deposed by
/// another node may have exited (code 75).
#[actix_web::test]
async fn redis_restarted_every_node_converges() {
    let Some(mut c) = Cluster::start().await else {
        return;
    };
    let li = c.all_ready(SETTLE).await;
    let mut clients = Vec::new();
    for n in &c.nodes {
        let ws = Ws::open(&n.base, "/api/v1/ws").await;
        ws.wait_snapshot(&format!("client on {}", n.id)).await;
        clients.push(ws);
    }
    let ids = writable(&c).await;

    c.redis.kill();
    let seen: Vec<usize> = clients.iter().map(|w| w.got().len()).collect();
    wait_until(
        SETTLE,
        "every node 503 naming Redis, still serving",
        || async {
            let mut not_yet = Vec::new();
            for n in &c.nodes {
                let (code, b) = readyz(&n.base).await?;
                let redis = &b["cluster"]["redis"];
                if code != 503 || !redis.is_string() || redis == "ok" {
                    not_yet.push(format!("{}: {code} {b}", n.id));
                }
                try_get(n.url("/api/v1/agents")).await?;
            }
            if not_yet.is_empty() {
                Ok(())
            } else {
                Err(not_yet.join("; "))
            }
        },
    )
    .await;
    wait_until(SETTLE, "status stale on every node's client", || {
        let stale: Vec<bool> = clients
            .iter()
            .zip(&seen)
            .map(|(w, &from)| {
                let got = w.got();
                got[from.min(got.len())..]
                    .iter()
                    .any(|g| g.v["type"] == "status" && g.v["stale"] == true)
            })
            .collect();
        async move {
            if stale.iter().all(|s| *s) {
                Ok(())
            } else {
                Err(format!("stale status seen per node: {stale:?}"))
            }
        }
    })
    .await;
    c.change(&ids[0], "BREAK").await;
    c.change(&ids[1], "MEAL").await;

    c.redis.launch().await;
    c.change(&ids[2], "AWAY").await;
    let sim = c.sim.base_url();
    let old_leader = li;
    let live = wait_until(
        Duration::from_secs(60),
        "every live node converged and ready",
        || {
            // (index, id, base) of the nodes still running; a node may only
            // have exited as the deposed leader, with 75.
            let mut live = Vec::new();
            for (i, n) in c.nodes.iter_mut().enumerate() {
                match n.exited() {
                    None => live.push((i, n.id.clone(), n.base.clone())),
                    Some(75) if i == old_leader => {}
                    Some(code) => panic!("{} exited with {code}", n.id),
                }
            }
            let sim = sim.clone();
            async move {
                for (_, id, base) in &live {
                    let (code, b) = readyz(base).await?;
                    if code != 200 {
                        return Err(format!("{id}: {code} {b}"));
                    }
                    diff(&sim, base).await?;
                }
                Ok(live.into_iter().map(|l| l.0).collect::<Vec<usize>>())
            }
        },
    )
    .await;
    assert!(live.len() >= 2, "the followers stay up: {live:?}");
    c.ready_among(&live, SETTLE).await;
    c.converged(&live, "every live node at one point").await;
    c.stop().await;
}
