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
use crate::interactions::{from_conversation, ConversationsReset, Interaction, WatchConversations};

/// Shared `externalTag` answers.
pub type TagCache = Rc<RefCell<HashMap<String, TagEntry>>>;

/// One tag's answer, or the callers waiting for it.
pub enum TagEntry {
    Ready(Instant, Result<Value, String>),
    Pending(Vec<oneshot::Sender<Result<Value, String>>>),
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
            Lane::Reconcile,
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
            .get_json::<Value>(Lane::Reconcile, &format!("/api/v2/conversations/{id}"))
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
                        .call(Lane::Reconcile, Method::POST, "/api/v2/analytics/conversations/details/query", Some(&query))
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
