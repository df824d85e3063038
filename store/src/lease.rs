//! Experiment leases: at most one process drives an experiment at a time. The holder
//! writes a heartbeat while it runs; whether an existing lease is stale (its holder died)
//! is the caller's policy, evaluated inside the store's compare-and-set.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Who holds an experiment, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique id of the holding process (random, chosen at its start).
    pub holder: String,
    /// What the holder is (`kestrel run`, `kestrel serve`), for messages.
    pub command: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// The host's boot id (Linux), so a pid is only compared within one boot.
    pub boot_id: Option<String>,
    /// The holder process's start time (clock ticks since boot), so a reused pid is not
    /// mistaken for the holder.
    pub pid_start: Option<u64>,
    /// When it took the lease.
    pub acquired_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat: Timestamp,
}

/// The result of [`crate::Store::acquire_lease`].
#[derive(Debug, Clone, PartialEq)]
pub enum Acquire {
    /// The caller holds the lease now; `took_over` is the stale lease it replaced.
    Acquired {
        /// The previous holder's lease, when it was stale.
        took_over: Option<Lease>,
    },
    /// Another live process holds it.
    Held(Lease),
}
