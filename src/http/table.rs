//! The one route table: every route the gateway serves, with the role it
//! needs and the division-scope rule it follows. Routes are registered from
//! this table only ([`register`]), and each route carries its own policy
//! middleware ([`policy`]) that runs **after** actix-web has matched the
//! route: the decision is made on exactly the path the router matched and
//! on the same decoded `{id}` the handler extracts, never on the raw request
//! path. A path the table does not name is a 404 for everyone; a route
//! cannot be added without a policy, because there is no other way to add
//! one (`tests/access.rs` also checks the source for stray registrations).
//!
//! `HEAD` is served on every `GET` route (same handler; actix-http sends no
//! body). `OPTIONS` (CORS preflight or not) is answered before any
//! authentication by `crate::http::guard::edge`, from [`allowed_methods`].

use std::sync::OnceLock;

use actix_router::ResourceDef;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpMessage, ResponseError, Route};

use super::guard::{redeem_ticket, Credential};
use super::{assets, interactions, queues, routes, AppState};
use crate::auth::{AuthError, Principal, Role};
use crate::registry::GetAgent;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (pages, liveness, readiness).
    Public,
    /// A credential of at least this role.
    Role(Role),
    /// `/metrics`: public when `auth.public_metrics = true`, else admin.
    Metrics,
}

impl Access {
    /// The role required, `None` when the route is public.
    pub fn required(self, public_metrics: bool) -> Option<Role> {
        match self {
            Access::Public => None,
            Access::Role(r) => Some(r),
            Access::Metrics if public_metrics => None,
            Access::Metrics => Some(Role::Admin),
        }
    }
}

/// How a route honours a division-scoped credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The route carries no agent data (definitions, tickets, health).
    None,
    /// The route names one agent as `{id}`: the policy looks it up and a
    /// scoped caller gets the same 404 for a foreign agent as for an
    /// unknown one, reads and writes alike.
    AgentPath,
    /// The route returns or changes many agents: its handler narrows to the
    /// caller's divisions after the lookup (snapshot, streams, bulk, audit,
    /// tag search).
    Filtered,
    /// Cluster-wide operations (webhooks): refused (403) to a scoped caller.
    Unscoped,
}

/// Which part of the gateway serves a route; a route whose part is not
/// configured is not registered (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Always served.
    Core,
    /// The guarded write path (`AppState::writes`).
    Writes,
    /// Interaction context (`AppState::interactions`).
    Interactions,
    /// History and summaries (`AppState::history`).
    History,
    /// Webhooks (`AppState::webhooks`).
    Webhooks,
}

/// One row of the table.
pub struct Endpoint {
    /// The method (`HEAD` is added for every `GET`).
    pub method: Method,
    /// The actix-web path pattern, e.g. `/api/v1/agents/{id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// How division scope applies.
    pub scope: Scope,
    /// May a one-time `?ticket=` stand in for the `Authorization` header?
    /// (The two stream endpoints: EventSource cannot set headers.)
    pub tickets: bool,
    /// Which part serves it.
    pub part: Part,
    /// Attaches the handler to a method route.
    handler: fn(Route) -> Route,
}

const fn ep(
    method: Method,
    path: &'static str,
    access: Access,
    scope: Scope,
    part: Part,
    handler: fn(Route) -> Route,
) -> Endpoint {
    Endpoint {
        method,
        path,
        access,
        scope,
        tickets: false,
        part,
        handler,
    }
}

const VIEWER: Access = Access::Role(Role::Viewer);
const SUPERVISOR: Access = Access::Role(Role::Supervisor);
const ADMIN: Access = Access::Role(Role::Admin);

