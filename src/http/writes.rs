//! HTTP handlers of the guarded write path (`crate::writes`):
//! `PATCH /api/v1/agents/{id}/presence`, `POST /api/v1/presence/bulk` and
//! `GET /api/v1/audit`. They read the headers (`If-Match`,
//! `Idempotency-Key`, the peer address for anonymous callers), hand the
//! body to [`Writes`] and shape the answer; refusals are [`ApiError`]s.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::Value;

use super::table::CheckedAgent;
use super::ApiError;
use crate::auth::Principal;
use crate::writes::{Known, PatchOutcome, WriteError, Writes};

/// `PATCH /api/v1/agents/{id}/presence`.
pub(crate) async fn patch_presence(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    body: web::Bytes,
    w: web::Data<Arc<Writes>>,
) -> Result<HttpResponse, ApiError> {
    super::extract::json_content_type(&req)?;
    let agent_id = path.into_inner();
    let actor = actor_of(&req, &principal);
    let expected = if_match(&req);
    let key = idempotency_key(&req, &actor);
    // The agent the access check read (division-scoped callers), passed on.
    let checked = req
        .extensions()
        .get::<CheckedAgent>()
        .map(|c| Known { agent: c.0.clone() });
    match w
        .patch(actor, agent_id, &body, expected, key, checked)
        .await?
    {
        PatchOutcome::Replayed { status, body } => Ok(HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        )
        .insert_header(("Idempotent-Replayed", "true"))
        .content_type("application/json")
        .body(body)),
        PatchOutcome::Changed(v) => {
            let mut resp = HttpResponse::Ok();
            if let Some(ver) = v.get("version").and_then(Value::as_u64) {
                resp.insert_header((header::ETAG, format!("\"{ver}\"")));
            }
            Ok(resp.json(v))
        }
    }
}

/// `POST /api/v1/presence/bulk`: many agents at once, with a result per agent.
pub(crate) async fn bulk(
    req: HttpRequest,
    principal: Principal,
    body: web::Bytes,
    w: web::Data<Arc<Writes>>,
) -> Result<HttpResponse, ApiError> {
    super::extract::json_content_type(&req)?;
    let actor = actor_of(&req, &principal);
    Ok(HttpResponse::Ok().json(w.bulk(actor, &principal, &body).await?))
}

/// `GET /api/v1/audit?agent=&actor=&result=&from=&to=&limit=&offset=`, newest first.
pub(crate) async fn audit(
    req: HttpRequest,
    principal: Principal,
    w: web::Data<Arc<Writes>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(w.audit_log(&principal, req.query_string()).await?))
}

/// Parses an `If-Match` value: `"7"`, `W/"7"`, `7` or `*`.
fn if_match(req: &HttpRequest) -> Result<Option<Option<u64>>, WriteError> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(Some(None));
    }
    let n = s.trim_start_matches("W/").trim_matches('"');
    n.parse::<u64>().map(|n| Some(Some(n))).map_err(|_| {
        WriteError::new(
            400,
            "bad_if_match",
            format!(
                "If-Match {s:?} is not an agent version; use the ETag of GET /api/v1/agents/{{id}}"
            ),
        )
    })
}

/// The audit log's actor: the credential's name, or `anonymous@<ip>` when
/// auth is off.
pub(crate) fn actor_of(req: &HttpRequest, p: &Principal) -> String {
    if !p.anonymous {
        return p.name.clone();
    }
    // A request relayed by another cluster node: the client's address as
    // that node saw it (believed only from a relay, see `crate::cluster`).
    let relayed = req
        .extensions()
        .get::<crate::cluster::Relayed>()
        .and_then(|r| r.peer.clone());
    let ip = relayed.unwrap_or_else(|| {
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    });
    format!("anonymous@{ip}")
}

/// The `Idempotency-Key` header, scoped to the caller: two callers using
/// the same key never share an answer. Any value of 1 to 200 visible ASCII
/// characters is accepted (RFC 9110 field values may carry other bytes; a
/// key that holds them is refused with 400, never ignored).
fn idempotency_key(req: &HttpRequest, actor: &str) -> Result<Option<String>, WriteError> {
    let Some(v) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            WriteError::new(
                400,
                "bad_idempotency_key",
                "Idempotency-Key must be 1 to 200 visible ASCII characters (e.g. a UUID)",
            )
        })?;
    Ok(Some(format!("{actor}\u{1f}{key}")))
}
