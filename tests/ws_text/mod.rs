//! Reassembles WebSocket text messages from frames: the gateway sends long
//! messages (snapshots) as continuation frames, as RFC 6455 allows.
#![allow(dead_code)]

use awc::ws::Frame;
use bytes::{Bytes, BytesMut};

/// Collects continuation frames into whole messages.
#[derive(Default)]
pub struct Reassembler {
    partial: Option<BytesMut>,
}

impl Reassembler {
    /// The whole text message this frame completes, if any.
    pub fn push(&mut self, frame: &Frame) -> Option<Bytes> {
        use actix_http::ws::Item;
        match frame {
            Frame::Text(b) => Some(b.clone()),
            Frame::Continuation(Item::FirstText(b)) | Frame::Continuation(Item::FirstBinary(b)) => {
                self.partial = Some(BytesMut::from(&b[..]));
                None
            }
            Frame::Continuation(Item::Continue(b)) => {
                if let Some(p) = self.partial.as_mut() {
                    p.extend_from_slice(b);
                }
                None
            }
            Frame::Continuation(Item::Last(b)) => {
                let mut p = self.partial.take()?;
                p.extend_from_slice(b);
                Some(p.freeze())
            }
            _ => None,
        }
    }
}
