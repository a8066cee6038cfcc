//! The served OpenAPI description (`GET /api/v1/openapi.json`) against
//! the route table, both ways: every route the table registers is described
//! (method and path), every described operation is a route of the table,
//! and what the table decides is what the description states (security,
//! `x-required-role`, the refusals that follow). Auth on and auth off, with
//! a real gateway and the simulator on loopback. The schema-driven fuzzing
//! of the same description is `tests/openapi/run.sh` (Schemathesis).

mod e2e;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{client, wait_until};
use presence_gateway::app::{self, Gateway};
use presence_gateway::auth::{ApiKeyConfig, Role};
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::http::openapi::{self, Facts};
use presence_gateway::http::table::{endpoints, Access};
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use serde_json::Value;

async fn start(auth: bool) -> (SimHandle, Gateway) {
    let sim_cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents: 20,
        ..SimConfig::default()
    };
    let sim = simulator::start(sim_cfg.clone())
        .await
        .expect("simulator starts");
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.workers = 1;
    cfg.store.path = ":memory:".into();
    if auth {
        cfg.auth.api_keys = vec![ApiKeyConfig {
            name: "viewer".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            role: Role::Viewer,
            divisions: vec![],
        }];
    }
    cfg.genesys = GenesysConfig {
        api_base: Some(sim.base_url()),
        client_id: sim_cfg.client_id.clone(),
        client_secret: sim_cfg.client_secret.clone(),
        ..GenesysConfig::default()
    };
    cfg.validate().expect("valid config");
    let gw = app::start(cfg).await.expect("gateway starts");
    let url = format!("{}/readyz", gw.base_url());
    wait_until(Duration::from_secs(30), "gateway ready", || {
        let url = url.clone();
        async move {
            let r = client().get(url).send().await.map_err(|e| e.to_string())?;
            r.status()
                .is_success()
                .then_some(())
                .ok_or_else(|| r.status().to_string())
        }
    })
    .await;
    (sim, gw)
}

async fn served(gw: &Gateway) -> Value {
    let mut r = client()
        .get(format!("{}/api/v1/openapi.json", gw.base_url()))
        .send()
        .await
        .expect("GET openapi.json");
    assert_eq!(r.status(), 200, "openapi.json is public");
    r.json::<Value>().limit(4 << 20).await.expect("JSON")
}

