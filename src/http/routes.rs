//! Route handlers. Each parses its parameters (bad values are a 400 naming
//! the parameter), then asks the registry or starts a session.

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::registry::agent::AgentWithPrevious;
use crate::registry::{
    Cursor, Filter, FilterError, GetAgent, GetDefinitions, GetDivisions, GetReadiness, GetSnapshot,
    GetStats,
};
use crate::session::{self, SessionParams};

use super::table::CheckedAgent;
use super::{ApiError, AppState};

/// How strictly [`parse_query`] reads a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryMode {
    /// REST: unknown parameters and malformed resume points are a 400.
    Strict,
    /// The two stream endpoints: a reconnect must never turn into an
    /// error, so unknown parameters are ignored (and reported in
    /// [`ParsedQuery::ignored`]) and a resume point that cannot be read is
    /// dropped (the stream starts with a fresh snapshot). Bad filter values
    /// are still a 400: they would never work.
    Stream,
}

/// A parsed query string.
#[derive(Debug, Default)]
pub struct ParsedQuery {
    /// The filter (normalised).
    pub filter: Filter,
    /// The resume point, when one of the cursor keys held a readable one.
    pub since: Option<Cursor>,
    /// Parameters ignored in [`QueryMode::Stream`] (unknown names, and
    /// resume points that could not be read).
    pub ignored: Vec<String>,
}

/// Parses a query string into a filter and, when one of `cursor_keys` is
/// present, a resume point. Keys may repeat and values may be comma-joined.
/// Unknown keys and malformed resume points are refused in
/// [`QueryMode::Strict`] and ignored in [`QueryMode::Stream`].
pub fn parse_query(
    qs: &str,
    cursor_keys: &[&str],
    mode: QueryMode,
) -> Result<ParsedQuery, FilterError> {
    let pairs: Vec<(String, String)> = match mode {
        QueryMode::Strict => serde_urlencoded::from_str(qs).map_err(|e| FilterError {
            param: "query".into(),
            reason: format!("malformed query string: {e}"),
        })?,
        // Total: invalid UTF-8 is replaced, never refused.
        QueryMode::Stream => form_urlencoded::parse(qs.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    };
    let mut out = ParsedQuery::default();
    let mut f = Filter::default();
    for (k, v) in &pairs {
        // Checked by the interaction layer (`http::interactions::wanted`)
        // and the guard (`auth`).
        if k == "interactions" || k == "ticket" || k == "queues" {
            continue;
        }
        if cursor_keys.contains(&k.as_str()) {
            match (Cursor::parse(k, v), mode) {
                (Ok(c), _) => out.since = Some(c),
                (Err(e), QueryMode::Strict) => return Err(e),
                (Err(_), QueryMode::Stream) => out.ignored.push(k.clone()),
            }
            continue;
        }
        if !f.add(k, v)? {
            if mode == QueryMode::Stream {
                out.ignored.push(k.clone());
                continue;
            }
            let mut expected =
                "division, queue, presence, routing, agent, interactions, queues".to_owned();
            for c in cursor_keys {
                expected.push_str(", ");
                expected.push_str(c);
            }
            return Err(FilterError {
                param: k.clone(),
                reason: format!("unknown parameter; expected {expected}"),
            });
        }
    }
    out.filter = f.normalise();
    Ok(out)
}

/// Refuses division ids the directory does not know (once it is synced:
/// before that nothing is known and every division is accepted). The
/// reason lists the known divisions the client may see.
pub(super) async fn check_divisions(
    req: &HttpRequest,
    st: &AppState,
    filter: &Filter,
) -> Result<(), ApiError> {
    if filter.divisions.is_empty() {
        return Ok(());
    }
    let Some(known) = st.registry.send(GetDivisions).await? else {
        return Ok(());
    };
    let unknown: Vec<&String> = filter
        .divisions
        .iter()
        .filter(|d| known.binary_search(d).is_err())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let principal = crate::http::guard::principal(req)?;
    let visible: Vec<&str> = known
        .iter()
        .filter(|d| principal.divisions.as_ref().is_none_or(|a| a.contains(d)))
        .map(String::as_str)
        .collect();
    Err(FilterError {
        param: "division".into(),
        reason: format!(
            "unknown division {}; known divisions: {}",
            unknown
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            visible.join(",")
        ),
    }
    .into())
}

/// Adds `X-Ignored-Parameters` to a stream answer and logs the names once
/// per request, so a typo is visible without failing the reconnect.
fn report_ignored(resp: &mut HttpResponse, ignored: &[String], path: &str) {
    if ignored.is_empty() {
        return;
    }
    let list = ignored.join(",");
    tracing::info!(path, ignored = %list, "stream request: ignored unknown or unreadable parameters");
    if let Ok(v) = header::HeaderValue::from_str(&list) {
        resp.headers_mut()
            .insert(header::HeaderName::from_static("x-ignored-parameters"), v);
    }
}

/// The registry's epoch and seq, for a draining answer's final `status`.
async fn position(st: &AppState) -> (u64, u64) {
    st.registry
        .send(GetStats)
        .await
        .map(|s| (s.epoch, s.seq))
        .unwrap_or((0, 0))
}

fn opt(f: Filter) -> Option<Filter> {
    (!f.is_empty()).then_some(f)
}

/// `GET /api/v1/agents`: a filtered snapshot with counts.
pub async fn agents(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_query(req.query_string(), &[], QueryMode::Strict)?.filter;
    check_divisions(&req, &st, &filter).await?;
    let filter = crate::auth::scope_filter(&crate::http::guard::principal(&req)?, filter)?;
    let body = st
        .registry
        .send(GetSnapshot {
            filter: opt(filter),
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// `GET /api/v1/agents/{id}`: one agent with `ETag: "<version>"`.
pub async fn agent(
    req: HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    let id = path.into_inner();
    // A division-scoped caller's agent was found by the route policy.
    let checked = req.extensions().get::<CheckedAgent>().map(|c| c.0.clone());
    let rec = match checked {
        Some(r) => r,
        None => st
            .registry
            .send(GetAgent { id: id.clone() })
            .await?
            .ok_or(ApiError::AgentNotFound(id))?,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", rec.agent.version)))
        .json(AgentWithPrevious {
            agent: &rec.agent,
            previous: rec.previous.as_deref(),
        }))
}

/// `GET /api/v1/presence-definitions`.
pub async fn definitions(
    req: HttpRequest,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    let defs = st.registry.send(GetDefinitions).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "definitions": defs })))
}

