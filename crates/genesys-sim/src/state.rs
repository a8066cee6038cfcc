//! The simulator's mutable world: the org and its users' live state, OAuth
//! tokens, notification channels and their sockets, conversations, the
//! analytics history, active faults and request counters.
//!
//! One `parking_lot::Mutex` guards it all (`Sim::inner`); no lock is held
//! across an `.await`. Events leave through each connected socket's bounded
//! queue, so a stuck socket can never block a state change: when its queue
//! is full the socket is closed, as the real notification service would.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration as StdDuration, Instant};

use bytestring::ByteString;
use chrono::{DateTime, Utc};
use rand::{rngs::StdRng, Rng};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::org::{uuid_from, Org, SimUser};
use super::SimConfig;
use crate::spelling::{iso, RoutingStatus, SystemPresence};

/// What a channel's socket task is told to do.
#[derive(Debug)]
pub enum SocketCmd {
    /// Send this text frame.
    Text(ByteString),
    /// Send a close frame with this code and reason, then end.
    Close(u16, String),
    /// End abruptly, without a close frame (a dropped connection).
    Abort,
}

/// The socket currently attached to a channel.
#[derive(Debug)]
pub struct SocketSlot {
    /// Distinguishes this socket from a later one on the same channel.
    pub generation: u64,
    pub tx: mpsc::Sender<SocketCmd>,
    /// Set by a `socket_closing` fault: close the socket at this instant.
    pub closing_at: Option<Instant>,
}

/// A notification channel (`genesys-api.md` §5).
#[derive(Debug)]
pub struct Channel {
    pub id: String,
    pub client_id: String,
    pub token: String,
    pub expires: DateTime<Utc>,
    /// Last time a socket was connected or the subscriptions changed; the
    /// 21st channel evicts the one with the oldest value, idle ones first.
    pub last_used: Instant,
    /// Subscribed topics as the client spelled them (combined topics kept whole).
    pub topics: Vec<String>,
    pub socket: Option<SocketSlot>,
}

/// An issued OAuth token.
#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub expires_at: Instant,
    /// Fixed-window rate-limit accounting (per token, `genesys-api.md` §8).
    pub window_start: Instant,
    pub window_count: u32,
}

/// A fault injected through `POST /sim/faults`, bounded by count or time.
#[derive(Debug, Clone, Default)]
pub struct FaultBudget {
    pub remaining: Option<u64>,
    pub until: Option<Instant>,
    pub delay: StdDuration,
}

impl FaultBudget {
    /// True while the fault is in force; consumes one unit of a count budget.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        if let Some(until) = self.until {
            if now >= until {
                self.until = None;
            } else {
                return true;
            }
        }
        if let Some(n) = self.remaining.as_mut() {
            if *n > 0 {
                *n -= 1;
                return true;
            }
            self.remaining = None;
        }
        false
    }

    pub fn active(&self) -> bool {
        self.until.is_some_and(|u| Instant::now() < u) || self.remaining.is_some_and(|n| n > 0)
    }
}

/// Injected faults that act on REST requests or the event flow.
#[derive(Debug, Default)]
pub struct Faults {
    pub rate_limit: FaultBudget,
    pub service_unavailable: FaultBudget,
    pub slow_responses: FaultBudget,
    /// While set and in the future, no frame leaves any socket (heartbeats,
    /// pongs and events are all swallowed; events are lost).
    pub stall_until: Option<Instant>,
    /// `refuse_topic`: lower-cased topic → the status its subscription gets
    /// (400 `notification.invalid.topic` or 403 `missing.permissions`), or a
    /// `Rejected` entry under `ignoreErrors=true`.
    pub refused_topics: HashMap<String, u16>,
    /// `clock_offset`: added to every date the simulator stamps from now on
    /// (`modifiedDate`, `startTime`): a Genesys clock ahead of or behind the gateway's.
    pub clock_offset: chrono::Duration,
}

impl Faults {
    pub fn stalled(&self) -> bool {
        self.stall_until.is_some_and(|u| Instant::now() < u)
    }
}

