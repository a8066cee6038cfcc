//! Users, presence and routing status endpoints (`genesys-api.md` §3–4),
//! each surface with its own spelling of system presences (§4.2): legacy
//! REST and user presences in title case (`On Queue`), the current
//! definitions API in Pascal case (`OnQueue`), events in upper snake case.

use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{int_param, json_body, multi, query_pairs, single, Ctx, GError, Reply};
use super::org::{Org, SimUser};
use super::state::SimInner;
use super::Sim;
use crate::spelling::{iso, RoutingStatus, SystemPresence};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list_users))
        .route(
            "/users/presences/{source}/bulk",
            web::get().to(bulk_get_presences),
        )
        .route("/users/presences/bulk", web::put().to(bulk_put_presences))
        .route("/users/{id}", web::get().to(get_user))
        .route(
            "/users/{id}/presences/{source}",
            web::get().to(get_presence),
        )
        .route(
            "/users/{id}/presences/{source}",
            web::patch().to(patch_presence),
        )
        .route("/users/{id}/routingstatus", web::get().to(get_routing))
        .route("/users/{id}/routingstatus", web::put().to(put_routing))
        .route("/presencedefinitions", web::get().to(legacy_definitions))
        .route(
            "/presencedefinitions/{id}",
            web::get().to(legacy_definition),
        )
        .route("/presence/definitions", web::get().to(current_definitions))
        .route(
            "/presence/definitions/{id}",
            web::get().to(current_definition),
        )
        .route("/systempresences", web::get().to(system_presences))
        .route("/routing/queues", web::get().to(list_queues))
        .route("/routing/queues/{id}/members", web::get().to(queue_members))
        .route("/routing/wrapupcodes", web::get().to(list_wrapup_codes));
}

/// The paging envelope of §2 with relative URIs; `nextUri`/`previousUri`
/// only where such a page exists.
pub fn page_envelope(
    path: &str,
    extra_query: &str,
    entities: Vec<Value>,
    page_size: usize,
    page_number: usize,
    total: usize,
) -> Value {
    let page_count = total.div_ceil(page_size).max(1);
    let uri = |n: usize| format!("{path}?pageSize={page_size}&pageNumber={n}{extra_query}");
    let mut v = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(page_number),
        "lastUri": uri(page_count),
    });
    if page_number < page_count {
        v["nextUri"] = json!(uri(page_number + 1));
    }
    if page_number > 1 {
        v["previousUri"] = json!(uri(page_number - 1));
    }
    v
}

/// `UserPresence` as `GET …/presences/purecloud` returns it.
fn user_presence_json(org: &Org, u: &SimUser) -> Value {
    let def = &org.definitions[u.presence_def];
    json!({
        "id": org.purecloud_source_id,
        "name": "PURECLOUD",
        "source": "PURECLOUD",
        "sourceId": org.purecloud_source_id,
        "primary": true,
        "presenceDefinition": {
            "id": def.id,
            "systemPresence": def.system_presence.legacy(),
            "selfUri": format!("/api/v2/presencedefinitions/{}", def.id),
        },
        "message": u.message,
        "modifiedDate": iso(u.presence_modified),
        "selfUri": format!("/api/v2/users/{}/presences", u.id),
    })
}

fn routing_json(u: &SimUser) -> Value {
    json!({"userId": u.id, "status": u.routing.as_str(), "startTime": iso(u.routing_since)})
}

/// A `User` with the requested expansions (best effort: `miss` drops them).
fn user_json(org: &Org, u: &SimUser, expand: &[String], miss: bool) -> Value {
    let div = &org.divisions[u.division];
    let mut v = json!({
        "id": u.id,
        "name": u.name,
        "division": {"id": div.id, "name": div.name, "selfUri": format!("/api/v2/authorization/divisions/{}", div.id)},
        "chat": {"jabberId": format!("{}@sim.orgspan.com", u.id.replace('-', ""))},
        "email": u.email,
        "department": u.department,
        "title": u.title,
        "primaryContactInfo": [{"address": u.email, "mediaType": "EMAIL", "type": "PRIMARY"}],
        "addresses": [],
        "state": "active",
        "username": u.email,
        "version": u.version,
        "acdAutoAnswer": false,
        "selfUri": format!("/api/v2/users/{}", u.id),
    });
    if miss {
        return v;
    }
    for e in expand {
        match e.as_str() {
            "presence" => v["presence"] = user_presence_json(org, u),
            "routingStatus" => v["routingStatus"] = routing_json(u),
            "conversationSummary" => {
                let active = u.conversations.len();
                v["conversationSummary"] = json!({"userId": u.id, "call": {"contactCenter": {"active": active, "acw": 0}, "enterprise": {"active": 0, "acw": 0}}});
            }
            "outOfOffice" => {
                v["outOfOffice"] =
                    json!({"active": false, "indefinite": false, "user": {"id": u.id}})
            }
            _ => {}
        }
    }
    v
}

