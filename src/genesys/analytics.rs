//! Presence and routing history from Genesys analytics, for ranges before
//! the gateway was running: `POST /api/v2/analytics/users/details/query`
//! (`genesys-api.md` §4.5, §7.1) on the lowest lane of the REST budget
//! (history is never more urgent than writes, reconciliation or the
//! directory). Open records (no `endTime`) are still current (§7.1,
//! inferred).

use actix::prelude::*;
use awc::http::Method;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::actor::Upstream;
use super::rest::{Lane, RestError};

/// One analytics record: a state and when it held.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    /// Presence records: `AVAILABLE`, `ON_QUEUE`, … (upper snake case).
    pub system_presence: Option<String>,
    /// Presence records: the definition id.
    pub organization_presence_id: Option<String>,
    /// Routing records: `IDLE`, `INTERACTING`, …
    pub routing_status: Option<String>,
}

/// One user's history in an interval.
#[derive(Debug, Clone, Default)]
pub struct UserDetails {
    /// Presence records, oldest first.
    pub presence: Vec<Span>,
    /// Routing records, oldest first.
    pub routing: Vec<Span>,
}

/// HTTP → upstream: one user's presence and routing records overlapping `[from, to)`.
#[derive(Message)]
#[rtype(result = "Result<UserDetails, RestError>")]
pub struct QueryUserDetails {
    pub user_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    user_details: Vec<Detail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    user_id: String,
    #[serde(default)]
    primary_presence: Vec<Span>,
    #[serde(default)]
    routing_status: Vec<Span>,
}

impl Handler<QueryUserDetails> for Upstream {
    type Result = ResponseFuture<Result<UserDetails, RestError>>;

    fn handle(&mut self, q: QueryUserDetails, _: &mut Context<Self>) -> Self::Result {
        let rest = self.rest_client();
        Box::pin(async move {
            let body = json!({
                "interval": format!("{}/{}", crate::model::iso(q.from), crate::model::iso(q.to)),
                "order": "asc",
                "userFilters": [{"type": "or", "predicates": [
                    {"type": "dimension", "dimension": "userId", "operator": "matches", "value": q.user_id}]}],
                "paging": {"pageSize": 100, "pageNumber": 1},
            });
            let a: Answer = rest
                .call(
                    Lane::Client,
                    Method::POST,
                    "/api/v2/analytics/users/details/query",
                    Some(&body),
                )
                .await?
                .json()?;
            let mut out = UserDetails::default();
            for d in a
                .user_details
                .into_iter()
                .filter(|d| d.user_id == q.user_id)
            {
                out.presence.extend(d.primary_presence);
                out.routing.extend(d.routing_status);
            }
            out.presence.sort_by_key(|s| s.start_time);
            out.routing.sort_by_key(|s| s.start_time);
            Ok(out)
        })
    }
}
