//! Early stopping during a run: each tick, every running trial's objective reports so far
//! are judged against the other trials' (by the experiment's `spec.earlyStopping`
//! algorithm), and hopeless trials are stopped; the reconciler then records them as
//! EarlyStopped with everything they reported.

use std::collections::{HashMap, HashSet};

use kestrel_algorithms::early_stopping::{EarlyStopper, Peers, Verdict};
use kestrel_core::{Experiment, MetricLog, TrialRecord, TrialState};
use kestrel_store::Store;

use crate::reconciler::ControllerError;

/// The early-stopping state of one run.
pub(crate) struct EarlyStopping {
    stopper: Box<dyn EarlyStopper>,
    /// Final state and objective reports of finished trials (immutable once finished).
    finished: HashMap<String, (TrialState, Vec<f64>)>,
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
            finished: HashMap::new(),
            stopping: HashSet::new(),
        }))
    }

    /// Judges every running trial by its reports so far; returns the hopeless ones (each
    /// once), for the caller to stop.
    pub(crate) fn check(
        &mut self,
        store: &dyn Store,
        exp: &Experiment,
        trials: &[TrialRecord],
    ) -> Result<Vec<String>, ControllerError> {
        // Finished trials' reports never change; running trials' are read every tick.
        let mut live: HashMap<&str, Vec<f64>> = HashMap::new();
        for t in trials {
            if t.state.is_terminal() {
                if !self.finished.contains_key(&t.name) {
                    let reports = objective_reports(store, exp, &t.name)?;
                    self.finished.insert(t.name.clone(), (t.state, reports));
                }
            } else if t.state == TrialState::Running {
                live.insert(t.name.as_str(), objective_reports(store, exp, &t.name)?);
            }
        }
        let succeeded: Vec<&[f64]> = self
            .finished
            .values()
            .filter(|(state, r)| *state == TrialState::Succeeded && !r.is_empty())
            .map(|(_, r)| r.as_slice())
            .collect();
        let mut doomed = Vec::new();
        for name in live.keys().map(|n| n.to_string()).collect::<Vec<_>>() {
            if self.stopping.contains(&name) {
                continue;
            }
            let Some(reports) = live.get(name.as_str()) else {
                continue;
            };
            let all: Vec<&[f64]> = self
                .finished
                .values()
                .map(|(_, r)| r.as_slice())
                .chain(
                    live.iter()
                        .filter(|(other, _)| **other != name.as_str())
                        .map(|(_, r)| r.as_slice()),
                )
                .filter(|r| !r.is_empty())
                .collect();
            let peers = Peers {
                succeeded: &succeeded,
                all: &all,
            };
            if let Verdict::Stop(why) = self.stopper.judge(reports, peers, exp.objective.kind) {
                tracing::info!(trial = %name, %why, "early stopping");
                self.stopping.insert(name.clone());
                doomed.push(name);
            }
        }
        Ok(doomed)
    }
}
