//! The guarded write path: `PATCH /api/v1/agents/{id}/presence`,
//! `POST /api/v1/presence/bulk`, `GET /api/v1/audit`, and presence leases.
//!
//! Genesys offers no precondition or audit on presence writes
//! (`genesys-api.md` §10); the gateway adds them: the presence is validated
//! against the org's definitions (422 with the valid choices), the
//! transition policy may refuse it (409 naming the rule), `If-Match` checks
//! the agent's version (412), `Idempotency-Key` makes retries write once,
//! and every attempt lands in the audit log. Writes go on the top-priority
//! lane of the REST budget; the confirmed state reaches every stream before
//! the caller hears back.
//!
//! Actor round trips of one `PATCH` (domain code here, HTTP in
//! [`crate::http::writes`]), at most six:
//! 1. for a division-scoped caller, the route policy's read of the agent
//!    (its access check; the record is passed on as [`Known`]);
//! 2. the store once to record the intent and begin the `Idempotency-Key`
//!    if any ([`BeginWrite`], one transaction; a store that cannot take it
//!    refuses the write with 503 `store_unavailable` before Genesys is
//!    called);
//! 3. the registry once for the agent and the definitions
//!    ([`GetWriteContext`]), after the body arrived, so that `If-Match`
//!    and the transition policy judge the agent as it is now;
//! 4. the upstream once, which
//! 5. hands the confirmed presence to the registry, whose answer comes
//!    once the journal has committed it and carries the agent after the
//!    change (no read follows);
//! 6. the store once for lease + audit + idempotent answer
//!    ([`CommitWrite`], one transaction; kept in memory and retried by
//!    [`record_loop`] if the store fails after Genesys accepted).
//!
//! An unscoped caller's write takes five. A bulk write reads every named
//! agent and the definitions in one registry round trip. Keys a killed
//! process left in flight are settled by [`settle_keys`] after the first
//! sync.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::auth::Principal;
use crate::genesys::rest::RestError;
use crate::genesys::writes::PresenceWrite;
use crate::genesys::Genesys;
use crate::model::{PresenceDefinition, RoutingStatus, SystemPresence};
use crate::registry::{
    AgentIdsIn, AgentRecord, GetAgent, GetDefinitions, GetWriteContext, Registry,
};
use crate::store::{
    AppendAudit, AuditRecord, Backoff, BeginIdempotent, BeginIntents, BeginWrite, ClaimStale,
    CommitWrite, FinishIdempotent, Idempotent, Lease, ListLeases, PutLease, QueryAudit, SettleKey,
    Store, StoreError, StoreHealth, TakeLease,
};

/// Write-path policy (`[writes]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WritesConfig {
    /// Refuse taking an agent off queue while routing status is
    /// `INTERACTING` (mid-interaction), unless the request says `"force": true`.
    pub protect_interacting: bool,
    /// System presences the gateway never sets (e.g. `["OFFLINE"]`): 409.
    pub deny_targets: Vec<String>,
    /// Presence set when a lease runs out: a definition id, an org label or
    /// a system presence.
    pub lease_fallback: String,
    /// Longest `leaseSeconds` accepted.
    pub max_lease_seconds: u64,
    /// Most changes in one `POST /api/v1/presence/bulk`.
    pub bulk_max: usize,
    /// Changes per Genesys bulk call (`PUT /api/v2/users/presences/bulk`).
    pub bulk_chunk: usize,
}

impl Default for WritesConfig {
    fn default() -> Self {
        WritesConfig {
            protect_interacting: true,
            deny_targets: Vec::new(),
            lease_fallback: "AVAILABLE".into(),
            max_lease_seconds: 86_400,
            bulk_max: 1_000,
            bulk_chunk: 50,
        }
    }
}

