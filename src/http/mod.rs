//! Downstream HTTP API (filled in by the registry/session work).
