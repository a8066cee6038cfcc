//! Every REST call to Genesys goes through [`Rest::call`]: one rate budget
//! (`governor`) shared by the whole gateway, served by priority lane
//! (presence writes before reconciliation before directory refresh), with
//! `Retry-After` and `inin-ratelimit-*` honoured (`genesys-api.md` §8), one
//! re-auth on 401, jittered retries of 5xx and a circuit breaker that opens
//! after repeated failures so the gateway reports itself degraded instead of
//! hammering a sick service.
//!
//! Lives on the upstream actor's arbiter (`awc::Client` is not `Send`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::Deserialize;
use tokio::sync::{oneshot, Notify};

use super::auth::{Auth, AuthError};
use super::{GenesysConfig, UpstreamConfig, UpstreamStats};

/// Priority lanes of the REST budget, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// Presence writes asked for by clients.
    Write = 0,
    /// Reconciliation, start-up and channel upkeep.
    Reconcile = 1,
    /// Periodic directory refresh, queue membership and the anti-entropy sweep.
    Directory = 2,
    /// Lookups driven by clients (tag searches, history backfill,
    /// interaction reads): lowest, with a bounded queue
    /// (`client_lane_waiting`) and at most `client_share` of the budget, so
    /// no viewer can hold back reconnects, reconciliation or the sweep.
    Client = 3,
}

/// Lanes in priority order.
const LANES: usize = 4;

/// Why a REST call failed, after retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Genesys answered with an error status (not retried).
    #[error("Genesys answered {status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
        correlation_id: Option<String>,
    },
    /// Still rate limited after the retries; try after `retry_after`.
    #[error("Genesys rate limit: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Repeated 5xx/timeouts: the circuit is open until the cool-down ends.
    #[error("Genesys unavailable (circuit open): {0}")]
    Unavailable(String),
    /// The request could not be sent or read.
    #[error("request to Genesys failed: {0}")]
    Transport(String),
    /// The client lane is full: too many client-driven lookups are waiting.
    #[error("too many lookups waiting for Genesys ({0}); try again shortly")]
    Busy(usize),
}

impl RestError {
    /// True for 404 answers.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Status { status: 404, .. })
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    pub correlation_id: Option<String>,
}

impl Response {
    /// Parses the JSON body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, RestError> {
        super::lenient::from_slice(&self.body)
            .map_err(|e| RestError::Transport(format!("unexpected JSON from Genesys: {e}")))
    }
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The shared budget: governor for the steady rate, plus Genesys's own word
/// (`Retry-After`, exhausted `inin-ratelimit-*`) as a block-until.
struct Budget {
    limiter: DefaultDirectRateLimiter,
    waiters: RefCell<[VecDeque<oneshot::Sender<()>>; LANES]>,
    wake: Notify,
    blocked_until: Cell<Option<Instant>>,
    /// When the client lane's permits of the last minute were handed out.
    client_recent: RefCell<VecDeque<Instant>>,
    /// Client-lane permits a minute at most.
    client_cap: usize,
    /// Client-lane waiters at most.
    client_waiting: usize,
    /// When a write, reconnect or reconciliation last asked for a permit.
    critical_at: Cell<Option<Instant>>,
}

/// The client lane's share is enforced while a write, reconnect or
/// reconciliation asked for a permit this recently; in a quiet budget
/// clients may use what nobody else wants.
const CONTENTION_WINDOW: Duration = Duration::from_secs(10);

impl Budget {
    fn new(cfg: &UpstreamConfig) -> Budget {
        // burst + steady rate over a minute never exceeds the per-minute limit.
        let steady = (cfg.rate_per_minute - cfg.burst).max(1);
        let period = Duration::from_secs(60) / steady;
        // unwrap: validate() keeps burst ≥ 1
        let burst = NonZeroU32::new(cfg.burst.max(1)).unwrap();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(burst);
        Budget {
            limiter: RateLimiter::direct(quota),
            waiters: RefCell::new(Default::default()),
            wake: Notify::new(),
            blocked_until: Cell::new(None),
            client_recent: RefCell::new(VecDeque::new()),
            client_cap: ((f64::from(cfg.rate_per_minute) * cfg.client_share).floor() as usize)
                .max(1),
            client_waiting: cfg.client_lane_waiting,
            critical_at: Cell::new(None),
        }
    }

