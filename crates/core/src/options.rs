//! Checks for numbers that arrive from JavaScript (f64) or the command line before they become
//! durations and counts. Each failure names the option, the value received and what is expected.

use std::time::Duration;

/// A bad option value; `code()` is `INVALID_OPTION`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid option `{option}`: got {received}; expected {expected}")]
pub struct InvalidOption {
    pub option: String,
    pub received: String,
    pub expected: &'static str,
}

impl InvalidOption {
    pub fn new(option: &str, received: impl std::fmt::Display, expected: &'static str) -> Self {
        InvalidOption {
            option: option.to_owned(),
            received: received.to_string(),
            expected,
        }
    }

    pub fn code(&self) -> &'static str {
        "INVALID_OPTION"
    }
}

/// The longest duration accepted anywhere: what a JS timer can hold (2^31-1 ms, about 24.8
/// days). Every `Instant` plus such a duration fits, so no deadline arithmetic can overflow.
pub const MAX_MILLIS: f64 = 2_147_483_647.0;

/// A duration in milliseconds: finite, not negative, at most [`MAX_MILLIS`].
pub fn millis(option: &str, value: f64) -> Result<Duration, InvalidOption> {
    if !(0.0..=MAX_MILLIS).contains(&value) {
        return Err(InvalidOption::new(
            option,
            value,
            "a number of milliseconds from 0 to 2147483647",
        ));
    }
    Ok(Duration::from_secs_f64(value / 1000.0))
}

/// Milliseconds from a file or another process (a record, runner params), never trusted to be
/// sound: negative or NaN is zero, anything above [`MAX_MILLIS`] is [`MAX_MILLIS`]. Never panics.
pub fn millis_saturating(value: f64) -> Duration {
    let clamped = if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, MAX_MILLIS)
    };
    Duration::from_secs_f64(clamped / 1000.0)
}

/// A whole number in `min..=max`.
pub fn integer_in(option: &str, value: f64, min: u32, max: u32) -> Result<u32, InvalidOption> {
    if !value.is_finite() || value.fract() != 0.0 || value < min as f64 || value > max as f64 {
        return Err(InvalidOption::new(
            option,
            value,
            match (min, max) {
                (1, u32::MAX) => "a whole number >= 1",
                (1, 65535) => "a whole number from 1 to 65535",
                (0, 1000) => "a whole number from 0 to 1000",
                _ => "a whole number in range",
            },
        ));
    }
    Ok(value as u32)
}

/// A fraction in `0..=1`.
pub fn fraction(option: &str, value: f64) -> Result<f64, InvalidOption> {
    if !(0.0..=1.0).contains(&value) {
        return Err(InvalidOption::new(option, value, "a number from 0 to 1"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_numbers_with_the_option_name() {
        assert_eq!(
            Duration::from_millis(250),
            millis("baseDelayMs", 250.0).unwrap()
        );
        assert!(millis("deadlineMs", MAX_MILLIS).is_ok());
        for bad in [f64::NAN, f64::INFINITY, -1.0, MAX_MILLIS + 1.0, 1e22] {
            let err = millis("deadlineMs", bad).unwrap_err();
            assert!(err.to_string().contains("`deadlineMs`"), "{err}");
            assert_eq!("INVALID_OPTION", err.code());
        }
        assert_eq!(3, integer_in("attempts", 3.0, 1, u32::MAX).unwrap());
        for bad in [0.0, 1.5, f64::NAN, -3.0] {
            assert!(integer_in("attempts", bad, 1, u32::MAX).is_err());
        }
        assert!(integer_in("servePort", 65536.0, 1, 65535).is_err());
        assert!(fraction("jitter", 1.5).is_err());
        assert!(fraction("jitter", f64::NAN).is_err());
    }

    #[test]
    fn untrusted_millis_saturate_instead_of_panicking() {
        assert_eq!(Duration::ZERO, millis_saturating(-1.0));
        assert_eq!(Duration::ZERO, millis_saturating(f64::NAN));
        assert_eq!(millis_saturating(MAX_MILLIS), millis_saturating(1e300));
        assert_eq!(
            millis_saturating(MAX_MILLIS),
            millis_saturating(f64::INFINITY)
        );
        assert_eq!(Duration::from_millis(1500), millis_saturating(1500.0));
    }
}
