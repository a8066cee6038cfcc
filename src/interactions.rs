//! Live interaction context for agent desktops.
//!
//! The [`Interactions`] actor (the hub) keeps, per watched agent, the
//! interactions they are handling, as the Genesys floor normalised them from
//! `v2.users.{id}.conversations` events
//! ([`crate::genesys::conversations::from_conversation`]). Watching is
//! reference-counted across all clients: the first session that asks for an
//! agent's context makes the upstream subscribe that agent's conversations
//! topic, the last one to leave releases it after a grace period, so fifty
//! desktops watching one agent cost one subscription. Each change is sent to
//! the watching sessions as an `interaction` message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use serde::Deserialize;

use futures_util::future::LocalBoxFuture;

use crate::genesys::Genesys;
pub use crate::model::{
    Completion, ConversationSeen, ConversationsReset, Customer, Interaction, QueueRef,
};
use crate::registry::{Deliver, Frame};

/// Interaction settings (`[interactions]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InteractionsConfig {
    /// Seconds an agent's conversations stay subscribed after the last watcher left.
    pub release_grace_secs: u64,
    /// Leave out the customer's name and ANI from interaction messages.
    pub redact_customer: bool,
    /// Seconds a `GET /api/v1/interactions?externalTag=` answer is shared.
    pub tag_cache_secs: u64,
    /// How far back an externalTag search looks, in hours.
    pub tag_search_hours: u64,
}

impl Default for InteractionsConfig {
    fn default() -> Self {
        InteractionsConfig {
            release_grace_secs: 60,
            redact_customer: false,
            tag_cache_secs: 30,
            tag_search_hours: 24,
        }
    }
}

impl InteractionsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.tag_cache_secs == 0 || self.tag_search_hours == 0 || self.tag_search_hours > 24 * 31
        {
            return Err(
                "interactions.tag_cache_secs ≥ 1 and interactions.tag_search_hours 1–744".into(),
            );
        }
        Ok(())
    }
}

/// What a session watches: the hub and the agents.
pub type WatchSpec = (Addr<Interactions>, Vec<String>);

/// Session → hub: watch these agents' interactions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub session_id: u64,
    pub agents: Vec<String>,
    pub recipient: Recipient<Deliver>,
}

/// Session → hub: stop watching (session ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub session_id: u64,
}

/// HTTP → hub: an agent's current interactions, `None` when not watched.
#[derive(Message)]
#[rtype(result = "Option<Vec<Interaction>>")]
pub struct GetInteractions {
    pub user_id: String,
}

/// What the hub asks of the Genesys floor ([`Genesys`] in the gateway; a
/// probe in tests): watch or release an agent's conversations, and
/// complete what events leave out of an interaction.
pub trait ConversationFloor: 'static {
    /// Subscribes (`watch`) or releases an agent's conversations topic;
    /// `false` when the floor could not take the request (busy or gone).
    fn watch_conversations(&self, user_id: &str, watch: bool) -> bool;

    /// Queue name, wrap-up code name and (with `need_start`) start time
    /// of a conversation; `None` when the floor is gone.
    fn complete_interaction(
        &self,
        conversation_id: String,
        queue_id: Option<String>,
        wrapup_code_id: Option<String>,
        need_start: bool,
    ) -> LocalBoxFuture<'static, Option<Completion>>;
}

impl ConversationFloor for Genesys {
    fn watch_conversations(&self, user_id: &str, watch: bool) -> bool {
        Genesys::watch_conversations(self, user_id, watch)
    }

    fn complete_interaction(
        &self,
        conversation_id: String,
        queue_id: Option<String>,
        wrapup_code_id: Option<String>,
        need_start: bool,
    ) -> LocalBoxFuture<'static, Option<Completion>> {
        let g = self.clone();
        Box::pin(async move {
            g.complete_interaction(conversation_id, queue_id, wrapup_code_id, need_start)
                .await
                .ok()
        })
    }
}

/// The interaction hub.
pub struct Interactions {
    cfg: InteractionsConfig,
    /// The Genesys floor: watches conversation topics and completes
    /// interactions from cached REST reads.
    floor: Box<dyn ConversationFloor>,
    /// agent → sessions watching it.
    watchers: HashMap<String, HashMap<u64, Recipient<Deliver>>>,
    /// session → agents it watches.
    sessions: HashMap<u64, Vec<String>>,
    /// agent → conversation id → interaction.
    contexts: HashMap<String, BTreeMap<String, Interaction>>,
    /// Agents whose topic is subscribed upstream.
    subscribed: HashSet<String>,
    /// conversation id → what cached REST reads added to it.
    completions: HashMap<String, Completion>,
    /// Completions asked for (conversation id + wrap-up code id), asked once each.
    asked: HashSet<(String, Option<String>)>,
    /// A cluster leader's hub hands every agent's interactions, as they
    /// change, to the other nodes through this (`crate::cluster::context`).
    replica: Option<tokio::sync::mpsc::Sender<ConversationsReset>>,
}

