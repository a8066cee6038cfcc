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

use crate::registry::{Deliver, Frame};
use crate::upstream::Upstream;

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
    /// The wrap-up code's **name** ("Resolved"), read from
    /// `GET /api/v2/routing/wrapupcodes` (cached); null until known.
    pub wrapup_code: Option<String>,
    /// The wrap-up code's id, as Genesys sends it in `wrapup.code`.
    pub wrapup_code_id: Option<String>,
    /// In after-call work (agent leg disconnected, wrap-up pending).
    pub after_call_work: bool,
    /// When the conversation started (ISO-8601). Events do not carry it: it
    /// comes from a cached `GET /api/v2/conversations/{id}`; null until known.
    pub start_time: Option<String>,
    /// When the agent's leg connected (ISO-8601), as events carry it.
    pub connected_time: Option<String>,
}

impl Interaction {
    /// Whether a field events leave out is still unknown (queue name, start
    /// time, or the name of a wrap-up code whose id is known).
    pub fn incomplete(&self) -> bool {
        (self.queue.name.is_none() && self.queue.id.is_some())
            || self.start_time.is_none()
            || (self.wrapup_code.is_none() && self.wrapup_code_id.is_some())
    }

    /// Fills the fields still unknown from `c`; never overwrites what the
    /// event or REST read gave. Returns whether anything changed.
    pub fn complete(&mut self, c: &Completion) -> bool {
        let before = self.clone();
        if self.queue.name.is_none() && self.queue.id.is_some() && self.queue.id == c.queue_id {
            self.queue.name.clone_from(&c.queue_name);
        }
        if self.start_time.is_none() {
            self.start_time.clone_from(&c.start_time);
        }
        if self.wrapup_code.is_none() {
            if let Some((id, name)) = &c.wrapup {
                if self.wrapup_code_id.as_deref() == Some(id.as_str()) {
                    self.wrapup_code = Some(name.clone());
                }
            }
        }
        *self != before
    }
}

/// What cached REST reads add to an interaction built from an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// The queue `queue_name` belongs to.
    pub queue_id: Option<String>,
    /// From the directory's queue list (`GET /api/v2/routing/queues`).
    pub queue_name: Option<String>,
    /// The conversation's `startTime` (`GET /api/v2/conversations/{id}`).
    pub start_time: Option<String>,
    /// A wrap-up code (id, name) from `GET /api/v2/routing/wrapupcodes`.
    pub wrapup: Option<(String, String)>,
}

/// Hub → upstream: complete an interaction from cached REST reads (queue
/// names, wrap-up code names, the conversation's start time).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Completion")]
pub struct CompleteInteraction {
    pub conversation_id: String,
    pub queue_id: Option<String>,
    pub wrapup_code_id: Option<String>,
    /// Read the conversation (for its start time) through REST.
    pub need_start: bool,
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
    /// conversation id → what cached REST reads added to it.
    completions: HashMap<String, Completion>,
    /// Completions asked for (conversation id + wrap-up code id), asked once each.
    asked: HashSet<(String, Option<String>)>,
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
            completions: HashMap::new(),
            asked: HashSet::new(),
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
        let json =
            serde_json::json!({"type": "interaction", "agentId": user_id, "interactions": list});
        Frame::new("interaction", None, json.to_string())
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

    /// Asks the upstream (once per conversation and wrap-up code) for what
    /// the event left out, then fills it in and republishes.
    fn ask_completion(&mut self, user_id: &str, i: &Interaction, ctx: &mut Context<Self>) {
        let key = (i.conversation_id.clone(), i.wrapup_code_id.clone());
        let Some(upstream) = self.upstream.clone() else {
            return;
        };
        if !self.asked.insert(key) {
            return;
        }
        let msg = CompleteInteraction {
            conversation_id: i.conversation_id.clone(),
            queue_id: i.queue.id.clone(),
            wrapup_code_id: i.wrapup_code_id.clone(),
            need_start: i.start_time.is_none(),
        };
        let user_id = user_id.to_string();
        let conv = i.conversation_id.clone();
        ctx.spawn(upstream.send(msg).into_actor(self).map(move |res, act, _| {
            let Ok(c) = res else { return };
            let known = act.completions.entry(conv.clone()).or_default();
            if c.queue_name.is_some() {
                known.queue_id.clone_from(&c.queue_id);
                known.queue_name.clone_from(&c.queue_name);
            }
            if c.start_time.is_some() {
                known.start_time.clone_from(&c.start_time);
            }
            if c.wrapup.is_some() {
                known.wrapup.clone_from(&c.wrapup);
            }
            let known = known.clone();
            let changed = act
                .contexts
                .get_mut(&user_id)
                .and_then(|m| m.get_mut(&conv))
                .is_some_and(|i| i.complete(&known));
            if changed {
                act.publish(&user_id);
            }
        }));
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

    fn handle(&mut self, m: ConversationSeen, ctx: &mut Context<Self>) {
        if !self.subscribed.contains(&m.user_id) {
            return;
        }
        let mut ask = None;
        let interaction = m.interaction.map(|mut i| {
            if let Some(c) = self.completions.get(&i.conversation_id) {
                i.complete(c);
            }
            if i.incomplete() {
                ask = Some(i.clone());
            }
            i
        });
        let map = self.contexts.entry(m.user_id.clone()).or_default();
        let changed = match interaction {
            Some(i) => map.insert(m.conversation_id.clone(), i.clone()).as_ref() != Some(&i),
            None => {
                self.completions.remove(&m.conversation_id);
                self.asked.retain(|(c, _)| *c != m.conversation_id);
                map.remove(&m.conversation_id).is_some()
            }
        };
        if changed {
            self.publish(&m.user_id);
        }
        if let Some(i) = ask {
            self.ask_completion(&m.user_id, &i, ctx);
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
