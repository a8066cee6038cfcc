//! Conversations, churn and analytics: agents take interactions (voice,
//! chat, email, message) while churn runs; the conversation endpoints and
//! the two analytics details queries (`genesys-api.md` §6–7) read what the
//! simulator has actually run.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{json_body, Ctx, Reply};
use super::org::{uuid_from, Org};
use super::state::{HistoryRecord, SimConversation, SimInner};
use super::Sim;
use crate::spelling::{iso, RoutingStatus, SystemPresence};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations/{id}", web::get().to(get_conversation))
        .route(
            "/analytics/conversations/details/query",
            web::post().to(conversation_details),
        )
        .route(
            "/analytics/users/details/query",
            web::post().to(user_details),
        );
}

const CUSTOMERS: [&str; 16] = [
    "Jonny Smith",
    "Maria Rossi",
    "Ken Adams",
    "Lena Fischer",
    "Tom Baker",
    "Nadia Petrova",
    "Sam Carter",
    "Grace Ho",
    "Ahmed Ali",
    "Julia Costa",
    "Peter Novak",
    "Aoife Byrne",
    "Carlos Ruiz",
    "Hannah Schmidt",
    "Victor Hugo",
    "Mina Park",
];

/// Per-media leg array name in the conversation model.
fn media_key(media: &str) -> &'static str {
    match media {
        "voice" => "calls",
        "chat" => "chats",
        "email" => "emails",
        _ => "messages",
    }
}

/// The org's wrap-up codes (`GET /api/v2/routing/wrapupcodes`): fixed ids
/// and names. A participant's `wrapup.code` carries the **id**.
pub const WRAPUP_CODES: [(&str, &str); 4] = [
    ("5f1c2a3b-7d4e-4f50-9a61-b2c3d4e5f601", "Resolved"),
    ("6a2d3b4c-8e5f-4061-8b72-c3d4e5f60712", "Follow-up"),
    ("7b3e4c5d-9f60-4172-9c83-d4e5f6071823", "Sale"),
    ("8c4f5d6e-a071-4283-ad94-e5f607182934", "No answer"),
];

/// The name of wrap-up code `id`, if it is one of [`WRAPUP_CODES`].
pub fn wrapup_name(id: &str) -> Option<&'static str> {
    WRAPUP_CODES.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

/// Which model a conversation is rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Conversation` of `GET /api/v2/conversations/{id}` (§6): conversation
    /// `startTime`/`endTime`/`selfUri`, participant `startTime`, `queueName`,
    /// `ani`, `userUri`, `wrapup.name`.
    Rest,
    /// `ConversationEventTopicConversation` of `v2.users.{id}.conversations`
    /// (§5.4): none of the REST-only fields above.
    Event,
}

/// One media leg in the per-media model: calls have `muted`/`confined` and
/// may end `terminated`; chats, emails and messages have neither field and
/// end `disconnected` (email and message state enums have no `terminated`);
/// event chats have no `direction`.
fn leg_json(
    media: &str,
    shape: Shape,
    id: String,
    state: &str,
    direction: &str,
    held: bool,
    muted: bool,
) -> Value {
    let mut leg = json!({"id": id, "state": state, "held": held});
    if media == "voice" {
        leg["muted"] = json!(muted);
        leg["confined"] = json!(false);
    } else if state == "terminated" {
        leg["state"] = json!("disconnected");
    }
    if !(media == "chat" && shape == Shape::Event) {
        leg["direction"] = json!(direction);
    }
    if media == "message" {
        leg["type"] = json!("webmessaging");
    }
    leg
}

