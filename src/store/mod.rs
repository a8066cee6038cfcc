//! Persistence: one SQLite file (design.md "Persistence"), or a PostgreSQL
//! database with `[store] url` ([`backend`]), holding the audit log of
//! presence writes, idempotency records, presence leases, and the presence
//! journal. Nothing acknowledged is lost on a crash: every write is
//! committed before the caller hears back (SQLite: WAL, `synchronous=FULL`).
//!
//! [`Store`] is an actix `SyncActor` on its own thread (store calls block);
//! everything else talks to it through messages; its SQL is in [`ops`],
//! once per backend. SQLite write transactions begin
//! `IMMEDIATE` (they take the write lock first, so a read inside them never
//! meets a newer commit of the journal's connection: no `SQLITE_BUSY` that
//! the busy timeout cannot wait out).
//!
//! The store never fails silently: every write feeds the shared
//! [`StoreHealth`] (`/readyz`, `/metrics`); the write path records its
//! intent here before Genesys is touched ([`BeginWrite`]); a file deleted
//! or replaced under the gateway is noticed ([`Probe`], and before every
//! write); keys a killed process left in flight are settled after a
//! restart ([`InFlightKeys`], [`SettleKey`]).

pub mod backend;
pub mod health;
pub mod journal;
pub mod migrate;
pub mod ops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use backend::Conn;
pub use health::{Backoff, Op, StoreHealth};
use ops::StoreOps;

/// Store settings (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file (created if missing). `:memory:` keeps nothing across
    /// restarts. Unused when `url` names PostgreSQL.
    pub path: PathBuf,
    /// `postgres://user[:password]@host[:port]/database` selects PostgreSQL,
    /// the store gateway nodes can share; unset: SQLite at `path`.
    pub url: Option<String>,
    /// Days of audit records kept.
    pub audit_retention_days: u32,
    /// Hours an `Idempotency-Key` is remembered.
    pub idempotency_hours: u32,
    /// Milliseconds a write waits for a lock another connection holds
    /// (`PRAGMA busy_timeout`) before it fails with "database is locked".
    pub busy_timeout_ms: u64,
    /// Seconds between health probes: a one-row write and a check that the
    /// file at `path` is still the one opened (not deleted or replaced).
    pub probe_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("presence-gateway.db"),
            url: None,
            audit_retention_days: 90,
            idempotency_hours: 24,
            busy_timeout_ms: 5_000,
            probe_secs: 5,
        }
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(u) = &self.url {
            if !self.is_postgres() {
                return Err(format!(
                    "store.url {:?} must start with postgres:// or postgresql:// (leave it unset for SQLite at store.path)",
                    backend::redact(u)
                ));
            }
        }
        if self.path.as_os_str().is_empty() {
            return Err(
                "store.path is empty: name a file such as /var/lib/presence-gateway/gateway.db"
                    .into(),
            );
        }
        if self.audit_retention_days == 0 || self.idempotency_hours == 0 {
            return Err(
                "store.audit_retention_days and store.idempotency_hours must be at least 1".into(),
            );
        }
        if !(1..=600_000).contains(&self.busy_timeout_ms) || !(1..=3_600).contains(&self.probe_secs)
        {
            return Err(
                "store.busy_timeout_ms must be 1 to 600000 and store.probe_secs 1 to 3600".into(),
            );
        }
        Ok(())
    }

    /// Opens a connection to the store's file (creating the file and its
    /// directory), with WAL, `synchronous=FULL` and the busy timeout, and
    /// brings the schema up to date ([`migrate`]). The error names the path.
    pub fn connect(&self) -> Result<Connection, StoreError> {
        let named = |e: &dyn std::fmt::Display| {
            StoreError(format!("cannot open {}: {e}", self.path.display()))
        };
        let conn = if self.path == Path::new(":memory:") {
            Connection::open_in_memory().map_err(|e| named(&e))?
        } else {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| named(&e))?;
            }
            Connection::open(&self.path).map_err(|e| named(&e))?
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout={};",
            self.busy_timeout_ms
        ))
        .map_err(|e| named(&e))?;
        migrate::migrate(&conn).map_err(|e| named(&e))?;
        Ok(conn)
    }

    /// `(device, inode)` of the file at `path` now; `None` for `:memory:`
    /// and PostgreSQL.
    pub fn file_id(&self) -> Option<Result<(u64, u64), String>> {
        use std::os::unix::fs::MetadataExt;
        if self.path == Path::new(":memory:") || self.is_postgres() {
            return None;
        }
        Some(
            std::fs::metadata(&self.path)
                .map(|m| (m.dev(), m.ino()))
                .map_err(|e| e.to_string()),
        )
    }
}

