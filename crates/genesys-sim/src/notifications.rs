//! Notification channels (`genesys-api.md` §5): the REST channel and
//! subscription endpoints and the channel WebSocket at `connectUri`.
//!
//! Rules enforced as the real service does: 20 channels per OAuth client
//! (the 21st evicts the oldest, idle ones first), 1 000 topics per channel
//! (400 beyond), 24 h expiry extended by re-subscribing, one socket per
//! channel (a second kicks the first), heartbeats, `{"message":"ping"}` →
//! pong, and no delivery (events lost) while no socket is connected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::{error_response, json_body, query_pairs, single, Ctx, GError, Reply};
use super::state::{validate_topic, Channel, SocketCmd, SocketSlot};
use super::Sim;
use crate::spelling::iso;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/notifications/channels", web::post().to(create_channel))
        .route("/notifications/channels", web::get().to(list_channels))
        .route("/notifications/channels/{id}", web::head().to(head_channel))
        .route(
            "/notifications/channels/{id}/subscriptions",
            web::get().to(get_subscriptions),
        )
        .route(
            "/notifications/channels/{id}/subscriptions",
            web::post().to(add_subscriptions),
        )
        .route(
            "/notifications/channels/{id}/subscriptions",
            web::put().to(replace_subscriptions),
        )
        .route(
            "/notifications/channels/{id}/subscriptions",
            web::delete().to(delete_subscriptions),
        )
        .route(
            "/notifications/availabletopics",
            web::get().to(available_topics),
        );
}

fn channel_json(req: &HttpRequest, ch: &Channel) -> Value {
    let host = req.connection_info().host().to_string();
    json!({
        "connectUri": format!("ws://{host}/channels/{}", ch.id),
        "id": ch.id,
        "expires": iso(ch.expires),
    })
}

