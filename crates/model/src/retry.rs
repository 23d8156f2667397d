//! When a failure that may heal is tried again: the first few at once (the trigger's own quick
//! retry), then with exponential backoff, and past the bound never by itself. Pure arithmetic,
//! so every count is tested here rather than through the async loop.

use std::time::Duration;

/// How failures that may heal are retried; defaults suit production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failures in a row after which a SPEC's failure is recorded for good.
    pub max_attempts: u32,
    /// Of those, how many are tried again at once.
    pub quick_retries: u32,
    /// Backoff after the quick ones: `base * 2^(n-1)`, capped at `max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// What the `n`th failure in a row leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again at once.
    Now,
    /// Try again after this long.
    After(Duration),
    /// Recorded for good: only a new write (a `retry` bump) runs it again.
    GiveUp,
}

impl RetryPolicy {
    /// The `retries`th failure in a row (1 for the first). A removed SPEC never gives up (it has
    /// no `retry` to bump, so its delete keeps being tried, at the slowest pace).
    pub fn after_failure(&self, retries: u32, removed: bool) -> Retry {
        if retries > self.max_attempts && !removed {
            Retry::GiveUp
        } else if retries <= self.quick_retries {
            Retry::Now
        } else if retries > self.max_attempts {
            Retry::After(self.backoff_max)
        } else {
            Retry::After(self.backoff(retries - self.quick_retries))
        }
    }

    /// The `n`th backoff (1 for the first): doubling from the base, capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            quick_retries: 2,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_quick_retries_come_first_then_the_backoff_doubles_then_it_gives_up() {
        let p = policy();
        let seen: Vec<Retry> = (1..=6).map(|n| p.after_failure(n, false)).collect();
        assert_eq!(
            seen,
            [
                Retry::Now,
                Retry::Now,
                Retry::After(Duration::from_secs(30)),
                Retry::After(Duration::from_secs(60)),
                Retry::After(Duration::from_secs(120)),
                Retry::GiveUp,
            ]
        );
    }

    #[test]
    fn a_removed_spec_never_gives_up_and_waits_the_longest() {
        let p = policy();
        for n in [6, 7, 100, u32::MAX] {
            assert_eq!(p.after_failure(n, true), Retry::After(p.backoff_max), "{n}");
        }
        assert_eq!(p.after_failure(1, true), Retry::Now);
    }

    #[test]
    fn the_backoff_is_capped_and_never_overflows() {
        let p = policy();
        assert_eq!(p.backoff(0), p.backoff_base);
        assert_eq!(p.backoff(7), Duration::from_secs(1920));
        for n in [8, 17, 64, u32::MAX] {
            assert_eq!(p.backoff(n), p.backoff_max, "{n}");
        }
        let huge = RetryPolicy {
            backoff_base: Duration::MAX,
            ..p
        };
        assert_eq!(huge.backoff(3), p.backoff_max);
    }

    #[test]
    fn no_quick_retries_means_the_first_failure_backs_off() {
        let p = RetryPolicy {
            quick_retries: 0,
            ..policy()
        };
        assert_eq!(p.after_failure(1, false), Retry::After(p.backoff_base));
    }
}
