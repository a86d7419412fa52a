//! Secrets kept in the data dir: this node's playback-token signing key
//! (`keys/<kid>.key`) and the operator token (`operator.token`), both mode
//! 0600 in directories only the service user can read. Public halves go to
//! the database so every node (and every engine) sees every key.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use streamgate_token::TokenSigner;

use crate::model::{random_id, unix_now};

/// A secret file could not be read or written.
#[derive(Debug)]
pub struct SecretError(pub String);

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SecretError {}

fn io(path: &Path, e: std::io::Error) -> SecretError {
    SecretError(format!("{}: {e}", path.display()))
}

/// Writes `text` to a new file readable by the owner only; never replaces
/// an existing file.
fn create_private(path: &Path, text: &str) -> Result<(), SecretError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    writeln!(file, "{text}")
        .and_then(|()| file.sync_all())
        .map_err(|e| io(path, e))
}

/// The operator token: read, or created on first start. Returns the token
/// and whether it was just created.
pub fn operator_token(path: &Path) -> Result<(String, bool), SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok((text.trim().to_string(), false)),
        Ok(_) => Err(SecretError(format!("{} is empty", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            }
            let token = format!("sgo_{}", random_id(32));
            create_private(path, &token)?;
            Ok((token, true))
        }
        Err(e) => Err(io(path, e)),
    }
}

/// This node's signing keys in `dir`: `<kid>.key`, base64url secrets. The
/// newest (kids sort by creation time) signs.
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The key directory, created 0700 if missing.
    pub fn open(dir: PathBuf) -> Result<Self, SecretError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io(&dir, e))?;
        Ok(Self { dir })
    }

    /// The newest key, or a new one if there is none. The flag says whether
    /// it was just created.
    pub fn current(&self) -> Result<(TokenSigner, bool), SecretError> {
        let mut keys: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| io(&self.dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "key"))
            .collect();
        keys.sort();
        match keys.last() {
            Some(path) => Ok((read_key(path)?, false)),
            None => Ok((self.create()?, true)),
        }
    }

    /// A new signing key (rotation); it becomes the current one.
    pub fn create(&self) -> Result<TokenSigner, SecretError> {
        // Zero-padded time first so that names sort by age; random tail so
        // that two nodes (or two rotations in one second) never collide.
        let kid = format!("k{:012}-{}", unix_now(), &random_id(6));
        let signer = TokenSigner::generate(&kid).map_err(|e| SecretError(e.to_string()))?;
        create_private(
            &self.dir.join(format!("{kid}.key")),
            &B64.encode(signer.secret()),
        )?;
        Ok(signer)
    }
}

fn read_key(path: &Path) -> Result<TokenSigner, SecretError> {
    let kid = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let secret: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SecretError(format!("{} is not a signing key", path.display())))?;
    Ok(TokenSigner::from_secret(&kid, &secret))
}

/// Base64url of a public key, as stored and served.
pub fn encode_public(public: &[u8; 32]) -> String {
    B64.encode(public)
}

/// Parses [`encode_public`]'s output.
pub fn decode_public(text: &str) -> Option<[u8; 32]> {
    B64.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn operator_token_is_created_once_and_private() {
        let dir = std::env::temp_dir().join(format!("sg-secrets-{}", random_id(6)));
        let path = dir.join("operator.token");
        let (first, created) = operator_token(&path).unwrap();
        assert!(created);
        assert!(first.starts_with("sgo_") && first.len() > 40);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = operator_token(&path).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn newest_key_signs_after_rotation() {
        let dir = std::env::temp_dir().join(format!("sg-keys-{}", random_id(6)));
        let keys = KeyDir::open(dir.clone()).unwrap();
        let (first, created) = keys.current().unwrap();
        assert!(created);
        let (same, created) = keys.current().unwrap();
        assert!(!created);
        assert_eq!(first.kid(), same.kid());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = keys.create().unwrap();
        assert_eq!(keys.current().unwrap().0.kid(), second.kid());
        assert_ne!(first.public(), second.public());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