/// A simulated conversation as the REST `Conversation` model or as the
/// `v2.users.{id}.conversations` event body (see [`Shape`]).
pub fn conversation_json(org: &Org, c: &SimConversation, shape: Shape) -> Value {
    let rest = shape == Shape::Rest;
    let queue = &org.queues[c.queue];
    let agent = &org.users[c.agent];
    let ended = c.end.is_some();
    let leg_state = if ended {
        "terminated"
    } else if c.wrapup {
        "disconnected"
    } else {
        "connected"
    };
    let key = media_key(c.media);
    let customer_state = if c.wrapup || ended {
        "disconnected"
    } else {
        "connected"
    };
    let mut customer_leg = leg_json(
        c.media,
        shape,
        format!("{}-c", c.id),
        customer_state,
        c.direction,
        false,
        false,
    );
    customer_leg["connectedTime"] = json!(iso(c.start));
    let mut agent_leg = leg_json(
        c.media,
        shape,
        format!("{}-a", c.id),
        leg_state,
        c.direction,
        c.held,
        c.muted,
    );
    agent_leg["connectedTime"] = json!(iso(c.connected));
    agent_leg["afterCallWork"] = json!({"state": if c.wrapup && !ended { "pending" } else if ended { "complete" } else { "notApplicable" }});
    if let Some(h) = c.hold_start {
        agent_leg["startHoldTime"] = json!(iso(h));
    }
    let mut agent_p = json!({
        "id": c.agent_participant_id, "purpose": "agent", "userId": agent.id, "name": agent.name,
        "queueId": queue.id,
        "connectedTime": iso(c.connected),
        "wrapupRequired": true, "wrapupPrompt": "timeout", "wrapupTimeoutMs": 120000,
        "alertingTimeoutMs": 30000,
    });
    if rest {
        agent_p["userUri"] = json!(format!("/api/v2/users/{}", agent.id));
        agent_p["queueName"] = json!(queue.name);
        agent_p["startTime"] = json!(iso(c.start));
    }
    agent_p[key] = json!([agent_leg]);
    if c.wrapup || ended {
        agent_p["startAcwTime"] = json!(iso(c.connected));
        if let Some(code) = &c.wrapup_code {
            agent_p["wrapup"] = json!({"code": code, "durationSeconds": 20});
            if rest {
                if let Some(name) = wrapup_name(code) {
                    agent_p["wrapup"]["name"] = json!(name);
                }
            }
        }
    }
    if let Some(e) = c.end {
        agent_p["endTime"] = json!(iso(e));
        agent_p["endAcwTime"] = json!(iso(e));
    }
    let mut customer_p = json!({
        "id": c.customer_participant_id, "purpose": "customer", "name": c.customer_name,
        "address": c.ani, "queueId": queue.id,
        "connectedTime": iso(c.start), "wrapupRequired": false,
    });
    if rest {
        customer_p["ani"] = json!(c.ani);
        customer_p["startTime"] = json!(iso(c.start));
    }
    customer_p[key] = json!([customer_leg]);
    let mut acd_p = json!({
        "id": c.acd_participant_id, "purpose": "acd", "name": queue.name, "queueId": queue.id,
        "endTime": iso(c.connected), "wrapupRequired": false,
    });
    if rest {
        acd_p["queueName"] = json!(queue.name);
        acd_p["startTime"] = json!(iso(c.start));
    }
    let mut v = json!({
        "id": c.id,
        "externalTag": c.external_tag,
        "participants": [customer_p, acd_p, agent_p],
        "recordingState": "NONE",
        "divisions": [{"division": {"id": org.divisions[queue.division].id}, "entities": []}],
    });
    if rest {
        v["startTime"] = json!(iso(c.start));
        v["selfUri"] = json!(format!("/api/v2/conversations/{}", c.id));
        if let Some(e) = c.end {
            v["endTime"] = json!(iso(e));
        }
    }
    v
}

/// `UserConversationsEventUserConversationSummary` for agent `u`.
pub fn summary_json(inner: &SimInner, u: usize) -> Value {
    let user = &inner.org.users[u];
    let mut counts = [(0u32, 0u32); 4];
    for id in &user.conversations {
        if let Some(c) = inner.conversations.get(id) {
            let slot = match c.media {
                "voice" => 0,
                "chat" => 1,
                "email" => 2,
                _ => 3,
            };
            if c.wrapup {
                counts[slot].1 += 1;
            } else {
                counts[slot].0 += 1;
            }
        }
    }
    let m = |i: usize| json!({"contactCenter": {"active": counts[i].0, "acw": counts[i].1}, "enterprise": {"active": 0, "acw": 0}});
    json!({
        "userId": user.id, "call": m(0), "chat": m(1), "email": m(2), "message": m(3),
        "callback": m(3).as_object().map(|_| json!({"contactCenter": {"active": 0, "acw": 0}, "enterprise": {"active": 0, "acw": 0}})),
        "socialExpression": {"contactCenter": {"active": 0, "acw": 0}, "enterprise": {"active": 0, "acw": 0}},
        "video": {"contactCenter": {"active": 0, "acw": 0}, "enterprise": {"active": 0, "acw": 0}},
    })
}

