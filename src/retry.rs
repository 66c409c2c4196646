//! Binding for the backoff policy and cancellation tokens.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use qvac_managed_core::options::InvalidOption;
use qvac_managed_core::retry::RetryOptions as CoreRetryOptions;
use qvac_managed_core::{Backoff, CancelToken, RetryPolicy};

use crate::errors::NativeError;

/// Retry options as JS passes them; missing ones take the core defaults.
#[napi(object)]
#[derive(Default, Clone)]
pub struct RetryOptions {
    pub attempts: Option<f64>,
    pub base_delay_ms: Option<f64>,
    pub max_delay_ms: Option<f64>,
    pub deadline_ms: Option<f64>,
    pub jitter: Option<f64>,
}

impl RetryOptions {
    pub fn policy(&self) -> std::result::Result<RetryPolicy, InvalidOption> {
        let opts = CoreRetryOptions {
            attempts: self.attempts,
            base_delay_ms: self.base_delay_ms,
            max_delay_ms: self.max_delay_ms,
            deadline_ms: self.deadline_ms,
            jitter: self.jitter,
        };
        RetryPolicy::from_options(&opts, &RetryPolicy::default())
    }
}

/// `null` if the options are valid, else the INVALID_OPTION error to throw.
#[napi(catch_unwind)]
pub fn check_retry_options(options: RetryOptions) -> Option<NativeError> {
    options.policy().err().map(NativeError::from)
}

/// The core backoff policy, driven from JS: `nextDelayMs()` after each failed attempt.
#[napi(js_name = "NativeBackoff")]
pub struct NativeBackoff(Backoff);

#[napi]
impl NativeBackoff {
    /// Call `checkRetryOptions` first; invalid options throw a plain error here.
    #[napi(catch_unwind, constructor)]
    pub fn new(options: RetryOptions) -> Result<Self> {
        let policy = options
            .policy()
            .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
        Ok(NativeBackoff(Backoff::new(policy)))
    }

    /// Milliseconds to wait before the next attempt, or `null` when the budget is spent.
    #[napi(catch_unwind)]
    pub fn next_delay_ms(&mut self) -> Option<f64> {
        self.0.next_delay().map(|d| d.as_secs_f64() * 1000.0)
    }

    #[napi(catch_unwind, getter)]
    pub fn attempts_made(&self) -> u32 {
        self.0.attempts_made()
    }

    #[napi(catch_unwind, getter)]
    pub fn elapsed_ms(&self) -> f64 {
        self.0.elapsed().as_secs_f64() * 1000.0
    }
}

/// Cancels native waits; the TS layer fires it from an AbortSignal's 'abort' event.
#[napi(js_name = "NativeCancelToken")]
pub struct NativeCancelToken(CancelToken);

#[napi]
impl NativeCancelToken {
    #[napi(catch_unwind, constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeCancelToken(CancelToken::new())
    }

    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn token(&self) -> CancelToken {
        self.0.clone()
    }
}
