//! Memory sizes as users write them (`memoryBudget`, `serveMaxMemory`,
//! `QVAC_MANAGED_MEMORY_BUDGET`): a number of bytes, a string with a unit (`'12GiB'`, `'512 MB'`,
//! `'1.5G'`), or a percentage of physical memory (`'80%'`).

use crate::js_value::JsValue;

/// A size as given: bytes, or a share of physical memory resolved when it is used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemorySize {
    Bytes(u64),
    /// Percent of physical memory, in (0, 100].
    Percent(f64),
}

/// What a size must look like, for INVALID_OPTION messages.
pub const MEMORY_SIZE_EXPECTED: &str = "a number of bytes (at least 1 MiB), a string with a unit such as '12GiB' or '512MB' (B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB, K, M, G, T = powers of 1024), or a percentage of physical memory such as '80%'";

/// The smallest size accepted (in bytes, or as a resolved percentage).
pub const MIN_BYTES: u64 = 1 << 20;

impl MemorySize {
    /// From an option's value; `None` for a value of the wrong form.
    pub fn from_js(value: &JsValue) -> Option<MemorySize> {
        match value {
            JsValue::Number(x) if x.is_finite() && x.fract() == 0.0 && *x >= MIN_BYTES as f64 => {
                (*x <= 2f64.powi(53)).then_some(MemorySize::Bytes(*x as u64))
            }
            JsValue::String(s) => MemorySize::parse(s),
            _ => None,
        }
    }

    /// From text (`'12GiB'`, `'80%'`, `'1073741824'`); `None` when it is not a size.
    pub fn parse(text: &str) -> Option<MemorySize> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let p: f64 = percent.trim().parse().ok()?;
            return (p.is_finite() && p > 0.0 && p <= 100.0).then_some(MemorySize::Percent(p));
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            "k" | "kib" => 1024.0,
            "m" | "mib" => 1024.0 * 1024.0,
            "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
        let bytes = (number * scale).round();
        (bytes.is_finite() && bytes >= MIN_BYTES as f64 && bytes <= 2f64.powi(53))
            .then_some(MemorySize::Bytes(bytes as u64))
    }

    /// In bytes, a percentage of `physical` (the machine's memory, when known).
    pub fn bytes(self, physical: Option<u64>) -> Option<u64> {
        match self {
            MemorySize::Bytes(b) => Some(b),
            MemorySize::Percent(p) => physical.map(|total| (total as f64 * p / 100.0) as u64),
        }
    }
}

impl std::fmt::Display for MemorySize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemorySize::Bytes(b) => write!(f, "{b} bytes"),
            MemorySize::Percent(p) => write!(f, "'{p}%'"),
        }
    }
}

/// `bytes` for people: `812.4 MiB`, `1.50 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_users_write_them() {
        let gib = 1u64 << 30;
        assert_eq!(
            MemorySize::parse("12GiB"),
            Some(MemorySize::Bytes(12 * gib))
        );
        assert_eq!(
            MemorySize::parse("12 gib"),
            Some(MemorySize::Bytes(12 * gib))
        );
        assert_eq!(
            MemorySize::parse("1.5G"),
            Some(MemorySize::Bytes(gib * 3 / 2))
        );
        assert_eq!(
            MemorySize::parse("512MB"),
            Some(MemorySize::Bytes(512_000_000))
        );
        assert_eq!(
            MemorySize::parse("700MiB"),
            Some(MemorySize::Bytes(700 << 20))
        );
        assert_eq!(MemorySize::parse("80%"), Some(MemorySize::Percent(80.0)));
        assert_eq!(
            MemorySize::parse("1048576"),
            Some(MemorySize::Bytes(1 << 20))
        );
        for bad in [
            "",
            "abc",
            "12 parsecs",
            "0%",
            "101%",
            "-5GB",
            "1KB",
            "GB",
            "1e9",
        ] {
            assert_eq!(MemorySize::parse(bad), None, "{bad}");
        }
        assert_eq!(
            MemorySize::Percent(50.0).bytes(Some(8 * gib)),
            Some(4 * gib)
        );
        assert_eq!(MemorySize::Percent(50.0).bytes(None), None);
    }
}