/// A participant's media leg inside a simulated conversation.
#[derive(Debug, Clone)]
pub struct SimConversation {
    pub id: String,
    pub media: &'static str,
    pub direction: &'static str,
    pub queue: usize,
    pub agent: usize,
    pub customer_name: String,
    pub ani: String,
    pub external_tag: String,
    pub start: DateTime<Utc>,
    pub connected: DateTime<Utc>,
    pub held: bool,
    pub hold_start: Option<DateTime<Utc>>,
    pub muted: bool,
    /// Agent leg disconnected and in after-call work.
    pub wrapup: bool,
    pub wrapup_code: Option<String>,
    pub end: Option<DateTime<Utc>>,
    pub customer_participant_id: String,
    pub agent_participant_id: String,
    pub acd_participant_id: String,
}

/// One closed or open interval of a user's presence or routing history.
#[derive(Debug, Clone)]
pub struct HistoryRecord {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// Upper snake system presence or routing status.
    pub value: &'static str,
    /// Presence definition id (presence records only).
    pub definition: Option<String>,
}

/// Counters exposed on `GET /sim/stats`, used by tests and benchmarks.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub tokens_issued: u64,
    pub token_failures: u64,
    pub api_requests: u64,
    /// 429s sent because a token really exceeded its budget.
    pub rate_limited: u64,
    /// 429s sent because of an injected `rate_limit` fault.
    pub rate_limited_injected: u64,
    pub unavailable_injected: u64,
    pub unauthorized: u64,
    pub channels_created: u64,
    pub channels_evicted: u64,
    pub sockets_opened: u64,
    pub sockets_kicked: u64,
    pub events_emitted: u64,
    pub frames_sent: u64,
    pub frames_dropped_no_socket: u64,
    pub subscription_requests: u64,
    pub requests_by_route: std::collections::BTreeMap<String, u64>,
}

/// Everything behind the simulator's one lock.
pub struct SimInner {
    pub org: Org,
    pub user_index: HashMap<String, usize>,
    pub tokens: HashMap<String, Token>,
    pub channels: HashMap<String, Channel>,
    /// Lower-cased expanded topic → channel ids subscribed to it.
    pub topic_index: HashMap<String, HashSet<String>>,
    pub conversations: HashMap<String, SimConversation>,
    /// Ended conversations, oldest first, kept for analytics queries.
    pub ended: VecDeque<String>,
    pub presence_history: Vec<Vec<HistoryRecord>>,
    pub routing_history: Vec<Vec<HistoryRecord>>,
    pub faults: Faults,
    pub stats: Stats,
    pub rng: StdRng,
    pub socket_generation: u64,
    pub churn_rate: f64,
    pub next_tag: u64,
    /// Fidelity choices where the real API is open (set from the config).
    pub fidelity: crate::Fidelity,
    /// Customers waiting in queues (`super::queues`).
    pub waiting: Vec<super::queues::SimWaiting>,
}

/// Most history records kept per user and kind; older ones are dropped.
const HISTORY_CAP: usize = 2_000;
/// How long an expired token is still recognised (and refused as expired).
const EXPIRED_TOKEN_MEMORY: StdDuration = StdDuration::from_secs(3_600);
/// Most ended conversations kept for analytics.
const ENDED_CAP: usize = 20_000;

/// The expanded topics a subscription entry stands for, lower-cased for
/// matching (topics compare case-insensitively, §5.2). A combined topic
/// `v2.users.{id}?presence&routingStatus` stands for each suffix (§5.3).
pub fn expand_topic(topic: &str) -> Vec<String> {
    match topic.split_once('?') {
        Some((prefix, rest)) => rest
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|s| format!("{prefix}.{s}").to_ascii_lowercase())
            .collect(),
        None => vec![topic.to_ascii_lowercase()],
    }
}

/// Validates one subscription topic as the notification service would:
/// returns a rejection reason for anything it does not publish.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.len() > 200 {
        return Err(format!(
            "Topic exceeds the maximum length of 200 characters: {}",
            topic.len()
        ));
    }
    const USER_SUFFIXES: [&str; 12] = [
        "presence",
        "routingstatus",
        "activity",
        "conversations",
        "conversationsummary",
        "outofoffice",
        "station",
        "integrationpresence",
        "conversations.calls",
        "conversations.chats",
        "conversations.emails",
        "conversations.messages",
    ];
    let expanded = expand_topic(topic);
    if expanded.is_empty() {
        return Err("The subscription topic is not valid.".into());
    }
    for t in expanded {
        let parts: Vec<&str> = t.splitn(4, '.').collect();
        let ok = match parts.as_slice() {
            ["v2", "users", id, suffix] => {
                uuid::Uuid::parse_str(id).is_ok() && USER_SUFFIXES.contains(suffix)
            }
            ["v2", "routing", "queues", rest] => rest.split_once('.').is_some_and(|(id, s)| {
                uuid::Uuid::parse_str(id).is_ok() && (s == "users" || s == "conversations")
            }),
            _ => false,
        };
        if !ok {
            return Err("The subscription topic is not valid.".into());
        }
    }
    Ok(())
}

