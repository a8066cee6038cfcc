//! Queues by name with live figures, for supervisors' boards.
//!
//! Two sources, merged per queue:
//! - the registry's presence map: members, and of them how many are on
//!   queue (presence `ON_QUEUE`) by routing status (idle, interacting,
//!   communicating, not responding) and how many are off queue
//!   ([`agent_figures`], computed on demand);
//! - Genesys's queue observations: customers waiting and the longest wait
//!   per media type (`crate::genesys::queue_observations`, through the
//!   [`Genesys`] handle), polled every
//!   `board.queue_observations_secs` by the [`QueueHub`] on the lowest lane
//!   of the REST budget.
//!
//! The hub recomputes the figures every `board.queue_figures_ms` and, when
//! they changed, sends a `queues` message to every stream that asked for
//! them (`?queues=1`, docs/protocol.md), narrowed to the client's divisions.
//! `GET /api/v1/queues` (`crate::http::queues`) answers the same shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::board::BoardConfig;
use crate::genesys::queue_observations::{ObservationRound, Observations, Waiting};
use crate::genesys::Genesys;
use crate::model::{Division, Queue, RoutingStatus, SystemPresence};
use crate::registry::{AgentView, Deliver, Frame, GetQueueMembers, Registry};

/// Live figures of one queue. Agent counts are of the queue's members;
/// `onQueue = idle + interacting + communicating + notResponding` (plus
/// members On Queue whose routing status Genesys has not reported yet);
/// `offQueue = members - onQueue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueFigures {
    /// Genesys queue id.
    pub id: String,
    /// The queue's name as Genesys names it.
    pub name: String,
    /// The owning division (`null` when Genesys did not say).
    pub division: Option<Division>,
    /// Agents who are members of the queue.
    pub members: u64,
    /// Members whose presence is On Queue.
    pub on_queue: u64,
    /// On Queue members waiting for an interaction (routing `IDLE`).
    pub idle: u64,
    /// On Queue members alerting or handling an ACD interaction (`INTERACTING`).
    pub interacting: u64,
    /// On Queue members on a non-ACD interaction (`COMMUNICATING`).
    pub communicating: u64,
    /// On Queue members who did not answer an offer (`NOT_RESPONDING`).
    pub not_responding: u64,
    /// Members not On Queue.
    pub off_queue: u64,
    /// Customers waiting, all media types (from the last observation).
    pub waiting: u64,
    /// The longest wait over all media types, in milliseconds, as of
    /// `observedAt` (add the time since for a live timer); `null` when
    /// nobody waits.
    pub longest_wait_ms: Option<u64>,
    /// Waiting and longest wait per media type (`voice`, `chat`, `email`,
    /// `message`, …); only media types Genesys reported.
    pub media: BTreeMap<String, Waiting>,
}

/// Every queue's member figures, from the agents of the presence map
/// (observation fields left at zero). Queues are in the directory's order.
pub fn agent_figures<'a>(
    queues: &[Queue],
    agents: impl Iterator<Item = &'a AgentView>,
) -> Vec<QueueFigures> {
    let mut out: Vec<QueueFigures> = queues
        .iter()
        .map(|q| QueueFigures {
            id: q.id.clone(),
            name: q.name.clone(),
            division: q.division.clone(),
            ..QueueFigures::default()
        })
        .collect();
    let index: HashMap<&str, usize> = queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.id.as_str(), i))
        .collect();
    for a in agents {
        let on_queue = a
            .presence
            .as_ref()
            .is_some_and(|p| p.system_presence == SystemPresence::OnQueue);
        let routing = a.routing_status.as_ref().map(|r| r.status);
        for qid in &a.queues {
            let Some(&i) = index.get(qid.as_str()) else {
                continue;
            };
            let f = &mut out[i];
            f.members += 1;
            if !on_queue {
                f.off_queue += 1;
                continue;
            }
            f.on_queue += 1;
            match routing {
                Some(RoutingStatus::Idle) => f.idle += 1,
                Some(RoutingStatus::Interacting) => f.interacting += 1,
                Some(RoutingStatus::Communicating) => f.communicating += 1,
                Some(RoutingStatus::NotResponding) => f.not_responding += 1,
                Some(RoutingStatus::OffQueue) | None => {}
            }
        }
    }
    out
}

