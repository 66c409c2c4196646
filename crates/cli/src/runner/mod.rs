//! `qvac-managed run <params>`: reads the handoff file, forks the runner into its own session
//! (printing its pid for the consumer), and runs the serve to the end on a single-threaded
//! runtime on the main thread — the thread that spawns the serve, so PR_SET_PDEATHSIG ties the
//! serve to the runner's life.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use nix::unistd::setsid;
use qvac_managed_core::launch::{announce_runner_pid, RunnerParams};
use qvac_managed_core::registry::Registry;

use crate::platform::{fork_single_threaded, Forked};

mod lifecycle;
use lifecycle::RunnerExit;

/// Logs are kept below this size: a larger log is moved to `<key>.log.1` when a runner starts.
const LOG_LIMIT: u64 = 1024 * 1024;

pub fn run(params_path: &Path, foreground: bool) -> ExitCode {
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
    if !foreground {
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
        let _ = setsid();
    }
    let registry = Registry::at(&params.registry_dir);
    let log_path = registry.log_path(&params.fleet_key);
    if !foreground {
        detach_stdio(&log_path);
    }
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    become_subreaper();
    tracing::info!(fleet = %params.fleet_key, pid = std::process::id(), "runner started");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    match runtime.block_on(lifecycle::run_serve(params)) {
        RunnerExit::StartFailed => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// stdin from /dev/null; stdout and stderr to the fleet's log (rotated once past the limit).
fn detach_stdio(log_path: &Path) {
    if fs::metadata(log_path).is_ok_and(|m| m.len() > LOG_LIMIT) {
        let _ = fs::rename(log_path, log_path.with_extension("log.1"));
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_path)
        .or_else(|_| OpenOptions::new().write(true).open("/dev/null"));
    let null = OpenOptions::new().read(true).open("/dev/null");
    if let (Ok(log), Ok(null)) = (log, null) {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&log);
        let _ = nix::unistd::dup2_stderr(&log);
        let _ = writeln!(&log, "--- runner log ---");
        let _ = log.as_raw_fd();
    }
}

/// Orphaned grandchildren of the serve are re-parented to the runner, which reaps them while
/// tearing the group down (Linux); elsewhere they go to init as usual.
fn become_subreaper() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_child_subreaper(true);
}
