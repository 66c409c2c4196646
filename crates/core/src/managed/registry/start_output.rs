//! `<key>.start-output` (ours): the serve's output lines while its start is in progress, so every
//! consumer waiting on that start can show what it is doing (model downloads take minutes). The
//! runner creates (truncates) it as it spawns the serve, stops writing once the start is decided
//! (so a waiting consumer can read the last lines after its wait ends) and removes it when the
//! serve ends; consumers follow it from where it was when they began to wait. Lines are `o <text>` (stdout) or
//! `e <text>` (stderr); carriage returns (progress bars) end lines too. Bounded in size.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Registry;
use crate::supervisor::{OutputSink, OutputStream};

/// Past this size nothing more is written (the log and the failure's tail still have it all).
const START_OUTPUT_LIMIT: u64 = 4 * 1024 * 1024;
/// The longest line kept (longer ones are cut).
const LINE_LIMIT: usize = 4096;
/// How often a waiting consumer looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

impl Registry {
    /// `<key>.start-output`.
    pub fn start_output_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.start-output"))
    }
}

/// The runner's writer: an [`OutputSink`] for the serve's supervisor.
pub struct StartOutput {
    state: Arc<Mutex<WriterState>>,
}

struct WriterState {
    file: Option<File>,
    written: u64,
    /// A partial line per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

impl StartOutput {
    /// Creates (truncates) the file; a start without it just shows no progress.
    pub fn create(registry: &Registry, key: &str) -> StartOutput {
        let path = registry.start_output_path(key);
        let mut options = OpenOptions::new();
        options.create(true).write(true).truncate(true);
        let file = crate::platform::with_create_mode(&mut options, 0o600)
            .open(&path)
            .ok();
        StartOutput {
            state: Arc::new(Mutex::new(WriterState {
                file,
                written: 0,
                partial: [Vec::new(), Vec::new()],
            })),
        }
    }

    pub fn sink(&self) -> OutputSink {
        let state = self.state.clone();
        OutputSink(Arc::new(move |stream, bytes| {
            if let Ok(mut state) = state.lock() {
                state.push(stream, bytes);
            }
        }))
    }

    /// The start is decided: nothing more is written (the file stays until the serve ends).
    pub fn finish(self) {
        if let Ok(mut state) = self.state.lock() {
            state.file = None;
        }
    }

    /// Removes `<key>.start-output` (the runner, as its serve ends).
    pub fn remove(registry: &Registry, key: &str) {
        let _ = fs::remove_file(registry.start_output_path(key));
    }
}

impl WriterState {
    fn push(&mut self, stream: OutputStream, bytes: &[u8]) {
        let (index, tag) = match stream {
            OutputStream::Stdout => (0, b'o'),
            OutputStream::Stderr => (1, b'e'),
        };
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                let line = std::mem::take(&mut self.partial[index]);
                if !line.is_empty() {
                    lines.push(line);
                }
            } else if self.partial[index].len() < LINE_LIMIT {
                self.partial[index].push(b);
            }
        }
        for line in lines {
            self.write_line(tag, &line);
        }
    }

    fn write_line(&mut self, tag: u8, line: &[u8]) {
        let Some(file) = &mut self.file else {
            return;
        };
        let size = line.len() as u64 + 3;
        if self.written + size > START_OUTPUT_LIMIT {
            return;
        }
        let mut record = Vec::with_capacity(line.len() + 3);
        record.extend_from_slice(&[tag, b' ']);
        record.extend_from_slice(line);
        record.push(b'\n');
        if file.write_all(&record).is_ok() {
            self.written += size;
        }
    }
}

/// A consumer's view of `<key>.start-output`: the complete lines added since it began.
pub struct StartOutputFollower {
    path: PathBuf,
    /// The file followed (its identity) and how far it was read.
    at: Option<((u64, u64), u64)>,
    carry: Vec<u8>,
}

