//! `streamgate backup DIR` and `streamgate restore DIR`.
//!
//! A backup is taken while the appliance serves: the SQLite database by
//! `VACUUM INTO` (a consistent snapshot in one read transaction; writers
//! go on), then the signing keys, the operator token and the job spool,
//! and with `--assets` the packaged assets. Every file's SHA-256 goes in
//! `manifest.json`. It is written into a staging directory and renamed to
//! DIR last, so a DIR that exists is a whole backup.
//!
//! A PostgreSQL database is not copied (`pg_dump` it: docs/operations.md);
//! the files beside it are.
//!
//! Restore checks every checksum first, then copies into the data dir of
//! the configuration — a fresh one, unless `--force`, with the appliance
//! stopped.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use streamgate_control_plane::store::Store;

use crate::config::FileConfig;

/// `streamgate backup`
#[derive(Args)]
pub struct BackupArgs {
    /// Where the backup goes (a directory that does not exist yet).
    dir: PathBuf,
    /// Configuration file (TOML, Contract 6).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Also copy the packaged assets (they can be large; they can also be
    /// transcoded again from their sources).
    #[arg(long)]
    assets: bool,
}

/// `streamgate restore`
#[derive(Args)]
pub struct RestoreArgs {
    /// A directory written by `streamgate backup`.
    dir: PathBuf,
    /// Configuration file (TOML, Contract 6): its data dir is restored.
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Overwrite a data dir that already holds a database or keys.
    #[arg(long)]
    force: bool,
}

/// What a backup holds.
#[derive(Serialize, Deserialize)]
struct Manifest {
    /// This format's version.
    format: u32,
    /// The streamgate that wrote it.
    streamgate: String,
    /// Unix seconds.
    created: u64,
    /// `sqlite` (in `streamgate.db`) or `postgres` (not included).
    database: String,
    /// Every file, relative to the backup, and its SHA-256 (hex).
    files: BTreeMap<String, String>,
}

const FORMAT: u32 = 1;
/// The database file in a backup and in a data dir.
const DATABASE: &str = "streamgate.db";
/// What is copied from the data dir besides the database: secrets (kept
/// 0600) and the job spool.
const COPIED: [&str; 3] = ["keys", "operator.token", "jobs"];

/// Runs `streamgate backup`.
pub fn backup(args: BackupArgs) -> Result<(), String> {
    let file = FileConfig::load(args.config.as_deref())?;
    let control = file.control_config()?;
    if args.dir.exists() {
        return Err(format!(
            "{} exists; a backup goes into a new directory",
            args.dir.display()
        ));
    }
    let staging = staging_dir(&args.dir);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    let written = write_backup(&file, &control.database, &staging, args.assets);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    std::fs::rename(&staging, &args.dir)
        .map_err(|e| format!("publishing {}: {e}", args.dir.display()))?;
    eprintln!("streamgate backup: {}", args.dir.display());
    Ok(())
}

fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".{name}.partial"))
}

fn write_backup(
    file: &FileConfig,
    database: &str,
    staging: &Path,
    with_assets: bool,
) -> Result<(), String> {
    let kind = if database.starts_with("sqlite:") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime
            .block_on(Store::backup_sqlite(database, &staging.join(DATABASE)))
            .map_err(|e| format!("copying the database: {e}"))?;
        "sqlite"
    } else {
        eprintln!(
            "streamgate backup: the PostgreSQL database is not copied: pg_dump it (docs/operations.md)"
        );
        "postgres"
    };
    for name in COPIED {
        copy_tree(&file.data_dir.join(name), &staging.join(name))?;
    }
    if with_assets {
        copy_tree(&file.engine_root(), &staging.join("assets"))?;
    }
    let mut files = BTreeMap::new();
    for path in walk(staging)? {
        let relative = path
            .strip_prefix(staging)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        files.insert(relative, sha256(&path)?);
    }
    let manifest = Manifest {
        format: FORMAT,
        streamgate: env!("CARGO_PKG_VERSION").into(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        database: kind.into(),
        files,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(staging.join("manifest.json"), text).map_err(|e| e.to_string())
}

/// Runs `streamgate restore`.
pub fn restore(args: RestoreArgs) -> Result<(), String> {
    let file = FileConfig::load(args.config.as_deref())?;
    let text = std::fs::read_to_string(args.dir.join("manifest.json"))
        .map_err(|e| format!("{}: not a backup ({e})", args.dir.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("manifest.json: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "backup format {} (this streamgate reads {FORMAT})",
            manifest.format
        ));
    }
    // Every byte checked before anything is written.
    for (relative, want) in &manifest.files {
        let got = sha256(&args.dir.join(relative))
            .map_err(|e| format!("backup damaged: {relative}: {e}"))?;
        if &got != want {
            return Err(format!(
                "backup damaged: {relative} does not match its checksum"
            ));
        }
    }
    let data = &file.data_dir;
    let occupied = [DATABASE, "keys", "operator.token"]
        .iter()
        .any(|n| data.join(n).exists());
    if occupied && !args.force {
        return Err(format!(
            "{} already holds a database or keys; restore into a fresh data dir, or stop \
             the appliance and pass --force",
            data.display()
        ));
    }
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    if manifest.files.contains_key(DATABASE) {
        for stale in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data.join(format!("{DATABASE}{stale}")));
        }
        copy_file(&args.dir.join(DATABASE), &data.join(DATABASE))?;
    }
    for name in COPIED {
        copy_tree(&args.dir.join(name), &data.join(name))?;
    }
    if args.dir.join("assets").exists() {
        copy_tree(&args.dir.join("assets"), &file.engine_root())?;
    }
    eprintln!(
        "streamgate restore: {} files into {}{}",
        manifest.files.len(),
        data.display(),
        if manifest.database == "postgres" {
            "; the PostgreSQL database is restored with pg_restore"
        } else {
            ""
        }
    );
    Ok(())
}

/// Copies a file or a directory tree (absent: nothing), keeping modes.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return Ok(());
    };
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
        std::fs::set_permissions(to, meta.permissions()).map_err(|e| e.to_string())?;
        for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.is_file() {
        copy_file(from, to)
    } else {
        Ok(()) // sockets, links: not ours to copy
    }
}

/// Copies one file with its mode (0600 secrets stay 0600 from the start).
fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    let mode = std::fs::metadata(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .permissions()
        .mode();
    let mut source = std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode & 0o777)
        .open(to)
        .map_err(|e| format!("{}: {e}", to.display()))?;
    std::io::copy(&mut source, &mut target).map_err(|e| format!("{}: {e}", to.display()))?;
    target.sync_all().map_err(|e| e.to_string())
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

fn sha256(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
