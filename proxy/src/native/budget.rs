//! The memory the native side may hold for packets still being framed, shared by all client connections.
//!
//! Every connection frames small packets within a free allowance ([`FREE_PER_CONNECTION`]) that never touches
//! the shared budget, so the hot path of small queries has no shared state. A packet that needs more (a large
//! INSERT block, raw or decompressed) reserves the excess from the budget before the connection reads on; when
//! the budget is spent, reading pauses until other connections give memory back (backpressure). A connection that
//! waits longer than [`MAX_WAIT`] stops framing and relays the rest of its bytes untouched, which needs no buffer
//! beyond a fixed copy window, so memory stays bounded and nothing deadlocks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Bytes each connection may hold for framing without reserving any (the read buffer's usual size and then
/// some): small packets never wait.
pub const FREE_PER_CONNECTION: usize = 1 << 20;
/// How long a connection waits for budget before it relays the rest of its bytes unframed.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The shared budget (`max_framing_memory`).
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    released: Notify,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            released: Notify::new(),
        })
    }

    /// Bytes reserved now, over all connections.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.released.notify_waiters();
        }
    }
}

/// The outcome of [`Reservation::grow_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grown {
    Yes,
    /// More than the whole budget: it can never be granted.
    OverLimit,
    /// Other connections did not give enough back within [`MAX_WAIT`].
    TimedOut,
}

/// One connection's share of the budget: what it reserved beyond its free allowance. Dropping it gives the
/// memory back.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    reserved: usize,
}

impl Reservation {
    pub fn new(budget: Arc<Budget>) -> Reservation {
        Reservation { budget, reserved: 0 }
    }

    /// Bytes this connection may hold for framing now.
    pub fn allowance(&self) -> usize {
        FREE_PER_CONNECTION + self.reserved
    }

    /// Makes the allowance at least `bytes`, waiting up to [`MAX_WAIT`] for other connections to give memory
    /// back.
    ///
    /// # Cancellation safety
    /// Safe to drop: what was reserved is recorded before each await and given back by `Drop`.
    pub async fn grow_to(&mut self, bytes: usize) -> Grown {
        let wanted = bytes.saturating_sub(FREE_PER_CONNECTION);
        if wanted <= self.reserved {
            return Grown::Yes;
        }
        if wanted > self.budget.limit {
            return Grown::OverLimit;
        }
        let more = wanted - self.reserved;
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            // Registered before trying, so a release between the try and the wait is not missed.
            let released = self.budget.released.notified();
            if self.budget.try_take(more) {
                self.reserved = wanted;
                return Grown::Yes;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Grown::TimedOut;
            }
        }
    }

    /// Gives back what is reserved beyond `bytes` (called when a large packet has left the buffer).
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.saturating_sub(FREE_PER_CONNECTION);
        if keep < self.reserved {
            self.budget.give_back(self.reserved - keep);
            self.reserved = keep;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_packets_never_touch_the_budget() {
        let budget = Budget::new(0);
        let mut r = Reservation::new(budget.clone());
        assert_eq!(r.grow_to(FREE_PER_CONNECTION).await, Grown::Yes);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_makes_readers_wait_then_give_up() {
        let budget = Budget::new(10 << 20);
        let mut first = Reservation::new(budget.clone());
        assert_eq!(first.grow_to(FREE_PER_CONNECTION + (8 << 20)).await, Grown::Yes);
        assert_eq!(budget.used(), 8 << 20);
        let mut second = Reservation::new(budget.clone());
        // Waits until `first` gives memory back.
        let waiter = tokio::spawn(async move {
            let ok = second.grow_to(FREE_PER_CONNECTION + (4 << 20)).await;
            (ok, second)
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        first.shrink_to(FREE_PER_CONNECTION);
        let (ok, second) = waiter.await.unwrap();
        assert_eq!(ok, Grown::Yes);
        assert_eq!(budget.used(), 4 << 20);
        // Nobody gives back: the wait ends after MAX_WAIT.
        let mut third = Reservation::new(budget.clone());
        assert_eq!(
            third.grow_to(FREE_PER_CONNECTION + (8 << 20)).await,
            Grown::TimedOut
        );
        // More than the whole budget never waits.
        let started = tokio::time::Instant::now();
        assert_eq!(
            third.grow_to(FREE_PER_CONNECTION + (11 << 20)).await,
            Grown::OverLimit
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(second);
        assert_eq!(budget.used(), 0);
    }
}
