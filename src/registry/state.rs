//! The presence map: every agent's current state, the presence definitions
//! and the live counts. Pure logic, no actor and no I/O: the registry actor
//! owns one [`Directory`] and feeds it [`UpstreamEvent`]s in order; each call
//! returns the resulting [`Change`]s (possibly none: stale and duplicate
//! events are dropped here).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::{
    Origin, PresenceDefinition, PresenceState, Queue, RoutingState, SyncReason, UserRecord,
};

use super::agent::{AgentView, Change, PresenceView, RoutingView};
use super::counts::Counts;

/// One agent in the map.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Current state.
    pub view: Arc<AgentView>,
    /// State before the last change (`None` until it changed once).
    pub previous: Option<Arc<AgentView>>,
}

/// Counters of events the directory refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropCounters {
    /// Presence/routing events older than the state already held.
    pub stale: u64,
    /// Events equal to the state already held.
    pub duplicate: u64,
    /// Events for a user not in the directory.
    pub unknown_user: u64,
}

/// The presence map.
#[derive(Debug, Default)]
pub struct Directory {
    /// Agents by id.
    agents: HashMap<String, Entry>,
    /// Presence definitions by id (labels).
    definitions: HashMap<String, PresenceDefinition>,
    /// The definitions in the order the upstream listed them.
    definition_list: Vec<PresenceDefinition>,
    /// Queues the upstream knows (ids and names).
    queues: Vec<Queue>,
    /// Live counts by presence/routing.
    pub counts: Counts,
    /// Refused events.
    pub dropped: DropCounters,
    /// True once an `Initial` sync was applied.
    pub synced: bool,
    /// Where each agent's held presence and routing status came from, and
    /// when they were applied (see [`Held`]).
    provenance: HashMap<String, [Held; 2]>,
}

/// Where a held presence or routing status came from, and when the gateway
/// applied it (its own clock, never compared with Genesys's).
///
/// Ordering rules (issue 15, "Genesys is the truth after a gap"):
/// - events order against events by Genesys's dates only when both carry
///   one (`modifiedDate`, `startTime`); an event without a date is ordered
///   by arrival, i.e. it wins;
/// - a REST read (sync or sweep) overrides whatever is held, whatever its
///   dates, unless an event was applied after the read was sent;
/// - an event applied after a REST read wins over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The kind of source.
    pub source: Source,
    /// When the gateway applied it (gateway clock).
    pub at: DateTime<Utc>,
}

/// The kind of source of a held state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A REST read (sync or sweep).
    Rest,
    /// A live event carrying Genesys's date.
    DatedEvent,
    /// A live event without a date (stamped at arrival).
    ArrivalEvent,
}

const PRESENCE: usize = 0;
const ROUTING: usize = 1;

