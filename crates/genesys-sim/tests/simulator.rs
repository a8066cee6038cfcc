//! The simulator, proved from outside: every endpoint, limit and fault is
//! driven through real HTTP and WebSocket on loopback and checked against
//! `genesys-api.md` (the real Genesys Cloud API) and the simulator contract
//! of `design.md`. One test per invariant; the `///` line says which.

mod sim_support;

use std::time::{Duration, Instant};

use actix_web::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sim_support::*;

const SEC: Duration = Duration::from_secs(1);

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn ids_of(v: &Value) -> Vec<String> {
    arr(&v["entities"])
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a date: {v}")))
        .expect("ISO-8601 date")
        .with_timezone(&Utc)
}

// ───────────────────────────── OAuth ─────────────────────────────

/// Basic client credentials on `/oauth/token` give a bearer token of the §1.3 shape that the API accepts.
#[actix_web::test]
async fn oauth_basic_credentials_issue_a_working_token() {
    let sim = TestSim::default().await;
    let r = sim.token_request(CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["access_token"]
        .as_str()
        .is_some_and(|t| t.len() > 20));
    assert!(r.json["token_type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer")));
    assert_eq!(r.json["expires_in"], 86_400);
    let token = r.json["access_token"].as_str().unwrap();
    let users = sim
        .request(
            Method::GET,
            "/api/v2/users",
            Some(&format!("bearer {token}")),
            Body::None,
        )
        .await;
    assert_eq!(
        users.status, 200,
        "the scheme is case-insensitive: {}",
        users.text
    );
}

/// Wrong client credentials get 401 with the observed `invalid_client` body (§1.4).
#[actix_web::test]
async fn oauth_wrong_credentials_get_invalid_client() {
    let sim = TestSim::default().await;
    for (id, secret) in [(CLIENT_ID, "nope"), ("other", CLIENT_SECRET)] {
        let r = sim.token_request(id, secret).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(
            r.json,
            json!({"error":"invalid_client","description":"authentication failed","error_description":"authentication failed"})
        );
    }
    assert_eq!(sim.counter("tokenFailures").await, 2);
}

/// A token request without `grant_type=client_credentials` is refused with an OAuth error.
#[actix_web::test]
async fn oauth_requires_client_credentials_grant() {
    let sim = TestSim::default().await;
    let basic = "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"; // sim-client:sim-secret
    for (body, error) in [
        ("", "invalid_request"),
        ("grant_type=password", "unsupported_grant_type"),
    ] {
        let mut res = sim
            .client
            .post(format!("{}/oauth/token", sim.base))
            .insert_header(("Authorization", basic))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .send_body(body)
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], error);
    }
}

/// A request without a bearer token is 401 `authentication.required` in the ErrorBody shape (§9).
#[actix_web::test]
async fn api_without_token_is_401_authentication_required() {
    let sim = TestSim::default().await;
    let r = sim
        .request(Method::GET, "/api/v2/users", None, Body::None)
        .await;
    r.assert_error(401, "authentication.required");
    let r = sim
        .request(
            Method::GET,
            "/api/v2/users",
            Some("Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"),
            Body::None,
        )
        .await;
    r.assert_error(401, "authentication.required");
}

/// A token the service never issued is 401 `bad.credentials`.
#[actix_web::test]
async fn api_with_unknown_token_is_401_bad_credentials() {
    let sim = TestSim::default().await;
    let r = sim
        .request(
            Method::GET,
            "/api/v2/users",
            Some("Bearer not-a-real-token"),
            Body::None,
        )
        .await;
    r.assert_error(401, "bad.credentials");
}

/// A token really expires after `token_lifetime_secs`, and then gets 401 `credentials.expired`.
#[actix_web::test]
async fn token_expires_after_its_lifetime() {
    let sim = TestSim::start(|c| c.token_lifetime_secs = 1).await;
    let r = sim.token_request(CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(r.json["expires_in"], 1);
    let api = Api {
        sim: &sim,
        token: r.json["access_token"].as_str().unwrap().to_string(),
    };
    assert_eq!(api.get("/users?pageSize=1").await.status, 200);
    let issued = Instant::now();
    let mut last;
    assert!(eventually!(3 * SEC, {
        let r = api.get("/users?pageSize=1").await;
        let done = r.status == 401;
        last = Some(r);
        done
    }));
    assert!(
        issued.elapsed() >= Duration::from_millis(900),
        "not before its lifetime"
    );
    // Still expired (not forgotten) well after the housekeeping tick.
    assert!(eventually!(SEC, sim.counter("unauthorized").await >= 1));
    last.unwrap().assert_error(401, "credentials.expired");
    api.get("/users?pageSize=1")
        .await
        .assert_error(401, "credentials.expired");
}

// ───────────────────────────── Users ─────────────────────────────

/// `GET /users` pages 500 agents in the §2 envelope with relative URIs, `nextUri`/`previousUri` only where pages exist.
#[actix_web::test]
async fn users_listing_has_the_paging_envelope() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let r = api.get("/users").await;
    assert_eq!(r.status, 200);
    let v = &r.json;
    assert_eq!(v["pageSize"], 25);
    assert_eq!(v["pageNumber"], 1);
    assert_eq!(v["total"], 500, "default org has 500 agents");
    assert_eq!(v["pageCount"], 20);
    assert_eq!(arr(&v["entities"]).len(), 25);
    assert_eq!(v["firstUri"], "/api/v2/users?pageSize=25&pageNumber=1");
    assert_eq!(v["selfUri"], "/api/v2/users?pageSize=25&pageNumber=1");
    assert_eq!(v["nextUri"], "/api/v2/users?pageSize=25&pageNumber=2");
    assert_eq!(v["lastUri"], "/api/v2/users?pageSize=25&pageNumber=20");
    assert!(v.get("previousUri").is_none());
    let last = api.get("/users?pageNumber=20").await.json;
    assert!(last.get("nextUri").is_none());
    assert_eq!(
        last["previousUri"],
        "/api/v2/users?pageSize=25&pageNumber=19"
    );
    // Following nextUri as given walks every user exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut next = Some("/users?pageSize=100".to_string());
    while let Some(p) = next {
        let page = api.get(&p).await.json;
        for id in ids_of(&page) {
            assert!(seen.insert(id), "a user appears twice");
        }
        next = page["nextUri"]
            .as_str()
            .map(|u| u.trim_start_matches("/api/v2").to_string());
    }
    assert_eq!(seen.len(), 500);
    let u = &arr(&v["entities"])[0];
    for k in [
        "id", "name", "division", "email", "state", "version", "selfUri",
    ] {
        assert!(u.get(k).is_some(), "user has {k}: {u}");
    }
    assert_eq!(u["state"], "active");
}

/// `pageSize` goes up to 500 (UNCONFIRMED max, flag `--users-max-page-size`); 501 is 400 `invalid.value`.
#[actix_web::test]
async fn users_page_size_500_is_allowed_501_is_not() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let r = api.get("/users?pageSize=500").await;
    assert_eq!(arr(&r.json["entities"]).len(), 500);
    assert!(r.json.get("nextUri").is_none());
    api.get("/users?pageSize=501")
        .await
        .assert_error(400, "invalid.value");
}

/// `expand=presence,routingStatus` works comma-joined and repeated, legacy title case inside (§2, §4.2).
#[actix_web::test]
async fn users_expand_comma_joined_and_repeated() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let a = api
        .get("/users?pageSize=50&expand=presence,routingStatus")
        .await
        .json;
    let b = api
        .get("/users?pageSize=50&expand=presence&expand=routingStatus")
        .await
        .json;
    assert_eq!(a["entities"], b["entities"]);
    let legacy = [
        "Available",
        "Away",
        "Busy",
        "Offline",
        "Idle",
        "On Queue",
        "Meal",
        "Training",
        "Meeting",
        "Break",
    ];
    for u in arr(&a["entities"]) {
        let sp = u["presence"]["presenceDefinition"]["systemPresence"]
            .as_str()
            .expect("presence expanded");
        assert!(legacy.contains(&sp), "legacy spelling, got {sp}");
        assert_eq!(u["presence"]["source"], "PURECLOUD");
        assert_eq!(u["routingStatus"]["userId"], u["id"]);
        assert!(u["routingStatus"]["status"].is_string());
    }
    let none = api.get("/users?pageSize=5").await.json;
    assert!(arr(&none["entities"])
        .iter()
        .all(|u| u.get("presence").is_none() && u.get("routingStatus").is_none()));
}