/// `POST /api/v2/notifications/channels`.
async fn create_channel(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let mut inner = sim.inner.lock();
    // Past the per-client limit the oldest channel goes, preferring ones
    // with no socket (F-LIMITS: "oldest last used date").
    let own: Vec<(bool, Instant, String)> = inner
        .channels
        .values()
        .filter(|c| c.client_id == ctx.client_id)
        .map(|c| (c.socket.is_some(), c.last_used, c.id.clone()))
        .collect();
    if own.len() >= sim.cfg.max_channels {
        if let Some((_, _, victim)) = own.into_iter().min() {
            inner.stats.channels_evicted += 1;
            inner.remove_channel(&victim, Some((1000, "channel replaced by a newer channel")));
        }
    }
    let n = inner.roll(10);
    let id = format!(
        "streaming-{n}-{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..26)
            .unwrap_or_default()
    );
    let ch = Channel {
        id: id.clone(),
        client_id: ctx.client_id.clone(),
        token: ctx.token.clone(),
        expires: Utc::now() + chrono::Duration::seconds(sim.cfg.channel_ttl_secs as i64),
        last_used: Instant::now(),
        topics: Vec::new(),
        socket: None,
    };
    let body = channel_json(&req, &ch);
    inner.channels.insert(id, ch);
    inner.stats.channels_created += 1;
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v2/notifications/channels?includechannels=token|oauthclient`.
async fn list_channels(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let pairs = query_pairs(&req);
    let scope = single(&pairs, "includechannels").unwrap_or("token");
    if scope != "token" && scope != "oauthclient" {
        return Err(ctx.err(400, "invalid.value", format!("Value [{scope}] is not valid for field type [includechannels]. Allowable values are: token, oauthclient")));
    }
    let inner = sim.inner.lock();
    let entities: Vec<Value> = inner
        .channels
        .values()
        .filter(|c| c.client_id == ctx.client_id)
        .filter(|c| scope == "oauthclient" || c.token == ctx.token)
        .map(|c| {
            if c.token == ctx.token {
                channel_json(&req, c)
            } else {
                // Other tokens' channels show, but not their ids.
                json!({"expires": iso(c.expires)})
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"entities": entities})))
}

/// `HEAD /api/v2/notifications/channels/{id}`: 200 if it exists, 404 if not.
async fn head_channel(path: web::Path<String>, sim: web::Data<Sim>) -> HttpResponse {
    if sim.inner.lock().channels.contains_key(path.as_str()) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().finish()
    }
}

fn topics_listing(topics: &[String]) -> Value {
    let entities: Vec<Value> = topics
        .iter()
        .map(|t| json!({"id": t, "state": "Permitted"}))
        .collect();
    json!({ "entities": entities })
}

/// `GET …/subscriptions`.
async fn get_subscriptions(ctx: Ctx, path: web::Path<String>, sim: web::Data<Sim>) -> Reply {
    let inner = sim.inner.lock();
    let ch = inner
        .channels
        .get(path.as_str())
        .ok_or_else(|| ctx.not_found("The requested resource was not found."))?;
    Ok(HttpResponse::Ok().json(topics_listing(&ch.topics)))
}

#[derive(Deserialize)]
struct TopicItem {
    id: Option<String>,
}

enum Mode {
    Add,
    Replace,
}

/// Validates the topics of a subscription call. With `ignoreErrors` invalid
/// topics are left out and reported `Rejected` instead of failing the call.
///
/// Topics refused by a `refuse_topic` fault get its status (400
/// `notification.invalid.topic`, 403 `missing.permissions`) or, with
/// `ignoreErrors`, a `Rejected` entry naming the missing permission.
fn check_topics(
    ctx: &Ctx,
    items: Vec<TopicItem>,
    ignore_errors: bool,
    refused: &std::collections::HashMap<String, u16>,
) -> Result<(Vec<String>, Vec<Value>), GError> {
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for item in items {
        let Some(topic) = item.id else {
            return Err(ctx.bad_request("Each topic needs an id"));
        };
        let verdict = match refused.get(&topic.to_ascii_lowercase()) {
            Some(403) => Err((
                403,
                "The subscription topic requires permissions the client lacks.".to_string(),
            )),
            Some(_) => Err((400, "The subscription topic is not valid.".to_string())),
            None => validate_topic(&topic).map_err(|r| (400, r)),
        };
        match verdict {
            Ok(()) => ok.push(topic),
            Err((403, reason)) if ignore_errors => rejected.push(json!({
                "id": topic, "state": "Rejected", "rejectionReason": reason,
                "missingPermissions": ["conversation:communication:view"]
            })),
            Err((403, reason)) => {
                return Err(ctx.err(403, "missing.permissions", format!("{reason} [{topic}]")))
            }
            Err((_, reason)) if ignore_errors => {
                rejected.push(json!({"id": topic, "state": "Rejected", "rejectionReason": reason}))
            }
            Err((_, reason)) => {
                return Err(ctx.err(
                    400,
                    "notification.invalid.topic",
                    format!("{reason} [{topic}]"),
                ))
            }
        }
    }
    Ok((ok, rejected))
}

async fn change_subscriptions(
    req: HttpRequest,
    ctx: Ctx,
    id: String,
    body: web::Bytes,
    sim: web::Data<Sim>,
    mode: Mode,
) -> Reply {
    let items: Vec<TopicItem> = json_body(&ctx, &body)?;
    let ignore = sim.cfg.ignore_errors_honoured
        && single(&query_pairs(&req), "ignoreErrors").is_some_and(|v| v == "true");
    let refused = sim.inner.lock().faults.refused_topics.clone();
    let (topics, rejected) = check_topics(&ctx, items, ignore, &refused)?;
    let mut inner = sim.inner.lock();
    inner.stats.subscription_requests += 1;
    let ch = inner
        .channels
        .get(id.as_str())
        .ok_or_else(|| ctx.not_found("The requested resource was not found."))?;
    let mut next: Vec<String> = match mode {
        Mode::Add => ch.topics.clone(),
        Mode::Replace => Vec::new(),
    };
    for t in topics {
        if !next.iter().any(|e| e.eq_ignore_ascii_case(&t)) {
            next.push(t);
        }
    }
    let count = inner.topic_count(&next, sim.cfg.combined_topics_count_expanded);
    if count > sim.cfg.max_topics {
        return Err(ctx.bad_request(format!(
            "Channel topic limit exceeded: {count} topics requested, at most {} allowed per channel",
            sim.cfg.max_topics
        )));
    }
    inner.set_topics(&id, next);
    let ttl = sim.cfg.channel_ttl_secs as i64;
    // unwrap: the channel was found above under the same lock
    let ch = inner.channels.get_mut(id.as_str()).unwrap();
    ch.expires = Utc::now() + chrono::Duration::seconds(ttl);
    ch.last_used = Instant::now();
    let mut listing = topics_listing(&ch.topics);
    if let Some(arr) = listing["entities"].as_array_mut() {
        arr.extend(rejected);
    }
    Ok(HttpResponse::Ok().json(listing))
}

/// `POST …/subscriptions`: adds to the list (and extends the channel's life).
async fn add_subscriptions(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> Reply {
    change_subscriptions(req, ctx, path.into_inner(), body, sim, Mode::Add).await
}

/// `PUT …/subscriptions`: replaces the list.
async fn replace_subscriptions(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> Reply {
    change_subscriptions(req, ctx, path.into_inner(), body, sim, Mode::Replace).await
}

/// `DELETE …/subscriptions`: removes all; no body.
async fn delete_subscriptions(ctx: Ctx, path: web::Path<String>, sim: web::Data<Sim>) -> Reply {
    let mut inner = sim.inner.lock();
    if !inner.channels.contains_key(path.as_str()) {
        return Err(ctx.not_found("The requested resource was not found."));
    }
    inner.set_topics(&path, Vec::new());
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v2/notifications/availabletopics` (the topics the simulator publishes).
async fn available_topics() -> HttpResponse {
    let topics = [
        ("v2.users.{id}.presence", "PresenceEventUserPresence"),
        (
            "v2.users.{id}.routingStatus",
            "UserRoutingStatusUserRoutingStatus",
        ),
        (
            "v2.users.{id}.activity",
            "AgentActivityChangedTopicAgentActivity",
        ),
        (
            "v2.users.{id}.conversations",
            "ConversationEventTopicConversation",
        ),
        (
            "v2.users.{id}.conversationsummary",
            "UserConversationsEventUserConversationSummary",
        ),
        (
            "v2.routing.queues.{id}.users",
            "QueueUserEventTopicQueueMember",
        ),
    ];
    let entities: Vec<Value> = topics
        .iter()
        .map(|(id, schema)| json!({"id": id, "description": schema, "transports": ["Websocket"]}))
        .collect();
    HttpResponse::Ok().json(json!({ "entities": entities }))
}

/// `GET /channels/{id}`: the channel WebSocket (no auth; the channel id is
/// the credential, as with the real `connectUri`).
pub async fn socket(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    sim: web::Data<Sim>,
) -> actix_web::Result<HttpResponse> {
    let id = path.into_inner();
    if !sim.inner.lock().channels.contains_key(&id) {
        return Ok(error_response(
            404,
            "not.found",
            "The requested resource was not found.",
            &uuid::Uuid::new_v4().to_string(),
        ));
    }
    if req.headers().get(header::UPGRADE).is_none() {
        return Ok(HttpResponse::BadRequest().body("expected a WebSocket upgrade"));
    }
    let (resp, session, stream) = actix_ws::handle(&req, body)?;
    let (tx, rx) = mpsc::channel(sim.cfg.socket_queue);
    let generation = {
        let mut inner = sim.inner.lock();
        inner.socket_generation += 1;
        let generation = inner.socket_generation;
        let mut kicked = false;
        match inner.channels.get_mut(&id) {
            Some(ch) => {
                // One socket per channel: a second connection kicks the first.
                if let Some(old) = ch.socket.take() {
                    let _ = old.tx.try_send(SocketCmd::Close(
                        4000,
                        "another socket connected to this channel".into(),
                    ));
                    kicked = true;
                }
                ch.socket = Some(SocketSlot {
                    generation,
                    tx,
                    closing_at: None,
                });
                ch.last_used = Instant::now();
            }
            None => return Ok(HttpResponse::NotFound().finish()),
        }
        inner.stats.sockets_opened += 1;
        if kicked {
            inner.stats.sockets_kicked += 1;
        }
        generation
    };
    actix_web::rt::spawn(run_socket(
        sim.into_inner(),
        id,
        generation,
        session,
        stream,
        rx,
    ));
    Ok(resp)
}

#[derive(Deserialize)]
struct ClientMessage {
    message: Option<String>,
    topics: Option<Vec<String>>,
    #[serde(rename = "correlationId")]
    correlation_id: Option<String>,
}

const HEARTBEAT: &str =
    r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#;
const PONG: &str = r#"{"topicName":"channel.metadata","eventBody":{"message":"pong"}}"#;

/// Drives one channel socket until it closes or is replaced.
async fn run_socket(
    sim: Arc<Sim>,
    channel_id: String,
    generation: u64,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut rx: mpsc::Receiver<SocketCmd>,
) {
    let period = Duration::from_secs_f64(sim.cfg.heartbeat_secs);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let close_reason = loop {
        tokio::select! {
            _ = sim.stop.cancelled() => break Some(CloseReason { code: CloseCode::Away, description: Some("simulator stopping".into()) }),
            cmd = rx.recv() => match cmd {
                Some(SocketCmd::Text(t)) => {
                    if session.text(t).await.is_err() { break None; }
                }
                Some(SocketCmd::Close(code, reason)) => break Some(CloseReason { code: CloseCode::Other(code), description: Some(reason) }),
                Some(SocketCmd::Abort) | None => {
                    // Dropping the session without a close frame ends the connection abruptly.
                    detach(&sim, &channel_id, generation);
                    return;
                }
            },
            _ = heartbeat.tick() => {
                if !sim.inner.lock().faults.stalled() && session.text(HEARTBEAT).await.is_err() {
                    break None;
                }
            }
            msg = stream.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let reply = handle_client_text(&sim, &channel_id, &text);
                    if let Some(reply) = reply {
                        if session.text(reply).await.is_err() { break None; }
                    }
                }
                Some(Ok(Message::Ping(b))) => {
                    if session.pong(&b).await.is_err() { break None; }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
        }
    };
    detach(&sim, &channel_id, generation);
    let _ = session.close(close_reason).await;
}

/// Forgets this socket on its channel unless a newer one took its place.
fn detach(sim: &Sim, channel_id: &str, generation: u64) {
    let mut inner = sim.inner.lock();
    if let Some(ch) = inner.channels.get_mut(channel_id) {
        if ch
            .socket
            .as_ref()
            .is_some_and(|s| s.generation == generation)
        {
            ch.socket = None;
        }
    }
}

/// Answers a client text frame: ping → pong, and the WebSocket-level
/// subscribe/unsubscribe messages of §5.7.
fn handle_client_text(sim: &Sim, channel_id: &str, text: &str) -> Option<String> {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(_) => {
            return Some(
                json!({"result": "400", "status": "error", "message": "Invalid request: not a JSON object."})
                    .to_string(),
            )
        }
    };
    let stalled = sim.inner.lock().faults.stalled();
    match msg.message.as_deref() {
        Some("ping") => (!stalled).then(|| PONG.to_string()),
        Some(kind @ ("subscribe" | "unsubscribe")) => {
            let corr = msg.correlation_id.clone().unwrap_or_default();
            let Some(topics) = msg.topics.filter(|t| !t.is_empty()) else {
                return Some(json!({"correlationId": corr, "topics": [], "result": "400", "status": "error", "message": "Required data missing from subscribe request."}).to_string());
            };
            if let Some(bad) = topics.iter().find(|t| validate_topic(t).is_err()) {
                return Some(json!({"correlationId": corr, "topics": topics, "result": "400", "status": "error", "message": format!("The subscription topic is not valid. [{bad}]")}).to_string());
            }
            let mut inner = sim.inner.lock();
            let Some(ch) = inner.channels.get(channel_id) else {
                return Some(json!({"correlationId": corr, "result": "404", "status": "error", "message": "Channel not found."}).to_string());
            };
            let mut next = ch.topics.clone();
            if kind == "subscribe" {
                for t in &topics {
                    if !next.iter().any(|e| e.eq_ignore_ascii_case(t)) {
                        next.push(t.clone());
                    }
                }
            } else {
                next.retain(|e| !topics.iter().any(|t| t.eq_ignore_ascii_case(e)));
            }
            if inner.topic_count(&next, sim.cfg.combined_topics_count_expanded) > sim.cfg.max_topics {
                return Some(json!({"correlationId": corr, "topics": topics, "result": "400", "status": "error", "message": "Channel topic limit exceeded."}).to_string());
            }
            inner.set_topics(channel_id, next);
            let status = if kind == "subscribe" { "subscribed" } else { "unsubscribed" };
            Some(json!({"correlationId": corr, "topics": topics, "result": "200", "status": status}).to_string())
        }
        _ => Some(
            json!({"result": "400", "status": "error", "message": "Invalid request: unknown message."})
                .to_string(),
        ),
    }
}
