//! Requests a follower cannot carry out itself (they need Genesys or the
//! store: writes, bulk writes, audit, history, interactions, webhooks) go to
//! the leader through Redis:
//!
//! 1. the follower authenticates the caller, then `LPUSH`es an envelope to
//!    `<prefix>:relay`: method, path and query, headers (byte-exact; never
//!    `Authorization`, `Cookie` or other credentials), the caller's
//!    [`Principal`](crate::auth::Principal) as it authenticated it, the
//!    client address, body and a deadline, signed with HMAC-SHA256 under a
//!    key derived from `genesys.client_secret` (which every node of a
//!    cluster shares), so reading Redis yields no client credential and
//!    writing to it forges no request;
//! 2. the leader `BLPOP`s it, checks the signature, answers `accepted` at
//!    once, and carries it out against its own HTTP API on loopback with
//!    [`RELAY_HEADER`] (a secret only this process knows) carrying the
//!    principal, the receiving node and the client address, so the same
//!    role and scope checks, validation, idempotency and audit apply;
//! 3. the answer goes back on `<prefix>:relay:reply:<node>`.
//!
//! The leader starts nothing whose deadline is less than [`START_MARGIN`]
//! away, and the follower waits until the deadline for `accepted`: a
//! request is either accepted in time (the follower then waits for its
//! answer, up to [`RUN_MAX`], and answers 504 `leader_timeout` if none
//! comes) or never carried out (503 `leader_unavailable`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::Mac;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{conn_config, Cluster};
use crate::auth::Principal;

/// The header a leader adds to a relayed request: `<secret>`.
pub const RELAY_HEADER: &str = "x-presence-gateway-relay";
/// The node that received a relayed request (believed only with [`RELAY_HEADER`]).
pub const RELAY_NODE_HEADER: &str = "x-presence-gateway-relay-node";
/// The client address a relayed request came from (idem).
pub const RELAY_PEER_HEADER: &str = "x-presence-gateway-relay-peer";
/// The caller as the receiving node authenticated it: base64 of
/// [`Principal::to_json`] (idem).
pub const RELAY_PRINCIPAL_HEADER: &str = "x-presence-gateway-relay-principal";

/// The leader starts no relayed request whose deadline is nearer than this
/// (room for its `accepted` to reach the follower in time).
pub const START_MARGIN: Duration = Duration::from_millis(500);
/// How long a follower waits for the answer to a request the leader
/// accepted (the leader's own call to itself gives up 5 s earlier).
pub const RUN_MAX: Duration = Duration::from_secs(60);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// On a request the leader carries out for another node: who received it,
/// from whom, for whom.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The receiving node's id.
    pub node: String,
    /// The client's IP address as the receiving node saw it.
    pub peer: Option<String>,
    /// The caller, as the receiving node authenticated it.
    pub principal: Option<Principal>,
}

/// A relayed request.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    id: String,
    node: String,
    /// Unix ms after which the leader must not start it.
    deadline_ms: i64,
    method: String,
    path: String,
    /// Names, and base64 of each value's bytes.
    headers: Vec<(String, String)>,
    peer: Option<String>,
    /// [`Principal::to_json`].
    principal: String,
    /// Base64.
    body: String,
    /// HMAC-SHA256 (hex) of this envelope with `mac` empty.
    mac: String,
}

/// The leader's answer (or its `accepted` notice).
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    id: String,
    /// The leader took the request and runs it; the answer follows.
    #[serde(default)]
    accepted: bool,
    /// HTTP status.
    pub status: u16,
    /// Response headers (hop-by-hop ones left out), values in base64.
    pub headers: Vec<(String, String)>,
    /// Base64 of the body.
    body: String,
    /// HMAC-SHA256 (hex) of this reply with `mac` empty (the envelope key).
    #[serde(default)]
    mac: String,
}

impl Reply {
    /// The response body.
    pub fn body(&self) -> Bytes {
        B64.decode(&self.body).map(Bytes::from).unwrap_or_default()
    }

    /// The response headers, values as bytes.
    pub fn header_bytes(&self) -> impl Iterator<Item = (&str, Vec<u8>)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), B64.decode(v).ok()?)))
    }
}

/// Why a relayed request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Nobody accepted it before its deadline: it was not carried out.
    #[error("no leader took the request within {0} ms, so it was not carried out")]
    NotTaken(u64),
    /// The leader accepted it but did not answer in time: it may have been
    /// carried out.
    #[error("the leader accepted the request but did not answer within {0} s; it may have been carried out (see GET /api/v1/audit)")]
    NoAnswer(u64),
}

/// Requests waiting for their answer, this process's relay secret and the
/// cluster's envelope key.
pub(crate) struct RelayState {
    pending: Mutex<HashMap<String, mpsc::Sender<Reply>>>,
    secret: String,
    key: Vec<u8>,
}

