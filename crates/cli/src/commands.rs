//! The user commands over the registry. Every command reads the same files the library writes;
//! `stop` signals only runners whose records are trusted (pid and start time match).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use qvac_managed_core::consumer_watch::ConsumerWatch;
use qvac_managed_core::dir_watch::DirWatch;
use qvac_managed_core::managed_options::{CRASH_LOOP_WINDOW, DEFAULT_SERVE_MAX_RESTARTS};
use qvac_managed_core::memory_size::format_bytes;
use qvac_managed_core::options::millis_saturating;
use qvac_managed_core::platform;
use qvac_managed_core::registry::{
    fleet_key_of, js_number_value, now_ms, CrashLoop, ExitKind, Registry, ServeHealth, ServeInfo,
    StopOutcome, UnverifiedRecord,
};
use qvac_managed_core::serve_start::resolve_serve_command_in;

type CommandResult = Result<ExitCode, Box<dyn std::error::Error>>;

pub fn ps(registry: &Registry, json: bool) -> CommandResult {
    let serves = registry.list_serves()?;
    // Counted now, in one read of the socket tables (the runner counts only while no consumer
    // is left), each at its serve's own address and port.
    let endpoints: Vec<std::net::SocketAddr> = serves
        .iter()
        .map(|s| std::net::SocketAddr::new(platform::bound_address(&s.host), s.port))
        .collect();
    let counts = (!endpoints.is_empty())
        .then(|| platform::tcp_connections_to_each(&endpoints, &[]))
        .flatten();
    let connections: Vec<Option<u32>> = (0..serves.len())
        .map(|i| counts.as_ref().map(|c| c[i]))
        .collect();
    if json {
        let list: Vec<serde_json::Value> = serves
            .iter()
            .zip(&connections)
            .map(|(s, &n)| serve_json(s, n))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let unverified = registry.unverified_records()?;
    if serves.is_empty() {
        println!(
            "no managed serves running (registry: {})",
            registry.dir().display()
        );
        print_unverified(&unverified);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16}  {:>7}  {:>7}  {:>5}  {:>9}  {:>5}  {:>10}  {:>10}  {:>8}  {:>10}  {:<20}  MODELS",
        "FLEET",
        "SERVE",
        "RUNNER",
        "PORT",
        "CONSUMERS",
        "CONNS",
        "MEM",
        "PEAK",
        "UPTIME",
        "IDLE AFTER",
        "LAST PROBE"
    );
    for (s, n) in serves.iter().zip(&connections) {
        let health = s.health.as_ref();
        println!(
            "{:<16}  {:>7}  {:>7}  {:>5}  {:>9}  {:>5}  {:>10}  {:>10}  {:>8}  {:>10}  {:<20}  {}",
            format!(
                "{}{}",
                short_key(&s.fleet_key),
                if s.pinned { "*" } else { "" }
            ),
            s.serve_pid,
            s.runner_pid,
            s.port,
            s.consumers,
            n.map_or_else(|| "-".into(), |n| n.to_string()),
            s.memory
                .as_ref()
                .map_or_else(|| "-".into(), |m| format_bytes(m.current_bytes)),
            s.memory
                .as_ref()
                .map_or_else(|| "-".into(), |m| format_bytes(m.peak_bytes)),
            uptime(&s.started_at).map_or_else(|| "?".into(), human),
            human(millis_saturating(s.idle_timeout_ms)),
            health.map_or_else(|| "-".into(), last_probe),
            s.models.join(",")
        );
    }
    if serves.iter().any(|s| s.pinned) {
        println!("* pinned: never evicted under a memory budget (`qvac-managed unpin <fleet>`)");
    }
    print_memory_exits(registry, &serves)?;
    print_unverified(&unverified);
    Ok(ExitCode::SUCCESS)
}

/// How recently a fleet's serve must have ended for `ps` to say it was evicted or stopped for
/// its memory.
const RECENT_MEMORY_EXIT: Duration = Duration::from_secs(600);

