//! The simulator's fidelity to real Genesys shapes (issue 17): activity
//! events list the queues a user is active in whatever the presence, presence
//! events omit `modifiedDate` as Genesys's example does, conversations carry
//! per-media leg fields and wrap-up code ids, conversation events carry the
//! event model (no REST-only fields), and each open reading of the public API
//! (bulk PUT answer `id`, `deactivated=true`, `QueueMember.id`/`joined`) is
//! played by its flag. Everything goes through real HTTP and WebSocket on
//! loopback, except driving a conversation, which uses the churn's own step
//! functions on the live state.

mod sim_support;

use std::time::Duration;

use genesys_sim::conversations::{conversation_json, offer, step_agent, Shape, WRAPUP_CODES};
use genesys_sim::{BulkPutAnswerId, DeactivatedReading, QueueMemberId};
use serde_json::{json, Value};
use sim_support::*;

const SEC: Duration = Duration::from_secs(1);

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// Activity events list the user's queues when off queue too, and
/// `dateActiveQueuesChanged` does not move with the presence.
#[actix_web::test]
async fn activity_lists_active_queues_whatever_the_presence() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    let queues: Vec<Value> = arr(&sim.state_of(&user).await["queues"])
        .iter()
        .map(|q| q["id"].clone())
        .collect();
    assert!(!queues.is_empty());
    let topic = format!("v2.users.{user}.activity");
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, std::slice::from_ref(&topic)).await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    let mut seen = Vec::new();
    for sp in ["ON_QUEUE", "BREAK"] {
        sim.set_presence(&user, sp).await;
        let a = ws
            .wait_for(5 * SEC, |v| {
                topic_is(v, &topic)
                    && v["eventBody"]["presence"]["presenceDefinition"]["systemPresence"] == sp
            })
            .await
            .expect("activity event");
        assert_eq!(a["eventBody"]["activeQueueIds"], json!(queues), "{sp}");
        seen.push(a["eventBody"]["dateActiveQueuesChanged"].clone());
    }
    assert!(seen[0].is_string());
    assert_eq!(
        seen[0], seen[1],
        "presence changes do not move dateActiveQueuesChanged"
    );
}

/// Presence events carry no `modifiedDate` by default, and do with the flag off.
#[actix_web::test]
async fn presence_event_modified_date_per_flag() {
    for without in [true, false] {
        let sim = TestSim::start(|c| c.presence_events_without_modified_date = without).await;
        let api = sim.api().await;
        let user = sim.user_not_in("BREAK").await;
        let topic = format!("v2.users.{user}.presence");
        let (ch, uri) = api.channel().await;
        api.subscribe(&ch, std::slice::from_ref(&topic)).await;
        let mut ws = sim.connect(&uri).await;
        assert!(eventually!(
            2 * SEC,
            sim.sim_get("/sim/stats").await.json["sockets"] == 1
        ));
        sim.set_presence(&user, "BREAK").await;
        let p = ws
            .wait_for(5 * SEC, |v| topic_is(v, &topic))
            .await
            .expect("presence event");
        assert_eq!(
            p["eventBody"].get("modifiedDate").is_none(),
            without,
            "{}",
            p["eventBody"]
        );
    }
}

/// Starts a conversation of `media` for an On Queue agent; returns (agent id, conversation id).
async fn conversation_of(sim: &TestSim, media: &'static str) -> (String, String) {
    let user = sim.user_not_in("ON_QUEUE").await;
    sim.set_presence(&user, "ON_QUEUE").await;
    let mut inner = sim.handle.sim.inner.lock();
    let u = inner.user_idx(&user).unwrap();
    if !inner.org.users[u].conversations.is_empty() {
        panic!("agent already busy");
    }
    offer(&mut inner, u);
    let id = inner.org.users[u].conversations[0].clone();
    inner.conversations.get_mut(&id).unwrap().media = media;
    (user, id)
}

fn agent_of(conv: &Value) -> &Value {
    arr(&conv["participants"])
        .iter()
        .find(|p| p["purpose"] == "agent")
        .expect("agent participant")
}

