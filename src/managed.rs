//! Binding for managed-mode options: validation, serve config, fleet key.

use napi_derive::napi;
use qvac_managed_core::managed_options::{self, ManagedOptions};

use crate::errors::NativeError;
use crate::js_value::decode;
use crate::outcome::outcome;

/// Managed options after checking, with defaults applied.
#[napi(object)]
pub struct CheckedManagedOptions {
    pub fleet_key: String,
    /// `qvac.config.json` as upstream writes it (JSON text).
    pub config_json: String,
    pub models: Vec<String>,
    pub serve_host: String,
    pub serve_port: Option<u32>,
    pub serve_start_timeout_ms: f64,
    pub serve_idle_timeout_ms: f64,
    pub serve_bin_path: Option<String>,
    pub reuse: bool,
    pub close_on_parent_exit: bool,
    pub serve_hang_timeout_ms: f64,
    pub serve_idle_counts_connections: bool,
    pub serve_max_restarts: u32,
}

impl From<&ManagedOptions> for CheckedManagedOptions {
    fn from(o: &ManagedOptions) -> Self {
        CheckedManagedOptions {
            fleet_key: o.fleet_key(),
            config_json: o.serve_config().to_json().unwrap_or_default(),
            models: o.models.iter().map(|m| m.name.clone()).collect(),
            serve_host: o.serve_host.clone(),
            serve_port: o.serve_port.map(u32::from),
            serve_start_timeout_ms: o.serve_start_timeout.as_secs_f64() * 1000.0,
            serve_idle_timeout_ms: o.serve_idle_timeout.as_secs_f64() * 1000.0,
            serve_bin_path: o.serve_bin_path.clone(),
            reuse: o.reuse,
            close_on_parent_exit: o.close_on_parent_exit,
            serve_hang_timeout_ms: o.serve_hang_timeout.as_secs_f64() * 1000.0,
            serve_idle_counts_connections: o.serve_idle_counts_connections,
            serve_max_restarts: o.serve_max_restarts,
        }
    }
}

outcome! { OptionsOutcome { options: CheckedManagedOptions } }

/// `encoded`: the options as the TS layer's tagged JSON.
#[napi(catch_unwind)]
pub fn validate_managed_options(encoded: String) -> OptionsOutcome {
    decode(&encoded)
        .and_then(|value| managed_options::validate(&value).map_err(NativeError::from))
        .map(|options| CheckedManagedOptions::from(&options))
        .into()
}

outcome! { ConfigOutcome { config_json: String } }

/// `encoded`: the `models` list as tagged JSON.
#[napi(catch_unwind)]
pub fn synthesize_serve_config(encoded: String) -> ConfigOutcome {
    decode(&encoded)
        .and_then(|value| {
            managed_options::validate_models(&value)
                .map(|specs| managed_options::synthesize_serve_config(&specs))
                .map_err(NativeError::from)
        })
        .map(|config| config.to_json().unwrap_or_default())
        .into()
}
