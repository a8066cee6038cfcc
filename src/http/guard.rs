//! The HTTP edge of access control: the app-wide middleware [`edge`] that
//! runs before routing (origins, `OPTIONS`, body size, CORS headers on every
//! answer, JSON error bodies), authentication of a request
//! ([`Security::authenticate`]: bearer header or one-time ticket), the
//! [`Principal`] extractor handlers of protected routes take, the tickets
//! handler and the extractors' body limits. Who may call which route is the
//! route table's policy ([`crate::http::table`]); the credentials, roles and
//! scopes themselves are [`crate::auth`] (no actix-web types there).

use std::sync::atomic::Ordering;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::auth::{AuthError, Principal, Security};
use crate::http::{ApiError, AppState};

/// The ticket query parameter, if any.
fn ticket_param(qs: &str) -> Option<String> {
    form_urlencoded::parse(qs.as_bytes())
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
}

/// Is this path one of the static pages (public, no credentials, CORS `*`)?
fn is_asset(path: &str) -> bool {
    crate::http::assets::ASSETS
        .iter()
        .any(|(p, _, _)| *p == path)
}

/// The app-wide middleware (`App::wrap(from_fn(edge))`), run before
/// routing. It decides nothing about who may call what (that is the route
/// table's [`crate::http::table`] policy, run after routing); it:
/// 1. refuses a browser `Origin` that is not one of the gateway's public
///    origins nor in `server.allowed_origins` (403), except on static pages;
/// 2. answers every `OPTIONS` (CORS preflight or not) from the route table,
///    before any authentication: 204 with `Allow`, plus the CORS preflight
///    headers for an allowed `Origin`; 404 for a path the table lacks;
/// 3. refuses bodies over `server.max_body_bytes` (413);
/// 4. adds the CORS headers for an allowed `Origin` to every answer,
///    refusals included, so that a cross-origin page can read a 401;
/// 5. turns any error response that is not JSON yet into
///    `{"error","reason"}`.
pub async fn edge(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let sec = state.security.clone();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let asset = is_asset(req.match_info().as_str());
    if let (Some(o), false) = (&origin, asset) {
        if !sec.origin_allowed(o) {
            sec.metrics.forbidden.fetch_add(1, Ordering::Relaxed);
            return Ok(refuse(req, AuthError::Origin(o.clone())));
        }
    }
    // From here on an `Origin`, if any, is allowed (or the path is a page).
    let cors_origin = origin.filter(|_| !asset);
    let res = if req.method() == Method::OPTIONS {
        let allowed = crate::http::table::allowed_methods(req.match_info().as_str());
        let resp = if allowed.is_empty() {
            crate::http::ApiError::NotFound(format!("{} {}", req.method(), req.path()))
                .error_response()
        } else {
            let list = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut b = HttpResponse::NoContent();
            b.insert_header((header::ALLOW, list.clone()));
            if cors_origin.is_some() {
                b.insert_header(("Access-Control-Allow-Methods", list))
                    .insert_header((
                        "Access-Control-Allow-Headers",
                        "Authorization, Content-Type, If-Match, Idempotency-Key, Last-Event-ID",
                    ))
                    .insert_header(("Access-Control-Max-Age", "600"));
            }
            b.finish()
        };
        req.into_response(resp)
    } else {
        let too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|len| *len > sec.max_body_bytes as u64);
        match too_large {
            Some(len) => refuse(req, AuthError::TooLarge(len, sec.max_body_bytes)),
            None => next.call(req).await?,
        }
    };
    let mut res = json_errors(res).await?;
    if let Some(o) = cors_origin {
        if let Ok(v) = header::HeaderValue::from_str(&o) {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::VARY, header::HeaderValue::from_static("Origin"));
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                header::HeaderValue::from_static(
                    "ETag, Retry-After, WWW-Authenticate, Idempotent-Replayed, X-Ignored-Parameters",
                ),
            );
        }
    }
    Ok(res)
}

fn refuse(req: ServiceRequest, e: AuthError) -> ServiceResponse<BoxBody> {
    tracing::debug!(path = req.path(), error = %e, "request refused");
    req.into_response(ApiError::from(e).error_response())
}

