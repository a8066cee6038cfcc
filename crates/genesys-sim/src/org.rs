//! The simulated org: divisions, queues, presence definitions and agents,
//! generated deterministically from a seed so that a test, a demo and a
//! benchmark with the same `--seed` see the same people.
//!
//! The primary presence-definition ids are the ones that recur across real
//! orgs (`genesys-api.md` §4.1, [TF-PRES]); the secondary ones are the org's
//! own labels under a system presence, like a real admin would create.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::spelling::{RoutingStatus, SystemPresence};

/// One presence definition of the simulated org.
#[derive(Debug, Clone)]
pub struct SimDefinition {
    pub id: String,
    pub system_presence: SystemPresence,
    pub labels: BTreeMap<String, String>,
    pub primary: bool,
    pub deactivated: bool,
}

impl SimDefinition {
    /// The `en_US` label (every definition has one).
    pub fn label(&self) -> &str {
        self.labels.get("en_US").map(String::as_str).unwrap_or("")
    }
}

/// A division (`{id, name}`).
#[derive(Debug, Clone)]
pub struct SimDivision {
    pub id: String,
    pub name: String,
}

/// A routing queue, owned by a division.
#[derive(Debug, Clone)]
pub struct SimQueue {
    pub id: String,
    pub name: String,
    pub division: usize,
}

/// One user (agent) and their live state.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub department: String,
    pub title: String,
    pub division: usize,
    /// Indexes into the org's queue list.
    pub queues: Vec<usize>,
    /// `User.version`, bumped whenever the user object changes.
    pub version: u64,
    pub presence_def: usize,
    pub message: String,
    pub presence_modified: DateTime<Utc>,
    pub routing: RoutingStatus,
    pub routing_since: DateTime<Utc>,
    /// Active conversation ids (at most one in this simulation).
    pub conversations: Vec<String>,
    /// When the list of queues the user is active in last changed
    /// (`dateActiveQueuesChanged` of activity events; not moved by presence).
    pub queues_changed: DateTime<Utc>,
}