impl Interactions {
    /// A hub that asks `floor` (the Genesys floor) to watch agents'
    /// conversations and to complete what events leave out. Start it with
    /// the floor's conversation sink pointing at its address (`app` does,
    /// via `Context::new`).
    pub fn new(cfg: InteractionsConfig, floor: impl ConversationFloor) -> Interactions {
        Interactions {
            cfg,
            floor: Box::new(floor),
            watchers: HashMap::new(),
            sessions: HashMap::new(),
            contexts: HashMap::new(),
            subscribed: HashSet::new(),
            completions: HashMap::new(),
            asked: HashSet::new(),
            replica: None,
        }
    }

    /// The same hub in a cluster: every agent's interactions, as they
    /// change, also go to `replica` (bounded; a full queue drops the
    /// update, and the next change carries the whole list again).
    pub fn with_replica(mut self, replica: tokio::sync::mpsc::Sender<ConversationsReset>) -> Self {
        self.replica = Some(replica);
        self
    }

    /// The `interaction` message for one agent.
    fn frame(&self, user_id: &str) -> Frame {
        crate::protocol::context::interaction_frame(
            user_id,
            self.contexts
                .get(user_id)
                .into_iter()
                .flat_map(|m| m.values()),
            self.cfg.redact_customer,
        )
    }

    fn publish(&self, user_id: &str) {
        if let Some(tx) = &self.replica {
            let _ = tx.try_send(ConversationsReset {
                user_id: user_id.to_string(),
                interactions: self
                    .contexts
                    .get(user_id)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default(),
            });
        }
        let Some(w) = self.watchers.get(user_id) else {
            return;
        };
        let frame = self.frame(user_id);
        for r in w.values() {
            // A full session mailbox: the session is being evicted as slow anyway.
            let _ = r.try_send(Deliver::Interaction(frame.clone()));
        }
    }

    /// Asks the upstream (once per conversation and wrap-up code) for what
    /// the event left out, then fills it in and republishes.
    fn ask_completion(&mut self, user_id: &str, i: &Interaction, ctx: &mut Context<Self>) {
        let key = (i.conversation_id.clone(), i.wrapup_code_id.clone());
        if !self.asked.insert(key) {
            return;
        }
        let asked = self.floor.complete_interaction(
            i.conversation_id.clone(),
            i.queue.id.clone(),
            i.wrapup_code_id.clone(),
            i.start_time.is_none(),
        );
        let user_id = user_id.to_string();
        let conv = i.conversation_id.clone();
        ctx.spawn(asked.into_actor(self).map(move |res, act, _| {
            let Some(c) = res else { return };
            let known = act.completions.entry(conv.clone()).or_default();
            if c.queue_name.is_some() {
                known.queue_id.clone_from(&c.queue_id);
                known.queue_name.clone_from(&c.queue_name);
            }
            if c.start_time.is_some() {
                known.start_time.clone_from(&c.start_time);
            }
            if c.wrapup.is_some() {
                known.wrapup.clone_from(&c.wrapup);
            }
            let known = known.clone();
            let changed = act
                .contexts
                .get_mut(&user_id)
                .and_then(|m| m.get_mut(&conv))
                .is_some_and(|i| i.complete(&known));
            if changed {
                act.publish(&user_id);
            }
        }));
    }

    fn set_upstream_watch(&mut self, user_id: &str, watch: bool) {
        let changed = if watch {
            self.subscribed.insert(user_id.to_string())
        } else {
            self.subscribed.remove(user_id)
        };
        if !changed {
            return;
        }
        if !watch {
            self.contexts.remove(user_id);
        }
        if !self.floor.watch_conversations(user_id, watch) {
            tracing::warn!(
                agent = user_id,
                watch,
                "upstream busy; conversation watch not changed"
            );
            if watch {
                self.subscribed.remove(user_id);
            }
        }
    }
}

impl Actor for Interactions {
    type Context = Context<Self>;
}

impl Handler<Watch> for Interactions {
    type Result = ();

    fn handle(&mut self, m: Watch, _: &mut Context<Self>) {
        for a in &m.agents {
            self.watchers
                .entry(a.clone())
                .or_default()
                .insert(m.session_id, m.recipient.clone());
            self.set_upstream_watch(a, true);
            // The current context at once (empty until the upstream read it).
            let _ = m.recipient.try_send(Deliver::Interaction(self.frame(a)));
        }
        self.sessions
            .entry(m.session_id)
            .or_default()
            .extend(m.agents);
    }
}

impl Handler<Unwatch> for Interactions {
    type Result = ();

    fn handle(&mut self, m: Unwatch, ctx: &mut Context<Self>) {
        for a in self.sessions.remove(&m.session_id).unwrap_or_default() {
            let empty = self.watchers.get_mut(&a).is_some_and(|w| {
                w.remove(&m.session_id);
                w.is_empty()
            });
            if empty {
                self.watchers.remove(&a);
                // Release after a grace period, unless someone watches again.
                ctx.run_later(
                    Duration::from_secs(self.cfg.release_grace_secs),
                    move |act, _| {
                        if !act.watchers.contains_key(&a) {
                            act.set_upstream_watch(&a, false);
                        }
                    },
                );
            }
        }
    }
}

