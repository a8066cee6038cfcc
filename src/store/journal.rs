//! The presence journal and the webhook outbox, in the store's SQLite file.
//!
//! [`Journal`] is an actix `SyncActor` on its own thread with its own
//! connection to the same file (WAL lets it write beside the audit store).
//! The registry's tap ([`crate::registry::tap`]) hands it every applied
//! change; for each agent and each *kind* of state (`presence`, `routing`)
//! the journal compares the new state with the last one it recorded and,
//! when they differ, appends one record: previous state, new state, when
//! the new one started (Genesys's `modifiedDate`/`startTime`), how long the
//! previous one lasted, and the change's origin (`event`, `reconciled`,
//! `write`). Because the comparison is against the journal's own last
//! record (kept in memory, loaded from disk on first use), a restart needs
//! nothing special: the first sync after it records what changed while the
//! gateway was down as `reconciled` differences.
//!
//! In the same transaction each record becomes a webhook event (a stable
//! `id`, a JSON body fixed at that moment) and one outbox row per matching
//! subscriber, so an event is either journaled *and* queued for delivery,
//! or neither. Delivery workers ([`crate::webhooks`]) claim outbox rows
//! through messages here: per subscriber, only the oldest pending row of
//! each agent is ever handed out, which keeps per-agent order.

use std::collections::HashMap;
use std::sync::Arc;

use super::backend::{Conn, Db, Val};
use actix::prelude::*;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Backoff, Op, StoreConfig, StoreError, StoreHealth};
use crate::model::{iso, Origin};
use crate::registry::{AgentView, JournalBatch};

/// Which state a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The presence (`systemPresence`, definition, label).
    Presence,
    /// The routing status.
    Routing,
}

impl Kind {
    /// Both kinds.
    pub const ALL: [Kind; 2] = [Kind::Presence, Kind::Routing];

    /// `presence` / `routing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Presence => "presence",
            Kind::Routing => "routing",
        }
    }

    fn parse(s: &str) -> Kind {
        if s == "routing" {
            Kind::Routing
        } else {
            Kind::Presence
        }
    }
}

/// Where a history record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The gateway's own journal.
    Journal,
    /// Genesys's `POST /api/v2/analytics/users/details/query` (ranges
    /// before the gateway was running).
    GenesysAnalytics,
}

/// One state: `state` is the system presence (`ON_QUEUE`, …) or the routing
/// status (`IDLE`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRef {
    pub state: String,
    /// Presence definition id (presence only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition_id: Option<String>,
    /// The org's label (presence only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When this state started.
    #[serde(with = "iso_ser")]
    pub since: DateTime<Utc>,
}

/// One history record, from the journal or from Genesys analytics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    /// Journal row id (`null` for analytics records).
    pub id: Option<i64>,
    pub source: Source,
    /// The webhook event id of this change (journal records).
    pub event_id: Option<String>,
    pub agent_id: String,
    pub kind: Kind,
    /// How the gateway learnt of it (journal records).
    pub origin: Option<Origin>,
    /// When the new state started.
    #[serde(with = "iso_ser")]
    pub at: DateTime<Utc>,
    /// The state before (`null` when unknown: first record of an agent).
    pub previous: Option<StateRef>,
    /// The new state.
    pub current: StateRef,
    /// How long the previous state lasted, in milliseconds.
    pub previous_duration_ms: Option<i64>,
}

