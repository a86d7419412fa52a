//! Draining on SIGTERM: stop accepting, finish in-flight responses, exit.
//!
//! The process-wide [`Drain`] flag is set by whoever handles the signal.
//! Each worker polls it on its housekeeping tick and turns it into a
//! [`LocalDrain`], a same-thread notification that wakes the accept loop and
//! idle keep-alive connections. (A tick rather than a cross-thread waker keeps
//! monoio single-threaded: no `sync` feature, no atomics on the hot path.)

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The process-wide "start draining" flag.
#[derive(Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    /// Starts draining.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether draining has started.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct LocalState {
    drained: Cell<bool>,
    next_id: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

/// A worker-local view of [`Drain`] that futures can await.
#[derive(Clone, Default)]
pub struct LocalDrain(Rc<LocalState>);

impl LocalDrain {
    /// Marks this worker drained and wakes every waiter.
    pub fn fire(&self) {
        self.0.drained.set(true);
        for (_, waker) in self.0.waiters.borrow_mut().drain() {
            waker.wake();
        }
    }

    /// Whether this worker is draining.
    pub fn is_drained(&self) -> bool {
        self.0.drained.get()
    }

    /// A future that completes when the worker starts draining. Create it once
    /// per connection and poll it by reference, so it registers once.
    pub fn wait(&self) -> DrainWait {
        let id = self.0.next_id.get();
        self.0.next_id.set(id + 1);
        DrainWait {
            id,
            state: Rc::clone(&self.0),
        }
    }
}

/// See [`LocalDrain::wait`].
pub struct DrainWait {
    id: u64,
    state: Rc<LocalState>,
}

impl Future for DrainWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.drained.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.state.waiters.borrow_mut();
        match waiters.get_mut(&self.id) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                waiters.insert(self.id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for DrainWait {
    fn drop(&mut self) {
        self.state.waiters.borrow_mut().remove(&self.id);
    }
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every
/// thread it spawns afterwards, so they queue for
/// [`wait_for_termination_signal`] instead of killing the process
/// mid-response. Call before spawning workers.
pub fn block_termination_signals() {
    let set = termination_signals();
    // SAFETY: a valid, initialised signal set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks the calling thread until SIGTERM or SIGINT arrives; returns the
/// signal number. Each SIGHUP meanwhile calls `on_hup` (a reload) and the
/// wait goes on.
pub fn wait_for_termination_signal_or(mut on_hup: impl FnMut()) -> i32 {
    block_termination_signals();
    let set = termination_signals();
    loop {
        let mut sig = 0;
        // SAFETY: valid set and out pointer; sigwait only fails for invalid sets.
        unsafe {
            libc::sigwait(&set, &mut sig);
        }
        if sig != libc::SIGHUP {
            return sig;
        }
        on_hup();
    }
}

/// [`wait_for_termination_signal_or`] for a process with nothing to reload.
pub fn wait_for_termination_signal() -> i32 {
    wait_for_termination_signal_or(|| {})
}
