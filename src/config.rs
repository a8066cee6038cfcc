//! One typed configuration, loaded once from a TOML file plus environment
//! overrides, and validated before any port is bound (`main` exits 64 with
//! the message on failure). Every field carries a doc comment: these are the
//! user docs, mirrored in `docs/configuration.md`.
//!
//! Environment overrides, applied after the file:
//! - Genesys's own variable names: `GENESYSCLOUD_REGION`,
//!   `GENESYSCLOUD_OAUTHCLIENT_ID`, `GENESYSCLOUD_OAUTHCLIENT_SECRET`, and
//!   `GENESYSCLOUD_API_BASE` / `GENESYSCLOUD_LOGIN_BASE` to point elsewhere
//!   (the simulator);
//! - any field as `PRESENCE_GATEWAY__SECTION__FIELD=value` (value parsed as a
//!   TOML literal when it is one, else taken as a string), e.g.
//!   `PRESENCE_GATEWAY__SERVER__LISTEN=0.0.0.0:8080`.
//!
//! Nothing else in the crate reads the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::genesys::{GenesysConfig, UpstreamConfig};
use crate::history::HistoryConfig;
use crate::interactions::InteractionsConfig;
use crate::registry::RegistryConfig;
use crate::session::SessionConfig;
use crate::store::StoreConfig;
use crate::webhooks::WebhookConfig;
use crate::writes::WritesConfig;

/// The downstream server (`[server]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP API, streams and pages listen on.
    pub listen: SocketAddr,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// Browser origins (`https://wallboard.example.com`) allowed to call
    /// the API, open WebSockets and SSE streams, besides the gateway's own
    /// pages; `"*"` allows any. Other origins get 403. Default: none.
    pub allowed_origins: Vec<String>,
    /// The gateway's own origins as browsers see them
    /// (`https://presence.example.com`), when it is reached through a name
    /// or a proxy. Requests carrying another `Origin` that is not in
    /// `allowed_origins` get 403. Default: the origin of the listen address
    /// (on loopback also `localhost`, `127.0.0.1` and `[::1]` with its
    /// port). The `Host` header is never trusted for this (DNS rebinding).
    pub public_origins: Vec<String>,
    /// Largest request body accepted, in bytes (413 above). 1 KiB to
    /// 16 MiB; default 64 KiB.
    pub max_body_bytes: usize,
    /// Grace period of a graceful drain (SIGTERM / SIGINT), in seconds:
    /// the process exits within it. 1 to 600; default 30.
    pub drain_secs: u64,
    /// Window over which stream clients are closed during a drain, so
    /// they do not all reconnect at once, in seconds. Less than
    /// `drain_secs`; default 5.
    pub drain_spread_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            allowed_origins: Vec::new(),
            public_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            drain_secs: 30,
            drain_spread_secs: 5,
        }
    }
}

/// Logging (`[log]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `presence_gateway=debug,info`
    /// (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub genesys: GenesysConfig,
    pub upstream: UpstreamConfig,
    pub registry: RegistryConfig,
    pub session: SessionConfig,
    pub writes: WritesConfig,
    pub interactions: InteractionsConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    /// Client authentication (`[auth]`, docs/security.md).
    pub auth: crate::auth::AuthConfig,
    /// Presence history (`[history]`).
    pub history: HistoryConfig,
    /// Webhook subscribers (`[[webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// Dashboard thresholds, desktop presences and queue figures (`[board]`).
    pub board: crate::board::BoardConfig,
    /// Scale-out on Redis (`[cluster]`, docs/scaling.md).
    pub cluster: crate::cluster::ClusterConfig,
}

/// A configuration problem, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

pub use crate::validate::check_range;

/// Prefix of generic overrides: `PRESENCE_GATEWAY__SECTION__FIELD`.
pub const ENV_PREFIX: &str = "PRESENCE_GATEWAY__";

/// `http(s)://host[:port]`, nothing after (a browser's `Origin`).
fn is_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"));
    rest.is_some_and(|r| {
        let r = r.strip_suffix('/').unwrap_or(r);
        !r.is_empty() && !r.contains(['/', '?', '#', '@', ' '])
    })
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies the environment
    /// `env` (pass `std::env::vars()`), and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "(defaults)".to_string()),
        };
        Self::from_toml(&text, &name, env)
    }

    /// Like [`Config::load`] from TOML text.
    pub fn from_toml(
        text: &str,
        name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: name.to_string(),
                    message: e.to_string(),
                })?;
        let env: BTreeMap<String, String> = env.into_iter().collect();
        apply_env(&mut tree, &env)?;
        let cfg: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: name.to_string(),
                message: e.to_string(),
            })?;
        cfg.validate().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Checks every section, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.genesys.validate()?;
        self.upstream.validate()?;
        self.registry.validate()?;
        self.session.validate()?;
        self.writes.validate()?;
        self.interactions.validate()?;
        self.store.validate()?;
        self.auth.validate()?;
        if !(1024..=16 << 20).contains(&self.server.max_body_bytes) {
            return Err(format!(
                "server.max_body_bytes = {}: must be between 1024 and 16777216",
                self.server.max_body_bytes
            ));
        }
        for (field, list, star) in [
            ("allowed_origins", &self.server.allowed_origins, true),
            ("public_origins", &self.server.public_origins, false),
        ] {
            for o in list {
                if !(is_origin(o) || (star && o == "*")) {
                    return Err(format!(
                        "server.{field}: {o:?} is not an origin; write scheme://host[:port] \
                         with no path, e.g. \"https://wallboard.example.com\"{}",
                        if star { " (or \"*\")" } else { "" }
                    ));
                }
            }
        }
        if !(1..=600).contains(&self.server.drain_secs) {
            return Err(format!(
                "server.drain_secs = {}: must be between 1 and 600",
                self.server.drain_secs
            ));
        }
        if self.server.drain_spread_secs >= self.server.drain_secs {
            return Err(format!(
                "server.drain_spread_secs = {}: must be less than server.drain_secs ({})",
                self.server.drain_spread_secs, self.server.drain_secs
            ));
        }
        self.history.validate()?;
        self.board.validate()?;
        self.cluster.validate()?;
        crate::webhooks::validate_all(&self.webhooks)?;
        if self.log.format != "text" && self.log.format != "json" {
            return Err(format!(
                "log.format must be \"text\" or \"json\", got {:?}",
                self.log.format
            ));
        }
        Ok(())
    }
}