/// Adds the observed waiting customers to member figures.
pub fn merge(mut figures: Vec<QueueFigures>, obs: &Observations) -> Vec<QueueFigures> {
    for f in &mut figures {
        let Some(per_media) = obs.get(&f.id) else {
            continue;
        };
        f.media = per_media.clone();
        f.waiting = per_media.values().map(|w| w.waiting).sum();
        f.longest_wait_ms = per_media.values().filter_map(|w| w.longest_wait_ms).max();
    }
    figures
}

/// The queues a caller limited to `divisions` may see (`None`: all). A
/// queue whose division is unknown is shown to unscoped callers only.
pub fn visible(figures: &[QueueFigures], divisions: Option<&[String]>) -> Vec<QueueFigures> {
    figures
        .iter()
        .filter(|f| match divisions {
            None => true,
            Some(d) => f.division.as_ref().is_some_and(|x| d.contains(&x.id)),
        })
        .cloned()
        .collect()
}

/// The JSON body of `GET /api/v1/queues` (shaped by
/// [`crate::protocol::context::queues_body`]).
pub fn body(figures: &[QueueFigures], observed: &ObservationState) -> serde_json::Value {
    crate::protocol::context::queues_body(figures, observed.at, observed.status(), false)
}

/// What the hub knows of Genesys's queue observations.
#[derive(Debug, Clone, Default)]
pub struct ObservationState {
    /// The last successful round.
    pub observations: Observations,
    /// When it was taken (`None`: never).
    pub at: Option<DateTime<Utc>>,
    /// The last round failed (the figures above are older).
    pub failed: bool,
    /// Observations older than this are reported `stale` (zero: never);
    /// the hub sets [`STALE_AFTER_POLLS`] × `board.queue_observations_secs`.
    pub stale_after: Duration,
}

/// Observations older than this many poll intervals are `stale`: a poll
/// normally answers within one interval, so three missed or delayed
/// rounds (e.g. the REST budget's lowest lane starved) mean the waiting
/// figures are no longer live.
pub const STALE_AFTER_POLLS: u32 = 3;

impl ObservationState {
    /// `unavailable` (the last poll failed), `pending` (none yet), `stale`
    /// (the last answer is older than `stale_after`: polls are delayed or
    /// not answered) or `ok`, as of now.
    pub fn status(&self) -> &'static str {
        self.status_at(Utc::now())
    }

    /// [`Self::status`] as of `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        match (self.at, self.failed) {
            (_, true) => "unavailable",
            (None, false) => "pending",
            (Some(at), false) => {
                let age = (now - at).to_std().unwrap_or_default();
                if !self.stale_after.is_zero() && age > self.stale_after {
                    "stale"
                } else {
                    "ok"
                }
            }
        }
    }
}

/// HTTP → hub: the current observation state.
#[derive(Message)]
#[rtype(result = "ObservationState")]
pub struct GetObservations;

/// Session → hub: send this session `queues` messages.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchQueues {
    /// The session's id.
    pub session_id: u64,
    /// The divisions the client may see (`None`: all).
    pub divisions: Option<Arc<Vec<String>>>,
    /// Where messages go.
    pub recipient: Recipient<Deliver>,
}

/// Session → hub: stop sending.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnwatchQueues {
    /// The session's id.
    pub session_id: u64,
}

/// A session watching queue figures: its divisions (`None`: all) and mailbox.
type Watcher = (Option<Arc<Vec<String>>>, Recipient<Deliver>);

/// The queue hub: polls observations, recomputes figures, publishes.
pub struct QueueHub {
    cfg: BoardConfig,
    registry: Addr<Registry>,
    upstream: Option<Genesys>,
    observed: ObservationState,
    /// The last figures published (all queues).
    last: Option<Vec<QueueFigures>>,
    /// Queue ids seen in the last figures (what to observe).
    queue_ids: Vec<String>,
    watchers: HashMap<u64, Watcher>,
    polling: bool,
    /// The observation status last published (a change is published even
    /// when no figure changed, e.g. `ok` → `stale`).
    last_status: &'static str,
    /// A cluster leader's hub shares each observation round here; a
    /// follower's gets them as [`ObservationRound`] messages.
    replica: Option<tokio::sync::mpsc::Sender<ObservationRound>>,
}