/// The whole table: the API routes, then one public `GET` per static page
/// of [`assets::ASSETS`].
pub fn endpoints() -> &'static [Endpoint] {
    static ALL: OnceLock<Vec<Endpoint>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v = vec![
            ep(
                Method::GET,
                "/api/v1/agents",
                VIEWER,
                Scope::Filtered,
                Part::Core,
                |r| r.to(routes::agents),
            ),
            ep(
                Method::GET,
                "/api/v1/agents/{id}",
                VIEWER,
                Scope::AgentPath,
                Part::Core,
                |r| r.to(routes::agent),
            ),
            ep(
                Method::GET,
                "/api/v1/presence-definitions",
                VIEWER,
                Scope::None,
                Part::Core,
                |r| r.to(routes::definitions),
            ),
            Endpoint {
                tickets: true,
                ..ep(
                    Method::GET,
                    "/api/v1/stream",
                    VIEWER,
                    Scope::Filtered,
                    Part::Core,
                    |r| r.to(routes::stream),
                )
            },
            Endpoint {
                tickets: true,
                ..ep(
                    Method::GET,
                    "/api/v1/ws",
                    VIEWER,
                    Scope::Filtered,
                    Part::Core,
                    |r| r.to(routes::ws),
                )
            },
            ep(
                Method::GET,
                "/api/v1/queues",
                VIEWER,
                Scope::Filtered,
                Part::Core,
                |r| r.to(queues::list),
            ),
            ep(
                Method::GET,
                "/api/v1/board",
                VIEWER,
                Scope::None,
                Part::Core,
                |r| r.to(queues::board),
            ),
            ep(
                Method::POST,
                "/api/v1/tickets",
                VIEWER,
                Scope::None,
                Part::Core,
                |r| r.to(crate::http::guard::tickets),
            ),
            ep(
                Method::GET,
                "/healthz",
                Access::Public,
                Scope::None,
                Part::Core,
                |r| r.to(routes::healthz),
            ),
            ep(
                Method::GET,
                "/readyz",
                Access::Public,
                Scope::None,
                Part::Core,
                |r| r.to(routes::readyz),
            ),
            ep(
                Method::GET,
                super::openapi::PATH,
                Access::Public,
                Scope::None,
                Part::Core,
                |r| r.to(super::openapi::serve),
            ),
            ep(
                Method::GET,
                "/metrics",
                Access::Metrics,
                Scope::None,
                Part::Core,
                |r| r.to(crate::http::metrics::metrics),
            ),
            ep(
                Method::PATCH,
                "/api/v1/agents/{id}/presence",
                SUPERVISOR,
                Scope::AgentPath,
                Part::Writes,
                |r| r.to(crate::http::writes::patch_presence),
            ),
            ep(
                Method::POST,
                "/api/v1/presence/bulk",
                SUPERVISOR,
                Scope::Filtered,
                Part::Writes,
                |r| r.to(crate::http::writes::bulk),
            ),
            ep(
                Method::GET,
                "/api/v1/audit",
                ADMIN,
                Scope::Filtered,
                Part::Writes,
                |r| r.to(crate::http::writes::audit),
            ),
            ep(
                Method::GET,
                "/api/v1/agents/{id}/interactions",
                VIEWER,
                Scope::AgentPath,
                Part::Interactions,
                |r| r.to(interactions::agent_interactions),
            ),
            ep(
                Method::GET,
                "/api/v1/interactions",
                VIEWER,
                Scope::Filtered,
                Part::Interactions,
                |r| r.to(interactions::by_external_tag),
            ),
            ep(
                Method::GET,
                "/api/v1/agents/{id}/history",
                VIEWER,
                Scope::AgentPath,
                Part::History,
                |r| r.to(crate::http::history::history),
            ),
            ep(
                Method::GET,
                "/api/v1/agents/{id}/summary",
                VIEWER,
                Scope::AgentPath,
                Part::History,
                |r| r.to(crate::http::history::summary),
            ),
            ep(
                Method::GET,
                "/api/v1/webhooks",
                ADMIN,
                Scope::Unscoped,
                Part::Webhooks,
                |r| r.to(crate::http::webhooks::list),
            ),
            ep(
                Method::POST,
                "/api/v1/webhooks/{name}/replay",
                ADMIN,
                Scope::Unscoped,
                Part::Webhooks,
                |r| r.to(crate::http::webhooks::replay),
            ),
            ep(
                Method::GET,
                "/api/v1/webhooks/{name}/dead-letters",
                ADMIN,
                Scope::Unscoped,
                Part::Webhooks,
                |r| r.to(crate::http::webhooks::dead_letters),
            ),
        ];
        for (path, _, _) in assets::ASSETS {
            v.push(ep(
                Method::GET,
                path,
                Access::Public,
                Scope::None,
                Part::Core,
                |r| r.to(assets::serve),
            ));
        }
        v
    })
}