impl SimInner {
    pub fn new(org: Org, rng: StdRng) -> SimInner {
        let user_index = org
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        let presence_history = org
            .users
            .iter()
            .map(|u| {
                vec![HistoryRecord {
                    start: u.presence_modified,
                    end: None,
                    value: org.definitions[u.presence_def]
                        .system_presence
                        .upper_snake(),
                    definition: Some(org.definitions[u.presence_def].id.clone()),
                }]
            })
            .collect();
        let routing_history = org
            .users
            .iter()
            .map(|u| {
                vec![HistoryRecord {
                    start: u.routing_since,
                    end: None,
                    value: u.routing.as_str(),
                    definition: None,
                }]
            })
            .collect();
        SimInner {
            org,
            user_index,
            tokens: HashMap::new(),
            channels: HashMap::new(),
            topic_index: HashMap::new(),
            conversations: HashMap::new(),
            ended: VecDeque::new(),
            presence_history,
            routing_history,
            faults: Faults::default(),
            stats: Stats::default(),
            rng,
            socket_generation: 0,
            churn_rate: 0.0,
            next_tag: 4711,
            fidelity: crate::Fidelity::default(),
            waiting: Vec::new(),
        }
    }

    pub fn user_idx(&self, id: &str) -> Option<usize> {
        self.user_index.get(id).copied()
    }

    /// Sends one event under `topic` to every connected socket subscribed to
    /// it. At-most-once: with no socket, or during a stall, it is lost.
    pub fn emit(&mut self, topic: &str, body: Value) {
        self.stats.events_emitted += 1;
        let Some(ids) = self.topic_index.get(&topic.to_ascii_lowercase()) else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let stalled = self.faults.stalled();
        let frame = json!({
            "topicName": topic,
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": uuid_from(&mut self.rng)},
        });
        let text: ByteString = frame.to_string().into();
        let mut overflowed = Vec::new();
        for id in ids {
            let Some(ch) = self.channels.get(id) else {
                continue;
            };
            match &ch.socket {
                Some(slot) if !stalled => match slot.tx.try_send(SocketCmd::Text(text.clone())) {
                    Ok(()) => self.stats.frames_sent += 1,
                    Err(_) => overflowed.push(id.clone()),
                },
                _ => self.stats.frames_dropped_no_socket += 1,
            }
        }
        // A socket that cannot keep up is closed, as the real service does
        // with a consumer that stops reading.
        for id in overflowed {
            if let Some(slot) = self.channels.get_mut(&id).and_then(|c| c.socket.take()) {
                let _ = slot.tx.try_send(SocketCmd::Abort);
            }
        }
    }

    /// Emits the presence event of user `u` (callers emit activity after).
    /// Without `modifiedDate` by default, as Genesys's own example shows it.
    fn emit_presence(&mut self, u: usize) {
        let user = &self.org.users[u];
        let def = &self.org.definitions[user.presence_def];
        let mut body = json!({
            "source": "PURECLOUD",
            "presenceDefinition": {"id": def.id, "systemPresence": def.system_presence.upper_snake()},
            "primary": true,
            "message": user.message,
        });
        if !self.fidelity.presence_events_without_modified_date {
            body["modifiedDate"] = json!(iso(user.presence_modified));
        }
        let topic = format!("v2.users.{}.presence", user.id);
        self.emit(&topic, body);
    }

    fn emit_routing(&mut self, u: usize) {
        let user = &self.org.users[u];
        let body = json!({
            "id": user.id,
            "routingStatus": {"status": user.routing.as_str(), "startTime": iso(user.routing_since)},
        });
        let topic = format!("v2.users.{}.routingStatus", user.id);
        self.emit(&topic, body);
    }

    /// The ids of the queues user `u` is active in (joined), whatever the
    /// presence: the real captured activity event lists them for an agent
    /// who is off queue (genesys-api.md §5.4).
    pub fn active_queue_ids(&self, u: usize) -> Vec<&str> {
        let user = &self.org.users[u];
        user.queues
            .iter()
            .filter(|q| crate::org::joined(u, **q, self.fidelity.unjoined_member_rate))
            .map(|q| self.org.queues[*q].id.as_str())
            .collect()
    }

