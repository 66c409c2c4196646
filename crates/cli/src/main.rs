//! `qvac-managed`: the detached runner that owns one managed serve (`run`, hidden), and the user
//! CLI over the registry: `ps`, `stop`, `gc`, `reset`, `logs`, `doctor`.

mod commands;
mod platform;
mod runner;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "qvac-managed", version, about = "Inspect and control managed qvac serves", long_about = None)]
struct Cli {
    /// Registry directory (default: $QVAC_MANAGED_REGISTRY, else ~/.qvac/managed-serves).
    #[arg(long, global = true, value_name = "DIR")]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the runner for one serve (started by a consumer; detaches at once).
    #[command(hide = true)]
    Run {
        /// The handoff file written by the consumer (deleted on reading).
        params: PathBuf,
        /// Stay in the foreground (for debugging): no fork, logs to stderr.
        #[arg(long)]
        foreground: bool,
        /// Already detached (Windows re-spawns the runner with this instead of forking).
        #[arg(long, hide = true, conflicts_with = "foreground")]
        detached: bool,
    },
    /// List live serves: fleet, models, pids, port, consumers, connections, memory (now and
    /// peak, the serve's whole tree), uptime, idle timeout, last probe.
    Ps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop a serve gracefully through its runner (SIGTERM; the runner stops the serve's group).
    Stop {
        /// A fleet key, or a unique prefix of one.
        fleet: Option<String>,
        /// Stop every live serve.
        #[arg(long, conflicts_with = "fleet")]
        all: bool,
    },
    /// Remove leftovers of provably dead serves and consumers (never anything live), and the logs,
    /// start errors and exit histories of fleets with no record once they are 24 h old; report
    /// fleets held by the crash-loop cap.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget a fleet's recorded crashes, so a fleet held by the crash-loop cap starts again at
    /// the next request.
    Reset {
        /// A fleet key, or a unique prefix of one (see `qvac-managed gc`).
        fleet: String,
    },
    /// Pin a fleet: it is never evicted to make room under a memory budget.
    Pin {
        /// A fleet key, or a unique prefix of one.
        fleet: String,
    },
    /// Unpin a fleet: when idle it may be evicted under a memory budget again.
    Unpin {
        /// A fleet key, or a unique prefix of one.
        fleet: String,
    },
    /// Print a fleet's runner log.
    Logs {
        /// A fleet key, or a unique prefix of one.
        fleet: String,
        /// Keep printing new lines as they are written, across log rotations (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
    },
    /// Check the registry, the serve binary, stale files and event support; exit 1 on problems.
    Doctor {
        /// Check this serve binary instead of resolving it as the runner does from the working
        /// directory (`node_modules/@qvac/cli` above it, else `qvac` on PATH).
        #[arg(long, value_name = "PATH")]
        serve_bin_path: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run {
        params,
        foreground,
        detached,
    } = cli.command
    {
        return runner::run(&params, foreground, detached);
    }
    let registry = match qvac_managed_core::registry::Registry::at_or_default(cli.registry) {
        Ok(registry) => registry,
        Err(err) => {
            eprintln!("qvac-managed: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run { .. } => unreachable!("handled above"),
        Command::Ps { json } => commands::ps(&registry, json),
        Command::Stop { fleet, all } => commands::stop(&registry, fleet.as_deref(), all),
        Command::Gc { dry_run, json } => commands::gc(&registry, dry_run, json),
        Command::Reset { fleet } => commands::reset(&registry, &fleet),
        Command::Pin { fleet } => commands::pin(&registry, &fleet, true),
        Command::Unpin { fleet } => commands::pin(&registry, &fleet, false),
        Command::Logs { fleet, follow } => commands::logs(&registry, &fleet, follow),
        Command::Doctor { serve_bin_path } => commands::doctor(&registry, serve_bin_path),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("qvac-managed: {err}");
            ExitCode::from(1)
        }
    }
}