impl WritesConfig {
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.deny_targets {
            if SystemPresence::parse(t).is_none() {
                return Err(format!("writes.deny_targets: {t:?} is not a system presence (AVAILABLE, ON_QUEUE, BREAK, …)"));
            }
        }
        if self.lease_fallback.trim().is_empty() {
            return Err("writes.lease_fallback is empty".into());
        }
        if self.max_lease_seconds == 0
            || !(1..=10_000).contains(&self.bulk_max)
            || !(1..=100).contains(&self.bulk_chunk)
        {
            return Err(
                "writes.max_lease_seconds ≥ 1, writes.bulk_max 1–10000, writes.bulk_chunk 1–100"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What the write handlers share.
pub struct Writes {
    pub registry: Addr<Registry>,
    /// The Genesys floor.
    pub upstream: Genesys,
    pub store: Addr<Store>,
    pub cfg: WritesConfig,
    /// Shared store health (`/readyz`, `/metrics`).
    pub health: Arc<StoreHealth>,
    /// Records of writes Genesys accepted that the store could not commit
    /// yet, oldest first, retried by [`record_loop`] (at most
    /// [`RECORDS_MAX`]; while it is full, writes are refused before Genesys).
    pub records: Mutex<VecDeque<CommitWrite>>,
    /// Wakes [`record_loop`].
    pub records_wake: Notify,
    /// The cluster this node belongs to: only its leader runs lease
    /// expiries (docs/scaling.md).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Most write records kept in memory while the store cannot commit them.
pub const RECORDS_MAX: usize = 10_000;

impl Writes {
    /// The write path over its parts, with an empty record queue.
    pub fn new(
        registry: Addr<Registry>,
        upstream: Genesys,
        store: Addr<Store>,
        cfg: WritesConfig,
        health: Arc<StoreHealth>,
    ) -> Writes {
        Writes {
            registry,
            upstream,
            store,
            cfg,
            health,
            records: Mutex::new(VecDeque::new()),
            records_wake: Notify::new(),
            cluster: None,
        }
    }

    /// The same write path on a member of `cluster`: lease expiries run on
    /// the leader only (a follower's requests are relayed to it).
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Writes {
        self.cluster = cluster;
        self
    }

    /// Drain: tries every kept record once, oldest first, stopping at the
    /// first the store refuses; `Err(n)`: `n` records are still kept.
    pub async fn flush_records(&self) -> Result<(), usize> {
        loop {
            let front = self.records.lock().ok().and_then(|q| q.front().cloned());
            let Some(commit) = front else { return Ok(()) };
            match self.store.send(commit).await {
                Ok(Ok(())) => {
                    if let Ok(mut q) = self.records.lock() {
                        q.pop_front();
                        self.health
                            .records_pending
                            .store(q.len() as u64, Ordering::Relaxed);
                    }
                }
                _ => return Err(self.records_pending()),
            }
        }
    }

    /// Records waiting for the store.
    pub fn records_pending(&self) -> usize {
        self.records.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Keeps a record the store refused, for [`record_loop`].
    fn keep_record(&self, c: CommitWrite) {
        if let Ok(mut q) = self.records.lock() {
            q.push_back(c);
            self.health
                .records_pending
                .store(q.len() as u64, Ordering::Relaxed);
        }
        self.records_wake.notify_one();
    }
}

/// 503 `store_unavailable`: the store could not record the write, so it
/// was not made (Genesys untouched).
fn store_unavailable(e: impl std::fmt::Display) -> WriteError {
    let mut w = WriteError::new(
        503,
        "store_unavailable",
        format!(
            "the gateway cannot record this request, so this request did not change Genesys (an earlier request with the same Idempotency-Key may have; retry after Retry-After for its answer): {e}"
        ),
    );
    w.retry_after = Some(5);
    w
}

/// A refused or failed write, as the caller sees it.
#[derive(Debug, Clone)]
pub struct WriteError {
    /// HTTP status the caller gets (4xx: the caller can fix it).
    pub status: u16,
    pub code: &'static str,
    pub reason: String,
    /// Extra fields for the body (valid choices, rule, current version).
    pub extra: Value,
    pub retry_after: Option<u64>,
}

impl WriteError {
    /// A refusal with HTTP `status`, machine `code` and a reason saying what to fix.
    pub fn new(status: u16, code: &'static str, reason: impl Into<String>) -> WriteError {
        WriteError {
            status,
            code,
            reason: reason.into(),
            extra: Value::Null,
            retry_after: None,
        }
    }

    fn with(mut self, extra: Value) -> WriteError {
        self.extra = extra;
        self
    }

    /// The JSON body: `{"error": code, "reason": …}` plus the extra fields.
    pub fn body(&self) -> Value {
        let mut b = json!({"error": self.code, "reason": self.reason});
        if let (Some(b), Some(extra)) = (b.as_object_mut(), self.extra.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        b
    }
}

impl std::error::Error for WriteError {}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.reason)
    }
}

impl WriteError {
    /// A 4xx: final for this request (remembered for its Idempotency-Key).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }

    /// A 5xx: worth retrying.
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

fn internal(what: impl std::fmt::Display) -> WriteError {
    WriteError::new(500, "internal", format!("{what}"))
}

/// Maps a Genesys failure to what the caller can act on.
fn upstream_error(e: RestError) -> WriteError {
    match e {
        RestError::Status { status: 403, message, .. } => WriteError::new(
            403,
            "genesys_forbidden",
            format!("Genesys refused the write: {message}. Give the gateway's OAuth client a role with presence:userPresence:edit"),
        ),
        RestError::Status { status: 404, .. } => WriteError::new(404, "agent_not_found", "Genesys does not know this user"),
        RestError::Status { status: 400 | 409 | 422, code, message, .. } => WriteError::new(
            422,
            "genesys_refused",
            format!("Genesys refused the presence ({code}): {message}"),
        ),
        RestError::RateLimited { retry_after } => {
            let mut w = WriteError::new(503, "rate_limited", "Genesys's rate limit is exhausted; retry later");
            w.retry_after = Some(retry_after.as_secs().max(1));
            w
        }
        other => {
            let mut w = WriteError::new(503, "upstream_unavailable", format!("Genesys is not reachable: {other}"));
            w.retry_after = Some(5);
            w
        }
    }
}

/// What an `Idempotency-Key` is bound to: `<agent id>\n<request JSON>`
/// (read back by [`settle_keys`] after a restart).
fn fingerprint(agent_id: &str, change: &PresenceChange) -> String {
    format!(
        "{agent_id}\n{}",
        serde_json::to_string(change).unwrap_or_default()
    )
}

/// `PATCH` body.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresenceChange {
    /// Definition id, org label or system presence.
    pub presence: String,
    pub message: Option<String>,
    pub reason: Option<String>,
    /// Whole seconds; `277.0` is accepted as 277 (a JSON Schema integer,
    /// as the OpenAPI description states it).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub lease_seconds: Option<u64>,
    /// Override the transition policy.
    #[serde(default)]
    pub force: bool,
}

/// Resolves what the caller asked for to one active definition.
pub fn resolve(defs: &[PresenceDefinition], asked: &str) -> Result<PresenceDefinition, WriteError> {
    let asked_t = asked.trim();
    let found = defs
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(asked_t))
        .or_else(|| {
            defs.iter()
                .filter(|d| !d.deactivated)
                .find(|d| d.label.eq_ignore_ascii_case(asked_t))
        })
        .or_else(|| {
            let sp = SystemPresence::parse(asked_t)?;
            defs.iter()
                .find(|d| d.primary && !d.deactivated && d.system_presence == sp)
        });
    match found {
        Some(d) if !d.deactivated => Ok(d.clone()),
        other => {
            let choices: Vec<Value> = defs
                .iter()
                .filter(|d| !d.deactivated)
                .map(|d| json!({"id": d.id, "label": d.label, "systemPresence": d.system_presence}))
                .collect();
            let why = if other.is_some() {
                format!("presence {asked:?} is deactivated in this org")
            } else {
                format!("unknown presence {asked:?}: give a definition id, an org label or a system presence")
            };
            Err(WriteError::new(422, "invalid_presence", why).with(json!({"choices": choices})))
        }
    }
}

/// The transition policy; `Err` names the rule that refused.
fn check_policy(
    cfg: &WritesConfig,
    routing: Option<RoutingStatus>,
    target: &PresenceDefinition,
    force: bool,
) -> Result<(), WriteError> {
    if cfg
        .deny_targets
        .iter()
        .filter_map(|t| SystemPresence::parse(t))
        .any(|sp| sp == target.system_presence)
    {
        return Err(WriteError::new(
            409,
            "transition_refused",
            format!(
                "the gateway is configured never to set {} (writes.deny_targets)",
                target.system_presence
            ),
        )
        .with(json!({"rule": "deny_targets"})));
    }
    if cfg.protect_interacting
        && !force
        && routing == Some(RoutingStatus::Interacting)
        && target.system_presence != SystemPresence::OnQueue
    {
        return Err(WriteError::new(
            409,
            "transition_refused",
            "the agent is handling an interaction (INTERACTING); taking them off queue now would disrupt it. Retry after the interaction, or send \"force\": true",
        )
        .with(json!({"rule": "protect_interacting"})));
    }
    Ok(())
}

struct Attempt {
    actor: String,
    agent_id: String,
    from: Option<String>,
    to: String,
    reason: Option<String>,
    /// The lease change a confirmed write leaves (set, or clear any).
    lease: Option<PutLease>,
}

impl Attempt {
    fn new(actor: String, agent_id: String, change: &PresenceChange) -> Attempt {
        Attempt {
            actor,
            agent_id,
            from: None,
            to: change.presence.clone(),
            reason: change.reason.clone(),
            lease: None,
        }
    }
}

impl Writes {
    /// Records a write the route policy refused because `actor` may not see
    /// `agent_id` (404 `agent_not_found`, the answer an unknown agent gets):
    /// refused attempts are audited whoever refused them. The body was
    /// never read, so the target presence is empty.
    pub async fn audit_hidden_agent(&self, actor: String, agent_id: String) {
        let attempt = Attempt {
            actor,
            agent_id,
            from: None,
            to: String::new(),
            reason: None,
            lease: None,
        };
        let err = WriteError::new(
            404,
            "agent_not_found",
            format!("no agent with id {:?}", attempt.agent_id),
        );
        self.audit(&attempt, &Err(err), 404).await;
    }

    async fn audit(&self, a: &Attempt, result: &Result<Option<String>, WriteError>, status: u16) {
        let rec = audit_record(a, result, status);
        if let Err(e) = self
            .store
            .send(AppendAudit(rec))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::error!(error = %e, agent = %a.agent_id, "could not write the audit record");
        }
    }
}

/// True when no text of `c` holds U+0000 (PostgreSQL text cannot, and no
/// presence, message or reason needs it).
fn no_nul(c: &PresenceChange) -> bool {
    !c.presence.contains('\0')
        && !c.message.as_deref().unwrap_or("").contains('\0')
        && !c.reason.as_deref().unwrap_or("").contains('\0')
}

/// What the route policy already read for a write: the agent whose
/// division decided access. The write path reads the agent again after
/// the body arrived (a record read before it can be seconds old) and uses
/// this one only if the agent left the directory meanwhile.
#[derive(Debug, Clone)]
pub struct Known {
    /// The agent's record.
    pub agent: AgentRecord,
}

/// The lease fallback's definition, or 503 `lease_fallback_invalid`
/// (`writes.lease_fallback` names no active presence of this org; also
/// reported by `/readyz` from the first sync on).
pub fn fallback(
    defs: &[PresenceDefinition],
    configured: &str,
) -> Result<PresenceDefinition, WriteError> {
    resolve(defs, configured).map_err(|e| {
        let mut w = WriteError::new(
            503,
            "lease_fallback_invalid",
            format!("writes.lease_fallback {configured:?} names no active presence of this org ({}); leased writes are refused until the configuration is fixed", e.reason),
        );
        w.extra = e.extra;
        w
    })
}

/// The definitions, or 503 while the gateway has not read them yet.
fn ready(defs: Vec<PresenceDefinition>) -> Result<Vec<PresenceDefinition>, WriteError> {
    if defs.is_empty() {
        let mut e = WriteError::new(
            503,
            "not_ready",
            "the gateway has not read the org's presence definitions yet",
        );
        e.retry_after = Some(2);
        return Err(e);
    }
    Ok(defs)
}

tokio::task_local! {
    /// The cluster node that received the request being carried out
    /// (`None` on a standalone gateway): set by the HTTP layer around a
    /// write, recorded in its audit records.
    pub static RECEIVED_BY: Option<String>;
}

/// The audit log's record of one attempt.
fn audit_record(
    a: &Attempt,
    result: &Result<Option<String>, WriteError>,
    status: u16,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: Utc::now(),
        actor: a.actor.clone(),
        agent_id: a.agent_id.clone(),
        from_presence: a.from.clone(),
        to_presence: a.to.clone(),
        reason: a.reason.clone(),
        result: match result {
            Ok(_) => "ok".into(),
            Err(e) => e.code.into(),
        },
        status,
        correlation_id: result.as_ref().ok().cloned().flatten(),
        detail: result.as_ref().err().map(|e| e.reason.clone()),
        node: RECEIVED_BY.try_with(|n| n.clone()).ok().flatten(),
    }
}

