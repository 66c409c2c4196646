//! One supervised child process: spawned in its own process group, watched for readiness,
//! stopped as a group, and every exit classified by our intent rather than its exit code.
//!
//! - Exit is observed through tokio's child reaper: a pidfd on Linux, SIGCHLD elsewhere; never
//!   by polling.
//! - `stop(grace)` sends SIGTERM to the whole group, waits `grace`, then SIGKILLs the group, and
//!   returns only once no live member of the group is left (grandchildren included).
//! - A child that exits without being asked takes its group with it: leftover members are killed.
//! - `die_with_parent` sets PR_SET_PDEATHSIG (Linux) so the child is killed if the spawning
//!   *thread* dies; spawn from a thread that lives as long as the parent (the runner spawns from
//!   its main thread). The parent is re-checked after the prctl, closing the fork race.
//! - Dropping a [`Supervised`] whose child is still running kills its group.
//!
//! How an exit is classified ([`ExitKind`]) depends only on what the child did, never on
//! which task the scheduler ran first:
//! - a command that cannot be executed (not found, not executable, bad cwd) is no child at all:
//!   [`Supervised::spawn`] returns a [`SpawnError`] (the exec error comes back from `spawn`);
//! - an exit we asked for (`stop`, `kill_now`, drop) is `Stopped`; one after the start timeout
//!   killed it is `StartTimeout`;
//! - any other exit is `Crashed` if the readiness condition had passed (with the default,
//!   [`Readiness::Spawned`], it passes when `spawn` returns, so `sh -c 'exit 5'` is always
//!   `Crashed`), and `FailedToStart` if it had not. "Had passed" is decided once, after the
//!   whole group is gone and its output drained: the ready line was in the output, or an HTTP
//!   probe sent before the exit was seen got its 2xx (a probe in flight is allowed to finish).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use crate::http;
use crate::options::{self, InvalidOption};
use crate::platform::{self, Signal};

/// How readiness is decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Readiness {
    /// Ready once `spawn` returns, i.e. the command was executed: any later exit that was
    /// not asked for is [`ExitKind::Crashed`], however soon it comes.
    Spawned,
    /// Ready when `GET url` answers 2xx (2 s per probe).
    Http { url: String, bearer: Option<String> },
    /// Ready when a line of stdout or stderr contains this text.
    OutputLine(String),
}

#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub command: PathBuf,
    pub args: Vec<String>,
    /// Added to (or overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub readiness: Readiness,
    pub start_timeout: Duration,
    pub grace: Duration,
    pub output_tail_bytes: usize,
    pub die_with_parent: bool,
    /// Also given every chunk of output as it arrives (the runner shows a start's progress).
    pub output_sink: Option<OutputSink>,
}

/// Which of the child's streams a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What an [`OutputSink`] calls with each chunk.
pub type OutputFn = dyn Fn(OutputStream, &[u8]) + Send + Sync;

/// Receives the child's output chunks, on the reader tasks (so it must not block for long).
#[derive(Clone)]
pub struct OutputSink(pub Arc<OutputFn>);

impl std::fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputSink")
    }
}

/// `spawnSupervised`'s options as a caller gives them, before checking.
#[derive(Clone, Debug, Default)]
pub struct SupervisedOptions {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    /// Ready when `GET ready_url` answers 2xx (with `ready_bearer` as the bearer, if any).
    pub ready_url: Option<String>,
    pub ready_bearer: Option<String>,
    /// Ready when a line of output contains this text.
    pub ready_line: Option<String>,
    pub start_timeout_ms: Option<f64>,
    pub grace_ms: Option<f64>,
    pub output_tail_bytes: Option<f64>,
    pub die_with_parent: bool,
}