impl QueueHub {
    /// A hub reading `registry` and, when given, polling `upstream`.
    pub fn new(cfg: BoardConfig, registry: Addr<Registry>, upstream: Option<Genesys>) -> Self {
        QueueHub {
            registry,
            upstream,
            observed: ObservationState {
                stale_after: Duration::from_secs(cfg.queue_observations_secs) * STALE_AFTER_POLLS,
                ..ObservationState::default()
            },
            cfg,
            last: None,
            queue_ids: Vec::new(),
            watchers: HashMap::new(),
            polling: false,
            last_status: "pending",
            replica: None,
        }
    }

    /// The same hub in a cluster: each observation round also goes to
    /// `replica` for the other nodes (`crate::cluster::context`).
    pub fn with_replica(mut self, replica: tokio::sync::mpsc::Sender<ObservationRound>) -> Self {
        self.replica = Some(replica);
        self
    }

    fn share(&self) {
        if let Some(tx) = &self.replica {
            let _ = tx.try_send(ObservationRound {
                observations: self.observed.observations.clone(),
                at_ms: self.observed.at.map_or(0, |t| t.timestamp_millis()),
                failed: self.observed.failed,
            });
        }
    }

    fn frame(&self, figures: &[QueueFigures], divisions: Option<&[String]>) -> Frame {
        crate::protocol::context::queues_frame(
            &visible(figures, divisions),
            self.observed.at,
            self.observed.status(),
        )
    }

    fn publish(&mut self) {
        let Some(figures) = &self.last else {
            return;
        };
        let mut cache: HashMap<Option<Vec<String>>, Frame> = HashMap::new();
        for (divisions, r) in self.watchers.values() {
            let key = divisions.as_ref().map(|d| d.to_vec());
            let frame = cache
                .entry(key)
                .or_insert_with(|| self.frame(figures, divisions.as_deref().map(|d| d.as_slice())))
                .clone();
            // A full mailbox: the session is being evicted as slow anyway.
            let _ = r.try_send(Deliver::Queues(frame));
        }
    }

    fn recompute(&mut self, ctx: &mut Context<Self>) {
        let registry = self.registry.clone();
        async move { registry.send(GetQueueMembers).await.ok() }
            .into_actor(self)
            .map(|members, act, _| {
                let Some(members) = members else { return };
                let figures = agent_figures(&members.queues, members.agents.iter().map(|a| &**a));
                act.queue_ids = figures.iter().map(|f| f.id.clone()).collect();
                let merged = merge(figures, &act.observed.observations);
                let status = act.observed.status();
                if act.last.as_ref() != Some(&merged) || act.last_status != status {
                    act.last = Some(merged);
                    act.last_status = status;
                    act.publish();
                }
            })
            .wait(ctx);
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        let Some(upstream) = self.upstream.clone() else {
            return;
        };
        if self.polling || self.queue_ids.is_empty() {
            return;
        }
        self.polling = true;
        let ids = self.queue_ids.clone();
        async move { upstream.queue_observations(ids).await }
            .into_actor(self)
            .map(|r, act, _| {
                act.polling = false;
                match r {
                    Ok(Ok(obs)) => {
                        act.observed = ObservationState {
                            observations: obs,
                            at: Some(Utc::now()),
                            failed: false,
                            stale_after: act.observed.stale_after,
                        };
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "queue observations failed");
                        act.observed.failed = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "upstream unavailable for queue observations");
                        act.observed.failed = true;
                    }
                }
                act.share();
            })
            .spawn(ctx);
    }
}

impl Actor for QueueHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_millis(self.cfg.queue_figures_ms),
            |act, ctx| act.recompute(ctx),
        );
        ctx.run_interval(
            Duration::from_secs(self.cfg.queue_observations_secs),
            |act, ctx| act.poll(ctx),
        );
        // First figures and observations as soon as the directory is read.
        ctx.run_later(Duration::from_millis(200), |act, ctx| act.recompute(ctx));
        ctx.run_later(Duration::from_millis(1_500), |act, ctx| act.poll(ctx));
    }
}

impl Handler<ObservationRound> for QueueHub {
    type Result = ();

    /// A cluster follower: the leader's round, as if polled here.
    fn handle(&mut self, m: ObservationRound, ctx: &mut Context<Self>) {
        self.observed = ObservationState {
            observations: m.observations,
            at: chrono::TimeZone::timestamp_millis_opt(&Utc, m.at_ms).single(),
            failed: m.failed,
            stale_after: self.observed.stale_after,
        };
        self.recompute(ctx);
    }
}

impl Handler<GetObservations> for QueueHub {
    type Result = MessageResult<GetObservations>;

