//! The simulator's own spelling tables, written from the real API
//! (`/work/shared/genesys-api.md` §4.2 and §4.6), independent of the gateway's
//! model so that a misspelling on one side cannot hide one on the other.
//!
//! Genesys spells one system presence three ways: title case with a space on
//! legacy REST (`On Queue`: `/api/v2/presencedefinitions`, `UserPresence`),
//! Pascal case on `/api/v2/presence/definitions` (`OnQueue`), and upper snake
//! in notifications and analytics (`ON_QUEUE`).

use chrono::{DateTime, Utc};

/// One of the ten system presences (§4.2). The order is the one Genesys lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemPresence {
    /// `Available` / `AVAILABLE`.
    Available,
    /// `Away` / `AWAY`.
    Away,
    /// `Busy` / `BUSY`.
    Busy,
    /// `Offline` / `OFFLINE`.
    Offline,
    /// `Idle` / `IDLE`.
    Idle,
    /// `On Queue` / `OnQueue` / `ON_QUEUE`.
    OnQueue,
    /// `Meal` / `MEAL`.
    Meal,
    /// `Training` / `TRAINING`.
    Training,
    /// `Meeting` / `MEETING`.
    Meeting,
    /// `Break` / `BREAK`.
    Break,
}

/// Each presence with its (legacy REST, current REST, notification) spelling.
const SPELLINGS: [(SystemPresence, &str, &str, &str); 10] = [
    (
        SystemPresence::Available,
        "Available",
        "Available",
        "AVAILABLE",
    ),
    (SystemPresence::Away, "Away", "Away", "AWAY"),
    (SystemPresence::Busy, "Busy", "Busy", "BUSY"),
    (SystemPresence::Offline, "Offline", "Offline", "OFFLINE"),
    (SystemPresence::Idle, "Idle", "Idle", "IDLE"),
    (SystemPresence::OnQueue, "On Queue", "OnQueue", "ON_QUEUE"),
    (SystemPresence::Meal, "Meal", "Meal", "MEAL"),
    (SystemPresence::Training, "Training", "Training", "TRAINING"),
    (SystemPresence::Meeting, "Meeting", "Meeting", "MEETING"),
    (SystemPresence::Break, "Break", "Break", "BREAK"),
];

impl SystemPresence {
    /// Every system presence, in the order Genesys lists them.
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

    fn row(self) -> &'static (SystemPresence, &'static str, &'static str, &'static str) {
        // unwrap: SPELLINGS has a row for every variant
        SPELLINGS.iter().find(|r| r.0 == self).unwrap()
    }

    /// Parses any spelling Genesys uses (`On Queue`, `OnQueue`,
    /// `ON_QUEUE`), ignoring ASCII case only.
    pub fn parse(s: &str) -> Option<SystemPresence> {
        SPELLINGS
            .iter()
            .find(|r| [r.1, r.2, r.3].iter().any(|w| w.eq_ignore_ascii_case(s)))
            .map(|r| r.0)
    }

    /// Legacy REST spelling: title case with a space (`On Queue`).
    pub fn legacy(self) -> &'static str {
        self.row().1
    }

    /// `/api/v2/presence/definitions` spelling: Pascal case (`OnQueue`).
    pub fn current(self) -> &'static str {
        self.row().2
    }

    /// Notification and analytics spelling: upper snake (`ON_QUEUE`).
    pub fn upper_snake(self) -> &'static str {
        self.row().3
    }
}

/// Routing status (§4.6): `OFF_QUEUE, IDLE, INTERACTING, NOT_RESPONDING, COMMUNICATING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingStatus {
    /// `OFF_QUEUE`: not On Queue.
    OffQueue,
    /// `IDLE`: On Queue, waiting.
    Idle,
    /// `INTERACTING`: handling an ACD interaction or its after-call work.
    Interacting,
    /// `NOT_RESPONDING`: missed an offered interaction.
    NotResponding,
    /// `COMMUNICATING`: on a non-ACD call counted like ACD.
    Communicating,
}

const ROUTING: [(RoutingStatus, &str); 5] = [
    (RoutingStatus::OffQueue, "OFF_QUEUE"),
    (RoutingStatus::Idle, "IDLE"),
    (RoutingStatus::Interacting, "INTERACTING"),
    (RoutingStatus::NotResponding, "NOT_RESPONDING"),
    (RoutingStatus::Communicating, "COMMUNICATING"),
];

impl RoutingStatus {
    /// Parses the wire spelling exactly (`OFF_QUEUE`, …).
    pub fn parse(s: &str) -> Option<RoutingStatus> {
        ROUTING.iter().find(|r| r.1 == s).map(|r| r.0)
    }

    /// The wire spelling (`OFF_QUEUE`, …).
    pub fn as_str(self) -> &'static str {
        // unwrap: ROUTING has a row for every variant
        ROUTING.iter().find(|r| r.0 == self).unwrap().1
    }
}

/// ISO-8601 UTC with milliseconds and `Z`, as Genesys writes dates (`2026-05-20T09:26:23.511Z`).
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each presence parses from each of its three spellings and round-trips.
    #[test]
    fn every_spelling_round_trips() {
        for sp in SystemPresence::ALL {
            for s in [sp.legacy(), sp.current(), sp.upper_snake()] {
                assert_eq!(SystemPresence::parse(s), Some(sp), "{s}");
            }
        }
        assert_eq!(SystemPresence::OnQueue.legacy(), "On Queue");
        assert_eq!(SystemPresence::OnQueue.current(), "OnQueue");
        assert_eq!(SystemPresence::OnQueue.upper_snake(), "ON_QUEUE");
        assert_eq!(
            SystemPresence::parse("on queue"),
            Some(SystemPresence::OnQueue)
        );
        assert_eq!(SystemPresence::parse("on-queue"), None);
        for (r, s) in ROUTING {
            assert_eq!(RoutingStatus::parse(s), Some(r));
            assert_eq!(r.as_str(), s);
        }
    }
}
