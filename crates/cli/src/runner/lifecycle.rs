//! The runner's life with its serve: start it, publish the record once it is healthy, watch the
//! consumers by event, and reap the serve `idle` after the last consumer is gone. Whatever ends
//! it — idle reap, a crash of the serve, SIGTERM/SIGINT — it leaves nothing behind but, after a
//! crash, the markers of consumers that are still alive (so a respawned serve inherits them).
//!
//! Attach and reap race safely: the runner removes the record *before* its final consumer check
//! (under the spawn lock), and a consumer writes its marker *before* re-checking the record, so
//! at least one of them sees the other. A consumer arriving at the deadline either keeps the live
//! serve (the runner sees its marker and republishes) or starts a fresh one (it sees no record).
//!
//! While the serve runs, the runner also probes it (`GET /v1/models` with its key) as a hang
//! watchdog and writes the last probe to `<key>.health` for `ps`; once no consumer is left it
//! counts the TCP connections to the serve's port (a client on `baseURL` keeps it from being
//! idle); and it appends how the serve ended to `<key>.exits` (why a consumer's serve went away,
//! and the crash-loop cap).
//!
//! This lives in the binary, not in core, because it installs process-wide signal handlers.

use std::cell::Cell;
use std::fs;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use qvac_managed_core::consumer_watch::ConsumerWatch;
use qvac_managed_core::dir_watch::DirWatch;
use qvac_managed_core::http::{accepts_connections, probe_observed, ProbeError};
use qvac_managed_core::launch::RunnerParams;
use qvac_managed_core::options::millis_saturating;
use qvac_managed_core::pid_lock::{PidLock, PidLockError};
use qvac_managed_core::platform::{self, bound_address, serve_connections};
use qvac_managed_core::process::stop_adopted_children;
use qvac_managed_core::process::ProcessIdentity;
use qvac_managed_core::registry::{
    now_ms, Displaced, ExitKind, RecordState, Registry, RegistryError, ServeExit, ServeHealth,
    ServeMemory, ServeRecord, StartFailure, StartOutput, MEMORY_CEILING_GRACE,
    MEMORY_SAMPLE_INTERVAL,
};
use qvac_managed_core::retry::{CancelToken, RetryPolicy};
use qvac_managed_core::serve_start::{start_serve, StartedServe};
use qvac_managed_core::supervisor::ExitReport;

use crate::platform::StopRequests;

/// How a runner ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunnerExit {
    /// The last consumer left and the idle timeout passed.
    Reaped,
    /// The serve exited on its own; the next consumer request respawns it.
    ServeCrashed,
    /// The serve lived and accepted connections but answered no probe for `serveHangTimeout`;
    /// stopped, and handled as a crash.
    ServeHung,
    /// SIGTERM or SIGINT.
    Signalled,
    /// Idle, and evicted at a consumer's request to make room under a memory budget.
    Evicted,
    /// Its tree stayed above `serveMaxMemory` for `MEMORY_CEILING_GRACE`; stopped.
    OverMemory,
    /// The serve never became healthy; `<key>.error` says why.
    StartFailed,
    /// Another runner published this fleet first; ours stood down.
    Duplicate,
}

