//! EIP-712 typed-data sign-in (the `eth_signTypedData_v4` shape).
//!
//! Our own domain (`StreamGate`, version 1, the chain id) and one primary
//! type, `SignIn { wallet, statement, uri, nonce, issuedAt, expiresAt }`.
//! The server keeps the exact JSON it issued and verifies the signature
//! against the EIP-712 hash of that JSON, so a wallet can only sign what we
//! built; the fields are re-checked anyway.

use alloy::dyn_abi::TypedData;
use alloy::primitives::{Address, Signature};
use serde_json::json;
use time::OffsetDateTime;

use super::{AuthError, ChallengeSpec, Expect, STATEMENT};

/// The EIP-712 domain name.
pub const DOMAIN_NAME: &str = "StreamGate";

/// Builds the typed-data JSON for `address` (0x-hex).
pub fn challenge(spec: &ChallengeSpec<'_>) -> Result<String, AuthError> {
    let wallet = super::evm_address(spec.address)?;
    let typed = json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "SignIn": [
                {"name": "wallet", "type": "address"},
                {"name": "statement", "type": "string"},
                {"name": "uri", "type": "string"},
                {"name": "nonce", "type": "string"},
                {"name": "issuedAt", "type": "uint256"},
                {"name": "expiresAt", "type": "uint256"},
            ],
        },
        "primaryType": "SignIn",
        "domain": {"name": DOMAIN_NAME, "version": "1", "chainId": spec.chain_id},
        "message": {
            "wallet": wallet.to_checksum(None),
            "statement": STATEMENT,
            "uri": spec.expect.uri,
            "nonce": spec.nonce,
            "issuedAt": spec.now.unix_timestamp(),
            "expiresAt": (spec.now + spec.ttl).unix_timestamp(),
        },
    });
    Ok(typed.to_string())
}

/// Verifies a signature (65 bytes, 0x-hex) over typed data; returns the
/// recovered signer.
pub fn verify(
    typed_json: &str,
    signature_hex: &str,
    expect: &Expect,
    chain_id: u64,
    now: OffsetDateTime,
) -> Result<[u8; 20], AuthError> {
    let typed: TypedData = serde_json::from_str(typed_json).map_err(|_| AuthError::Malformed)?;
    if typed.domain.name.as_deref() != Some(DOMAIN_NAME) || typed.primary_type != "SignIn" {
        return Err(AuthError::Malformed);
    }
    if typed.domain.chain_id.map(|c| c.to::<u64>()) != Some(chain_id) {
        return Err(AuthError::WrongChain);
    }
    let message = &typed.message;
    if message["uri"].as_str() != Some(expect.uri.as_str()) {
        return Err(AuthError::WrongUri);
    }
    let at = now.unix_timestamp();
    let (Some(issued), Some(expires)) =
        (message["issuedAt"].as_i64(), message["expiresAt"].as_i64())
    else {
        return Err(AuthError::Malformed);
    };
    if at < issued - 60 || at >= expires {
        return Err(AuthError::Expired);
    }
    let wallet: Address = message["wallet"]
        .as_str()
        .and_then(|w| w.parse().ok())
        .ok_or(AuthError::Malformed)?;
    let signer = recover(&typed, signature_hex)?;
    if signer != wallet {
        return Err(AuthError::BadSignature);
    }
    Ok(signer.into_array())
}

/// The address whose key signed the EIP-712 hash of `typed`.
pub fn recover(typed: &TypedData, signature_hex: &str) -> Result<Address, AuthError> {
    let bytes =
        hex::decode(signature_hex.trim_start_matches("0x")).map_err(|_| AuthError::Malformed)?;
    if bytes.len() != 65 {
        return Err(AuthError::Malformed);
    }
    let signature = Signature::from_raw(&bytes).map_err(|_| AuthError::Malformed)?;
    let hash = typed
        .eip712_signing_hash()
        .map_err(|_| AuthError::Malformed)?;
    signature
        .recover_address_from_prehash(&hash)
        .map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_wallet::{sign_hash, ADDRESS, KEY};
    use time::Duration;

    /// The "Mail" example from EIP-712 itself (eip-712.md and its
    /// Example.js): its hash, and the signature by keccak256("cow").
    #[test]
    fn eip712_mail_vector() {
        let mail = r#"{
          "types": {
            "EIP712Domain": [
              {"name": "name", "type": "string"},
              {"name": "version", "type": "string"},
              {"name": "chainId", "type": "uint256"},
              {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [
              {"name": "from", "type": "Person"},
              {"name": "to", "type": "Person"},
              {"name": "contents", "type": "string"}
            ]
          },
          "primaryType": "Mail",
          "domain": {
            "name": "Ether Mail", "version": "1", "chainId": 1,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
          },
          "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
          }
        }"#;
        let typed: TypedData = serde_json::from_str(mail).unwrap();
        assert_eq!(
            hex::encode(typed.eip712_signing_hash().unwrap()),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
        let signature = "0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d\
                         07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562\
                         1c";
        assert_eq!(
            recover(&typed, signature).unwrap(),
            "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
                .parse::<Address>()
                .unwrap()
        );
    }

    fn expect() -> Expect {
        Expect::from_public_url("https://video.example.com").unwrap()
    }

    fn sign(typed_json: &str, key: &str) -> String {
        let typed: TypedData = serde_json::from_str(typed_json).unwrap();
        sign_hash(key, &typed.eip712_signing_hash().unwrap().0)
    }

    #[test]
    fn sign_in_round_trip_and_refusals() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let typed = challenge(&ChallengeSpec {
            expect: &expect(),
            address: ADDRESS,
            chain_id: 137,
            nonce: "n0nce123",
            now,
            ttl: Duration::minutes(5),
        })
        .unwrap();
        let sig = sign(&typed, KEY);
        let later = now + Duration::seconds(5);
        let signer = verify(&typed, &sig, &expect(), 137, later).unwrap();
        assert_eq!(Address::from(signer), ADDRESS.parse::<Address>().unwrap());

        assert_eq!(
            verify(&typed, &sig, &expect(), 1, later),
            Err(AuthError::WrongChain)
        );
        let elsewhere = Expect::from_public_url("https://evil.example").unwrap();
        assert_eq!(
            verify(&typed, &sig, &elsewhere, 137, later),
            Err(AuthError::WrongUri)
        );
        assert_eq!(
            verify(&typed, &sig, &expect(), 137, now + Duration::minutes(6)),
            Err(AuthError::Expired)
        );
        // anvil's second key signs the first wallet's sign-in.
        let other = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        assert_eq!(
            verify(&typed, &sign(&typed, other), &expect(), 137, later),
            Err(AuthError::BadSignature)
        );
        let tampered = typed.replace("n0nce123", "n0nce124");
        assert_eq!(
            verify(&tampered, &sig, &expect(), 137, later),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&typed, "0xdead", &expect(), 137, later),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify("{}", &sig, &expect(), 137, later),
            Err(AuthError::Malformed)
        );
    }
}
