//! The configuration file (Contract 6): TOML, overridden by `STREAMGATE_…`
//! environment variables, overridden in turn by command-line flags.
//!
//! Only the sections that running code reads are typed. `[control]`,
//! `[chains.*]` and `[nft]` belong to the control plane (issue 4); they are
//! accepted as tables so one file serves every subcommand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use streamgate_engine::{AccessPolicy, EngineConfig, JobsConfig};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// SQLite db, keys, operator token, job spool; assets under `assets/`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `[engine]`
    #[serde(default)]
    pub engine: EngineSection,
    /// `[control]` (control plane, not read yet).
    #[serde(default)]
    pub control: toml::Table,
    /// `[chains.<id>]` (control plane, not read yet).
    #[serde(default)]
    pub chains: toml::Table,
    /// `[nft]` (control plane, not read yet).
    #[serde(default)]
    pub nft: toml::Table,
}

/// `[engine]`: every key optional; defaults come from [`EngineConfig::new`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    threads: Option<usize>,
    root: Option<PathBuf>,
    open: Option<bool>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    send_timeout: Option<String>,
    shutdown_grace: Option<String>,
    max_connections: Option<usize>,
    cache_bytes: Option<usize>,
    cache_max_object: Option<usize>,
    cache_open_files: Option<usize>,
    manifest_max_age: Option<u32>,
    cors_origins: Option<Vec<String>>,
    max_request_line: Option<usize>,
    max_head_bytes: Option<usize>,
    job_workers: Option<usize>,
    job_attempts: Option<u32>,
    job_preset: Option<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./var")
}

impl FileConfig {
    /// Reads `path` (or starts empty), applies the environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, std::env::vars())?;
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("invalid configuration: {e}"))?;
        config.engine_config()?; // surface bad durations now
        Ok(config)
    }

    /// Playback-token keys: `<data_dir>/keys`.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// The transcode job spool: `<data_dir>/jobs`.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// The engine's configuration (before command-line overrides).
    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        let e = &self.engine;
        let root = e
            .root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("assets"));
        let mut c = EngineConfig::new(root);
        if let Some(v) = e.listen {
            c.listen = v;
        }
        if let Some(v) = e.admin {
            c.admin = v;
        }
        if let Some(v) = e.threads {
            c.threads = v;
        }
        if e.open == Some(true) {
            c.access = AccessPolicy::Open;
        }
        for (value, slot, key) in [
            (
                &e.header_timeout,
                &mut c.header_timeout,
                "engine.header_timeout",
            ),
            (&e.idle_timeout, &mut c.idle_timeout, "engine.idle_timeout"),
            (&e.send_timeout, &mut c.send_timeout, "engine.send_timeout"),
            (
                &e.shutdown_grace,
                &mut c.shutdown_grace,
                "engine.shutdown_grace",
            ),
        ] {
            if let Some(text) = value {
                *slot = parse_duration(text).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if let Some(v) = e.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = e.cache_bytes {
            c.cache_bytes = v;
        }
        if let Some(v) = e.cache_max_object {
            c.cache_max_object = v;
        }
        if let Some(v) = e.cache_open_files {
            c.cache_open_files = v;
        }
        if let Some(v) = e.manifest_max_age {
            c.manifest_max_age = v;
        }
        if let Some(v) = &e.cors_origins {
            c.cors_origins = v.clone();
        }
        if let Some(v) = e.max_request_line {
            c.limits.max_request_line = v;
        }
        if let Some(v) = e.max_head_bytes {
            c.limits.max_head_bytes = v;
        }
        c.keys_dir = Some(self.keys_dir());
        let workers = e.job_workers.unwrap_or(1);
        c.jobs = (workers > 0).then(|| JobsConfig {
            spool: self.spool_dir(),
            workers,
            max_attempts: e.job_attempts.unwrap_or(3),
            preset: e.job_preset.clone().unwrap_or_else(|| "veryfast".into()),
        });
        Ok(c)
    }
}

/// Applies `STREAMGATE_KEY` and `STREAMGATE_SECTION__KEY` variables. A value
/// that parses as a TOML value (number, bool, array) is taken as one;
/// anything else is a string.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), String> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix("STREAMGATE_") else {
            continue;
        };
        let path = path.to_ascii_lowercase();
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut parts: Vec<&str> = path.split("__").collect();
        let key = parts.pop().unwrap_or_default();
        let mut slot = &mut *table;
        for section in parts {
            let entry = slot
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            slot = entry
                .as_table_mut()
                .ok_or_else(|| format!("{name}: `{section}` is not a section"))?;
        }
        slot.insert(key.to_string(), value);
    }
    Ok(())
}

/// Parses `250ms`, `10s`, `5m`, `1h` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s or 250ms"))?;
    let secs = |m: u64| n.checked_mul(m).map(Duration::from_secs);
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => secs(60),
        "h" => secs(3600),
        _ => None,
    }
    .ok_or_else(|| format!("`{text}` is not a duration like 10s or 250ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut table: toml::Table = "[engine]\nlisten = \"127.0.0.1:1\"\nthreads = 4\n"
            .parse()
            .unwrap();
        let vars = [
            (
                "STREAMGATE_ENGINE__LISTEN".to_string(),
                "127.0.0.1:2".to_string(),
            ),
            ("STREAMGATE_ENGINE__OPEN".to_string(), "true".to_string()),
            ("STREAMGATE_DATA_DIR".to_string(), "/srv/sg".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        apply_env(&mut table, vars.into_iter()).unwrap();
        let config: FileConfig = toml::Value::Table(table).try_into().unwrap();
        let engine = config.engine_config().unwrap();
        assert_eq!(engine.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(engine.threads, 4);
        assert_eq!(engine.access, AccessPolicy::Open);
        assert_eq!(engine.root, PathBuf::from("/srv/sg/assets"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let table: toml::Table = "[engine]\nlisten_port = 1\n".parse().unwrap();
        assert!(toml::Value::Table(table).try_into::<FileConfig>().is_err());
    }
}
