//! What a pass does to single trials: render, launch, observe (adopting after a restart),
//! finish from the reports, re-run when lost, stop; and ending the experiment.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use kestrel_core::metrics::{UNAVAILABLE, objective_value, observe};
use kestrel_core::outcome::{RunEnd, StopReason, outcome};
use kestrel_core::template::{TrialIdentity, render};
use kestrel_core::{
    Experiment, ExperimentRecord, ExperimentState, ExperimentStatus, MetricLog, TrialRecord,
    TrialState,
};
use kestrel_store::StoreError;

use super::{ControllerError, Reconciler, error_chain};
use crate::executor::{RenderedTrial, RunPhase};

/// A compare-and-set that lost: someone else (Katib's SetTrialStatus, a user) finished
/// the trial first; their state stands.
fn lost_race(r: Result<(), StoreError>) -> Result<(), ControllerError> {
    match r {
        Err(StoreError::Conflict(m)) => {
            tracing::info!(conflict = %m, "trial changed elsewhere; keeping that state");
            Ok(())
        }
        other => Ok(other?),
    }
}

impl Reconciler {
    fn render(
        &self,
        rec: &ExperimentRecord,
        exp: &Arc<Experiment>,
        t: &TrialRecord,
    ) -> Result<RenderedTrial, String> {
        let values: BTreeMap<String, String> = t
            .assignments
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let namespace = exp.namespace.clone().unwrap_or_else(|| "default".into());
        let spec = render(
            &exp.trial_template,
            &TrialIdentity {
                name: &t.name,
                namespace: &namespace,
            },
            &values,
        )
        .map_err(|e| e.to_string())?;
        Ok(RenderedTrial {
            experiment: exp.clone(),
            trial: t.name.clone(),
            namespace,
            spec,
            base_dir: rec.base_dir.clone().unwrap_or_else(|| ".".into()),
            attempt: t.restarts,
            secret: None,
        })
    }

    fn attached(&self, experiment: &str, trial: &str, on: bool) {
        self.cache(experiment, |c| {
            if on {
                c.attached.insert(trial.to_string());
            } else {
                c.attached.remove(trial);
            }
        });
    }

    /// Starts a Created trial and records it Running (or Failed when it cannot start).
    pub(super) async fn launch(
        &self,
        rec: &ExperimentRecord,
        exp: &Arc<Experiment>,
        mut t: TrialRecord,
    ) -> Result<(), ControllerError> {
        if t.restarts > 0 {
            // A re-run starts with an empty observation log.
            self.store.delete_metrics(&t.name)?;
        }
        let (secret, credential) = crate::credentials::issue();
        let launched = match self.render(rec, exp, &t) {
            Ok(mut r) => {
                r.secret = Some(secret);
                self.executor.launch(&r).await.map_err(|e| error_chain(&e))
            }
            Err(m) => Err(m),
        };
        let now = Timestamp::now();
        match launched {
            Ok(run) => {
                t.state = TrialState::Running;
                t.reason = TrialState::Running.reason().into();
                t.message = "Trial is running".into();
                t.started_at = Some(now);
                t.run = Some(run);
                t.credential = Some(credential);
                self.attached(&exp.name, &t.name, true);
            }
            Err(message) => {
                tracing::warn!(trial = %t.name, %message, "trial could not start");
                t.state = TrialState::Failed;
                t.reason = TrialState::Failed.reason().into();
                t.message = format!("trial could not start: {message}");
                t.completed_at = Some(now);
            }
        }
        self.store.update_trial(&t, TrialState::Created)?;
        Ok(())
    }

