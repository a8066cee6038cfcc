//! Test-only helpers for driving the simulator from outside: start it on
//! `127.0.0.1:0`, get tokens, call the Platform API and the `/sim` control
//! API over real HTTP (`awc`), and read the channel WebSocket with deadlines.
//!
//! Nothing here reaches into the simulator's state: every helper goes
//! through a socket, as a real Genesys client would.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use actix_web::http::{header::HeaderMap, Method};
use awc::ws::{Frame, Message};
use base64::Engine;
use std::pin::Pin;

use awc::error::WsProtocolError;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use genesys_sim::{self as simulator, SimConfig, SimHandle};
use serde_json::{json, Value};

/// Default OAuth client of the simulator contract (design.md).
pub const CLIENT_ID: &str = "sim-client";
pub const CLIENT_SECRET: &str = "sim-secret";

/// Primary presence-definition ids that recur across real orgs (genesys-api.md §4.1).
pub const AVAILABLE: &str = "6a3af858-942f-489d-9700-5f9bcdcdae9b";
pub const ON_QUEUE: &str = "e08eaf1b-ee47-4fa9-a231-1200e284798f";
pub const BREAK: &str = "227b37e2-f1d0-4dd0-8f50-badd7cf6d158";
pub const MEAL: &str = "3fd96123-badb-4f69-bc03-1b1ccc6d8014";
pub const BUSY: &str = "31fe3bac-dea6-44b7-bed7-47f91660a1a0";
pub const OFFLINE: &str = "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5";

/// Polls `$cond` (an expression, may `.await`) every 20 ms until it is true
/// or `$within` has passed; evaluates to whether it became true.
#[macro_export]
macro_rules! eventually {
    ($within:expr, $cond:expr) => {{
        let deadline = std::time::Instant::now() + $within;
        loop {
            if $cond {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// One HTTP response, body parsed as JSON when it is JSON (else `Null`).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the Genesys `ErrorBody` shape (genesys-api.md §9) with this
    /// status and code, and that `contextId` repeats `ININ-Correlation-Id`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {}", self.text);
        let b = &self.json;
        assert_eq!(b["code"], code, "code in {}", self.text);
        assert_eq!(b["status"], status, "status field in {}", self.text);
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(
            b["details"].is_array() && b["errors"].is_array(),
            "{}",
            self.text
        );
        let ctx = b["contextId"].as_str().expect("contextId");
        assert_eq!(
            self.header("inin-correlation-id").as_deref(),
            Some(ctx),
            "contextId repeats ININ-Correlation-Id"
        );
    }
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

/// A simulator started in-process on a free loopback port.
pub struct TestSim {
    pub handle: SimHandle,
    pub base: String,
    pub client: awc::Client,
}

impl TestSim {
    /// Starts a simulator with the defaults, adjusted by `f`.
    pub async fn start(f: impl FnOnce(&mut SimConfig)) -> TestSim {
        let mut cfg = SimConfig {
            // unwrap: a literal socket address
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        f(&mut cfg);
        let handle = simulator::start(cfg).await.expect("simulator starts");
        let base = handle.base_url();
        // awc's rustls connector needs a process-wide crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(20))
            .finish();
        TestSim {
            handle,
            base,
            client,
        }
    }

    /// Starts a simulator with the defaults.
    pub async fn default() -> TestSim {
        TestSim::start(|_| {}).await
    }

    /// Any request with optional `Authorization` header value.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Body,
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        let mut req = self.client.request(method, &url);
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a.to_string()));
        }
        let sent = match body {
            Body::None => req.send().await,
            Body::Json(v) => {
                req.insert_header(("Content-Type", "application/json"))
                    .send_body(v.to_string())
                    .await
            }
            Body::Raw(s) => {
                req.insert_header(("Content-Type", "application/json"))
                    .send_body(s)
                    .await
            }
        };
        let mut res = sent.unwrap_or_else(|e| panic!("{path}: {e}"));
        let bytes = res
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{path} body: {e}"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            text,
            json,
        }
    }

    /// `POST /oauth/token` with the given Basic credentials.
    pub async fn token_request(&self, id: &str, secret: &str) -> Resp {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let mut res = self
            .client
            .post(format!("{}/oauth/token", self.base))
            .insert_header(("Authorization", format!("Basic {basic}")))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .send_body("grant_type=client_credentials")
            .await
            .expect("token request");
        let bytes = res.body().await.expect("token body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Resp {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// A fresh valid access token for the default client.
    pub async fn token(&self) -> String {
        let r = self.token_request(CLIENT_ID, CLIENT_SECRET).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// An API client holding a fresh token.
    pub async fn api(&self) -> Api<'_> {
        let token = self.token().await;
        Api { sim: self, token }
    }

    /// `GET` on the control API.
    pub async fn sim_get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None, Body::None).await
    }

    /// `POST` JSON on the control API.
    pub async fn sim_post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, None, Body::Json(body))
            .await
    }

    /// `GET /sim/state` users.
    pub async fn state_users(&self) -> Vec<Value> {
        let r = self.sim_get("/sim/state").await;
        assert_eq!(r.status, 200);
        r.json["users"].as_array().expect("users").clone()
    }

    /// One user's entry in `GET /sim/state`.
    pub async fn state_of(&self, id: &str) -> Value {
        self.state_users()
            .await
            .into_iter()
            .find(|u| u["id"] == id)
            .expect("user in /sim/state")
    }

    /// A counter from `GET /sim/stats`.
    pub async fn counter(&self, name: &str) -> u64 {
        let r = self.sim_get("/sim/stats").await;
        r.json["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {}", r.text))
    }

    /// `POST /sim/users/{id}/presence` with `{"systemPresence": sp}`.
    pub async fn set_presence(&self, user: &str, sp: &str) -> Resp {
        let r = self
            .sim_post(
                &format!("/sim/users/{user}/presence"),
                json!({"systemPresence": sp}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r
    }

    /// `POST /sim/faults`.
    pub async fn fault(&self, body: Value) -> Resp {
        let r = self.sim_post("/sim/faults", body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r
    }

    /// The first user id whose current system presence is not `sp`.
    pub async fn user_not_in(&self, sp: &str) -> String {
        self.state_users()
            .await
            .into_iter()
            .find(|u| {
                u["presence"]["systemPresence"] != sp
                    && u["conversations"].as_array().is_some_and(|c| c.is_empty())
            })
            .and_then(|u| u["id"].as_str().map(str::to_string))
            .expect("a user in another presence")
    }

    /// Opens a WebSocket to `uri` (a `connectUri`).
    pub async fn connect(&self, uri: &str) -> Ws {
        let (_res, framed) = self
            .client
            .ws(uri)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("ws connect {uri}: {e}"));
        let (sink, stream) = framed.split();
        Ws {
            sink: Box::pin(sink),
            stream: Box::pin(stream),
        }
    }
}

/// An authenticated Platform API client.
pub struct Api<'a> {
    pub sim: &'a TestSim,
    pub token: String,
}

