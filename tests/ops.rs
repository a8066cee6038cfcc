//! Operable and safe (issue 9): authentication, roles, division scoping,
//! stream tickets, origins, body limits, `/metrics`, the graceful drain and
//! the refusal to serve unauthenticated on a public address. Real sockets,
//! the real simulator, the real gateway (`app::start`); no fixed ports, no
//! bare sleeps (every wait has a deadline and a condition).

mod e2e;

use e2e::{client, wait_until, ws_text};

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use awc::ws;
use futures_util::{SinkExt as _, StreamExt as _};
use presence_gateway::app::{self, Gateway};
use presence_gateway::auth::{ApiKeyConfig, Role};
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use serde_json::{json, Value};

const VIEWER: &str = "viewer-key-0123456789";
const SUPERVISOR: &str = "supervisor-key-0123456789";
const ADMIN: &str = "admin-key-0123456789";
const SCOPED: &str = "scoped-key-0123456789";
const ALLOWED_ORIGIN: &str = "https://wall.example.com";

/// Everything the gateway logs, for the token check.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || LogWriter(b.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sha(key: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key(name: &str, k: &str, role: Role, divisions: &[&str]) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.into(),
        sha256: sha(k),
        role,
        divisions: divisions.iter().map(|d| d.to_string()).collect(),
    }
}

struct Env {
    sim: SimHandle,
    gw: Gateway,
    /// A division of the simulated org, and one other.
    div: String,
    other_div: String,
    cfg: Config,
}

impl Env {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Env {
        let _ = log_buffer();
        let sim_cfg = SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            agents: 30,
            heartbeat_secs: 0.5,
            ..SimConfig::default()
        };
        let sim = simulator::start(sim_cfg.clone())
            .await
            .expect("simulator starts");
        let state = raw(client().get(format!("{}/sim/state", sim.base_url()))).await;
        let mut divs: Vec<String> = state.1["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["division"]["id"].as_str().unwrap().to_owned())
            .collect();
        divs.sort();
        divs.dedup();
        assert!(divs.len() >= 2, "the simulated org has several divisions");
        let (div, other_div) = (divs[0].clone(), divs[1].clone());
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.workers = 1;
        cfg.server.allowed_origins = vec![ALLOWED_ORIGIN.into()];
        cfg.server.drain_secs = 4;
        cfg.server.drain_spread_secs = 1;
        cfg.store.path = ":memory:".into();
        cfg.session.close_grace_secs = 1;
        cfg.auth.api_keys = vec![
            key("vera-viewer", VIEWER, Role::Viewer, &[]),
            key("sam-supervisor", SUPERVISOR, Role::Supervisor, &[]),
            key("ada-admin", ADMIN, Role::Admin, &[]),
            key("dora-scoped", SCOPED, Role::Supervisor, &[&div]),
        ];
        cfg.genesys = GenesysConfig {
            api_base: Some(sim.base_url()),
            client_id: sim_cfg.client_id.clone(),
            client_secret: sim_cfg.client_secret.clone(),
            ..GenesysConfig::default()
        };
        tweak(&mut cfg);
        cfg.validate().expect("valid config");
        let gw = app::start(cfg.clone()).await.expect("gateway starts");
        let env = Env {
            sim,
            gw,
            div,
            other_div,
            cfg,
        };
        env.wait_ready().await;
        env
    }