/// REST conversations: calls have muted/confined and may end "terminated";
/// chats, emails and messages have neither and end "disconnected"; `wrapup.code`
/// is a wrap-up code id listed by `GET /api/v2/routing/wrapupcodes`, with its name.
#[actix_web::test]
async fn rest_conversation_legs_per_media_and_wrapup_id() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let codes = api.get("/routing/wrapupcodes?pageSize=100").await;
    assert_eq!(codes.status, 200, "{}", codes.text);
    let listed: Vec<(Value, Value)> = arr(&codes.json["entities"])
        .iter()
        .map(|c| (c["id"].clone(), c["name"].clone()))
        .collect();
    assert_eq!(listed.len(), WRAPUP_CODES.len());
    assert_eq!(codes.json["total"], WRAPUP_CODES.len());
    for (media, key) in [
        ("voice", "calls"),
        ("chat", "chats"),
        ("email", "emails"),
        ("message", "messages"),
    ] {
        let (user, id) = conversation_of(&sim, media).await;
        // Wrap up, then end: step_agent moves a connected conversation to ACW, then ends it.
        {
            let mut inner = sim.handle.sim.inner.lock();
            let u = inner.user_idx(&user).unwrap();
            inner.conversations.get_mut(&id).unwrap().wrapup = true;
            step_agent(&mut inner, u);
        }
        let c = api.get(&format!("/conversations/{id}")).await;
        assert_eq!(c.status, 200, "{}", c.text);
        let agent = agent_of(&c.json);
        let leg = &arr(&agent[key])[0];
        if media == "voice" {
            assert_eq!(leg["state"], "terminated");
            assert!(leg["muted"].is_boolean() && leg["confined"].is_boolean());
        } else {
            assert_eq!(leg["state"], "disconnected", "{media}: {leg}");
            assert!(
                leg.get("muted").is_none() && leg.get("confined").is_none(),
                "{media}: {leg}"
            );
        }
        let code = &agent["wrapup"]["code"];
        let entry = listed
            .iter()
            .find(|(i, _)| i == code)
            .unwrap_or_else(|| panic!("{code} is not a wrap-up code id"));
        assert_eq!(agent["wrapup"]["name"], entry.1);
        assert!(c.json["startTime"].is_string() && c.json["endTime"].is_string());
        assert!(agent["queueName"].is_string());
    }
}

/// Conversation events are the event model: no conversation `startTime`/`endTime`/`selfUri`,
/// no participant `startTime`/`queueName`/`ani`/`userUri`/`wrapup.name`, no chat `direction`.
#[actix_web::test]
async fn conversation_events_carry_the_event_model_only() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    for media in ["voice", "chat", "email", "message"] {
        let (user, id) = conversation_of(&sim, media).await;
        let topic = format!("v2.users.{user}.conversations");
        let (ch, uri) = api.channel().await;
        api.subscribe(&ch, std::slice::from_ref(&topic)).await;
        let mut ws = sim.connect(&uri).await;
        assert!(eventually!(
            2 * SEC,
            sim.handle
                .sim
                .inner
                .lock()
                .channels
                .get(&ch)
                .is_some_and(|c| c.socket.is_some())
        ));
        {
            let mut inner = sim.handle.sim.inner.lock();
            let u = inner.user_idx(&user).unwrap();
            inner.conversations.get_mut(&id).unwrap().wrapup = true;
            step_agent(&mut inner, u); // ends it: wrap-up code set, event emitted
        }
        let e = ws
            .wait_for(5 * SEC, |v| topic_is(v, &topic))
            .await
            .expect("conversation event");
        let body = &e["eventBody"];
        for k in ["startTime", "endTime", "selfUri"] {
            assert!(body.get(k).is_none(), "{media}: conversation {k}");
        }
        for p in arr(&body["participants"]) {
            for k in ["startTime", "queueName", "ani", "userUri"] {
                assert!(p.get(k).is_none(), "{media}: participant {k}: {p}");
            }
            if let Some(w) = p.get("wrapup") {
                assert!(w.get("name").is_none() && w["code"].is_string());
            }
            for key in ["chats", "emails", "messages"] {
                for leg in p.get(key).and_then(Value::as_array).into_iter().flatten() {
                    assert!(leg.get("muted").is_none() && leg.get("confined").is_none());
                    assert_ne!(leg["state"], "terminated");
                    if key == "chats" {
                        assert!(leg.get("direction").is_none());
                    }
                }
            }
        }
        let agent = agent_of(body);
        assert!(agent["queueId"].is_string() && agent["connectedTime"].is_string());
        // The REST shape of the same conversation has what the event lacks.
        let inner = sim.handle.sim.inner.lock();
        let rest = conversation_json(&inner.org, &inner.conversations[&id], Shape::Rest);
        assert!(rest["startTime"].is_string() && agent_of(&rest)["queueName"].is_string());
    }
}