    fn block_for(&self, d: Duration) {
        let until = Instant::now() + d;
        if self.blocked_until.get().is_none_or(|b| b < until) {
            self.blocked_until.set(Some(until));
        }
    }

    async fn acquire(&self, lane: Lane) -> Result<(), RestError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiters.borrow_mut();
            let q = &mut w[lane as usize];
            if lane == Lane::Client && q.len() >= self.client_waiting {
                return Err(RestError::Busy(q.len()));
            }
            q.push_back(tx);
        }
        if lane <= Lane::Reconcile {
            self.critical_at.set(Some(Instant::now()));
        }
        self.wake.notify_one();
        let _ = rx.await;
        Ok(())
    }

    /// True while the client lane may take a permit: under its share, or
    /// no write/reconnect/reconciliation asked for one recently.
    fn client_open(&self) -> bool {
        self.client_used() < self.client_cap
            || self
                .critical_at
                .get()
                .is_none_or(|t| t.elapsed() >= CONTENTION_WINDOW)
    }

    /// Client-lane permits handed out in the last minute.
    fn client_used(&self) -> usize {
        let mut r = self.client_recent.borrow_mut();
        while r
            .front()
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(60))
        {
            r.pop_front();
        }
        r.len()
    }

    /// The next waiter by lane; the client lane only while under its share.
    fn pop(&self) -> Option<oneshot::Sender<()>> {
        let client_open = self.client_open();
        let mut w = self.waiters.borrow_mut();
        for (i, q) in w.iter_mut().enumerate() {
            if i == Lane::Client as usize && !client_open {
                continue;
            }
            if let Some(tx) = q.pop_front() {
                if i == Lane::Client as usize {
                    self.client_recent.borrow_mut().push_back(Instant::now());
                }
                return Some(tx);
            }
        }
        None
    }

    /// When only capped client waiters remain: the time until the cap frees.
    fn client_wait(&self) -> Option<Duration> {
        let w = self.waiters.borrow();
        let others = w
            .iter()
            .enumerate()
            .any(|(i, q)| i != Lane::Client as usize && !q.is_empty());
        if others || w[Lane::Client as usize].is_empty() || self.client_open() {
            return None;
        }
        let room = self
            .client_recent
            .borrow()
            .front()
            .map(|t| Duration::from_secs(60).saturating_sub(t.elapsed()));
        let calm = self
            .critical_at
            .get()
            .map(|t| CONTENTION_WINDOW.saturating_sub(t.elapsed()));
        match (room, calm) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_waiters(&self) -> bool {
        self.waiters.borrow().iter().any(|q| !q.is_empty())
    }

    /// Hands out permits, highest lane first, at the budget's pace.
    async fn dispatch(self: Rc<Self>) {
        loop {
            while !self.has_waiters() {
                self.wake.notified().await;
            }
            if let Some(d) = self.client_wait() {
                // Only client lookups wait and they used their share: wait for
                // room, or for another lane's request.
                let _ = tokio::time::timeout(d, self.wake.notified()).await;
                continue;
            }
            if let Some(until) = self.blocked_until.get() {
                let now = Instant::now();
                if until > now {
                    tokio::time::sleep(until - now).await;
                }
                self.blocked_until.set(None);
            }
            self.limiter.until_ready().await;
            // A waiter that gave up (dropped) forfeits; the permit goes to the next.
            while let Some(tx) = self.pop() {
                if tx.send(()).is_ok() {
                    break;
                }
            }
        }
    }
}

struct Circuit {
    failures: Cell<u32>,
    open_until: Cell<Option<Instant>>,
}

struct Inner {
    client: awc::Client,
    api_base: String,
    auth: Auth,
    budget: Rc<Budget>,
    circuit: Circuit,
    cfg: UpstreamConfig,
    stats: Arc<UpstreamStats>,
}

/// The REST client of the upstream actor; cheap to clone.
#[derive(Clone)]
pub struct Rest {
    inner: Rc<Inner>,
}

/// Installs ring as rustls's crypto provider once per process.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client for Genesys: TLS (webpki roots), timeouts, bigger frames.
pub fn http_client(timeout: Duration) -> awc::Client {
    install_crypto();
    awc::Client::builder()
        .timeout(timeout)
        .connector(awc::Connector::new().timeout(Duration::from_secs(10)))
        .finish()
}

