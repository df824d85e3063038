//! One writer per experiment: a process that drives an experiment holds its lease in the
//! store and renews it while it runs. A second `kestrel run` or `serve` is refused with the
//! holder's name; a lease whose holder died is taken over: at once when the holder was a
//! process on this host that no longer exists, otherwise when its heartbeat is older than
//! [`TTL`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use kestrel_store::{Acquire, Lease, Store};

use crate::procinfo;
use crate::reconciler::ControllerError;

/// A lease not renewed for this long is stale.
pub const TTL: Duration = Duration::from_secs(30);
/// How often a holder renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// This process's identity as a lease holder (one per process).
fn me(command: &str, now: Timestamp) -> Lease {
    static ID: OnceLock<String> = OnceLock::new();
    let pid = std::process::id();
    let holder = ID
        .get_or_init(|| format!("{pid}-{:016x}", rand::random::<u64>()))
        .clone();
    Lease {
        holder,
        command: command.to_string(),
        pid,
        host: procinfo::hostname(),
        boot_id: procinfo::boot_id(),
        pid_start: procinfo::start_ticks(pid),
        acquired_at: now,
        heartbeat: now,
    }
}

/// Whether `lease` (seen from `here`, at `now`) belongs to a holder that is gone.
/// `process_alive` answers for a process of this host and boot.
pub fn is_stale(
    lease: &Lease,
    here: &Lease,
    now: Timestamp,
    process_alive: &dyn Fn(u32, Option<u64>) -> bool,
) -> bool {
    let ttl = jiff::SignedDuration::from_secs(i64::try_from(TTL.as_secs()).unwrap_or(i64::MAX));
    let silent = now.duration_since(lease.heartbeat) > ttl;
    let same_boot =
        lease.host == here.host && lease.boot_id.is_some() && lease.boot_id == here.boot_id;
    silent || (same_boot && !process_alive(lease.pid, lease.pid_start))
}

fn process_alive(pid: u32, start: Option<u64>) -> bool {
    match start {
        Some(s) => procinfo::alive(pid, s),
        None => procinfo::start_ticks(pid).is_some(),
    }
}

/// A held lease; renew it with [`LeaseGuard::beat`] and give it up with
/// [`LeaseGuard::release`] (a holder that dies simply stops renewing).
pub struct LeaseGuard {
    store: Arc<dyn Store>,
    experiment: String,
    holder: String,
    last: Option<std::time::Instant>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("experiment", &self.experiment)
            .field("holder", &self.holder)
            .finish()
    }
}

/// Takes the lease of `experiment` for this process (`command` names it in messages), or
/// fails with [`ControllerError::Held`] naming the live holder.
pub fn acquire(
    store: &Arc<dyn Store>,
    experiment: &str,
    command: &str,
) -> Result<LeaseGuard, ControllerError> {
    let now = Timestamp::now();
    let me = me(command, now);
    let stale = |l: &Lease| is_stale(l, &me, now, &process_alive);
    match store.acquire_lease(experiment, &me, &stale)? {
        Acquire::Acquired { took_over } => {
            if let Some(old) = took_over {
                tracing::warn!(experiment, holder = %describe(&old), "took over the lease of a holder that is gone");
            }
            Ok(LeaseGuard {
                store: store.clone(),
                experiment: experiment.to_string(),
                holder: me.holder,
                last: Some(std::time::Instant::now()),
            })
        }
        Acquire::Held(l) => Err(ControllerError::Held {
            experiment: experiment.to_string(),
            holder: describe(&l),
        }),
    }
}

/// The live holder of `experiment`'s lease, if any (a stale lease does not count).
pub fn live_holder(store: &dyn Store, experiment: &str) -> Result<Option<Lease>, ControllerError> {
    let now = Timestamp::now();
    let here = me("", now);
    Ok(store
        .lease(experiment)?
        .filter(|l| l.holder == here.holder || !is_stale(l, &here, now, &process_alive)))
}

