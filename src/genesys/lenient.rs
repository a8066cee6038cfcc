//! Tolerant reading of Genesys JSON: one bad record never fails a page, a
//! frame or a sync.
//!
//! Two faults are seen in real directories and events:
//! - **lone UTF-16 surrogate escapes** (`"\ud83d"` left by truncating a
//!   name or message after the first half of an emoji). JSON (RFC 8259 §8.2)
//!   allows the text, but a Rust `String` cannot hold it and `serde_json`
//!   refuses the whole document. [`repair_surrogates`] rewrites each lone
//!   surrogate escape as `\ufffd` (U+FFFD REPLACEMENT CHARACTER), as
//!   WHATWG's and Python's lossy decoders do, before parsing.
//! - **one record of an unexpected shape** (a field of another type, an
//!   unknown enum value) in a page of hundreds. [`Lenient`] parses each
//!   element on its own: a record that does not fit is skipped and counted
//!   in [`SKIPPED_RECORDS`] (exported by `/metrics`), the rest of the page
//!   is kept.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Records skipped because they did not parse (process-wide; `/metrics`
/// `presence_gateway_upstream_records_skipped_total`).
pub static SKIPPED_RECORDS: AtomicU64 = AtomicU64::new(0);

/// Surrogate escapes rewritten to U+FFFD (process-wide; `/metrics`
/// `presence_gateway_upstream_surrogates_repaired_total`).
pub static REPAIRED_SURROGATES: AtomicU64 = AtomicU64::new(0);

fn hex4(b: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// Rewrites every lone UTF-16 surrogate escape (`\uD800`–`\uDFFF` not part
/// of a high-low pair) in a JSON text as `\ufffd`. Valid pairs, other
/// escapes and escaped backslashes (`\\ud83d` is text, not an escape) are
/// left alone. Borrows when there is nothing to repair (the common case).
pub fn repair_surrogates(input: &[u8]) -> Cow<'_, [u8]> {
    let suspicious = input
        .windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && (w[2] == b'd' || w[2] == b'D'));
    if !suspicious {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut repaired = 0u64;
    while i < input.len() {
        let b = input[i];
        if b != b'\\' || i + 1 >= input.len() {
            out.push(b);
            i += 1;
            continue;
        }
        if input[i + 1] != b'u' {
            // Any other escape: copy both bytes (so `\\` never starts one).
            out.extend_from_slice(&input[i..i + 2]);
            i += 2;
            continue;
        }
        let Some(unit) = hex4(&input[i + 2..]) else {
            out.extend_from_slice(&input[i..i + 2]);
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                let low = (input.get(i + 6) == Some(&b'\\') && input.get(i + 7) == Some(&b'u'))
                    .then(|| hex4(&input[i + 8..]))
                    .flatten()
                    .filter(|l| (0xDC00..=0xDFFF).contains(l));
                if low.is_some() {
                    out.extend_from_slice(&input[i..i + 12]);
                    i += 12;
                } else {
                    out.extend_from_slice(br"\ufffd");
                    repaired += 1;
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                out.extend_from_slice(br"\ufffd");
                repaired += 1;
                i += 6;
            }
            _ => {
                out.extend_from_slice(&input[i..i + 6]);
                i += 6;
            }
        }
    }
    if repaired > 0 {
        REPAIRED_SURROGATES.fetch_add(repaired, Ordering::Relaxed);
    }
    Cow::Owned(out)
}

/// Parses a Genesys JSON text after [`repair_surrogates`].
pub fn from_slice<T: DeserializeOwned>(input: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(&repair_surrogates(input))
}

/// One element of a list parsed on its own: `Lenient(None)` when it did not
/// fit `T` (counted in [`SKIPPED_RECORDS`] and logged), so the rest of the
/// list survives. Use as `Vec<Lenient<T>>` and [`Lenient::keep`].
#[derive(Debug)]
pub struct Lenient<T>(pub Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match serde_json::from_value::<T>(v) {
            Ok(t) => Ok(Lenient(Some(t))),
            Err(e) => {
                SKIPPED_RECORDS.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, record = std::any::type_name::<T>(), "skipped a record Genesys sent in an unexpected shape");
                Ok(Lenient(None))
            }
        }
    }
}

impl<T> Lenient<T> {
    /// The elements that parsed.
    pub fn keep(list: Vec<Lenient<T>>) -> impl Iterator<Item = T> {
        list.into_iter().filter_map(|l| l.0)
    }
}

/// `#[serde(deserialize_with = "lenient::vec")]`: a list whose elements
/// that do not fit are skipped (and counted), see [`Lenient`].
pub fn vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let list: Vec<Lenient<T>> = Vec::deserialize(d)?;
    Ok(Lenient::keep(list).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> String {
        String::from_utf8(repair_surrogates(s.as_bytes()).into_owned()).unwrap()
    }

    /// Lone high and low surrogates become U+FFFD; pairs, other escapes and
    /// escaped backslashes are untouched; the result parses.
    #[test]
    fn surrogates() {
        assert_eq!(fix(r#"{"n":"Ann \ud83d"}"#), r#"{"n":"Ann \ufffd"}"#);
        assert_eq!(fix(r#"{"n":"\uDE00x"}"#), r#"{"n":"\ufffdx"}"#);
        assert_eq!(fix(r#"{"n":"\ud83d\ude00"}"#), r#"{"n":"\ud83d\ude00"}"#);
        assert_eq!(fix(r#"{"n":"\\ud83d"}"#), r#"{"n":"\\ud83d"}"#);
        assert_eq!(fix(r#"{"n":"\ud83d\u0041"}"#), r#"{"n":"\ufffd\u0041"}"#);
        assert_eq!(fix(r#"{"n":"\n\ud83d"#), r#"{"n":"\n\ufffd"#);
        assert!(matches!(
            repair_surrogates(br#"{"a":"\u00e9"}"#),
            Cow::Borrowed(_)
        ));
        let v: serde_json::Value = from_slice(br#"{"n":"Ann \ud83d"}"#).unwrap();
        assert_eq!(v["n"], "Ann \u{fffd}");
        assert!(serde_json::from_slice::<serde_json::Value>(br#"{"n":"Ann \ud83d"}"#).is_err());
    }

    /// A record of the wrong shape is skipped; its neighbours are kept.
    #[test]
    fn lenient_lists() {
        #[derive(Deserialize)]
        struct U {
            id: String,
        }
        let before = SKIPPED_RECORDS.load(Ordering::Relaxed);
        let v: Vec<Lenient<U>> =
            serde_json::from_str(r#"[{"id":"a"},{"id":7},{"id":"c"}]"#).unwrap();
        let ids: Vec<String> = Lenient::keep(v).map(|u| u.id).collect();
        assert_eq!(ids, ["a", "c"]);
        assert!(SKIPPED_RECORDS.load(Ordering::Relaxed) > before);
    }
}