impl Writes {
    /// One guarded change: intent recorded, checks, Genesys write, lease,
    /// audit. Returns the agent JSON after the change.
    pub async fn change(
        &self,
        actor: String,
        agent_id: String,
        change: PresenceChange,
        expected_version: Option<Option<u64>>,
    ) -> Result<Value, WriteError> {
        let attempt = Attempt::new(actor, agent_id, &change);
        let begun = self.begin(&attempt, None).await?;
        self.change_checked(
            attempt,
            change,
            expected_version,
            None,
            begun.audit_id,
            None,
        )
        .await
    }

    /// Before Genesys is touched: claims the `Idempotency-Key` (if any) and
    /// writes the attempt's audit record as `pending`, in one store round
    /// trip. A store that cannot take it refuses the write: 503
    /// `store_unavailable` (also while [`RECORDS_MAX`] records wait).
    async fn begin(
        &self,
        attempt: &Attempt,
        idempotency: Option<BeginIdempotent>,
    ) -> Result<crate::store::Begun, WriteError> {
        let waiting = self.records_pending();
        if waiting >= RECORDS_MAX {
            self.health.writes_refused.fetch_add(1, Ordering::Relaxed);
            return Err(store_unavailable(format!(
                "{waiting} records of earlier writes still wait for the store"
            )));
        }
        let r = self
            .store
            .send(BeginWrite {
                intent: audit_record(attempt, &Ok(None), 0),
                idempotency,
            })
            .await
            .map_err(internal)?;
        r.map_err(|e: StoreError| {
            self.health.writes_refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, agent = %attempt.agent_id, "write refused: the store cannot record it");
            store_unavailable(e)
        })
    }

    /// [`Self::change`] after [`Self::begin`], with the agent's record when
    /// the caller already read it (the access check's [`AgentRecord`]), the
    /// intent's audit id, and the request's `Idempotency-Key` (already
    /// begun) whose answer is committed with the lease and the audit
    /// record, in one store round trip.
    ///
    /// When that commit fails after Genesys accepted the change, the
    /// answer still says what happened (200, the agent, plus `"record":
    /// "pending"`); the record waits in memory and [`record_loop`] commits
    /// it as soon as the store takes writes again (readiness is down meanwhile).
    async fn change_checked(
        &self,
        mut attempt: Attempt,
        change: PresenceChange,
        expected_version: Option<Option<u64>>,
        checked: Option<Known>,
        audit_id: Option<i64>,
        idempotency_key: Option<String>,
    ) -> Result<Value, WriteError> {
        let result = self
            .change_inner(&mut attempt, &change, expected_version, checked)
            .await;
        let status = match &result {
            Ok(_) => 200,
            Err(e) => e.status,
        };
        let audit = audit_record(
            &attempt,
            &result
                .as_ref()
                .map(|(_, c)| c.clone())
                .map_err(Clone::clone),
            status,
        );
        // Remember answers that say something final; forget transient
        // failures so that a retry with the same key can succeed.
        let idempotency = idempotency_key.map(|key| FinishIdempotent {
            outcome: match &result {
                Ok((v, _)) => Some((200, v.to_string())),
                Err(e) if e.is_client_error() => Some((e.status, e.body().to_string())),
                Err(_) => None,
            },
            key,
        });
        let commit = CommitWrite {
            lease: attempt.lease.take(),
            audit,
            audit_id,
            idempotency,
        };
        let committed = match self.store.send(commit.clone()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match (committed, result) {
            (Ok(()), result) => result.map(|(v, _)| v),
            (Err(e), Ok((mut v, _))) => {
                tracing::error!(error = %e, agent = %attempt.agent_id, "Genesys accepted the write but the store could not record it; kept for retry");
                self.keep_record(commit);
                if let Some(o) = v.as_object_mut() {
                    o.insert("record".into(), json!("pending"));
                    o.insert(
                        "recordDetail".into(),
                        json!(format!("Genesys accepted the change, but the gateway could not commit its audit record (and lease) yet: {e}; it is retried from memory until the store takes it")),
                    );
                }
                Ok(v)
            }
            (Err(e), Err(refused)) => {
                // Nothing changed upstream; the intent stays `pending` in
                // the audit log until the record goes through.
                tracing::error!(error = %e, agent = %attempt.agent_id, "could not record a refused write; kept for retry");
                self.keep_record(commit);
                Err(refused)
            }
        }
    }

    async fn change_inner(
        &self,
        attempt: &mut Attempt,
        change: &PresenceChange,
        expected_version: Option<Option<u64>>,
        checked: Option<Known>,
    ) -> Result<(Value, Option<String>), WriteError> {
        // One registry round trip for the agent and the definitions, read
        // after the body arrived: `If-Match` and the transition policy are
        // judged on the agent as it is now, not as the route policy saw it
        // before the body was sent (that record decides access only).
        let known = checked.filter(|k| k.agent.agent.id == attempt.agent_id);
        let mut ctx = self
            .registry
            .send(GetWriteContext {
                ids: vec![attempt.agent_id.clone()],
            })
            .await
            .map_err(internal)?;
        let defs = ctx.definitions;
        // The policy found the agent: it is still there unless it left the
        // directory meanwhile (then the policy's record stands for it).
        let rec = ctx.agents.pop().flatten().or(known.map(|k| k.agent));
        let rec = rec.ok_or_else(|| {
            WriteError::new(
                404,
                "agent_not_found",
                format!(
                    "no agent with id {:?}; list agents with GET /api/v1/agents",
                    attempt.agent_id
                ),
            )
        })?;
        let agent = rec.agent;
        attempt.from = agent.presence.as_ref().map(|p| p.definition_id.clone());
        if let Some(Some(v)) = expected_version {
            if v != agent.version {
                return Err(WriteError::new(
                    412,
                    "precondition_failed",
                    format!("the agent changed since version {v} (now {}); GET it again and retry with the new ETag", agent.version),
                )
                .with(json!({"currentVersion": agent.version})));
            }
        }
        if change
            .message
            .as_ref()
            .is_some_and(|m| m.chars().count() > 250)
        {
            return Err(WriteError::new(
                422,
                "invalid_message",
                "message may be at most 250 characters",
            ));
        }
        let defs = ready(defs)?;
        let target = resolve(&defs, &change.presence)?;
        attempt.to = target.id.clone();
        check_policy(
            &self.cfg,
            agent.routing_status.as_ref().map(|r| r.status),
            &target,
            change.force,
        )?;
        let lease = match change.lease_seconds {
            Some(0) => {
                return Err(WriteError::new(
                    400,
                    "bad_lease",
                    "leaseSeconds must be at least 1",
                ))
            }
            Some(s) if s > self.cfg.max_lease_seconds => {
                return Err(WriteError::new(
                    400,
                    "bad_lease",
                    format!(
                        "leaseSeconds may be at most {} (writes.max_lease_seconds)",
                        self.cfg.max_lease_seconds
                    ),
                ))
            }
            Some(s) => Some((s, fallback(&defs, &self.cfg.lease_fallback)?)),
            None => None,
        };
        let confirmed = self
            .upstream
            .write_presence(PresenceWrite {
                user_id: agent.id.clone(),
                definition_id: target.id.clone(),
                message: change.message.clone(),
            })
            .await
            .map_err(internal)?
            .map_err(upstream_error)?;
        let lease_row = lease.map(|(secs, fallback)| Lease {
            agent_id: agent.id.clone(),
            definition_id: target.id.clone(),
            expires_at: Utc::now() + chrono::Duration::seconds(secs as i64),
            fallback_definition_id: fallback.id,
            actor: attempt.actor.clone(),
        });
        let expires = lease_row.as_ref().map(|l| l.expires_at);
        // A change without a lease ends any lease the agent had (committed
        // with the audit record by `change_checked`).
        attempt.lease = Some(PutLease {
            agent_id: agent.id.clone(),
            lease: lease_row,
        });
        // The agent after the change came back with the registry's answer
        // to the upstream's hand-over (no further round trip).
        let mut body = match confirmed.agent_json.as_deref() {
            Some(json) => serde_json::from_str(json).map_err(internal)?,
            None => Value::Null,
        };
        if let Some(o) = body.as_object_mut() {
            o.insert("correlationId".into(), json!(confirmed.correlation_id));
            if let Some(e) = expires {
                o.insert("leaseExpiresAt".into(), json!(crate::model::iso(e)));
            }
        }
        Ok((body, confirmed.correlation_id))
    }
}

