//! kestrel-store: durable storage of experiments, trials and observation logs.
//!
//! # Layout
//! - [`Store`]: the trait every backend implements (small required core).
//! - [`lease`]: which process drives an experiment.
//! - [`sqlite::SqliteStore`]: the default, an embedded SQLite database in WAL mode.
//! - [`mem::MemStore`]: in-memory, for tests.
//! - `conformance` (feature `testing`): the suite every backend must pass.
//!
//! # Design
//! Records are stored as JSON documents beside the few columns queries need (state,
//! index, objective), so the domain types can grow without schema migrations; the schema
//! version is kept in SQLite's `user_version`. SQLite was chosen over sled after sled lost
//! acknowledged writes under `kill -9` on this project's machines.

pub mod lease;
pub mod mem;
pub mod sqlite;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use lease::{Acquire, Lease};

use jiff::Timestamp;
use kestrel_core::{
    ExperimentRecord, ExperimentStatus, MetricLog, TrialCounts, TrialRecord, TrialState,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("database error")]
    Database(#[source] rusqlite::Error),
    /// The database directory could not be created.
    #[error("cannot create the store directory {path}")]
    Io {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored record could not be decoded (written by an incompatible kestrel?).
    #[error("stored record {key} is corrupt or from an incompatible version")]
    Corrupt {
        /// Which record.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The record already exists, or is not in the expected state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The referenced record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e)
    }
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Persistent state of kestrel.
///
/// # Contract
/// - Every write is durable once it returns (SQLite WAL with `synchronous=NORMAL`
///   survives the process being killed; the OS crashing may lose the last commits).
/// - Returned records are snapshots; they never change under the caller.
/// - Trial transitions are compare-and-set ([`Store::update_trial`]), so two writers can
///   never both finish the same trial.
/// - Trials are returned in proposal order (`index`); metric logs in report order.
/// - Deleting an experiment deletes its trials and their logs.
///
/// # Errors
/// [`StoreError::Conflict`] for duplicate inserts and failed compare-and-set,
/// [`StoreError::NotFound`] for updates of missing records, other variants for I/O.
pub trait Store: Send + Sync {
    /// Inserts a new experiment; `Conflict` if the name exists.
    fn create_experiment(&self, e: &ExperimentRecord) -> Result<()>;
    /// The experiment named `name`.
    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>>;
    /// Every experiment, oldest first.
    fn experiments(&self) -> Result<Vec<ExperimentRecord>>;
    /// Replaces an experiment's status.
    fn set_experiment_status(&self, name: &str, status: &ExperimentStatus) -> Result<()>;
    /// Replaces a stored experiment's record (spec, source and status: a continued
    /// experiment); `NotFound` if there is none of its name.
    fn replace_experiment(&self, e: &ExperimentRecord) -> Result<()>;
    /// Deletes an experiment with its trials and logs; false if it did not exist.
    fn delete_experiment(&self, name: &str) -> Result<bool>;
    /// Inserts a new trial; `Conflict` if the name or (experiment, index) exists.
    fn insert_trial(&self, t: &TrialRecord) -> Result<()>;
    /// Replaces a trial if its stored state is `from`; `Conflict` otherwise.
    fn update_trial(&self, t: &TrialRecord, from: TrialState) -> Result<()>;
    /// The trials of an experiment, in proposal order.
    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>>;
    /// One trial by name.
    fn trial(&self, name: &str) -> Result<Option<TrialRecord>>;
    /// Appends metric reports of a trial (the trial need not be stored: Katib's DB
    /// manager keeps logs of any trial name).
    fn append_metrics(&self, trial: &str, logs: &[MetricLog]) -> Result<()>;
    /// A trial's metric reports in report order, optionally of one metric.
    fn metrics(&self, trial: &str, metric: Option<&str>) -> Result<Vec<MetricLog>>;
    /// Removes every observation log of `trial`; returns how many were removed.
    fn delete_metrics(&self, trial: &str) -> Result<usize>;

    /// Takes the lease of `experiment` for `me` if it is free, already `me`'s, or held by
    /// a lease `stale` calls dead (checked and replaced atomically); otherwise returns
    /// the live holder.
    fn acquire_lease(
        &self,
        experiment: &str,
        me: &Lease,
        stale: &dyn Fn(&Lease) -> bool,
    ) -> Result<Acquire>;
    /// Records a heartbeat of `holder`; false when it no longer holds the lease.
    fn renew_lease(&self, experiment: &str, holder: &str, at: Timestamp) -> Result<bool>;
    /// Gives the lease up if `holder` has it.
    fn release_lease(&self, experiment: &str, holder: &str) -> Result<()>;
    /// The current lease of `experiment`.
    fn lease(&self, experiment: &str) -> Result<Option<Lease>>;

    /// Trial counts per state.
    fn counts(&self, experiment: &str) -> Result<TrialCounts> {
        Ok(TrialCounts::of(&self.trials(experiment)?))
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn create_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        (**self).create_experiment(e)
    }
    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        (**self).experiment(name)
    }
    fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        (**self).experiments()
    }
    fn set_experiment_status(&self, name: &str, status: &ExperimentStatus) -> Result<()> {
        (**self).set_experiment_status(name, status)
    }
    fn replace_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        (**self).replace_experiment(e)
    }
    fn delete_experiment(&self, name: &str) -> Result<bool> {
        (**self).delete_experiment(name)
    }
    fn insert_trial(&self, t: &TrialRecord) -> Result<()> {
        (**self).insert_trial(t)
    }
    fn update_trial(&self, t: &TrialRecord, from: TrialState) -> Result<()> {
        (**self).update_trial(t, from)
    }
    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>> {
        (**self).trials(experiment)
    }
    fn trial(&self, name: &str) -> Result<Option<TrialRecord>> {
        (**self).trial(name)
    }
    fn append_metrics(&self, trial: &str, logs: &[MetricLog]) -> Result<()> {
        (**self).append_metrics(trial, logs)
    }
    fn metrics(&self, trial: &str, metric: Option<&str>) -> Result<Vec<MetricLog>> {
        (**self).metrics(trial, metric)
    }
    fn delete_metrics(&self, trial: &str) -> Result<usize> {
        (**self).delete_metrics(trial)
    }
    fn acquire_lease(
        &self,
        experiment: &str,
        me: &Lease,
        stale: &dyn Fn(&Lease) -> bool,
    ) -> Result<Acquire> {
        (**self).acquire_lease(experiment, me, stale)
    }
    fn renew_lease(&self, experiment: &str, holder: &str, at: Timestamp) -> Result<bool> {
        (**self).renew_lease(experiment, holder, at)
    }
    fn release_lease(&self, experiment: &str, holder: &str) -> Result<()> {
        (**self).release_lease(experiment, holder)
    }
    fn lease(&self, experiment: &str) -> Result<Option<Lease>> {
        (**self).lease(experiment)
    }
}

/// The decision shared by every backend's [`Store::acquire_lease`].
pub(crate) fn decide(
    current: Option<Lease>,
    me: &Lease,
    stale: &dyn Fn(&Lease) -> bool,
) -> Acquire {
    match current {
        None => Acquire::Acquired { took_over: None },
        Some(c) if c.holder == me.holder => Acquire::Acquired { took_over: None },
        Some(c) if stale(&c) => Acquire::Acquired { took_over: Some(c) },
        Some(c) => Acquire::Held(c),
    }
}
