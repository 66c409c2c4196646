//! The options of `createQvac({ mode: 'managed' })`: checked before anything is spawned or
//! written, turned into the serve config upstream writes and the fleet key upstream computes.
//!
//! Upstream 0.7.0 accepts some bad values (a string port, a NaN timeout, an empty host) and then
//! spawns or hangs; these are refused here with `INVALID_OPTION` naming the option and the value.
//! The model checks and their order (empty, unknown, duplicate, multiple defaults) follow
//! upstream, with the same codes.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::catalog;
use crate::js_value::{format_js_number, json_string, JsValue};
use crate::memory_size::{MemorySize, MEMORY_SIZE_EXPECTED};
use crate::options::InvalidOption;

pub const DEFAULT_SERVE_HOST: &str = "127.0.0.1";
pub const DEFAULT_SERVE_START_TIMEOUT: Duration = Duration::from_millis(180_000);
pub const DEFAULT_SERVE_IDLE_TIMEOUT: Duration = Duration::from_millis(300_000);
/// How long a live serve whose port accepts connections may leave every probe unanswered
/// before its runner stops it as hung (ours; 0 turns the watchdog off).
pub const DEFAULT_SERVE_HANG_TIMEOUT: Duration = Duration::from_millis(60_000);
/// Unexpected exits after becoming healthy tolerated within [`CRASH_LOOP_WINDOW`] (ours).
pub const DEFAULT_SERVE_MAX_RESTARTS: u32 = 5;
/// The window the crash-loop cap counts exits in.
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(60);
/// Bumped by upstream when the key's inputs change; 2 in 0.7.0.
pub const FLEET_PROTOCOL_VERSION: u32 = 2;

/// One requested model, as given (a string becomes `{ name }`).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    /// A plain object when present.
    pub config: Option<JsValue>,
    pub preload: Option<bool>,
    pub default: Option<bool>,
}

/// Checked managed-mode options with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedOptions {
    pub models: Vec<ModelSpec>,
    pub serve_port: Option<u16>,
    pub serve_host: String,
    pub serve_start_timeout: Duration,
    pub serve_bin_path: Option<String>,
    /// Defaults to true unless a port is pinned.
    pub reuse: bool,
    pub serve_idle_timeout: Duration,
    pub close_on_parent_exit: bool,
    /// Ours (not upstream's, not in the fleet key): see [`DEFAULT_SERVE_HANG_TIMEOUT`].
    pub serve_hang_timeout: Duration,
    /// Ours: live TCP connections to the serve's port keep it from being idle (default true).
    pub serve_idle_counts_connections: bool,
    /// Ours: see [`DEFAULT_SERVE_MAX_RESTARTS`].
    pub serve_max_restarts: u32,
    /// Ours, not in the fleet key: the machine-wide budget a start of this provider is decided
    /// under (`QVAC_MANAGED_MEMORY_BUDGET` when not given; off when neither is).
    pub memory_budget: Option<MemorySize>,
    /// Ours, not in the fleet key: this fleet is never evicted to make room.
    pub pin: bool,
    /// Ours, not in the fleet key: a serve whose tree stays above this is stopped by its runner.
    pub serve_max_memory: Option<MemorySize>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    #[error("{}", unknown_model_message(.0))]
    UnknownModel(Vec<String>),
    #[error(
        "Duplicate model name(s) in managed `models`: {}. Each model becomes a single serve alias, so list each name at most once (a repeat would silently overwrite the earlier entry, including its `default`).",
        .0.join(", ")
    )]
    DuplicateModel(Vec<String>),
    #[error(
        "More than one managed model sets `default: true`: {}. A serve has a single default alias — mark exactly one model as default (or none, and the first model becomes the default).",
        .0.join(", ")
    )]
    MultipleDefaults(Vec<String>),
    #[error(transparent)]
    Invalid(#[from] InvalidOption),
}

