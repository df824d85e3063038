//! The experiment reconciler: one level-triggered pass over an experiment that reads the
//! store, brings the trials the executor runs in line with it, and says when it wants to
//! run again (kube-runtime's `reconcile -> Action` shape). The local loop ([`drive`]) and
//! a Kubernetes operator both drive it; running a pass again after a crash resumes the
//! experiment, because every decision comes from the store:
//! - Running trials are observed; one this process is not attached to (launched before a
//!   restart) is adopted from its stored run record. Ended trials are finished from
//!   their reports; Lost ones are re-run (same trial, not counted twice).
//! - Created trials (proposed, not yet started) are launched.
//! - Early stopping judges the running trials.
//! - [`plan`](crate::plan) decides: finish the experiment, or ask for new trials.
//!
//! In-memory state is only a cache: whether the algorithm said it was exhausted, and the
//! early-stopping state; both are rebuilt after a restart.

mod drive;
mod trials;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kestrel_algorithms::AlgoError;
use kestrel_core::outcome::StopReason;
use kestrel_core::status::reason;
use kestrel_core::{
    Experiment, ExperimentRecord, ExperimentState, ExperimentStatus, TrialCounts, TrialRecord,
    TrialState, best_trial,
};
use kestrel_store::{Store, StoreError};
use kestrel_suggestion::GetSuggestions;

pub use drive::{Halt, Progress, drive};

use crate::early::EarlyStopping;
use crate::executor::{RunPhase, TrialExecutor};
use crate::plan::{Plan, PlanInput, plan};

/// Why the controller could not run an experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// The store failed.
    #[error("store error")]
    Store(#[from] StoreError),
    /// No experiment has this name.
    #[error("experiment {0:?} not found")]
    NotFound(String),
    /// The experiment uses a feature the local controller cannot run.
    #[error("{0}")]
    Unsupported(String),
    /// Another live process drives the experiment.
    #[error("experiment {experiment:?} is being run by {holder}")]
    Held {
        /// The experiment.
        experiment: String,
        /// Who holds it, for the message.
        holder: String,
    },
    /// Another process took the experiment over (this one looked dead to it).
    #[error("lost the lease of experiment {0:?} to another process")]
    LeaseLost(String),
}

/// How the reconciler paces itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait between passes when nothing changed.
    pub tick: Duration,
}

/// What a pass asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run another pass after this long (zero: something changed, run again at once).
    Requeue(Duration),
    /// The experiment has finished with this status.
    Done(ExperimentStatus),
}

/// Per-experiment caches (allowed to be lost).
#[derive(Default)]
struct Cache {
    /// The algorithm said it has no more proposals.
    exhausted: bool,
    early: Option<EarlyStopping>,
    /// Trials this reconciler launched or adopted (to notice one finished from outside).
    attached: HashSet<String>,
}

/// Runs reconcile passes with one executor against one store.
pub struct Reconciler {
    store: Arc<dyn Store>,
    executor: Arc<dyn TrialExecutor>,
    opts: Options,
    caches: Mutex<HashMap<String, Cache>>,
}

/// Checks what the executor named `executor` cannot run, before anything starts.
pub fn preflight(exp: &Experiment, executor: &str) -> Result<(), ControllerError> {
    crate::executor::accepts(executor, exp).map_err(ControllerError::Unsupported)
}

