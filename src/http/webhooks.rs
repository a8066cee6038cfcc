//! HTTP handlers of webhook delivery (`crate::webhooks`):
//! `GET /api/v1/webhooks` (subscribers and counters, never secrets),
//! `POST /api/v1/webhooks/{name}/replay` and
//! `GET /api/v1/webhooks/{name}/dead-letters`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::store::journal::{DeadLetters, Replay};
use crate::webhooks::WebhookApi;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    from: String,
    to: Option<String>,
}

fn parse_time(param: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::BadInput {
            param: param.into(),
            reason: format!("{v:?} is not an RFC 3339 time such as 2026-05-20T08:00:00Z: {e}"),
        })?;
    Ok(crate::history::in_range(param, v, t)?)
}

/// `POST /api/v1/webhooks/{name}/replay?from=<RFC 3339>[&to=]`: queue again
/// every journaled event observed in the range that passes the filter.
pub(crate) async fn replay(
    req: HttpRequest,
    name: web::Path<String>,
    api: web::Data<Arc<WebhookApi>>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if api.hooks.find(&name).is_none() {
        return Err(ApiError::Missing(format!(
            "no webhook subscriber named {name:?}"
        )));
    }
    let q: ReplayQuery =
        serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::BadInput {
            param: "query".into(),
            reason: format!("expected from=<RFC 3339>[&to=<RFC 3339>]: {e}"),
        })?;
    let from = parse_time("from", &q.from)?;
    let to = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?;
    let queued = api
        .journal
        .send(Replay {
            subscriber: name.clone(),
            from,
            to,
        })
        .await
        .map_err(|e| ApiError::Store(e.to_string()))?
        .map_err(|e| ApiError::Store(e.to_string()))?;
    Ok(HttpResponse::Accepted().json(json!({"subscriber": name, "queued": queued})))
}

/// `GET /api/v1/webhooks`: subscribers and their counters (never secrets).
pub(crate) async fn list(
    req: HttpRequest,
    api: web::Data<Arc<WebhookApi>>,
) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    let subs: Vec<Value> = api
        .hooks
        .subs
        .iter()
        .map(|s| {
            let st = &s.stats;
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
            json!({
                "name": s.cfg.name, "url": s.cfg.url, "filter": s.filter,
                "enqueued": g(&st.enqueued), "delivered": g(&st.delivered),
                "attempts": g(&st.attempts), "failures": g(&st.failures),
                "deadLettered": g(&st.dead_lettered), "replayed": g(&st.replayed),
                "pending": g(&st.pending),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "webhooks": subs })))
}

/// `GET /api/v1/webhooks/{name}/dead-letters`: the newest 100 dead letters.
pub(crate) async fn dead_letters(
    req: HttpRequest,
    name: web::Path<String>,
    api: web::Data<Arc<WebhookApi>>,
) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    let name = name.into_inner();
    if api.hooks.find(&name).is_none() {
        return Err(ApiError::Missing(format!(
            "no webhook subscriber named {name:?}"
        )));
    }
    let rows = api
        .journal
        .send(DeadLetters {
            subscriber: name,
            limit: 100,
        })
        .await
        .map_err(|e| ApiError::Store(e.to_string()))?
        .map_err(|e| ApiError::Store(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "deadLetters": rows })))
}
