//! The bodies of the context messages and their REST twins: an agent's
//! interactions (`interaction` stream message, `GET
//! /api/v1/agents/{id}/interactions`) and the queue figures (`queues`
//! stream message, `GET /api/v1/queues`); docs/protocol.md §9–§10. The
//! hubs decide what to send and when; this module decides how it looks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::encode::Frame;
use crate::model::{iso, Interaction};

/// The customer of an interaction as a gateway with
/// `interactions.redact_customer` shows it.
fn redacted_customer() -> Value {
    json!({"name": null, "ani": null, "redacted": true})
}

/// Interactions as clients see them: each as its JSON, the `customer`
/// replaced by `{"name": null, "ani": null, "redacted": true}` when
/// `redact_customer`.
pub fn interactions_json<'a>(
    list: impl IntoIterator<Item = &'a Interaction>,
    redact_customer: bool,
) -> Vec<Value> {
    list.into_iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
            if redact_customer {
                v["customer"] = redacted_customer();
            }
            v
        })
        .collect()
}

/// The `interaction` message for one agent: `{"type": "interaction",
/// "agentId", "interactions": [...]}`.
pub fn interaction_frame<'a>(
    agent_id: &str,
    list: impl IntoIterator<Item = &'a Interaction>,
    redact_customer: bool,
) -> Frame {
    super::encode::interaction_frame(agent_id, interactions_json(list, redact_customer))
}

/// The body of `GET /api/v1/agents/{id}/interactions`: `{"agentId",
/// "source": "live" | "rest", "interactions": [...]}`.
pub fn agent_interactions_body(
    agent_id: &str,
    source: &str,
    list: &[Interaction],
    redact_customer: bool,
) -> Value {
    json!({
        "agentId": agent_id,
        "source": source,
        "interactions": interactions_json(list, redact_customer),
    })
}

/// The JSON body of `GET /api/v1/queues` and of the `queues` stream
/// message (`stream` adds `"type": "queues"`): `{"observedAt": ISO |
/// null, "observations": "ok" | "pending" | "stale" | "unavailable",
/// "queues": [...]}`; `figures` are the queues as the queue hub computed
/// them, `observed_at` when the waiting figures were read.
pub fn queues_body<F: Serialize>(
    figures: &[F],
    observed_at: Option<DateTime<Utc>>,
    observations: &str,
    stream: bool,
) -> Value {
    let mut v = json!({
        "observedAt": observed_at.map(iso),
        "observations": observations,
        "queues": figures,
    });
    if stream {
        v["type"] = "queues".into();
    }
    v
}

/// The `queues` stream message.
pub fn queues_frame<F: Serialize>(
    figures: &[F],
    observed_at: Option<DateTime<Utc>>,
    observations: &str,
) -> Frame {
    super::encode::queues_frame(&queues_body(figures, observed_at, observations, true))
}
