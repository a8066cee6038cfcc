//! `examples/gateway.toml` is the documented defaults, complete and exact,
//! and a bad configuration stops the binary with exit 64 and the field's
//! name before any port is bound (`docs/configuration.md`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use presence_gateway::config::{Config, LogConfig, ServerConfig};
use presence_gateway::genesys::{GenesysConfig, UpstreamConfig};
use presence_gateway::registry::RegistryConfig;
use presence_gateway::session::SessionConfig;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_presence-gateway");

/// Exit code for a bad configuration (sysexits `EX_USAGE`).
const EX_USAGE: i32 = 64;

/// Credentials the example leaves to the environment.
const CREDS: [(&str, &str); 2] = [
    ("GENESYSCLOUD_OAUTHCLIENT_ID", "x"),
    ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "y"),
];

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway.toml")
}

fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    CREDS
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The example loads and every section equals the built-in defaults (the
/// genesys section with the credentials from the environment).
#[test]
fn example_is_the_defaults() {
    let cfg = Config::load(Some(&example()), env(&[])).expect("the example is valid");
    // Only the registry and session configs implement PartialEq; Debug
    // compares every field of the others just as strictly.
    assert_eq!(cfg.registry, RegistryConfig::default());
    assert_eq!(cfg.session, SessionConfig::default());
    assert_eq!(
        format!("{:?}", cfg.upstream),
        format!("{:?}", UpstreamConfig::default())
    );
    assert_eq!(
        format!("{:?}", cfg.server),
        format!("{:?}", ServerConfig::default())
    );
    assert_eq!(
        format!("{:?}", cfg.log),
        format!("{:?}", LogConfig::default())
    );
    assert_eq!(
        format!("{:?}", cfg.writes),
        format!("{:?}", presence_gateway::writes::WritesConfig::default())
    );
    assert_eq!(
        format!("{:?}", cfg.store),
        format!("{:?}", presence_gateway::store::StoreConfig::default())
    );
    assert_eq!(cfg.board, presence_gateway::board::BoardConfig::default());
    assert_eq!(
        format!("{:?}", cfg.cluster),
        format!("{:?}", presence_gateway::cluster::ClusterConfig::default())
    );
    let genesys = GenesysConfig {
        client_id: "x".into(),
        client_secret: "y".into(),
        ..GenesysConfig::default()
    };
    assert_eq!(format!("{:?}", cfg.genesys), format!("{genesys:?}"));
}

/// The fields `deny_unknown_fields` accepts in `section` (`None`: the
/// top-level tables), read from the error an unknown key provokes.
fn accepted_fields(section: Option<&str>) -> BTreeSet<String> {
    let probe = match section {
        Some(s) => format!("[{s}]\nnot_a_field = 0\n"),
        None => "not_a_field = 0\n".to_string(),
    };
    let err = Config::from_toml(&probe, "probe", env(&[]))
        .expect_err("an unknown field is refused")
        .to_string();
    let list = err
        .split_once(", expected ")
        .unwrap_or_else(|| panic!("no field list in {err:?}"))
        .1;
    // "one of `a`, `b`, …" or "`a` or `b`", ending the line; a second
    // line names the section.
    let list = list.lines().next().unwrap_or_default();
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys the example sets or shows commented out (`# key = …`) in each
/// section.
fn example_keys() -> Vec<(String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(example()).expect("read the example");
    let mut sections: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.to_string(), BTreeSet::new()));
            continue;
        }
        let setting = line.trim_start_matches('#').trim_start();
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            match sections.last_mut() {
                Some((_, keys)) => {
                    keys.insert(key.to_string());
                }
                // A top-level key before any table (an array of tables such
                // as `webhooks`) names a section of its own.
                None if !line.starts_with('#') => sections.push((key.to_string(), BTreeSet::new())),
                None => {}
            }
        }
    }
    sections
}