/// Offers a new conversation to On Queue, idle agent `u`.
pub fn offer(inner: &mut SimInner, u: usize) {
    let now = Utc::now();
    let media = ["voice", "voice", "voice", "chat", "email", "message"][inner.roll(6) as usize];
    let qs = inner.org.users[u].queues.clone();
    let queue = qs[inner.roll(qs.len() as u32) as usize];
    let customer = CUSTOMERS[inner.roll(CUSTOMERS.len() as u32) as usize].to_string();
    let ani = format!("tel:+1555{:07}", inner.roll(10_000_000));
    inner.next_tag += 1;
    let tag = format!("CRM-{}", inner.next_tag);
    let id = uuid_from(&mut inner.rng);
    let conv = SimConversation {
        id: id.clone(),
        media,
        direction: if inner.roll(5) == 0 {
            "outbound"
        } else {
            "inbound"
        },
        queue,
        agent: u,
        customer_name: customer,
        ani,
        external_tag: tag,
        start: now - chrono::Duration::seconds(i64::from(inner.roll(40))),
        connected: now,
        held: false,
        hold_start: None,
        muted: false,
        wrapup: false,
        wrapup_code: None,
        end: None,
        customer_participant_id: uuid_from(&mut inner.rng),
        agent_participant_id: uuid_from(&mut inner.rng),
        acd_participant_id: uuid_from(&mut inner.rng),
    };
    inner.conversations.insert(id.clone(), conv);
    inner.org.users[u].conversations.push(id.clone());
    inner.set_routing(u, RoutingStatus::Interacting);
    inner.emit_conversation(&id);
}

/// One realistic change for a random agent: log in, go On Queue, take an
/// interaction, hold, wrap up, take a break, come back.
pub fn churn_step(inner: &mut SimInner) {
    let n = inner.org.users.len() as u32;
    let u = inner.roll(n) as usize;
    step_agent(inner, u);
}

/// One realistic change for agent `u` (what churn does to a random agent).
pub fn step_agent(inner: &mut SimInner, u: usize) {
    let def = inner.org.users[u].presence_def;
    let sp = inner.org.definitions[def].system_presence;
    let on_queue = inner.org.primary_def(SystemPresence::OnQueue);
    if let Some(conv_id) = inner.org.users[u].conversations.first().cloned() {
        let r = inner.roll(10);
        let Some(c) = inner.conversations.get_mut(&conv_id) else {
            inner.org.users[u].conversations.clear();
            return;
        };
        if c.wrapup {
            // After-call work done: the interaction ends.
            if c.wrapup_code.is_none() {
                c.wrapup_code = Some(WRAPUP_CODES[r as usize % 4].0.into());
            }
            inner.end_conversation(&conv_id);
            if inner.is_on_queue(u) {
                inner.set_routing(u, RoutingStatus::Idle);
            }
        } else if c.media == "voice" && r < 3 {
            c.held = !c.held;
            c.hold_start = c.held.then(Utc::now);
            inner.emit_conversation(&conv_id);
        } else {
            // After-call work: the agent picks a wrap-up code (its id).
            c.wrapup = true;
            c.wrapup_code = Some(WRAPUP_CODES[r as usize % 4].0.into());
            c.held = false;
            c.hold_start = None;
            inner.emit_conversation(&conv_id);
        }
        return;
    }
    let r = inner.roll(100);
    match sp {
        SystemPresence::Offline => {
            let avail = inner.org.primary_def(SystemPresence::Available);
            inner.set_presence(u, avail, None);
        }
        SystemPresence::OnQueue => match inner.org.users[u].routing {
            RoutingStatus::NotResponding => inner.set_routing(u, RoutingStatus::Idle),
            _ if r < 60 => offer(inner, u),
            _ if r < 70 => inner.set_routing(u, RoutingStatus::NotResponding),
            _ if r < 97 => {
                // Off queue for a break, a meal, lunch or coaching.
                let choices = [
                    inner.org.primary_def(SystemPresence::Break),
                    inner.org.primary_def(SystemPresence::Meal),
                    inner
                        .org
                        .def_by_id("a1f0c3d2-4b5e-4f60-8a71-92b3c4d5e6f7")
                        .unwrap_or(def),
                    inner
                        .org
                        .def_by_id("b2e1d4c3-5a6f-4071-9b82-a3c4d5e6f708")
                        .unwrap_or(def),
                    inner.org.primary_def(SystemPresence::Available),
                ];
                let pick = choices[inner.roll(choices.len() as u32) as usize];
                inner.set_presence(u, pick, None);
            }
            _ => {
                let off = inner.org.primary_def(SystemPresence::Offline);
                inner.set_presence(u, off, None);
            }
        },
        _ => {
            inner.set_presence(u, on_queue, None);
        }
    }
}

