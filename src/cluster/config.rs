//! `[cluster]`: scale-out on Redis (docs/scaling.md).

use serde::Deserialize;

use crate::validate::check_range;

/// `[cluster]`: several gateway nodes sharing one Genesys connection
/// through Redis. Without `redis_url` the gateway runs alone and needs no
/// Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS is
    /// not built in: use a TLS proxy). Absent: a standalone gateway.
    /// Env: `PRESENCE_GATEWAY__CLUSTER__REDIS_URL`.
    pub redis_url: Option<String>,
    /// This node's name in `/readyz`, the audit log and the logs; unique
    /// per node. Default: `<hostname>-<pid>`.
    pub node_id: Option<String>,
    /// Prefix of every Redis key the cluster uses (several clusters may
    /// share one Redis with different prefixes). Default `presence-gateway`.
    pub key_prefix: String,
    /// The leader lease, in milliseconds: a leader that stops renewing it
    /// (crash, SIGKILL, partition) is replaced within this time plus one
    /// follower poll (`lease_ms / 10`). Renewed every `lease_ms / 3`.
    /// 500 to 60 000; default 5 000.
    pub lease_ms: u64,
    /// How long a follower waits for the leader to take a relayed request
    /// (writes, audit, history, interactions, webhooks) before answering
    /// 503 `leader_unavailable`, in milliseconds; the leader starts nothing
    /// less than 500 ms before it. 1 000 to 60 000; default 5 000.
    pub relay_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            node_id: None,
            key_prefix: "presence-gateway".into(),
            lease_ms: 5_000,
            relay_timeout_ms: 5_000,
        }
    }
}

impl ClusterConfig {
    /// Checks the section, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        const SECTION: &str = "cluster";
        check_range(SECTION, "lease_ms", self.lease_ms, 500, 60_000)?;
        check_range(
            SECTION,
            "relay_timeout_ms",
            self.relay_timeout_ms,
            1_000,
            60_000,
        )?;
        if let Some(url) = &self.redis_url {
            if let Err(e) = redis::Client::open(url.as_str()) {
                return Err(format!(
                    "cluster.redis_url: {e}; write redis://host:port[/db], e.g. redis://127.0.0.1:6379"
                ));
            }
        }
        if let Some(id) = &self.node_id {
            if id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'|')
            {
                return Err(format!(
                    "cluster.node_id = {id:?}: use 1 to 64 visible ASCII characters other than '|'"
                ));
            }
        }
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > 100
            || self.key_prefix.contains(char::is_whitespace)
        {
            return Err(format!(
                "cluster.key_prefix = {:?}: use 1 to 100 characters without spaces",
                self.key_prefix
            ));
        }
        Ok(())
    }

    /// The node id: configured, or `<hostname>-<pid>`.
    pub fn node(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into());
            format!("{host}-{}", std::process::id())
        })
    }
}
