//! The control plane end to end over real sockets: wallet sign-in (SIWE,
//! EIP-712, Solana) on the JSON API, the NFT gate against a real EVM node
//! (anvil, contracts compiled by solc), playback tokens the engine enforces,
//! RPC failover and outages.

mod common;

use std::time::{Duration, Instant};

use common::chain::{Anvil, CHAIN_ID, WALLETS};
use common::wallet::{api, challenge, login, personal_sign, playback, sign_in, sign_typed};
use common::{free_addr, packaged_asset, Engine, Options};
use serde_json::json;

fn serve(chain_rpc: &[String], extra_control: &str) -> Engine {
    serve_with_chain(chain_rpc, "", extra_control)
}

/// `chain_extra`: more keys for the `[chains.N]` section.
fn serve_with_chain(chain_rpc: &[String], chain_extra: &str, extra_control: &str) -> Engine {
    let rpc = chain_rpc
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sections = if chain_rpc.is_empty() {
        String::new()
    } else {
        format!(
            "[chains.{CHAIN_ID}]\nrpc = [{rpc}]\ntimeout = \"1s\"\n{chain_extra}\n[nft]\ncache_ttl = \"1s\"\nnegative_ttl = \"1s\"\n"
        )
    };
    Engine::start_with(
        Options {
            open: false,
            control_toml: extra_control.into(),
            sections_toml: sections,
            ..Options::default()
        },
        |dir| {
            packaged_asset(&dir.join("movie"), 1);
            packaged_asset(&dir.join("other"), 50);
        },
    )
}

/// Polls `check` until it holds (NFT answers are cached for a second).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(25);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dead_url() -> String {
    format!("http://{}", free_addr())
}

#[test]
fn nft_holders_watch_and_everyone_else_is_refused() {
    nft_gate_scenario("");
}

/// The same scenario with the metadata in PostgreSQL.
#[test]
fn nft_gate_on_postgresql() {
    let Some(db) = common::postgres::Database::create() else {
        return;
    };
    nft_gate_scenario(&format!("database = \"{}\"", db.url()));
}

