//! Live queue observations from Genesys analytics: customers waiting and
//! the longest wait per queue and media type, from
//! `POST /api/v2/analytics/queues/observations/query`
//! (`genesys-api.md` §7, Genesys's `QueueObservationQuery`), on the lowest
//! lane of the REST budget (live board figures are never more urgent than
//! writes, reconciliation or the directory).
//!
//! Request: `{"filter": {"type": "or", "predicates": [{"dimension":
//! "queueId", "value": …}, …]}, "metrics": ["oWaiting", "oLongestWaiting"]}`,
//! at most [`MAX_QUEUES_PER_QUERY`] queues per call. Answer:
//! `{"results": [{"group": {"queueId", "mediaType"}, "data": [{"metric",
//! "stats": {"count" | "calculatedMetricValue" | "max"}}]}]}`. Which
//! statistic carries `oLongestWaiting` (milliseconds) is UNCONFIRMED: the
//! parser reads `calculatedMetricValue`, then `max`, and, when Genesys sends
//! the observations themselves, the oldest `observationDate`.

use std::collections::BTreeMap;

use actix::prelude::*;
use awc::http::Method;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::actor::Upstream;
use super::rest::{Lane, RestError};

/// Most queue ids in one query's filter (Genesys caps predicates per
/// filter; the exact cap is UNCONFIRMED, 100 is safely below it).
pub const MAX_QUEUES_PER_QUERY: usize = 100;

/// Waiting customers of one queue and media type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    /// Customers waiting (`oWaiting`).
    pub waiting: u64,
    /// How long the longest-waiting customer has waited, in milliseconds,
    /// at the time of the observation (`oLongestWaiting`); `None` when
    /// nobody waits.
    pub longest_wait_ms: Option<u64>,
}

/// One observation round: per queue id, per media type (`voice`, `chat`,
/// `email`, `message`, …).
pub type Observations = BTreeMap<String, BTreeMap<String, Waiting>>;

/// One observation round as a cluster leader's queue hub shares it with
/// the other nodes' hubs (`crate::cluster::context`).
#[derive(Message, Debug, Clone, Serialize, serde::Deserialize)]
#[rtype(result = "()")]
pub struct ObservationRound {
    /// What Genesys answered (empty when the round failed).
    pub observations: Observations,
    /// When the round was taken (Unix ms).
    pub at_ms: i64,
    /// The round failed (`observations` is the last good one).
    pub failed: bool,
}

/// Queue hub → upstream: observe these queues now.
#[derive(Message)]
#[rtype(result = "Result<Observations, RestError>")]
pub struct QueryQueueObservations {
    /// Queue ids (any number: split into calls of [`MAX_QUEUES_PER_QUERY`]).
    pub queue_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<ResultRow>,
}

#[derive(Deserialize)]
struct ResultRow {
    #[serde(default)]
    group: BTreeMap<String, String>,
    #[serde(default)]
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    metric: String,
    #[serde(default)]
    stats: Stats,
    #[serde(default)]
    observations: Vec<Observation>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Stats {
    count: Option<f64>,
    max: Option<f64>,
    calculated_metric_value: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Observation {
    observation_date: Option<DateTime<Utc>>,
}

/// The query body for some queue ids.
pub fn query_body(queue_ids: &[String]) -> serde_json::Value {
    let predicates: Vec<_> = queue_ids
        .iter()
        .map(|id| json!({"type": "dimension", "dimension": "queueId", "operator": "matches", "value": id}))
        .collect();
    json!({
        "filter": {"type": "or", "predicates": predicates},
        "metrics": ["oWaiting", "oLongestWaiting"],
    })
}

/// Parses one answer into `out` (`now`: for observations given as dates).
pub fn parse_answer(
    body: &[u8],
    now: DateTime<Utc>,
    out: &mut Observations,
) -> Result<(), serde_json::Error> {
    let a: Answer = super::lenient::from_slice(body)?;
    for r in a.results {
        let Some(queue) = r.group.get("queueId") else {
            continue;
        };
        let media = r
            .group
            .get("mediaType")
            .cloned()
            .unwrap_or_else(|| "all".into());
        let w = out
            .entry(queue.clone())
            .or_default()
            .entry(media)
            .or_default();
        for d in r.data {
            match d.metric.as_str() {
                "oWaiting" => w.waiting = d.stats.count.unwrap_or(0.0).max(0.0) as u64,
                "oLongestWaiting" => {
                    let from_dates = d
                        .observations
                        .iter()
                        .filter_map(|o| o.observation_date)
                        .min()
                        .map(|t| (now - t).num_milliseconds().max(0) as f64);
                    w.longest_wait_ms = d
                        .stats
                        .calculated_metric_value
                        .or(d.stats.max)
                        .or(from_dates)
                        .map(|v| v.max(0.0) as u64);
                }
                _ => {}
            }
        }
    }
    for per_media in out.values_mut() {
        for w in per_media.values_mut() {
            if w.waiting == 0 {
                w.longest_wait_ms = None;
            }
        }
    }
    Ok(())
}

impl Handler<QueryQueueObservations> for Upstream {
    type Result = ResponseFuture<Result<Observations, RestError>>;

    fn handle(&mut self, q: QueryQueueObservations, _: &mut Context<Self>) -> Self::Result {
        let rest = self.rest_client();
        Box::pin(async move {
            let mut out = Observations::new();
            for chunk in q.queue_ids.chunks(MAX_QUEUES_PER_QUERY) {
                let resp = rest
                    .call(
                        Lane::Directory,
                        Method::POST,
                        "/api/v2/analytics/queues/observations/query",
                        Some(&query_body(chunk)),
                    )
                    .await?;
                parse_answer(&resp.body, Utc::now(), &mut out)
                    .map_err(|e| RestError::Transport(format!("queue observations answer: {e}")))?;
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_longest_wait() {
        let body = br#"{"results":[
            {"group":{"queueId":"q1","mediaType":"voice"},"data":[
                {"metric":"oWaiting","stats":{"count":3}},
                {"metric":"oLongestWaiting","stats":{"calculatedMetricValue":61000}}]},
            {"group":{"queueId":"q1","mediaType":"chat"},"data":[
                {"metric":"oWaiting","stats":{"count":0}},
                {"metric":"oLongestWaiting","stats":{"max":5}}]},
            {"group":{"queueId":"q2","mediaType":"email"},"data":[
                {"metric":"oWaiting","stats":{"count":1}},
                {"metric":"oLongestWaiting","observations":[
                    {"observationDate":"2026-01-01T00:00:00.000Z"}]}]}]}"#;
        let now: DateTime<Utc> = "2026-01-01T00:00:10Z".parse().unwrap();
        let mut out = Observations::new();
        parse_answer(body, now, &mut out).unwrap();
        assert_eq!(out["q1"]["voice"].waiting, 3);
        assert_eq!(out["q1"]["voice"].longest_wait_ms, Some(61_000));
        assert_eq!(out["q1"]["chat"].longest_wait_ms, None);
        assert_eq!(out["q2"]["email"].longest_wait_ms, Some(10_000));
    }

    #[test]
    fn body_filters_every_queue() {
        let b = query_body(&["a".into(), "b".into()]);
        assert_eq!(b["filter"]["predicates"].as_array().unwrap().len(), 2);
        assert_eq!(b["metrics"][0], "oWaiting");
    }
}
