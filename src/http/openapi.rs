//! The OpenAPI 3.1 description of the HTTP API, served at
//! `GET /api/v1/openapi.json` ([`serve`]).
//!
//! It is generated, not written: the paths, methods, roles and security
//! requirements come from the one route table ([`super::table::endpoints`]),
//! walked once by [`document`]; each operation's parameters, request body
//! and answers come from [`operation`], keyed by the table's
//! `(method, path)`. A table row without an entry in [`operation`] makes
//! [`document`] panic (and `tests/openapi.rs` fail); an entry without a row
//! is never emitted. Per operation it adds what the table decides:
//! `security` (none on public routes, else an API key or a JWT as
//! `Authorization: Bearer`), `x-required-role` (`viewer`, `supervisor`,
//! `admin`), `x-division-scope` (the [`super::table::Scope`] rule) and the
//! refusals that follow from them (401, 403, a hidden agent's 404), plus
//! the edge's refusals every route shares (403 `origin_not_allowed`, 413
//! `payload_too_large`). Every error answer is the one JSON error schema
//! (`#/components/schemas/Error`, [`super::ApiError`]).
//!
//! The bodies' schemas sit here next to each other; Schemathesis
//! (`tests/openapi/run.sh`) holds the running gateway's answers to them, so
//! a body that drifts from its schema fails the test suite.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::table::{endpoints, Part, Scope};
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::registry::{GetDefinitions, GetDivisions};

/// The path the description is served at (a public route of the table).
pub const PATH: &str = "/api/v1/openapi.json";

/// What of the running gateway the description states: whether auth is
/// on (with it off, no operation has a security requirement), and the
/// values the gateway accepts that come from its configuration or its
/// directory (known division ids, presence definitions, limits).
#[derive(Debug, Clone)]
pub struct Facts {
    /// Auth is configured (`[[auth.api_keys]]` or `[auth.jwt]`).
    pub auth: bool,
    /// `auth.public_metrics`.
    pub public_metrics: bool,
    /// Division ids of the directory; `None` before the first sync (then
    /// any id is accepted).
    pub divisions: Option<Vec<String>>,
    /// Active presence definition ids (a write also takes the org's
    /// labels and any spelling of a system presence).
    pub definitions: Vec<String>,
    /// `writes.bulk_max`.
    pub bulk_max: usize,
    /// `writes.max_lease_seconds`.
    pub max_lease_seconds: u64,
    /// `history.max_page_size`.
    pub history_max_page: usize,
}

impl Default for Facts {
    /// Auth on, nothing known of the directory, default limits.
    fn default() -> Self {
        let w = crate::writes::WritesConfig::default();
        Facts {
            auth: true,
            public_metrics: false,
            divisions: None,
            definitions: Vec::new(),
            bulk_max: w.bulk_max,
            max_lease_seconds: w.max_lease_seconds,
            history_max_page: crate::history::HistoryConfig::default().max_page_size,
        }
    }
}

impl Facts {
    /// The facts of a running gateway (asks the registry for the division
    /// ids and presence definitions).
    pub async fn of(st: &AppState) -> Result<Facts, ApiError> {
        let mut f = Facts {
            auth: st.security.enabled(),
            public_metrics: st.security.public_metrics(),
            divisions: st.registry.send(GetDivisions).await?,
            definitions: st
                .registry
                .send(GetDefinitions)
                .await?
                .into_iter()
                .filter(|d| !d.deactivated)
                .map(|d| d.id)
                .collect(),
            ..Facts::default()
        };
        if let Some(features) = st.features.as_deref() {
            f.bulk_max = features.writes.cfg.bulk_max;
            f.max_lease_seconds = features.writes.cfg.max_lease_seconds;
            f.history_max_page = features.history.cfg.max_page_size;
        }
        Ok(f)
    }
}

/// `GET /api/v1/openapi.json`: the description of this gateway,
/// `application/json`; an unknown query parameter is a 400 like on every
/// REST route.
pub async fn serve(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    let facts = Facts::of(&st).await?;
    Ok(HttpResponse::Ok().json(document(&facts)))
}

/// The whole description for `facts`, built from the route table. Panics
/// when a table row has no [`operation`] entry (a route without a
/// description).
pub fn document(facts: &Facts) -> Value {
    let mut doc = build(facts);
    // U+0000 is refused in every path, query and write body (400, before
    // anything else sees it): say so on every string a client sends.
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                for part in ["parameters", "requestBody"] {
                    if let Some(v) = op.get_mut(part) {
                        forbid_nul(v);
                    }
                }
            }
        }
    }
    if let Some(c) = doc.get_mut("components").and_then(Value::as_object_mut) {
        if let Some(p) = c.get_mut("parameters") {
            forbid_nul(p);
        }
        if let Some(schemas) = c.get_mut("schemas").and_then(Value::as_object_mut) {
            for name in ["PresenceChange", "BulkChange"] {
                if let Some(s) = schemas.get_mut(name) {
                    forbid_nul(s);
                }
            }
        }
    }
    doc
}

