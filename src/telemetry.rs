//! Log-line rate limiting for repeating conditions (an upstream that keeps
//! failing to reconnect, a stream of slow-client evictions): a
//! [`LogLimiter`] lets one line through per interval and counts the lines
//! it held back, so the next line that gets through can say how many were
//! suppressed. One limiter per call site, usually a `static`.
//!
//! Lock-free (two atomics); shared by every thread that logs at that site.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Lets one log line through per interval and counts the rest.
///
/// ```
/// use std::time::Duration;
/// use presence_gateway::telemetry::LogLimiter;
/// static WARN: LogLimiter = LogLimiter::new(Duration::from_secs(10));
/// if let Some(suppressed) = WARN.allow() {
///     tracing::warn!(suppressed, "upstream still unreachable");
/// }
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    /// Minimum time between two lines, in milliseconds.
    every_ms: u64,
    /// Earliest time the next line may go out, in ms since [`base`] (0:
    /// nothing logged yet).
    next_ms: AtomicU64,
    /// Lines held back since the last one that went out.
    suppressed: AtomicU64,
}

/// The process-wide time origin of every limiter.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl LogLimiter {
    /// A limiter letting one line through per `every`.
    pub const fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every_ms: every.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log now, and say that `n` lines were suppressed since the
    /// previous one. `None`: skip this line (it is counted).
    pub fn allow(&self) -> Option<u64> {
        // +1 so that the very first call (at 0 ms) is distinguishable.
        self.allow_at(base().elapsed().as_millis() as u64 + 1)
    }

    /// [`Self::allow`] at an explicit time (ms on any monotonic clock that
    /// starts above 0), for tests.
    pub fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Acquire);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms + self.every_ms,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per interval gets through; the next one reports how many
    /// were held back in between; a quiet period lets the next line out at
    /// once.
    #[test]
    fn one_line_per_interval_with_suppressed_count() {
        let l = LogLimiter::new(Duration::from_millis(1000));
        assert_eq!(l.allow_at(1), Some(0));
        // A reconnect WARN every 400 ms: two held back per second.
        assert_eq!(l.allow_at(401), None);
        assert_eq!(l.allow_at(801), None);
        assert_eq!(l.allow_at(1001), Some(2));
        assert_eq!(l.allow_at(1401), None);
        assert_eq!(l.allow_at(2000), None);
        assert_eq!(l.allow_at(2001), Some(2));
        // After a quiet minute the first line goes out immediately.
        assert_eq!(l.allow_at(62_000), Some(0));
        assert_eq!(l.allow_at(62_999), None);
    }

    /// Many threads at one call site: exactly one line per interval.
    #[test]
    fn concurrent_callers_let_one_line_through() {
        let l = std::sync::Arc::new(LogLimiter::new(Duration::from_secs(60)));
        let allowed: u64 = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..1000).filter(|_| l.allow_at(5).is_some()).count())
            })
            .map(|h| h.join().unwrap() as u64)
            .sum();
        assert_eq!(allowed, 1);
        assert_eq!(l.allow_at(60_005), Some(7999));
    }
}
