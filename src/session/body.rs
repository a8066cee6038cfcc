//! The streaming response body both transports write through: a small
//! channel of shared, already complete wire bytes (WebSocket frames or SSE
//! text, compressed or not) fed by the session actor.
//!
//! The session hands over each message's shared bytes whole, whatever
//! their size; the body gives them to the HTTP layer in pieces of at most
//! [`PIECE`] bytes, so the connection's write buffer never grows to a
//! snapshot's size (actix-http keeps up to 128 KiB of it for good). The
//! HTTP layer polls the body while its write buffer has room, so several
//! pending messages leave in one write.
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

/// Largest piece handed to the HTTP layer at once.
pub const PIECE: usize = 8 * 1024;

/// The body of a WebSocket (after the 101) or SSE response.
pub struct WireBody {
    rx: mpsc::Receiver<Bytes>,
    /// What is left of a message larger than [`PIECE`].
    rest: Bytes,
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
                Poll::Ready(Some(b)) => self.rest = b,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.rest.len().min(PIECE);
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