/// `id` takes up to 100 user ids; 101 is 400 `max.user.ids` (§3.1, SW17).
#[actix_web::test]
async fn users_id_filter_up_to_100() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let all = ids_of(&api.get("/users?pageSize=101").await.json);
    let hundred = all[..100].join(",");
    let r = api.get(&format!("/users?pageSize=100&id={hundred}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["total"], 100);
    let repeated: String = all[..3].iter().map(|i| format!("&id={i}")).collect();
    assert_eq!(
        api.get(&format!("/users?{}", &repeated[1..])).await.json["total"],
        3
    );
    let r = api.get(&format!("/users?id={}", all.join(","))).await;
    r.assert_error(400, "max.user.ids");
}

/// `state` filters users: active (default) and any list them, inactive/deleted none, other values 400.
#[actix_web::test]
async fn users_state_filter() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    assert_eq!(api.get("/users?state=active").await.json["total"], 500);
    assert_eq!(api.get("/users?state=any").await.json["total"], 500);
    assert_eq!(api.get("/users?state=inactive").await.json["total"], 0);
    assert_eq!(api.get("/users?state=deleted").await.json["total"], 0);
    api.get("/users?state=sleeping")
        .await
        .assert_error(400, "invalid.value");
}

/// `GET /users/{id}` returns the user with expansions; an unknown id is 404 `general.resource.not.found`.
#[actix_web::test]
async fn get_user_by_id_and_unknown_is_404() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let id = ids_of(&api.get("/users?pageSize=1").await.json).remove(0);
    let u = api
        .get(&format!("/users/{id}?expand=presence,routingStatus"))
        .await;
    assert_eq!(u.status, 200);
    assert_eq!(u.json["id"], id.as_str());
    assert!(u.json["presence"]["presenceDefinition"]["id"].is_string());
    let r = api.get("/users/00000000-0000-4000-8000-000000000000").await;
    r.assert_error(404, "general.resource.not.found");
}

/// The same seed gives the same org (ids, names, divisions); another seed another org.
#[actix_web::test]
async fn org_is_deterministic_for_a_seed() {
    async fn listing(seed: u64) -> Value {
        let sim = TestSim::start(|c| c.seed = seed).await;
        let api = sim.api().await;
        let v = api.get("/users?pageSize=500").await.json;
        sim.handle.stop().await;
        json!(arr(&v["entities"])
            .iter()
            .map(|u| json!([u["id"], u["name"], u["division"]["id"]]))
            .collect::<Vec<_>>())
    }
    let a = listing(7).await;
    assert_eq!(a, listing(7).await);
    assert_ne!(a, listing(8).await);
}

/// The org has 3+ divisions and 10+ queues, each queue with members (listed by the members endpoint).
#[actix_web::test]
async fn org_has_divisions_and_queues_with_members() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let users = api.get("/users?pageSize=500").await.json;
    let divisions: std::collections::HashSet<String> = arr(&users["entities"])
        .iter()
        .map(|u| u["division"]["id"].as_str().unwrap().to_string())
        .collect();
    assert!(divisions.len() >= 3, "{} divisions", divisions.len());
    let queues = api.get("/routing/queues?pageSize=100").await.json;
    assert!(queues["total"].as_u64().unwrap() >= 10);
    for q in arr(&queues["entities"]) {
        let m = api
            .get(&format!(
                "/routing/queues/{}/members?pageSize=100&expand=presence",
                q["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(m.status, 200);
        assert!(
            !arr(&m.json["entities"]).is_empty(),
            "queue {} has members",
            q["name"]
        );
        // QueueMemberEntityListing has no total, pageCount or lastUri.
        for k in ["total", "pageCount", "lastUri"] {
            assert!(m.json.get(k).is_none(), "{k} in {}", m.json);
        }
        let first = &arr(&m.json["entities"])[0];
        assert!(
            first["user"]["presence"].is_object() && first["routingStatus"]["status"].is_string()
        );
    }
    api.get("/routing/queues/00000000-0000-4000-8000-000000000000/members")
        .await
        .assert_error(404, "not.found");
}

// ───────────────────────────── Presence ─────────────────────────────

/// Legacy `/presencedefinitions` is paged, title case (`On Queue`), with the documented primary ids and the org's secondary ones.
#[actix_web::test]
async fn legacy_presence_definitions() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let v = api.get("/presencedefinitions?pageSize=100").await.json;
    let defs = arr(&v["entities"]);
    let by_id = |id: &str| {
        defs.iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("definition {id}"))
            .clone()
    };
    for (id, sp) in [
        (AVAILABLE, "Available"),
        (ON_QUEUE, "On Queue"),
        (BREAK, "Break"),
        (MEAL, "Meal"),
        (BUSY, "Busy"),
        (OFFLINE, "Offline"),
    ] {
        let d = by_id(id);
        assert_eq!(d["systemPresence"], sp);
        assert_eq!(d["primary"], true);
        assert!(d["languageLabels"]["en_US"].is_string());
    }
    let named = |label: &str| {
        defs.iter()
            .find(|d| d["languageLabels"]["en_US"] == label)
            .unwrap_or_else(|| panic!("{label}"))
            .clone()
    };
    let lunch = named("Lunch");
    assert_eq!(
        (lunch["systemPresence"].as_str(), lunch["primary"].as_bool()),
        (Some("Meal"), Some(false))
    );
    let coaching = named("Coaching");
    assert_eq!(
        (
            coaching["systemPresence"].as_str(),
            coaching["primary"].as_bool()
        ),
        (Some("Busy"), Some(false))
    );
    assert!(
        defs.iter().all(|d| d["deactivated"] == false),
        "deactivated ones hidden by default"
    );
    // Paged like every legacy listing.
    let p = api
        .get("/presencedefinitions?pageSize=5&pageNumber=2")
        .await
        .json;
    assert_eq!(arr(&p["entities"]).len(), 5);
    assert_eq!(p["pageNumber"], 2);
    assert_eq!(
        p["previousUri"],
        "/api/v2/presencedefinitions?pageSize=5&pageNumber=1"
    );
    let one = api
        .get(&format!("/presencedefinitions/{ON_QUEUE}"))
        .await
        .json;
    assert_eq!(one["systemPresence"], "On Queue");
}

/// Current `/presence/definitions` is unpaged and Pascal case (`OnQueue`), `type` System/User.
#[actix_web::test]
async fn current_presence_definitions() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let v = api.get("/presence/definitions").await.json;
    assert!(v.get("pageSize").is_none() && v["total"].is_number());
    let defs = arr(&v["entities"]);
    let oq = defs.iter().find(|d| d["id"] == ON_QUEUE).unwrap();
    assert_eq!(oq["systemPresence"], "OnQueue");
    assert_eq!(oq["type"], "System");
    let pascal = [
        "Available",
        "Away",
        "Busy",
        "Offline",
        "Idle",
        "OnQueue",
        "Meal",
        "Training",
        "Meeting",
        "Break",
    ];
    assert!(defs
        .iter()
        .all(|d| pascal.contains(&d["systemPresence"].as_str().unwrap())));
    assert!(defs
        .iter()
        .any(|d| d["type"] == "User" && d["systemPresence"] == "Meal"));
    let one = api
        .get(&format!("/presence/definitions/{ON_QUEUE}"))
        .await
        .json;
    assert_eq!(one["systemPresence"], "OnQueue");
    api.get("/presence/definitions/00000000-0000-4000-8000-000000000000")
        .await
        .assert_error(404, "not.found");
}

/// `/systempresences` is a bare array of the ten system presences.
#[actix_web::test]
async fn system_presences_are_the_ten() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let v = api.get("/systempresences").await.json;
    let ids: Vec<&str> = arr(&v).iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 10);
    for sp in ["AVAILABLE", "ON_QUEUE", "BREAK", "MEAL", "OFFLINE"] {
        assert!(
            ids.iter().any(|i| i.eq_ignore_ascii_case(sp)),
            "{sp} in {ids:?}"
        );
    }
    assert!(arr(&v).iter().all(|s| s["name"].is_string()));
}

