//! Live interaction context against the real simulator: a conversation
//! assigned to a watched agent appears on that agent's stream with the right
//! fields, changes follow, it disappears when it ends; watching and tag
//! searches are shared so their upstream cost does not grow with callers.

mod e2e;

use std::time::Duration;

use e2e::{client, get, post, Env};
use futures_util::StreamExt;
use presence_gateway::simulator::conversations::{offer, step_agent, WRAPUP_CODES};
use serde_json::{json, Value};

type Ws = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

async fn watch(env: &Env, id: &str) -> Ws {
    let url = env
        .gw_url(&format!("/api/v1/ws?agent={id}&interactions=1"))
        .replacen("http", "ws", 1);
    client().ws(url).connect().await.expect("ws").1
}

/// Reads `interaction` messages until one satisfies `pred`.
async fn next_interaction(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut whole = e2e::ws_text::Reassembler::default();
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("frame")
            .expect("ok");
        if let Some(t) = whole.push(&frame) {
            let m: Value = serde_json::from_slice(&t).unwrap();
            if m["type"] == "interaction" && pred(&m) {
                return m;
            }
        }
    }
}

async fn on_queue_agent(env: &Env, n: usize) -> (String, usize) {
    let state = get(env.sim_url("/sim/state")).await;
    let id = state["users"][n]["id"].as_str().unwrap().to_string();
    post(
        env.sim_url(&format!("/sim/users/{id}/presence")),
        json!({"systemPresence": "ON_QUEUE"}),
    )
    .await;
    let u = env.sim.sim.inner.lock().user_idx(&id).unwrap();
    (id, u)
}

fn sim_topics(stats: &Value) -> u64 {
    stats["topics"].as_u64().unwrap()
}

