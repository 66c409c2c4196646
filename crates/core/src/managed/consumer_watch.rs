//! Wakes the runner when its consumer set may have changed, by event: inotify on the consumers
//! directory (a marker added or removed) and a pidfd per consumer pid (the process died, however
//! it died: close(), exit, crash, SIGKILL). Where either is unavailable, a 100 ms poll stands in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dir_watch::DirWatch;
use crate::platform::{self, ExitWatch};

const FALLBACK_POLL: Duration = Duration::from_millis(100);

/// What watching uses on this system; `doctor` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchSupport {
    /// Directory changes arrive by event ([`crate::platform::DIR_EVENTS`]).
    pub dir_events: bool,
    /// Process exits arrive by event ([`crate::platform::EXIT_EVENTS`]).
    pub exit_events: bool,
}

pub struct ConsumerWatch {
    dir: PathBuf,
    /// Markers added or removed.
    markers: DirWatch,
    pidfds: HashMap<i32, ExitWatch>,
    /// Some tracked pid has no pidfd (unsupported, or it died before we opened one).
    unwatched_pids: bool,
}

impl ConsumerWatch {
    /// Starts watching `dir` (created 0700 if missing; its parent must exist). Must be called
    /// within a tokio runtime.
    pub fn new(dir: &Path) -> ConsumerWatch {
        let _ = platform::create_private_dir(dir);
        ConsumerWatch {
            dir: dir.to_owned(),
            markers: DirWatch::new(dir, &[], FALLBACK_POLL),
            pidfds: HashMap::new(),
            unwatched_pids: false,
        }
    }

    pub fn support(&self) -> WatchSupport {
        WatchSupport {
            dir_events: self.markers.by_event(),
            exit_events: ExitWatch::supported(),
        }
    }

    /// Watches exactly these pids from now on (new ones get a pidfd, gone ones are dropped).
    pub fn track(&mut self, pids: &[i32]) {
        self.pidfds.retain(|pid, _| pids.contains(pid));
        for &pid in pids {
            if self.pidfds.contains_key(&pid) {
                continue;
            }
            if let Some(watch) = ExitWatch::open(pid) {
                self.pidfds.insert(pid, watch);
            }
        }
        self.unwatched_pids = self.pidfds.len() < pids.len();
    }

    /// Resolves when the consumer set may have changed.
    pub async fn changed(&mut self) {
        {
            let ConsumerWatch {
                markers,
                pidfds,
                unwatched_pids,
                ..
            } = self;
            // Without inotify the marker watch itself falls back to a poll; a pid without a
            // pidfd needs one too.
            let by_event_only = markers.by_event() && !*unwatched_pids;
            let pid_exit = async {
                if pidfds.is_empty() {
                    return std::future::pending::<()>().await;
                }
                let waits = pidfds.values().map(|watch| Box::pin(watch.exited()));
                let _ = futures_util::future::select_all(waits).await;
            };
            let poll = async {
                if by_event_only {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(FALLBACK_POLL).await
                }
            };
            tokio::select! {
                _ = pid_exit => {}
                _ = markers.changed() => {}
                _ = poll => {}
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn wakes_on_marker_changes_and_on_consumer_death() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = ConsumerWatch::new(dir.path());
        assert_eq!(
            WatchSupport {
                dir_events: true,
                exit_events: true
            },
            watch.support()
        );
        let path = dir.path().join("123.abcdef01");
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::fs::write(path, "").unwrap();
            })
        };
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("inotify wake");
        writer.await.unwrap();

        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        watch.track(&[child.id() as i32]);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("pidfd wake");
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "woke on the exit, not before"
        );
        child.wait().unwrap();
    }
}