/// PATCH `…/presences/purecloud` sets the presence by definition id; GET and the ground truth follow.
#[actix_web::test]
async fn patch_purecloud_presence_changes_it() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("BREAK").await;
    let path = format!("/users/{user}/presences/purecloud");
    let r = api
        .patch(
            &path,
            json!({"presenceDefinition": {"id": BREAK}, "message": "back in 10"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["presenceDefinition"]["id"], BREAK);
    assert_eq!(r.json["presenceDefinition"]["systemPresence"], "Break");
    assert_eq!(r.json["message"], "back in 10");
    assert_eq!(r.json["source"], "PURECLOUD");
    let modified = date(&r.json["modifiedDate"]);
    assert!((Utc::now() - modified).num_seconds().abs() < 5);
    let g = api.get(&path).await.json;
    assert_eq!(g["presenceDefinition"]["id"], BREAK);
    let truth = sim.state_of(&user).await;
    assert_eq!(truth["presence"]["systemPresence"], "BREAK");
    assert_eq!(truth["presence"]["definitionId"], BREAK);
    // A message-only PATCH keeps the definition.
    let m = api
        .patch(&path, json!({"message": "lunch soon"}))
        .await
        .json;
    assert_eq!(
        (
            m["presenceDefinition"]["id"].as_str(),
            m["message"].as_str()
        ),
        (Some(BREAK), Some("lunch soon"))
    );
    // A secondary definition: Lunch lives under Meal.
    let lunch = "a1f0c3d2-4b5e-4f60-8a71-92b3c4d5e6f7";
    let l = api
        .patch(&path, json!({"presenceDefinition": {"id": lunch}}))
        .await
        .json;
    assert_eq!(l["presenceDefinition"]["systemPresence"], "Meal");
    assert_eq!(
        sim.state_of(&user).await["presence"]["systemPresence"],
        "MEAL"
    );
}

/// The presence source can be named by its id as well as `purecloud`; an unknown source is 404.
#[actix_web::test]
async fn presence_by_source_id() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("AVAILABLE").await;
    let pc = api
        .get(&format!("/users/{user}/presences/purecloud"))
        .await
        .json;
    let source_id = pc["sourceId"].as_str().expect("sourceId").to_string();
    let by_id = api
        .get(&format!("/users/{user}/presences/{source_id}"))
        .await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.json, pc);
    let r = api
        .patch(
            &format!("/users/{user}/presences/{source_id}"),
            json!({"presenceDefinition": {"id": AVAILABLE}}),
        )
        .await;
    assert_eq!(r.json["presenceDefinition"]["systemPresence"], "Available");
    api.get(&format!("/users/{user}/presences/ZoomPhone"))
        .await
        .assert_error(404, "not.found");
    api.get("/users/00000000-0000-4000-8000-000000000000/presences/purecloud")
        .await
        .assert_error(404, "general.resource.not.found");
}

/// Bulk presence GET returns a bare `UcUserPresence[]` for up to 50 ids; 51 is 400.
#[actix_web::test]
async fn bulk_presence_get_up_to_50() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let ids = ids_of(&api.get("/users?pageSize=51").await.json);
    let r = api
        .get(&format!(
            "/users/presences/purecloud/bulk?id={}",
            ids[..50].join(",")
        ))
        .await;
    assert_eq!(r.status, 200);
    let items = arr(&r.json);
    assert_eq!(items.len(), 50);
    for (item, id) in items.iter().zip(&ids) {
        assert_eq!(item["userId"], id.as_str());
        assert!(item["presenceDefinition"]["id"].is_string());
        assert!(
            item.get("primary").is_none(),
            "UcUserPresence has no primary"
        );
    }
    let repeated: String = ids[..2].iter().map(|i| format!("id={i}&")).collect();
    assert_eq!(
        arr(&api
            .get(&format!("/users/presences/purecloud/bulk?{repeated}"))
            .await
            .json)
        .len(),
        2
    );
    api.get(&format!(
        "/users/presences/purecloud/bulk?id={}",
        ids.join(",")
    ))
    .await
    .assert_error(400, "max.user.ids");
    api.get("/users/presences/purecloud/bulk")
        .await
        .assert_error(400, "bad.request");
}

/// Bulk presence PUT applies every item (ids are user ids) or none when one is invalid.
#[actix_web::test]
async fn bulk_presence_put_applies_all_or_nothing() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let ids = ids_of(&api.get("/users?pageSize=3").await.json);
    let body: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "presenceDefinition": {"id": MEAL}}))
        .collect();
    let r = api.put("/users/presences/bulk", json!(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(arr(&r.json).len(), 3);
    for id in &ids {
        assert_eq!(sim.state_of(id).await["presence"]["systemPresence"], "MEAL");
    }
    // One bad definition: nothing changes.
    let bad = json!([{"id": ids[0], "presenceDefinition": {"id": AVAILABLE}}, {"id": ids[1], "presenceDefinition": {"id": "nope"}}]);
    api.put("/users/presences/bulk", bad)
        .await
        .assert_error(400, "bad.request");
    assert_eq!(
        sim.state_of(&ids[0]).await["presence"]["systemPresence"],
        "MEAL"
    );
    let too_many: Vec<Value> = (0..51)
        .map(|_| json!({"id": ids[0], "presenceDefinition": {"id": MEAL}}))
        .collect();
    api.put("/users/presences/bulk", json!(too_many))
        .await
        .assert_error(400, "bad.request");
}

/// Going On Queue moves routing status off `OFF_QUEUE` (to IDLE); leaving returns it to `OFF_QUEUE` (§4.6).
#[actix_web::test]
async fn on_queue_drives_routing_status() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    let rs = format!("/users/{user}/routingstatus");
    assert_eq!(api.get(&rs).await.json["status"], "OFF_QUEUE");
    api.patch(
        &format!("/users/{user}/presences/purecloud"),
        json!({"presenceDefinition": {"id": ON_QUEUE}}),
    )
    .await;
    let on = api.get(&rs).await.json;
    assert_eq!(on["status"], "IDLE");
    assert_eq!(on["userId"], user.as_str());
    date(&on["startTime"]);
    api.patch(
        &format!("/users/{user}/presences/purecloud"),
        json!({"presenceDefinition": {"id": AVAILABLE}}),
    )
    .await;
    assert_eq!(api.get(&rs).await.json["status"], "OFF_QUEUE");
    assert_eq!(
        sim.state_of(&user).await["routingStatus"]["status"],
        "OFF_QUEUE"
    );
}

/// Routing status PUT allows IDLE while On Queue, refuses other transitions with 400 `general.bad.request`; unknown users read OFF_QUEUE.
#[actix_web::test]
async fn routing_status_put_and_get() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    let rs = format!("/users/{user}/routingstatus");
    api.put(&rs, json!({"status": "IDLE"}))
        .await
        .assert_error(400, "general.bad.request");
    sim.set_presence(&user, "ON_QUEUE").await;
    let r = api.put(&rs, json!({"status": "IDLE"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "IDLE");
    api.put(&rs, json!({"status": "INTERACTING"}))
        .await
        .assert_error(400, "general.bad.request");
    api.put(&rs, json!({"status": "ASLEEP"}))
        .await
        .assert_error(400, "invalid.value");
    let ghost = api
        .get("/users/00000000-0000-4000-8000-000000000000/routingstatus")
        .await;
    assert_eq!(ghost.json["status"], "OFF_QUEUE");
}

/// A deactivated definition is hidden by default, listed on request, and refused by PATCH.
#[actix_web::test]
async fn deactivated_definition_is_refused() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let retired = "d4e3f605-7c81-4293-9da4-c5e6f708192a";
    let listed = |v: &Value| arr(&v["entities"]).iter().any(|d| d["id"] == retired);
    assert!(!listed(&api.get("/presence/definitions").await.json));
    assert!(listed(
        &api.get("/presence/definitions?deactivated=true").await.json
    ));
    assert!(listed(
        &api.get("/presencedefinitions?deleted=true").await.json
    ));
    let user = sim.user_not_in("BREAK").await;
    let before = sim.state_of(&user).await["presence"].clone();
    api.patch(
        &format!("/users/{user}/presences/purecloud"),
        json!({"presenceDefinition": {"id": retired}}),
    )
    .await
    .assert_error(400, "bad.request");
    assert_eq!(
        sim.state_of(&user).await["presence"]["definitionId"],
        before["definitionId"]
    );
}

