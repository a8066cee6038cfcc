//! The gateway's own vocabulary: normalised presence, routing status, agents
//! and the events that cross from the upstream actor to the registry actor.
//!
//! Genesys spells the same system presence three ways depending on the API
//! surface (`On Queue` on legacy REST, `OnQueue` on the current definitions
//! API, `ON_QUEUE` in notifications and analytics; `genesys-api.md` §4.2).
//! Everything past the upstream boundary uses [`SystemPresence`], serialised
//! in upper snake case, and keys presences by definition id, never by label.
//!
//! Nothing in this module does I/O; the upstream actor produces these types,
//! the registry consumes them, and a future Redis transport can carry them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The ten system presences of Genesys Cloud (`genesys-api.md` §4.2), plus
/// `Unknown` for anything the gateway cannot place (never fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SystemPresence {
    Available,
    Away,
    Busy,
    Offline,
    Idle,
    OnQueue,
    Meal,
    Training,
    Meeting,
    Break,
    Unknown,
}

impl SystemPresence {
    /// Every real system presence, in the order Genesys lists them.
    pub const ALL: [SystemPresence; 10] = [
        SystemPresence::Available,
        SystemPresence::Away,
        SystemPresence::Busy,
        SystemPresence::Offline,
        SystemPresence::Idle,
        SystemPresence::OnQueue,
        SystemPresence::Meal,
        SystemPresence::Training,
        SystemPresence::Meeting,
        SystemPresence::Break,
    ];

    /// Parses any of Genesys's spellings (`On Queue`, `OnQueue`, `ON_QUEUE`,
    /// `on_queue`): upper-case, then ignore spaces and underscores (§4.2).
    pub fn parse(s: &str) -> Option<SystemPresence> {
        let norm: String = s
            .chars()
            .filter(|c| *c != ' ' && *c != '_' && *c != '-')
            .flat_map(char::to_uppercase)
            .collect();
        Some(match norm.as_str() {
            "AVAILABLE" => SystemPresence::Available,
            "AWAY" => SystemPresence::Away,
            "BUSY" => SystemPresence::Busy,
            "OFFLINE" => SystemPresence::Offline,
            "IDLE" => SystemPresence::Idle,
            "ONQUEUE" => SystemPresence::OnQueue,
            "MEAL" => SystemPresence::Meal,
            "TRAINING" => SystemPresence::Training,
            "MEETING" => SystemPresence::Meeting,
            "BREAK" => SystemPresence::Break,
            _ => return None,
        })
    }

    /// Upper snake case, as notifications and analytics spell it (`ON_QUEUE`).
    pub fn upper_snake(self) -> &'static str {
        match self {
            SystemPresence::Available => "AVAILABLE",
            SystemPresence::Away => "AWAY",
            SystemPresence::Busy => "BUSY",
            SystemPresence::Offline => "OFFLINE",
            SystemPresence::Idle => "IDLE",
            SystemPresence::OnQueue => "ON_QUEUE",
            SystemPresence::Meal => "MEAL",
            SystemPresence::Training => "TRAINING",
            SystemPresence::Meeting => "MEETING",
            SystemPresence::Break => "BREAK",
            SystemPresence::Unknown => "UNKNOWN",
        }
    }

    /// Title case with a space, as legacy REST spells it (`On Queue`).
    pub fn legacy(self) -> &'static str {
        match self {
            SystemPresence::Available => "Available",
            SystemPresence::Away => "Away",
            SystemPresence::Busy => "Busy",
            SystemPresence::Offline => "Offline",
            SystemPresence::Idle => "Idle",
            SystemPresence::OnQueue => "On Queue",
            SystemPresence::Meal => "Meal",
            SystemPresence::Training => "Training",
            SystemPresence::Meeting => "Meeting",
            SystemPresence::Break => "Break",
            SystemPresence::Unknown => "Unknown",
        }
    }

    /// Pascal case without a space, as `/api/v2/presence/definitions` spells it (`OnQueue`).
    pub fn current(self) -> &'static str {
        match self {
            SystemPresence::OnQueue => "OnQueue",
            other => other.legacy(),
        }
    }
}

impl fmt::Display for SystemPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.upper_snake())
    }
}

/// Routing status (`genesys-api.md` §4.6). Set by Genesys while an agent is
/// On Queue; `OFF_QUEUE` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoutingStatus {
    OffQueue,
    Idle,
    Interacting,
    NotResponding,
    Communicating,
}

impl RoutingStatus {
    /// Every routing status, in Genesys's order.
    pub const ALL: [RoutingStatus; 5] = [
        RoutingStatus::OffQueue,
        RoutingStatus::Idle,
        RoutingStatus::Interacting,
        RoutingStatus::NotResponding,
        RoutingStatus::Communicating,
    ];