/// Whether user `u` has joined queue `q` (is active in it) when a share
/// `rate` of memberships is not joined: a fixed hash of the pair, so every
/// answer and event agrees.
pub fn joined(u: usize, q: usize, rate: f64) -> bool {
    if rate <= 0.0 {
        return true;
    }
    let h = (u as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((q as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    let h = (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((h >> 11) as f64 / (1u64 << 53) as f64) >= rate
}

/// The whole generated org.
#[derive(Debug, Clone)]
pub struct Org {
    pub divisions: Vec<SimDivision>,
    pub queues: Vec<SimQueue>,
    pub definitions: Vec<SimDefinition>,
    pub users: Vec<SimUser>,
    /// Id of the registered "PURECLOUD" presence source.
    pub purecloud_source_id: String,
}

/// The primary definitions seen in real orgs ([TF-PRES]), one per system presence.
const PRIMARY: [(&str, SystemPresence); 10] = [
    (
        "6a3af858-942f-489d-9700-5f9bcdcdae9b",
        SystemPresence::Available,
    ),
    ("31fe3bac-dea6-44b7-bed7-47f91660a1a0", SystemPresence::Busy),
    ("7ffa01cd-7866-4ad7-8faa-31e11b42f51f", SystemPresence::Idle),
    ("5e5c5c66-ea97-4e7f-ac41-6424784829f2", SystemPresence::Away),
    (
        "bbdff279-7ae1-48ea-bade-7831d7234c64",
        SystemPresence::Meeting,
    ),
    ("3fd96123-badb-4f69-bc03-1b1ccc6d8014", SystemPresence::Meal),
    (
        "d2390a99-8546-bad9-8f0a-219548e8aeb0",
        SystemPresence::Training,
    ),
    (
        "e08eaf1b-ee47-4fa9-a231-1200e284798f",
        SystemPresence::OnQueue,
    ),
    (
        "227b37e2-f1d0-4dd0-8f50-badd7cf6d158",
        SystemPresence::Break,
    ),
    (
        "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5",
        SystemPresence::Offline,
    ),
];

/// The org's own secondary presences: `(id, system presence, en_US, other labels, deactivated)`.
/// `(id, system presence, en_US label, other labels, deactivated)`.
type Secondary = (
    &'static str,
    SystemPresence,
    &'static str,
    &'static [(&'static str, &'static str)],
    bool,
);

const SECONDARY: [Secondary; 5] = [
    (
        "2fa68d50-5edb-4e01-9390-522615f12243",
        SystemPresence::Away,
        "Away From Keyboard V2",
        &[("es", "del teclado V2")],
        false,
    ),
    (
        "a1f0c3d2-4b5e-4f60-8a71-92b3c4d5e6f7",
        SystemPresence::Meal,
        "Lunch",
        &[("fr", "Déjeuner")],
        false,
    ),
    (
        "b2e1d4c3-5a6f-4071-9b82-a3c4d5e6f708",
        SystemPresence::Busy,
        "Coaching",
        &[],
        false,
    ),
    (
        "c3d2e5f4-6b70-4182-8c93-b4d5e6f70819",
        SystemPresence::Meeting,
        "Team Huddle",
        &[],
        false,
    ),
    (
        "d4e3f605-7c81-4293-9da4-c5e6f708192a",
        SystemPresence::Break,
        "Smoke Break (retired)",
        &[],
        true,
    ),
];

const FIRST: [&str; 48] = [
    "Ava",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Oliver",
    "Sophia",
    "Elijah",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Amelia",
    "Levi",
    "Harper",
    "Ethan",
    "Evelyn",
    "James",
    "Aria",
    "Aiden",
    "Chloe",
    "Sebastian",
    "Layla",
    "Henry",
    "Nora",
    "Jack",
    "Zoe",
    "Leo",
    "Riley",
    "Owen",
    "Priya",
    "Arjun",
    "Mei",
    "Hiro",
    "Fatima",
    "Omar",
    "Sofia",
    "Diego",
    "Ingrid",
    "Lars",
    "Aisha",
    "Kwame",
    "Yuki",
    "Chen",
    "Ana",
    "João",
    "Zara",
    "Ravi",
];

const LAST: [&str; 48] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Hill",
    "Patel",
    "Kim",
    "Tanaka",
    "Okafor",
    "Haddad",
    "Novak",
    "Silva",
    "Larsen",
    "Müller",
    "O'Brien",
];

const DIVISIONS: [&str; 4] = ["Home", "Sales", "Support", "Collections"];

/// Queues as `(name, division index)`.
const QUEUES: [(&str, usize); 12] = [
    ("General Enquiries", 0),
    ("Callbacks", 0),
    ("Sales Inbound", 1),
    ("Sales Outbound", 1),
    ("Renewals", 1),
    ("Tier 1 Support", 2),
    ("Tier 2 Support", 2),
    ("Billing Support", 2),
    ("Chat Support", 2),
    ("Email Support", 2),
    ("Collections Early", 3),
    ("Collections Late", 3),
];

/// A uuid v4 drawn from the seeded generator, so ids repeat for a seed.
pub fn uuid_from(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

impl Org {
    /// Index of the primary definition of a system presence.
    pub fn primary_def(&self, sp: SystemPresence) -> usize {
        self.definitions
            .iter()
            .position(|d| d.primary && d.system_presence == sp)
            // unwrap: every real system presence has a primary definition (PRIMARY above)
            .unwrap()
    }

    /// Index of a definition by id (case-insensitive, as Genesys ids are uuids).
    pub fn def_by_id(&self, id: &str) -> Option<usize> {
        self.definitions
            .iter()
            .position(|d| d.id.eq_ignore_ascii_case(id))
    }

    /// Generates an org of `agents` users from `seed`; `now` anchors the
    /// users' time in state (spread over the last hours).
    pub fn generate(agents: usize, seed: u64, now: DateTime<Utc>) -> Org {
        let mut rng = StdRng::seed_from_u64(seed);
        let divisions: Vec<SimDivision> = DIVISIONS
            .iter()
            .map(|name| SimDivision {
                id: uuid_from(&mut rng),
                name: (*name).to_string(),
            })
            .collect();
        let queues: Vec<SimQueue> = QUEUES
            .iter()
            .map(|(name, division)| SimQueue {
                id: uuid_from(&mut rng),
                name: (*name).to_string(),
                division: *division,
            })
            .collect();
        let mut definitions: Vec<SimDefinition> = PRIMARY
            .iter()
            .map(|(id, sp)| SimDefinition {
                id: (*id).to_string(),
                system_presence: *sp,
                labels: BTreeMap::from([("en_US".to_string(), sp.legacy().to_string())]),
                primary: true,
                deactivated: false,
            })
            .collect();
        for (id, sp, label, others, deactivated) in SECONDARY {
            let mut labels = BTreeMap::from([("en_US".to_string(), label.to_string())]);
            for (loc, l) in others {
                labels.insert((*loc).to_string(), (*l).to_string());
            }
            definitions.push(SimDefinition {
                id: id.to_string(),
                system_presence: sp,
                labels,
                primary: false,
                deactivated,
            });
        }
        let mut org = Org {
            divisions,
            queues,
            definitions,
            users: Vec::with_capacity(agents),
            purecloud_source_id: uuid_from(&mut rng),
        };
        for i in 0..agents {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            // A running number keeps names unique in big orgs, as real
            // directories disambiguate namesakes.
            let name = if i < FIRST.len() * 2 {
                format!("{first} {last}")
            } else {
                format!("{first} {last} {}", i / (FIRST.len() * 2))
            };
            let email = format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace(['\'', 'ü'], ""),
                i
            );
            // Home holds fewer agents than the operational divisions.
            let division = match rng.random_range(0..10) {
                0 => 0,
                1..=3 => 1,
                4..=7 => 2,
                _ => 3,
            };
            let own: Vec<usize> = (0..org.queues.len())
                .filter(|q| org.queues[*q].division == division)
                .collect();
            let n = rng.random_range(1..=own.len().min(3));
            let mut qs: Vec<usize> = Vec::with_capacity(n);
            while qs.len() < n {
                let q = own[rng.random_range(0..own.len())];
                if !qs.contains(&q) {
                    qs.push(q);
                }
            }
            qs.sort_unstable();
            let roll = rng.random_range(0..100);
            let (sp_def, routing) = match roll {
                0..=54 => (
                    org.primary_def(SystemPresence::OnQueue),
                    RoutingStatus::Idle,
                ),
                55..=69 => (
                    org.primary_def(SystemPresence::Available),
                    RoutingStatus::OffQueue,
                ),
                70..=77 => (
                    org.primary_def(SystemPresence::Break),
                    RoutingStatus::OffQueue,
                ),
                78..=80 => (
                    org.primary_def(SystemPresence::Meal),
                    RoutingStatus::OffQueue,
                ),
                81..=82 => (1 + PRIMARY.len(), RoutingStatus::OffQueue), // Lunch
                83..=85 => (2 + PRIMARY.len(), RoutingStatus::OffQueue), // Coaching
                86..=87 => (
                    org.primary_def(SystemPresence::Meeting),
                    RoutingStatus::OffQueue,
                ),
                _ => (
                    org.primary_def(SystemPresence::Offline),
                    RoutingStatus::OffQueue,
                ),
            };
            let since = now - Duration::seconds(rng.random_range(5..4 * 3600));
            org.users.push(SimUser {
                id: uuid_from(&mut rng),
                name,
                email,
                department: org.divisions[division].name.clone(),
                title: "Agent".to_string(),
                division,
                queues: qs,
                version: rng.random_range(1..400),
                presence_def: sp_def,
                message: String::new(),
                presence_modified: since,
                routing,
                routing_since: since + Duration::milliseconds(rng.random_range(0..500)),
                conversations: Vec::new(),
                queues_changed: since - Duration::days(30),
            });
        }
        org
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed yields the same org; another seed a different one.
    #[test]
    fn generation_is_deterministic() {
        let now = Utc::now();
        let a = Org::generate(50, 7, now);
        let b = Org::generate(50, 7, now);
        let c = Org::generate(50, 8, now);
        let ids = |o: &Org| o.users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&c));
        assert_eq!(a.users[3].name, b.users[3].name);
    }

    /// On Queue agents are never OFF_QUEUE, everyone else always is.
    #[test]
    fn routing_matches_presence() {
        let org = Org::generate(500, 1, Utc::now());
        let on_queue = org.primary_def(SystemPresence::OnQueue);
        for u in &org.users {
            assert_eq!(
                u.presence_def == on_queue,
                u.routing != RoutingStatus::OffQueue
            );
            assert!(!u.queues.is_empty());
        }
        assert!(org
            .users
            .iter()
            .any(|u| !org.definitions[u.presence_def].primary));
    }
}
