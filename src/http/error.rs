//! Errors the HTTP API returns, each mapped (in one `impl ResponseError`) to
//! a status and a JSON body `{"error": "<code>", "reason": "<what to fix>"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

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
    Auth(#[from] crate::auth::AuthError),
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
}

impl ApiError {
    /// The machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadParam(_) => "bad_parameter",
            ApiError::AgentNotFound(_) => "agent_not_found",
            ApiError::NotReady(_) => "not_ready",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::TooManyFromIp(..) => "too_many_connections_from_ip",
            ApiError::Handshake(_) => "bad_handshake",
            ApiError::RegistryUnavailable => "registry_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Auth(_) => "forbidden",
            ApiError::Write(w) => w.code,
            ApiError::BadInput { .. } => "bad_parameter",
            ApiError::Missing(_) => "not_found",
            ApiError::Store(_) => "store_failed",
        }
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
            ApiError::NotReady(_) | ApiError::TooManyConnections(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TooManyFromIp(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RegistryUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Auth(e) => e.status_code(),
            ApiError::BadInput { .. } => StatusCode::BAD_REQUEST,
            ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Write(w) => {
                StatusCode::from_u16(w.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Auth(e) = self {
            return e.error_response();
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
            ApiError::TooManyConnections(_) | ApiError::TooManyFromIp(..)
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
impl ResponseError for crate::auth::AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            crate::auth::AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            crate::auth::AuthError::Forbidden(_) | crate::auth::AuthError::Origin(_) => {
                StatusCode::FORBIDDEN
            }
            crate::auth::AuthError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            crate::auth::AuthError::HiddenAgent(_) => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            crate::auth::AuthError::Unauthenticated(_) => "unauthenticated",
            crate::auth::AuthError::Forbidden(_) => "forbidden",
            crate::auth::AuthError::Origin(_) => "origin_not_allowed",
            crate::auth::AuthError::TooLarge(..) => "payload_too_large",
            crate::auth::AuthError::HiddenAgent(_) => "agent_not_found",
        };
        let mut b = HttpResponse::build(self.status_code());
        if let crate::auth::AuthError::Unauthenticated(_) = self {
            b.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        b.json(serde_json::json!({"error": code, "reason": self.to_string()}))
    }
}
