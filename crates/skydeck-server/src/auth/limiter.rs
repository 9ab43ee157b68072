//! Slows password guessing: after a few failed logins for one user from
//! one address, that pair is refused for a while without checking the
//! password at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    attempts: Mutex<HashMap<(String, Option<IpAddr>), Attempts>>,
}

struct Attempts {
    failures: u32,
    since: Instant,
}

/// Entries kept before old ones are swept, so a flood of made-up user
/// names cannot grow the map without bound.
const SWEEP_AT: usize = 10_000;

impl Default for LoginLimiter {
    /// Five failures in five minutes lock the pair for the rest of them.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(300))
    }
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when this user may not try from this address now.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(user, address, Instant::now())
    }

    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        self.failed_at(user, address, Instant::now());
    }

    pub fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        self.lock().remove(&(user.to_owned(), address));
    }

    fn check_at(&self, user: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let attempts = self.lock();
        match attempts.get(&(user.to_owned(), address)) {
            Some(a) if a.failures >= self.max_failures => {
                let over = a.since + self.window;
                if now < over { Err(over - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    fn failed_at(&self, user: &str, address: Option<IpAddr>, now: Instant) {
        let mut attempts = self.lock();
        if attempts.len() >= SWEEP_AT {
            let window = self.window;
            attempts.retain(|_, a| now.duration_since(a.since) < window);
        }
        let entry = attempts
            .entry((user.to_owned(), address))
            .or_insert(Attempts {
                failures: 0,
                since: now,
            });
        if now.duration_since(entry.since) >= self.window {
            *entry = Attempts {
                failures: 0,
                since: now,
            };
        }
        entry.failures += 1;
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

    #[test]
    fn repeated_failures_lock_one_user_at_one_address_for_the_window() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("alice", A, start).is_ok());
            limiter.failed_at("alice", A, start);
        }
        let wait = limiter.check_at("alice", A, start + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        assert!(limiter.check_at("alice", B, start).is_ok(), "other address");
        assert!(limiter.check_at("bob", A, start).is_ok(), "other user");
        assert!(
            limiter
                .check_at("alice", A, start + Duration::from_secs(61))
                .is_ok(),
            "the lock ends with the window"
        );
    }

    #[test]
    fn a_success_forgets_earlier_failures() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        limiter.failed_at("alice", A, now);
        limiter.succeeded("alice", A);
        limiter.failed_at("alice", A, now);
        assert!(limiter.check_at("alice", A, now).is_ok());
    }
}