mod iso_ser {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::model::iso(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Milliseconds → time (out-of-range values clamp to the Unix epoch).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The state of `kind` in an agent view, if reported.
fn state_of(a: &AgentView, kind: Kind) -> Option<StateRef> {
    match kind {
        Kind::Presence => a.presence.as_ref().map(|p| StateRef {
            state: p.system_presence.upper_snake().to_string(),
            definition_id: Some(p.definition_id.clone()),
            label: Some(p.label.clone()),
            since: p.since,
        }),
        Kind::Routing => a.routing_status.as_ref().map(|r| StateRef {
            state: r.status.as_str().to_string(),
            definition_id: None,
            label: None,
            since: r.since,
        }),
    }
}

/// The event id of a change: the same for every node that sees it (agent,
/// kind, new state and when it started, as Genesys dates it), so nodes
/// sharing a store journal and deliver it once. A UUID made of the first
/// 16 bytes of a SHA-256.
fn event_id_for(agent: &str, kind: Kind, cur: &StateRef) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(
        format!(
            "{agent}\n{}\n{}\n{}\n{}",
            kind.as_str(),
            cur.state,
            cur.definition_id.as_deref().unwrap_or(""),
            cur.since.timestamp_millis()
        )
        .as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Uuid::from_bytes(b).to_string()
}

/// True when `b` is no change from `a` (same definition / same status; a
/// new `modifiedDate` alone, e.g. a message edit, is not a new state).
fn same(a: &StateRef, b: &StateRef) -> bool {
    a.state == b.state && a.definition_id == b.definition_id
}

fn origin_str(o: Origin) -> &'static str {
    match o {
        Origin::Event => "event",
        Origin::Reconciled => "reconciled",
        Origin::Write => "write",
    }
}

fn origin_parse(s: &str) -> Origin {
    match s {
        "write" => Origin::Write,
        "reconciled" => Origin::Reconciled,
        _ => Origin::Event,
    }
}

/// The webhook event for one record (its body is fixed when journaled).
fn event_body(
    event_id: &str,
    a: &AgentView,
    kind: Kind,
    origin: Origin,
    prev: Option<&StateRef>,
    cur: &StateRef,
    observed: DateTime<Utc>,
) -> Value {
    let state_json = |s: &StateRef| match kind {
        Kind::Presence => json!({
            "systemPresence": s.state, "definitionId": s.definition_id,
            "label": s.label, "since": iso(s.since),
        }),
        Kind::Routing => json!({"status": s.state, "since": iso(s.since)}),
    };
    let mut current = state_json(cur);
    if let (Kind::Presence, Some(p)) = (kind, &a.presence) {
        current["message"] = json!(p.message);
    }
    json!({
        "id": event_id,
        "type": format!("agent.{}.changed", kind.as_str()),
        "kind": kind.as_str(),
        "origin": origin_str(origin),
        "agent": {"id": a.id, "name": a.name, "division": a.division, "queues": a.queues},
        "previous": prev.map(state_json),
        "current": current,
        "occurredAt": iso(cur.since),
        "observedAt": iso(observed),
        "previousDurationMs": prev.map(|p| (cur.since - p.since).num_milliseconds().max(0)),
    })
}

/// Who gets an outbox row for a journaled event, and who is told. The
/// journal sits below the features, so it sees subscribers only through
/// this trait (implemented by [`crate::webhooks::Webhooks`]); subscribers
/// are numbered `0..count()` in configuration order.
pub trait OutboxRouting: Send + Sync + std::fmt::Debug + 'static {
    /// Number of subscribers.
    fn count(&self) -> usize;
    /// Name of subscriber `i` (the outbox's `subscriber` column).
    fn name(&self, i: usize) -> &str;
    /// Whether subscriber `i` wants the event with this JSON body.
    fn wants(&self, i: usize, event: &Value) -> bool;
    /// `n` rows were queued for subscriber `i` (`replayed`: by a replay):
    /// count them and wake its delivery task.
    fn queued(&self, i: usize, n: u64, replayed: bool);
}

/// The journal actor.
pub struct Journal {
    conn: Conn,
    /// Days of journal kept ([`crate::history::HistoryConfig::retention_days`]).
    retention_days: u32,
    /// Subscribers (filters, counters, wake-ups).
    hooks: Arc<dyn OutboxRouting>,
    /// Shared store health (journal and outbox writes feed it).
    health: Arc<StoreHealth>,
    /// Last recorded state per (agent, kind); `None` = known to have none.
    last: HashMap<(String, Kind), Option<StateRef>>,
    /// The store's settings and the SQLite file's identity at open
    /// ([`super::check_file_identity`] before every write).
    store: StoreConfig,
    file_id: Option<(u64, u64)>,
}

impl Journal {
    /// Opens the journal's connection to the store's file (the schema is
    /// [`super::migrate`]'s).
    pub fn open(
        store: &StoreConfig,
        retention_days: u32,
        hooks: Arc<dyn OutboxRouting>,
        health: Arc<StoreHealth>,
    ) -> Result<Journal, StoreError> {
        let conn = store.open_conn()?;
        let file_id = store.file_id().and_then(Result::ok);
        Ok(Journal {
            conn,
            retention_days,
            hooks,
            health,
            last: HashMap::new(),
            store: store.clone(),
            file_id,
        })
    }