/// What a `PATCH` answered: a fresh change (the agent JSON after it), or
/// the remembered answer of an earlier request with the same
/// `Idempotency-Key` (status and JSON text).
#[derive(Debug)]
pub enum PatchOutcome {
    /// The agent after the change.
    Changed(Value),
    /// An earlier answer, replayed.
    Replayed { status: u16, body: String },
}

impl Writes {
    /// `PATCH /api/v1/agents/{id}/presence` minus HTTP: parses `body`,
    /// applies `Idempotency-Key` (`key`, already scoped to the caller),
    /// makes the change. `expected` and `key` are the parsed `If-Match` and
    /// `Idempotency-Key` headers (their errors count after a bad body's).
    /// `checked` is the agent the access check already read, if it did.
    pub async fn patch(
        &self,
        actor: String,
        agent_id: String,
        body: &[u8],
        expected: Result<Option<Option<u64>>, WriteError>,
        key: Result<Option<String>, WriteError>,
        checked: Option<Known>,
    ) -> Result<PatchOutcome, WriteError> {
        let parsed = serde_json::from_slice::<PresenceChange>(body)
            .map_err(|e| e.to_string())
            .and_then(|c| match no_nul(&c) {
                true => Ok(c),
                false => Err(
                    "a text field holds U+0000, which no presence, message or reason may contain"
                        .into(),
                ),
            });
        let change: PresenceChange = match parsed {
            Ok(c) => c,
            Err(e) => {
                let err = WriteError::new(400, "bad_body", format!("body must be {{\"presence\": \"<definition id | label | system presence>\", \"message\"?, \"reason\"?, \"leaseSeconds\"?, \"force\"?}}: {e}"));
                let attempt = Attempt {
                    actor,
                    agent_id,
                    from: None,
                    to: String::from_utf8_lossy(body)
                        .chars()
                        .filter(|c| *c != '\0')
                        .take(200)
                        .collect(),
                    reason: None,
                    lease: None,
                };
                self.audit(&attempt, &Err(err.clone()), err.status).await;
                return Err(err);
            }
        };
        let expected = expected?;
        let key = key?;
        let attempt = Attempt::new(actor, agent_id.clone(), &change);
        let idempotency = key.as_ref().map(|key| BeginIdempotent {
            key: key.clone(),
            fingerprint: fingerprint(&agent_id, &change),
        });
        let begun = self.begin(&attempt, idempotency).await?;
        match begun.idempotent {
            Idempotent::New => {}
            Idempotent::Done(status, body) => {
                return Ok(PatchOutcome::Replayed { status, body });
            }
            Idempotent::Pending => {
                return Err(WriteError::new(
                    409,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still running; retry shortly",
                ))
            }
            Idempotent::Recovering => {
                let mut e = WriteError::new(
                    409,
                    "idempotency_recovering",
                    "the gateway restarted while a request with this Idempotency-Key ran; it is being settled against Genesys's state of the agent; retry in a few seconds",
                );
                e.retry_after = Some(2);
                return Err(e);
            }
            Idempotent::Mismatch => {
                return Err(WriteError::new(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request; use a new key",
                ))
            }
        }
        let result = self
            .change_checked(attempt, change, expected, checked, begun.audit_id, key)
            .await;
        result.map(PatchOutcome::Changed)
    }