/// Runs one serve to the end. The caller has detached the process.
pub async fn run_serve(params: RunnerParams) -> RunnerExit {
    let registry = Registry::at(&params.registry_dir);
    let key = params.fleet_key.clone();
    let mut stop_requests = StopRequests::install().expect("signal handlers install");

    // The spawn lock is ours before anything starts: taken over from the consumer that launched
    // us while it still names that consumer, dead or alive. If it names anyone else, the
    // consumer died and another took the lock to start the fleet afresh: stand down at once.
    let lock_path = registry.lock_path(&key);
    // The runner's one handle on the spawn lock (when it has one): held for the serve's whole
    // life, used by the reap, released once when the serve is gone.
    let mut lock = match params
        .launcher
        .as_deref()
        .and_then(ProcessIdentity::parse_record)
    {
        Some(launcher) => match PidLock::take_over_from(&lock_path, &launcher, 0o600) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                tracing::warn!(
                    launcher = launcher.pid,
                    "the spawn lock no longer names the consumer that started us; another start owns the fleet"
                );
                return RunnerExit::Duplicate;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot take the spawn lock over; going on without it");
                None
            }
        },
        None => None,
    };
    // The serve's output while it starts, for the consumers waiting on it (download progress).
    let start_output = StartOutput::create(&registry, &key);
    let started = tokio::select! {
        started = start_serve(&params, Some(start_output.sink())) => started,
        _ = stop_requests.recv() => {
            start_output.finish();
            // Dropping the start stopped the serve's tree. Every consumer waiting on this start
            // gets the stop as its error (none starts it again), before the lock goes.
            let failure = registry.stopped_while_starting(&key, std::process::id() as i32);
            let _ = registry.write_start_failure(&key, &params.attempt_failure(failure));
            drop(lock);
            return RunnerExit::Signalled;
        }
    };
    start_output.finish();
    let StartedServe {
        serve,
        files,
        port,
        base_url,
    } = match started {
        Ok(started) => started,
        Err(err) => {
            tracing::warn!(code = err.code(), %err, "serve failed to start");
            let _ = registry.write_start_failure(&key, &params.attempt_failure(err.failure()));
            drop(lock);
            return RunnerExit::StartFailed;
        }
    };
    match registry.read_record(&key) {
        // Two runners can exist for one fleet only if a consumer died between starting ours and
        // handing it the spawn lock; the one that finds the other's live record stands down.
        Ok(RecordState::Trusted(other)) if other.runner_pid != std::process::id() as i32 => {
            tracing::warn!(
                other_runner = other.runner_pid,
                "another runner already serves this fleet; stopping ours"
            );
            serve.stop(None).await;
            drop(lock);
            return RunnerExit::Duplicate;
        }
        // Another runner's record that is not trusted. It never blocks the fleet, and the only
        // pointer to a serve that still runs is never lost: a serve proven ours is stopped, any
        // other record is moved aside (its process left alone) before ours replaces it.
        Ok(RecordState::Untrusted(old, _)) => {
            match registry.displace_record(&key, &old, params.grace()).await {
                Displaced::LiveRunner => {
                    tracing::warn!(
                        other_runner = old.runner_pid,
                        "a live runner owns this fleet's record; stopping ours"
                    );
                    serve.stop(None).await;
                    drop(lock);
                    return RunnerExit::Duplicate;
                }
                Displaced::OtherMachine(machine) => {
                    tracing::error!(%machine, "the record belongs to a serve on another machine sharing this registry");
                    serve.stop(None).await;
                    let failure =
                        params.attempt_failure(registry.shared_with_other_machine(&key, &machine));
                    let _ = registry.write_start_failure(&key, &failure);
                    drop(lock);
                    return RunnerExit::StartFailed;
                }
                Displaced::MovedAside(to) => tracing::warn!(
                    serve = old.serve_pid,
                    to = %to.display(),
                    "the record named a running serve that cannot be proven ours; moved it aside, left the process alone"
                ),
                Displaced::Stopped => tracing::warn!(
                    serve = old.serve_pid,
                    "stopped the orphaned serve of a dead runner before publishing"
                ),
                Displaced::Gone => {}
            }
            if let Some(dir) = registry.clear_dead_serve_files(&old) {
                tracing::info!(dir = %dir.display(), "removed a dead serve's private files");
            }
        }
        _ => {}
    }
    // The runner owns its record: any change to `<key>.json` wakes it to put the true one back.
    // Armed before publishing, so a change right after it cannot slip past.
    // An eviction request (`<key>.evict`) left from an earlier serve of this fleet is not ours.
    registry.clear_eviction(&key);
    let mut record_watch = DirWatch::new(
        registry.dir(),
        &[format!("{key}.json"), format!("{key}.evict")],
        Duration::from_secs(1),
    );
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
        started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        idle_timeout_ms: params.idle_timeout_ms,
        serve_start_time: ProcessIdentity::of(serve.pid()).and_then(|i| i.start_time),
        runner_start_time: me.start_time,
        boot_id: me.boot_id.clone(),
        machine_id: me.machine.clone(),
        models: Some(params.models.clone()),
    };
    // The last failure goes before the record appears: a consumer that attaches never finds a
    // failure on disk that this healthy start has already superseded.
    let _ = registry.clear_start_failure(&key);
    if let Err(err) = registry.write_record(&record) {
        tracing::error!(%err, "cannot publish the record; stopping the serve");
        serve.stop(None).await;
        let _ = registry.write_start_failure(
            &key,
            &params.attempt_failure(StartFailure {
                code: "SERVE_SPAWN_FAILED".into(),
                message: format!("the runner could not publish the serve: {err}"),
                ..StartFailure::default()
            }),
        );
        return RunnerExit::StartFailed;
    }
    let healthy_at = now_ms();
    tracing::info!(
        pid = serve.pid(),
        port,
        "serve is healthy; record published"
    );
    let mut memory = MemoryWatch::new(&registry, &params, serve.pid());
    let mut memory_tick = tokio::time::interval(MEMORY_SAMPLE_INTERVAL);
    memory_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let idle = millis_saturating(params.idle_timeout_ms);
    let mut watch = ConsumerWatch::new(&registry.consumers_dir(&key));
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refusals = 0;
    let mut empty_since: Option<Instant> = None;
    let mut watchdog = Watchdog::new(&params, &record);
    if watchdog.hang_timeout.is_none() {
        // No probe will write it: `ps` shows the watchdog as off.
        let _ = registry.write_health(&key, &watchdog.health);
    }
    let mut probe: Option<ProbeFuture> = None;
    let mut report: Option<ExitReport> = None;
    // Connections are counted only while no consumer is left: when the last one goes, then every
    // CONNECTION_RECOUNT while one is open, and at the idle deadline. Reading the socket table
    // takes the kernel milliseconds, so the loop does not do it on every wake-up.
    let mut connections = 0;
    let mut recount: Option<Instant> = None;
    let mut had_consumers = true;
    let exit = loop {
        let looked_at = Instant::now();
        let live = registry.live_consumers(&key, true).unwrap_or_default();
        watch.track(&live);
        if !live.is_empty() {
            connections = 0;
            recount = None;
        } else if params.idle_counts_connections
            && (had_consumers || recount.is_some_and(|at| looked_at >= at))
        {
            connections = watchdog.connections(port).unwrap_or(0);
            recount = (connections > 0).then(|| Instant::now() + CONNECTION_RECOUNT);
        }
        had_consumers = !live.is_empty();
        if live.is_empty() && connections == 0 {
            // From before the look: the idle clock does not pay for the socket table.
            empty_since.get_or_insert(looked_at);
        } else {
            empty_since = None;
        }
        memory.seen(connections, empty_since.is_some());
        let idle_deadline = empty_since.map(|since| since + idle);
        tokio::select! {
            exited = serve.exited() => {
                tracing::warn!(kind = exited.kind.as_str(), code = ?exited.code, signal = ?exited.signal, tail = %exited.output_tail, "serve exited on its own");
                let _ = registry.remove_own_record(&record);
                report = Some(exited);
                // A serve that daemonized (new session, leader gone) still runs under us, the
                // subreaper: it is stopped, not left listening with the key, untracked.
                let adopted = stop_adopted_children(params.grace()).await;
                if adopted > 0 {
                    tracing::warn!(adopted, "the serve's leader exited but processes it started still ran (daemonized); stopped them");
                }
                break RunnerExit::ServeCrashed;
            }
            _ = health.tick() => {
                let accepts = accepts_connections(&params.host, port).await;
                match accepts {
                    Some(false) => refusals += 1,
                    Some(true) => refusals = 0,
                    None => {}
                }
                // Refused twice in a row: nothing listens on the serve's port any more, though
                // its process lives. That is a crash; the next consumer respawns.
                if refusals >= 2 {
                    tracing::warn!(port, "the serve stopped listening (connection refused); treating it as crashed");
                    break RunnerExit::ServeCrashed;
                }
                if accepts == Some(true) && watchdog.hung() {
                    tracing::error!(
                        port,
                        hang_timeout_ms = watchdog.hang_timeout.map_or(0, |t| t.as_millis() as u64),
                        last_probe_error = ?watchdog.health.last_probe_error,
                        "the serve is hung: it lives and accepts connections but answered no probe within serveHangTimeout; stopping it"
                    );
                    break RunnerExit::ServeHung;
                }
                if probe.is_none() {
                    probe = watchdog.start_probe();
                }
            }
            outcome = async { probe.as_mut().expect("guarded by is_some").await }, if probe.is_some() => {
                probe = None;
                watchdog.probed(outcome);
                let _ = registry.write_health(&key, &watchdog.health);
            }
            _ = async {
                match memory.next_ceiling_sample() {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => { memory_tick.tick().await; }
                }
            } => {
                if memory.sample() {
                    tracing::error!(
                        current = memory.state.current_bytes,
                        ceiling = params.max_memory_bytes,
                        "the serve's memory stayed above serveMaxMemory; stopping it"
                    );
                    break RunnerExit::OverMemory;
                }
            }
            _ = record_watch.changed() => {
                if registry.eviction_requested(&key) {
                    // Reaped exactly as at the idle deadline: a consumer or connection that is
                    // there calls the eviction off, and so does a pin made since the decision.
                    if !registry.is_pinned(&key) && try_reap(&registry, &key, &record, port, Some(&watchdog), &mut lock).await {
                        tracing::info!("evicted to make room under a memory budget");
                        break RunnerExit::Evicted;
                    }
                    tracing::info!("eviction called off: the fleet is in use");
                    registry.clear_eviction(&key);
                    empty_since = None;
                    recount = Some(Instant::now());
                }
                if !record_is_intact(&registry, &record) {
                    // A moment's grace: a registry being removed (rm -rf) is gone by then, and
                    // is reaped, not re-created.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if !registry.dir().exists() {
                        tracing::warn!("the registry directory is gone; reaping");
                        break RunnerExit::Reaped;
                    }
                    restore_record(&registry, &record);
                }
            }
            _ = stop_requests.recv() => break RunnerExit::Signalled,
            _ = watch.changed() => {}
            _ = sleep_until_deadline(recount) => {}
            _ = sleep_until_deadline(idle_deadline) => {
                let counts = params.idle_counts_connections.then_some(&watchdog);
                if try_reap(&registry, &key, &record, port, counts, &mut lock).await {
                    break RunnerExit::Reaped;
                }
                empty_since = None;
                // Kept for a consumer or a connection: look at the connections again at once.
                recount = Some(Instant::now());
            }
        }
    };
    drop(probe);
    // With the record, before the serve stops: nothing of this serve is left once it is gone.
    StartOutput::remove(&registry, &key);
    // Whatever ended the loop, a serve that did not exit by itself is stopped here.
    let report = match report {
        Some(exited) => exited,
        None => {
            let _ = registry.remove_own_record(&record);
            let stopped = serve.stop(None).await;
            tracing::info!(kind = stopped.kind.as_str(), "serve stopped");
            stopped
        }
    };
    registry.remove_health(&key);
    let peak = memory.finish();
    let kind = match exit {
        RunnerExit::ServeCrashed => Some(ExitKind::Crashed),
        RunnerExit::ServeHung => Some(ExitKind::Hung),
        RunnerExit::Signalled => Some(ExitKind::Stopped),
        RunnerExit::Reaped => Some(ExitKind::Reaped),
        RunnerExit::Evicted => Some(ExitKind::Evicted),
        RunnerExit::OverMemory => Some(ExitKind::Memory),
        RunnerExit::StartFailed | RunnerExit::Duplicate => None,
    };
    if let Some(kind) = kind {
        let ended = ServeExit {
            serve_pid: record.serve_pid,
            port,
            kind,
            at: now_ms(),
            code: report.code,
            signal: report.signal_name().map(str::to_owned),
            output_tail: report.output_tail.clone(),
            attempt: Some(params.attempt.clone()),
            healthy_at: Some(healthy_at),
            peak_bytes: peak,
        };
        if let Err(err) = registry.record_exit(&key, &ended) {
            tracing::warn!(%err, "cannot record how the serve ended");
        }
    }
    stop_adopted_children(params.grace()).await;
    registry.clear_eviction(&key);
    // Only an empty consumers dir goes: a marker may belong to a consumer about to respawn.
    let _ = fs::remove_dir(registry.consumers_dir(&key));
    drop(files);
    // The spawn lock (held since the start, or taken by the reap) goes last, once the serve is
    // gone: released once, by its one handle.
    drop(lock);
    tracing::info!(?exit, "runner done");
    exit
}

