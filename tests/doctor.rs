//! `streamgate doctor` on this machine: OK (or WARN) everywhere against a
//! running appliance and a real chain; FAIL with the line that says why
//! when the descriptor limit is too low, the database is unreachable, or
//! an RPC URL is another chain.

mod common;

use std::process::Command;

use common::chain::{Anvil, CHAIN_ID};
use common::{free_addr, Engine, Options};

fn doctor(config: &std::path::Path, prefix: &[&str]) -> (bool, serde_json::Value) {
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_streamgate"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_streamgate")),
    };
    let out = command
        .args(["doctor", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

/// The finding of `check` (the first, or the one whose text has `about`).
fn finding<'j>(json: &'j serde_json::Value, check: &str) -> &'j serde_json::Value {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding: {json:#}"))
}

#[test]
fn doctor_says_ok_here_and_fail_with_the_reason() {
    let anvil = Anvil::start();
    let e = Engine::start_with(
        Options {
            open: false,
            sections_toml: format!("[chains.{CHAIN_ID}]\nrpc = [\"{}\"]\n", anvil.url()),
            ..Options::default()
        },
        |_| {},
    );
    let (ok, json) = doctor(&e.config_path(), &[]);
    assert!(ok, "{json:#}");
    assert_eq!(json["fail"], 0, "{json:#}");
    for check in [
        "io_uring", "nofile", "memlock", "ffmpeg", "gpu", "database", "rpc", "clock",
    ] {
        assert_eq!(finding(&json, check)["level"], "ok", "{check}: {json:#}");
    }
    assert!(finding(&json, "database")["said"]
        .as_str()
        .unwrap()
        .contains("schema current"));

    // Too few descriptors for max_connections: FAIL, and the exit says so.
    let (ok, json) = doctor(&e.config_path(), &["prlimit", "--nofile=200:200"]);
    assert!(!ok);
    let nofile = finding(&json, "nofile");
    assert_eq!(nofile["level"], "fail", "{json:#}");
    assert!(nofile["said"]
        .as_str()
        .unwrap()
        .contains("RLIMIT_NOFILE 200 <"));

    // A database that does not answer, and an RPC URL of another chain.
    let broken = e.scratch.0.join("broken.toml");
    let text = std::fs::read_to_string(e.config_path()).unwrap().replace(
        "[control]\n",
        &format!(
            "[control]\ndatabase = \"postgres://streamgate@{}/streamgate\"\n",
            free_addr()
        ),
    );
    let text = text.replace(
        &format!("[chains.{CHAIN_ID}]"),
        &format!("[chains.{}]", CHAIN_ID + 1),
    );
    std::fs::write(&broken, text).unwrap();
    let (ok, json) = doctor(&broken, &[]);
    assert!(!ok);
    assert_eq!(finding(&json, "database")["level"], "fail", "{json:#}");
    let rpc = finding(&json, "rpc");
    assert_eq!(rpc["level"], "fail", "{json:#}");
    assert!(
        rpc["said"]
            .as_str()
            .unwrap()
            .contains(&format!("is chain {CHAIN_ID}, not {}", CHAIN_ID + 1)),
        "{rpc}"
    );
}
