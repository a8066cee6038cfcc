//! Live interaction context for agent desktops.
//!
//! The [`Interactions`] actor (the hub) keeps, per watched agent, the
//! interactions they are handling, normalised from Genesys's
//! `v2.users.{id}.conversations` events ([`from_conversation`]). Watching is
//! reference-counted across all clients: the first session that asks for an
//! agent's context makes the upstream subscribe that agent's conversations
//! topic, the last one to leave releases it after a grace period, so fifty
//! desktops watching one agent cost one subscription. Each change is sent to
//! the watching sessions as an `interaction` message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::genesys::Upstream;
use crate::registry::{Deliver, Frame};

/// Interaction settings (`[interactions]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InteractionsConfig {
    /// Seconds an agent's conversations stay subscribed after the last watcher left.
    pub release_grace_secs: u64,
    /// Leave out the customer's name and ANI from interaction messages.
    pub redact_customer: bool,
    /// Seconds a `GET /api/v1/interactions?externalTag=` answer is shared.
    pub tag_cache_secs: u64,
    /// How far back an externalTag search looks, in hours.
    pub tag_search_hours: u64,
}

impl Default for InteractionsConfig {
    fn default() -> Self {
        InteractionsConfig {
            release_grace_secs: 60,
            redact_customer: false,
            tag_cache_secs: 30,
            tag_search_hours: 24,
        }
    }
}

impl InteractionsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.tag_cache_secs == 0 || self.tag_search_hours == 0 || self.tag_search_hours > 24 * 31
        {
            return Err(
                "interactions.tag_cache_secs ≥ 1 and interactions.tag_search_hours 1–744".into(),
            );
        }
        Ok(())
    }
}

/// A customer as the desktop shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub name: Option<String>,
    pub ani: Option<String>,
}

/// A queue reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// One interaction an agent is handling, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interaction {
    pub conversation_id: String,
    /// `voice`, `chat`, `email`, `message`, `callback`, `video`.
    pub media_type: String,
    pub direction: Option<String>,
    /// The agent leg's state (`alerting`, `connected`, `disconnected`, …).
    pub state: String,
    pub queue: QueueRef,
    pub external_tag: Option<String>,
    pub customer: Customer,
    pub held: bool,
    pub muted: bool,
    pub wrapup_required: bool,
    pub wrapup_code: Option<String>,
    /// In after-call work (agent leg disconnected, wrap-up pending).
    pub after_call_work: bool,
    pub start_time: Option<String>,
    pub connected_time: Option<String>,
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
/// the agent's part has ended.
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
    let wrapup_code = agent.get("wrapup").and_then(|w| s(w, "code"));
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
        start_time: s(agent, "startTime").or_else(|| s(conv, "startTime")),
        connected_time: s(leg, "connectedTime").or_else(|| s(agent, "connectedTime")),
    })
}

/// Upstream → hub: a conversation event (or REST read) for an agent.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConversationSeen {
    pub user_id: String,
    pub conversation_id: String,
    /// `None` when the agent's part ended.
    pub interaction: Option<Interaction>,
}

/// Upstream → hub: the complete set of an agent's interactions (after a
/// watch starts or a gap), replacing what the hub had.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConversationsReset {
    pub user_id: String,
    pub interactions: Vec<Interaction>,
}

/// What a session watches: the hub and the agents.
pub type WatchSpec = (Addr<Interactions>, Vec<String>);

/// Session → hub: watch these agents' interactions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub session_id: u64,
    pub agents: Vec<String>,
    pub recipient: Recipient<Deliver>,
}

/// Session → hub: stop watching (session ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub session_id: u64,
}

/// HTTP → hub: an agent's current interactions, `None` when not watched.
#[derive(Message)]
#[rtype(result = "Option<Vec<Interaction>>")]
pub struct GetInteractions {
    pub user_id: String,
}

/// Hub → upstream: subscribe (or release) an agent's conversations topic.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct WatchConversations {
    pub user_id: String,
    pub watch: bool,
}

/// The interaction hub.
pub struct Interactions {
    cfg: InteractionsConfig,
    upstream: Option<Addr<Upstream>>,
    /// agent → sessions watching it.
    watchers: HashMap<String, HashMap<u64, Recipient<Deliver>>>,
    /// session → agents it watches.
    sessions: HashMap<u64, Vec<String>>,
    /// agent → conversation id → interaction.
    contexts: HashMap<String, BTreeMap<String, Interaction>>,
    /// Agents whose topic is subscribed upstream.
    subscribed: HashSet<String>,
}

impl Interactions {
    pub fn new(cfg: InteractionsConfig) -> Interactions {
        Interactions {
            cfg,
            upstream: None,
            watchers: HashMap::new(),
            sessions: HashMap::new(),
            contexts: HashMap::new(),
            subscribed: HashSet::new(),
        }
    }