fn unknown_model_message(names: &[String]) -> String {
    if names.is_empty() {
        return "No models given: `models` must list at least one SDK model constant or catalog id (e.g. QWEN3_600M_INST_Q4 or qwen3.5-9b).".into();
    }
    let shown: Vec<String> = names
        .iter()
        .map(|n| {
            if n.is_empty() {
                "\"\"".to_owned()
            } else {
                n.clone()
            }
        })
        .collect();
    format!(
        "Unknown QVAC model constant(s): {}. Pass valid SDK model names (e.g. QWEN3_600M_INST_Q4) or catalog ids (e.g. qwen3.5-9b); see the `models` export of @qvac/ai-sdk-provider for the full catalog.",
        shown.join(", ")
    )
}

impl OptionsError {
    pub fn code(&self) -> &'static str {
        match self {
            OptionsError::UnknownModel(_) => "UNKNOWN_MODEL",
            OptionsError::DuplicateModel(_) => "DUPLICATE_MODEL",
            OptionsError::MultipleDefaults(_) => "MULTIPLE_DEFAULTS",
            OptionsError::Invalid(e) => e.code(),
        }
    }

    /// The model names the error is about (unknown, duplicated or defaulted).
    pub fn models(&self) -> &[String] {
        match self {
            OptionsError::UnknownModel(m)
            | OptionsError::DuplicateModel(m)
            | OptionsError::MultipleDefaults(m) => m,
            OptionsError::Invalid(_) => &[],
        }
    }
}

/// A value as an error message shows it.
fn describe(value: &JsValue) -> String {
    match value {
        JsValue::String(s) => format!("string {}", json_string(s)),
        JsValue::Number(x) => format_js_number(*x),
        JsValue::Bool(b) => b.to_string(),
        other => other.type_name().to_owned(),
    }
}

fn invalid(option: &str, value: &JsValue, expected: &'static str) -> OptionsError {
    OptionsError::Invalid(InvalidOption::new(option, describe(value), expected))
}

fn optional_bool(options: &JsValue, key: &str) -> Result<Option<bool>, OptionsError> {
    match options.get(key) {
        None | Some(JsValue::Undefined) => Ok(None),
        Some(JsValue::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(key, other, "true or false")),
    }
}

fn optional_millis(options: &JsValue, key: &str) -> Result<Option<Duration>, OptionsError> {
    match options.get(key) {
        None | Some(JsValue::Undefined) => Ok(None),
        Some(JsValue::Number(x)) => Ok(Some(crate::options::millis(key, *x)?)),
        Some(other) => Err(invalid(
            key,
            other,
            "a number of milliseconds from 0 to 2147483647",
        )),
    }
}

