//! Whether every worker's loop still turns: each worker's housekeeping
//! tick stamps its slot; a slot left unstamped for a while means that
//! worker's thread is stuck (a blocking call, a runaway task), and the
//! service manager's watchdog should stop being fed (`streamgate serve`
//! does so, under systemd). Also the one fault the operator can inject on
//! purpose, with `[engine] fault_injection`, to see that happen: a worker
//! told to stall sleeps on its thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The workers' heartbeats.
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    /// Per worker: milliseconds since `started` at its last tick.
    beats: Vec<AtomicU64>,
    /// Per worker: seconds to stall at its next tick (0: none).
    stalls: Vec<AtomicU64>,
}

impl Liveness {
    /// Slots for `workers` workers, all fresh.
    pub fn new(workers: usize) -> Self {
        Self {
            started: Instant::now(),
            beats: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            stalls: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Worker `index` turned its loop.
    pub(crate) fn beat(&self, index: usize) {
        if let Some(slot) = self.beats.get(index) {
            slot.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The workers whose loop has not turned within `within`.
    pub fn stalled(&self, within: Duration) -> Vec<usize> {
        let now = self.now_ms();
        let limit = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        self.beats
            .iter()
            .enumerate()
            .filter(|(_, beat)| now.saturating_sub(beat.load(Ordering::Relaxed)) > limit)
            .map(|(index, _)| index)
            .collect()
    }

    /// Asks worker `index` to block its thread for `seconds` (fault
    /// injection); false when there is no such worker.
    pub(crate) fn request_stall(&self, index: usize, seconds: u64) -> bool {
        match self.stalls.get(index) {
            Some(slot) => {
                slot.store(seconds, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// A stall asked of worker `index`, taken.
    pub(crate) fn take_stall(&self, index: usize) -> Option<Duration> {
        let seconds = self.stalls.get(index)?.swap(0, Ordering::SeqCst);
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_stops_beating_is_stalled() {
        let l = Liveness::new(2);
        l.beat(0);
        l.beat(1);
        assert!(l.stalled(Duration::from_millis(200)).is_empty());
        std::thread::sleep(Duration::from_millis(60));
        l.beat(1);
        assert_eq!(l.stalled(Duration::from_millis(30)), vec![0]);
        assert!(l.request_stall(1, 3));
        assert!(!l.request_stall(2, 3), "no worker 2");
        assert_eq!(l.take_stall(1), Some(Duration::from_secs(3)));
        assert_eq!(l.take_stall(1), None, "taken once");
    }
}
