//! `streamgate token issue --asset ID [--ttl 1h]`: asks the control plane
//! for a playback token (operator call: no NFT rules apply).

use std::path::PathBuf;

use clap::Subcommand;
use streamgate_api::v1::PlaybackRequest;

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
}

/// Runs a `token` subcommand.
pub fn run(command: TokenCommand) -> Result<(), String> {
    let TokenCommand::Issue { asset, ttl, config } = command;
    if !streamgate_token::is_asset_id(&asset) {
        return Err(format!("`{asset}` is not an asset id ([A-Za-z0-9_-]{{1,64}})"));
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
    eprintln!("expires at {} (unix), jti {}", issued.expires_at, issued.jti);
    Ok(())
}