fn optional_string(
    options: &JsValue,
    key: &str,
    expected: &'static str,
) -> Result<Option<String>, OptionsError> {
    match options.get(key) {
        None | Some(JsValue::Undefined) => Ok(None),
        Some(JsValue::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(invalid(key, other, expected)),
    }
}

/// Checks everything `createQvac({ mode: 'managed' })` accepts. Unknown keys are ignored
/// (external-mode keys such as `baseURL` may be present).
pub fn validate(options: &JsValue) -> Result<ManagedOptions, OptionsError> {
    if !matches!(options, JsValue::Object(_)) {
        return Err(invalid("options", options, "an object"));
    }
    if let Some(mode) = options.get("mode") {
        if !matches!(mode, JsValue::String(m) if m == "managed") {
            return Err(invalid("mode", mode, "\"managed\""));
        }
    }
    let serve_port = match options.get("servePort") {
        None | Some(JsValue::Undefined) => None,
        Some(JsValue::Number(x)) => {
            Some(crate::options::integer_in("servePort", *x, 1, 65535)? as u16)
        }
        Some(other) => {
            return Err(invalid(
                "servePort",
                other,
                "a whole number from 1 to 65535",
            ))
        }
    };
    let serve_host = optional_string(options, "serveHost", "a non-empty host name or address")?
        .unwrap_or_else(|| DEFAULT_SERVE_HOST.to_owned());
    if !is_host(&serve_host) {
        return Err(invalid(
            "serveHost",
            &JsValue::String(serve_host),
            "a host name or IP address (letters, digits, '.', '-', ':', brackets for IPv6)",
        ));
    }
    let serve_start_timeout =
        optional_millis(options, "serveStartTimeout")?.unwrap_or(DEFAULT_SERVE_START_TIMEOUT);
    let serve_idle_timeout =
        optional_millis(options, "serveIdleTimeout")?.unwrap_or(DEFAULT_SERVE_IDLE_TIMEOUT);
    let serve_bin_path = optional_string(
        options,
        "serveBinPath",
        "a non-empty path to a qvac executable",
    )?;
    if let Some(path) = serve_bin_path.as_deref().filter(|p| p.contains('\0')) {
        return Err(invalid(
            "serveBinPath",
            &JsValue::String(path.to_owned()),
            "a path without NUL bytes",
        ));
    }
    let reuse = optional_bool(options, "reuse")?.unwrap_or(serve_port.is_none());
    let close_on_parent_exit = optional_bool(options, "closeOnParentExit")?.unwrap_or(false);
    let serve_hang_timeout =
        optional_millis(options, "serveHangTimeout")?.unwrap_or(DEFAULT_SERVE_HANG_TIMEOUT);
    let serve_idle_counts_connections =
        optional_bool(options, "serveIdleCountsConnections")?.unwrap_or(true);
    let serve_max_restarts = match options.get("serveMaxRestarts") {
        None | Some(JsValue::Undefined) => DEFAULT_SERVE_MAX_RESTARTS,
        Some(JsValue::Number(x)) => crate::options::integer_in("serveMaxRestarts", *x, 0, 1000)?,
        Some(other) => {
            return Err(invalid(
                "serveMaxRestarts",
                other,
                "a whole number from 0 to 1000",
            ))
        }
    };
    match options.get("headers") {
        None | Some(JsValue::Undefined) => {}
        Some(JsValue::Object(entries)) => {
            if let Some((name, value)) = entries
                .iter()
                .find(|(_, v)| !matches!(v, JsValue::String(_)))
            {
                return Err(invalid(
                    &format!("headers.{name}"),
                    value,
                    "a string header value",
                ));
            }
            // fetch refuses these at request time; refuse them before anything is started.
            if let Some((name, value)) = entries.iter().find(|(name, v)| {
                !is_header_name(name)
                    || matches!(v, JsValue::String(s) if s.contains(['\r', '\n', '\0'])
                        || s.chars().any(|c| u32::from(c) > 0xff))
            }) {
                return Err(invalid(
                    &format!("headers.{name}"),
                    value,
                    "a header name of token characters and a value of Latin-1 characters (up to U+00FF) without CR, LF or NUL",
                ));
            }
        }
        Some(other) => {
            return Err(invalid(
                "headers",
                other,
                "an object of header names to string values",
            ))
        }
    }
    match options.get("fetch") {
        None | Some(JsValue::Undefined) | Some(JsValue::Function) => {}
        Some(other) => return Err(invalid("fetch", other, "a fetch-compatible function")),
    }
    let memory_size = |key: &str| -> Result<Option<MemorySize>, OptionsError> {
        match options.get(key) {
            None | Some(JsValue::Undefined) => Ok(None),
            Some(value) => MemorySize::from_js(value)
                .map(Some)
                .ok_or_else(|| invalid(key, value, MEMORY_SIZE_EXPECTED)),
        }
    };
    let memory_budget = memory_size("memoryBudget")?;
    let serve_max_memory = memory_size("serveMaxMemory")?;
    let pin = optional_bool(options, "pin")?.unwrap_or(false);
    let models = validate_models(options.get("models").unwrap_or(&JsValue::Undefined))?;
    Ok(ManagedOptions {
        models,
        serve_port,
        serve_host,
        serve_start_timeout,
        serve_bin_path,
        reuse,
        serve_idle_timeout,
        close_on_parent_exit,
        serve_hang_timeout,
        serve_idle_counts_connections,
        serve_max_restarts,
        memory_budget,
        pin,
        serve_max_memory,
    })
}

/// A host name (internationalised names too), IPv4 address or IPv6 literal (bracketed or not,
/// with an optional zone): nothing that could never name a host, such as spaces, NUL or `!`.
fn is_host(host: &str) -> bool {
    host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '%' | '_'))
}

