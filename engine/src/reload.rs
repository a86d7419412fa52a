//! What SIGHUP changes without a restart, and how it reaches the workers:
//! the engine publishes a new [`Settings`] and bumps a generation; each
//! worker's housekeeping tick (every 50 ms) sees the new generation and
//! copies the settings into its own state, so the serving path reads only
//! worker-local values and no connection is dropped. Everything else in
//! `[engine]` is read once at start; [`needs_restart`] names what changed
//! among it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::EngineConfig;

/// The live-reloadable part of the engine's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `max-age` for playlists and MPDs.
    pub manifest_max_age: u32,
    /// Allowed CORS origins (`*`: any).
    pub cors_origins: Vec<String>,
    /// Connection cap across all workers.
    pub max_connections: usize,
    /// Share of requests logged (0: none).
    pub access_log_sample: f64,
}

impl Settings {
    /// The reloadable keys of `config`.
    pub fn of(config: &EngineConfig) -> Self {
        Self {
            manifest_max_age: config.manifest_max_age,
            cors_origins: config.cors_origins.clone(),
            max_connections: config.max_connections,
            access_log_sample: config.access_log_sample,
        }
    }
}

/// The settings in force, with a generation the workers watch.
#[derive(Debug)]
pub struct Published {
    generation: AtomicU64,
    settings: RwLock<Arc<Settings>>,
}

impl Published {
    /// Starts at `settings`, generation 0.
    pub fn new(settings: Settings) -> Self {
        Self {
            generation: AtomicU64::new(0),
            settings: RwLock::new(Arc::new(settings)),
        }
    }

    /// Publishes `settings`; workers pick them up at their next tick.
    pub fn publish(&self, settings: Settings) {
        if let Ok(mut current) = self.settings.write() {
            *current = Arc::new(settings);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The settings, if their generation is newer than `seen` (which is
    /// moved up to it).
    pub(crate) fn newer_than(&self, seen: &mut u64) -> Option<Arc<Settings>> {
        let now = self.generation.load(Ordering::SeqCst);
        if now == *seen {
            return None;
        }
        *seen = now;
        self.settings.read().ok().map(|s| Arc::clone(&s))
    }
}

/// The `[engine]` keys read only at start, with their values as text: what
/// a running engine shows on its admin listener (`GET /config`) and what
/// [`needs_restart`] compares.
pub fn start_time_keys(c: &EngineConfig) -> BTreeMap<&'static str, String> {
    let tls = c.tls.as_ref();
    BTreeMap::from([
        ("engine.listen", c.listen.to_string()),
        ("engine.admin", c.admin.to_string()),
        ("engine.threads", c.worker_count().to_string()),
        ("engine.root", c.root.display().to_string()),
        ("engine.listen_tls", format!("{:?}", tls.map(|t| t.listen))),
        (
            "engine.tls",
            format!(
                "{:?}",
                tls.map(|t| (&t.cert, &t.key, &t.sni, t.strict_sni, t.ktls))
            ),
        ),
        ("engine.h2c", c.h2c.to_string()),
        ("engine.h2", format!("{:?}", c.h2)),
        ("engine.cache_bytes", c.cache_bytes.to_string()),
        ("engine.cache_max_object", c.cache_max_object.to_string()),
        ("engine.cache_open_files", c.cache_open_files.to_string()),
        ("engine.header_timeout", format!("{:?}", c.header_timeout)),
        ("engine.idle_timeout", format!("{:?}", c.idle_timeout)),
        ("engine.send_timeout", format!("{:?}", c.send_timeout)),
        ("engine.shutdown_grace", format!("{:?}", c.shutdown_grace)),
        ("engine.limits", format!("{:?}", c.limits)),
        ("engine.open", format!("{:?}", c.access)),
        ("engine.fault_injection", c.fault_injection.to_string()),
        (
            "engine.job_workers",
            format!("{:?}", c.jobs.as_ref().map(|j| j.workers)),
        ),
    ])
}

/// The start-time keys whose values differ between `running` (as
/// [`start_time_keys`] shows it) and `next`.
pub fn differing(running: &BTreeMap<String, String>, next: &EngineConfig) -> Vec<&'static str> {
    start_time_keys(next)
        .into_iter()
        .filter(|(key, value)| running.get(*key) != Some(value))
        .map(|(key, _)| key)
        .collect()
}

/// The `[engine]` keys that differ between `running` and `next` and take
/// effect only at a restart.
pub fn needs_restart(running: &EngineConfig, next: &EngineConfig) -> Vec<&'static str> {
    let running = start_time_keys(running)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    differing(&running, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_see_each_publication_once() {
        let config = EngineConfig::new("/srv".into());
        let published = Published::new(Settings::of(&config));
        let mut seen = 0;
        assert!(published.newer_than(&mut seen).is_none(), "nothing new");
        let next = Settings {
            manifest_max_age: 9,
            ..Settings::of(&config)
        };
        published.publish(next.clone());
        assert_eq!(published.newer_than(&mut seen).as_deref(), Some(&next));
        assert!(published.newer_than(&mut seen).is_none(), "seen once");
    }

    #[test]
    fn only_start_time_keys_need_a_restart() {
        let running = EngineConfig::new("/srv".into());
        let mut next = running.clone();
        next.manifest_max_age = 30;
        next.cors_origins = vec!["https://a.example".into()];
        next.max_connections = 5;
        assert!(needs_restart(&running, &next).is_empty());
        next.listen = "127.0.0.1:1".parse().unwrap();
        next.cache_bytes += 1;
        assert_eq!(
            needs_restart(&running, &next),
            vec!["engine.cache_bytes", "engine.listen"]
        );
    }
}