/// The serve's memory: sampled every `MEMORY_SAMPLE_INTERVAL` (and once at the start), written
/// to `<key>.mem` with what the loop last saw of consumers and connections; and the
/// `serveMaxMemory` ceiling.
struct MemoryWatch<'a> {
    registry: &'a Registry,
    key: &'a str,
    state: ServeMemory,
    ceiling: Option<u64>,
    above_since: Option<Instant>,
}

impl<'a> MemoryWatch<'a> {
    fn new(registry: &'a Registry, params: &'a RunnerParams, serve_pid: i32) -> Self {
        let key = params.fleet_key.as_str();
        // The reservation the starting consumer made under a budget is kept: the fleet counts
        // for it until it has grown past it.
        let reserved = registry
            .read_memory(key)
            .filter(|m| m.serve_pid.is_none())
            .map_or(0, |m| m.reserved_bytes);
        let mut watch = MemoryWatch {
            registry,
            key,
            state: ServeMemory {
                serve_pid: Some(serve_pid),
                reserved_bytes: reserved,
                models: params.models.clone(),
                ..ServeMemory::default()
            },
            ceiling: params.max_memory_bytes,
            above_since: None,
        };
        watch.sample();
        watch
    }

    /// What the loop saw: connections, and whether the fleet is idle (no consumer, no
    /// connection). Written at once when it changed, so a budget decision never sees an idle
    /// fleet as in use for a whole sample interval (nor the other way round).
    fn seen(&mut self, connections: u32, idle: bool) {
        let before = (self.state.connections, self.state.idle_since);
        self.state.connections = connections;
        match (idle, self.state.idle_since) {
            (true, None) => self.state.idle_since = Some(now_ms()),
            (false, Some(_)) => self.state.idle_since = None,
            _ => {}
        }
        if before != (self.state.connections, self.state.idle_since) {
            self.write();
        }
    }

