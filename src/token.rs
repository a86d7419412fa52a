//! `streamgate token issue --asset ID [--ttl 1h]`: mints a playback token.
//!
//! Until the control plane (issue 4) issues tokens over gRPC, the signing key
//! lives beside the engine's public keys in `<data_dir>/keys`: created on
//! first use (`<kid>.key`, mode 0600, in a 0700 directory), with its
//! `<kid>.pub` that the engine reloads within a second.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use clap::Subcommand;
use streamgate_token::{new_jti, Claims, TokenSigner};

use crate::config::{parse_duration, FileConfig};

/// `streamgate token …`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a playback token for one asset.
    Issue {
        /// Asset id the token opens.
        #[arg(long)]
        asset: String,
        /// Lifetime, e.g. 15m, 1h.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Configuration file (finds the data dir and the engine address).
        #[arg(long, env = "STREAMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs a `token` subcommand.
pub fn run(command: TokenCommand) -> Result<(), String> {
    let TokenCommand::Issue { asset, ttl, config } = command;
    if !streamgate_token::is_asset_id(&asset) {
        return Err(format!(
            "`{asset}` is not an asset id ([A-Za-z0-9_-]{{1,64}})"
        ));
    }
    let ttl = parse_duration(&ttl)?.as_secs().max(1);
    let file = FileConfig::load(config.as_deref())?;
    let signer = load_or_create(&file.keys_dir())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = Claims {
        sub: asset.clone(),
        exp: now + ttl,
        iat: now,
        jti: new_jti().map_err(|e| e.to_string())?,
        nbf: None,
        wal: None,
    };
    let token = signer.sign(&claims);
    let listen = file.engine_config()?.listen;
    println!("{token}");
    eprintln!("HLS:  http://{listen}/p/{token}/{asset}/master.m3u8");
    eprintln!("DASH: http://{listen}/p/{token}/{asset}/manifest.mpd");
    eprintln!("expires at {} (unix), jti {}", claims.exp, claims.jti);
    Ok(())
}

/// The first `<kid>.key` in `dir`, or a new one.
fn load_or_create(dir: &Path) -> Result<TokenSigner, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut keys: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    keys.sort();
    if let Some(path) = keys.last() {
        let kid = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let secret: [u8; 32] = B64
            .decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{} is not a signing key", path.display()))?;
        return Ok(TokenSigner::from_secret(&kid, &secret));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let signer = TokenSigner::generate(&format!("playback-{now}")).map_err(|e| e.to_string())?;
    let key_path = dir.join(format!("{}.key", signer.kid()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| format!("creating {}: {e}", key_path.display()))?;
    writeln!(file, "{}", B64.encode(signer.secret())).map_err(|e| e.to_string())?;
    let pub_path = dir.join(format!("{}.pub", signer.kid()));
    std::fs::write(&pub_path, format!("{}\n", B64.encode(signer.public())))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "created signing key {} (public key {})",
        key_path.display(),
        pub_path.display()
    );
    Ok(signer)
}