/// `--bulk-put-answer-id`: the answer's `id` is the user's id, or the source's id (no user id).
#[actix_web::test]
async fn bulk_put_answer_id_per_reading() {
    for reading in [BulkPutAnswerId::User, BulkPutAnswerId::Source] {
        let sim = TestSim::start(|c| c.bulk_put_answer_id = reading).await;
        let api = sim.api().await;
        let ids = sim.state_users().await;
        let id = ids[0]["id"].as_str().unwrap().to_string();
        let r = api
            .put(
                "/users/presences/bulk",
                json!([{"id": id, "presenceDefinition": {"id": MEAL}}]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let item = &arr(&r.json)[0];
        match reading {
            BulkPutAnswerId::User => assert_eq!(item["id"], id.as_str()),
            BulkPutAnswerId::Source => {
                assert_ne!(item["id"], id.as_str());
                assert_eq!(item["id"], item["sourceId"]);
                assert!(item.get("userId").is_none(), "no user id field: {item}");
            }
        }
        assert_eq!(
            sim.state_of(&id).await["presence"]["systemPresence"],
            "MEAL"
        );
    }
}

/// `--definitions-deactivated`: `deactivated=true` adds the deactivated ones, or gives only them.
#[actix_web::test]
async fn definitions_deactivated_per_reading() {
    for reading in [DeactivatedReading::Include, DeactivatedReading::Only] {
        let sim = TestSim::start(|c| c.definitions_deactivated = reading).await;
        let api = sim.api().await;
        let active = arr(&api.get("/presence/definitions").await.json["entities"]).len();
        let with = api.get("/presence/definitions?deactivated=true").await.json;
        let with = arr(&with["entities"]);
        let deactivated = with.iter().filter(|d| d["deactivated"] == true).count();
        assert!(deactivated > 0);
        match reading {
            DeactivatedReading::Include => assert_eq!(with.len(), active + deactivated),
            DeactivatedReading::Only => assert_eq!(with.len(), deactivated),
        }
    }
}

/// `--queue-member-id` and `--unjoined-member-rate`: `QueueMember.id` is the user id or a
/// membership id (user id in `user.id`); unjoined members are left out of `activeQueueIds`.
#[actix_web::test]
async fn queue_members_per_reading() {
    for reading in [QueueMemberId::User, QueueMemberId::Member] {
        let sim = TestSim::start(|c| {
            c.queue_member_id = reading;
            c.unjoined_member_rate = 0.5;
        })
        .await;
        let api = sim.api().await;
        let q = api.get("/routing/queues?pageSize=1").await.json;
        let qid = q["entities"][0]["id"].as_str().unwrap().to_string();
        let m = api
            .get(&format!("/routing/queues/{qid}/members?pageSize=100"))
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        let members = arr(&m.json["entities"]);
        assert!(
            members.iter().any(|e| e["joined"] == true)
                && members.iter().any(|e| e["joined"] == false)
        );
        for e in members {
            match reading {
                QueueMemberId::User => assert_eq!(e["id"], e["user"]["id"]),
                QueueMemberId::Member => assert_ne!(e["id"], e["user"]["id"]),
            }
        }
        // An unjoined member's activity does not list that queue.
        let unjoined = members.iter().find(|e| e["joined"] == false).unwrap()["user"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let inner = sim.handle.sim.inner.lock();
        let u = inner.user_idx(&unjoined).unwrap();
        assert!(!inner.active_queue_ids(u).contains(&qid.as_str()));
    }
}
