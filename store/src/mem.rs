//! An in-memory [`Store`] for tests: same contract, nothing on disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kestrel_core::{ExperimentRecord, ExperimentStatus, MetricLog, TrialRecord, TrialState};

use jiff::Timestamp;

use crate::{Acquire, Lease, Result, Store, StoreError, decide};

#[derive(Debug, Default)]
struct Inner {
    experiments: Vec<ExperimentRecord>,
    trials: BTreeMap<String, TrialRecord>,
    metrics: Vec<(String, MetricLog)>,
    leases: BTreeMap<String, Lease>,
}

/// In-memory store.
#[derive(Debug, Default)]
pub struct MemStore(Mutex<Inner>);

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one
        // statement), so a poisoned lock is safe to reuse.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemStore {
    fn create_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        let mut g = self.lock();
        if g.experiments.iter().any(|x| x.name() == e.name()) {
            return Err(StoreError::Conflict(format!(
                "experiment {} already exists",
                e.name()
            )));
        }
        g.experiments.push(e.clone());
        Ok(())
    }
    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        Ok(self
            .lock()
            .experiments
            .iter()
            .find(|e| e.name() == name)
            .cloned())
    }
    fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        Ok(self.lock().experiments.clone())
    }
    fn set_experiment_status(&self, name: &str, status: &ExperimentStatus) -> Result<()> {
        let mut g = self.lock();
        let e = g
            .experiments
            .iter_mut()
            .find(|e| e.name() == name)
            .ok_or_else(|| StoreError::NotFound(format!("experiment {name}")))?;
        e.status = status.clone();
        Ok(())
    }
    fn replace_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        let mut g = self.lock();
        let stored = g
            .experiments
            .iter_mut()
            .find(|x| x.name() == e.name())
            .ok_or_else(|| StoreError::NotFound(format!("experiment {}", e.name())))?;
        *stored = e.clone();
        Ok(())
    }
    fn delete_experiment(&self, name: &str) -> Result<bool> {
        let mut g = self.lock();
        let before = g.experiments.len();
        g.experiments.retain(|e| e.name() != name);
        let doomed: Vec<String> = g
            .trials
            .values()
            .filter(|t| t.experiment == name)
            .map(|t| t.name.clone())
            .collect();
        for t in &doomed {
            g.trials.remove(t);
        }
        g.metrics.retain(|(t, _)| !doomed.contains(t));
        g.leases.remove(name);
        Ok(g.experiments.len() != before)
    }
    fn insert_trial(&self, t: &TrialRecord) -> Result<()> {
        let mut g = self.lock();
        if !g.experiments.iter().any(|e| e.name() == t.experiment) {
            return Err(StoreError::NotFound(format!("experiment {}", t.experiment)));
        }
        if g.trials.contains_key(&t.name)
            || g.trials
                .values()
                .any(|x| x.experiment == t.experiment && x.index == t.index)
        {
            return Err(StoreError::Conflict(format!(
                "trial {} (index {}) already exists",
                t.name, t.index
            )));
        }
        g.trials.insert(t.name.clone(), t.clone());
        Ok(())
    }
    fn update_trial(&self, t: &TrialRecord, from: TrialState) -> Result<()> {
        let mut g = self.lock();
        let cur = g
            .trials
            .get_mut(&t.name)
            .ok_or_else(|| StoreError::NotFound(format!("trial {}", t.name)))?;
        if cur.state != from {
            return Err(StoreError::Conflict(format!(
                "trial {} is {}, not {from}",
                t.name, cur.state
            )));
        }
        *cur = t.clone();
        Ok(())
    }
    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>> {
        let mut v: Vec<TrialRecord> = self
            .lock()
            .trials
            .values()
            .filter(|t| t.experiment == experiment)
            .cloned()
            .collect();
        v.sort_by_key(|t| t.index);
        Ok(v)
    }
    fn trial(&self, name: &str) -> Result<Option<TrialRecord>> {
        Ok(self.lock().trials.get(name).cloned())
    }
    fn append_metrics(&self, trial: &str, logs: &[MetricLog]) -> Result<()> {
        let mut g = self.lock();
        g.metrics
            .extend(logs.iter().map(|l| (trial.to_string(), l.clone())));
        Ok(())
    }
    fn delete_metrics(&self, trial: &str) -> Result<usize> {
        let mut g = self.lock();
        let before = g.metrics.len();
        g.metrics.retain(|(t, _)| t != trial);
        Ok(before - g.metrics.len())
    }
    fn metrics(&self, trial: &str, metric: Option<&str>) -> Result<Vec<MetricLog>> {
        Ok(self
            .lock()
            .metrics
            .iter()
            .filter(|(t, l)| t == trial && metric.is_none_or(|m| l.name == m))
            .map(|(_, l)| l.clone())
            .collect())
    }
    fn acquire_lease(
        &self,
        experiment: &str,
        me: &Lease,
        stale: &dyn Fn(&Lease) -> bool,
    ) -> Result<Acquire> {
        let mut g = self.lock();
        let a = decide(g.leases.get(experiment).cloned(), me, stale);
        if matches!(a, Acquire::Acquired { .. }) {
            g.leases.insert(experiment.to_string(), me.clone());
        }
        Ok(a)
    }
    fn renew_lease(&self, experiment: &str, holder: &str, at: Timestamp) -> Result<bool> {
        let mut g = self.lock();
        match g.leases.get_mut(experiment) {
            Some(l) if l.holder == holder => {
                l.heartbeat = at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    fn release_lease(&self, experiment: &str, holder: &str) -> Result<()> {
        let mut g = self.lock();
        if g.leases.get(experiment).is_some_and(|l| l.holder == holder) {
            g.leases.remove(experiment);
        }
        Ok(())
    }
    fn lease(&self, experiment: &str) -> Result<Option<Lease>> {
        Ok(self.lock().leases.get(experiment).cloned())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conforms() {
        crate::conformance::run_all(super::MemStore::new);
    }
}
