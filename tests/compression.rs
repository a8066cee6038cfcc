//! Compression is negotiated per client (issue 18): a WebSocket client
//! that offers permessage-deflate gets compressed frames (RSV1) that a
//! standard inflater (flate2, zlib's format) reads, and may send compressed
//! messages itself; one that does not offer it gets plain frames. An SSE
//! client that sends `Accept-Encoding: gzip` gets a gzip body that a
//! standard gzip reader inflates as it arrives; one that does not gets
//! plain text. Raw sockets on loopback, so every byte is checked.

mod support;

use std::io::Read;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use presence_gateway::model::{SyncReason, SystemPresence};
use presence_gateway::registry::RegistryConfig;
use presence_gateway::session::SessionConfig;
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECS: Duration = Duration::from_secs(20);

async fn ready_gateway(n: usize, sess: SessionConfig) -> Gateway {
    let gw = start_gateway(RegistryConfig::default(), sess).await;
    gw.feed(sync(SyncReason::Initial, users(n)));
    gw.feed(connected());
    wait_until(SECS, "initial sync applied", || async {
        gw.stats().await.agents == n
    })
    .await;
    gw
}

/// Reads until the end of the response head; returns it (lower-cased)
/// and leaves the rest in `buf`.
async fn head(s: &mut TcpStream, buf: &mut BytesMut) -> String {
    tokio::time::timeout(SECS, async {
        loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let h = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                buf.advance(p + 4);
                return h;
            }
            assert!(s.read_buf(buf).await.unwrap() > 0, "closed before the head");
        }
    })
    .await
    .expect("response head in time")
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [7u8, 1, 9, 3];
    let mut f = vec![first];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
    f
}

/// Raw deflate with a sync flush, the tail `00 00 ff ff` removed (RFC 7692).
fn deflate_message(text: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(text.len() + 64);
    c.compress_vec(text, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert_eq!(&out[out.len() - 4..], &[0, 0, 0xff, 0xff]);
    out.truncate(out.len() - 4);
    out
}

/// A raw WebSocket client: what it received, message by message, and
/// whether each was compressed.
struct RawWs {
    s: TcpStream,
    buf: BytesMut,
    extensions: Option<String>,
    /// The message being reassembled from fragments, and whether it is compressed.
    msg: Vec<u8>,
    compressed: bool,
}

impl RawWs {
    async fn connect(gw: &Gateway, offer: Option<&str>) -> RawWs {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let ext = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /api/v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n",
            gw.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        let h = head(&mut s, &mut buf).await;
        assert!(h.starts_with("http/1.1 101"), "{h}");
        let extensions = h
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-extensions:"))
            .map(|v| v.trim().to_owned());
        RawWs {
            s,
            buf,
            extensions,
            msg: Vec::new(),
            compressed: false,
        }
    }

    /// The next data message: (text, compressed). Answers nothing.
    async fn next(&mut self) -> (Value, bool) {
        tokio::time::timeout(SECS, async {
            loop {
                if self.buf.len() >= 2 {
                    let b0 = self.buf[0];
                    let b1 = self.buf[1];
                    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
                    let (len, at) = match b1 & 0x7f {
                        126 if self.buf.len() >= 4 => {
                            (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                        }
                        127 if self.buf.len() >= 10 => {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(&self.buf[2..10]);
                            (u64::from_be_bytes(a) as usize, 10)
                        }
                        126 | 127 => (usize::MAX, 0),
                        n => (n as usize, 2),
                    };
                    if len != usize::MAX && self.buf.len() >= at + len {
                        self.buf.advance(at);
                        let payload = self.buf.split_to(len);
                        match b0 & 0x0f {
                            1 => {
                                // RSV1 is on the first frame of a message only.
                                self.compressed = b0 & 0x40 != 0;
                                self.msg = payload.to_vec();
                            }
                            0 => {
                                assert_eq!(b0 & 0x40, 0, "RSV1 on a continuation frame");
                                self.msg.extend_from_slice(&payload);
                            }
                            _ => continue, // control frames
                        }
                        if b0 & 0x80 == 0 {
                            continue; // more fragments follow
                        }
                        let compressed = self.compressed;
                        let text = if compressed {
                            let mut z = std::mem::take(&mut self.msg);
                            z.extend_from_slice(&[0, 0, 0xff, 0xff]);
                            let mut out = Vec::new();
                            let mut d = flate2::read::DeflateDecoder::new(&z[..]);
                            // The stream has no final block: read what inflates.
                            let _ = d.read_to_end(&mut out);
                            out
                        } else {
                            std::mem::take(&mut self.msg)
                        };
                        let v: Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
                            panic!("{e}: {:?}", String::from_utf8_lossy(&text))
                        });
                        return (v, compressed);
                    }
                }
                let n = self.s.read_buf(&mut self.buf).await.unwrap();
                assert!(
                    n > 0,
                    "closed (extensions {:?}, {} bytes left: {:?})",
                    self.extensions,
                    self.buf.len(),
                    &self.buf[..self.buf.len().min(40)]
                );
            }
        })
        .await
        .expect("a message in time")
    }

    /// The next message of type `kind`.
    async fn next_of(&mut self, kind: &str) -> (Value, bool) {
        loop {
            let (v, z) = self.next().await;
            if v["type"] == kind {
                return (v, z);
            }
        }
    }
}

