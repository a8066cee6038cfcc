//! One notification channel (`genesys-api.md` §5): create it, check it
//! (`HEAD`), subscribe its topics (`PUT` replaces the list and extends the
//! channel's 24 h life), connect to `connectUri` as returned, and read its
//! socket: heartbeats and pongs feed the watchdog, `socket_closing` asks the
//! actor for a make-before-break handover, events are normalised and sent to
//! the registry in order (awaiting mailbox room: back-pressure, no loss).
//! Malformed frames are counted and skipped, never fatal.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use awc::http::Method;
use awc::ws;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::directory::{presence_state, routing_state, GDefRef, GRouting};
use super::rest::{Lane, Rest, RestError};
use super::{UpstreamConfig, UpstreamStats};
use crate::model::{Origin, UpstreamEvent};

/// A channel as `POST /api/v2/notifications/channels` returned it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfo {
    pub id: String,
    pub connect_uri: String,
    pub expires: Option<DateTime<Utc>>,
}

/// Creates a channel.
pub async fn create(rest: &Rest) -> Result<ChannelInfo, RestError> {
    rest.call(
        Lane::Reconcile,
        Method::POST,
        "/api/v2/notifications/channels",
        None,
    )
    .await?
    .json()
}

/// True if the channel still exists (`HEAD` 200), false on 404.
pub async fn exists(rest: &Rest, id: &str) -> Result<bool, RestError> {
    let path = format!("/api/v2/notifications/channels/{id}");
    match rest.call(Lane::Reconcile, Method::HEAD, &path, None).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// A topic Genesys refused to subscribe, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The topic as the gateway spelled it.
    pub topic: String,
    /// Genesys's `rejectionReason` (or the error of the refused call).
    pub reason: String,
}

/// `ChannelTopic` of a subscription answer (`genesys-api.md` §5.1).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GChannelTopic {
    #[serde(default)]
    id: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    rejection_reason: Option<String>,
    #[serde(default)]
    missing_permissions: Vec<String>,
}

#[derive(Deserialize)]
struct GTopicListing {
    #[serde(default = "Vec::new", deserialize_with = "super::lenient::vec")]
    entities: Vec<GChannelTopic>,
}

/// True when Genesys refused a subscription call because of its topics
/// (400 `notification.invalid.topic`, 403 permissions) rather than their
/// number or the channel: those topics can be found and dropped.
pub fn is_topic_refusal(e: &RestError) -> bool {
    match e {
        RestError::Status { status: 403, .. } => true,
        RestError::Status {
            status: 400, code, ..
        } => code.eq_ignore_ascii_case("notification.invalid.topic"),
        _ => false,
    }
}

/// True for the 400 a channel answers when the topics are more than it may
/// carry (`genesys-api.md` §5.6: the code is UNCONFIRMED, so any 400 that
/// is not an invalid-topic refusal is read as the limit).
pub fn is_topic_limit(e: &RestError) -> bool {
    matches!(e, RestError::Status { status: 400, .. }) && !is_topic_refusal(e)
}

/// One `PUT` of `topics` with `ignoreErrors=true`; the topics Genesys
/// answered `Rejected`.
async fn put_topics(rest: &Rest, id: &str, topics: &[String]) -> Result<Vec<Refused>, RestError> {
    let body = Value::Array(topics.iter().map(|t| json!({ "id": t })).collect());
    let path = format!("/api/v2/notifications/channels/{id}/subscriptions?ignoreErrors=true");
    let resp = rest
        .call(Lane::Reconcile, Method::PUT, &path, Some(&body))
        .await?;
    // Whether `state` is always echoed is open (§5.1): only an explicit
    // `Rejected` counts as a refusal.
    let listing: GTopicListing = resp.json().unwrap_or(GTopicListing {
        entities: Vec::new(),
    });
    Ok(listing
        .entities
        .into_iter()
        .filter(|t| {
            t.state
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("rejected"))
        })
        .map(|t| {
            let mut reason = t.rejection_reason.unwrap_or_else(|| "rejected".into());
            if !t.missing_permissions.is_empty() {
                reason = format!("{reason} (missing {})", t.missing_permissions.join(", "));
            }
            Refused {
                topic: t.id,
                reason,
            }
        })
        .collect())
}

