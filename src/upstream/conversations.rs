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
use crate::interactions::{
    from_conversation, CompleteInteraction, Completion, ConversationsReset, Interaction,
    WatchConversations,
};

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
                                let _ = hub.send(ConversationsReset { user_id, interactions }).await;
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
