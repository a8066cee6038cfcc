//! The streaming response body both transports write through: a small
//! channel of shared, already complete wire bytes (WebSocket frames or SSE
//! text, compressed or not) fed by the session actor.
//!
//! The session hands over each message's shared bytes whole, whatever
//! their size; the body gives them to the HTTP layer in pieces, because
//! actix-http copies what it gets into the connection's write buffer and
//! keeps that buffer's allocation for good unless it grew past 128 KiB
//! (`WRITE_BUFFER_RETENTION_LIMIT`). So a message up to [`RETAINED`] bytes
//! goes in [`PIECE`]-byte pieces (the buffer an idle connection keeps stays
//! under 8 KiB), and a larger one (a snapshot of a large org) in
//! [`BIG_PIECE`]-byte pieces, just past the retention limit: a few large
//! writes, after each of which actix-http frees the buffer. The HTTP layer
//! polls the body while its write buffer has room, so several pending
//! messages leave in one write.
//!
//! actix-http polls the body only while its write buffer has room
//! (`h1_write_buffer_size`), so when the client stops reading the channel
//! fills and the session's write into it stays pending: the session's
//! write deadline (`session.write_timeout_secs`) sees that and evicts it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

/// Messages buffered between the session and the HTTP body. Small on
/// purpose: the session's outbox is the real (byte-bounded) queue.
pub const CHANNEL: usize = 8;

/// Piece of a message up to [`RETAINED`] bytes (matches the server's
/// `h1_write_buffer_size`).
pub const PIECE: usize = 4 * 1024;

/// Largest write buffer actix-http keeps after a write (its
/// `WRITE_BUFFER_RETENTION_LIMIT`).
pub const RETAINED: usize = 128 * 1024;

/// Piece of a message over [`RETAINED`] bytes: past the limit, so the
/// buffer it grows is freed once written.
pub const BIG_PIECE: usize = RETAINED + 4 * 1024;

/// The body of a WebSocket (after the 101) or SSE response.
pub struct WireBody {
    rx: mpsc::Receiver<Bytes>,
    /// What is left of the message being handed over.
    rest: Bytes,
    /// Its piece size.
    piece: usize,
    /// Fired when the body is dropped (the connection is done), so the
    /// WebSocket reader ends too.
    dropped: Option<oneshot::Sender<()>>,
}

impl WireBody {
    /// A body and the sender the session writes into.
    pub fn new() -> (WireBody, mpsc::Sender<Bytes>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        (
            WireBody {
                rx,
                rest: Bytes::new(),
                piece: PIECE,
                dropped: None,
            },
            tx,
        )
    }

    /// Signals `tx` when the body is dropped.
    pub fn on_drop(mut self, tx: oneshot::Sender<()>) -> WireBody {
        self.dropped = Some(tx);
        self
    }
}

impl Stream for WireBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.rest.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(b)) => {
                    self.piece = if b.len() > RETAINED { BIG_PIECE } else { PIECE };
                    self.rest = b;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        // A message that fits in one piece goes as it is (no second
        // reference to the shared bytes).
        if self.rest.len() <= self.piece {
            return Poll::Ready(Some(Ok(std::mem::take(&mut self.rest))));
        }
        let n = self.piece;
        Poll::Ready(Some(Ok(self.rest.split_to(n))))
    }
}

impl Drop for WireBody {
    fn drop(&mut self) {
        if let Some(tx) = self.dropped.take() {
            let _ = tx.send(());
        }
    }
}