    /// The phase of a Running trial, adopting it when this process is not attached.
    pub(super) async fn phase_of(
        &self,
        rec: &ExperimentRecord,
        exp: &Arc<Experiment>,
        t: &TrialRecord,
    ) -> RunPhase {
        match self.executor.status(&t.name).await {
            Ok(Some(p)) => return p,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(trial = %t.name, error = %error_chain(&e), "cannot read the trial's status");
                return RunPhase::Running;
            }
        }
        let Some(run) = &t.run else {
            return RunPhase::Lost("kestrel stopped before the trial's launch was recorded".into());
        };
        let rendered = match self.render(rec, exp, t) {
            Ok(r) => r,
            Err(e) => return RunPhase::Lost(format!("cannot render the trial again: {e}")),
        };
        if let Err(e) = self.executor.adopt(&rendered, run).await {
            return RunPhase::Lost(format!("cannot re-attach: {}", error_chain(&e)));
        }
        self.attached(&exp.name, &t.name, true);
        match self.executor.status(&t.name).await {
            Ok(Some(p)) => p,
            _ => RunPhase::Running,
        }
    }

    /// Records the final state of a trial whose run ended.
    pub(super) fn finish_trial(
        &self,
        exp: &Experiment,
        t: &TrialRecord,
        end: &RunEnd,
    ) -> Result<(), ControllerError> {
        let mut t = t.clone();
        let logs = self.store.metrics(&t.name, None)?;
        t.observation = observe(&exp.objective, &logs);
        t.objective = objective_value(&exp.objective, &t.observation);
        let metric = &exp.objective.metric;
        let o = outcome(end, t.has_objective(metric), metric);
        if o.unavailable {
            // Katib records the objective as unavailable in the observation log.
            self.store.append_metrics(
                &t.name,
                &[MetricLog {
                    time: Timestamp::now(),
                    name: metric.clone(),
                    value: UNAVAILABLE.into(),
                }],
            )?;
        }
        t.state = o.state;
        t.reason = o.state.reason().into();
        t.message = o.message;
        t.completed_at = Some(Timestamp::now());
        tracing::info!(trial = %t.name, state = %t.state, objective = ?t.objective, "trial finished");
        lost_race(self.store.update_trial(&t, TrialState::Running))?;
        self.executor.forget(&t.name);
        self.attached(&exp.name, &t.name, false);
        Ok(())
    }

    /// Puts a trial kestrel lost back to Created, to run again; it is the same trial, so
    /// the trial budget is not charged twice.
    pub(super) fn rerun(&self, t: &TrialRecord, why: &str) -> Result<(), ControllerError> {
        tracing::warn!(trial = %t.name, why, "trial lost; it will run again");
        let mut n = t.clone();
        n.state = TrialState::Created;
        n.reason = TrialState::Created.reason().into();
        n.message = format!("to be run again: {why}");
        n.restarts += 1;
        n.run = None;
        n.started_at = None;
        n.observation.clear();
        n.objective = None;
        n.credential = None;
        lost_race(self.store.update_trial(&n, TrialState::Running))?;
        self.executor.forget(&t.name);
        self.attached(&t.experiment, &t.name, false);
        Ok(())
    }

    pub(super) async fn stop_trial(&self, trial: &str, why: StopReason) {
        if let Err(e) = self.executor.stop(trial, why).await {
            tracing::warn!(trial, error = %error_chain(&e), "cannot stop the trial");
        }
    }

    /// Trials finished from outside while this reconciler still runs them: a running one
    /// is stopped (as early-stopped, the only outside verdict), an ended one gets its
    /// final observation. Returns whether anything changed.
    pub(super) async fn settle_detached(
        &self,
        exp: &Experiment,
        trials: &[TrialRecord],
    ) -> Result<bool, ControllerError> {
        let attached = self.cache(&exp.name, |c| c.attached.clone());
        let mut changed = false;
        for t in trials
            .iter()
            .filter(|t| t.state.is_terminal() && attached.contains(&t.name))
        {
            match self.executor.status(&t.name).await {
                Ok(Some(RunPhase::Running)) => {
                    self.stop_trial(&t.name, StopReason::EarlyStopped).await;
                }
                Ok(_) | Err(_) => {
                    let mut done = t.clone();
                    let logs = self.store.metrics(&t.name, None)?;
                    done.observation = observe(&exp.objective, &logs);
                    done.objective = objective_value(&exp.objective, &done.observation);
                    lost_race(self.store.update_trial(&done, t.state))?;
                    self.executor.forget(&t.name);
                    self.attached(&t.experiment, &t.name, false);
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// Stops every running trial (adopting those this process does not know) and waits
    /// until they are gone; returns their end, or why they were lost.
    async fn stop_all(
        &self,
        rec: &ExperimentRecord,
        why: StopReason,
    ) -> Result<Vec<(TrialRecord, RunPhase)>, ControllerError> {
        let exp = Arc::new(rec.spec.clone());
        let running: Vec<TrialRecord> = self
            .store
            .trials(rec.name())?
            .into_iter()
            .filter(|t| t.state == TrialState::Running)
            .collect();
        for t in &running {
            self.phase_of(rec, &exp, t).await;
        }
        futures::future::join_all(running.iter().map(|t| self.stop_trial(&t.name, why))).await;
        let mut ended = Vec::new();
        for t in running {
            let phase = match self.executor.status(&t.name).await {
                Ok(Some(p)) => p,
                _ => RunPhase::Lost("its executor does not know it".into()),
            };
            ended.push((t, phase));
        }
        Ok(ended)
    }

    /// Ends the experiment: stops its running trials (recorded with `why`), closes
    /// trials never started, and records the final status.
    pub(super) async fn end_experiment(
        &self,
        rec: &ExperimentRecord,
        why: StopReason,
        state: ExperimentState,
        reason: &str,
        message: &str,
    ) -> Result<ExperimentStatus, ControllerError> {
        for (t, phase) in self.stop_all(rec, why).await? {
            let end = match phase {
                RunPhase::Exited(mut end) => {
                    end.stopped = end.stopped.or(Some(why));
                    end
                }
                RunPhase::Running | RunPhase::Lost(_) => RunEnd {
                    code: None,
                    stopped: Some(why),
                    log: None,
                    detail: None,
                },
            };
            self.finish_trial(&rec.spec, &t, &end)?;
        }
        for mut t in self
            .store
            .trials(rec.name())?
            .into_iter()
            .filter(|t| t.state == TrialState::Created)
        {
            t.state = TrialState::Killed;
            t.reason = TrialState::Killed.reason().into();
            t.message = "never started: the experiment ended first".into();
            t.completed_at = Some(Timestamp::now());
            lost_race(self.store.update_trial(&t, TrialState::Created))?;
        }
        self.set_status(rec, state, reason, message)
    }

    /// Stops the running trials because kestrel is going away, and puts them back to be
    /// run again when the experiment resumes; the experiment stays unfinished.
    pub(super) async fn suspend(
        &self,
        rec: &ExperimentRecord,
    ) -> Result<ExperimentStatus, ControllerError> {
        if self.executor.detaches() {
            // A cluster's trials run on; the next kestrel re-attaches to them.
            return Ok(self.record(rec.name())?.status);
        }
        for (t, phase) in self.stop_all(rec, StopReason::Interrupted).await? {
            match phase {
                // It ended on its own before the stop reached it.
                RunPhase::Exited(end) if end.stopped.is_none() => {
                    self.finish_trial(&rec.spec, &t, &end)?
                }
                _ => self.rerun(&t, "kestrel shut down while the trial ran")?,
            }
        }
        Ok(self.record(rec.name())?.status)
    }
}
