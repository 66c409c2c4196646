//! The runner: the one process that owns a managed serve for its whole life. It starts the serve
//! (resolving the binary, allocating the port, writing the private config and key file),
//! publishes the record once the serve is healthy, watches the consumers by event, and reaps the
//! serve `idle` after the last consumer is gone. Whatever ends it — idle reap, a crash of the
//! serve, SIGTERM/SIGINT — it leaves nothing behind but, after a crash, the markers of consumers
//! that are still alive (so a respawned serve inherits them).
//!
//! Attach and reap race safely: the runner removes the record *before* its final consumer check
//! (under the spawn lock), and a consumer writes its marker *before* re-checking the record, so
//! at least one of them sees the other. A consumer arriving at the deadline either keeps the live
//! serve (the runner sees its marker and republishes) or starts a fresh one (it sees no record).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};

use crate::consumer_watch::ConsumerWatch;
use crate::process::ProcessIdentity;
use crate::registry::{RecordState, Registry, RegistryError, ServeRecord, StartFailure};
use crate::retry::{CancelToken, RetryPolicy};
use crate::supervisor::{NotReady, Readiness, Supervised, SupervisorSpec};

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
}

impl RunnerParams {
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
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        io::Write::write_all(
            &mut file,
            serde_json::to_string(self)
                .expect("params serialise")
                .as_bytes(),
        )?;
        Ok(path)
    }

    fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.grace_ms.unwrap_or(5_000.0).max(0.0) / 1000.0)
    }
}

/// Why a serve did not start. Codes and messages follow upstream's error classes.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("Managed mode requires the `@qvac/cli` package ({detail}). Install it with `npm i @qvac/cli`, or pass `serveBinPath` pointing at a `qvac` executable.")]
    CliNotFound { detail: String },
    #[error("Failed to allocate a port for qvac serve on {host}: {reason}")]
    PortAllocationFailed { host: String, reason: String },
    #[error("Failed to spawn qvac serve ({command}): {reason}")]
    SpawnFailed { command: String, reason: String },
    #[error("qvac serve exited before becoming healthy (code={}, signal={}).", fmt_opt(*code), signal.as_deref().unwrap_or("null"))]
    Exited {
        code: Option<i32>,
        /// Signal name, e.g. `SIGKILL`.
        signal: Option<String>,
        tail: String,
    },
    #[error("qvac serve did not become healthy at {base_url} within {timeout_ms}ms. Cold model downloads can be slow — raise `serveStartTimeout` if the model is large.")]
    StartTimeout {
        base_url: String,
        timeout_ms: u64,
        tail: String,
    },
}

fn fmt_opt(v: Option<i32>) -> String {
    // As upstream prints `String(null)`.
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

impl StartError {
    pub fn code(&self) -> &'static str {
        match self {
            StartError::CliNotFound { .. } => "CLI_NOT_FOUND",
            StartError::PortAllocationFailed { .. } => "PORT_ALLOCATION_FAILED",
            StartError::SpawnFailed { .. } => "SERVE_SPAWN_FAILED",
            StartError::Exited { .. } => "SERVE_EXITED",
            StartError::StartTimeout { .. } => "SERVE_START_TIMEOUT",
        }
    }

    pub fn failure(&self) -> StartFailure {
        let tail = match self {
            StartError::Exited { tail, .. } | StartError::StartTimeout { tail, .. } => tail.clone(),
            _ => String::new(),
        };
        StartFailure {
            code: self.code().into(),
            message: self.to_string(),
            output_tail: tail,
        }
    }
}