/// A store failure (disk full, corrupt file, …).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// One write attempt, as the audit log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Assigned by the store.
    #[serde(default)]
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who asked (client identity).
    pub actor: String,
    pub agent_id: String,
    /// Presence definition id before, when known.
    pub from_presence: Option<String>,
    /// What was asked for (definition id when resolved, else the raw input).
    pub to_presence: String,
    pub reason: Option<String>,
    /// `ok`, or the refusal/error code.
    pub result: String,
    /// HTTP status returned to the caller.
    pub status: u16,
    /// Genesys's correlation id, when Genesys was called.
    pub correlation_id: Option<String>,
    /// Free text: the refusal reason or error detail.
    pub detail: Option<String>,
    /// The cluster node that received the request (docs/scaling.md);
    /// absent on a standalone gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A presence set for a limited time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub agent_id: String,
    /// The leased presence definition.
    pub definition_id: String,
    pub expires_at: DateTime<Utc>,
    /// Definition set when the lease runs out.
    pub fallback_definition_id: String,
    pub actor: String,
}

/// The answer stored for an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Idempotent {
    /// First time: go ahead.
    New,
    /// A request with this key is still running.
    Pending,
    /// Done before: `(status, body)`.
    Done(u16, String),
    /// The key was used with a different request.
    Mismatch,
    /// A previous run of the gateway stopped while this key's request ran;
    /// it is being settled against Genesys ([`SettleKey`]).
    Recovering,
}

/// An idempotency key a previous process left in flight (it stopped
/// between claiming the key and recording the answer).
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightKey {
    pub key: String,
    /// `<agent id>\n<request JSON>` (see [`crate::writes`]).
    pub fingerprint: String,
    /// When the key was claimed.
    pub created: DateTime<Utc>,
}

pub struct Store {
    conn: Conn,
    cfg: StoreConfig,
    health: Arc<StoreHealth>,
    /// `(device, inode)` of the file when opened (`None`: `:memory:` or PostgreSQL).
    file_id: Option<(u64, u64)>,
    /// Keys left in flight by the previous process, until settled
    /// ([`SettleKey`]); `BeginWrite` answers [`Idempotent::Recovering`] for them.
    recovering: HashMap<String, InFlightKey>,
}

impl Store {
    /// Opens (creating) the database and brings its schema up to date.
    pub fn open(cfg: StoreConfig, health: Arc<StoreHealth>) -> Result<Store, StoreError> {
        let conn = cfg.open_conn()?;
        let file_id = match cfg.file_id() {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => return Err(StoreError(format!("cannot open {}: {e}", cfg.location()))),
        };
        Ok(Store {
            conn,
            cfg,
            health,
            file_id,
            recovering: HashMap::new(),
        })
    }

    /// Starts the store on its own thread. Opens the store first, here, so
    /// that a bad path fails start-up with its reason, and takes over what
    /// a previous process left unfinished: its keys in flight (settled
    /// later, [`InFlightKeys`]) and its audit records still `pending`
    /// (marked `interrupted`).
    pub fn start(cfg: StoreConfig, health: Arc<StoreHealth>) -> Result<Addr<Store>, StoreError> {
        let recovering =
            backend::blocking(|| Store::open(cfg.clone(), health.clone())?.take_over())?;
        if !recovering.is_empty() {
            tracing::warn!(
                keys = recovering.len(),
                "idempotency keys left in flight by the previous run; settling them after the first sync"
            );
        }
        Ok(SyncArbiter::start(1, move || {
            // unwrap: the same config opened a moment ago; failing now means
            // the disk vanished, and the store cannot run without it
            let mut s =
                Store::open(cfg.clone(), health.clone()).expect("reopen the store database");
            s.recovering = recovering.clone();
            s
        }))
    }

    /// Start-up: the keys in flight, and `pending` audit records marked `interrupted`.
    ///
    /// SQLite: everything in flight (the previous process is gone).
    /// PostgreSQL: only what was begun more than [`STALE_AFTER`] ago (other
    /// nodes may be running the rest); [`ClaimStale`] looks again later.
    fn take_over(&mut self) -> Result<HashMap<String, InFlightKey>, StoreError> {
        let before = self.stale_cut();
        let (keys, n) = self.conn.tx(|db| {
            Ok((
                db.in_flight(before.0.as_deref())?,
                db.mark_interrupted(INTERRUPTED, before.1.as_deref())?,
            ))
        })?;
        if n > 0 {
            tracing::warn!(
                records = n,
                "audit records of attempts the previous run did not finish marked interrupted"
            );
        }
        Ok(keys.into_iter().map(|k| (k.key.clone(), k)).collect())
    }

