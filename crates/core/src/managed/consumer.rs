//! The consumer side of a managed serve: attach to the live serve for a fleet, or start one.
//!
//! Fast path (the common, warm case): read and trust-check the record, write our marker, re-read
//! the record (the runner may have begun reaping), done — no process is spawned and no lock taken.
//! Slow path: marker first (so a runner never reaps in the gap), then the spawn lock; the holder
//! re-checks, starts a detached runner and waits for its record or its `<key>.error`; everyone
//! else waits for the record and re-contends for the lock if the holder died.
//!
//! One start per failure: a consumer notes which failure `<key>.error` held when it began to
//! wait, and any other failure that appears (a start it waited on, named by its attempt id)
//! ends its wait with that error before it would take the lock and start again. A consumer
//! arriving after a failure starts a fresh attempt.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dir_watch::DirWatch;
use crate::launch::{launch_runner, RunnerParams};
use crate::managed_options::ManagedOptions;
use crate::managed_options::CRASH_LOOP_WINDOW;
use crate::pid_lock::PidLockError;
use crate::process::ProcessIdentity;
use crate::registry::{
    ConsumerMarker, CrashLoop, RecordState, Registry, RegistryError, ServeRecord, StartFailure,
};
use crate::serve_start::check_serve_bin_path;

/// Where and how to start runners.
#[derive(Clone, Debug)]
pub struct RunnerLaunch {
    /// The `qvac-managed` binary.
    pub runner_path: PathBuf,
    /// Where to look for `node_modules/@qvac/cli`.
    pub project_dir: Option<String>,
    /// The JS runtime to run `@qvac/cli` with.
    pub node_path: Option<String>,
    /// Stop grace handed to the runner (default 5 s).
    pub grace_ms: Option<f64>,
    /// The environment the runner (and so the serve) gets; `None` = this process's. JS runtimes
    /// pass `process.env`, which in Bun is not the C environment.
    pub env: Option<Vec<(String, String)>>,
}

/// A serve this process is attached to. Dropping it removes the marker.
#[derive(Debug)]
pub struct Attachment {
    pub fleet_key: String,
    pub record: ServeRecord,
    pub marker: ConsumerMarker,
    /// True when this call started the runner.
    pub spawned: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// The runner (ours or another consumer's) reported why the serve did not start.
    #[error("{}{}", .0.message, tail_suffix(&.0.output_tail))]
    Start(Box<StartFailure>),
    #[error("qvac serve did not become healthy at {base_url} within {timeout_ms}ms. Cold model downloads can be slow — raise `serveStartTimeout` if the model is large.")]
    Timeout { base_url: String, timeout_ms: u64 },
    #[error("cannot start the runner {}: {reason}. Set QVAC_MANAGED_RUNNER to a qvac-managed binary, or reinstall the package for this platform.", path.display())]
    Runner { path: PathBuf, reason: String },
    #[error("{} is not a record this process can trust ({reason}) while {} holds the spawn lock, and it was not restored. Run `qvac-managed stop {fleet_key}`{}, then retry.", path.display(), holder.map_or("another process".to_owned(), |pid| format!("pid {pid}")), holder.map_or(String::new(), |pid| format!(" (or `kill {pid}`)")))]
    UntrustedRecord {
        path: PathBuf,
        reason: String,
        /// The spawn lock's holder (normally the fleet's runner).
        holder: Option<i32>,
        fleet_key: String,
    },
    /// The fleet's serve exited unexpectedly after becoming healthy more than `serveMaxRestarts`
    /// times within the window: no start until enough of those exits age out of it.
    #[error("the managed serve of fleet {fleet_key} crashed {} times within {} s (serveMaxRestarts is {max_restarts}); it is not started again for {} s. Fix what crashes it (its output is below; `qvac-managed logs {fleet_key}` has more), then run `qvac-managed reset {fleet_key}` to allow a start at once.{}", .crash_loop.restarts, .crash_loop.window.as_secs(), .crash_loop.retry_after.as_secs_f64().ceil() as u64, tail_suffix(&.crash_loop.output_tail))]
    CrashLoop {
        fleet_key: String,
        max_restarts: u32,
        crash_loop: CrashLoop,
    },
    /// The start does not fit the memory budget, even with every idle fleet evicted.
    #[error("{0}")]
    MemoryBudget(Box<crate::budget::BudgetRefusal>),
    /// An option read here rather than by `validate` (the budget's environment variable, a
    /// percentage where physical memory is unknown).
    #[error(transparent)]
    Invalid(#[from] crate::options::InvalidOption),
    /// The caller gave up (its AbortSignal fired) before the attach completed. A start that
    /// other consumers wait on is not cancelled: the runner, once launched, goes on.
    #[error("the attach was aborted")]
    Aborted,
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- serve output ---\n{}", tail.trim_end())
    }
}

