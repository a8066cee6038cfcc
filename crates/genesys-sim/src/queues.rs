//! Customers waiting in queues and Genesys's queue observations query
//! (`POST /api/v2/analytics/queues/observations/query`, Genesys's
//! `QueueObservationQuery`): `{filter, metrics}` in, `{"results": [{"group":
//! {"queueId", "mediaType"}, "data": [{"metric", "stats"}]}]}` out, one
//! result per queue and media type. `oWaiting` carries `stats.count`;
//! `oLongestWaiting` carries `stats.calculatedMetricValue` in milliseconds
//! (which statistic the real service fills is UNCONFIRMED; the gateway
//! reads either) and is left out when nobody waits. `mediaType` predicates
//! in the filter restrict the media types reported, as in Genesys (an
//! unknown media type is a 400 `bad.request`).
//!
//! While churn runs, customers arrive in and leave queues at random. Tests
//! set them exactly with `POST /sim/queues/{id}/waiting` and read the
//! ground truth on `GET /sim/queues`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{json_body, Ctx, Reply};
use super::Sim;

/// Media types a queue observation reports, in Genesys's spelling.
pub const MEDIA: [&str; 4] = ["voice", "chat", "email", "message"];

/// Queue observation metrics the query accepts (Genesys's list of `o*`
/// queue metrics); only `oWaiting` and `oLongestWaiting` are answered.
const METRICS: [&str; 10] = [
    "oActiveUsers",
    "oAlerting",
    "oInteracting",
    "oLongestInteracting",
    "oLongestWaiting",
    "oMemberUsers",
    "oOnQueueUsers",
    "oUserPresences",
    "oUserRoutingStatuses",
    "oWaiting",
];

/// Most customers waiting in one queue while churn runs.
const MAX_WAITING: usize = 12;

/// Longest wait `POST /sim/queues/{id}/waiting` accepts, in seconds (7 days).
pub const MAX_WAITING_SECS: u64 = 7 * 24 * 3600;

/// One customer waiting in a queue.
#[derive(Debug, Clone)]
pub struct SimWaiting {
    /// Index into the org's queues.
    pub queue: usize,
    /// One of [`MEDIA`].
    pub media: &'static str,
    /// When the customer entered the queue.
    pub since: DateTime<Utc>,
}

/// Genesys routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/analytics/queues/observations/query",
        web::post().to(observations),
    );
}

/// `/sim` routes (registered before the `/sim` scope).
pub fn control(cfg: &mut web::ServiceConfig) {
    cfg.route("/sim/queues", web::get().to(state))
        .route("/sim/queues/{id}/waiting", web::post().to(set_waiting));
}

