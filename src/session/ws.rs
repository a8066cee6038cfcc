//! WebSocket transport (actix-ws): starts the session actor with the
//! client's frame stream attached, and handles client frames: pings, pongs,
//! close, and JSON messages (`subscribe`).

use std::time::Instant;

use actix::{Actor, ActorContext, AsyncContext, StreamHandler};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{Message, ProtocolError};
use serde_json::Value;

use crate::registry::{Cursor, Filter};

use super::actor::{Session, SessionParams, Transport};
use super::close::DisconnectReason;
use super::outbox::Out;

/// Upgrades the request and starts a WebSocket session.
pub fn start(
    req: &HttpRequest,
    body: web::Payload,
    p: SessionParams,
) -> Result<HttpResponse, actix_web::Error> {
    let (resp, ws, stream) = actix_ws::handle(req, body)?;
    let stream = stream.max_frame_size(p.cfg.max_client_message_bytes);
    p.metrics
        .opened_ws
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Session::create(move |ctx| {
        ctx.add_stream(stream);
        Session::new(p, Transport::Ws(Some(ws)))
    });
    Ok(resp)
}

impl StreamHandler<Result<Message, ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<Message, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(Message::Text(text)) => self.client_text(&text, ctx),
            Ok(Message::Binary(_)) => {
                self.client_error("binary messages are not accepted; send JSON text", ctx)
            }
            Ok(Message::Ping(b)) => {
                self.push_control(Out::Pong(b), ctx);
            }
            Ok(Message::Pong(_)) | Ok(Message::Nop) => {}
            Ok(Message::Continuation(_)) => {
                self.client_error("fragmented messages are not accepted", ctx)
            }
            Ok(Message::Close(_)) => self.close(DisconnectReason::ClientClosed, ctx),
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "websocket protocol error");
                self.close(DisconnectReason::ProtocolError, ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The client's half ended without a close frame.
        self.close(DisconnectReason::TransportClosed, ctx);
        ctx.stop();
    }
}

impl Session {
    fn push_control(&mut self, o: Out, ctx: &mut actix::Context<Self>) {
        self.push_raw(o);
        self.pump(ctx);
    }

    /// Handles one JSON message from the client.
    fn client_text(&mut self, text: &str, ctx: &mut actix::Context<Self>) {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return self.client_error(&format!("not valid JSON: {e}"), ctx),
        };
        let Some(obj) = v.as_object() else {
            return self.client_error("expected a JSON object with a \"type\"", ctx);
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("subscribe") => {
                let filter = match obj
                    .get("filter")
                    .map_or(Ok(Filter::default()), Filter::from_json)
                {
                    Ok(f) => f,
                    Err(e) => return self.client_error(&e.to_string(), ctx),
                };
                let since = match obj.get("since") {
                    None | Some(Value::Null) => None,
                    // A resume point that cannot be read is not an error:
                    // the answer is a fresh snapshot (docs/protocol.md §5).
                    Some(Value::String(s)) => Cursor::parse("since", s).ok(),
                    Some(_) => {
                        return self.client_error(
                            "invalid `since`: expected a string \"<epoch>:<seq>\"",
                            ctx,
                        )
                    }
                };
                if let Some(k) = obj
                    .keys()
                    .find(|k| !matches!(k.as_str(), "type" | "filter" | "since"))
                {
                    return self.client_error(
                        &format!("unknown field `{k}` in subscribe; expected type, filter, since"),
                        ctx,
                    );
                }
                self.resubscribe(filter, since, ctx);
            }
            Some(other) => self.client_error(
                &format!("unknown message type {other:?}; expected \"subscribe\""),
                ctx,
            ),
            None => self.client_error("missing string field \"type\"", ctx),
        }
    }
}
