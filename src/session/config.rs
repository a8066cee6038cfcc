//! Session configuration: outgoing queue bounds, keepalive, connection
//! limits and abuse policy. Loaded as the `[session]` table of the gateway
//! config and validated before any port is bound.

use std::time::Duration;

use crate::validate::check_range;

use serde::Deserialize;

/// Tuning of every client session (WebSocket and SSE). Every field has a
/// default; an empty `[session]` table is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Bytes of queued messages (snapshots, deltas, `status`, `error`
    /// replies) a client may fall behind by. Past it, queued deltas are
    /// coalesced per agent (latest state wins); if that still exceeds it,
    /// the client is disconnected as a slow consumer (WebSocket close 4008;
    /// SSE `close` event, then the stream ends) and resumes on reconnect. A
    /// snapshot replaces everything queued before it and is always taken,
    /// so keep this above the size of a full snapshot (about 150 bytes per
    /// agent) to leave room for the deltas that follow it.
    /// 4 KiB to 1 GiB; default 1 MiB.
    pub outbox_bytes: usize,
    /// Capacity of each session actor's mailbox, in messages (batches from
    /// the registry not yet moved into the outbox). When it is full the
    /// registry evicts the session as a slow consumer (4008) rather than
    /// wait. The mailbox is not preallocated, so a large bound costs an
    /// idle session nothing; it only has to absorb bursts while the
    /// session's worker thread is busy. 4 to 65 536; default 1024.
    pub mailbox_capacity: usize,
    /// Interval of WebSocket pings and SSE `: keepalive` comments, in
    /// seconds. 1 to 300; default 15.
    pub keepalive_secs: u64,
    /// A WebSocket client that sends nothing (not even a pong) for this
    /// long is closed (code 4000), in seconds. Must exceed
    /// `keepalive_secs`. 2 to 3600; default 45.
    pub idle_timeout_secs: u64,
    /// Reconnection delay suggested to SSE clients (`retry:`), in
    /// milliseconds. 0 to 600 000; default 2000.
    pub sse_retry_ms: u64,
    /// Maximum concurrent stream clients (WebSocket + SSE); more are
    /// refused with 503. 1 to 1 000 000; default 20 000.
    pub max_connections: usize,
    /// Maximum concurrent stream clients from one IP address; more are
    /// refused with 429. 1 to 1 000 000; default 2 000.
    pub max_connections_per_ip: usize,
    /// Malformed client messages tolerated per minute before the
    /// connection is closed with 1008 (policy violation). 1 to 1000;
    /// default 10.
    pub max_malformed_per_minute: u32,
    /// Largest WebSocket message accepted from a client, in bytes. 128 to
    /// 1 MiB; default 16 KiB.
    pub max_client_message_bytes: usize,
    /// How long a closing session waits for its close frame to get through
    /// a stalled connection before dropping it, in seconds. 1 to 300;
    /// default 10.
    pub close_grace_secs: u64,
    /// A write the client's connection has not taken for this long (the
    /// client stopped reading and every buffer on the way is full) gets the
    /// session evicted as a slow consumer (4008, counted), whatever its
    /// queue holds, in seconds. Applies to WebSocket and SSE alike.
    /// 1 to 300; default 30.
    pub write_timeout_secs: u64,
    /// Minimum time between two WebSocket `subscribe`s the session acts on,
    /// in milliseconds. A `subscribe` that arrives sooner is held and
    /// replaced by any later one (only the last matters) and applied when
    /// the interval is over; the client gets one `error` message saying so
    /// per applied subscribe. A client therefore gets at most one snapshot
    /// per interval. 0 (no limit) to 60 000; default 250.
    pub subscribe_interval_ms: u64,
    /// Compress streams for clients that ask: WebSocket permessage-deflate
    /// (`Sec-WebSocket-Extensions`) and gzip SSE (`Accept-Encoding`). Each
    /// message is compressed once and shared by every client that
    /// negotiated it; clients that do not ask get plain frames. Default
    /// true.
    pub compression: bool,
}

/// The table name in error messages.
const SECTION: &str = "session";

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            outbox_bytes: 1 << 20,
            mailbox_capacity: 1024,
            keepalive_secs: 15,
            idle_timeout_secs: 45,
            sse_retry_ms: 2000,
            max_connections: 20_000,
            max_connections_per_ip: 2_000,
            max_malformed_per_minute: 10,
            max_client_message_bytes: 16 * 1024,
            close_grace_secs: 10,
            write_timeout_secs: 30,
            subscribe_interval_ms: 250,
            compression: true,
        }
    }
}

impl SessionConfig {
    /// Checks every bound; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        check_range(SECTION, "outbox_bytes", self.outbox_bytes, 4096, 1 << 30)?;
        check_range(
            SECTION,
            "mailbox_capacity",
            self.mailbox_capacity,
            4,
            65_536,
        )?;
        check_range(SECTION, "keepalive_secs", self.keepalive_secs, 1, 300)?;
        check_range(
            SECTION,
            "idle_timeout_secs",
            self.idle_timeout_secs,
            2,
            3600,
        )?;
        if self.idle_timeout_secs <= self.keepalive_secs {
            return Err(format!(
                "session.idle_timeout_secs = {}: must exceed session.keepalive_secs ({})",
                self.idle_timeout_secs, self.keepalive_secs
            ));
        }
        check_range(SECTION, "sse_retry_ms", self.sse_retry_ms, 0, 600_000)?;
        check_range(
            SECTION,
            "max_connections",
            self.max_connections,
            1,
            1_000_000,
        )?;
        check_range(
            SECTION,
            "max_connections_per_ip",
            self.max_connections_per_ip,
            1,
            1_000_000,
        )?;
        check_range(
            SECTION,
            "max_malformed_per_minute",
            self.max_malformed_per_minute,
            1,
            1000,
        )?;
        check_range(
            SECTION,
            "max_client_message_bytes",
            self.max_client_message_bytes,
            128,
            1 << 20,
        )?;
        check_range(SECTION, "close_grace_secs", self.close_grace_secs, 1, 300)?;
        check_range(
            SECTION,
            "write_timeout_secs",
            self.write_timeout_secs,
            1,
            300,
        )?;
        check_range(
            SECTION,
            "subscribe_interval_ms",
            self.subscribe_interval_ms,
            0,
            60_000,
        )?;
        Ok(())
    }

    /// [`Self::keepalive_secs`] as a `Duration`.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }

    /// [`Self::idle_timeout_secs`] as a `Duration`.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// [`Self::write_timeout_secs`] as a `Duration`.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    /// [`Self::subscribe_interval_ms`] as a `Duration`.
    pub fn subscribe_interval(&self) -> Duration {
        Duration::from_millis(self.subscribe_interval_ms)
    }

    /// [`Self::close_grace_secs`] as a `Duration`.
    pub fn close_grace(&self) -> Duration {
        Duration::from_secs(self.close_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are valid; a bad value names its field.
    #[test]
    fn defaults_valid_and_errors_named() {
        let c: SessionConfig = toml::from_str("").expect("empty table");
        c.validate().expect("defaults valid");
        let bad = SessionConfig {
            idle_timeout_secs: 5,
            keepalive_secs: 10,
            ..SessionConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("idle_timeout_secs"));
    }
}