impl SupervisorSpec {
    /// Checks `options` (durations, sizes) and applies the defaults of [`SupervisorSpec::new`].
    pub fn from_options(o: SupervisedOptions) -> Result<SupervisorSpec, InvalidOption> {
        let mut spec = SupervisorSpec::new(&o.command);
        spec.args = o.args;
        spec.env = o.env;
        spec.cwd = o.cwd.map(PathBuf::from);
        spec.readiness = match (o.ready_url, o.ready_line) {
            (Some(url), _) if http::parse_http_url(&url).is_none() => {
                return Err(InvalidOption::new(
                    "readiness.http",
                    format!("{url:?}"),
                    "an http:// URL (http://host:port/path)",
                ))
            }
            (Some(url), _) => Readiness::Http {
                url,
                bearer: o.ready_bearer,
            },
            (None, Some(line)) => Readiness::OutputLine(line),
            (None, None) => Readiness::Spawned,
        };
        if let Some(ms) = o.start_timeout_ms {
            spec.start_timeout = options::millis("startTimeoutMs", ms)?;
        }
        if let Some(ms) = o.grace_ms {
            spec.grace = options::millis("graceMs", ms)?;
        }
        if let Some(bytes) = o.output_tail_bytes {
            spec.output_tail_bytes =
                options::integer_in("outputTailBytes", bytes, 1, u32::MAX)? as usize;
        }
        spec.die_with_parent = o.die_with_parent;
        Ok(spec)
    }

    pub fn new(command: impl Into<PathBuf>) -> Self {
        SupervisorSpec {
            command: command.into(),
            args: vec![],
            env: vec![],
            cwd: None,
            readiness: Readiness::Spawned,
            start_timeout: Duration::from_secs(180),
            grace: Duration::from_secs(5),
            output_tail_bytes: 8 * 1024,
            die_with_parent: false,
            output_sink: None,
        }
    }
}

/// Why the child is gone, by our intent (the rule is in the module docs). A command that
/// could not be executed at all never gets here: `spawn` returns a [`SpawnError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// We asked it to stop (`stop`, `kill_now`, drop), whether or not it was ready.
    Stopped,
    /// It exited on its own, with any code or signal, after its readiness condition passed
    /// (at once with [`Readiness::Spawned`], the default).
    Crashed,
    /// It exited on its own before the readiness condition the caller asked for (an output
    /// line, an HTTP 2xx) passed. Never with [`Readiness::Spawned`].
    FailedToStart,
    /// It did not become ready in time; we killed it.
    StartTimeout,
}

impl ExitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::Stopped => "stopped",
            ExitKind::Crashed => "crashed",
            ExitKind::FailedToStart => "failed-to-start",
            ExitKind::StartTimeout => "start-timeout",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExitReport {
    pub kind: ExitKind,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub output_tail: String,
}

impl ExitReport {
    /// The terminating signal's name (`SIGKILL`), as Node reports `signalCode`.
    pub fn signal_name(&self) -> Option<&'static str> {
        self.signal.and_then(platform::signal_name)
    }
}

/// Why readiness was not reached.
#[derive(Clone, Debug, PartialEq)]
pub enum NotReady {
    Exited(ExitReport),
    TimedOut(ExitReport),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot spawn {}: {source}", command.display())]
pub struct SpawnError {
    pub command: PathBuf,
    pub source: std::io::Error,
}

/// The last bytes the child wrote to stdout and stderr, interleaved as they arrived.
#[derive(Debug, Default)]
struct OutputTail {
    bytes: VecDeque<u8>,
    limit: usize,
}

impl OutputTail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(self.limit);
        self.bytes.drain(..excess);
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

/// How the start phase ended: decided once, by the readiness task, and read by the exit
/// watcher only after that decision (so the kind never depends on which task ran first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartOutcome {
    Ready,
    TimedOut,
    /// The child was gone (or being stopped) before readiness passed.
    NotReady,
}

#[derive(Debug)]
struct Shared {
    tree: platform::ProcessTree,
    tail: Mutex<OutputTail>,
    stop_requested: AtomicBool,
    /// The leader has been reaped (its group may still be going down).
    leader_exited: AtomicBool,
    /// When stopping: the moment the group gets SIGKILL.
    kill_at: Mutex<Option<Instant>>,
}

impl Shared {
    fn signal_group(&self, signal: Signal) {
        // The tree is ours: created for this child. A tree already gone ignores it.
        self.tree.signal(signal);
    }

