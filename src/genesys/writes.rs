//! Presence writes to Genesys, on the top-priority lane of the REST budget:
//! `PATCH /api/v2/users/{id}/presences/purecloud` for one agent and
//! `PUT /api/v2/users/presences/bulk` for many (`genesys-api.md` §4.3).
//! On success the confirmed presence goes to the registry (origin `write`)
//! before the caller hears back, so every stream shows it at once.
//!
//! Whether the bulk answer's `id` is the user's id or the source's id is
//! open (`genesys-api.md` §4.3): a bulk item counts as confirmed only when
//! the answer names its user (`userId`, or an `id` equal to a requested user
//! id); the others are re-read with one bulk GET and confirmed only if
//! Genesys holds the requested definition.

use std::collections::HashSet;

use actix::prelude::*;
use awc::http::Method;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::actor::Upstream;
use super::directory::{presence_state, GDefRef};
use super::rest::{Lane, RestError};
use crate::model::{Origin, PresenceState, UpstreamEvent};

/// One presence change to make in Genesys.
#[derive(Debug, Clone)]
pub struct PresenceWrite {
    pub user_id: String,
    pub definition_id: String,
    /// `None` leaves the status message as it is.
    pub message: Option<String>,
}

/// What Genesys confirmed.
#[derive(Debug, Clone)]
pub struct WriteConfirmed {
    pub user_id: String,
    pub presence: PresenceState,
    pub correlation_id: Option<String>,
    /// The agent's JSON after the change, as the registry answered the
    /// hand-over (`None` when the registry does not hold the agent).
    pub agent_json: Option<String>,
}

/// Sets one user's presence.
#[derive(Message)]
#[rtype(result = "Result<WriteConfirmed, RestError>")]
pub struct WritePresence(pub PresenceWrite);

/// Sets many users' presence in one bulk call (the caller chunks).
#[derive(Message)]
#[rtype(result = "Result<Vec<WriteConfirmed>, RestError>")]
pub struct WriteBulk(pub Vec<PresenceWrite>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GPresenceAnswer {
    /// The user's id in bulk answers if `MutableUserPresence` holds for the
    /// answer too, or the presence source's id: UNCONFIRMED, so only an `id`
    /// equal to a requested user id is taken as one.
    id: Option<String>,
    /// The user's id as `UcUserPresence` (bulk GET) carries it.
    user_id: Option<String>,
    presence_definition: Option<GDefRef>,
    message: Option<String>,
    modified_date: Option<DateTime<Utc>>,
}

fn body_of(w: &PresenceWrite, with_id: bool) -> serde_json::Value {
    let mut b = json!({ "presenceDefinition": { "id": w.definition_id } });
    if let Some(m) = &w.message {
        b["message"] = json!(m);
    }
    if with_id {
        b["id"] = json!(w.user_id);
    }
    b
}

/// Forgets a write in flight when its future ends, however it ends.
struct PendingGuard {
    pending: super::actor::PendingWrites,
    user_id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.user_id);
    }
}

impl Handler<WritePresence> for Upstream {
    type Result = ResponseActFuture<Self, Result<WriteConfirmed, RestError>>;

    fn handle(&mut self, WritePresence(w): WritePresence, _: &mut Context<Self>) -> Self::Result {
        let rest = self.rest_client();
        let registry = self.registry_recipient();
        let pending = self.pending_writes();
        pending
            .borrow_mut()
            .insert(w.user_id.clone(), w.definition_id.clone());
        let guard = PendingGuard {
            pending,
            user_id: w.user_id.clone(),
        };
        Box::pin(
            async move {
                let _guard = guard;
                let path = format!("/api/v2/users/{}/presences/purecloud", w.user_id);
                let resp = rest
                    .call(Lane::Write, Method::PATCH, &path, Some(&body_of(&w, false)))
                    .await?;
                let a: GPresenceAnswer = resp.json()?;
                let presence = a
                    .presence_definition
                    .as_ref()
                    .and_then(|d| presence_state(d, a.message.as_deref(), a.modified_date))
                    .ok_or_else(|| {
                        RestError::Transport(
                            "Genesys confirmed the write without a presence".into(),
                        )
                    })?;
                let agent_json = registry
                    .send(UpstreamEvent::Presence {
                        user_id: w.user_id.clone(),
                        state: presence.clone(),
                        origin: Origin::Write,
                    })
                    .await
                    .ok()
                    .flatten();
                Ok(WriteConfirmed {
                    user_id: w.user_id,
                    presence,
                    correlation_id: resp.correlation_id,
                    agent_json,
                })
            }
            .into_actor(self),
        )
    }
}

