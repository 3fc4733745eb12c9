//! One proxy user's limits, shared by every connection and request of that user on both protocols: how many
//! queries run at once (with a bounded wait queue), how many start per minute, and how long each may run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::config::users::LimitSpec;

/// The running state of one user's limits.
pub struct Limiter {
    pub spec: LimitSpec,
    running: Option<Arc<Semaphore>>,
    waiting: AtomicU32,
    rate: Option<Mutex<Bucket>>,
}

/// A token bucket: `requests_per_minute` tokens at most, refilled continuously.
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// A query's turn: it holds one of the user's concurrent slots until dropped.
#[derive(Debug, Default)]
pub struct Admission {
    _permit: Option<OwnedSemaphorePermit>,
    /// How long the query waited for its turn.
    pub queued: Duration,
}

/// Why a query was not admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// `requests_per_minute` is used up; a token comes back after `retry_after`.
    Rate { per_minute: u32, retry_after: Duration },
    /// Every concurrent slot is taken and the queue is full.
    QueueFull { running: u32, queue: u32 },
    /// The query waited `max_queue_time` without getting a slot.
    QueueTimeout { running: u32, waited: Duration },
}

impl Refused {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Rate { .. } => "rate",
            Refused::QueueFull { .. } => "queue_full",
            Refused::QueueTimeout { .. } => "queue_timeout",
        }
    }

    /// The message the client sees (after "Too many simultaneous queries" as ClickHouse words it).
    pub fn message(&self, user: &str) -> String {
        match self {
            Refused::Rate {
                per_minute,
                retry_after,
            } => format!(
                "Too many queries for user {user}: requests_per_minute = {per_minute} used up; retry in {:.1} s",
                retry_after.as_secs_f64()
            ),
            Refused::QueueFull { running, queue } => format!(
                "Too many simultaneous queries for user {user}. Maximum: {running} running and {queue} waiting"
            ),
            Refused::QueueTimeout { running, waited } => format!(
                "Too many simultaneous queries for user {user}. Maximum: {running}; waited {:.1} s (max_queue_time) for a turn",
                waited.as_secs_f64()
            ),
        }
    }

    /// For `Retry-After` on HTTP: whole seconds, at least one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refused::Rate { retry_after, .. } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            _ => None,
        }
    }
}

impl Limiter {
    pub fn new(spec: LimitSpec) -> Limiter {
        Limiter {
            spec,
            running: spec
                .max_concurrent_queries
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            waiting: AtomicU32::new(0),
            rate: spec.requests_per_minute.map(|per_minute| {
                Mutex::new(Bucket {
                    tokens: f64::from(per_minute),
                    refilled: Instant::now(),
                })
            }),
        }
    }

    /// Queries waiting for a turn now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queries holding a turn now.
    pub fn running(&self) -> u32 {
        match (&self.running, self.spec.max_concurrent_queries) {
            (Some(slots), Some(max)) => max.saturating_sub(slots.available_permits() as u32),
            _ => 0,
        }
    }

    /// Takes a token of the rate limit, then a concurrent slot, waiting in the queue for one if allowed.
    pub async fn admit(&self) -> Result<Admission, Refused> {
        self.take_token()?;
        let Some(slots) = &self.running else {
            return Ok(Admission::default());
        };
        let max = self.spec.max_concurrent_queries.unwrap_or_default();
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(Admission {
                _permit: Some(permit),
                queued: Duration::ZERO,
            });
        }
        // A place in the queue, or none.
        let queue = self.spec.max_queue_size;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < queue).then_some(w + 1)
            })
            .is_err()
        {
            return Err(Refused::QueueFull { running: max, queue });
        }
        let started = Instant::now();
        let waited = tokio::time::timeout(self.spec.max_queue_time, slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(Admission {
                _permit: Some(permit),
                queued: started.elapsed(),
            }),
            // The semaphore is never closed; a timeout is the only way here.
            _ => Err(Refused::QueueTimeout {
                running: max,
                waited: started.elapsed(),
            }),
        }
    }

    fn take_token(&self) -> Result<(), Refused> {
        let (Some(bucket), Some(per_minute)) = (&self.rate, self.spec.requests_per_minute) else {
            return Ok(());
        };
        let mut bucket = bucket.lock().expect("rate bucket lock");
        let per_second = f64::from(per_minute) / 60.0;
        let now = Instant::now();
        let refill = now.duration_since(bucket.refilled).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(per_minute));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Refused::Rate {
                per_minute,
                retry_after: Duration::from_secs_f64((1.0 - bucket.tokens) / per_second),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(concurrent: Option<u32>, queue: u32, rpm: Option<u32>) -> LimitSpec {
        LimitSpec {
            max_concurrent_queries: concurrent,
            max_queue_size: queue,
            max_queue_time: Duration::from_millis(200),
            requests_per_minute: rpm,
        }
    }

    #[tokio::test]
    async fn concurrency_queue_and_refusals() {
        let limiter = Arc::new(Limiter::new(spec(Some(2), 1, None)));
        let a = limiter.admit().await.unwrap();
        let _b = limiter.admit().await.unwrap();
        assert_eq!(limiter.running(), 2);
        // The third waits in the queue; the fourth finds it full.
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.admit().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(limiter.waiting(), 1);
        assert!(matches!(
            limiter.admit().await,
            Err(Refused::QueueFull { running: 2, queue: 1 })
        ));
        drop(a);
        let admitted = waiter.await.unwrap().unwrap();
        assert!(admitted.queued > Duration::ZERO);
        assert_eq!(limiter.waiting(), 0);
        // With both slots taken again, a queued query times out.
        let refused = limiter.admit().await.unwrap_err();
        assert!(matches!(refused, Refused::QueueTimeout { .. }), "{refused:?}");
    }

    #[tokio::test]
    async fn rate_limit_refills() {
        let limiter = Limiter::new(spec(None, 0, Some(120)));
        for _ in 0..120 {
            limiter.admit().await.unwrap();
        }
        let refused = limiter.admit().await.unwrap_err();
        let Refused::Rate { retry_after, .. } = refused else {
            panic!("{refused:?}")
        };
        assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
        assert_eq!(refused.retry_after_secs(), Some(1));
        tokio::time::sleep(Duration::from_millis(520)).await;
        limiter.admit().await.unwrap();
    }

    #[tokio::test]
    async fn no_limits_admit_everything() {
        let limiter = Limiter::new(spec(None, 0, None));
        for _ in 0..1000 {
            limiter.admit().await.unwrap();
        }
    }
}