/// Replaces the channel's topics (one call for up to 1 000; this also
/// extends the channel's life by 24 h, §5.6) and returns the topics Genesys
/// refused, which are not subscribed.
///
/// With `ignoreErrors=true` Genesys answers refused topics as `Rejected`
/// entries (§5.1). Should it fail the whole call instead (400
/// `notification.invalid.topic` or 403), the offending topics are found by
/// bisection — a few `PUT`s of halves, ≈ 2·k·log₂(n) calls for k bad topics
/// among n — and the rest are subscribed. Any other error is returned.
pub async fn subscribe(
    rest: &Rest,
    id: &str,
    topics: &[String],
) -> Result<Vec<Refused>, RestError> {
    match put_topics(rest, id, topics).await {
        Ok(rejected) => Ok(rejected),
        Err(e) if is_topic_refusal(&e) => {
            let mut refused = Vec::new();
            let mut stack: Vec<(Vec<String>, RestError)> = vec![(topics.to_vec(), e)];
            while let Some((set, err)) = stack.pop() {
                if set.len() == 1 {
                    refused.push(Refused {
                        topic: set[0].clone(),
                        reason: err.to_string(),
                    });
                    continue;
                }
                let (a, b) = set.split_at(set.len() / 2);
                for half in [a, b] {
                    match put_topics(rest, id, half).await {
                        Ok(r) => refused.extend(r),
                        Err(e) if is_topic_refusal(&e) => stack.push((half.to_vec(), e)),
                        Err(e) => return Err(e),
                    }
                }
            }
            let good: Vec<String> = topics
                .iter()
                .filter(|t| !refused.iter().any(|r| r.topic.eq_ignore_ascii_case(t)))
                .cloned()
                .collect();
            let more = put_topics(rest, id, &good).await?;
            refused.extend(more);
            Ok(refused)
        }
        Err(e) => Err(e),
    }
}

/// A connected channel socket.
pub type Socket = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// Connects to `connectUri` exactly as returned (no auth header, §5.1).
pub async fn connect(rest: &Rest, connect_uri: &str) -> Result<Socket, String> {
    let (_resp, socket) = rest
        .client()
        .ws(connect_uri)
        .max_frame_size(16 * 1024 * 1024)
        .connect()
        .await
        .map_err(|e| format!("WebSocket connect to channel failed: {e}"))?;
    Ok(socket)
}

/// Why a channel socket stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum DropCause {
    /// Genesys closed it (code and reason when given).
    RemoteClosed(Option<u16>, String),
    /// Neither heartbeat nor pong within the watchdog's limits.
    PongTimeout,
    /// A read or write error on the socket.
    Io(String),
    /// `v2.system.no_longer_subscribed` or `token_revoked`: the channel is gone.
    ChannelRevoked(String),
    /// A newer socket took over (handover) or the gateway is stopping.
    Stopped,
    /// The registry is gone (process shutting down).
    RegistryGone,
}

impl std::fmt::Display for DropCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropCause::RemoteClosed(code, reason) => write!(f, "remote closed ({code:?} {reason})"),
            DropCause::PongTimeout => f.write_str("no heartbeat or pong (watchdog)"),
            DropCause::Io(e) => write!(f, "socket error: {e}"),
            DropCause::ChannelRevoked(why) => write!(f, "channel revoked: {why}"),
            DropCause::Stopped => f.write_str("stopped"),
            DropCause::RegistryGone => f.write_str("registry gone"),
        }
    }
}

/// Sent to the actor when Genesys warns that a socket will close.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub struct SocketClosing {
    pub shard: usize,
    pub generation: u64,
}

/// What a socket reader needs.
pub struct Reader {
    pub shard: usize,
    pub generation: u64,
    pub registry: Recipient<UpstreamEvent>,
    pub on_closing: Recipient<SocketClosing>,
    pub stats: Arc<UpstreamStats>,
    pub ping_after: Duration,
    pub pong_timeout: Duration,
    pub stop: CancellationToken,
    /// Writes in flight: their events are marked `Origin::Write`.
    pub pending_writes: super::actor::PendingWrites,
    /// Where conversation events of watched agents go.
    pub interactions: Option<Recipient<crate::model::ConversationSeen>>,
    /// Where to ask for a targeted re-read of an agent whose frame was unusable.
    pub reread: Option<Recipient<super::actor::ReReadAgent>>,
    /// Known definition ids and where to report an unknown one.
    pub known_definitions: Option<(
        super::actor::KnownDefinitions,
        Recipient<super::actor::UnknownDefinition>,
    )>,
}

impl Reader {
    /// Sends conversation events to the interaction hub.
    pub fn with_interactions(
        mut self,
        r: Option<Recipient<crate::model::ConversationSeen>>,
    ) -> Reader {
        self.interactions = r;
        self
    }

    /// Shares the upstream's writes in flight with this reader.
    pub fn with_pending_writes(mut self, p: super::actor::PendingWrites) -> Reader {
        self.pending_writes = p;
        self
    }

