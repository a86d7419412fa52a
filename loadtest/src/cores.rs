//! Thread-per-core, like the engine: one current-thread tokio runtime per
//! thread, the work dealt to the threads up front, every connection or
//! viewer a task on its thread (no locks on the hot path, no hops).

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::LoadError;

/// Starts `threads` threads, each running `work(index)` to completion on a
/// runtime of its own (with a `LocalSet`, so tasks need not be `Send`).
pub fn spawn<T, W, F>(threads: usize, name: &str, work: W) -> Result<Vec<JoinHandle<T>>, LoadError>
where
    T: Send + 'static,
    W: Fn(usize) -> F + Send + Sync + 'static,
    F: Future<Output = T> + 'static,
{
    raise_fd_limit();
    let work = Arc::new(work);
    (0..threads)
        .map(|index| {
            let work = Arc::clone(&work);
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime builds");
                    tokio::task::LocalSet::new().block_on(&runtime, work(index))
                })
                .map_err(|e| LoadError::BadOption(format!("cannot start a load thread: {e}")))
        })
        .collect()
}

/// Calls `tick` about once a second until every thread is done (the live
/// status of a run).
pub fn each_second_until_done<T>(threads: &[JoinHandle<T>], mut tick: impl FnMut()) {
    let mut last = std::time::Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if last.elapsed() >= std::time::Duration::from_secs(1) {
            last = std::time::Instant::now();
            tick();
        }
    }
}

/// The number of threads to use: `asked`, or one per core when 0.
pub fn count(asked: usize) -> usize {
    if asked > 0 {
        asked
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Lifts the soft limit on open files to the hard one: ten thousand viewers
/// need ten thousand sockets.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