fn nft_gate_scenario(control_toml: &str) {
    let anvil = Anvil::start();
    let nft = anvil.deploy("TestNft721");
    let multi = anvil.deploy("TestMulti1155");
    let [(k0, w0), (k1, w1), (k2, w2)] = WALLETS;
    anvil.mint721(nft, w0, 1);
    anvil.mint1155(multi, w2, 7, 2);
    // The first RPC URL is dead: every check fails over to anvil.
    let e = serve(&[dead_url(), anvil.url()], control_toml);
    let said = e.gate_erc721("movie", &nft.to_string());
    assert!(
        !said.contains("warning"),
        "chain 31337 is configured: {said}"
    );
    let shown = e.cli(
        &["asset", "gate", "movie"],
        &[
            "--chain",
            "31337",
            "--erc1155",
            &multi.to_string(),
            "--token-id",
            "7",
            "--min-balance",
            "2",
        ],
    );
    assert!(
        shown.contains("Erc1155Balance") || shown.contains("ERC1155"),
        "{shown}"
    );
    // A gated asset is never served under /v/; the open one is.
    e.wait_status("/v/movie/master.m3u8", 404);
    e.wait_status("/v/other/master.m3u8", 200);
    let listed = api(e.http, "GET", "/api/v1/assets", None, None);
    assert_eq!(listed.status, 200);
    let mut movie = listed.json[0].clone();
    // A gated asset lists the NFTs that open it (what a 403 says too).
    let rules = movie.as_object_mut().unwrap().remove("rules").unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 2, "{rules}");
    assert_eq!(rules[0]["chain_id"], 31337);
    assert_eq!(
        json!([movie, listed.json[1]]),
        json!([
            {"id": "movie", "title": "movie", "status": "ready", "gated": true},
            {"id": "other", "title": "other", "status": "ready", "gated": false},
        ])
    );

    // ERC-721 holder, SIWE: a token, and the engine serves every URI with it.
    let s0 = sign_in(e.http, k0, w0, CHAIN_ID, "siwe");
    let p = playback(e.http, &s0, "movie");
    assert_eq!(p.status, 200, "{:?}", p.json);
    let token = p.json["token"].as_str().unwrap().to_string();
    assert_eq!(p.json["hls"], format!("/p/{token}/movie/master.m3u8"));
    assert_eq!(p.json["dash"], format!("/p/{token}/movie/manifest.mpd"));
    let fetched = common::fetch_every_uri(&e, &format!("/p/{token}/movie/"), &e.root.join("movie"));
    assert_eq!(fetched, 5, "master, media playlist, init, two segments");
    assert_eq!(
        e.get(&format!("/p/{token}/movie/manifest.mpd"), "").status,
        200
    );
    // The token for movie does not open other.
    assert_eq!(
        e.get(&format!("/p/{token}/other/master.m3u8"), "").status,
        403
    );

    // ERC-1155 holder (balance 2 ≥ 2), EIP-712 sign-in.
    let s2 = sign_in(e.http, k2, w2, CHAIN_ID, "eip712");
    assert_eq!(playback(e.http, &s2, "movie").status, 200);

    // A wallet with neither: 403 with the rules it failed.
    let s1 = sign_in(e.http, k1, w1, CHAIN_ID, "eip712");
    let refused = playback(e.http, &s1, "movie");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "nft_required");
    let rules = refused.json["error"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["kind"], "erc721_token");
    assert_eq!(rules[1]["token_id"], "7");
    // The open asset needs no NFT.
    assert_eq!(playback(e.http, &s1, "other").status, 200);

    // Transfer the NFT: access flips within the cache TTL.
    anvil.transfer721(nft, w0, w1, 1);
    eventually("the new owner to be let in", || {
        playback(e.http, &s1, "movie").status == 200
    });
    eventually("the old owner to be refused", || {
        playback(e.http, &s0, "movie").status == 403
    });
    // ERC-1155 balance falls below the minimum.
    anvil.transfer1155(multi, w2, w0, 7, 1);
    eventually("the 1155 holder below min to be refused", || {
        playback(e.http, &s2, "movie").status == 403
    });

    // Logout ends the session.
    assert_eq!(
        api(e.http, "POST", "/api/v1/auth/logout", Some(&s1), None).status,
        204
    );
    let after = playback(e.http, &s1, "movie");
    assert_eq!((after.status, after.code()), (401, "invalid_session"));
    assert_eq!(
        api(e.http, "POST", "/api/v1/auth/logout", Some(&s1), None).status,
        401
    );

    // CORS for the engine's public origin only.
    let origin = format!("http://{}", e.addr);
    let mut s = std::net::TcpStream::connect(e.http).unwrap();
    use std::io::Write;
    write!(
        s,
        "OPTIONS /api/v1/auth/login HTTP/1.1\r\nHost: api\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
    )
    .unwrap();
    let pre = common::read_response(&mut s, false).unwrap();
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some(origin.as_str())
    );
    assert!(pre
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("POST"));
    assert!(
        listed.header("Access-Control-Allow-Origin").is_none(),
        "other origins get no CORS"
    );

    // Metrics: sign-ins, NFT checks, RPC failovers, tokens.
    assert!(e.metric("streamgate_signins_total{kind=\"siwe\",result=\"ok\"}") >= 1.0);
    assert!(e.metric("streamgate_signins_total{kind=\"eip712\",result=\"ok\"}") >= 2.0);
    assert!(e.metric("streamgate_nft_checks_total{result=\"allowed\"") >= 2.0);
    assert!(e.metric("streamgate_nft_checks_total{result=\"denied\"") >= 2.0);
    assert!(e.metric("streamgate_rpc_failovers_total{chain=\"31337\"}") >= 1.0);
    assert!(e.metric("streamgate_tokens_issued_total{caller=\"viewer\"}") >= 3.0);
    assert!(e.metric("streamgate_token_requests_refused_total{reason=\"nft_required\"}") >= 1.0);
    assert!(e.metric("streamgate_rpc_latency_seconds_count{chain=\"31337\"}") >= 1.0);
}