fn session_params(
    req: &HttpRequest,
    st: &AppState,
    filter: Filter,
    since: Option<Cursor>,
) -> Result<SessionParams, ApiError> {
    let principal = crate::http::guard::principal(req)?;
    let filter = crate::auth::scope_filter(&principal, filter)?;
    let interactions = super::interactions::wanted(req.query_string(), st, &filter)?;
    let ip = req.peer_addr().map(|a| a.ip());
    let guard = st.limits.try_acquire(ip).inspect_err(|e| {
        let c = match e {
            session::LimitError::Global(_) => &st.metrics.refused_global,
            session::LimitError::PerIp(..) => &st.metrics.refused_ip,
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })?;
    Ok(SessionParams {
        registry: st.registry.clone(),
        cfg: st.session.clone(),
        metrics: st.metrics.clone(),
        filter: opt(filter),
        since,
        interactions,
        queues: wants_queues(req.query_string())?
            .then(|| st.queues().cloned())
            .flatten(),
        guard,
        scope: principal.divisions.is_some().then_some(principal),
    })
}

/// True when the stream query asks for `queues` messages (`queues=1` or
/// `queues=true`; `0`, `false` or absent: no). Any other value is a 400
/// naming `queues`, like a bad `interactions` value: it would never work.
fn wants_queues(qs: &str) -> Result<bool, ApiError> {
    let mut on = false;
    for (k, v) in form_urlencoded::parse(qs.as_bytes()) {
        if k != "queues" {
            continue;
        }
        on = match &*v {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err(FilterError {
                    param: "queues".into(),
                    reason: format!("invalid `queues` {v:?}: must be 1, true, 0 or false"),
                }
                .into())
            }
        };
    }
    Ok(on)
}