    fn write(&self) {
        if let Err(err) = self.registry.write_memory(self.key, &self.state) {
            tracing::warn!(%err, "cannot write the serve's memory");
        }
    }

    /// Samples and writes `<key>.mem`; true when the tree has been above the ceiling for
    /// `MEMORY_CEILING_GRACE`.
    fn sample(&mut self) -> bool {
        let Some(pid) = self.state.serve_pid else {
            return false;
        };
        // A subreaper's own descendants are the serve's tree and what it left behind (a worker
        // started through a short-lived parent); elsewhere the serve's tree.
        let measured = platform::descendants_resident_bytes(std::process::id() as i32)
            .filter(|&b| b > 0)
            .or_else(|| platform::tree_resident_bytes(pid));
        let Some(bytes) = measured else {
            return false;
        };
        self.state.current_bytes = bytes;
        self.state.peak_bytes = self.state.peak_bytes.max(bytes);
        self.state.sampled_at = Some(now_ms());
        self.write();
        match self.ceiling {
            Some(ceiling) if bytes > ceiling => {
                let since = *self.above_since.get_or_insert_with(Instant::now);
                since.elapsed() >= MEMORY_CEILING_GRACE
            }
            _ => {
                self.above_since = None;
                false
            }
        }
    }

    /// While above the ceiling the tree is sampled every [`CEILING_RESAMPLE`], so only a tree
    /// that stays above it (no dip that long) is stopped, however its spikes line up with the
    /// regular samples.
    fn next_ceiling_sample(&self) -> Option<Instant> {
        self.above_since.map(|_| Instant::now() + CEILING_RESAMPLE)
    }

