//! Bytes on the wire, built once and shared by every client that wants
//! the same form: WebSocket frames (server frames are unmasked, so a
//! frame's bytes, header included, are the same for every client),
//! permessage-deflate messages (RFC 7692, negotiated with
//! `server_no_context_takeover`, so each message is compressed on its own
//! and one compressed frame serves every client that negotiated it), and
//! the deflate blocks of a gzip SSE stream (each block starts from an empty
//! window and ends byte-aligned on a sync flush, so blocks compressed once
//! concatenate after any connection's gzip header).
//!
//! Also reads client frames ([`FrameReader`]): masked, size-limited,
//! optionally compressed (RSV1, inflated with a fresh window per message:
//! the gateway answers `client_no_context_takeover`).

use std::cell::RefCell;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// WebSocket opcodes the gateway sends or reads.
pub mod op {
    /// Continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xA;
}

/// FIN bit of the first header byte.
const FIN: u8 = 0x80;
/// RSV1: "this message is compressed" under permessage-deflate.
const RSV1: u8 = 0x40;
/// Largest control-frame payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// Compression level for shared frames (deflate 1–9): 6, zlib's default.
/// Paid once per frame per encoding, never per client.
const LEVEL: u32 = 6;

/// The 10-byte gzip member header an SSE stream with `Content-Encoding:
/// gzip` starts with (no name, no mtime, OS unknown).
pub const GZIP_HEADER: &[u8] = &[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// Writes a server (unmasked) frame header for a payload of `len` bytes.
fn put_header(out: &mut BytesMut, first: u8, len: usize) {
    out.put_u8(first);
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// One complete unmasked frame (`FIN` set): header + payload.
pub fn ws_frame(opcode: u8, compressed: bool, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    put_header(
        &mut out,
        FIN | opcode | if compressed { RSV1 } else { 0 },
        payload.len(),
    );
    out.extend_from_slice(payload);
    out.freeze()
}

/// Largest frame payload of a message: longer messages (snapshots) go as
/// one message in continuation frames (RFC 6455 §5.4; every WebSocket
/// library hands over the whole message), so clients with a frame-size
/// limit (awc: 64 KiB) read them too. Built once per message, shared.
pub const FRAGMENT: usize = 8 * 1024;

/// One message as unmasked frames: a single frame when it fits in
/// [`FRAGMENT`], else a first frame (with the opcode, and RSV1 when
/// compressed), continuation frames and a final one, concatenated.
pub fn ws_message(opcode: u8, compressed: bool, payload: &[u8]) -> Bytes {
    if payload.len() <= FRAGMENT {
        return ws_frame(opcode, compressed, payload);
    }
    let n = payload.len().div_ceil(FRAGMENT);
    let mut out = BytesMut::with_capacity(payload.len() + 4 * n);
    for (i, piece) in payload.chunks(FRAGMENT).enumerate() {
        let mut first = if i == 0 {
            opcode | if compressed { RSV1 } else { 0 }
        } else {
            op::CONTINUATION
        };
        if i + 1 == n {
            first |= FIN;
        }
        put_header(&mut out, first, piece.len());
        out.extend_from_slice(piece);
    }
    out.freeze()
}

/// The header length of the frame [`ws_frame`] builds for `len` bytes.
pub fn ws_header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= u16::MAX as usize {
        4
    } else {
        10
    }
}

/// A ping with an empty payload.
pub fn ws_ping() -> Bytes {
    Bytes::from_static(&[FIN | op::PING, 0])
}

/// A pong echoing (at most 125 bytes of) the ping's payload.
pub fn ws_pong(payload: &[u8]) -> Bytes {
    ws_frame(op::PONG, false, &payload[..payload.len().min(MAX_CONTROL)])
}

/// A close frame with `code` and `reason` (cut to fit a control frame, on a
/// character boundary).
pub fn ws_close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = Vec::with_capacity(2 + end);
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&reason.as_bytes()[..end]);
    ws_frame(op::CLOSE, false, &p)
}

thread_local! {
    /// One compressor per thread, reset between messages (a fresh
    /// compressor allocates its window and tables every time).
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

/// Raw deflate of `data` from an empty window, ending with a sync flush
/// (byte-aligned, the last 4 bytes `00 00 ff ff`). No final block.
pub fn deflate_sync(data: &[u8]) -> Vec<u8> {
    DEFLATE.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(data.len() / 3 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = c.total_in();
            // Errors cannot happen with a valid stream state and room to write.
            let _ = c.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(c.total_in() - before) as usize..];
            // Done when all input is taken and the flush left spare room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        out
    })
}

