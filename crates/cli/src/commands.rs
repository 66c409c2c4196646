//! The user commands over the registry. Every command reads the same files the library writes;
//! `stop` signals only runners whose records are trusted (pid and start time match).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use qvac_managed_core::consumer_watch::ConsumerWatch;
use qvac_managed_core::options::millis_saturating;
use qvac_managed_core::registry::{js_number_value, RecordState, Registry, ServeInfo};
use qvac_managed_core::serve_start::find_on_path;

type CommandResult = Result<ExitCode, Box<dyn std::error::Error>>;

pub fn ps(registry: &Registry, json: bool) -> CommandResult {
    let serves = registry.list_serves()?;
    if json {
        let list: Vec<serde_json::Value> = serves.iter().map(serve_json).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if serves.is_empty() {
        println!(
            "no managed serves running (registry: {})",
            registry.dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16}  {:>7}  {:>7}  {:>5}  {:>9}  {:>8}  {:>10}  MODELS",
        "FLEET", "SERVE", "RUNNER", "PORT", "CONSUMERS", "UPTIME", "IDLE AFTER"
    );
    for s in &serves {
        println!(
            "{:<16}  {:>7}  {:>7}  {:>5}  {:>9}  {:>8}  {:>10}  {}",
            short_key(&s.fleet_key),
            s.serve_pid,
            s.runner_pid,
            s.port,
            s.consumers,
            uptime(&s.started_at).map_or_else(|| "?".into(), human),
            human(millis_saturating(s.idle_timeout_ms)),
            s.models.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn serve_json(s: &ServeInfo) -> serde_json::Value {
    serde_json::json!({
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
    let matches: Vec<ServeInfo> = registry
        .list_serves()?
        .into_iter()
        .filter(|s| s.fleet_key.starts_with(prefix))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        0 => Err(format!("no live serve with fleet key {prefix}; see `qvac-managed ps`").into()),
        _ => Err(format!(
            "{prefix} matches {} fleets ({}); give more of the key",
            matches.len(),
            matches
                .iter()
                .map(|s| s.fleet_key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into()),
    }
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
    let mut failed = false;
    for serve in targets {
        // Re-read and trust-check right before signalling: never signal a pid that is not the
        // recorded runner (pid + start time).
        let RecordState::Trusted(record) = registry.read_record(&serve.fleet_key)? else {
            println!("{}: already gone", serve.fleet_key);
            continue;
        };
        if !record.runner_is_proven() {
            println!(
                "{}: not stopped: pid {} cannot be proven to be this fleet's runner (the record has no start time and its command line does not name the fleet); stop it yourself if it is",
                serve.fleet_key, record.runner_pid
            );
            failed = true;
            continue;
        }
        kill(Pid::from_raw(record.runner_pid), Signal::SIGTERM)?;
        print!(
            "{}: stopping (runner {}, serve {}) ... ",
            serve.fleet_key, record.runner_pid, record.serve_pid
        );
        std::io::stdout().flush()?;
        let started = Instant::now();
        let serve_identity = record.serve_identity();
        let runner_identity = record.runner_identity();
        let deadline = started + Duration::from_secs(15);
        while Instant::now() < deadline
            && !(serve_identity.liveness().is_provably_dead()
                && runner_identity.liveness().is_provably_dead())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if serve_identity.liveness().is_provably_dead()
            && runner_identity.liveness().is_provably_dead()
        {
            println!("stopped in {} ms", started.elapsed().as_millis());
        } else {
            println!(
                "still running after 15 s; check `qvac-managed logs {}`",
                serve.fleet_key
            );
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn gc(registry: &Registry, dry_run: bool, json: bool) -> CommandResult {
    let report = if dry_run {
        registry.sweep_dry_run()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(registry.sweep())?
    };
    let paths = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dryRun": dry_run,
                "removed": paths(&report.removed),
                "keptUntrusted": paths(&report.kept_untrusted),
                "stoppedOrphans": paths(&report.stopped_orphans),
                "corrupt": paths(&report.corrupt),
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
        "would probe (and stop if it answers as ours) the orphaned serve of"
    } else {
        "stopped the orphaned serve of"
    };
    for path in &report.stopped_orphans {
        println!("{orphan_verb} {}", path.display());
    }
    for path in &report.kept_untrusted {
        println!("kept {} (a process it names may be alive)", path.display());
    }
    for path in &report.corrupt {
        println!(
            "kept {} (unreadable record; remove it by hand once no serve uses it)",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(registry: &Registry, fleet: &str, follow: bool) -> CommandResult {
    let key = match find_fleet(registry, fleet) {
        Ok(serve) => serve.fleet_key,
        // A finished fleet still has its log; accept an exact key.
        Err(_) if registry.log_path(fleet).exists() => fleet.to_owned(),
        Err(err) => return Err(err),
    };
    let path = registry.log_path(&key);
    let mut file =
        fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut out = std::io::stdout();
    std::io::copy(&mut file, &mut out)?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut pos = file.stream_position()?;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // rotated
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        out.write_all(&chunk)?;
        out.flush()?;
        pos += chunk.len() as u64;
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
                format!("{} (0700, ours)", registry.dir().display()),
            ),
            Err(err) => report(false, "registry", err.to_string()),
        },
    }
    let serve = serve_bin_path.or_else(|| find_on_path("qvac"));
    match serve {
        Some(path) => match serve_version(&path) {
            Ok(version) => report(true, "serve binary", format!("{} ({version})", path.display())),
            Err(err) => report(false, "serve binary", format!("{}: {err}", path.display())),
        },
        None => report(
            false,
            "serve binary",
            "no `qvac` on PATH; install it with `npm i @qvac/cli` in your project (the library finds it there) or pass serveBinPath".into(),
        ),
    }
    if registry.dir().exists() {
        match registry.sweep_dry_run() {
            Ok(plan) if plan.removed.is_empty() && plan.corrupt.is_empty() => {
                report(true, "stale files", "none".into())
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
        support.inotify,
        "inotify",
        if support.inotify {
            "available".into()
        } else {
            "unavailable: consumers are polled every 100 ms".into()
        },
    );
    report(
        support.pidfd,
        "pidfd",
        if support.pidfd {
            "available".into()
        } else {
            "unavailable (kernel < 5.3?): consumer deaths are polled every 100 ms".into()
        },
    );
    if problems > 0 {
        println!("{problems} problem(s) found");
        return Ok(ExitCode::from(1));
    }
    println!("all checks passed");
    Ok(ExitCode::SUCCESS)
}

/// `<serve> --version`, bounded to 5 s.
fn serve_version(path: &std::path::Path) -> Result<String, String> {
    let mut child = std::process::Command::new(path)
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