#[derive(Deserialize)]
struct Query {
    filter: Option<Filter>,
    metrics: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Filter {
    #[serde(default)]
    predicates: Vec<Predicate>,
    #[serde(default)]
    clauses: Vec<Filter>,
}

#[derive(Deserialize)]
struct Predicate {
    dimension: Option<String>,
    value: Option<String>,
}

/// Collects the values of every `dimension` predicate in the filter tree.
fn values_of(f: &Filter, dimension: &str, out: &mut Vec<String>) {
    for p in &f.predicates {
        if p.dimension.as_deref() == Some(dimension) {
            if let Some(v) = &p.value {
                out.push(v.clone());
            }
        }
    }
    for c in &f.clauses {
        values_of(c, dimension, out);
    }
}

/// Count and longest wait (ms) of one queue and media at `now`.
fn figures(
    waiting: &[SimWaiting],
    queue: usize,
    media: &str,
    now: DateTime<Utc>,
) -> (u64, Option<u64>) {
    let mine = waiting
        .iter()
        .filter(|w| w.queue == queue && w.media == media);
    let count = mine.clone().count() as u64;
    let longest = mine
        .map(|w| w.since)
        .min()
        .map(|t| (now - t).num_milliseconds().max(0) as u64);
    (count, longest)
}

/// `POST /api/v2/analytics/queues/observations/query`.
async fn observations(ctx: Ctx, body: web::Bytes, sim: web::Data<Sim>) -> Reply {
    let q: Query = json_body(&ctx, &body)?;
    let Some(filter) = q.filter else {
        return Err(ctx.bad_request("filter is required and must name at least one queueId"));
    };
    let metrics = q.metrics.unwrap_or_default();
    if metrics.is_empty() {
        return Err(ctx.bad_request("metrics is required"));
    }
    if let Some(m) = metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
        return Err(ctx.bad_request(format!("Invalid metric: {m}")));
    }
    let mut ids = Vec::new();
    values_of(&filter, "queueId", &mut ids);
    if ids.is_empty() {
        return Err(ctx.bad_request("filter must name at least one queueId"));
    }
    let mut asked = Vec::new();
    values_of(&filter, "mediaType", &mut asked);
    if let Some(m) = asked.iter().find(|m| !MEDIA.contains(&m.as_str())) {
        return Err(ctx.bad_request(format!("Invalid mediaType: {m}")));
    }
    let media_types: Vec<&str> = MEDIA
        .into_iter()
        .filter(|m| asked.is_empty() || asked.iter().any(|a| a == m))
        .collect();
    let inner = sim.inner.lock();
    let now = Utc::now();
    let mut results = Vec::new();
    for id in ids {
        let Some(qi) = inner.org.queues.iter().position(|q| q.id == id) else {
            continue;
        };
        for &media in &media_types {
            let (count, longest) = figures(&inner.waiting, qi, media, now);
            let mut data = Vec::new();
            for m in &metrics {
                match m.as_str() {
                    "oWaiting" => {
                        data.push(json!({"metric": "oWaiting", "stats": {"count": count}}))
                    }
                    "oLongestWaiting" => {
                        if let Some(ms) = longest {
                            data.push(json!({"metric": "oLongestWaiting", "stats": {"calculatedMetricValue": ms}}));
                        }
                    }
                    _ => {}
                }
            }
            results.push(json!({"group": {"queueId": id, "mediaType": media}, "data": data}));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

/// `GET /sim/queues`: every queue with its waiting customers per media
/// type: `{"queues": [{"id", "name", "division": {"id", "name"},
/// "waiting": {"voice": {"count", "longestWaitMs"}, …}}]}`.
async fn state(sim: web::Data<Sim>) -> HttpResponse {
    let inner = sim.inner.lock();
    let now = Utc::now();
    let queues: Vec<Value> = inner
        .org
        .queues
        .iter()
        .enumerate()
        .map(|(qi, q)| {
            let div = &inner.org.divisions[q.division];
            let mut waiting = serde_json::Map::new();
            for media in MEDIA {
                let (count, longest) = figures(&inner.waiting, qi, media, now);
                if count > 0 {
                    waiting.insert(media.into(), json!({"count": count, "longestWaitMs": longest}));
                }
            }
            json!({"id": q.id, "name": q.name, "division": {"id": div.id, "name": div.name}, "waiting": waiting})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "queues": queues }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WaitingBody {
    media_type: String,
    count: usize,
    /// How long the longest-waiting of them has waited, in seconds.
    #[serde(default)]
    waiting_secs: u64,
}

fn bad(reason: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": "bad_request", "reason": reason.into()}))
}

/// `POST /sim/queues/{id}/waiting` `{"mediaType", "count", "waitingSecs"}`:
/// replaces the customers waiting in one queue for one media type (the
/// oldest entered `waitingSecs` ago, the others one second apart after).
/// `count` is at most 1000 and `waitingSecs` at most [`MAX_WAITING_SECS`];
/// anything else is a 400 `{"error": "bad_request", "reason"}`.
async fn set_waiting(
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let b: WaitingBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "body must be {{\"mediaType\", \"count\", \"waitingSecs\"}}: {e}"
            ))
        }
    };
    let Some(media) = MEDIA.iter().copied().find(|m| *m == b.media_type) else {
        return bad(format!(
            "unknown mediaType {:?}; use one of {}",
            b.media_type,
            MEDIA.join(", ")
        ));
    };
    if b.count > 1_000 {
        return bad("count must be at most 1000");
    }
    if b.waiting_secs > MAX_WAITING_SECS {
        return bad(format!(
            "waitingSecs must be at most {MAX_WAITING_SECS} (7 days); got {}",
            b.waiting_secs
        ));
    }
    let mut inner = sim.inner.lock();
    let Some(qi) = inner.org.queues.iter().position(|q| q.id == *path) else {
        return HttpResponse::NotFound()
            .json(json!({"error": "not_found", "reason": format!("no queue {}", *path)}));
    };
    inner
        .waiting
        .retain(|w| !(w.queue == qi && w.media == media));
    let now = Utc::now();
    for i in 0..b.count {
        let ago = (b.waiting_secs as i64 - i as i64).max(0);
        inner.waiting.push(SimWaiting {
            queue: qi,
            media,
            since: now - chrono::Duration::seconds(ago),
        });
    }
    HttpResponse::NoContent().finish()
}

/// While churn runs, customers arrive in queues and are answered (the
/// oldest leaves first), about one change per queue every few seconds.
pub async fn arrivals_task(sim: Arc<Sim>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sim.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut inner = sim.inner.lock();
        if inner.churn_rate <= 0.0 {
            continue;
        }
        let now = Utc::now();
        for qi in 0..inner.org.queues.len() {
            match inner.roll(8) {
                0 => {
                    let n = inner.waiting.iter().filter(|w| w.queue == qi).count();
                    if n < MAX_WAITING {
                        let media = MEDIA[inner.roll(MEDIA.len() as u32) as usize];
                        inner.waiting.push(SimWaiting {
                            queue: qi,
                            media,
                            since: now,
                        });
                    }
                }
                1 => {
                    if let Some(i) = inner.waiting.iter().position(|w| w.queue == qi) {
                        inner.waiting.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}