    /// `POST /api/v1/presence/bulk` minus HTTP: many agents at once, in
    /// chunks through Genesys's bulk endpoint; the answer holds a result
    /// per agent. Agents `principal` may not see look unknown.
    pub async fn bulk(
        &self,
        actor: String,
        principal: &Principal,
        body: &[u8],
    ) -> Result<Value, WriteError> {
        let b: BulkBody = serde_json::from_slice(body).map_err(|e| {
        WriteError::new(400, "bad_body", format!("body must be {{\"changes\": [{{\"agent\", \"presence\", \"message\"?}}], \"reason\"?, \"force\"?}}: {e}"))
    })?;
        if b.changes.iter().any(|c| c.agent.is_empty()) {
            return Err(WriteError::new(
                400,
                "bad_body",
                "every change needs a non-empty \"agent\" (an agent id)",
            ));
        }
        let nul = |t: &str| t.contains('\0');
        if b.reason.as_deref().is_some_and(nul)
            || b.changes
                .iter()
                .any(|c| nul(&c.agent) || nul(&c.presence) || c.message.as_deref().is_some_and(nul))
        {
            return Err(WriteError::new(
                400,
                "bad_body",
                "a text field holds U+0000, which no agent id, presence, message or reason may contain",
            ));
        }
        if b.changes.is_empty() || b.changes.len() > self.cfg.bulk_max {
            return Err(WriteError::new(
                400,
                "bad_body",
                format!(
                    "changes must hold 1 to {} items (writes.bulk_max)",
                    self.cfg.bulk_max
                ),
            ));
        }
        // Every named agent and the definitions, in one round trip.
        let ctx = self
            .registry
            .send(GetWriteContext {
                ids: b.changes.iter().map(|c| c.agent.clone()).collect(),
            })
            .await
            .map_err(internal)?;
        let defs = ready(ctx.definitions)?;
        let mut found = ctx.agents.into_iter();
        let mut results: Vec<Value> = vec![Value::Null; b.changes.len()];
        let mut ready: Vec<(usize, PresenceWrite, Attempt)> = Vec::new();
        for (i, item) in b.changes.iter().enumerate() {
            let mut attempt = Attempt {
                actor: actor.clone(),
                agent_id: item.agent.clone(),
                from: None,
                to: item.presence.clone(),
                reason: b.reason.clone(),
                lease: None,
            };
            let rec = found.next().flatten();
            let checked: Result<PresenceWrite, WriteError> = async {
                let rec = rec
                    // A foreign agent looks the same as an unknown one.
                    .filter(|r| principal.sees(&r.agent.division.id))
                    .ok_or_else(|| {
                        WriteError::new(
                            404,
                            "agent_not_found",
                            format!("no agent with id {:?}", item.agent),
                        )
                    })?;
                attempt.from = rec.agent.presence.as_ref().map(|p| p.definition_id.clone());
                let target = resolve(&defs, &item.presence)?;
                attempt.to = target.id.clone();
                check_policy(
                    &self.cfg,
                    rec.agent.routing_status.as_ref().map(|r| r.status),
                    &target,
                    b.force,
                )?;
                Ok(PresenceWrite {
                    user_id: item.agent.clone(),
                    definition_id: target.id,
                    message: item.message.clone(),
                })
            }
            .await;
            match checked {
                Ok(pw) => ready.push((i, pw, attempt)),
                Err(e) => {
                    self.audit(&attempt, &Err(e.clone()), e.status).await;
                    let mut r = e.body();
                    r["agent"] = json!(item.agent);
                    r["status"] = json!(e.status);
                    results[i] = r;
                }
            }
        }
        for (n, chunk) in ready.chunks(self.cfg.bulk_chunk).enumerate() {
            // The chunk's intents are recorded before Genesys is touched.
            let intents = chunk
                .iter()
                .map(|(_, _, a)| audit_record(a, &Ok(None), 0))
                .collect();
            let ids = match self.store.send(BeginIntents(intents)).await {
                Ok(Ok(ids)) => ids,
                Ok(Err(e)) => {
                    self.health
                        .writes_refused
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if n == 0 {
                        return Err(store_unavailable(e));
                    }
                    let refused = store_unavailable(e);
                    for (i, pw, _) in chunk {
                        let mut r = refused.body();
                        r["agent"] = json!(pw.user_id);
                        r["status"] = json!(refused.status);
                        results[*i] = r;
                    }
                    continue;
                }
                Err(e) => return Err(internal(e)),
            };
            let writes: Vec<PresenceWrite> = chunk.iter().map(|(_, pw, _)| pw.clone()).collect();
            let outcome = self.upstream.write_bulk(writes).await.map_err(internal)?;
            for ((i, pw, attempt), audit_id) in chunk.iter().zip(ids) {
                let res: Result<Option<String>, WriteError> = match &outcome {
                    Ok(confirmed) => match confirmed.iter().find(|c| c.user_id == pw.user_id) {
                        Some(c) => Ok(c.correlation_id.clone()),
                        None => Err(WriteError::new(
                            502,
                            "not_confirmed",
                            "Genesys did not confirm this agent's change",
                        )),
                    },
                    Err(e) => Err(upstream_error(e.clone())),
                };
                let status = res.as_ref().map(|_| 200).unwrap_or_else(|e| e.status);
                let commit = CommitWrite {
                    lease: None,
                    audit: audit_record(attempt, &res, status),
                    audit_id: Some(audit_id),
                    idempotency: None,
                };
                let recorded = matches!(self.store.send(commit.clone()).await, Ok(Ok(())));
                if !recorded {
                    self.keep_record(commit);
                }
                results[*i] = match res {
                    Ok(_) if recorded => {
                        json!({"agent": pw.user_id, "status": 200, "presence": pw.definition_id})
                    }
                    Ok(_) => {
                        json!({"agent": pw.user_id, "status": 200, "presence": pw.definition_id, "record": "pending"})
                    }
                    Err(e) => {
                        let mut r = e.body();
                        r["agent"] = json!(pw.user_id);
                        r["status"] = json!(e.status);
                        r
                    }
                };
            }
        }
        let ok = results.iter().filter(|r| r["status"] == 200).count();
        Ok(json!({"succeeded": ok, "failed": results.len() - ok, "results": results}))
    }

