//! The helpers every integration test shares, with one contract each:
//! [`wait_until`] (poll a condition with a deadline; tests never sleep a
//! fixed time) and [`client`] (the awc client). Included by
//! `tests/support` and `tests/e2e` and re-exported from both.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// What a [`wait_until`] condition yields: `true`/`false`, or `Ok(value)` /
/// `Err(why not yet)`.
pub trait Condition {
    /// What `wait_until` returns once the condition holds.
    type Value;
    /// `Ok` when the condition holds, else why not (for the timeout panic).
    fn check(self) -> Result<Self::Value, String>;
}

impl Condition for bool {
    type Value = ();
    fn check(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("the condition does not hold".into())
        }
    }
}

impl<T> Condition for Result<T, String> {
    type Value = T;
    fn check(self) -> Result<T, String> {
        self
    }
}

/// Polls `cond` every 10 ms until it holds (`true` or `Ok`), and returns
/// its value; panics naming `what` and the last reason once `deadline`
/// has passed. The condition runs at least once, and once more after the
/// deadline is seen, so a slow poll cannot fail a condition that holds.
pub async fn wait_until<F, Fut>(
    deadline: Duration,
    what: &str,
    mut cond: F,
) -> <Fut::Output as Condition>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Condition,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let expired = tokio::time::Instant::now() >= end;
        let last = match cond().await.check() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if expired {
            panic!("timed out after {deadline:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An awc client without a connection-pool limit and with 30 s timeouts.
pub fn client() -> awc::Client {
    // awc's rustls connector needs a process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(30))
        .finish()
}