/// A permessage-deflate text message (RSV1 set, fragmented like
/// [`ws_message`]) of `text`: deflated from an
/// empty window, the sync flush's `00 00 ff ff` tail removed (RFC 7692 §7.2.1).
pub fn ws_deflated_text(text: &[u8]) -> Bytes {
    let mut z = deflate_sync(text);
    z.truncate(z.len().saturating_sub(4));
    ws_message(op::TEXT, true, &z)
}

/// A gzip body piece for SSE: `text` deflated from an empty window, ending
/// byte-aligned (sync flush), plus its CRC-32 and length for the stream's
/// trailer.
#[derive(Debug, Clone)]
pub struct GzipBlock {
    /// The deflate block(s).
    pub bytes: Bytes,
    /// CRC-32 of the uncompressed text.
    pub crc: u32,
    /// Length of the uncompressed text.
    pub len: u64,
}

impl GzipBlock {
    /// Compresses `text` once.
    pub fn deflated(text: &[u8]) -> GzipBlock {
        GzipBlock {
            bytes: Bytes::from(deflate_sync(text)),
            crc: crc32fast::hash(text),
            len: text.len() as u64,
        }
    }

    /// Wraps `text` in stored (uncompressed) blocks: no compressor, for
    /// the few small per-connection lines (`retry:`, keepalive, `close`).
    pub fn stored(text: &[u8]) -> GzipBlock {
        let mut out = BytesMut::with_capacity(text.len() + 5 * (text.len() / 65535 + 1));
        for piece in text.chunks(65535) {
            out.put_u8(0); // BFINAL 0, BTYPE 00, padded to the byte
            out.put_u16_le(piece.len() as u16);
            out.put_u16_le(!(piece.len() as u16));
            out.extend_from_slice(piece);
        }
        GzipBlock {
            bytes: out.freeze(),
            crc: crc32fast::hash(text),
            len: text.len() as u64,
        }
    }
}

/// The running CRC and length of one gzip SSE stream, for its trailer.
#[derive(Debug, Default)]
pub struct GzipStream {
    crc: crc32fast::Hasher,
    len: u64,
}

impl GzipStream {
    /// Accounts a block written to this stream (a CRC combine: cost does
    /// not depend on the block's size).
    pub fn add(&mut self, b: &GzipBlock) {
        self.crc
            .combine(&crc32fast::Hasher::new_with_initial_len(b.crc, b.len));
        self.len += b.len;
    }

    /// The end of the stream: an empty final block, CRC-32 and ISIZE.
    pub fn trailer(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(10);
        // Final, fixed-Huffman block holding only end-of-block: bits 1,01,0000000.
        out.put_slice(&[0x03, 0x00]);
        out.put_u32_le(self.crc.clone().finalize());
        out.put_u32_le(self.len as u32); // ISIZE: length mod 2^32
        out.freeze()
    }
}

// ---------------------------------------------------------------- negotiation

/// The `Sec-WebSocket-Extensions` answer when permessage-deflate is
/// accepted: the server compresses each message on its own and asks the
/// client to do the same, so neither side keeps a window per connection.
pub const DEFLATE_RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// True when one of the client's `Sec-WebSocket-Extensions` offers is a
/// permessage-deflate the gateway can accept: known parameters, each at
/// most once, and `server_max_window_bits` (if any) 15, since shared frames
/// are compressed with a 32 KiB window. Offers the gateway cannot honour
/// are declined (RFC 7692 §5), and the connection runs uncompressed.
pub fn accepts_deflate<'a>(header_values: impl IntoIterator<Item = &'a str>) -> bool {
    header_values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|offer| {
            let mut parts = offer.split(';').map(str::trim);
            if !parts
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
            {
                return false;
            }
            let mut seen: Vec<&str> = Vec::new();
            for p in parts {
                if p.is_empty() {
                    continue;
                }
                let (name, value) = match p.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (p, None),
                };
                if seen.contains(&name) {
                    return false;
                }
                seen.push(name);
                let ok = match name {
                    "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
                    "server_max_window_bits" => value == Some("15"),
                    "client_max_window_bits" => {
                        value.is_none_or(|v| v.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b)))
                    }
                    _ => false,
                };
                if !ok {
                    return false;
                }
            }
            true
        })
}

/// True when `Accept-Encoding` values admit gzip (`gzip` or `x-gzip`
/// without `q=0`).
pub fn accepts_gzip<'a>(header_values: impl IntoIterator<Item = &'a str>) -> bool {
    header_values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            if !(name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) {
                return false;
            }
            !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            })
        })
}

// ---------------------------------------------------------------- reading

