//! `streamgate token issue --asset ID [--ttl 1h]`: asks the control plane
//! for a playback token (operator call: no NFT rules apply);
//! `token revoke JTI` and `token rotate-key` for incidents and hygiene.

use std::path::PathBuf;

use clap::Subcommand;
use streamgate_api::v1::keys_client::KeysClient;
use streamgate_api::v1::{PlaybackRequest, RevokeTokenRequest, RotateKeyRequest};

use crate::client::Operator;
use crate::config::{parse_duration, FileConfig};

/// `streamgate token …`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a playback token for one asset.
    Issue {
        /// Asset id the token opens.
        #[arg(long)]
        asset: String,
        /// Lifetime, e.g. 15m, 1h.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Configuration file (finds the data dir and the control plane).
        #[arg(long, env = "STREAMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revoke a token by its id (jti); engines refuse it within a second.
    Revoke {
        /// The token's `jti`.
        jti: String,
        /// Configuration file.
        #[arg(long, env = "STREAMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Sign new tokens with a fresh key; tokens signed earlier stay valid
    /// until they expire.
    RotateKey {
        /// Configuration file.
        #[arg(long, env = "STREAMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs a `token` subcommand.
pub fn run(command: TokenCommand) -> Result<(), String> {
    let (asset, ttl, config) = match command {
        TokenCommand::Issue { asset, ttl, config } => (asset, ttl, config),
        TokenCommand::Revoke { jti, config } => {
            let operator = Operator::connect(&FileConfig::load(config.as_deref())?)?;
            let request = operator.request(RevokeTokenRequest {
                jti: jti.clone(),
                expires_at: 0,
            });
            operator.call(operator.access().revoke_token(request))?;
            eprintln!("revoked {jti}");
            return Ok(());
        }
        TokenCommand::RotateKey { config } => {
            let operator = Operator::connect(&FileConfig::load(config.as_deref())?)?;
            let request = operator.request(RotateKeyRequest {});
            let rotated = operator.call(KeysClient::new(operator.channel()).rotate_key(request))?;
            println!("{}", rotated.kid);
            return Ok(());
        }
    };
    if !streamgate_token::is_asset_id(&asset) {
        return Err(format!(
            "`{asset}` is not an asset id ([A-Za-z0-9_-]{{1,64}})"
        ));
    }
    let ttl_seconds = parse_duration(&ttl)?.as_secs().max(1);
    let file = FileConfig::load(config.as_deref())?;
    let base = file.control_config()?.public_url;
    let base = base.trim_end_matches('/');
    let operator = Operator::connect(&file)?;
    let request = operator.request(PlaybackRequest {
        asset_id: asset,
        ttl_seconds,
    });
    let issued = operator.call(operator.access().issue_playback_token(request))?;
    println!("{}", issued.token);
    eprintln!("HLS:  {base}{}", issued.hls);
    eprintln!("DASH: {base}{}", issued.dash);
    eprintln!(
        "expires at {} (unix), jti {}",
        issued.expires_at, issued.jti
    );
    Ok(())
}
