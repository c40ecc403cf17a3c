//! The one retry backoff of the client: exponential with jitter (franz-go's shape,
//! `retry.backoff.ms` .. `retry.backoff.max.ms`), used by the retry loop of the admin calls and
//! the fetcher, by the producer's recovery and by the consumer group member.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff with jitter x0.8-1.2 (xorshift; no `rand` needed).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    state: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
            state: seed | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// The next delay: `min * 2^attempt`, capped at `max`, times a jitter in 0.8..=1.2.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let base = self.min.saturating_mul(1u32 << exp).min(self.max);
        let jitter = 0.8 + (self.next_random() % 401) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

/// A seed for the jitter that differs between processes and clients.
pub(crate) fn time_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 42);
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(
            d[0] >= Duration::from_millis(80) && d[0] <= Duration::from_millis(120),
            "{:?}",
            d[0]
        );
        assert!(d[1] >= Duration::from_millis(160) && d[1] <= Duration::from_millis(240));
        assert!(d[2] >= Duration::from_millis(320) && d[2] <= Duration::from_millis(480));
        for x in &d[6..] {
            assert!(
                *x >= Duration::from_secs(4) && *x <= Duration::from_secs(6),
                "{x:?}"
            );
        }
        // Jitter really varies.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 7);
        let xs: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(xs.iter().any(|x| *x != xs[0]));
    }
}
