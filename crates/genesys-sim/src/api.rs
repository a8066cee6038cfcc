//! What every Platform API request goes through: the OAuth token endpoint,
//! bearer-token checks, the per-token rate budget with its `inin-ratelimit-*`
//! headers, injected REST faults, correlation ids, and the `ErrorBody` shape
//! of `genesys-api.md` §9 for every error.

use std::time::{Duration, Instant};

use actix_web::{
    body::BoxBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{header, StatusCode},
    middleware::Next,
    web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
};
use base64::Engine;
use serde_json::json;

use super::state::Token;
use super::Sim;

/// Per-request context set by [`gate`]: the correlation id and the caller.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub correlation_id: String,
    pub client_id: String,
    pub token: String,
}

impl Ctx {
    /// An error response in Genesys's `ErrorBody` shape.
    pub fn err(&self, status: u16, code: &str, message: impl Into<String>) -> GError {
        GError {
            status,
            code: code.to_string(),
            message: message.into(),
            context: self.correlation_id.clone(),
        }
    }

    /// 400 `bad.request` with a message.
    pub fn bad_request(&self, message: impl Into<String>) -> GError {
        self.err(400, "bad.request", message)
    }

    /// 404 `not.found`.
    pub fn not_found(&self, message: impl Into<String>) -> GError {
        self.err(404, "not.found", message)
    }
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Ctx, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Ctx>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("no request context")),
        )
    }
}

/// A Genesys error (`ErrorBody`).
#[derive(Debug, Clone)]
pub struct GError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub context: String,
}

impl std::fmt::Display for GError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl ResponseError for GError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        error_response(self.status, &self.code, &self.message, &self.context)
    }
}

/// The `ErrorBody` response of `genesys-api.md` §9.
pub fn error_response(status: u16, code: &str, message: &str, context: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header(("ININ-Correlation-Id", context.to_string()))
        .json(json!({
            "message": message,
            "code": code,
            "status": status,
            "contextId": context,
            "details": [],
            "errors": [],
        }))
}

/// Handler result: a response or a Genesys error.
pub type Reply = Result<HttpResponse, GError>;

/// Query parameters as ordered pairs; multi-valued ones (`expand`, `id`) may
/// repeat or be comma-joined (`genesys-api.md` §2), so callers use [`multi`].
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// All values of a multi-valued parameter, repeated or comma-joined.
pub fn multi(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The single value of a parameter, if given.
pub fn single<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// A positive integer parameter with a default, or 400 `invalid.value`.
pub fn int_param(
    ctx: &Ctx,
    pairs: &[(String, String)],
    key: &str,
    default: usize,
) -> Result<usize, GError> {
    match single(pairs, key) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ctx.err(
                400,
                "invalid.value",
                format!("Value [{v}] is not valid for field type [Integer]. Allowable values are: 1 or more"),
            )
        }),
    }
}

/// Parses a JSON request body, or 400 `bad.request` naming the problem.
pub fn json_body<T: serde::de::DeserializeOwned>(ctx: &Ctx, body: &[u8]) -> Result<T, GError> {
    serde_json::from_slice(body).map_err(|e| {
        ctx.bad_request(format!(
            "The request could not be understood by the server due to malformed syntax: {e}"
        ))
    })
}

/// The route class used for per-route request counters (`/sim/stats`).
fn route_class(path: &str) -> String {
    let mut out = Vec::new();
    for seg in path.trim_start_matches("/api/v2/").split('/') {
        if uuid::Uuid::parse_str(seg).is_ok() || seg.starts_with("streaming-") {
            out.push("{id}");
        } else {
            out.push(seg);
        }
    }
    out.join("/")
}