    /// The cut-offs (idempotency `created`, audit `at`) before which work
    /// in flight is abandoned: none with SQLite, [`STALE_AFTER`] ago with
    /// PostgreSQL.
    fn stale_cut(&self) -> (Option<String>, Option<String>) {
        if !self.cfg.is_postgres() {
            return (None, None);
        }
        let t = Utc::now() - STALE_AFTER;
        (
            Some(t.to_rfc3339()),
            Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        )
    }

    /// Fails when the file at the configured path is no longer the one
    /// this connection writes to (deleted, renamed or replaced): such
    /// writes would be lost at the next restart.
    fn check_file(&self) -> Result<(), StoreError> {
        check_file_identity(&self.cfg, self.file_id, &self.health)
    }

    fn prune(&mut self) -> Result<(), StoreError> {
        let audit_cut =
            Utc::now() - chrono::Duration::days(i64::from(self.cfg.audit_retention_days));
        let idem_cut = Utc::now() - chrono::Duration::hours(i64::from(self.cfg.idempotency_hours));
        let now_ms = Utc::now().timestamp_millis();
        self.conn
            .run(|db| db.prune(&audit_cut.to_rfc3339(), &idem_cut.to_rfc3339(), now_ms))
    }

    /// `f` in one write transaction, after the file check, fed to health as `op`.
    fn write<T>(
        &mut self,
        op: Op,
        f: impl FnOnce(&mut dyn StoreOps, &HashMap<String, InFlightKey>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = self.check_file().and_then(|()| {
            let recovering = &self.recovering;
            self.conn.tx(|db| f(db, recovering))
        });
        self.health.observe(op, r)
    }
}

/// With PostgreSQL, a key in flight this long belongs to a node that is
/// gone (no write takes this long; another node's running ones are younger).
pub const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(2);

/// The detail of an audit record whose attempt a previous run did not finish.
pub const INTERRUPTED: &str = "the gateway stopped before this attempt finished; Genesys may or may not have applied it (see the agent's history)";

impl Actor for Store {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        if let Err(e) = self.prune() {
            tracing::warn!(error = %e, "pruning the store failed");
        }
    }
}

/// Health probe: checks that the file is still the one opened and that a
/// one-row write commits; the outcome feeds [`StoreHealth`].
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Probe;

impl Handler<Probe> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, _: Probe, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Probe, |db, _| db.probe(Utc::now().timestamp_millis()))
    }
}

/// Probes the store every `store.probe_secs` until `stop`.
pub async fn probe_loop(
    store: Addr<Store>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store.send(Probe).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "store health probe failed"),
            Err(_) => return,
        }
    }
}

/// Appends an audit record; returns its id.
#[derive(Message)]
#[rtype(result = "Result<i64, StoreError>")]
pub struct AppendAudit(pub AuditRecord);

impl Handler<AppendAudit> for Store {
    type Result = Result<i64, StoreError>;

    fn handle(&mut self, AppendAudit(r): AppendAudit, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Audit, |db, _| db.append_audit(&r))
    }
}

/// Audit records, newest first.
#[derive(Message, Default)]
#[rtype(result = "Result<(Vec<AuditRecord>, u64), StoreError>")]
pub struct QueryAudit {
    /// Only these agents (a division-scoped caller's); `None`: all.
    pub agent_ids: Option<Vec<String>>,
    pub agent_id: Option<String>,
    pub actor: Option<String>,
    pub result: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: u32,
    pub offset: u32,
}

impl Handler<QueryAudit> for Store {
    type Result = Result<(Vec<AuditRecord>, u64), StoreError>;

    fn handle(&mut self, q: QueryAudit, _: &mut SyncContext<Self>) -> Self::Result {
        self.conn.run(|db| db.query_audit(&q))
    }
}

/// Claims an idempotency key for a request fingerprint.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Idempotent, StoreError>")]
pub struct BeginIdempotent {
    pub key: String,
    pub fingerprint: String,
}

/// Write path → store, before Genesys is touched: claims the request's
/// `Idempotency-Key` (if any) and, when the request goes ahead, writes its
/// audit record as `pending` (the intent), in one transaction. Failing
/// here (disk full, file gone, locked) means the write is refused before
/// Genesys sees it.
#[derive(Message)]
#[rtype(result = "Result<Begun, StoreError>")]
pub struct BeginWrite {
    /// The attempt as known so far (`result` is replaced by `pending`).
    pub intent: AuditRecord,
    pub idempotency: Option<BeginIdempotent>,
}

