//! Requests a follower cannot carry out itself (they need Genesys or the
//! store: writes, bulk writes, audit, history, interactions, webhooks) go to
//! the leader through Redis:
//!
//! 1. the follower `LPUSH`es an envelope (method, path and query, headers,
//!    client address, body, deadline) to `<prefix>:relay`;
//! 2. the leader `BLPOP`s it and carries it out against its own HTTP API
//!    on loopback, with the same headers (so the same authentication,
//!    scope checks, validation and audit apply) plus [`RELAY_HEADER`]
//!    carrying a secret only this process knows, so the receiving node's
//!    id and the client's address are believed only from a relay;
//! 3. the answer goes back on `<prefix>:relay:reply:<node>`.
//!
//! An envelope past its deadline is dropped unrun, so a request the
//! follower already answered 503 `leader_unavailable` is never carried out
//! later. Writes with an `Idempotency-Key` are safe to retry after a 503.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{conn_config, Cluster};

/// The header a leader adds to a relayed request: `<secret>`.
pub const RELAY_HEADER: &str = "x-presence-gateway-relay";
/// The node that received a relayed request (believed only with [`RELAY_HEADER`]).
pub const RELAY_NODE_HEADER: &str = "x-presence-gateway-relay-node";
/// The client address a relayed request came from (idem).
pub const RELAY_PEER_HEADER: &str = "x-presence-gateway-relay-peer";

/// On a request the leader carries out for another node: who received it.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The receiving node's id.
    pub node: String,
    /// The client's IP address as the receiving node saw it.
    pub peer: Option<String>,
}

/// A relayed request.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    id: String,
    node: String,
    /// Unix ms after which the leader must not run it.
    deadline_ms: i64,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    peer: Option<String>,
    /// Base64.
    body: String,
}

/// The leader's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    id: String,
    /// HTTP status.
    pub status: u16,
    /// Response headers (hop-by-hop ones left out).
    pub headers: Vec<(String, String)>,
    /// Base64 of the body.
    body: String,
}

impl Reply {
    /// The response body.
    pub fn body(&self) -> Bytes {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

/// Why a relayed request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("Redis refused the relayed request: {0}")]
    Redis(String),
    #[error("no leader answered within {0} ms")]
    Timeout(u64),
}

/// Requests waiting for their answer, and this process's relay secret.
pub(crate) struct RelayState {
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    secret: String,
}

impl RelayState {
    pub(crate) fn new() -> RelayState {
        RelayState {
            pending: Mutex::default(),
            secret: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// Headers never relayed (hop-by-hop, framing, and the relay's own).
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

    /// Has the leader carry out a request; waits at most `relay_timeout_ms`.
    pub async fn relay(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        peer: Option<String>,
        body: &[u8],
    ) -> Result<Reply, RelayError> {
        let wait = self.cfg.relay_timeout_ms;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let env = Envelope {
            id: id.clone(),
            node: self.node.clone(),
            deadline_ms: chrono::Utc::now().timestamp_millis() + wait as i64,
            method: method.to_string(),
            path: path.to_string(),
            headers: headers
                .into_iter()
                .filter(|(k, _)| !hop(&k.to_ascii_lowercase()))
                .collect(),
            peer,
            body: base64::engine::general_purpose::STANDARD.encode(body),
        };
        let (tx, rx) = oneshot::channel();
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
        if let Err(e) = pushed {
            self.relay.pending.lock().remove(&id);
            self.redis_failed(&e);
            return Err(RelayError::Redis(e.to_string()));
        }
        self.stats.relayed_out.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_millis(wait), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                self.relay.pending.lock().remove(&id);
                self.stats.relay_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(RelayError::Timeout(wait))
            }
        }
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
        let popped: Result<redis::RedisResult<Option<(String, String)>>, _> = tokio::time::timeout(
            Duration::from_secs(3),
            redis::cmd("BLPOP").arg(&key).arg(1).query_async(&mut conn),
        )
        .await;
        match popped {
            Ok(Ok(Some((_, json)))) => {
                backoff = Duration::from_millis(100);
                match serde_json::from_str::<Reply>(&json) {
                    Ok(reply) => {
                        if let Some(tx) = cluster.relay.pending.lock().remove(&reply.id) {
                            let _ = tx.send(reply);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster: unreadable relay reply skipped"),
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(_)) | Err(_) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
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
        .timeout(Duration::from_millis(cluster.cfg.relay_timeout_ms))
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
        let popped: Result<redis::RedisResult<Option<(String, String)>>, _> = tokio::time::timeout(
            Duration::from_secs(3),
            redis::cmd("BLPOP")
                .arg(&cluster.keys.relay)
                .arg(1)
                .query_async(&mut conn),
        )
        .await;
        match popped {
            Ok(Ok(Some((_, json)))) => {
                backoff = Duration::from_millis(100);
                match serde_json::from_str::<Envelope>(&json) {
                    Ok(env) => {
                        if env.deadline_ms < chrono::Utc::now().timestamp_millis() {
                            tracing::warn!(node = %env.node, path = %env.path, "cluster: relayed request past its deadline dropped unrun");
                            continue;
                        }
                        actix::spawn(carry_out(
                            cluster.clone(),
                            http.clone(),
                            local_base.clone(),
                            env,
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: unreadable relayed request skipped")
                    }
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(_)) | Err(_) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Runs one relayed request and sends its answer back.
async fn carry_out(cluster: Arc<Cluster>, http: awc::Client, base: String, env: Envelope) {
    cluster.stats.relayed_in.fetch_add(1, Ordering::Relaxed);
    let reply = match run(&cluster, &http, &base, &env).await {
        Ok(r) => r,
        Err(why) => {
            let body = serde_json::json!({
                "error": "leader_unavailable",
                "reason": format!("the leader could not carry out the request: {why}"),
            })
            .to_string();
            Reply {
                id: env.id.clone(),
                status: 503,
                headers: vec![("content-type".into(), "application/json".into())],
                body: base64::engine::general_purpose::STANDARD.encode(body),
            }
        }
    };
    let mut ctl = cluster.ctl.clone();
    let key = cluster.keys.replies(&env.node);
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
        .arg(cluster.cfg.relay_timeout_ms * 4)
        .ignore()
        .query_async(&mut ctl)
        .await;
    if let Err(e) = sent {
        cluster.redis_failed(&e);
    }
}

async fn run(
    cluster: &Cluster,
    http: &awc::Client,
    base: &str,
    env: &Envelope,
) -> Result<Reply, String> {
    let method = actix_web::http::Method::from_bytes(env.method.as_bytes())
        .map_err(|e| format!("method {:?}: {e}", env.method))?;
    if !env.path.starts_with('/') {
        return Err(format!("path {:?} does not start with /", env.path));
    }
    let mut req = http.request(method, format!("{base}{}", env.path));
    for (k, v) in &env.headers {
        if !hop(&k.to_ascii_lowercase()) {
            req = req.append_header((k.as_str(), v.as_str()));
        }
    }
    req = req
        .insert_header((RELAY_HEADER, cluster.relay.secret.as_str()))
        .insert_header((RELAY_NODE_HEADER, env.node.as_str()));
    if let Some(p) = &env.peer {
        req = req.insert_header((RELAY_PEER_HEADER, p.as_str()));
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(&env.body)
        .map_err(|e| format!("body: {e}"))?;
    let mut resp = req.send_body(body).await.map_err(|e| e.to_string())?;
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| !hop(k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Reply {
        id: env.id.clone(),
        status: resp.status().as_u16(),
        headers,
        body: base64::engine::general_purpose::STANDARD.encode(&body),
    })
}