impl RelayState {
    /// `shared`: a secret every node of the cluster holds (the Genesys
    /// client secret); the envelope key is derived from it.
    pub(crate) fn new(shared: &str) -> RelayState {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(shared.as_bytes())
            // unwrap: HMAC takes keys of any length.
            .unwrap();
        mac.update(b"presence-gateway cluster relay v1");
        RelayState {
            pending: Mutex::default(),
            secret: uuid::Uuid::new_v4().simple().to_string(),
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, env: &Envelope) -> hmac::Hmac<sha2::Sha256> {
        // unwrap: HMAC takes keys of any length; a struct of strings serialises.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).unwrap();
        mac.update(serde_json::to_string(env).unwrap().as_bytes());
        mac
    }

    fn sign(&self, env: &mut Envelope) {
        env.mac.clear();
        env.mac = hex::encode(self.mac(env).finalize().into_bytes());
    }

    fn reply_mac(&self, r: &Reply) -> hmac::Hmac<sha2::Sha256> {
        // unwrap: HMAC takes keys of any length; a struct of strings serialises.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).unwrap();
        mac.update(b"reply\n");
        mac.update(serde_json::to_string(r).unwrap().as_bytes());
        mac
    }

    fn sign_reply(&self, r: &mut Reply) {
        r.mac.clear();
        r.mac = hex::encode(self.reply_mac(r).finalize().into_bytes());
    }

    fn verify_reply(&self, r: &mut Reply) -> bool {
        let Ok(given) = hex::decode(std::mem::take(&mut r.mac)) else {
            return false;
        };
        self.reply_mac(r).verify_slice(&given).is_ok()
    }

    fn verify(&self, env: &mut Envelope) -> bool {
        let Ok(given) = hex::decode(std::mem::take(&mut env.mac)) else {
            return false;
        };
        self.mac(env).verify_slice(&given).is_ok()
    }
}

/// Headers never relayed: hop-by-hop, framing, credentials (the principal
/// travels instead) and the relay's own.
fn hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "host"
            | "content-length"
            | "accept-encoding"
            | "authorization"
            | "cookie"
            | "proxy-authorization"
            | "proxy-connection"
            | "date"
            | "server"
    ) || name.starts_with("x-presence-gateway-relay")
}

impl Cluster {
    /// True when `value` is this process's relay secret (a relayed request).
    pub fn is_relay_secret(&self, value: &[u8]) -> bool {
        // Digests compared, so the time taken says nothing of the secret.
        use sha2::Digest;
        sha2::Sha256::digest(value) == sha2::Sha256::digest(self.relay.secret.as_bytes())
    }

