//! Solana sign-in: ed25519 over a Sign-In-With-Solana style text, with the
//! wallet's public key and the signature in base58.

use ed25519_dalek::{Signature, VerifyingKey};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{AuthError, ChallengeSpec, STATEMENT};

/// Decodes a base58 Solana address into its ed25519 public key.
fn public_key(address: &str) -> Result<VerifyingKey, AuthError> {
    let bytes: [u8; 32] = bs58::decode(address)
        .into_vec()
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| AuthError::Malformed)
}

/// Builds the text `address` (base58 public key) signs.
pub fn challenge(spec: &ChallengeSpec<'_>) -> Result<String, AuthError> {
    let ChallengeSpec {
        expect,
        address,
        nonce,
        now,
        ttl,
        ..
    } = *spec;
    public_key(address)?;
    let stamp = |t: OffsetDateTime| t.format(&Rfc3339).map_err(|_| AuthError::Malformed);
    Ok(format!(
        "{domain} wants you to sign in with your Solana account:\n{address}\n\n{STATEMENT}\n\n\
         URI: {uri}\nVersion: 1\nNonce: {nonce}\nIssued At: {issued}\nExpiration Time: {expires}",
        domain = expect.domain,
        uri = expect.uri,
        issued = stamp(now)?,
        expires = stamp(now + ttl)?,
    ))
}

/// Verifies a base58 ed25519 signature by `address` over `text`; returns
/// the address.
pub fn verify(text: &str, signature_b58: &str, address: &str) -> Result<String, AuthError> {
    let key = public_key(address)?;
    let signature: [u8; 64] = bs58::decode(signature_b58)
        .into_vec()
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed)?;
    key.verify_strict(text.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| AuthError::BadSignature)?;
    Ok(address.to_string())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::auth::Expect;
    use time::Duration;

    #[test]
    fn rfc8032_key_signs_in_and_refusals() {
        // RFC 8032 §7.1 test 1 secret; its public key in base58 is the address.
        let secret: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&secret);
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let address = bs58::encode(key.verifying_key().as_bytes()).into_string();
        let expect = Expect::from_public_url("https://video.example.com").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let spec = ChallengeSpec {
            expect: &expect,
            address: &address,
            chain_id: 0,
            nonce: "n0nce123",
            now,
            ttl: Duration::minutes(5),
        };
        let text = challenge(&spec).unwrap();
        assert!(
            text.starts_with("video.example.com wants you to sign in with your Solana account:")
        );
        let sig = bs58::encode(key.sign(text.as_bytes()).to_bytes()).into_string();
        assert_eq!(verify(&text, &sig, &address).unwrap(), address);

        let other = SigningKey::from_bytes(&[7u8; 32]);
        let forged = bs58::encode(other.sign(text.as_bytes()).to_bytes()).into_string();
        assert_eq!(
            verify(&text, &forged, &address),
            Err(AuthError::BadSignature)
        );
        let tampered = text.replace("n0nce123", "n0nce124");
        assert_eq!(
            verify(&tampered, &sig, &address),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&text, "0xdeadbeef", &address),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            challenge(&ChallengeSpec {
                address: "not-base58!",
                ..spec
            }),
            Err(AuthError::Malformed)
        );
    }
}