/// The command that runs the serve: `serveBinPath`, else `@qvac/cli` from the project (run by
/// the consumer's JS runtime), else `qvac` on PATH.
pub fn resolve_serve_command(params: &RunnerParams) -> Result<(PathBuf, Vec<String>), StartError> {
    if let Some(bin) = params.serve_bin_path.as_deref() {
        let path = PathBuf::from(bin);
        if !path.is_file() {
            return Err(StartError::CliNotFound {
                detail: format!("serveBinPath {bin} does not exist"),
            });
        }
        return Ok((path, vec![]));
    }
    if let Some(project) = params.project_dir.as_deref() {
        for dir in Path::new(project).ancestors() {
            let pkg = dir.join("node_modules/@qvac/cli/package.json");
            let Ok(text) = fs::read_to_string(&pkg) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let bin = json["bin"]
                .as_str()
                .or_else(|| json["bin"]["qvac"].as_str());
            if let Some(bin) = bin {
                let entry = pkg.parent().expect("package.json has a dir").join(bin);
                let node = params.node_path.clone().unwrap_or_else(|| "node".into());
                return Ok((PathBuf::from(node), vec![entry.display().to_string()]));
            }
        }
    }
    if let Some(path) = find_on_path("qvac") {
        return Ok((path, vec![]));
    }
    Err(StartError::CliNotFound {
        detail: format!(
            "no serveBinPath, no node_modules/@qvac/cli above {}, and no `qvac` on PATH",
            params
                .project_dir
                .as_deref()
                .unwrap_or("the working directory")
        ),
    })
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// A free port on `host` (bind to 0), or checks that a pinned one is free.
pub fn allocate_port(host: &str, pinned: Option<u16>) -> Result<u16, StartError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let listener = std::net::TcpListener::bind((bare, pinned.unwrap_or(0))).map_err(|e| {
        StartError::PortAllocationFailed {
            host: host.to_owned(),
            reason: match (pinned, e.kind()) {
                (Some(port), io::ErrorKind::AddrInUse) => match crate::platform::tcp_listener_pid(port) {
                    Some(pid) => format!("port {port} is in use by pid {pid}; choose another `servePort` or stop that process"),
                    None => format!("port {port} is in use by another program; choose another `servePort` or stop that program"),
                },
                _ => e.to_string(),
            },
        }
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| StartError::PortAllocationFailed {
            host: host.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(port.port())
}

/// `http://host:port/v1`, bracketing IPv6 literals.
pub fn base_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}/v1")
    } else {
        format!("http://{host}:{port}/v1")
    }
}

/// The serve's private files: `<tmp>/qvac-managed-<hex>/` (0700) with `qvac.config.json` and
/// `serve-api-key` (0600). Removed on drop.
pub struct ServeFiles {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub key_path: PathBuf,
}

impl ServeFiles {
    pub fn write(config_json: &str, api_key: &str) -> io::Result<ServeFiles> {
        let base = std::env::temp_dir();
        let dir = loop {
            let candidate = base.join(format!(
                "qvac-managed-{:012x}",
                fastrand::u64(..) & 0xffff_ffff_ffff
            ));
            match fs::DirBuilder::new().mode(0o700).create(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let files = ServeFiles {
            config_path: dir.join("qvac.config.json"),
            key_path: dir.join("serve-api-key"),
            dir,
        };
        write_private(&files.config_path, format!("{config_json}\n").as_bytes())?;
        write_private(&files.key_path, api_key.as_bytes())?;
        Ok(files)
    }
}

impl Drop for ServeFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    io::Write::write_all(&mut file, bytes)
}

/// A serve that passed its health check.
pub struct StartedServe {
    pub serve: Supervised,
    pub files: ServeFiles,
    pub port: u16,
    pub base_url: String,
}

/// Starts the serve and waits for `GET /v1/models` to answer 2xx with the key.
pub async fn start_serve(params: &RunnerParams) -> Result<StartedServe, StartError> {
    let (command, mut args) = resolve_serve_command(params)?;
    let port = allocate_port(&params.host, params.port)?;
    let files = ServeFiles::write(&params.config_json, &params.api_key).map_err(|e| {
        StartError::SpawnFailed {
            command: command.display().to_string(),
            reason: format!("cannot write the serve's config: {e}"),
        }
    })?;
    let url = base_url(&params.host, port);
    args.extend(
        [
            "serve",
            "--openai",
            "--no-default",
            "--config",
            &files.config_path.display().to_string(),
            "--port",
            &port.to_string(),
            "--host",
            &params.host,
            "--api-key-file",
            &files.key_path.display().to_string(),
        ]
        .map(String::from),
    );
    let start_timeout = Duration::from_secs_f64(params.start_timeout_ms.max(0.0) / 1000.0);
    let mut spec = SupervisorSpec::new(&command);
    spec.args = args;
    spec.readiness = Readiness::Http {
        url: format!("{url}/models"),
        bearer: Some(params.api_key.clone()),
    };
    spec.start_timeout = start_timeout;
    spec.grace = params.grace();
    spec.die_with_parent = true;
    spec.output_tail_bytes = 8 * 1024;
    tracing::info!(command = %command.display(), port, "starting serve");
    let serve = Supervised::spawn(spec).map_err(|e| StartError::SpawnFailed {
        command: command.display().to_string(),
        reason: e.source.to_string(),
    })?;
    match serve.ready().await {
        Ok(()) => Ok(StartedServe {
            serve,
            files,
            port,
            base_url: url,
        }),
        Err(NotReady::Exited(report)) => Err(StartError::Exited {
            code: report.code,
            signal: report.signal_name().map(str::to_owned),
            tail: report.output_tail,
        }),
        Err(NotReady::TimedOut(report)) => Err(StartError::StartTimeout {
            base_url: url,
            timeout_ms: start_timeout.as_millis() as u64,
            tail: report.output_tail,
        }),
    }
}

/// How a runner ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunnerExit {
    /// The last consumer left and the idle timeout passed.
    Reaped,
    /// The serve exited on its own; the next consumer request respawns it.
    ServeCrashed,
    /// SIGTERM or SIGINT.
    Signalled,
    /// The serve never became healthy; `<key>.error` says why.
    StartFailed,
    /// Another runner published this fleet first; ours stood down.
    Duplicate,
}