impl Security {
    /// Authenticates a request for a protected route: the bearer header,
    /// else (where the route accepts them) a one-time ticket. With auth off
    /// the caller is the explicit [`Principal::anonymous`]; with auth on,
    /// no credentials is a 401. Never defaults to any other principal.
    pub fn authenticate(&self, req: &HttpRequest, tickets: bool) -> Result<Principal, AuthError> {
        if let Some(h) = req.headers().get(header::AUTHORIZATION) {
            let v = h.to_str().map_err(|_| {
                AuthError::Unauthenticated("Authorization header is not ASCII".into())
            })?;
            let cred = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| {
                    AuthError::Unauthenticated(
                        "expected `Authorization: Bearer <key or JWT>`".into(),
                    )
                })?
                .trim();
            if !self.enabled() {
                return Ok(Principal::anonymous());
            }
            return self.bearer(cred).map_err(AuthError::Unauthenticated);
        }
        if let Some(t) = ticket_param(req.query_string()) {
            if !tickets {
                return Err(AuthError::Unauthenticated(
                    "tickets are accepted on /api/v1/stream and /api/v1/ws only".into(),
                ));
            }
            if !self.enabled() {
                return Ok(Principal::anonymous());
            }
            return self.redeem(&t).ok_or_else(|| {
                AuthError::Unauthenticated(
                    "ticket unknown, expired or already used; POST /api/v1/tickets for a new one"
                        .into(),
                )
            });
        }
        if !self.enabled() {
            return Ok(Principal::anonymous());
        }
        Err(AuthError::Unauthenticated(
            "credentials required: `Authorization: Bearer <API key or JWT>` (streams: \
             `?ticket=` from POST /api/v1/tickets)"
                .into(),
        ))
    }
}

/// The caller the route policy recorded: a 401 when there is none (a
/// public route, or a route registered outside the table), never a default.
pub fn principal(req: &HttpRequest) -> Result<Principal, AuthError> {
    req.extensions().get::<Principal>().cloned().ok_or_else(|| {
        AuthError::Unauthenticated("this route has no access policy; refused".into())
    })
}

/// Handlers of protected routes take the caller as an argument; the route
/// policy recorded it. A handler reached without one (a public route, or a
/// route registered outside the table) gets a 401, never a default.
impl actix_web::FromRequest for Principal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(principal(req).map_err(ApiError::from))
    }
}

/// Rewrites an error response whose body is not JSON (actix extractor
/// errors, 405s…) as `{"error","reason"}`.
async fn json_errors(
    res: ServiceResponse<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(res);
    }
    let (req, resp) = res.into_parts();
    let headers = resp.headers().clone();
    let body = resp.into_body();
    let text = match body.size() {
        actix_web::body::BodySize::Sized(n) if n <= 64 * 1024 => {
            actix_web::body::to_bytes(body).await.unwrap_or_default()
        }
        _ => Default::default(),
    };
    let reason = String::from_utf8_lossy(&text).trim().to_owned();
    let allow = headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
    let reason = match (status, allow) {
        // Say what to use instead.
        (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) => format!(
            "{} is not allowed on {}; use {allow}",
            req.method(),
            req.path()
        ),
        _ if reason.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        _ => reason,
    };
    let mut resp = ApiError::http(status, reason).error_response();
    for (k, v) in headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            resp.headers_mut().append(k.clone(), v.clone());
        }
    }
    Ok(ServiceResponse::new(req, resp))
}

/// `POST /api/v1/tickets`: a one-time ticket for `?ticket=` on the stream
/// endpoints, valid `auth.ticket_ttl_secs`, carrying the caller's role and
/// divisions.
pub(crate) async fn tickets(p: Principal, st: web::Data<AppState>) -> HttpResponse {
    let t = st.security.issue_ticket(&p);
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "ticket": t,
            "expiresInSecs": st.security.ticket_ttl.as_secs(),
            "usableOn": ["/api/v1/stream", "/api/v1/ws"],
        }))
}

/// Registers the body limits of extractors.
pub fn configure(cfg: &mut web::ServiceConfig, sec: &Security) {
    let limit = sec.max_body_bytes;
    cfg.app_data(web::PayloadConfig::new(limit)).app_data(
        web::JsonConfig::default()
            .limit(limit)
            .error_handler(crate::http::extract::json_error),
    );
}