    fn emit_activity(&mut self, u: usize) {
        let user = &self.org.users[u];
        let def = &self.org.definitions[user.presence_def];
        let body = json!({
            "id": user.id,
            "routingStatus": {"status": user.routing.as_str(), "startTime": iso(user.routing_since)},
            "presence": {
                "presenceDefinition": {"id": def.id, "systemPresence": def.system_presence.upper_snake()},
                "presenceMessage": user.message,
                "modifiedDate": iso(user.presence_modified),
            },
            "outOfOffice": {"active": false, "modifiedDate": "2024-01-01T00:00:00.000Z"},
            "activeQueueIds": self.active_queue_ids(u),
            "dateActiveQueuesChanged": iso(user.queues_changed),
        });
        let topic = format!("v2.users.{}.activity", user.id);
        self.emit(&topic, body);
    }

    /// Sets user `u`'s presence to definition `def`, as Genesys would: the
    /// routing status leaves `OFF_QUEUE` on going On Queue and returns to it
    /// on leaving. Emits presence, routing status and activity events.
    /// Returns false when nothing changed (same definition and message).
    pub fn set_presence(&mut self, u: usize, def: usize, message: Option<String>) -> bool {
        let now = Utc::now() + self.faults.clock_offset;
        let was_on_queue = self.is_on_queue(u);
        let user = &mut self.org.users[u];
        let message_changed = message.as_ref().is_some_and(|m| *m != user.message);
        if user.presence_def == def && !message_changed {
            return false;
        }
        let def_changed = user.presence_def != def;
        user.presence_def = def;
        if let Some(m) = message {
            user.message = m;
        }
        user.presence_modified = monotonic(user.presence_modified, now);
        let at = user.presence_modified;
        if def_changed {
            let sp = self.org.definitions[def].system_presence;
            let id = self.org.definitions[def].id.clone();
            push_history(
                &mut self.presence_history[u],
                at,
                sp.upper_snake(),
                Some(id),
            );
        }
        // The routing status moves with the presence before any event leaves,
        // so that no activity event shows an impossible pair (e.g. BREAK with
        // routing IDLE): the real service reports routing OFF_QUEUE whenever
        // the agent is not On Queue (genesys-api.md §4.6).
        let on_queue = self.is_on_queue(u);
        let mut routing_changed = false;
        if on_queue != was_on_queue {
            let status = if on_queue {
                if self.org.users[u].conversations.is_empty() {
                    RoutingStatus::Idle
                } else {
                    RoutingStatus::Interacting
                }
            } else {
                RoutingStatus::OffQueue
            };
            routing_changed = self.apply_routing(u, status);
        }
        self.emit_presence(u);
        if routing_changed {
            self.emit_routing(u);
        }
        self.emit_activity(u);
        true
    }

    /// `rewind`: Genesys restarted with older state. Every user gets another
    /// primary presence (and the routing status that goes with it) dated
    /// `hours` in the past, without any event; every socket drops.
    /// Returns the number of users changed.
    pub fn rewind(&mut self, hours: f64) -> usize {
        let base = Utc::now() + self.faults.clock_offset
            - chrono::Duration::milliseconds((hours * 3_600_000.0) as i64);
        let choices = [
            SystemPresence::Available,
            SystemPresence::Break,
            SystemPresence::Meal,
            SystemPresence::OnQueue,
            SystemPresence::Away,
        ];
        let n = self.org.users.len();
        for u in 0..n {
            let cur = self.org.definitions[self.org.users[u].presence_def].system_presence;
            let pick = self.rng.random_range(0..choices.len());
            let sp = if choices[pick] == cur {
                choices[(pick + 1) % choices.len()]
            } else {
                choices[pick]
            };
            let def = self.org.primary_def(sp);
            let at = base - chrono::Duration::seconds(self.rng.random_range(0..600));
            let routing = if sp == SystemPresence::OnQueue {
                if self.org.users[u].conversations.is_empty() {
                    RoutingStatus::Idle
                } else {
                    RoutingStatus::Interacting
                }
            } else {
                RoutingStatus::OffQueue
            };
            let user = &mut self.org.users[u];
            user.presence_def = def;
            user.message = String::new();
            user.presence_modified = at;
            user.routing = routing;
            user.routing_since = at;
        }
        for ch in self.channels.values_mut() {
            if let Some(slot) = ch.socket.take() {
                let _ = slot.tx.try_send(SocketCmd::Abort);
            }
        }
        n
    }