#[test]
fn a_dead_chain_is_503_and_never_cached_as_no_nft() {
    // anvil's first deployment from wallet 0 always lands here.
    let nft = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let rpc = free_addr();
    let e = serve_with_chain(
        &[dead_url(), format!("http://{rpc}")],
        "breaker_failures = 2\nbreaker_open = \"3s\"",
        "",
    );
    e.gate_erc721("movie", nft);
    let [(k0, w0), ..] = WALLETS;
    let s0 = sign_in(e.http, k0, w0, CHAIN_ID, "siwe");
    for _ in 0..4 {
        let r = playback(e.http, &s0, "movie");
        assert_eq!(r.status, 503, "{:?}", r.json);
        assert_eq!(r.code(), "chain_unavailable");
        assert_eq!(r.header("Retry-After"), Some("5"));
    }
    assert!(e.metric("streamgate_nft_checks_total{result=\"unavailable\"") >= 4.0);
    // Two requests tried both URLs twice; that opened both breakers, so the
    // other two were refused without calling anyone.
    assert_eq!(e.metric("streamgate_rpc_errors_total"), 4.0);
    // The chain comes back (same URL) and the holder is let in: the outage
    // was never remembered as "no NFT". The breaker may keep the URL closed
    // for a few seconds first.
    let anvil = Anvil::start_on(rpc);
    assert_eq!(anvil.deploy("TestNft721").to_string(), nft);
    anvil.mint721(nft.parse().unwrap(), w0, 1);
    eventually("the holder to be let in", || {
        playback(e.http, &s0, "movie").status == 200
    });
}

