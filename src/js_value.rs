//! Decodes the tagged JSON the TS layer sends for arbitrary JS values (options objects, model
//! configs) into core's `JsValue`. The tags carry what JSON cannot: `undefined`, non-finite
//! numbers, functions, and object key order (`{"$o": [[key, value], ...]}`).

use qvac_managed_core::js_value::JsValue;
use serde_json::Value;

use crate::errors::{self, NativeError};

/// `[name, value]` pairs as JS sends an environment; malformed pairs are skipped.
pub fn env_pairs(pairs: Vec<Vec<String>>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .filter_map(|pair| <[String; 2]>::try_from(pair).ok().map(|[k, v]| (k, v)))
        .collect()
}

pub fn decode(encoded: &str) -> Result<JsValue, NativeError> {
    let value: Value = serde_json::from_str(encoded).map_err(|e| {
        errors::invalid_option("options", format!("options could not be read: {e}"))
    })?;
    Ok(from_tagged(&value))
}

fn from_tagged(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::Null,
        Value::Bool(b) => JsValue::Bool(*b),
        Value::Number(n) => JsValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JsValue::String(s.clone()),
        Value::Array(items) => JsValue::Array(items.iter().map(from_tagged).collect()),
        Value::Object(map) => {
            if let Some(Value::Array(entries)) = map.get("$o") {
                return JsValue::Object(
                    entries
                        .iter()
                        .filter_map(|e| match e.as_array().map(Vec::as_slice) {
                            Some([Value::String(k), v]) => Some((k.clone(), from_tagged(v))),
                            _ => None,
                        })
                        .collect(),
                );
            }
            if map.contains_key("$u") {
                return JsValue::Undefined;
            }
            if map.contains_key("$f") {
                return JsValue::Function;
            }
            match map.get("$n").and_then(Value::as_str) {
                Some("Infinity") => return JsValue::Number(f64::INFINITY),
                Some("-Infinity") => return JsValue::Number(f64::NEG_INFINITY),
                Some(_) => return JsValue::Number(f64::NAN),
                None => {}
            }
            match map.get("$x").and_then(Value::as_str) {
                Some("bigint") => JsValue::Unsupported("bigint"),
                Some("too deeply nested") => JsValue::Unsupported("object nested too deeply"),
                Some("cyclic object") => JsValue::Unsupported("cyclic object"),
                _ => JsValue::Unsupported("symbol"),
            }
        }
    }
}