/// Runs one serve to the end. The caller has detached the process.
pub async fn run(params: RunnerParams) -> RunnerExit {
    let registry = Registry::at(&params.registry_dir);
    let key = params.fleet_key.clone();
    let mut sigterm = signal(SignalKind::terminate()).expect("signal handlers install");
    let mut sigint = signal(SignalKind::interrupt()).expect("signal handlers install");

    let started = tokio::select! {
        started = start_serve(&params) => started,
        _ = sigterm.recv() => return RunnerExit::Signalled,
        _ = sigint.recv() => return RunnerExit::Signalled,
    };
    // The consumer that started us handed us the spawn lock; it goes when the start is decided.
    let handed_over = crate::pid_lock::PidLock::adopt(&registry.lock_path(&key))
        .ok()
        .flatten();
    let StartedServe {
        serve,
        files,
        port,
        base_url,
    } = match started {
        Ok(started) => started,
        Err(err) => {
            tracing::warn!(code = err.code(), %err, "serve failed to start");
            let _ = registry.write_error(&key, &err.failure());
            drop(handed_over);
            return RunnerExit::StartFailed;
        }
    };
    match registry.read_record(&key) {
        // Belt and braces for I1: never publish over another live runner's serve.
        Ok(RecordState::Trusted(other)) if other.runner_pid != std::process::id() as i32 => {
            tracing::warn!(
                other_runner = other.runner_pid,
                "another runner already serves this fleet; stopping ours"
            );
            serve.stop(None).await;
            drop(handed_over);
            return RunnerExit::Duplicate;
        }
        // A dead serve's record (its runner was SIGKILLed): its key file and config go before
        // our record replaces the only pointer to them.
        Ok(RecordState::Untrusted(old, _)) => {
            if let Some(dir) = registry.clear_dead_serve_files(&old) {
                tracing::info!(dir = %dir.display(), "removed a dead serve's private files");
            }
        }
        _ => {}
    }
    let me = ProcessIdentity::current();
    let record = ServeRecord {
        fleet_key: key.clone(),
        api_key: params.api_key.clone(),
        serve_pid: serve.pid(),
        runner_pid: me.pid,
        port,
        host: params.host.clone(),
        base_url,
        config_path: files.config_path.display().to_string(),
        started_at: now_iso8601(),
        idle_timeout_ms: params.idle_timeout_ms,
        serve_start_time: ProcessIdentity::of(serve.pid()).and_then(|i| i.start_time),
        runner_start_time: me.start_time,
        boot_id: me.boot_id.clone(),
        models: Some(params.models.clone()),
    };
    if let Err(err) = registry.write_record(&record) {
        tracing::error!(%err, "cannot publish the record; stopping the serve");
        serve.stop(None).await;
        let _ = registry.write_error(
            &key,
            &StartFailure {
                code: "SERVE_SPAWN_FAILED".into(),
                message: format!("the runner could not publish the serve: {err}"),
                output_tail: String::new(),
            },
        );
        return RunnerExit::StartFailed;
    }
    let _ = registry.clear_error(&key);
    tracing::info!(
        pid = serve.pid(),
        port,
        "serve is healthy; record published"
    );

    let idle = Duration::from_secs_f64(params.idle_timeout_ms.max(0.0) / 1000.0);
    let mut watch = ConsumerWatch::new(&registry.consumers_dir(&key));
    let mut empty_since: Option<Instant> = None;
    let exit = loop {
        let live = registry.live_consumers(&key, true).unwrap_or_default();
        watch.track(&live);
        if live.is_empty() {
            empty_since.get_or_insert_with(Instant::now);
        } else {
            empty_since = None;
        }
        let idle_deadline = empty_since.map(|since| since + idle);
        tokio::select! {
            report = serve.exited() => {
                tracing::warn!(kind = report.kind.as_str(), code = ?report.code, signal = ?report.signal, tail = %report.output_tail, "serve exited on its own");
                let _ = registry.remove_record(&key);
                break RunnerExit::ServeCrashed;
            }
            _ = sigterm.recv() => break RunnerExit::Signalled,
            _ = sigint.recv() => break RunnerExit::Signalled,
            _ = watch.changed() => {}
            _ = sleep_until(idle_deadline) => {
                if try_reap(&registry, &key, &record).await {
                    break RunnerExit::Reaped;
                }
                empty_since = None;
            }
        }
    };
    if exit != RunnerExit::ServeCrashed {
        let _ = registry.remove_record(&key);
        let report = serve.stop(None).await;
        tracing::info!(kind = report.kind.as_str(), "serve stopped");
    }
    // Only an empty consumers dir goes: a marker may belong to a consumer about to respawn.
    let _ = fs::remove_dir(registry.consumers_dir(&key));
    drop(files);
    // A spawn lock that names us (held through a reap, or handed over after the start was
    // decided) goes last, once the serve is gone.
    if let Ok(Some(lock)) = crate::pid_lock::PidLock::adopt(&registry.lock_path(&key)) {
        drop(lock);
    }
    tracing::info!(?exit, "runner done");
    exit
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Takes the spawn lock, removes the record, and re-checks the consumers. True = reap now (the
/// lock file stays until the serve is gone); false = someone attached, the record is back.
async fn try_reap(registry: &Registry, key: &str, record: &ServeRecord) -> bool {
    let policy = RetryPolicy {
        attempts: 100,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(50),
        deadline: Some(Duration::from_secs(2)),
        jitter: 0.5,
    };
    // The lock may already name us (handed over by the consumer that started us).
    let adopted = crate::pid_lock::PidLock::adopt(&registry.lock_path(key))
        .ok()
        .flatten();
    let lock = match adopted {
        Some(lock) => Ok(lock),
        None => registry.spawn_lock(key, &policy, &CancelToken::new()).await,
    };
    let lock = match lock {
        Ok(lock) => lock,
        Err(RegistryError::Lock(err)) if err.is_missing_directory() => {
            // The registry was removed under us: nobody can attach any more; stop.
            tracing::warn!("the registry directory is gone; reaping");
            return true;
        }
        Err(err) => {
            tracing::info!(%err, "idle deadline reached but the spawn lock is busy; re-checking");
            return false;
        }
    };
    let _ = registry.remove_record(key);
    if !registry
        .live_consumers(key, true)
        .unwrap_or_default()
        .is_empty()
    {
        tracing::info!("a consumer attached at the idle deadline; keeping the serve");
        let _ = registry.write_record(record);
        return false;
    }
    tracing::info!("idle timeout passed with no consumers; reaping");
    // Keep the lock file while the serve stops, so no consumer spawns a duplicate meanwhile;
    // `run` removes it once the serve is gone.
    std::mem::forget(lock);
    true
}

/// UTC now as `YYYY-MM-DDTHH:MM:SS.mmmZ` (what `new Date().toISOString()` writes).
pub fn now_iso8601() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(dir: &Path) -> RunnerParams {
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
        }
    }

    #[test]
    fn serve_command_resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(dir.path());
        p.serve_bin_path = Some("/nonexistent/qvac".into());
        assert_eq!(
            "CLI_NOT_FOUND",
            resolve_serve_command(&p).unwrap_err().code()
        );

        p.serve_bin_path = None;
        let cli = dir.path().join("node_modules/@qvac/cli");
        fs::create_dir_all(cli.join("dist")).unwrap();
        fs::write(
            cli.join("package.json"),
            r#"{"name":"@qvac/cli","bin":{"qvac":"dist/cli.js"}}"#,
        )
        .unwrap();
        let nested = dir.path().join("app/src");
        fs::create_dir_all(&nested).unwrap();
        p.project_dir = Some(nested.display().to_string());
        let (cmd, args) = resolve_serve_command(&p).unwrap();
        assert_eq!(PathBuf::from("/usr/bin/node"), cmd);
        assert_eq!(vec![cli.join("dist/cli.js").display().to_string()], args);
    }

    #[test]
    fn ports_and_urls() {
        let port = allocate_port("127.0.0.1", None).unwrap();
        assert!(port > 0);
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pinned = taken.local_addr().unwrap().port();
        let err = allocate_port("127.0.0.1", Some(pinned)).unwrap_err();
        assert_eq!("PORT_ALLOCATION_FAILED", err.code());
        assert!(err
            .to_string()
            .contains(&format!("port {pinned} is in use")));
        assert_eq!("http://[::1]:80/v1", base_url("::1", 80));
        assert_eq!("http://127.0.0.1:80/v1", base_url("127.0.0.1", 80));
    }

    #[test]
    fn serve_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let files = ServeFiles::write("{\"serve\":{}}", "secret").unwrap();
        assert_eq!(
            0o700,
            fs::metadata(&files.dir).unwrap().permissions().mode() & 0o777
        );
        assert_eq!(
            0o600,
            fs::metadata(&files.key_path).unwrap().permissions().mode() & 0o777
        );
        assert_eq!("secret", fs::read_to_string(&files.key_path).unwrap());
        let dir = files.dir.clone();
        drop(files);
        assert!(!dir.exists());
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

    #[test]
    fn iso_timestamps() {
        let now = now_iso8601();
        assert_eq!(24, now.len(), "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