// ───────────────────────────── Notifications ─────────────────────────────

/// POST creates a channel `{connectUri, id, expires≈+24h}`; GET lists it; HEAD is 200 for it and 404 for others.
#[actix_web::test]
async fn channels_create_list_head() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let r = api
        .send(Method::POST, "/notifications/channels", Body::None)
        .await;
    assert_eq!(r.status, 200);
    let id = r.json["id"].as_str().unwrap();
    assert!(id.starts_with("streaming-"));
    assert!(r.json["connectUri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/channels/{id}")));
    assert!(r.json["connectUri"]
        .as_str()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    let ttl = date(&r.json["expires"]) - Utc::now();
    assert!(
        (ttl.num_seconds() - 86_400).abs() < 10,
        "expires in 24 h, got {ttl}"
    );
    let list = api.get("/notifications/channels").await.json;
    assert!(ids_of(&list).contains(&id.to_string()));
    assert_eq!(
        api.head(&format!("/notifications/channels/{id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        api.head("/notifications/channels/streaming-0-nope")
            .await
            .status,
        404
    );
    // Another token's channels are listed (without ids) only with includechannels=oauthclient.
    let other = sim.api().await;
    assert!(arr(&other.get("/notifications/channels").await.json["entities"]).is_empty());
    let wide = other
        .get("/notifications/channels?includechannels=oauthclient")
        .await
        .json;
    assert_eq!(arr(&wide["entities"]).len(), 1);
    assert!(arr(&wide["entities"])[0].get("id").is_none());
}

/// Subscriptions: POST adds, PUT replaces, GET lists, DELETE clears (§5.1).
#[actix_web::test]
async fn subscriptions_add_replace_list_delete() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let ids = ids_of(&api.get("/users?pageSize=3").await.json);
    let (ch, _) = api.channel().await;
    let subs = format!("/notifications/channels/{ch}/subscriptions");
    let t = |i: usize, s: &str| format!("v2.users.{}.{s}", ids[i]);
    let r = api
        .subscribe(&ch, &[t(0, "presence"), t(0, "routingStatus")])
        .await;
    assert_eq!(arr(&r.json["entities"]).len(), 2);
    assert!(arr(&r.json["entities"])
        .iter()
        .all(|e| e["state"] == "Permitted"));
    api.subscribe(&ch, &[t(1, "presence")]).await;
    assert_eq!(
        ids_of(&api.get(&subs).await.json),
        vec![t(0, "presence"), t(0, "routingStatus"), t(1, "presence")]
    );
    let r = api.put(&subs, json!([{"id": t(2, "activity")}])).await;
    assert_eq!(r.status, 200);
    assert_eq!(ids_of(&api.get(&subs).await.json), vec![t(2, "activity")]);
    let d = api.delete(&subs).await;
    assert!(d.status == 200 || d.status == 204, "{}", d.status);
    assert!(ids_of(&api.get(&subs).await.json).is_empty());
    api.get("/notifications/channels/streaming-0-nope/subscriptions")
        .await
        .assert_error(404, "not.found");
    api.post(
        "/notifications/channels/streaming-0-nope/subscriptions",
        json!([{"id": t(0, "presence")}]),
    )
    .await
    .assert_error(404, "not.found");
}

/// An invalid topic fails the call with 400 `notification.invalid.topic`, unless `ignoreErrors=true` reports it Rejected.
#[actix_web::test]
async fn subscriptions_ignore_errors() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let id = ids_of(&api.get("/users?pageSize=1").await.json).remove(0);
    let (ch, _) = api.channel().await;
    let subs = format!("/notifications/channels/{ch}/subscriptions");
    let body = json!([{"id": format!("v2.users.{id}.presence")}, {"id": format!("v2.users.{id}.presenceUpdate")}]);
    api.post(&subs, body.clone())
        .await
        .assert_error(400, "notification.invalid.topic");
    assert!(
        ids_of(&api.get(&subs).await.json).is_empty(),
        "a failed call subscribes nothing"
    );
    let r = api.post(&format!("{subs}?ignoreErrors=true"), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ents = arr(&r.json["entities"]);
    assert!(ents
        .iter()
        .any(|e| e["id"] == format!("v2.users.{id}.presence") && e["state"] == "Permitted"));
    assert!(ents
        .iter()
        .any(|e| e["id"] == format!("v2.users.{id}.presenceUpdate") && e["state"] == "Rejected"));
    assert_eq!(
        ids_of(&api.get(&subs).await.json),
        vec![format!("v2.users.{id}.presence")]
    );
}

/// A combined topic `v2.users.{id}?presence&routingStatus` delivers separate events under the expanded topic names, in the §5.4 envelope with upper-snake systemPresence.
#[actix_web::test]
async fn combined_topic_delivers_expanded_events() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, &[format!("v2.users.{user}?presence&routingStatus")])
        .await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    sim.set_presence(&user, "ON_QUEUE").await;
    let p = ws
        .wait_for(5 * SEC, |v| {
            topic_is(v, &format!("v2.users.{user}.presence"))
        })
        .await
        .expect("presence event");
    assert_envelope(&p);
    assert_eq!(p["eventBody"]["presenceDefinition"]["id"], ON_QUEUE);
    assert_eq!(
        p["eventBody"]["presenceDefinition"]["systemPresence"],
        "ON_QUEUE"
    );
    assert_eq!(p["eventBody"]["source"], "PURECLOUD");
    assert!(
        p["eventBody"].get("modifiedDate").is_none(),
        "presence events carry no modifiedDate by default, as in Genesys's example"
    );
    let r = ws
        .wait_for(5 * SEC, |v| {
            topic_is(v, &format!("v2.users.{user}.routingStatus"))
        })
        .await
        .expect("routingStatus event");
    assert_envelope(&r);
    assert_eq!(r["eventBody"]["id"], user.as_str());
    assert_eq!(r["eventBody"]["routingStatus"]["status"], "IDLE");
    date(&r["eventBody"]["routingStatus"]["startTime"]);
}

