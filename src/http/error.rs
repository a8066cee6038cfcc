//! The one error type of the HTTP API, [`ApiError`]: every handler,
//! extractor and route policy answers with it, and each feature's typed
//! error (auth, writes, history, filters, limits) converts into it. One
//! `impl ResponseError` maps each to
//! a status and a JSON body `{"error": "<code>", "reason": "<what to fix>"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::registry::FilterError;
use crate::session::LimitError;

/// Everything a downstream request can fail with. Client-side errors (4xx)
/// say what to change; server-side ones (5xx) say what is wrong here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter (or header) has a bad value or is unknown.
    #[error("{0}")]
    BadParam(#[from] FilterError),
    /// No agent with this id in the directory.
    #[error("no agent with id {0:?}; list agents with GET /api/v1/agents")]
    AgentNotFound(String),
    /// Not ready to serve (no initial sync yet, or upstream not connected).
    #[error("{0}")]
    NotReady(String),
    /// A follower could not have the leader carry out the request (no
    /// leader, or it did not answer in `cluster.relay_timeout_ms`).
    #[error("{0}")]
    LeaderUnavailable(String),
    /// The cluster leader accepted a relayed request but did not answer in
    /// time: it may have been carried out (504).
    #[error("{0}")]
    LeaderTimeout(String),
    /// Too many client-driven lookups (tag searches, interaction reads) are
    /// waiting for the Genesys budget; the caller should retry (503 with
    /// `Retry-After`).
    #[error("{0}")]
    UpstreamBusy(String),
    /// The gateway-wide connection limit is reached.
    #[error("the gateway serves its maximum of {0} stream clients; retry later")]
    TooManyConnections(usize),
    /// The per-IP connection limit is reached.
    #[error("{0} already has {1} stream connections (the per-IP limit); close some first")]
    TooManyFromIp(std::net::IpAddr, usize),
    /// The WebSocket handshake was refused.
    #[error("not a valid WebSocket handshake: {0}; connect with a WebSocket client")]
    Handshake(String),
    /// The registry actor did not answer (shutting down).
    #[error("the registry is not available (gateway shutting down?)")]
    RegistryUnavailable,
    /// No such route.
    #[error("no route {0}; see docs/protocol.md for the API")]
    NotFound(String),
    /// Refused by authentication / authorisation (`crate::auth`).
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// A parameter (query or body field) has a bad value; `param` names it.
    #[error("{param}: {reason}")]
    BadInput { param: String, reason: String },
    /// No such agent, subscriber or other named thing; says which.
    #[error("{0}")]
    Missing(String),
    /// The journal or store failed (disk).
    #[error("the journal failed: {0}")]
    Store(String),
    /// A refused or failed presence write (`crate::writes`).
    #[error("{0}")]
    Write(#[from] crate::writes::WriteError),
    /// A request refused by the HTTP layer itself: a JSON body an
    /// extractor cannot read (400 `bad_body`, 413 `payload_too_large`,
    /// 415 `unsupported_media_type`), or an answer actix-web wrote without
    /// a JSON body (a 405, say), whose `code` is the status's name.
    #[error("{reason}")]
    Http {
        status: StatusCode,
        code: &'static str,
        reason: String,
    },
}

impl ApiError {
    /// The machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadParam(_) => "bad_parameter",
            ApiError::AgentNotFound(_) => "agent_not_found",
            ApiError::NotReady(_) => "not_ready",
            ApiError::LeaderUnavailable(_) => "leader_unavailable",
            ApiError::LeaderTimeout(_) => "leader_timeout",
            ApiError::UpstreamBusy(_) => "upstream_busy",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::TooManyFromIp(..) => "too_many_connections_from_ip",
            ApiError::Handshake(_) => "bad_handshake",
            ApiError::RegistryUnavailable => "registry_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Auth(e) => auth_code(e),
            ApiError::Write(w) => w.code,
            ApiError::BadInput { .. } => "bad_parameter",
            ApiError::Missing(_) => "not_found",
            ApiError::Store(_) => "store_failed",
            ApiError::Http { code, .. } => code,
        }
    }

    /// An [`ApiError::Http`] for a status answered without a JSON body;
    /// `code` is the status's name in snake case (`method_not_allowed`).
    pub fn http(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError::Http {
            status,
            code: status_code_name(status),
            reason: reason.into(),
        }
    }
}