impl Rest {
    /// Builds the client and starts the budget's dispatcher on this arbiter.
    pub fn new(
        genesys: &GenesysConfig,
        cfg: &UpstreamConfig,
        stats: Arc<UpstreamStats>,
    ) -> Result<Rest, String> {
        let (api_base, login_base) = genesys.bases()?;
        let budget = Rc::new(Budget::new(cfg));
        actix::spawn(budget.clone().dispatch());
        Ok(Rest {
            inner: Rc::new(Inner {
                client: http_client(Duration::from_secs(cfg.request_timeout_secs)),
                auth: Auth::new(
                    &login_base,
                    &genesys.client_id,
                    &genesys.client_secret,
                    cfg.token_renew_fraction,
                ),
                api_base,
                budget,
                circuit: Circuit {
                    failures: Cell::new(0),
                    open_until: Cell::new(None),
                },
                cfg: cfg.clone(),
                stats,
            }),
        })
    }

    /// The HTTP client, for the notification WebSockets.
    pub fn client(&self) -> &awc::Client {
        &self.inner.client
    }

    /// True while repeated failures keep the circuit open.
    pub fn circuit_open(&self) -> bool {
        self.inner
            .circuit
            .open_until
            .get()
            .is_some_and(|u| Instant::now() < u)
    }

