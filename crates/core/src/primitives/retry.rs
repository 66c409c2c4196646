//! The one backoff policy: bounded by attempts and a deadline, exponential with a cap and
//! jitter, cancellable at any await point.
//!
//! [`Backoff`] is the policy as a plain iterator of delays (the JS `retry()` drives it from the
//! event loop); [`retry`] runs an async operation under it. Cancellation is observed while
//! sleeping, so a cancelled wait ends at once rather than at the next attempt.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::options::{self, InvalidOption};

pub use tokio_util::sync::CancellationToken as CancelToken;

/// How often and how long to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included; at least 1.
    pub attempts: u32,
    /// Delay after the first failed attempt; doubles after each further one.
    pub base_delay: Duration,
    /// No single delay is longer than this.
    pub max_delay: Duration,
    /// No attempt starts after this much time from the first; `None` = attempts alone bound it.
    pub deadline: Option<Duration>,
    /// Fraction (0..=1) of each delay that is randomised away, so racers spread out.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_millis(5_000),
            deadline: Some(Duration::from_millis(10_000)),
            jitter: 0.5,
        }
    }
}

/// Options as JavaScript or a CLI gives them: milliseconds as f64, any of them missing.
#[derive(Clone, Debug, Default)]
pub struct RetryOptions {
    pub attempts: Option<f64>,
    pub base_delay_ms: Option<f64>,
    pub max_delay_ms: Option<f64>,
    pub deadline_ms: Option<f64>,
    pub jitter: Option<f64>,
}

impl RetryPolicy {
    /// Fills missing options from `defaults` and checks each value.
    pub fn from_options(
        opts: &RetryOptions,
        defaults: &RetryPolicy,
    ) -> Result<Self, InvalidOption> {
        let mut policy = defaults.clone();
        if let Some(v) = opts.attempts {
            policy.attempts = options::integer_in("attempts", v, 1, u32::MAX)?;
        }
        if let Some(v) = opts.base_delay_ms {
            policy.base_delay = options::millis("baseDelayMs", v)?;
        }
        if let Some(v) = opts.max_delay_ms {
            policy.max_delay = options::millis("maxDelayMs", v)?;
        }
        if let Some(v) = opts.deadline_ms {
            policy.deadline = Some(options::millis("deadlineMs", v)?);
        }
        if let Some(v) = opts.jitter {
            policy.jitter = options::fraction("jitter", v)?;
        }
        Ok(policy)
    }
}

/// The policy applied to one operation: call [`next_delay`](Self::next_delay) after each
/// failed attempt. Hand-written (not a backoff crate) so the JS `retry()` and the native waits
/// follow exactly the documented delays, bounds and jitter.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    started: Instant,
    attempts_made: u32,
}

