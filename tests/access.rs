//! Access control, tried as an attacker would: the access matrix generated
//! from the route table (every route × method × caller × path spelling), a
//! fuzz test over generated paths without credentials, and one test per
//! way around the guard that was found before (issue 13): percent-encoded
//! paths and ids, tag search under scope and redaction, JWT claims,
//! per-caller idempotency keys, origins, `HEAD` and `OPTIONS`.

mod e2e;

use std::time::Duration;

use actix_web::http::Method;
use e2e::{client, wait_until};
use presence_gateway::app::{self, Gateway};
use presence_gateway::auth::{ApiKeyConfig, JwtConfig, Role};
use presence_gateway::config::Config;
use presence_gateway::genesys::GenesysConfig;
use presence_gateway::http::table::{allowed_methods, endpoints, Access, Scope};
use presence_gateway::simulator::{self, SimConfig, SimHandle};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const ORIGIN: &str = "https://wall.example";
const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The callers of the matrix: `(label, bearer key, role, scoped to the
/// first division)`.
const CALLERS: [(&str, Option<&str>, Option<Role>, bool); 7] = [
    ("none", None, None, false),
    ("viewer", Some("k-viewer"), Some(Role::Viewer), false),
    (
        "supervisor",
        Some("k-supervisor"),
        Some(Role::Supervisor),
        false,
    ),
    ("admin", Some("k-admin"), Some(Role::Admin), false),
    (
        "scoped-viewer",
        Some("k-s-viewer"),
        Some(Role::Viewer),
        true,
    ),
    (
        "scoped-supervisor",
        Some("k-s-supervisor"),
        Some(Role::Supervisor),
        true,
    ),
    ("scoped-admin", Some("k-s-admin"), Some(Role::Admin), true),
];

fn sha(key: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Env {
    /// One client for the whole test (pooled connections).
    http: awc::Client,
    sim: SimHandle,
    gw: Gateway,
    /// An agent of the scoped callers' division, and one of another.
    own: String,
    foreign: String,
    /// The scoped callers' division.
    div: String,
}

impl Env {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Env {
        // The matrix reads interaction context through REST a few hundred
        // times: a budget large enough that access, not pacing, is tested.
        let sim_cfg = SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            agents: 30,
            heartbeat_secs: 0.5,
            rate_limit_per_minute: 20_000,
            ..SimConfig::default()
        };
        let sim = simulator::start(sim_cfg.clone())
            .await
            .expect("simulator starts");
        let state = e2e::get(format!("{}/sim/state", sim.base_url())).await;
        let users = state["users"].as_array().unwrap();
        let div = users[0]["division"]["id"].as_str().unwrap().to_owned();
        let own = users[0]["id"].as_str().unwrap().to_owned();
        let foreign = users
            .iter()
            .find(|u| u["division"]["id"] != json!(div))
            .expect("the simulated org has several divisions")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.workers = 1;
        cfg.server.allowed_origins = vec![ORIGIN.into()];
        cfg.store.path = ":memory:".into();
        cfg.upstream.rate_per_minute = 20_000;
        cfg.upstream.client_share = 0.9;
        cfg.interactions.redact_customer = true;
        cfg.auth.api_keys = CALLERS
            .iter()
            .filter_map(|(name, key, role, scoped)| {
                Some(ApiKeyConfig {
                    name: (*name).into(),
                    sha256: sha((*key)?),
                    role: (*role)?,
                    divisions: if *scoped { vec![div.clone()] } else { vec![] },
                })
            })
            .collect();
        cfg.auth.jwt = Some(JwtConfig {
            hs256_secret: Some(JWT_SECRET.into()),
            issuer: Some("https://idp.example".into()),
            audience: Some("presence-gateway".into()),
            ..JwtConfig::default()
        });
        cfg.genesys = GenesysConfig {
            api_base: Some(sim.base_url()),
            client_id: sim_cfg.client_id.clone(),
            client_secret: sim_cfg.client_secret.clone(),
            ..GenesysConfig::default()
        };
        tweak(&mut cfg);
        cfg.validate().expect("valid config");
        let gw = app::start(cfg).await.expect("gateway starts");
        let env = Env {
            http: client(),
            sim,
            gw,
            own,
            foreign,
            div,
        };
        let url = env.url("/readyz");
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
        env
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.gw.base_url(), path)
    }

    /// Sends `method path` with an optional bearer and body; returns the
    /// status, the headers and the body as JSON (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, awc::http::header::HeaderMap, Value) {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(b) = bearer {
            req = req.insert_header(("Authorization", format!("Bearer {b}")));
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut resp = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let streaming = h
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let v = if streaming || method == Method::HEAD {
            Value::Null
        } else {
            let b = resp.body().limit(16 << 20).await.unwrap_or_default();
            serde_json::from_slice(&b).unwrap_or(Value::Null)
        };
        (status, h, v)
    }
}

