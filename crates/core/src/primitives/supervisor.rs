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
    /// Ready as soon as it is spawned.
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

/// Why the child is gone, by our intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// We asked it to stop.
    Stopped,
    /// It exited on its own after becoming ready.
    Crashed,
    /// It exited on its own before becoming ready.
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

#[derive(Debug)]
struct Shared {
    tree: platform::ProcessTree,
    tail: Mutex<OutputTail>,
    stop_requested: AtomicBool,
    timed_out: AtomicBool,
    ready: AtomicBool,
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
            timed_out: AtomicBool::new(false),
            ready: AtomicBool::new(false),
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

        let (exit_tx, exit_rx) = watch::channel(None);
        let watcher_shared = shared.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            // Take the group down with the leader, and wait until no member is left.
            reap_group(&watcher_shared).await;
            for reader in readers {
                let _ = tokio::time::timeout(Duration::from_millis(200), reader).await;
            }
            let (code, signal) = match &status {
                Ok(status) => (status.code(), platform::exit_signal(status)),
                Err(_) => (None, None),
            };
            let kind = if watcher_shared.timed_out.load(Ordering::SeqCst) {
                ExitKind::StartTimeout
            } else if watcher_shared.stop_requested.load(Ordering::SeqCst) {
                ExitKind::Stopped
            } else if watcher_shared.ready.load(Ordering::SeqCst) {
                ExitKind::Crashed
            } else {
                ExitKind::FailedToStart
            };
            let _ = exit_tx.send(Some(ExitReport {
                kind,
                code,
                signal,
                output_tail: watcher_shared.tail(),
            }));
        });

        let (ready_tx, ready_rx) = watch::channel(None);
        let deadline = Instant::now() + spec.start_timeout;
        let ready_shared = shared.clone();
        let mut exit_for_ready = exit_rx.clone();
        let readiness = spec.readiness.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                ready = wait_ready(readiness, line_rx) => ready,
                _ = tokio::time::sleep_until(deadline.into()) => false,
                _ = exit_for_ready.wait_for(Option::is_some) => false,
            };
            if outcome && exit_for_ready.borrow().is_none() {
                ready_shared.ready.store(true, Ordering::SeqCst);
                let _ = ready_tx.send(Some(Ok(())));
                return;
            }
            if exit_for_ready.borrow().is_none()
                && !ready_shared.stop_requested.load(Ordering::SeqCst)
            {
                // Timed out: kill it at once, so the report comes within the timeout + a little.
                ready_shared.timed_out.store(true, Ordering::SeqCst);
                ready_shared.signal_group(Signal::Kill);
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

async fn wait_ready(readiness: Readiness, mut line_seen: watch::Receiver<bool>) -> bool {
    match readiness {
        Readiness::Spawned => true,
        Readiness::OutputLine(_) => {
            if line_seen.wait_for(|seen| *seen).await.is_ok() {
                true
            } else {
                // Output ended without the line: the child is exiting; the exit decides.
                std::future::pending().await
            }
        }
        Readiness::Http { url, bearer } => loop {
            // A short, steady interval: the port opens when the serve is ready, and every
            // millisecond here is start-up overhead the user waits for.
            match http::probe(&url, bearer.as_deref(), Duration::from_secs(2)).await {
                Ok(status) if (200..300).contains(&status) => return true,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
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
}
