//! Wakes a task when named entries of a directory change (created, written, renamed, deleted),
//! by inotify on Linux; where that is unavailable, a fallback poll stands in. The watch follows
//! the directory through removal and re-creation (the consumers directory goes and comes back in
//! normal use): a replacement wakes the task, which looks again. Used by the runner to
//! keep its record true and by consumers waiting for a record, a start failure or the spawn lock.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::platform::DirWatcher;

pub struct DirWatch {
    inotify: Option<DirWatcher>,
    names: Vec<OsString>,
    fallback_poll: Duration,
}

impl DirWatch {
    /// Watches `names` in `dir` (every name when empty). `fallback_poll` bounds each wait when
    /// inotify is missing. Must be called within a tokio runtime.
    pub fn new(dir: &Path, names: &[String], fallback_poll: Duration) -> DirWatch {
        DirWatch {
            inotify: DirWatcher::new(dir),
            names: names.iter().map(OsString::from).collect(),
            fallback_poll,
        }
    }

    /// True when changes arrive by event (not by the fallback poll).
    pub fn by_event(&self) -> bool {
        self.inotify.as_ref().is_some_and(DirWatcher::armed)
    }

    /// Resolves when one of the watched names (or the directory itself) may have changed.
    pub async fn changed(&mut self) {
        if let Some(inotify) = self.inotify.as_mut().filter(|w| w.armed()) {
            loop {
                let names = inotify.next_events().await;
                let relevant = self.names.is_empty()
                    || names
                        .iter()
                        .any(|name| name.as_ref().is_none_or(|n| self.names.contains(n)));
                if relevant {
                    return;
                }
            }
        }
        tokio::time::sleep(self.fallback_poll).await
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_for_watched_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = DirWatch::new(dir.path(), &["k.json".into()], Duration::from_secs(60));
        assert!(watch.by_event());
        std::fs::write(dir.path().join("other.log"), "x").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(200), watch.changed()).await;
        assert!(quiet.is_err(), "woke for a name it does not watch");
        let path = dir.path().join("k.json");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(path, "{}").unwrap();
        });
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woke for k.json");
    }

    /// Drains wakes until none comes for 100 ms.
    async fn settle(watch: &mut DirWatch) {
        while tokio::time::timeout(Duration::from_millis(100), watch.changed())
            .await
            .is_ok()
        {}
    }

    #[tokio::test]
    async fn follows_the_directory_through_removal_and_replacement() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("k.consumers");
        std::fs::create_dir(&dir).unwrap();
        let mut watch = DirWatch::new(&dir, &[], Duration::from_secs(60));
        // Removed (as a failed attach removes an empty consumers dir)...
        std::fs::remove_dir(&dir).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woke for the removal");
        assert!(watch.by_event(), "still watching by event while it is gone");
        // ...then a fresh one renamed into place, as the next marker does.
        let staging = parent.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        std::fs::rename(&staging, &dir).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woke for the replacement");
        settle(&mut watch).await;
        // Entries of the new directory wake it: the watch moved to it.
        std::fs::write(dir.join("123.abcdef01"), "").unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woke for a marker in the re-created directory");
        assert!(watch.by_event());
    }
}
