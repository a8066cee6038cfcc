//! Session actors (filled in by the registry/session work).