/// `GET /api/v1/stream`: Server-Sent Events. Resume with the
/// `Last-Event-ID` header, `?last_event_id=` or its alias `?lastEventId=`
/// (what EventSource polyfills append); the header wins. A resume point
/// that cannot be read or honoured starts with a fresh snapshot; unknown
/// parameters are ignored ([`QueryMode::Stream`]). While draining, the
/// answer is [`session::draining::sse`], never an error.
pub async fn stream(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(retry_ms) = st.limits.draining() {
        let (epoch, seq) = position(&st).await;
        return Ok(session::draining::sse(retry_ms, epoch, seq));
    }
    let mut q = parse_query(
        req.query_string(),
        &["last_event_id", "lastEventId"],
        QueryMode::Stream,
    )?;
    if let Some(h) = req.headers().get("Last-Event-ID") {
        match h.to_str().map(str::trim) {
            Ok("") => {}
            Ok(s) => match Cursor::parse("Last-Event-ID", s) {
                Ok(c) => q.since = Some(c),
                Err(_) => q.ignored.push("Last-Event-ID".into()),
            },
            Err(_) => q.ignored.push("Last-Event-ID".into()),
        }
    }
    check_divisions(&req, &st, &q.filter).await?;
    if req.method() == actix_web::http::Method::HEAD {
        // The headers a GET would get, without starting a session.
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish());
    }
    let p = session_params(&req, &st, q.filter, q.since)?;
    let mut resp = session::sse::start(&req, p);
    report_ignored(&mut resp, &q.ignored, req.path());
    Ok(resp)
}

/// `GET /api/v1/ws`: WebSocket. Resume with `?since=`; the same lenient
/// rules as [`stream`]. While draining, the socket is upgraded and closed
/// with 1001 ([`session::draining::ws`]).
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if st.limits.draining().is_some() {
        let (epoch, seq) = position(&st).await;
        return session::draining::ws(&req, body, epoch, seq)
            .map_err(|e| ApiError::Handshake(e.to_string()));
    }
    let q = parse_query(req.query_string(), &["since"], QueryMode::Stream)?;
    check_divisions(&req, &st, &q.filter).await?;
    let p = session_params(&req, &st, q.filter, q.since)?;
    let mut resp =
        session::ws::start(&req, body, p).map_err(|e| ApiError::Handshake(e.to_string()))?;
    report_ignored(&mut resp, &q.ignored, req.path());
    Ok(resp)
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 once the initial sync is in and the upstream is
/// connected, with the upstream health record (refused topics included);
/// 503 `not_ready` with the reason otherwise, also while the store cannot
/// take writes (`store: …`, see docs/operations.md) and while
/// `writes.lease_fallback` names no presence of the org (`writes: …`).
pub async fn readyz(st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &st.cluster else {
        return readiness(&st).await;
    };
    // A cluster member says which part it plays, ready or not.
    let status = cluster.status();
    let mut resp = match readiness(&st).await.and_then(|ok| {
        if status.role == crate::cluster::Role::Leader {
            Ok(ok) // it has the truth, whatever Redis does
        } else {
            cluster.check().map(|_| ok).map_err(ApiError::NotReady)
        }
    }) {
        Ok(_) => {
            let r = st.registry.send(GetReadiness).await?;
            serde_json::json!({"status": "ready", "upstream": r.health, "store": {"healthy": true}})
        }
        Err(e) => {
            let code = actix_web::ResponseError::status_code(&e);
            let mut body = serde_json::json!({"error": "not_ready", "reason": e.to_string()});
            body["role"] = serde_json::json!(status.role);
            body["cluster"] = serde_json::json!(status);
            return Ok(HttpResponse::build(code).json(body));
        }
    };
    resp["role"] = serde_json::json!(status.role);
    resp["cluster"] = serde_json::json!(status);
    Ok(HttpResponse::Ok().json(resp))
}

/// Readiness of this node's registry, store and write settings.
async fn readiness(st: &AppState) -> Result<HttpResponse, ApiError> {
    let r = st.registry.send(GetReadiness).await?;
    r.check().map_err(ApiError::NotReady)?;
    if let Some(h) = &st.ops.store {
        h.check()
            .map_err(|why| ApiError::NotReady(format!("store: {why}")))?;
    }
    if let Some(w) = st.writes() {
        let defs = st.registry.send(GetDefinitions).await?;
        crate::writes::fallback(&defs, &w.cfg.lease_fallback)
            .map_err(|e| ApiError::NotReady(format!("writes: {}", e.reason)))?;
    }
    Ok(HttpResponse::Ok().json(
        serde_json::json!({"status": "ready", "upstream": r.health, "store": {"healthy": true}}),
    ))
}

/// Any other path.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}