    /// `GET /api/v1/audit` minus HTTP: the audit records matching the query
    /// string, newest first; a division-scoped `principal` sees its
    /// divisions' agents only.
    pub async fn audit_log(&self, principal: &Principal, query: &str) -> Result<Value, WriteError> {
        let q: AuditQuery = serde_urlencoded::from_str(query).map_err(|e| {
        WriteError::new(400, "bad_parameter", format!("{e}; parameters: agent, actor, result, from, to (RFC 3339), limit (1–1000), offset"))
            .with(json!({"parameter": "query"}))
    })?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(
                WriteError::new(400, "bad_parameter", "limit must be 1 to 1000")
                    .with(json!({"parameter": "limit"})),
            );
        }
        let offset = q.offset.unwrap_or(0);
        // A division-scoped caller sees the records of its divisions' agents.
        let agent_ids = match &principal.divisions {
            None => None,
            Some(d) => Some(
                self.registry
                    .send(AgentIdsIn {
                        divisions: d.as_ref().clone(),
                    })
                    .await
                    .map_err(internal)?,
            ),
        };
        let (records, total) = self
            .store
            .send(QueryAudit {
                agent_ids,
                agent_id: q.agent,
                actor: q.actor,
                result: q.result,
                from: q.from,
                to: q.to,
                limit,
                offset,
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(json!({"total": total, "limit": limit, "offset": offset, "records": records}))
    }
}

/// `leaseSeconds`: a non-negative whole number (`900` or `900.0`) or null.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(D::Error::custom(format!(
            "leaseSeconds {n} is not a whole number of seconds ≥ 0"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkItem {
    agent: String,
    presence: String,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkBody {
    changes: Vec<BulkItem>,
    reason: Option<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    agent: Option<String>,
    actor: Option<String>,
    result: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// Runs out leases: every second, an expired lease whose presence is still
/// the agent's gets the fallback presence (audited as actor `lease`).
/// Leases live in the store, so they survive restarts. A store (or
/// Genesys) failure makes the loop back off ([`Backoff::store`]) instead
/// of trying again every second.
pub async fn lease_loop(w: Arc<Writes>, stop: tokio_util::sync::CancellationToken) {
    let mut backoff = Backoff::store();
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(1);
        match lease_pass(&w).await {
            Ok(()) => backoff.reset(),
            Err(None) => return,
            Err(Some(e)) => {
                wait = backoff.fail().max(wait);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "lease upkeep failed; backing off");
            }
        }
    }
}

/// One pass over the leases. `Err(None)`: the registry stopped;
/// `Err(Some(why))`: the store or Genesys failed (back off).
async fn lease_pass(w: &Writes) -> Result<(), Option<String>> {
    if w.cluster.as_ref().is_some_and(|c| !c.is_leader()) {
        return Ok(()); // the leader runs expiries (its store may be shared)
    }
    let leases = match w.store.send(ListLeases).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return Err(Some(e.to_string())),
        Err(_) => return Err(None),
    };
    let now = Utc::now();
    if !leases.iter().any(|l| l.expires_at <= now) {
        return Ok(());
    }
    // Judge leases only against a complete picture of the org (after a
    // restart the registry is empty until the first sync).
    match w.registry.send(crate::registry::GetReadiness).await {
        Ok(r) if r.synced => {}
        Ok(_) => return Ok(()),
        Err(_) => return Err(None),
    }
    let mut trouble = None;
    for l in leases.into_iter().filter(|l| l.expires_at <= now) {
        let current = match w
            .registry
            .send(GetAgent {
                id: l.agent_id.clone(),
            })
            .await
        {
            Ok(Some(r)) => r.agent.presence.as_ref().map(|p| p.definition_id.clone()),
            Ok(None) => None,
            Err(_) => return Err(None),
        };
        if current.as_deref() == Some(l.definition_id.as_str()) {
            // Take the lease first: of the nodes sharing the store, one runs it out.
            match w.store.send(TakeLease(l.clone())).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => continue, // taken elsewhere, or renewed meanwhile
                Ok(Err(e)) => {
                    trouble = Some(e.to_string());
                    continue;
                }
                Err(_) => return Err(None),
            }
            let change = PresenceChange {
                presence: l.fallback_definition_id.clone(),
                message: None,
                reason: Some(format!("lease set by {} expired", l.actor)),
                lease_seconds: None,
                force: true,
            };
            match w
                .change("lease".into(), l.agent_id.clone(), change, None)
                .await
            {
                Ok(_) => {
                    tracing::info!(agent = %l.agent_id, "lease expired; fallback presence set")
                }
                Err(e) if e.is_server_error() => {
                    tracing::warn!(agent = %l.agent_id, error = %e, "lease fallback failed; will retry");
                    trouble = Some(e.to_string());
                    // Put it back for the next pass (here or on another node).
                    let _ = w
                        .store
                        .send(PutLease {
                            agent_id: l.agent_id.clone(),
                            lease: Some(l.clone()),
                        })
                        .await;
                }
                Err(e) => {
                    tracing::warn!(agent = %l.agent_id, error = %e, "lease fallback refused; lease dropped")
                }
            }
            continue; // taken: nothing left to clear
        }
        // `change` clears the lease on success; clear it in the other cases.
        match w
            .store
            .send(PutLease {
                agent_id: l.agent_id.clone(),
                lease: None,
            })
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => trouble = Some(e.to_string()),
            Err(_) => return Err(None),
        }
    }
    trouble.map_or(Ok(()), |t| Err(Some(t)))
}