    fn tail(&self) -> String {
        self.tail.lock().map(|t| t.text()).unwrap_or_default()
    }
}

/// A running (or finished) supervised child.
#[derive(Debug)]
pub struct Supervised {
    pid: i32,
    shared: Arc<Shared>,
    exit: watch::Receiver<Option<ExitReport>>,
    ready: watch::Receiver<Option<Result<(), NotReady>>>,
    grace: Duration,
}

impl Supervised {
    /// Spawns the child and starts watching it. Must be called within a tokio runtime.
    pub fn spawn(spec: SupervisorSpec) -> Result<Supervised, SpawnError> {
        let mut command = tokio::process::Command::new(&spec.command);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        platform::ProcessTree::prepare(&mut command);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        if spec.die_with_parent {
            platform::set_parent_death_signal(&mut command);
        }
        let mut child = command.spawn().map_err(|source| SpawnError {
            command: spec.command.clone(),
            source,
        })?;
        let pid = child.id().expect("a just-spawned child has a pid") as i32;
        let tree =
            platform::ProcessTree::adopt(&child, spec.die_with_parent).map_err(|source| {
                let _ = child.start_kill();
                SpawnError {
                    command: spec.command.clone(),
                    source,
                }
            })?;
        let shared = Arc::new(Shared {
            tree,
            tail: Mutex::new(OutputTail {
                bytes: VecDeque::new(),
                limit: spec.output_tail_bytes.max(1),
            }),
            stop_requested: AtomicBool::new(false),
            leader_exited: AtomicBool::new(false),
            kill_at: Mutex::new(None),
        });
        let (line_tx, line_rx) = watch::channel(false);
        let marker = match &spec.readiness {
            Readiness::OutputLine(text) => Some(text.clone()),
            _ => None,
        };
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_output(
                out,
                shared.clone(),
                marker.clone(),
                line_tx.clone(),
                spec.output_sink
                    .clone()
                    .map(|sink| (OutputStream::Stdout, sink)),
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_output(
                err,
                shared.clone(),
                marker,
                line_tx,
                spec.output_sink
                    .clone()
                    .map(|sink| (OutputStream::Stderr, sink)),
            )));
        }

        // With `Spawned`, readiness passed when `spawn` returned: decided here, before any task
        // runs, so an exit however early is `Crashed`.
        let spawned = spec.readiness == Readiness::Spawned;
        let (outcome_tx, mut outcome_rx) = watch::channel(spawned.then_some(StartOutcome::Ready));
        let (ready_tx, ready_rx) = watch::channel(spawned.then_some(Ok(())));
        // Set once the group is gone and its output drained: the start phase is over.
        let (gone_tx, gone_rx) = watch::channel(false);

        let (exit_tx, exit_rx) = watch::channel(None);
        let watcher_shared = shared.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            watcher_shared.leader_exited.store(true, Ordering::SeqCst);
            // Take the group down with the leader, and wait until no member is left.
            reap_group(&watcher_shared).await;
            // Once the group is gone the pipes end at once, unless a process that left the
            // group (a daemon) holds them: bounded for that case only, and long enough that a
            // loaded or emulated machine still reads what the child wrote before deciding.
            for reader in readers {
                let _ = tokio::time::timeout(OUTPUT_DRAIN_BOUND, reader).await;
            }
            let _ = gone_tx.send(true);
            // The readiness task answers promptly once `gone` is set (an HTTP probe in flight
            // finishes first, bounded by its timeout); a dropped task means it never passed.
            let outcome = outcome_rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|o| *o)
                .unwrap_or(StartOutcome::NotReady);
            let (code, signal) = match &status {
                Ok(status) => (status.code(), platform::exit_signal(status)),
                Err(_) => (None, None),
            };
            let kind = match outcome {
                StartOutcome::TimedOut => ExitKind::StartTimeout,
                _ if watcher_shared.stop_requested.load(Ordering::SeqCst) => ExitKind::Stopped,
                StartOutcome::Ready => ExitKind::Crashed,
                StartOutcome::NotReady => ExitKind::FailedToStart,
            };
            let _ = exit_tx.send(Some(ExitReport {
                kind,
                code,
                signal,
                output_tail: watcher_shared.tail(),
            }));
        });

        if !spawned {
            let deadline = Instant::now().checked_add(spec.start_timeout);
            let ready_shared = shared.clone();
            let mut exit_for_ready = exit_rx.clone();
            let readiness = spec.readiness.clone();
            tokio::spawn(async move {
                let timeout_shared = ready_shared.clone();
                let timed_out = async move {
                    match deadline {
                        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                        None => std::future::pending().await,
                    }
                    // A child that exited on its own before the deadline is judged by what it
                    // did (the readiness branch), not killed as late.
                    if timeout_shared.leader_exited.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                };
                let outcome = tokio::select! {
                    // Biased: readiness that passed wins over a deadline reached in the same poll.
                    biased;
                    ready = wait_ready(readiness, line_rx, gone_rx) => {
                        if ready { StartOutcome::Ready } else { StartOutcome::NotReady }
                    }
                    _ = timed_out => {
                        if ready_shared.stop_requested.load(Ordering::SeqCst) {
                            StartOutcome::NotReady
                        } else {
                            StartOutcome::TimedOut
                        }
                    }
                };
                let _ = outcome_tx.send(Some(outcome));
                match outcome {
                    StartOutcome::Ready => {
                        let _ = ready_tx.send(Some(Ok(())));
                        return;
                    }
                    // Kill it at once, so the report comes within the timeout + a little.
                    StartOutcome::TimedOut => ready_shared.signal_group(Signal::Kill),
                    StartOutcome::NotReady => {}
                }
                let report = exit_for_ready
                    .wait_for(Option::is_some)
                    .await
                    .map(|r| r.clone());
                let Ok(Some(report)) = report else {
                    return;
                };
                let not_ready = if report.kind == ExitKind::StartTimeout {
                    NotReady::TimedOut(report)
                } else {
                    NotReady::Exited(report)
                };
                let _ = ready_tx.send(Some(Err(not_ready)));
            });
        }

        Ok(Supervised {
            pid,
            shared,
            exit: exit_rx,
            ready: ready_rx,
            grace: spec.grace,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Resolves once readiness passes, or with why it never will.
    pub async fn ready(&self) -> Result<(), NotReady> {
        let mut ready = self.ready.clone();
        let outcome = ready.wait_for(Option::is_some).await.map(|o| o.clone());
        match outcome {
            Ok(outcome) => outcome.expect("checked is_some"),
            Err(_) => Err(NotReady::Exited(self.exited_now().unwrap_or(ExitReport {
                kind: ExitKind::FailedToStart,
                code: None,
                signal: None,
                output_tail: self.output_tail(),
            }))),
        }
    }

    /// Resolves once, when the child and its whole group are gone.
    pub async fn exited(&self) -> ExitReport {
        let mut exit = self.exit.clone();
        let report = exit.wait_for(Option::is_some).await.map(|r| r.clone());
        match report {
            Ok(report) => report.expect("checked is_some"),
            Err(_) => ExitReport {
                kind: ExitKind::Stopped,
                code: None,
                signal: None,
                output_tail: self.output_tail(),
            },
        }
    }

    /// The exit report if the child is gone already.
    pub fn exited_now(&self) -> Option<ExitReport> {
        self.exit.borrow().clone()
    }

    /// SIGTERM to the group, SIGKILL after `grace` (default: the spec's), resolves when the
    /// group is gone. Idempotent; concurrent calls all resolve with the same report.
    pub async fn stop(&self, grace: Option<Duration>) -> ExitReport {
        if let Some(report) = self.exited_now() {
            return report;
        }
        let grace = grace.unwrap_or(self.grace);
        if !self.shared.stop_requested.swap(true, Ordering::SeqCst) {
            if let Ok(mut kill_at) = self.shared.kill_at.lock() {
                *kill_at = Some(Instant::now() + grace);
            }
            self.shared.signal_group(Signal::Term);
        }
        match tokio::time::timeout(grace, self.exited()).await {
            Ok(report) => report,
            Err(_) => {
                self.shared.signal_group(Signal::Kill);
                self.exited().await
            }
        }
    }

    pub fn output_tail(&self) -> String {
        self.shared.tail()
    }

    /// SIGKILLs the group now without waiting (exit paths, where nothing can be awaited).
    pub fn kill_now(&self) {
        if self.exit.borrow().is_none() {
            self.shared.stop_requested.store(true, Ordering::SeqCst);
            self.shared.signal_group(Signal::Kill);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Reads the child's output in fixed chunks, whatever its newlines (progress bars with `\r`,
/// binary), so memory stays bounded: the tail keeps the last bytes, and the readiness marker is
/// looked for across chunk boundaries with a carry of `marker.len() - 1` bytes.
async fn read_output(
    mut stream: impl AsyncRead + Unpin,
    shared: Arc<Shared>,
    marker: Option<String>,
    seen: watch::Sender<bool>,
    sink: Option<(OutputStream, OutputSink)>,
) {
    let mut chunk = vec![0u8; 8 * 1024];
    let mut window: Vec<u8> = Vec::new();
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let bytes = &chunk[..n];
        if let Some(marker) = marker.as_deref().filter(|_| !*seen.borrow()) {
            window.extend_from_slice(bytes);
            if window
                .windows(marker.len().max(1))
                .any(|w| w == marker.as_bytes())
            {
                let _ = seen.send(true);
                window.clear();
            } else {
                let keep = marker.len().saturating_sub(1).min(window.len());
                window.drain(..window.len() - keep);
            }
        }
        if let Ok(mut tail) = shared.tail.lock() {
            tail.push(bytes);
        }
        if let Some((stream, sink)) = &sink {
            (sink.0)(*stream, bytes);
        }
    }
}

/// How long the exit watcher waits for the output to end after the child's group is gone.
const OUTPUT_DRAIN_BOUND: Duration = Duration::from_secs(2);

/// Resolves `true` once readiness passes, `false` once the child is gone without it (`gone`
/// is set only after the group is dead and its output drained, so what the child did decides).
async fn wait_ready(
    readiness: Readiness,
    mut line_seen: watch::Receiver<bool>,
    mut gone: watch::Receiver<bool>,
) -> bool {
    match readiness {
        Readiness::Spawned => true,
        Readiness::OutputLine(_) => {
            tokio::select! {
                biased;
                seen = line_seen.wait_for(|seen| *seen) => if seen.is_ok() {
                    return true;
                },
                _ = gone.wait_for(|gone| *gone) => {}
            }
            // Output ended (or the child is gone): the drained output has the line or never will.
            let _ = gone.wait_for(|gone| *gone).await;
            let seen = *line_seen.borrow();
            seen
        }
        Readiness::Http { url, bearer } => loop {
            if *gone.borrow() {
                return false;
            }
            // A probe in flight when the child exits is not cut short: a 2xx it got was
            // answered before the group died. Bounded by the probe's own timeout.
            match http::probe(&url, bearer.as_deref(), Duration::from_secs(2)).await {
                Ok(status) if (200..300).contains(&status) => return true,
                // A short, steady interval: the port opens when the serve is ready, and every
                // millisecond here is start-up overhead the user waits for.
                _ => tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    changed = gone.changed() => if changed.is_err() {
                        return false;
                    },
                },
            }
        },
    }
}

/// After the leader is reaped: kill what is left of the group (at once after a crash or a
/// timeout; after the grace when stopping) and wait until nothing of it runs.
async fn reap_group(shared: &Shared) {
    let started = Instant::now();
    loop {
        if !shared.tree.alive() {
            return;
        }
        let stopping = shared.stop_requested.load(Ordering::SeqCst);
        let kill_at = shared.kill_at.lock().ok().and_then(|k| *k);
        if !stopping || kill_at.is_none_or(|at| Instant::now() >= at) {
            shared.signal_group(Signal::Kill);
        }
        // Members reparented to us (if we are a subreaper) would stay zombies otherwise.
        shared.tree.reap();
        if started.elapsed() > Duration::from_secs(30) {
            tracing::warn!(
                pgid = shared.tree.id(),
                "process group still alive after 30 s of SIGKILL"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> SupervisorSpec {
        let mut spec = SupervisorSpec::new("/bin/sh");
        spec.args = vec!["-c".into(), script.into()];
        spec.grace = Duration::from_millis(300);
        spec
    }

    #[tokio::test]
    async fn output_line_readiness_then_stop_is_stopped() {
        let mut spec = sh("echo starting; echo READY now; exec sleep 30");
        spec.readiness = Readiness::OutputLine("READY".into());
        let child = Supervised::spawn(spec).unwrap();
        child.ready().await.unwrap();
        let report = child.stop(None).await;
        assert_eq!(ExitKind::Stopped, report.kind);
        assert_eq!(Some(15), report.signal);
        assert!(
            report.output_tail.contains("starting\nREADY now\n"),
            "{report:?}"
        );
        assert_eq!(report, child.stop(None).await, "idempotent");
    }

    #[tokio::test]
    async fn exit_before_ready_is_failed_to_start_with_output() {
        let mut spec = sh("echo 'fatal: no model' >&2; exit 3");
        spec.readiness = Readiness::OutputLine("READY".into());
        let child = Supervised::spawn(spec).unwrap();
        match child.ready().await {
            Err(NotReady::Exited(report)) => {
                assert_eq!(ExitKind::FailedToStart, report.kind);
                assert_eq!(Some(3), report.code);
                assert!(report.output_tail.contains("fatal: no model"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn exit_after_ready_is_crashed() {
        let child = Supervised::spawn(sh("sleep 0.05; exit 7")).unwrap();
        child.ready().await.unwrap();
        let report = child.exited().await;
        assert_eq!((ExitKind::Crashed, Some(7)), (report.kind, report.code));
    }

    #[tokio::test]
    async fn start_timeout_kills_the_child() {
        let mut spec = sh("exec sleep 30");
        spec.readiness = Readiness::OutputLine("never".into());
        spec.start_timeout = Duration::from_millis(100);
        let started = Instant::now();
        let child = Supervised::spawn(spec).unwrap();
        let pid = child.pid();
        assert!(matches!(child.ready().await, Err(NotReady::TimedOut(_))));
        assert_eq!(ExitKind::StartTimeout, child.exited().await.kind);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!platform::process_group_alive(pid), "killed, group gone");
    }

    #[tokio::test]
    async fn stop_takes_down_a_sigterm_ignoring_group_with_a_grandchild() {
        // The leader ignores SIGTERM and starts a grandchild that ignores it too.
        let child = Supervised::spawn(sh(
            "trap '' TERM; sh -c \"trap '' TERM; sleep 30\" & echo spawned; wait",
        ))
        .unwrap();
        let pgid = child.pid();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(platform::process_group_alive(pgid));
        let started = Instant::now();
        let report = child.stop(Some(Duration::from_millis(200))).await;
        assert_eq!(ExitKind::Stopped, report.kind);
        assert_eq!(Some(9), report.signal, "needed SIGKILL");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            !platform::process_group_alive(pgid),
            "no member of the group is left"
        );
    }

    #[tokio::test]
    async fn a_crash_takes_its_grandchildren_along() {
        let child = Supervised::spawn(sh("sleep 30 & sleep 0.1; exit 1")).unwrap();
        let pgid = child.pid();
        let report = child.exited().await;
        assert_eq!(ExitKind::Crashed, report.kind);
        assert!(!platform::process_group_alive(pgid));
    }

    #[tokio::test]
    async fn http_readiness_polls_until_2xx() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        // An in-process server that starts listening only after 200 ms, then answers 200.
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).await.unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let mut spec = sh("sleep 30");
        spec.readiness = Readiness::Http {
            url: format!("http://127.0.0.1:{port}/health"),
            bearer: None,
        };
        spec.start_timeout = Duration::from_secs(20);
        let started = Instant::now();
        let child = Supervised::spawn(spec).unwrap();
        child.ready().await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "ready before the server listened"
        );
        assert!(
            server.await.unwrap().starts_with("GET /health "),
            "probed the readiness path"
        );
        assert_eq!(
            ExitKind::Stopped,
            child.stop(Some(Duration::from_secs(2))).await.kind
        );
    }

    #[tokio::test]
    async fn spawn_failure_is_an_error() {
        let err = Supervised::spawn(SupervisorSpec::new("/nonexistent/qvac")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/qvac"));
    }

    /// The exit-kind rule (module docs) must not depend on scheduling: the same child, the same
    /// kind (and readiness outcome), `times` in a row and then `times` at once.
    async fn kinds_of(
        times: usize,
        make: impl Fn() -> SupervisorSpec,
    ) -> Vec<(bool, ExitKind, Option<i32>)> {
        async fn one(spec: SupervisorSpec) -> (bool, ExitKind, Option<i32>) {
            let child = Supervised::spawn(spec).unwrap();
            let ready = child.ready().await.is_ok();
            let report = child.exited().await;
            (ready, report.kind, report.code)
        }
        let mut kinds = Vec::new();
        for _ in 0..times {
            kinds.push(one(make()).await);
        }
        let mut at_once = tokio::task::JoinSet::new();
        for _ in 0..times {
            at_once.spawn(one(make()));
        }
        kinds.extend(at_once.join_all().await);
        kinds
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exit_right_after_spawn_is_ready_then_crashed_50_in_a_row_and_50_at_once() {
        let kinds = kinds_of(50, || sh("exit 5")).await;
        assert_eq!(vec![(true, ExitKind::Crashed, Some(5)); 100], kinds);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exit_right_after_the_ready_line_is_crashed_50_in_a_row_and_50_at_once() {
        let kinds = kinds_of(50, || {
            let mut spec = sh("echo READY; exit 5");
            spec.readiness = Readiness::OutputLine("READY".into());
            spec
        })
        .await;
        assert_eq!(vec![(true, ExitKind::Crashed, Some(5)); 100], kinds);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exit_without_the_ready_line_is_failed_to_start_50_in_a_row_and_50_at_once() {
        let kinds = kinds_of(50, || {
            let mut spec = sh("echo booting; exit 5");
            spec.readiness = Readiness::OutputLine("READY".into());
            spec
        })
        .await;
        assert_eq!(vec![(false, ExitKind::FailedToStart, Some(5)); 100], kinds);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exit_right_after_answering_http_is_crashed_20_in_a_row_and_20_at_once() {
        if std::process::Command::new("python3")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("skipped: no python3");
            return;
        }
        // 40 distinct free ports: held together while chosen, so no two children share one.
        let listeners: Vec<_> = (0..40)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports = Mutex::new(
            listeners
                .iter()
                .map(|l| l.local_addr().unwrap().port())
                .collect::<Vec<_>>(),
        );
        drop(listeners);
        // A child that answers one readiness probe 2xx and exits at once: it was ready.
        let kinds = kinds_of(20, || {
            let port = ports.lock().unwrap().pop().unwrap();
            let mut spec = sh(&format!(
                "exec python3 -c 'import socket;s=socket.socket();\
                 s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);\
                 s.bind((\"127.0.0.1\",{port}));s.listen();c,_=s.accept();c.recv(4096);\
                 c.sendall(b\"HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n\");\
                 c.close();raise SystemExit(5)'"
            ));
            spec.readiness = Readiness::Http {
                url: format!("http://127.0.0.1:{port}/health"),
                bearer: None,
            };
            spec.start_timeout = Duration::from_secs(20);
            spec
        })
        .await;
        assert_eq!(vec![(true, ExitKind::Crashed, Some(5)); 40], kinds);
    }

    #[tokio::test]
    async fn a_command_that_cannot_be_executed_is_a_spawn_error_not_an_exit() {
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("serve");
        std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
        for command in [dir.path().join("missing"), not_executable] {
            let err = Supervised::spawn(SupervisorSpec::new(&command)).unwrap_err();
            assert!(
                err.to_string().contains(&command.display().to_string()),
                "{err}"
            );
        }
        let mut spec = sh("exit 0");
        spec.cwd = Some(dir.path().join("no-such-dir"));
        assert!(Supervised::spawn(spec).is_err(), "a bad cwd fails the exec");
    }
}