    /// The peak seen (`None` if never sampled); `<key>.mem` goes with the serve.
    fn finish(&mut self) -> Option<u64> {
        self.registry.remove_memory(self.key);
        (self.state.peak_bytes > 0).then_some(self.state.peak_bytes)
    }
}

/// How often the tree is sampled while it is above `serveMaxMemory`.
const CEILING_RESAMPLE: Duration = Duration::from_millis(250);

/// A probe in flight: its outcome and how long it took.
type ProbeFuture = Pin<Box<dyn Future<Output = (Result<u16, ProbeError>, Duration)>>>;

/// How often connections are counted while one is open and no consumer is left.
const CONNECTION_RECOUNT: Duration = Duration::from_millis(250);

/// The hang watchdog (what `<key>.health` says), and the connection count that leaves its probe out.
struct Watchdog {
    hang_timeout: Option<Duration>,
    url: String,
    api_key: String,
    /// The local port of the last probe, left out of the connection count.
    probe_port: Rc<Cell<Option<u16>>>,
    /// The serve whose connections are counted (our child), and the address it listens on.
    serve_pid: i32,
    serve_addr: std::net::IpAddr,
    /// Set when a probe got no answer within the hang timeout.
    timed_out: bool,
    last_answer: Instant,
    health: ServeHealth,
}