/// An HTTP header name: RFC 9110 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Checks the `models` list: shape first (INVALID_OPTION), then upstream's checks in upstream's
/// order: empty or unknown (UNKNOWN_MODEL, listing every unknown name), DUPLICATE_MODEL,
/// MULTIPLE_DEFAULTS.
pub fn validate_models(models: &JsValue) -> Result<Vec<ModelSpec>, OptionsError> {
    let JsValue::Array(items) = models else {
        return Err(invalid(
            "models",
            models,
            "an array of model names or { name, config?, preload?, default? }",
        ));
    };
    let mut specs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        specs.push(match item {
            JsValue::String(name) => ModelSpec {
                name: name.clone(),
                config: None,
                preload: None,
                default: None,
            },
            JsValue::Object(_) => {
                let field = |key: &str| format!("models[{i}].{key}");
                let name = match item.get("name") {
                    Some(JsValue::String(name)) => name.clone(),
                    other => {
                        return Err(invalid(
                            &field("name"),
                            other.unwrap_or(&JsValue::Undefined),
                            "a model name string",
                        ))
                    }
                };
                let config = match item.get("config") {
                    None | Some(JsValue::Undefined) => None,
                    Some(config @ JsValue::Object(_)) => {
                        check_json_data(config, &field("config"))?;
                        Some(config.clone())
                    }
                    Some(other) => return Err(invalid(&field("config"), other, "a plain object")),
                };
                let flag = |key: &str| match item.get(key) {
                    None | Some(JsValue::Undefined) => Ok(None),
                    Some(JsValue::Bool(b)) => Ok(Some(*b)),
                    Some(other) => Err(invalid(&field(key), other, "true or false")),
                };
                ModelSpec {
                    name,
                    config,
                    preload: flag("preload")?,
                    default: flag("default")?,
                }
            }
            other => {
                return Err(invalid(
                    &format!("models[{i}]"),
                    other,
                    "a model name or { name, config?, preload?, default? }",
                ))
            }
        });
    }
    if specs.is_empty() {
        return Err(OptionsError::UnknownModel(vec![]));
    }
    let unknown: Vec<String> = specs
        .iter()
        .filter(|s| !catalog::is_known(&s.name))
        .map(|s| s.name.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(OptionsError::UnknownModel(unknown));
    }
    let mut seen = std::collections::HashSet::new();
    let mut duplicates: Vec<String> = Vec::new();
    for s in &specs {
        if !seen.insert(s.name.as_str()) && !duplicates.contains(&s.name) {
            duplicates.push(s.name.clone());
        }
    }
    if !duplicates.is_empty() {
        return Err(OptionsError::DuplicateModel(duplicates));
    }
    let defaults: Vec<String> = specs
        .iter()
        .filter(|s| s.default == Some(true))
        .map(|s| s.name.clone())
        .collect();
    if defaults.len() > 1 {
        return Err(OptionsError::MultipleDefaults(defaults));
    }
    Ok(specs)
}

/// Model configs travel to the serve as JSON: functions, symbols and bigints cannot.
fn check_json_data(value: &JsValue, at: &str) -> Result<(), OptionsError> {
    match value {
        JsValue::Function | JsValue::Unsupported(_) => Err(invalid(
            at,
            value,
            "JSON data (no functions, symbols or bigints)",
        )),
        JsValue::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_data(v, &format!("{at}[{i}]"))),
        JsValue::Object(entries) => entries
            .iter()
            .try_for_each(|(k, v)| check_json_data(v, &format!("{at}.{k}"))),
        _ => Ok(()),
    }
}

/// The `qvac.config.json` upstream writes: `{ serve: { models: { <alias>: { model, preload,
/// default?, config? } } } }`. The alias is the name given; `model` is the SDK constant a catalog
/// id resolves to. The default is the one marked `default: true`, else the first model (unless
/// that one says `default: false`).
pub fn synthesize_serve_config(models: &[ModelSpec]) -> JsValue {
    let has_explicit_default = models.iter().any(|m| m.default == Some(true));
    let entries = models
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let is_default = spec.default.unwrap_or(!has_explicit_default && index == 0);
            let mut entry = vec![
                (
                    "model".to_owned(),
                    JsValue::String(catalog::resolve_constant(&spec.name).to_owned()),
                ),
                (
                    "preload".to_owned(),
                    JsValue::Bool(spec.preload.unwrap_or(true)),
                ),
            ];
            if is_default {
                entry.push(("default".to_owned(), JsValue::Bool(true)));
            }
            if let Some(config) = &spec.config {
                entry.push(("config".to_owned(), config.clone()));
            }
            (spec.name.clone(), JsValue::Object(entry))
        })
        .collect();
    JsValue::Object(vec![(
        "serve".to_owned(),
        JsValue::Object(vec![("models".to_owned(), JsValue::Object(entries))]),
    )])
}

