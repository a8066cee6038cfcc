//! The HTTP edge of access control: the app-wide middleware [`edge`] that
//! runs before routing (origins, `OPTIONS`, body size, CORS headers on every
//! answer, JSON error bodies), authentication of a request
//! ([`Security::authenticate`]: bearer header or one-time ticket), where
//! tickets live ([`redeem_ticket`]: the store of a full gateway, memory of
//! a registry-only one), the [`Principal`] extractor handlers of protected
//! routes take, the tickets handler and the extractors' body limits. Who may call which route is the
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
    // A request a cluster leader carries out for another node: believed
    // only with this process's relay secret; anyone else sending the
    // header is told it is reserved. The receiving node checked its
    // `Origin` against its own origins (nodes have different ones).
    let mut relayed = false;
    if let Some(v) = req.headers().get(crate::cluster::RELAY_HEADER) {
        match &state.cluster {
            Some(c) if c.is_relay_secret(v.as_bytes()) => {
                let text = |h: &str| {
                    req.headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let r = crate::cluster::Relayed {
                    node: text(crate::cluster::relay::RELAY_NODE_HEADER).unwrap_or_default(),
                    peer: text(crate::cluster::relay::RELAY_PEER_HEADER),
                    principal: req
                        .headers()
                        .get(crate::cluster::relay::RELAY_PRINCIPAL_HEADER)
                        .and_then(|v| crate::cluster::relay::principal_of(v.as_bytes())),
                };
                actix_web::HttpMessage::extensions_mut(&req).insert(r);
                relayed = true;
            }
            _ => {
                return Ok(req.into_response(
                    ApiError::BadInput {
                        param: crate::cluster::RELAY_HEADER.into(),
                        reason: format!(
                            "the {} header is reserved for requests between the nodes of a gateway cluster; leave it out",
                            crate::cluster::RELAY_HEADER
                        ),
                    }
                    .error_response(),
                ))
            }
        }
    }
    let sec = state.security.clone();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let asset = is_asset(req.match_info().as_str());
    if let (Some(o), false, false) = (&origin, asset, relayed) {
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
        match (too_large, nul_in(&req)) {
            (Some(len), _) => refuse(req, AuthError::TooLarge(len, sec.max_body_bytes)),
            // No id, filter or name holds U+0000; refused before any part
            // of the gateway (or its store: PostgreSQL text cannot hold it)
            // sees it.
            (None, Some(part)) => req.into_response(
                ApiError::BadInput {
                    param: part.into(),
                    reason: format!(
                        "the {part} holds %00 (U+0000), which no id, filter or name may contain"
                    ),
                }
                .error_response(),
            ),
            (None, None) => next.call(req).await?,
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

/// `Some("path" | "query")` when that part of the request URI holds a
/// percent-encoded NUL (`%00`).
fn nul_in(req: &ServiceRequest) -> Option<&'static str> {
    let has = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    if has(req.uri().path()) {
        Some("path")
    } else if req.uri().query().is_some_and(has) {
        Some("query")
    } else {
        None
    }
}

fn refuse(req: ServiceRequest, e: AuthError) -> ServiceResponse<BoxBody> {
    tracing::debug!(path = req.path(), error = %e, "request refused");
    req.into_response(ApiError::from(e).error_response())
}

impl Security {
    /// Authenticates a request for a protected route: the bearer header,
    /// else (where the route accepts them) a one-time ticket, handed back
    /// as [`Credential::Ticket`] for [`redeem_ticket`] (it may need the
    /// store). With auth off the caller is the explicit
    /// [`Principal::anonymous`]; with auth on, no credentials is a 401.
    /// Never defaults to any other principal.
    pub fn authenticate(&self, req: &HttpRequest, tickets: bool) -> Result<Credential, AuthError> {
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
                return Ok(Credential::Principal(Principal::anonymous()));
            }
            return self
                .bearer(cred)
                .map(Credential::Principal)
                .map_err(AuthError::Unauthenticated);
        }
        if let Some(t) = ticket_param(req.query_string()) {
            if !tickets {
                return Err(AuthError::Unauthenticated(
                    "tickets are accepted on /api/v1/stream and /api/v1/ws only".into(),
                ));
            }
            if !self.enabled() {
                return Ok(Credential::Principal(Principal::anonymous()));
            }
            return Ok(Credential::Ticket(t));
        }
        if !self.enabled() {
            return Ok(Credential::Principal(Principal::anonymous()));
        }
        Err(AuthError::Unauthenticated(
            "credentials required: `Authorization: Bearer <API key or JWT>` (streams: \
             `?ticket=` from POST /api/v1/tickets)"
                .into(),
        ))
    }
}

