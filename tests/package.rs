//! The .deb, built by cargo-deb and installed into a throwaway root with
//! the real dpkg (`--root`, maintainer scripts run chrootless with
//! `DPKG_ROOT`): files, modes, owners, the service user, nothing enabled,
//! a reinstall, then remove (config and data kept) and purge (config gone,
//! data kept).
//!
//! The package is made from the debug binary the suite already built
//! (`--profile dev`): this checks the package, not the optimiser;
//! `scripts/package.sh` makes the release one.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Scratch;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo deb` into `out`; the package's path.
fn build_deb(out: &Path) -> PathBuf {
    let have = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        have.is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed: run scripts/setup.sh --tests"
    );
    run(Command::new("cargo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["deb", "--no-build", "--profile", "dev", "--quiet", "-o"])
        .arg(out));
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb")
}

/// An empty dpkg database and a passwd/group with root only.
fn throwaway_root(dir: &Path) {
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        // Scripts run on the host with DPKG_ROOT set (no shell inside the
        // root); the FFmpeg libraries the package depends on are not there.
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args))
}

/// The id of `name` in `root`'s passwd or group file.
fn id_in(root: &Path, file: &str, name: &str) -> u32 {
    std::fs::read_to_string(root.join("etc").join(file))
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in {file}"))
}

#[test]
fn the_deb_installs_into_a_root_keeps_data_on_remove_and_config_until_purge() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "dpkg --root needs root (CI runs as root)"
    );
    let s = Scratch::new("deb");
    let deb = build_deb(&s.0);

    // What is in it.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/streamgate"),
        ("-rw-r--r--", "./lib/systemd/system/streamgate.service"),
        (
            "-rw-r--r--",
            "./lib/systemd/system/streamgate-engine.service",
        ),
        (
            "-rw-r--r--",
            "./lib/systemd/system/streamgate-control.service",
        ),
        (
            "-rw-r--r--",
            "./lib/systemd/system/streamgate-worker.service",
        ),
        ("-rw-r--r--", "./usr/lib/sysusers.d/streamgate.conf"),
        ("-rw-r--r--", "./usr/lib/tmpfiles.d/streamgate.conf"),
        ("-rw-r-----", "./etc/streamgate/streamgate.toml"),
        ("-rw-r--r--", "./usr/share/doc/streamgate/architecture.md"),
        ("-rw-r--r--", "./usr/share/doc/streamgate/copyright"),
        ("-rw-r--r--", "./usr/share/streamgate/web/watch.html"),
        ("-rw-r--r--", "./usr/share/streamgate/web/static/watch.js"),
        (
            "-rw-r--r--",
            "./usr/share/streamgate/web/node_modules/hls.js/dist/hls.mjs",
        ),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.contains(" 0/0 ") && l.ends_with(path)),
            "{mode} root {path} missing:\n{listing}"
        );
    }
    let field = |name: &str| run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(name));
    assert!(
        field("Depends").contains("libavcodec"),
        "{}",
        field("Depends")
    );
    let control = s.0.join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles"))
            .unwrap()
            .trim(),
        "/etc/streamgate/streamgate.toml"
    );

    // Installed: the user, its directories, the config readable by it
    // alone, nothing enabled.
    let root = s.0.join("root");
    throwaway_root(&root);
    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    let (uid, gid) = (
        id_in(&root, "passwd", "streamgate"),
        id_in(&root, "group", "streamgate"),
    );
    assert_ne!(uid, 0);
    let meta = |p: &str| std::fs::metadata(root.join(p)).unwrap();
    let data = meta("var/lib/streamgate");
    assert_eq!(
        (data.uid(), data.gid(), data.mode() & 0o7777),
        (uid, gid, 0o750)
    );
    let config = meta("etc/streamgate/streamgate.toml");
    assert_eq!(
        (config.uid(), config.gid(), config.mode() & 0o7777),
        (0, gid, 0o640)
    );
    let etc = meta("etc/streamgate");
    assert_eq!((etc.uid(), etc.gid(), etc.mode() & 0o7777), (0, gid, 0o750));
    assert!(
        !root
            .join("etc/systemd/system/multi-user.target.wants")
            .exists(),
        "nothing is enabled on install"
    );
    let help = run(Command::new(root.join("usr/bin/streamgate")).arg("--help"));
    assert!(help.contains("serve"), "{help}");

    // Again (what an upgrade runs): the scripts are idempotent.
    std::fs::write(root.join("var/lib/streamgate/streamgate.db"), "catalog").unwrap();
    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    assert_eq!(id_in(&root, "passwd", "streamgate"), uid, "same user");

    // Remove: the binary goes, config and data stay.
    dpkg(&root, &["-r", "streamgate"]);
    assert!(!root.join("usr/bin/streamgate").exists());
    assert!(root.join("etc/streamgate/streamgate.toml").exists());
    assert!(root.join("var/lib/streamgate/streamgate.db").exists());
    // Purge: the config goes, the data stays.
    dpkg(&root, &["--purge", "streamgate"]);
    assert!(!root.join("etc/streamgate").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/streamgate/streamgate.db")).unwrap(),
        "catalog"
    );
}
