//! Embedded persistence: one SQLite file (design.md "Persistence") holding
//! the audit log of presence writes, idempotency records, presence leases,
//! and the presence journal. Nothing acknowledged is lost on a crash: every
//! write is committed before the caller hears back (WAL, `synchronous=FULL`).
//!
//! [`Store`] is an actix `SyncActor` on its own thread (SQLite calls block);
//! everything else talks to it through messages.

pub mod journal;

use std::path::{Path, PathBuf};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Store settings (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file (created if missing). `:memory:` keeps nothing across restarts.
    pub path: PathBuf,
    /// Days of audit records kept.
    pub audit_retention_days: u32,
    /// Hours an `Idempotency-Key` is remembered.
    pub idempotency_hours: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("presence-gateway.db"),
            audit_retention_days: 90,
            idempotency_hours: 24,
        }
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), String> {
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
        Ok(())
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
}

pub struct Store {
    conn: Connection,
    cfg: StoreConfig,
}

impl Store {
    /// Opens (creating) the database and its schema.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        let conn = if cfg.path == Path::new(":memory:") {
            Connection::open_in_memory()?
        } else {
            if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
            }
            Connection::open(&cfg.path)?
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS audit (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at TEXT NOT NULL, actor TEXT NOT NULL, agent_id TEXT NOT NULL,
                 from_presence TEXT, to_presence TEXT NOT NULL, reason TEXT,
                 result TEXT NOT NULL, status INTEGER NOT NULL,
                 correlation_id TEXT, detail TEXT);
             CREATE INDEX IF NOT EXISTS audit_agent ON audit(agent_id, at);
             CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
             CREATE TABLE IF NOT EXISTS idempotency (
                 key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, created TEXT NOT NULL,
                 status INTEGER, body TEXT);
             CREATE TABLE IF NOT EXISTS leases (
                 agent_id TEXT PRIMARY KEY, definition_id TEXT NOT NULL,
                 expires_at TEXT NOT NULL, fallback_definition_id TEXT NOT NULL, actor TEXT NOT NULL);",
        )?;
        Ok(Store { conn, cfg })
    }

    /// Starts the store on its own thread.
    pub fn start(cfg: StoreConfig) -> Result<Addr<Store>, StoreError> {
        // Open once here so a bad path fails start-up with its reason.
        let probe = Store::open(cfg.clone())?;
        drop(probe);
        Ok(SyncArbiter::start(1, move || {
            // unwrap: the same config opened a moment ago; failing now means
            // the disk vanished, and the store cannot run without it
            Store::open(cfg.clone()).expect("reopen the store database")
        }))
    }

    fn prune(&self) -> Result<(), StoreError> {
        let audit_cut =
            Utc::now() - chrono::Duration::days(i64::from(self.cfg.audit_retention_days));
        let idem_cut = Utc::now() - chrono::Duration::hours(i64::from(self.cfg.idempotency_hours));
        self.conn.execute(
            "DELETE FROM audit WHERE at < ?1",
            params![audit_cut.to_rfc3339()],
        )?;
        self.conn.execute(
            "DELETE FROM idempotency WHERE created < ?1",
            params![idem_cut.to_rfc3339()],
        )?;
        Ok(())
    }
}

impl Actor for Store {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        if let Err(e) = self.prune() {
            tracing::warn!(error = %e, "pruning the store failed");
        }
    }
}

/// Appends an audit record; returns its id.
#[derive(Message)]
#[rtype(result = "Result<i64, StoreError>")]
pub struct AppendAudit(pub AuditRecord);

fn append_audit(conn: &Connection, r: &AuditRecord) -> Result<i64, StoreError> {
    conn.execute(
            "INSERT INTO audit (at, actor, agent_id, from_presence, to_presence, reason, result, status, correlation_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), r.actor, r.agent_id, r.from_presence, r.to_presence, r.reason, r.result, r.status, r.correlation_id, r.detail],
        )?;
    Ok(conn.last_insert_rowid())
}

impl Handler<AppendAudit> for Store {
    type Result = Result<i64, StoreError>;

    fn handle(&mut self, AppendAudit(r): AppendAudit, _: &mut SyncContext<Self>) -> Self::Result {
        append_audit(&self.conn, &r)
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
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let clause = "(?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR result = ?3)
                      AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5)
                      AND (?6 IS NULL OR agent_id IN (SELECT value FROM json_each(?6)))";
        let allowed = q
            .agent_ids
            .as_ref()
            .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()));
        let args = params![
            q.agent_id,
            q.actor,
            q.result,
            q.from.map(fmt),
            q.to.map(fmt),
            allowed
        ];
        let total: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM audit WHERE {clause}"),
            args,
            |r| r.get(0),
        )?;
        let total = total.max(0) as u64;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, at, actor, agent_id, from_presence, to_presence, reason, result, status, correlation_id, detail
             FROM audit WHERE {clause} ORDER BY id DESC LIMIT ?7 OFFSET ?8"
        ))?;
        let fmt2 = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let rows = stmt
            .query_map(
                params![
                    q.agent_id,
                    q.actor,
                    q.result,
                    q.from.map(fmt2),
                    q.to.map(fmt2),
                    allowed,
                    q.limit,
                    q.offset
                ],
                |r| {
                    let at: String = r.get(1)?;
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        at: DateTime::parse_from_rfc3339(&at)
                            .map(|d| d.with_timezone(&Utc))
                            .unwrap_or_default(),
                        actor: r.get(2)?,
                        agent_id: r.get(3)?,
                        from_presence: r.get(4)?,
                        to_presence: r.get(5)?,
                        reason: r.get(6)?,
                        result: r.get(7)?,
                        status: r.get(8)?,
                        correlation_id: r.get(9)?,
                        detail: r.get(10)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total))
    }
}

