//! How long a local poller waits before polling again while nothing changes: as Lambda's pollers
//! do, it backs off while idle (so an idle `make up` keeps neither moto nor itself busy) and
//! comes back to its quickest pace as soon as a poll finds something.

use std::time::Duration;

/// The pause after `empty` polls in a row found nothing: `min`, doubled each time, never more
/// than `max`. A zero `min` starts at 1 ms (a pause of zero would never grow).
pub fn idle_delay(empty: u32, min: Duration, max: Duration) -> Duration {
    let base = min.max(Duration::from_millis(1));
    // 2^31 times any base already passes any cap worth having.
    let factor = 1u32 << empty.min(31);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// [`idle_delay`] with its count of empty polls.
#[derive(Clone, Debug)]
pub struct IdleBackoff {
    min: Duration,
    max: Duration,
    empty: u32,
}

impl IdleBackoff {
    /// From `min` after something was found, up to `max` while nothing is.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, empty: 0 }
    }

    /// A poll found nothing (or failed): the pause before the next, longer each time.
    pub fn idle(&mut self) -> Duration {
        let delay = idle_delay(self.empty, self.min, self.max);
        self.empty = self.empty.saturating_add(1);
        delay
    }

    /// A poll found something: the next empty poll waits `min` again.
    pub fn busy(&mut self) {
        self.empty = 0;
    }

    /// The pause the next empty poll would wait.
    pub fn next_delay(&self) -> Duration {
        idle_delay(self.empty, self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_pause_doubles_from_the_minimum_up_to_the_cap() {
        let delays: Vec<u128> = (0..7)
            .map(|n| idle_delay(n, 200 * MS, 1000 * MS).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 800, 1000, 1000, 1000, 1000]);
    }

    #[test]
    fn the_pause_never_passes_the_cap_however_long_the_idle() {
        for empty in [32, 64, 1000, u32::MAX] {
            assert_eq!(idle_delay(empty, 200 * MS, 1000 * MS), 1000 * MS);
        }
        // Even with a base so large that doubling it overflows.
        assert_eq!(
            idle_delay(
                40,
                Duration::from_secs(u64::MAX / 2),
                Duration::from_secs(5)
            ),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_zero_minimum_still_backs_off_and_a_cap_below_the_minimum_wins() {
        assert_eq!(idle_delay(0, Duration::ZERO, 1000 * MS), MS);
        assert_eq!(idle_delay(10, Duration::ZERO, 1000 * MS), 1000 * MS);
        assert_eq!(idle_delay(0, 500 * MS, 100 * MS), 100 * MS);
    }

    /// However long the system was idle, a write waits at most the cap (a second) to be seen,
    /// and the polls after it are at the quickest pace again.
    #[test]
    fn after_a_long_idle_the_next_poll_is_within_the_cap_and_finding_something_resets_it() {
        let mut backoff = IdleBackoff::new(200 * MS, 1000 * MS);
        let idle: Duration = (0..10_000).map(|_| backoff.idle()).sum();
        assert!(idle > Duration::from_secs(9_000), "{idle:?}");
        assert_eq!(backoff.next_delay(), 1000 * MS);
        backoff.busy();
        assert_eq!(backoff.idle(), 200 * MS);
        assert_eq!(backoff.idle(), 400 * MS);
    }
}
