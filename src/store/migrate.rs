//! Versioned schema migrations of the store's SQLite file, run at start-up
//! by every connection that opens it ([`super::StoreConfig::connect`]).
//!
//! The file's `PRAGMA user_version` is the number of migrations applied;
//! each one runs once, in order, in a transaction taken with `BEGIN
//! IMMEDIATE` (so two connections opening the file at once do not both
//! apply it). Migration 1 is the schema as it was before versioning
//! (`CREATE … IF NOT EXISTS`), so files written by older releases are
//! adopted as they are. Append new migrations; never edit an applied one.

use rusqlite::Connection;

/// Every migration, in order (`user_version` = how many are applied).
pub const MIGRATIONS: &[&str] = &[
    // 1: audit, idempotency keys, leases, journal, webhook outbox.
    "CREATE TABLE IF NOT EXISTS audit (
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
         expires_at TEXT NOT NULL, fallback_definition_id TEXT NOT NULL, actor TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS journal (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         event_id TEXT NOT NULL UNIQUE,
         agent_id TEXT NOT NULL, kind TEXT NOT NULL, origin TEXT NOT NULL,
         at_ms INTEGER NOT NULL, observed_ms INTEGER NOT NULL,
         prev_state TEXT, prev_definition_id TEXT, prev_label TEXT, prev_since_ms INTEGER,
         state TEXT NOT NULL, definition_id TEXT, label TEXT,
         prev_duration_ms INTEGER, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
         body TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS journal_agent ON journal(agent_id, kind, at_ms);
     CREATE INDEX IF NOT EXISTS journal_observed ON journal(observed_ms);
     CREATE TABLE IF NOT EXISTS webhook_outbox (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         subscriber TEXT NOT NULL, agent_id TEXT NOT NULL,
         journal_id INTEGER NOT NULL,
         status TEXT NOT NULL DEFAULT 'pending',
         attempts INTEGER NOT NULL DEFAULT 0,
         next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
         last_error TEXT);
     CREATE INDEX IF NOT EXISTS outbox_heads ON webhook_outbox(subscriber, status, agent_id, id);",
    // 2: webhook claims (an attempt is counted before it is sent; a claimed
    // row is not handed out again until its claim runs out), and the
    // health probe's row.
    "ALTER TABLE webhook_outbox ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);",
    // 3: one-time stream tickets (the SHA-256 of the ticket, never the
    // ticket; the principal as JSON; expiry in ms since 1970).
    "CREATE TABLE IF NOT EXISTS tickets (
         hash TEXT PRIMARY KEY, principal TEXT NOT NULL, expires_ms INTEGER NOT NULL);
     CREATE INDEX IF NOT EXISTS tickets_expiry ON tickets(expires_ms);",
    // 4: the cluster node that received each audited request (docs/scaling.md).
    "ALTER TABLE audit ADD COLUMN node TEXT;",
];

/// Applies the migrations `conn`'s file lacks; returns the version reached.
pub fn migrate(conn: &Connection) -> rusqlite::Result<usize> {
    let current = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    let at = current(conn)?;
    if at as usize > MIGRATIONS.len() {
        // A newer release's schema: refuse rather than write to it blindly.
        return Err(rusqlite::Error::ToSqlConversionFailure(
            format!(
                "the store's schema is version {at}, newer than this release knows ({}); run the release that wrote it, or a newer one",
                MIGRATIONS.len()
            )
            .into(),
        ));
    }
    if at as usize == MIGRATIONS.len() {
        return Ok(MIGRATIONS.len());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let run = || -> rusqlite::Result<usize> {
        // Read again under the write lock: another connection may have won.
        let from = current(conn)?.max(0) as usize;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(from) {
            conn.execute_batch(m)?;
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        }
        Ok(MIGRATIONS.len())
    };
    match run() {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written before versioning (tables, `user_version` 0) is
    /// adopted; migrating twice changes nothing.
    #[test]
    fn adopts_unversioned_files_and_is_idempotent() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO webhook_outbox (subscriber, agent_id, journal_id, next_ms, created_ms) VALUES ('s', 'a', 1, 0, 0)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&conn).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&conn).unwrap(), MIGRATIONS.len());
        let claimed: i64 = conn
            .query_row("SELECT claimed FROM webhook_outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(claimed, 0);
    }
}