impl Handler<ConversationSeen> for Interactions {
    type Result = ();

    fn handle(&mut self, m: ConversationSeen, ctx: &mut Context<Self>) {
        if !self.subscribed.contains(&m.user_id) {
            return;
        }
        let mut ask = None;
        let interaction = m.interaction.map(|mut i| {
            if let Some(c) = self.completions.get(&i.conversation_id) {
                i.complete(c);
            }
            if i.incomplete() {
                ask = Some(i.clone());
            }
            i
        });
        let map = self.contexts.entry(m.user_id.clone()).or_default();
        let changed = match interaction {
            Some(i) => map.insert(m.conversation_id.clone(), i.clone()).as_ref() != Some(&i),
            None => {
                self.completions.remove(&m.conversation_id);
                self.asked.retain(|(c, _)| *c != m.conversation_id);
                map.remove(&m.conversation_id).is_some()
            }
        };
        if changed {
            self.publish(&m.user_id);
        }
        if let Some(i) = ask {
            self.ask_completion(&m.user_id, &i, ctx);
        }
    }
}

impl Handler<ConversationsReset> for Interactions {
    type Result = ();

    fn handle(&mut self, m: ConversationsReset, _: &mut Context<Self>) {
        if !self.subscribed.contains(&m.user_id) {
            return;
        }
        let map: BTreeMap<String, Interaction> = m
            .interactions
            .into_iter()
            .map(|i| (i.conversation_id.clone(), i))
            .collect();
        if self.contexts.get(&m.user_id) != Some(&map) {
            self.contexts.insert(m.user_id.clone(), map);
            self.publish(&m.user_id);
        }
    }
}

impl Handler<GetInteractions> for Interactions {
    type Result = Option<Vec<Interaction>>;

    fn handle(&mut self, m: GetInteractions, _: &mut Context<Self>) -> Self::Result {
        if !self.subscribed.contains(&m.user_id) {
            return None;
        }
        Some(
            self.contexts
                .get(&m.user_id)
                .map(|c| c.values().cloned().collect())
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what the hub asks of the floor.
    struct FloorProbe(Arc<Mutex<Vec<(String, bool)>>>);

    impl ConversationFloor for FloorProbe {
        fn watch_conversations(&self, user_id: &str, watch: bool) -> bool {
            self.0.lock().unwrap().push((user_id.to_owned(), watch));
            true
        }

        fn complete_interaction(
            &self,
            _: String,
            _: Option<String>,
            _: Option<String>,
            _: bool,
        ) -> LocalBoxFuture<'static, Option<Completion>> {
            Box::pin(async { Some(Completion::default()) })
        }
    }

    /// A session that ignores what it is sent.
    struct Session;

    impl Actor for Session {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Session {
        type Result = ();
        fn handle(&mut self, _: Deliver, _: &mut Context<Self>) {}
    }

    /// Lets every ready actor run (paused time does not move).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// The last watcher leaving releases the agent's conversations topic
    /// only after `release_grace_secs`, and not at all when someone
    /// watches again within the grace (paused tokio time: no waiting).
    #[test]
    fn release_waits_for_the_grace_period() {
        let rt = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
        };
        actix::System::with_tokio_rt(rt).block_on(async {
            let asked = Arc::new(Mutex::new(Vec::new()));

            let cfg = InteractionsConfig {
                release_grace_secs: 60,
                ..InteractionsConfig::default()
            };
            let hub = Interactions::new(cfg, FloorProbe(asked.clone())).start();
            let session = Session.start().recipient();
            let watch = |id| Watch {
                session_id: id,
                agents: vec!["a".into()],
                recipient: session.clone(),
            };
            hub.send(watch(1)).await.unwrap();
            settle().await;
            assert_eq!(*asked.lock().unwrap(), [("a".to_string(), true)]);

            hub.send(Unwatch { session_id: 1 }).await.unwrap();
            tokio::time::advance(Duration::from_secs(59)).await;
            settle().await;
            assert_eq!(asked.lock().unwrap().len(), 1, "released before the grace");
            tokio::time::advance(Duration::from_secs(2)).await;
            settle().await;
            assert_eq!(
                asked.lock().unwrap().last(),
                Some(&("a".to_string(), false)),
                "released after the grace"
            );

            // Watched again within the grace: never released.
            hub.send(watch(2)).await.unwrap();
            hub.send(Unwatch { session_id: 2 }).await.unwrap();
            tokio::time::advance(Duration::from_secs(30)).await;
            hub.send(watch(3)).await.unwrap();
            tokio::time::advance(Duration::from_secs(120)).await;
            settle().await;
            let asked = asked.lock().unwrap();
            assert_eq!(asked.len(), 3, "{asked:?}");
            assert_eq!(asked[2], ("a".to_string(), true));
        });
    }
}