/// What [`Security::authenticate`] found.
pub enum Credential {
    /// The caller (bearer credential, or anonymous with auth off).
    Principal(Principal),
    /// A one-time ticket still to be redeemed ([`redeem_ticket`]).
    Ticket(String),
}

/// The 401 for a ticket that is unknown, expired or already used (on any
/// node, with a shared store).
fn ticket_refused() -> AuthError {
    AuthError::Unauthenticated(
        "ticket unknown, expired or already used; POST /api/v1/tickets for a new one".into(),
    )
}

/// 503 `store_unavailable` (with `Retry-After`): the store could not keep
/// or take a ticket.
fn ticket_store_unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    let mut w = crate::writes::WriteError::new(
        503,
        "store_unavailable",
        format!("the gateway cannot {what} a stream ticket now: {e}"),
    );
    w.retry_after = Some(5);
    ApiError::Write(w)
}

/// Where this gateway keeps tickets. Exactly one path per gateway kind: a
/// full gateway ([`AppState::full`]) keeps them in the store (SQLite, or
/// PostgreSQL shared by every node, so a ticket issued on one node is
/// redeemed on any other, once); a registry-only gateway
/// ([`AppState::core`], no store) in its own memory
/// ([`Security::issue_ticket`]).
fn ticket_store(st: &AppState) -> Option<&actix::Addr<crate::store::Store>> {
    st.features.as_ref().map(|f| &f.writes.store)
}

/// Redeems a ticket, once, where this gateway keeps them ([`ticket_store`]):
/// the holder's principal, counted in `tickets_redeemed`; a 401 when the
/// ticket is unknown, expired or already used; a 503 `store_unavailable`
/// when the store cannot answer.
pub async fn redeem_ticket(st: &AppState, ticket: &str) -> Result<Principal, ApiError> {
    let sec = &st.security;
    let p = match ticket_store(st) {
        None => sec.redeem(ticket).ok_or_else(ticket_refused)?,
        Some(store) => {
            let taken = store
                .send(crate::store::TakeTicket {
                    hash: crate::auth::ticket_hash(ticket),
                })
                .await
                .map_err(|e| ticket_store_unavailable("redeem", e))?
                .map_err(|e| ticket_store_unavailable("redeem", e))?;
            let json = taken.ok_or_else(ticket_refused)?;
            let p = Principal::from_json(&json).map_err(|e| {
                tracing::warn!(error = %e, "a stored ticket was refused");
                ticket_refused()
            })?;
            sec.metrics.tickets_redeemed.fetch_add(1, Ordering::Relaxed);
            p
        }
    };
    Ok(p)
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
/// divisions. Kept where [`ticket_store`] says (the store keeps only its
/// SHA-256); a store that cannot keep it answers 503 `store_unavailable`.
pub(crate) async fn tickets(
    p: Principal,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sec = &st.security;
    let t = match ticket_store(&st) {
        None => sec.issue_ticket(&p),
        Some(store) => {
            let t = crate::auth::new_ticket();
            let ttl = chrono::Duration::from_std(sec.ticket_ttl).unwrap_or_default();
            store
                .send(crate::store::PutTicket {
                    hash: crate::auth::ticket_hash(&t),
                    principal: p.to_json(),
                    expires_ms: (chrono::Utc::now() + ttl).timestamp_millis(),
                })
                .await
                .map_err(|e| ticket_store_unavailable("issue", e))?
                .map_err(|e| ticket_store_unavailable("issue", e))?;
            sec.metrics.tickets_issued.fetch_add(1, Ordering::Relaxed);
            t
        }
    };
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "ticket": t,
            "expiresInSecs": sec.ticket_ttl.as_secs(),
            "usableOn": ["/api/v1/stream", "/api/v1/ws"],
        })))
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
