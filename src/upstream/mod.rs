//! Upstream actor.
