//! Slows password guessing without locking anyone out.
//!
//! Failures are counted per user *and client address* (the real client,
//! see [`super::settings::AuthSettings::client_address`]), so guesses from
//! one machine never slow down the same user elsewhere. After a few free
//! failures, each further one makes that pair wait twice as long before
//! the next password is even checked; once the wait is over, the right
//! password works again. A guesser gets a handful of tries an hour, the
//! real user who mistyped waits seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    /// Failures allowed before any wait.
    free_failures: u32,
    /// The first wait; each later failure doubles it, up to `max_delay`.
    base_delay: Duration,
    max_delay: Duration,
    /// A pair with no failure for this long starts afresh.
    forget_after: Duration,
    attempts: Mutex<HashMap<(String, Option<IpAddr>), Attempts>>,
}

struct Attempts {
    failures: u32,
    last: Instant,
}

/// Entries kept before old ones are swept, so a flood of made-up user
/// names cannot grow the map without bound.
const SWEEP_AT: usize = 10_000;

impl Default for LoginLimiter {
    /// Five free failures, then 1 s, 2 s, 4 s … up to five minutes between
    /// tries; forgotten after an hour without one.
    fn default() -> Self {
        Self::new(
            5,
            Duration::from_secs(1),
            Duration::from_secs(300),
            Duration::from_secs(3600),
        )
    }
}

impl LoginLimiter {
    pub fn new(
        free_failures: u32,
        base_delay: Duration,
        max_delay: Duration,
        forget_after: Duration,
    ) -> Self {
        Self {
            free_failures,
            base_delay,
            max_delay,
            forget_after,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when this user may not try from this address yet.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(user, address, Instant::now())
    }

    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        self.failed_at(user, address, Instant::now());
    }

    pub fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        self.lock().remove(&(user.to_owned(), address));
    }

    /// How long a pair with `failures` waits after its last one.
    fn delay(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        let factor = 2u32.saturating_pow(over.min(31));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn check_at(&self, user: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let attempts = self.lock();
        let Some(a) = attempts.get(&(user.to_owned(), address)) else {
            return Ok(());
        };
        let ready = a.last + self.delay(a.failures);
        if now < ready && now.duration_since(a.last) < self.forget_after {
            Err(ready - now)
        } else {
            Ok(())
        }
    }

    fn failed_at(&self, user: &str, address: Option<IpAddr>, now: Instant) {
        let mut attempts = self.lock();
        if attempts.len() >= SWEEP_AT {
            let forget_after = self.forget_after;
            attempts.retain(|_, a| now.duration_since(a.last) < forget_after);
        }
        if attempts.len() >= SWEEP_AT {
            // Still full of recent pairs (made-up names from many
            // addresses): keep only those already being slowed down.
            let free = self.free_failures;
            attempts.retain(|_, a| a.failures >= free);
        }
        let entry = attempts
            .entry((user.to_owned(), address))
            .or_insert(Attempts {
                failures: 0,
                last: now,
            });
        if now.duration_since(entry.last) >= self.forget_after {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Option<IpAddr>), Attempts>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(
            3,
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn failures_past_the_free_ones_wait_twice_as_long_each_time() {
        let limiter = limiter();
        let mut now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("alice", A, now).is_ok());
            limiter.failed_at("alice", A, now);
        }
        // The third failure was free; the fourth try waits 1 s, then 2 s …
        let mut expected = Duration::from_secs(1);
        for _ in 0..8 {
            assert_eq!(limiter.check_at("alice", A, now), Err(expected));
            now += expected;
            assert!(limiter.check_at("alice", A, now).is_ok(), "after the wait");
            limiter.failed_at("alice", A, now);
            expected = (expected * 2).min(Duration::from_secs(60));
        }
        assert_eq!(
            limiter.check_at("alice", A, now),
            Err(Duration::from_secs(60)),
            "the wait is capped"
        );
        assert!(limiter.check_at("alice", B, now).is_ok(), "other address");
        assert!(limiter.check_at("bob", A, now).is_ok(), "other user");
        assert!(
            limiter
                .check_at("alice", A, now + Duration::from_secs(3600))
                .is_ok(),
            "forgotten after an idle hour"
        );
    }

    #[test]
    fn a_flood_of_made_up_names_cannot_grow_the_table_without_bound() {
        let limiter = limiter();
        let now = Instant::now();
        for _ in 0..4 {
            limiter.failed_at("alice", A, now);
        }
        for i in 0..3 * SWEEP_AT {
            limiter.failed_at(&format!("nobody{i}"), B, now);
        }
        assert!(limiter.lock().len() <= SWEEP_AT);
        assert!(
            limiter.check_at("alice", A, now).is_err(),
            "the slowed pair is kept"
        );
    }

    #[test]
    fn a_success_forgets_earlier_failures() {
        let limiter = limiter();
        let now = Instant::now();
        for _ in 0..4 {
            limiter.failed_at("alice", A, now);
        }
        assert!(limiter.check_at("alice", A, now).is_err());
        limiter.succeeded("alice", A);
        limiter.failed_at("alice", A, now);
        assert!(limiter.check_at("alice", A, now).is_ok());
    }
}