    pub fn is_on_queue(&self, u: usize) -> bool {
        let user = &self.org.users[u];
        self.org.definitions[user.presence_def].system_presence == SystemPresence::OnQueue
    }

    /// Sets user `u`'s routing status and emits its routing and activity events.
    pub fn set_routing(&mut self, u: usize, status: RoutingStatus) {
        if self.apply_routing(u, status) {
            self.emit_routing(u);
            self.emit_activity(u);
        }
    }

    /// Changes user `u`'s routing status and history without emitting;
    /// false when it already had that status.
    fn apply_routing(&mut self, u: usize, status: RoutingStatus) -> bool {
        let user = &mut self.org.users[u];
        if user.routing == status {
            return false;
        }
        user.routing = status;
        user.routing_since = monotonic(user.routing_since, Utc::now() + self.faults.clock_offset);
        let at = user.routing_since;
        push_history(&mut self.routing_history[u], at, status.as_str(), None);
        true
    }

    /// Emits the conversation and conversation-summary events for `conv`.
    pub fn emit_conversation(&mut self, conv_id: &str) {
        let Some(conv) = self.conversations.get(conv_id) else {
            return;
        };
        let body = super::conversations::conversation_json(
            &self.org,
            conv,
            super::conversations::Shape::Event,
        );
        let agent = conv.agent;
        let user_id = self.org.users[agent].id.clone();
        self.emit(&format!("v2.users.{user_id}.conversations"), body);
        let summary = super::conversations::summary_json(self, agent);
        self.emit(&format!("v2.users.{user_id}.conversationsummary"), summary);
    }

    /// Moves a conversation to the ended list (kept for analytics).
    pub fn end_conversation(&mut self, conv_id: &str) {
        let Some(conv) = self.conversations.get_mut(conv_id) else {
            return;
        };
        if conv.end.is_none() {
            conv.end = Some(Utc::now());
        }
        let agent = conv.agent;
        self.org.users[agent].conversations.retain(|c| c != conv_id);
        self.emit_conversation(conv_id);
        self.ended.push_back(conv_id.to_string());
        while self.ended.len() > ENDED_CAP {
            if let Some(old) = self.ended.pop_front() {
                self.conversations.remove(&old);
            }
        }
    }

    /// Number of topics a channel holds toward the 1 000 limit.
    pub fn topic_count(&self, topics: &[String], count_expanded: bool) -> usize {
        if count_expanded {
            topics.iter().map(|t| expand_topic(t).len()).sum()
        } else {
            topics.len()
        }
    }

    /// Replaces a channel's subscriptions, keeping the topic index in step.
    pub fn set_topics(&mut self, channel_id: &str, topics: Vec<String>) {
        let Some(ch) = self.channels.get_mut(channel_id) else {
            return;
        };
        let old = std::mem::replace(&mut ch.topics, topics);
        let new = ch.topics.clone();
        for t in old.iter().flat_map(|t| expand_topic(t)) {
            if let Some(set) = self.topic_index.get_mut(&t) {
                set.remove(channel_id);
                if set.is_empty() {
                    self.topic_index.remove(&t);
                }
            }
        }
        for t in new.iter().flat_map(|t| expand_topic(t)) {
            self.topic_index
                .entry(t)
                .or_default()
                .insert(channel_id.to_string());
        }
    }

    /// Removes a channel: its socket is closed and its topics forgotten.
    pub fn remove_channel(&mut self, channel_id: &str, close: Option<(u16, &str)>) {
        self.set_topics(channel_id, Vec::new());
        if let Some(mut ch) = self.channels.remove(channel_id) {
            if let Some(slot) = ch.socket.take() {
                let cmd = match close {
                    Some((code, reason)) => SocketCmd::Close(code, reason.to_string()),
                    None => SocketCmd::Abort,
                };
                let _ = slot.tx.try_send(cmd);
            }
        }
    }