impl EnsureError {
    pub fn code(&self) -> String {
        match self {
            EnsureError::Start(f) => f.code.clone(),
            EnsureError::Timeout { .. } => "SERVE_START_TIMEOUT".into(),
            EnsureError::Runner { .. } => "SERVE_SPAWN_FAILED".into(),
            EnsureError::UntrustedRecord { .. } => "SERVE_RECORD_UNTRUSTED".into(),
            EnsureError::CrashLoop { .. } => "SERVE_CRASH_LOOP".into(),
            EnsureError::MemoryBudget(_) => "SERVE_MEMORY_BUDGET".into(),
            EnsureError::Invalid(e) => e.code().into(),
            EnsureError::Aborted => "ABORT_ERR".into(),
            EnsureError::Registry(e) => e.code().into(),
        }
    }

    /// Exit code and signal name of a serve that exited before becoming healthy.
    pub fn exit_status(&self) -> Option<(Option<i32>, Option<String>)> {
        match self {
            EnsureError::Start(f) if f.code == "SERVE_EXITED" => {
                Some((f.exit_code, f.signal.clone()))
            }
            _ => None,
        }
    }

    pub fn output_tail(&self) -> Option<&str> {
        match self {
            EnsureError::Start(f) if !f.output_tail.is_empty() => Some(&f.output_tail),
            EnsureError::CrashLoop { crash_loop, .. } if !crash_loop.output_tail.is_empty() => {
                Some(&crash_loop.output_tail)
            }
            _ => None,
        }
    }
}

