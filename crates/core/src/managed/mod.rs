//! The managed serve: one `qvac serve` per fleet key shared by every process on the machine —
//! the options and catalog it is asked with, the on-disk registry it is found in, the consumer
//! side that attaches or starts it, and the runner's launch, serve start and consumer watch.

pub mod budget;
pub mod catalog;
pub mod consumer;
pub mod consumer_watch;
pub mod launch;
pub mod managed_options;
pub mod memory_size;
pub mod registry;
pub mod serve_start;
pub mod serve_watch;