#[actix_web::test]
async fn websocket_compression_only_for_clients_that_offer_it() {
    // 200 agents: the plain snapshot (~100 KB) goes in continuation frames.
    let gw = ready_gateway(200, SessionConfig::default()).await;

    let mut plain = RawWs::connect(&gw, None).await;
    let mut zipped = RawWs::connect(&gw, Some("permessage-deflate; client_max_window_bits")).await;
    // An offer the gateway cannot honour (smaller server window) is declined.
    let mut declined =
        RawWs::connect(&gw, Some("permessage-deflate; server_max_window_bits=9")).await;

    assert_eq!(plain.extensions, None);
    assert_eq!(declined.extensions, None);
    assert_eq!(
        zipped.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );

    let counted = |m: &std::sync::atomic::AtomicU64| m.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted(&gw.state.metrics.compressed_ws), 1);
    assert_eq!(counted(&gw.state.metrics.opened_ws), 3);
    let (p, pz) = plain.next_of("snapshot").await;
    let (z, zz) = zipped.next_of("snapshot").await;
    let (d, dz) = declined.next_of("snapshot").await;
    assert!(!pz && !dz, "no compression unless negotiated");
    assert!(zz, "a client that negotiated gets compressed frames");
    assert_eq!(p["agents"].as_array().unwrap().len(), 200);
    assert_eq!(p["agents"], z["agents"]);
    assert_eq!(p["agents"], d["agents"]);

    // Deltas too, and the same content for both.
    gw.feed(presence("u0003", SystemPresence::Away, 100));
    let (p, pz) = plain.next_of("delta").await;
    let (z, zz) = zipped.next_of("delta").await;
    assert!(!pz && zz);
    assert_eq!(p, z);
    assert_eq!(z["changes"][0]["id"], "u0003");

    // A compressed client message is inflated (here a subscribe with a
    // filter, answered with a fresh snapshot of the filtered agents).
    let sub = br#"{"type":"subscribe","filter":{"agent":["u0001","u0002"]}}"#;
    zipped
        .s
        .write_all(&client_frame(0xC1, &deflate_message(sub)))
        .await
        .unwrap();
    let (z, zz) = zipped.next_of("snapshot").await;
    assert!(zz);
    assert_eq!(z["agents"].as_array().unwrap().len(), 2);

    // The same from a client that did not negotiate is a protocol error (1002).
    plain
        .s
        .write_all(&client_frame(0xC1, &deflate_message(sub)))
        .await
        .unwrap();
    let code = tokio::time::timeout(SECS, async {
        loop {
            while plain.buf.len() >= 2 {
                let b0 = plain.buf[0];
                let len = (plain.buf[1] & 0x7f) as usize;
                let (len, at) = match len {
                    126 if plain.buf.len() >= 4 => {
                        (u16::from_be_bytes([plain.buf[2], plain.buf[3]]) as usize, 4)
                    }
                    126 | 127 => break,
                    n => (n, 2),
                };
                if plain.buf.len() < at + len {
                    break;
                }
                plain.buf.advance(at);
                let p = plain.buf.split_to(len);
                if b0 & 0x0f == 8 {
                    return u16::from_be_bytes([p[0], p[1]]);
                }
            }
            assert!(plain.s.read_buf(&mut plain.buf).await.unwrap() > 0);
        }
    })
    .await
    .expect("close in time");
    assert_eq!(code, 1002);
}

#[actix_web::test]
async fn compression_can_be_turned_off() {
    let sess = SessionConfig {
        compression: false,
        ..SessionConfig::default()
    };
    let gw = ready_gateway(5, sess).await;
    let mut ws = RawWs::connect(&gw, Some("permessage-deflate")).await;
    assert_eq!(ws.extensions, None);
    let (_, z) = ws.next_of("snapshot").await;
    assert!(!z);
    let (h, _) = sse_raw(&gw, true).await;
    assert!(!h.contains("content-encoding"), "{h}");
}

/// Opens an SSE stream; returns the head and the socket positioned at the body.
async fn sse_raw(gw: &Gateway, gzip: bool) -> (String, (TcpStream, BytesMut)) {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let ae = if gzip {
        "Accept-Encoding: gzip, deflate, br\r\n"
    } else {
        ""
    };
    let req = format!(
        "GET /api/v1/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{ae}\r\n",
        gw.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = BytesMut::new();
    let h = head(&mut s, &mut buf).await;
    (h, (s, buf))
}

/// De-chunks what is complete in `raw` into `body`; true at the last chunk.
fn dechunk(raw: &mut BytesMut, body: &mut Vec<u8>) -> bool {
    while let Some(p) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..p]).unwrap().trim(), 16)
            .expect("chunk size");
        if raw.len() < p + 2 + size + 2 {
            return false;
        }
        body.extend_from_slice(&raw[p + 2..p + 2 + size]);
        raw.advance(p + 2 + size + 2);
        if size == 0 {
            return true;
        }
    }
    false
}

