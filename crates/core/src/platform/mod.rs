//! OS specifics, one module per platform. Everything above this module is portable.
//!
//! Linux is built and tested. Other Unix systems compile with the portable fallbacks below
//! (no start time, no boot id, no flock holder lookup): liveness then rests on `kill(pid, 0)`
//! alone, which cannot tell a reused pid from the original holder.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{
    boot_id, flock_holder_pid, process_group_alive, process_is_zombie, process_start_time,
    tcp_listener_pid,
};

#[cfg(not(target_os = "linux"))]
mod fallback {
    use std::fs::File;

    pub fn process_start_time(_pid: i32) -> Option<u64> {
        None
    }

    pub fn boot_id() -> Option<String> {
        None
    }

    pub fn flock_holder_pid(_file: &File) -> Option<i32> {
        None
    }

    pub fn process_is_zombie(_pid: i32) -> bool {
        false
    }

    pub fn tcp_listener_pid(_port: u16) -> Option<i32> {
        None
    }

    /// Counts zombies too (no portable way to tell them apart).
    pub fn process_group_alive(pgid: i32) -> bool {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
    }
}
#[cfg(not(target_os = "linux"))]
pub use fallback::{
    boot_id, flock_holder_pid, process_group_alive, process_is_zombie, process_start_time,
    tcp_listener_pid,
};