    /// Expires tokens and channels whose time has come, and closes sockets
    /// whose `socket_closing` grace ran out. Called by the housekeeping tick.
    pub fn housekeeping(&mut self, cfg: &SimConfig) {
        let now = Instant::now();
        // Expired tokens are remembered for a while so that they keep getting
        // 401 `credentials.expired` (genesys-api.md §9) rather than
        // `bad.credentials`, as a token the service never issued does.
        self.tokens
            .retain(|_, t| t.expires_at + EXPIRED_TOKEN_MEMORY > now);
        if cfg.token_expiry_closes_channels {
            let tokens = &self.tokens;
            let dead: Vec<String> = self
                .channels
                .values()
                .filter(|c| tokens.get(&c.token).is_none_or(|t| t.expires_at <= now))
                .map(|c| c.id.clone())
                .collect();
            for id in dead {
                self.remove_channel(&id, Some((1008, "authorization token expired")));
            }
        }
        let utc = Utc::now();
        let stale: Vec<String> = self
            .channels
            .values()
            .filter(|c| c.expires <= utc)
            .map(|c| c.id.clone())
            .collect();
        for id in stale {
            self.remove_channel(&id, Some((1000, "channel expired")));
        }
        for ch in self.channels.values_mut() {
            if ch
                .socket
                .as_ref()
                .is_some_and(|s| s.closing_at.is_some_and(|at| at <= now))
            {
                if let Some(slot) = ch.socket.take() {
                    let _ = slot.tx.try_send(SocketCmd::Close(
                        1001,
                        "socket closing for maintenance".into(),
                    ));
                }
            }
        }
    }

    /// Ground truth for `GET /sim/state` (design.md simulator contract).
    pub fn state_json(&self) -> Value {
        let users: Vec<Value> = self
            .org
            .users
            .iter()
            .map(|u| user_state_json(&self.org, u))
            .collect();
        json!({ "users": users })
    }

    /// A fresh random value from the simulator's seeded generator.
    pub fn roll(&mut self, n: u32) -> u32 {
        self.rng.random_range(0..n)
    }
}

/// One user's entry in `GET /sim/state`.
pub fn user_state_json(org: &Org, u: &SimUser) -> Value {
    let def = &org.definitions[u.presence_def];
    json!({
        "id": u.id,
        "name": u.name,
        "division": {"id": org.divisions[u.division].id, "name": org.divisions[u.division].name},
        "queues": u.queues.iter().map(|q| json!({"id": org.queues[*q].id, "name": org.queues[*q].name})).collect::<Vec<_>>(),
        "presence": {
            "definitionId": def.id,
            "systemPresence": def.system_presence.upper_snake(),
            "label": def.label(),
            "message": u.message,
            "modifiedDate": iso(u.presence_modified),
        },
        "routingStatus": {"status": u.routing.as_str(), "startTime": iso(u.routing_since)},
        "conversations": u.conversations,
    })
}

/// A timestamp strictly after `prev`, so that two changes in the same
/// millisecond still order (Genesys dates carry milliseconds).
fn monotonic(prev: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let min = prev + chrono::Duration::milliseconds(1);
    if now < min {
        min
    } else {
        now
    }
}

fn push_history(
    h: &mut Vec<HistoryRecord>,
    at: DateTime<Utc>,
    value: &'static str,
    definition: Option<String>,
) {
    if let Some(last) = h.last_mut() {
        last.end = Some(at);
    }
    h.push(HistoryRecord {
        start: at,
        end: None,
        value,
        definition,
    });
    if h.len() > HISTORY_CAP {
        h.drain(..h.len() - HISTORY_CAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Combined topics expand to one lower-cased topic per suffix.
    #[test]
    fn combined_topics_expand() {
        assert_eq!(
            expand_topic("v2.users.ABC?presence&routingStatus"),
            vec!["v2.users.abc.presence", "v2.users.abc.routingstatus"]
        );
        assert_eq!(
            expand_topic("v2.users.x.activity"),
            vec!["v2.users.x.activity"]
        );
    }

    /// Only topics the service publishes are accepted.
    #[test]
    fn topic_validation() {
        let id = "3ce84f47-4e65-4756-a815-67a2b32e58b8";
        assert!(validate_topic(&format!("v2.users.{id}.presence")).is_ok());
        assert!(validate_topic(&format!("v2.users.{id}?presence&routingStatus")).is_ok());
        assert!(validate_topic(&format!("v2.routing.queues.{id}.users")).is_ok());
        assert!(validate_topic(&format!("v2.users.{id}.presenceUpdate")).is_err());
        assert!(validate_topic("v2.users.not-a-uuid.presence").is_err());
        assert!(validate_topic(&format!("v2.users.{id}?{}", "presence&".repeat(40))).is_err());
    }
}