    /// Fetches a token now if the cached one is due for renewal.
    pub async fn renew_token_if_due(&self) -> Result<(), AuthError> {
        if self.inner.auth.needs_renewal() {
            self.inner.auth.header(&self.inner.client).await?;
            self.inner
                .stats
                .token_fetches
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `GET path` parsed as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        lane: Lane,
        path: &str,
    ) -> Result<T, RestError> {
        self.call(lane, Method::GET, path, None).await?.json()
    }

    /// One REST call with budget, auth, retries and circuit breaking.
    /// `path` starts with `/api/v2/` and may carry a query.
    pub async fn call(
        &self,
        lane: Lane,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, RestError> {
        let inner = &self.inner;
        let url = format!("{}{}", inner.api_base, path);
        let mut reauthed = false;
        let mut attempt: u32 = 0;
        loop {
            if let Some(until) = inner.circuit.open_until.get() {
                if Instant::now() < until {
                    return Err(RestError::Unavailable(format!(
                        "{} consecutive failures; next try in {:?}",
                        inner.circuit.failures.get(),
                        until - Instant::now()
                    )));
                }
            }
            inner.budget.acquire(lane).await?;
            let auth = inner.auth.header(&inner.client).await?;
            inner.stats.rest_calls.fetch_add(1, Ordering::Relaxed);
            let req = inner
                .client
                .request(method.clone(), &url)
                .insert_header(("Authorization", &*auth))
                .insert_header(("Accept", "application/json"));
            let sent = match body {
                Some(b) => req.send_json(b).await,
                None => req.send().await,
            };
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.failure(&format!("{method} {path}: {e}"));
                    attempt += 1;
                    if attempt > inner.cfg.max_retries {
                        return Err(RestError::Transport(e.to_string()));
                    }
                    tokio::time::sleep(self.jitter(attempt)).await;
                    continue;
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let correlation_id = header("inin-correlation-id");
            let body = match resp.body().limit(64 * 1024 * 1024).await {
                Ok(b) => b,
                Err(e) => {
                    self.failure(&format!("{method} {path}: reading body: {e}"));
                    attempt += 1;
                    if attempt > inner.cfg.max_retries {
                        return Err(RestError::Transport(e.to_string()));
                    }
                    tokio::time::sleep(self.jitter(attempt)).await;
                    continue;
                }
            };
            // Genesys's own count: when the window is used up, wait for its reset.
            if let (Some(count), Some(allowed)) = (
                header("inin-ratelimit-count").and_then(|v| v.parse::<u64>().ok()),
                header("inin-ratelimit-allowed").and_then(|v| v.parse::<u64>().ok()),
            ) {
                if count >= allowed {
                    let reset = header("inin-ratelimit-reset")
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    inner.budget.block_for(Duration::from_secs(reset));
                }
            }
            if status.is_success() {
                inner.circuit.failures.set(0);
                inner.circuit.open_until.set(None);
                return Ok(Response {
                    status,
                    body,
                    correlation_id,
                });
            }
            let err: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            match status.as_u16() {
                401 if !reauthed => {
                    // One re-auth per call: the token may have expired or been revoked.
                    reauthed = true;
                    inner.auth.invalidate();
                    inner.stats.reauths.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                429 => {
                    inner.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let retry_after = header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .or_else(|| header("inin-ratelimit-reset").and_then(|v| v.parse().ok()))
                        .unwrap_or(3);
                    let retry_after = Duration::from_secs(retry_after.max(1));
                    inner.budget.block_for(retry_after);
                    attempt += 1;
                    // The Go SDK gives up beyond 180 s; so do we (§8.1).
                    if attempt > inner.cfg.max_retries || retry_after > Duration::from_secs(180) {
                        return Err(RestError::RateLimited { retry_after });
                    }
                    tracing::warn!(%method, path, retry_after_secs = retry_after.as_secs(), "Genesys rate limited the gateway; waiting");
                    continue;
                }
                s if s >= 500 && s != 501 => {
                    self.failure(&format!("{method} {path}: HTTP {s}"));
                    attempt += 1;
                    if attempt > inner.cfg.max_retries || self.circuit_open() {
                        return Err(RestError::Status {
                            status: s,
                            code: err.code,
                            message: err.message,
                            correlation_id,
                        });
                    }
                    let retry_after =
                        header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                    let wait = retry_after
                        .map(Duration::from_secs)
                        .unwrap_or_else(|| self.jitter(attempt));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                s => {
                    return Err(RestError::Status {
                        status: s,
                        code: err.code,
                        message: err.message,
                        correlation_id,
                    })
                }
            }
        }
    }

    /// Jittered exponential delay for retry `attempt` (1-based).
    fn jitter(&self, attempt: u32) -> Duration {
        backoff(
            attempt,
            self.inner.cfg.backoff_initial_ms,
            self.inner.cfg.backoff_max_ms,
        )
    }

    fn failure(&self, what: &str) {
        let c = &self.inner.circuit;
        c.failures.set(c.failures.get() + 1);
        self.inner
            .stats
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
        if c.failures.get() >= self.inner.cfg.circuit_threshold {
            let until = Instant::now() + Duration::from_secs(self.inner.cfg.circuit_open_secs);
            c.open_until.set(Some(until));
            tracing::error!(
                failures = c.failures.get(),
                what,
                "Genesys keeps failing; circuit open"
            );
        } else {
            tracing::warn!(what, "Genesys request failed; will retry");
        }
    }
}

/// Jittered exponential backoff: uniform in `[d/2, d]` where
/// `d = min(max, initial · 2^(attempt-1))`.
pub fn backoff(attempt: u32, initial_ms: u64, max_ms: u64) -> Duration {
    let exp = initial_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max_ms).max(1);
    let ms = rand::rng().random_range(d / 2..=d);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client lane refuses beyond `client_lane_waiting` waiters (other
    /// lanes never do), and reconnect/reconciliation requests are served
    /// before client lookups that queued first.
    #[tokio::test]
    async fn client_lane_is_bounded_and_last() {
        let cfg = UpstreamConfig {
            client_lane_waiting: 2,
            ..UpstreamConfig::default()
        };
        let budget = Rc::new(Budget::new(&cfg));
        let mut c1 = Box::pin(budget.acquire(Lane::Client));
        let mut c2 = Box::pin(budget.acquire(Lane::Client));
        assert!(futures_util::poll!(&mut c1).is_pending());
        assert!(futures_util::poll!(&mut c2).is_pending());
        assert!(matches!(
            budget.acquire(Lane::Client).await,
            Err(RestError::Busy(2))
        ));
        let mut r = Box::pin(budget.acquire(Lane::Reconcile));
        assert!(futures_util::poll!(&mut r).is_pending());
        // One permit: it goes to the reconciliation, not to the earlier client.
        let tx = budget.pop().expect("a waiter");
        tx.send(()).unwrap();
        assert!(futures_util::poll!(&mut r).is_ready());
        assert!(futures_util::poll!(&mut c1).is_pending());
    }

    /// Backoff grows exponentially, stays within [d/2, d] and is capped.
    #[test]
    fn backoff_is_jittered_and_capped() {
        for attempt in 1..=12 {
            let d = (500u64 << (attempt - 1)).min(30_000);
            for _ in 0..50 {
                let b = backoff(attempt, 500, 30_000).as_millis() as u64;
                assert!(
                    b >= d / 2 && b <= d,
                    "attempt {attempt}: {b} not in [{}, {d}]",
                    d / 2
                );
            }
        }
    }
}
