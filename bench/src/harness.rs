//! Helpers shared by the benchmarks: ports, waiting for servers, medians.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The median of a non-empty sample.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Waits until `port` accepts connections or `child` exits.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited early: {status}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not listen on {port}"))
}

/// Replaces the text between the `section` markers in `path` (appending
/// the block when the markers are missing).
pub fn record(path: &Path, section: &str, report: &str) -> Result<(), String> {
    let begin = format!("<!-- bench:{section}:begin -->");
    let end = format!("<!-- bench:{section}:end -->");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map_or(String::new(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    let block = format!("{begin}\nLatest run: {date}.\n\n{report}{end}");
    let updated = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{text}\n{block}\n"),
    };
    std::fs::write(path, updated).map_err(|e| e.to_string())
}

/// Options every load benchmark (`http`, `sendpath`, `tokens`) takes.
pub struct LoadOptions {
    /// Interleaved rounds; medians are over them.
    pub rounds: usize,
    /// Seconds per wrk run.
    pub seconds: u64,
    /// wrk connections.
    pub connections: usize,
    /// Server workers (engine threads, nginx workers).
    pub threads: usize,
    /// The `streamgate` binary under test.
    pub streamgate: std::path::PathBuf,
    /// `docs/benchmarks.md`-style file to record the report in.
    pub markdown: Option<std::path::PathBuf>,
}

impl LoadOptions {
    /// Parses `--rounds --duration --connections --threads --streamgate
    /// --markdown` over the given defaults.
    pub fn parse(args: &[String], rounds: usize, seconds: u64) -> Result<Self, String> {
        let mut o = Self {
            rounds,
            seconds,
            connections: 32,
            threads: 1,
            streamgate: "target/release/streamgate".into(),
            markdown: None,
        };
        for (flag, value) in flags(args)? {
            match flag {
                "--rounds" => o.rounds = number::<usize>(flag, value)?.max(1),
                "--duration" => o.seconds = number::<u64>(flag, value)?.max(1),
                "--connections" => o.connections = number::<usize>(flag, value)?.max(1),
                "--threads" => o.threads = number::<usize>(flag, value)?.max(1),
                "--streamgate" => o.streamgate = value.into(),
                "--markdown" => o.markdown = Some(value.into()),
                _ => return Err(format!("unknown option {flag}\n{}", crate::USAGE)),
            }
        }
        Ok(o)
    }
}

/// Splits `--flag value` pairs, refusing a flag without its value.
pub fn flags(args: &[String]) -> Result<Vec<(&str, &str)>, String> {
    args.chunks(2)
        .map(|pair| match pair {
            [flag, value] => Ok((flag.as_str(), value.as_str())),
            [flag] => Err(format!("{flag} needs a value")),
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// Parses a flag's number.
pub fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value}"))
}

/// Starts Debian's nginx with `workers` worker processes on `port`, its
/// files under `dir`, serving the given `location` blocks, with the anchor
/// settings every comparison uses (sendfile, tcp_nopush, tcp_nodelay, no
/// access log).
pub fn start_nginx(
    dir: &Path,
    port: u16,
    workers: usize,
    locations: &str,
) -> Result<Child, String> {
    let conf = dir.join("nginx.conf");
    let text = format!(
        "user root;\nworker_processes {workers};\ndaemon off;\nmaster_process on;\npid {dir}/nginx.pid;\n\
         error_log {dir}/nginx-error.log warn;\nworker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
         keepalive_requests 1000000;\n\
         types {{ video/iso.segment m4s; }}\n  default_type application/octet-stream;\n\
         client_body_temp_path {dir}/tmp;\n  proxy_temp_path {dir}/tmp;\n  fastcgi_temp_path {dir}/tmp;\n\
         uwsgi_temp_path {dir}/tmp;\n  scgi_temp_path {dir}/tmp;\n\
         server {{\n    listen 127.0.0.1:{port};\n    {locations}\n  }}\n}}\n",
        dir = dir.display(),
    );
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
    std::fs::write(&conf, text).map_err(|e| e.to_string())?;
    let mut child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start nginx (install it with scripts/setup.sh): {e}"))?;
    wait_for_port(port, &mut child, "nginx")?;
    Ok(child)
}

/// Starts `bin engine --open` with `threads` workers on `port`, serving
/// `root`, with extra `STREAMGATE_…` variables.
pub fn start_engine(
    bin: &Path,
    root: &Path,
    port: u16,
    threads: usize,
    env: &[(&str, &str)],
) -> Result<Child, String> {
    let admin = free_port();
    let mut child = Command::new(bin)
        .arg("engine")
        .arg("--root")
        .arg(root)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(["--threads", &threads.to_string(), "--open"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_for_port(port, &mut child, "streamgate engine")?;
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_pair_up_or_complain() {
        let args: Vec<String> = ["--rounds", "3", "--duration", "5"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            flags(&args).unwrap(),
            [("--rounds", "3"), ("--duration", "5")]
        );
        let odd: Vec<String> = ["--rounds"].map(String::from).to_vec();
        assert!(flags(&odd).is_err());
        assert_eq!(number::<u32>("--rounds", "7"), Ok(7));
        assert!(number::<u32>("--rounds", "x").is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
