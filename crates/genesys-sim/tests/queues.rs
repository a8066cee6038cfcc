//! The simulator's queues, proved from outside: the `/sim/queues/{id}/waiting`
//! control bounds its input with a clear 400, and the queue observations
//! query (`POST /api/v2/analytics/queues/observations/query`) honours the
//! filter's `mediaType` predicates as real Genesys does.

mod sim_support;

use serde_json::{json, Value};
use sim_support::*;

/// The first queue of the simulated org.
async fn first_queue(sim: &TestSim) -> String {
    let q = sim.sim_get("/sim/queues").await.json;
    q["queues"][0]["id"]
        .as_str()
        .expect("a queue id")
        .to_string()
}

/// `waitingSecs` beyond 7 days, beyond `i64` or negative is a 400 naming
/// the field; nothing is replaced by a refused request.
#[actix_web::test]
async fn waiting_secs_is_bounded_with_a_clear_400() {
    let sim = TestSim::default().await;
    let q = first_queue(&sim).await;
    let path = format!("/sim/queues/{q}/waiting");
    let ok = sim
        .sim_post(
            &path,
            json!({"mediaType": "voice", "count": 2, "waitingSecs": 604800}),
        )
        .await;
    assert_eq!(ok.status, 204, "{}", ok.text);
    for raw in [
        "{\"mediaType\":\"voice\",\"count\":1,\"waitingSecs\":99999999999}",
        "{\"mediaType\":\"voice\",\"count\":1,\"waitingSecs\":18446744073709551615}",
        "{\"mediaType\":\"voice\",\"count\":1,\"waitingSecs\":604801}",
        "{\"mediaType\":\"voice\",\"count\":1,\"waitingSecs\":-1}",
    ] {
        let r = sim
            .request(actix_web::http::Method::POST, &path, None, Body::Raw(raw))
            .await;
        assert_eq!(r.status, 400, "{raw}: {}", r.text);
        assert_eq!(r.json["error"], "bad_request", "{}", r.text);
        assert!(
            r.json["reason"]
                .as_str()
                .unwrap_or("")
                .contains("waitingSecs"),
            "{raw}: {}",
            r.text
        );
    }
    let state = sim.sim_get("/sim/queues").await.json;
    let voice = &state["queues"][0]["waiting"]["voice"];
    assert_eq!(voice["count"], 2, "{state}");
    let longest = voice["longestWaitMs"].as_u64().expect("longestWaitMs");
    assert!(longest >= 604_800_000, "{longest}");
}

fn media_of(results: &Value) -> Vec<String> {
    let mut m: Vec<String> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["group"]["mediaType"].as_str().unwrap_or("").to_string())
        .collect();
    m.sort();
    m
}

/// A `mediaType` predicate restricts the results to that media type; none
/// reports all four; an unknown media type is a 400.
#[actix_web::test]
async fn observations_honour_media_type_predicates() {
    let sim = TestSim::default().await;
    let q = first_queue(&sim).await;
    let r = sim
        .sim_post(
            &format!("/sim/queues/{q}/waiting"),
            json!({"mediaType": "chat", "count": 3, "waitingSecs": 30}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let api = sim.api().await;
    let query = |media: Option<Vec<&str>>| {
        let mut clauses =
            vec![json!({"type": "or", "predicates": [{"dimension": "queueId", "value": q}]})];
        if let Some(media) = media {
            let preds: Vec<Value> = media
                .iter()
                .map(|m| json!({"dimension": "mediaType", "value": m}))
                .collect();
            clauses.push(json!({"type": "or", "predicates": preds}));
        }
        json!({"filter": {"type": "and", "clauses": clauses}, "metrics": ["oWaiting", "oLongestWaiting"]})
    };
    let path = "/analytics/queues/observations/query";
    let all = api.post(path, query(None)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(media_of(&all.json), ["chat", "email", "message", "voice"]);

    let chat = api.post(path, query(Some(vec!["chat"]))).await;
    assert_eq!(chat.status, 200, "{}", chat.text);
    assert_eq!(media_of(&chat.json), ["chat"]);
    let data = &chat.json["results"][0]["data"];
    assert_eq!(data[0]["metric"], "oWaiting", "{data}");
    assert_eq!(data[0]["stats"]["count"], 3, "{data}");

    let two = api.post(path, query(Some(vec!["voice", "email"]))).await;
    assert_eq!(media_of(&two.json), ["email", "voice"]);

    let bad = api.post(path, query(Some(vec!["fax"]))).await;
    bad.assert_error(400, "bad.request");
}