/// An admitted request: client id, requests used, allowed, seconds to reset.
type Admitted = (String, u32, u32, u64);
/// A refused request: status, code, message, `Retry-After` seconds.
type Refused = (u16, &'static str, String, Option<u64>);

/// Middleware for `/api/v2`: injected faults, bearer auth, the per-token rate
/// budget, correlation ids and rate headers on every response.
pub async fn gate(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(sim) = req.app_data::<web::Data<Sim>>().cloned() else {
        return Err(actix_web::error::ErrorInternalServerError(
            "simulator state missing",
        ));
    };
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, tok) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| tok.trim().to_string())
        });
    let delay;
    let outcome: Result<Admitted, Refused> = {
        let mut inner = sim.inner.lock();
        inner.stats.api_requests += 1;
        *inner
            .stats
            .requests_by_route
            .entry(format!("{} {}", req.method(), route_class(req.path())))
            .or_default() += 1;
        delay = if inner.faults.slow_responses.take() {
            Some(inner.faults.slow_responses.delay)
        } else {
            None
        };
        let now = Instant::now();
        if inner.faults.service_unavailable.take() {
            inner.stats.unavailable_injected += 1;
            Err((503, "service.unavailable", "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).".into(), None))
        } else {
            match bearer.as_deref() {
                None => Err((
                    401,
                    "authentication.required",
                    "No authentication bearer token specified in authorization header.".into(),
                    None,
                )),
                Some(tok) => match inner.tokens.get_mut(tok) {
                    None => Err((
                        401,
                        "bad.credentials",
                        "Invalid login credentials.".into(),
                        None,
                    )),
                    Some(t) if t.expires_at <= now => Err((
                        401,
                        "credentials.expired",
                        "The supplied credentials are expired.".into(),
                        None,
                    )),
                    Some(t) => {
                        let window = Duration::from_secs(60);
                        if now.duration_since(t.window_start) >= window {
                            t.window_start = now;
                            t.window_count = 0;
                        }
                        let reset = (window - now.duration_since(t.window_start))
                            .as_secs()
                            .max(1);
                        let allowed = sim.cfg.rate_limit_per_minute;
                        let client = t.client_id.clone();
                        if t.window_count >= allowed {
                            inner.stats.rate_limited += 1;
                            Err((
                                429,
                                "too.many.requests.retry.after",
                                String::new(),
                                Some(reset),
                            ))
                        } else if inner.faults.rate_limit.take() {
                            inner.stats.rate_limited_injected += 1;
                            Err((
                                429,
                                "too.many.requests.retry.after",
                                String::new(),
                                Some(reset.min(2)),
                            ))
                        } else {
                            // unwrap: the token was found a few lines above under the same lock
                            let t = inner.tokens.get_mut(tok).unwrap();
                            t.window_count += 1;
                            Ok((client, t.window_count, allowed, reset))
                        }
                    }
                },
            }
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match outcome {
        Err((status, code, message, retry_after)) => {
            if status == 401 {
                sim.inner.lock().stats.unauthorized += 1;
            }
            let mut resp = if status == 429 {
                let secs = retry_after.unwrap_or(1);
                let mut r = error_response(
                    429,
                    code,
                    &format!(
                        "Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"
                    ),
                    &correlation_id,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
                r
            } else {
                error_response(status, code, &message, &correlation_id)
            };
            if status == 503 {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(1u64));
            }
            Ok(req.into_response(resp))
        }
        Ok((client_id, count, allowed, reset)) => {
            req.extensions_mut().insert(Ctx {
                correlation_id: correlation_id.clone(),
                client_id,
                token: bearer.unwrap_or_default(),
            });
            let mut res = next.call(req).await?;
            let h = res.headers_mut();
            if let Ok(v) = header::HeaderValue::from_str(&correlation_id) {
                h.insert(header::HeaderName::from_static("inin-correlation-id"), v);
            }
            h.insert(
                header::HeaderName::from_static("inin-ratelimit-count"),
                header::HeaderValue::from(count),
            );
            h.insert(
                header::HeaderName::from_static("inin-ratelimit-allowed"),
                header::HeaderValue::from(allowed),
            );
            h.insert(
                header::HeaderName::from_static("inin-ratelimit-reset"),
                header::HeaderValue::from(reset),
            );
            Ok(res)
        }
    }
}

/// Unknown `/api/v2` paths: 404 `not.found`.
pub async fn not_found(ctx: Ctx) -> HttpResponse {
    ctx.not_found("The requested resource was not found.")
        .error_response()
}

/// `POST /oauth/token`: the client-credentials grant (`genesys-api.md` §1.2).
/// Credentials in the Basic header (form fields also accepted, as most OAuth
/// servers do; UNCONFIRMED for Genesys).
pub async fn token(req: HttpRequest, body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let oauth_err = |status: StatusCode, error: &str, description: &str| {
        HttpResponse::build(status).json(json!({
            "error": error,
            "description": description,
            "error_description": description,
        }))
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |k: &str| form.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone());
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let creds = basic.or_else(|| Some((field("client_id")?, field("client_secret")?)));
    match field("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_err(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type is not supported",
            )
        }
        None => {
            return oauth_err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type",
            )
        }
    }
    let ok = creds
        .as_ref()
        .is_some_and(|(id, secret)| *id == sim.cfg.client_id && *secret == sim.cfg.client_secret);
    let mut inner = sim.inner.lock();
    if !ok {
        inner.stats.token_failures += 1;
        return oauth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authentication failed",
        );
    }
    inner.stats.tokens_issued += 1;
    let token = {
        use rand::Rng;
        let bytes: [u8; 48] = inner.rng.random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let now = Instant::now();
    inner.tokens.insert(
        token.clone(),
        Token {
            client_id: sim.cfg.client_id.clone(),
            expires_at: now + Duration::from_secs(sim.cfg.token_lifetime_secs),
            window_start: now,
            window_count: 0,
        },
    );
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": sim.cfg.token_lifetime_secs,
    }))
}