impl Api<'_> {
    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub async fn send(&self, method: Method, path: &str, body: Body) -> Resp {
        self.sim
            .request(method, &format!("/api/v2{path}"), Some(&self.auth()), body)
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, Body::None).await
    }

    pub async fn head(&self, path: &str) -> Resp {
        self.send(Method::HEAD, path, Body::None).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, Body::None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Body::Json(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Body::Json(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Body::Json(body)).await
    }

    /// `POST /notifications/channels` → `(id, connectUri)`.
    pub async fn channel(&self) -> (String, String) {
        let r = self
            .send(Method::POST, "/notifications/channels", Body::None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        (
            r.json["id"].as_str().expect("id").to_string(),
            r.json["connectUri"]
                .as_str()
                .expect("connectUri")
                .to_string(),
        )
    }

    /// `POST …/subscriptions` with these topics; asserts 200.
    pub async fn subscribe(&self, channel: &str, topics: &[String]) -> Resp {
        let body: Vec<Value> = topics.iter().map(|t| json!({"id": t})).collect();
        let r = self
            .post(
                &format!("/notifications/channels/{channel}/subscriptions"),
                json!(body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r
    }
}

/// What the next frame of a socket was.
#[derive(Debug)]
pub enum WsEvent {
    /// A JSON text frame.
    Json(Value),
    /// A close frame, with its code.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Ended,
    /// Nothing arrived in time.
    Timeout,
}

/// A channel WebSocket client.
pub struct Ws {
    sink: Pin<Box<dyn Sink<Message, Error = WsProtocolError>>>,
    stream: Pin<Box<dyn Stream<Item = Result<Frame, WsProtocolError>>>>,
}

impl Ws {
    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.sink
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("ws send");
    }

    /// The next meaningful frame (RFC 6455 ping/pong skipped) within `within`.
    pub async fn recv(&mut self, within: Duration) -> WsEvent {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WsEvent::Timeout;
            }
            match actix_web::rt::time::timeout(left, self.stream.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return WsEvent::Ended,
                Ok(Some(Ok(Frame::Text(b)))) => {
                    return WsEvent::Json(serde_json::from_slice(&b).unwrap_or_else(|e| {
                        panic!("non-JSON frame {:?}: {e}", String::from_utf8_lossy(&b))
                    }))
                }
                Ok(Some(Ok(Frame::Close(reason)))) => {
                    return WsEvent::Closed(reason.map(|r| u16::from(r.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The first JSON frame matching `pred` within `within`, skipping the
    /// others; `None` on timeout or close.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                WsEvent::Json(v) if pred(&v) => return Some(v),
                WsEvent::Json(_) => continue,
                _ => return None,
            }
        }
    }

    /// Skips text frames until the socket closes or ends; what ended it.
    pub async fn wait_closed(&mut self, within: Duration) -> WsEvent {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                WsEvent::Json(_) => continue,
                other => return other,
            }
        }
    }
}

/// True for a `channel.metadata` frame (heartbeat or pong).
pub fn is_metadata(v: &Value) -> bool {
    v["topicName"] == "channel.metadata"
}

/// True for a frame under this exact `topicName`.
pub fn topic_is(v: &Value, topic: &str) -> bool {
    v["topicName"] == topic
}

/// Asserts the notification envelope of genesys-api.md §5.4.
pub fn assert_envelope(v: &Value) {
    assert!(v["topicName"].is_string(), "{v}");
    assert_eq!(v["version"], "2", "version is the string \"2\": {v}");
    assert!(v["eventBody"].is_object(), "{v}");
    assert!(
        v["metadata"]["CorrelationId"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "metadata.CorrelationId: {v}"
    );
}
