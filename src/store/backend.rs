//! The two store backends behind one interface (the store's and the
//! journal's actor messages): SQLite, embedded, the default (`[store]
//! path`), and PostgreSQL (`[store] url = "postgres://…"`), for gateway
//! nodes that share one store.
//!
//! Each store actor ([`super::Store`], [`super::journal::Journal`]) owns
//! one [`Conn`] on its own thread and answers every message with the SQL
//! of its backend. PostgreSQL is reached with the `postgres` crate, the
//! synchronous face of `tokio-postgres` (same maintainers): the actors
//! already run on threads of their own, where a blocking client is the
//! natural fit, and a pool would add nothing to one connection per actor.
//!
//! PostgreSQL's schema is versioned like SQLite's ([`PG_MIGRATIONS`], a
//! `schema_version` table instead of `PRAGMA user_version`), migrated at
//! start-up under an advisory lock, so nodes starting together apply each
//! migration once.

use postgres::{Client, NoTls};

use super::{StoreConfig, StoreError};

/// Runs `f` on a thread of its own and waits for it: the PostgreSQL
/// client blocks on a runtime of its own, which may not start inside the
/// caller's (start-up runs on the actix system).
pub fn blocking<T: Send>(
    f: impl FnOnce() -> Result<T, StoreError> + Send,
) -> Result<T, StoreError> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(StoreError("the store's start-up thread panicked".into())))
    })
}

/// One connection to the store.
pub enum Conn {
    /// The embedded file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL database, its URL and the lock timeout in ms (to
    /// reconnect with the same session settings).
    Pg(Box<Client>, String, u64),
}

impl Conn {
    /// PostgreSQL: a connection the server closed (a restart, a failover,
    /// an idle timeout) is opened again before the next statement; the
    /// statement that found it closed failed (and its write was refused).
    pub fn reopen_if_closed(&mut self) -> Result<(), StoreError> {
        if let Conn::Pg(c, url, lock_ms) = self {
            if c.is_closed() {
                tracing::warn!(store = %redact(url), "the PostgreSQL connection was closed; reconnecting");
                **c = connect_pg_session(url, *lock_ms)?;
            }
        }
        Ok(())
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // `Display` of a server error is only "db error"; the source says what.
        match e.as_db_error() {
            Some(db) => StoreError(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError(e.to_string()),
        }
    }
}

/// PostgreSQL's migrations, in order (the same tables as SQLite's).
pub const PG_MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit (
         id BIGSERIAL PRIMARY KEY,
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
         id BIGSERIAL PRIMARY KEY,
         event_id TEXT NOT NULL UNIQUE,
         agent_id TEXT NOT NULL, kind TEXT NOT NULL, origin TEXT NOT NULL,
         at_ms BIGINT NOT NULL, observed_ms BIGINT NOT NULL,
         prev_state TEXT, prev_definition_id TEXT, prev_label TEXT, prev_since_ms BIGINT,
         state TEXT NOT NULL, definition_id TEXT, label TEXT,
         prev_duration_ms BIGINT, epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
         body TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS journal_agent ON journal(agent_id, kind, at_ms);
     CREATE INDEX IF NOT EXISTS journal_observed ON journal(observed_ms);
     CREATE TABLE IF NOT EXISTS webhook_outbox (
         id BIGSERIAL PRIMARY KEY,
         subscriber TEXT NOT NULL, agent_id TEXT NOT NULL,
         journal_id BIGINT NOT NULL,
         status TEXT NOT NULL DEFAULT 'pending',
         attempts INTEGER NOT NULL DEFAULT 0,
         next_ms BIGINT NOT NULL, created_ms BIGINT NOT NULL,
         last_error TEXT,
         claimed INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX IF NOT EXISTS outbox_heads ON webhook_outbox(subscriber, status, agent_id, id);
     CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at_ms BIGINT NOT NULL);",
    // 2: one-time stream tickets (SQLite's migration 3).
    "CREATE TABLE IF NOT EXISTS tickets (
         hash TEXT PRIMARY KEY, principal TEXT NOT NULL, expires_ms BIGINT NOT NULL);
     CREATE INDEX IF NOT EXISTS tickets_expiry ON tickets(expires_ms);",
    // 3: the cluster node that received each audited request (SQLite's migration 4).
    "ALTER TABLE audit ADD COLUMN IF NOT EXISTS node TEXT;",
];

/// Applies the migrations the database lacks; returns the version reached.
pub fn migrate_pg(c: &mut Client) -> Result<usize, postgres::Error> {
    let mut tx = c.transaction()?;
    // One node at a time (the key is arbitrary but fixed).
    tx.execute("SELECT pg_advisory_xact_lock(741900019)", &[])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i32 = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map_or(0, |r| r.get(0));
    if current == 0 {
        tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
    }
    for (i, m) in PG_MIGRATIONS
        .iter()
        .enumerate()
        .skip(current.max(0) as usize)
    {
        tx.batch_execute(m)?;
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&((i + 1) as i32)],
        )?;
    }
    tx.commit()?;
    Ok(PG_MIGRATIONS.len())
}

