//! `streamgate asset …` (Contract 1): operator calls over gRPC.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use streamgate_api::v1 as pb;
use streamgate_api::v1::gate_rule::Kind;

use crate::client::Operator;
use crate::config::FileConfig;

/// `streamgate asset …`
#[derive(Args)]
pub struct AssetArgs {
    /// Configuration file (finds the data dir and the control plane).
    #[arg(long, env = "STREAMGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AssetCommand,
}

#[derive(Subcommand)]
enum AssetCommand {
    /// List every asset.
    List,
    /// Show one asset with its rules.
    Show {
        /// Asset id.
        id: String,
    },
    /// Register a packaged asset directory and move it under the root.
    Import {
        /// Directory with master.m3u8 / manifest.mpd (Contract 2).
        dir: PathBuf,
        /// Asset id (default: the directory's name).
        #[arg(long)]
        id: Option<String>,
        /// Title (default: the id).
        #[arg(long)]
        title: Option<String>,
    },
    /// Add an NFT rule (any of an asset's rules opens it).
    Gate(GateArgs),
    /// Remove every rule: the asset becomes open.
    Ungate {
        /// Asset id.
        id: String,
    },
    /// Remove an asset and its files.
    Delete {
        /// Asset id.
        id: String,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("contract").required(true).args(["erc721", "erc1155"])))]
struct GateArgs {
    /// Asset id.
    id: String,
    /// EVM chain id (its RPC URLs come from [chains.<id>]).
    #[arg(long)]
    chain: u64,
    /// ERC-721 contract: with --token-id that token's owner, else any holder.
    #[arg(long)]
    erc721: Option<String>,
    /// ERC-1155 contract (needs --token-id).
    #[arg(long, requires = "token_id")]
    erc1155: Option<String>,
    /// Token id (decimal).
    #[arg(long)]
    token_id: Option<String>,
    /// Least balance for balance rules (default 1).
    #[arg(long)]
    min_balance: Option<String>,
}

/// Runs an `asset` subcommand.
pub fn run(args: AssetArgs) -> Result<(), String> {
    let file = FileConfig::load(args.config.as_deref())?;
    let op = Operator::connect(&file)?;
    match args.command {
        AssetCommand::List => {
            let list = op.call(
                op.assets()
                    .list_assets(op.request(pb::ListAssetsRequest {})),
            )?;
            println!("{:<24} {:<12} {:<6} TITLE", "ID", "STATUS", "GATED");
            for a in &list.assets {
                println!(
                    "{:<24} {:<12} {:<6} {}",
                    a.id,
                    status_text(a),
                    if a.rules.is_empty() { "no" } else { "yes" },
                    a.title
                );
            }
        }
        AssetCommand::Show { id } => {
            let a = op.call(
                op.assets()
                    .get_asset(op.request(pb::GetAssetRequest { id })),
            )?;
            print_asset(&a);
        }
        AssetCommand::Import { dir, id, title } => {
            let dir = dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let request = op.request(pb::ImportAssetRequest {
                path: dir.to_string_lossy().into_owned(),
                id: id.unwrap_or_default(),
                title: title.unwrap_or_default(),
            });
            let a = op.call(op.assets().import_asset(request))?;
            print_asset(&a);
        }
        AssetCommand::Gate(g) => {
            let current = op.call(
                op.assets()
                    .get_asset(op.request(pb::GetAssetRequest { id: g.id.clone() })),
            )?;
            let (kind, contract) = match (g.erc721, g.erc1155) {
                (Some(c), _) if g.token_id.is_some() => (Kind::Erc721Token, c),
                (Some(c), _) => (Kind::Erc721Balance, c),
                (None, Some(c)) => (Kind::Erc1155Balance, c),
                (None, None) => return Err("pass --erc721 or --erc1155".into()),
            };
            let rule = pb::GateRule {
                kind: kind as i32,
                chain_id: g.chain,
                contract,
                token_id: g.token_id.unwrap_or_default(),
                min_balance: g.min_balance.unwrap_or_default(),
            };
            let mut rules = current.rules;
            rules.push(rule);
            let a = op.call(
                op.assets()
                    .set_gate(op.request(pb::SetGateRequest { id: g.id, rules })),
            )?;
            print_asset(&a);
            if !file.chains.contains_key(&g.chain.to_string()) {
                // The control plane reads the same file: without RPC URLs
                // for the chain no viewer can be checked, so nobody gets in.
                eprintln!(
                    "warning: no [chains.{0}] rpc = [...] in the configuration; asset stays closed \
                     to every viewer until chain {0} is configured and the control plane restarted",
                    g.chain
                );
            }
        }
        AssetCommand::Ungate { id } => {
            let a = op.call(op.assets().set_gate(op.request(pb::SetGateRequest {
                id,
                rules: Vec::new(),
            })))?;
            print_asset(&a);
        }
        AssetCommand::Delete { id } => {
            let deleted = op.call(
                op.assets()
                    .delete_asset(op.request(pb::DeleteAssetRequest { id: id.clone() })),
            )?;
            if deleted.files_removed {
                println!("deleted {id}");
            } else {
                println!(
                    "deleted {id}: the control plane holds no files for it; \
                     each engine removes its copy within a second (its next poll)"
                );
            }
        }
    }
    Ok(())
}

/// `ready`, `transcoding 42%`, `failed`…
pub fn status_text(a: &pb::Asset) -> String {
    let name = pb::AssetStatus::try_from(a.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ASSET_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into());
    if a.status == pb::AssetStatus::Transcoding as i32 {
        format!("{name} {}%", a.progress_percent)
    } else {
        name
    }
}

fn print_asset(a: &pb::Asset) {
    println!("id:      {}", a.id);
    println!("title:   {}", a.title);
    println!("status:  {}", status_text(a));
    if !a.error.is_empty() {
        println!("error:   {}", a.error);
    }
    if a.rules.is_empty() {
        println!("access:  open (/v/{}/master.m3u8)", a.id);
    } else {
        println!("access:  gated, any of:");
        for r in &a.rules {
            let kind = Kind::try_from(r.kind).map_or("?", |k| k.as_str_name());
            println!(
                "  - {kind} chain {} contract {} token {} min {}",
                r.chain_id, r.contract, r.token_id, r.min_balance
            );
        }
    }
}
