//! A self-signed ECDSA P-256 certificate for `localhost` and `127.0.0.1`,
//! made by the openssl CLI: the test CA of the TLS tests and benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `cert.pem` and `key.pem` into `dir`; returns their paths. A
/// server certificate (`CA:FALSE`: webpki refuses a CA as the end entity)
/// that clients trust by taking it as their CA.
pub fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))?;
    Ok((cert, key))
}

/// Runs an openssl command; its stderr when it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run openssl (scripts/setup.sh installs it): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A self-signed ECDSA P-256 server certificate for `names` (DNS names;
/// the first is the subject), written as `<first>-cert.pem` and
/// `<first>-key.pem` in `dir`. `expired`: valid only for a day in 2020
/// (made through `openssl ca`, whose dates can be set, since `req -x509`
/// takes no date in the past).
pub fn certificate(
    dir: &Path,
    names: &[&str],
    expired: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let first = names.first().ok_or("no name")?;
    let (cert, key) = (
        dir.join(format!("{first}-cert.pem")),
        dir.join(format!("{first}-key.pem")),
    );
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let request = |cmd: &mut Command| {
        cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-subj", &format!("/CN={first}")])
            .args(["-addext", &format!("subjectAltName={san}")])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key);
    };
    if !expired {
        let mut cmd = Command::new("openssl");
        cmd.args(["req", "-x509", "-days", "2"]);
        request(&mut cmd);
        return run(cmd.arg("-out").arg(&cert)).map(|()| (cert, key));
    }
    let ca = dir.join(format!("{first}-ca"));
    std::fs::create_dir_all(&ca).map_err(|e| e.to_string())?;
    let config = ca.join("ca.cnf");
    std::fs::write(
        &config,
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n",
    )
    .and_then(|()| std::fs::write(ca.join("index.txt"), ""))
    .and_then(|()| std::fs::write(ca.join("serial"), "01\n"))
    .map_err(|e| e.to_string())?;
    let csr = ca.join("req.csr");
    let mut cmd = Command::new("openssl");
    cmd.arg("req");
    request(&mut cmd);
    run(cmd.arg("-new").arg("-out").arg(&csr))?;
    run(Command::new("openssl")
        .current_dir(&ca)
        .args(["ca", "-batch", "-selfsign", "-notext", "-config"])
        .arg(&config)
        .arg("-keyfile")
        .arg(&key)
        .arg("-in")
        .arg(&csr)
        .args([
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ])
        .arg("-out")
        .arg(&cert))?;
    Ok((cert, key))
}

/// A client CA and a client certificate it signed (`clientAuth`), for
/// mTLS: writes `client-ca.pem`, `client-cert.pem`, `client-key.pem` into
/// `dir`; returns (CA, certificate, key).
pub fn client_certificate(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let path = |n: &str| dir.join(n);
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=StreamGate test client CA"],
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-keyout",
                "client-ca-key.pem",
                "-out",
                "client-ca.pem",
            ],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req", "-new"][..],
            &ec,
            &[
                "-subj",
                "/CN=engine-1",
                "-keyout",
                "client-key.pem",
                "-out",
                "client.csr",
            ],
        ]
        .concat(),
    )?;
    std::fs::write(
        path("client.ext"),
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "client-ca.pem",
        "-CAkey",
        "client-ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "client.ext",
        "-out",
        "client-cert.pem",
    ])?;
    Ok((
        path("client-ca.pem"),
        path("client-cert.pem"),
        path("client-key.pem"),
    ))
}
