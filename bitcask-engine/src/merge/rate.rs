//! A byte-rate limiter for merges, so that a merge does not starve foreground I/O.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest single sleep: a shutdown waits at most this long for a throttled merge.
const MAX_NAP: Duration = Duration::from_millis(20);

/// Sleeps whenever more bytes went through than `rate` per second since the start.
pub(crate) struct RateLimiter {
    rate: Option<u64>,
    start: Instant,
    bytes: u64,
}

impl RateLimiter {
    pub(crate) fn new(rate: Option<u64>) -> Self {
        RateLimiter {
            rate,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Accounts for `bytes` and waits until they are within the rate (or `stop` is set).
    pub(crate) fn consume(&mut self, bytes: u64, stop: &AtomicBool) {
        let Some(rate) = self.rate else {
            return;
        };
        self.bytes += bytes;
        let due = Duration::from_secs_f64(engine_api::ratio(self.bytes, rate.max(1)));
        loop {
            let elapsed = self.start.elapsed();
            if elapsed >= due || stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((due - elapsed).min(MAX_NAP));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_sleeps_and_stop_ends_a_wait() {
        let stop = AtomicBool::new(false);
        let mut free = RateLimiter::new(None);
        free.consume(u64::MAX / 2, &stop);
        let mut slow = RateLimiter::new(Some(1));
        stop.store(true, Ordering::Relaxed);
        slow.consume(1_000_000, &stop);
    }
}
