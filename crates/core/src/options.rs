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

/// A duration in milliseconds: finite and not negative.
pub fn millis(option: &str, value: f64) -> Result<Duration, InvalidOption> {
    if !value.is_finite() || value < 0.0 {
        return Err(InvalidOption::new(
            option,
            value,
            "a finite number of milliseconds >= 0",
        ));
    }
    Ok(Duration::from_secs_f64(value / 1000.0))
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
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
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
}
