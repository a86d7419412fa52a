//! Per-core connection deadlines, kept in one ordered map and fired by the
//! worker's housekeeping tick.
//!
//! A runtime timer per connection (monoio's `Sleep`) is 640 bytes; with
//! thousands of idle keep-alive connections that alone was most of what an
//! idle connection cost. Idle and header timeouts need no better precision
//! than the tick (50 ms), so a connection waiting holds one map entry and a
//! small future instead — the way nginx keeps its timers in one tree.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The deadlines of one worker's connections.
#[derive(Default)]
pub struct Deadlines {
    waiting: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_id: Cell<u64>,
    /// Set when the worker drains: deadlines that end on draining complete.
    draining: Cell<bool>,
}

impl Deadlines {
    /// A future that completes at `at` (at the first tick after it) or, if
    /// `ends_on_drain`, when the worker starts draining.
    pub fn until(&self, at: Instant, ends_on_drain: bool) -> Deadline<'_> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        Deadline {
            deadlines: self,
            key: (at, id),
            ends_on_drain,
            registered: false,
        }
    }

    /// The worker drains: every deadline that ends on draining completes
    /// (the others are woken and wait on).
    pub fn drain(&self) {
        self.draining.set(true);
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for waker in waiting.into_values() {
            waker.wake();
        }
    }

    /// Wakes every deadline that has passed; called by the tick.
    pub fn fire(&self, now: Instant) {
        let mut waiting = self.waiting.borrow_mut();
        while let Some(entry) = waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
        }
    }

    /// Deadlines being waited on.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.borrow().len()
    }
}

/// See [`Deadlines::until`].
pub struct Deadline<'d> {
    deadlines: &'d Deadlines,
    key: (Instant, u64),
    ends_on_drain: bool,
    registered: bool,
}

impl Future for Deadline<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.key.0 || (self.ends_on_drain && self.deadlines.draining.get()) {
            let key = self.key;
            self.deadlines.waiting.borrow_mut().remove(&key);
            self.registered = false;
            return Poll::Ready(());
        }
        let key = self.key;
        self.deadlines
            .waiting
            .borrow_mut()
            .insert(key, cx.waker().clone());
        self.registered = true;
        Poll::Pending
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.deadlines.waiting.borrow_mut().remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fires_passed_deadlines_only_and_forgets_dropped_ones() {
        let deadlines = Deadlines::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let now = Instant::now();
        let mut soon = Box::pin(deadlines.until(now + Duration::from_millis(20), false));
        let mut later = Box::pin(deadlines.until(now + Duration::from_secs(3600), false));
        assert!(soon.as_mut().poll(&mut cx).is_pending());
        assert!(later.as_mut().poll(&mut cx).is_pending());
        assert_eq!(deadlines.len(), 2);
        deadlines.fire(now);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "nothing has passed yet");
        std::thread::sleep(Duration::from_millis(30));
        deadlines.fire(Instant::now());
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the passed one woke");
        assert!(soon.as_mut().poll(&mut cx).is_ready());
        drop(later);
        assert_eq!(deadlines.len(), 0, "a dropped deadline leaves no entry");
    }

    #[test]
    fn draining_ends_only_the_deadlines_that_end_on_drain() {
        let deadlines = Deadlines::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let far = Instant::now() + Duration::from_secs(3600);
        let mut idle = Box::pin(deadlines.until(far, true));
        let mut mid_head = Box::pin(deadlines.until(far, false));
        assert!(idle.as_mut().poll(&mut cx).is_pending());
        assert!(mid_head.as_mut().poll(&mut cx).is_pending());
        deadlines.drain();
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "both woke");
        assert!(idle.as_mut().poll(&mut cx).is_ready());
        assert!(
            mid_head.as_mut().poll(&mut cx).is_pending(),
            "a head in progress waits on"
        );
    }
}
