//! Flood control: rate limits per principal and per client address (governor, GCRA), and the
//! bounded queue in front of the sandboxes.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{RateLimitConfig, SandboxConfig};

/// Keyed rate limiters: one per principal, one per client address.
#[derive(Debug)]
pub struct RateLimits {
    principal: DefaultKeyedRateLimiter<String>,
    client: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(rate).allow_burst(burst)
}

impl RateLimits {
    /// Limiters for `config` (validated: every value at least 1).
    pub fn new(config: &RateLimitConfig) -> Self {
        RateLimits {
            principal: RateLimiter::keyed(quota(config.per_principal_per_minute, config.burst)),
            client: RateLimiter::keyed(quota(config.per_client_per_minute, config.burst)),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), u64> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Retry-After is whole seconds (RFC 9110 section 10.2.3): round up.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Takes one request from `principal`'s allowance; `Err(seconds)` until the next one.
    ///
    /// # Errors
    ///
    /// The seconds to wait (at least 1).
    pub fn check_principal(&self, principal: &str) -> Result<(), u64> {
        self.check(&self.principal, &principal.to_string())
            .map_err(|s| s.max(1))
    }

    /// Takes one request from `client`'s allowance; `Err(seconds)` until the next one.
    ///
    /// # Errors
    ///
    /// The seconds to wait (at least 1).
    pub fn check_client(&self, client: IpAddr) -> Result<(), u64> {
        self.check(&self.client, &client).map_err(|s| s.max(1))
    }

    /// Forgets keys whose allowance is full again (bounds memory under many clients).
    pub fn shrink(&self) {
        self.principal.retain_recent();
        self.client.retain_recent();
        self.principal.shrink_to_fit();
        self.client.shrink_to_fit();
    }
}

/// At most `max_concurrent` sandboxes run and at most `queue_depth` executions wait.
#[derive(Debug)]
pub struct Queue {
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// An execution admitted to the queue; dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket {
    admitted: Arc<AtomicUsize>,
    slots: Arc<Semaphore>,
}

/// A running slot; dropping it frees the slot (and the ticket).
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl Queue {
    /// A queue for `config`.
    pub fn new(config: &SandboxConfig) -> Self {
        Queue {
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: config.max_concurrent + config.queue_depth,
        }
    }

    /// Admits one execution, or `None` when running plus waiting is at capacity.
    pub fn admit(&self) -> Option<Ticket> {
        self.admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .ok()?;
        Some(Ticket {
            admitted: Arc::clone(&self.admitted),
            slots: Arc::clone(&self.slots),
        })
    }

    /// Executions admitted (running or waiting).
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }
}

impl Ticket {
    /// Waits for a free sandbox slot.
    pub async fn wait(self) -> Option<Slot> {
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok()?;
        Some(Slot {
            _permit: permit,
            _ticket: self,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_per_key() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_principal_per_minute: 1,
            per_client_per_minute: 1,
            burst: 2,
        });
        assert!(limits.check_principal("a").is_ok());
        assert!(limits.check_principal("a").is_ok());
        let wait = limits.check_principal("a").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limits.check_principal("b").is_ok(), "keys are independent");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        limits.check_client(ip).unwrap();
        limits.check_client(ip).unwrap();
        assert!(limits.check_client(ip).is_err());
    }

    #[tokio::test]
    async fn the_queue_admits_running_plus_waiting_and_no_more() {
        let queue = Queue::new(&SandboxConfig {
            max_concurrent: 1,
            queue_depth: 1,
            ..SandboxConfig::default()
        });
        let running = queue.admit().unwrap().wait().await.unwrap();
        let waiting = queue.admit().unwrap();
        assert!(queue.admit().is_none());
        drop(running);
        let _slot = waiting.wait().await.unwrap();
        assert_eq!(queue.admitted(), 1);
        assert!(queue.admit().is_some());
    }
}
