//! Playback tokens end to end: `streamgate token issue` (gRPC to the control
//! plane), the engine checking `/p/<token>/<asset>/…` locally with keys it
//! pulled, and every way a token can be wrong — over every wire (plain
//! HTTP/1.1, HTTPS/1.1, HTTP/2 over TLS, h2c).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::wire::Wire;
use common::{write, Engine, Options};
use streamgate_token::{Claims, TokenSigner};

fn asset(root: &Path) {
    for id in ["movie", "other"] {
        write(
            &root.join(id).join("master.m3u8"),
            b"#EXTM3U\n#EXT-X-VERSION:7\n",
        );
        write(&root.join(id).join("720p/1.m4s"), &common::pattern(5000, 1));
    }
}

over_every_wire!(
    a_token_opens_its_asset_and_only_its_asset,
    bad_tokens_are_refused,
);

/// `serve` with "movie" gated and "other" open (and a TLS listener when
/// `wire` needs one).
fn closed_engine(wire: Wire) -> Engine {
    let e = Engine::start_with(
        Options {
            open: false,
            tls: wire.tls(),
            ..Options::default()
        },
        asset,
    );
    e.gate_unreachable("movie");
    e
}

fn keys_dir(e: &Engine) -> PathBuf {
    e.scratch.0.join("keys")
}

/// The control plane's signing key, read back from its key file.
fn signer(e: &Engine) -> TokenSigner {
    let path = std::fs::read_dir(keys_dir(e))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .unwrap();
    let secret: [u8; 32] = B64
        .decode(std::fs::read_to_string(&path).unwrap().trim())
        .unwrap()
        .try_into()
        .unwrap();
    TokenSigner::from_secret(&path.file_stem().unwrap().to_string_lossy(), &secret)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, exp: u64, jti: &str) -> Claims {
    Claims {
        sub: sub.into(),
        exp,
        iat: now() - 10,
        jti: jti.into(),
        nbf: None,
        wal: None,
    }
}

fn a_token_opens_its_asset_and_only_its_asset(wire: Wire) {
    let e = closed_engine(wire);
    let c = e.over(wire);
    let token = e.issue_token("movie");
    e.wait_status(&format!("/p/{token}/movie/master.m3u8"), 200);
    // An open asset is served under /v/ (and with a token of its own).
    e.wait_status("/v/other/master.m3u8", 200);
    let segment = c.get(
        &format!("/p/{token}/movie/720p/1.m4s"),
        "Range: bytes=0-9\r\n",
    );
    assert_eq!((segment.status, segment.body.len()), (206, 10));
    // The same asset is never served under /v/ when it is gated.
    assert_eq!(c.get("/v/movie/master.m3u8", "").status, 404);
    // A token for one asset does not open another, open or not.
    let r = c.get(&format!("/p/{token}/other/master.m3u8"), "");
    assert_eq!(r.status, 403);
    assert_eq!(r.body, b"forbidden\n", "no detail for an attacker");
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
}

fn bad_tokens_are_refused(wire: Wire) {
    let e = closed_engine(wire);
    let c = e.over(wire);
    let good = e.issue_token("movie");
    e.wait_status(&format!("/p/{good}/movie/master.m3u8"), 200);
    let signer = signer(&e);
    let parts: Vec<&str> = good.split('.').collect();

    let expired = signer.sign(&claims("movie", now() - 120, "e1"));
    let future = signer.sign(&Claims {
        nbf: Some(now() + 3600),
        ..claims("movie", now() + 7200, "f1")
    });
    let forged_claims = B64.encode(serde_json_claims("other"));
    let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let stranger =
        TokenSigner::from_secret("stranger", &[9u8; 32]).sign(&claims("movie", now() + 600, "s1"));
    let wrong_key_same_kid = TokenSigner::from_secret(signer.kid(), &[9u8; 32]).sign(&claims(
        "movie",
        now() + 600,
        "w1",
    ));
    let cases = [
        (expired, 401),
        (future, 401),
        (tampered.clone(), 401),
        (stranger, 401),
        (wrong_key_same_kid, 401),
        ("not-a-token".to_string(), 401),
        (format!("{}.{}", parts[0], parts[1]), 401),
    ];
    for (token, status) in cases {
        let r = c.get(&format!("/p/{token}/movie/master.m3u8"), "");
        assert_eq!(r.status, status, "{token}");
        assert!(!r.body.starts_with(b"#EXTM3U"));
    }
    let r = c.get(&format!("/p/{tampered}/other/master.m3u8"), "");
    assert_eq!(r.status, 401);
    assert!(e.metric("streamgate_tokens_rejected_total{reason=\"expired\"}") >= 1.0);
    assert!(e.metric("streamgate_tokens_rejected_total{reason=\"bad_signature\"}") >= 3.0);
    assert!(e.metric("streamgate_tokens_rejected_total{reason=\"unknown_key\"}") >= 1.0);
}

fn serde_json_claims(sub: &str) -> Vec<u8> {
    format!(
        "{{\"sub\":\"{sub}\",\"exp\":{},\"iat\":1,\"jti\":\"x\"}}",
        now() + 600
    )
    .into_bytes()
}

#[test]
fn revocation_and_rotation_apply_without_restart() {
    let e = closed_engine(Wire::Http1);
    let token = e.issue_token("movie");
    let path = format!("/p/{token}/movie/master.m3u8");
    e.wait_status(&path, 200);
    // Revoked while cached on the workers: refused from the next poll on.
    let jti = signer_claims_jti(&token);
    let other = e.issue_token("movie");
    // A token id that is too long is refused for what it is, not as missing.
    let out = e.cli_output(&["token", "revoke"], &[&"j".repeat(200)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("at most 128") && !said.contains("required"),
        "{said}"
    );
    e.cli(&["token", "revoke"], &[&jti]);
    e.wait_status(&path, 403);
    assert_eq!(
        e.get(&format!("/p/{other}/movie/master.m3u8"), "").status,
        200
    );
    // Rotation: new tokens carry the new kid; tokens signed with the old
    // key keep working until they expire.
    let kid = e.cli(&["token", "rotate-key"], &[]).trim().to_string();
    let fresh = e.issue_token("movie");
    assert!(
        header_of(&fresh).contains(&kid),
        "new tokens use the new key"
    );
    e.wait_status(&format!("/p/{fresh}/movie/master.m3u8"), 200);
    assert_eq!(
        e.get(&format!("/p/{other}/movie/master.m3u8"), "").status,
        200
    );
    // The control plane restarts (kill -9): the engine keeps its state and
    // the revocation survives in the database.
    let mut e = e;
    e.kill9_and_restart();
    e.wait_status(&format!("/p/{fresh}/movie/master.m3u8"), 200);
    assert_eq!(e.get(&path, "").status, 403);
}

fn header_of(token: &str) -> String {
    String::from_utf8(B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

fn signer_claims_jti(token: &str) -> String {
    let payload = B64.decode(token.split('.').nth(1).unwrap()).unwrap();
    let text = String::from_utf8(payload).unwrap();
    let start = text.find("\"jti\":\"").unwrap() + 7;
    text[start..].split('"').next().unwrap().to_string()
}