/// A message (or control frame) from a WebSocket client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// A complete text message (valid UTF-8, inflated if it was compressed).
    Text(String),
    /// A complete binary message.
    Binary,
    /// A fragment of a fragmented message (not accepted by the gateway).
    Fragment,
    /// Ping with its payload.
    Ping(Bytes),
    /// Pong.
    Pong,
    /// Close, with the client's code if it sent one.
    Close(Option<u16>),
}

/// Why a client's frames cannot be read: the connection closes (1002/1009).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Unmasked frame, reserved bits or opcode, bad control frame, bad
    /// compressed data, or text that is not UTF-8.
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// A frame (or its inflated message) over the size limit, in bytes.
    #[error("websocket message over {0} bytes")]
    TooLarge(usize),
}

/// Reads client frames from a byte buffer (RFC 6455 §5), inflating
/// compressed messages when permessage-deflate was negotiated.
#[derive(Debug)]
pub struct FrameReader {
    /// Largest frame payload and inflated message, in bytes.
    max: usize,
    /// permessage-deflate was negotiated.
    deflate: bool,
}

impl FrameReader {
    /// A reader with a size limit (bytes) and the negotiated compression.
    pub fn new(max: usize, deflate: bool) -> FrameReader {
        FrameReader { max, deflate }
    }

