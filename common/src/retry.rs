//! The one retry loop every outbound HTTP client uses: bounded attempts, jittered
//! exponential backoff, a server's own wait hint honoured, and an overall deadline.
//!
//! Whether a failure is worth retrying is a property of the error type ([`Retryable`]),
//! never an `if` at the call site.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What an error says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAdvice {
    /// Permanent: the same request will fail the same way.
    Never,
    /// Transient: try again after the backoff.
    Backoff,
    /// Transient, and the server said how long to wait (VAN's "Try again in N ms").
    After(Duration),
}

pub trait Retryable {
    fn retry_advice(&self) -> RetryAdvice;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled each time after.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No attempt starts, and no wait is begun, that would end past this much time
    /// after the first attempt started.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): "full jitter"
    /// backoff, at least the server's hint when there is one, plus a little jitter so
    /// that many workers told the same hint do not return in lock-step.
    pub fn wait(&self, attempt: u32, advice: RetryAdvice) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        match advice {
            RetryAdvice::Never => Duration::ZERO,
            RetryAdvice::Backoff => exp.mul_f64(0.5 + fastrand::f64() * 0.5),
            RetryAdvice::After(hint) => {
                hint + self
                    .base_delay
                    .min(hint.max(Duration::from_millis(10)))
                    .mul_f64(fastrand::f64())
            }
        }
    }

    /// Run `op` until it succeeds, fails permanently, runs out of attempts, or the next
    /// wait would cross the deadline; the last error is returned as it was.
    /// `op` receives the attempt number, from 1.
    pub async fn run<T, E, F, Fut>(&self, mut op: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let err = match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let advice = err.retry_advice();
            if advice == RetryAdvice::Never || attempt >= self.max_attempts {
                return Err(err);
            }
            let wait = self.wait(attempt, advice);
            if started.elapsed() + wait >= self.deadline {
                return Err(err);
            }
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    struct E(RetryAdvice);
    impl Retryable for E {
        fn retry_advice(&self) -> RetryAdvice {
            self.0
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            deadline: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let out: Result<(), E> = policy()
            .run(|_| {
                calls.set(calls.get() + 1);
                async { Err(E(RetryAdvice::Never)) }
            })
            .await;
        assert_eq!(out, Err(E(RetryAdvice::Never)));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_is_waited_out_before_the_next_attempt() {
        let start = Instant::now();
        let out = policy()
            .run(|attempt| async move {
                if attempt < 3 {
                    Err(E(RetryAdvice::After(Duration::from_millis(700))))
                } else {
                    Ok(attempt)
                }
            })
            .await;
        assert_eq!(out, Ok(3));
        // Two waits of at least the hint each; jitter adds at most base_delay each.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(1400), "{waited:?}");
        assert!(waited <= Duration::from_millis(1600), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let calls = Cell::new(0);
        let out: Result<(), E> = policy()
            .run(|_| {
                calls.set(calls.get() + 1);
                async { Err(E(RetryAdvice::Backoff)) }
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.get(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_retries_early() {
        let calls = Cell::new(0);
        let p = RetryPolicy {
            deadline: Duration::from_millis(2500),
            ..policy()
        };
        let start = Instant::now();
        let out: Result<(), E> = p
            .run(|_| {
                calls.set(calls.get() + 1);
                async { Err(E(RetryAdvice::After(Duration::from_secs(1)))) }
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.get(), 3, "third wait would cross the 2.5 s deadline");
        assert!(start.elapsed() < Duration::from_millis(2500));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy();
        for attempt in 1..10 {
            let w = p.wait(attempt, RetryAdvice::Backoff);
            let cap =
                (Duration::from_millis(100) * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(
                w <= cap && w >= cap / 2,
                "attempt {attempt}: {w:?} vs cap {cap:?}"
            );
        }
    }
}
