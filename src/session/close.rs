//! Every way a session ends, with its WebSocket close code. SSE has no close
//! codes: the same reason is sent as a final `event: close` message
//! (`{"type":"close","code":…,"reason":…}`) before the stream ends.
//!
//! Codes 1000–1011 are RFC 6455 §7.4.1; 4000–4999 are reserved for
//! applications (RFC 6455 §7.4.2) and ours are listed here.

/// Why a session ended (also the label of the disconnect counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the connection (close frame or end of stream).
    /// Answered with 1000 (normal closure).
    ClientClosed,
    /// The gateway is shutting down: 1001 (going away). Reconnect to another
    /// node or retry later.
    Shutdown,
    /// Too many malformed client messages (more than
    /// `session.max_malformed_per_minute`): 1008 (policy violation).
    /// Fix the client; do not reconnect in a loop.
    PolicyViolation,
    /// The client sent a frame the WebSocket codec refused (bad framing,
    /// message over `session.max_client_message_bytes`): 1002 is implied by
    /// the transport; the connection is dropped.
    ProtocolError,
    /// The client fell behind by more than `session.outbox_bytes` even
    /// after coalescing, or its mailbox filled: 4008 (slow consumer).
    /// Reconnect with `since` / `Last-Event-ID`; the gap is replayed when
    /// still buffered, else a fresh snapshot comes.
    SlowConsumer,
    /// No frame (not even a pong) from a WebSocket client for
    /// `session.idle_timeout_secs`: 4000 (idle timeout).
    IdleTimeout,
    /// The transport failed under the session (connection reset).
    TransportClosed,
}

impl DisconnectReason {
    /// Every reason, in counter order.
    pub const ALL: [DisconnectReason; 7] = [
        DisconnectReason::ClientClosed,
        DisconnectReason::Shutdown,
        DisconnectReason::PolicyViolation,
        DisconnectReason::ProtocolError,
        DisconnectReason::SlowConsumer,
        DisconnectReason::IdleTimeout,
        DisconnectReason::TransportClosed,
    ];

    /// The WebSocket close code sent for this reason.
    pub fn code(self) -> u16 {
        match self {
            DisconnectReason::ClientClosed => NORMAL,
            DisconnectReason::Shutdown => GOING_AWAY,
            DisconnectReason::PolicyViolation => POLICY_VIOLATION,
            DisconnectReason::ProtocolError => PROTOCOL_ERROR,
            DisconnectReason::SlowConsumer => SLOW_CONSUMER,
            DisconnectReason::IdleTimeout => IDLE_TIMEOUT,
            DisconnectReason::TransportClosed => ABNORMAL,
        }
    }

    /// The close reason text (≤ 123 bytes, RFC 6455 §5.5).
    pub fn text(self) -> &'static str {
        match self {
            DisconnectReason::ClientClosed => "bye",
            DisconnectReason::Shutdown => "gateway shutting down",
            DisconnectReason::PolicyViolation => "too many malformed messages",
            DisconnectReason::ProtocolError => "protocol error",
            DisconnectReason::SlowConsumer => "slow consumer",
            DisconnectReason::IdleTimeout => "idle timeout",
            DisconnectReason::TransportClosed => "connection lost",
        }
    }

    /// Counter label (`snake_case`).
    pub fn label(self) -> &'static str {
        match self {
            DisconnectReason::ClientClosed => "client_closed",
            DisconnectReason::Shutdown => "shutdown",
            DisconnectReason::PolicyViolation => "policy_violation",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::IdleTimeout => "idle_timeout",
            DisconnectReason::TransportClosed => "transport_closed",
        }
    }

    /// Index into counter arrays.
    pub fn index(self) -> usize {
        // unwrap: ALL lists every variant.
        Self::ALL.iter().position(|r| *r == self).unwrap()
    }
}

/// 1000 Normal closure (RFC 6455): the client asked to close.
pub const NORMAL: u16 = 1000;
/// 1001 Going away (RFC 6455): gateway shutdown or drain.
pub const GOING_AWAY: u16 = 1001;
/// 1002 Protocol error (RFC 6455): the client broke WebSocket framing.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1006 Abnormal closure (RFC 6455): never sent, reported by clients when
/// the connection dropped without a close frame.
pub const ABNORMAL: u16 = 1006;
/// 1008 Policy violation (RFC 6455): repeated malformed client messages.
pub const POLICY_VIOLATION: u16 = 1008;
/// 4000 Idle timeout: no pong or other frame within the idle timeout.
pub const IDLE_TIMEOUT: u16 = 4000;
/// 4008 Slow consumer: the client fell too far behind; resume on reconnect.
pub const SLOW_CONSUMER: u16 = 4008;