/// Reply to [`BeginWrite`].
#[derive(Debug, Clone, PartialEq)]
pub struct Begun {
    /// What the key says ([`Idempotent::New`] without a key).
    pub idempotent: Idempotent,
    /// The intent's audit id ([`CommitWrite::audit_id`]); `None` unless `New`.
    pub audit_id: Option<i64>,
}

fn pending(r: &AuditRecord) -> AuditRecord {
    let mut intent = r.clone();
    intent.result = "pending".into();
    intent.status = 0;
    intent
}

impl Handler<BeginWrite> for Store {
    type Result = Result<Begun, StoreError>;

    fn handle(&mut self, m: BeginWrite, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Begin, |db, recovering| {
            let idempotent = match &m.idempotency {
                Some(b) => db.begin_idempotent(recovering, b)?,
                None => Idempotent::New,
            };
            let audit_id = if idempotent == Idempotent::New {
                Some(db.append_audit(&pending(&m.intent))?)
            } else {
                None
            };
            Ok(Begun {
                idempotent,
                audit_id,
            })
        })
    }
}

/// Bulk writes → store, before Genesys: the intents of one chunk (audit
/// records written `pending`), in one transaction; replies with their ids.
#[derive(Message)]
#[rtype(result = "Result<Vec<i64>, StoreError>")]
pub struct BeginIntents(pub Vec<AuditRecord>);

impl Handler<BeginIntents> for Store {
    type Result = Result<Vec<i64>, StoreError>;

    fn handle(&mut self, m: BeginIntents, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Begin, |db, _| {
            m.0.iter().map(|r| db.append_audit(&pending(r))).collect()
        })
    }
}

/// The keys a previous run left in flight and not settled yet.
#[derive(Message)]
#[rtype(result = "Vec<InFlightKey>")]
pub struct InFlightKeys;

impl Handler<InFlightKeys> for Store {
    type Result = Vec<InFlightKey>;

    fn handle(&mut self, _: InFlightKeys, _: &mut SyncContext<Self>) -> Self::Result {
        let mut v: Vec<InFlightKey> = self.recovering.values().cloned().collect();
        v.sort_by_key(|a| a.created);
        v
    }
}

/// With PostgreSQL, looks again for keys (and intents) left in flight
/// longer than [`STALE_AFTER`] by a node that is gone, adds them to those
/// to settle, and replies with every key not settled yet. With SQLite the
/// start-up found them all: replies with those not settled yet.
#[derive(Message)]
#[rtype(result = "Result<Vec<InFlightKey>, StoreError>")]
pub struct ClaimStale;

impl Handler<ClaimStale> for Store {
    type Result = Result<Vec<InFlightKey>, StoreError>;

    fn handle(&mut self, _: ClaimStale, ctx: &mut SyncContext<Self>) -> Self::Result {
        if self.cfg.is_postgres() {
            for (k, v) in self.take_over()? {
                self.recovering.entry(k).or_insert(v);
            }
        }
        Ok(self.handle(InFlightKeys, ctx))
    }
}

/// Settles a key left in flight by a previous run: its answer (and the
/// audit record and lease that go with it), in one transaction; the key
/// then answers like any finished one.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SettleKey {
    pub key: String,
    /// The answer remembered for the key.
    pub outcome: (u16, String),
    pub audit: AuditRecord,
    pub lease: Option<PutLease>,
}

impl Handler<SettleKey> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: SettleKey, _: &mut SyncContext<Self>) -> Self::Result {
        let r = self.write(Op::Recovery, |db, _| {
            if let Some(l) = &m.lease {
                db.put_lease(l)?;
            }
            db.append_audit(&m.audit)?;
            db.finish_idempotent(&FinishIdempotent {
                key: m.key.clone(),
                outcome: Some(m.outcome.clone()),
            })
        });
        if r.is_ok() {
            self.recovering.remove(&m.key);
        }
        r
    }
}

/// Records the outcome for an idempotency key (or forgets the key, when
/// `status` is `None`, so that a failed attempt can be retried).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FinishIdempotent {
    pub key: String,
    pub outcome: Option<(u16, String)>,
}

impl Handler<FinishIdempotent> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: FinishIdempotent, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Commit, |db, _| db.finish_idempotent(&m))
    }
}

/// Sets (or with `None`, clears) an agent's lease.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutLease {
    pub agent_id: String,
    pub lease: Option<Lease>,
}

impl Handler<PutLease> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: PutLease, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Lease, |db, _| db.put_lease(&m))
    }
}

