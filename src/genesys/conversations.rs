//! Conversations for interaction context (`genesys-api.md` §6–7): watching
//! an agent adds `v2.users.{id}.conversations` to a channel's reserved room
//! and reads the agent's active conversations through REST (analytics
//! details query, then `GET /api/v2/conversations/{id}`); `externalTag`
//! searches go through the analytics query once per tag and interval, the
//! answer shared by every caller asking meanwhile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::http::Method;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::actor::Upstream;
use super::rest::{Lane, Rest, RestError};
use crate::model::{Completion, ConversationsReset, Customer, Interaction, QueueRef};

/// Shared `externalTag` answers.
pub type TagCache = Rc<RefCell<HashMap<String, TagEntry>>>;

/// One tag's answer, or the callers waiting for it.
pub enum TagEntry {
    Ready(Instant, Result<Value, String>),
    Pending(Vec<oneshot::Sender<Result<Value, String>>>),
}

/// Wrap-up code names by id, shared by every completion.
pub type WrapupCache = Rc<RefCell<WrapupCodes>>;

/// The org's wrap-up codes as last read.
#[derive(Default)]
pub struct WrapupCodes {
    /// id → name.
    pub names: HashMap<String, String>,
    /// When the list was last read; an unknown id re-reads it at most once a minute.
    pub read_at: Option<Instant>,
}

/// Shortest time between two reads of the wrap-up code list.
const WRAPUP_REREAD: Duration = Duration::from_secs(60);

/// Reads every page of `GET /api/v2/routing/wrapupcodes` (`WrapupCodeEntityListing`).
async fn read_wrapup_codes(rest: &Rest) -> Result<HashMap<String, String>, RestError> {
    let mut names = HashMap::new();
    let mut page = 1;
    loop {
        let v: Value = rest
            .get_json(
                Lane::Client,
                &format!("/api/v2/routing/wrapupcodes?pageSize=500&pageNumber={page}"),
            )
            .await?;
        for e in v["entities"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (e["id"].as_str(), e["name"].as_str()) {
                names.insert(id.to_string(), name.to_string());
            }
        }
        if page >= v["pageCount"].as_u64().unwrap_or(1) as usize {
            return Ok(names);
        }
        page += 1;
    }
}

/// The topic of an agent's conversations.
pub fn conversations_topic(user_id: &str) -> String {
    format!("v2.users.{user_id}.conversations")
}

fn interval(hours: i64) -> String {
    let now = Utc::now();
    format!(
        "{}/{}",
        crate::model::iso(now - chrono::Duration::hours(hours)),
        crate::model::iso(now + chrono::Duration::minutes(5))
    )
}