/// Genesys's own variable names → config paths.
const GENESYS_ENV: [(&str, &str); 5] = [
    ("GENESYSCLOUD_REGION", "region"),
    ("GENESYSCLOUD_OAUTHCLIENT_ID", "client_id"),
    ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "client_secret"),
    ("GENESYSCLOUD_API_BASE", "api_base"),
    ("GENESYSCLOUD_LOGIN_BASE", "login_base"),
];

fn apply_env(tree: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (var, field) in GENESYS_ENV {
        if let Some(v) = env.get(var) {
            let section = tree
                .entry("genesys")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(t) = section.as_table_mut() else {
                return Err(ConfigError::Env {
                    name: var.into(),
                    message: "[genesys] in the file is not a table".into(),
                });
            };
            t.insert(field.into(), toml::Value::String(v.clone()));
        }
    }
    for (var, value) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.len() != 2 || path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                name: var.clone(),
                message: "expected PRESENCE_GATEWAY__SECTION__FIELD".into(),
            });
        }
        // A TOML literal (number, bool, array) when it parses as one, else a string.
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let section = tree
            .entry(path[0].clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match section.as_table_mut() {
            Some(t) => {
                t.insert(path[1].clone(), parsed);
            }
            None => {
                return Err(ConfigError::Env {
                    name: var.clone(),
                    message: format!("[{}] is not a table", path[0]),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const CREDS: [(&str, &str); 2] = [
        ("GENESYSCLOUD_OAUTHCLIENT_ID", "id"),
        ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "secret"),
    ];

    /// Genesys's variable names fill the credentials; the region picks the hosts.
    #[test]
    fn genesys_env_names() {
        let mut e = env(&CREDS);
        e.extend(env(&[("GENESYSCLOUD_REGION", "eu-west-1")]));
        let cfg = Config::from_toml("", "t", e).expect("valid");
        assert_eq!(cfg.genesys.client_id, "id");
        let (api, login) = cfg.genesys.bases().expect("bases");
        assert_eq!(api, "https://api.mypurecloud.ie");
        assert_eq!(login, "https://login.mypurecloud.ie");
    }

    /// Unknown fields and bad values are refused with the field's name.
    #[test]
    fn bad_config_names_the_field() {
        let err =
            Config::from_toml("[upstream]\nrate_per_minte = 3\n", "t", env(&CREDS)).unwrap_err();
        assert!(err.to_string().contains("rate_per_minte"), "{err}");
        let err = Config::from_toml("[upstream]\ntopics_per_channel = 5000\n", "t", env(&CREDS))
            .unwrap_err();
        assert!(err.to_string().contains("topics_per_channel"), "{err}");
        let err =
            Config::from_toml("[genesys]\nregion = \"mars\"\n", "t", env(&CREDS)).unwrap_err();
        assert!(err.to_string().contains("region"), "{err}");
        let err = Config::from_toml("", "t", env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("GENESYSCLOUD_OAUTHCLIENT_ID"),
            "{err}"
        );
    }

    /// `log.format`, the drain window and `[auth]` are checked by name.
    #[test]
    fn ops_sections_checked() {
        let err = Config::from_toml("[log]\nformat = \"yaml\"\n", "t", env(&CREDS)).unwrap_err();
        assert!(err.to_string().contains("log.format"), "{err}");
        let cfg = Config::from_toml("[log]\nformat = \"json\"\n", "t", env(&CREDS)).unwrap();
        assert_eq!(cfg.log.format, "json");
        let err = Config::from_toml(
            "[server]\ndrain_secs = 5\ndrain_spread_secs = 5\n",
            "t",
            env(&CREDS),
        )
        .unwrap_err();
        assert!(err.to_string().contains("drain_spread_secs"), "{err}");
        let err = Config::from_toml(
            "[[auth.api_keys]]\nname = \"k\"\nsha256 = \"abc\"\nrole = \"viewer\"\n",
            "t",
            env(&CREDS),
        )
        .unwrap_err();
        assert!(err.to_string().contains("auth.api_keys[0].sha256"), "{err}");
        let err = Config::from_toml(
            "[[auth.api_keys]]\nname = \"k\"\nsha256 = \"ab\"\nrole = \"root\"\n",
            "t",
            env(&CREDS),
        )
        .unwrap_err();
        assert!(err.to_string().contains("role"), "{err}");
    }

    /// Generic overrides reach any field, typed when they parse as TOML.
    #[test]
    fn generic_overrides() {
        let mut e = env(&CREDS);
        e.extend(env(&[
            ("PRESENCE_GATEWAY__SERVER__LISTEN", "0.0.0.0:9999"),
            ("PRESENCE_GATEWAY__UPSTREAM__RATE_PER_MINUTE", "120"),
        ]));
        let cfg = Config::from_toml("", "t", e).expect("valid");
        assert_eq!(cfg.server.listen.port(), 9999);
        assert_eq!(cfg.upstream.rate_per_minute, 120);
    }
}