impl Directory {
    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// True when there are no agents.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// One agent.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.agents.get(id)
    }

    /// Every agent, sorted by id (stable snapshots).
    pub fn sorted(&self) -> Vec<&Arc<AgentView>> {
        let mut v: Vec<_> = self.agents.values().map(|e| &e.view).collect();
        v.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The presence definitions, as the upstream listed them.
    pub fn definitions(&self) -> &[PresenceDefinition] {
        &self.definition_list
    }

    /// Replaces the queue list (names and divisions); agents keep their
    /// membership, which arrives as its own events.
    pub fn set_queues(&mut self, queues: Vec<Queue>) {
        self.queues = queues;
    }

    /// The queues, as the upstream listed them.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    /// Where `id`'s held presence (`PRESENCE`) or routing (`ROUTING`) came from.
    fn held(&self, id: &str, which: usize) -> Option<Held> {
        self.provenance.get(id).map(|p| p[which])
    }

    fn set_held(&mut self, id: &str, which: usize, source: Source) {
        let now = Utc::now();
        let entry = self.provenance.entry(id.to_string()).or_insert(
            [Held {
                source: Source::Rest,
                at: now,
            }; 2],
        );
        entry[which] = Held { source, at: now };
    }

    /// True when a REST read sent at `read_at` may replace what is held:
    /// nothing was applied from an event after the read was sent.
    fn rest_may_replace(&self, id: &str, which: usize, read_at: DateTime<Utc>) -> bool {
        match self.held(id, which) {
            Some(h) if h.source != Source::Rest => h.at <= read_at,
            _ => true,
        }
    }

    /// Whether a definition id is known (an unknown one in an event means
    /// the definitions changed: the upstream re-reads them).
    pub fn knows_definition(&self, id: &str) -> bool {
        self.definitions.contains_key(id)
    }

    /// Replaces the definitions (after a re-read) and re-labels every agent
    /// whose label changed; returns those changes (`reconciled`).
    pub fn set_definitions(&mut self, definitions: &[PresenceDefinition]) -> Vec<Change> {
        self.definitions = definitions
            .iter()
            .map(|d| (d.id.clone(), d.clone()))
            .collect();
        self.definition_list = definitions.to_vec();
        let mut ids: Vec<String> = self.agents.keys().cloned().collect();
        ids.sort_unstable();
        let mut changes = Vec::new();
        for id in ids {
            let Some(cur) = self.agents.get(&id).map(|e| e.view.clone()) else {
                continue;
            };
            let Some(p) = &cur.presence else { continue };
            let Some(d) = self.definitions.get(&p.definition_id) else {
                continue;
            };
            if d.label != p.label {
                let mut next = (*cur).clone();
                if let Some(np) = next.presence.as_mut() {
                    np.label = d.label.clone();
                }
                changes.extend(self.replace(next, Origin::Reconciled));
            }
        }
        changes
    }

    /// Replica side of scale-out (`crate::cluster`): sets `id` to the
    /// leader's state `after` (`None`: the agent left), keeping the counts
    /// and `previous` as a local change would. No staleness rule applies:
    /// the leader already ordered the change.
    pub fn put_replica(&mut self, id: &str, after: Option<Arc<AgentView>>) {
        let before = self.agents.get(id).map(|e| e.view.clone());
        self.counts.change(before.as_deref(), after.as_deref());
        match after {
            Some(view) => {
                self.agents.insert(
                    id.to_string(),
                    Entry {
                        view,
                        previous: before,
                    },
                );
            }
            None => {
                self.agents.remove(id);
                self.provenance.remove(id);
            }
        }
    }

    /// Replica side: the leader's definitions, queue list and sync flag.
    pub fn set_replica_meta(
        &mut self,
        definitions: &[PresenceDefinition],
        queues: Vec<Queue>,
        synced: bool,
    ) {
        self.definitions = definitions
            .iter()
            .map(|d| (d.id.clone(), d.clone()))
            .collect();
        self.definition_list = definitions.to_vec();
        self.queues = queues;
        self.synced = synced;
    }

    /// Replica side: replaces every agent with the leader's snapshot and
    /// recomputes the counts from it.
    pub fn load_replica(&mut self, agents: Vec<AgentView>) {
        self.agents.clear();
        self.provenance.clear();
        self.counts = Counts::default();
        for a in agents {
            let a = Arc::new(a);
            self.counts.change(None, Some(&a));
            self.agents.insert(
                a.id.clone(),
                Entry {
                    view: a,
                    previous: None,
                },
            );
        }
        let _ = self.counts.take_patch();
    }

    /// Applies what a REST read sent at `read_at` found for one agent
    /// (the anti-entropy sweep): it replaces what is held unless an event
    /// was applied after the read was sent; equal content (whatever the
    /// dates) is no change. Returns the change (`reconciled`), if any.
    pub fn rest_truth(
        &mut self,
        user_id: &str,
        presence: Option<&PresenceState>,
        routing: Option<&RoutingState>,
        read_at: DateTime<Utc>,
    ) -> Option<Change> {
        let Some(cur) = self.agents.get(user_id).map(|e| e.view.clone()) else {
            self.dropped.unknown_user += 1;
            return None;
        };
        let mut next = (*cur).clone();
        next.presence = self.merge_presence(user_id, cur.presence.clone(), presence, read_at);
        next.routing_status =
            self.merge_routing(user_id, cur.routing_status.clone(), routing, read_at);
        self.replace(next, Origin::Reconciled)
    }

    /// The presence after a REST read (see [`Held`]); records its provenance.
    fn merge_presence(
        &mut self,
        id: &str,
        held: Option<PresenceView>,
        read: Option<&PresenceState>,
        read_at: DateTime<Utc>,
    ) -> Option<PresenceView> {
        let Some(read) = read else { return held };
        if !self.rest_may_replace(id, PRESENCE, read_at) {
            return held.map(|h| self.relabel(h));
        }
        self.set_held(id, PRESENCE, Source::Rest);
        let fresh = self.presence_view(read);
        match held {
            // Same content and about the same start: keep the held view (no
            // change just for the few ms between Genesys's date and an
            // arrival stamp). A start far off means a round trip the events
            // missed (X → Y → X): Genesys's date is the truth.
            Some(h)
                if h.definition_id == fresh.definition_id
                    && h.system_presence == fresh.system_presence
                    && h.message == fresh.message
                    && close_enough(h.since, fresh.since) =>
            {
                Some(self.relabel(h))
            }
            _ => Some(fresh),
        }
    }

    /// The routing status after a REST read (see [`Held`]).
    fn merge_routing(
        &mut self,
        id: &str,
        held: Option<RoutingView>,
        read: Option<&RoutingState>,
        read_at: DateTime<Utc>,
    ) -> Option<RoutingView> {
        let Some(read) = read else { return held };
        if !self.rest_may_replace(id, ROUTING, read_at) {
            return held;
        }
        self.set_held(id, ROUTING, Source::Rest);
        match held {
            Some(h) if h.status == read.status && close_enough(h.since, read.since) => Some(h),
            _ => Some(RoutingView {
                status: read.status,
                since: read.since,
            }),
        }
    }

    /// Re-resolves a view's label (definitions may have changed).
    fn relabel(&self, mut h: PresenceView) -> PresenceView {
        if let Some(d) = self.definitions.get(&h.definition_id) {
            h.label = d.label.clone();
        }
        h
    }

    /// Resolves a presence state to its view (label from the definitions).
    fn presence_view(&self, p: &PresenceState) -> PresenceView {
        let label = self
            .definitions
            .get(&p.definition_id)
            .map(|d| d.label.clone())
            .unwrap_or_else(|| p.system_presence.legacy().to_owned());
        PresenceView {
            definition_id: p.definition_id.clone(),
            system_presence: p.system_presence,
            label,
            message: p.message.clone(),
            since: p.modified,
        }
    }

    /// Stores a new state for `id` (bumping its version) and returns the change.
    fn replace(&mut self, mut next: AgentView, origin: Origin) -> Option<Change> {
        let id = next.id.clone();
        let before = self.agents.get(&id).map(|e| e.view.clone());
        if let Some(b) = &before {
            if b.same_state(&next) {
                return None;
            }
            next.version = b.version + 1;
        } else {
            next.version = 1;
        }
        let after = Arc::new(next);
        self.counts.change(before.as_deref(), Some(&after));
        self.agents.insert(
            id.clone(),
            Entry {
                view: after.clone(),
                previous: before.clone(),
            },
        );
        Some(Change {
            id,
            before,
            after: Some(after),
            origin,
        })
    }

    /// Applies a presence event; `None` when stale, duplicate or unknown.
    pub fn presence(
        &mut self,
        user_id: &str,
        state: &PresenceState,
        origin: Origin,
    ) -> Option<Change> {
        let Some(cur) = self.agents.get(user_id).map(|e| e.view.clone()) else {
            self.dropped.unknown_user += 1;
            return None;
        };
        let next_p = self.presence_view(state);
        if let Some(p) = &cur.presence {
            // Events order against events by Genesys's modifiedDate when both
            // carry one (older is stale); an undated event is ordered by
            // arrival, and an event after a REST read wins over it.
            let dated_pair = !state.arrival
                && self
                    .held(user_id, PRESENCE)
                    .is_some_and(|h| h.source == Source::DatedEvent);
            if dated_pair && state.modified < p.since {
                self.dropped.stale += 1;
                return None;
            }
            if *p == next_p {
                self.dropped.duplicate += 1;
                return None;
            }
        }
        self.set_held(
            user_id,
            PRESENCE,
            if state.arrival {
                Source::ArrivalEvent
            } else {
                Source::DatedEvent
            },
        );
        let mut next = (*cur).clone();
        next.presence = Some(next_p);
        self.replace(next, origin)
    }

    /// Applies a routing event; `None` when stale, duplicate or unknown.
    pub fn routing(
        &mut self,
        user_id: &str,
        state: &RoutingState,
        origin: Origin,
    ) -> Option<Change> {
        let Some(cur) = self.agents.get(user_id).map(|e| e.view.clone()) else {
            self.dropped.unknown_user += 1;
            return None;
        };
        let next_r = RoutingView {
            status: state.status,
            since: state.since,
        };
        if let Some(r) = &cur.routing_status {
            // Order by Genesys's startTime against other events only.
            let dated_pair = self
                .held(user_id, ROUTING)
                .is_some_and(|h| h.source == Source::DatedEvent);
            if dated_pair && state.since < r.since {
                self.dropped.stale += 1;
                return None;
            }
            if *r == next_r {
                self.dropped.duplicate += 1;
                return None;
            }
        }
        self.set_held(user_id, ROUTING, Source::DatedEvent);
        let mut next = (*cur).clone();
        next.routing_status = Some(next_r);
        self.replace(next, origin)
    }

    /// Applies a queue-membership change.
    pub fn queues_of(&mut self, user_id: &str, queue_ids: &[String]) -> Option<Change> {
        let Some(cur) = self.agents.get(user_id).map(|e| e.view.clone()) else {
            self.dropped.unknown_user += 1;
            return None;
        };
        let mut next = (*cur).clone();
        next.queues = queue_ids.to_vec();
        next.queues.sort();
        next.queues.dedup();
        self.replace(next, Origin::Event)
    }

    /// Applies a complete picture read through REST from `read_at` (the
    /// gateway's clock when the read was sent): replaces the directory and
    /// definitions; the read's presence and routing replace what is held,
    /// whatever the dates, except state applied from an event after the
    /// read was sent (see [`Held`]). Returns only the differences, each
    /// marked `reconciled` (found by a REST read, not a live event).
    pub fn sync(
        &mut self,
        reason: SyncReason,
        users: &[UserRecord],
        definitions: &[PresenceDefinition],
        queues: &[Queue],
        read_at: DateTime<Utc>,
    ) -> Vec<Change> {
        self.sync_with(reason, users, definitions, queues, read_at, false)
    }

    /// [`Directory::sync`]; with `keep_queues`, agents already known keep
    /// the queues they have (the read carries no membership yet).
    pub fn sync_with(
        &mut self,
        reason: SyncReason,
        users: &[UserRecord],
        definitions: &[PresenceDefinition],
        queues: &[Queue],
        read_at: DateTime<Utc>,
        keep_queues: bool,
    ) -> Vec<Change> {
        self.definitions = definitions
            .iter()
            .map(|d| (d.id.clone(), d.clone()))
            .collect();
        self.definition_list = definitions.to_vec();
        self.queues = queues.to_vec();
        let origin = Origin::Reconciled;
        let mut changes = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(users.len());
        for u in users {
            seen.insert(u.id.as_str());
            let cur = self.agents.get(&u.id).map(|e| e.view.clone());
            let mut queues = match (&cur, keep_queues) {
                (Some(c), true) => c.queues.clone(),
                _ => u.queue_ids.clone(),
            };
            queues.sort();
            queues.dedup();
            let presence = self.merge_presence(
                &u.id,
                cur.as_ref().and_then(|c| c.presence.clone()),
                u.presence.as_ref(),
                read_at,
            );
            let routing_status = self.merge_routing(
                &u.id,
                cur.as_ref().and_then(|c| c.routing_status.clone()),
                u.routing.as_ref(),
                read_at,
            );
            let next = AgentView {
                id: u.id.clone(),
                name: u.name.clone(),
                division: u.division.clone(),
                queues,
                presence,
                routing_status,
                version: 0,
            };
            changes.extend(self.replace(next, origin));
        }
        let gone: Vec<String> = self
            .agents
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.provenance.remove(&id);
            if let Some(e) = self.agents.remove(&id) {
                self.counts.change(Some(&e.view), None);
                changes.push(Change {
                    id,
                    before: Some(e.view),
                    after: None,
                    origin,
                });
            }
        }
        if reason == SyncReason::Initial {
            self.synced = true;
        }
        changes
    }
}