impl Endpoint {
    fn served(&self, st: &AppState) -> bool {
        match self.part {
            Part::Core => true,
            Part::Writes | Part::Interactions | Part::History | Part::Webhooks => {
                st.features.is_some()
            }
        }
    }
}

/// Registers every route of the table that `st` serves, one resource per
/// path (so that `HEAD`, and a 405 for other methods, work per path), each
/// method route wrapped in its [`policy`].
pub fn register(cfg: &mut web::ServiceConfig, st: &AppState) {
    let all = endpoints();
    let mut paths: Vec<&'static str> = Vec::new();
    for e in all.iter().filter(|e| e.served(st)) {
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    for path in paths {
        let mut res = web::resource(path);
        for e in all.iter().filter(|e| e.path == path && e.served(st)) {
            let mut methods = vec![e.method.clone()];
            if e.method == Method::GET {
                methods.push(Method::HEAD);
            }
            for m in methods {
                let route = (e.handler)(web::method(m)).wrap(from_fn(
                    move |req: ServiceRequest, next: Next<BoxBody>| policy(e, req, next),
                ));
                res = res.route(route);
            }
        }
        cfg.service(res);
    }
}

/// The methods the table serves on `path` (the router's decoded form, as
/// `ServiceRequest::match_info().path()` gives it), `HEAD` and `OPTIONS`
/// included; empty when no route matches.
pub fn allowed_methods(path: &str) -> Vec<Method> {
    static DEFS: OnceLock<Vec<(ResourceDef, Method)>> = OnceLock::new();
    let defs = DEFS.get_or_init(|| {
        endpoints()
            .iter()
            .map(|e| (ResourceDef::new(e.path), e.method.clone()))
            .collect()
    });
    let mut out = Vec::new();
    for (def, m) in defs {
        if def.is_match(path) && !out.contains(m) {
            out.push(m.clone());
            if *m == Method::GET {
                out.push(Method::HEAD);
            }
        }
    }
    if !out.is_empty() {
        out.push(Method::OPTIONS);
    }
    out
}

/// The agent a [`Scope::AgentPath`] route names, as the policy found it
/// (set for division-scoped callers, whose lookup is part of the check).
#[derive(Clone)]
pub struct CheckedAgent(pub crate::registry::AgentRecord);

/// The per-route middleware: authenticates (401; a `?ticket=` is redeemed
/// where the gateway keeps tickets, 503 `store_unavailable` when the store
/// cannot answer), checks the role (403)
/// and the scope rule (404 for a foreign agent, 403 for a scoped caller on
/// an unscoped route), then records the [`Principal`] for the handler.
/// Public routes pass untouched and get no principal.
async fn policy(
    e: &'static Endpoint,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        // unreachable in a configured app: `register` needs the state.
        return Ok(refuse(
            req,
            AuthError::Forbidden("no route policy state".into()),
        ));
    };
    let sec = &state.security;
    let Some(role) = e.access.required(sec.public_metrics()) else {
        return next.call(req).await;
    };
    let count = || {
        sec.metrics
            .unauthenticated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    };
    let relayed = req.extensions().get::<crate::cluster::Relayed>().cloned();
    // The node that received the request, for the audit log.
    let received_by = relayed
        .as_ref()
        .map(|r| r.node.clone())
        .or_else(|| state.cluster.as_ref().map(|c| c.node.clone()));
    let principal = match relayed.as_ref().and_then(|r| r.principal.clone()) {
        // Carried out for another node, which authenticated the caller
        // (the request carries no credential, see `crate::cluster::relay`).
        Some(p) => p,
        None => match sec.authenticate(req.request(), e.tickets) {
            Ok(Credential::Principal(p)) => p,
            // Redeemed where this gateway keeps tickets (the store, shared by
            // the nodes of one PostgreSQL database; or memory).
            Ok(Credential::Ticket(t)) => match redeem_ticket(&state, &t).await {
                Ok(p) => p,
                Err(super::ApiError::Auth(err)) => {
                    count();
                    return Ok(refuse(req, err));
                }
                // The store could not answer: 503, not a refusal.
                Err(err) => return Ok(req.into_response(err.error_response())),
            },
            Err(err) => {
                count();
                return Ok(refuse(req, err));
            }
        },
    };
    if let Some(c) = state.cluster.clone() {
        if e.part != Part::Core {
            if !c.is_leader() {
                if relayed.is_some() {
                    // Relayed here while this node led; it no longer does.
                    return Ok(req.into_response(
                        super::ApiError::LeaderUnavailable(
                            "this node stopped leading the cluster before it could carry out the request; retry".into(),
                        )
                        .error_response(),
                    ));
                }
                if c.id_conflict() {
                    // Its relay answers would cross with the other process's.
                    return Ok(req.into_response(
                        super::ApiError::LeaderUnavailable(format!(
                            "another running process uses this node's cluster.node_id {:?}; this node relays nothing until it is unique",
                            c.node
                        ))
                        .error_response(),
                    ));
                }
                // The leader checks role and scope (and audits refusals).
                return relay(&c, req, &principal, state.security.max_body_bytes).await;
            }
            if !c.gate.valid() {
                // Another node may lead by now (Redis away past the lease).
                return Ok(req.into_response(
                    super::ApiError::LeaderUnavailable(
                        "this node cannot confirm it still leads the cluster (its lease could not be renewed); retry".into(),
                    )
                    .error_response(),
                ));
            }
        }
    }
    match check(e, role, &principal, &req, &state).await {
        Ok(()) => {}
        Err(Some(err)) => {
            match &err {
                // A write at an agent the caller may not see is refused
                // here, and audited like any refused write.
                AuthError::HiddenAgent(id) if e.part == Part::Writes => {
                    if let Some(w) = state.writes() {
                        let actor = super::writes::actor_of(req.request(), &principal);
                        crate::writes::RECEIVED_BY
                            .scope(received_by.clone(), w.audit_hidden_agent(actor, id.clone()))
                            .await;
                    }
                }
                AuthError::HiddenAgent(_) => {}
                _ => {
                    sec.metrics
                        .forbidden
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            return Ok(refuse(req, err));
        }
        // The registry did not answer (the gateway is stopping): 500
        // `registry_unavailable`, not a refusal.
        Err(None) => {
            return Ok(req.into_response(super::ApiError::RegistryUnavailable.error_response()))
        }
    }
    req.extensions_mut().insert(principal);
    crate::writes::RECEIVED_BY
        .scope(received_by, next.call(req))
        .await
}

/// A follower's answer to a route the leader carries out (writes, audit,
/// history, interactions, webhooks): the request goes to the leader through
/// Redis (`crate::cluster::relay`) after this node's own checks, and the
/// leader's answer comes back as it is; 503 `leader_unavailable` when no
/// leader answers in `cluster.relay_timeout_ms`.
async fn relay(
    c: &crate::cluster::Cluster,
    req: ServiceRequest,
    principal: &Principal,
    max_body: usize,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    use futures_util::StreamExt;
    let (http, mut payload) = req.into_parts();
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > max_body {
            let e = AuthError::TooLarge((body.len() + chunk.len()) as u64, max_body);
            let resp = super::ApiError::from(e).error_response();
            return Ok(ServiceResponse::new(http, resp));
        }
        body.extend_from_slice(&chunk);
    }
    // Byte for byte: a value that is not text is the leader's to judge.
    let headers = http
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let path = http
        .uri()
        .path_and_query()
        .map_or_else(|| http.path().to_string(), |p| p.as_str().to_string());
    let peer = http.peer_addr().map(|a| a.ip().to_string());
    let resp = match c
        .relay(
            http.method().as_str(),
            &path,
            headers,
            peer,
            principal,
            &body,
        )
        .await
    {
        Ok(reply) => {
            let status = actix_web::http::StatusCode::from_u16(reply.status)
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            let mut b = actix_web::HttpResponse::build(status);
            for (k, v) in reply.header_bytes() {
                if let (Ok(k), Ok(v)) = (
                    actix_web::http::header::HeaderName::from_bytes(k.as_bytes()),
                    actix_web::http::header::HeaderValue::from_bytes(&v),
                ) {
                    b.append_header((k, v));
                }
            }
            b.body(reply.body())
        }
        Err(err @ crate::cluster::relay::RelayError::NotTaken(_)) => {
            super::ApiError::LeaderUnavailable(format!(
                "{err}; the cluster leader carries out this request (docs/scaling.md); retry"
            ))
            .error_response()
        }
        Err(err) => super::ApiError::LeaderTimeout(err.to_string()).error_response(),
    };
    Ok(ServiceResponse::new(http, resp))
}

/// `Err(Some(_))`: refused; `Err(None)`: the registry did not answer.
async fn check(
    e: &Endpoint,
    role: Role,
    p: &Principal,
    req: &ServiceRequest,
    state: &AppState,
) -> Result<(), Option<AuthError>> {
    if p.role < role {
        return Err(Some(AuthError::Forbidden(format!(
            "{} {} needs role {} or above; {:?} is {}",
            req.method(),
            e.path,
            role.as_str(),
            p.name,
            p.role.as_str()
        ))));
    }
    let Some(divisions) = &p.divisions else {
        return Ok(());
    };
    match e.scope {
        Scope::None | Scope::Filtered => Ok(()),
        Scope::Unscoped => Err(Some(AuthError::Forbidden(format!(
            "{} {} acts on every division; {:?} is limited to divisions {}",
            req.method(),
            e.path,
            p.name,
            divisions.join(",")
        )))),
        Scope::AgentPath => {
            // The same decoding as the handler's `web::Path<String>`.
            let id: String = req
                .match_info()
                .load::<AgentId>()
                .map(|a| a.id)
                .map_err(|_| Some(AuthError::HiddenAgent(req.match_info().as_str().to_owned())))?;
            let rec = state
                .registry
                .send(GetAgent { id: id.clone() })
                .await
                .map_err(|_| None)?;
            match rec {
                Some(r) if p.sees(&r.agent.division.id) => {
                    req.extensions_mut().insert(CheckedAgent(r));
                    Ok(())
                }
                // Unknown and foreign agents look the same.
                _ => Err(Some(AuthError::HiddenAgent(id))),
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct AgentId {
    id: String,
}

fn refuse(req: ServiceRequest, e: AuthError) -> ServiceResponse<BoxBody> {
    tracing::debug!(path = req.path(), error = %e, "request refused");
    req.into_response(super::ApiError::from(e).error_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roles order; `/metrics` is admin unless made public.
    #[test]
    fn needs() {
        assert!(Role::Viewer < Role::Supervisor && Role::Supervisor < Role::Admin);
        assert_eq!(Access::Public.required(false), None);
        assert_eq!(Access::Metrics.required(false), Some(Role::Admin));
        assert_eq!(Access::Metrics.required(true), None);
        assert_eq!(
            Access::Role(Role::Viewer).required(true),
            Some(Role::Viewer)
        );
    }
}
