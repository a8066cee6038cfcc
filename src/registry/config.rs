//! Registry configuration: how much history is kept for resume and how long
//! changes wait to be batched. Loaded as the `[registry]` table of the
//! gateway config (by `config.rs`) and validated before any port is bound.

use std::time::Duration;

use crate::validate::check_range;

use serde::Deserialize;

/// Tuning of the registry actor. Every field has a default; an empty
/// `[registry]` table is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Number of delta batches (one `delta` message each, `seq` increments
    /// by one per batch) kept for resume. A client that reconnects with a
    /// cursor older than the oldest buffered batch gets a fresh snapshot
    /// (`recovered: false`). 1 to 1 000 000; default 4096.
    pub replay_batches: usize,
    /// Maximum age of a buffered batch, in seconds; older batches are
    /// dropped even when the buffer is not full. 1 to 86 400; default 300.
    pub replay_max_age_secs: u64,
    /// How long the first change of a batch waits for more changes before
    /// the batch is numbered, encoded and sent, in milliseconds. 0 sends
    /// every change in its own batch. 0 to 1000; default 5.
    pub batch_window_ms: u64,
    /// How often every client receives a `status` message (upstream state
    /// and last-event age) even when nothing changed, in seconds. 1 to
    /// 3600; default 10.
    pub status_interval_secs: u64,
    /// Capacity of the registry actor's mailbox (messages from the upstream
    /// actor and from sessions). 16 to 1 000 000; default 65 536.
    pub mailbox_capacity: usize,
}

/// The table name in error messages.
const SECTION: &str = "registry";

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            replay_batches: 4096,
            replay_max_age_secs: 300,
            batch_window_ms: 5,
            status_interval_secs: 10,
            mailbox_capacity: 65_536,
        }
    }
}

impl RegistryConfig {
    /// Checks every bound; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        check_range(SECTION, "replay_batches", self.replay_batches, 1, 1_000_000)?;
        check_range(
            SECTION,
            "replay_max_age_secs",
            self.replay_max_age_secs,
            1,
            86_400,
        )?;
        check_range(SECTION, "batch_window_ms", self.batch_window_ms, 0, 1000)?;
        check_range(
            SECTION,
            "status_interval_secs",
            self.status_interval_secs,
            1,
            3600,
        )?;
        check_range(
            SECTION,
            "mailbox_capacity",
            self.mailbox_capacity,
            16,
            1_000_000,
        )?;
        Ok(())
    }

    /// [`Self::batch_window_ms`] as a `Duration`.
    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.batch_window_ms)
    }

    /// [`Self::replay_max_age_secs`] as a `Duration`.
    pub fn replay_max_age(&self) -> Duration {
        Duration::from_secs(self.replay_max_age_secs)
    }

    /// [`Self::status_interval_secs`] as a `Duration`.
    pub fn status_interval(&self) -> Duration {
        Duration::from_secs(self.status_interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are valid and an empty table deserialises to them.
    #[test]
    fn defaults_are_valid() {
        let c: RegistryConfig = toml::from_str("").expect("empty table");
        assert_eq!(c, RegistryConfig::default());
        c.validate().expect("defaults valid");
    }

    /// A bad value is refused with the field's name; unknown keys are refused.
    #[test]
    fn bad_values_name_the_field() {
        let c = RegistryConfig {
            replay_batches: 0,
            ..RegistryConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("replay_batches"));
        assert!(toml::from_str::<RegistryConfig>("nope = 1").is_err());
    }
}
