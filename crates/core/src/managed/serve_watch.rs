//! A consumer's watch on the serve it uses: resolves as soon as that serve exits (a pidfd, kqueue
//! or process handle; no request needed), with how it ended as its runner recorded it in
//! `<key>.exits` (crashed, hung, stopped, reaped; exit code or signal; output tail).

use std::time::{Duration, Instant};

use crate::process::{self, ProcessIdentity};
use crate::registry::{now_ms, ExitKind, Registry, ServeExit};

/// How long to wait, after the serve is gone, for its runner to record how it ended (it stops
/// the serve's group and adopted children first).
const EXIT_RECORD_BOUND: Duration = Duration::from_secs(3);
const EXIT_RECORD_POLL: Duration = Duration::from_millis(20);

/// Resolves once `serve` has exited: the runner's account of it, or (no runner recorded it: the
/// runner died with it, or the record came from upstream's runner) `crashed` with no status.
pub async fn serve_exited(
    registry: &Registry,
    key: &str,
    serve: &ProcessIdentity,
    port: u16,
) -> ServeExit {
    while !serve.liveness().is_provably_dead() {
        // Resolves at the exit where exits are events; after a short interval elsewhere.
        process::exited(Some(serve.pid)).await;
    }
    let deadline = Instant::now() + EXIT_RECORD_BOUND;
    loop {
        // Pid and port: an older serve of this fleet that had the same pid had another port.
        let recorded = registry.exit_of(key, serve.pid).filter(|e| e.port == port);
        if let Some(exit) = recorded {
            return exit;
        }
        if Instant::now() >= deadline {
            return ServeExit {
                serve_pid: serve.pid,
                port,
                kind: ExitKind::Crashed,
                at: now_ms(),
                code: None,
                signal: None,
                output_tail: String::new(),
                attempt: None,
                healthy_at: None,
                peak_bytes: None,
            };
        }
        tokio::time::sleep(EXIT_RECORD_POLL).await;
    }
}
