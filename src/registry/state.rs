//! The presence map: every agent's current state, the presence definitions
//! and the live counts. Pure logic, no actor and no I/O: the registry actor
//! owns one [`Directory`] and feeds it [`UpstreamEvent`]s in order; each call
//! returns the resulting [`Change`]s (possibly none: stale and duplicate
//! events are dropped here).

use std::collections::HashMap;
use std::sync::Arc;

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
    /// Agents whose presence came from an event without `modifiedDate`
    /// (stamped at arrival): the next REST read replaces it.
    arrival_stamped: std::collections::HashSet<String>,
}

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
            // Order by Genesys's modifiedDate (genesys-api.md): older is stale;
            // the same instant with the same content is a duplicate.
            if state.modified < p.since {
                self.dropped.stale += 1;
                return None;
            }
            if *p == next_p {
                self.dropped.duplicate += 1;
                return None;
            }
        }
        if state.arrival {
            self.arrival_stamped.insert(user_id.to_string());
        } else {
            self.arrival_stamped.remove(user_id);
        }
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
            // Order by Genesys's startTime.
            if state.since < r.since {
                self.dropped.stale += 1;
                return None;
            }
            if *r == next_r {
                self.dropped.duplicate += 1;
                return None;
            }
        }
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

    /// Applies a complete picture: replaces the directory and definitions,
    /// keeps state already held when it is newer than the sync's, and
    /// returns only the differences. Every change is marked `reconciled`
    /// (it was found by a REST read, not a live event).
    pub fn sync(
        &mut self,
        reason: SyncReason,
        users: &[UserRecord],
        definitions: &[PresenceDefinition],
        queues: &[Queue],
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
            let mut queues = u.queue_ids.clone();
            queues.sort();
            queues.dedup();
            // Presence: the sync's unless what we hold is newer.
            let held_p = cur.as_ref().and_then(|c| c.presence.clone());
            let presence = match (&u.presence, held_p) {
                // An arrival-stamped presence has no Genesys time to compare:
                // the REST read, later than its event, wins.
                (Some(s), Some(h))
                    if h.since > s.modified && !self.arrival_stamped.contains(&u.id) =>
                {
                    // Keep ours, but re-resolve the label (definitions may have changed).
                    let mut h = h;
                    if let Some(d) = self.definitions.get(&h.definition_id) {
                        h.label = d.label.clone();
                    }
                    Some(h)
                }
                (Some(s), _) => Some(self.presence_view(s)),
                (None, held) => held,
            };
            if let Some(s) = &u.presence {
                if s.arrival {
                    self.arrival_stamped.insert(u.id.clone());
                } else {
                    self.arrival_stamped.remove(&u.id);
                }
            }
            let held_r = cur.as_ref().and_then(|c| c.routing_status.clone());
            let routing_status = match (&u.routing, held_r) {
                (Some(s), Some(h)) if h.since > s.since => Some(h),
                (Some(s), _) => Some(RoutingView {
                    status: s.status,
                    since: s.since,
                }),
                (None, held) => held,
            };
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
        let changes = d.sync(SyncReason::Initial, users, &defs(), &[]);
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
        let changes = d.sync(SyncReason::Reconcile, &users, &defs(), &[]);
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
        d.sync(SyncReason::Initial, &users, &defs(), &[]);
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

    /// A sync keeps state newer than its own, reports only differences,
    /// and removes agents it no longer lists (a change with no `after`).
    #[test]
    fn sync_keeps_newer_state_and_removes_the_departed() {
        let mut d = synced(&[user("a", "d1", &[]), user("b", "d1", &[])]);
        d.presence("a", &pstate(SystemPresence::Busy, 100), Origin::Event)
            .unwrap();
        // The sync read `a` before its event (Available at t=0) and lost `b`.
        let changes = d.sync(SyncReason::Reconcile, &[user("a", "d1", &[])], &defs(), &[]);
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
    /// arrival stamp (Genesys's clock and ours differ); a dated event is not
    /// replaced by an older REST read.
    #[test]
    fn arrival_stamped_presence_yields_to_a_later_rest_read() {
        let now = Utc::now();
        let mut d = Directory::default();
        let start = state(
            SystemPresence::Available,
            now - Duration::seconds(60),
            false,
        );
        d.sync(SyncReason::Initial, &[record(start)], &[], &[]);
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
                &state(
                    SystemPresence::OnQueue,
                    now + Duration::milliseconds(5),
                    true
                ),
                Origin::Event
            )
            .is_some());
        assert_eq!(held(&d), SystemPresence::OnQueue);
        // A REST read whose Genesys time is behind our arrival stamp still wins.
        let rest = state(SystemPresence::Meal, now - Duration::seconds(5), false);
        d.sync(SyncReason::Reconcile, &[record(rest.clone())], &[], &[]);
        assert_eq!(held(&d), SystemPresence::Meal);
        // A dated event newer than a REST read is kept against it.
        d.presence(
            "u1",
            &state(SystemPresence::Busy, now, false),
            Origin::Event,
        );
        d.sync(SyncReason::Reconcile, &[record(rest)], &[], &[]);
        assert_eq!(held(&d), SystemPresence::Busy);
    }
}