/// Asks the process holding `lease` to stop its experiment (SIGTERM, which `kestrel run`
/// handles as Ctrl-C: trials stopped and recorded, the experiment marked Stopped). Only a
/// holder on this host and boot, and the very process that took the lease (its start
/// time is checked, so a reused pid is never signalled), can be asked.
pub fn ask_to_stop(lease: &Lease) -> Result<(), String> {
    let here = me("", Timestamp::now());
    let same_boot =
        lease.host == here.host && lease.boot_id.is_some() && lease.boot_id == here.boot_id;
    if !same_boot {
        return Err(format!(
            "it is run by {} on another machine; stop it there",
            describe(lease)
        ));
    }
    if !process_alive(lease.pid, lease.pid_start) {
        return Err(format!("{} has already exited", describe(lease)));
    }
    let pid = i32::try_from(lease.pid).map_err(|_| format!("pid {} is out of range", lease.pid))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| format!("cannot signal {}: {e}", describe(lease)))
}

/// `kestrel run (pid 42 on host h, since 2026-12-02T10:00:00Z)`.
pub fn describe(l: &Lease) -> String {
    format!(
        "{} (pid {} on host {}, since {})",
        l.command,
        l.pid,
        l.host,
        l.acquired_at
            .round(jiff::Unit::Second)
            .unwrap_or(l.acquired_at)
    )
}

impl LeaseGuard {
    /// Renews the lease when a heartbeat is due; fails with [`ControllerError::LeaseLost`]
    /// when another process took it over (this one looked dead), after which this
    /// process must not touch the experiment.
    pub fn beat(&mut self) -> Result<(), ControllerError> {
        if self.last.is_some_and(|t| t.elapsed() < HEARTBEAT) {
            return Ok(());
        }
        if self
            .store
            .renew_lease(&self.experiment, &self.holder, Timestamp::now())?
        {
            self.last = Some(std::time::Instant::now());
            Ok(())
        } else {
            Err(ControllerError::LeaseLost(self.experiment.clone()))
        }
    }

    /// Gives the lease up.
    pub fn release(self) {
        if let Err(e) = self.store.release_lease(&self.experiment, &self.holder) {
            tracing::warn!(experiment = %self.experiment, error = %e, "cannot release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(host: &str, boot: Option<&str>, pid: u32, beat: i64) -> Lease {
        let at = Timestamp::from_second(1_700_000_000 + beat).unwrap();
        Lease {
            holder: format!("{host}-{pid}"),
            command: "kestrel run".into(),
            pid,
            host: host.into(),
            boot_id: boot.map(str::to_string),
            pid_start: Some(7),
            acquired_at: at,
            heartbeat: at,
        }
    }

    #[test]
    fn stale_when_silent_or_its_local_process_is_gone() {
        let here = lease("a", Some("boot1"), 1, 0);
        let now = Timestamp::from_second(1_700_000_100).unwrap();
        let alive = |pid: u32, _: Option<u64>| pid == 10;
        // (holder, stale?)
        let rows = [
            (lease("a", Some("boot1"), 10, 95), false), // live local process, fresh beat
            (lease("a", Some("boot1"), 11, 95), true),  // local process gone
            (lease("a", Some("boot0"), 11, 95), false), // other boot: pid means nothing
            (lease("b", Some("boot1"), 11, 95), false), // other host: only the beat counts
            (lease("b", Some("boot1"), 11, 60), true),  // silent for 40 s
            (lease("a", None, 11, 95), false),          // no boot id: only the beat counts
            (lease("b", None, 11, 200), false),         // beat from the future (clock skew)
        ];
        for (i, (l, want)) in rows.iter().enumerate() {
            assert_eq!(is_stale(l, &here, now, &alive), *want, "row {i}");
        }
    }

    #[test]
    fn a_second_holder_is_refused_with_the_holders_name() {
        let store: Arc<dyn Store> = Arc::new(kestrel_store::mem::MemStore::new());
        let mut g = acquire(&store, "e", "kestrel run").unwrap();
        // The same process may take its own lease again.
        acquire(&store, "e", "kestrel run").unwrap();
        // A holder from another live process on this host.
        let mut other = me("kestrel serve", Timestamp::now());
        other.holder = "other".into();
        other.pid = 1;
        other.pid_start = procinfo::start_ticks(1);
        store.release_lease("e", &g.holder).unwrap();
        store.acquire_lease("e", &other, &|_| false).unwrap();
        match acquire(&store, "e", "kestrel run") {
            Err(ControllerError::Held { holder, .. }) => {
                assert!(
                    holder.starts_with("kestrel serve (pid 1 on host"),
                    "{holder}"
                )
            }
            other => panic!("{other:?}"),
        }
        g.last = None;
        assert!(matches!(g.beat(), Err(ControllerError::LeaseLost(_))));
    }
}
