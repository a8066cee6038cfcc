//! The board's settings (`[board]`): how long a presence or a routing
//! status may last before a dashboard tile is marked, which presences the
//! agent desktop offers, and how often the live queue figures are computed
//! and Genesys's queue observations are polled. Served to the pages as
//! `GET /api/v1/board` (docs/protocol.md) so that every dashboard and
//! desktop shows the same thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{RoutingStatus, SystemPresence};
use crate::validate::check_range;

/// `[board]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoardConfig {
    /// Seconds an agent may hold a system presence (`BREAK`, `MEAL`, …,
    /// upper snake case as in the API) before the tile is marked; a
    /// presence not listed is never marked. 1 to 86 400 each.
    pub presence_thresholds_secs: BTreeMap<String, u64>,
    /// Seconds an agent may hold a routing status (`IDLE`, `INTERACTING`,
    /// `COMMUNICATING`, `NOT_RESPONDING`, `OFF_QUEUE`) before the tile is
    /// marked; 1 to 86 400 each.
    pub routing_thresholds_secs: BTreeMap<String, u64>,
    /// Play a short tone when a tile crosses a threshold (pages may still
    /// turn it off). Default off.
    pub alert_sound: bool,
    /// The system presences the agent desktop offers, in order (agents do
    /// not set `IDLE` or `OFFLINE` themselves, so the default leaves them
    /// out). At least one, no repeats.
    pub desktop_presences: Vec<String>,
    /// How often the gateway asks Genesys for queue observations (customers
    /// waiting, longest wait), in seconds; each round costs one REST call
    /// per 100 queues on the lowest lane of the budget. 2 to 3 600;
    /// default 10.
    pub queue_observations_secs: u64,
    /// How often live queue figures are recomputed and, when they changed,
    /// sent to streams that asked for them (`?queues=1`), in milliseconds.
    /// 200 to 60 000; default 1 000.
    pub queue_figures_ms: u64,
}

impl Default for BoardConfig {
    fn default() -> Self {
        BoardConfig {
            presence_thresholds_secs: [("BREAK", 900), ("MEAL", 3_600), ("AWAY", 900)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            routing_thresholds_secs: [
                ("NOT_RESPONDING", 30),
                ("IDLE", 600),
                ("INTERACTING", 1_200),
                ("COMMUNICATING", 1_200),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            alert_sound: false,
            desktop_presences: [
                "AVAILABLE",
                "ON_QUEUE",
                "BUSY",
                "AWAY",
                "BREAK",
                "MEAL",
                "MEETING",
                "TRAINING",
            ]
            .into_iter()
            .map(str::to_string)
            .collect(),
            queue_observations_secs: 10,
            queue_figures_ms: 1_000,
        }
    }
}

impl BoardConfig {
    /// Checks every key and bound; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in &self.presence_thresholds_secs {
            if SystemPresence::parse(k).is_none() || k != &k.to_ascii_uppercase() {
                return Err(format!(
                    "board.presence_thresholds_secs: unknown system presence {k:?}; use AVAILABLE, AWAY, BUSY, OFFLINE, IDLE, ON_QUEUE, MEAL, TRAINING, MEETING or BREAK"
                ));
            }
            check_range(
                "board",
                &format!("presence_thresholds_secs.{k}"),
                *v,
                1,
                86_400,
            )?;
        }
        for (k, v) in &self.routing_thresholds_secs {
            if RoutingStatus::parse(k).is_none() || k != &k.to_ascii_uppercase() {
                return Err(format!(
                    "board.routing_thresholds_secs: unknown routing status {k:?}; use IDLE, INTERACTING, COMMUNICATING, NOT_RESPONDING or OFF_QUEUE"
                ));
            }
            check_range(
                "board",
                &format!("routing_thresholds_secs.{k}"),
                *v,
                1,
                86_400,
            )?;
        }
        if self.desktop_presences.is_empty() {
            return Err("board.desktop_presences: name at least one system presence".into());
        }
        for (i, p) in self.desktop_presences.iter().enumerate() {
            if SystemPresence::parse(p).is_none() || p != &p.to_ascii_uppercase() {
                return Err(format!(
                    "board.desktop_presences: unknown system presence {p:?}; use upper snake case such as AVAILABLE or ON_QUEUE"
                ));
            }
            if self.desktop_presences[..i].contains(p) {
                return Err(format!("board.desktop_presences: {p} is listed twice"));
            }
        }
        check_range(
            "board",
            "queue_observations_secs",
            self.queue_observations_secs,
            2,
            3_600,
        )?;
        check_range(
            "board",
            "queue_figures_ms",
            self.queue_figures_ms,
            200,
            60_000,
        )?;
        Ok(())
    }
}

/// The board settings as pages read them (`GET /api/v1/board`):
/// `{"presenceThresholdsSecs": {"BREAK": 900, …}, "routingThresholdsSecs":
/// {…}, "alertSound": false, "desktopPresences": ["AVAILABLE", …],
/// "queueFiguresMs": 1000, "caller": {"role", "divisions"}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardJson<'a> {
    presence_thresholds_secs: &'a BTreeMap<String, u64>,
    routing_thresholds_secs: &'a BTreeMap<String, u64>,
    alert_sound: bool,
    desktop_presences: &'a [String],
    queue_figures_ms: u64,
    caller: Caller<'a>,
}

/// Who asked: `{"role": "viewer" | "supervisor" | "admin", "divisions":
/// [ids] | null}` (`null`: every division).
#[derive(Serialize)]
struct Caller<'a> {
    role: &'static str,
    divisions: Option<&'a [String]>,
}

/// The answer of `GET /api/v1/board`: the `[board]` settings pages need,
/// and who `caller` is.
pub fn board_json<'a>(cfg: &'a BoardConfig, caller: &'a crate::auth::Principal) -> BoardJson<'a> {
    BoardJson {
        presence_thresholds_secs: &cfg.presence_thresholds_secs,
        routing_thresholds_secs: &cfg.routing_thresholds_secs,
        alert_sound: cfg.alert_sound,
        desktop_presences: &cfg.desktop_presences,
        queue_figures_ms: cfg.queue_figures_ms,
        caller: Caller {
            role: caller.role.as_str(),
            divisions: caller.divisions.as_deref().map(|d| d.as_slice()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_leave_out_idle_and_offline() {
        let b = BoardConfig::default();
        b.validate().unwrap();
        assert!(!b
            .desktop_presences
            .iter()
            .any(|p| p == "IDLE" || p == "OFFLINE"));
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut b = BoardConfig::default();
        b.routing_thresholds_secs.insert("SLEEPING".into(), 5);
        assert!(b
            .validate()
            .unwrap_err()
            .contains("routing_thresholds_secs"));
        let mut b = BoardConfig::default();
        b.presence_thresholds_secs.insert("BREAK".into(), 0);
        assert!(b
            .validate()
            .unwrap_err()
            .contains("presence_thresholds_secs.BREAK"));
        let mut b = BoardConfig::default();
        b.desktop_presences.push("BREAK".into());
        assert!(b.validate().unwrap_err().contains("twice"));
        let b = BoardConfig {
            queue_observations_secs: 1,
            ..BoardConfig::default()
        };
        assert!(b
            .validate()
            .unwrap_err()
            .contains("queue_observations_secs"));
    }
}