/// The fleet key this provider registers under: the shared key, or a private one
/// (`<key>-priv-<pid>-<hex>`, as upstream) when `reuse` is off.
pub fn fleet_key_for(options: &ManagedOptions) -> String {
    let shared = options.fleet_key();
    if options.reuse {
        shared
    } else {
        format!(
            "{shared}-priv-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        )
    }
}

/// Attaches to the fleet's serve, starting it if needed. `fleet_key` comes from
/// [`fleet_key_for`]; a private key always starts its own serve (idle timeout 0). `avoid` is a
/// serve pid the caller just failed to reach (connection refused): it is never returned again;
/// the call waits for its runner to notice and replace it.
///
/// Cancelling `cancel` ends the call with [`EnsureError::Aborted`]: the future is dropped, so
/// our marker and (before the runner took it over) the spawn lock are released; a runner
/// already launched goes on, so consumers waiting on that start still get it.
pub async fn ensure_serve(
    registry: &Registry,
    options: &ManagedOptions,
    fleet_key: &str,
    launch: &RunnerLaunch,
    avoid: Option<i32>,
    cancel: &crate::retry::CancelToken,
) -> Result<Attachment, EnsureError> {
    if cancel.is_cancelled() {
        return Err(EnsureError::Aborted);
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(EnsureError::Aborted),
        attached = ensure_serve_uncancelled(registry, options, fleet_key, launch, avoid) => attached,
    }
}

async fn ensure_serve_uncancelled(
    registry: &Registry,
    options: &ManagedOptions,
    fleet_key: &str,
    launch: &RunnerLaunch,
    avoid: Option<i32>,
) -> Result<Attachment, EnsureError> {
    // A serveBinPath that does not exist is bad input: refused before anything is written.
    check_serve_bin_path(options.serve_bin_path.as_deref())
        .map_err(|err| EnsureError::Start(Box::new(err.failure())))?;
    let limits = MemoryLimits::of(options, launch)?;
    registry.ensure_dir()?;
    if options.reuse && avoid.is_none() {
        if let Some(attached) = try_attach(registry, fleet_key)? {
            pin(registry, options, fleet_key);
            return Ok(attached);
        }
    }
    // Off the warm path, as upstream does on every createQvac: stop orphaned serves (their runner
    // is gone) that answer as ours, and drop what provably dead serves left.
    if let Err(err) = registry.sweep().await {
        tracing::warn!(%err, "sweeping the registry before a start failed");
    }
    let marker = registry.add_consumer(fleet_key)?;
    let result = attach_or_spawn(registry, options, fleet_key, launch, marker, avoid, limits).await;
    if result.is_ok() {
        pin(registry, options, fleet_key);
    }
    if result.is_err() {
        // Our marker is gone with the error; an empty consumers dir would be a leftover.
        let _ = std::fs::remove_dir(registry.consumers_dir(fleet_key));
    }
    result
}

async fn attach_or_spawn(
    registry: &Registry,
    options: &ManagedOptions,
    fleet_key: &str,
    launch: &RunnerLaunch,
    marker: ConsumerMarker,
    avoid: Option<i32>,
    limits: MemoryLimits,
) -> Result<Attachment, EnsureError> {
    // Armed before the first look, so no change between a look and the wait is missed.
    let mut wakeups = Wakeups::new(registry, fleet_key);
    // The failure already there when we began: older than any start we wait on.
    let seen_failure = failure_attempt(registry, fleet_key)?;
    let deadline = start_deadline(options);
    // When we began waiting on another process's start (wall clock, as `<key>.exits` records).
    let mut waiting_since: Option<u64> = None;
    let mut untrusted_since: Option<Instant> = None;
    loop {
        if let Some(failure) = fresh_failure(registry, fleet_key, &seen_failure)? {
            return Err(EnsureError::Start(Box::new(failure)));
        }
        let lock_state = registry.try_spawn_lock(fleet_key);
        // A start that failed released the lock after writing its failure: look again now
        // that we hold it, so its waiters never start it a second time.
        if let Some(failure) = fresh_failure(registry, fleet_key, &seen_failure)? {
            return Err(EnsureError::Start(Box::new(failure)));
        }
        let (holder, stealable_at) = match lock_state {
            Ok(lock) => {
                let state = registry.read_record(fleet_key)?;
                // Another machine's record (a shared network home) cannot be checked or
                // replaced from here: say so now, before a start that could only fail.
                if let RecordState::Untrusted(record, _) = &state {
                    if let Some(machine) = record.other_machine() {
                        return Err(EnsureError::Start(Box::new(
                            registry.shared_with_other_machine(fleet_key, machine),
                        )));
                    }
                }
                if let Some(record) = usable(state, avoid).await {
                    return Ok(attachment(fleet_key, record, marker, false));
                }
                // The start we waited on became healthy and ended before we could use it
                // (crashed, hung, or stopped): its error is ours too; none of its waiters starts
                // it again (one start per failure).
                if let Some(failure) = waited_start_ended(registry, fleet_key, waiting_since) {
                    return Err(EnsureError::Start(Box::new(failure)));
                }
                // Decided under the spawn lock, so every waiter of this start sees it too.
                if let Some(crash_loop) =
                    registry.crash_loop(fleet_key, options.serve_max_restarts, CRASH_LOOP_WINDOW)
                {
                    return Err(EnsureError::CrashLoop {
                        fleet_key: fleet_key.to_owned(),
                        max_restarts: options.serve_max_restarts,
                        crash_loop,
                    });
                }
                // Room under the memory budget, decided while we hold the spawn lock.
                if let Some(budget) = limits.budget {
                    match crate::budget::admit(registry, fleet_key, &options.models, budget).await {
                        Ok(()) => {}
                        Err(crate::budget::AdmitError::Refused(refusal)) => {
                            return Err(EnsureError::MemoryBudget(Box::new(refusal)));
                        }
                        Err(crate::budget::AdmitError::Registry(err)) => return Err(err.into()),
                    }
                }
                let result =
                    spawn_and_wait(registry, options, fleet_key, launch, limits, deadline).await;
                drop(lock);
                if result.is_err() {
                    crate::budget::release_reservation(registry, fleet_key);
                    // A runner that failed fast may have been handed the lock just before it
                    // exited; a lock naming a dead process is ours to clear now.
                    let _ = crate::pid_lock::PidLock::clear_stale(&registry.lock_path(fleet_key));
                }
                return result.map(|record| attachment(fleet_key, record, marker, true));
            }
            Err(RegistryError::Lock(PidLockError::Held(held))) => {
                waiting_since.get_or_insert_with(crate::registry::now_ms);
                (held.holder.pid(), held.holder.stealable_in())
            }
            Err(other) => return Err(other.into()),
        };
        // Another process holds the spawn lock: a consumer starting the serve, or the runner that
        // owns it for its whole life. Wait for what we need, woken by it.
        match registry.read_record(fleet_key)? {
            // Its runner holds the lock for the serve's whole life: a usable record is never
            // waited on (the serve to avoid counts only while it still refuses connections).
            RecordState::Trusted(record) => {
                if let Some(record) = usable(RecordState::Trusted(record), avoid).await {
                    return Ok(attachment(fleet_key, record, marker, false));
                }
                untrusted_since = None;
            }
            RecordState::Corrupt(reason) | RecordState::Untrusted(_, reason) => {
                // A live runner puts its true record back within milliseconds; one that does not
                // is not coming back by itself.
                let since = *untrusted_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNTRUSTED_RECORD_GRACE {
                    return Err(EnsureError::UntrustedRecord {
                        path: registry.record_path(fleet_key),
                        reason,
                        holder,
                        fleet_key: fleet_key.to_owned(),
                    });
                }
            }
            _ => untrusted_since = None,
        }
        if Instant::now() >= deadline {
            return Err(EnsureError::Timeout {
                base_url: match holder {
                    Some(pid) => format!("the serve another process (pid {pid}) is starting"),
                    None => pending_base_url(options),
                },
                timeout_ms: options.serve_start_timeout.as_millis() as u64,
            });
        }
        // A lock naming no holder (empty or damaged) has no pidfd and may see no event: wake
        // when it turns stealable, as upstream takes such a lock over once it is old enough.
        let wake_at = [
            untrusted_since.map(|since| since + UNTRUSTED_RECORD_GRACE),
            stealable_at.and_then(|after| Instant::now().checked_add(after)),
            Some(deadline),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(deadline);
        wakeups.next(holder, wake_at).await;
    }
}

/// The memory limits of a start of this provider, in bytes, resolved once (before anything is
/// written: a bad value is INVALID_OPTION).
#[derive(Clone, Copy, Debug)]
struct MemoryLimits {
    /// See [`memory_budget`].
    budget: Option<u64>,
    /// `serveMaxMemory`, handed to the runner.
    ceiling: Option<u64>,
}

impl MemoryLimits {
    fn of(options: &ManagedOptions, launch: &RunnerLaunch) -> Result<MemoryLimits, EnsureError> {
        Ok(MemoryLimits {
            budget: memory_budget(options, launch)?,
            ceiling: options
                .serve_max_memory
                .map(|size| resolve_size(size, "serveMaxMemory"))
                .transpose()?,
        })
    }
}

/// The budget a start of this provider is decided under, in bytes: `memoryBudget`, else
/// `QVAC_MANAGED_MEMORY_BUDGET` from the environment the runner gets; `None` (no budget) when
/// neither is set.
fn memory_budget(
    options: &ManagedOptions,
    launch: &RunnerLaunch,
) -> Result<Option<u64>, EnsureError> {
    const ENV: &str = "QVAC_MANAGED_MEMORY_BUDGET";
    let (size, option) = match options.memory_budget {
        Some(size) => (size, "memoryBudget"),
        None => {
            let value = match &launch.env {
                Some(env) => env.iter().find(|(k, _)| k == ENV).map(|(_, v)| v.clone()),
                None => std::env::var(ENV).ok(),
            };
            let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
                return Ok(None);
            };
            let size = crate::memory_size::MemorySize::parse(&value).ok_or_else(|| {
                crate::options::InvalidOption::new(
                    ENV,
                    crate::js_value::json_string(&value),
                    crate::memory_size::MEMORY_SIZE_EXPECTED,
                )
            })?;
            (size, ENV)
        }
    };
    resolve_size(size, option).map(Some)
}

/// A size in bytes; a percentage needs the machine's physical memory, and must come to 1 MiB
/// or more.
fn resolve_size(size: crate::memory_size::MemorySize, option: &str) -> Result<u64, EnsureError> {
    let invalid = |expected| -> EnsureError {
        crate::options::InvalidOption::new(option, format!("{size}"), expected).into()
    };
    match size.bytes(crate::platform::physical_memory_bytes()) {
        None => Err(invalid(
            "a size in bytes or with a unit: this OS does not say how much physical memory it has",
        )),
        Some(bytes) if bytes < crate::memory_size::MIN_BYTES => Err(invalid(
            "a percentage of physical memory that comes to 1 MiB or more",
        )),
        Some(bytes) => Ok(bytes),
    }
}

/// `pin: true` pins the fleet (`<key>.pin`) once attached.
fn pin(registry: &Registry, options: &ManagedOptions, key: &str) {
    if options.pin && !registry.is_pinned(key) {
        if let Err(err) = registry.set_pinned(key, true) {
            tracing::warn!(%err, "cannot pin the fleet");
        }
    }
}

/// The URL a serve being started will have, as far as it is known.
fn pending_base_url(options: &ManagedOptions) -> String {
    match options.serve_port {
        Some(port) => format!("http://{}:{port}/v1", options.serve_host),
        None => format!("{} (its port was not chosen yet)", options.serve_host),
    }
}

/// How long a consumer waits for a live runner to restore a record that is not trusted.
const UNTRUSTED_RECORD_GRACE: Duration = Duration::from_secs(2);

/// The failure of a start this consumer waited on (since `waiting_since`) whose serve became
/// healthy while it waited and ended before it could be used: not by an idle reap, which is no
/// failure, nor by an eviction (the consumer then starts afresh).
fn waited_start_ended(
    registry: &Registry,
    key: &str,
    waiting_since: Option<u64>,
) -> Option<StartFailure> {
    let since = waiting_since?;
    registry
        .read_exits(key)
        .into_iter()
        .rev()
        .find(|e| {
            e.healthy_at.is_some_and(|at| at >= since)
                && !matches!(
                    e.kind,
                    crate::registry::ExitKind::Reaped | crate::registry::ExitKind::Evicted
                )
        })
        .map(|e| e.as_start_failure())
}

/// The start deadline: `serveStartTimeout` plus a margin for the runner's own start (the runner
/// enforces the timeout itself; this is the backstop). Durations are bounded, so it cannot overflow.
fn start_deadline(options: &ManagedOptions) -> Instant {
    let now = Instant::now();
    now.checked_add(options.serve_start_timeout + Duration::from_secs(10))
        .unwrap_or(now)
}

/// A trusted record, unless it is the serve the caller just failed to reach (`avoid`) and that
/// serve still refuses connections. One that accepts again is usable: the refusal was passing,
/// or the caller named a serve that was not the one its request went to.
async fn usable(state: RecordState, avoid: Option<i32>) -> Option<ServeRecord> {
    match state {
        RecordState::Trusted(record) if Some(record.serve_pid) != avoid => Some(*record),
        RecordState::Trusted(record) => {
            let accepts = crate::http::accepts_connections(&record.host, record.port).await;
            (accepts == Some(true)).then_some(*record)
        }
        _ => None,
    }
}

/// What wakes a waiting consumer: a change to the fleet's record, start-failure file or spawn
/// lock (inotify), or the exit of the process it waits on (pidfd). A short poll stands in only
/// where those are missing.
struct Wakeups {
    dir: DirWatch,
}

impl Wakeups {
    fn new(registry: &Registry, key: &str) -> Wakeups {
        let names = [
            format!("{key}.json"),
            format!("{key}.error"),
            format!("{key}.lock"),
        ];
        Wakeups {
            dir: DirWatch::new(registry.dir(), &names, FALLBACK_POLL),
        }
    }

    /// Returns on the next relevant change, when `process` exits, or at `until`.
    async fn next(&mut self, process: Option<i32>, until: Instant) {
        let exit = crate::process::exited(process);
        tokio::select! {
            _ = self.dir.changed() => {}
            _ = exit => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

/// Where inotify or pidfd is missing, how often a waiting consumer looks again.
const FALLBACK_POLL: Duration = Duration::from_millis(50);

fn attachment(
    fleet_key: &str,
    record: ServeRecord,
    marker: ConsumerMarker,
    spawned: bool,
) -> Attachment {
    Attachment {
        fleet_key: fleet_key.to_owned(),
        record,
        marker,
        spawned,
    }
}

/// The warm path: trusted record, marker, and a second look at the record.
fn try_attach(registry: &Registry, fleet_key: &str) -> Result<Option<Attachment>, EnsureError> {
    let RecordState::Trusted(record) = registry.read_record(fleet_key)? else {
        return Ok(None);
    };
    let mut marker = registry.add_consumer(fleet_key)?;
    match registry.read_record(fleet_key)? {
        RecordState::Trusted(again) if again.serve_pid == record.serve_pid => {
            Ok(Some(attachment(fleet_key, *again, marker, false)))
        }
        _ => {
            // The runner began reaping between our two reads; take the slow path.
            marker.remove();
            Ok(None)
        }
    }
}

/// The attempt `<key>.error` names now, if there is one.
fn failure_attempt(registry: &Registry, key: &str) -> Result<Option<String>, EnsureError> {
    Ok(registry
        .read_start_failure(key)?
        .and_then(|failure| failure.attempt))
}

/// A start failure other than the one `seen` when the wait began: a start we waited on failed.
fn fresh_failure(
    registry: &Registry,
    key: &str,
    seen: &Option<String>,
) -> Result<Option<StartFailure>, EnsureError> {
    Ok(registry
        .read_start_failure(key)?
        .filter(|failure| failure.attempt != *seen))
}

async fn spawn_and_wait(
    registry: &Registry,
    options: &ManagedOptions,
    fleet_key: &str,
    launch: &RunnerLaunch,
    limits: MemoryLimits,
    deadline: Instant,
) -> Result<ServeRecord, EnsureError> {
    // Armed before the runner starts, so its record or failure cannot slip past the wait.
    let mut wakeups = Wakeups::new(registry, fleet_key);
    // The last failure stays a moment, for consumers that waited on the attempt that wrote it
    // (woken by inotify, they read it within milliseconds), then goes: upstream 0.7.0 waiters
    // return at once while any `<key>.error` exists and would retry without a pause meanwhile.
    let mut old_failure = registry
        .start_failure_file(fleet_key)
        .map(|file| (file, Instant::now() + OLD_FAILURE_GRACE));
    let attempt = format!("{}.{:016x}", std::process::id(), fastrand::u64(..));
    let mut api_key = [0u8; 32];
    getrandom::fill(&mut api_key).map_err(|e| EnsureError::Runner {
        path: launch.runner_path.clone(),
        reason: format!("no randomness for the API key: {e}"),
    })?;
    let params = RunnerParams {
        fleet_key: fleet_key.to_owned(),
        api_key: base64url(&api_key),
        config_json: options.serve_config().to_json().unwrap_or_default(),
        models: options.models.iter().map(|m| m.name.clone()).collect(),
        host: options.serve_host.clone(),
        port: options.serve_port,
        idle_timeout_ms: if options.reuse {
            options.serve_idle_timeout.as_secs_f64() * 1000.0
        } else {
            0.0
        },
        start_timeout_ms: options.serve_start_timeout.as_secs_f64() * 1000.0,
        grace_ms: launch.grace_ms,
        serve_bin_path: options.serve_bin_path.clone(),
        project_dir: launch.project_dir.clone(),
        node_path: launch.node_path.clone(),
        registry_dir: registry.dir().display().to_string(),
        attempt: attempt.clone(),
        launcher: Some(crate::process::ProcessIdentity::current().to_record()),
        hang_timeout_ms: options.serve_hang_timeout.as_secs_f64() * 1000.0,
        idle_counts_connections: options.serve_idle_counts_connections,
        max_memory_bytes: limits.ceiling,
    };
    let params_path = params.write(registry).map_err(|e| EnsureError::Runner {
        path: launch.runner_path.clone(),
        reason: format!("cannot write its parameters: {e}"),
    })?;
    let runner = launch_runner(
        &launch.runner_path,
        &params_path,
        launch.env.as_deref(),
        options.serve_start_timeout,
    )
    .await;
    let runner_pid = match runner {
        Ok(pid) => pid,
        Err(reason) => {
            let _ = std::fs::remove_file(&params_path);
            return Err(EnsureError::Runner {
                path: launch.runner_path.clone(),
                reason,
            });
        }
    };
    let runner_identity = ProcessIdentity::of(runner_pid);
    // The runner owns the start from here: it takes the spawn lock over from us (under the
    // directory guard, while it still names us, or if we let go of it) before it starts the
    // serve, so the lock always names a live process and nobody starts a second serve beside it.
    let own_failure = || -> Result<Option<StartFailure>, EnsureError> {
        Ok(registry
            .read_start_failure(fleet_key)?
            .filter(|failure| failure.attempt.as_deref() == Some(attempt.as_str())))
    };
    loop {
        if let RecordState::Trusted(record) = registry.read_record(fleet_key)? {
            return Ok(*record);
        }
        if let Some(failure) = own_failure()? {
            // The runner exits right after writing it; once it is gone, the spawn lock handed to
            // it is provably stale and the caller clears it, so no lock outlives the failure.
            if let Some(runner) = &runner_identity {
                wait_until_gone(runner, Duration::from_secs(2)).await;
            }
            return Err(EnsureError::Start(Box::new(failure)));
        }
        let runner_gone = runner_identity
            .as_ref()
            .is_none_or(|id| id.liveness().is_provably_dead());
        if runner_gone {
            // It may have published or failed just before exiting: look once more.
            if let RecordState::Trusted(record) = registry.read_record(fleet_key)? {
                return Ok(*record);
            }
            if let Some(failure) = own_failure()? {
                return Err(EnsureError::Start(Box::new(failure)));
            }
            // Its serve became healthy and exited before we could use it: the runner recorded
            // how (exit status, output), as for any crash.
            if let Some(exit) = registry
                .read_exits(fleet_key)
                .into_iter()
                .rev()
                .find(|e| e.attempt.as_deref() == Some(attempt.as_str()))
            {
                return Err(EnsureError::Start(Box::new(exit.as_start_failure())));
            }
            return Err(EnsureError::Runner {
                path: launch.runner_path.clone(),
                reason: format!("runner pid {runner_pid} exited without publishing the serve or an error; see {}", registry.log_path(fleet_key).display()),
            });
        }
        if Instant::now() >= deadline {
            // The runner enforces the start timeout itself; this is the backstop.
            if let Some(runner) = &runner_identity {
                runner.signal(crate::platform::Signal::Term);
            }
            return Err(EnsureError::Timeout {
                base_url: pending_base_url(options),
                timeout_ms: options.serve_start_timeout.as_millis() as u64,
            });
        }
        let until = old_failure.map_or(deadline, |(_, at)| at.min(deadline));
        wakeups.next(Some(runner_pid), until).await;
        if let Some((file, at)) = old_failure {
            if Instant::now() >= at {
                registry.clear_start_failure_file(fleet_key, file);
                old_failure = None;
            }
        }
    }
}

/// How long a new start leaves the previous start's failure in place (see `spawn_and_wait`).
const OLD_FAILURE_GRACE: Duration = Duration::from_millis(500);

/// Waits (bounded) for `process` to be provably gone.
async fn wait_until_gone(process: &ProcessIdentity, bound: Duration) {
    let until = Instant::now() + bound;
    while Instant::now() < until && !process.liveness().is_provably_dead() {
        tokio::select! {
            _ = crate::process::exited(Some(process.pid)) => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

/// Unpadded base64url, as Node's `randomBytes(32).toString('base64url')`.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_node() {
        // Buffer.from([0xfb, 0xff, 0x00, 0x10]).toString('base64url') === '-_8AEA'
        assert_eq!("-_8AEA", base64url(&[0xfb, 0xff, 0x00, 0x10]));
        assert_eq!(43, base64url(&[7u8; 32]).len());
    }
}