/// Commits the records [`Writes::keep_record`] kept (writes Genesys
/// accepted while the store failed), oldest first, backing off while the
/// store still refuses them.
pub async fn record_loop(w: Arc<Writes>, stop: tokio_util::sync::CancellationToken) {
    let mut backoff = Backoff::store();
    loop {
        let front = w.records.lock().ok().and_then(|q| q.front().cloned());
        let Some(commit) = front else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = w.records_wake.notified() => {}
            }
            continue;
        };
        match w.store.send(commit).await {
            Ok(Ok(())) => {
                backoff.reset();
                if let Ok(mut q) = w.records.lock() {
                    q.pop_front();
                    w.health
                        .records_pending
                        .store(q.len() as u64, Ordering::Relaxed);
                    if q.is_empty() {
                        tracing::info!("every kept write record is committed");
                    }
                }
            }
            Ok(Err(e)) => {
                let wait = backoff.fail();
                tracing::warn!(error = %e, waiting = w.records_pending(), retry_in_ms = wait.as_millis() as u64, "kept write records still cannot be committed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(_) => return,
        }
    }
}

/// How a key left in flight by a previous run was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Genesys shows the requested presence: the key answers 200 (the agent).
    Applied,
    /// Genesys does not: the key answers 409 `idempotency_abandoned`.
    Abandoned,
}

