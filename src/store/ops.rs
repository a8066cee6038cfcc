//! What the store actor asks of its backend ([`StoreOps`]), with one
//! implementation per backend: [`Lite`] (SQLite, `?N` parameters) and
//! [`Pg`] (PostgreSQL, `$N`). The handlers in [`super`] decide what to do
//! and in which transaction; these only speak SQL.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use postgres::GenericClient;
use rusqlite::{params, Connection, OptionalExtension};

use super::backend::Conn;
use super::{
    AuditRecord, BeginIdempotent, FinishIdempotent, Idempotent, InFlightKey, Lease, PutLease,
    QueryAudit, StoreError,
};

/// The store's SQL, per backend.
pub trait StoreOps {
    /// Appends an audit record; returns its id.
    fn append_audit(&mut self, r: &AuditRecord) -> Result<i64, StoreError>;
    /// Rewrites record `id` (an intent) with the attempt's outcome.
    fn update_audit(&mut self, id: i64, r: &AuditRecord) -> Result<(), StoreError>;
    /// Claims a key (or says what it holds).
    fn begin_idempotent(
        &mut self,
        recovering: &HashMap<String, InFlightKey>,
        m: &BeginIdempotent,
    ) -> Result<Idempotent, StoreError>;
    /// Records (or forgets) a key's answer.
    fn finish_idempotent(&mut self, m: &FinishIdempotent) -> Result<(), StoreError>;
    /// Sets or clears a lease.
    fn put_lease(&mut self, m: &PutLease) -> Result<(), StoreError>;
    /// Removes exactly this lease (agent, presence, expiry); `true` when it
    /// was there, so that of the nodes sharing a store one runs it out.
    fn take_lease(&mut self, l: &Lease) -> Result<bool, StoreError>;
    /// Every lease, soonest expiry first.
    fn list_leases(&mut self) -> Result<Vec<Lease>, StoreError>;
    /// Audit records matching `q`, newest first, and their total.
    fn query_audit(&mut self, q: &QueryAudit) -> Result<(Vec<AuditRecord>, u64), StoreError>;
    /// Keys without an answer, claimed before `before` (RFC 3339; `None`: all).
    fn in_flight(&mut self, before: Option<&str>) -> Result<Vec<InFlightKey>, StoreError>;
    /// Marks `pending` audit records begun before `before` (`None`: all)
    /// `interrupted` with `detail`; returns how many.
    fn mark_interrupted(&mut self, detail: &str, before: Option<&str>) -> Result<u64, StoreError>;
    /// Deletes audit records and keys older than the cuts (RFC 3339), and
    /// tickets expired by `now_ms` (ms since 1970).
    fn prune(
        &mut self,
        audit_cut: &str,
        idempotency_cut: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Stores a one-time ticket: `hash` is the hex SHA-256 of the ticket
    /// (never the ticket), `principal` its holder as JSON, `expires_ms` its
    /// expiry (ms since 1970). Drops tickets expired by `now_ms` first.
    fn put_ticket(
        &mut self,
        hash: &str,
        principal: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Takes a ticket, once: deletes the row of `hash` and returns its
    /// principal JSON when it had not expired by `now_ms` (`None`: unknown,
    /// already taken, or expired). One statement (`DELETE … RETURNING`), so
    /// of two nodes taking one ticket at once only one gets it.
    fn take_ticket(&mut self, hash: &str, now_ms: i64) -> Result<Option<String>, StoreError>;
    /// The health probe's one-row write.
    fn probe(&mut self, now_ms: i64) -> Result<(), StoreError>;
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

impl Conn {
    /// Runs `f` in one write transaction (SQLite: `BEGIN IMMEDIATE`).
    pub fn tx<T>(
        &mut self,
        f: impl FnOnce(&mut dyn StoreOps) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let out = f(&mut Lite(&tx))?;
                tx.commit()?;
                Ok(out)
            }
            Conn::Pg(..) => {
                self.reopen_if_closed()?;
                let Conn::Pg(c, _, _) = self else {
                    unreachable!("matched above")
                };
                let mut tx = c.transaction()?;
                let out = f(&mut Pg(&mut tx))?;
                tx.commit()?;
                Ok(out)
            }
        }
    }

    /// Runs `f` outside a transaction (each statement on its own).
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut dyn StoreOps) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => f(&mut Lite(c)),
            Conn::Pg(..) => {
                self.reopen_if_closed()?;
                let Conn::Pg(c, _, _) = self else {
                    unreachable!("matched above")
                };
                f(&mut Pg(&mut **c))
            }
        }
    }
}

