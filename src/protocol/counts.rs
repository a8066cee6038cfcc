//! Agent counts by system presence and routing status: org-wide, per
//! division and per queue, kept current incrementally as changes are
//! applied, so a wallboard needs no client-side aggregation.
//!
//! Snapshots carry every bucket; deltas carry only the buckets that changed
//! in the batch, each complete (replace, don't add). A bucket with
//! `agents: 0` is gone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{RoutingStatus, SystemPresence};

use super::agent::AgentView;

/// Counts for one group of agents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Agents in the group.
    pub agents: u32,
    /// Agents per system presence (agents without a presence are not
    /// counted here; zero entries are omitted).
    pub presence: BTreeMap<SystemPresence, u32>,
    /// Agents per routing status (zero entries omitted).
    pub routing: BTreeMap<RoutingStatus, u32>,
}

impl Bucket {
    fn apply(&mut self, a: &AgentView, add: bool) {
        fn bump<K: Ord + Copy>(m: &mut BTreeMap<K, u32>, k: K, add: bool) {
            if add {
                *m.entry(k).or_default() += 1;
            } else if let Some(n) = m.get_mut(&k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&k);
                }
            }
        }
        if add {
            self.agents += 1;
        } else {
            self.agents = self.agents.saturating_sub(1);
        }
        if let Some(p) = &a.presence {
            bump(&mut self.presence, p.system_presence, add);
        }
        if let Some(r) = &a.routing_status {
            bump(&mut self.routing, r.status, add);
        }
    }
}

/// The full set of counts (snapshot form) or a patch (delta form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CountsJson {
    /// Org-wide counts; absent in a delta when unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<Bucket>,
    /// Per division id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub divisions: BTreeMap<String, Bucket>,
    /// Per queue id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub queues: BTreeMap<String, Bucket>,
}

impl CountsJson {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.divisions.is_empty() && self.queues.is_empty()
    }

    /// Folds a later patch into this one (later buckets win).
    pub fn merge(&mut self, later: &CountsJson) {
        if let Some(a) = &later.all {
            self.all = Some(a.clone());
        }
        for (k, v) in &later.divisions {
            self.divisions.insert(k.clone(), v.clone());
        }
        for (k, v) in &later.queues {
            self.queues.insert(k.clone(), v.clone());
        }
    }
}

/// Live counts plus the set of buckets touched since the last patch.
#[derive(Debug, Default)]
pub struct Counts {
    all: Bucket,
    divisions: HashMap<String, Bucket>,
    queues: HashMap<String, Bucket>,
    dirty_all: bool,
    dirty_divisions: BTreeSet<String>,
    dirty_queues: BTreeSet<String>,
}

impl Counts {
    /// Removes `a`'s contribution (`add = false`) or adds it.
    fn account(&mut self, a: &AgentView, add: bool) {
        self.all.apply(a, add);
        self.dirty_all = true;
        self.divisions
            .entry(a.division.id.clone())
            .or_default()
            .apply(a, add);
        self.dirty_divisions.insert(a.division.id.clone());
        for q in &a.queues {
            self.queues.entry(q.clone()).or_default().apply(a, add);
            self.dirty_queues.insert(q.clone());
        }
    }

    /// Accounts for one agent changing from `before` to `after`.
    pub fn change(&mut self, before: Option<&AgentView>, after: Option<&AgentView>) {
        if let Some(b) = before {
            self.account(b, false);
        }
        if let Some(a) = after {
            self.account(a, true);
        }
    }

    /// Every bucket (snapshot form).
    pub fn full(&self) -> CountsJson {
        CountsJson {
            all: Some(self.all.clone()),
            divisions: self
                .divisions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            queues: self
                .queues
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The buckets touched since the last call (delta form); empty buckets
    /// are reported once with `agents: 0` and then forgotten.
    pub fn take_patch(&mut self) -> CountsJson {
        let mut out = CountsJson::default();
        if std::mem::take(&mut self.dirty_all) {
            out.all = Some(self.all.clone());
        }
        for d in std::mem::take(&mut self.dirty_divisions) {
            let b = self.divisions.get(&d).cloned().unwrap_or_default();
            if b.agents == 0 {
                self.divisions.remove(&d);
            }
            out.divisions.insert(d, b);
        }
        for q in std::mem::take(&mut self.dirty_queues) {
            let b = self.queues.get(&q).cloned().unwrap_or_default();
            if b.agents == 0 {
                self.queues.remove(&q);
            }
            out.queues.insert(q, b);
        }
        out
    }
}