/// The `expand` values Genesys accepts on users (§3.1); others are 400.
const USER_EXPANDS: [&str; 25] = [
    "routingStatus",
    "presence",
    "integrationPresence",
    "conversationSummary",
    "outOfOffice",
    "geolocation",
    "station",
    "authorization",
    "lasttokenissued",
    "authorization.unusedRoles",
    "team",
    "workPlanBidRanks",
    "externalContactsSettings",
    "groups",
    "customAttributes",
    "profileSkills",
    "certifications",
    "locations",
    "skills",
    "languages",
    "languagePreference",
    "employerInfo",
    "biography",
    "dateLastLogin",
    "dateWelcomeSent",
];

fn parse_expand(ctx: &Ctx, pairs: &[(String, String)]) -> Result<Vec<String>, GError> {
    let expand = multi(pairs, "expand");
    for e in &expand {
        if !USER_EXPANDS.contains(&e.as_str()) {
            return Err(ctx.err(
                400,
                "invalid.value",
                format!(
                    "Value [{e}] is not valid for field type [expand]. Allowable values are: {}",
                    USER_EXPANDS.join(", ")
                ),
            ));
        }
    }
    Ok(expand)
}

/// `GET /api/v2/users`.
async fn list_users(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let pairs = query_pairs(&req);
    let page_size = int_param(&ctx, &pairs, "pageSize", 25)?;
    let page_number = int_param(&ctx, &pairs, "pageNumber", 1)?;
    if page_size > sim.cfg.users_max_page_size {
        return Err(ctx.err(
            400,
            "invalid.value",
            format!(
                "Value [{page_size}] is not valid for field type [pageSize]. Allowable values are: 1 to {}",
                sim.cfg.users_max_page_size
            ),
        ));
    }
    let expand = parse_expand(&ctx, &pairs)?;
    let ids = multi(&pairs, "id");
    if ids.len() > 100 {
        return Err(ctx.err(
            400,
            "max.user.ids",
            "Only 100 users can be requested at a time",
        ));
    }
    if !ids.is_empty() && !multi(&pairs, "jabberId").is_empty() {
        return Err(ctx.bad_request("The id and jabberId parameters cannot be combined"));
    }
    let state = single(&pairs, "state").unwrap_or("active");
    if !["active", "inactive", "deleted", "any"].contains(&state) {
        return Err(ctx.err(400, "invalid.value", format!("Value [{state}] is not valid for field type [state]. Allowable values are: active, inactive, deleted, any")));
    }
    let mut inner = sim.inner.lock();
    let include_active = state == "active" || state == "any";
    let matching: Vec<usize> = if !include_active {
        Vec::new()
    } else if ids.is_empty() {
        (0..inner.org.users.len()).collect()
    } else {
        ids.iter().filter_map(|id| inner.user_idx(id)).collect()
    };
    let total = matching.len();
    let start = (page_number - 1).saturating_mul(page_size);
    let miss_rate = sim.cfg.expand_miss_rate;
    let slice: Vec<usize> = matching.into_iter().skip(start).take(page_size).collect();
    let mut entities = Vec::with_capacity(slice.len());
    for i in slice {
        let miss = miss_rate > 0.0 && inner.rng.random_bool(miss_rate);
        entities.push(user_json(&inner.org, &inner.org.users[i], &expand, miss));
    }
    drop(inner);
    let mut extra = String::new();
    if !expand.is_empty() {
        extra.push_str(&format!("&expand={}", expand.join(",")));
    }
    if !ids.is_empty() {
        extra.push_str(&format!("&id={}", ids.join(",")));
    }
    Ok(HttpResponse::Ok().json(page_envelope(
        "/api/v2/users",
        &extra,
        entities,
        page_size,
        page_number,
        total,
    )))
}

fn find_user(inner: &SimInner, ctx: &Ctx, id: &str) -> Result<usize, GError> {
    inner.user_idx(id).ok_or_else(|| {
        ctx.err(
            404,
            "general.resource.not.found",
            "Unable to find a user with that userId",
        )
    })
}

