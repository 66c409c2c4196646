//! The launch protocol between a consumer and the runner it starts, both halves in one place:
//! the consumer writes [`RunnerParams`] to a private handoff file and runs
//! `qvac-managed run <file>`; the runner reads (and deletes) the file, forks into its own session,
//! prints the detached runner's pid on stdout and exits, so the consumer learns the pid and is
//! left with no zombie.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::time::Duration;
use tokio::process::Command;

use serde::{Deserialize, Serialize};

use crate::registry::Registry;

/// Handed from the consumer to the runner in a 0600 file that the runner deletes on reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerParams {
    pub fleet_key: String,
    pub api_key: String,
    /// `qvac.config.json` text.
    pub config_json: String,
    pub models: Vec<String>,
    pub host: String,
    /// A pinned port; `None` = the runner picks a free one.
    pub port: Option<u16>,
    pub idle_timeout_ms: f64,
    pub start_timeout_ms: f64,
    #[serde(default)]
    pub grace_ms: Option<f64>,
    #[serde(default)]
    pub serve_bin_path: Option<String>,
    /// Where to look for `node_modules/@qvac/cli` (the consumer's working directory).
    #[serde(default)]
    pub project_dir: Option<String>,
    /// The JS runtime that runs `@qvac/cli`'s entry point (the consumer's own).
    #[serde(default)]
    pub node_path: Option<String>,
    pub registry_dir: String,
    /// Names this start: a failure the runner writes carries it, so the consumer that started
    /// it, and every consumer waiting on it, know the failure is this attempt's.
    #[serde(default)]
    pub attempt: String,
    /// The consumer that started this runner and holds the spawn lock for it (its identity
    /// record): the runner takes the lock over from it before it starts anything, so a starter
    /// killed before handing the lock over never lets a second runner start beside this one.
    #[serde(default)]
    pub launcher: Option<String>,
    /// `serveHangTimeout` (0 = no watchdog); absent from older consumers' params: the default.
    #[serde(default = "default_hang_timeout_ms")]
    pub hang_timeout_ms: f64,
    /// `serveIdleCountsConnections`; absent from older consumers' params: true.
    #[serde(default = "default_true")]
    pub idle_counts_connections: bool,
    /// `serveMaxMemory` in bytes: the runner stops a serve whose tree stays above it.
    #[serde(default)]
    pub max_memory_bytes: Option<u64>,
}

fn default_hang_timeout_ms() -> f64 {
    crate::managed_options::DEFAULT_SERVE_HANG_TIMEOUT.as_secs_f64() * 1000.0
}

fn default_true() -> bool {
    true
}

impl RunnerParams {
    /// `failure` as this attempt's: what the runner writes to `<key>.error`.
    pub fn attempt_failure(
        &self,
        failure: crate::registry::StartFailure,
    ) -> crate::registry::StartFailure {
        crate::registry::StartFailure {
            attempt: (!self.attempt.is_empty()).then(|| self.attempt.clone()),
            ..failure
        }
    }

    /// Reads and deletes the handoff file.
    pub fn take(path: &Path) -> io::Result<RunnerParams> {
        let text = fs::read_to_string(path);
        let _ = fs::remove_file(path);
        serde_json::from_str(&text?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Writes the handoff file (0600, exclusive) into the registry directory, named as upstream
    /// names its own (`<key>.<pid>.<hex>.runner-params.json`) so either sweep clears strays.
    pub fn write(&self, registry: &Registry) -> io::Result<PathBuf> {
        let path = registry.dir().join(format!(
            "{}.{}.{:016x}.runner-params.json",
            self.fleet_key,
            std::process::id(),
            fastrand::u64(..)
        ));
        let json = serde_json::to_string(self).map_err(io::Error::other)?;
        crate::private_file::create_new(&path, json.as_bytes())?;
        Ok(path)
    }

    /// SIGTERM-to-SIGKILL grace for stopping the serve (default 5 s).
    pub fn grace(&self) -> Duration {
        crate::options::millis_saturating(self.grace_ms.unwrap_or(5_000.0))
    }

    /// The hang watchdog's timeout; `None` when it is off.
    pub fn hang_timeout(&self) -> Option<Duration> {
        Some(crate::options::millis_saturating(self.hang_timeout_ms)).filter(|d| !d.is_zero())
    }
}

/// The consumer's half: runs `qvac-managed run <params>` and returns the pid it prints. A
/// launcher that does not answer within `bound` (the start timeout) is killed.
pub async fn launch_runner(
    runner: &Path,
    params: &Path,
    env: Option<&[(String, String)]>,
    bound: Duration,
) -> Result<i32, String> {
    let mut command = Command::new(runner);
    if let Some(env) = env {
        command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
    command
        .arg("run")
        .arg(params)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(bound, command.output()).await {
        Ok(output) => output.map_err(|e| e.to_string())?,
        Err(_) => {
            return Err(format!(
            "it did not report the runner's pid within {} ms (serveStartTimeout) and was killed",
            bound.as_millis()
        ))
        }
    };
    if !output.status.success() {
        return Err(format!(
            "it exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!(
                "it printed no runner pid: {:?}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
}

/// The runner's half, in the parent after the fork: tells the consumer the detached pid.
pub fn announce_runner_pid(pid: i32) {
    println!("{pid}");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn params(dir: &Path) -> RunnerParams {
        RunnerParams {
            fleet_key: "0123456789abcdef".into(),
            api_key: "k".into(),
            config_json: "{}".into(),
            models: vec!["qwen3.5-9b".into()],
            host: "127.0.0.1".into(),
            port: None,
            idle_timeout_ms: 100.0,
            start_timeout_ms: 1000.0,
            grace_ms: None,
            serve_bin_path: None,
            project_dir: Some(dir.display().to_string()),
            node_path: Some("/usr/bin/node".into()),
            registry_dir: dir.join("reg").display().to_string(),
            attempt: "1.0000000000000001".into(),
            launcher: None,
            hang_timeout_ms: 60_000.0,
            idle_counts_connections: true,
            max_memory_bytes: None,
        }
    }

    #[test]
    fn params_handoff_file_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(dir.path());
        let reg = Registry::at(dir.path().join("reg"));
        reg.ensure_dir().unwrap();
        let path = p.write(&reg).unwrap();
        assert!(path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(".runner-params.json"));
        assert_eq!(p, RunnerParams::take(&path).unwrap());
        assert!(!path.exists());
    }
}