/// Runs churn at the configured rate (`POST /sim/churn` changes it live).
pub async fn churn_task(sim: Arc<Sim>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = 0.0f64;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = sim.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(last).as_secs_f64();
        last = now;
        let mut inner = sim.inner.lock();
        if inner.churn_rate <= 0.0 {
            due = 0.0;
            continue;
        }
        // Never try to catch up more than a second after a stall.
        due = (due + inner.churn_rate * elapsed).min(inner.churn_rate.max(1.0));
        while due >= 1.0 {
            churn_step(&mut inner);
            due -= 1.0;
        }
    }
}

/// `GET /api/v2/conversations/{id}`.
async fn get_conversation(ctx: Ctx, path: web::Path<String>, sim: web::Data<Sim>) -> Reply {
    let inner = sim.inner.lock();
    let c = inner
        .conversations
        .get(path.as_str())
        .ok_or_else(|| ctx.not_found("The requested resource was not found."))?;
    Ok(HttpResponse::Ok().json(conversation_json(&inner.org, c, Shape::Rest)))
}

/// `start/end` ISO-8601 interval of the analytics queries.
fn parse_interval(
    ctx: &Ctx,
    s: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), super::api::GError> {
    let s = s.ok_or_else(|| ctx.bad_request("interval is required"))?;
    let (a, b) = s.split_once('/').ok_or_else(|| {
        ctx.err(
            400,
            "invalid.date",
            format!("Invalid interval [{s}]: expected start/end"),
        )
    })?;
    let p = |x: &str| {
        DateTime::parse_from_rfc3339(x)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| {
                ctx.err(
                    400,
                    "invalid.date",
                    format!("Invalid date [{x}] in interval"),
                )
            })
    };
    let (a, b) = (p(a)?, p(b)?);
    if b <= a {
        return Err(ctx.err(400, "invalid.date", "Interval end must be after its start"));
    }
    Ok((a, b))
}

#[derive(Deserialize, Default)]
struct Predicate {
    dimension: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    predicates: Vec<Predicate>,
}

#[derive(Deserialize, Default)]
struct Paging {
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    #[serde(rename = "pageNumber")]
    page_number: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailsQuery {
    interval: Option<String>,
    #[serde(default)]
    user_filters: Vec<Filter>,
    #[serde(default)]
    segment_filters: Vec<Filter>,
    #[serde(default)]
    conversation_filters: Vec<Filter>,
    order: Option<String>,
    paging: Option<Paging>,
}

/// Values of every predicate on `dim` across filters (OR semantics).
fn dim_values(filters: &[Filter], dim: &str) -> Vec<String> {
    filters
        .iter()
        .flat_map(|f| &f.predicates)
        .filter(|p| {
            p.dimension
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(dim))
        })
        .filter_map(|p| p.value.clone())
        .collect()
}

fn overlaps(
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    a: DateTime<Utc>,
    b: DateTime<Utc>,
) -> bool {
    start < b && end.is_none_or(|e| e > a)
}

fn paging(q: &DetailsQuery) -> (usize, usize) {
    let p = q.paging.as_ref();
    let size = p.and_then(|p| p.page_size).unwrap_or(25).clamp(1, 100);
    let num = p.and_then(|p| p.page_number).unwrap_or(1).max(1);
    (size, num)
}