    /// Refuses writes once the store file is gone or replaced.
    fn check_file(&self) -> Result<(), StoreError> {
        super::check_file_identity(&self.store, self.file_id, &self.health)
    }

    /// Starts the journal on its own thread (one: order matters). With
    /// SQLite, webhook claims a previous run held are released first: this
    /// process is the file's only user, so nothing else is delivering them
    /// (on PostgreSQL other nodes may be; claims there run out by themselves).
    pub fn start(
        store: StoreConfig,
        retention_days: u32,
        hooks: Arc<dyn OutboxRouting>,
        health: Arc<StoreHealth>,
    ) -> Result<Addr<Journal>, StoreError> {
        // Open once here so a bad path fails start-up with its reason.
        let released = super::backend::blocking(|| {
            let mut first = Journal::open(&store, retention_days, hooks.clone(), health.clone())?;
            if store.is_postgres() {
                return Ok(0);
            }
            first.conn.db_tx(|db| {
                db.exec(
                    "UPDATE webhook_outbox SET claimed = 0, next_ms = ?1 WHERE claimed = 1",
                    &[Utc::now().timestamp_millis().into()],
                )
            })
        })?;
        if released > 0 {
            tracing::info!(
                rows = released,
                "webhook deliveries in flight when the previous run stopped are due again"
            );
        }
        Ok(SyncArbiter::start(1, move || {
            // unwrap: the same config opened a moment ago; failing now means
            // the disk vanished, and the journal cannot run without it.
            Journal::open(&store, retention_days, hooks.clone(), health.clone())
                .expect("reopen the journal")
        }))
    }

    fn prune(&mut self) -> Result<(usize, usize), StoreError> {
        let cut = (Utc::now() - chrono::Duration::days(i64::from(self.retention_days)))
            .timestamp_millis();
        let (journal, outbox) = self.conn.db_tx(|db| {
            let outbox = db.exec(
                "DELETE FROM webhook_outbox WHERE status = 'dead' AND created_ms < ?1",
                &[cut.into()],
            )?;
            let journal = db.exec(
                "DELETE FROM journal WHERE observed_ms < ?1
                 AND id NOT IN (SELECT journal_id FROM webhook_outbox)",
                &[cut.into()],
            )?;
            Ok((journal as usize, outbox as usize))
        })?;
        self.last.clear();
        Ok((journal, outbox))
    }

    /// The last recorded state of (agent, kind), cached.
    fn last_state(&mut self, agent: &str, kind: Kind) -> Result<Option<StateRef>, StoreError> {
        let key = (agent.to_string(), kind);
        if let Some(s) = self.last.get(&key) {
            return Ok(s.clone());
        }
        let s = self
            .conn
            .db_read(|db| {
                db.query_opt(
                    "SELECT state, definition_id, label, at_ms FROM journal
                     WHERE agent_id = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 1",
                    &[agent.into(), kind.as_str().into()],
                )
            })?
            .map(|r| StateRef {
                state: r[0].t(),
                definition_id: r[1].ot(),
                label: r[2].ot(),
                since: from_ms(r[3].i()),
            });
        self.last.insert(key, s.clone());
        Ok(s)
    }