    /// Parses the wire spelling, case-insensitively.
    pub fn parse(s: &str) -> Option<RoutingStatus> {
        Some(match s.to_ascii_uppercase().as_str() {
            "OFF_QUEUE" => RoutingStatus::OffQueue,
            "IDLE" => RoutingStatus::Idle,
            "INTERACTING" => RoutingStatus::Interacting,
            "NOT_RESPONDING" => RoutingStatus::NotResponding,
            "COMMUNICATING" => RoutingStatus::Communicating,
            _ => return None,
        })
    }

    /// The wire spelling (`OFF_QUEUE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingStatus::OffQueue => "OFF_QUEUE",
            RoutingStatus::Idle => "IDLE",
            RoutingStatus::Interacting => "INTERACTING",
            RoutingStatus::NotResponding => "NOT_RESPONDING",
            RoutingStatus::Communicating => "COMMUNICATING",
        }
    }
}

impl fmt::Display for RoutingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A division: `{id, name}` as Genesys names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Division {
    pub id: String,
    pub name: String,
}

/// A routing queue the gateway knows by id and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Queue {
    pub id: String,
    pub name: String,
    /// The division that owns the queue (`division` of
    /// `GET /api/v2/routing/queues`); `None` when Genesys left it out.
    #[serde(default)]
    pub division: Option<Division>,
}

/// One of the org's presence definitions: primary (one per system presence)
/// or secondary (an org's own label under a system presence, e.g. "Lunch").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceDefinition {
    pub id: String,
    pub system_presence: SystemPresence,
    /// The org's own label in the default locale (`en_US`).
    pub label: String,
    /// All labels by locale, as Genesys returns them in `languageLabels`.
    pub language_labels: std::collections::BTreeMap<String, String>,
    /// True for the built-in definition of each system presence.
    pub primary: bool,
    pub deactivated: bool,
}

/// A user's presence as Genesys last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceState {
    pub definition_id: String,
    pub system_presence: SystemPresence,
    pub message: String,
    /// Genesys's `modifiedDate`; orders presence updates for one user. When
    /// an event leaves it out (Genesys's own example does), the arrival time.
    pub modified: DateTime<Utc>,
    /// True when `modified` is the arrival time (the event had no
    /// `modifiedDate`): such a presence is ordered by arrival on the channel,
    /// and a later REST read replaces it whatever its clock says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub arrival: bool,
}

/// A user's routing status as Genesys last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingState {
    pub status: RoutingStatus,
    /// Genesys's `startTime`; orders routing updates for one user.
    pub since: DateTime<Utc>,
}

/// One directory entry with whatever state the upstream read alongside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub division: Division,
    /// Ids of the queues the user is a member of.
    pub queue_ids: Vec<String>,
    pub presence: Option<PresenceState>,
    pub routing: Option<RoutingState>,
}

/// Why the upstream sent a complete picture of the org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncReason {
    /// First complete read after start-up.
    Initial,
    /// Re-read after a gap in the event stream (reconnect, eviction, stall).
    Reconcile,
    /// Periodic directory refresh (users added, removed, renamed, moved).
    DirectoryRefresh,
}

/// Where a change came from, carried to clients and the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A live notification event.
    Event,
    /// A difference found by reconciliation through REST.
    Reconciled,
    /// The gateway's own write, confirmed by Genesys.
    Write,
}

/// Upstream connection state as shown to clients (`status` messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamState {
    /// Not yet synced since start-up.
    Starting,
    /// Every channel connected and the picture reconciled.
    Connected,
    /// At least one channel is down; the picture may be stale.
    Reconnecting,
    /// Genesys refuses or fails us (auth, repeated 5xx, circuit open).
    Degraded,
}

/// Upstream health, sent by the upstream actor whenever it changes and
/// periodically; feeds `/readyz`, `/metrics` and stream `status` messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamHealth {
    pub state: UpstreamState,
    /// Human-readable reason when not connected.
    pub detail: Option<String>,
    /// When the last notification frame of any kind (event or heartbeat) arrived.
    pub last_frame_at: Option<DateTime<Utc>>,
    /// When the last presence/routing event arrived.
    pub last_event_at: Option<DateTime<Utc>>,
    pub channels: usize,
    pub topics: usize,
    pub reconnects: u64,
    pub rate_limited: u64,
    pub rest_calls: u64,
    pub malformed_frames: u64,
    /// Topics Genesys refused to subscribe (at most
    /// [`REFUSED_TOPICS_LISTED`]); they were dropped from their channel,
    /// which carries on for everyone else. Empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_topics: Vec<RefusedTopic>,
    /// How many topics Genesys refuses in all.
    #[serde(default)]
    pub refused_topic_count: usize,
    /// Seconds within which the anti-entropy sweep corrects any state
    /// silently lost or wrong (one pass plus one step; 0 before the first
    /// directory read).
    #[serde(default)]
    pub staleness_bound_secs: f64,
}

