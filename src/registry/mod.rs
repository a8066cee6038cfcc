//! Registry actor (filled in by the registry/session work).
