//! A real EVM node for the NFT-gate tests: anvil (npm
//! `@foundry-rs/anvil-linux-amd64`), contracts compiled by npm `solc`
//! (`tests/chain/build.js`, run by `scripts/setup.sh --tests`), deployed
//! and driven with anvil's unlocked well-known accounts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::sol;
use alloy::sol_types::SolCall;
use serde_json::{json, Value};

sol! {
    function mint(address to, uint256 tokenId);
    function transferFrom(address from, address to, uint256 tokenId);
    function mint(address to, uint256 id, uint256 amount);
    function safeTransferFrom(address from, address to, uint256 id, uint256 amount, bytes data);
}

/// anvil's well-known test wallets: (private key, address).
pub const WALLETS: [(&str, &str); 3] = [
    (
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    ),
    (
        "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ),
    (
        "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    ),
];

/// anvil's default chain id.
pub const CHAIN_ID: u64 = 31337;

/// `tests/chain` in the repository (npm packages, contracts, build output).
pub fn chain_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/chain")
}

/// A running anvil, killed on drop.
pub struct Anvil {
    child: Child,
    /// Its JSON-RPC address.
    pub addr: SocketAddr,
}

impl Anvil {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::start_on(crate::http::free_addr())
    }

    /// Starts on a chosen address (to bring a "dead" RPC URL to life).
    pub fn start_on(addr: SocketAddr) -> Self {
        let bin = chain_dir().join("node_modules/.bin/anvil");
        assert!(
            bin.exists(),
            "{} missing: run scripts/setup.sh --tests (installs anvil and solc from npm)",
            bin.display()
        );
        let child = Command::new(bin)
            .args([
                "--port",
                &addr.port().to_string(),
                "--host",
                "127.0.0.1",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn anvil");
        let anvil = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = anvil.try_rpc("eth_chainId", json!([])) {
                assert_eq!(v.as_str(), Some("0x7a69"));
                return anvil;
            }
            assert!(Instant::now() < deadline, "anvil did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn try_rpc(&self, method: &str, params: Value) -> std::io::Result<Value> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let raw = crate::http::Connection::open(self.addr)?.send(
            "POST",
            "/",
            &["Content-Type: application/json".into()],
            body.as_bytes(),
        )?;
        let reply: Value = serde_json::from_slice(&raw.body).map_err(|e| {
            std::io::Error::other(format!("{e}: {}", String::from_utf8_lossy(&raw.body)))
        })?;
        if let Some(error) = reply.get("error") {
            return Err(std::io::Error::other(error.to_string()));
        }
        Ok(reply["result"].clone())
    }

    /// A JSON-RPC call that must succeed.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Sends a transaction from an unlocked account; anvil mines it at once.
    fn transact(&self, from: &str, to: Option<Address>, data: Vec<u8>) -> Value {
        let mut tx = json!({"from": from, "data": format!("0x{}", hex(&data)), "gas": "0x1000000"});
        if let Some(to) = to {
            tx["to"] = json!(to.to_string());
        }
        let hash = self.rpc("eth_sendTransaction", json!([tx]));
        let deadline = Instant::now() + Duration::from_secs(10);
        let receipt = loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash]));
            if !receipt.is_null() || Instant::now() > deadline {
                break receipt;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(receipt["status"], "0x1", "transaction failed: {receipt}");
        receipt
    }

    /// Deploys `tests/chain/build/<name>.json` from wallet 0.
    pub fn deploy(&self, name: &str) -> Address {
        let path = chain_dir().join(format!("build/{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/setup.sh --tests to compile the contracts)",
                path.display()
            )
        });
        let artifact: Value = serde_json::from_str(&text).unwrap();
        let code = artifact["bytecode"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x");
        let receipt = self.transact(WALLETS[0].1, None, unhex(code));
        receipt["contractAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// ERC-721 `mint(to, id)` by the deployer.
    pub fn mint721(&self, contract: Address, to: &str, id: u64) {
        let data = mint_0Call {
            to: to.parse().unwrap(),
            tokenId: U256::from(id),
        }
        .abi_encode();
        self.transact(WALLETS[0].1, Some(contract), data);
    }

    /// ERC-721 `transferFrom(from, to, id)` by its owner.
    pub fn transfer721(&self, contract: Address, from: &str, to: &str, id: u64) {
        let data = transferFromCall {
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            tokenId: U256::from(id),
        }
        .abi_encode();
        self.transact(from, Some(contract), data);
    }

    /// ERC-1155 `mint(to, id, amount)` by the deployer.
    pub fn mint1155(&self, contract: Address, to: &str, id: u64, amount: u64) {
        let data = mint_1Call {
            to: to.parse().unwrap(),
            id: U256::from(id),
            amount: U256::from(amount),
        }
        .abi_encode();
        self.transact(WALLETS[0].1, Some(contract), data);
    }

    /// ERC-1155 `safeTransferFrom` by the holder.
    pub fn transfer1155(&self, contract: Address, from: &str, to: &str, id: u64, amount: u64) {
        let data = safeTransferFromCall {
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            id: U256::from(id),
            amount: U256::from(amount),
            data: Default::default(),
        }
        .abi_encode();
        self.transact(from, Some(contract), data);
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lowercase hex without a prefix.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex without a prefix.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
