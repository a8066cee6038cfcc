//! The registry's view of one agent, as clients see it: immutable,
//! reference-counted snapshots (`Arc<AgentView>`) so that the presence map,
//! the replay buffer and every pending outbox share one copy.
//!
//! The JSON shape is the downstream contract's `Agent` (design.md):
//! `{"id","name","division","queues","presence","routingStatus","version"}`;
//! a change adds `origin` and `previous`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::model::{iso, Division, Origin, RoutingStatus, SystemPresence};

/// Serialises a timestamp as Genesys does (ISO-8601, milliseconds, `Z`).
fn ser_iso<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*t))
}

/// An agent's presence with the org's label resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceView {
    /// The presence definition id (primary or secondary).
    pub definition_id: String,
    /// Normalised system presence (`ON_QUEUE`, `BREAK`, …).
    pub system_presence: SystemPresence,
    /// The org's own label for the definition (default locale); the system
    /// presence in title case when the definition is unknown.
    pub label: String,
    /// The agent's free-text status message.
    pub message: String,
    /// Genesys's `modifiedDate`: when this presence started.
    #[serde(serialize_with = "ser_iso")]
    pub since: DateTime<Utc>,
}

/// An agent's routing status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingView {
    /// `OFF_QUEUE`, `IDLE`, `INTERACTING`, `NOT_RESPONDING`, `COMMUNICATING`.
    pub status: RoutingStatus,
    /// Genesys's `startTime`: when this status started.
    #[serde(serialize_with = "ser_iso")]
    pub since: DateTime<Utc>,
}

/// One agent's full state at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    /// Genesys user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The agent's division.
    pub division: Division,
    /// Ids of the queues the agent is a member of.
    pub queues: Vec<String>,
    /// Current presence; `null` until Genesys reported one.
    pub presence: Option<PresenceView>,
    /// Current routing status; `null` until Genesys reported one.
    pub routing_status: Option<RoutingView>,
    /// Per-agent version, bumped on every change (the `ETag`).
    pub version: u64,
}

impl AgentView {
    /// True when everything but `version` is equal.
    pub fn same_state(&self, other: &AgentView) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.division == other.division
            && self.queues == other.queues
            && self.presence == other.presence
            && self.routing_status == other.routing_status
    }
}

/// One change of one agent, as applied by the registry.
#[derive(Debug, Clone)]
pub struct Change {
    /// The agent id (also in `before`/`after`; kept for removals).
    pub id: String,
    /// State before the change; `None` for an agent new to the directory.
    pub before: Option<Arc<AgentView>>,
    /// State after the change; `None` when the agent left the directory.
    pub after: Option<Arc<AgentView>>,
    /// Where the change came from.
    pub origin: Origin,
}

/// The wire form of a change: the new state flattened, plus `origin` and
/// `previous` (the state before, without its own `previous`).
#[derive(Serialize)]
struct ChangeJson<'a> {
    #[serde(flatten)]
    agent: &'a AgentView,
    origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a AgentView>,
}

/// Encodes one change as an `Agent` object with `origin` and `previous`
/// (removals travel in the delta's `removed` list instead).
pub fn encode_change(after: &AgentView, before: Option<&AgentView>, origin: Origin) -> String {
    // unwrap: serialising plain structs of strings, numbers and enums cannot fail.
    serde_json::to_string(&ChangeJson {
        agent: after,
        origin,
        previous: before,
    })
    .unwrap()
}

/// The wire form of one agent for `GET /api/v1/agents/{id}`: the state plus
/// `previous` when the registry remembers it.
#[derive(Serialize)]
pub struct AgentWithPrevious<'a> {
    /// Current state.
    #[serde(flatten)]
    pub agent: &'a AgentView,
    /// State before the last change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<&'a AgentView>,
}