/// Fleets not running now whose serve was evicted (memory budget) or stopped above
/// `serveMaxMemory` in the last ten minutes: why a fleet a user expected is gone.
fn print_memory_exits(registry: &Registry, live: &[ServeInfo]) -> io::Result<()> {
    let keys = registry.fleets_with_exits().map_err(io::Error::other)?;
    for key in keys
        .iter()
        .filter(|k| !live.iter().any(|s| &s.fleet_key == *k))
    {
        let Some(last) = registry.read_exits(key).into_iter().last() else {
            continue;
        };
        let ago = Duration::from_millis(now_ms().saturating_sub(last.at));
        let why = match last.kind {
            ExitKind::Evicted => "evicted to make room under a memory budget",
            ExitKind::Memory => "stopped above serveMaxMemory",
            _ => continue,
        };
        if ago <= RECENT_MEMORY_EXIT {
            let peak = last
                .peak_bytes
                .map_or_else(|| "not sampled".into(), format_bytes);
            println!(
                "{} {why} {} ago (peak {peak}); the next request starts it again",
                short_key(key),
                human(ago)
            );
        }
    }
    Ok(())
}

/// Records moved aside because the serve they name could not be proven ours: what `ps`, `gc`
/// and `doctor` say about each (the pid was never signalled; the user decides).
fn unverified_line(u: &UnverifiedRecord) -> String {
    format!(
        "unverified record {} (fleet {}) names pid {}{}, never signalled by qvac-managed; check that pid, then remove the record with: {}",
        u.path.display(),
        short_key(&u.fleet_key),
        u.serve_pid,
        if u.serve_alive { " (running)" } else { " (gone)" },
        u.removal_hint()
    )
}

fn print_unverified(unverified: &[UnverifiedRecord]) {
    for u in unverified {
        println!("{}", unverified_line(u));
    }
}

fn unverified_json(u: &UnverifiedRecord) -> serde_json::Value {
    serde_json::json!({
        "path": u.path.display().to_string(),
        "fleetKey": u.fleet_key,
        "servePid": u.serve_pid,
        "serveAlive": u.serve_alive,
        "removeWith": u.removal_hint(),
    })
}

/// `200 in 3ms, 1s ago`, `timeout, 2s ago`, or `off` (no watchdog) for the table.
fn last_probe(h: &ServeHealth) -> String {
    if h.hang_timeout_ms == 0 {
        return "off".into();
    }
    let Some(at) = h.last_probe_at else {
        return "none yet".into();
    };
    let ago = human(Duration::from_millis(now_ms().saturating_sub(at)));
    match (h.last_probe_status, &h.last_probe_error) {
        (Some(status), _) => format!("{status} in {}ms, {ago} ago", h.last_probe_ms.unwrap_or(0)),
        (None, Some(err)) if err.starts_with("no response") => format!("no answer, {ago} ago"),
        (None, _) => format!("failed, {ago} ago"),
    }
}

fn health_json(h: &ServeHealth) -> serde_json::Value {
    serde_json::json!({
        "hangTimeoutMs": h.hang_timeout_ms,
        "lastProbeAt": h.last_probe_at.map(iso_millis),
        "lastProbeStatus": h.last_probe_status,
        "lastProbeMs": h.last_probe_ms,
        "lastProbeError": h.last_probe_error,
        "lastAnswerAt": h.last_answer_at.map(iso_millis),
    })
}

/// Milliseconds since the epoch as RFC 3339 (as records carry `startedAt`).
fn iso_millis(ms: u64) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn serve_json(s: &ServeInfo, connections: Option<u32>) -> serde_json::Value {
    serde_json::json!({
        "connections": connections,
        "lastProbe": s.health.as_ref().map(health_json),
        "memoryBytes": s.memory.as_ref().map(|m| m.current_bytes),
        "peakMemoryBytes": s.memory.as_ref().map(|m| m.peak_bytes),
        "memorySampledAt": s.memory.as_ref().and_then(|m| m.sampled_at).map(iso_millis),
        "pinned": s.pinned,
        "fleetKey": s.fleet_key,
        "models": s.models,
        "baseURL": s.base_url,
        "host": s.host,
        "port": s.port,
        "servePid": s.serve_pid,
        "runnerPid": s.runner_pid,
        "consumers": s.consumers,
        "startedAt": s.started_at,
        "uptimeMs": uptime(&s.started_at).map(|d| d.as_millis() as u64),
        "idleTimeoutMs": js_number_value(s.idle_timeout_ms),
    })
}