/// Opens a PostgreSQL connection to `url` and migrates its schema; errors
/// name the URL without its password.
pub fn connect_pg(url: &str) -> Result<Client, StoreError> {
    let named = |e: &dyn std::fmt::Display| StoreError(format!("cannot open {}: {e}", redact(url)));
    let mut c = Client::connect(url, NoTls).map_err(|e| named(&StoreError::from(e)))?;
    migrate_pg(&mut c).map_err(|e| named(&StoreError::from(e)))?;
    let at: i32 = c
        .query_one("SELECT version FROM schema_version", &[])
        .map_err(|e| named(&StoreError::from(e)))?
        .get(0);
    if at as usize > PG_MIGRATIONS.len() {
        // A newer release's schema: refuse rather than write to it blindly.
        return Err(named(&format!(
            "the store's schema is version {at}, newer than this release knows ({}); run the release that wrote it, or a newer one",
            PG_MIGRATIONS.len()
        )));
    }
    Ok(c)
}

/// [`connect_pg`] with the session settings every store connection uses:
/// a lock held elsewhere (an idle transaction, a migration) fails the
/// statement after `lock_ms`, as SQLite's busy timeout does, instead of
/// hanging the write; no statement, and no transaction left idle, lasts
/// longer than 30 s or six lock timeouts.
pub fn connect_pg_session(url: &str, lock_ms: u64) -> Result<Client, StoreError> {
    let mut c = connect_pg(url)?;
    let long_ms = lock_ms.saturating_mul(6).max(30_000);
    c.batch_execute(&format!(
        "SET lock_timeout = {lock_ms}; SET statement_timeout = {long_ms}; \
         SET idle_in_transaction_session_timeout = {long_ms}"
    ))
    .map_err(|e| {
        StoreError(format!(
            "cannot open {}: {}",
            redact(url),
            StoreError::from(e)
        ))
    })?;
    Ok(c)
}

/// `url` with any password replaced by `***` (for logs and errors): the
/// one in the user info (up to the last `@`, so an unencoded `@` in it
/// does not leak its tail) and any `password=` query parameter.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (host, query) = match hostpart.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (hostpart, None),
    };
    let mut out = format!("{scheme}://");
    if let Some(u) = userinfo {
        match u.split_once(':') {
            Some((name, _)) => out.push_str(&format!("{name}:***@")),
            None => out.push_str(&format!("{u}@")),
        }
    }
    out.push_str(host);
    if let Some(q) = query {
        let q: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&q.join("&"));
    }
    out
}

impl StoreConfig {
    /// The backend `url` selects: PostgreSQL for `postgres://`/`postgresql://`.
    pub fn is_postgres(&self) -> bool {
        self.url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }

    /// A connection of the configured backend, its schema up to date.
    pub fn open_conn(&self) -> Result<Conn, StoreError> {
        match &self.url {
            Some(url) if self.is_postgres() => Ok(Conn::Pg(
                Box::new(connect_pg_session(url, self.busy_timeout_ms)?),
                url.clone(),
                self.busy_timeout_ms,
            )),
            _ => Ok(Conn::Sqlite(self.connect()?)),
        }
    }

    /// Where the store is, for messages (the URL without its password, or the path).
    pub fn location(&self) -> String {
        match &self.url {
            Some(u) => redact(u),
            None => self.path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://gw:s3cret@db:5432/presence"),
            "postgres://gw:***@db:5432/presence"
        );
        assert_eq!(redact("postgres://db/presence"), "postgres://db/presence");
        assert_eq!(
            redact("postgres://root:pa@ss@127.0.0.1:1/x"),
            "postgres://root:***@127.0.0.1:1/x"
        );
        assert_eq!(
            redact("postgres://root:S3cret@h/x?sslmode=disable&password=Zpw2"),
            "postgres://root:***@h/x?sslmode=disable&password=***"
        );
        assert_eq!(
            redact("postgres://h/x?PASSWORD=Zpw2"),
            "postgres://h/x?PASSWORD=***"
        );
    }
}

/// A value bound to or read from a statement of either backend (what the
/// journal's SQL needs: integers, text, booleans, NULL).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    I(i64),
    T(String),
    B(bool),
}

impl Val {
    /// The integer (0 for anything else).
    pub fn i(&self) -> i64 {
        match self {
            Val::I(v) => *v,
            Val::B(b) => i64::from(*b),
            _ => 0,
        }
    }

    /// The integer, `None` for NULL.
    pub fn oi(&self) -> Option<i64> {
        match self {
            Val::Null => None,
            v => Some(v.i()),
        }
    }

    /// The text (empty for anything else).
    pub fn t(&self) -> String {
        match self {
            Val::T(s) => s.clone(),
            Val::I(v) => v.to_string(),
            _ => String::new(),
        }
    }