impl Backoff {
    /// Starts the clock now.
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            started: Instant::now(),
            attempts_made: 0,
        }
    }

    /// Records a failed attempt and returns how long to wait before the next one, or `None`
    /// when attempts or the deadline are spent. A delay never runs past the deadline: the last
    /// attempt is made at the deadline itself.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.attempts_made += 1;
        if self.attempts_made >= self.policy.attempts {
            return None;
        }
        let doublings = (self.attempts_made - 1).min(31);
        let exponential = self
            .policy
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max_delay);
        let delay = exponential.mul_f64(1.0 - self.policy.jitter * fastrand::f64());
        match self.policy.deadline {
            None => Some(delay),
            Some(deadline) => {
                let remaining = deadline.checked_sub(self.started.elapsed())?;
                (!remaining.is_zero()).then(|| delay.min(remaining))
            }
        }
    }

    pub fn attempts_made(&self) -> u32 {
        self.attempts_made
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T, R, E> {
    Done(T),
    /// Worth another attempt (contention, not ready yet); says why.
    Retry(R),
    /// Final: retrying cannot help.
    Fail(E),
}

/// Why [`retry`] gave up.
#[derive(Debug, PartialEq)]
pub enum RetryError<R, E> {
    /// Attempts or deadline spent; `last` says why the last attempt asked for a retry.
    Exhausted {
        attempts: u32,
        elapsed: Duration,
        last: R,
    },
    /// An attempt failed in a way retrying cannot help.
    Failed(E),
    /// The token was cancelled.
    Cancelled,
}

/// Runs `op` until it is done, fails, the budget is spent or `cancel` fires. `op` receives the
/// 1-based attempt number. Cancellation ends a pending delay immediately.
pub async fn retry<T, R, E, F, Fut>(
    policy: &RetryPolicy,
    cancel: &CancelToken,
    mut op: F,
) -> Result<T, RetryError<R, E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, R, E>>,
{
    let mut backoff = Backoff::new(policy.clone());
    loop {
        if cancel.is_cancelled() {
            return Err(RetryError::Cancelled);
        }
        let last = match op(backoff.attempts_made() + 1).await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fail(err) => return Err(RetryError::Failed(err)),
            Attempt::Retry(err) => err,
        };
        let Some(delay) = backoff.next_delay() else {
            return Err(RetryError::Exhausted {
                attempts: backoff.attempts_made(),
                elapsed: backoff.elapsed(),
                last,
            });
        };
        tokio::select! {
            _ = cancel.cancelled() => return Err(RetryError::Cancelled),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, base_ms: u64, deadline_ms: Option<u64>) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(1_000),
            deadline: deadline_ms.map(Duration::from_millis),
            jitter: 0.0,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_and_stop_at_attempts() {
        let mut b = Backoff::new(policy(6, 200, None));
        let delays: Vec<u64> = std::iter::from_fn(|| b.next_delay())
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(vec![200, 400, 800, 1_000, 1_000], delays);
        assert_eq!(6, b.attempts_made());
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..policy(2, 100, None)
        };
        for _ in 0..200 {
            let d = Backoff::new(p.clone()).next_delay().unwrap();
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }

    #[test]
    fn deadline_clamps_the_last_delay() {
        let mut b = Backoff::new(policy(100, 1_000, Some(30)));
        let first = b.next_delay().unwrap();
        assert!(first <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(None, b.next_delay());
    }

    #[test]
    fn options_are_checked() {
        let base = RetryPolicy::default();
        let opts = RetryOptions {
            attempts: Some(0.0),
            ..Default::default()
        };
        assert!(RetryPolicy::from_options(&opts, &base).is_err());
        let opts = RetryOptions {
            deadline_ms: Some(f64::NAN),
            ..Default::default()
        };
        let err = RetryPolicy::from_options(&opts, &base).unwrap_err();
        assert_eq!("deadlineMs", err.option);
        let opts = RetryOptions {
            attempts: Some(3.0),
            base_delay_ms: Some(10.0),
            ..Default::default()
        };
        let p = RetryPolicy::from_options(&opts, &base).unwrap();
        assert_eq!((3, Duration::from_millis(10)), (p.attempts, p.base_delay));
    }

    #[tokio::test]
    async fn retry_counts_attempts_and_reports_the_last_error() {
        let cancel = CancelToken::new();
        let result: Result<(), RetryError<u32, ()>> =
            retry(&policy(3, 1, None), &cancel, |n| async move {
                Attempt::Retry(n)
            })
            .await;
        match result {
            Err(RetryError::Exhausted { attempts, last, .. }) => {
                assert_eq!((3, 3), (attempts, last))
            }
            other => panic!("{other:?}"),
        }
        let done: Result<u32, RetryError<(), ()>> =
            retry(&policy(5, 1, None), &cancel, |n| async move {
                if n == 3 {
                    Attempt::Done(n)
                } else {
                    Attempt::Retry(())
                }
            })
            .await;
        assert_eq!(Ok(3), done);
        let failed: Result<(), RetryError<(), &str>> =
            retry(&policy(5, 1, None), &cancel, |_| async {
                Attempt::Fail("no")
            })
            .await;
        assert_eq!(Err(RetryError::Failed("no")), failed);
    }

    #[tokio::test]
    async fn cancel_ends_a_long_delay_at_once() {
        let cancel = CancelToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let result: Result<(), RetryError<(), ()>> =
            retry(&policy(5, 60_000, None), &cancel, |_| async {
                Attempt::Retry(())
            })
            .await;
        assert_eq!(Err(RetryError::Cancelled), result);
        // The delay was a minute; ending within seconds proves the sleep was interrupted.
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