/// A conversation offered to a watched agent shows up with its fields, a
/// hold or wrap-up follows, and it disappears when it ends.
#[actix_web::test]
async fn conversation_lifecycle_reaches_the_desktop() {
    let env = Env::start(30, |_, _| {}).await;
    env.ready().await;
    let (id, u) = on_queue_agent(&env, 4).await;
    let mut ws = watch(&env, &id).await;
    // The watch subscribes the agent's conversations (one more topic).
    e2e::wait_until(
        Duration::from_secs(10),
        "conversation topic subscribed",
        || async {
            let s = env.sim_stats().await;
            if sim_topics(&s) == 31 {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    )
    .await;
    let conv_id = {
        let mut inner = env.sim.sim.inner.lock();
        offer(&mut inner, u);
        inner.org.users[u].conversations[0].clone()
    };
    let m = next_interaction(&mut ws, "the new interaction", |m| {
        m["interactions"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let i = &m["interactions"][0];
    assert_eq!(m["agentId"], id.as_str());
    assert_eq!(i["conversationId"], conv_id.as_str());
    let c = env
        .sim
        .sim
        .inner
        .lock()
        .conversations
        .get(&conv_id)
        .cloned()
        .unwrap();
    assert_eq!(i["mediaType"], c.media);
    assert_eq!(i["externalTag"], c.external_tag.as_str());
    assert_eq!(i["customer"]["name"], c.customer_name.as_str());
    assert_eq!(i["state"], "connected");
    // Events carry no queue name or start time: they come from the
    // directory and one cached REST read, in a later message.
    let queue_name = env.sim.sim.inner.lock().org.queues[c.queue].name.clone();
    let start = presence_gateway::model::iso(c.start);
    let m = next_interaction(&mut ws, "queue name and start time", |m| {
        m["interactions"][0]["startTime"].is_string()
    })
    .await;
    let i = &m["interactions"][0];
    assert_eq!(i["queue"]["name"], queue_name.as_str());
    assert_eq!(i["startTime"], start.as_str());
    assert_eq!(i["customer"]["ani"], c.ani.as_str(), "the event's address");
    // Step the conversation until it is in wrap-up (a voice call may hold first).
    let m = loop {
        step_agent(&mut env.sim.sim.inner.lock(), u);
        let m = next_interaction(&mut ws, "a change", |_| true).await;
        let arr = m["interactions"].as_array().unwrap();
        if arr.first().is_some_and(|i| i["afterCallWork"] == true) {
            break m;
        }
    };
    assert_eq!(m["interactions"][0]["wrapupRequired"], true);
    // The wrap-up code arrives as an id; its name comes from the cached
    // GET /api/v2/routing/wrapupcodes.
    let code = m["interactions"][0]["wrapupCodeId"].clone();
    let name = WRAPUP_CODES
        .iter()
        .find(|(id, _)| code == *id)
        .unwrap_or_else(|| panic!("wrap-up id {code}"))
        .1;
    let m = if m["interactions"][0]["wrapupCode"].is_null() {
        next_interaction(&mut ws, "the wrap-up name", |m| {
            m["interactions"][0]["wrapupCode"].is_string()
        })
        .await
    } else {
        m
    };
    assert_eq!(m["interactions"][0]["wrapupCode"], name);
    assert_eq!(m["interactions"][0]["startTime"], start.as_str());
    step_agent(&mut env.sim.sim.inner.lock(), u);
    next_interaction(&mut ws, "the interaction gone", |m| {
        m["interactions"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    // The REST view agrees.
    let v = get(env.gw_url(&format!("/api/v1/agents/{id}/interactions"))).await;
    assert_eq!(v["source"], "live");
    assert_eq!(v["interactions"], json!([]));
    env.stop().await;
}

/// 50 clients watching the same agent cost one subscription.
#[actix_web::test]
async fn fifty_watchers_one_subscription() {
    let env = Env::start(30, |_, _| {}).await;
    env.ready().await;
    env.converged("start-up").await;
    let (id, _) = on_queue_agent(&env, 6).await;
    let before = env.sim_stats().await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(watch(&env, &id).await);
    }
    for ws in &mut clients {
        next_interaction(ws, "initial context", |_| true).await;
    }
    e2e::wait_until(Duration::from_secs(10), "one more topic", || async {
        let s = env.sim_stats().await;
        if sim_topics(&s) == sim_topics(&before) + 1 {
            Ok(())
        } else {
            Err(s["topics"].to_string())
        }
    })
    .await;
    let after = env.sim_stats().await;
    let subs = |s: &Value| s["counters"]["subscriptionRequests"].as_u64().unwrap();
    assert_eq!(
        subs(&after),
        subs(&before) + 1,
        "one PUT for fifty watchers"
    );
    assert_eq!(sim_topics(&after), sim_topics(&before) + 1);
    env.stop().await;
}

/// 50 callers asking the same externalTag cost one upstream query.
#[actix_web::test]
async fn fifty_tag_searches_one_query() {
    let env = Env::start(30, |_, _| {}).await;
    env.ready().await;
    let (_, u) = on_queue_agent(&env, 2).await;
    let tag = {
        let mut inner = env.sim.sim.inner.lock();
        offer(&mut inner, u);
        let c = inner.org.users[u].conversations[0].clone();
        inner.conversations[&c].external_tag.clone()
    };
    let route = "POST analytics/conversations/details/query";
    let before = env.sim_stats().await["counters"]["requestsByRoute"][route]
        .as_u64()
        .unwrap_or(0);
    let url = env.gw_url(&format!("/api/v1/interactions?externalTag={tag}"));
    let answers = futures_util::future::join_all((0..50).map(|_| get(url.clone()))).await;
    for a in &answers {
        assert_eq!(a["conversations"].as_array().map(Vec::len), Some(1), "{a}");
        assert_eq!(a["conversations"][0]["externalTag"], tag.as_str());
    }
    let after = env.sim_stats().await["counters"]["requestsByRoute"][route]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(after, before + 1, "fifty callers, one query");
    let r = client()
        .get(env.gw_url("/api/v1/interactions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    env.stop().await;
}

/// A watch for an agent id the directory does not have never reaches
/// Genesys: between two real watches (each one more topic), the unknown id
/// adds no topic, the channel stays up and the gateway stays ready.
#[actix_web::test]
async fn unknown_agent_watch_never_reaches_genesys() {
    let env = Env::start(30, |_, _| {}).await;
    env.ready().await;
    env.converged("start-up").await;
    let (a, _) = on_queue_agent(&env, 3).await;
    let (b, _) = on_queue_agent(&env, 4).await;
    let before = sim_topics(&env.sim_stats().await);
    let topics_are = |n: u64, what: &'static str| {
        let env = &env;
        async move {
            e2e::wait_until(Duration::from_secs(10), what, || async {
                let s = env.sim_stats().await;
                if sim_topics(&s) == n {
                    Ok(())
                } else {
                    Err(s["topics"].to_string())
                }
            })
            .await
        }
    };
    let mut first = watch(&env, &a).await;
    next_interaction(&mut first, "context of a", |_| true).await;
    topics_are(before + 1, "a's topic").await;
    let _unknown = watch(&env, "no-such-agent").await;
    let mut second = watch(&env, &b).await;
    next_interaction(&mut second, "context of b", |_| true).await;
    // Watches are handled in order: b's topic means the unknown one was too.
    topics_are(before + 2, "b's topic, and none for the unknown id").await;
    let r = client().get(env.gw_url("/readyz")).send().await.unwrap();
    assert!(r.status().is_success(), "still ready: {}", r.status());
    env.stop().await;
}