    fn record(&mut self, b: &JournalBatch) -> Result<Vec<usize>, StoreError> {
        self.check_file()?;
        let observed = Utc::now();
        let mut woken = vec![0usize; self.hooks.count()];
        // Fill the cache before the transaction (reads only).
        for c in &b.changes {
            if c.after.is_some() {
                for k in Kind::ALL {
                    self.last_state(&c.id, k)?;
                }
            }
        }
        let hooks = self.hooks.clone();
        let last = &mut self.last;
        self.conn.db_tx(|tx| {
        for c in &b.changes {
            let Some(after) = &c.after else { continue };
            for kind in Kind::ALL {
                let Some(cur) = state_of(after, kind) else {
                    continue;
                };
                let key = (c.id.clone(), kind);
                let prev = last.get(&key).cloned().flatten();
                if prev.as_ref().is_some_and(|p| same(p, &cur)) {
                    continue;
                }
                let event_id = event_id_for(&c.id, kind, &cur);
                let body = event_body(
                    &event_id,
                    after,
                    kind,
                    c.origin,
                    prev.as_ref(),
                    &cur,
                    observed,
                );
                let body_text = body.to_string();
                let journal_id = tx.insert_id_opt(
                    "INSERT INTO journal (event_id, agent_id, kind, origin, at_ms, observed_ms,
                        prev_state, prev_definition_id, prev_label, prev_since_ms,
                        state, definition_id, label, prev_duration_ms, epoch, seq, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                     ON CONFLICT (event_id) DO NOTHING",
                    &[
                        event_id.into(),
                        (&c.id).into(),
                        kind.as_str().into(),
                        origin_str(c.origin).into(),
                        cur.since.timestamp_millis().into(),
                        observed.timestamp_millis().into(),
                        prev.as_ref().map(|p| p.state.clone()).into(),
                        prev.as_ref().and_then(|p| p.definition_id.clone()).into(),
                        prev.as_ref().and_then(|p| p.label.clone()).into(),
                        prev.as_ref().map(|p| p.since.timestamp_millis()).into(),
                        (&cur.state).into(),
                        cur.definition_id.clone().into(),
                        cur.label.clone().into(),
                        prev.as_ref()
                            .map(|p| (cur.since - p.since).num_milliseconds().max(0))
                            .into(),
                        (b.epoch as i64).into(),
                        (b.seq as i64).into(),
                        body_text.into(),
                    ],
                )?;
                // Another node sharing the store recorded this change first.
                let Some(journal_id) = journal_id else {
                    last.insert(key, Some(cur));
                    continue;
                };
                for (i, n) in woken.iter_mut().enumerate() {
                    if hooks.wants(i, &body) {
                        tx.exec(
                            "INSERT INTO webhook_outbox (subscriber, agent_id, journal_id, next_ms, created_ms)
                             VALUES (?1, ?2, ?3, ?4, ?4)",
                            &[hooks.name(i).into(), (&c.id).into(), journal_id.into(), observed.timestamp_millis().into()],
                        )?;
                        *n += 1;
                    }
                }
                last.insert(key, Some(cur));
            }
        }
        Ok(())
        })?;
        Ok(woken)
    }
}

impl Actor for Journal {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        match self.prune() {
            Ok((j, o)) if j + o > 0 => {
                tracing::info!(journal = j, dead_letters = o, "journal pruned")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning the journal failed"),
        }
    }
}

impl Handler<JournalBatch> for Journal {
    type Result = ();

    fn handle(&mut self, b: JournalBatch, _: &mut SyncContext<Self>) {
        if b.changes.is_empty() {
            return; // a barrier: everything before it is committed
        }
        // A failed write is retried with backoff on this thread (the
        // registry's tap keeps later batches meanwhile, bounded), then given up.
        let mut backoff = Backoff::new(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_secs(2),
        );
        loop {
            let r = self.record(&b);
            if r.is_err() {
                // Reload the last states from disk: the failed transaction
                // left the cache ahead of it.
                self.last.clear();
            }
            match self.health.observe(Op::Journal, r) {
                Ok(woken) => {
                    for (i, n) in woken.into_iter().enumerate() {
                        if n > 0 {
                            self.hooks.queued(i, n as u64, false);
                        }
                    }
                    return;
                }
                Err(e) if backoff.failures() < JOURNAL_RETRIES => {
                    let wait = backoff.fail();
                    tracing::warn!(error = %e, seq = b.seq, retry_in_ms = wait.as_millis() as u64, "journal write failed; retrying");
                    std::thread::sleep(wait);
                }
                Err(e) => {
                    // The batch is lost to history; the next change of each
                    // agent is recorded against the last state on disk.
                    tracing::error!(error = %e, seq = b.seq, changes = b.changes.len(), "journal write failed; batch given up");
                    return;
                }
            }
        }
    }
}

/// Retries of one journal batch before it is given up (about 4 s in all).
const JOURNAL_RETRIES: u32 = 5;

/// Prunes records older than the retention (and old dead letters).
#[derive(Message)]
#[rtype(result = "Result<(usize, usize), StoreError>")]
pub struct Prune;

impl Handler<Prune> for Journal {
    type Result = Result<(usize, usize), StoreError>;