/// The active interactions of one agent, read through REST.
pub async fn fetch_active(rest: &Rest, user_id: &str) -> Result<Vec<Interaction>, RestError> {
    let query = json!({
        "interval": interval(24),
        "order": "desc",
        "segmentFilters": [{"type": "and", "predicates": [{"type": "dimension", "dimension": "userId", "operator": "matches", "value": user_id}]}],
        "paging": {"pageSize": 50, "pageNumber": 1},
    });
    let resp = rest
        .call(
            Lane::Client,
            Method::POST,
            "/api/v2/analytics/conversations/details/query",
            Some(&query),
        )
        .await?;
    let found: Value = resp.json()?;
    let open: Vec<String> = found["conversations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c.get("conversationEnd").is_none_or(Value::is_null))
                .filter_map(|c| c["conversationId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for id in open {
        match rest
            .get_json::<Value>(Lane::Client, &format!("/api/v2/conversations/{id}"))
            .await
        {
            Ok(conv) => out.extend(from_conversation(user_id, &conv)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl Upstream {
    /// Finds a channel with reserved room for one more conversation topic:
    /// the agent's own shard first.
    fn room_for_conversation(&self, user_id: &str) -> Option<usize> {
        let reserve = self.cfg_ref().conversation_reserve;
        let own = self
            .shard_of(user_id)
            .filter(|&i| self.extra_len(i) < reserve);
        own.or_else(|| (0..self.shard_count()).find(|&i| self.extra_len(i) < reserve))
    }
}

impl Handler<WatchConversations> for Upstream {
    type Result = ();

    fn handle(&mut self, m: WatchConversations, ctx: &mut Context<Self>) {
        let topic = conversations_topic(&m.user_id);
        if m.watch && !self.synced {
            self.deferred_watches.insert(m.user_id);
            return;
        }
        if !m.watch {
            self.deferred_watches.remove(&m.user_id);
        }
        if m.watch && !self.known_users.contains(&m.user_id.to_ascii_lowercase()) {
            // Genesys refuses a topic for an unknown user (400
            // notification.invalid.topic) and takes the whole channel down
            // with it: an id that is not in the directory never leaves here.
            tracing::info!(agent = %m.user_id, "not watching conversations of an agent the directory does not have");
            return;
        }
        if m.watch {
            if self.shard_holding_extra(&topic).is_some() {
                return;
            }
            let Some(i) = self.room_for_conversation(&m.user_id) else {
                tracing::warn!(agent = %m.user_id, "no channel has room for another conversation topic; raise upstream.conversation_reserve");
                return;
            };
            self.add_extra(i, topic, ctx);
            // What the agent is handling now (events only tell what changes).
            let rest = self.rest_client();
            let hub = self.interactions.clone();
            let user_id = m.user_id.clone();
            ctx.spawn(
                async move {
                    match fetch_active(&rest, &user_id).await {
                        Ok(interactions) => {
                            if let Some(hub) = hub {
                                let _ = hub.reset.send(ConversationsReset { user_id, interactions }).await;
                            }
                        }
                        Err(e) => tracing::warn!(agent = %user_id, error = %e, "reading active conversations failed"),
                    }
                }
                .into_actor(self),
            );
        } else if let Some(i) = self.shard_holding_extra(&topic) {
            self.remove_extra(i, &topic, ctx);
        }
    }
}

/// Per-media leg arrays of a participant and their media type names.
const LEGS: [(&str, &str); 6] = [
    ("calls", "voice"),
    ("chats", "chat"),
    ("emails", "email"),
    ("messages", "message"),
    ("callbacks", "callback"),
    ("videos", "video"),
];

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Normalises a Genesys `Conversation` (REST model or
/// `v2.users.{id}.conversations` event body, `genesys-api.md` §5.4, §6) to
/// the context of agent `user_id`. `None` when the agent is not in it or
/// the agent's part has ended. Fields the body lacks stay `None` (events
/// carry no queue name, start time or wrap-up name: see [`Interaction::complete`]).
pub fn from_conversation(user_id: &str, conv: &Value) -> Option<Interaction> {
    let participants = conv.get("participants")?.as_array()?;
    let agent = participants
        .iter()
        .rev()
        .filter(|p| s(p, "purpose").as_deref() == Some("agent"))
        .find(|p| s(p, "userId").is_some_and(|u| u.eq_ignore_ascii_case(user_id)))?;
    let (legs, media) = LEGS.iter().find_map(|(k, m)| {
        agent
            .get(*k)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| (a, *m))
    })?;
    let leg = legs.last()?;
    let state = s(leg, "state").unwrap_or_else(|| "connected".into());
    let ended = conv.get("endTime").is_some_and(|v| !v.is_null())
        || agent.get("endTime").is_some_and(|v| !v.is_null())
        || state == "terminated";
    if ended {
        return None;
    }
    let customer = participants.iter().find(|p| {
        matches!(
            s(p, "purpose").as_deref(),
            Some("customer") | Some("external")
        )
    });
    let acw_state = leg.get("afterCallWork").and_then(|a| s(a, "state"));
    // `wrapup.code` is the code's id; only the REST model has `wrapup.name`.
    let wrapup_code_id = agent.get("wrapup").and_then(|w| s(w, "code"));
    let wrapup_code = agent.get("wrapup").and_then(|w| s(w, "name"));
    Some(Interaction {
        conversation_id: s(conv, "id")?,
        media_type: media.to_string(),
        direction: s(leg, "direction"),
        after_call_work: state == "disconnected" || acw_state.as_deref() == Some("pending"),
        state,
        queue: QueueRef {
            id: s(agent, "queueId").or_else(|| agent.get("queue").and_then(|q| s(q, "id"))),
            name: s(agent, "queueName"),
        },
        external_tag: s(conv, "externalTag"),
        customer: Customer {
            name: customer.and_then(|c| s(c, "name")),
            ani: customer.and_then(|c| s(c, "ani").or_else(|| s(c, "address"))),
        },
        held: leg.get("held").and_then(Value::as_bool).unwrap_or(false),
        muted: leg.get("muted").and_then(Value::as_bool).unwrap_or(false),
        wrapup_required: agent
            .get("wrapupRequired")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        wrapup_code,
        wrapup_code_id,
        // REST-only fields: events carry neither (completed later, never invented).
        start_time: s(conv, "startTime").or_else(|| s(agent, "startTime")),
        connected_time: s(leg, "connectedTime").or_else(|| s(agent, "connectedTime")),
    })
}

/// Interaction hub → upstream: subscribe (or release) an agent's conversations topic.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct WatchConversations {
    pub user_id: String,
    pub watch: bool,
}

/// Interaction hub → upstream: complete an interaction from cached REST
/// reads (queue names, wrap-up code names, the conversation's start time).
/// Sent by [`super::Genesys::complete_interaction`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "Completion")]
pub struct CompleteInteraction {
    pub conversation_id: String,
    pub queue_id: Option<String>,
    pub wrapup_code_id: Option<String>,
    /// Read the conversation (for its start time) through REST.
    pub need_start: bool,
}

impl Handler<CompleteInteraction> for Upstream {
    type Result = ResponseActFuture<Self, Completion>;

    /// Queue names from the directory (no request), wrap-up code names from
    /// the cached list (read again at most once a minute for an unknown id),
    /// the start time from one `GET /api/v2/conversations/{id}`; all on the
    /// reconcile lane of the REST budget. What cannot be read stays `None`.
    fn handle(&mut self, m: CompleteInteraction, _: &mut Context<Self>) -> Self::Result {
        let queue_name = m.queue_id.as_deref().and_then(|q| self.queue_name(q));
        let rest = self.rest_client();
        let cache = self.wrapup_cache.clone();
        Box::pin(
            async move {
                let mut out = Completion {
                    queue_id: m.queue_id.clone(),
                    queue_name,
                    ..Completion::default()
                };
                if let Some(code) = &m.wrapup_code_id {
                    let stale = {
                        let c = cache.borrow();
                        !c.names.contains_key(code)
                            && c.read_at.is_none_or(|t| t.elapsed() >= WRAPUP_REREAD)
                    };
                    if stale {
                        cache.borrow_mut().read_at = Some(Instant::now());
                        match read_wrapup_codes(&rest).await {
                            Ok(names) => cache.borrow_mut().names = names,
                            Err(e) => tracing::warn!(error = %e, "reading wrap-up codes failed"),
                        }
                    }
                    out.wrapup = cache
                        .borrow()
                        .names
                        .get(code)
                        .map(|n| (code.clone(), n.clone()));
                }
                if m.need_start || out.queue_name.is_none() {
                    let path = format!("/api/v2/conversations/{}", m.conversation_id);
                    match rest.get_json::<Value>(Lane::Client, &path).await {
                        Ok(conv) => {
                            out.start_time = conv["startTime"].as_str().map(str::to_string);
                            if out.queue_name.is_none() {
                                out.queue_name = conv["participants"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter(|p| p["queueId"].as_str() == m.queue_id.as_deref())
                                    .find_map(|p| p["queueName"].as_str().map(str::to_string));
                            }
                        }
                        Err(e) => tracing::debug!(conversation = %m.conversation_id, error = %e, "reading a conversation failed"),
                    }
                }
                out
            }
            .into_actor(self),
        )
    }
}

/// HTTP → upstream: an agent's active interactions, read through REST.
#[derive(Message)]
#[rtype(result = "Result<Vec<Interaction>, RestError>")]
pub struct FetchInteractions {
    pub user_id: String,
}

impl Handler<FetchInteractions> for Upstream {
    type Result = ResponseActFuture<Self, Result<Vec<Interaction>, RestError>>;

    fn handle(&mut self, m: FetchInteractions, _: &mut Context<Self>) -> Self::Result {
        let rest = self.rest_client();
        Box::pin(async move { fetch_active(&rest, &m.user_id).await }.into_actor(self))
    }
}

/// HTTP → upstream: conversations with this `externalTag` (analytics query),
/// shared for `cache` by every caller asking the same tag.
#[derive(Message)]
#[rtype(result = "Result<Value, String>")]
pub struct FindByExternalTag {
    pub tag: String,
    pub cache: Duration,
    pub hours: u64,
}

impl Handler<FindByExternalTag> for Upstream {
    type Result = ResponseActFuture<Self, Result<Value, String>>;

    fn handle(&mut self, m: FindByExternalTag, _: &mut Context<Self>) -> Self::Result {
        let cache = self.tag_cache.clone();
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut c = cache.borrow_mut();
            match c.get_mut(&m.tag) {
                Some(TagEntry::Ready(at, v)) if at.elapsed() < m.cache => {
                    let _ = tx.send(v.clone());
                    false
                }
                Some(TagEntry::Pending(waiters)) => {
                    waiters.push(tx);
                    false
                }
                _ => {
                    c.insert(m.tag.clone(), TagEntry::Pending(vec![tx]));
                    true
                }
            }
        };
        let rest = self.rest_client();
        Box::pin(
            async move {
                if start {
                    let query = json!({
                        "interval": interval(m.hours as i64),
                        "order": "desc",
                        "conversationFilters": [{"type": "and", "predicates": [{"type": "dimension", "dimension": "externalTag", "operator": "matches", "value": m.tag}]}],
                        "paging": {"pageSize": 100, "pageNumber": 1},
                    });
                    let result = rest
                        .call(Lane::Client, Method::POST, "/api/v2/analytics/conversations/details/query", Some(&query))
                        .await
                        .and_then(|r| r.json::<Value>())
                        .map(|v| json!({"externalTag": m.tag, "conversations": v.get("conversations").cloned().unwrap_or(json!([]))}))
                        .map_err(|e| e.to_string());
                    let waiters = match cache.borrow_mut().insert(m.tag.clone(), TagEntry::Ready(Instant::now(), result.clone())) {
                        Some(TagEntry::Pending(w)) => w,
                        _ => Vec::new(),
                    };
                    if result.is_err() {
                        // Failures are not shared beyond the callers already waiting.
                        cache.borrow_mut().remove(&m.tag);
                    }
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
                rx.await.unwrap_or_else(|_| Err("the search was abandoned".into()))
            }
            .into_actor(self),
        )
    }
}

// ---- tag search answers (analytics conversation details) ----------------

/// Participants that are agents (`purpose` agent or user) carry `userId`.
fn is_agent(p: &serde_json::Value) -> bool {
    matches!(
        p.get("purpose").and_then(|x| x.as_str()),
        Some("agent") | Some("user")
    )
}

/// Keeps the conversations in which at least one agent of `visible` took
/// part, and blanks the name and id of every other agent in them (a
/// division-scoped caller learns nothing about other divisions' agents).
/// `v` is `{"externalTag", "conversations": [analytics conversation]}`.
pub fn scope_conversations(v: &mut serde_json::Value, visible: &[String]) {
    let sees = |p: &serde_json::Value| {
        p.get("userId")
            .and_then(|u| u.as_str())
            .is_some_and(|u| visible.iter().any(|x| x == u))
    };
    let Some(convs) = v.get_mut("conversations").and_then(|c| c.as_array_mut()) else {
        return;
    };
    convs.retain(|c| {
        c.get("participants")
            .and_then(|p| p.as_array())
            .is_some_and(|ps| ps.iter().any(|p| is_agent(p) && sees(p)))
    });
    for c in convs.iter_mut() {
        if let Some(ps) = c.get_mut("participants").and_then(|p| p.as_array_mut()) {
            for p in ps.iter_mut().filter(|p| is_agent(p) && !sees(p)) {
                p["userId"] = serde_json::json!(null);
                p["participantName"] = serde_json::json!(null);
                p["redacted"] = serde_json::json!(true);
            }
        }
    }
}

/// Session fields of Genesys analytics conversation details that carry a
/// customer's address (phone numbers, e-mail addresses, chat handles) or
/// name. Source: `AnalyticsSession` in Genesys's API reference.
const CUSTOMER_SESSION_FIELDS: [&str; 9] = [
    "ani",
    "dnis",
    "addressFrom",
    "addressTo",
    "addressOther",
    "addressSelf",
    "remote",
    "remoteNameDisplayable",
    "callbackNumbers",
];

/// `interactions.redact_customer`: removes the customer's name from
/// customer / external participants and every address field from every
/// session (an agent's session carries the customer's number too).
pub fn redact_conversations(v: &mut serde_json::Value) {
    let Some(convs) = v.get_mut("conversations").and_then(|c| c.as_array_mut()) else {
        return;
    };
    for c in convs {
        let Some(ps) = c.get_mut("participants").and_then(|p| p.as_array_mut()) else {
            continue;
        };
        for p in ps {
            let customer = matches!(
                p.get("purpose").and_then(|x| x.as_str()),
                Some("customer") | Some("external") | Some("outbound")
            );
            if customer {
                if let Some(o) = p.as_object_mut() {
                    if o.contains_key("participantName") {
                        o.insert("participantName".into(), serde_json::json!(null));
                    }
                    o.insert("redacted".into(), serde_json::json!(true));
                }
            }
            let Some(sessions) = p.get_mut("sessions").and_then(|s| s.as_array_mut()) else {
                continue;
            };
            for sess in sessions {
                if let Some(o) = sess.as_object_mut() {
                    for f in CUSTOMER_SESSION_FIELDS {
                        o.remove(f);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconstructed conversation of genesys-api.md §6 normalises for its agent.
    #[test]
    fn normalises_the_documented_conversation() {
        let conv = json!({
            "id": "1c1a063b-45bf-4719-9127-7bca923118c1", "startTime": "2022-03-08T15:47:47.417Z", "externalTag": "CRM-4711",
            "participants": [
                {"id": "d97d", "purpose": "customer", "name": "Jonny Smith", "ani": "tel:+15551234567",
                 "calls": [{"id": "c1", "state": "connected", "direction": "inbound", "held": false}]},
                {"id": "a47f", "purpose": "agent", "userId": "3ce84f47-4e65-4756-a815-67a2b32e58b8",
                 "queueId": "3c6f420a", "queueName": "Tier 1", "startTime": "2022-03-08T15:47:47.597Z",
                 "connectedTime": "2022-03-08T15:47:49.002Z", "wrapupRequired": true,
                 "calls": [{"id": "c2", "state": "connected", "direction": "inbound", "held": true}]}
            ]
        });
        let i = from_conversation("3ce84f47-4e65-4756-a815-67a2b32e58b8", &conv)
            .expect("agent is in it");
        assert_eq!(i.media_type, "voice");
        assert!(i.held);
        assert!(i.wrapup_required);
        assert_eq!(i.external_tag.as_deref(), Some("CRM-4711"));
        assert_eq!(i.customer.name.as_deref(), Some("Jonny Smith"));
        assert_eq!(i.queue.name.as_deref(), Some("Tier 1"));
        assert!(from_conversation("someone-else", &conv).is_none());
        let mut ended = conv.clone();
        ended["endTime"] = json!("2022-03-08T16:00:00.000Z");
        assert!(from_conversation("3ce84f47-4e65-4756-a815-67a2b32e58b8", &ended).is_none());
    }

    /// An event-shaped conversation (no queueName, startTime, ani or
    /// wrapup.name) leaves those unknown; a completion fills them, never
    /// overwriting what the event gave.
    #[test]
    fn event_shape_leaves_unknowns_until_completed() {
        let conv = json!({
            "id": "c-1", "externalTag": "CRM-1",
            "participants": [
                {"id": "p1", "purpose": "customer", "name": "Jo", "address": "tel:+15550000001",
                 "emails": [{"id": "e1", "state": "connected", "direction": "inbound", "held": false}]},
                {"id": "p2", "purpose": "agent", "userId": "u-1", "queueId": "q-1",
                 "connectedTime": "2026-01-01T00:00:01.000Z", "wrapupRequired": true,
                 "wrapup": {"code": "w-1", "durationSeconds": 20},
                 "emails": [{"id": "e2", "state": "disconnected", "direction": "inbound", "held": false,
                             "afterCallWork": {"state": "pending"}}]}
            ]
        });
        let mut i = from_conversation("u-1", &conv).expect("agent is in it");
        assert_eq!(i.media_type, "email");
        assert!(i.after_call_work);
        assert_eq!(i.customer.ani.as_deref(), Some("tel:+15550000001"));
        assert_eq!(i.queue.name, None);
        assert_eq!(i.start_time, None);
        assert_eq!(i.wrapup_code, None);
        assert_eq!(i.wrapup_code_id.as_deref(), Some("w-1"));
        assert!(i.incomplete());
        let c = Completion {
            queue_id: Some("q-1".into()),
            queue_name: Some("Billing".into()),
            start_time: Some("2026-01-01T00:00:00.000Z".into()),
            wrapup: Some(("w-1".into(), "Resolved".into())),
        };
        assert!(i.complete(&c));
        assert_eq!(i.queue.name.as_deref(), Some("Billing"));
        assert_eq!(i.wrapup_code.as_deref(), Some("Resolved"));
        assert!(!i.incomplete());
        assert!(!i.complete(&c), "nothing left to fill");
        // A completion for another queue or code fills nothing.
        let mut j = from_conversation("u-1", &conv).unwrap();
        let other = Completion {
            queue_id: Some("q-2".into()),
            queue_name: Some("Other".into()),
            start_time: None,
            wrapup: Some(("w-2".into(), "Sale".into())),
        };
        assert!(!j.complete(&other));
    }
}
