//! A fresh PostgreSQL database per test, on the server `scripts/postgres.sh`
//! started (its URL in `SG_TEST_POSTGRES`).

use std::process::Command;

/// A fresh database, dropped at the end.
pub struct Database {
    admin_url: String,
    name: String,
}

impl Database {
    /// A new database, or `None` when the PostgreSQL tests are skipped.
    pub fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("SG_TEST_POSTGRES") else {
            if std::env::var_os("SG_SKIP_POSTGRES").is_some() {
                eprintln!("SKIPPED: SG_SKIP_POSTGRES is set");
                return None;
            }
            panic!(
                "SG_TEST_POSTGRES is not set: run the suite with scripts/test.sh \
                 (it starts PostgreSQL), or export the URL printed by scripts/postgres.sh"
            );
        };
        // psql takes anything that is not a URL as a database name and
        // falls back to the local socket as the current user, which hides
        // the real mistake behind "role does not exist".
        assert!(
            admin_url.starts_with("postgres://") && !admin_url.contains(char::is_whitespace),
            "SG_TEST_POSTGRES must be one postgres:// URL, got {admin_url:?}"
        );
        let name = format!(
            "sgt_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        Some(Self { admin_url, name })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        let base = self.admin_url.rsplit_once('/').unwrap().0;
        format!("{base}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Runs one statement with psql; returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-qAtc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
