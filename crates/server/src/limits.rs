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

/// Keyed rate limiters: one per principal, one per client address, and one that thins out the
/// audit events of the denials.
#[derive(Debug)]
pub struct RateLimits {
    principal: DefaultKeyedRateLimiter<String>,
    client: DefaultKeyedRateLimiter<IpAddr>,
    denial_audit: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// The key of `client`'s allowance: IPv4 addresses as they are (IPv4-mapped IPv6 as IPv4),
/// IPv6 addresses by their /64, the smallest prefix a site is assigned (RFC 6177): a client
/// holding a /64 could otherwise take a fresh allowance with each of its 2^64 addresses.
pub fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Audit events per minute for the rate-limit denials of one client or principal.
const DENIAL_AUDITS_PER_MINUTE: u32 = 1;

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
            denial_audit: RateLimiter::keyed(quota(DENIAL_AUDITS_PER_MINUTE, 1)),
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
        self.check(&self.client, &client_key(client))
            .map_err(|s| s.max(1))
    }

    /// Whether a rate-limit denial of `key` (a client address or a principal, as the caller
    /// names it) gets an audit event: the first in each minute does, the rest are only counted
    /// in `warden_rate_limit_hits_total`. Each audit event is a hash-chained row written under
    /// one lock, and a client kept at its limit would otherwise write one per refused request
    /// (review, session 5: one client wrote 1,100 rows a second).
    pub fn audit_denial(&self, key: &str) -> bool {
        self.denial_audit.check_key(&key.to_string()).is_ok()
    }

    /// Forgets keys whose allowance is full again (bounds memory under many clients).
    pub fn shrink(&self) {
        self.principal.retain_recent();
        self.client.retain_recent();
        self.denial_audit.retain_recent();
        self.principal.shrink_to_fit();
        self.client.shrink_to_fit();
        self.denial_audit.shrink_to_fit();
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

    /// Review (session 5): each IPv6 address had its own allowance, so a client with a /64
    /// could rotate past the limit.
    #[test]
    fn ipv6_clients_share_the_allowance_of_their_64() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_principal_per_minute: 1,
            per_client_per_minute: 1,
            burst: 1,
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        limits.check_client(ip("2001:db8:1:2::1")).unwrap();
        assert!(limits.check_client(ip("2001:db8:1:2:ffff::7")).is_err());
        limits.check_client(ip("2001:db8:1:3::1")).unwrap();
        // IPv4 and IPv4-mapped IPv6 are one client.
        limits.check_client(ip("192.0.2.1")).unwrap();
        assert!(limits.check_client(ip("::ffff:192.0.2.1")).is_err());
        limits.check_client(ip("192.0.2.2")).unwrap();
        assert_eq!(client_key(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
    }

    #[test]
    fn only_the_first_denial_of_a_minute_is_audited_per_key() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_principal_per_minute: 1,
            per_client_per_minute: 1,
            burst: 1,
        });
        assert!(limits.audit_denial("client:192.0.2.1"));
        assert!(!limits.audit_denial("client:192.0.2.1"));
        assert!(!limits.audit_denial("client:192.0.2.1"));
        assert!(
            limits.audit_denial("principal:key:abc"),
            "keys are independent"
        );
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