    fn handle(&mut self, _: Prune, _: &mut SyncContext<Self>) -> Self::Result {
        self.prune()
    }
}

/// HTTP → journal: an agent's records in `[from, to)` plus what the
/// history and summary endpoints need around them.
#[derive(Message)]
#[rtype(result = "Result<JournalSlice, StoreError>")]
pub struct QueryJournal {
    pub agent_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Reply to [`QueryJournal`].
#[derive(Debug, Clone, Default)]
pub struct JournalSlice {
    /// Records with `at` in `[from, to)`, oldest first.
    pub records: Vec<HistoryRecord>,
    /// Per kind, the last record before `from` (the state at `from`).
    pub before: Vec<HistoryRecord>,
    /// Per kind, the agent's first record (where the journal's knowledge starts).
    pub first: Vec<HistoryRecord>,
    /// When the gateway first observed this agent (`None`: never).
    pub coverage_start: Option<DateTime<Utc>>,
}

fn row_to_record(r: &[Val]) -> HistoryRecord {
    HistoryRecord {
        id: Some(r[0].i()),
        source: Source::Journal,
        event_id: Some(r[1].t()),
        agent_id: r[2].t(),
        kind: Kind::parse(&r[3].t()),
        origin: Some(origin_parse(&r[4].t())),
        at: from_ms(r[5].i()),
        previous: r[6].ot().map(|state| StateRef {
            state,
            definition_id: r[7].ot(),
            label: r[8].ot(),
            since: from_ms(r[9].oi().unwrap_or_default()),
        }),
        current: StateRef {
            state: r[10].t(),
            definition_id: r[11].ot(),
            label: r[12].ot(),
            since: from_ms(r[5].i()),
        },
        previous_duration_ms: r[13].oi(),
    }
}

const COLS: &str = "id, event_id, agent_id, kind, origin, at_ms, prev_state, prev_definition_id,
    prev_label, prev_since_ms, state, definition_id, label, prev_duration_ms";

impl Handler<QueryJournal> for Journal {
    type Result = Result<JournalSlice, StoreError>;

    fn handle(&mut self, q: QueryJournal, _: &mut SyncContext<Self>) -> Self::Result {
        let (from, to) = (q.from.timestamp_millis(), q.to.timestamp_millis());
        self.conn.db_read(|db| {
            let agent: Val = (&q.agent_id).into();
            let records = db
                .query(
                    &format!(
                        "SELECT {COLS} FROM journal WHERE agent_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
                         ORDER BY at_ms, id"
                    ),
                    &[agent.clone(), from.into(), to.into()],
                )?
                .iter()
                .map(|r| row_to_record(r))
                .collect();
            let mut before = Vec::new();
            let mut first = Vec::new();
            for kind in Kind::ALL {
                before.extend(
                    db.query_opt(
                        &format!(
                            "SELECT {COLS} FROM journal WHERE agent_id = ?1 AND kind = ?2 AND at_ms < ?3
                             ORDER BY at_ms DESC, id DESC LIMIT 1"
                        ),
                        &[agent.clone(), kind.as_str().into(), from.into()],
                    )?
                    .map(|r| row_to_record(&r)),
                );
                first.extend(
                    db.query_opt(
                        &format!(
                            "SELECT {COLS} FROM journal WHERE agent_id = ?1 AND kind = ?2 ORDER BY id LIMIT 1"
                        ),
                        &[agent.clone(), kind.as_str().into()],
                    )?
                    .map(|r| row_to_record(&r)),
                );
            }
            let coverage = db
                .query_opt(
                    "SELECT MIN(observed_ms) FROM journal WHERE agent_id = ?1",
                    &[agent],
                )?
                .and_then(|r| r[0].oi());
            Ok(JournalSlice {
                records,
                before,
                first,
                coverage_start: coverage.map(from_ms),
            })
        })
    }
}

/// One outbox row handed to a delivery worker.
#[derive(Debug, Clone)]
pub struct Due {
    pub outbox_id: i64,
    pub agent_id: String,
    pub event_id: String,
    pub body: String,
    /// Attempts made before this one (this one is `attempts + 1`, already recorded).
    pub attempts: u32,
}

/// Worker → journal: claims the next deliverable rows of a subscriber, at
/// most one per agent (the oldest pending one), due by `now`, at most
/// `limit`. Claiming counts the attempt and holds the row for `claim_ms`
/// (it is not handed out again meanwhile, should its outcome never be
/// recorded), in one transaction: no attempt is sent that was not recorded.
#[derive(Message)]
#[rtype(result = "Result<Claimed, StoreError>")]
pub struct ClaimDue {
    pub subscriber: String,
    pub limit: usize,
    pub now_ms: i64,
    /// Agents with a delivery in flight (skipped).
    pub busy: Vec<String>,
    /// How long a claim holds its row (ms).
    pub claim_ms: i64,
}

/// Reply to [`ClaimDue`].
#[derive(Debug, Default)]
pub struct Claimed {
    pub due: Vec<Due>,
    /// When the earliest head not yet due becomes due (ms).
    pub next_ms: Option<i64>,
    /// Pending rows of this subscriber.
    pub pending: u64,
}

impl Handler<ClaimDue> for Journal {
    type Result = Result<Claimed, StoreError>;

