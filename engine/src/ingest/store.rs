//! Uploads on disk: `<dir>/<id>.part` holds the bytes received so far,
//! `<dir>/<id>.toml` the upload's state, rewritten atomically (temp file,
//! fsync, rename) after every accepted chunk, so a crash never loses an
//! acknowledged offset.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One upload's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    /// Total size announced at creation (`Upload-Length`).
    pub length: u64,
    /// Bytes received and kept (`Upload-Offset`).
    pub offset: u64,
    /// The asset registered for it.
    pub asset: String,
    /// The raw `Upload-Metadata`, echoed on HEAD.
    pub metadata: String,
    /// The file name the client gave (for the extension the demuxer sees).
    pub filename: String,
    /// Expected SHA-256 of the whole file (hex), when the client sent one.
    pub sha256: Option<String>,
    /// All bytes arrived, verified and handed to the job runner.
    #[serde(default)]
    pub complete: bool,
    /// When an unfinished upload expires (Unix seconds); pushed forward by
    /// every accepted chunk. 0: not stamped yet (a state file from before
    /// expiry existed); the sweeper stamps it.
    #[serde(default)]
    pub expires: u64,
}

impl Upload {
    /// Whether it is unfinished and past its expiry at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        !self.complete && self.expires != 0 && self.expires <= now
    }
}

/// The upload directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) `dir`.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    /// Where the bytes go.
    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    /// Where a complete upload is kept for the transcoder (its original
    /// extension helps the demuxer).
    pub fn source_path(&self, id: &str, upload: &Upload) -> PathBuf {
        let ext = Path::new(&upload.filename)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or("bin");
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Creates the state and an empty data file.
    pub fn create(&self, id: &str, upload: &Upload) -> std::io::Result<()> {
        File::create(self.data_path(id))?.sync_all()?;
        self.save(id, upload)
    }

    /// Reads an upload's state.
    pub fn load(&self, id: &str) -> Option<Upload> {
        let text = fs::read_to_string(self.state_path(id)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Writes an upload's state atomically.
    pub fn save(&self, id: &str, upload: &Upload) -> std::io::Result<()> {
        let text = toml::to_string(upload).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!(".{id}.toml.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, self.state_path(id))
    }

    /// The ids of every upload with a state file.
    pub fn ids(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".toml").filter(|id| !id.starts_with('.')) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Opens the data file for writing at the current offset.
    pub fn data_file(&self, id: &str) -> std::io::Result<File> {
        OpenOptions::new().write(true).open(self.data_path(id))
    }

    /// Removes every file of an upload.
    pub fn remove(&self, id: &str, upload: &Upload) {
        let _ = fs::remove_file(self.data_path(id));
        let _ = fs::remove_file(self.source_path(id, upload));
        let _ = fs::remove_file(self.state_path(id));
    }
}
