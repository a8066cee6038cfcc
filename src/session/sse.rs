//! Server-Sent Events transport: the response body is a [`WireBody`] of
//! shared SSE frames. A client that sends `Accept-Encoding: gzip` gets a
//! gzip body: a per-connection gzip header, then each frame's deflate
//! block, compressed once per frame and shared by every gzip client
//! ([`crate::protocol::wire`]); the stream's trailer (CRC-32, length)
//! follows the `close` event when the gateway ends it.

use actix::Actor;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use crate::protocol::wire;

use super::actor::{Session, SessionParams, Transport};
use super::body::WireBody;

/// Starts an SSE session and returns its response.
pub fn start(req: &HttpRequest, p: SessionParams) -> HttpResponse {
    let gzip = p.cfg.compression
        && wire::accepts_gzip(
            req.headers()
                .get_all(actix_web::http::header::ACCEPT_ENCODING)
                .filter_map(|v| v.to_str().ok()),
        );
    let (body, tx) = WireBody::new();
    if gzip {
        // The channel is empty: the header always fits.
        let _ = tx.try_send(Bytes::from_static(wire::GZIP_HEADER));
    }
    p.metrics
        .opened_sse
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if gzip {
        p.metrics
            .compressed_sse
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Session::new(
        p,
        Transport::Sse {
            tx: Some(tx),
            gzip: gzip.then(wire::GzipStream::default),
        },
    )
    .start();
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("Vary", "Accept-Encoding"));
    if gzip {
        resp.insert_header(("Content-Encoding", "gzip"));
    }
    resp.streaming(body)
}