#[test]
fn sign_in_refusals() {
    let e = serve(&[], "challenge_ttl = \"2s\"");
    let [(k0, w0), (k1, _), ..] = WALLETS;

    // Replayed challenge.
    let c = challenge(e.http, w0, CHAIN_ID, "siwe");
    let text = c["message"].as_str().unwrap();
    let id = c["challenge_id"].as_str().unwrap();
    let sig = personal_sign(k0, text);
    assert_eq!(login(e.http, id, &sig).status, 200);
    let replay = login(e.http, id, &sig);
    assert_eq!((replay.status, replay.code()), (401, "challenge_used"));

    // The domain, the chain or the signer changed: the signature no longer
    // matches what the server issued.
    for (tampered, key) in [
        (text.replace(&e.addr.to_string(), "evil.example"), k0),
        (text.replace("Chain ID: 31337", "Chain ID: 1"), k0),
        (text.to_string(), k1),
    ] {
        let c2 = challenge(e.http, w0, CHAIN_ID, "siwe");
        let fresh = c2["message"].as_str().unwrap();
        let nonce_line = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("Nonce:"))
                .unwrap()
                .to_string()
        };
        let forged = tampered.replace(&nonce_line(&tampered), &nonce_line(fresh));
        let r = login(
            e.http,
            c2["challenge_id"].as_str().unwrap(),
            &personal_sign(key, &forged),
        );
        assert_eq!((r.status, r.code()), (401, "bad_signature"), "{forged}");
        // The real signature still works afterwards: a refusal spends nothing.
        assert_eq!(
            login(
                e.http,
                c2["challenge_id"].as_str().unwrap(),
                &personal_sign(k0, fresh)
            )
            .status,
            200
        );
    }

    // EIP-712 signed by another key.
    let c = challenge(e.http, w0, CHAIN_ID, "eip712");
    let r = login(
        e.http,
        c["challenge_id"].as_str().unwrap(),
        &sign_typed(k1, &c["typed_data"]),
    );
    assert_eq!((r.status, r.code()), (401, "bad_signature"));

    // Expired challenge.
    let c = challenge(e.http, w0, CHAIN_ID, "siwe");
    std::thread::sleep(Duration::from_millis(2200));
    let r = login(
        e.http,
        c["challenge_id"].as_str().unwrap(),
        &personal_sign(k0, c["message"].as_str().unwrap()),
    );
    assert_eq!((r.status, r.code()), (401, "challenge_expired"));

    // Unknown challenge, malformed input.
    assert_eq!(login(e.http, "nope", &sig).code(), "invalid_challenge");
    let bad = api(
        e.http,
        "POST",
        "/api/v1/auth/login",
        None,
        Some("{not json"),
    );
    assert_eq!((bad.status, bad.code()), (400, "malformed"));
    let c = challenge(e.http, w0, CHAIN_ID, "siwe");
    assert_eq!(
        login(e.http, c["challenge_id"].as_str().unwrap(), "0x1234").status,
        400
    );
    let r = api(
        e.http,
        "POST",
        "/api/v1/auth/challenge",
        None,
        Some(r#"{"address":"0x12","chain_id":1,"kind":"siwe"}"#),
    );
    assert_eq!((r.status, r.code()), (400, "malformed"));
    let r = api(
        e.http,
        "POST",
        "/api/v1/auth/challenge",
        None,
        Some(r#"{"address":"x","chain_id":1,"kind":"carrier-pigeon"}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kind"));

    // Sessions: none, bogus, unknown asset.
    assert_eq!(
        playback(e.http, "sgs_bogus", "movie").code(),
        "invalid_session"
    );
    assert_eq!(
        api(e.http, "POST", "/api/v1/assets/movie/playback", None, None).status,
        401
    );
    let session = sign_in(e.http, k0, w0, CHAIN_ID, "siwe");
    let r = playback(e.http, &session, "nothing-here");
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(
        api(e.http, "GET", "/api/v1/nowhere", None, None).code(),
        "not_found"
    );
}

#[test]
fn solana_wallets_sign_in_with_ed25519() {
    use ed25519_dalek::{Signer, SigningKey};
    let e = serve(&[], "");
    e.gate_unreachable("movie");
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let address = bs58::encode(key.verifying_key().as_bytes()).into_string();
    let c = challenge(e.http, &address, 0, "solana");
    let text = c["message"].as_str().unwrap();
    assert!(text.contains("wants you to sign in with your Solana account:"));
    let signature = bs58::encode(key.sign(text.as_bytes()).to_bytes()).into_string();
    // Someone else's signature first (refused, spends nothing).
    let other = SigningKey::from_bytes(&[43u8; 32]);
    let forged = bs58::encode(other.sign(text.as_bytes()).to_bytes()).into_string();
    let id = c["challenge_id"].as_str().unwrap();
    assert_eq!(login(e.http, id, &forged).code(), "bad_signature");
    let ok = login(e.http, id, &signature);
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    assert_eq!(ok.json["address"], address.as_str());
    let session = ok.json["session"].as_str().unwrap();
    // An open asset plays; an EVM-gated one needs an EVM wallet.
    let p = playback(e.http, session, "other");
    assert_eq!(p.status, 200);
    let token = p.json["token"].as_str().unwrap();
    assert_eq!(
        e.get(&format!("/p/{token}/other/master.m3u8"), "").status,
        200
    );
    assert_eq!(playback(e.http, session, "movie").code(), "nft_required");
}

#[test]
fn unanswered_challenges_are_capped() {
    let e = serve(&[], "challenge_limit_per_address = 3\nchallenge_limit = 5");
    let [(k0, w0), (_, w1), ..] = WALLETS;
    let ask = |wallet: &str| {
        api(
            e.http,
            "POST",
            "/api/v1/auth/challenge",
            None,
            Some(&json!({"address": wallet, "chain_id": CHAIN_ID, "kind": "siwe"}).to_string()),
        )
    };
    let mut first = None;
    for _ in 0..3 {
        let r = ask(w0);
        assert_eq!(r.status, 200, "{:?}", r.json);
        first.get_or_insert(r.json);
    }
    // A fourth for the same wallet, in whatever case it is written.
    for wallet in [w0.to_string(), w0.to_lowercase()] {
        let refused = ask(&wallet);
        assert_eq!(
            (refused.status, refused.code()),
            (429, "too_many_challenges")
        );
        assert!(refused.header("Retry-After").is_some());
    }
    // Another wallet still gets in, up to the cap on all of them.
    assert_eq!(ask(w1).status, 200);
    assert_eq!(ask(w1).status, 200);
    assert_eq!(ask(w1).code(), "too_many_challenges");
    // Answering a challenge frees its place.
    let first = first.unwrap();
    let signature = personal_sign(k0, first["message"].as_str().unwrap());
    assert_eq!(
        login(e.http, first["challenge_id"].as_str().unwrap(), &signature).status,
        200
    );
    assert_eq!(ask(w0).status, 200);
    assert_eq!(
        e.metric("streamgate_signins_total{kind=\"siwe\",result=\"too_many_challenges\"}"),
        3.0
    );
}
