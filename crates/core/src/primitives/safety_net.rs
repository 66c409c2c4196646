//! The shutdown safety net: a plain OS thread that ends the process if it has not exited within
//! a deadline. It does not depend on any event loop, so it fires even when the JS thread is stuck
//! in a busy loop or a blocking call during cleanup.
//!
//! When it fires it runs a last synchronous step (release locks, kill children), says so on
//! stderr, and calls `_exit`: atexit handlers are skipped on purpose, since the thread they would
//! run on may be the one that is stuck.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A pending safety net; dropping the handle does not disarm it.
#[derive(Clone, Debug)]
pub struct SafetyNet {
    disarmed: Arc<AtomicBool>,
}

impl SafetyNet {
    /// Arms a net that calls `last_step` and then `_exit(code)` after `after`, unless disarmed.
    pub fn arm(after: Duration, code: i32, last_step: impl FnOnce() + Send + 'static) -> SafetyNet {
        let disarmed = Arc::new(AtomicBool::new(false));
        let watch = disarmed.clone();
        std::thread::Builder::new()
            .name("qvac-safety-net".into())
            .spawn(move || {
                std::thread::sleep(after);
                if watch.load(Ordering::SeqCst) {
                    return;
                }
                last_step();
                eprintln!(
                    "qvac-managed: shutdown did not finish within {} ms; exiting with code {code}",
                    after.as_millis()
                );
                crate::platform::exit_immediately(code)
            })
            .expect("the safety-net thread starts");
        SafetyNet { disarmed }
    }

    /// Stops the net from firing (the process is exiting on its own).
    pub fn disarm(&self) {
        self.disarmed.store(true, Ordering::SeqCst);
    }
}