impl StartOutputFollower {
    /// Starts at the current end of the file (lines already there were before we waited).
    pub fn new(registry: &Registry, key: &str) -> StartOutputFollower {
        let path = registry.start_output_path(key);
        let at = File::open(&path).ok().and_then(|f| {
            let identity = crate::platform::file_identity(&f).ok()?;
            Some((identity, f.metadata().ok()?.len()))
        });
        StartOutputFollower {
            path,
            at,
            carry: Vec::new(),
        }
    }

    /// The complete lines added since the last call, with their stream.
    pub fn poll(&mut self) -> Vec<(OutputStream, String)> {
        let Ok(mut file) = File::open(&self.path) else {
            return vec![];
        };
        let Ok(identity) = crate::platform::file_identity(&file) else {
            return vec![];
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let offset = match self.at {
            // (A shorter file of the same identity is a new one on a reused inode.)
            Some((known, offset)) if known == identity && len >= offset => offset,
            // A new start's file: from its beginning.
            _ => {
                self.carry.clear();
                0
            }
        };
        let mut added = Vec::new();
        if file.seek(SeekFrom::Start(offset)).is_err()
            || file
                .take(START_OUTPUT_LIMIT)
                .read_to_end(&mut added)
                .is_err()
        {
            return vec![];
        }
        self.at = Some((identity, offset + added.len() as u64));
        self.carry.extend_from_slice(&added);
        let Some(end) = self.carry.iter().rposition(|&b| b == b'\n') else {
            return vec![];
        };
        let complete: Vec<u8> = self.carry.drain(..=end).collect();
        complete
            .split(|&b| b == b'\n')
            .filter_map(|record| {
                let (tag, text) = (record.first()?, record.get(2..)?);
                let stream = match tag {
                    b'o' => OutputStream::Stdout,
                    b'e' => OutputStream::Stderr,
                    _ => return None,
                };
                Some((stream, String::from_utf8_lossy(text).into_owned()))
            })
            .collect()
    }

    /// Runs `work`, passing every line added meanwhile to `on_line`, and the last lines once it
    /// is done (written just before the start was decided).
    pub async fn follow_while<T>(
        mut self,
        work: impl std::future::Future<Output = T>,
        mut on_line: impl FnMut(OutputStream, String),
    ) -> T {
        let done = {
            let follower = &mut self;
            let on_line = &mut on_line;
            let follow = async move {
                loop {
                    for (stream, line) in follower.poll() {
                        on_line(stream, line);
                    }
                    tokio::time::sleep(FOLLOW_INTERVAL).await;
                }
            };
            tokio::select! {
                done = work => done,
                never = follow => never,
            }
        };
        for (stream, line) in self.poll() {
            on_line(stream, line);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_written_are_followed_by_stream_across_chunks_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path());
        let mut follower = StartOutputFollower::new(&reg, "k");
        assert!(follower.poll().is_empty());
        let out = StartOutput::create(&reg, "k");
        let sink = out.sink();
        (sink.0)(OutputStream::Stdout, b"downloading 1");
        (sink.0)(OutputStream::Stderr, b"warn\n");
        (sink.0)(OutputStream::Stdout, b"0%\rdownloading 20%\r\n");
        assert_eq!(
            vec![
                (OutputStream::Stderr, "warn".to_owned()),
                (OutputStream::Stdout, "downloading 10%".to_owned()),
                (OutputStream::Stdout, "downloading 20%".to_owned()),
            ],
            follower.poll()
        );
        assert!(follower.poll().is_empty());
        // A follower that begins now sees only what comes next.
        let mut late = StartOutputFollower::new(&reg, "k");
        (sink.0)(OutputStream::Stdout, b"loaded\n");
        assert_eq!(
            vec![(OutputStream::Stdout, "loaded".to_owned())],
            late.poll()
        );
        out.finish();
        (sink.0)(OutputStream::Stdout, b"after\n");
        assert!(late.poll().is_empty(), "nothing is written after finish");
        // The next start's file is read from its beginning.
        let next = StartOutput::create(&reg, "k");
        (next.sink().0)(OutputStream::Stdout, b"again\n");
        assert_eq!(
            vec![(OutputStream::Stdout, "again".to_owned())],
            late.poll()
        );
    }
}
