//! The topic planner: which topics carry presence and routing status for
//! every agent, packed into channels within Genesys's limits (≤ 1 000 topics
//! per channel, ≤ 20 channels; `genesys-api.md` §5.6).
//!
//! One topic per user either way: `v2.users.{id}.activity` (presence,
//! routing status and active queues in one event) or the combined
//! `v2.users.{id}?presence&routingStatus` (§5.3). There is no wildcard over
//! users, so the plan is per user. Re-planning keeps users on the shard they
//! were on, so a directory change re-subscribes only the shards it touches.

use std::collections::HashSet;

use super::TopicStrategy;

/// The subscription topic of one user.
pub fn user_topic(strategy: TopicStrategy, user_id: &str) -> String {
    match strategy {
        TopicStrategy::Activity => format!("v2.users.{user_id}.activity"),
        TopicStrategy::Combined => format!("v2.users.{user_id}?presence&routingStatus"),
    }
}

/// Users per shard; each shard is one channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub shards: Vec<Vec<String>>,
    /// Users that fit in no channel (more than `per_channel × max_channels`).
    pub uncovered: Vec<String>,
}

/// Re-plans for `users`, keeping every remaining user on its previous shard
/// and filling new users into free room first. Returns the plan and the
/// indexes of shards whose user list changed.
pub fn replan(
    prev: &Plan,
    users: &[String],
    per_channel: usize,
    max_channels: usize,
) -> (Plan, Vec<usize>) {
    let wanted: HashSet<&str> = users.iter().map(String::as_str).collect();
    let mut shards: Vec<Vec<String>> = prev
        .shards
        .iter()
        .map(|s| {
            s.iter()
                .filter(|u| wanted.contains(u.as_str()))
                .cloned()
                .collect()
        })
        .collect();
    let mut changed: Vec<usize> = shards
        .iter()
        .zip(&prev.shards)
        .enumerate()
        .filter(|(_, (a, b))| a.len() != b.len())
        .map(|(i, _)| i)
        .collect();
    let placed: HashSet<String> = shards.iter().flatten().cloned().collect();
    let mut uncovered = Vec::new();
    for u in users.iter().filter(|u| !placed.contains(*u)) {
        let slot = shards.iter().position(|s| s.len() < per_channel);
        let i = match slot {
            Some(i) => i,
            None if shards.len() < max_channels => {
                shards.push(Vec::new());
                shards.len() - 1
            }
            None => {
                uncovered.push(u.clone());
                continue;
            }
        };
        shards[i].push(u.clone());
        if !changed.contains(&i) {
            changed.push(i);
        }
    }
    changed.sort_unstable();
    (Plan { shards, uncovered }, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    /// 10 000 users need 10 full channels of 1 000 topics.
    #[test]
    fn packs_to_the_topic_limit() {
        let (plan, changed) = replan(&Plan::default(), &ids(10_000), 1_000, 20);
        assert_eq!(plan.shards.len(), 10);
        assert!(plan.shards.iter().all(|s| s.len() == 1_000));
        assert_eq!(changed, (0..10).collect::<Vec<_>>());
        assert!(plan.uncovered.is_empty());
    }

    /// Beyond 20 channels the rest is reported uncovered, not dropped silently.
    #[test]
    fn reports_what_does_not_fit() {
        let (plan, _) = replan(&Plan::default(), &ids(20_005), 1_000, 20);
        assert_eq!(plan.shards.len(), 20);
        assert_eq!(plan.uncovered.len(), 5);
    }

    /// Adding and removing users only touches the shards involved.
    #[test]
    fn replanning_is_minimal() {
        let (plan, _) = replan(&Plan::default(), &ids(2_500), 1_000, 20);
        let mut users = ids(2_500);
        users.retain(|u| u != "u10"); // shard 0 loses one
        users.push("new".into()); // goes to the free room in shard 2... or shard 0's gap
        let (next, changed) = replan(&plan, &users, 1_000, 20);
        assert!(changed.contains(&0));
        assert!(!changed.contains(&1));
        assert_eq!(next.shards[1], plan.shards[1]);
        assert!(next.shards.iter().flatten().any(|u| u == "new"));
    }

    /// Topic spellings are the exact camelCase ones Genesys publishes.
    #[test]
    fn topic_spelling() {
        assert_eq!(
            user_topic(TopicStrategy::Activity, "x"),
            "v2.users.x.activity"
        );
        assert_eq!(
            user_topic(TopicStrategy::Combined, "x"),
            "v2.users.x?presence&routingStatus"
        );
    }
}