    pub fn new(
        cfg: &UpstreamConfig,
        shard: usize,
        generation: u64,
        registry: Recipient<UpstreamEvent>,
        on_closing: Recipient<SocketClosing>,
        stats: Arc<UpstreamStats>,
        stop: CancellationToken,
    ) -> Reader {
        Reader {
            shard,
            generation,
            registry,
            on_closing,
            stats,
            ping_after: Duration::from_secs_f64(cfg.ping_after_secs),
            pong_timeout: Duration::from_secs_f64(cfg.pong_timeout_secs),
            stop,
            pending_writes: Default::default(),
            interactions: None,
            known_definitions: None,
            reread: None,
        }
    }

    /// Asks `r` to re-read an agent whose frame could not be used.
    pub fn with_reread(mut self, r: Recipient<super::actor::ReReadAgent>) -> Reader {
        self.reread = Some(r);
        self
    }

    /// Reports presence definition ids not in `known` to `unknown` (the
    /// actor re-reads the definitions).
    pub fn with_known_definitions(
        mut self,
        known: super::actor::KnownDefinitions,
        unknown: Recipient<super::actor::UnknownDefinition>,
    ) -> Reader {
        self.known_definitions = Some((known, unknown));
        self
    }

    /// Reads the socket until it drops; returns why.
    pub async fn run(self, mut socket: Socket) -> DropCause {
        let mut last_frame = Instant::now();
        let mut pinged_at: Option<Instant> = None;
        let check = (self.ping_after.min(self.pong_timeout) / 4).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(check);
        let mut partial: Option<BytesMut> = None;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => {
                    let _ = socket.close().await;
                    return DropCause::Stopped;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    match pinged_at {
                        Some(at) if now.duration_since(at) >= self.pong_timeout => return DropCause::PongTimeout,
                        None if now.duration_since(last_frame) >= self.ping_after => {
                            // Application-level ping (§5.5), not an RFC 6455 ping.
                            if let Err(e) = socket.send(ws::Message::Text(r#"{"message":"ping"}"#.into())).await {
                                return DropCause::Io(e.to_string());
                            }
                            pinged_at = Some(now);
                        }
                        _ => {}
                    }
                }
                frame = socket.next() => {
                    let frame = match frame {
                        None => return DropCause::RemoteClosed(None, "connection ended".into()),
                        Some(Err(e)) => return DropCause::Io(e.to_string()),
                        Some(Ok(f)) => f,
                    };
                    last_frame = Instant::now();
                    pinged_at = None;
                    let text = match frame {
                        ws::Frame::Text(b) | ws::Frame::Binary(b) => b,
                        ws::Frame::Continuation(item) => match item {
                            actix_http::ws::Item::FirstText(b) | actix_http::ws::Item::FirstBinary(b) => {
                                partial = Some(BytesMut::from(&b[..]));
                                continue;
                            }
                            actix_http::ws::Item::Continue(b) => {
                                if let Some(p) = partial.as_mut() { p.extend_from_slice(&b); }
                                continue;
                            }
                            actix_http::ws::Item::Last(b) => match partial.take() {
                                Some(mut p) => { p.extend_from_slice(&b); p.freeze() }
                                None => continue,
                            },
                        },
                        ws::Frame::Ping(b) => {
                            if let Err(e) = socket.send(ws::Message::Pong(b)).await {
                                return DropCause::Io(e.to_string());
                            }
                            continue;
                        }
                        ws::Frame::Pong(_) => continue,
                        ws::Frame::Close(reason) => {
                            let (code, desc) = reason
                                .map(|r| (Some(u16::from(r.code)), r.description.unwrap_or_default()))
                                .unwrap_or((None, String::new()));
                            return DropCause::RemoteClosed(code, desc);
                        }
                    };
                    self.stats.mark_frame();
                    match parse_frame(&text) {
                        Parsed::Events(events) => {
                            if !events.is_empty() {
                                self.stats.mark_event(events.len() as u64);
                            }
                            for mut ev in events {
                                if let (UpstreamEvent::Presence { state, .. }, Some((known, unknown))) = (&ev, &self.known_definitions) {
                                    if !known.borrow().is_empty() && !known.borrow().contains(&state.definition_id) {
                                        let _ = unknown.try_send(super::actor::UnknownDefinition(state.definition_id.clone()));
                                    }
                                }
                                if let UpstreamEvent::Presence { user_id, state, origin } = &mut ev {
                                    if self.pending_writes.borrow().get(user_id.as_str()) == Some(&state.definition_id) {
                                        *origin = Origin::Write;
                                    }
                                }
                                if self.registry.send(ev).await.is_err() {
                                    return DropCause::RegistryGone;
                                }
                            }
                        }
                        Parsed::Conversation { user_id, body } => {
                            if let Some(hub) = &self.interactions {
                                let interaction = super::conversations::from_conversation(&user_id, &body);
                                let conversation_id = body.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                                if hub.send(crate::model::ConversationSeen { user_id, conversation_id, interaction }).await.is_err() {
                                    return DropCause::RegistryGone;
                                }
                            }
                        }
                        Parsed::Heartbeat | Parsed::Ignored => {}
                        Parsed::Closing => {
                            tracing::info!(shard = self.shard, "Genesys announced socket_closing; handing over");
                            let _ = self.on_closing.try_send(SocketClosing { shard: self.shard, generation: self.generation });
                        }
                        Parsed::Revoked(why) => return DropCause::ChannelRevoked(why),
                        Parsed::Malformed(why) => {
                            self.stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(shard = self.shard, why, "skipped a malformed notification frame");
                        }
                        Parsed::Unusable { user_id, why } => {
                            self.stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(shard = self.shard, why, "skipped an unusable notification frame; re-reading its agent");
                            if let Some(r) = &self.reread {
                                let _ = r.try_send(super::actor::ReReadAgent(user_id));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What one notification frame means to the gateway.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Events(Vec<UpstreamEvent>),
    /// `channel.metadata` heartbeat or pong.
    Heartbeat,
    /// `v2.system.socket_closing`.
    Closing,
    /// `v2.system.no_longer_subscribed.*` / `token_revoked.*`.
    Revoked(String),
    /// A `v2.users.{id}.conversations` event.
    Conversation {
        user_id: String,
        body: Value,
    },
    /// A topic the gateway does not use.
    Ignored,
    Malformed(String),
    /// A frame about one agent that cannot be used (missing or unknown
    /// fields): skipped, and that agent is re-read through REST.
    Unusable {
        user_id: String,
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFrame {
    topic_name: Option<String>,
    event_body: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresenceBody {
    presence_definition: Option<GDefRef>,
    message: Option<String>,
    presence_message: Option<String>,
    modified_date: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoutingBody {
    routing_status: Option<GRouting>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityBody {
    presence: Option<PresenceBody>,
    routing_status: Option<GRouting>,
}

/// Parses one frame (topics compare case-insensitively, §5.2).
pub fn parse_frame(text: &Bytes) -> Parsed {
    let frame: RawFrame = match super::lenient::from_slice(text) {
        Ok(f) => f,
        Err(e) => return Parsed::Malformed(format!("not a JSON frame: {e}")),
    };
    let Some(topic) = frame.topic_name else {
        return Parsed::Malformed("frame without topicName".into());
    };
    let lower = topic.to_ascii_lowercase();
    if lower == "channel.metadata" {
        return Parsed::Heartbeat;
    }
    if lower == "v2.system.socket_closing" {
        return Parsed::Closing;
    }
    if lower.starts_with("v2.system.no_longer_subscribed")
        || lower.starts_with("v2.system.token_revoked")
    {
        return Parsed::Revoked(topic);
    }
    let Some(rest) = lower.strip_prefix("v2.users.") else {
        return Parsed::Ignored;
    };
    let Some((user_lower, kind)) = rest.split_once('.') else {
        return Parsed::Ignored;
    };
    // Keep the id as Genesys spelled it in the topic.
    let user_id = topic["v2.users.".len().."v2.users.".len() + user_lower.len()].to_string();
    let unusable = |why: String| Parsed::Unusable {
        user_id: user_id.clone(),
        why,
    };
    let Some(body) = frame.event_body else {
        return unusable(format!("{topic}: no eventBody"));
    };
    let bad = |e: serde_json::Error| unusable(format!("{topic}: {e}"));
    match kind {
        "presence" => {
            let b: PresenceBody = match serde_json::from_value(body) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(state) = b.presence_definition.as_ref().and_then(|d| {
                presence_state(
                    d,
                    b.message.as_deref().or(b.presence_message.as_deref()),
                    b.modified_date,
                )
            }) else {
                return unusable(format!("{topic}: no presenceDefinition.id"));
            };
            Parsed::Events(vec![UpstreamEvent::Presence {
                user_id,
                state,
                origin: Origin::Event,
            }])
        }
        "routingstatus" => {
            let b: RoutingBody = match serde_json::from_value(body) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(state) = b
                .routing_status
                .and_then(|r| routing_state(r.status.as_deref(), r.start_time))
            else {
                return unusable(format!("{topic}: no valid routingStatus"));
            };
            Parsed::Events(vec![UpstreamEvent::Routing {
                user_id,
                state,
                origin: Origin::Event,
            }])
        }
        "activity" => {
            let b: ActivityBody = match serde_json::from_value(body) {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let mut out = Vec::with_capacity(2);
            if let Some(state) = b.presence.as_ref().and_then(|p| {
                presence_state(
                    p.presence_definition.as_ref()?,
                    p.presence_message.as_deref().or(p.message.as_deref()),
                    p.modified_date,
                )
            }) {
                out.push(UpstreamEvent::Presence {
                    user_id: user_id.clone(),
                    state,
                    origin: Origin::Event,
                });
            }
            if let Some(state) = b
                .routing_status
                .and_then(|r| routing_state(r.status.as_deref(), r.start_time))
            {
                out.push(UpstreamEvent::Routing {
                    user_id: user_id.clone(),
                    state,
                    origin: Origin::Event,
                });
            }
            if out.is_empty() {
                return unusable(format!("{topic}: neither presence nor routingStatus"));
            }
            Parsed::Events(out)
        }
        "conversations" => {
            if body.get("id").and_then(Value::as_str).is_none() {
                return Parsed::Malformed(format!("{topic}: conversation without id"));
            }
            Parsed::Conversation { user_id, body }
        }
        _ => Parsed::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RoutingStatus, SystemPresence};

    fn parse(s: &str) -> Parsed {
        parse_frame(&Bytes::from(s.to_string()))
    }

    /// The official presence example (upper-case AVAILABLE) normalises.
    #[test]
    fn presence_event() {
        let p = parse(
            r#"{"topicName":"v2.users.9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f.presence","version":"2","eventBody":{"source":"PURECLOUD","presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b","systemPresence":"AVAILABLE"},"primary":true,"message":"","modifiedDate":"2026-05-20T09:26:23.511Z"},"metadata":{"CorrelationId":"x"}}"#,
        );
        let Parsed::Events(ev) = p else {
            panic!("{p:?}")
        };
        match &ev[0] {
            UpstreamEvent::Presence { user_id, state, .. } => {
                assert_eq!(user_id, "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f");
                assert_eq!(state.system_presence, SystemPresence::Available);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The real captured activity event yields presence and routing events.
    #[test]
    fn activity_event() {
        let p = parse(
            r#"{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity","version":"2","eventBody":{"id":"e40f28ea-fa86-493f-a5b8-d559c8533c96","routingStatus":{"status":"OFF_QUEUE","startTime":"2021-05-14T09:03:17.067Z"},"presence":{"presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b","systemPresence":"AVAILABLE"},"modifiedDate":"2021-05-14T09:03:17.047Z"},"outOfOffice":{"active":false},"activeQueueIds":[]},"metadata":{"CorrelationId":"9e"}}"#,
        );
        let Parsed::Events(ev) = p else {
            panic!("{p:?}")
        };
        assert_eq!(ev.len(), 2);
        assert!(
            matches!(&ev[1], UpstreamEvent::Routing { state, .. } if state.status == RoutingStatus::OffQueue)
        );
    }

    /// Topic names compare case-insensitively; heartbeats and closings are recognised.
    #[test]
    fn control_frames() {
        assert_eq!(
            parse(
                r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#
            ),
            Parsed::Heartbeat
        );
        assert_eq!(
            parse(r#"{"topicName":"v2.system.socket_closing","eventBody":{}}"#),
            Parsed::Closing
        );
        assert!(matches!(
            parse(
                r#"{"topicName":"V2.USERS.abc.ROUTINGSTATUS","eventBody":{"routingStatus":{"status":"IDLE","startTime":"2021-05-14T09:03:17.067Z"}}}"#
            ),
            Parsed::Events(_)
        ));
    }

    /// Garbage is reported as malformed, never a panic.
    #[test]
    fn malformed_frames() {
        for f in [
            "not json",
            "{}",
            r#"{"topicName":"v2.users.a.presence"}"#,
            r#"{"topicName":"v2.users.a.presence","eventBody":{"presenceDefinition":{}}}"#,
            r#"{"topicName":"v2.users.a.routingStatus","eventBody":{"routingStatus":{"status":"DANCING"}}}"#,
        ] {
            assert!(
                matches!(parse(f), Parsed::Malformed(_) | Parsed::Unusable { .. }),
                "{f}"
            );
        }
        // A frame about one agent names it, for a targeted re-read.
        assert!(matches!(
            parse(r#"{"topicName":"v2.users.a.routingStatus","eventBody":{"routingStatus":{"status":"DANCING"}}}"#),
            Parsed::Unusable { user_id, .. } if user_id == "a"
        ));
    }
}
