//! The PostgreSQL path: the same appliance with `control.database` a
//! postgres:// URL, against a real server (Debian's, started by
//! `scripts/postgres.sh` from `scripts/test.sh`). Each test gets a database
//! of its own.

mod common;

use common::chain::{CHAIN_ID, WALLETS};
use common::postgres::{psql, Database};
use common::wallet::{api, challenge, login, personal_sign, playback, sign_in};
use common::{packaged_asset, Engine, Options};

#[test]
fn the_appliance_runs_on_postgresql() {
    let Some(db) = Database::create() else {
        return;
    };
    let mut e = Engine::start_with(
        Options {
            open: false,
            control_toml: format!("database = \"{}\"", db.url()),
            ..Options::default()
        },
        |dir| {
            packaged_asset(&dir.join("movie"), 3);
            packaged_asset(&dir.join("other"), 9);
        },
    );
    e.gate_unreachable("movie");
    // The metadata lives in PostgreSQL, not in a SQLite file.
    assert!(!e.scratch.0.join("streamgate.db").exists());
    assert_eq!(
        psql(&db.url(), "SELECT id FROM assets ORDER BY id"),
        "movie\nother\n"
    );
    assert_eq!(psql(&db.url(), "SELECT count(*) FROM gate_rules"), "1\n");

    let [(k0, w0), ..] = WALLETS;
    let session = sign_in(e.http, k0, w0, CHAIN_ID, "siwe");
    let p = playback(e.http, &session, "other");
    assert_eq!(p.status, 200, "{:?}", p.json);
    let token = p.json["token"].as_str().unwrap().to_string();
    let fetched = common::fetch_every_uri(&e, &format!("/p/{token}/other/"), &e.root.join("other"));
    assert_eq!(fetched, 5);
    // Replay protection holds across the shared database.
    let c = challenge(e.http, w0, CHAIN_ID, "siwe");
    let sig = personal_sign(k0, c["message"].as_str().unwrap());
    let id = c["challenge_id"].as_str().unwrap();
    assert_eq!(login(e.http, id, &sig).status, 200);
    assert_eq!(login(e.http, id, &sig).code(), "challenge_used");

    // Operator token for the gated asset; revoke another.
    let operator = e.issue_token("movie");
    let revoked = e.issue_token("movie");
    let jti = {
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(revoked.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        v["jti"].as_str().unwrap().to_string()
    };
    e.cli(&["token", "revoke"], &[&jti]);
    e.wait_status(&format!("/p/{revoked}/movie/master.m3u8"), 403);

    // kill -9 and restart: sessions, assets, rules, keys and revocations
    // are all in PostgreSQL.
    e.kill9_and_restart();
    assert_eq!(playback(e.http, &session, "other").status, 200);
    e.wait_status(&format!("/p/{operator}/movie/master.m3u8"), 200);
    assert_eq!(
        e.get(&format!("/p/{revoked}/movie/master.m3u8"), "").status,
        403
    );
    assert_eq!(e.get("/v/movie/master.m3u8", "").status, 404);
    e.wait_status("/v/other/master.m3u8", 200);
    let listed = api(e.http, "GET", "/api/v1/assets", None, None);
    assert_eq!(listed.json.as_array().unwrap().len(), 2);
    assert_eq!(
        api(e.http, "POST", "/api/v1/auth/logout", Some(&session), None).status,
        204
    );
    assert_eq!(playback(e.http, &session, "other").status, 401);
}
