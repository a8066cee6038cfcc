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
//! 2. the registry once for the agent and the definitions
//!    ([`GetWriteContext`]), after the body arrived, so that `If-Match`
//!    and the transition policy judge the agent as it is now;
//! 3. the store once to begin an `Idempotency-Key` (only with one);
//! 4. the upstream once, which
//! 5. hands the confirmed presence to the registry, whose answer comes
//!    once the journal has committed it and carries the agent after the
//!    change;
//! 6. the store once for lease + audit + idempotent answer
//!    ([`CommitWrite`], one transaction).
//!
//! A bulk write reads every named agent and the definitions in one
//! registry round trip.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::genesys::rest::RestError;
use crate::genesys::writes::PresenceWrite;
use crate::genesys::Genesys;
use crate::model::{PresenceDefinition, RoutingStatus, SystemPresence};
use crate::registry::{AgentIdsIn, AgentRecord, GetAgent, GetWriteContext, Registry};
use crate::store::{
    AppendAudit, AuditRecord, BeginIdempotent, CommitWrite, FinishIdempotent, Idempotent, Lease,
    ListLeases, PutLease, QueryAudit, Store,
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

/// What the route policy already read for a write: the agent whose
/// division decided access. The write path reads the agent again after
/// the body arrived (a record read before it can be seconds old) and uses
/// this one only if the agent left the directory meanwhile.
#[derive(Debug, Clone)]
pub struct Known {
    /// The agent's record.
    pub agent: AgentRecord,
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
    }
}

impl Writes {
    /// One guarded change: checks, Genesys write, lease, audit. Returns the
    /// agent JSON after the change.
    pub async fn change(
        &self,
        actor: String,
        agent_id: String,
        change: PresenceChange,
        expected_version: Option<Option<u64>>,
    ) -> Result<Value, WriteError> {
        self.change_checked(actor, agent_id, change, expected_version, None, None)
            .await
    }

    /// [`Self::change`] with what the caller already read ([`Known`]: the
    /// access check's agent record and definitions), and the request's
    /// `Idempotency-Key` (already begun) whose answer is committed with the
    /// lease and the audit record, in one store round trip.
    pub async fn change_checked(
        &self,
        actor: String,
        agent_id: String,
        change: PresenceChange,
        expected_version: Option<Option<u64>>,
        checked: Option<Known>,
        idempotency_key: Option<String>,
    ) -> Result<Value, WriteError> {
        let mut attempt = Attempt {
            actor,
            agent_id: agent_id.clone(),
            from: None,
            to: change.presence.clone(),
            reason: change.reason.clone(),
            lease: None,
        };
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
        let forget = idempotency.as_ref().map(|f| f.key.clone());
        let committed = self
            .store
            .send(CommitWrite {
                lease: attempt.lease.take(),
                audit,
                idempotency,
            })
            .await
            .map_err(internal)
            .and_then(|r| r.map_err(internal));
        if let Err(e) = committed {
            tracing::error!(error = %e, agent = %attempt.agent_id, "could not record the write (lease, audit)");
            if let Some(key) = forget {
                let _ = self
                    .store
                    .send(FinishIdempotent { key, outcome: None })
                    .await;
            }
            if result.is_ok() {
                return Err(e);
            }
        }
        result.map(|(v, _)| v)
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
            Some(s) => Some((
                s,
                resolve(&defs, &self.cfg.lease_fallback)
                    .map_err(|_| internal("writes.lease_fallback names no active presence"))?,
            )),
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
        let change: PresenceChange = match serde_json::from_slice(body) {
            Ok(c) => c,
            Err(e) => {
                let err = WriteError::new(400, "bad_body", format!("body must be {{\"presence\": \"<definition id | label | system presence>\", \"message\"?, \"reason\"?, \"leaseSeconds\"?, \"force\"?}}: {e}"));
                let attempt = Attempt {
                    actor,
                    agent_id,
                    from: None,
                    to: String::from_utf8_lossy(body).chars().take(200).collect(),
                    reason: None,
                    lease: None,
                };
                self.audit(&attempt, &Err(err.clone()), err.status).await;
                return Err(err);
            }
        };
        let expected = expected?;
        let key = key?;
        if let Some(key) = &key {
            let fingerprint = format!(
                "{agent_id}\n{}",
                serde_json::to_string(&change).unwrap_or_default()
            );
            match self
                .store
                .send(BeginIdempotent {
                    key: key.clone(),
                    fingerprint,
                })
                .await
                .map_err(internal)?
                .map_err(internal)?
            {
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
                Idempotent::Mismatch => {
                    return Err(WriteError::new(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for a different request; use a new key",
                    ))
                }
            }
        }
        let result = self
            .change_checked(actor, agent_id, change, expected, checked, key)
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
        for chunk in ready.chunks(self.cfg.bulk_chunk) {
            let writes: Vec<PresenceWrite> = chunk.iter().map(|(_, pw, _)| pw.clone()).collect();
            let outcome = self.upstream.write_bulk(writes).await.map_err(internal)?;
            for (i, pw, attempt) in chunk {
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
                self.audit(attempt, &res, status).await;
                results[*i] = match res {
                    Ok(_) => {
                        json!({"agent": pw.user_id, "status": 200, "presence": pw.definition_id})
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
/// Leases live in the store, so they survive restarts.
pub async fn lease_loop(w: Arc<Writes>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(Ok(leases)) = w.store.send(ListLeases).await else {
            continue;
        };
        let now = Utc::now();
        if !leases.iter().any(|l| l.expires_at <= now) {
            continue;
        }
        // Judge leases only against a complete picture of the org (after a
        // restart the registry is empty until the first sync).
        match w.registry.send(crate::registry::GetReadiness).await {
            Ok(r) if r.synced => {}
            Ok(_) => continue,
            Err(_) => return,
        }
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
                Err(_) => return,
            };
            if current.as_deref() == Some(l.definition_id.as_str()) {
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
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(agent = %l.agent_id, error = %e, "lease fallback refused; lease dropped")
                    }
                }
            }
            // `change` clears the lease on success; clear it in the other cases.
            let _ = w
                .store
                .send(PutLease {
                    agent_id: l.agent_id.clone(),
                    lease: None,
                })
                .await;
        }
    }
}