    fn handle(&mut self, q: ClaimDue, _: &mut SyncContext<Self>) -> Self::Result {
        if let Err(e) = self.check_file() {
            return self.health.observe(Op::Outbox, Err(e));
        }
        let until = q.now_ms + q.claim_ms;
        if matches!(self.conn, Conn::Pg(..)) {
            // Nodes sharing the database: pick and claim in one transaction,
            // skipping heads another node is claiming this instant.
            let r = self.conn.db_tx(|db| {
                let out = pick_due(db, &q, " FOR UPDATE OF o SKIP LOCKED")?;
                claim(db, &out.due, until)?;
                Ok(out)
            });
            return self.health.observe(Op::Outbox, r);
        }
        let out = self.conn.db_read(|db| pick_due(db, &q, ""))?;
        if !out.due.is_empty() {
            let claimed = self.conn.db_tx(|db| claim(db, &out.due, until));
            self.health.observe(Op::Outbox, claimed)?;
        }
        Ok(out)
    }
}

/// The subscriber's due heads (oldest pending row per agent), `lock` appended.
fn pick_due(db: &mut Db<'_, '_>, q: &ClaimDue, lock: &str) -> Result<Claimed, StoreError> {
    let sub: Val = (&q.subscriber).into();
    let heads = db.query(
        &format!(
            "SELECT o.id, o.agent_id, o.attempts, o.next_ms, j.event_id, j.body
             FROM webhook_outbox o JOIN journal j ON j.id = o.journal_id
             WHERE o.id IN (SELECT MIN(id) FROM webhook_outbox
                            WHERE subscriber = ?1 AND status = 'pending' GROUP BY agent_id)
             ORDER BY o.next_ms, o.id{lock}"
        ),
        std::slice::from_ref(&sub),
    )?;
    let pending = db
        .query_opt(
            "SELECT COUNT(*) FROM webhook_outbox WHERE subscriber = ?1 AND status = 'pending'",
            std::slice::from_ref(&sub),
        )?
        .map_or(0, |r| r[0].i());
    let mut out = Claimed {
        pending: pending.max(0) as u64,
        ..Claimed::default()
    };
    for r in heads {
        let due = Due {
            outbox_id: r[0].i(),
            agent_id: r[1].t(),
            attempts: r[2].i().clamp(0, i64::from(u32::MAX)) as u32,
            event_id: r[4].t(),
            body: r[5].t(),
        };
        let next = r[3].i();
        if q.busy.contains(&due.agent_id) {
            continue;
        }
        if next > q.now_ms {
            out.next_ms = Some(out.next_ms.map_or(next, |n: i64| n.min(next)));
        } else if out.due.len() < q.limit {
            out.due.push(due);
        }
    }
    Ok(out)
}

/// Counts an attempt on each row and holds it until `until` (ms).
fn claim(db: &mut Db<'_, '_>, due: &[Due], until: i64) -> Result<(), StoreError> {
    for d in due {
        db.exec(
            "UPDATE webhook_outbox SET attempts = attempts + 1, claimed = 1, next_ms = ?2 WHERE id = ?1",
            &[d.outbox_id.into(), until.into()],
        )?;
    }
    Ok(())
}

/// Worker → journal: the outcome of one attempt.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub enum Outcome {
    /// 2xx: the row is done (deleted; the journal keeps the event).
    Delivered { outbox_id: i64 },
    /// Failed: try again at `next_ms`, or give up (`dead`).
    Failed {
        outbox_id: i64,
        attempts: u32,
        next_ms: i64,
        dead: bool,
        error: String,
    },
}