impl Watchdog {
    fn new(params: &RunnerParams, record: &ServeRecord) -> Watchdog {
        let hang_timeout = params.hang_timeout();
        Watchdog {
            hang_timeout,
            url: format!("{}/models", record.base_url.trim_end_matches('/')),
            api_key: record.api_key.clone(),
            probe_port: Rc::new(Cell::new(None)),
            serve_pid: record.serve_pid,
            serve_addr: bound_address(&record.host),
            timed_out: false,
            // Healthy just now: the start's health check was answered.
            last_answer: Instant::now(),
            health: ServeHealth {
                serve_pid: record.serve_pid,
                last_answer_at: Some(now_ms()),
                hang_timeout_ms: hang_timeout.map_or(0, |t| t.as_millis() as u64),
                ..ServeHealth::default()
            },
        }
    }

    /// Established connections to the serve's address and `port` other than our probe's, by
    /// the serve's own sockets where the OS allows; `None` where not countable.
    fn connections(&self, port: u16) -> Option<u32> {
        let own: Vec<u16> = self.probe_port.get().into_iter().collect();
        serve_connections(self.serve_pid, self.serve_addr, port, &own)
    }

    /// A probe bounded by the hang timeout, or none when the watchdog is off.
    fn start_probe(&self) -> Option<ProbeFuture> {
        let timeout = self.hang_timeout?;
        let (url, key, port) = (
            self.url.clone(),
            self.api_key.clone(),
            self.probe_port.clone(),
        );
        port.set(None);
        Some(Box::pin(async move {
            let started = Instant::now();
            let outcome = probe_observed(&url, Some(&key), timeout, |p| port.set(Some(p))).await;
            // The port stays excluded until the next probe: its socket closes a moment later.
            (outcome, started.elapsed())
        }))
    }

    /// Any HTTP answer, whatever its status, shows the serve is not hung.
    fn probed(&mut self, (outcome, took): (Result<u16, ProbeError>, Duration)) {
        self.health.last_probe_at = Some(now_ms());
        self.health.last_probe_ms = Some(took.as_millis() as u64);
        match outcome {
            Ok(status) => {
                self.last_answer = Instant::now();
                self.timed_out = false;
                self.health.last_answer_at = self.health.last_probe_at;
                self.health.last_probe_status = Some(status);
                self.health.last_probe_error = None;
            }
            Err(err) => {
                self.timed_out = matches!(err, ProbeError::Timeout(_));
                self.health.last_probe_status = None;
                self.health.last_probe_error = Some(err.to_string());
            }
        }
    }

    /// Hung: a probe went unanswered for the whole hang timeout, or (a serve that fails every
    /// probe at once, e.g. resets) nothing was answered for the timeout plus a probe interval.
    /// A slow serve that answers each probe within the timeout is never hung.
    fn hung(&self) -> bool {
        let Some(timeout) = self.hang_timeout else {
            return false;
        };
        self.timed_out
            || (self.health.last_probe_error.is_some()
                && self.last_answer.elapsed() >= timeout + HEALTH_INTERVAL)
    }
}

