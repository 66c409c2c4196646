//! JavaScript values as they arrive from the binding, and the two ways upstream serialises them:
//! `JSON.stringify` (the config file on disk) and its own key-sorted `stableStringify` (the fleet
//! key). Both are reproduced exactly, number formatting and `undefined` quirks included, so a
//! fleet key computed here equals the one `@qvac/ai-sdk-provider` computes for the same input.

use std::cmp::Ordering;
use std::fmt::Write;

/// A JS value, with object keys in `Object.keys` order.
#[derive(Clone, Debug, PartialEq)]
pub enum JsValue {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<JsValue>),
    Object(Vec<(String, JsValue)>),
    Function,
    /// A value JSON cannot carry (symbol, bigint); the string names its type.
    Unsupported(&'static str),
}

impl JsValue {
    /// The JS `typeof`-style name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            JsValue::Undefined => "undefined",
            JsValue::Null => "null",
            JsValue::Bool(_) => "boolean",
            JsValue::Number(_) => "number",
            JsValue::String(_) => "string",
            JsValue::Array(_) => "array",
            JsValue::Object(_) => "object",
            JsValue::Function => "function",
            JsValue::Unsupported(name) => name,
        }
    }

    /// An object from `(key, value)` pairs, in order.
    pub fn object<'a>(entries: impl IntoIterator<Item = (&'a str, JsValue)>) -> JsValue {
        JsValue::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&JsValue> {
        match self {
            JsValue::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `JSON.stringify(value)`; `None` where JS returns `undefined`.
    pub fn to_json(&self) -> Option<String> {
        let mut out = String::new();
        write_json(self, None, 0, &mut out).then_some(out)
    }

    /// `JSON.stringify(value, null, 2)`.
    pub fn to_json_pretty(&self) -> Option<String> {
        let mut out = String::new();
        write_json(self, Some(2), 0, &mut out).then_some(out)
    }

    /// Upstream's `stableStringify`: `JSON.stringify` with object keys sorted recursively.
    /// Its quirks are kept: an `undefined` object member prints as `undefined`, an `undefined`
    /// array item as nothing.
    pub fn to_stable_string(&self) -> Option<String> {
        match self {
            JsValue::Array(items) => Some(format!(
                "[{}]",
                items
                    .iter()
                    .map(|v| v.to_stable_string().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            JsValue::Object(entries) => {
                let mut sorted: Vec<&(String, JsValue)> = entries.iter().collect();
                sorted.sort_by(|a, b| js_string_cmp(&a.0, &b.0));
                let body: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}:{}",
                            json_string(k),
                            v.to_stable_string()
                                .unwrap_or_else(|| "undefined".to_owned())
                        )
                    })
                    .collect();
                Some(format!("{{{}}}", body.join(",")))
            }
            other => other.to_json(),
        }
    }
}

/// Orders strings as JS `Array.prototype.sort()` does: by UTF-16 code units.
pub fn js_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A JSON string literal as `JSON.stringify` writes it.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `Number.prototype.toString()` for a finite number (shortest round-trip digits, JS layout).
/// Hand-written because the fleet key hashes this text: it must match JS digit for digit.
pub fn format_js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust's `{:e}` gives the shortest digits that round-trip, as JS does.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp.parse::<i32>().expect("integer exponent") + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{e_sign}{}", e.abs())
        } else {
            format!("{}.{}e{e_sign}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

/// Writes `JSON.stringify` output; false where JS yields `undefined` (nothing written).
fn write_json(value: &JsValue, indent: Option<usize>, depth: usize, out: &mut String) -> bool {
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    match value {
        JsValue::Undefined | JsValue::Function | JsValue::Unsupported(_) => return false,
        JsValue::Null => out.push_str("null"),
        JsValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsValue::Number(x) if x.is_finite() => out.push_str(&format_js_number(*x)),
        JsValue::Number(_) => out.push_str("null"),
        JsValue::String(s) => out.push_str(&json_string(s)),
        JsValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                if !write_json(item, indent, depth + 1, out) {
                    out.push_str("null");
                }
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        JsValue::Object(entries) => {
            out.push('{');
            let mut first = true;
            for (key, item) in entries {
                let mark = out.len();
                if !first {
                    out.push(',');
                }
                newline(out, depth + 1);
                out.push_str(&json_string(key));
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                if write_json(item, indent, depth + 1, out) {
                    first = false;
                } else {
                    out.truncate(mark); // JSON.stringify skips undefined members
                }
            }
            if !first {
                newline(out, depth);
            }
            out.push('}');
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(entries: Vec<(&str, JsValue)>) -> JsValue {
        JsValue::object(entries)
    }

    #[test]
    fn numbers_print_as_js_does() {
        let cases = [
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (1.5e-10, "1.5e-10"),
            (-0.0, "0"),
            (2f64.powi(53), "9007199254740992"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (x, want) in cases {
            assert_eq!(want, format_js_number(x), "{x:e}");
        }
    }

    #[test]
    fn json_matches_json_stringify() {
        let v = obj(vec![
            ("b", JsValue::Number(1.0)),
            ("skip", JsValue::Undefined),
            ("f", JsValue::Function),
            (
                "a",
                JsValue::Array(vec![
                    JsValue::Undefined,
                    JsValue::Number(f64::NAN),
                    JsValue::String("q\"\\\n\u{1}é".into()),
                ]),
            ),
            ("e", obj(vec![])),
        ]);
        assert_eq!(
            r#"{"b":1,"a":[null,null,"q\"\\\n\u0001é"],"e":{}}"#,
            v.to_json().unwrap()
        );
        assert_eq!(
            "{\n  \"b\": 1,\n  \"a\": [\n    null,\n    null,\n    \"q\\\"\\\\\\n\\u0001é\"\n  ],\n  \"e\": {}\n}",
            v.to_json_pretty().unwrap()
        );
        assert_eq!(None, JsValue::Undefined.to_json());
        assert_eq!(
            "{}",
            obj(vec![("x", JsValue::Undefined)]).to_json().unwrap()
        );
    }

    #[test]
    fn stable_string_sorts_keys_and_keeps_upstream_quirks() {
        let v = obj(vec![
            ("z", JsValue::Bool(true)),
            (
                "a",
                obj(vec![("y", JsValue::Null), ("b", JsValue::Undefined)]),
            ),
            (
                "m",
                JsValue::Array(vec![JsValue::Number(1.0), JsValue::Undefined]),
            ),
        ]);
        assert_eq!(
            r#"{"a":{"b":undefined,"y":null},"m":[1,],"z":true}"#,
            v.to_stable_string().unwrap()
        );
    }

    #[test]
    fn string_order_is_utf16() {
        // U+FF5E sorts after U+1F600 by code point but before it by UTF-16 code unit.
        assert_eq!(Ordering::Greater, js_string_cmp("\u{ff5e}", "\u{1f600}"));
        assert_eq!(Ordering::Less, "\u{ff5e}".cmp("\u{1f600}"));
    }
}
