//! HTTP handlers of presence history (`crate::history`):
//! `GET /api/v1/agents/{id}/history` (JSON, or CSV for `Accept: text/csv`
//! or `format=csv`, with a `Link: <…>; rel="next"` header when there is a
//! next page) and `GET /api/v1/agents/{id}/summary`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::ApiError;
use crate::history::History;

/// `GET /api/v1/agents/{id}/history?from=&to=&kind=&limit=&offset=`.
pub(crate) async fn history(
    req: HttpRequest,
    id: web::Path<String>,
    h: web::Data<Arc<History>>,
) -> Result<HttpResponse, ApiError> {
    let page = crate::history::page(&h, id.into_inner(), req.query_string()).await?;
    let wants_csv = page.csv
        || req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"));
    let mut resp = HttpResponse::Ok();
    if let Some(n) = &page.next {
        resp.insert_header((header::LINK, format!("<{n}>; rel=\"next\"")));
    }
    if wants_csv {
        return Ok(resp
            .content_type("text/csv; charset=utf-8")
            .body(page.csv()));
    }
    Ok(resp.json(page.json()))
}

/// `GET /api/v1/agents/{id}/summary?date=YYYY-MM-DD`.
pub(crate) async fn summary(
    req: HttpRequest,
    id: web::Path<String>,
    h: web::Data<Arc<History>>,
) -> Result<HttpResponse, ApiError> {
    let out = crate::history::summary(&h, id.into_inner(), req.query_string()).await?;
    Ok(HttpResponse::Ok().json(out))
}