    /// The `interaction` message for one agent.
    fn frame(&self, user_id: &str) -> Frame {
        let list: Vec<Value> = self
            .contexts
            .get(user_id)
            .map(|m| {
                m.values()
                    .map(|i| {
                        let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
                        if self.cfg.redact_customer {
                            v["customer"] =
                                serde_json::json!({"name": null, "ani": null, "redacted": true});
                        }
                        v
                    })
                    .collect()
            })
            .unwrap_or_default();
        crate::protocol::encode::interaction_frame(user_id, list)
    }

    fn publish(&self, user_id: &str) {
        let Some(w) = self.watchers.get(user_id) else {
            return;
        };
        let frame = self.frame(user_id);
        for r in w.values() {
            // A full session mailbox: the session is being evicted as slow anyway.
            let _ = r.try_send(Deliver::Status(frame.clone()));
        }
    }

    fn set_upstream_watch(&mut self, user_id: &str, watch: bool) {
        let changed = if watch {
            self.subscribed.insert(user_id.to_string())
        } else {
            self.subscribed.remove(user_id)
        };
        if !changed {
            return;
        }
        if !watch {
            self.contexts.remove(user_id);
        }
        if let Some(u) = &self.upstream {
            if u.try_send(WatchConversations {
                user_id: user_id.to_string(),
                watch,
            })
            .is_err()
            {
                tracing::warn!(
                    agent = user_id,
                    watch,
                    "upstream busy; conversation watch not changed"
                );
                if watch {
                    self.subscribed.remove(user_id);
                }
            }
        }
    }
}

impl Actor for Interactions {
    type Context = Context<Self>;
}

/// Wires the hub to the upstream (both are started by `app`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetUpstream(pub Addr<Upstream>);

impl Handler<SetUpstream> for Interactions {
    type Result = ();
    fn handle(&mut self, m: SetUpstream, _: &mut Context<Self>) {
        self.upstream = Some(m.0);
    }
}

impl Handler<Watch> for Interactions {
    type Result = ();

    fn handle(&mut self, m: Watch, _: &mut Context<Self>) {
        for a in &m.agents {
            self.watchers
                .entry(a.clone())
                .or_default()
                .insert(m.session_id, m.recipient.clone());
            self.set_upstream_watch(a, true);
            // The current context at once (empty until the upstream read it).
            let _ = m.recipient.try_send(Deliver::Status(self.frame(a)));
        }
        self.sessions
            .entry(m.session_id)
            .or_default()
            .extend(m.agents);
    }
}

impl Handler<Unwatch> for Interactions {
    type Result = ();

    fn handle(&mut self, m: Unwatch, ctx: &mut Context<Self>) {
        for a in self.sessions.remove(&m.session_id).unwrap_or_default() {
            let empty = self.watchers.get_mut(&a).is_some_and(|w| {
                w.remove(&m.session_id);
                w.is_empty()
            });
            if empty {
                self.watchers.remove(&a);
                // Release after a grace period, unless someone watches again.
                ctx.run_later(
                    Duration::from_secs(self.cfg.release_grace_secs),
                    move |act, _| {
                        if !act.watchers.contains_key(&a) {
                            act.set_upstream_watch(&a, false);
                        }
                    },
                );
            }
        }
    }
}

impl Handler<ConversationSeen> for Interactions {
    type Result = ();

    fn handle(&mut self, m: ConversationSeen, _: &mut Context<Self>) {
        if !self.subscribed.contains(&m.user_id) {
            return;
        }
        let map = self.contexts.entry(m.user_id.clone()).or_default();
        let changed = match m.interaction {
            Some(i) => map.insert(m.conversation_id.clone(), i.clone()).as_ref() != Some(&i),
            None => map.remove(&m.conversation_id).is_some(),
        };
        if changed {
            self.publish(&m.user_id);
        }
    }
}

impl Handler<ConversationsReset> for Interactions {
    type Result = ();

    fn handle(&mut self, m: ConversationsReset, _: &mut Context<Self>) {
        if !self.subscribed.contains(&m.user_id) {
            return;
        }
        let map: BTreeMap<String, Interaction> = m
            .interactions
            .into_iter()
            .map(|i| (i.conversation_id.clone(), i))
            .collect();
        if self.contexts.get(&m.user_id) != Some(&map) {
            self.contexts.insert(m.user_id.clone(), map);
            self.publish(&m.user_id);
        }
    }
}

impl Handler<GetInteractions> for Interactions {
    type Result = Option<Vec<Interaction>>;

    fn handle(&mut self, m: GetInteractions, _: &mut Context<Self>) -> Self::Result {
        if !self.subscribed.contains(&m.user_id) {
            return None;
        }
        Some(
            self.contexts
                .get(&m.user_id)
                .map(|c| c.values().cloned().collect())
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