    fn handle(&mut self, _: GetObservations, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.observed.clone())
    }
}

impl Handler<WatchQueues> for QueueHub {
    type Result = ();

    fn handle(&mut self, m: WatchQueues, _: &mut Context<Self>) {
        if let Some(figures) = &self.last {
            let frame = self.frame(figures, m.divisions.as_deref().map(|d| d.as_slice()));
            let _ = m.recipient.try_send(Deliver::Queues(frame));
        }
        self.watchers
            .insert(m.session_id, (m.divisions, m.recipient));
    }
}

impl Handler<UnwatchQueues> for QueueHub {
    type Result = ();

    fn handle(&mut self, m: UnwatchQueues, _: &mut Context<Self>) {
        self.watchers.remove(&m.session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::agent::{PresenceView, RoutingView};

    fn agent(
        id: &str,
        queues: &[&str],
        sp: SystemPresence,
        rs: Option<RoutingStatus>,
    ) -> AgentView {
        let t = Utc::now();
        AgentView {
            id: id.into(),
            name: id.into(),
            division: Division {
                id: "d".into(),
                name: "D".into(),
            },
            queues: queues.iter().map(|s| s.to_string()).collect(),
            presence: Some(PresenceView {
                definition_id: "x".into(),
                system_presence: sp,
                label: "x".into(),
                message: String::new(),
                since: t,
            }),
            routing_status: rs.map(|status| RoutingView { status, since: t }),
            version: 1,
        }
    }

    /// `ok` within the bound, `stale` past it, `unavailable` after a
    /// failed round whatever the age, `pending` before the first answer.
    #[test]
    fn observations_turn_stale_past_the_bound() {
        let at = Utc::now();
        let mut o = ObservationState {
            at: Some(at),
            stale_after: Duration::from_secs(30),
            ..ObservationState::default()
        };
        assert_eq!(o.status_at(at + chrono::Duration::seconds(30)), "ok");
        assert_eq!(o.status_at(at + chrono::Duration::seconds(31)), "stale");
        o.failed = true;
        assert_eq!(
            o.status_at(at + chrono::Duration::seconds(31)),
            "unavailable"
        );
        let never = ObservationState {
            stale_after: Duration::from_secs(30),
            ..ObservationState::default()
        };
        assert_eq!(never.status_at(at), "pending");
    }

    #[test]
    fn counts_members_by_routing_status() {
        let queues = vec![
            Queue {
                id: "q1".into(),
                name: "Sales".into(),
                division: None,
            },
            Queue {
                id: "q2".into(),
                name: "Support".into(),
                division: None,
            },
        ];
        let agents = [
            agent(
                "a",
                &["q1"],
                SystemPresence::OnQueue,
                Some(RoutingStatus::Idle),
            ),
            agent(
                "b",
                &["q1", "q2"],
                SystemPresence::OnQueue,
                Some(RoutingStatus::Interacting),
            ),
            agent(
                "c",
                &["q1"],
                SystemPresence::Break,
                Some(RoutingStatus::OffQueue),
            ),
            agent(
                "d",
                &["q2"],
                SystemPresence::OnQueue,
                Some(RoutingStatus::NotResponding),
            ),
            agent(
                "e",
                &["zz"],
                SystemPresence::OnQueue,
                Some(RoutingStatus::Idle),
            ),
        ];
        let f = agent_figures(&queues, agents.iter());
        assert_eq!(
            (
                f[0].members,
                f[0].on_queue,
                f[0].idle,
                f[0].interacting,
                f[0].off_queue
            ),
            (3, 2, 1, 1, 1)
        );
        assert_eq!(
            (f[1].members, f[1].not_responding, f[1].interacting),
            (2, 1, 1)
        );
        let mut obs = Observations::new();
        obs.entry("q1".into()).or_default().insert(
            "voice".into(),
            Waiting {
                waiting: 2,
                longest_wait_ms: Some(5_000),
            },
        );
        obs.entry("q1".into()).or_default().insert(
            "chat".into(),
            Waiting {
                waiting: 1,
                longest_wait_ms: Some(9_000),
            },
        );
        let m = merge(f, &obs);
        assert_eq!((m[0].waiting, m[0].longest_wait_ms), (3, Some(9_000)));
        assert_eq!((m[1].waiting, m[1].longest_wait_ms), (0, None));
        assert!(visible(&m, Some(&["d".to_string()])).is_empty());
    }
}