/// Claims an idempotency key for a request fingerprint.
#[derive(Message)]
#[rtype(result = "Result<Idempotent, StoreError>")]
pub struct BeginIdempotent {
    pub key: String,
    pub fingerprint: String,
}

impl Handler<BeginIdempotent> for Store {
    type Result = Result<Idempotent, StoreError>;

    fn handle(&mut self, m: BeginIdempotent, _: &mut SyncContext<Self>) -> Self::Result {
        let existing: Option<(String, Option<u16>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT fingerprint, status, body FROM idempotency WHERE key = ?1",
                params![m.key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(match existing {
            None => {
                self.conn.execute(
                    "INSERT INTO idempotency (key, fingerprint, created) VALUES (?1, ?2, ?3)",
                    params![m.key, m.fingerprint, Utc::now().to_rfc3339()],
                )?;
                Idempotent::New
            }
            Some((fp, _, _)) if fp != m.fingerprint => Idempotent::Mismatch,
            Some((_, Some(status), Some(body))) => Idempotent::Done(status, body),
            Some(_) => Idempotent::Pending,
        })
    }
}

/// Records the outcome for an idempotency key (or forgets the key, when
/// `status` is `None`, so that a failed attempt can be retried).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FinishIdempotent {
    pub key: String,
    pub outcome: Option<(u16, String)>,
}

impl Handler<FinishIdempotent> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: FinishIdempotent, _: &mut SyncContext<Self>) -> Self::Result {
        finish_idempotent(&self.conn, &m)
    }
}

fn finish_idempotent(conn: &Connection, m: &FinishIdempotent) -> Result<(), StoreError> {
    match &m.outcome {
        Some((status, body)) => conn.execute(
            "UPDATE idempotency SET status = ?2, body = ?3 WHERE key = ?1",
            params![m.key, status, body],
        )?,
        None => conn.execute("DELETE FROM idempotency WHERE key = ?1", params![m.key])?,
    };
    Ok(())
}

/// Sets (or with `None`, clears) an agent's lease.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutLease {
    pub agent_id: String,
    pub lease: Option<Lease>,
}

impl Handler<PutLease> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: PutLease, _: &mut SyncContext<Self>) -> Self::Result {
        put_lease(&self.conn, &m)
    }
}

fn put_lease(conn: &Connection, m: &PutLease) -> Result<(), StoreError> {
    match &m.lease {
            Some(l) => conn.execute(
                "INSERT INTO leases (agent_id, definition_id, expires_at, fallback_definition_id, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(agent_id) DO UPDATE SET definition_id = ?2, expires_at = ?3, fallback_definition_id = ?4, actor = ?5",
                params![l.agent_id, l.definition_id, l.expires_at.to_rfc3339(), l.fallback_definition_id, l.actor],
            )?,
            None => conn.execute("DELETE FROM leases WHERE agent_id = ?1", params![m.agent_id])?,
        };
    Ok(())
}

/// Write path → store: what one presence write leaves behind, in one
/// transaction (one round trip): the lease change, the audit record and
/// the answer remembered for its `Idempotency-Key`.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct CommitWrite {
    /// Set or clear the agent's lease; `None` leaves leases alone.
    pub lease: Option<PutLease>,
    /// The attempt, whatever its outcome.
    pub audit: AuditRecord,
    /// The answer for the request's `Idempotency-Key`, if it had one.
    pub idempotency: Option<FinishIdempotent>,
}

impl Handler<CommitWrite> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, m: CommitWrite, _: &mut SyncContext<Self>) -> Self::Result {
        let tx = self.conn.unchecked_transaction()?;
        if let Some(l) = &m.lease {
            put_lease(&tx, l)?;
        }
        append_audit(&tx, &m.audit)?;
        if let Some(f) = &m.idempotency {
            finish_idempotent(&tx, f)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Every lease (active or run out).
#[derive(Message)]
#[rtype(result = "Result<Vec<Lease>, StoreError>")]
pub struct ListLeases;

impl Handler<ListLeases> for Store {
    type Result = Result<Vec<Lease>, StoreError>;

    fn handle(&mut self, _: ListLeases, _: &mut SyncContext<Self>) -> Self::Result {
        let mut stmt = self
            .conn
            .prepare("SELECT agent_id, definition_id, expires_at, fallback_definition_id, actor FROM leases ORDER BY expires_at")?;
        let rows = stmt
            .query_map([], |r| {
                let at: String = r.get(2)?;
                Ok(Lease {
                    agent_id: r.get(0)?,
                    definition_id: r.get(1)?,
                    expires_at: DateTime::parse_from_rfc3339(&at)
                        .map(|d| d.with_timezone(&Utc))
                        .unwrap_or_default(),
                    fallback_definition_id: r.get(3)?,
                    actor: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
