//! WebSocket transport: the gateway does the handshake itself
//! (`actix_http::ws::handshake`), writes pre-encoded frames (the same bytes
//! for every client, [`crate::protocol::wire`]) through a [`WireBody`], and
//! reads client frames with [`FrameReader`]: pings, pongs, close, and JSON
//! messages (`subscribe`). permessage-deflate (RFC 7692) is accepted when
//! the client offers it, answered with `server_no_context_takeover;
//! client_no_context_takeover`: every message is compressed on its own, so
//! one compressed frame per message serves every client that negotiated it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix::{Actor, ActorContext, AsyncContext, StreamHandler};
use actix_web::body::MessageBody;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::protocol::wire::{self, ClientFrame, FrameReader, ReadError};
use crate::registry::{Cursor, Filter};

use super::actor::{Session, SessionParams, Transport};
use super::body::WireBody;
use super::close::DisconnectReason;
use super::outbox::Out;

/// Upgrades the request and starts a WebSocket session.
pub fn start(
    req: &HttpRequest,
    body: web::Payload,
    p: SessionParams,
) -> Result<HttpResponse, actix_web::Error> {
    let mut resp = actix_http::ws::handshake(req.head())?;
    let deflate = p.cfg.compression
        && wire::accepts_deflate(
            req.headers()
                .get_all(actix_web::http::header::SEC_WEBSOCKET_EXTENSIONS)
                .filter_map(|v| v.to_str().ok()),
        );
    if deflate {
        resp.insert_header((
            actix_web::http::header::SEC_WEBSOCKET_EXTENSIONS,
            wire::DEFLATE_RESPONSE,
        ));
    }
    let (out, tx) = WireBody::new();
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let reader = ClientFrames {
        payload: body.into_inner(),
        buf: BytesMut::new(),
        reader: FrameReader::new(p.cfg.max_client_message_bytes, deflate),
        body_dropped: Some(dropped_rx),
        done: false,
    };
    p.metrics
        .opened_ws
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if deflate {
        p.metrics
            .compressed_ws
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Session::create(move |ctx| {
        ctx.add_stream(reader);
        Session::new(
            p,
            Transport::Ws {
                tx: Some(tx),
                deflate,
            },
        )
    });
    let resp =
        resp.message_body(actix_web::body::BodyStream::new(out.on_drop(dropped_tx)).boxed())?;
    Ok(resp.into())
}

/// The client's frames, read from the upgraded connection's payload.
/// Ends when the client's half ends or the response body is dropped.
struct ClientFrames {
    payload: actix_web::dev::Payload,
    buf: BytesMut,
    reader: FrameReader,
    body_dropped: Option<oneshot::Receiver<()>>,
    done: bool,
}

impl Stream for ClientFrames {
    type Item = Result<ClientFrame, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done && this.buf.is_empty() {
                return Poll::Ready(None);
            }
            match this.reader.next(&mut this.buf) {
                Ok(Some(f)) => return Poll::Ready(Some(Ok(f))),
                Ok(None) if this.done => return Poll::Ready(None),
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    this.buf.clear();
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if let Some(rx) = this.body_dropped.as_mut() {
                if Pin::new(rx).poll(cx).is_ready() {
                    this.body_dropped = None;
                    this.done = true;
                    this.buf.clear();
                    continue;
                }
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    if this.buf.is_empty() {
                        this.buf = BytesMut::from(b);
                    } else {
                        this.buf.extend_from_slice(&b);
                    }
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    this.done = true;
                    this.buf.clear();
                }
                Poll::Pending => {
                    // Release a large read buffer once drained (idle sessions stay small).
                    if this.buf.is_empty() && this.buf.capacity() > 4096 {
                        this.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl StreamHandler<Result<ClientFrame, ReadError>> for Session {
    fn handle(&mut self, msg: Result<ClientFrame, ReadError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ClientFrame::Text(text)) => self.client_text(&text, ctx),
            Ok(ClientFrame::Binary) => {
                self.client_error("binary messages are not accepted; send JSON text", ctx)
            }
            Ok(ClientFrame::Ping(b)) => {
                self.push_control(Out::Pong(b), ctx);
            }
            Ok(ClientFrame::Pong) => {}
            Ok(ClientFrame::Fragment) => {
                self.client_error("fragmented messages are not accepted", ctx)
            }
            Ok(ClientFrame::Close(_)) => self.close(DisconnectReason::ClientClosed, ctx),
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