impl Handler<Outcome> for Journal {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, o: Outcome, _: &mut SyncContext<Self>) -> Self::Result {
        let r = self.outcome(o);
        self.health.observe(Op::Outbox, r)
    }
}

impl Journal {
    fn outcome(&mut self, o: Outcome) -> Result<(), StoreError> {
        self.check_file()?;
        self.conn.db_tx(|db| {
            match o {
                Outcome::Delivered { outbox_id } => {
                    db.exec(
                        "DELETE FROM webhook_outbox WHERE id = ?1",
                        &[outbox_id.into()],
                    )?;
                }
                Outcome::Failed {
                    outbox_id,
                    attempts,
                    next_ms,
                    dead,
                    error,
                } => {
                    db.exec(
                        "UPDATE webhook_outbox SET attempts = ?2, next_ms = ?3, last_error = ?4, claimed = 0,
                         status = CASE WHEN ?5 THEN 'dead' ELSE 'pending' END WHERE id = ?1",
                        &[outbox_id.into(), attempts.into(), next_ms.into(), error.into(), dead.into()],
                    )?;
                }
            }
            Ok(())
        })
    }
}

/// HTTP → journal: queue again, for one subscriber, every journaled event
/// (matching its filter) observed at or after `from`, oldest first, with
/// their original ids and bodies. Replies with the number queued.
#[derive(Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct Replay {
    pub subscriber: String,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

impl Handler<Replay> for Journal {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, q: Replay, _: &mut SyncContext<Self>) -> Self::Result {
        let Some(i) = (0..self.hooks.count()).find(|&i| self.hooks.name(i) == q.subscriber) else {
            return Ok(0);
        };
        let now = Utc::now().timestamp_millis();
        let hooks = self.hooks.clone();
        let n = self.conn.db_tx(|tx| {
            let rows = tx.query(
                "SELECT id, agent_id, body FROM journal WHERE observed_ms >= ?1 AND observed_ms < ?2 ORDER BY id",
                &[
                    q.from.timestamp_millis().into(),
                    q.to.map_or(i64::MAX, |t| t.timestamp_millis()).into(),
                ],
            )?;
            let mut n = 0u64;
            for r in rows {
                let v: Value = serde_json::from_str(&r[2].t()).unwrap_or(Value::Null);
                if hooks.wants(i, &v) {
                    tx.exec(
                        "INSERT INTO webhook_outbox (subscriber, agent_id, journal_id, next_ms, created_ms)
                         VALUES (?1, ?2, ?3, ?4, ?4)",
                        &[(&q.subscriber).into(), r[1].clone(), r[0].clone(), now.into()],
                    )?;
                    n += 1;
                }
            }
            Ok(n)
        })?;
        self.hooks.queued(i, n, true);
        Ok(n)
    }
}

/// Dead letters of a subscriber (newest first, at most `limit`).
#[derive(Message)]
#[rtype(result = "Result<Vec<Value>, StoreError>")]
pub struct DeadLetters {
    pub subscriber: String,
    pub limit: u32,
}

impl Handler<DeadLetters> for Journal {
    type Result = Result<Vec<Value>, StoreError>;

    fn handle(&mut self, q: DeadLetters, _: &mut SyncContext<Self>) -> Self::Result {
        let rows = self.conn.db_read(|db| {
            db.query(
                "SELECT j.event_id, o.agent_id, o.attempts, o.last_error, o.created_ms
                 FROM webhook_outbox o JOIN journal j ON j.id = o.journal_id
                 WHERE o.subscriber = ?1 AND o.status = 'dead' ORDER BY o.id DESC LIMIT ?2",
                &[(&q.subscriber).into(), q.limit.into()],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({
                    "eventId": r[0].t(),
                    "agentId": r[1].t(),
                    "attempts": r[2].i(),
                    "lastError": r[3].ot(),
                    "createdAt": iso(from_ms(r[4].i())),
                })
            })
            .collect())
    }
}
