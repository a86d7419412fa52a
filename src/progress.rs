//! One progress line on stderr: redrawn in place on a terminal, one line
//! per change of the whole percent otherwise (logs, CI: at most about a
//! hundred lines), so `transcode` and `ingest` look alike.

use std::io::{IsTerminal, Write};

/// A progress line.
pub struct Bar {
    tty: bool,
    label: &'static str,
    drawn: bool,
    /// What the last non-terminal line said (whole percent, or the detail
    /// when the percent is unknown).
    last_line: Option<String>,
}

impl Bar {
    /// A bar whose non-terminal lines start with `label`.
    pub fn new(label: &'static str) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            label,
            drawn: false,
            last_line: None,
        }
    }

    /// Shows `percent` (if known) and a detail text.
    pub fn show(&mut self, percent: Option<f64>, detail: &str) {
        let pct = percent.map_or("?".into(), |v| format!("{v:.0}"));
        if self.tty {
            let filled = percent.map_or(0, |v| (v.clamp(0.0, 100.0) / 5.0) as usize);
            eprint!("\r[{:<20}] {pct:>3}%  {detail}   ", "#".repeat(filled));
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            let key = percent.map_or_else(|| detail.to_string(), |_| pct.clone());
            if self.last_line.as_deref() != Some(key.as_str()) {
                eprintln!("{}: {pct}% {detail}", self.label);
                self.last_line = Some(key);
            }
        }
    }

    /// Ends the line (on a terminal).
    pub fn finish(&mut self) {
        if self.tty && self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
