//! The `/sim` control API (design.md "Simulator contract"): ground truth,
//! presence changes as Genesys would make them, churn and fault injection.
//! Not part of Genesys; no auth, no rate limit. Errors are
//! `{"error", "reason"}` JSON like the gateway's own API.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse, Scope};
use serde::Deserialize;
use serde_json::json;

use super::state::{user_state_json, FaultBudget, SocketCmd};
use super::Sim;
use crate::spelling::SystemPresence;

pub fn scope() -> Scope {
    web::scope("/sim")
        .route("/state", web::get().to(state))
        .route("/stats", web::get().to(stats))
        .route("/users/{id}/presence", web::post().to(set_presence))
        .route("/churn", web::post().to(churn))
        .route("/faults", web::post().to(faults))
}

fn bad(reason: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": "bad_request", "reason": reason.into()}))
}

/// `GET /sim/state`: every user's true presence, routing status and conversations.
async fn state(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.inner.lock().state_json())
}

/// `GET /sim/stats`: request, token, channel and event counters.
async fn stats(sim: web::Data<Sim>) -> HttpResponse {
    let inner = sim.inner.lock();
    let sockets = inner
        .channels
        .values()
        .filter(|c| c.socket.is_some())
        .count();
    let topics: usize = inner.channels.values().map(|c| c.topics.len()).sum();
    HttpResponse::Ok().json(json!({
        "counters": inner.stats,
        "channels": inner.channels.len(),
        "sockets": sockets,
        "topics": topics,
        "tokens": inner.tokens.values().filter(|t| t.expires_at > Instant::now()).count(),
        "churnRate": inner.churn_rate,
        "stalled": inner.faults.stalled(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PresenceBody {
    system_presence: Option<String>,
    definition_id: Option<String>,
    message: Option<String>,
}

/// `POST /sim/users/{id}/presence`: `{"systemPresence": "BREAK"}` or
/// `{"definitionId": …}` (+ optional `message`), emitting the events.
async fn set_presence(
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let b: PresenceBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "body must be {{\"systemPresence\": …}} or {{\"definitionId\": …}}: {e}"
            ))
        }
    };
    let mut inner = sim.inner.lock();
    let Some(u) = inner.user_idx(&path) else {
        return HttpResponse::NotFound()
            .json(json!({"error": "not_found", "reason": format!("no user {}", *path)}));
    };
    let def = match (&b.system_presence, &b.definition_id) {
        (Some(sp), None) => match SystemPresence::parse(sp) {
            Some(sp) => inner.org.primary_def(sp),
            None => return bad(format!("unknown systemPresence {sp:?}; use one of AVAILABLE, AWAY, BUSY, OFFLINE, IDLE, ON_QUEUE, MEAL, TRAINING, MEETING, BREAK")),
        },
        (None, Some(id)) => match inner.org.def_by_id(id) {
            Some(d) => d,
            None => return bad(format!("unknown definitionId {id:?}")),
        },
        _ => return bad("give exactly one of systemPresence and definitionId"),
    };
    inner.set_presence(u, def, b.message);
    HttpResponse::Ok().json(user_state_json(&inner.org, &inner.org.users[u]))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChurnBody {
    events_per_second: f64,
}

/// `POST /sim/churn`: `{"eventsPerSecond": n}` (0 stops).
async fn churn(body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    match serde_json::from_slice::<ChurnBody>(&body) {
        Ok(b) if b.events_per_second >= 0.0 && b.events_per_second.is_finite() => {
            sim.inner.lock().churn_rate = b.events_per_second;
            HttpResponse::Ok().json(json!({"eventsPerSecond": b.events_per_second}))
        }
        Ok(_) => bad("eventsPerSecond must be a number ≥ 0"),
        Err(e) => bad(format!("body must be {{\"eventsPerSecond\": n}}: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultBody {
    kind: String,
    count: Option<u64>,
    seconds: Option<f64>,
    /// Delay per response for `slow_responses` (default 2 000 ms).
    delay_ms: Option<u64>,
    /// `refuse_topic`: the topic to refuse.
    topic: Option<String>,
    /// `refuse_topic`: 400 (default) or 403.
    status: Option<u16>,
    /// `rewind`: how far back the restored state is dated (default 3 h).
    hours: Option<f64>,
    /// `add_definition`: the system presence of the new secondary definition.
    system_presence: Option<String>,
    /// `add_definition`: its `en_US` label.
    label: Option<String>,
    /// `bad_event`: the user whose change goes out as an unusable event.
    user_id: Option<String>,
}

/// `POST /sim/faults`: `{"kind": …, "count"/"seconds": …}`.
///
/// - `drop_sockets`: abruptly drop `count` sockets (all by default), no close frame.
/// - `socket_closing`: send `v2.system.socket_closing` to every socket (or
///   `count`) and close them after `seconds` (default: the configured grace).
/// - `heartbeat_stall`: for `seconds` (default 60) nothing leaves any socket:
///   no heartbeats, no pongs, no events (lost).
/// - `rate_limit`: the next `count` API requests (default 5), or those for
///   `seconds`, get 429 with `Retry-After`.
/// - `service_unavailable`: the same with 503.
/// - `expire_tokens`: every issued token expires now.
/// - `evict_channels`: `count` channels (all by default) are evicted as if
///   replaced by newer ones.
/// - `slow_responses`: the next `count` requests (or those for `seconds`)
///   are delayed by `delayMs`.
/// - `refuse_topic`: subscribing `topic` is refused with `status` (400
///   `notification.invalid.topic`, the default, or 403 `missing.permissions`),
///   or answered `Rejected` under `ignoreErrors=true`; `count: 0` lifts it.
/// - `rewind`: Genesys restarted with older state: every user gets another
///   presence and routing status dated `hours` (default 3) in the past,
///   without events, and every socket drops.
/// - `clock_offset`: every date stamped from now on is shifted by `seconds`
///   (may be negative): Genesys's clock ahead of or behind the gateway's.
/// - `add_definition`: a new secondary presence definition under
///   `systemPresence` with `label`; the answer carries its `id`.
/// - `bad_event`: user `userId` really changes to `systemPresence`, but the
///   events that say so are unusable (presence without a definition id,
///   routing status `DANCING`).
async fn faults(body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let b: FaultBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "body must be {{\"kind\": …, \"count\"|\"seconds\": …}}: {e}"
            ))
        }
    };
    if b.seconds.is_some_and(|s| !s.is_finite()) {
        return bad("seconds must be a finite number");
    }
    let window = |default_count: Option<u64>| FaultBudget {
        remaining: b.count.or(if b.seconds.is_none() {
            default_count
        } else {
            None
        }),
        until: b
            .seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s)),
        delay: Duration::from_millis(b.delay_ms.unwrap_or(2_000)),
    };
    if b.kind != "clock_offset" && b.seconds.is_some_and(|s| s < 0.0) {
        return bad("seconds must be a number ≥ 0");
    }
    let mut inner = sim.inner.lock();
    let mut extra = serde_json::Map::new();
    let limit = b.count.map(|c| c as usize).unwrap_or(usize::MAX);
    let affected = match b.kind.as_str() {
        "drop_sockets" => {
            let mut n = 0;
            for ch in inner.channels.values_mut() {
                if n >= limit {
                    break;
                }
                if let Some(slot) = ch.socket.take() {
                    let _ = slot.tx.try_send(SocketCmd::Abort);
                    n += 1;
                }
            }
            n
        }
        "socket_closing" => {
            let grace = b.seconds.unwrap_or(sim.cfg.socket_closing_grace_secs);
            let at = Instant::now() + Duration::from_secs_f64(grace);
            let mut targets = Vec::new();
            for ch in inner.channels.values_mut() {
                if targets.len() >= limit {
                    break;
                }
                if let Some(slot) = ch.socket.as_mut() {
                    slot.closing_at = Some(at);
                    targets.push((ch.id.clone(), slot.tx.clone()));
                }
            }
            for (id, tx) in &targets {
                let frame = json!({
                    "topicName": "v2.system.socket_closing",
                    "version": "2",
                    "eventBody": {
                        "channelId": id, "systemTopicType": "socket_closing",
                        "reason": "maintenance",
                        "message": format!("WebSocket closing in {} seconds", grace.round()),
                    },
                    "metadata": {"CorrelationId": uuid::Uuid::new_v4().to_string()},
                });
                let _ = tx.try_send(SocketCmd::Text(frame.to_string().into()));
            }
            targets.len()
        }
        "heartbeat_stall" => {
            let secs = b.seconds.unwrap_or(60.0);
            inner.faults.stall_until = Some(Instant::now() + Duration::from_secs_f64(secs));
            inner.channels.values().filter(|c| c.socket.is_some()).count()
        }
        "rate_limit" => {
            inner.faults.rate_limit = window(Some(5));
            0
        }
        "service_unavailable" => {
            inner.faults.service_unavailable = window(Some(5));
            0
        }
        "slow_responses" => {
            inner.faults.slow_responses = window(Some(5));
            0
        }
        "expire_tokens" => {
            let now = Instant::now();
            let past = now - Duration::from_millis(1);
            let mut n = 0;
            for t in inner.tokens.values_mut().filter(|t| t.expires_at > now) {
                t.expires_at = past;
                n += 1;
            }
            inner.housekeeping(&sim.cfg);
            n
        }
        "evict_channels" => {
            let ids: Vec<String> = inner.channels.keys().take(limit).cloned().collect();
            for id in &ids {
                inner.stats.channels_evicted += 1;
                inner.remove_channel(id, Some((1000, "channel replaced by a newer channel")));
            }
            ids.len()
        }
        "refuse_topic" => {
            let Some(topic) = b.topic.as_deref().filter(|t| !t.is_empty()) else {
                return bad("refuse_topic needs \"topic\": the subscription topic to refuse");
            };
            let status = b.status.unwrap_or(400);
            if status != 400 && status != 403 {
                return bad("refuse_topic: status must be 400 or 403");
            }
            let key = topic.to_ascii_lowercase();
            if b.count == Some(0) {
                inner.faults.refused_topics.remove(&key);
                0
            } else {
                inner.faults.refused_topics.insert(key, status);
                1
            }
        }
        "rewind" => {
            let hours = b.hours.unwrap_or(3.0);
            if !(hours.is_finite() && hours > 0.0) {
                return bad("rewind: hours must be a number > 0");
            }
            inner.rewind(hours)
        }
        "clock_offset" => {
            let secs = b.seconds.unwrap_or(0.0);
            inner.faults.clock_offset = chrono::Duration::milliseconds((secs * 1000.0) as i64);
            0
        }
        "add_definition" => {
            let sp = match b.system_presence.as_deref().map(SystemPresence::parse) {
                Some(Some(sp)) => sp,
                _ => return bad("add_definition needs \"systemPresence\": one of AVAILABLE, AWAY, BUSY, OFFLINE, IDLE, ON_QUEUE, MEAL, TRAINING, MEETING, BREAK"),
            };
            let Some(label) = b.label.clone().filter(|l| !l.trim().is_empty()) else {
                return bad("add_definition needs a non-empty \"label\"");
            };
            let id = crate::org::uuid_from(&mut inner.rng);
            inner.org.definitions.push(crate::org::SimDefinition {
                id: id.clone(),
                system_presence: sp,
                labels: std::collections::BTreeMap::from([("en_US".to_string(), label)]),
                primary: false,
                deactivated: false,
            });
            extra.insert("id".into(), json!(id));
            1
        }
        "bad_event" => {
            let Some(u) = b.user_id.as_deref().and_then(|id| inner.user_idx(id)) else {
                return bad("bad_event needs \"userId\": a user of /sim/state");
            };
            let Some(sp) = b.system_presence.as_deref().and_then(SystemPresence::parse) else {
                return bad("bad_event needs \"systemPresence\", e.g. BREAK");
            };
            let def = inner.org.primary_def(sp);
            let now = chrono::Utc::now() + inner.faults.clock_offset;
            let user = &mut inner.org.users[u];
            user.presence_def = def;
            user.presence_modified = now;
            let id = user.id.clone();
            let body = json!({
                "id": id,
                "presence": {"presenceDefinition": {"systemPresence": sp.upper_snake()}},
                "routingStatus": {"status": "DANCING"},
            });
            inner.emit(&format!("v2.users.{id}.activity"), body.clone());
            inner.emit(&format!("v2.users.{id}.presence"), body["presence"].clone());
            1
        }
        other => {
            return bad(format!(
                "unknown fault kind {other:?}; use one of drop_sockets, socket_closing, heartbeat_stall, rate_limit, service_unavailable, expire_tokens, evict_channels, slow_responses, refuse_topic, rewind, clock_offset, add_definition, bad_event"
            ))
        }
    };
    let mut out = serde_json::Map::from_iter([
        ("kind".to_string(), json!(b.kind)),
        ("affected".to_string(), json!(affected)),
    ]);
    out.extend(extra);
    HttpResponse::Ok().json(out)
}
