//! `qvac-managed run <params>`: reads the handoff file, forks the runner into its own session
//! (printing its pid for the consumer), and runs the serve to the end on a single-threaded
//! runtime on the main thread — the thread that spawns the serve, so PR_SET_PDEATHSIG ties the
//! serve to the runner's life. Windows cannot fork: `run` re-spawns this binary as
//! `run --detached <params>` (which reads the handoff file), prints its pid and exits; the
//! serve's Job Object, closed with the runner, ties the serve to the runner's life there.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use qvac_managed_core::launch::{announce_runner_pid, RunnerParams};
use qvac_managed_core::registry::Registry;

use crate::platform::{self, fork_single_threaded, Forked};

mod lifecycle;
use lifecycle::RunnerExit;

/// Logs are kept below this size: past it, the log is moved to `<key>.log.1` and a new one begun
/// (when a runner starts, and while it runs).
const LOG_LIMIT: u64 = 1024 * 1024;

pub fn run(params_path: &Path, foreground: bool, detached: bool) -> ExitCode {
    let detach = !foreground && !detached;
    if detach && !platform::DETACHES_BY_FORK {
        if let Err(err) = std::fs::metadata(params_path) {
            eprintln!(
                "qvac-managed run: cannot read {}: {err}",
                params_path.display()
            );
            return ExitCode::from(2);
        }
        return match platform::spawn_detached(params_path) {
            Ok(pid) => {
                announce_runner_pid(pid as i32);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("qvac-managed run: cannot start the detached runner: {err}");
                ExitCode::from(2)
            }
        };
    }
    let params = match RunnerParams::take(params_path) {
        Ok(params) => params,
        Err(err) => {
            eprintln!(
                "qvac-managed run: cannot read {}: {err}",
                params_path.display()
            );
            return ExitCode::from(2);
        }
    };
    if detach {
        // No threads exist yet: the runtime is built after the fork.
        match fork_single_threaded() {
            Ok(Forked::Parent(child)) => {
                announce_runner_pid(child);
                return ExitCode::SUCCESS;
            }
            Ok(Forked::Child) => {}
            Err(err) => {
                eprintln!("qvac-managed run: fork failed: {err}");
                return ExitCode::from(2);
            }
        }
    }
    if !foreground {
        platform::new_session();
    }
    let registry = Registry::at(&params.registry_dir);
    let log_path = registry.log_path(&params.fleet_key);
    if !foreground {
        detach_stdio(&log_path);
    }
    let written = fs::metadata(&log_path).map_or(0, |m| m.len());
    let log = RotatingLog {
        path: (!foreground).then(|| log_path.clone()),
        written,
    };
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::sync::Mutex::new(log))
        .init();
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "runner panicked")));
    platform::become_subreaper();
    tracing::info!(fleet = %params.fleet_key, pid = std::process::id(), "runner started");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot build the runtime");
            return ExitCode::from(2);
        }
    };
    let key = params.fleet_key.clone();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(lifecycle::run_serve(params))
    }));
    // However it ended, this runner's start output is of no more use (a runner that stood down
    // for another leaves that one's).
    if !matches!(run, Ok(RunnerExit::Duplicate)) {
        qvac_managed_core::registry::StartOutput::remove(&registry, &key);
    }
    match run {
        Ok(RunnerExit::StartFailed) => ExitCode::from(1),
        Ok(_) => {
            // A private fleet's key is never used again: its logs would be left forever.
            if Registry::is_private_key(&key) {
                registry.remove_fleet_logs(&key);
            }
            ExitCode::SUCCESS
        }
        Err(_) => {
            // Unwinding dropped the serve (its group killed) and its temp files; what names this
            // runner on disk goes too.
            lifecycle::clean_up_after_panic(&registry, &key);
            ExitCode::from(70)
        }
    }
}

/// The runner's tracing output, written to fd 2 (the log file once detached). Past
/// [`LOG_LIMIT`] the log is moved to `<key>.log.1` and a new one begun, so a runner stuck in a
/// loop cannot fill the disk.
struct RotatingLog {
    path: Option<std::path::PathBuf>,
    written: u64,
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(path) = &self.path {
            if self.written + buf.len() as u64 > LOG_LIMIT {
                detach_stdio(path);
                self.written = 0;
            }
        }
        let n = std::io::stderr().write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// stdin from /dev/null; stdout and stderr to the fleet's log (rotated once past the limit).
fn detach_stdio(log_path: &Path) {
    if fs::metadata(log_path).is_ok_and(|m| m.len() >= LOG_LIMIT) {
        let _ = fs::rename(log_path, log_path.with_extension("log.1"));
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    let log = qvac_managed_core::platform::with_create_mode(&mut options, 0o600)
        .open(log_path)
        .or_else(|_| {
            OpenOptions::new()
                .write(true)
                .open(qvac_managed_core::platform::NULL_DEVICE)
        });
    let null = OpenOptions::new()
        .read(true)
        .open(qvac_managed_core::platform::NULL_DEVICE);
    if let (Ok(log), Ok(null)) = (log, null) {
        let _ = writeln!(&log, "--- runner log ---");
        platform::redirect_stdio(null, log);
    }
}