/// Write path → store: what one presence write leaves behind, in one
/// transaction (one round trip): the lease change, the audit record and
/// the answer remembered for its `Idempotency-Key`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct CommitWrite {
    /// Set or clear the agent's lease; `None` leaves leases alone.
    pub lease: Option<PutLease>,
    /// The attempt, whatever its outcome.
    pub audit: AuditRecord,
    /// The intent record [`BeginWrite`] wrote (updated in place); `None`
    /// appends `audit` as a new record.
    pub audit_id: Option<i64>,
    /// The answer for the request's `Idempotency-Key`, if it had one.
    pub idempotency: Option<FinishIdempotent>,
}

impl Handler<CommitWrite> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: CommitWrite, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Commit, |db, _| {
            if let Some(l) = &m.lease {
                db.put_lease(l)?;
            }
            match m.audit_id {
                Some(id) => db.update_audit(id, &m.audit)?,
                None => {
                    db.append_audit(&m.audit)?;
                }
            }
            if let Some(f) = &m.idempotency {
                db.finish_idempotent(f)?;
            }
            Ok(())
        })
    }
}

/// Lease loop → store: takes a lease that ran out (removes exactly that
/// row); `true` when this caller got it. Of several nodes sharing a store,
/// one gets it and sets the fallback; a failed fallback puts it back.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct TakeLease(pub Lease);

impl Handler<TakeLease> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, m: TakeLease, _: &mut SyncContext<Self>) -> Self::Result {
        self.write(Op::Lease, |db, _| db.take_lease(&m.0))
    }
}

/// Every lease (active or run out).
#[derive(Message)]
#[rtype(result = "Result<Vec<Lease>, StoreError>")]
pub struct ListLeases;

impl Handler<ListLeases> for Store {
    type Result = Result<Vec<Lease>, StoreError>;

    fn handle(&mut self, _: ListLeases, _: &mut SyncContext<Self>) -> Self::Result {
        self.conn.run(|db| db.list_leases())
    }
}

/// Tickets handler → store: keeps a one-time stream ticket until it is
/// taken or `expires_ms` (ms since 1970) passes. `hash` is the hex SHA-256
/// of the ticket ([`crate::auth::ticket_hash`]); the ticket itself is never
/// stored. `principal` is its holder as JSON. Failures feed [`StoreHealth`]
/// (op `ticket`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutTicket {
    pub hash: String,
    pub principal: String,
    pub expires_ms: i64,
}

impl Handler<PutTicket> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: PutTicket, _: &mut SyncContext<Self>) -> Self::Result {
        let now = Utc::now().timestamp_millis();
        self.write(Op::Ticket, |db, _| {
            db.put_ticket(&m.hash, &m.principal, m.expires_ms, now)
        })
    }
}

/// Route policy → store: takes the ticket whose SHA-256 is `hash`, once
/// across every node sharing the store. `Some(principal JSON)` when it was
/// there and not expired; `None` when unknown, already used or expired
/// (an expired row is deleted too).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct TakeTicket {
    pub hash: String,
}

impl Handler<TakeTicket> for Store {
    type Result = Result<Option<String>, StoreError>;

    fn handle(&mut self, m: TakeTicket, _: &mut SyncContext<Self>) -> Self::Result {
        let now = Utc::now().timestamp_millis();
        self.write(Op::Ticket, |db, _| db.take_ticket(&m.hash, now))
    }
}

/// Refuses a write once the SQLite file this process opened (`opened`:
/// device and inode at open) was deleted, renamed or replaced, or once any
/// store actor noticed that (`health`): writes to the orphaned file would
/// be lost at the next restart. The store actor and the journal (audit,
/// keys, leases; presence journal, webhook outbox) both call it before
/// every write. Nothing to check on PostgreSQL or `:memory:`.
pub(crate) fn check_file_identity(
    cfg: &StoreConfig,
    opened: Option<(u64, u64)>,
    health: &StoreHealth,
) -> Result<(), StoreError> {
    if let Err(e) = health.file_ok() {
        return Err(StoreError(e));
    }
    let (Some(opened), Some(now)) = (opened, cfg.file_id()) else {
        return Ok(());
    };
    let why = match now {
        Ok(id) if id == opened => return Ok(()),
        Ok(_) => "was replaced by another file",
        Err(_) => "was deleted or renamed",
    };
    let why = format!(
        "the store file {} {why} while the gateway had it open; restart the gateway (writes are refused until then)",
        cfg.path.display()
    );
    health.replaced(why.clone());
    Err(StoreError(why))
}
