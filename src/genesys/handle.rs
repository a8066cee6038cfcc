//! [`Genesys`]: the one handle the layers above use to ask the floor for
//! something. It hides the upstream actor's messages: a feature calls a
//! method (write a presence, read an agent's analytics or interactions,
//! search by `externalTag`) and never names a message type. Each method is
//! one actor round trip; the outer `Err` is the actor being gone (the
//! gateway stopping), the inner one what Genesys answered.

use std::time::Duration;

use actix::{Addr, MailboxError};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::actor::Upstream;
use super::analytics::{QueryUserDetails, UserDetails};
use super::conversations::{
    CompleteInteraction, FetchInteractions, FindByExternalTag, WatchConversations,
};
use super::queue_observations::{Observations, QueryQueueObservations};
use super::rest::RestError;
use super::writes::{PresenceWrite, WriteBulk, WriteConfirmed, WritePresence};
use crate::model::{Completion, Interaction};

/// The Genesys floor, as the features see it. Cheap to clone.
#[derive(Clone)]
pub struct Genesys {
    upstream: Addr<Upstream>,
}

impl Genesys {
    /// The handle of a started upstream actor.
    pub fn new(upstream: Addr<Upstream>) -> Genesys {
        Genesys { upstream }
    }

    /// Sets one user's presence (`PATCH …/presences/purecloud`); the
    /// confirmed presence reaches the registry before this answers.
    pub async fn write_presence(
        &self,
        w: PresenceWrite,
    ) -> Result<Result<WriteConfirmed, RestError>, MailboxError> {
        self.upstream.send(WritePresence(w)).await
    }

    /// Sets many users' presence in one bulk call (the caller chunks).
    pub async fn write_bulk(
        &self,
        ws: Vec<PresenceWrite>,
    ) -> Result<Result<Vec<WriteConfirmed>, RestError>, MailboxError> {
        self.upstream.send(WriteBulk(ws)).await
    }

    /// One user's presence and routing spans in `[from, to)` from analytics.
    pub async fn user_details(
        &self,
        user_id: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Result<UserDetails, RestError>, MailboxError> {
        self.upstream
            .send(QueryUserDetails { user_id, from, to })
            .await
    }

    /// An agent's active interactions, read through REST.
    pub async fn active_interactions(
        &self,
        user_id: String,
    ) -> Result<Result<Vec<Interaction>, RestError>, MailboxError> {
        self.upstream.send(FetchInteractions { user_id }).await
    }

    /// Conversations carrying `externalTag = tag` in the last `hours`,
    /// one query per tag shared for `cache`.
    pub async fn find_by_external_tag(
        &self,
        tag: String,
        cache: Duration,
        hours: u64,
    ) -> Result<Result<Value, String>, MailboxError> {
        self.upstream
            .send(FindByExternalTag { tag, cache, hours })
            .await
    }

    /// Customers waiting and the longest wait per queue and media type
    /// (analytics queue observations, lowest lane of the REST budget).
    pub async fn queue_observations(
        &self,
        queue_ids: Vec<String>,
    ) -> Result<Result<Observations, RestError>, MailboxError> {
        self.upstream
            .send(QueryQueueObservations { queue_ids })
            .await
    }

    /// Subscribes (`watch`) or releases an agent's conversations topic
    /// (`v2.users.{id}.conversations`). Never waits: `false` when the
    /// upstream's mailbox is full or the actor is gone (nothing changed).
    pub fn watch_conversations(&self, user_id: &str, watch: bool) -> bool {
        self.upstream
            .try_send(WatchConversations {
                user_id: user_id.to_owned(),
                watch,
            })
            .is_ok()
    }

    /// Like [`Genesys::watch_conversations`], waiting for room in the
    /// upstream's mailbox instead of giving up (a new cluster leader
    /// subscribing every agent its followers' clients watch).
    pub async fn watch_conversations_waiting(&self, user_id: &str, watch: bool) {
        let _ = self
            .upstream
            .send(WatchConversations {
                user_id: user_id.to_owned(),
                watch,
            })
            .await;
    }

    /// What events leave out of an interaction (queue name, wrap-up code
    /// name, start time), from the floor's caches and REST reads on the
    /// reconcile lane; `need_start` reads the conversation for its start
    /// time. What cannot be read stays `None`.
    pub async fn complete_interaction(
        &self,
        conversation_id: String,
        queue_id: Option<String>,
        wrapup_code_id: Option<String>,
        need_start: bool,
    ) -> Result<Completion, MailboxError> {
        self.upstream
            .send(CompleteInteraction {
                conversation_id,
                queue_id,
                wrapup_code_id,
                need_start,
            })
            .await
    }
}