    /// The text, `None` for NULL.
    pub fn ot(&self) -> Option<String> {
        match self {
            Val::Null => None,
            v => Some(v.t()),
        }
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::I(i64::from(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::B(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::T(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::T(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::T(v.clone())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(ToSqlOutput::Owned(match self {
            Val::Null => Value::Null,
            Val::I(v) => Value::Integer(*v),
            Val::T(s) => Value::Text(s.clone()),
            Val::B(b) => Value::Integer(i64::from(*b)),
        }))
    }
}

impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match self {
            Val::Null => Ok(postgres::types::IsNull::Yes),
            Val::I(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Val::I(v) if *ty == Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
            Val::I(v) => v.to_sql(ty, out),
            Val::T(s) => s.as_str().to_sql(ty, out),
            Val::B(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// One connection or transaction of either backend, for SQL written once
/// with SQLite's `?N` parameters (rewritten to `$N` for PostgreSQL).
pub enum Db<'a, 't> {
    Lite(&'a rusqlite::Connection),
    Pg(&'a mut postgres::Transaction<'t>),
}

/// `?N` → `$N`.
fn dollars(sql: &str) -> String {
    sql.replace('?', "$")
}

fn lite_row(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vec<Val>> {
    use rusqlite::types::ValueRef;
    (0..n)
        .map(|i| {
            Ok(match r.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(v) => Val::I(v),
                ValueRef::Real(v) => Val::I(v as i64),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Val::T(String::from_utf8_lossy(t).into_owned())
                }
            })
        })
        .collect()
}

fn pg_row(r: &postgres::Row) -> Vec<Val> {
    use postgres::types::Type;
    (0..r.len())
        .map(|i| {
            let ty = r.columns()[i].type_();
            if *ty == Type::INT8 {
                r.get::<_, Option<i64>>(i).map_or(Val::Null, Val::I)
            } else if *ty == Type::INT4 {
                r.get::<_, Option<i32>>(i)
                    .map_or(Val::Null, |v| Val::I(i64::from(v)))
            } else if *ty == Type::BOOL {
                r.get::<_, Option<bool>>(i).map_or(Val::Null, Val::B)
            } else {
                r.get::<_, Option<String>>(i).map_or(Val::Null, Val::T)
            }
        })
        .collect()
}

impl Db<'_, '_> {
    /// Runs a statement; returns the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        match self {
            Db::Lite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(params))? as u64),
            Db::Pg(t) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|v| v as _).collect();
                Ok(t.execute(dollars(sql).as_str(), &p)?)
            }
        }
    }

    /// Runs an `INSERT` into a table with an `id` key; returns the new id.
    pub fn insert_id(&mut self, sql: &str, params: &[Val]) -> Result<i64, StoreError> {
        match self {
            Db::Lite(c) => {
                c.execute(sql, rusqlite::params_from_iter(params))?;
                Ok(c.last_insert_rowid())
            }
            Db::Pg(t) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|v| v as _).collect();
                let sql = format!("{} RETURNING id", dollars(sql));
                Ok(t.query_one(sql.as_str(), &p)?.get(0))
            }
        }
    }

    /// An `INSERT … ON CONFLICT DO NOTHING` into a table with an `id` key:
    /// the new id, or `None` when the row was already there.
    pub fn insert_id_opt(&mut self, sql: &str, params: &[Val]) -> Result<Option<i64>, StoreError> {
        match self {
            Db::Lite(c) => {
                let n = c.execute(sql, rusqlite::params_from_iter(params))?;
                Ok((n > 0).then(|| c.last_insert_rowid()))
            }
            Db::Pg(t) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|v| v as _).collect();
                let sql = format!("{} RETURNING id", dollars(sql));
                Ok(t.query_opt(sql.as_str(), &p)?.map(|r| r.get(0)))
            }
        }
    }

    /// Whether this is PostgreSQL (for the few statements that differ).
    pub fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// Every row of a query.
    pub fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, StoreError> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(params), |r| lite_row(r, n))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            }
            Db::Pg(t) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|v| v as _).collect();
                Ok(t.query(dollars(sql).as_str(), &p)?
                    .iter()
                    .map(pg_row)
                    .collect())
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Val]) -> Result<Option<Vec<Val>>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

impl Conn {
    /// Runs `f` in one transaction over a [`Db`] (SQLite: `BEGIN IMMEDIATE`).
    pub fn db_tx<T>(
        &mut self,
        f: impl FnOnce(&mut Db<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let out = f(&mut Db::Lite(&tx))?;
                tx.commit()?;
                Ok(out)
            }
            Conn::Pg(..) => {
                self.reopen_if_closed()?;
                let Conn::Pg(c, _, _) = self else {
                    unreachable!("matched above")
                };
                let mut tx = c.transaction()?;
                let out = f(&mut Db::Pg(&mut tx))?;
                tx.commit()?;
                Ok(out)
            }
        }
    }

    /// Runs reads in `f` (SQLite: no transaction, so a held write lock does
    /// not stop them; PostgreSQL: one transaction).
    pub fn db_read<T>(
        &mut self,
        f: impl FnOnce(&mut Db<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => f(&mut Db::Lite(c)),
            Conn::Pg(..) => {
                self.reopen_if_closed()?;
                let Conn::Pg(c, _, _) = self else {
                    unreachable!("matched above")
                };
                let mut tx = c.transaction()?;
                let out = f(&mut Db::Pg(&mut tx))?;
                tx.commit()?;
                Ok(out)
            }
        }
    }
}
