//! Store health: one shared record of whether the store can take writes,
//! why not, and what failed, fed by every part that writes to the store
//! (the [`super::Store`] actor, the journal, the webhook sender, the write
//! path's record queue) and read by `/readyz` and `/metrics`.
//!
//! Health follows the last write: a failed write makes the store
//! unhealthy (with the failure as the reason), the next successful one
//! (including the periodic probe, [`super::Probe`]) makes it healthy again
//! — except when the store's file was deleted or replaced while open,
//! which stays unhealthy until a restart (writes would land in a file
//! nobody will ever open again). Write records waiting for the store
//! (`records_pending`, a presence Genesys accepted whose audit/lease could
//! not be committed yet) also keep readiness down.
//!
//! [`Backoff`] is the one retry policy of every background loop on the
//! store: bounded exponential with full jitter in [d/2, d].

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::StoreError;

/// What was being written when the store failed (the `op` label of
/// `presence_gateway_store_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The write path's intent record and idempotency key, before Genesys.
    Begin,
    /// Lease, audit and idempotent answer after Genesys ([`super::CommitWrite`]).
    Commit,
    /// Other audit records (refusals before any check, bulk items).
    Audit,
    /// The presence journal and its outbox rows.
    Journal,
    /// Webhook claims and outcomes.
    Outbox,
    /// Lease upkeep (expiry loop).
    Lease,
    /// Idempotency keys settled after a restart.
    Recovery,
    /// The periodic health probe (a one-row write and a file identity check).
    Probe,
    /// One-time stream tickets issued and redeemed.
    Ticket,
}

impl Op {
    /// Every op, in label order.
    pub const ALL: [Op; 9] = [
        Op::Begin,
        Op::Commit,
        Op::Audit,
        Op::Journal,
        Op::Outbox,
        Op::Lease,
        Op::Recovery,
        Op::Probe,
        Op::Ticket,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Begin => "begin",
            Op::Commit => "commit",
            Op::Audit => "audit",
            Op::Journal => "journal",
            Op::Outbox => "outbox",
            Op::Lease => "lease",
            Op::Recovery => "recovery",
            Op::Probe => "probe",
            Op::Ticket => "ticket",
        }
    }

    fn index(self) -> usize {
        Op::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// The shared health record (any thread).
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Why the last write failed; `None` while writes succeed.
    problem: Mutex<Option<String>>,
    /// The file was deleted or replaced while open (sticky until restart).
    replaced: Mutex<Option<String>>,
    /// Failed writes per [`Op`].
    failures: [AtomicU64; 9],
    /// Presence writes Genesys accepted whose record (audit, lease,
    /// idempotent answer) waits in memory for the store (gauge).
    pub records_pending: AtomicU64,
    /// Writes refused before Genesys because the store could not record them.
    pub writes_refused: AtomicU64,
    /// Idempotency keys left in flight by a previous process and settled.
    pub keys_settled: AtomicU64,
    /// Idempotency keys left in flight by a previous process and released
    /// (`idempotency_abandoned`).
    pub keys_abandoned: AtomicU64,
    /// Unix ms of the last successful write; 0 = none yet.
    pub last_ok_ms: AtomicI64,
    /// Set once any write failed (for tests and logs).
    ever_failed: AtomicBool,
}

