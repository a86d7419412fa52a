//! Real peers for the test suite and `bench/`: [`chain`] runs anvil and
//! drives NFT contracts compiled by solc (`tests/chain/`), [`wallet`] signs
//! the way browser wallets do and calls the JSON API (Contract 5).

pub mod chain;
pub mod http;
pub mod wallet;