/// The WebSocket-level `{"message":"subscribe"}` (§5.7) subscribes and answers `result 200 subscribed`; bad ones get `result 400`.
#[actix_web::test]
async fn websocket_subscribe_message() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("BREAK").await;
    let (ch, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    let topic = format!("v2.users.{user}.presence");
    ws.send_text(
        &json!({"message": "subscribe", "topics": [topic], "correlationId": "uno5VlaUHt5t2Mul"})
            .to_string(),
    )
    .await;
    let ack = ws
        .wait_for(5 * SEC, |v| v.get("result").is_some())
        .await
        .expect("ack");
    assert_eq!(ack["result"], "200");
    assert_eq!(ack["status"], "subscribed");
    assert_eq!(ack["correlationId"], "uno5VlaUHt5t2Mul");
    assert_eq!(
        ids_of(
            &api.get(&format!("/notifications/channels/{ch}/subscriptions"))
                .await
                .json
        ),
        vec![topic.clone()]
    );
    sim.set_presence(&user, "BREAK").await;
    let e = ws
        .wait_for(5 * SEC, |v| topic_is(v, &topic))
        .await
        .expect("event");
    assert_eq!(
        e["eventBody"]["presenceDefinition"]["systemPresence"],
        "BREAK"
    );
    ws.send_text(r#"{"message":"subscribe","topics":[],"correlationId":"x"}"#)
        .await;
    let err = ws
        .wait_for(5 * SEC, |v| v.get("result").is_some())
        .await
        .expect("error reply");
    assert_eq!(
        (err["result"].as_str(), err["status"].as_str()),
        (Some("400"), Some("error"))
    );
}

/// Heartbeats `{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}` come every `heartbeat_secs`.
#[actix_web::test]
async fn heartbeats_arrive_at_the_configured_interval() {
    let sim = TestSim::start(|c| c.heartbeat_secs = 0.2).await;
    let api = sim.api().await;
    let (_, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    let start = Instant::now();
    for _ in 0..3 {
        let hb = ws.wait_for(2 * SEC, is_metadata).await.expect("heartbeat");
        assert_eq!(hb["eventBody"]["message"], "WebSocket Heartbeat");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "3 beats took {took:?}"
    );
}

/// `{"message":"ping"}` is answered with the `channel.metadata` pong.
#[actix_web::test]
async fn ping_gets_pong() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let (_, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    ws.send_text(r#"{"message":"ping"}"#).await;
    let pong = ws.wait_for(5 * SEC, is_metadata).await.expect("pong");
    assert_eq!(
        pong,
        json!({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})
    );
}

/// A channel holds 1 000 topics; one more is 400; a combined topic counts once (UNCONFIRMED, flag `--combined-topics-count-expanded`).
#[actix_web::test]
async fn topic_limit_is_1000_per_channel() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let (ch, _) = api.channel().await;
    let subs = format!("/notifications/channels/{ch}/subscriptions");
    let topics: Vec<Value> = (0..1000)
        .map(|_| json!({"id": format!("v2.users.{}.presence", uuid::Uuid::new_v4())}))
        .collect();
    let r = api.put(&subs, json!(topics)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(arr(&r.json["entities"]).len(), 1000);
    let one_more = json!([{"id": format!("v2.users.{}.presence", uuid::Uuid::new_v4())}]);
    api.post(&subs, one_more.clone())
        .await
        .assert_error(400, "bad.request");
    assert_eq!(
        ids_of(&api.get(&subs).await.json).len(),
        1000,
        "the failed call changed nothing"
    );
    let mut many: Vec<Value> = topics[..999].to_vec();
    many.push(
        json!({"id": format!("v2.users.{}?presence&routingStatus&activity", uuid::Uuid::new_v4())}),
    );
    assert_eq!(
        api.put(&subs, json!(many)).await.status,
        200,
        "999 + one combined topic fit"
    );
    let mut over = topics.clone();
    over.extend(one_more.as_array().unwrap().clone());
    api.put(&subs, json!(over))
        .await
        .assert_error(400, "bad.request");
}

/// The 21st channel evicts the oldest idle one (HEAD then 404); a channel with a socket is kept.
#[actix_web::test]
async fn channel_limit_evicts_the_oldest_idle_channel() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let mut chans = Vec::new();
    for _ in 0..20 {
        chans.push(api.channel().await);
    }
    // The oldest has a socket, so the second oldest (idle) must go.
    let _ws = sim.connect(&chans[0].1).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    let (newest, _) = api.channel().await;
    assert_eq!(
        api.head(&format!("/notifications/channels/{}", chans[1].0))
            .await
            .status,
        404
    );
    assert_eq!(
        api.head(&format!("/notifications/channels/{}", chans[0].0))
            .await
            .status,
        200
    );
    assert_eq!(
        api.head(&format!("/notifications/channels/{newest}"))
            .await
            .status,
        200
    );
    assert_eq!(
        arr(&api.get("/notifications/channels").await.json["entities"]).len(),
        20
    );
    assert_eq!(sim.counter("channelsEvicted").await, 1);
}

/// Re-subscribing extends a channel's `expires`; a channel left alone dies at its TTL.
#[actix_web::test]
async fn resubscribing_extends_the_channel() {
    let sim = TestSim::start(|c| c.channel_ttl_secs = 2).await;
    let api = sim.api().await;
    let id = ids_of(&api.get("/users?pageSize=1").await.json).remove(0);
    let topic = vec![format!("v2.users.{id}.presence")];
    let (kept, _) = api.channel().await;
    let (left, _) = api.channel().await;
    api.subscribe(&kept, &topic).await;
    let expires_of = |list: &Value| {
        date(
            &arr(&list["entities"])
                .iter()
                .find(|c| c["id"] == kept.as_str())
                .expect("kept listed")["expires"],
        )
    };
    let first = expires_of(&api.get("/notifications/channels").await.json);
    let started = Instant::now();
    // Keep re-subscribing for 3 s (past the 2 s TTL); the other channel must die meanwhile.
    let mut last;
    assert!(eventually!(5 * SEC, {
        api.subscribe(&kept, &topic).await;
        last = expires_of(&api.get("/notifications/channels").await.json);
        started.elapsed() > 3 * SEC
    }));
    assert!(last > first, "expires moved forward");
    assert_eq!(
        api.head(&format!("/notifications/channels/{kept}"))
            .await
            .status,
        200
    );
    assert_eq!(
        api.head(&format!("/notifications/channels/{left}"))
            .await
            .status,
        404
    );
}

/// A second socket on the same channel kicks the first (one socket per channel).
#[actix_web::test]
async fn second_socket_kicks_the_first() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("BREAK").await;
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, &[format!("v2.users.{user}.presence")])
        .await;
    let mut first = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.counter("socketsOpened").await == 1
    ));
    let mut second = sim.connect(&uri).await;
    match first.wait_closed(5 * SEC).await {
        WsEvent::Closed(_) | WsEvent::Ended => {}
        other => panic!("first socket not kicked: {other:?}"),
    }
    assert_eq!(sim.counter("socketsKicked").await, 1);
    sim.set_presence(&user, "BREAK").await;
    assert!(second
        .wait_for(5 * SEC, |v| v["topicName"]
            .as_str()
            .is_some_and(|t| t.ends_with(".presence")))
        .await
        .is_some());
}

/// Events produced while no socket is connected are lost, not queued (at-most-once).
#[actix_web::test]
async fn no_delivery_while_no_socket_is_connected() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("BREAK").await;
    let topic = format!("v2.users.{user}.presence");
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, std::slice::from_ref(&topic)).await;
    let dropped = sim.counter("framesDroppedNoSocket").await;
    sim.set_presence(&user, "BREAK").await; // nobody listening
    assert!(sim.counter("framesDroppedNoSocket").await > dropped);
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    sim.set_presence(&user, "MEAL").await;
    let first = ws
        .wait_for(5 * SEC, |v| topic_is(v, &topic))
        .await
        .expect("live event");
    assert_eq!(
        first["eventBody"]["presenceDefinition"]["systemPresence"], "MEAL",
        "the BREAK event was not replayed"
    );
}

/// The activity event carries presence + routing + queues, upper snake (§5.4).
#[actix_web::test]
async fn activity_event_shape() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    let topic = format!("v2.users.{user}.activity");
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, std::slice::from_ref(&topic)).await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    sim.set_presence(&user, "ON_QUEUE").await;
    let a = ws
        .wait_for(5 * SEC, |v| {
            topic_is(v, &topic) && v["eventBody"]["routingStatus"]["status"] == "IDLE"
        })
        .await
        .expect("activity event");
    assert_envelope(&a);
    let b = &a["eventBody"];
    assert_eq!(b["id"], user.as_str());
    assert_eq!(
        b["presence"]["presenceDefinition"]["systemPresence"],
        "ON_QUEUE"
    );
    assert!(
        !arr(&b["activeQueueIds"]).is_empty(),
        "on queue: active queues listed"
    );
    assert_eq!(b["outOfOffice"]["active"], false);
}

/// One activity event per presence change, and none shows an impossible pair (off queue with routing other than OFF_QUEUE, or on queue with OFF_QUEUE).
#[actix_web::test]
async fn activity_events_are_consistent() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    let topic = format!("v2.users.{user}.activity");
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, std::slice::from_ref(&topic)).await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    let steps = ["ON_QUEUE", "BREAK", "AVAILABLE", "ON_QUEUE", "OFFLINE"];
    for sp in steps {
        sim.set_presence(&user, sp).await;
    }
    let mut seen = Vec::new();
    while seen.len() < steps.len() {
        let a = ws
            .wait_for(5 * SEC, |v| topic_is(v, &topic))
            .await
            .expect("activity event");
        let b = &a["eventBody"];
        let sp = b["presence"]["presenceDefinition"]["systemPresence"]
            .as_str()
            .unwrap()
            .to_string();
        let rs = b["routingStatus"]["status"].as_str().unwrap();
        assert_eq!(
            sp == "ON_QUEUE",
            rs != "OFF_QUEUE",
            "impossible pair {sp}/{rs}: {a}"
        );
        seen.push(sp);
    }
    assert_eq!(seen, steps, "one activity event per change, in order");
    // No extra activity event follows.
    ws.send_text(r#"{"message":"ping"}"#).await;
    let next = ws
        .wait_for(5 * SEC, |v| topic_is(v, &topic) || is_metadata(v))
        .await
        .expect("pong");
    assert!(is_metadata(&next), "an extra activity event: {next}");
}

