//! Real peers for the test suite and `bench/`: [`chain`] runs anvil and
//! drives NFT contracts compiled by solc (`tests/chain/`), [`wallet`] signs
//! the way browser wallets do and calls the JSON API (Contract 5).

pub mod chain;
/// The HTTP client the peers use (shared with `streamgate ingest`).
pub use streamgate_net::client as http;
pub mod wallet;