/// `(METHOD, path)` of every operation of a description.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (m, _) in item.as_object().expect("a path item") {
            out.insert((m.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

fn table() -> BTreeSet<(String, String)> {
    endpoints()
        .iter()
        .map(|e| (e.method.as_str().to_owned(), e.path.to_owned()))
        .collect()
}

/// Both ways, on the served document: no route without a description, no
/// description without a route.
fn same_routes(doc: &Value) {
    let described = operations(doc);
    let routes = table();
    let undescribed: Vec<_> = routes.difference(&described).collect();
    let phantom: Vec<_> = described.difference(&routes).collect();
    assert!(
        undescribed.is_empty(),
        "routes without a description: {undescribed:?}"
    );
    assert!(phantom.is_empty(), "described but not routes: {phantom:?}");
}

#[actix_web::test]
async fn description_matches_the_route_table_with_auth_on() {
    let (sim, gw) = start(true).await;
    let doc = served(&gw).await;
    assert_eq!(doc["openapi"], "3.1.0");
    same_routes(&doc);
    for e in endpoints() {
        let op = &doc["paths"][e.path][e.method.as_str().to_ascii_lowercase()];
        let what = format!("{} {}", e.method, e.path);
        match e.access.required(false) {
            None => {
                assert_eq!(op["security"], serde_json::json!([]), "{what}: public");
                assert!(op.get("x-required-role").is_none(), "{what}");
            }
            Some(role) => {
                assert_eq!(op["x-required-role"], role.as_str(), "{what}");
                let schemes: Vec<&str> = op["security"]
                    .as_array()
                    .expect("security")
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                    .collect();
                assert_eq!(schemes, ["apiKey", "jwt"], "{what}: bearer schemes");
                for code in ["401", "403"] {
                    assert_eq!(
                        op["responses"][code]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{what}: {code} is the JSON error"
                    );
                }
            }
        }
        if e.access == Access::Metrics {
            assert_eq!(op["x-required-role"], "admin", "{what}");
        }
        // Every error status an operation lists is the one JSON error,
        // except 431, which the HTTP/1 parser answers (empty body).
        assert!(op["responses"]["431"]["content"].is_null(), "{what}: 431");
        for (code, resp) in op["responses"].as_object().expect("responses") {
            if (code.starts_with('4') || code.starts_with('5')) && code != "431" {
                assert_eq!(
                    resp["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{what}: {code}"
                );
            }
        }
    }
    let patch = &doc["paths"]["/api/v1/agents/{id}/presence"]["patch"];
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["$ref"].as_str())
        .collect();
    assert!(params.contains(&"#/components/parameters/IfMatch"));
    assert!(params.contains(&"#/components/parameters/IdempotencyKey"));
    assert!(patch["responses"]["412"].is_object());
    assert!(
        doc["paths"]["/api/v1/agents/{id}"]["get"]["responses"]["200"]["headers"]["ETag"]
            .is_object()
    );
    // The directory's divisions are the `division` enum once synced.
    let div = &doc["paths"]["/api/v1/agents"]["get"]["parameters"][0];
    assert_eq!(div["name"], "division");
    assert!(
        div["schema"]["items"]["enum"].as_array().unwrap().len() > 1,
        "{div}"
    );
    gw.stop().await;
    sim.stop().await;
}

#[actix_web::test]
async fn with_auth_off_no_operation_needs_a_credential() {
    let (sim, gw) = start(false).await;
    let doc = served(&gw).await;
    same_routes(&doc);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            assert_eq!(op["security"], serde_json::json!([]), "{m} {path}");
            assert!(op["responses"].get("401").is_none(), "{m} {path}");
        }
    }
    gw.stop().await;
    sim.stop().await;
}

/// What Schemathesis found, kept fixed: a `queues` value on a stream and a
/// `format` value on history other than the documented ones are a 400
/// naming the parameter (they were silently ignored); `leaseSeconds: 60.0`
/// (a JSON Schema integer) is taken as 60 s (it was a 400); the extreme
/// dates of the issue are 400s, never a panic.
#[actix_web::test]
async fn fuzzer_findings_stay_fixed() {
    let (sim, gw) = start(false).await;
    let base = gw.base_url();
    let http = client();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let mut r = http.get(url).send().await.expect("GET");
            let v: Value = r.json().limit(4 << 20).await.unwrap_or(Value::Null);
            (r.status().as_u16(), v)
        }
    };
    let (_, snap) = get("/api/v1/agents".into()).await;
    let id = snap["agents"][0]["id"]
        .as_str()
        .expect("an agent")
        .to_owned();
    for (path, param) in [
        ("/api/v1/stream?queues=maybe".to_owned(), "queues"),
        (format!("/api/v1/agents/{id}/history?format=xml"), "format"),
        (
            format!("/api/v1/agents/{id}/history?to=-262143-01-01"),
            "to",
        ),
        (
            format!("/api/v1/agents/{id}/summary?date=%2B262142-12-31"),
            "date",
        ),
    ] {
        let (status, v) = get(path.clone()).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["error"], "bad_parameter", "{path}: {v}");
        assert_eq!(v["parameter"], param, "{path}: {v}");
    }
    let mut r = http
        .patch(format!("{base}/api/v1/agents/{id}/presence"))
        .insert_header(("If-Match", "*"))
        .send_json(&serde_json::json!({"presence": "BREAK", "leaseSeconds": 60.0}))
        .await
        .expect("PATCH");
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(r.status(), 200, "{v}");
    assert!(v["leaseExpiresAt"].is_string(), "{v}");
    gw.stop().await;
    sim.stop().await;
}

/// The document is built from the table: every row has a description
/// (building panics otherwise), for any facts.
#[test]
fn every_table_row_is_described() {
    let doc = openapi::document(&Facts::default());
    same_routes(&doc);
}