    async fn wait_ready(&self) {
        let url = self.url("/readyz");
        wait_until(Duration::from_secs(20), "gateway ready", || {
            let url = url.clone();
            async move {
                let r = client().get(url).send().await.map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(r.status().to_string())
                }
            }
        })
        .await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.gw.base_url(), path)
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.gw.addr, path)
    }

    async fn sim_users(&self) -> Vec<Value> {
        raw(client().get(format!("{}/sim/state", self.sim.base_url())))
            .await
            .1["users"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// A user of `div` (or of any other division when `inside` is false).
    async fn user_in(&self, inside: bool) -> String {
        self.sim_users()
            .await
            .iter()
            .find(|u| (u["division"]["id"] == self.div.as_str()) == inside)
            .expect("such a user")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn set_presence(&self, user: &str, sp: &str) {
        let mut r = client()
            .post(format!("{}/sim/users/{user}/presence", self.sim.base_url()))
            .send_json(&json!({ "systemPresence": sp }))
            .await
            .expect("sim POST");
        assert!(r.status().is_success(), "sim presence: {}", r.status());
        let _ = r.body().await;
    }
}

/// Sends a request; (status, JSON body or the text as a JSON string).
async fn raw(req: awc::ClientRequest) -> (u16, Value) {
    let mut r = req.send().await.expect("request");
    let body = r.body().limit(64 << 20).await.expect("body");
    (
        r.status().as_u16(),
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
    )
}

fn get(env: &Env, path: &str, key: Option<&str>) -> awc::ClientRequest {
    let r = client().get(env.url(path));
    match key {
        Some(k) => r.bearer_auth(k),
        None => r,
    }
}

/// A WebSocket connection; `Err(status)` when the upgrade is refused.
async fn ws_connect(
    env: &Env,
    path: &str,
    key: Option<&str>,
    origin: Option<&str>,
) -> Result<actix_codec::Framed<awc::BoxedSocket, ws::Codec>, u16> {
    let mut req = client().ws(env.ws_url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(o) = origin {
        req = req.origin(o);
    }
    match req.connect().await {
        Ok((_, framed)) => Ok(framed),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("ws connect: {e}"),
    }
}

/// Reads the next JSON text message (answering pings), or the close code.
async fn ws_next(
    framed: &mut actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
) -> Result<Value, Option<u16>> {
    let mut whole = ws_text::Reassembler::default();
    loop {
        let f = tokio::time::timeout(Duration::from_secs(15), framed.next())
            .await
            .expect("a frame within 15 s");
        match f {
            Some(Ok(f @ (ws::Frame::Text(_) | ws::Frame::Continuation(_)))) => {
                if let Some(t) = whole.push(&f) {
                    return Ok(serde_json::from_slice(&t).unwrap());
                }
            }
            Some(Ok(ws::Frame::Ping(p))) => {
                let _ = framed.send(ws::Message::Pong(p)).await;
            }
            Some(Ok(ws::Frame::Close(c))) => return Err(c.map(|c| u16::from(c.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Reads WS messages until one of `kind` arrives.
async fn ws_until(
    framed: &mut actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    kind: &str,
) -> Value {
    loop {
        let m = ws_next(framed).await.expect("open socket");
        if m["type"] == kind {
            return m;
        }
    }
}

/// An SSE response's raw text until the stream ends or `until` appears.
async fn sse_read(
    resp: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
    until: impl Fn(&str) -> bool,
) -> (String, bool) {
    let mut text = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(15), resp.next()).await {
            Ok(Some(Ok(b))) => {
                text.push_str(&String::from_utf8_lossy(&b));
                if until(&text) {
                    return (text, false);
                }
            }
            Ok(Some(Err(_))) | Ok(None) => return (text, true),
            Err(_) => panic!("SSE stalled; got so far: {text}"),
        }
    }
}

/// Without credentials every data endpoint and both streams answer 401
/// with a JSON error; health stays open.
#[actix_web::test]
async fn no_credentials_is_401_everywhere() {
    let env = Env::start(|_| {}).await;
    let agent = env.user_in(true).await;
    let paths = [
        ("GET", "/api/v1/agents".to_owned()),
        ("GET", format!("/api/v1/agents/{agent}")),
        ("GET", format!("/api/v1/agents/{agent}/history")),
        ("GET", "/api/v1/presence-definitions".to_owned()),
        ("GET", "/api/v1/stream".to_owned()),
        ("GET", "/api/v1/audit".to_owned()),
        ("GET", "/metrics".to_owned()),
        ("PATCH", format!("/api/v1/agents/{agent}/presence")),
        ("POST", "/api/v1/presence/bulk".to_owned()),
        ("POST", "/api/v1/tickets".to_owned()),
    ];
    for (m, p) in &paths {
        let req = client().request(m.parse().unwrap(), env.url(p));
        let (s, body) = raw(req).await;
        assert_eq!(s, 401, "{m} {p}: {body}");
        assert_eq!(body["error"], "unauthenticated", "{m} {p}: {body}");
        assert!(body["reason"].is_string(), "{m} {p}: {body}");
    }
    // A wrong key is no better.
    let (s, _) = raw(get(&env, "/api/v1/agents", Some("not-a-key"))).await;
    assert_eq!(s, 401);
    assert_eq!(
        ws_connect(&env, "/api/v1/ws", None, None).await.err(),
        Some(401)
    );
    let (s, _) = raw(get(&env, "/healthz", None)).await;
    assert_eq!(s, 200);
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Viewers read but cannot write (403); supervisors write and the audit
/// log names them; only admins read the audit log; big bodies are 413;
/// every error is JSON.
#[actix_web::test]
async fn roles_and_limits() {
    let env = Env::start(|_| {}).await;
    let agent = env.user_in(true).await;
    let patch = |k: &str| {
        client()
            .patch(env.url(&format!("/api/v1/agents/{agent}/presence")))
            .bearer_auth(k)
            .insert_header(("content-type", "application/json"))
    };
    let body = json!({"presence": "BREAK", "reason": "ops test"}).to_string();
    let mut r = patch(VIEWER).send_body(body.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "forbidden", "{v}");
    let mut r = patch(SUPERVISOR).send_body(body.clone()).await.unwrap();
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!((200..300).contains(&st), "supervisor write: {st} {v}");
    // The audit log records who wrote.
    let (s, audit) = raw(get(&env, "/api/v1/audit", Some(VIEWER))).await;
    assert_eq!(s, 403, "{audit}");
    let (s, audit) = raw(get(&env, "/api/v1/audit", Some(ADMIN))).await;
    assert_eq!(s, 200, "{audit}");
    assert!(
        audit.to_string().contains("\"sam-supervisor\""),
        "audit names the supervisor: {audit}"
    );
    // Body limit.
    let big = "x".repeat(200 * 1024);
    let mut r = patch(SUPERVISOR).send_body(big).await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "payload_too_large", "{v}");
    // Unknown routes and wrong methods are JSON too.
    let (s, v) = raw(client()
        .delete(env.url("/api/v1/agents"))
        .bearer_auth(ADMIN))
    .await;
    assert!(s >= 400 && v["error"].is_string(), "{s} {v}");
    env.gw.stop().await;
    env.sim.stop().await;
}

/// A division-scoped key sees only its division in the REST snapshot, the
/// WebSocket snapshot and its deltas, and may not read or write others.
#[actix_web::test]
async fn division_scope() {
    let env = Env::start(|_| {}).await;
    let (s, snap) = raw(get(&env, "/api/v1/agents", Some(SCOPED))).await;
    assert_eq!(s, 200);
    let agents = snap["agents"].as_array().unwrap();
    assert!(!agents.is_empty());
    assert!(
        agents
            .iter()
            .all(|a| a["division"]["id"] == env.div.as_str()),
        "only its division"
    );
    // Asking for another division explicitly is refused, not widened.
    let (s, v) = raw(get(
        &env,
        &format!("/api/v1/agents?division={}", env.other_div),
        Some(SCOPED),
    ))
    .await;
    assert_eq!(s, 403, "{v}");
    let inside = env.user_in(true).await;
    let outside = env.user_in(false).await;
    let (s, _) = raw(get(
        &env,
        &format!("/api/v1/agents/{outside}"),
        Some(SCOPED),
    ))
    .await;
    assert_eq!(s, 404, "another division's agent looks absent");
    let (s, _) = raw(get(&env, &format!("/api/v1/agents/{inside}"), Some(SCOPED))).await;
    assert_eq!(s, 200);
    // Interaction context follows the same scope.
    let (s, _) = raw(get(
        &env,
        &format!("/api/v1/agents/{outside}/interactions"),
        Some(SCOPED),
    ))
    .await;
    assert_eq!(s, 404, "another division's interactions look absent");
    let (s, v) = raw(get(
        &env,
        &format!("/api/v1/agents/{inside}/interactions"),
        Some(SCOPED),
    ))
    .await;
    assert_eq!(s, 200, "{v}");
    let mut r = client()
        .patch(env.url(&format!("/api/v1/agents/{outside}/presence")))
        .bearer_auth(SCOPED)
        .send_json(&json!({"presence": "BREAK"}))
        .await
        .unwrap();
    // A foreign agent is the same 404 as an unknown one, for writes too.
    assert_eq!(r.status().as_u16(), 404);
    let _ = r.body().await;

    let mut ws = ws_connect(&env, "/api/v1/ws", Some(SCOPED), None)
        .await
        .expect("ws");
    let snap = ws_until(&mut ws, "snapshot").await;
    let agents = snap["agents"].as_array().unwrap();
    assert!(agents
        .iter()
        .all(|a| a["division"]["id"] == env.div.as_str()));
    // A change outside, then one inside: only the inside one arrives.
    env.set_presence(&outside, "MEAL").await;
    env.set_presence(&inside, "MEAL").await;
    let delta = loop {
        let d = ws_until(&mut ws, "delta").await;
        if !d["changes"].as_array().unwrap().is_empty() {
            break d;
        }
    };
    for c in delta["changes"].as_array().unwrap() {
        assert_eq!(c["division"]["id"], env.div.as_str(), "{c}");
    }
    assert!(delta["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == inside.as_str()));
    // Subscribing to another division is an error message, not a widening.
    ws.send(ws::Message::Text(
        json!({"type": "subscribe", "filter": {"division": env.other_div}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let err = ws_until(&mut ws, "error").await;
    assert!(
        err["reason"].as_str().unwrap().contains("may only see"),
        "{err}"
    );
    env.gw.stop().await;
    env.sim.stop().await;
}

/// A foreign Origin is refused on WebSocket, SSE and the API; an allowed
/// one gets CORS headers and a preflight answer.
#[actix_web::test]
async fn foreign_origin_refused() {
    let env = Env::start(|_| {}).await;
    let evil = "https://evil.example.net";
    assert_eq!(
        ws_connect(&env, "/api/v1/ws", Some(VIEWER), Some(evil))
            .await
            .err(),
        Some(403)
    );
    let (s, v) =
        raw(get(&env, "/api/v1/stream", Some(VIEWER)).insert_header(("Origin", evil))).await;
    assert_eq!(s, 403);
    assert_eq!(v["error"], "origin_not_allowed");
    let (s, _) =
        raw(get(&env, "/api/v1/agents", Some(VIEWER)).insert_header(("Origin", evil))).await;
    assert_eq!(s, 403);
    // Allowed origin: works, with CORS headers.
    let r = get(&env, "/api/v1/agents", Some(VIEWER))
        .insert_header(("Origin", ALLOWED_ORIGIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        ALLOWED_ORIGIN
    );
    let r = client()
        .request(actix_web::http::Method::OPTIONS, env.url("/api/v1/agents"))
        .insert_header(("Origin", ALLOWED_ORIGIN))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let ws = ws_connect(&env, "/api/v1/ws", Some(VIEWER), Some(ALLOWED_ORIGIN)).await;
    assert!(ws.is_ok(), "allowed origin upgrades");
    // The gateway's own pages (same origin) are always allowed.
    let own = format!("http://{}", env.gw.addr);
    assert!(ws_connect(&env, "/api/v1/ws", Some(VIEWER), Some(&own))
        .await
        .is_ok());
    env.gw.stop().await;
    env.sim.stop().await;
}

/// A ticket opens one stream, once; a reused or made-up one is 401.
#[actix_web::test]
async fn ticket_works_once() {
    let env = Env::start(|_| {}).await;
    let ticket = || async {
        let (s, v) = raw(client()
            .post(env.url("/api/v1/tickets"))
            .bearer_auth(VIEWER))
        .await;
        assert_eq!(s, 201, "{v}");
        v["ticket"].as_str().unwrap().to_owned()
    };
    let t = ticket().await;
    let mut r = client()
        .get(env.url(&format!("/api/v1/stream?ticket={t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (text, _) = sse_read(&mut r, |t| t.contains("event: snapshot")).await;
    assert!(text.contains("event: snapshot"));
    drop(r);
    let (s, v) = raw(client().get(env.url(&format!("/api/v1/stream?ticket={t}")))).await;
    assert_eq!(s, 401, "second use: {v}");
    let t = ticket().await;
    assert!(
        ws_connect(&env, &format!("/api/v1/ws?ticket={t}"), None, None)
            .await
            .is_ok()
    );
    assert_eq!(
        ws_connect(&env, &format!("/api/v1/ws?ticket={t}"), None, None)
            .await
            .err(),
        Some(401)
    );
    // Tickets are for streams only.
    let t = ticket().await;
    let (s, _) = raw(client().get(env.url(&format!("/api/v1/agents?ticket={t}")))).await;
    assert_eq!(s, 401);
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Tickets live in the store (here a SQLite file): the file holds the
/// ticket's SHA-256 and its holder, never the ticket; the holder's
/// divisions survive (another division is 403); a ticket past `auth.ticket_ttl_secs` is 401 (and its
/// row is gone).
#[actix_web::test]
async fn tickets_live_in_the_sqlite_store_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.db");
    let path = db.clone();
    let env = Env::start(move |c| {
        c.store.path = path;
        c.auth.ticket_ttl_secs = 1;
    })
    .await;
    let ticket = |key: &'static str| {
        let env = &env;
        async move {
            let (s, v) = raw(client().post(env.url("/api/v1/tickets")).bearer_auth(key)).await;
            assert_eq!(s, 201, "{v}");
            assert_eq!(v["expiresInSecs"], 1);
            (
                v["ticket"].as_str().unwrap().to_owned(),
                std::time::Instant::now(),
            )
        }
    };
    let rows = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut st = c.prepare("SELECT hash, principal FROM tickets").unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };

    // Stored hashed, with the holder's divisions; the scoped holder's
    // stream is scoped.
    let (t, _) = ticket(SCOPED).await;
    let stored = rows();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, presence_gateway::auth::ticket_hash(&t));
    assert!(!stored.iter().any(|(h, p)| h.contains(&t) || p.contains(&t)));
    assert!(
        stored[0].1.contains("dora-scoped") && stored[0].1.contains(&env.div),
        "{stored:?}"
    );
    let (s, v) = raw(client().get(env.url(&format!("/api/v1/agents?ticket={t}")))).await;
    assert_eq!(s, 401, "tickets are for streams only: {v}");
    let (t, _) = ticket(SCOPED).await;
    let mut r = client()
        .get(env.url(&format!("/api/v1/stream?ticket={t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (text, _) = sse_read(&mut r, |t| t.contains("event: snapshot")).await;
    assert!(text.contains("event: snapshot"));
    drop(r);
    // The holder's divisions came back from the store: another is refused.
    let (t2, _) = ticket(SCOPED).await;
    let (s, v) = raw(client().get(env.url(&format!(
        "/api/v1/stream?ticket={t2}&division={}",
        env.other_div
    ))))
    .await;
    assert_eq!(s, 403, "scoped ticket: {v}");
    let hash = presence_gateway::auth::ticket_hash(&t);
    assert!(
        !rows().iter().any(|(h, _)| *h == hash),
        "a redeemed ticket's row is gone"
    );

    // Past its lifetime (the gateway dated it before answering, so once a
    // second has passed since the answer, it has run out): 401, and gone.
    let (t, answered) = ticket(VIEWER).await;
    wait_until(
        Duration::from_secs(10),
        "the ticket's lifetime passed",
        || async {
            if answered.elapsed() > Duration::from_millis(1_050) {
                Ok(())
            } else {
                Err(format!("{:?} since issued", answered.elapsed()))
            }
        },
    )
    .await;
    let (s, v) = raw(client().get(env.url(&format!("/api/v1/stream?ticket={t}")))).await;
    assert_eq!(s, 401, "expired: {v}");
    assert!(v["reason"].as_str().unwrap().contains("expired"), "{v}");
    let hash = presence_gateway::auth::ticket_hash(&t);
    assert!(
        !rows().iter().any(|(h, _)| *h == hash),
        "an expired ticket's row is gone"
    );
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Shutdown closes every client cleanly within the grace period (final
/// `status` restarting; WebSocket 1001; SSE `close` with a `retry:` hint,
/// then end of stream), and they resume against a new gateway.
#[actix_web::test]
async fn drain_closes_everyone_and_they_resume() {
    let env = Env::start(|_| {}).await;
    let mut wss = Vec::new();
    let mut since = String::new();
    for _ in 0..3 {
        let mut ws = ws_connect(&env, "/api/v1/ws", Some(VIEWER), None)
            .await
            .expect("ws");
        let snap = ws_until(&mut ws, "snapshot").await;
        since = format!("{}:{}", snap["epoch"], snap["seq"]);
        wss.push(ws);
    }
    let mut sses = Vec::new();
    for _ in 0..2 {
        let mut r = get(&env, "/api/v1/stream", Some(VIEWER))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let _ = sse_read(&mut r, |t| t.contains("event: snapshot")).await;
        sses.push(r);
    }
    let started = std::time::Instant::now();
    let report = env.gw.shutdown().await;
    let grace = Duration::from_secs(env.cfg.server.drain_secs);
    assert!(
        started.elapsed() <= grace,
        "drain took {:?}",
        started.elapsed()
    );
    assert_eq!(report.left_open, 0, "{report:?}");
    for mut ws in wss {
        let mut saw_restarting = false;
        let code = loop {
            match ws_next(&mut ws).await {
                Ok(m) => saw_restarting |= m["type"] == "status" && m["state"] == "restarting",
                Err(code) => break code,
            }
        };
        assert!(saw_restarting, "a final status before the close");
        assert_eq!(code, Some(1001));
    }
    for mut r in sses {
        let (text, ended) = sse_read(&mut r, |_| false).await;
        assert!(ended, "the SSE stream ends");
        assert!(text.contains("\"state\":\"restarting\""), "{text}");
        assert!(text.contains("retry: "), "{text}");
        assert!(
            text.contains("event: close") && text.contains("1001"),
            "{text}"
        );
    }
    // New connections are refused while (and after) draining.
    assert!(client()
        .get(env.url("/api/v1/agents"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .map(|r| r.status().as_u16() >= 500)
        .unwrap_or(true));

    // A new gateway on the same org; the old resume point gets a snapshot.
    let mut cfg = env.cfg.clone();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    let gw2 = app::start(cfg).await.expect("second gateway");
    let env2 = Env {
        sim: env.sim,
        gw: gw2,
        div: env.div,
        other_div: env.other_div,
        cfg: env.cfg,
    };
    env2.wait_ready().await;
    let mut ws = ws_connect(
        &env2,
        &format!("/api/v1/ws?since={since}"),
        Some(VIEWER),
        None,
    )
    .await
    .expect("resume");
    let snap = ws_until(&mut ws, "snapshot").await;
    assert_eq!(snap["recovered"], false);
    assert!(!snap["agents"].as_array().unwrap().is_empty());
    let mut r = client()
        .get(env2.url("/api/v1/stream"))
        .bearer_auth(VIEWER)
        .insert_header(("Last-Event-ID", since.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = sse_read(&mut r, |t| t.contains("event: snapshot")).await;
    env2.gw.stop().await;
    env2.sim.stop().await;
}

/// `/metrics` exposes every series in Prometheus text; the Genesys token
/// appears in no response, metric or log line.
#[actix_web::test]
async fn metrics_and_no_token_leak() {
    let env = Env::start(|_| {}).await;
    let mut seen = String::new();
    // Some traffic: a stream client and a change.
    let mut ws = ws_connect(&env, "/api/v1/ws", Some(ADMIN), None)
        .await
        .expect("ws");
    seen.push_str(&ws_until(&mut ws, "snapshot").await.to_string());
    let user = env.user_in(true).await;
    env.set_presence(&user, "BREAK").await;
    seen.push_str(&ws_until(&mut ws, "delta").await.to_string());
    let mut sse = get(&env, "/api/v1/stream", Some(VIEWER))
        .send()
        .await
        .unwrap();
    seen.push_str(&sse_read(&mut sse, |t| t.contains("event: status")).await.0);
    for p in [
        "/api/v1/agents",
        "/api/v1/presence-definitions",
        "/readyz",
        "/healthz",
        "/api/v1/audit",
    ] {
        seen.push_str(&raw(get(&env, p, Some(ADMIN))).await.1.to_string());
    }
    let (s, v) = raw(get(&env, "/metrics", Some(VIEWER))).await;
    assert_eq!(s, 403, "metrics are admin-only by default: {v}");
    let fetch = || async {
        let mut r = get(&env, "/metrics", Some(ADMIN)).send().await.unwrap();
        String::from_utf8(r.body().await.unwrap().to_vec()).unwrap()
    };
    wait_until(Duration::from_secs(10), "event lag observed", || async {
        if fetch()
            .await
            .contains("presence_gateway_event_lag_seconds_count 0")
        {
            Err("no event lag observed yet".into())
        } else {
            Ok(())
        }
    })
    .await;
    let metrics = fetch().await;
    use presence_gateway::telemetry::names::*;
    for name in [
        CONNECTIONS,
        CONNECTIONS_OPENED,
        CONNECTIONS_COMPRESSED,
        DELIVERIES,
        DISCONNECTS,
        RESUMES,
        EVENTS_DROPPED,
        COALESCED,
        EVICTED,
        REST_CALLS,
        RATE_LIMITED,
        RECONNECTS,
        WEBHOOKS,
        AUTH_REFUSED,
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} missing"
        );
    }
    for h in [EVENT_LAG, FANOUT] {
        assert!(
            metrics.contains(&format!("{h}_bucket{{le=\"+Inf\"}}")),
            "{h}"
        );
        assert!(metrics.contains(&format!("{h}_count")), "{h}");
    }
    assert!(metrics.contains("presence_gateway_connections{transport=\"ws\"} 1"));
    assert!(metrics.contains("presence_gateway_connections{transport=\"sse\"} 1"));
    assert!(!metrics.contains("presence_gateway_upstream_rest_calls_total 0\n"));
    assert!(metrics.contains("presence_gateway_disconnects_total{reason=\"slow_consumer\"}"));
    seen.push_str(&metrics);

    // The simulator's issued tokens: none may show anywhere.
    let tokens: Vec<String> = env.sim.sim.inner.lock().tokens.keys().cloned().collect();
    assert!(!tokens.is_empty(), "the gateway fetched a token");
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "logs were captured");
    for t in &tokens {
        assert!(!seen.contains(t.as_str()), "token in a response or metric");
        assert!(!logs.contains(t.as_str()), "token in a log line");
    }
    let _ = std::io::stderr().flush();
    env.gw.stop().await;
    env.sim.stop().await;
}

/// `serve` on a non-loopback address without auth refuses to start: exit
/// 64, saying why. (`check-config` says the same.)
#[test]
fn serve_public_without_auth_exits_64() {
    let bin = env!("CARGO_BIN_EXE_presence-gateway");
    for args in [&["serve"][..], &["check-config"][..]] {
        let out = std::process::Command::new(bin)
            .args(args)
            .env_clear()
            .env("GENESYSCLOUD_OAUTHCLIENT_ID", "id")
            .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "secret")
            .env("PRESENCE_GATEWAY__SERVER__LISTEN", "0.0.0.0:0")
            .output()
            .expect("run the binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains("no authentication is configured"), "{err}");
    }
}