/// Upstream's fleet key: sha256 (first 16 hex digits) of the protocol version, host, serve binary
/// path, pinned port and the models sorted by alias with key-sorted entries. Serves with equal
/// keys are interchangeable and shared.
pub fn compute_fleet_key(
    config: &JsValue,
    host: &str,
    serve_bin_path: Option<&str>,
    serve_port: Option<u16>,
) -> String {
    let models = config
        .get("serve")
        .and_then(|s| s.get("models"))
        .cloned()
        .unwrap_or(JsValue::Object(vec![]));
    let JsValue::Object(mut aliases) = models else {
        unreachable!("synthesize_serve_config builds an object")
    };
    aliases.sort_by(|a, b| crate::js_value::js_string_cmp(&a.0, &b.0));
    let canonical = JsValue::Array(
        aliases
            .iter()
            .map(|(alias, entry)| {
                JsValue::Array(vec![
                    JsValue::String(alias.clone()),
                    entry
                        .to_stable_string()
                        .map(JsValue::String)
                        .unwrap_or(JsValue::Undefined),
                ])
            })
            .collect(),
    );
    let payload = JsValue::Object(vec![
        (
            "protocolVersion".into(),
            JsValue::Number(FLEET_PROTOCOL_VERSION as f64),
        ),
        ("host".into(), JsValue::String(host.to_owned())),
        (
            "serveBinPath".into(),
            serve_bin_path.map_or(JsValue::Null, |p| JsValue::String(p.to_owned())),
        ),
        (
            "servePort".into(),
            serve_port.map_or(JsValue::Null, |p| JsValue::Number(p as f64)),
        ),
        ("models".into(), canonical),
    ]);
    let json = payload.to_json().expect("payload is an object");
    let digest = Sha256::digest(json.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl ManagedOptions {
    pub fn serve_config(&self) -> JsValue {
        synthesize_serve_config(&self.models)
    }

    /// The key a shared serve for these options is registered under.
    pub fn fleet_key(&self) -> String {
        compute_fleet_key(
            &self.serve_config(),
            &self.serve_host,
            self.serve_bin_path.as_deref(),
            self.serve_port,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> JsValue {
        JsValue::String(v.into())
    }

    fn obj(entries: Vec<(&str, JsValue)>) -> JsValue {
        JsValue::object(entries)
    }

    fn opts(models: JsValue) -> JsValue {
        obj(vec![("mode", s("managed")), ("models", models)])
    }

    #[test]
    fn defaults_apply() {
        let o = validate(&opts(JsValue::Array(vec![s("qwen3.5-9b")]))).unwrap();
        assert_eq!("127.0.0.1", o.serve_host);
        assert!(o.reuse);
        assert_eq!(DEFAULT_SERVE_START_TIMEOUT, o.serve_start_timeout);
        assert_eq!(DEFAULT_SERVE_IDLE_TIMEOUT, o.serve_idle_timeout);
        let pinned = validate(&obj(vec![
            ("models", JsValue::Array(vec![s("qwen3.5-9b")])),
            ("servePort", JsValue::Number(8080.0)),
        ]))
        .unwrap();
        assert!(!pinned.reuse, "a pinned port means a private serve");
    }

    #[test]
    fn bad_options_name_the_option() {
        let models = JsValue::Array(vec![s("qwen3.5-9b")]);
        let cases: Vec<(&str, JsValue)> = vec![
            ("servePort", JsValue::Number(0.0)),
            ("servePort", JsValue::Number(65536.0)),
            ("servePort", JsValue::Number(80.5)),
            ("servePort", s("8080")),
            ("serveStartTimeout", JsValue::Number(-1.0)),
            ("serveStartTimeout", JsValue::Number(f64::NAN)),
            ("serveIdleTimeout", JsValue::Number(f64::INFINITY)),
            ("serveIdleTimeout", s("5s")),
            ("serveHost", s("")),
            ("serveHost", JsValue::Number(1.0)),
            ("reuse", s("yes")),
            ("headers", JsValue::Array(vec![])),
            ("fetch", s("not a function")),
        ];
        for (key, value) in cases {
            let input = obj(vec![("models", models.clone()), (key, value.clone())]);
            let err = validate(&input).unwrap_err();
            assert_eq!("INVALID_OPTION", err.code(), "{key}={value:?}");
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
        let err = validate(&obj(vec![("models", s("qwen3.5-9b"))])).unwrap_err();
        assert_eq!("INVALID_OPTION", err.code());
        let err = validate(&opts(JsValue::Array(vec![obj(vec![
            ("name", s("qwen3.5-9b")),
            ("config", s("fast")),
        ])])))
        .unwrap_err();
        assert!(err.to_string().contains("`models[0].config`"), "{err}");
        // fetch's Headers refuses values above U+00FF at request time: refused up front.
        let err = validate(&obj(vec![
            ("models", models.clone()),
            ("headers", obj(vec![("x-a", s("\u{2603}"))])),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("`headers.x-a`"), "{err}");
        validate(&obj(vec![
            ("models", models),
            ("headers", obj(vec![("x-a", s("caf\u{e9}"))])),
        ]))
        .expect("Latin-1 is a valid header value");
    }

    #[test]
    fn model_checks_in_upstream_order() {
        let check = |models: Vec<JsValue>| validate_models(&JsValue::Array(models)).unwrap_err();
        assert_eq!(OptionsError::UnknownModel(vec![]), check(vec![]));
        assert_eq!(
            OptionsError::UnknownModel(vec!["NOPE".into(), "".into()]),
            check(vec![s("NOPE"), s("qwen3.5-9b"), s("")])
        );
        let dup = check(vec![s("qwen3.5-9b"), s("WHISPER_Q8_0"), s("qwen3.5-9b")]);
        assert_eq!(OptionsError::DuplicateModel(vec!["qwen3.5-9b".into()]), dup);
        let defaults = check(vec![
            obj(vec![
                ("name", s("qwen3.5-9b")),
                ("default", JsValue::Bool(true)),
            ]),
            obj(vec![
                ("name", s("WHISPER_Q8_0")),
                ("default", JsValue::Bool(true)),
            ]),
        ]);
        assert_eq!("MULTIPLE_DEFAULTS", defaults.code());
        assert_eq!(2, defaults.models().len());
    }

    #[test]
    fn config_shape_matches_upstream() {
        let specs = validate_models(&JsValue::Array(vec![
            s("qwen3.5-9b"),
            obj(vec![
                ("name", s("WHISPER_Q8_0")),
                ("preload", JsValue::Bool(false)),
                ("config", obj(vec![("language", s("en"))])),
            ]),
        ]))
        .unwrap();
        assert_eq!(
            r#"{"serve":{"models":{"qwen3.5-9b":{"model":"QWEN3_5_9B_MULTIMODAL_Q4_K_M","preload":true,"default":true},"WHISPER_Q8_0":{"model":"WHISPER_Q8_0","preload":false,"config":{"language":"en"}}}}}"#,
            synthesize_serve_config(&specs).to_json().unwrap()
        );
    }

    #[test]
    fn fleet_key_is_16_hex_and_follows_the_config() {
        let a = validate(&opts(JsValue::Array(vec![
            s("qwen3.5-9b"),
            s("WHISPER_Q8_0"),
        ])))
        .unwrap();
        let b = validate(&opts(JsValue::Array(vec![
            s("WHISPER_Q8_0"),
            s("qwen3.5-9b"),
        ])))
        .unwrap();
        let key = a.fleet_key();
        assert_eq!(16, key.len());
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        // The default alias differs (first model), so the configs and keys differ.
        assert_ne!(key, b.fleet_key());
        let mut c = a.clone();
        c.serve_host = "::1".into();
        assert_ne!(key, c.fleet_key());
    }
}