/// `GET /api/v2/users/{id}`.
async fn get_user(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    sim: web::Data<Sim>,
) -> Reply {
    let pairs = query_pairs(&req);
    let expand = parse_expand(&ctx, &pairs)?;
    let inner = sim.inner.lock();
    let u = find_user(&inner, &ctx, &path)?;
    Ok(HttpResponse::Ok().json(user_json(&inner.org, &inner.org.users[u], &expand, false)))
}

/// True when `source` names the Genesys Cloud presence source.
fn is_purecloud(org: &Org, source: &str) -> bool {
    source.eq_ignore_ascii_case("purecloud")
        || source.eq_ignore_ascii_case(&org.purecloud_source_id)
}

fn check_source(inner: &SimInner, ctx: &Ctx, source: &str) -> Result<(), GError> {
    if is_purecloud(&inner.org, source) {
        Ok(())
    } else {
        Err(ctx.not_found(format!("Presence source {source} not found")))
    }
}

/// `GET /api/v2/users/{id}/presences/{source}`.
async fn get_presence(ctx: Ctx, path: web::Path<(String, String)>, sim: web::Data<Sim>) -> Reply {
    let (id, source) = path.into_inner();
    let inner = sim.inner.lock();
    check_source(&inner, &ctx, &source)?;
    let u = find_user(&inner, &ctx, &id)?;
    Ok(HttpResponse::Ok().json(user_presence_json(&inner.org, &inner.org.users[u])))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresenceRef {
    id: Option<String>,
}

/// The writable part of `UserPresence` (PATCH body, bulk PUT items).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresencePatch {
    /// Only on bulk items (`MutableUserPresence.id` is the user's id).
    id: Option<String>,
    presence_definition: Option<PresenceRef>,
    message: Option<String>,
    #[allow(dead_code)]
    primary: Option<bool>,
}

/// Applies one presence PATCH to user `u`, validating the definition.
fn apply_patch(
    inner: &mut SimInner,
    ctx: &Ctx,
    u: usize,
    patch: &PresencePatch,
) -> Result<(), GError> {
    let def = match &patch.presence_definition {
        Some(PresenceRef { id: Some(id) }) => {
            let d = inner.org.def_by_id(id).ok_or_else(|| {
                ctx.bad_request(format!("Presence definition [{id}] does not exist"))
            })?;
            if inner.org.definitions[d].deactivated {
                return Err(ctx.bad_request(format!("Presence definition [{id}] is deactivated")));
            }
            d
        }
        Some(PresenceRef { id: None }) => {
            return Err(ctx.bad_request("presenceDefinition.id is required"));
        }
        None => inner.org.users[u].presence_def,
    };
    if patch
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > 250)
    {
        return Err(ctx.err(
            400,
            "invalid.value",
            "message may be at most 250 characters",
        ));
    }
    inner.set_presence(u, def, patch.message.clone());
    Ok(())
}

