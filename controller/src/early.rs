//! Early stopping during a run: each tick, every running trial's objective reports so far
//! are judged against the succeeded trials' (by the experiment's `spec.earlyStopping`
//! algorithm), and hopeless trials are stopped; the reconciler then records them as
//! EarlyStopped with everything they reported.

use std::collections::{HashMap, HashSet};

use kestrel_algorithms::early_stopping::{EarlyStopper, Verdict};
use kestrel_core::{Experiment, MetricLog, TrialRecord, TrialState};
use kestrel_store::Store;

use crate::executor::{StopReason, TrialExecutor};
use crate::reconciler::ControllerError;

/// The early-stopping state of one run.
pub(crate) struct EarlyStopping {
    stopper: Box<dyn EarlyStopper>,
    /// Objective reports of succeeded trials (immutable once finished).
    completed: HashMap<String, Vec<f64>>,
    /// Trials already told to stop.
    stopping: HashSet<String>,
}

/// The objective's reports of a trial so far, in order (non-numeric ones skipped).
fn objective_reports(
    store: &dyn Store,
    exp: &Experiment,
    trial: &str,
) -> Result<Vec<f64>, ControllerError> {
    Ok(store
        .metrics(trial, Some(&exp.objective.metric))?
        .iter()
        .filter_map(MetricLog::number)
        .collect())
}

impl EarlyStopping {
    /// The experiment's early stopping, if it has one.
    pub(crate) fn new(exp: &Experiment) -> Result<Option<Self>, ControllerError> {
        let Some(es) = &exp.early_stopping else {
            return Ok(None);
        };
        let stopper = kestrel_algorithms::early_stopping::build(&es.name, &es.settings)
            .map_err(|e| ControllerError::Unsupported(format!("spec.earlyStopping: {e}")))?;
        Ok(Some(EarlyStopping {
            stopper,
            completed: HashMap::new(),
            stopping: HashSet::new(),
        }))
    }

    /// Judges every running trial by its reports so far and stops the hopeless ones
    /// (waiting for their processes to exit, at most the executor's grace period).
    pub(crate) async fn check<E: TrialExecutor>(
        &mut self,
        store: &dyn Store,
        executor: &E,
        exp: &Experiment,
        trials: &[TrialRecord],
        handles: &HashMap<String, E::Handle>,
    ) -> Result<(), ControllerError> {
        for t in trials.iter().filter(|t| t.state == TrialState::Succeeded) {
            if !self.completed.contains_key(&t.name) {
                let reports = objective_reports(store, exp, &t.name)?;
                self.completed.insert(t.name.clone(), reports);
            }
        }
        let completed: Vec<&[f64]> = self
            .completed
            .values()
            .map(Vec::as_slice)
            .filter(|r| !r.is_empty())
            .collect();
        let mut doomed = Vec::new();
        for (name, h) in handles {
            if self.stopping.contains(name) {
                continue;
            }
            let reports = objective_reports(store, exp, name)?;
            if let Verdict::Stop(why) = self.stopper.judge(&reports, &completed, exp.objective.kind)
            {
                tracing::info!(trial = %name, %why, "early stopping");
                self.stopping.insert(name.clone());
                doomed.push(h);
            }
        }
        futures::future::join_all(
            doomed
                .into_iter()
                .map(|h| executor.stop(h, StopReason::EarlyStopped)),
        )
        .await;
        Ok(())
    }
}