/// Adds `"pattern": "^[^\x00]*$"` to every free string schema under `v`
/// (not to enums, constants, formats or strings with a pattern already).
fn forbid_nul(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let is_string = m.get("type").is_some_and(|t| {
                t == "string"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "string"))
            });
            let free = ["enum", "const", "format", "pattern"]
                .iter()
                .all(|k| !m.contains_key(*k));
            if is_string && free {
                m.insert("pattern".into(), Value::String("^[^\\x00]*$".into()));
            }
            for x in m.values_mut() {
                forbid_nul(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

fn role_name(r: Role) -> &'static str {
    r.as_str()
}

fn bearer() -> Value {
    json!([{"apiKey": []}, {"jwt": []}])
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn err_retry(desc: &str) -> Value {
    json!({"description": desc,
        "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok_json(desc: &str, schema: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn build(facts: &Facts) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in endpoints() {
        let mut op = operation(&e.method, e.path, facts).unwrap_or_else(|| {
            panic!(
                "{} {} is in the route table but has no description in http/openapi.rs",
                e.method, e.path
            )
        });
        let mut fields: Vec<(&str, Value)> = Vec::new();
        let mut refusals: Vec<(&str, Value)> = Vec::new();
        let required = e.access.required(facts.public_metrics);
        let guarded = facts.auth && required.is_some();
        fields.push(("security", if guarded { bearer() } else { json!([]) }));
        if let Some(role) = required {
            // Stated with auth off too: what a credential would need.
            fields.push(("x-required-role", json!(role_name(role))));
            let scope = match e.scope {
                Scope::None => "none",
                Scope::AgentPath => "agent-path",
                Scope::Filtered => "filtered",
                Scope::Unscoped => "unscoped",
            };
            fields.push(("x-division-scope", json!(scope)));
        }
        if guarded {
            refusals.push(("401", err("`unauthenticated`: no, unknown or expired credentials (header `WWW-Authenticate: Bearer`)")));
            refusals.push(("403", err("`forbidden`: the credential's role is too low, or a division outside its scope; `origin_not_allowed`: a browser `Origin` not allowed")));
        } else {
            refusals.push((
                "403",
                err("`origin_not_allowed`: a browser `Origin` not in `server.allowed_origins`"),
            ));
        }
        if e.scope == Scope::AgentPath {
            refusals.push(("404", err("`agent_not_found`: no such agent (or one outside the credential's divisions: the same answer)")));
        }
        if e.tickets {
            fields.push((
                "x-ticket",
                json!("a one-time `?ticket=` from POST /api/v1/tickets may replace the Authorization header"),
            ));
        }
        refusals.push((
            "413",
            err("`payload_too_large`: a body over `server.max_body_bytes`"),
        ));
        refusals.push((
            "431",
            json!({"description": "more than 96 header fields or a request head over 128 KiB: answered by the HTTP/1 parser (actix-http) before any of the gateway's code runs, with an empty body and `Connection: close` (it has no hook for its error answers)"}),
        ));
        let part = match e.part {
            Part::Core => "core",
            Part::Writes => "writes",
            Part::Interactions => "interactions",
            Part::History => "history",
            Part::Webhooks => "webhooks",
        };
        fields.push(("x-part", json!(part)));
        let o = op.as_object_mut().expect("an operation is an object");
        for (k, v) in fields {
            o.insert(k.to_owned(), v);
        }
        let responses = o
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("responses is an object");
        for (code, v) in refusals {
            responses.entry(code.to_owned()).or_insert(v);
        }
        let item = paths
            .entry(e.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        item.insert(e.method.as_str().to_ascii_lowercase(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "presence-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One Genesys Cloud connection fanned out to dashboards. This description is generated from the gateway's route table (src/http/table.rs and src/http/openapi.rs). Concepts (numbering, resume, filters, leases, history sources) are in docs/protocol.md, docs/writes.md and docs/history.md; the stream messages are described by docs/stream.schema.json. Every GET also answers HEAD (same headers, no body); OPTIONS is answered on every path with the methods it serves. Errors are always `{\"error\": \"<code>\", \"reason\": \"<what to fix>\"}`, except the two answers of the HTTP/1 parser, which come before any of the gateway's code and have an empty body and `Connection: close`: 431 (too many or too large headers, listed on every operation) and 400 for a request line or header that is not valid HTTP.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "paths": paths,
        "components": components(facts),
    })
}

/// Filter parameters shared by the snapshot and the streams.
fn filter_params(facts: &Facts) -> Vec<Value> {
    let list = |name: &str, desc: &str, items: Value| {
        json!({"name": name, "in": "query", "required": false, "description": desc,
            "style": "form", "explode": true,
            "schema": {"type": "array", "items": items}})
    };
    vec![
        list(
            "division",
            "division ids (an id no agent has is a 400 `bad_parameter` listing the known ones; the enum lists the directory's divisions as of this description)",
            division_item(facts),
        ),
        list(
            "queue",
            "queue ids: agents that are members of one of them (an empty value is ignored)",
            json!({"type": "string"}),
        ),
        list(
            "presence",
            "system presences (any Genesys spelling is accepted)",
            json!({"$ref": "#/components/schemas/SystemPresence"}),
        ),
        list(
            "routing",
            "routing statuses",
            json!({"$ref": "#/components/schemas/RoutingStatus"}),
        ),
        list(
            "agent",
            "agent ids (an empty value is ignored)",
            json!({"type": "string"}),
        ),
    ]
}

/// A division id: one of the directory's (any before the first sync).
fn division_item(facts: &Facts) -> Value {
    match &facts.divisions {
        Some(d) if !d.is_empty() => {
            // An empty value is ignored, like an absent one.
            let mut ids: Vec<&str> = d.iter().map(String::as_str).collect();
            ids.push("");
            json!({"type": "string", "enum": ids})
        }
        _ => json!({"type": "string"}),
    }
}

/// A time the history and webhook routes take: RFC 3339, or (`dates`)
/// also `YYYY-MM-DD` (UTC midnight), between 1970-01-01 and 9999-12-31.
fn time_param(name: &str, required: bool, dates: bool) -> Value {
    let year = "^(19[7-9][0-9]|[2-9][0-9]{3})-";
    let dt = json!({"type": "string", "format": "date-time", "pattern": year});
    let schema = if dates {
        json!({"anyOf": [dt, {"type": "string", "format": "date", "pattern": year}]})
    } else {
        dt
    };
    json!({"name": name, "in": "query", "required": required,
        "description": if dates { "RFC 3339 or YYYY-MM-DD (UTC midnight), 1970-01-01 … 9999-12-31" } else { "RFC 3339, 1970-01-01 … 9999-12-31" },
        "schema": schema})
}

/// Links from the snapshot to the routes of one agent (its first agent's
/// id): what a client does next, and what a stateful fuzzer follows.
fn agent_links() -> Value {
    let mut links = Map::new();
    for op in [
        "getAgent",
        "patchPresence",
        "agentHistory",
        "agentSummary",
        "agentInteractions",
    ] {
        links.insert(
            op.to_owned(),
            json!({"operationId": op, "parameters": {"id": "$response.body#/agents/0/id"}}),
        );
    }
    Value::Object(links)
}

fn agent_id() -> Value {
    json!({"$ref": "#/components/parameters/AgentId"})
}

fn bad_param() -> Value {
    err("`bad_parameter`: an unknown query parameter or a bad value; `parameter` names it")
}

/// The description of one route of the table, without what the table
/// decides (security, role, scope refusals); `None` for a route this
/// module does not know.
pub fn operation(method: &Method, path: &str, facts: &Facts) -> Option<Value> {
    let m = method.as_str();
    let v = match (m, path) {
        ("GET", "/api/v1/agents") => json!({
            "operationId": "listAgents", "tags": ["agents"],
            "summary": "Snapshot of the agents (filtered) with live counts",
            "description": "docs/protocol.md §1, §2 (Agent, Counts), §4 (filters). `synced` is false until the first directory read.",
            "parameters": filter_params(facts),
            "responses": {
                "200": {"description": "the snapshot",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Snapshot"}}},
                    "links": agent_links()},
                "400": bad_param(),
            }
        }),
        ("GET", "/api/v1/agents/{id}") => json!({
            "operationId": "getAgent", "tags": ["agents"],
            "summary": "One agent, with its state before its last change",
            "parameters": [agent_id()],
            "responses": {
                "200": {"description": "the agent; `ETag` is its version (send it back as `If-Match`)",
                    "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentWithPrevious"}}}},
                "400": bad_param(),
            }
        }),
        ("GET", "/api/v1/presence-definitions") => json!({
            "operationId": "listPresenceDefinitions", "tags": ["agents"],
            "summary": "The org's presence definitions",
            "responses": {"200": ok_json("the definitions", "Definitions"), "400": bad_param()}
        }),
        ("GET", "/api/v1/stream") => json!({
            "operationId": "streamSse", "tags": ["streams"],
            "summary": "Server-Sent Events: snapshot, delta, status (and interaction, queues, close)",
            "description": "docs/protocol.md §3–§7; every message's JSON is described by docs/stream.schema.json. Resume with `Last-Event-ID` (header), `last_event_id` or `lastEventId`. Unknown parameters are ignored and named in `X-Ignored-Parameters`; a bad filter value is a 400.",
            "parameters": filter_params(facts).into_iter().chain([
                json!({"name": "last_event_id", "in": "query", "required": false, "description": "resume point `<epoch>:<seq>`", "schema": {"type": "string"}}),
                json!({"name": "lastEventId", "in": "query", "required": false, "description": "alias of `last_event_id`", "schema": {"type": "string"}}),
                json!({"name": "Last-Event-ID", "in": "header", "required": false, "description": "resume point `<epoch>:<seq>` (wins over the query)", "schema": {"type": "string"}}),
                json!({"name": "interactions", "in": "query", "required": false, "description": "`1`: add `interaction` messages for the `agent` filter (1 to 50 agents)", "schema": {"type": "string", "enum": ["1", "true", "0", "false"]}}),
                json!({"name": "queues", "in": "query", "required": false, "description": "`1`: add `queues` messages", "schema": {"type": "string", "enum": ["1", "true", "0", "false"]}}),
                json!({"name": "ticket", "in": "query", "required": false, "description": "one-time ticket from POST /api/v1/tickets (instead of Authorization); kept by the store, so any node sharing it redeems it, once", "schema": {"type": "string"}}),
            ]).collect::<Vec<_>>(),
            "responses": {
                "200": {"description": "the event stream (never ends on its own)",
                    "headers": {"X-Ignored-Parameters": {"$ref": "#/components/headers/XIgnoredParameters"}},
                    "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/SseEvent"}}}},
                "400": bad_param(),
                "429": err_retry("`too_many_connections_from_ip`: the per-IP stream limit"),
                "503": err_retry("`too_many_connections`: the gateway-wide stream limit"),
            }
        }),
        ("GET", "/api/v1/ws") => json!({
            "operationId": "streamWebSocket", "tags": ["streams"],
            "summary": "WebSocket: the same messages as the SSE stream, plus `subscribe`",
            "description": "docs/protocol.md §3–§8; messages: docs/stream.schema.json. Resume with `since`.",
            "parameters": filter_params(facts).into_iter().chain([
                json!({"name": "Upgrade", "in": "header", "required": true, "schema": {"type": "string", "enum": ["websocket"]}}),
                json!({"name": "Connection", "in": "header", "required": true, "schema": {"type": "string", "enum": ["Upgrade"]}}),
                json!({"name": "Sec-WebSocket-Version", "in": "header", "required": true, "schema": {"type": "string", "enum": ["13"]}}),
                json!({"name": "Sec-WebSocket-Key", "in": "header", "required": true, "description": "16 random bytes, base64", "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"}}),
                json!({"name": "since", "in": "query", "required": false, "description": "resume point `<epoch>:<seq>`", "schema": {"type": "string"}}),
                json!({"name": "interactions", "in": "query", "required": false, "schema": {"type": "string", "enum": ["1", "true", "0", "false"]}}),
                json!({"name": "queues", "in": "query", "required": false, "schema": {"type": "string", "enum": ["1", "true", "0", "false"]}}),
                json!({"name": "ticket", "in": "query", "required": false, "schema": {"type": "string"}}),
            ]).collect::<Vec<_>>(),
            "responses": {
                "101": {"description": "switched to the WebSocket protocol"},
                "400": err("`bad_handshake`: not a WebSocket upgrade; `bad_parameter`: a bad filter value"),
                "429": err_retry("`too_many_connections_from_ip`"),
                "503": err_retry("`too_many_connections`"),
            }
        }),
        ("GET", "/api/v1/queues") => json!({
            "operationId": "listQueues", "tags": ["queues"],
            "summary": "Queues with names and live figures",
            "description": "docs/protocol.md §10.",
            "parameters": [{"name": "division", "in": "query", "required": false, "style": "form", "explode": true,
                "schema": {"type": "array", "items": division_item(facts)}}],
            "responses": {"200": ok_json("the queues", "Queues"), "400": bad_param()}
        }),
        ("GET", "/api/v1/board") => json!({
            "operationId": "getBoard", "tags": ["queues"],
            "summary": "The `[board]` settings the pages use, and who asked",
            "responses": {"200": ok_json("the settings", "Board"), "400": bad_param()}
        }),
        ("POST", "/api/v1/tickets") => json!({
            "operationId": "createTicket", "tags": ["streams"],
            "summary": "A one-time ticket for `?ticket=` on the streams (EventSource cannot send headers)",
            "responses": {"201": ok_json("the ticket", "Ticket"),
                "503": err_retry("`store_unavailable`: the store cannot keep the ticket")}
        }),
        ("GET", "/healthz") => json!({
            "operationId": "healthz", "tags": ["operations"],
            "summary": "Liveness",
            "responses": {"200": ok_json("the process runs", "Health")}
        }),
        ("GET", "/readyz") => json!({
            "operationId": "readyz", "tags": ["operations"],
            "summary": "Readiness: the initial sync is in and the upstream is connected",
            "responses": {"200": ok_json("ready, with the upstream health record", "Ready"),
                "503": err("`not_ready`: no initial sync yet, the upstream is not connected, the store cannot take writes or holds accepted writes not yet recorded, or `writes.lease_fallback` is not one of the org's presences; on a cluster member also Redis unreachable or no leader (the body then carries `role` and `cluster`)")}
        }),
        ("GET", "/metrics") => json!({
            "operationId": "metrics", "tags": ["operations"],
            "summary": "Prometheus text exposition (docs/operations.md)",
            "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}
        }),
        ("GET", PATH) => json!({
            "operationId": "openapi", "tags": ["operations"],
            "summary": "This description",
            "responses": {"200": {"description": "the OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}, "400": bad_param()}
        }),
        ("PATCH", "/api/v1/agents/{id}/presence") => json!({
            "operationId": "patchPresence", "tags": ["writes"],
            "summary": "Change an agent's presence (validated, guarded, audited)",
            "description": "docs/writes.md. The answer is the agent after the change, already showing it.",
            "parameters": [agent_id(),
                {"$ref": "#/components/parameters/IfMatch"},
                {"$ref": "#/components/parameters/IdempotencyKey"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PresenceChange"}}}},
            "responses": {
                "200": {"description": "changed; `ETag` is the new version. A replayed `Idempotency-Key` answer carries `Idempotent-Replayed: true`",
                    "headers": {"ETag": {"$ref": "#/components/headers/ETag"},
                        "Idempotent-Replayed": {"$ref": "#/components/headers/IdempotentReplayed"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WrittenAgent"}}}},
                "400": err("`bad_body`, `bad_lease`, `bad_if_match`, `bad_idempotency_key`"),
                "409": err("`transition_refused` (`rule` names the rule), `idempotency_in_progress`, `idempotency_recovering` (with `Retry-After`), `idempotency_abandoned`"),
                "412": err("`precondition_failed`: `If-Match` names an older version (`currentVersion`)"),
                "415": err("`unsupported_media_type`: the body is not `application/json`"),
                "422": err("`invalid_presence` (`choices`), `invalid_message`, `idempotency_key_reused`, `genesys_refused`"),
                "503": err_retry("`rate_limited`, `upstream_unavailable`, `not_ready`, `store_unavailable` (the store cannot record the write; Genesys was not called), `lease_fallback_invalid`, `leader_unavailable` (cluster: no leader took it in time, so it was not carried out; docs/scaling.md)"),
                "504": err("`leader_timeout` (cluster only): the leader took the request but did not answer within 60 s; it may have been carried out (see the audit log)"),
            }
        }),
        ("POST", "/api/v1/presence/bulk") => json!({
            "operationId": "bulkPresence", "tags": ["writes"],
            "summary": "Change many agents' presence, with a result per agent",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkChange"}}}},
            "responses": {
                "200": ok_json("a result per agent", "BulkResult"),
                "400": err("`bad_body`"),
                "415": err("`unsupported_media_type`"),
                "422": err("a change list that cannot be taken (e.g. empty or too long)"),
                "503": err_retry("`rate_limited`, `upstream_unavailable`, `not_ready`, `store_unavailable` (the store cannot record the writes; Genesys was not called), `leader_unavailable` (cluster: no leader took it in time, so nothing was carried out)"),
                "504": err("`leader_timeout` (cluster only): the leader took the request but did not answer within 60 s; some changes may have been carried out (see the audit log)"),
            }
        }),
        ("GET", "/api/v1/audit") => json!({
            "operationId": "listAudit", "tags": ["writes"],
            "summary": "The audit log of write attempts, newest first",
            "parameters": [
                {"name": "agent", "in": "query", "required": false, "schema": {"type": "string"}},
                {"name": "actor", "in": "query", "required": false, "schema": {"type": "string"}},
                {"name": "result", "in": "query", "required": false, "description": "`ok` or an error code", "schema": {"type": "string"}},
                time_param("from", false, false),
                time_param("to", false, false),
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": u32::MAX}},
            ],
            "responses": {"200": ok_json("a page of the audit log", "AuditPage"), "400": bad_param()}
        }),
        ("GET", "/api/v1/agents/{id}/interactions") => json!({
            "operationId": "agentInteractions", "tags": ["interactions"],
            "summary": "The interactions an agent is handling",
            "description": "docs/protocol.md §9.",
            "parameters": [agent_id()],
            "responses": {"200": ok_json("the interactions", "AgentInteractions"),
                "400": bad_param(),
                "503": err_retry("`not_ready`, `upstream_busy`")}
        }),
        ("GET", "/api/v1/interactions") => json!({
            "operationId": "interactionsByExternalTag", "tags": ["interactions"],
            "summary": "Genesys's conversation details for an external tag (pass-through)",
            "parameters": [{"name": "externalTag", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "responses": {"200": ok_json("the conversations", "TagSearch"),
                "400": bad_param(),
                "503": err_retry("`not_ready`, `upstream_busy`")}
        }),
        ("GET", "/api/v1/agents/{id}/history") => json!({
            "operationId": "agentHistory", "tags": ["history"],
            "summary": "An agent's presence and routing history (JSON or CSV)",
            "description": "docs/history.md.",
            "parameters": [agent_id(),
                time_param("from", false, true),
                time_param("to", false, true),
                {"name": "kind", "in": "query", "required": false, "schema": {"type": "string", "enum": ["presence", "routing"]}},
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": facts.history_max_page}},
                {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}},
                {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["csv", "json"]}}],
            "responses": {
                "200": {"description": "a page of history; `Link: <…>; rel=\"next\"` when there is a next page",
                    "headers": {"Link": {"$ref": "#/components/headers/Link"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HistoryPage"}},
                        "text/csv": {"schema": {"type": "string"}}}},
                "400": bad_param(),
                "500": err("`store_failed`: the journal could not be read"),
            }
        }),
        ("GET", "/api/v1/agents/{id}/summary") => json!({
            "operationId": "agentSummary", "tags": ["history"],
            "summary": "Milliseconds in each presence and routing status on one UTC day",
            "parameters": [agent_id(),
                {"name": "date", "in": "query", "required": false, "description": "YYYY-MM-DD (UTC), 1970-01-01 or later and not in the future (else 400); default today", "schema": {"type": "string", "format": "date", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-"}}],
            "responses": {"200": ok_json("the day's totals", "Summary"),
                "400": bad_param(),
                "500": err("`store_failed`")}
        }),
        ("GET", "/api/v1/webhooks") => json!({
            "operationId": "listWebhooks", "tags": ["webhooks"],
            "summary": "Webhook subscribers and their counters",
            "responses": {"200": {"description": "the subscribers",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Webhooks"}}},
                    "links": {
                        "replayWebhook": {"operationId": "replayWebhook", "parameters": {"name": "$response.body#/webhooks/0/name"}},
                        "webhookDeadLetters": {"operationId": "webhookDeadLetters", "parameters": {"name": "$response.body#/webhooks/0/name"}}}},
                "400": bad_param()}
        }),
        ("POST", "/api/v1/webhooks/{name}/replay") => json!({
            "operationId": "replayWebhook", "tags": ["webhooks"],
            "summary": "Queue the journal's events of a time range again for one subscriber",
            "parameters": [{"$ref": "#/components/parameters/WebhookName"},
                time_param("from", true, false),
                time_param("to", false, false)],
            "responses": {"202": ok_json("queued", "Replay"), "400": bad_param(),
                "404": err("`not_found`: no subscriber of this name"), "500": err("`store_failed`")}
        }),
        ("GET", "/api/v1/webhooks/{name}/dead-letters") => json!({
            "operationId": "webhookDeadLetters", "tags": ["webhooks"],
            "summary": "The last 100 events one subscriber gave up on",
            "parameters": [{"$ref": "#/components/parameters/WebhookName"}],
            "responses": {"200": ok_json("the dead letters", "DeadLetters"), "400": bad_param(),
                "404": err("`not_found`: no subscriber of this name"), "500": err("`store_failed`")}
        }),
        ("GET", p) => {
            let (_, _, ctype) = super::assets::ASSETS.iter().find(|(a, _, _)| *a == p)?;
            let media = ctype.split(';').next().unwrap_or(ctype);
            json!({
                "operationId": format!("page{}", p.replace(['/', '.', '-'], "_")),
                "tags": ["pages"],
                "summary": format!("The bundled page {p}"),
                "responses": {"200": {"description": "the file", "content": {media: {"schema": {"type": "string"}}}}}
            })
        }
        _ => return None,
    };
    Some(v)
}

fn components(facts: &Facts) -> Value {
    json!({
        "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer",
                "description": "an API key of `[[auth.api_keys]]` (docs/security.md) as `Authorization: Bearer <key>`"},
            "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "a JWT of `[auth.jwt]` (HS256/RS256/ES256) with `sub`, `exp` and a role claim"}
        },
        "parameters": {
            "AgentId": {"name": "id", "in": "path", "required": true, "description": "Genesys user id", "schema": {"type": "string", "minLength": 1}},
            "WebhookName": {"name": "name", "in": "path", "required": true, "description": "the subscriber's `name`", "schema": {"type": "string", "minLength": 1}},
            "IfMatch": {"name": "If-Match", "in": "header", "required": false,
                "description": "the agent's version as its `ETag` gave it (`\"7\"`, `W/\"7\"`, `7`) or `*`; an older version is a 412",
                "schema": {"type": "string", "pattern": "^(\\*|(W/)?\"?[0-9]{1,19}\"?)$"}},
            "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": false,
                "description": "1 to 200 visible ASCII characters: a retry with the same key and body gets the first answer again",
                "schema": {"type": "string", "pattern": "^[!-~]{1,200}$"}}
        },
        "headers": {
            "ETag": {"description": "the agent's version, quoted", "schema": {"type": "string"}},
            "RetryAfter": {"description": "seconds to wait before retrying", "schema": {"type": "string"}},
            "Link": {"description": "`<path?query>; rel=\"next\"`", "schema": {"type": "string"}},
            "IdempotentReplayed": {"description": "`true` when the answer is a stored one", "schema": {"type": "string"}},
            "XIgnoredParameters": {"description": "query parameters (and `Last-Event-ID`) the stream ignored, comma-joined", "schema": {"type": "string"}}
        },
        "schemas": schemas(facts),
    })
}

/// A component schema or `null`.
fn nullable(name: &str) -> Value {
    json!({"anyOf": [{"$ref": format!("#/components/schemas/{name}")}, {"type": "null"}]})
}

const SYSTEM_PRESENCES: [&str; 10] = [
    "AVAILABLE",
    "AWAY",
    "BUSY",
    "OFFLINE",
    "IDLE",
    "ON_QUEUE",
    "MEAL",
    "TRAINING",
    "MEETING",
    "BREAK",
];

fn schemas(facts: &Facts) -> Map<String, Value> {
    let iso = json!({"type": "string", "format": "date-time"});
    let mut m = Map::new();
    m.insert("Error".into(), json!({"type": "object", "required": ["error", "reason"],
                "description": "Every error the gateway writes. Some codes add fields: `parameter` (`bad_parameter`), `rule` (`transition_refused`), `currentVersion` (`precondition_failed`), `choices` (`invalid_presence`).",
                "properties": {
                    "error": {"type": "string", "description": "machine-readable code"},
                    "reason": {"type": "string", "description": "what to fix"},
                    "parameter": {"type": "string"},
                    "rule": {"type": "string"},
                    "currentVersion": {"type": "integer"},
                    "choices": {"type": "array", "items": {"$ref": "#/components/schemas/Choice"}}
                }}));
    m.insert("Choice".into(), json!({"type": "object", "properties": {"id": {"type": "string"}, "label": {"type": ["string", "null"]}, "systemPresence": {"type": "string"}}}));
    m.insert(
        "SystemPresence".into(),
        json!({"type": "string", "enum": SYSTEM_PRESENCES}),
    );
    m.insert("RoutingStatus".into(), json!({"type": "string", "enum": ["OFF_QUEUE", "IDLE", "INTERACTING", "NOT_RESPONDING", "COMMUNICATING"]}));
    m.insert("Division".into(), json!({"type": "object", "required": ["id", "name"], "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}));
    m.insert("Presence".into(), json!({"type": "object", "required": ["definitionId", "systemPresence", "since"],
                "properties": {"definitionId": {"type": "string"},
                    "systemPresence": {"type": "string", "description": "a SystemPresence, or UNKNOWN"},
                    "label": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]}, "since": iso}}));
    m.insert(
        "Routing".into(),
        json!({"type": "object", "required": ["status", "since"],
                "properties": {"status": {"type": "string"}, "since": iso}}),
    );
    m.insert("Agent".into(), json!({"type": "object", "required": ["id", "name", "division", "queues", "presence", "routingStatus", "version"],
                "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"},
                    "division": {"$ref": "#/components/schemas/Division"},
                    "queues": {"type": "array", "items": {"type": "string"}},
                    "presence": nullable("Presence"),
                    "routingStatus": nullable("Routing"),
                    "version": {"type": "integer", "minimum": 0}
                }}));
    m.insert("AgentWithPrevious".into(), json!({"allOf": [{"$ref": "#/components/schemas/Agent"},
                {"type": "object", "properties": {"previous": {"anyOf": [{"$ref": "#/components/schemas/Agent"}, {"type": "null"}]}}}]}));
    m.insert("WrittenAgent".into(), json!({"allOf": [{"$ref": "#/components/schemas/AgentWithPrevious"},
                {"type": "object", "properties": {"correlationId": {"type": ["string", "null"]}, "leaseExpiresAt": {"type": ["string", "null"]},
                    "record": {"type": "string", "const": "pending", "description": "present when Genesys accepted the change but the store could not record it yet: the record is retried and /readyz is 503 meanwhile (docs/writes.md)"},
                    "recordDetail": {"type": "string"}}}]}));
    m.insert(
        "Bucket".into(),
        json!({"type": "object", "required": ["agents"], "properties": {
                "agents": {"type": "integer", "minimum": 0},
                "presence": {"type": "object", "additionalProperties": {"type": "integer"}},
                "routing": {"type": "object", "additionalProperties": {"type": "integer"}}}}),
    );
    m.insert("Counts".into(), json!({"type": "object", "properties": {
                "all": {"$ref": "#/components/schemas/Bucket"},
                "divisions": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Bucket"}},
                "queues": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Bucket"}}}}));
    m.insert("Snapshot".into(), json!({"type": "object", "required": ["epoch", "seq", "synced", "agents", "counts"], "properties": {
                "epoch": {"type": "integer", "minimum": 0}, "seq": {"type": "integer", "minimum": 0},
                "synced": {"type": "boolean"},
                "agents": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}},
                "counts": {"$ref": "#/components/schemas/Counts"}}}));
    m.insert("Definitions".into(), json!({"type": "object", "required": ["definitions"], "properties": {
                "definitions": {"type": "array", "items": {"type": "object", "required": ["id", "systemPresence"], "properties": {
                    "id": {"type": "string"}, "systemPresence": {"type": "string"},
                    "label": {"type": ["string", "null"]},
                    "languageLabels": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                    "primary": {"type": "boolean"}, "deactivated": {"type": "boolean"}}}}}}));
    m.insert("Queues".into(), json!({"type": "object", "required": ["observations", "queues"], "properties": {
                "observedAt": {"type": ["string", "null"]},
                "observations": {"type": "string", "enum": ["ok", "pending", "stale", "unavailable"]},
                "queues": {"type": "array", "items": {"type": "object", "required": ["id", "name"], "properties": {
                    "id": {"type": "string"}, "name": {"type": ["string", "null"]},
                    "division": {"anyOf": [{"$ref": "#/components/schemas/Division"}, {"type": "null"}]},
                    "members": {"type": "integer"}, "onQueue": {"type": "integer"}, "idle": {"type": "integer"},
                    "interacting": {"type": "integer"}, "communicating": {"type": "integer"},
                    "notResponding": {"type": "integer"}, "offQueue": {"type": "integer"},
                    "waiting": {"type": "integer"}, "longestWaitMs": {"type": ["integer", "null"]},
                    "media": {"type": "object"}}}}}}));
    m.insert("Board".into(), json!({"type": "object", "required": ["caller"], "properties": {
                "presenceThresholdsSecs": {"type": "object", "additionalProperties": {"type": "integer"}},
                "routingThresholdsSecs": {"type": "object", "additionalProperties": {"type": "integer"}},
                "alertSound": {"type": "boolean"},
                "desktopPresences": {"type": "array", "items": {"type": "string"}},
                "queueFiguresMs": {"type": "integer"},
                "caller": {"type": "object", "required": ["role"], "properties": {
                    "role": {"type": "string", "enum": ["viewer", "supervisor", "admin"]},
                    "divisions": {"type": ["array", "null"], "items": {"type": "string"}}}}}}));
    m.insert("Ticket".into(), json!({"type": "object", "required": ["ticket", "expiresInSecs", "usableOn"], "properties": {
                "ticket": {"type": "string"}, "expiresInSecs": {"type": "integer"},
                "usableOn": {"type": "array", "items": {"type": "string"}}}}));
    m.insert("Health".into(), json!({"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "const": "ok"}}}));
    m.insert("Ready".into(), json!({"type": "object", "required": ["status", "upstream"], "properties": {
                "status": {"type": "string", "const": "ready"},
                "upstream": {"type": "object", "description": "the upstream health record: state, detail, channels, topics, refusedTopics, refusedTopicCount, stalenessBoundSecs, counters"},
                "store": {"type": "object", "description": "the store's health: healthy, and what failed (docs/operations.md \"The store\")"},
                "role": {"type": "string", "enum": ["leader", "follower"], "description": "cluster members only (docs/scaling.md): the part this node plays; also in the 503 body"},
                "cluster": {"type": "object", "description": "cluster members only: node, role, leader (the lease holder, or null), redis (`ok` or why not)"}}}));
    let target = if facts.definitions.is_empty() {
        json!({"type": "string", "minLength": 1, "description": "a presence definition id, the org's label (case-insensitive) or a system presence in any spelling"})
    } else {
        json!({"type": "string", "description": "a presence definition id (the enum: the org's active definitions and the system presences, as of this description), the org's label (case-insensitive) or a system presence in any spelling",
            "enum": facts.definitions.iter().map(String::as_str).chain(SYSTEM_PRESENCES).collect::<Vec<_>>()})
    };
    m.insert("SseEvent".into(), json!({"type": "object", "required": ["event", "data"],
        "description": "one Server-Sent Event; `data` is one JSON message of docs/stream.schema.json (its `type` is the event name)",
        "properties": {
            "event": {"type": "string", "enum": ["snapshot", "delta", "status", "interaction", "queues", "error", "close"]},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "id": {"type": "string", "pattern": "^[0-9]+:[0-9]+$", "description": "`<epoch>:<seq>` on snapshots and deltas: the resume point"},
            "retry": {"type": "integer"}}}));
    m.insert("PresenceChange".into(), json!({"type": "object", "required": ["presence"], "additionalProperties": false, "properties": {
                "presence": target,
                "message": {"type": ["string", "null"], "maxLength": 250, "description": "status text, at most 250 characters (else 422 `invalid_message`); absent or null leaves it as it is"},
                "reason": {"type": ["string", "null"], "description": "kept in the audit log"},
                "leaseSeconds": {"type": ["integer", "null"], "minimum": 1, "maximum": facts.max_lease_seconds, "description": "hold the presence this long, then `writes.lease_fallback`; absent or null ends any lease"},
                "force": {"type": "boolean", "description": "override the transition policy"}}}));
    m.insert("BulkChange".into(), json!({"type": "object", "required": ["changes"], "additionalProperties": false, "properties": {
                "changes": {"type": "array", "minItems": 1, "maxItems": facts.bulk_max, "items": {"type": "object", "required": ["agent", "presence"], "additionalProperties": false, "properties": {
                    "agent": {"type": "string", "minLength": 1, "description": "agent id (an unknown one fails in its result, 404; an empty one refuses the request, 400)"},
                    "presence": {"type": "string", "description": "as in PresenceChange; an unknown one fails in its result (422 `invalid_presence`)"},
                    "message": {"type": ["string", "null"], "description": "as in PresenceChange; over 250 characters fails in its result (422 `invalid_message`)"}}}},
                "reason": {"type": ["string", "null"]}, "force": {"type": "boolean"}}}));
    m.insert("BulkResult".into(), json!({"type": "object", "required": ["succeeded", "failed", "results"], "properties": {
                "succeeded": {"type": "integer"}, "failed": {"type": "integer"},
                "results": {"type": "array", "items": {"type": "object", "required": ["agent", "status"], "properties": {
                    "agent": {"type": "string"}, "status": {"type": "integer"},
                    "presence": {"type": "string"}, "error": {"type": "string"}, "reason": {"type": "string"}}}}}}));
    m.insert("AuditPage".into(), json!({"type": "object", "required": ["total", "limit", "offset", "records"], "properties": {
                "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                "records": {"type": "array", "items": {"type": "object", "required": ["id", "at", "actor", "agentId", "result"], "properties": {
                    "id": {"type": "integer"}, "at": iso, "actor": {"type": "string"}, "agentId": {"type": "string"},
                    "fromPresence": {"type": ["string", "null"]}, "toPresence": {"type": ["string", "null"]},
                    "reason": {"type": ["string", "null"]}, "result": {"type": "string"},
                    "status": {"type": ["integer", "null"]}, "correlationId": {"type": ["string", "null"]},
                    "detail": {},
                    "node": {"type": "string", "description": "cluster members only: the node that received the request (docs/scaling.md)"}}}}}}));
    m.insert(
        "HistoryState".into(),
        json!({"type": "object", "properties": {
                "state": {"type": "string"}, "definitionId": {"type": ["string", "null"]},
                "label": {"type": ["string", "null"]}, "since": {"type": ["string", "null"]}}}),
    );
    m.insert("HistoryPage".into(), json!({"type": "object", "required": ["agentId", "from", "to", "total", "offset", "limit", "records"], "properties": {
                "agentId": {"type": "string"}, "from": iso, "to": iso,
                "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
                "next": {"type": ["string", "null"]}, "coverageStart": {"type": ["string", "null"]},
                "sources": {"type": "object", "additionalProperties": {"type": "integer"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "records": {"type": "array", "items": {"type": "object", "required": ["source", "agentId", "kind", "at"], "properties": {
                    "id": {"type": ["integer", "null"]}, "source": {"type": "string", "enum": ["journal", "genesys_analytics"]},
                    "eventId": {"type": ["string", "null"]}, "agentId": {"type": "string"},
                    "kind": {"type": "string", "enum": ["presence", "routing"]},
                    "origin": {"type": ["string", "null"]}, "at": iso,
                    "previous": nullable("HistoryState"),
                    "current": nullable("HistoryState"),
                    "previousDurationMs": {"type": ["integer", "null"]}}}}}}));
    m.insert(
        "DayTotals".into(),
        json!({"type": "object", "properties": {
                "coveredFrom": iso, "coveredMs": {"type": "integer"},
                "totalsMs": {"type": "object", "additionalProperties": {"type": "integer"}},
                "records": {"type": "integer"},
                "sources": {"type": "object", "additionalProperties": {"type": "integer"}}}}),
    );
    m.insert(
        "Summary".into(),
        json!({"type": "object", "required": ["agentId", "date", "from", "to"], "properties": {
                "agentId": {"type": "string"}, "date": {"type": "string", "format": "date"},
                "timeZone": {"type": "string"}, "from": iso, "to": iso,
                "warnings": {"type": "array", "items": {"type": "string"}},
                "presence": nullable("DayTotals"),
                "routing": nullable("DayTotals")}}),
    );
    m.insert(
        "Interaction".into(),
        json!({"type": "object", "required": ["conversationId"], "properties": {
                "conversationId": {"type": "string"}, "mediaType": {"type": ["string", "null"]},
                "direction": {"type": ["string", "null"]}, "state": {"type": ["string", "null"]},
                "queue": {"type": ["object", "null"]}, "externalTag": {"type": ["string", "null"]},
                "customer": {"type": ["object", "null"]}}}),
    );
    m.insert("AgentInteractions".into(), json!({"type": "object", "required": ["agentId", "source", "interactions"], "properties": {
                "agentId": {"type": "string"}, "source": {"type": "string", "enum": ["live", "rest"]},
                "interactions": {"type": "array", "items": {"$ref": "#/components/schemas/Interaction"}}}}));
    m.insert("TagSearch".into(), json!({"type": "object", "required": ["externalTag", "conversations"], "properties": {
                "externalTag": {"type": "string"},
                "conversations": {"type": "array", "items": {"type": "object", "description": "Genesys's analytics conversation document (redacted and scoped)"}}}}));
    m.insert("Webhooks".into(), json!({"type": "object", "required": ["webhooks"], "properties": {
                "webhooks": {"type": "array", "items": {"type": "object", "required": ["name", "url"], "properties": {
                    "name": {"type": "string"}, "url": {"type": "string"}, "filter": {},
                    "enqueued": {"type": "integer"}, "delivered": {"type": "integer"}, "attempts": {"type": "integer"},
                    "failures": {"type": "integer"}, "deadLettered": {"type": "integer"},
                    "replayed": {"type": "integer"}, "pending": {"type": "integer"}}}}}}));
    m.insert(
        "Replay".into(),
        json!({"type": "object", "required": ["subscriber", "queued"], "properties": {
                "subscriber": {"type": "string"}, "queued": {"type": "integer"}}}),
    );
    m.insert(
        "DeadLetters".into(),
        json!({"type": "object", "required": ["deadLetters"], "properties": {
                "deadLetters": {"type": "array", "items": {"type": "object"}}}}),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table row is described exactly once, and every described path
    /// is a table row: the document is built from the table, so a row
    /// without an [`operation`] entry panics here.
    #[test]
    fn every_route_is_described() {
        let doc = document(&Facts::default());
        let paths = doc["paths"].as_object().unwrap();
        let mut n = 0;
        for (p, item) in paths {
            for (m, _) in item.as_object().unwrap() {
                n += 1;
                assert!(
                    endpoints()
                        .iter()
                        .any(|e| e.path == p && e.method.as_str().eq_ignore_ascii_case(m)),
                    "{m} {p} is described but not in the route table"
                );
            }
        }
        assert_eq!(n, endpoints().len());
    }
}