impl Handler<WriteBulk> for Upstream {
    type Result = ResponseActFuture<Self, Result<Vec<WriteConfirmed>, RestError>>;

    fn handle(&mut self, WriteBulk(ws): WriteBulk, _: &mut Context<Self>) -> Self::Result {
        let rest = self.rest_client();
        let registry = self.registry_recipient();
        let pending = self.pending_writes();
        let guards: Vec<PendingGuard> = ws
            .iter()
            .map(|w| {
                pending
                    .borrow_mut()
                    .insert(w.user_id.clone(), w.definition_id.clone());
                PendingGuard {
                    pending: pending.clone(),
                    user_id: w.user_id.clone(),
                }
            })
            .collect();
        Box::pin(
            async move {
                let _guards = guards;
                let body = serde_json::Value::Array(ws.iter().map(|w| body_of(w, true)).collect());
                let resp = rest
                    .call(
                        Lane::Write,
                        Method::PUT,
                        "/api/v2/users/presences/bulk",
                        Some(&body),
                    )
                    .await?;
                let answers: Vec<GPresenceAnswer> = super::lenient::Lenient::keep(
                    resp.json::<Vec<super::lenient::Lenient<GPresenceAnswer>>>()?,
                )
                .collect();
                // Confirm only the users the answer names (by `userId`, or by an
                // `id` that is one of the requested user ids); re-read the rest.
                let requested: HashSet<&str> = ws.iter().map(|w| w.user_id.as_str()).collect();
                let mut confirmed: Vec<(String, PresenceState)> = answers
                    .iter()
                    .filter_map(|a| {
                        let user_id = a
                            .user_id
                            .as_deref()
                            .or(a.id.as_deref())
                            .filter(|id| requested.contains(id))?;
                        let p = a.presence_definition.as_ref().and_then(|d| {
                            presence_state(d, a.message.as_deref(), a.modified_date)
                        })?;
                        Some((user_id.to_string(), p))
                    })
                    .collect();
                let named: HashSet<String> = confirmed.iter().map(|(u, _)| u.clone()).collect();
                let unnamed: Vec<&PresenceWrite> =
                    ws.iter().filter(|w| !named.contains(&w.user_id)).collect();
                // Bulk GET takes at most 50 ids (§4.3).
                for part in unnamed.chunks(50) {
                    let ids: Vec<&str> = part.iter().map(|w| w.user_id.as_str()).collect();
                    let path = format!(
                        "/api/v2/users/presences/purecloud/bulk?id={}",
                        ids.join(",")
                    );
                    let read: Vec<GPresenceAnswer> = super::lenient::Lenient::keep(
                        rest.get_json::<Vec<super::lenient::Lenient<GPresenceAnswer>>>(
                            Lane::Write,
                            &path,
                        )
                        .await?,
                    )
                    .collect();
                    for w in part {
                        let Some(a) = read
                            .iter()
                            .find(|a| a.user_id.as_deref() == Some(w.user_id.as_str()))
                        else {
                            continue;
                        };
                        let Some(p) = a
                            .presence_definition
                            .as_ref()
                            .and_then(|d| presence_state(d, a.message.as_deref(), a.modified_date))
                        else {
                            continue;
                        };
                        // Confirmed only if Genesys now holds what we asked for.
                        if p.definition_id.eq_ignore_ascii_case(&w.definition_id) {
                            confirmed.push((w.user_id.clone(), p));
                        }
                    }
                }
                let mut out = Vec::with_capacity(confirmed.len());
                for (user_id, presence) in confirmed {
                    let agent_json = registry
                        .send(UpstreamEvent::Presence {
                            user_id: user_id.clone(),
                            state: presence.clone(),
                            origin: Origin::Write,
                        })
                        .await
                        .ok()
                        .flatten();
                    out.push(WriteConfirmed {
                        user_id,
                        presence,
                        correlation_id: resp.correlation_id.clone(),
                        agent_json,
                    });
                }
                Ok(out)
            }
            .into_actor(self),
        )
    }
}