/// SQLite.
pub struct Lite<'a>(pub &'a Connection);

impl StoreOps for Lite<'_> {
    fn append_audit(&mut self, r: &AuditRecord) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO audit (at, actor, agent_id, from_presence, to_presence, reason, result, status, correlation_id, detail, node)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![ts(r.at), r.actor, r.agent_id, r.from_presence, r.to_presence, r.reason, r.result, r.status, r.correlation_id, r.detail, r.node],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn update_audit(&mut self, id: i64, r: &AuditRecord) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE audit SET actor = ?2, agent_id = ?3, from_presence = ?4, to_presence = ?5, reason = ?6,
             result = ?7, status = ?8, correlation_id = ?9, detail = ?10 WHERE id = ?1",
            params![id, r.actor, r.agent_id, r.from_presence, r.to_presence, r.reason, r.result, r.status, r.correlation_id, r.detail],
        )?;
        Ok(())
    }

    fn begin_idempotent(
        &mut self,
        recovering: &HashMap<String, InFlightKey>,
        m: &BeginIdempotent,
    ) -> Result<Idempotent, StoreError> {
        let existing: Option<(String, Option<u16>, Option<String>)> = self
            .0
            .query_row(
                "SELECT fingerprint, status, body FROM idempotency WHERE key = ?1",
                params![m.key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(match existing {
            None => {
                self.0.execute(
                    "INSERT INTO idempotency (key, fingerprint, created) VALUES (?1, ?2, ?3)",
                    params![m.key, m.fingerprint, Utc::now().to_rfc3339()],
                )?;
                Idempotent::New
            }
            Some((fp, _, _)) if fp != m.fingerprint => Idempotent::Mismatch,
            Some((_, Some(status), Some(body))) => Idempotent::Done(status, body),
            Some(_) if recovering.contains_key(&m.key) => Idempotent::Recovering,
            Some(_) => Idempotent::Pending,
        })
    }

    fn finish_idempotent(&mut self, m: &FinishIdempotent) -> Result<(), StoreError> {
        match &m.outcome {
            Some((status, body)) => self.0.execute(
                "UPDATE idempotency SET status = ?2, body = ?3 WHERE key = ?1",
                params![m.key, status, body],
            )?,
            None => self
                .0
                .execute("DELETE FROM idempotency WHERE key = ?1", params![m.key])?,
        };
        Ok(())
    }

    fn put_lease(&mut self, m: &PutLease) -> Result<(), StoreError> {
        match &m.lease {
            Some(l) => self.0.execute(
                "INSERT INTO leases (agent_id, definition_id, expires_at, fallback_definition_id, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(agent_id) DO UPDATE SET definition_id = ?2, expires_at = ?3, fallback_definition_id = ?4, actor = ?5",
                params![l.agent_id, l.definition_id, l.expires_at.to_rfc3339(), l.fallback_definition_id, l.actor],
            )?,
            None => self
                .0
                .execute("DELETE FROM leases WHERE agent_id = ?1", params![m.agent_id])?,
        };
        Ok(())
    }

    fn take_lease(&mut self, l: &Lease) -> Result<bool, StoreError> {
        Ok(self.0.execute(
            "DELETE FROM leases WHERE agent_id = ?1 AND definition_id = ?2 AND expires_at = ?3",
            params![l.agent_id, l.definition_id, l.expires_at.to_rfc3339()],
        )? == 1)
    }

    fn list_leases(&mut self) -> Result<Vec<Lease>, StoreError> {
        let mut stmt = self.0.prepare(
            "SELECT agent_id, definition_id, expires_at, fallback_definition_id, actor FROM leases ORDER BY expires_at",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Lease {
                    agent_id: r.get(0)?,
                    definition_id: r.get(1)?,
                    expires_at: parse_ts(&r.get::<_, String>(2)?),
                    fallback_definition_id: r.get(3)?,
                    actor: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn query_audit(&mut self, q: &QueryAudit) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let clause = "(?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR result = ?3)
                      AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5)
                      AND (?6 IS NULL OR agent_id IN (SELECT value FROM json_each(?6)))";
        let allowed = q
            .agent_ids
            .as_ref()
            .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()));
        let (from, to) = (q.from.map(ts), q.to.map(ts));
        let total: i64 = self.0.query_row(
            &format!("SELECT COUNT(*) FROM audit WHERE {clause}"),
            params![q.agent_id, q.actor, q.result, from, to, allowed],
            |r| r.get(0),
        )?;
        let mut stmt = self.0.prepare(&format!(
            "SELECT id, at, actor, agent_id, from_presence, to_presence, reason, result, status, correlation_id, detail, node
             FROM audit WHERE {clause} ORDER BY id DESC LIMIT ?7 OFFSET ?8"
        ))?;
        let rows = stmt
            .query_map(
                params![q.agent_id, q.actor, q.result, from, to, allowed, q.limit, q.offset],
                |r| {
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        at: parse_ts(&r.get::<_, String>(1)?),
                        actor: r.get(2)?,
                        agent_id: r.get(3)?,
                        from_presence: r.get(4)?,
                        to_presence: r.get(5)?,
                        reason: r.get(6)?,
                        result: r.get(7)?,
                        status: r.get(8)?,
                        correlation_id: r.get(9)?,
                        detail: r.get(10)?,
                        node: r.get(11)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total.max(0) as u64))
    }

    fn in_flight(&mut self, before: Option<&str>) -> Result<Vec<InFlightKey>, StoreError> {
        let mut stmt = self.0.prepare(
            "SELECT key, fingerprint, created FROM idempotency
             WHERE status IS NULL AND (?1 IS NULL OR created < ?1)",
        )?;
        let keys = stmt
            .query_map(params![before], |r| {
                Ok(InFlightKey {
                    key: r.get(0)?,
                    fingerprint: r.get(1)?,
                    created: parse_ts(&r.get::<_, String>(2)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(keys)
    }

    fn mark_interrupted(&mut self, detail: &str, before: Option<&str>) -> Result<u64, StoreError> {
        Ok(self.0.execute(
            "UPDATE audit SET result = 'interrupted', detail = ?1
             WHERE result = 'pending' AND (?2 IS NULL OR at < ?2)",
            params![detail, before],
        )? as u64)
    }

    fn prune(
        &mut self,
        audit_cut: &str,
        idempotency_cut: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.0
            .execute("DELETE FROM audit WHERE at < ?1", params![audit_cut])?;
        self.0.execute(
            "DELETE FROM idempotency WHERE created < ?1",
            params![idempotency_cut],
        )?;
        self.0.execute(
            "DELETE FROM tickets WHERE expires_ms <= ?1",
            params![now_ms],
        )?;
        Ok(())
    }

    fn put_ticket(
        &mut self,
        hash: &str,
        principal: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM tickets WHERE expires_ms <= ?1",
            params![now_ms],
        )?;
        self.0.execute(
            "INSERT INTO tickets (hash, principal, expires_ms) VALUES (?1, ?2, ?3)",
            params![hash, principal, expires_ms],
        )?;
        Ok(())
    }

    fn take_ticket(&mut self, hash: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String, i64)> = self
            .0
            .query_row(
                "DELETE FROM tickets WHERE hash = ?1 RETURNING principal, expires_ms",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(p, exp)| (exp > now_ms).then_some(p)))
    }

    fn probe(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO store_probe (id, at_ms) VALUES (1, ?1)
             ON CONFLICT(id) DO UPDATE SET at_ms = ?1",
            params![now_ms],
        )?;
        Ok(())
    }
}

/// PostgreSQL (a client or a transaction).
pub struct Pg<'a, C: GenericClient>(pub &'a mut C);

