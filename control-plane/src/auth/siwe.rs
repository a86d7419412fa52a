//! Sign-In with Ethereum (EIP-4361), verified by EIP-191 signature recovery.
//!
//! The server builds the message (domain and URI from the public URL, chain,
//! nonce, issued-at, expiration), so a wallet can only sign what we issued;
//! verification re-checks every one of those fields against what this server
//! expects, the time window, and that the signature
//! recovers to the message's address.

use siwe::{Message, TimeStamp, Version};
use time::OffsetDateTime;

use super::{AuthError, ChallengeSpec, Expect, STATEMENT};

/// Builds the EIP-4361 message for `address` (0x-hex, 20 bytes).
pub fn challenge(spec: &ChallengeSpec<'_>) -> Result<String, AuthError> {
    let message = Message {
        domain: spec
            .expect
            .domain
            .parse()
            .map_err(|_| AuthError::Malformed)?,
        address: super::evm_address(spec.address)?.into_array(),
        statement: Some(STATEMENT.into()),
        uri: spec.expect.uri.parse().map_err(|_| AuthError::Malformed)?,
        version: Version::V1,
        chain_id: spec.chain_id,
        nonce: spec.nonce.to_string(),
        issued_at: TimeStamp::from(spec.now),
        expiration_time: Some(TimeStamp::from(spec.now + spec.ttl)),
        not_before: None,
        request_id: None,
        resources: Vec::new(),
    };
    Ok(message.to_string())
}

/// Verifies a signed message; returns the signer's address.
pub fn verify(
    text: &str,
    signature_hex: &str,
    expect: &Expect,
    chain_id: u64,
    now: OffsetDateTime,
) -> Result<[u8; 20], AuthError> {
    let message: Message = text.parse().map_err(|_| AuthError::Malformed)?;
    let signature: [u8; 65] = hex::decode(signature_hex.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed)?;
    if message.domain.as_str() != expect.domain {
        return Err(AuthError::WrongDomain);
    }
    if message.uri.as_str() != expect.uri {
        return Err(AuthError::WrongUri);
    }
    if message.chain_id != chain_id {
        return Err(AuthError::WrongChain);
    }
    if !message.valid_at(&now) {
        return Err(AuthError::Expired);
    }
    message
        .verify_eip191(&signature)
        .map_err(|_| AuthError::BadSignature)?;
    Ok(message.address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_wallet::{personal_sign, ADDRESS, KEY};
    use time::Duration;

    fn expect() -> Expect {
        Expect {
            domain: "video.example.com".into(),
            uri: "https://video.example.com".into(),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn siwe_notepad_vector_recovers() {
        // The EIP-191 vector published with the siwe crate.
        let text = "localhost:4361 wants you to sign in with your Ethereum account:\n\
            0x6Da01670d8fc844e736095918bbE11fE8D564163\n\nSIWE Notepad Example\n\n\
            URI: http://localhost:4361\nVersion: 1\nChain ID: 1\nNonce: kEWepMt9knR6lWJ6A\n\
            Issued At: 2021-12-07T18:28:18.807Z";
        let sig = "6228b3ecd7bf2df018183aeab6b6f1db1e9f4e3cbe24560404112e25363540eb679934908143224d746bbb5e1aa65ab435684081f4dbb74a0fec57f98f40f5051c";
        let local = Expect {
            domain: "localhost:4361".into(),
            uri: "http://localhost:4361".into(),
        };
        let at = OffsetDateTime::from_unix_timestamp(1_638_901_000).unwrap();
        let address = verify(text, sig, &local, 1, at).unwrap();
        assert_eq!(
            hex::encode(address),
            "6da01670d8fc844e736095918bbe11fe8d564163"
        );
    }

    #[test]
    fn sign_in_round_trip_and_every_refusal() {
        let nonce = siwe::generate_nonce();
        let here = expect();
        let spec = ChallengeSpec {
            expect: &here,
            address: ADDRESS,
            chain_id: 137,
            nonce: &nonce,
            now: now(),
            ttl: Duration::minutes(5),
        };
        let text = challenge(&spec).unwrap();
        assert!(
            text.starts_with("video.example.com wants you to sign in with your Ethereum account:")
        );
        let sig = personal_sign(KEY, &text);
        let later = now() + Duration::seconds(10);

        let other_domain = Expect {
            domain: "evil.example".into(),
            ..expect()
        };
        assert_eq!(
            verify(&text, &sig, &other_domain, 137, later),
            Err(AuthError::WrongDomain)
        );
        let other_uri = Expect {
            uri: "https://evil.example".into(),
            ..expect()
        };
        assert_eq!(
            verify(&text, &sig, &other_uri, 137, later),
            Err(AuthError::WrongUri)
        );
        assert_eq!(
            verify(&text, &sig, &expect(), 1, later),
            Err(AuthError::WrongChain)
        );
        let too_late = now() + Duration::minutes(6);
        assert_eq!(
            verify(&text, &sig, &expect(), 137, too_late),
            Err(AuthError::Expired)
        );
        let tampered = text.replace("Chain ID: 137", "Chain ID: 1");
        assert_eq!(
            verify(&tampered, &sig, &expect(), 1, later),
            Err(AuthError::BadSignature)
        );
        let someone_else = challenge(&ChallengeSpec {
            address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            ..spec
        })
        .unwrap();
        assert_eq!(
            verify(&someone_else, &sig, &expect(), 137, later),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify("hello", &sig, &expect(), 137, later),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify(&text, "0x1234", &expect(), 137, later),
            Err(AuthError::Malformed)
        );

        let address = verify(&text, &sig, &expect(), 137, later).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(address)),
            ADDRESS.to_lowercase()
        );
    }
}
