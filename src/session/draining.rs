//! What a stream request gets while the gateway drains: never an HTTP
//! error (a browser `EventSource` treats any non-200 answer as fatal and
//! never reconnects). Such requests only arrive on connections that were
//! already open (the listener is paused), e.g. a browser's pooled
//! keep-alive connection.
//!
//! - SSE: `200 text/event-stream` with `Connection: close`, carrying
//!   `retry: <drain hint>`, the final `status` (`"state":"restarting"`) and
//!   a `close` event (1001), then the end of the stream and of the
//!   connection. The client reconnects after the hint, when the drain is
//!   over.
//! - WebSocket: the upgrade succeeds, the same `status` is sent, then the
//!   socket is closed with 1001 `gateway shutting down`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::close::DisconnectReason;

/// How long a draining WebSocket waits for the client's close reply.
const WS_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The SSE body sent while draining: retry hint, final status, close.
pub fn sse_body(retry_ms: u64, epoch: u64, seq: u64) -> Bytes {
    let status = crate::protocol::encode::restarting_status(epoch, seq);
    let r = DisconnectReason::Shutdown;
    let mut body = format!("retry: {retry_ms}\n\n").into_bytes();
    body.extend_from_slice(status.sse());
    body.extend_from_slice(&crate::protocol::encode::sse_close(
        retry_ms,
        r.code(),
        r.text(),
    ));
    Bytes::from(body)
}

/// The SSE answer while draining (see the module docs).
pub fn sse(retry_ms: u64, epoch: u64, seq: u64) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .force_close()
        .body(sse_body(retry_ms, epoch, seq))
}

/// The WebSocket answer while draining: upgrade, `status`, close 1001.
pub fn ws(
    req: &HttpRequest,
    body: web::Payload,
    epoch: u64,
    seq: u64,
) -> Result<HttpResponse, actix_web::Error> {
    let (resp, mut session, mut stream) = actix_ws::handle(req, body)?;
    actix_web::rt::spawn(async move {
        let status = crate::protocol::encode::restarting_status(epoch, seq);
        let r = DisconnectReason::Shutdown;
        if session.text(status.json().to_owned()).await.is_ok() {
            let _ = session
                .close(Some(actix_ws::CloseReason {
                    code: actix_ws::CloseCode::from(r.code()),
                    description: Some(r.text().to_owned()),
                }))
                .await;
        }
        // Read until the client answers the close (or give up).
        let _ = tokio::time::timeout(WS_CLOSE_WAIT, async {
            while let Some(Ok(m)) = stream.recv().await {
                if matches!(m, actix_ws::Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    });
    Ok(resp)
}
