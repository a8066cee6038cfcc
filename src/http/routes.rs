//! Route handlers. Each parses its parameters (bad values are a 400 naming
//! the parameter), then asks the registry or starts a session.

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::registry::agent::AgentWithPrevious;
use crate::registry::{
    Cursor, Filter, FilterError, GetAgent, GetDefinitions, GetReadiness, GetSnapshot,
};
use crate::session::{self, SessionParams};

use super::table::CheckedAgent;
use super::{ApiError, AppState};

/// Parses a query string into a filter and, when one of `cursor_keys` is
/// present, a resume point. Keys may repeat and values may be comma-joined;
/// unknown keys are refused.
pub fn parse_query(
    qs: &str,
    cursor_keys: &[&str],
) -> Result<(Filter, Option<Cursor>), FilterError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(qs).map_err(|e| FilterError {
        param: "query".into(),
        reason: format!("malformed query string: {e}"),
    })?;
    let mut f = Filter::default();
    let mut since = None;
    for (k, v) in &pairs {
        // Checked by the interaction layer (`http::interactions::wanted`).
        if k == "interactions" || k == "ticket" {
            continue;
        }
        if cursor_keys.contains(&k.as_str()) {
            since = Some(Cursor::parse(k, v)?);
            continue;
        }
        if !f.add(k, v)? {
            let mut expected = "division, queue, presence, routing, agent, interactions".to_owned();
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
    Ok((f.normalise(), since))
}

fn opt(f: Filter) -> Option<Filter> {
    (!f.is_empty()).then_some(f)
}

/// `GET /api/v1/agents`: a filtered snapshot with counts.
pub async fn agents(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (filter, _) = parse_query(req.query_string(), &[])?;
    let filter = crate::auth::scope_filter(&crate::auth::principal(&req)?, filter)?;
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
pub async fn definitions(st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let defs = st.registry.send(GetDefinitions).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "definitions": defs })))
}

fn session_params(
    req: &HttpRequest,
    st: &AppState,
    filter: Filter,
    since: Option<Cursor>,
) -> Result<SessionParams, ApiError> {
    let principal = crate::auth::principal(req)?;
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
        guard,
        scope: principal.divisions.is_some().then_some(principal),
    })
}

/// `GET /api/v1/stream`: Server-Sent Events. Resume with the
/// `Last-Event-ID` header or `?last_event_id=`.
pub async fn stream(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (filter, mut since) = parse_query(req.query_string(), &["last_event_id"])?;
    if let Some(h) = req.headers().get("Last-Event-ID") {
        let s = h.to_str().map_err(|_| FilterError {
            param: "Last-Event-ID".into(),
            reason: "not ASCII".into(),
        })?;
        if !s.trim().is_empty() {
            since = Some(Cursor::parse("Last-Event-ID", s)?);
        }
    }
    if req.method() == actix_web::http::Method::HEAD {
        // The headers a GET would get, without starting a session.
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish());
    }
    let p = session_params(&req, &st, filter, since)?;
    Ok(session::sse::start(p))
}

/// `GET /api/v1/ws`: WebSocket. Resume with `?since=`.
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (filter, since) = parse_query(req.query_string(), &["since"])?;
    let p = session_params(&req, &st, filter, since)?;
    session::ws::start(&req, body, p).map_err(|e| ApiError::Handshake(e.to_string()))
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 once the initial sync is in and the upstream is connected.
pub async fn readyz(st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let r = st.registry.send(GetReadiness).await?;
    r.check().map_err(ApiError::NotReady)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// Any other path.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}