/// How far a held start time may be from Genesys's before a REST read
/// corrects it: larger than any delivery delay or clock skew between an
/// arrival stamp and Genesys's date, smaller than a time in state anyone
/// reads on a board.
const SINCE_TOLERANCE_SECS: i64 = 60;

fn close_enough(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_seconds().abs() <= SINCE_TOLERANCE_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Division, RoutingStatus, SystemPresence};
    use chrono::{DateTime, Duration, TimeZone, Utc};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn def(sp: SystemPresence) -> PresenceDefinition {
        PresenceDefinition {
            id: format!("def-{sp:?}"),
            system_presence: sp,
            label: format!("Org {sp:?}"),
            language_labels: Default::default(),
            primary: true,
            deactivated: false,
        }
    }

    fn defs() -> Vec<PresenceDefinition> {
        vec![
            def(SystemPresence::Available),
            def(SystemPresence::Busy),
            def(SystemPresence::OnQueue),
        ]
    }

    fn pstate(sp: SystemPresence, secs: i64) -> PresenceState {
        PresenceState {
            definition_id: format!("def-{sp:?}"),
            system_presence: sp,
            message: String::new(),
            modified: t(secs),
            arrival: false,
        }
    }

    fn user(id: &str, division: &str, queues: &[&str]) -> UserRecord {
        UserRecord {
            id: id.into(),
            name: format!("Agent {id}"),
            division: Division {
                id: division.into(),
                name: division.into(),
            },
            queue_ids: queues.iter().map(|q| q.to_string()).collect(),
            presence: Some(pstate(SystemPresence::Available, 0)),
            routing: Some(RoutingState {
                status: RoutingStatus::OffQueue,
                since: t(0),
            }),
        }
    }

    fn synced(users: &[UserRecord]) -> Directory {
        let mut d = Directory::default();
        let changes = d.sync(SyncReason::Initial, users, &defs(), &[], Utc::now());
        assert_eq!(changes.len(), users.len());
        d
    }

    fn all(d: &Directory) -> crate::protocol::counts::Bucket {
        d.counts.full().all.expect("snapshot counts hold `all`")
    }

    /// A first sync adds every agent at version 1, all reconciled, labels
    /// from the definitions; only `Initial` marks the directory synced.
    #[test]
    fn initial_sync_adds_agents() {
        let mut d = Directory::default();
        let users = [user("a", "d1", &["q2", "q1", "q1"]), user("b", "d2", &[])];
        let changes = d.sync(SyncReason::Reconcile, &users, &defs(), &[], Utc::now());
        assert!(!d.synced, "a reconcile before the initial sync");
        assert_eq!(changes.len(), 2);
        assert!(changes
            .iter()
            .all(|c| c.origin == Origin::Reconciled && c.before.is_none()));
        let a = &d.get("a").unwrap().view;
        assert_eq!(a.version, 1);
        assert_eq!(a.queues, ["q1", "q2"], "sorted, deduplicated");
        assert_eq!(a.presence.as_ref().unwrap().label, "Org Available");
        assert_eq!(all(&d).agents, 2);
        d.sync(SyncReason::Initial, &users, &defs(), &[], Utc::now());
        assert!(d.synced);
    }

    /// A newer event changes the agent (version + 1, `previous` kept,
    /// counts moved); an older one is stale, the same one a duplicate, an
    /// unknown agent's dropped; none of these changes anything.
    #[test]
    fn presence_events_order_by_genesys_time() {
        let mut d = synced(&[user("a", "d1", &["q1"])]);
        let c = d
            .presence("a", &pstate(SystemPresence::Busy, 10), Origin::Event)
            .expect("a newer presence is a change");
        assert_eq!(c.before.as_ref().unwrap().version, 1);
        assert_eq!(c.after.as_ref().unwrap().version, 2);
        assert_eq!(d.get("a").unwrap().previous.as_ref().unwrap().version, 1);
        let counts = all(&d);
        assert_eq!(counts.presence.get(&SystemPresence::Busy), Some(&1));
        assert_eq!(counts.presence.get(&SystemPresence::Available), None);

        assert!(d
            .presence("a", &pstate(SystemPresence::OnQueue, 5), Origin::Event)
            .is_none());
        assert!(d
            .presence("a", &pstate(SystemPresence::Busy, 10), Origin::Event)
            .is_none());
        assert!(d
            .presence("nobody", &pstate(SystemPresence::Busy, 20), Origin::Event)
            .is_none());
        assert_eq!(
            d.dropped,
            DropCounters {
                stale: 1,
                duplicate: 1,
                unknown_user: 1
            }
        );
        assert_eq!(d.get("a").unwrap().view.version, 2);
    }

    /// Routing follows the same rules by `startTime`.
    #[test]
    fn routing_events_order_by_start_time() {
        let mut d = synced(&[user("a", "d1", &[])]);
        let state = |status, secs| RoutingState {
            status,
            since: t(secs),
        };
        assert!(d
            .routing("a", &state(RoutingStatus::Interacting, 3), Origin::Event)
            .is_some());
        assert!(d
            .routing("a", &state(RoutingStatus::Idle, 2), Origin::Event)
            .is_none());
        assert_eq!(d.dropped.stale, 1);
        assert_eq!(all(&d).routing.get(&RoutingStatus::Interacting), Some(&1));
    }

    /// A sync whose read was sent before an event arrived keeps the event's
    /// state, reports only differences, and removes agents it no longer
    /// lists (a change with no `after`).
    #[test]
    fn sync_keeps_newer_state_and_removes_the_departed() {
        let mut d = synced(&[user("a", "d1", &[]), user("b", "d1", &[])]);
        d.presence("a", &pstate(SystemPresence::Busy, 100), Origin::Event)
            .unwrap();
        // The sync read `a` before its event (Available at t=0) and lost `b`.
        let changes = d.sync(
            SyncReason::Reconcile,
            &[user("a", "d1", &[])],
            &defs(),
            &[],
            // The read was sent before `a`'s event arrived.
            Utc::now() - chrono::Duration::seconds(60),
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].id, "b");
        assert!(changes[0].after.is_none());
        assert!(d.get("b").is_none());
        let a = &d.get("a").unwrap().view;
        assert_eq!(
            a.presence.as_ref().unwrap().system_presence,
            SystemPresence::Busy
        );
        assert_eq!(all(&d).agents, 1);
    }

    /// Queue membership changes are sorted and deduplicated; the same set
    /// again is no change.
    #[test]
    fn queue_membership() {
        let mut d = synced(&[user("a", "d1", &["q1"])]);
        let c = d
            .queues_of("a", &["q3".into(), "q2".into(), "q3".into()])
            .unwrap();
        assert_eq!(c.after.unwrap().queues, ["q2", "q3"]);
        assert!(d.queues_of("a", &["q2".into(), "q3".into()]).is_none());
    }

    fn state(sp: SystemPresence, at: DateTime<Utc>, arrival: bool) -> PresenceState {
        PresenceState {
            definition_id: format!("def-{sp}"),
            system_presence: sp,
            message: String::new(),
            modified: at,
            arrival,
        }
    }

    fn record(p: PresenceState) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            name: "Agent".into(),
            division: Division {
                id: "d".into(),
                name: "D".into(),
            },
            queue_ids: vec![],
            presence: Some(p),
            routing: None,
        }
    }

    fn held(d: &Directory) -> SystemPresence {
        d.get("u1")
            .unwrap()
            .view
            .presence
            .as_ref()
            .unwrap()
            .system_presence
    }

    /// Presence events without `modifiedDate` order by arrival, and a later
    /// REST read replaces them even when its `modifiedDate` is older than the
    /// arrival stamp (Genesys's clock and ours differ); an event applied
    /// after a REST read was sent is kept against it.
    #[test]
    fn arrival_stamped_presence_yields_to_a_later_rest_read() {
        let now = Utc::now();
        let mut d = Directory::default();
        let start = state(
            SystemPresence::Available,
            now - Duration::seconds(60),
            false,
        );
        d.sync(SyncReason::Initial, &[record(start)], &[], &[], Utc::now());
        // Two undated events: the later arrival wins.
        assert!(d
            .presence(
                "u1",
                &state(SystemPresence::Break, now, true),
                Origin::Event
            )
            .is_some());
        assert!(d
            .presence(
                "u1",
                &state(SystemPresence::OnQueue, now - Duration::seconds(30), true),
                Origin::Event
            )
            .is_some());
        assert_eq!(held(&d), SystemPresence::OnQueue);
        // A REST read whose Genesys time is behind our arrival stamp still wins.
        let rest = state(SystemPresence::Meal, now - Duration::seconds(5), false);
        d.sync(
            SyncReason::Reconcile,
            &[record(rest.clone())],
            &[],
            &[],
            Utc::now(),
        );
        assert_eq!(held(&d), SystemPresence::Meal);
        // An event applied after the read was sent is kept against it.
        let read_at = Utc::now() - Duration::seconds(1);
        d.presence(
            "u1",
            &state(SystemPresence::Busy, now - Duration::hours(1), false),
            Origin::Event,
        );
        d.sync(SyncReason::Reconcile, &[record(rest)], &[], &[], read_at);
        assert_eq!(held(&d), SystemPresence::Busy);
    }

    /// A round trip the events missed (X → Y → X) leaves the state right but
    /// the start old: a REST read corrects a start more than the tolerance
    /// off, and leaves one a few seconds off alone.
    #[test]
    fn rest_corrects_a_start_far_off() {
        let now = Utc::now();
        let mut d = Directory::default();
        let old = state(SystemPresence::OnQueue, now - Duration::hours(2), false);
        d.sync(SyncReason::Initial, &[record(old)], &[], &[], now);
        let near = state(
            SystemPresence::OnQueue,
            now - Duration::hours(2) + Duration::seconds(3),
            false,
        );
        let changes = d.sync(SyncReason::Reconcile, &[record(near)], &[], &[], Utc::now());
        assert!(
            changes.is_empty(),
            "a few seconds off is no change: {changes:?}"
        );
        let recent = state(SystemPresence::OnQueue, now - Duration::minutes(1), false);
        let changes = d.sync(
            SyncReason::Reconcile,
            &[record(recent)],
            &[],
            &[],
            Utc::now(),
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        let since = d.get("u1").unwrap().view.presence.as_ref().unwrap().since;
        assert_eq!(since, now - Duration::minutes(1));
    }

    /// After a gap a REST read wins whatever its dates (Genesys restarted
    /// with older state); dated events then order against each other.
    #[test]
    fn rest_truth_wins_whatever_its_dates() {
        let now = Utc::now();
        let mut d = Directory::default();
        d.sync(
            SyncReason::Initial,
            &[record(state(SystemPresence::Available, now, false))],
            &[],
            &[],
            Utc::now(),
        );
        d.presence(
            "u1",
            &state(SystemPresence::OnQueue, now + Duration::seconds(5), false),
            Origin::Event,
        );
        let rewound = state(SystemPresence::Break, now - Duration::hours(3), false);
        let c = d.rest_truth("u1", Some(&rewound), None, Utc::now());
        assert_eq!(c.map(|c| c.origin), Some(Origin::Reconciled));
        assert_eq!(held(&d), SystemPresence::Break);
        // Same content again, a date within the tolerance: no change (a
        // date hours off is corrected: `rest_corrects_a_start_far_off`).
        let again = state(
            SystemPresence::Break,
            now - Duration::hours(3) + Duration::seconds(2),
            false,
        );
        assert!(d.rest_truth("u1", Some(&again), None, Utc::now()).is_none());
        // Dated events: the older of two is stale.
        d.presence(
            "u1",
            &state(SystemPresence::Meal, now, false),
            Origin::Event,
        );
        assert!(d
            .presence(
                "u1",
                &state(SystemPresence::Away, now - Duration::seconds(1), false),
                Origin::Event
            )
            .is_none());
        assert_eq!(held(&d), SystemPresence::Meal);
    }
}