/// `POST /api/v2/analytics/conversations/details/query` (filters: userId,
/// queueId, mediaType, externalTag, conversationId; the interval).
async fn conversation_details(ctx: Ctx, body: web::Bytes, sim: web::Data<Sim>) -> Reply {
    let q: DetailsQuery = json_body(&ctx, &body)?;
    let (a, b) = parse_interval(&ctx, q.interval.as_deref())?;
    let users = dim_values(&q.segment_filters, "userId");
    let queues = dim_values(&q.segment_filters, "queueId");
    let media = dim_values(&q.segment_filters, "mediaType");
    let tags = dim_values(&q.conversation_filters, "externalTag");
    let ids = dim_values(&q.conversation_filters, "conversationId");
    let (size, num) = paging(&q);
    let inner = sim.inner.lock();
    let org = &inner.org;
    let mut hits: Vec<&SimConversation> = inner
        .conversations
        .values()
        .filter(|c| overlaps(c.start, c.end, a, b))
        .filter(|c| {
            users.is_empty()
                || users
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case(&org.users[c.agent].id))
        })
        .filter(|c| {
            queues.is_empty()
                || queues
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(&org.queues[c.queue].id))
        })
        .filter(|c| media.is_empty() || media.iter().any(|m| m.eq_ignore_ascii_case(c.media)))
        .filter(|c| tags.is_empty() || tags.contains(&c.external_tag))
        .filter(|c| ids.is_empty() || ids.iter().any(|t| t.eq_ignore_ascii_case(&c.id)))
        .collect();
    hits.sort_by_key(|c| c.start);
    if q.order.as_deref() == Some("desc") {
        hits.reverse();
    }
    let total = hits.len();
    let conversations: Vec<Value> = hits
        .into_iter()
        .skip((num - 1).saturating_mul(size))
        .take(size)
        .map(|c| {
            let queue = &org.queues[c.queue];
            let agent = &org.users[c.agent];
            let mut seg = json!({"segmentStart": iso(c.connected), "segmentType": "interact", "queueId": queue.id});
            if let Some(e) = c.end {
                seg["segmentEnd"] = json!(iso(e));
                if let Some(code) = &c.wrapup_code {
                    seg["wrapUpCode"] = json!(code);
                }
            }
            let mut v = json!({
                "conversationId": c.id,
                "conversationStart": iso(c.start),
                "externalTag": c.external_tag,
                "divisionIds": [org.divisions[queue.division].id],
                "originatingDirection": c.direction,
                "participants": [
                    {"participantId": c.customer_participant_id, "participantName": c.customer_name, "purpose": "customer",
                     "sessions": [{"sessionId": format!("{}-c", c.id), "mediaType": c.media, "direction": c.direction, "ani": c.ani,
                                   "segments": [{"segmentStart": iso(c.start), "segmentType": "interact", "queueId": queue.id}]}]},
                    {"participantId": c.agent_participant_id, "participantName": agent.name, "purpose": "agent", "userId": agent.id,
                     "sessions": [{"sessionId": format!("{}-a", c.id), "mediaType": c.media, "direction": c.direction, "segments": [seg]}]},
                ],
            });
            if let Some(e) = c.end {
                v["conversationEnd"] = json!(iso(e));
            }
            v
        })
        .collect();
    let mut out = json!({"totalHits": total});
    if !conversations.is_empty() {
        out["conversations"] = json!(conversations);
    }
    Ok(HttpResponse::Ok().json(out))
}

fn records_json(
    records: &[HistoryRecord],
    a: DateTime<Utc>,
    b: DateTime<Utc>,
    presence: bool,
) -> Vec<Value> {
    records
        .iter()
        .filter(|r| overlaps(r.start, r.end, a, b))
        .map(|r| {
            let mut v = if presence {
                json!({"startTime": iso(r.start), "systemPresence": r.value, "organizationPresenceId": r.definition})
            } else {
                json!({"startTime": iso(r.start), "routingStatus": r.value})
            };
            if let Some(e) = r.end {
                v["endTime"] = json!(iso(e));
            }
            v
        })
        .collect()
}

/// `POST /api/v2/analytics/users/details/query`: presence and routing
/// history of what the simulator has run (open records have no `endTime`).
async fn user_details(ctx: Ctx, body: web::Bytes, sim: web::Data<Sim>) -> Reply {
    let q: DetailsQuery = json_body(&ctx, &body)?;
    let (a, b) = parse_interval(&ctx, q.interval.as_deref())?;
    let users = dim_values(&q.user_filters, "userId");
    let (size, num) = paging(&q);
    let inner = sim.inner.lock();
    let selected: Vec<usize> = if users.is_empty() {
        (0..inner.org.users.len()).collect()
    } else {
        users.iter().filter_map(|u| inner.user_idx(u)).collect()
    };
    let details: Vec<Value> = selected
        .iter()
        .map(|&u| {
            json!({
                "userId": inner.org.users[u].id,
                "primaryPresence": records_json(&inner.presence_history[u], a, b, true),
                "routingStatus": records_json(&inner.routing_history[u], a, b, false),
            })
        })
        .filter(|v| {
            v["primaryPresence"]
                .as_array()
                .is_some_and(|x| !x.is_empty())
                || v["routingStatus"].as_array().is_some_and(|x| !x.is_empty())
        })
        .collect();
    let total = details.len();
    let page: Vec<Value> = details
        .into_iter()
        .skip((num - 1).saturating_mul(size))
        .take(size)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"userDetails": page, "totalHits": total})))
}