impl StoreHealth {
    /// A successful write of `op`: healthy again (unless the file was replaced).
    pub fn ok(&self, _op: Op) {
        self.last_ok_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            *p = None;
        }
    }

    /// A failed write of `op`: unhealthy with `err` as the reason, counted.
    pub fn fail(&self, op: Op, err: &StoreError) {
        self.failures[op.index()].fetch_add(1, Ordering::Relaxed);
        self.ever_failed.store(true, Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            *p = Some(format!("{} write failed: {}", op.as_str(), err.0));
        }
    }

    /// Marks the store's file as deleted or replaced (sticky).
    pub fn replaced(&self, why: String) {
        self.failures[Op::Probe.index()].fetch_add(1, Ordering::Relaxed);
        self.ever_failed.store(true, Ordering::Relaxed);
        if let Ok(mut r) = self.replaced.lock() {
            if r.is_none() {
                tracing::error!(reason = %why, "the store's file is gone; writes are refused until a restart");
            }
            *r = Some(why);
        }
    }

    /// `r` as it is, after counting it for `op` (writes only).
    pub fn observe<T>(&self, op: Op, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => self.ok(op),
            Err(e) => self.fail(op, e),
        }
        r
    }

    /// `Ok` when the store takes writes and nothing waits for it; otherwise why not.
    pub fn check(&self) -> Result<(), String> {
        if let Some(r) = self.replaced.lock().ok().and_then(|r| r.clone()) {
            return Err(r);
        }
        if let Some(p) = self.problem.lock().ok().and_then(|p| p.clone()) {
            return Err(p);
        }
        let n = self.records_pending.load(Ordering::Relaxed);
        if n > 0 {
            return Err(format!(
                "{n} accepted presence write(s) wait for their audit record to be committed"
            ));
        }
        Ok(())
    }

    /// Whether writes may proceed (the file is still the one opened).
    pub fn file_ok(&self) -> Result<(), String> {
        match self.replaced.lock().ok().and_then(|r| r.clone()) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// Failed writes of `op` since start.
    pub fn failures(&self, op: Op) -> u64 {
        self.failures[op.index()].load(Ordering::Relaxed)
    }

    /// Whether any write ever failed.
    pub fn ever_failed(&self) -> bool {
        self.ever_failed.load(Ordering::Relaxed)
    }
}

/// Bounded exponential backoff with full jitter: the `n`-th consecutive
/// failure waits a uniform time in `[d/2, d]`, `d = initial · 2^(n-1)`
/// capped at `max`. [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    failures: u32,
}

impl Backoff {
    /// From the first delay and the cap.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial_ms: initial.as_millis().max(1) as u64,
            max_ms: max.as_millis().max(1) as u64,
            failures: 0,
        }
    }

    /// The store loops' policy: 100 ms doubling to 30 s.
    pub fn store() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// One more failure: how long to wait before the next try.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        crate::genesys::rest::backoff(self.failures, self.initial_ms, self.max_ms)
    }

    /// A success: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Health follows the last write; a replaced file stays unhealthy.
    #[test]
    fn health_follows_writes() {
        let h = StoreHealth::default();
        assert!(h.check().is_ok());
        h.fail(Op::Journal, &StoreError("disk I/O error".into()));
        let why = h.check().unwrap_err();
        assert!(why.contains("journal") && why.contains("disk I/O"), "{why}");
        assert_eq!(h.failures(Op::Journal), 1);
        h.ok(Op::Probe);
        assert!(h.check().is_ok());
        h.records_pending.store(2, Ordering::Relaxed);
        assert!(h.check().unwrap_err().contains("2 accepted"));
        h.records_pending.store(0, Ordering::Relaxed);
        h.replaced("the store file was deleted".into());
        h.ok(Op::Probe);
        assert!(h.check().unwrap_err().contains("deleted"));
        assert!(h.file_ok().is_err());
    }

    /// Delays double from the initial one, stay within [d/2, d], cap at
    /// the maximum, and start over after a reset.
    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(3));
        for n in 1..=10u32 {
            let d = (100u64 << (n - 1)).min(3_000);
            let got = b.fail().as_millis() as u64;
            assert!(got >= d / 2 && got <= d, "failure {n}: {got} ms");
        }
        b.reset();
        assert!(b.fail() <= Duration::from_millis(100));
    }

    /// In paused time: a loop retrying a store that always fails, waiting
    /// what [`Backoff::store`] says between tries, makes a handful of tries
    /// a minute (not one per millisecond, as the webhook sender once did),
    /// and each wait is capped at 30 s.
    #[tokio::test(start_paused = true)]
    async fn a_failing_store_is_retried_a_few_times_a_minute() {
        let start = tokio::time::Instant::now();
        let mut b = Backoff::store();
        let mut tries = 0u32;
        while start.elapsed() < Duration::from_secs(60) {
            tries += 1; // the store write that fails
            let wait = b.fail();
            assert!(wait <= Duration::from_secs(30));
            tokio::time::sleep(wait).await;
        }
        // Waits of 100 ms doubling to 25.6 s, then 30 s, each in [d/2, d]:
        // 10 tries (longest waits) to 12 (shortest) fill a minute.
        assert!((10..=12).contains(&tries), "{tries} tries in a minute");
    }
}