fn short_key(key: &str) -> &str {
    // Private fleets are `<key>-priv-<pid>-<hex>`; the table shows the shared part.
    key.get(..16).unwrap_or(key)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Time since an RFC 3339 UTC timestamp (`2026-11-24T09:00:00.000Z`, as records carry).
fn uptime(started_at: &str) -> Option<Duration> {
    let started = humantime::parse_rfc3339(started_at).ok()?;
    SystemTime::now().duration_since(started).ok()
}

/// Fleets whose key starts with `prefix`; exactly one, or an error listing the choices.
fn find_fleet(registry: &Registry, prefix: &str) -> Result<ServeInfo, Box<dyn std::error::Error>> {
    one_by_prefix(registry.list_serves()?, prefix, |s| &s.fleet_key)?.ok_or_else(|| {
        format!("no live serve with fleet key {prefix}; see `qvac-managed ps`").into()
    })
}

/// The one item whose key starts with `prefix` (`None` when none does), or an error listing the
/// keys when several do.
fn one_by_prefix<T>(
    items: Vec<T>,
    prefix: &str,
    key: impl Fn(&T) -> &str,
) -> Result<Option<T>, String> {
    let mut matches: Vec<T> = items
        .into_iter()
        .filter(|item| key(item).starts_with(prefix))
        .collect();
    if matches.len() > 1 {
        let keys: Vec<&str> = matches.iter().map(&key).collect();
        return Err(format!(
            "{prefix} matches {} fleets ({}); give more of the key",
            matches.len(),
            keys.join(", ")
        ));
    }
    Ok(matches.pop())
}

pub fn stop(registry: &Registry, fleet: Option<&str>, all: bool) -> CommandResult {
    let targets = match (fleet, all) {
        (_, true) => registry.list_serves()?,
        (Some(prefix), false) => vec![find_fleet(registry, prefix)?],
        (None, false) => {
            return Err("say which fleet to stop (see `qvac-managed ps`), or --all".into())
        }
    };
    if targets.is_empty() {
        println!("no managed serves running");
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = false;
    for serve in targets {
        print!(
            "{}: stopping (runner {}, serve {}) ... ",
            serve.fleet_key, serve.runner_pid, serve.serve_pid
        );
        std::io::stdout().flush()?;
        let outcome = runtime.block_on(registry.stop_fleet(&serve.fleet_key, STOP_GRACE))?;
        match outcome {
            StopOutcome::NotRunning => println!("already gone"),
            StopOutcome::StoppedStarting { took, .. } => {
                println!("stopped its start in {} ms", took.as_millis())
            }
            StopOutcome::Stopped { forced, took, .. } => println!(
                "stopped in {} ms{}",
                took.as_millis(),
                if forced {
                    " (the serve outlived the grace and was killed)"
                } else {
                    ""
                }
            ),
            StopOutcome::NotProven { .. } | StopOutcome::StillRunning { .. } => {
                let reason = outcome.failure(&serve.fleet_key).unwrap_or_default();
                println!("not stopped: {reason}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How long `stop` lets a runner stop its serve gracefully before the serve is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runner logs (`<key>.log`, `<key>.log.1`) and start failures (`<key>.error`) of a fleet with
/// no record are kept this long after their last write, then `gc` removes them. Private fleets
/// (`<key>-priv-<pid>-<hex>`) are never started again, so nothing else would.
const FINISHED_FLEET_FILES_AGE: Duration = Duration::from_secs(24 * 3600);

pub fn gc(registry: &Registry, dry_run: bool, json: bool) -> CommandResult {
    let mut report = if dry_run {
        registry.sweep_dry_run()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(registry.sweep())?
    };
    // After the sweep: a record it removed (or, dry, would remove) no longer keeps its logs.
    let aged = finished_fleet_files(registry, &report.removed, FINISHED_FLEET_FILES_AGE)?;
    for path in aged {
        if dry_run || remove_if_present(&path)? {
            report.removed.push(path);
        }
    }
    let paths = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    };
    // Moved aside by this sweep or an earlier one, and still there (a gone pid's record was
    // removed just now).
    let unverified: Vec<UnverifiedRecord> = registry
        .unverified_records()?
        .into_iter()
        .filter(|u| dry_run || !report.removed.contains(&u.path))
        .collect();
    let crash_loops = crash_loops(registry)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "crashLoops": crash_loops.iter().map(|(key, c)| serde_json::json!({
                    "fleetKey": key,
                    "restarts": c.restarts,
                    "windowMs": c.window.as_millis() as u64,
                    "retryAfterMs": c.retry_after.as_millis() as u64,
                    "resetWith": format!("qvac-managed reset {key}"),
                })).collect::<Vec<_>>(),
                "dryRun": dry_run,
                "removed": paths(&report.removed),
                "keptUntrusted": paths(&report.kept_untrusted),
                "stoppedOrphans": paths(&report.stopped_orphans),
                "corrupt": paths(&report.corrupt),
                "movedAside": paths(&report.moved_aside),
                "unverified": unverified.iter().map(unverified_json).collect::<Vec<_>>(),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    if report.removed.is_empty() {
        println!("nothing to remove (registry: {})", registry.dir().display());
    }
    for path in &report.removed {
        println!("{verb} {}", path.display());
    }
    let orphan_verb = if dry_run {
        "would stop (if proven ours; otherwise move its record aside) the orphaned serve of"
    } else {
        "stopped the orphaned serve of"
    };
    for path in &report.stopped_orphans {
        println!("{orphan_verb} {}", path.display());
    }
    for path in &report.kept_untrusted {
        println!("kept {} (a process it names may be alive)", path.display());
    }
    for path in &report.moved_aside {
        println!(
            "moved aside {} (its serve runs but could not be proven ours)",
            path.display()
        );
    }
    print_unverified(&unverified);
    for (key, c) in &crash_loops {
        println!(
            "crash loop: fleet {key} crashed {} times in {} s; starts are refused for {} s more (at the default serveMaxRestarts {DEFAULT_SERVE_MAX_RESTARTS}); allow one now with: qvac-managed reset {key}",
            c.restarts,
            c.window.as_secs(),
            c.retry_after.as_secs_f64().ceil() as u64
        );
    }
    for path in &report.corrupt {
        println!(
            "kept {} (unreadable record; remove it by hand once no serve uses it)",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs and start failures of fleets that have no record (none left, or `removed_records` names
/// it) and no spawn lock (no start under way), last written more than `age` ago.
fn finished_fleet_files(
    registry: &Registry,
    removed_records: &[PathBuf],
    age: Duration,
) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(registry.dir()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // (`<key>.health`, `.start-output`, `.mem` and `.evict` of a gone runner are the sweep's.)
        let Some(key) = fleet_key_of(&name, &[".log.1", ".log", ".error", ".exits"]) else {
            continue;
        };
        let record = registry.record_path(key);
        let has_record = record.exists() && !removed_records.contains(&record);
        if has_record || registry.lock_path(key).exists() {
            continue;
        }
        let old = entry
            .metadata()
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|mtime| SystemTime::now().duration_since(mtime).ok())
            .is_some_and(|elapsed| elapsed > age);
        if old {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Fleets held by the crash-loop cap at the default `serveMaxRestarts` (a consumer may set its own).
fn crash_loops(
    registry: &Registry,
) -> Result<Vec<(String, CrashLoop)>, Box<dyn std::error::Error>> {
    Ok(registry
        .fleets_with_exits()?
        .into_iter()
        .filter_map(|key| {
            let held = registry.crash_loop(&key, DEFAULT_SERVE_MAX_RESTARTS, CRASH_LOOP_WINDOW)?;
            Some((key, held))
        })
        .collect())
}

/// Forgets a fleet's recorded exits, so the crash-loop cap allows a start at once.
pub fn reset(registry: &Registry, fleet: &str) -> CommandResult {
    let Some(key) = one_by_prefix(registry.fleets_with_exits()?, fleet, String::as_str)? else {
        println!("{fleet}: nothing to reset (no recorded exits; see `qvac-managed gc`)");
        return Ok(ExitCode::SUCCESS);
    };
    let held = registry.crash_loop(&key, DEFAULT_SERVE_MAX_RESTARTS, CRASH_LOOP_WINDOW);
    registry.reset_exits(&key)?;
    match held {
        Some(c) => println!(
            "{key}: crash loop cleared ({} crashes in {} s forgotten); the next request starts the serve",
            c.restarts,
            c.window.as_secs()
        ),
        None => println!("{key}: recorded exits forgotten"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `pin` / `unpin`: a fleet (a live one by key prefix, or any full key) is never / again evicted
/// under a memory budget.
pub fn pin(registry: &Registry, fleet: &str, pinned: bool) -> CommandResult {
    let mut keys: Vec<String> = registry
        .list_serves()?
        .into_iter()
        .map(|s| s.fleet_key)
        .collect();
    keys.extend(registry.fleets_with_exits()?);
    keys.sort();
    keys.dedup();
    let key = match one_by_prefix(keys, fleet, String::as_str)? {
        Some(key) => key,
        None if fleet.len() == 16 && fleet.bytes().all(|b| b.is_ascii_hexdigit()) => {
            fleet.to_owned()
        }
        None => {
            eprintln!("{fleet}: no such fleet (give a live fleet's key or prefix, as `qvac-managed ps` lists them, or a full 16-hex key)");
            return Ok(ExitCode::from(1));
        }
    };
    let changed = registry.set_pinned(&key, pinned)?;
    let state = if pinned {
        "pinned: never evicted under a memory budget"
    } else {
        "unpinned: may be evicted when idle under a memory budget"
    };
    println!("{key}: {state}{}", if changed { "" } else { " (already)" });
    Ok(ExitCode::SUCCESS)
}

/// True when this call removed the file (false when someone else already had).
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", path.display()),
        )),
    }
}

pub fn logs(registry: &Registry, fleet: &str, follow: bool) -> CommandResult {
    let key = match find_fleet(registry, fleet) {
        Ok(serve) => serve.fleet_key,
        // A finished fleet still has its log; accept an exact key.
        Err(_) if registry.log_path(fleet).exists() => fleet.to_owned(),
        Err(err) => return Err(err),
    };
    let path = registry.log_path(&key);
    let file = fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut log = FollowedLog::new(path, file)?;
    let mut out = std::io::stdout().lock();
    let printed = log.copy_new(&mut out);
    if !follow || is_broken_pipe(&printed) {
        return printed.map(|()| ExitCode::SUCCESS).or_else(quiet_pipe);
    }
    printed?;
    let dir = registry.dir().to_owned();
    let name = format!("{key}.log");
    let followed: io::Result<ExitCode> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let mut watch = DirWatch::new(&dir, &[name], LOG_FOLLOW_POLL);
            loop {
                // Bounded even with inotify: a watch ends with its directory, the poll does not.
                let _ = tokio::time::timeout(LOG_FOLLOW_BACKSTOP, watch.changed()).await;
                log.copy_new(&mut out)?;
            }
        });
    followed.or_else(quiet_pipe)
}

/// How often `logs --follow` looks for new lines where inotify is missing.
const LOG_FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The longest `logs --follow` waits for an event before looking anyway.
const LOG_FOLLOW_BACKSTOP: Duration = Duration::from_secs(1);

fn is_broken_pipe<T>(result: &io::Result<T>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe)
}

/// A reader gone (`logs | head`) ends the command quietly.
fn quiet_pipe(err: io::Error) -> CommandResult {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(err.into())
    }
}

/// A log followed by path across the runner's rotations: when `<key>.log` is renamed to
/// `<key>.log.1` and a new one begun, the rest of the old file is printed, then the new file from
/// its start; a file truncated in place is read again from its start.
struct FollowedLog {
    path: PathBuf,
    file: fs::File,
    /// (device, inode) of `file`.
    id: (u64, u64),
    pos: u64,
}

impl FollowedLog {
    fn new(path: PathBuf, file: fs::File) -> io::Result<FollowedLog> {
        Ok(FollowedLog {
            id: platform::file_identity(&file)?,
            path,
            file,
            pos: 0,
        })
    }

    /// Writes what was added since the last call, following a rotation or truncation.
    fn copy_new(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.file.metadata()?.len() < self.pos {
            self.pos = 0; // truncated in place
        }
        self.drain(out)?;
        // A new file at the path (rotated): the rest of the old one, then the new one.
        if let Ok(id) = platform::file_identity_at(&self.path) {
            if id != self.id {
                if let Ok(file) = fs::File::open(&self.path) {
                    self.drain(out)?;
                    *self = FollowedLog::new(self.path.clone(), file)?;
                    self.drain(out)?;
                }
            }
        }
        out.flush()
    }

    fn drain(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.pos))?;
        let copied = io::copy(&mut &self.file, out)?;
        self.pos += copied;
        Ok(())
    }
}

pub fn doctor(registry: &Registry, serve_bin_path: Option<PathBuf>) -> CommandResult {
    let mut problems = 0;
    let mut report = |ok: bool, what: &str, detail: String| {
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            problems += 1;
        }
    };
    match registry.dir().exists() {
        false => report(
            true,
            "registry",
            format!("{} (not created yet)", registry.dir().display()),
        ),
        true => match registry.check_dir() {
            Ok(()) => report(
                true,
                "registry",
                format!("{} ({})", registry.dir().display(), platform::PRIVATE_DIR),
            ),
            Err(err) => report(false, "registry", err.to_string()),
        },
    }
    match doctor_serve_command(serve_bin_path) {
        Ok((command, args)) => {
            let shown = match args.first() {
                Some(entry) => format!("{entry} (run by {})", command.display()),
                None => command.display().to_string(),
            };
            match serve_version(&command, &args) {
                Ok(version) => report(true, "serve binary", format!("{shown} ({version})")),
                Err(err) => report(false, "serve binary", format!("{shown}: {err}")),
            }
        }
        Err(err) => report(false, "serve binary", err.to_string()),
    }
    if registry.dir().exists() {
        match registry.sweep_dry_run() {
            Ok(plan) if plan.removed.is_empty() && plan.corrupt.is_empty() => {
                // Old logs of finished fleets are not a problem; `gc` ages them out.
                let old_logs =
                    finished_fleet_files(registry, &plan.removed, FINISHED_FLEET_FILES_AGE)
                        .map_or(0, |files| files.len());
                let detail = match old_logs {
                    0 => "none".into(),
                    n => format!("none ({n} log or error file(s) of finished fleets older than 24 h; `qvac-managed gc` removes them)"),
                };
                report(true, "stale files", detail)
            }
            Ok(plan) => report(
                false,
                "stale files",
                format!(
                    "{} leftover(s) of dead serves, {} unreadable record(s); fix with `qvac-managed gc`",
                    plan.removed.len(),
                    plan.corrupt.len()
                ),
            ),
            Err(err) => report(false, "stale files", err.to_string()),
        }
        match registry.unverified_records() {
            Ok(unverified) if unverified.is_empty() => {
                report(true, "unverified records", "none".into())
            }
            // Not a failure of ours: the process was left alone on purpose; the user decides.
            Ok(unverified) => {
                for u in &unverified {
                    report(true, "unverified records", unverified_line(u));
                }
            }
            Err(err) => report(false, "unverified records", err.to_string()),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let support = runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("qvac-managed-doctor-{}", std::process::id()));
        let support = ConsumerWatch::new(&dir).support();
        let _ = fs::remove_dir(&dir);
        support
    });
    report(
        support.dir_events,
        "directory events",
        if support.dir_events {
            format!("available ({})", platform::DIR_EVENTS)
        } else {
            format!(
                "unavailable ({}): consumers are polled every 100 ms",
                platform::DIR_EVENTS
            )
        },
    );
    report(
        support.exit_events,
        "exit events",
        if support.exit_events {
            format!("available ({})", platform::EXIT_EVENTS)
        } else {
            format!(
                "unavailable ({}): consumer deaths are polled every 100 ms",
                platform::EXIT_EVENTS
            )
        },
    );
    if problems > 0 {
        println!("{problems} problem(s) found");
        return Ok(ExitCode::from(1));
    }
    println!("all checks passed");
    Ok(ExitCode::SUCCESS)
}

/// The serve command exactly as the runner resolves it for a consumer in this working directory
/// (`serveBinPath`, else `node_modules/@qvac/cli` above it run by `node`, else `qvac` on PATH).
fn doctor_serve_command(
    serve_bin_path: Option<PathBuf>,
) -> Result<(PathBuf, Vec<String>), Box<dyn std::error::Error>> {
    let project_dir = std::env::current_dir()?;
    let serve_bin_path = serve_bin_path.map(|p| p.display().to_string());
    Ok(resolve_serve_command_in(
        serve_bin_path.as_deref(),
        Some(&project_dir.display().to_string()),
        None,
    )?)
}

/// `<command> <args> --version`, bounded to 5 s.
fn serve_version(command: &Path, args: &[String]) -> Result<String, String> {
    let mut child = std::process::Command::new(command)
        .args(args)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut out = String::new();
            child.stdout.take().map(|mut s| s.read_to_string(&mut out));
            return if status.success() {
                Ok(out
                    .trim()
                    .lines()
                    .next()
                    .unwrap_or("version unknown")
                    .to_owned())
            } else {
                Err(format!("`--version` exited with {status}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("`--version` did not answer within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir (removed by the caller's `TempDir` drop).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "qvac-managed-cli-{name}-{}-{:?}",
                std::process::id(),
                Instant::now()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn followed_log_continues_across_rotation_and_truncation() {
        let dir = TempDir::new("follow");
        let path = dir.0.join("k.log");
        fs::write(&path, "one\n").unwrap();
        let mut log = FollowedLog::new(path.clone(), fs::File::open(&path).unwrap()).unwrap();
        let mut out = Vec::new();
        log.copy_new(&mut out).unwrap();
        log.copy_new(&mut out).unwrap();
        assert_eq!("one\n", String::from_utf8_lossy(&out), "nothing twice");

        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        fs::rename(&path, dir.0.join("k.log.1")).unwrap();
        log.copy_new(&mut out).unwrap();
        assert_eq!(
            "one\ntwo\n",
            String::from_utf8_lossy(&out),
            "the rest of the rotated file"
        );
        fs::write(&path, "three\n").unwrap();
        log.copy_new(&mut out).unwrap();
        log.copy_new(&mut out).unwrap();
        assert_eq!(
            "one\ntwo\nthree\n",
            String::from_utf8_lossy(&out),
            "the new file"
        );

        fs::write(&path, "4\n").unwrap(); // truncated in place, shorter than what was read
        log.copy_new(&mut out).unwrap();
        assert_eq!("one\ntwo\nthree\n4\n", String::from_utf8_lossy(&out));
    }

    #[test]
    fn finished_fleet_files_are_old_and_recordless() {
        let dir = TempDir::new("gc");
        let registry = Registry::at(&dir.0);
        let day_ago = SystemTime::now() - Duration::from_secs(25 * 3600);
        let file = |name: &str, old: bool| {
            let path = dir.0.join(name);
            let f = fs::File::create(&path).unwrap();
            if old {
                f.set_modified(day_ago).unwrap();
            }
            path
        };
        let aged = [
            file("a1a1a1a1a1a1a1a1.log", true),
            file("a1a1a1a1a1a1a1a1.log.1", true),
            file("b2b2b2b2b2b2b2b2-priv-7-00ff.error", true),
            file("d4d4d4d4d4d4d4d4.log", true),
        ];
        file("c3c3c3c3c3c3c3c3.log", false);
        file("e5e5e5e5e5e5e5e5.log", true);
        file("e5e5e5e5e5e5e5e5.lock", false);
        file("f6f6f6f6f6f6f6f6.log", true);
        file("f6f6f6f6f6f6f6f6.json", false);
        file("notes.txt", true);
        let record = file("d4d4d4d4d4d4d4d4.json", false);
        let age = Duration::from_secs(24 * 3600);
        // d4's record is being removed by the same gc: its log goes with it.
        let found = finished_fleet_files(&registry, &[record], age).unwrap();
        let mut expected = aged.to_vec();
        expected.sort();
        assert_eq!(expected, found);
    }

    #[test]
    fn uptime_of_record_timestamps() {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        assert!(
            uptime(&now).is_some_and(|d| d < Duration::from_secs(2)),
            "{now}"
        );
        let hour_ago =
            humantime::format_rfc3339_millis(SystemTime::now() - Duration::from_secs(3600))
                .to_string();
        let up = uptime(&hour_ago).unwrap();
        assert!(
            up >= Duration::from_secs(3600) && up < Duration::from_secs(3602),
            "{up:?}"
        );
        assert_eq!(None, uptime("not a time"));
        assert_eq!(
            None,
            uptime("2999-01-01T00:00:00.000Z"),
            "a start in the future has no uptime"
        );
    }
}