/// How often the runner checks that its serve still listens.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// `<key>.json` holds exactly the record this runner published.
fn record_is_intact(registry: &Registry, record: &ServeRecord) -> bool {
    read_own_record(registry, record).as_ref() == Some(record)
}

fn read_own_record(registry: &Registry, record: &ServeRecord) -> Option<ServeRecord> {
    ServeRecord::read_file(&registry.record_path(&record.fleet_key))
}

/// Puts the true record back when `<key>.json` was changed, corrupted or removed while the serve
/// lives, so no consumer waits on a bad file.
fn restore_record(registry: &Registry, record: &ServeRecord) {
    let path = registry.record_path(&record.fleet_key);
    let on_disk = read_own_record(registry, record);
    if on_disk.as_ref() == Some(record) {
        return;
    }
    let what = if on_disk.is_some() {
        "changed"
    } else if path.exists() {
        "corrupted"
    } else {
        "removed"
    };
    match registry.rewrite_record(record) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "the record was {what} while the serve lives; restored it")
        }
        Err(err) => tracing::error!(%err, "the record was {what} and cannot be restored"),
    }
}

/// After a panic unwound out of [`run_serve`]: the record (if it names this runner) and an empty
/// consumers directory go. The spawn lock's handle was released by the unwinding itself.
pub fn clean_up_after_panic(registry: &Registry, key: &str) {
    let me = std::process::id() as i32;
    let ours = match registry.read_record(key) {
        Ok(RecordState::Trusted(record)) | Ok(RecordState::Untrusted(record, _)) => {
            record.runner_pid == me
        }
        _ => false,
    };
    if ours {
        let _ = registry.remove_record(key);
        registry.remove_memory(key);
    }
    let _ = fs::remove_dir(registry.consumers_dir(key));
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Holds the spawn lock (`held`, the runner's one handle, or taken now), removes the record,
/// and re-checks the consumers (and, with `counts`, the connections to `port`). True = reap now
/// (the lock, in `held`, stays until the serve is gone); false = someone attached or connected,
/// the record is back, and a lock taken here is released (one the runner held stays held).
async fn try_reap(
    registry: &Registry,
    key: &str,
    record: &ServeRecord,
    port: u16,
    counts: Option<&Watchdog>,
    held: &mut Option<PidLock>,
) -> bool {
    let policy = RetryPolicy {
        attempts: 100,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(50),
        deadline: Some(Duration::from_secs(2)),
        jitter: 0.5,
    };
    let taken = match held {
        Some(_) => None,
        None => match registry.spawn_lock(key, &policy, &CancelToken::new()).await {
            Ok(lock) => Some(lock),
            Err(RegistryError::Lock(err)) if err.is_missing_directory() => {
                // The registry was removed under us: nobody can attach any more; stop.
                tracing::warn!("the registry directory is gone; reaping");
                return true;
            }
            Err(RegistryError::Lock(PidLockError::Held(_))) => {
                tracing::info!("idle deadline reached but the spawn lock is busy; re-checking");
                return false;
            }
            Err(err) => {
                // Not a holder but a broken path (e.g. replaced by a directory): no consumer can
                // take it either, so nobody can start a second serve; reap without it.
                tracing::warn!(%err, "the spawn lock cannot be used; reaping without it");
                None
            }
        },
    };
    let _ = registry.remove_own_record(record);
    if !registry
        .live_consumers(key, true)
        .unwrap_or_default()
        .is_empty()
    {
        tracing::info!("a consumer attached at the idle deadline; keeping the serve");
        let _ = registry.write_record(record);
        return false;
    }
    if let Some(connections) = counts.and_then(|w| w.connections(port)).filter(|&n| n > 0) {
        tracing::info!(
            connections,
            "a client connected at the idle deadline; keeping the serve"
        );
        let _ = registry.write_record(record);
        return false;
    }
    tracing::info!("idle timeout passed with no consumers; reaping");
    // Keep the lock while the serve stops, so no consumer spawns a duplicate meanwhile; `run`
    // releases it once the serve is gone.
    if taken.is_some() {
        *held = taken;
    }
    true
}
