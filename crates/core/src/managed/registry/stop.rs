//! Stopping a fleet's serve for everyone: what `qvac-managed stop`, `stopServe()` and
//! `qvac.stopServe()` do. The runner is asked (SIGTERM, or its stop event on Windows) and stops
//! its serve itself, recording the exit as `stopped`; a serve still alive after `grace` is
//! killed, and a runner still alive after that too. Only a runner proven to be the record's
//! (pid and start time, or its command line) is ever signalled.
//!
//! A fleet that is starting (no record yet) is stopped too: once its spawn lock names a live
//! runner of this fleet (start time recorded in the lock, command line naming the fleet's key),
//! that runner is asked to stop; it drops the start (the serve's tree with it) and writes
//! `SERVE_STOPPED` as the start's failure, so every consumer waiting on the start gets that
//! error instead of starting it again. While the lock still names the consumer that is launching
//! the runner, the stop waits (bounded) for the handover.

use std::time::{Duration, Instant};

use super::{RecordState, Registry, RegistryError, StartFailure};
use crate::pid_lock::LockHolder;
use crate::platform::Signal;
use crate::process::{Liveness, ProcessIdentity};

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
    /// A start in progress (no serve published yet) was stopped: its runner is gone.
    StoppedStarting { runner_pid: i32, took: Duration },
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
            StopOutcome::NotRunning
            | StopOutcome::Stopped { .. }
            | StopOutcome::StoppedStarting { .. } => None,
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
        let started = Instant::now();
        // Armed before the first look: a handover or a publish between a look and the wait wakes it.
        let mut changes = crate::dir_watch::DirWatch::new(
            self.dir(),
            &[format!("{key}.lock"), format!("{key}.json")],
            POLL_START,
        );
        let record = loop {
            if let RecordState::Trusted(record) = self.read_record(key)? {
                break record;
            }
            match self.starting_runner(key)? {
                Starting::None => return Ok(StopOutcome::NotRunning),
                Starting::Runner(runner) => {
                    return Ok(self.stop_start(&runner, grace, started).await);
                }
                Starting::Launching if started.elapsed() < HANDOVER_BOUND => {
                    let left = HANDOVER_BOUND.saturating_sub(started.elapsed());
                    let _ = tokio::time::timeout(left, changes.changed()).await;
                }
                Starting::Launching => return Ok(StopOutcome::NotRunning),
            }
        };
        if !record.runner_is_proven() {
            return Ok(StopOutcome::NotProven {
                runner_pid: record.runner_pid,
            });
        }
        let serve = record.serve_identity();
        let runner = record.runner_identity();
        // Through a handle opened before the identity is re-checked: the pid signalled is the
        // runner proven above, even if it exited and the pid was reused in between.
        if !runner.signal(Signal::Term) {
            return Ok(StopOutcome::NotRunning);
        }
        let forced = wait_or_kill(&serve, grace + Duration::from_secs(1)).await;
        wait_or_kill(&runner, RUNNER_EXIT_BOUND).await;
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

    /// Who is starting fleet `key` now, as its spawn lock says.
    fn starting_runner(&self, key: &str) -> Result<Starting, RegistryError> {
        let holder = crate::pid_lock::PidLock::inspect(&self.lock_path(key))?;
        let Some(LockHolder::Process {
            identity,
            liveness: Liveness::Alive,
        }) = holder
        else {
            return Ok(Starting::None);
        };
        // A runner is started with `<key>.<pid>.<hex>.runner-params.json`, and its lock records
        // its start time: both, or it is not provably this fleet's runner.
        let names_fleet = crate::platform::process_cmdline(identity.pid)
            .is_some_and(|cmdline| cmdline.contains(&format!("{key}.")));
        Ok(if identity.start_time.is_some() && names_fleet {
            Starting::Runner(identity)
        } else {
            Starting::Launching
        })
    }

    /// Stops a start in progress: its runner is asked, then (after `grace` and a bound) killed.
    async fn stop_start(
        &self,
        runner: &ProcessIdentity,
        grace: Duration,
        started: Instant,
    ) -> StopOutcome {
        if runner.signal(Signal::Term) {
            wait_or_kill(runner, grace + RUNNER_EXIT_BOUND).await;
        }
        if dead(runner) {
            StopOutcome::StoppedStarting {
                runner_pid: runner.pid,
                took: started.elapsed(),
            }
        } else {
            StopOutcome::StillRunning {
                serve_pid: 0,
                runner_pid: runner.pid,
            }
        }
    }

    /// Why a start did not finish when its runner was asked to stop while it started.
    pub fn stopped_while_starting(&self, key: &str, runner_pid: i32) -> StartFailure {
        StartFailure {
            code: "SERVE_STOPPED".into(),
            message: format!(
                "the serve of fleet {key} was stopped while it was starting (stopServe(), `qvac-managed stop`, or a signal to its runner pid {runner_pid}); nothing of it runs. Create the provider again, or retry the request, to start it afresh."
            ),
            ..StartFailure::default()
        }
    }
}

/// What a fleet with no published serve has going on.
enum Starting {
    /// Nothing (no lock, or its holder is dead).
    None,
    /// The lock names a live process that is not (yet) this fleet's runner: the consumer
    /// launching it.
    Launching,
    /// This fleet's runner, starting the serve.
    Runner(ProcessIdentity),
}

/// How long a stop waits for a launching consumer to hand the spawn lock to its runner.
const HANDOVER_BOUND: Duration = Duration::from_secs(5);
/// Where directory events are missing, how often it looks meanwhile.
const POLL_START: Duration = Duration::from_millis(20);

fn dead(process: &ProcessIdentity) -> bool {
    process.liveness().is_provably_dead()
}

/// Waits up to `bound` for `process` to be gone; if it is not, kills it and waits (bounded)
/// for that. True when it had to be killed.
async fn wait_or_kill(process: &ProcessIdentity, bound: Duration) -> bool {
    if wait_dead(process, bound).await {
        return false;
    }
    let killed = process.signal(Signal::Kill);
    wait_dead(process, KILL_WAIT).await;
    killed
}

/// How long a killed process may take to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

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
