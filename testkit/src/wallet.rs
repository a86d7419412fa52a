//! Browser-side of the JSON API (Contract 5): wallets that sign the way
//! MetaMask / Phantom do, and a small HTTP client.

use std::net::SocketAddr;

use alloy::dyn_abi::TypedData;
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};
use sha3::{Digest, Keccak256};

/// A 65-byte `r || s || v` (v = 27/28) signature over a 32-byte hash.
pub fn sign_hash(key_hex: &str, hash: &[u8; 32]) -> String {
    let key = SigningKey::from_slice(&crate::chain::unhex(key_hex)).unwrap();
    let (sig, recid) = key.sign_prehash_recoverable(hash).unwrap();
    let mut bytes = sig.to_bytes().to_vec();
    bytes.push(27 + recid.to_byte());
    format!("0x{}", crate::chain::hex(&bytes))
}

/// `personal_sign` (EIP-191).
pub fn personal_sign(key_hex: &str, text: &str) -> String {
    let prefixed = format!("\x19Ethereum Signed Message:\n{}{text}", text.len());
    sign_hash(key_hex, &Keccak256::digest(prefixed.as_bytes()).into())
}

/// `eth_signTypedData_v4`.
pub fn sign_typed(key_hex: &str, typed: &Value) -> String {
    let typed: TypedData = serde_json::from_value(typed.clone()).unwrap();
    sign_hash(key_hex, &typed.eip712_signing_hash().unwrap().0)
}

/// A JSON API answer.
#[derive(Debug)]
pub struct ApiReply {
    /// Status code.
    pub status: u16,
    /// Header lines.
    pub headers: Vec<(String, String)>,
    /// The body (`Null` when empty).
    pub json: Value,
}

impl ApiReply {
    /// A header by name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        streamgate_net::client::find_header(&self.headers, name)
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// One request to the control plane's HTTP listener, on a fresh
/// connection, from a foreign origin.
pub fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> ApiReply {
    let mut connection = crate::http::Connection::open(addr).unwrap();
    api_on(&mut connection, method, path, bearer, body)
}

/// One request on a kept-alive connection.
pub fn api_on(
    connection: &mut crate::http::Connection,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> ApiReply {
    let mut headers = vec![
        "Origin: http://example.invalid".to_string(),
        "Content-Type: application/json".to_string(),
    ];
    if let Some(b) = bearer {
        headers.push(format!("Authorization: Bearer {b}"));
    }
    let r = connection
        .send(method, path, &headers, body.unwrap_or("").as_bytes())
        .unwrap();
    let json = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
    };
    ApiReply {
        status: r.status,
        headers: r.headers,
        json,
    }
}

/// Asks for a challenge.
pub fn challenge(addr: SocketAddr, address: &str, chain_id: u64, kind: &str) -> Value {
    let r = api(
        addr,
        "POST",
        "/api/v1/auth/challenge",
        None,
        Some(&json!({"address": address, "chain_id": chain_id, "kind": kind}).to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json
}

/// Sends a signature for a challenge.
pub fn login(addr: SocketAddr, challenge_id: &str, signature: &str) -> ApiReply {
    api(
        addr,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"challenge_id": challenge_id, "signature": signature}).to_string()),
    )
}

/// Signs in with an EVM key, by SIWE or EIP-712; returns the session.
pub fn sign_in(addr: SocketAddr, key: &str, address: &str, chain_id: u64, kind: &str) -> String {
    let c = challenge(addr, address, chain_id, kind);
    let signature = match kind {
        "siwe" => personal_sign(key, c["message"].as_str().unwrap()),
        "eip712" => sign_typed(key, &c["typed_data"]),
        other => panic!("{other}"),
    };
    let r = login(addr, c["challenge_id"].as_str().unwrap(), &signature);
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["session"].as_str().unwrap().to_string()
}

/// Asks for a playback token.
pub fn playback(addr: SocketAddr, session: &str, asset: &str) -> ApiReply {
    api(
        addr,
        "POST",
        &format!("/api/v1/assets/{asset}/playback"),
        Some(session),
        None,
    )
}