    /// Takes one complete frame off the front of `buf`; `Ok(None)` when
    /// more bytes are needed.
    pub fn next(&self, buf: &mut BytesMut) -> Result<Option<ClientFrame>, ReadError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & FIN != 0;
        let rsv1 = b0 & RSV1 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x30 != 0 {
            return Err(ReadError::Protocol("reserved bits set"));
        }
        if b1 & 0x80 == 0 {
            return Err(ReadError::Protocol("client frames must be masked"));
        }
        let (len, at) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut a = [0u8; 8];
                a.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(a), 10)
            }
            n => (n as u64, 2),
        };
        let control = opcode & 0x08 != 0;
        if control && (len > MAX_CONTROL as u64 || !fin) {
            return Err(ReadError::Protocol("bad control frame"));
        }
        if len > self.max as u64 {
            return Err(ReadError::TooLarge(self.max));
        }
        let len = len as usize;
        if buf.len() < at + 4 + len {
            buf.reserve(at + 4 + len - buf.len());
            return Ok(None);
        }
        let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        buf.advance(at + 4);
        let mut payload = buf.split_to(len);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
        if rsv1 && (control || opcode == op::CONTINUATION || !self.deflate) {
            return Err(ReadError::Protocol("RSV1 set without a compressed message"));
        }
        Ok(Some(match opcode {
            op::TEXT | op::BINARY if !fin => ClientFrame::Fragment,
            op::CONTINUATION => ClientFrame::Fragment,
            op::TEXT => {
                let data = if rsv1 {
                    self.inflate(&payload)?
                } else {
                    payload.to_vec()
                };
                ClientFrame::Text(
                    String::from_utf8(data)
                        .map_err(|_| ReadError::Protocol("text is not UTF-8"))?,
                )
            }
            op::BINARY => ClientFrame::Binary,
            op::PING => ClientFrame::Ping(payload.freeze()),
            op::PONG => ClientFrame::Pong,
            op::CLOSE => {
                if payload.len() == 1 {
                    return Err(ReadError::Protocol("close payload of one byte"));
                }
                ClientFrame::Close(
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                )
            }
            _ => return Err(ReadError::Protocol("unknown opcode")),
        }))
    }

    /// Inflates one compressed message (fresh window: the gateway answered
    /// `client_no_context_takeover`), refusing output over the limit.
    fn inflate(&self, data: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut d = Decompress::new(false);
        let mut input = Vec::with_capacity(data.len() + 4);
        input.extend_from_slice(data);
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity((data.len() * 4).min(self.max) + 64);
        loop {
            let before_in = d.total_in();
            let before_out = d.total_out();
            let status = d
                .decompress_vec(
                    &input[d.total_in() as usize..],
                    &mut out,
                    FlushDecompress::Sync,
                )
                .map_err(|_| ReadError::Protocol("bad compressed data"))?;
            if out.len() > self.max {
                return Err(ReadError::TooLarge(self.max));
            }
            let consumed_all = d.total_in() as usize >= input.len();
            if status == Status::StreamEnd || (consumed_all && out.len() < out.capacity()) {
                return Ok(out);
            }
            if d.total_in() == before_in
                && d.total_out() == before_out
                && out.len() < out.capacity()
            {
                return Err(ReadError::Protocol("bad compressed data"));
            }
            out.reserve(out.capacity().clamp(1024, self.max + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn mask(first: u8, payload: &[u8]) -> BytesMut {
        let key = [1u8, 2, 3, 4];
        let mut b = BytesMut::new();
        b.put_u8(first);
        if payload.len() < 126 {
            b.put_u8(0x80 | payload.len() as u8);
        } else {
            b.put_u8(0x80 | 126);
            b.put_u16(payload.len() as u16);
        }
        b.extend_from_slice(&key);
        b.extend(payload.iter().enumerate().map(|(i, c)| c ^ key[i & 3]));
        b
    }

    #[test]
    fn deflated_frames_inflate_with_a_standard_inflater() {
        let text = br#"{"type":"delta","changes":[{"id":"a"},{"id":"a"},{"id":"a"}]}"#;
        let f = ws_deflated_text(text);
        assert_eq!(f[0], 0xC1, "FIN + RSV1 + text");
        let body = &f[ws_header_len(f.len() - 2)..];
        let mut z = body.to_vec();
        z.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&z[..])
            .read_to_end(&mut out)
            .ok();
        assert_eq!(out, text);
    }

    #[test]
    fn gzip_blocks_concatenate_into_one_valid_member() {
        let mut body = GZIP_HEADER.to_vec();
        let mut s = GzipStream::default();
        let mut plain = Vec::new();
        for (i, text) in [&b"retry: 1000\n\n"[..], b"event: delta\ndata: {}\n\n", b"x"]
            .iter()
            .enumerate()
        {
            let b = if i % 2 == 0 {
                GzipBlock::stored(text)
            } else {
                GzipBlock::deflated(text)
            };
            s.add(&b);
            body.extend_from_slice(&b.bytes);
            plain.extend_from_slice(text);
        }
        // A reader of the unfinished stream gets everything so far...
        let mut partial = Vec::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut partial);
        assert_eq!(partial, plain);
        // ...and the trailer makes it a complete, checked member.
        body.extend_from_slice(&s.trailer());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("valid gzip");
        assert_eq!(out, plain);
    }

    #[test]
    fn reads_masked_frames_and_compressed_text() {
        let r = FrameReader::new(1024, true);
        let mut buf = mask(0x81, b"{\"type\":\"subscribe\"}");
        let z = {
            let mut z = deflate_sync(b"hello hello hello");
            z.truncate(z.len() - 4);
            z
        };
        buf.extend_from_slice(&mask(0xC1, &z));
        buf.extend_from_slice(&mask(0x89, b"p"));
        assert_eq!(
            r.next(&mut buf),
            Ok(Some(ClientFrame::Text("{\"type\":\"subscribe\"}".into())))
        );
        assert_eq!(
            r.next(&mut buf),
            Ok(Some(ClientFrame::Text("hello hello hello".into())))
        );
        assert_eq!(
            r.next(&mut buf),
            Ok(Some(ClientFrame::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(r.next(&mut buf), Ok(None));
    }

    #[test]
    fn refuses_what_rfc_6455_refuses() {
        let plain = FrameReader::new(16, false);
        let mut unmasked = BytesMut::from(&[0x81u8, 0x01, b'a'][..]);
        assert!(plain.next(&mut unmasked).is_err());
        assert!(
            plain.next(&mut mask(0xC1, b"ab")).is_err(),
            "RSV1 not negotiated"
        );
        assert_eq!(
            plain.next(&mut mask(0x81, &[b'a'; 17])),
            Err(ReadError::TooLarge(16))
        );
        assert_eq!(
            plain.next(&mut mask(0x01, b"ab")),
            Ok(Some(ClientFrame::Fragment))
        );
        let bomb = {
            let mut z = deflate_sync(&[b'a'; 100_000]);
            z.truncate(z.len() - 4);
            z
        };
        let r = FrameReader::new(1024, true);
        assert_eq!(
            r.next(&mut mask(0xC1, &bomb)),
            Err(ReadError::TooLarge(1024))
        );
    }

    #[test]
    fn negotiation() {
        assert!(accepts_deflate([
            "permessage-deflate; client_max_window_bits"
        ]));
        assert!(accepts_deflate(["x-webkit, permessage-deflate"]));
        assert!(!accepts_deflate([
            "permessage-deflate; server_max_window_bits=10"
        ]));
        assert!(accepts_deflate([
            "permessage-deflate; server_max_window_bits=10, permessage-deflate"
        ]));
        assert!(!accepts_deflate(["permessage-deflate; foo"]));
        assert!(!accepts_deflate([""]));
        assert!(accepts_gzip(["gzip, deflate, br"]));
        assert!(!accepts_gzip(["gzip;q=0, br"]));
        assert!(!accepts_gzip(["identity"]));
    }
}