/// Settles the `Idempotency-Key`s a previous run left in flight (it
/// stopped between claiming a key and recording its answer), once the
/// first sync has re-read the org from Genesys: a key whose agent now has
/// the requested presence answers 200 with the agent (and gets the audit
/// record and the lease it asked for, the lease counted from when the key
/// was claimed); any other answers 409 `idempotency_abandoned`, telling
/// the client to re-read the agent and retry with a new key. Until then
/// such keys answer 409 `idempotency_recovering` (retry in a few seconds).
///
/// With PostgreSQL (nodes sharing the store) only keys left in flight
/// longer than [`crate::store::STALE_AFTER`] are taken (younger ones may
/// be running on another node), at start-up and every minute after.
///
/// The same first sync is where `writes.lease_fallback` is checked against
/// the org's presences (logged here; `/readyz` reports it until fixed).
pub async fn settle_keys(w: Arc<Writes>, stop: tokio_util::sync::CancellationToken) {
    loop {
        match w.registry.send(crate::registry::GetReadiness).await {
            Ok(r) if r.synced => break,
            Ok(_) => {}
            Err(_) => return,
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    if let Ok(defs) = w.registry.send(GetDefinitions).await {
        if let Err(e) = fallback(&defs, &w.cfg.lease_fallback) {
            tracing::error!(reason = %e.reason, "writes.lease_fallback is wrong for this org; leased writes are refused and /readyz reports it");
        }
    }
    let mut backoff = Backoff::store();
    loop {
        let keys = match w.store.send(ClaimStale).await {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "looking for idempotency keys left in flight failed");
                Vec::new()
            }
            Err(_) => return,
        };
        if !settle_all(&w, keys, &mut backoff, &stop).await {
            return;
        }
        // PostgreSQL: keys of nodes that went away since (`STALE_AFTER`).
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// Settles `keys`, retrying each with backoff; `false` when stopped.
async fn settle_all(
    w: &Writes,
    keys: Vec<crate::store::InFlightKey>,
    backoff: &mut Backoff,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut todo: VecDeque<_> = keys.into();
    while let Some(k) = todo.front() {
        match w.settle(k).await {
            Ok(how) => {
                backoff.reset();
                let counter = match how {
                    Settled::Applied => &w.health.keys_settled,
                    Settled::Abandoned => &w.health.keys_abandoned,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::info!(outcome = ?how, "idempotency key left in flight settled");
                todo.pop_front();
            }
            Err(e) => {
                let wait = backoff.fail();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "settling an idempotency key failed");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    true
}

impl Writes {
    /// Settles one key left in flight ([`settle_keys`]).
    async fn settle(&self, k: &crate::store::InFlightKey) -> Result<Settled, String> {
        let actor = k
            .key
            .split_once('\u{1f}')
            .map_or("unknown", |(a, _)| a)
            .to_string();
        let (agent_id, request) = k.fingerprint.split_once('\n').unwrap_or(("", ""));
        let change: Option<PresenceChange> = serde_json::from_str(request).ok();
        let mut ctx = self
            .registry
            .send(GetWriteContext {
                ids: vec![agent_id.to_string()],
            })
            .await
            .map_err(|e| e.to_string())?;
        let (found, defs) = (ctx.agents.pop().flatten(), ctx.definitions);
        let target = change
            .as_ref()
            .and_then(|c| resolve(&defs, &c.presence).ok());
        let agent = found.map(|r| r.agent);
        let current = agent
            .as_ref()
            .and_then(|a| a.presence.as_ref())
            .map(|p| p.definition_id.clone());
        let mut attempt = Attempt {
            actor,
            agent_id: agent_id.to_string(),
            from: None,
            to: target
                .as_ref()
                .map(|t| t.id.clone())
                .or_else(|| change.as_ref().map(|c| c.presence.clone()))
                .unwrap_or_default(),
            reason: change.as_ref().and_then(|c| c.reason.clone()),
            lease: None,
        };
        let applied = matches!((&target, &current), (Some(t), Some(c)) if &t.id == c);
        let (how, outcome, mut audit) = if applied {
            let mut body = agent
                .as_ref()
                .map(|a| serde_json::to_value(&**a).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            let lease = match (change.as_ref().and_then(|c| c.lease_seconds), &target) {
                (Some(secs), Some(t)) => {
                    fallback(&defs, &self.cfg.lease_fallback)
                        .ok()
                        .map(|f| Lease {
                            agent_id: agent_id.to_string(),
                            definition_id: t.id.clone(),
                            expires_at: k.created + chrono::Duration::seconds(secs as i64),
                            fallback_definition_id: f.id,
                            actor: attempt.actor.clone(),
                        })
                }
                _ => None,
            };
            if let Some(o) = body.as_object_mut() {
                o.insert("correlationId".into(), Value::Null);
                o.insert("settledAfterRestart".into(), json!(true));
                if let Some(l) = &lease {
                    o.insert(
                        "leaseExpiresAt".into(),
                        json!(crate::model::iso(l.expires_at)),
                    );
                }
            }
            attempt.lease = lease.map(|l| PutLease {
                agent_id: agent_id.to_string(),
                lease: Some(l),
            });
            let mut audit = audit_record(&attempt, &Ok(None), 200);
            audit.detail =
                Some("settled after a restart: Genesys shows the requested presence".into());
            (Settled::Applied, (200, body.to_string()), audit)
        } else {
            let e = WriteError::new(
                409,
                "idempotency_abandoned",
                "the gateway stopped before this request finished, and Genesys does not show the requested presence; re-read the agent and, if the change is still wanted, send it again with a new Idempotency-Key",
            );
            let audit = audit_record(&attempt, &Err(e.clone()), e.status);
            (Settled::Abandoned, (e.status, e.body().to_string()), audit)
        };
        audit.from_presence = current;
        self.store
            .send(SettleKey {
                key: k.key.clone(),
                outcome,
                audit,
                lease: attempt.lease.take(),
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(how)
    }
}
