//! The primitives the managed serve is built on, exported for the JS SDK worker and Electron
//! main processes: PID lock, file lock, retry, process identity, the process supervisor and the
//! shutdown safety net.

pub mod file_lock;
pub mod pid_lock;
pub mod process;
pub mod retry;
pub mod safety_net;
pub mod supervisor;
