//! Starting a serve, as the runner does it: resolve the command (`serveBinPath`, `@qvac/cli` in
//! the project, `qvac` on PATH), allocate the port, write the private config and key file, spawn
//! it supervised and wait for its health check. Errors carry upstream's codes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::launch::RunnerParams;
use crate::private_file;
use crate::registry::StartFailure;
use crate::supervisor::{NotReady, Readiness, Supervised, SupervisorSpec};

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
        let (output_tail, exit_code, signal) = match self {
            StartError::Exited { code, signal, tail } => (tail.clone(), *code, signal.clone()),
            StartError::StartTimeout { tail, .. } => (tail.clone(), None, None),
            _ => (String::new(), None, None),
        };
        StartFailure {
            code: self.code().into(),
            message: self.to_string(),
            output_tail,
            exit_code,
            signal,
            attempt: None,
        }
    }
}

/// `serveBinPath`, when given, must be a file: otherwise CLI_NOT_FOUND, as upstream reports it.
pub fn check_serve_bin_path(bin: Option<&str>) -> Result<(), StartError> {
    match bin {
        Some(bin) if !Path::new(bin).is_file() => Err(StartError::CliNotFound {
            detail: format!("serveBinPath {bin} does not exist"),
        }),
        _ => Ok(()),
    }
}

/// The command that runs the serve: `serveBinPath`, else `@qvac/cli` from the project (run by
/// the consumer's JS runtime), else `qvac` on PATH.
pub fn resolve_serve_command(params: &RunnerParams) -> Result<(PathBuf, Vec<String>), StartError> {
    resolve_serve_command_in(
        params.serve_bin_path.as_deref(),
        params.project_dir.as_deref(),
        params.node_path.as_deref(),
    )
}

/// [`resolve_serve_command`] from its three inputs: what `doctor` calls for the working
/// directory, so it shows exactly the binary a runner would use.
pub fn resolve_serve_command_in(
    serve_bin_path: Option<&str>,
    project_dir: Option<&str>,
    node_path: Option<&str>,
) -> Result<(PathBuf, Vec<String>), StartError> {
    check_serve_bin_path(serve_bin_path)?;
    if let Some(bin) = serve_bin_path {
        return Ok((PathBuf::from(bin), vec![]));
    }
    if let Some(project) = project_dir {
        for dir in Path::new(project).ancestors() {
            let pkg = dir
                .join("node_modules")
                .join("@qvac")
                .join("cli")
                .join("package.json");
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
                // `bin` is a package-relative URL path: joined part by part, so the path has
                // one kind of separator on Windows too.
                let entry = bin
                    .split('/')
                    .filter(|part| !part.is_empty() && *part != ".")
                    .fold(
                        pkg.parent().expect("package.json has a dir").to_owned(),
                        |p, part| p.join(part),
                    );
                let node = node_path.unwrap_or("node");
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
            project_dir.unwrap_or("the working directory")
        ),
    })
}

/// `name` in the first PATH directory that has it as a program (with the platform's
/// executable suffixes: `qvac.cmd` on Windows).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| {
                crate::platform::EXECUTABLE_SUFFIXES
                    .iter()
                    .map(move |suffix| dir.join(format!("{name}{suffix}")))
            })
            .find(|p| fs::metadata(p).is_ok_and(|m| crate::platform::is_executable(&m)))
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
            match crate::platform::create_private_dir(&candidate) {
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
        private_file::create_new(&files.config_path, format!("{config_json}\n").as_bytes())?;
        private_file::create_new(&files.key_path, api_key.as_bytes())?;
        Ok(files)
    }
}

impl Drop for ServeFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A serve that passed its health check.
pub struct StartedServe {
    pub serve: Supervised,
    pub files: ServeFiles,
    pub port: u16,
    pub base_url: String,
}

/// Starts the serve and waits for `GET /v1/models` to answer 2xx with the key.
/// `output`, when given, also receives the serve's output as it arrives.
pub async fn start_serve(
    params: &RunnerParams,
    output: Option<crate::supervisor::OutputSink>,
) -> Result<StartedServe, StartError> {
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
    let start_timeout = crate::options::millis_saturating(params.start_timeout_ms);
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
    spec.output_sink = output;
    tracing::info!(command = %command.display(), port, "starting serve");
    let serve = Supervised::spawn(spec).map_err(|e| StartError::SpawnFailed {
        command: command.display().to_string(),
        reason: e.source.to_string(),
    })?;
    tracing::info!(pid = serve.pid(), "serve spawned");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::params;

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
        let files = ServeFiles::write("{\"serve\":{}}", "secret").unwrap();
        assert_eq!(
            0o700,
            crate::platform::mode_of(&fs::metadata(&files.dir).unwrap())
        );
        assert_eq!(
            0o600,
            crate::platform::mode_of(&fs::metadata(&files.key_path).unwrap())
        );
        assert_eq!("secret", fs::read_to_string(&files.key_path).unwrap());
        let dir = files.dir.clone();
        drop(files);
        assert!(!dir.exists());
    }
}