    /// Has the leader carry out a request for `principal` (already
    /// authenticated here). Waits until `relay_timeout_ms` for the leader
    /// to accept it, then up to [`RUN_MAX`] for its answer.
    pub async fn relay(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, Vec<u8>)>,
        peer: Option<String>,
        principal: &Principal,
        body: &[u8],
    ) -> Result<Reply, RelayError> {
        let wait = self.cfg.relay_timeout_ms;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut env = Envelope {
            id: id.clone(),
            node: self.node.clone(),
            deadline_ms: chrono::Utc::now().timestamp_millis() + wait as i64,
            method: method.to_string(),
            path: path.to_string(),
            headers: headers
                .into_iter()
                .filter(|(k, _)| !hop(&k.to_ascii_lowercase()))
                .map(|(k, v)| (k, B64.encode(v)))
                .collect(),
            peer,
            principal: principal.to_json(),
            body: B64.encode(body),
            mac: String::new(),
        };
        self.relay.sign(&mut env);
        let (tx, mut rx) = mpsc::channel(2);
        self.relay.pending.lock().insert(id.clone(), tx);
        let mut ctl = self.ctl.clone();
        self.stats.op(2);
        // unwrap: a struct of strings and numbers serialises.
        let json = serde_json::to_string(&env).unwrap();
        let pushed: redis::RedisResult<()> = redis::pipe()
            .cmd("LPUSH")
            .arg(&self.keys.relay)
            .arg(json)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.keys.relay)
            .arg(wait * 4)
            .ignore()
            .query_async(&mut ctl)
            .await;
        if let Err(e) = &pushed {
            // It may still have reached Redis: wait out the deadline all
            // the same, so that a late start is answered, never lost.
            self.redis_failed(e);
        }
        self.stats.relayed_out.fetch_add(1, Ordering::Relaxed);
        let until = tokio::time::Instant::now() + Duration::from_millis(wait);
        let result = match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(r)) if r.accepted => {
                // Accepted: it runs; wait for its answer.
                let answer = tokio::time::timeout(RUN_MAX, async {
                    loop {
                        match rx.recv().await {
                            Some(r) if r.accepted => continue,
                            other => return other,
                        }
                    }
                })
                .await;
                match answer {
                    Ok(Some(r)) => Ok(r),
                    _ => Err(RelayError::NoAnswer(RUN_MAX.as_secs())),
                }
            }
            Ok(Some(r)) => Ok(r),
            _ => Err(RelayError::NotTaken(wait)),
        };
        self.relay.pending.lock().remove(&id);
        if result.is_err() {
            self.stats.relay_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Every node: hands the answers to relayed requests to their waiters.
pub(crate) async fn reply_loop(cluster: Arc<Cluster>, stop: CancellationToken) {
    let Ok(mut conn) =
        ConnectionManager::new_lazy_with_config(cluster.redis_client.clone(), conn_config(None))
    else {
        return;
    };
    let key = cluster.keys.replies(&cluster.node);
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() && !cluster.deposed.is_cancelled() {
        if cluster.relay.pending.lock().is_empty() {
            // Nothing waits: no need to ask Redis.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            continue;
        }
        let Some(json) = pop(&mut conn, &key, &mut backoff, &stop).await else {
            continue;
        };
        match serde_json::from_str::<Reply>(&json) {
            Ok(mut reply) => {
                if !cluster.relay.verify_reply(&mut reply) {
                    tracing::warn!("cluster: relay reply with a bad signature dropped");
                    continue;
                }
                let tx = cluster.relay.pending.lock().get(&reply.id).cloned();
                if let Some(tx) = tx {
                    let _ = tx.try_send(reply);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: unreadable relay reply skipped"),
        }
    }
}

/// The leader: carries out relayed requests against its own HTTP API.
pub(crate) async fn serve_loop(cluster: Arc<Cluster>, local_base: String, stop: CancellationToken) {
    let Ok(mut conn) =
        ConnectionManager::new_lazy_with_config(cluster.redis_client.clone(), conn_config(None))
    else {
        return;
    };
    let http = awc::Client::builder()
        .timeout(RUN_MAX - Duration::from_secs(5))
        .finish();
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() && !cluster.deposed.is_cancelled() {
        if !cluster.is_leader() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let Some(json) = pop(&mut conn, &cluster.keys.relay, &mut backoff, &stop).await else {
            continue;
        };
        let Ok(mut env) = serde_json::from_str::<Envelope>(&json) else {
            tracing::warn!("cluster: unreadable relayed request skipped");
            continue;
        };
        if !cluster.relay.verify(&mut env) {
            tracing::warn!(node = %env.node, "cluster: relayed request with a bad signature dropped (is genesys.client_secret the same on every node?)");
            continue;
        }
        let left = env.deadline_ms - chrono::Utc::now().timestamp_millis();
        if left < START_MARGIN.as_millis() as i64 {
            tracing::warn!(node = %env.node, path = %env.path, "cluster: relayed request too close to its deadline dropped unrun");
            continue;
        }
        // Each envelope runs once: a copy pushed again (by anyone
        // who can write to Redis) is dropped.
        let mut ctl = cluster.ctl.clone();
        cluster.stats.op(1);
        let first: redis::RedisResult<bool> = redis::cmd("SET")
            .arg(format!("{}:relay:seen:{}", cluster.keys.prefix, env.id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(left.max(1) as u64 + RUN_MAX.as_millis() as u64)
            .query_async::<Option<String>>(&mut ctl)
            .await
            .map(|r| r.is_some());
        if !matches!(first, Ok(true)) {
            tracing::warn!(node = %env.node, "cluster: relayed request seen before (or Redis did not say) dropped unrun");
            continue;
        }
        let accepted = Reply {
            id: env.id.clone(),
            accepted: true,
            status: 0,
            headers: Vec::new(),
            body: String::new(),
            mac: String::new(),
        };
        if !answer(&cluster, &env.node, accepted).await {
            // The follower would answer 503: do not run it.
            continue;
        }
        actix::spawn(carry_out(
            cluster.clone(),
            http.clone(),
            local_base.clone(),
            env,
        ));
    }
}

/// Sends `reply` to `node`'s reply list.
/// One `BLPOP <key> 1` on a blocking connection: the item, or `None` when
/// nothing came within a second or Redis failed (then after waiting
/// `backoff`, which doubles up to 2 s; a success resets it).
async fn pop(
    conn: &mut ConnectionManager,
    key: &str,
    backoff: &mut Duration,
    stop: &CancellationToken,
) -> Option<String> {
    let popped: Result<redis::RedisResult<Option<(String, String)>>, _> = tokio::time::timeout(
        Duration::from_secs(3),
        redis::cmd("BLPOP").arg(key).arg(1).query_async(conn),
    )
    .await;
    match popped {
        Ok(Ok(Some((_, item)))) => {
            *backoff = Duration::from_millis(100);
            Some(item)
        }
        Ok(Ok(None)) => None,
        Ok(Err(_)) | Err(_) => {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(*backoff) => {}
            }
            *backoff = (*backoff * 2).min(Duration::from_secs(2));
            None
        }
    }
}

/// Sends `reply` (signed) to `node`'s reply list; `false` when Redis did not take it.
async fn answer(cluster: &Cluster, node: &str, mut reply: Reply) -> bool {
    cluster.relay.sign_reply(&mut reply);
    let mut ctl = cluster.ctl.clone();
    let key = cluster.keys.replies(node);
    cluster.stats.op(2);
    // unwrap: a struct of strings and numbers serialises.
    let json = serde_json::to_string(&reply).unwrap();
    let sent: redis::RedisResult<()> = redis::pipe()
        .cmd("LPUSH")
        .arg(&key)
        .arg(json)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(RUN_MAX.as_millis() as u64)
        .ignore()
        .query_async(&mut ctl)
        .await;
    match sent {
        Ok(()) => true,
        Err(e) => {
            cluster.redis_failed(&e);
            false
        }
    }
}

/// Runs one relayed request and sends its answer back.
async fn carry_out(cluster: Arc<Cluster>, http: awc::Client, base: String, env: Envelope) {
    cluster.stats.relayed_in.fetch_add(1, Ordering::Relaxed);
    let reply = match run(&cluster, &http, &base, &env).await {
        Ok(r) => r,
        Err((sent, why)) => {
            // Once sent, it may have been carried out: 504, never a 503
            // that invites a blind retry.
            let (status, body, retry) = if sent {
                (
                    504,
                    serde_json::json!({
                        "error": "leader_timeout",
                        "reason": format!("the leader took the request but got no answer from carrying it out ({why}); it may have been carried out (see GET /api/v1/audit)"),
                    }),
                    None,
                )
            } else {
                (
                    503,
                    serde_json::json!({
                        "error": "leader_unavailable",
                        "reason": format!("the leader could not carry out the request: {why}; it was not carried out"),
                    }),
                    Some(("retry-after".to_string(), B64.encode("2"))),
                )
            };
            let mut headers = vec![("content-type".to_string(), B64.encode("application/json"))];
            headers.extend(retry);
            Reply {
                id: env.id.clone(),
                accepted: false,
                status,
                headers,
                body: B64.encode(body.to_string()),
                mac: String::new(),
            }
        }
    };
    answer(&cluster, &env.node, reply).await;
}

async fn run(
    cluster: &Cluster,
    http: &awc::Client,
    base: &str,
    env: &Envelope,
) -> Result<Reply, (bool, String)> {
    let method = actix_web::http::Method::from_bytes(env.method.as_bytes())
        .map_err(|e| (false, format!("method {:?}: {e}", env.method)))?;
    if !env.path.starts_with('/') {
        return Err((false, format!("path {:?} does not start with /", env.path)));
    }
    let mut req = http.request(method, format!("{base}{}", env.path));
    for (k, v) in &env.headers {
        if hop(&k.to_ascii_lowercase()) {
            continue;
        }
        let (Ok(name), Some(value)) = (
            actix_web::http::header::HeaderName::from_bytes(k.as_bytes()),
            B64.decode(v)
                .ok()
                .and_then(|b| actix_web::http::header::HeaderValue::from_bytes(&b).ok()),
        ) else {
            return Err((false, format!("header {k:?} cannot be sent on")));
        };
        req = req.append_header((name, value));
    }
    req = req
        .insert_header((RELAY_HEADER, cluster.relay.secret.as_str()))
        .insert_header((RELAY_NODE_HEADER, env.node.as_str()))
        .insert_header((RELAY_PRINCIPAL_HEADER, B64.encode(&env.principal)));
    if let Some(p) = &env.peer {
        req = req.insert_header((RELAY_PEER_HEADER, p.as_str()));
    }
    let body = B64
        .decode(&env.body)
        .map_err(|e| (false, format!("body: {e}")))?;
    let mut resp = req.send_body(body).await.map_err(|e| {
        // Connecting to itself failed: nothing was sent.
        let sent = !matches!(e, awc::error::SendRequestError::Connect(_));
        (sent, e.to_string())
    })?;
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| !hop(k.as_str()))
        .map(|(k, v)| (k.as_str().to_string(), B64.encode(v.as_bytes())))
        .collect();
    let body = resp
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| (true, e.to_string()))?;
    Ok(Reply {
        id: env.id.clone(),
        accepted: false,
        status: resp.status().as_u16(),
        headers,
        body: B64.encode(&body),
        mac: String::new(),
    })
}

/// The principal a relay header carries.
pub fn principal_of(value: &[u8]) -> Option<Principal> {
    let json = B64.decode(value).ok()?;
    Principal::from_json(std::str::from_utf8(&json).ok()?).ok()
}
