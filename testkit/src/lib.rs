//! Real peers for the test suite and `bench/`: [`chain`] runs anvil and
//! drives NFT contracts compiled by solc (`tests/chain/`), [`wallet`] signs
//! the way browser wallets do and calls the JSON API (Contract 5), [`clip`]
//! makes test video with the ffmpeg CLI, [`ladder`] a synthetic ABR ladder,
//! [`tls`] a self-signed certificate, [`garage`] a real S3 server (Garage)
//! with a bucket.

pub mod chain;
pub mod clip;
pub mod garage;
pub mod ladder;
pub mod tls;
/// The HTTP client the peers use (shared with `streamgate ingest`), plus
/// what tests want of it.
pub mod http {
    pub use streamgate_net::client::*;

    /// A free loopback address; panics (this is test support) when the
    /// system has none.
    pub fn free_addr() -> std::net::SocketAddr {
        streamgate_net::client::free_addr().expect("a free loopback port")
    }
}
pub mod wallet;