/// One SSE client on a raw socket: the body as received (de-chunked) and
/// the text it inflates to so far.
struct Sse {
    s: TcpStream,
    raw: BytesMut,
    /// The whole body as received.
    body: Vec<u8>,
    /// Body bytes already inflated.
    used: usize,
    /// A standard gzip reader fed as the body arrives (gzip streams).
    gz: Option<flate2::write::GzDecoder<Vec<u8>>>,
    text: Vec<u8>,
}

impl Sse {
    async fn open(gw: &Gateway, gzip: bool) -> (String, Sse) {
        let (h, (s, raw)) = sse_raw(gw, gzip).await;
        let sse = Sse {
            s,
            raw,
            body: Vec::new(),
            used: 0,
            gz: gzip.then(|| flate2::write::GzDecoder::new(Vec::new())),
            text: Vec::new(),
        };
        (h, sse)
    }

    /// Reads until the text after `from` contains `needle`; false when the
    /// stream ended first.
    async fn until(&mut self, needle: &str, from: usize) -> bool {
        tokio::time::timeout(SECS, async {
            loop {
                let end = dechunk(&mut self.raw, &mut self.body);
                match &mut self.gz {
                    Some(d) => {
                        use std::io::Write as _;
                        d.write_all(&self.body[self.used..]).expect("valid gzip");
                        d.flush().expect("valid gzip");
                        self.used = self.body.len();
                        self.text.extend_from_slice(d.get_ref());
                        d.get_mut().clear();
                    }
                    None => {
                        self.text.extend_from_slice(&self.body[self.used..]);
                        self.used = self.body.len();
                    }
                }
                let text = String::from_utf8_lossy(&self.text[from..]);
                if text
                    .find(needle)
                    .is_some_and(|at| text[at..].contains("\n\n"))
                {
                    return true;
                }
                if end || self.s.read_buf(&mut self.raw).await.unwrap() == 0 {
                    return false;
                }
            }
        })
        .await
        .expect("event in time")
    }
}

/// The `data:` of the last event named `kind` in `text`.
fn last_data(text: &[u8], kind: &str) -> Value {
    let text = String::from_utf8_lossy(text);
    let ev = text
        .split("\n\n")
        .filter(|e| e.contains(&format!("event: {kind}\n")))
        .last()
        .expect("event");
    let data = ev
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data");
    serde_json::from_str(data).unwrap()
}

#[actix_web::test]
async fn sse_gzip_only_for_clients_that_accept_it() {
    let gw = ready_gateway(40, SessionConfig::default()).await;
    let (hp, mut plain) = Sse::open(&gw, false).await;
    let (hz, mut zipped) = Sse::open(&gw, true).await;
    assert!(!hp.contains("content-encoding"), "{hp}");
    assert!(hz.contains("content-encoding: gzip"), "{hz}");
    let counted = |m: &std::sync::atomic::AtomicU64| m.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted(&gw.state.metrics.compressed_sse), 1);

    assert!(plain.until("event: snapshot", 0).await);
    assert!(zipped.until("event: snapshot", 0).await);
    assert!(
        zipped.text.starts_with(b"retry: "),
        "gzip body starts with the retry line"
    );
    let (p, z) = (
        last_data(&plain.text, "snapshot"),
        last_data(&zipped.text, "snapshot"),
    );
    assert_eq!(p["agents"].as_array().unwrap().len(), 40);
    assert_eq!(p["agents"], z["agents"]);
    assert!(
        zipped.body.len() * 2 < plain.body.len(),
        "compressed: {} vs {} bytes",
        zipped.body.len(),
        plain.body.len()
    );

    let (fp, fz) = (plain.text.len(), zipped.text.len());
    gw.feed(presence("u0007", SystemPresence::Away, 100));
    assert!(plain.until("event: delta", fp).await);
    assert!(zipped.until("event: delta", fz).await);
    assert_eq!(
        last_data(&plain.text, "delta"),
        last_data(&zipped.text, "delta")
    );
    assert_eq!(
        last_data(&zipped.text, "delta")["changes"][0]["id"],
        "u0007"
    );

    // When the gateway ends the stream (shutdown), the gzip member is
    // complete: the trailer's CRC-32 and length check out in a standard
    // gzip reader that reads the whole body at once.
    gw.registry
        .send(presence_gateway::registry::CloseAll)
        .await
        .unwrap();
    assert!(!zipped.until("never-sent", 0).await, "the stream ends");
    let mut all = Vec::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_end(&mut all)
        .expect("a complete, checked gzip member");
    assert_eq!(all, zipped.text);
    assert!(String::from_utf8_lossy(&all).ends_with("\n\n"));
    assert!(String::from_utf8_lossy(&all).contains("event: close"));
}