impl Reconciler {
    /// A reconciler.
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn TrialExecutor>, opts: Options) -> Self {
        Reconciler {
            store,
            executor,
            opts,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The executor trials run on.
    pub fn executor(&self) -> &Arc<dyn TrialExecutor> {
        &self.executor
    }

    /// The store it reconciles.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn cache<T>(&self, name: &str, f: impl FnOnce(&mut Cache) -> T) -> T {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        f(caches.entry(name.to_string()).or_default())
    }

    fn record(&self, name: &str) -> Result<ExperimentRecord, ControllerError> {
        self.store
            .experiment(name)?
            .ok_or_else(|| ControllerError::NotFound(name.into()))
    }

    /// One pass over experiment `name` (see the module documentation). The caller must
    /// hold the experiment's lease.
    pub async fn reconcile(&self, name: &str) -> Result<Action, ControllerError> {
        let rec = self.record(name)?;
        if rec.status.state.is_terminal() {
            self.caches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            return Ok(Action::Done(rec.status));
        }
        preflight(&rec.spec, self.executor.kind())?;
        if rec.status.state == ExperimentState::Created {
            self.set_status(
                &rec,
                ExperimentState::Running,
                reason::RUNNING,
                "Experiment is running",
            )?;
        }
        if self.cache(name, |c| c.early.is_none()) {
            let early = EarlyStopping::new(&rec.spec)?;
            self.cache(name, |c| c.early = early);
        }
        let exp = Arc::new(rec.spec.clone());
        let mut busy = false;

        // Trials finished from outside (Katib's SetTrialStatus) while still attached.
        let mut trials = self.store.trials(name)?;
        busy |= self.settle_detached(&exp, &trials).await?;

        // Observe what runs; finish what ended; re-run what was lost.
        for t in trials.iter().filter(|t| t.state == TrialState::Running) {
            match self.phase_of(&rec, &exp, t).await {
                RunPhase::Running => {}
                RunPhase::Exited(end) => {
                    self.finish_trial(&exp, t, &end)?;
                    busy = true;
                }
                RunPhase::Lost(why) => {
                    self.rerun(t, &why)?;
                    busy = true;
                }
            }
        }
        if busy {
            trials = self.store.trials(name)?;
        }
        // Launch what was proposed but never started (or is to be re-run).
        let created: Vec<TrialRecord> = trials
            .iter()
            .filter(|t| t.state == TrialState::Created)
            .cloned()
            .collect();
        if !created.is_empty() {
            for t in created {
                self.launch(&rec, &exp, t).await?;
            }
            busy = true;
            trials = self.store.trials(name)?;
        }

        // Early stopping.
        let doomed = self.judge(name, &exp, &trials)?;
        if !doomed.is_empty() {
            futures::future::join_all(
                doomed
                    .iter()
                    .map(|t| self.stop_trial(t, StopReason::EarlyStopped)),
            )
            .await;
            busy = true;
        }

        // Plan.
        let counts = TrialCounts::of(&trials);
        let goal_reached = exp.objective.goal.is_some_and(|g| {
            best_trial(&exp, &trials)
                .and_then(|t| t.objective)
                .is_some_and(|v| exp.objective.kind.reaches(v, g))
        });
        let input = PlanInput {
            counts,
            parallel: exp.parallel_trial_count,
            max_trials: exp.max_trial_count,
            max_failed: exp.max_failed_trial_count,
            goal_reached,
            exhausted: self.cache(name, |c| c.exhausted),
        };
        match plan(&input) {
            Plan::Finish {
                state,
                reason,
                message,
            } => {
                let status = self
                    .end_experiment(
                        &rec,
                        StopReason::ExperimentFinished,
                        state,
                        reason,
                        &message,
                    )
                    .await?;
                return Ok(Action::Done(status));
            }
            Plan::Launch(n) if n > 0 => {
                let n = (n as usize).min(kestrel_suggestion::MAX_REQUEST);
                match self.suggest(&rec, &trials, n).await {
                    Ok((new, waiting)) => {
                        let exhausted = !waiting && new.len() < n;
                        self.cache(name, |c| c.exhausted = exhausted);
                        busy |= !new.is_empty();
                        for t in new {
                            self.store.insert_trial(&t)?;
                            self.launch(&rec, &exp, t).await?;
                        }
                    }
                    Err(e) => {
                        let message = format!("suggestion failed: {e}");
                        tracing::error!(experiment = %name, %message);
                        let status = self
                            .end_experiment(
                                &rec,
                                StopReason::ExperimentFinished,
                                ExperimentState::Failed,
                                reason::FAILED,
                                &message,
                            )
                            .await?;
                        return Ok(Action::Done(status));
                    }
                }
            }
            Plan::Launch(_) => {}
        }
        Ok(Action::Requeue(if busy {
            Duration::ZERO
        } else {
            self.opts.tick
        }))
    }

    /// The running trials' early-stopping verdicts: names of trials to stop.
    fn judge(
        &self,
        name: &str,
        exp: &Experiment,
        trials: &[TrialRecord],
    ) -> Result<Vec<String>, ControllerError> {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        let Some(early) = caches.get_mut(name).and_then(|c| c.early.as_mut()) else {
            return Ok(vec![]);
        };
        early.check(&*self.store, exp, trials)
    }

    async fn suggest(
        &self,
        rec: &ExperimentRecord,
        trials: &[TrialRecord],
        count: usize,
    ) -> Result<(Vec<TrialRecord>, bool), AlgoError> {
        let (problem, history, seed) = (rec.spec.problem(), trials.to_vec(), rec.seed);
        // A warm start's trials are read on every call: the other experiment may still
        // be running, and one that was deleted simply stops contributing.
        let prior = match &rec.warm_start {
            Some(other) => self
                .store
                .trials(other)
                .map_err(|e| AlgoError::Internal(format!("reading the warm start {other}: {e}")))?,
            None => Vec::new(),
        };
        let batch = tokio::task::spawn_blocking(move || {
            kestrel_suggestion::get_suggestions(&GetSuggestions {
                problem: &problem,
                trials: &history,
                count,
                seed,
                first_index: None,
                prior: &prior,
                encoded: None,
            })
        })
        .await
        .map_err(|e| AlgoError::Internal(format!("algorithm panicked: {e}")))??;
        let now = jiff::Timestamp::now();
        let trials = batch
            .trials
            .into_iter()
            .map(|p| {
                let mut t =
                    TrialRecord::created(rec.name(), p.name, p.index, p.proposal.assignments, now);
                t.labels = p.proposal.labels;
                t
            })
            .collect();
        Ok((trials, batch.waiting))
    }

    fn set_status(
        &self,
        rec: &ExperimentRecord,
        state: ExperimentState,
        reason: &str,
        message: &str,
    ) -> Result<ExperimentStatus, ControllerError> {
        let current = self
            .store
            .experiment(rec.name())?
            .map(|r| r.status)
            .unwrap_or_else(|| rec.status.clone());
        let now = jiff::Timestamp::now();
        let status = ExperimentStatus {
            state,
            reason: reason.into(),
            message: message.into(),
            started_at: current.started_at.or(Some(now)),
            completed_at: state.is_terminal().then_some(now),
        };
        tracing::info!(experiment = %rec.name(), state = %state, reason, "experiment status");
        self.store.set_experiment_status(rec.name(), &status)?;
        Ok(status)
    }
}

/// Renders an error with its sources, `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
