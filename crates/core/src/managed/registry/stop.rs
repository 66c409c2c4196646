//! Stopping a fleet's serve for everyone: what `qvac-managed stop`, `stopServe()` and
//! `qvac.stopServe()` do. The runner is asked (SIGTERM, or its stop event on Windows) and stops
//! its serve itself, recording the exit as `stopped`; a serve still alive after `grace` is
//! killed, and a runner still alive after that too. Only a runner proven to be the record's
//! (pid and start time, or its command line) is ever signalled.

use std::time::{Duration, Instant};

use super::{RecordState, Registry, RegistryError};
use crate::platform::Signal;
use crate::process::ProcessIdentity;

/// What became of a stop request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// No live serve for that fleet.
    NotRunning,
    /// The serve and its runner are gone.
    Stopped {
        serve_pid: i32,
        runner_pid: i32,
        /// The serve outlived the grace and was killed.
        forced: bool,
        took: Duration,
    },
    /// The record's runner pid cannot be proven to be the runner: nothing was signalled.
    NotProven { runner_pid: i32 },
    /// Still alive after every step (a process we may not signal, or a stuck kernel).
    StillRunning { serve_pid: i32, runner_pid: i32 },
}

impl StopOutcome {
    /// Why stopping fleet `key` failed, in words for the user (the CLI's line, `stopServe`'s
    /// SERVE_STOP_FAILED message); `None` when it did not fail.
    pub fn failure(&self, key: &str) -> Option<String> {
        match self {
            StopOutcome::NotRunning | StopOutcome::Stopped { .. } => None,
            StopOutcome::NotProven { runner_pid } => Some(format!(
                "pid {runner_pid} cannot be proven to be this fleet's runner (the record has no start time and its command line does not name the fleet); nothing was signalled; stop it yourself if it is"
            )),
            StopOutcome::StillRunning {
                serve_pid,
                runner_pid,
            } => Some(format!(
                "serve {serve_pid} or runner {runner_pid} is still running after the grace and a kill; see `qvac-managed logs {key}`"
            )),
        }
    }
}

/// How often the stop looks at the processes.
const POLL: Duration = Duration::from_millis(20);
/// How long a runner gets to finish after its serve is gone.
const RUNNER_EXIT_BOUND: Duration = Duration::from_secs(5);

impl Registry {
    /// Stops fleet `key`'s serve and runner (see the module doc); resolves once both are gone.
    pub async fn stop_fleet(
        &self,
        key: &str,
        grace: Duration,
    ) -> Result<StopOutcome, RegistryError> {
        let RecordState::Trusted(record) = self.read_record(key)? else {
            return Ok(StopOutcome::NotRunning);
        };
        if !record.runner_is_proven() {
            return Ok(StopOutcome::NotProven {
                runner_pid: record.runner_pid,
            });
        }
        let started = Instant::now();
        let serve = record.serve_identity();
        let runner = record.runner_identity();
        // Through a handle opened before the identity is re-checked: the pid signalled is the
        // runner proven above, even if it exited and the pid was reused in between.
        if !runner.signal(Signal::Term) {
            return Ok(StopOutcome::NotRunning);
        }
        let mut forced = false;
        if !wait_dead(&serve, grace + Duration::from_secs(1)).await {
            forced = serve.signal(Signal::Kill);
            wait_dead(&serve, Duration::from_secs(2)).await;
        }
        if !wait_dead(&runner, RUNNER_EXIT_BOUND).await {
            runner.signal(Signal::Kill);
            wait_dead(&runner, Duration::from_secs(2)).await;
        }
        if dead(&serve) && dead(&runner) {
            Ok(StopOutcome::Stopped {
                serve_pid: record.serve_pid,
                runner_pid: record.runner_pid,
                forced,
                took: started.elapsed(),
            })
        } else {
            Ok(StopOutcome::StillRunning {
                serve_pid: record.serve_pid,
                runner_pid: record.runner_pid,
            })
        }
    }
}

fn dead(process: &ProcessIdentity) -> bool {
    process.liveness().is_provably_dead()
}

/// Waits up to `bound` for `process` to be provably gone; true if it is.
async fn wait_dead(process: &ProcessIdentity, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if dead(process) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