/// The spellings of a concrete path that the router treats as the same
/// path: plain, and each segment with its first character percent-encoded
/// (lower- and upper-case hex).
fn same_spellings(path: &str) -> Vec<String> {
    let mut out = vec![path.to_owned()];
    let segs: Vec<&str> = path.split('/').collect();
    for (i, s) in segs.iter().enumerate() {
        let Some(c) = s.chars().next() else { continue };
        for hex in [format!("%{:02x}", c as u32), format!("%{:02X}", c as u32)] {
            let mut v = segs.clone();
            let enc = format!("{hex}{}", &s[c.len_utf8()..]);
            v[i] = &enc;
            let p = v.join("/");
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Spellings that name no route: double slash, trailing slash, dot
/// segments, a segment in upper case.
fn other_spellings(path: &str) -> Vec<String> {
    let mut out = vec![
        path.replacen('/', "//", 1),
        format!("{path}/"),
        format!("{path}/."),
    ];
    if let Some((head, last)) = path.rsplit_once('/') {
        out.push(format!(
            "{head}/../{}/{last}",
            head.rsplit('/').next().unwrap_or("")
        ));
        if last.chars().any(|c| c.is_ascii_lowercase()) {
            out.push(format!("{head}/{}", last.to_ascii_uppercase()));
        }
    }
    if path == "/" {
        out.clear();
    }
    out
}

/// What the table declares for a caller on an endpoint: `Some(status)` for a
/// refusal, `None` for "reaches the handler".
fn declared(
    access: Access,
    scope: Scope,
    caller: (Option<Role>, bool),
    foreign_agent: bool,
) -> Option<u16> {
    let need = access.required(false)?;
    let (role, scoped) = caller;
    let Some(role) = role else { return Some(401) };
    if role < need {
        return Some(403);
    }
    match (scope, scoped) {
        (Scope::Unscoped, true) => Some(403),
        (Scope::AgentPath, true) if foreign_agent => Some(404),
        _ => None,
    }
}

/// A request body the handler refuses (so that no write happens) but only
/// after the policy let it through.
fn harmless_body(method: &Method) -> Option<Value> {
    (*method == Method::PATCH || *method == Method::POST).then(|| json!({"nonsense": true}))
}

/// Every route of the table × method (`HEAD` for every `GET`) × caller ×
/// path spelling gives exactly the answer the table declares: refusals with
/// their status, everything else reaching the handler; spellings that are
/// not the route's are 404 for everyone.
#[actix_web::test]
async fn access_matrix_from_the_route_table() {
    let env = Env::start(|_| {}).await;
    let mut checked = 0usize;
    let mut failures = Vec::new();
    for e in endpoints() {
        let mut methods = vec![e.method.clone()];
        if e.method == Method::GET {
            methods.push(Method::HEAD);
        }
        let ids: Vec<(String, bool)> = if e.path.contains("{id}") {
            vec![
                (e.path.replace("{id}", &env.own), false),
                (e.path.replace("{id}", &env.foreign), true),
            ]
        } else {
            vec![(e.path.replace("{name}", "no-such-hook"), false)]
        };
        for (path, foreign) in &ids {
            for m in &methods {
                for (label, key, role, scoped) in CALLERS {
                    let want = declared(e.access, e.scope, (role, scoped), *foreign);
                    for spelling in same_spellings(path) {
                        let (got, _, body) = env
                            .call(m.clone(), &spelling, key, &[], harmless_body(m).as_ref())
                            .await;
                        checked += 1;
                        let ok = match want {
                            Some(s) => got == s,
                            None => {
                                !(matches!(got, 401 | 403)
                                    || (e.scope == Scope::AgentPath && got == 404))
                            }
                        };
                        if !ok {
                            failures.push(format!(
                                "{m} {spelling} as {label}: got {got} {body}, declared {want:?}"
                            ));
                        }
                    }
                    // (A spelling that names another route, e.g. `{id}` = ".",
                    // is that route's business, covered by its own rows.)
                    for spelling in other_spellings(path)
                        .into_iter()
                        .filter(|p| allowed_methods(p).is_empty())
                    {
                        let (got, _, _) = env
                            .call(m.clone(), &spelling, key, &[], harmless_body(m).as_ref())
                            .await;
                        checked += 1;
                        if !matches!(got, 404 | 405) || (200..300).contains(&got) {
                            failures.push(format!(
                                "{m} {spelling} as {label}: got {got}, declared 404 (not this route)"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "the matrix is the whole table ({checked})");
    assert!(
        failures.is_empty(),
        "{} of {checked} answers differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    env.gw.stop().await;
    env.sim.stop().await;
}

/// No request without credentials gets a 2xx on a protected route, however
/// its path is spelled: 3 000 paths generated from the table's protected
/// patterns with random percent-encoding, case changes, extra slashes,
/// dot segments, `;` parameters, encoded slashes and random ids, under
/// every method (fixed seed: the same paths every run).
#[actix_web::test]
async fn no_unauthenticated_2xx_on_generated_paths() {
    let env = Env::start(|_| {}).await;
    let protected: Vec<_> = endpoints()
        .iter()
        .filter(|e| e.access != Access::Public)
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PATCH,
        Method::PUT,
        Method::DELETE,
    ];
    let ids = [
        env.own.as_str(),
        env.foreign.as_str(),
        "x",
        "..",
        "%2e%2e",
        "a%2Fb",
        "é",
    ];
    let mut bad = Vec::new();
    for _ in 0..3000 {
        let e = protected[rng.random_range(0..protected.len())];
        let id = ids[rng.random_range(0..ids.len())];
        let base = e.path.replace("{id}", id).replace("{name}", "hook");
        let mut p = String::new();
        for c in base.chars() {
            match rng.random_range(0..10) {
                0 if c != '/' => p.push_str(&format!("%{:02X}", c as u32 & 0x7f)),
                1 if c.is_ascii_alphabetic() => p.push(c.to_ascii_uppercase()),
                2 if c == '/' => {
                    p.push_str(["//", "/./", "/a/../", "/;x/"][rng.random_range(0..4)])
                }
                _ => {
                    if c.is_ascii() {
                        p.push(c)
                    } else {
                        for b in c.to_string().bytes() {
                            p.push_str(&format!("%{b:02X}"));
                        }
                    }
                }
            }
        }
        if rng.random_bool(0.2) {
            p.push('/');
        }
        if rng.random_bool(0.2) {
            p.push_str("?ticket=forged&agent=x");
        }
        let m = methods[rng.random_range(0..methods.len())].clone();
        let (status, _, _) = env.call(m.clone(), &p, None, &[], None).await;
        if (200..300).contains(&status) {
            bad.push(format!("{m} {p} → {status}"));
        }
    }
    assert!(bad.is_empty(), "unauthenticated 2xx:\n{}", bad.join("\n"));
    env.gw.stop().await;
    env.sim.stop().await;
}

impl Env {
    /// The simulator's truth for one user.
    async fn sim_user(&self, id: &str) -> Value {
        let s = e2e::get(format!("{}/sim/state", self.sim.base_url())).await;
        s["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == json!(id))
            .cloned()
            .expect("user in /sim/state")
    }

    async fn audit(&self, key: &str) -> Vec<Value> {
        let (s, _, v) = self
            .call(
                Method::GET,
                "/api/v1/audit?limit=1000",
                Some(key),
                &[],
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["records"].as_array().unwrap().clone()
    }
}

fn enc_first(id: &str) -> String {
    let c = id.chars().next().unwrap();
    format!("%{:02x}{}", c as u32, &id[c.len_utf8()..])
}

/// Percent-encoded paths reach nothing without credentials: reads are 401,
/// a presence change is 401 and Genesys is untouched, no anonymous ticket
/// is issued, and a viewer cannot read the admin-only audit log by
/// encoding its path.
#[actix_web::test]
async fn encoded_paths_do_not_walk_past_authentication() {
    let env = Env::start(|_| {}).await;
    for p in ["/%61pi/v1/agents", "/%6detrics", "/api/v1/%61udit"] {
        let (s, _, v) = env.call(Method::GET, p, None, &[], None).await;
        assert_eq!(s, 401, "{p}: {v}");
        assert_eq!(v["error"], "unauthenticated", "{p}: {v}");
    }
    let before = env.sim_user(&env.own).await["presence"].clone();
    let path = format!("/%61pi/v1/agents/{}/presence", env.own);
    let (s, _, _) = env
        .call(
            Method::PATCH,
            &path,
            None,
            &[],
            Some(&json!({"presence": "MEETING", "force": true})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _, _) = env
        .call(Method::POST, "/%61pi/v1/tickets", None, &[], None)
        .await;
    assert_eq!(s, 401);
    let (s, _, v) = env
        .call(Method::GET, "/api/v1/%61udit", Some("k-viewer"), &[], None)
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(env.sim_user(&env.own).await["presence"], before);
    assert!(
        env.audit("k-admin")
            .await
            .iter()
            .all(|r| !r["actor"].as_str().unwrap().starts_with("anonymous")),
        "no anonymous write attempt reached the write path"
    );
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Division scope holds at the data: a foreign agent is the same 404 as an
/// unknown one under any spelling (reads, history, summary, writes); bulk
/// reports a foreign agent as not found and changes only the caller's own;
/// a scoped admin's audit holds only its divisions' agents; the snapshot
/// holds only its divisions.
#[actix_web::test]
async fn division_scope_is_applied_at_the_data() {
    let env = Env::start(|_| {}).await;
    let (_, _, unknown) = env
        .call(
            Method::GET,
            "/api/v1/agents/no-such-agent",
            Some("k-s-viewer"),
            &[],
            None,
        )
        .await;
    for suffix in ["", "/history", "/summary", "/interactions"] {
        for id in [env.foreign.clone(), enc_first(&env.foreign)] {
            let p = format!("/api/v1/agents/{id}{suffix}");
            let (s, _, v) = env
                .call(Method::GET, &p, Some("k-s-viewer"), &[], None)
                .await;
            assert_eq!(s, 404, "{p}: {v}");
            assert_eq!(v["error"], unknown["error"], "{p}: {v}");
        }
        let p = format!("/api/v1/agents/{}{suffix}", enc_first(&env.own));
        let (s, _, v) = env
            .call(Method::GET, &p, Some("k-s-viewer"), &[], None)
            .await;
        assert!(
            s == 200 || (suffix == "/summary" && s == 400),
            "{p}: {s} {v}"
        );
    }
    let foreign_before = env.sim_user(&env.foreign).await["presence"].clone();
    let p = format!("/api/v1/agents/{}/presence", enc_first(&env.foreign));
    let (s, _, v) = env
        .call(
            Method::PATCH,
            &p,
            Some("k-s-supervisor"),
            &[],
            Some(&json!({"presence": "MEETING"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let body = json!({"changes": [
        {"agent": env.foreign, "presence": "MEETING"},
        {"agent": env.own, "presence": "MEETING"},
    ]});
    let (s, _, v) = env
        .call(
            Method::POST,
            "/api/v1/presence/%62ulk",
            Some("k-s-supervisor"),
            &[],
            Some(&body),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["status"], 404, "{v}");
    assert_eq!(v["results"][0]["error"], "agent_not_found", "{v}");
    assert_eq!(v["results"][1]["status"], 200, "{v}");
    assert_eq!(
        env.sim_user(&env.own).await["presence"]["systemPresence"],
        "MEETING"
    );
    assert_eq!(env.sim_user(&env.foreign).await["presence"], foreign_before);
    // An unscoped admin's write to the foreign agent is in the audit log,
    // but not in the scoped admin's view of it.
    let p = format!("/api/v1/agents/{}/presence", env.foreign);
    let (s, _, v) = env
        .call(
            Method::PATCH,
            &p,
            Some("k-admin"),
            &[],
            Some(&json!({"presence": "BREAK"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let all = env.audit("k-admin").await;
    assert!(
        all.iter().any(|r| r["agentId"] == json!(env.foreign)),
        "{all:?}"
    );
    // The scoped supervisor's PATCH at the foreign agent, refused by the
    // route policy, is audited like any refused write (visible to the
    // unscoped admin only).
    assert!(
        all.iter().any(|r| r["agentId"] == json!(env.foreign)
            && r["actor"] == "scoped-supervisor"
            && r["result"] == "agent_not_found"
            && r["status"] == 404),
        "{all:?}"
    );
    let mine = env.audit("k-s-admin").await;
    assert!(!mine.is_empty());
    assert!(
        mine.iter().all(|r| r["agentId"] == json!(env.own)),
        "{mine:?}"
    );
    let (_, _, snap) = env
        .call(Method::GET, "/api/v1/agents", Some("k-s-viewer"), &[], None)
        .await;
    let agents = snap["agents"].as_array().unwrap();
    assert!(!agents.is_empty());
    assert!(
        agents.iter().all(|a| a["division"]["id"] == json!(env.div)),
        "{snap}"
    );
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Tag search honours scope and redaction: a scoped viewer does not see a
/// conversation of another division's agent; an unscoped viewer sees it
/// with the customer's name and every address removed.
#[actix_web::test]
async fn tag_search_is_scoped_and_redacted() {
    let env = Env::start(|_| {}).await;
    let tag = {
        let mut inner = env.sim.sim.inner.lock();
        let u = inner.user_idx(&env.foreign).unwrap();
        presence_gateway::simulator::conversations::offer(&mut inner, u);
        let c = inner.org.users[u].conversations[0].clone();
        inner.conversations[&c].external_tag.clone()
    };
    let p = format!("/api/v1/interactions?externalTag={tag}");
    let (s, _, v) = env
        .call(Method::GET, &p, Some("k-s-viewer"), &[], None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversations"], json!([]), "{v}");
    let (s, _, v) = env.call(Method::GET, &p, Some("k-viewer"), &[], None).await;
    assert_eq!(s, 200, "{v}");
    let convs = v["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1, "{v}");
    let text = v.to_string();
    for f in ["\"ani\"", "\"dnis\"", "addressFrom", "addressTo"] {
        assert!(!text.contains(f), "{f} left in {text}");
    }
    for part in convs[0]["participants"].as_array().unwrap() {
        if part["purpose"] == "customer" {
            assert_eq!(part["participantName"], Value::Null, "{part}");
            assert_eq!(part["redacted"], true, "{part}");
        }
    }
    env.gw.stop().await;
    env.sim.stop().await;
}

/// An HS256 JWT with any header and claims (jsonwebtoken cannot write `crit`).
fn jwt(header: Value, claims: Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, JWT_SECRET.as_bytes());
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

/// JWTs over HTTP: a good token reads; `nbf` an hour ahead, a missing
/// required `iss` or `aud`, an expired token and an unknown `crit` header
/// are each a 401 that says why.
#[actix_web::test]
async fn jwt_claims_are_enforced() {
    let env = Env::start(|_| {}).await;
    let now = chrono::Utc::now().timestamp();
    let head = json!({"alg": "HS256", "typ": "JWT"});
    let good = json!({"sub": "jo", "role": "viewer", "exp": now + 600,
        "iss": "https://idp.example", "aud": "presence-gateway"});
    let (s, _, v) = env
        .call(
            Method::GET,
            "/api/v1/agents",
            Some(&jwt(head.clone(), good.clone())),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut cases = Vec::new();
    let mut c = good.clone();
    c["nbf"] = json!(now + 3600);
    cases.push(("nbf ahead", jwt(head.clone(), c)));
    for k in ["iss", "aud"] {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        cases.push((k, jwt(head.clone(), c)));
    }
    let mut c = good.clone();
    c["exp"] = json!(now - 3600);
    cases.push(("expired", jwt(head.clone(), c)));
    let crit = json!({"alg": "HS256", "typ": "JWT", "crit": ["x-ext"], "x-ext": true});
    cases.push(("crit", jwt(crit, good)));
    for (what, tok) in cases {
        let (s, _, v) = env
            .call(Method::GET, "/api/v1/agents", Some(&tok), &[], None)
            .await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(v["error"], "unauthenticated", "{what}: {v}");
    }
    env.gw.stop().await;
    env.sim.stop().await;
}

/// `Idempotency-Key`s belong to their caller: another supervisor reusing a
/// key gets its own write (audited under its name), not the first answer;
/// a key with a byte outside visible ASCII is a 400, never ignored.
#[actix_web::test]
async fn idempotency_keys_are_per_caller() {
    let env = Env::start(|_| {}).await;
    let p = format!("/api/v1/agents/{}/presence", env.own);
    let body = json!({"presence": "BREAK"});
    let key = [("Idempotency-Key", "same-key-1")];
    let (s, h, v) = env
        .call(Method::PATCH, &p, Some("k-supervisor"), &key, Some(&body))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(h.get("Idempotent-Replayed").is_none());
    let (s, h, _) = env
        .call(Method::PATCH, &p, Some("k-supervisor"), &key, Some(&body))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        h.get("Idempotent-Replayed").unwrap(),
        "true",
        "same caller: replayed"
    );
    let (s, h, v) = env
        .call(Method::PATCH, &p, Some("k-s-supervisor"), &key, Some(&body))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        h.get("Idempotent-Replayed").is_none(),
        "another caller is not replayed"
    );
    let audit = env.audit("k-admin").await;
    assert!(
        audit
            .iter()
            .any(|r| r["actor"] == "scoped-supervisor" && r["agentId"] == json!(env.own)),
        "the second caller's write is audited: {audit:?}"
    );
    let mut req = client()
        .patch(env.url(&p))
        .insert_header(("Authorization", "Bearer k-supervisor"));
    req = req.insert_header((
        "Idempotency-Key",
        awc::http::header::HeaderValue::from_bytes(b"k\xe9y").unwrap(),
    ));
    let mut r = req.send_json(&body).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "bad_idempotency_key", "{v}");
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Origins and HTTP: an `Origin` equal to a forged `Host` is refused (DNS
/// rebinding); the listen address's own origin is allowed; every answer to
/// an allowed origin carries CORS headers, refusals included; `OPTIONS` is
/// answered before auth from the route table; `HEAD` works on `GET`
/// routes; the client module loads from any origin.
#[actix_web::test]
async fn origins_cors_options_and_head() {
    let env = Env::start(|_| {}).await;
    let port = env.gw.addr.port();
    let evil = format!("evil.example:{port}");
    let (s, _, v) = env
        .call(
            Method::GET,
            "/api/v1/agents",
            Some("k-viewer"),
            &[("Host", &evil), ("Origin", &format!("http://{evil}"))],
            None,
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"], "origin_not_allowed");
    let own = format!("http://127.0.0.1:{port}");
    let (s, _, _) = env
        .call(
            Method::GET,
            "/api/v1/agents",
            Some("k-viewer"),
            &[("Origin", &own)],
            None,
        )
        .await;
    assert_eq!(s, 200);
    let o = [("Origin", ORIGIN)];
    for (m, p, key, want) in [
        (Method::GET, "/api/v1/agents", None, 401),
        (Method::GET, "/api/v1/audit", Some("k-viewer"), 403),
        (Method::GET, "/api/v1/agents/nope", Some("k-viewer"), 404),
        (
            Method::GET,
            "/api/v1/agents?presence=NOPE",
            Some("k-viewer"),
            400,
        ),
        (Method::GET, "/api/v1/agents", Some("k-viewer"), 200),
    ] {
        let (s, h, v) = env.call(m, p, key, &o, None).await;
        assert_eq!(s, want, "{p}: {v}");
        assert_eq!(
            h.get("access-control-allow-origin").unwrap(),
            ORIGIN,
            "{p} {s}"
        );
    }
    let mut r = client()
        .post(env.url("/api/v1/presence/bulk"))
        .insert_header(("Origin", ORIGIN))
        .insert_header(("Authorization", "Bearer k-supervisor"))
        .send_body(vec![b'x'; 70_000])
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        ORIGIN
    );
    let _ = r.body().await;
    let p = format!("/api/v1/agents/{}/presence", env.own);
    let (s, h, _) = env.call(Method::OPTIONS, &p, None, &[], None).await;
    assert_eq!(s, 204);
    assert_eq!(h.get("allow").unwrap(), "PATCH, OPTIONS");
    let (s, h, _) = env
        .call(
            Method::OPTIONS,
            &p,
            None,
            &[
                ("Origin", ORIGIN),
                ("Access-Control-Request-Method", "PATCH"),
            ],
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(h.get("access-control-allow-origin").unwrap(), ORIGIN);
    assert!(h
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let (s, _, _) = env
        .call(Method::OPTIONS, "/api/v1/nothing", None, &[], None)
        .await;
    assert_eq!(s, 404);
    let (s, h, _) = env
        .call(Method::HEAD, "/api/v1/agents", Some("k-viewer"), &[], None)
        .await;
    assert_eq!(s, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (s, _, _) = env.call(Method::HEAD, "/healthz", None, &[], None).await;
    assert_eq!(s, 200);
    let (s, h, _) = env
        .call(
            Method::GET,
            "/presence-client.js",
            None,
            &[("Origin", "https://elsewhere.example")],
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h.get("access-control-allow-origin").unwrap(), "*");
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Every route is registered from the table: no other file in `src/`
/// (the simulator's own app aside) registers a route or a service.
#[test]
fn routes_come_only_from_the_table() {
    let mut stray = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("simulator") {
                    stack.push(p);
                }
                continue;
            }
            if p.ends_with("http/table.rs") || p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Unit tests build throwaway apps of their own.
            let text = text.split("#[cfg(test)]").next().unwrap_or("");
            for pat in [".route(", "web::resource(", "web::scope(", ".service("] {
                if text.contains(pat) {
                    stray.push(format!("{} uses {pat}", p.display()));
                }
            }
        }
    }
    assert!(
        stray.is_empty(),
        "routes outside src/http/table.rs:\n{}",
        stray.join("\n")
    );
}

/// Every REST `GET` route of the table refuses an unknown query parameter
/// with the JSON 400 (docs/protocol.md); the routes without a filter of
/// their own name it. The two streams ignore unknown parameters instead
/// (a reconnect must not fail) and are left out.
#[actix_web::test]
async fn rest_routes_refuse_unknown_parameters() {
    let env = Env::start(|_| {}).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for e in endpoints()
        .iter()
        .filter(|e| e.method == Method::GET && e.path.starts_with("/api/v1/") && !e.tickets)
    {
        let path = e
            .path
            .replace("{id}", &env.own)
            .replace("{name}", "no-such-hook");
        // The tag search requires its tag: give it, so only `bogus` is wrong.
        let needed = if e.path == "/api/v1/interactions" {
            "externalTag=t&"
        } else {
            ""
        };
        let (s, _, v) = env
            .call(
                Method::GET,
                &format!("{path}?{needed}bogus=1"),
                Some("k-admin"),
                &[],
                None,
            )
            .await;
        checked += 1;
        let named =
            v["parameter"] == "bogus" || v["reason"].as_str().is_some_and(|r| r.contains("bogus"));
        if s != 400 || v["error"] != "bad_parameter" || !named {
            failures.push(format!("{path}?bogus=1: {s} {v}"));
        }
    }
    assert!(checked >= 10, "{checked} routes");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    env.gw.stop().await;
    env.sim.stop().await;
}

/// `GET /api/v1/queues?division=` answers as `/api/v1/agents` does: a
/// scoped caller asking only for a foreign division gets a 403, for its
/// own the queues of that division; an unknown division is a 400.
#[actix_web::test]
async fn queues_division_parameter_follows_scope() {
    let env = Env::start(|_| {}).await;
    let foreign_div = env.sim_user(&env.foreign).await["division"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("/api/v1/queues?division={foreign_div}");
    let (agents, _, _) = env
        .call(
            Method::GET,
            &format!("/api/v1/agents?division={foreign_div}"),
            Some("k-s-viewer"),
            &[],
            None,
        )
        .await;
    let (s, _, v) = env
        .call(Method::GET, &url, Some("k-s-viewer"), &[], None)
        .await;
    assert_eq!((s, agents), (403, 403), "{v}");
    assert_eq!(v["error"], "forbidden", "{v}");
    let (s, _, v) = env
        .call(Method::GET, &url, Some("k-viewer"), &[], None)
        .await;
    assert_eq!(s, 200, "{v}");
    let foreign = v["queues"].as_array().unwrap();
    assert!(
        foreign
            .iter()
            .all(|q| q["division"]["id"] == json!(foreign_div)),
        "{v}"
    );
    let own = format!("/api/v1/queues?division={}", env.div);
    let (s, _, v) = env
        .call(Method::GET, &own, Some("k-s-viewer"), &[], None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["queues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["division"]["id"] == json!(env.div)),
        "{v}"
    );
    let (s, _, v) = env
        .call(
            Method::GET,
            "/api/v1/queues?division=nope",
            Some("k-viewer"),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["parameter"], "division", "{v}");
    env.gw.stop().await;
    env.sim.stop().await;
}

/// A division-scoped supervisor's `If-Match` is judged on the agent as it
/// is when the body has arrived, not as the route policy read it when the
/// headers came: the agent changes between the two, and the write is
/// refused with 412 (Genesys untouched).
#[actix_web::test]
async fn if_match_is_judged_after_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start(|_| {}).await;
    let agent = format!("/api/v1/agents/{}", env.own);
    let (s, h, v) = env
        .call(Method::GET, &agent, Some("k-s-supervisor"), &[], None)
        .await;
    assert_eq!(s, 200, "{v}");
    let etag = h.get("etag").unwrap().to_str().unwrap().to_owned();
    let version = v["version"].as_u64().unwrap();
    let body = json!({"presence": "MEETING"}).to_string();
    let mut tcp = tokio::net::TcpStream::connect(env.gw.addr).await.unwrap();
    let head = format!(
        "PATCH {agent}/presence HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer k-s-supervisor\r\n\
         Content-Type: application/json\r\nIf-Match: {etag}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        env.gw.addr,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // While the body is held back, the agent changes in Genesys and the
    // gateway sees it.
    let posted = e2e::post(
        format!("{}/sim/users/{}/presence", env.sim.base_url(), env.own),
        json!({"systemPresence": "BREAK"}),
    )
    .await;
    assert!(posted.is_object(), "{posted}");
    wait_until(
        Duration::from_secs(20),
        "the gateway sees the change",
        || {
            let url = env.url(&agent);
            async move {
                let mut r = client()
                    .get(url)
                    .insert_header(("Authorization", "Bearer k-admin"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let v: Value = r.json().await.map_err(|e| e.to_string())?;
                (v["version"].as_u64() > Some(version))
                    .then_some(())
                    .ok_or_else(|| format!("version {}", v["version"]))
            }
        },
    )
    .await;
    tcp.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 412"), "{answer}");
    assert!(answer.contains("precondition_failed"), "{answer}");
    assert_eq!(
        env.sim_user(&env.own).await["presence"]["systemPresence"],
        "BREAK",
        "Genesys was not written"
    );
    env.gw.stop().await;
    env.sim.stop().await;
}

/// Answers the HTTP layer writes itself are the API's JSON errors: a write
/// body sent as another media type is 415, a method the path does not
/// serve is 405 naming the ones it does.
#[actix_web::test]
async fn media_type_and_method_errors_are_json() {
    let env = Env::start(|_| {}).await;
    let p = format!("/api/v1/agents/{}/presence", env.own);
    let mut resp = env
        .http
        .patch(env.url(&p))
        .insert_header(("Authorization", "Bearer k-supervisor"))
        .insert_header(("Content-Type", "text/plain"))
        .send_body(r#"{"presence": "MEETING"}"#)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "unsupported_media_type", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("application/json"),
        "{v}"
    );
    // U+0000 is refused wherever a client can send it (no store sees it).
    for path in [
        "/api/v1/audit?agent=%00".to_string(),
        "/api/v1/agents/a%00b/history".to_string(),
    ] {
        let (s, _, v) = env
            .call(Method::GET, &path, Some("k-admin"), &[], None)
            .await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["error"], "bad_parameter", "{path}: {v}");
    }
    let (s, _, v) = env
        .call(
            Method::PATCH,
            &p,
            Some("k-supervisor"),
            &[],
            Some(&json!({"presence": "MEETING", "reason": "a\u{0}b"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "bad_body", "{v}");
    let (s, h, v) = env
        .call(Method::DELETE, "/api/v1/agents", Some("k-admin"), &[], None)
        .await;
    assert_eq!(s, 405, "{v}");
    assert_eq!(v["error"], "method_not_allowed", "{v}");
    let allow = h.get("allow").unwrap().to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
    assert!(v["reason"].as_str().unwrap().contains(allow), "{v}");
    env.gw.stop().await;
    env.sim.stop().await;
}