/// Most refused topics listed in a health record.
pub const REFUSED_TOPICS_LISTED: usize = 20;

/// A subscription topic Genesys refused, and its reason (`rejectionReason`
/// of a `Rejected` entry, or the error of the refused call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedTopic {
    pub topic: String,
    pub reason: String,
}

impl UpstreamHealth {
    /// The health record of an upstream that has not connected yet.
    pub fn starting() -> UpstreamHealth {
        UpstreamHealth {
            state: UpstreamState::Starting,
            detail: None,
            last_frame_at: None,
            last_event_at: None,
            channels: 0,
            topics: 0,
            reconnects: 0,
            rate_limited: 0,
            rest_calls: 0,
            malformed_frames: 0,
            refused_topics: Vec::new(),
            refused_topic_count: 0,
            staleness_bound_secs: 0.0,
        }
    }
}

/// Everything the upstream actor tells the registry. Nothing else crosses
/// between them (design.md "Beyond one machine"). The registry answers
/// every event at once with `None`, except the gateway's own write (a
/// `Presence` with [`Origin::Write`]): that answer waits until the journal
/// has committed the change and carries the agent as clients now see it
/// (its JSON, as `GET /api/v1/agents/{id}` answers; `None` when the agent is
/// not in the directory).
#[derive(Debug, Clone, PartialEq, actix::Message)]
#[rtype(result = "Option<String>")]
pub enum UpstreamEvent {
    /// A complete picture: the directory and the state read with it. The
    /// registry replaces its directory (users gone are removed); the read's
    /// state replaces what it holds, except state an event brought after
    /// `read_at`, and it emits the differences.
    Sync {
        reason: SyncReason,
        users: Vec<UserRecord>,
        definitions: Vec<PresenceDefinition>,
        queues: Vec<Queue>,
        /// When the read was sent (the gateway's clock).
        read_at: DateTime<Utc>,
        /// The users' `queue_ids` come from a queue membership read. When
        /// `false` (the first sync of an upstream that has not read
        /// membership yet: a new cluster leader) agents already known
        /// keep their queues until the membership read says otherwise.
        membership_known: bool,
    },
    /// Presence and routing status of some agents, re-read through the bulk
    /// endpoints by the anti-entropy sweep; applied like a sync's state
    /// (differences go out `reconciled`), nobody is added or removed.
    Sweep {
        /// `(user id, presence, routing status)`; `None` where the read had none.
        users: Vec<(String, Option<PresenceState>, Option<RoutingState>)>,
        /// When the read was sent (the gateway's clock).
        read_at: DateTime<Utc>,
    },
    /// The presence definitions, re-read because an event named one the
    /// gateway did not know (a definition created at runtime).
    Definitions(Vec<PresenceDefinition>),
    /// One presence change.
    Presence {
        user_id: String,
        state: PresenceState,
        origin: Origin,
    },
    /// One routing status change.
    Routing {
        user_id: String,
        state: RoutingState,
        origin: Origin,
    },
    /// A user's queue membership changed.
    Queues {
        user_id: String,
        queue_ids: Vec<String>,
    },
    /// The queue list (ids, names, divisions) changed: read after the
    /// first sync and on every directory refresh.
    QueueList { queues: Vec<Queue> },
    /// Upstream health changed.
    Health(UpstreamHealth),
}

/// Formats a timestamp as Genesys does: ISO-8601, milliseconds, `Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

/// What cached REST reads add to an interaction built from an event
/// (the Genesys floor answers `genesys::conversations::CompleteInteraction`
/// with it; the interaction hub applies it with [`Interaction::complete`]).
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

/// Upstream → interaction hub: a conversation event (or REST read) for an agent.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConversationSeen {
    pub user_id: String,
    pub conversation_id: String,
    /// `None` when the agent's part ended.
    pub interaction: Option<Interaction>,
}

/// Upstream → interaction hub: the complete set of an agent's interactions (after a
/// watch starts or a gap), replacing what the hub had.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConversationsReset {
    pub user_id: String,
    pub interactions: Vec<Interaction>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling Genesys uses for a system presence parses to the same value.
    #[test]
    fn system_presence_spellings_normalise() {
        for sp in SystemPresence::ALL {
            assert_eq!(SystemPresence::parse(sp.legacy()), Some(sp));
            assert_eq!(SystemPresence::parse(sp.current()), Some(sp));
            assert_eq!(SystemPresence::parse(sp.upper_snake()), Some(sp));
        }
        assert_eq!(
            SystemPresence::parse("on queue"),
            Some(SystemPresence::OnQueue)
        );
        assert_eq!(SystemPresence::parse("Out of Office"), None);
    }

    /// Routing statuses round-trip through their wire spelling.
    #[test]
    fn routing_status_round_trips() {
        for rs in RoutingStatus::ALL {
            assert_eq!(RoutingStatus::parse(rs.as_str()), Some(rs));
        }
    }
}