fn opt_i32(v: Option<u16>) -> Option<i32> {
    v.map(i32::from)
}

impl<C: GenericClient> StoreOps for Pg<'_, C> {
    fn append_audit(&mut self, r: &AuditRecord) -> Result<i64, StoreError> {
        let row = self.0.query_one(
            "INSERT INTO audit (at, actor, agent_id, from_presence, to_presence, reason, result, status, correlation_id, detail, node)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            &[&ts(r.at), &r.actor, &r.agent_id, &r.from_presence, &r.to_presence, &r.reason, &r.result, &i32::from(r.status), &r.correlation_id, &r.detail, &r.node],
        )?;
        Ok(row.get(0))
    }

    fn update_audit(&mut self, id: i64, r: &AuditRecord) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE audit SET actor = $2, agent_id = $3, from_presence = $4, to_presence = $5, reason = $6,
             result = $7, status = $8, correlation_id = $9, detail = $10 WHERE id = $1",
            &[&id, &r.actor, &r.agent_id, &r.from_presence, &r.to_presence, &r.reason, &r.result, &i32::from(r.status), &r.correlation_id, &r.detail],
        )?;
        Ok(())
    }

    fn begin_idempotent(
        &mut self,
        recovering: &HashMap<String, InFlightKey>,
        m: &BeginIdempotent,
    ) -> Result<Idempotent, StoreError> {
        // Insert first: of two nodes claiming one key at once, one wins.
        let inserted = self.0.execute(
            "INSERT INTO idempotency (key, fingerprint, created) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING",
            &[&m.key, &m.fingerprint, &Utc::now().to_rfc3339()],
        )?;
        if inserted == 1 {
            return Ok(Idempotent::New);
        }
        let r = self.0.query_one(
            "SELECT fingerprint, status, body FROM idempotency WHERE key = $1",
            &[&m.key],
        )?;
        let (fp, status, body): (String, Option<i32>, Option<String>) =
            (r.get(0), r.get(1), r.get(2));
        Ok(match (status, body) {
            _ if fp != m.fingerprint => Idempotent::Mismatch,
            (Some(s), Some(b)) => Idempotent::Done(s.clamp(0, 999) as u16, b),
            _ if recovering.contains_key(&m.key) => Idempotent::Recovering,
            _ => Idempotent::Pending,
        })
    }

    fn finish_idempotent(&mut self, m: &FinishIdempotent) -> Result<(), StoreError> {
        match &m.outcome {
            Some((status, body)) => self.0.execute(
                "UPDATE idempotency SET status = $2, body = $3 WHERE key = $1",
                &[&m.key, &opt_i32(Some(*status)), body],
            )?,
            None => self
                .0
                .execute("DELETE FROM idempotency WHERE key = $1", &[&m.key])?,
        };
        Ok(())
    }

    fn put_lease(&mut self, m: &PutLease) -> Result<(), StoreError> {
        match &m.lease {
            Some(l) => self.0.execute(
                "INSERT INTO leases (agent_id, definition_id, expires_at, fallback_definition_id, actor)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (agent_id) DO UPDATE SET definition_id = $2, expires_at = $3, fallback_definition_id = $4, actor = $5",
                &[&l.agent_id, &l.definition_id, &l.expires_at.to_rfc3339(), &l.fallback_definition_id, &l.actor],
            )?,
            None => self
                .0
                .execute("DELETE FROM leases WHERE agent_id = $1", &[&m.agent_id])?,
        };
        Ok(())
    }

    fn take_lease(&mut self, l: &Lease) -> Result<bool, StoreError> {
        Ok(self.0.execute(
            "DELETE FROM leases WHERE agent_id = $1 AND definition_id = $2 AND expires_at = $3",
            &[&l.agent_id, &l.definition_id, &l.expires_at.to_rfc3339()],
        )? == 1)
    }

    fn list_leases(&mut self) -> Result<Vec<Lease>, StoreError> {
        let rows = self.0.query(
            "SELECT agent_id, definition_id, expires_at, fallback_definition_id, actor FROM leases ORDER BY expires_at",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Lease {
                agent_id: r.get(0),
                definition_id: r.get(1),
                expires_at: parse_ts(r.get(2)),
                fallback_definition_id: r.get(3),
                actor: r.get(4),
            })
            .collect())
    }

    fn query_audit(&mut self, q: &QueryAudit) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let clause = "($1::text IS NULL OR agent_id = $1) AND ($2::text IS NULL OR actor = $2)
                      AND ($3::text IS NULL OR result = $3)
                      AND ($4::text IS NULL OR at >= $4) AND ($5::text IS NULL OR at < $5)
                      AND ($6::text[] IS NULL OR agent_id = ANY($6))";
        let (from, to) = (q.from.map(ts), q.to.map(ts));
        let total: i64 = self
            .0
            .query_one(
                &format!("SELECT COUNT(*) FROM audit WHERE {clause}"),
                &[&q.agent_id, &q.actor, &q.result, &from, &to, &q.agent_ids],
            )?
            .get(0);
        let rows = self.0.query(
            &format!(
                "SELECT id, at, actor, agent_id, from_presence, to_presence, reason, result, status, correlation_id, detail, node
                 FROM audit WHERE {clause} ORDER BY id DESC LIMIT $7 OFFSET $8"
            ),
            &[&q.agent_id, &q.actor, &q.result, &from, &to, &q.agent_ids, &i64::from(q.limit), &i64::from(q.offset)],
        )?;
        let records = rows
            .iter()
            .map(|r| AuditRecord {
                id: r.get(0),
                at: parse_ts(r.get(1)),
                actor: r.get(2),
                agent_id: r.get(3),
                from_presence: r.get(4),
                to_presence: r.get(5),
                reason: r.get(6),
                result: r.get(7),
                status: r.get::<_, i32>(8).clamp(0, 999) as u16,
                correlation_id: r.get(9),
                detail: r.get(10),
                node: r.get(11),
            })
            .collect();
        Ok((records, total.max(0) as u64))
    }

    fn in_flight(&mut self, before: Option<&str>) -> Result<Vec<InFlightKey>, StoreError> {
        let rows = self.0.query(
            "SELECT key, fingerprint, created FROM idempotency
             WHERE status IS NULL AND ($1::text IS NULL OR created < $1)",
            &[&before],
        )?;
        Ok(rows
            .iter()
            .map(|r| InFlightKey {
                key: r.get(0),
                fingerprint: r.get(1),
                created: parse_ts(r.get(2)),
            })
            .collect())
    }

    fn mark_interrupted(&mut self, detail: &str, before: Option<&str>) -> Result<u64, StoreError> {
        Ok(self.0.execute(
            "UPDATE audit SET result = 'interrupted', detail = $1
             WHERE result = 'pending' AND ($2::text IS NULL OR at < $2)",
            &[&detail, &before],
        )?)
    }

    fn prune(
        &mut self,
        audit_cut: &str,
        idempotency_cut: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.0
            .execute("DELETE FROM audit WHERE at < $1", &[&audit_cut])?;
        self.0.execute(
            "DELETE FROM idempotency WHERE created < $1",
            &[&idempotency_cut],
        )?;
        self.0
            .execute("DELETE FROM tickets WHERE expires_ms <= $1", &[&now_ms])?;
        Ok(())
    }

    fn put_ticket(
        &mut self,
        hash: &str,
        principal: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.0
            .execute("DELETE FROM tickets WHERE expires_ms <= $1", &[&now_ms])?;
        self.0.execute(
            "INSERT INTO tickets (hash, principal, expires_ms) VALUES ($1, $2, $3)",
            &[&hash, &principal, &expires_ms],
        )?;
        Ok(())
    }

    fn take_ticket(&mut self, hash: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        let row = self.0.query_opt(
            "DELETE FROM tickets WHERE hash = $1 RETURNING principal, expires_ms",
            &[&hash],
        )?;
        Ok(row.and_then(|r| {
            let (p, exp): (String, i64) = (r.get(0), r.get(1));
            (exp > now_ms).then_some(p)
        }))
    }

    fn probe(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO store_probe (id, at_ms) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET at_ms = $1",
            &[&now_ms],
        )?;
        Ok(())
    }
}