/// The snake-case name of an HTTP status, as the `error` code of an
/// answer the HTTP layer wrote (RFC 9110 §15 reason phrases).
fn status_code_name(s: StatusCode) -> &'static str {
    match s.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        412 => "precondition_failed",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        416 => "range_not_satisfiable",
        417 => "expectation_failed",
        422 => "unprocessable_entity",
        426 => "upgrade_required",
        428 => "precondition_required",
        429 => "too_many_requests",
        431 => "request_header_fields_too_large",
        500 => "internal_server_error",
        501 => "not_implemented",
        502 => "bad_gateway",
        503 => "service_unavailable",
        504 => "gateway_timeout",
        505 => "http_version_not_supported",
        _ if s.is_client_error() => "client_error",
        _ => "server_error",
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Global(n) => ApiError::TooManyConnections(n),
            LimitError::PerIp(ip, n) => ApiError::TooManyFromIp(ip, n),
        }
    }
}

impl From<crate::history::HistoryError> for ApiError {
    fn from(e: crate::history::HistoryError) -> Self {
        use crate::history::HistoryError;
        match e {
            HistoryError::BadParam { param, reason } => ApiError::BadInput { param, reason },
            HistoryError::NotFound(what) => ApiError::Missing(what),
            HistoryError::Store(why) => ApiError::Store(why),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::RegistryUnavailable
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParam(_) | ApiError::Handshake(_) => StatusCode::BAD_REQUEST,
            ApiError::AgentNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotReady(_)
            | ApiError::LeaderUnavailable(_)
            | ApiError::UpstreamBusy(_)
            | ApiError::TooManyConnections(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyFromIp(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LeaderTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RegistryUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Auth(e) => auth_status(e),
            ApiError::BadInput { .. } => StatusCode::BAD_REQUEST,
            ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Write(w) => {
                StatusCode::from_u16(w.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Http { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Auth(AuthError::Unauthenticated(_)) = self {
            return HttpResponse::build(self.status_code())
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(serde_json::json!({"error": self.code(), "reason": self.to_string()}));
        }
        if let ApiError::Write(w) = self {
            let mut r = HttpResponse::build(self.status_code());
            if let Some(s) = w.retry_after {
                r.insert_header((header::RETRY_AFTER, s.to_string()));
            }
            return r.json(w.body());
        }
        let mut b = HttpResponse::build(self.status_code());
        if matches!(
            self,
            ApiError::TooManyConnections(_)
                | ApiError::TooManyFromIp(..)
                | ApiError::UpstreamBusy(_)
                | ApiError::LeaderUnavailable(_)
        ) {
            b.insert_header(("Retry-After", "5"));
        }
        let mut body = serde_json::json!({"error": self.code(), "reason": self.to_string()});
        match self {
            ApiError::BadParam(e) => {
                body["parameter"] = serde_json::Value::String(e.param.clone());
            }
            ApiError::BadInput { param, .. } => {
                body["parameter"] = serde_json::Value::String(param.clone());
            }
            _ => {}
        }
        b.json(body)
    }
}

/// Access-control refusals ([`crate::auth::AuthError`]): 401 (with
/// `WWW-Authenticate: Bearer`), 403, 404 for a hidden agent, 413.
fn auth_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AuthError::Forbidden(_) | AuthError::Origin(_) => StatusCode::FORBIDDEN,
        AuthError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
        AuthError::HiddenAgent(_) => StatusCode::NOT_FOUND,
    }
}

/// The body code of an access-control refusal.
fn auth_code(e: &AuthError) -> &'static str {
    match e {
        AuthError::Unauthenticated(_) => "unauthenticated",
        AuthError::Forbidden(_) => "forbidden",
        AuthError::Origin(_) => "origin_not_allowed",
        AuthError::TooLarge(..) => "payload_too_large",
        AuthError::HiddenAgent(_) => "agent_not_found",
    }
}
