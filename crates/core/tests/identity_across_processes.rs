//! A process's own identity reads the same to itself as to other processes, and a PID lock held
//! by a live process is not taken by another. Under qemu-user a process that read its own
//! `/proc/self/stat` (or `/proc/<own pid>/stat`) got qemu's imitation, whose start time is the
//! calling thread's creation: from any thread but the first, every self-check then disagreed
//! with what other processes read, so a live holder's lock was stolen and a consumer's marker
//! read as dead. Each test re-runs this binary as the other process ([`helper`]), and reads its
//! own identity from a thread made well after the process started.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use qvac_managed_core::{Liveness, PidLock, PidLockError, ProcessIdentity};

/// What the helper process does: `read` (prints what it reads of another process) or `hold`.
const ROLE: &str = "QVAC_TEST_IDENTITY_ROLE";
/// For `read`: the record of the process to read, as `to_record` wrote it, lines joined by `;`.
const RECORD: &str = "QVAC_TEST_IDENTITY_RECORD";
/// For `hold`: the lock file to take.
const LOCK: &str = "QVAC_TEST_IDENTITY_LOCK";

/// Waits long enough that a thread made now starts some clock ticks after the process (under
/// qemu its own start time would then read differently), then runs `f` on such a thread.
fn on_a_late_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::sleep(Duration::from_millis(150));
    std::thread::spawn(f).join().unwrap()
}

/// Not a test of its own: the other process of the tests below, by [`ROLE`].
#[test]
fn helper() {
    match std::env::var(ROLE).as_deref() {
        Ok("read") => {
            let record = std::env::var(RECORD).unwrap().replace(';', "\n");
            let recorded = ProcessIdentity::parse_record(&record).unwrap();
            let now = ProcessIdentity::of(recorded.pid).unwrap();
            println!(
                "start={} liveness={:?}",
                now.start_time.map_or(-1, |s| s as i64),
                recorded.liveness()
            );
        }
        Ok("hold") => {
            let path = std::env::var(LOCK).unwrap();
            let lock = on_a_late_thread(move || PidLock::try_acquire(path.as_ref()).unwrap());
            println!("held");
            // Held until the test closes our stdin.
            let _ = std::io::stdin().lines().count();
            drop(lock);
        }
        _ => {}
    }
}

/// Starts this binary as the helper with `envs`; its stdout lines arrive on the receiver.
fn helper_process(envs: &[(&str, &str)]) -> (Child, Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper", "--nocapture", "--test-threads=1"])
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The first line from the helper that contains `marker` (libtest prints `test helper ... `
/// before the helper's own output, on the same line), from `marker` on.
fn line_with(child: &mut Child, lines: &Receiver<String>, marker: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(at) = line.find(marker) {
                    return line[at..].to_owned();
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the helper printed no line with {marker:?}");
            }
        }
    }
}

#[test]
fn own_identity_reads_as_another_process_reads_it() {
    let me = on_a_late_thread(ProcessIdentity::current);
    assert_eq!(std::process::id() as i32, me.pid);
    assert!(me.start_time.is_some(), "Linux tells start times");
    assert_eq!(Liveness::Alive, me.liveness());
    assert!(on_a_late_thread({
        let me = me.clone();
        move || me.is_current_process()
    }));
    let record = me.to_record().trim_end().replace('\n', ";");
    let (mut child, lines) = helper_process(&[(ROLE, "read"), (RECORD, &record)]);
    let seen = line_with(&mut child, &lines, "start=");
    assert_eq!(
        format!("start={} liveness=Alive", me.start_time.unwrap()),
        seen,
        "another process reads our start time as we do, and our record as alive"
    );
    child.wait().unwrap();
}

#[test]
fn a_live_holder_in_another_process_keeps_its_pid_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.lock");
    let path_text = path.to_str().unwrap().to_owned();
    let (mut holder, lines) = helper_process(&[(ROLE, "hold"), (LOCK, &path_text)]);
    line_with(&mut holder, &lines, "held");

    let taken = on_a_late_thread({
        let path = path.clone();
        move || PidLock::try_acquire(&path)
    });
    match taken {
        Err(PidLockError::Held(held)) => {
            assert_eq!(Some(holder.id() as i32), held.holder.pid());
            assert!(held.holder.is_alive(), "the holder reads as alive");
        }
        other => panic!("a live holder's lock was taken: {other:?}"),
    }
    let inspected = PidLock::inspect(&path).unwrap().unwrap();
    assert!(inspected.is_alive() && !inspected.is_stale());

    // Once the holder is gone (killed, so it released nothing), the lock is taken.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let mut lock = PidLock::try_acquire(&path).expect("a dead holder's lock is taken");
    lock.release().unwrap();
}