/// With churn, conversation and conversationsummary events arrive in the envelope, and the conversation is readable by id.
#[actix_web::test]
async fn churn_produces_conversation_events_and_conversations() {
    let sim = TestSim::start(|c| c.agents = 20).await;
    let api = sim.api().await;
    let ids = ids_of(&api.get("/users?pageSize=20").await.json);
    let (ch, uri) = api.channel().await;
    let topics: Vec<String> = ids
        .iter()
        .map(|i| format!("v2.users.{i}?conversations&conversationsummary"))
        .collect();
    api.subscribe(&ch, &topics).await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    assert_eq!(
        sim.sim_post("/sim/churn", json!({"eventsPerSecond": 200}))
            .await
            .status,
        200
    );
    let conv = ws
        .wait_for(10 * SEC, |v| {
            v["topicName"]
                .as_str()
                .is_some_and(|t| t.ends_with(".conversations"))
        })
        .await
        .expect("conversation event");
    assert_envelope(&conv);
    let c = &conv["eventBody"];
    let parts = arr(&c["participants"]);
    let agent = parts
        .iter()
        .find(|p| p["purpose"] == "agent")
        .expect("agent participant");
    assert!(conv["topicName"]
        .as_str()
        .unwrap()
        .contains(agent["userId"].as_str().unwrap()));
    let summary = ws
        .wait_for(10 * SEC, |v| {
            v["topicName"]
                .as_str()
                .is_some_and(|t| t.ends_with(".conversationsummary"))
        })
        .await
        .expect("conversationsummary event");
    assert_envelope(&summary);
    assert!(summary["eventBody"]["call"]["contactCenter"]["active"].is_number());
    // The conversation is readable while the simulator still holds it.
    let id = c["id"].as_str().unwrap();
    let got = api.get(&format!("/conversations/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json["id"], id);
    date(&got.json["startTime"]);
    assert!(got.json["externalTag"]
        .as_str()
        .is_some_and(|t| t.starts_with("CRM-")));
    api.get("/conversations/00000000-0000-4000-8000-000000000000")
        .await
        .assert_error(404, "not.found");
    sim.sim_post("/sim/churn", json!({"eventsPerSecond": 0}))
        .await;
}

// ───────────────────────────── Analytics ─────────────────────────────

/// The conversation details query finds churned conversations by userId and externalTag within the interval only.
#[actix_web::test]
async fn analytics_conversation_details_filters() {
    let sim = TestSim::start(|c| c.agents = 20).await;
    let api = sim.api().await;
    sim.sim_post("/sim/churn", json!({"eventsPerSecond": 300}))
        .await;
    let mut conv;
    assert!(eventually!(10 * SEC, {
        conv = sim.state_users().await.into_iter().find_map(|u| {
            u["conversations"]
                .as_array()
                .and_then(|c| c.first())
                .map(|c| (u["id"].clone(), c.clone()))
        });
        conv.is_some()
    }));
    sim.sim_post("/sim/churn", json!({"eventsPerSecond": 0}))
        .await;
    let (user, conv_id) = conv.unwrap();
    let now = Utc::now();
    let interval = format!(
        "{}/{}",
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(1)).to_rfc3339()
    );
    let q = api
        .post("/analytics/conversations/details/query", json!({
            "interval": interval,
            "segmentFilters": [{"type": "and", "predicates": [{"dimension": "userId", "value": user}]}],
        }))
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    let convs = arr(&q.json["conversations"]);
    assert!(convs.iter().any(|c| c["conversationId"] == conv_id));
    for c in convs {
        assert!(
            arr(&c["participants"])
                .iter()
                .any(|p| p["purpose"] == "agent" && p["userId"] == user),
            "only that user's"
        );
    }
    let tag = api
        .get(&format!("/conversations/{}", conv_id.as_str().unwrap()))
        .await
        .json["externalTag"]
        .clone();
    let by_tag = api
        .post("/analytics/conversations/details/query", json!({
            "interval": interval,
            "conversationFilters": [{"type": "and", "predicates": [{"dimension": "externalTag", "value": tag}]}],
        }))
        .await
        .json;
    assert_eq!(by_tag["totalHits"], 1);
    assert_eq!(arr(&by_tag["conversations"])[0]["conversationId"], conv_id);
    let past = api
        .post(
            "/analytics/conversations/details/query",
            json!({"interval": "2020-01-01T00:00:00.000Z/2020-01-02T00:00:00.000Z"}),
        )
        .await
        .json;
    assert_eq!(past["totalHits"], 0);
}

/// The users details query returns the presence and routing history of the changes made, newest open-ended.
#[actix_web::test]
async fn analytics_user_details_history() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("ON_QUEUE").await;
    sim.set_presence(&user, "ON_QUEUE").await;
    sim.set_presence(&user, "BREAK").await;
    let now = Utc::now();
    let interval = format!(
        "{}/{}",
        (now - chrono::Duration::minutes(5)).to_rfc3339(),
        (now + chrono::Duration::minutes(5)).to_rfc3339()
    );
    let r = api
        .post("/analytics/users/details/query", json!({
            "interval": interval, "order": "asc",
            "userFilters": [{"type": "or", "predicates": [{"type": "dimension", "dimension": "userId", "operator": "matches", "value": user}]}],
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let details = arr(&r.json["userDetails"]);
    assert_eq!(details.len(), 1);
    let d = &details[0];
    assert_eq!(d["userId"], user.as_str());
    let pres: Vec<&str> = arr(&d["primaryPresence"])
        .iter()
        .map(|p| p["systemPresence"].as_str().unwrap())
        .collect();
    assert!(pres.ends_with(&["ON_QUEUE", "BREAK"]), "{pres:?}");
    let last = arr(&d["primaryPresence"]).last().unwrap();
    assert!(last.get("endTime").is_none(), "current record is open");
    assert_eq!(last["organizationPresenceId"], BREAK);
    let routing: Vec<&str> = arr(&d["routingStatus"])
        .iter()
        .map(|p| p["routingStatus"].as_str().unwrap())
        .collect();
    assert!(
        routing.ends_with(&["OFF_QUEUE", "IDLE", "OFF_QUEUE"]),
        "{routing:?}"
    );
    api.post("/analytics/users/details/query", json!({}))
        .await
        .assert_error(400, "bad.request");
    api.post(
        "/analytics/users/details/query",
        json!({"interval": "yesterday"}),
    )
    .await
    .assert_error(400, "invalid.date");
    api.post(
        "/analytics/users/details/query",
        json!({"interval": "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z"}),
    )
    .await
    .assert_error(400, "invalid.date");
}

// ───────────────────────────── Rate limits ─────────────────────────────

/// With 5 requests per minute the 6th gets 429, `Retry-After` seconds and the normalised §8.1 body; `inin-ratelimit-*` count up.
#[actix_web::test]
async fn rate_limit_sixth_call_is_429() {
    let sim = TestSim::start(|c| c.rate_limit_per_minute = 5).await;
    let api = sim.api().await;
    for n in 1..=5 {
        let r = api.get("/users?pageSize=1").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("inin-ratelimit-count"), Some(n.to_string()));
        assert_eq!(r.header("inin-ratelimit-allowed").as_deref(), Some("5"));
        let reset: u64 = r.header("inin-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset));
    }
    let r = api.get("/users?pageSize=1").await;
    r.assert_error(429, "too.many.requests.retry.after");
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&secs));
    assert_eq!(
        r.json["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds")
    );
    assert_eq!(sim.counter("rateLimited").await, 1);
    // The budget is per token.
    let fresh = sim.api().await;
    assert_eq!(fresh.get("/users?pageSize=1").await.status, 200);
}

// ───────────────────────────── Control API ─────────────────────────────

/// `GET /sim/state` has the contract's shape for every user, systemPresence upper snake.
#[actix_web::test]
async fn sim_state_shape() {
    let sim = TestSim::default().await;
    let users = sim.state_users().await;
    assert_eq!(users.len(), 500);
    let upper = [
        "AVAILABLE",
        "AWAY",
        "BUSY",
        "OFFLINE",
        "IDLE",
        "ON_QUEUE",
        "MEAL",
        "TRAINING",
        "MEETING",
        "BREAK",
    ];
    for u in &users {
        assert!(u["id"].is_string() && u["name"].is_string());
        assert!(u["division"]["id"].is_string() && u["division"]["name"].is_string());
        assert!(u["presence"]["definitionId"].is_string());
        assert!(upper.contains(&u["presence"]["systemPresence"].as_str().unwrap()));
        date(&u["presence"]["modifiedDate"]);
        assert!(u["routingStatus"]["status"].is_string());
        date(&u["routingStatus"]["startTime"]);
        assert!(u["conversations"].is_array());
        let on_queue = u["presence"]["systemPresence"] == "ON_QUEUE";
        assert_eq!(
            on_queue,
            u["routingStatus"]["status"] != "OFF_QUEUE",
            "routing follows presence: {u}"
        );
    }
}

/// `POST /sim/users/{id}/presence` takes a systemPresence or a definitionId, emits the event, and refuses bad input.
#[actix_web::test]
async fn sim_set_presence() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("MEAL").await;
    let (ch, uri) = api.channel().await;
    let topic = format!("v2.users.{user}.presence");
    api.subscribe(&ch, std::slice::from_ref(&topic)).await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    let r = sim.set_presence(&user, "MEAL").await;
    assert_eq!(
        r.json["presence"]["definitionId"], MEAL,
        "primary definition of MEAL"
    );
    let e = ws
        .wait_for(5 * SEC, |v| topic_is(v, &topic))
        .await
        .expect("event");
    assert_eq!(e["eventBody"]["presenceDefinition"]["id"], MEAL);
    let coaching = "b2e1d4c3-5a6f-4071-9b82-a3c4d5e6f708";
    let r = sim
        .sim_post(
            &format!("/sim/users/{user}/presence"),
            json!({"definitionId": coaching}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["presence"]["systemPresence"], "BUSY");
    let e = ws
        .wait_for(5 * SEC, |v| topic_is(v, &topic))
        .await
        .expect("event");
    assert_eq!(e["eventBody"]["presenceDefinition"]["id"], coaching);
    assert_eq!(
        e["eventBody"]["presenceDefinition"]["systemPresence"],
        "BUSY"
    );
    assert_eq!(
        api.get(&format!("/users/{user}/presences/purecloud"))
            .await
            .json["presenceDefinition"]["id"],
        coaching
    );
    let p = format!("/sim/users/{user}/presence");
    assert_eq!(
        sim.sim_post(&p, json!({"systemPresence": "NAPPING"}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.sim_post(&p, json!({"definitionId": "nope"}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.sim_post(
            &p,
            json!({"systemPresence": "BREAK", "definitionId": BREAK})
        )
        .await
        .status,
        400
    );
    assert_eq!(sim.sim_post(&p, json!({})).await.status, 400);
    assert_eq!(
        sim.request(Method::POST, &p, None, Body::Raw("{"))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.sim_post(
            "/sim/users/nobody/presence",
            json!({"systemPresence": "BREAK"})
        )
        .await
        .status,
        404
    );
}

/// `POST /sim/churn` starts background changes and 0 stops them.
#[actix_web::test]
async fn sim_churn_starts_and_stops() {
    let sim = TestSim::default().await;
    let emitted = sim.counter("eventsEmitted").await;
    let r = sim
        .sim_post("/sim/churn", json!({"eventsPerSecond": 100}))
        .await;
    assert_eq!(r.json["eventsPerSecond"], 100.0);
    assert!(eventually!(
        5 * SEC,
        sim.counter("eventsEmitted").await > emitted + 50
    ));
    sim.sim_post("/sim/churn", json!({"eventsPerSecond": 0}))
        .await;
    let settled = sim.counter("eventsEmitted").await;
    // Nothing more for half a second (polled, not slept through).
    let changed = eventually!(
        Duration::from_millis(500),
        sim.counter("eventsEmitted").await != settled
    );
    assert!(!changed, "churn stopped");
    assert_eq!(
        sim.sim_post("/sim/churn", json!({"eventsPerSecond": -1}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.sim_post("/sim/churn", json!({"rate": 1})).await.status,
        400
    );
}

/// Fault `drop_sockets`: sockets end without a close frame; the channel survives and a new socket works.
#[actix_web::test]
async fn fault_drop_sockets() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let (ch, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    assert_eq!(
        sim.fault(json!({"kind": "drop_sockets"})).await.json["affected"],
        1
    );
    match ws.wait_closed(5 * SEC).await {
        WsEvent::Ended => {}
        other => panic!("expected an abrupt end, got {other:?}"),
    }
    assert_eq!(
        api.head(&format!("/notifications/channels/{ch}"))
            .await
            .status,
        200
    );
    let mut again = sim.connect(&uri).await;
    again.send_text(r#"{"message":"ping"}"#).await;
    assert!(again.wait_for(5 * SEC, is_metadata).await.is_some());
}

/// Fault `socket_closing`: `v2.system.socket_closing` arrives, then the socket is closed after `seconds`.
#[actix_web::test]
async fn fault_socket_closing() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let (ch, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    let asked = Instant::now();
    sim.fault(json!({"kind": "socket_closing", "seconds": 0.5}))
        .await;
    let warn = ws
        .wait_for(5 * SEC, |v| topic_is(v, "v2.system.socket_closing"))
        .await
        .expect("warning");
    assert_envelope(&warn);
    assert_eq!(warn["eventBody"]["channelId"], ch.as_str());
    match ws.wait_closed(5 * SEC).await {
        WsEvent::Closed(Some(1001)) => {}
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(
        asked.elapsed() >= Duration::from_millis(450),
        "closed after the grace"
    );
    assert_eq!(
        api.head(&format!("/notifications/channels/{ch}"))
            .await
            .status,
        200,
        "safe to reconnect"
    );
}

/// Fault `heartbeat_stall`: no heartbeat, pong or event leaves for `seconds` (events are lost), then heartbeats resume.
#[actix_web::test]
async fn fault_heartbeat_stall() {
    let sim = TestSim::start(|c| c.heartbeat_secs = 0.1).await;
    let api = sim.api().await;
    let user = sim.user_not_in("BREAK").await;
    let (ch, uri) = api.channel().await;
    api.subscribe(&ch, &[format!("v2.users.{user}.presence")])
        .await;
    let mut ws = sim.connect(&uri).await;
    assert!(
        ws.wait_for(2 * SEC, is_metadata).await.is_some(),
        "heartbeats before"
    );
    sim.fault(json!({"kind": "heartbeat_stall", "seconds": 1.0}))
        .await;
    let stalled_at = Instant::now();
    ws.send_text(r#"{"message":"ping"}"#).await;
    sim.set_presence(&user, "BREAK").await;
    // Drain what was already in flight, then nothing until the stall ends.
    let first = ws.wait_for(3 * SEC, |_| true).await.expect("frames resume");
    let quiet = stalled_at.elapsed();
    assert!(
        quiet >= Duration::from_millis(900)
            || first["eventBody"]["message"] == "WebSocket Heartbeat"
                && quiet < Duration::from_millis(150),
        "first frame {first} after {quiet:?}"
    );
    assert!(eventually!(
        3 * SEC,
        !sim.sim_get("/sim/stats").await.json["stalled"]
            .as_bool()
            .unwrap()
    ));
    let next = ws
        .wait_for(3 * SEC, |_| true)
        .await
        .expect("frames after the stall");
    assert!(
        is_metadata(&next) && next["eventBody"]["message"] == "WebSocket Heartbeat",
        "no pong, no lost event: {next}"
    );
    assert!(stalled_at.elapsed() >= Duration::from_millis(900));
}

/// Fault `rate_limit`: the next `count` requests get 429 with `Retry-After`, then service resumes.
#[actix_web::test]
async fn fault_rate_limit() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    sim.fault(json!({"kind": "rate_limit", "count": 2})).await;
    for _ in 0..2 {
        let r = api.get("/users?pageSize=1").await;
        r.assert_error(429, "too.many.requests.retry.after");
        assert!(r
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok()));
    }
    assert_eq!(api.get("/users?pageSize=1").await.status, 200);
    assert_eq!(sim.counter("rateLimitedInjected").await, 2);
}

/// Fault `service_unavailable`: 503 `service.unavailable` ErrorBody for `count` requests, then 200.
#[actix_web::test]
async fn fault_service_unavailable() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    sim.fault(json!({"kind": "service_unavailable", "count": 1}))
        .await;
    api.get("/users?pageSize=1")
        .await
        .assert_error(503, "service.unavailable");
    assert_eq!(api.get("/users?pageSize=1").await.status, 200);
    // Time-bounded form.
    sim.fault(json!({"kind": "service_unavailable", "seconds": 0.3}))
        .await;
    assert_eq!(api.get("/users?pageSize=1").await.status, 503);
    assert!(eventually!(
        3 * SEC,
        api.get("/users?pageSize=1").await.status == 200
    ));
}

/// Fault `expire_tokens`: every token is refused (401) and its channels closed; a new token works.
#[actix_web::test]
async fn fault_expire_tokens() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let (ch, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    assert_eq!(
        sim.fault(json!({"kind": "expire_tokens"})).await.json["affected"],
        1
    );
    api.get("/users?pageSize=1")
        .await
        .assert_error(401, "credentials.expired");
    match ws.wait_closed(5 * SEC).await {
        WsEvent::Closed(Some(1008)) => {}
        other => panic!("expected close 1008, got {other:?}"),
    }
    let fresh = sim.api().await;
    assert_eq!(fresh.get("/users?pageSize=1").await.status, 200);
    assert_eq!(
        fresh
            .head(&format!("/notifications/channels/{ch}"))
            .await
            .status,
        404
    );
}

/// Fault `evict_channels`: channels vanish (HEAD 404) and their sockets get a close frame.
#[actix_web::test]
async fn fault_evict_channels() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let (ch, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    assert!(eventually!(
        2 * SEC,
        sim.sim_get("/sim/stats").await.json["sockets"] == 1
    ));
    assert_eq!(
        sim.fault(json!({"kind": "evict_channels"})).await.json["affected"],
        1
    );
    assert!(matches!(
        ws.wait_closed(5 * SEC).await,
        WsEvent::Closed(Some(1000))
    ));
    assert_eq!(
        api.head(&format!("/notifications/channels/{ch}"))
            .await
            .status,
        404
    );
    assert!(
        sim.client.ws(uri.as_str()).connect().await.is_err(),
        "the connectUri is dead"
    );
}

/// Fault `slow_responses`: the next `count` requests take at least `delayMs`, later ones do not.
#[actix_web::test]
async fn fault_slow_responses() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    sim.fault(json!({"kind": "slow_responses", "count": 1, "delayMs": 700}))
        .await;
    let t = Instant::now();
    assert_eq!(api.get("/users?pageSize=1").await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(api.get("/users?pageSize=1").await.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}

/// An unknown fault kind or a bad body is 400 on the control API.
#[actix_web::test]
async fn fault_bad_requests() {
    let sim = TestSim::default().await;
    assert_eq!(
        sim.sim_post("/sim/faults", json!({"kind": "meteor"}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.sim_post("/sim/faults", json!({"kind": "rate_limit", "seconds": -1}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.request(Method::POST, "/sim/faults", None, Body::Raw("not json"))
            .await
            .status,
        400
    );
}

// ───────────────────────────── Bad input ─────────────────────────────

/// Malformed JSON bodies get 400 `bad.request` ErrorBody on every JSON endpoint, never a 500.
#[actix_web::test]
async fn malformed_json_is_400_bad_request() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let user = sim.user_not_in("BREAK").await;
    let (ch, _) = api.channel().await;
    let targets = [
        (Method::PATCH, format!("/users/{user}/presences/purecloud")),
        (Method::PUT, "/users/presences/bulk".to_string()),
        (Method::PUT, format!("/users/{user}/routingstatus")),
        (
            Method::POST,
            format!("/notifications/channels/{ch}/subscriptions"),
        ),
        (
            Method::PUT,
            format!("/notifications/channels/{ch}/subscriptions"),
        ),
        (
            Method::POST,
            "/analytics/conversations/details/query".to_string(),
        ),
        (Method::POST, "/analytics/users/details/query".to_string()),
    ];
    for (m, p) in targets {
        for raw in ["{", "", "[1,2", "\"str\"", "nul"] {
            let r = api.send(m.clone(), &p, Body::Raw(raw)).await;
            assert_eq!(r.status, 400, "{m} {p} with {raw:?}: {}", r.text);
            r.assert_error(400, "bad.request");
        }
    }
    // A well-formed body of the wrong type is refused the same way.
    api.send(
        Method::PATCH,
        &format!("/users/{user}/presences/purecloud"),
        Body::Raw(r#"{"presenceDefinition": 5}"#),
    )
    .await
    .assert_error(400, "bad.request");
}

/// Bad query values get 400 `invalid.value` naming the value.
#[actix_web::test]
async fn bad_query_values_are_400_invalid_value() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    for p in [
        "/users?pageSize=abc",
        "/users?pageSize=0",
        "/users?pageNumber=-1",
        "/users?expand=presence,mood",
        "/presencedefinitions?deleted=maybe",
        "/presencedefinitions?pageSize=x",
        "/presence/definitions?deactivated=perhaps",
        "/notifications/channels?includechannels=everyone",
        "/routing/queues?pageNumber=0",
    ] {
        let r = api.get(p).await;
        r.assert_error(400, "invalid.value");
    }
}

/// Absurd page numbers give an empty page, never a panic or 500.
#[actix_web::test]
async fn huge_page_numbers_are_empty_pages() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let huge = u64::MAX;
    let queue = ids_of(&api.get("/routing/queues").await.json).remove(0);
    for p in [
        format!("/users?pageNumber={huge}"),
        format!("/presencedefinitions?pageNumber={huge}"),
        format!("/routing/queues?pageNumber={huge}"),
        format!("/routing/queues/{queue}/members?pageNumber={huge}"),
    ] {
        let r = api.get(&p).await;
        assert_eq!(r.status, 200, "{p}: {}", r.text);
        assert!(arr(&r.json["entities"]).is_empty(), "{p}");
    }
    let interval = "2020-01-01T00:00:00Z/2030-01-01T00:00:00Z";
    for p in [
        "/analytics/users/details/query",
        "/analytics/conversations/details/query",
    ] {
        let r = api
            .post(
                p,
                json!({"interval": interval, "paging": {"pageSize": 25, "pageNumber": huge}}),
            )
            .await;
        assert_eq!(r.status, 200, "{p}: {}", r.text);
    }
    // The simulator is still serving.
    assert_eq!(api.get("/users?pageSize=1").await.status, 200);
}

/// Unknown `/api/v2` paths are 404 `not.found` in the ErrorBody shape (after auth, as the real gateway does).
#[actix_web::test]
async fn unknown_paths_are_404() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    api.get("/interactions/query?externalId=1")
        .await
        .assert_error(404, "not.found");
    api.get("/users/me/presence/history")
        .await
        .assert_error(404, "not.found");
    sim.request(Method::GET, "/api/v2/interactions/query", None, Body::None)
        .await
        .assert_error(401, "authentication.required");
}

/// A WebSocket to an unknown channel is refused with 404; a non-JSON frame gets a `result 400` reply, not a dropped socket.
#[actix_web::test]
async fn websocket_bad_input() {
    let sim = TestSim::default().await;
    let api = sim.api().await;
    let err = sim
        .client
        .ws(format!(
            "ws://{}/channels/streaming-0-nope",
            sim.handle.addr
        ))
        .connect()
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, awc::error::WsClientError::InvalidResponseStatus(s) if s.as_u16() == 404),
        "{err:?}"
    );
    let (_, uri) = api.channel().await;
    let mut ws = sim.connect(&uri).await;
    ws.send_text("hello").await;
    let r = ws
        .wait_for(5 * SEC, |v| v.get("result").is_some())
        .await
        .expect("error reply");
    assert_eq!(r["result"], "400");
    ws.send_text(r#"{"message":"ping"}"#).await;
    assert!(
        ws.wait_for(5 * SEC, is_metadata).await.is_some(),
        "socket still up"
    );
}
