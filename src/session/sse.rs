//! Server-Sent Events transport: the response body is a small channel of
//! shared `Bytes` (already complete SSE frames) fed by the session actor.
//!
//! actix-http polls the body only while its write buffer has room
//! (`h1_write_buffer_size`), so when the client stops reading the channel
//! fills and the session's write into it stays pending: the session's
//! write deadline (`session.write_timeout_secs`) sees that and evicts it,
//! exactly as for a WebSocket.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix::Actor;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::actor::{Session, SessionParams, Transport};

/// Frames buffered between the session and the HTTP body. Small on
/// purpose: the session's outbox is the real (byte-bounded) queue.
const BODY_CHANNEL: usize = 4;

/// The streaming body of an SSE response.
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// Starts an SSE session and returns its response.
pub fn start(p: SessionParams) -> HttpResponse {
    let (tx, rx) = mpsc::channel(BODY_CHANNEL);
    p.metrics
        .opened_sse
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Session::new(p, Transport::Sse(Some(tx))).start();
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(SseBody { rx })
}