/// `PATCH /api/v2/users/{id}/presences/{source}`: last writer wins (no
/// precondition exists for presence, §10).
async fn patch_presence(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> Reply {
    let (id, source) = path.into_inner();
    let patch: PresencePatch = json_body(&ctx, &body)?;
    let mut inner = sim.inner.lock();
    check_source(&inner, &ctx, &source)?;
    let u = find_user(&inner, &ctx, &id)?;
    apply_patch(&mut inner, &ctx, u, &patch)?;
    Ok(HttpResponse::Ok().json(user_presence_json(&inner.org, &inner.org.users[u])))
}

/// `GET /api/v2/users/presences/{source}/bulk?id=…` (at most 50 ids).
async fn bulk_get_presences(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    sim: web::Data<Sim>,
) -> Reply {
    let pairs = query_pairs(&req);
    let ids = multi(&pairs, "id");
    if ids.is_empty() {
        return Err(ctx.bad_request("At least one id is required"));
    }
    if ids.len() > 50 {
        return Err(ctx.err(
            400,
            "max.user.ids",
            "Only 50 users can be requested at a time",
        ));
    }
    let inner = sim.inner.lock();
    check_source(&inner, &ctx, &path)?;
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| inner.user_idx(id))
        .map(|u| {
            let user = &inner.org.users[u];
            let mut v = user_presence_json(&inner.org, user);
            let o = v.as_object_mut();
            if let Some(o) = o {
                o.remove("primary");
                o.remove("id");
                o.remove("name");
                o.insert("userId".into(), json!(user.id));
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// `PUT /api/v2/users/presences/bulk`: `MutableUserPresence[]` whose `id` is
/// the user's id. All items are validated before any is applied. The answer's
/// `id` is the user's id or the source's id per `--bulk-put-answer-id`.
async fn bulk_put_presences(ctx: Ctx, body: web::Bytes, sim: web::Data<Sim>) -> Reply {
    let items: Vec<PresencePatch> = json_body(&ctx, &body)?;
    if items.is_empty() {
        return Err(ctx.bad_request("At least one presence is required"));
    }
    if items.len() > sim.cfg.bulk_put_max {
        return Err(ctx.bad_request(format!(
            "Only {} presences can be updated at a time",
            sim.cfg.bulk_put_max
        )));
    }
    let mut inner = sim.inner.lock();
    let mut targets = Vec::with_capacity(items.len());
    for item in &items {
        let id = item
            .id
            .as_deref()
            .ok_or_else(|| ctx.bad_request("Each presence needs the user's id in id"))?;
        let u = find_user(&inner, &ctx, id)?;
        if let Some(PresenceRef { id: Some(def) }) = &item.presence_definition {
            match inner.org.def_by_id(def) {
                Some(d) if !inner.org.definitions[d].deactivated => {}
                _ => {
                    return Err(
                        ctx.bad_request(format!("Presence definition [{def}] does not exist"))
                    )
                }
            }
        }
        targets.push(u);
    }
    let mut out = Vec::with_capacity(items.len());
    for (u, item) in targets.into_iter().zip(&items) {
        apply_patch(&mut inner, &ctx, u, item)?;
        let mut v = user_presence_json(&inner.org, &inner.org.users[u]);
        if sim.cfg.bulk_put_answer_id == crate::BulkPutAnswerId::User {
            v["id"] = json!(inner.org.users[u].id);
        }
        out.push(v);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `GET /api/v2/users/{id}/routingstatus`; `OFF_QUEUE` for unknown users, as documented.
async fn get_routing(path: web::Path<String>, sim: web::Data<Sim>) -> Reply {
    let inner = sim.inner.lock();
    Ok(match inner.user_idx(&path) {
        Some(u) => HttpResponse::Ok().json(routing_json(&inner.org.users[u])),
        None => HttpResponse::Ok().json(json!({"userId": *path, "status": "OFF_QUEUE"})),
    })
}

#[derive(Deserialize)]
struct RoutingBody {
    status: Option<String>,
}

/// `PUT /api/v2/users/{id}/routingstatus`. Allowed transitions are
/// UNCONFIRMED; the simulator allows only what agents do in practice:
/// `NOT_RESPONDING` → `IDLE` while On Queue (and `IDLE` → `IDLE`).
async fn put_routing(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> Reply {
    let b: RoutingBody = json_body(&ctx, &body)?;
    let status = b
        .status
        .as_deref()
        .and_then(RoutingStatus::parse)
        .ok_or_else(|| {
            ctx.err(
                400,
                "invalid.value",
                "status must be one of OFF_QUEUE, IDLE, INTERACTING, NOT_RESPONDING, COMMUNICATING",
            )
        })?;
    let mut inner = sim.inner.lock();
    let u = find_user(&inner, &ctx, &path)?;
    let current = inner.org.users[u].routing;
    let allowed = status == RoutingStatus::Idle
        && matches!(current, RoutingStatus::NotResponding | RoutingStatus::Idle)
        && inner.is_on_queue(u);
    if !allowed {
        return Err(ctx.err(
            400,
            "general.bad.request",
            "An invalid routing status transition was attempted.",
        ));
    }
    inner.set_routing(u, status);
    Ok(HttpResponse::Ok().json(routing_json(&inner.org.users[u])))
}

fn legacy_def_json(d: &super::org::SimDefinition) -> Value {
    json!({
        "id": d.id,
        "name": d.label(),
        "languageLabels": d.labels,
        "systemPresence": d.system_presence.legacy(),
        "deactivated": d.deactivated,
        "primary": d.primary,
        "createdDate": "2020-01-01T00:00:00.000Z",
        "modifiedDate": "2020-01-01T00:00:00.000Z",
        "selfUri": format!("/api/v2/presencedefinitions/{}", d.id),
    })
}

fn current_def_json(d: &super::org::SimDefinition, home_division: &str) -> Value {
    json!({
        "id": d.id,
        "name": d.label(),
        "type": if d.primary { "System" } else { "User" },
        "languageLabels": d.labels,
        "systemPresence": d.system_presence.current(),
        "divisionId": home_division,
        "deactivated": d.deactivated,
        "selfUri": format!("/api/v2/presence/definitions/{}", d.id),
    })
}

/// `GET /api/v2/presencedefinitions` (legacy, paged; `deleted` = false|true|all).
async fn legacy_definitions(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let pairs = query_pairs(&req);
    let page_size = int_param(&ctx, &pairs, "pageSize", 25)?;
    let page_number = int_param(&ctx, &pairs, "pageNumber", 1)?;
    let deleted = single(&pairs, "deleted").unwrap_or("false");
    let keep = |d: &super::org::SimDefinition| match deleted {
        "true" => d.deactivated,
        "all" => true,
        _ => !d.deactivated,
    };
    if !["true", "false", "all"].contains(&deleted) {
        return Err(ctx.err(400, "invalid.value", format!("Value [{deleted}] is not valid for field type [deleted]. Allowable values are: true, false, all")));
    }
    let inner = sim.inner.lock();
    let all: Vec<Value> = inner
        .org
        .definitions
        .iter()
        .filter(|d| keep(d))
        .map(legacy_def_json)
        .collect();
    let total = all.len();
    let entities = all
        .into_iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(HttpResponse::Ok().json(page_envelope(
        "/api/v2/presencedefinitions",
        "",
        entities,
        page_size,
        page_number,
        total,
    )))
}

async fn legacy_definition(ctx: Ctx, path: web::Path<String>, sim: web::Data<Sim>) -> Reply {
    let inner = sim.inner.lock();
    let d = inner
        .org
        .def_by_id(&path)
        .ok_or_else(|| ctx.not_found("The requested resource was not found."))?;
    Ok(HttpResponse::Ok().json(legacy_def_json(&inner.org.definitions[d])))
}

/// `GET /api/v2/presence/definitions` (current, not paged; `deactivated`,
/// whose `true` means "also" or "only" per `--definitions-deactivated`).
async fn current_definitions(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let pairs = query_pairs(&req);
    let deactivated = match single(&pairs, "deactivated").unwrap_or("false") {
        "false" => false,
        "true" => true,
        other => {
            return Err(ctx.err(400, "invalid.value", format!("Value [{other}] is not valid for field type [deactivated]. Allowable values are: true, false")))
        }
    };
    let inner = sim.inner.lock();
    let home = inner.org.divisions[0].id.clone();
    let entities: Vec<Value> = inner
        .org
        .definitions
        .iter()
        .filter(|d| match (deactivated, sim.cfg.definitions_deactivated) {
            (false, _) => !d.deactivated,
            (true, crate::DeactivatedReading::Include) => true,
            (true, crate::DeactivatedReading::Only) => d.deactivated,
        })
        .map(|d| current_def_json(d, &home))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": entities.len(),
        "entities": entities,
        "selfUri": "/api/v2/presence/definitions",
    })))
}

async fn current_definition(ctx: Ctx, path: web::Path<String>, sim: web::Data<Sim>) -> Reply {
    let inner = sim.inner.lock();
    let d = inner
        .org
        .def_by_id(&path)
        .ok_or_else(|| ctx.not_found("The requested resource was not found."))?;
    let home = inner.org.divisions[0].id.clone();
    Ok(HttpResponse::Ok().json(current_def_json(&inner.org.definitions[d], &home)))
}

/// `GET /api/v2/systempresences`: a bare array.
async fn system_presences() -> HttpResponse {
    let out: Vec<Value> = SystemPresence::ALL
        .iter()
        .map(|sp| json!({"id": sp.upper_snake(), "name": sp.legacy(), "selfUri": format!("/api/v2/systempresences/{}", sp.upper_snake())}))
        .collect();
    HttpResponse::Ok().json(out)
}

/// `GET /api/v2/routing/queues` (paged).
async fn list_queues(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let pairs = query_pairs(&req);
    let page_size = int_param(&ctx, &pairs, "pageSize", 25)?.min(500);
    let page_number = int_param(&ctx, &pairs, "pageNumber", 1)?;
    let inner = sim.inner.lock();
    let org = &inner.org;
    let all: Vec<Value> = org
        .queues
        .iter()
        .enumerate()
        .map(|(qi, q)| {
            let div = &org.divisions[q.division];
            let members = org.users.iter().filter(|u| u.queues.contains(&qi)).count();
            json!({
                "id": q.id, "name": q.name,
                "division": {"id": div.id, "name": div.name},
                "memberCount": members, "userMemberCount": members, "joinedMemberCount": members,
                "selfUri": format!("/api/v2/routing/queues/{}", q.id),
            })
        })
        .collect();
    let total = all.len();
    let entities = all
        .into_iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(HttpResponse::Ok().json(page_envelope(
        "/api/v2/routing/queues",
        "",
        entities,
        page_size,
        page_number,
        total,
    )))
}

/// A membership record's own id (`--queue-member-id member`): a stable id
/// derived from the user and queue ids, never equal to either.
fn member_record_id(user: &str, queue: &str) -> String {
    let tail: String = queue.chars().rev().take(12).collect();
    format!("{}{}", &user[..user.len().saturating_sub(12)], tail)
}

/// `GET /api/v2/routing/wrapupcodes` (paged `WrapupCodeEntityListing`).
async fn list_wrapup_codes(req: HttpRequest, ctx: Ctx, sim: web::Data<Sim>) -> Reply {
    let pairs = query_pairs(&req);
    let page_size = int_param(&ctx, &pairs, "pageSize", 25)?.min(500);
    let page_number = int_param(&ctx, &pairs, "pageNumber", 1)?;
    let inner = sim.inner.lock();
    let div = &inner.org.divisions[0];
    let all: Vec<Value> = crate::conversations::WRAPUP_CODES
        .iter()
        .map(|(id, name)| {
            json!({
                "id": id, "name": name,
                "division": {"id": div.id, "name": div.name, "selfUri": format!("/api/v2/authorization/divisions/{}", div.id)},
                "dateCreated": "2024-01-01T00:00:00.000Z",
                "selfUri": format!("/api/v2/routing/wrapupcodes/{id}"),
            })
        })
        .collect();
    let total = all.len();
    let entities = all
        .into_iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(HttpResponse::Ok().json(page_envelope(
        "/api/v2/routing/wrapupcodes",
        "",
        entities,
        page_size,
        page_number,
        total,
    )))
}

/// `GET /api/v2/routing/queues/{id}/members` (pageSize at most 100).
async fn queue_members(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    sim: web::Data<Sim>,
) -> Reply {
    let pairs = query_pairs(&req);
    let page_size = int_param(&ctx, &pairs, "pageSize", 25)?;
    let page_number = int_param(&ctx, &pairs, "pageNumber", 1)?;
    if page_size > 100 {
        return Err(ctx.err(400, "invalid.value", format!("Value [{page_size}] is not valid for field type [pageSize]. Allowable values are: 1 to 100")));
    }
    let expand = parse_expand(&ctx, &pairs)?;
    let inner = sim.inner.lock();
    let org = &inner.org;
    let qi = org
        .queues
        .iter()
        .position(|q| q.id.eq_ignore_ascii_case(&path))
        .ok_or_else(|| ctx.not_found("The requested resource was not found."))?;
    let members: Vec<(usize, &SimUser)> = org
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.queues.contains(&qi))
        .collect();
    let rate = inner.fidelity.unjoined_member_rate;
    let member_id = sim.cfg.queue_member_id;
    let total = members.len();
    let entities: Vec<Value> = members
        .into_iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(ui, u)| {
            let id = match member_id {
                crate::QueueMemberId::User => u.id.clone(),
                crate::QueueMemberId::Member => member_record_id(&u.id, &org.queues[qi].id),
            };
            json!({
                "id": id, "name": u.name,
                "user": user_json(org, u, &expand, false),
                "ringNumber": 1, "joined": crate::org::joined(ui, qi, rate), "memberBy": "user",
                "routingStatus": routing_json(u),
                "selfUri": format!("/api/v2/users/{}", u.id),
            })
        })
        .collect();
    let q = format!("/api/v2/routing/queues/{}/members", org.queues[qi].id);
    // `QueueMemberEntityListing` has no `total`, `pageCount` or `lastUri`
    // (the SDKs' model): a reader pages on `nextUri`.
    let mut v = page_envelope(&q, "", entities, page_size, page_number, total);
    if let Some(o) = v.as_object_mut() {
        for k in ["total", "pageCount", "lastUri"] {
            o.remove(k);
        }
    }
    Ok(HttpResponse::Ok().json(v))
}