/// The example names every section and every field the code accepts, so a
/// new setting cannot be added without showing it (and its default) here.
#[test]
fn example_is_complete() {
    let sections = example_keys();
    let names: BTreeSet<String> = sections.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, accepted_fields(None), "sections of the example");
    for (name, keys) in &sections {
        if name == "webhooks" {
            continue; // an empty array here; its fields are in docs/webhooks.md
        }
        assert_eq!(keys, &accepted_fields(Some(name)), "fields of [{name}]");
    }
}

/// Environment overrides win over the file: Genesys's own names and the
/// generic `PRESENCE_GATEWAY__SECTION__FIELD`.
#[test]
fn environment_overrides_the_example() {
    let cfg = Config::load(
        Some(&example()),
        env(&[
            ("GENESYSCLOUD_REGION", "eu-west-1"),
            ("PRESENCE_GATEWAY__UPSTREAM__RATE_PER_MINUTE", "120"),
            ("PRESENCE_GATEWAY__SESSION__KEEPALIVE_SECS", "20"),
        ]),
    )
    .expect("valid");
    assert_eq!(cfg.genesys.region, "eu-west-1");
    assert_eq!(cfg.upstream.rate_per_minute, 120);
    assert_eq!(cfg.session.keepalive_secs, 20);
}

/// A temporary config file, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(name: &str, text: &str) -> TempConfig {
        let path = std::env::temp_dir().join(format!(
            "presence-gateway-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write the temporary config");
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a finished run of the binary printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with only the credentials in its environment, killing it
/// if it has not exited within `deadline`.
fn run(args: &[&str], deadline: Duration) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(CREDS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    // unwrap: both pipes were requested above
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .ok();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .ok();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// `check-config` accepts the example: exit 0.
#[test]
fn check_config_accepts_the_example() {
    let path = example();
    let out = run(
        &["check-config", path.to_str().expect("utf-8 path")],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("configuration is valid"),
        "{}",
        out.stdout
    );
}

/// `check-config` on a broken file exits 64 and names the bad field, both
/// for a misspelt key and for a value out of range.
#[test]
fn check_config_refuses_a_broken_file() {
    for (name, text, field) in [
        (
            "misspelt",
            "[upstream]\nrate_per_minte = 300\n",
            "rate_per_minte",
        ),
        ("range", "[session]\noutbox_bytes = 1\n", "outbox_bytes"),
        ("region", "[genesys]\nregion = \"mars-north-1\"\n", "region"),
        (
            "board-status",
            "[board]\nrouting_thresholds_secs = { SLEEPING = 5 }\n",
            "routing_thresholds_secs",
        ),
        (
            "board-desktop",
            "[board]\ndesktop_presences = []\n",
            "desktop_presences",
        ),
        (
            "board-poll",
            "[board]\nqueue_observations_secs = 0\n",
            "queue_observations_secs",
        ),
    ] {
        let file = TempConfig::new(name, text);
        let out = run(
            &["check-config", file.0.to_str().expect("utf-8 path")],
            Duration::from_secs(30),
        );
        assert_eq!(out.code, Some(EX_USAGE), "{name}: stderr: {}", out.stderr);
        assert!(out.stderr.contains(field), "{name}: stderr: {}", out.stderr);
    }
}

/// `serve` with a bad configuration exits 64, naming the field, before it
/// binds anything: its `listen` is a port this test holds, so a bind would
/// fail differently (exit 1, "address in use"), and it never says READY.
#[test]
fn serve_refuses_a_bad_config_before_binding() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = held.local_addr().expect("local address");
    let file = TempConfig::new(
        "serve",
        &format!(
            "[server]\nlisten = \"{addr}\"\n[session]\nkeepalive_secs = 30\nidle_timeout_secs = 20\n"
        ),
    );
    let out = run(
        &["serve", "--config", file.0.to_str().expect("utf-8 path")],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(EX_USAGE), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("idle_timeout_secs"), "{}", out.stderr);
    assert!(!out.stdout.contains("READY"), "{}", out.stdout);
    drop(held);
}
