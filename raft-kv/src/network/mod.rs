//! The transports between replicas: [`mem`] inside one process, [`tcp`] over sockets.

pub mod mem;
pub mod tcp;

use std::time::Duration;

use openraft::network::Backoff;

/// How long a replica waits before calling an unreachable peer again: short, so a replica that
/// comes back is caught up quickly (openraft's default is 500 ms).
pub(crate) fn short_backoff() -> Backoff {
    Backoff::new(std::iter::repeat(Duration::from_millis(20)))
}
