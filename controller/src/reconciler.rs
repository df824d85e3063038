//! The experiment reconciler: a level-triggered loop that, every tick, reads the trials
//! from the store, finishes those whose program exited, applies [`plan`], asks the
//! suggestion service for new trials and launches them. Because every decision is made
//! from the store, running the loop again on an unfinished experiment resumes it.
//!
//! Store calls are made directly from the loop: they are single SQLite statements that
//! take microseconds to milliseconds, and metric writes happen on blocking threads.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kestrel_algorithms::AlgoError;
use kestrel_core::experiment::{CollectorKind, TemplateSource};
use kestrel_core::metrics::{UNAVAILABLE, objective_value, observe};
use kestrel_core::status::reason;
use kestrel_core::template::{TrialIdentity, expand_env_refs, primary_container, render};
use kestrel_core::{
    Experiment, ExperimentRecord, ExperimentState, ExperimentStatus, MetricLog, TrialCounts,
    TrialRecord, TrialState,
};
use kestrel_metrics_collector::Collector;
use kestrel_store::{Store, StoreError};
use kestrel_suggestion::GetSuggestions;

use crate::early::EarlyStopping;
use crate::executor::local::LOG_FILE;
use crate::executor::{MetricsSource, RunPhase, StopReason, TrialExecutor, TrialRun};
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
}

/// Where trials run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory relative `workingDir`s are resolved against (the YAML file's directory).
    pub base_dir: PathBuf,
    /// Root of the per-trial directories (`<runs_dir>/<experiment>/<trial>/`).
    pub runs_dir: PathBuf,
    /// How often the loop re-reads the store and polls trials.
    pub tick: Duration,
}

/// Why [`Controller::run`] is asked to return early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// The user stopped the experiment: trials are killed, the experiment is Stopped.
    Stop,
    /// The process is going away (server shutdown): trials are killed, the experiment
    /// stays unfinished and resumes on the next run.
    Suspend,
}

/// A snapshot passed to the progress callback after every tick.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The experiment.
    pub experiment: &'a Experiment,
    /// Every trial, in proposal order.
    pub trials: &'a [TrialRecord],
    /// Their counts by state.
    pub counts: TrialCounts,
}

/// Runs experiments with one executor against one store.
pub struct Controller<E: TrialExecutor> {
    store: Arc<dyn Store>,
    executor: E,
    opts: Options,
}

/// The best trial of `trials` by `objective`, among those with an objective value. When
/// no trial has a numeric objective, the latest trial to complete with a textual one
/// (Katib: string metrics, such as DARTS's genotype, are compared as "latest wins").
pub fn best_trial<'a>(exp: &Experiment, trials: &'a [TrialRecord]) -> Option<&'a TrialRecord> {
    let done = || {
        trials
            .iter()
            .filter(|t| matches!(t.state, TrialState::Succeeded | TrialState::EarlyStopped))
    };
    done()
        .filter_map(|t| t.objective.map(|v| (t, v)))
        .reduce(|best, cur| {
            if exp.objective.kind.better(cur.1, best.1) {
                cur
            } else {
                best
            }
        })
        .map(|(t, _)| t)
        .or_else(|| {
            done()
                .filter(|t| t.reported(&exp.objective.metric).is_some())
                .max_by_key(|t| t.completed_at)
        })
}

/// Checks what the local controller cannot run, before anything starts.
pub fn preflight(exp: &Experiment) -> Result<(), ControllerError> {
    if matches!(exp.metrics_collector.kind, CollectorKind::Push) {
        return Err(ControllerError::Unsupported(
            "spec.metricsCollectorSpec.collector.kind: Push needs the kestrel server's DBManager, which local runs do not start yet".into(),
        ));
    }
    if matches!(exp.trial_template.source, TemplateSource::ConfigMap { .. }) {
        return Err(ControllerError::Unsupported(
            "spec.trialTemplate.configMap: local runs need an inline trialSpec (ConfigMaps live in Kubernetes)".into(),
        ));
    }
    Ok(())
}

impl<E: TrialExecutor> Controller<E> {
    /// A controller.
    pub fn new(store: Arc<dyn Store>, executor: E, opts: Options) -> Self {
        Controller {
            store,
            executor,
            opts,
        }
    }

    /// Runs experiment `name` until it finishes or `shutdown` completes (then running
    /// trials are stopped and recorded as Killed, and the experiment as Stopped).
    pub async fn run(
        &self,
        name: &str,
        shutdown: impl Future<Output = Halt>,
        mut on_progress: impl FnMut(&Progress<'_>),
    ) -> Result<ExperimentStatus, ControllerError> {
        let rec = self
            .store
            .experiment(name)?
            .ok_or_else(|| ControllerError::NotFound(name.into()))?;
        if rec.status.state.is_terminal() {
            return Ok(rec.status);
        }
        preflight(&rec.spec)?;
        let exp = &rec.spec;
        let mut handles: HashMap<String, E::Handle> = HashMap::new();
        self.recover_orphans(name)?;
        if rec.status.state == ExperimentState::Created {
            self.set_status(
                &rec,
                ExperimentState::Running,
                reason::RUNNING,
                "Experiment is running",
            )?;
        }
        let mut exhausted = false;
        let mut early = EarlyStopping::new(exp)?;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let running: Vec<String> = handles.keys().cloned().collect();
            for t in running {
                if let RunPhase::Exited { code, stopped } = handles
                    .get(&t)
                    .map(|h| self.executor.status(h))
                    .unwrap_or(RunPhase::Running)
                {
                    handles.remove(&t);
                    self.finish_trial(exp, &t, code, stopped)?;
                }
            }
            let trials = self.store.trials(name)?;
            if let Some(es) = early.as_mut() {
                es.check(&*self.store, &self.executor, exp, &trials, &handles)
                    .await?;
            }
            let counts = TrialCounts::of(&trials);
            on_progress(&Progress {
                experiment: exp,
                trials: &trials,
                counts,
            });
            let goal_reached = exp.objective.goal.is_some_and(|g| {
                best_trial(exp, &trials)
                    .and_then(|t| t.objective)
                    .is_some_and(|v| exp.objective.kind.reaches(v, g))
            });
            let input = PlanInput {
                counts,
                parallel: exp.parallel_trial_count,
                max_trials: exp.max_trial_count,
                max_failed: exp.max_failed_trial_count,
                goal_reached,
                exhausted,
            };
            match plan(&input) {
                Plan::Finish {
                    state,
                    reason,
                    message,
                } => {
                    return self
                        .finish(
                            &rec,
                            &mut handles,
                            StopReason::ExperimentFinished,
                            state,
                            reason,
                            &message,
                            &mut on_progress,
                        )
                        .await;
                }
                Plan::Launch(n) if n > 0 => match self.suggest(&rec, &trials, n as usize).await {
                    Ok((new, waiting)) => {
                        exhausted = !waiting && new.len() < n as usize;
                        let launched = !new.is_empty();
                        for t in new {
                            self.launch(exp, t, &mut handles).await?;
                        }
                        if launched {
                            continue; // report the launched trials without waiting a tick
                        }
                    }
                    Err(e) => {
                        let message = format!("suggestion failed: {e}");
                        tracing::error!(experiment = %name, %message);
                        return self
                            .finish(
                                &rec,
                                &mut handles,
                                StopReason::ExperimentFinished,
                                ExperimentState::Failed,
                                reason::FAILED,
                                &message,
                                &mut on_progress,
                            )
                            .await;
                    }
                },
                Plan::Launch(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(self.opts.tick) => {}
                halt = &mut shutdown => {
                    tracing::warn!(experiment = %name, ?halt, "interrupted; stopping running trials");
                    if halt == Halt::Suspend {
                        return self.suspend(&rec, &mut handles).await;
                    }
                    return self.finish(&rec, &mut handles, StopReason::Interrupted, ExperimentState::Stopped, reason::STOPPED, "Experiment was stopped by the user", &mut on_progress).await;
                }
            }
        }
    }

    /// Trials left Created/Running by a kestrel process that died cannot be re-attached
    /// (their output pipes are gone); they are recorded as Killed.
    fn recover_orphans(&self, name: &str) -> Result<(), ControllerError> {
        for mut t in self
            .store
            .trials(name)?
            .into_iter()
            .filter(|t| !t.state.is_terminal())
        {
            let from = t.state;
            t.state = TrialState::Killed;
            t.reason = TrialState::Killed.reason().into();
            t.message = "kestrel stopped while the trial was active; its process was lost".into();
            t.completed_at = Some(Timestamp::now());
            self.store.update_trial(&t, from)?;
        }
        Ok(())
    }

    async fn suggest(
        &self,
        rec: &ExperimentRecord,
        trials: &[TrialRecord],
        count: usize,
    ) -> Result<(Vec<TrialRecord>, bool), AlgoError> {
        let (problem, history, seed) = (rec.spec.problem(), trials.to_vec(), rec.seed);
        let batch = tokio::task::spawn_blocking(move || {
            kestrel_suggestion::get_suggestions(&GetSuggestions {
                problem: &problem,
                trials: &history,
                count,
                seed,
                first_index: None,
            })
        })
        .await
        .map_err(|e| AlgoError::Internal(format!("algorithm panicked: {e}")))??;
        let now = Timestamp::now();
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

    async fn launch(
        &self,
        exp: &Experiment,
        mut t: TrialRecord,
        handles: &mut HashMap<String, E::Handle>,
    ) -> Result<(), ControllerError> {
        self.store.insert_trial(&t)?;
        let trial_dir = self.opts.runs_dir.join(&exp.name).join(&t.name);
        let launched = match self.trial_run(exp, &t, trial_dir.clone()) {
            Ok(run) => self.executor.launch(run).await.map_err(|e| error_chain(&e)),
            Err(msg) => Err(msg),
        };
        let now = Timestamp::now();
        match launched {
            Ok(h) => {
                t.state = TrialState::Running;
                t.reason = TrialState::Running.reason().into();
                t.message = "Trial is running".into();
                t.started_at = Some(now);
                self.store.update_trial(&t, TrialState::Created)?;
                handles.insert(t.name.clone(), h);
            }
            Err(message) => {
                tracing::warn!(trial = %t.name, %message, "trial could not start");
                t.state = TrialState::Failed;
                t.reason = TrialState::Failed.reason().into();
                t.message = format!("trial could not start: {message}");
                t.completed_at = Some(now);
                self.store.update_trial(&t, TrialState::Created)?;
            }
        }
        Ok(())
    }

    fn trial_run(
        &self,
        exp: &Experiment,
        t: &TrialRecord,
        trial_dir: PathBuf,
    ) -> Result<TrialRun, String> {
        let values: BTreeMap<String, String> = t
            .assignments
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let namespace = exp.namespace.as_deref().unwrap_or("default");
        let rendered = render(
            &exp.trial_template,
            &TrialIdentity {
                name: &t.name,
                namespace,
            },
            &values,
        )
        .map_err(|e| e.to_string())?;
        let c = primary_container(&rendered, &exp.trial_template.primary_container_name)
            .map_err(|e| e.to_string())?;
        let working_dir = c
            .working_dir
            .map(|w| self.opts.base_dir.join(w))
            .unwrap_or_else(|| trial_dir.clone());
        // Kubernetes expands $(VAR) in command and args from the container's env; local
        // trials can also refer to the experiment file's directory and their own.
        let mut vars: BTreeMap<String, String> = c.env.iter().cloned().collect();
        vars.insert(
            "KESTREL_EXPERIMENT_DIR".into(),
            self.opts.base_dir.display().to_string(),
        );
        vars.insert("KESTREL_TRIAL_DIR".into(), trial_dir.display().to_string());
        vars.insert("KESTREL_TRIAL_NAME".into(), t.name.clone());
        let argv = c
            .argv
            .iter()
            .map(|a| expand_env_refs(a, &|k| vars.get(k).cloned()))
            .collect();
        let source = match &exp.metrics_collector.kind {
            CollectorKind::File { path, .. } => MetricsSource::File(working_dir.join(path)),
            _ => MetricsSource::Output,
        };
        let metrics = exp.objective.all_metrics().map(str::to_string).collect();
        let collector =
            Collector::new(&exp.metrics_collector, metrics).map_err(|e| e.to_string())?;
        Ok(TrialRun {
            experiment: exp.name.clone(),
            trial: t.name.clone(),
            argv,
            env: c.env,
            working_dir,
            experiment_dir: self.opts.base_dir.clone(),
            trial_dir,
            collector,
            source,
        })
    }

    fn finish_trial(
        &self,
        exp: &Experiment,
        name: &str,
        code: Option<i32>,
        stopped: Option<StopReason>,
    ) -> Result<(), ControllerError> {
        let Some(mut t) = self.store.trial(name)? else {
            return Err(ControllerError::NotFound(name.into()));
        };
        let logs = self.store.metrics(name, None)?;
        t.observation = observe(&exp.objective, &logs);
        t.objective = objective_value(&exp.objective, &t.observation);
        if t.state.is_terminal() {
            // Finished from outside (Katib's SetTrialStatus marks a trial its collector
            // stopped early): keep that state and record the final observation.
            let from = t.state;
            self.store.update_trial(&t, from)?;
            return Ok(());
        }
        let log_path = self.opts.runs_dir.join(&exp.name).join(name).join(LOG_FILE);
        let (state, message) = match (stopped, code) {
            (Some(StopReason::ExperimentFinished), _) => (
                TrialState::Killed,
                "stopped because the experiment finished".to_string(),
            ),
            (Some(StopReason::Interrupted), _) => {
                (TrialState::Killed, "stopped by the user".to_string())
            }
            (Some(StopReason::EarlyStopped), _) => (
                TrialState::EarlyStopped,
                format!(
                    "Trial is early stopped: its objective fell behind the completed trials' (log: {})",
                    log_path.display()
                ),
            ),
            // Katib: a reported objective succeeds the trial even when it is not a number.
            (None, Some(0)) if t.reported(&exp.objective.metric).is_some() => {
                (TrialState::Succeeded, "Trial has succeeded".to_string())
            }
            (None, Some(0)) => {
                let now = Timestamp::now();
                self.store.append_metrics(
                    name,
                    &[MetricLog {
                        time: now,
                        name: exp.objective.metric.clone(),
                        value: UNAVAILABLE.into(),
                    }],
                )?;
                (
                    TrialState::MetricsUnavailable,
                    format!(
                        "the objective metric {:?} was never reported (log: {})",
                        exp.objective.metric,
                        log_path.display()
                    ),
                )
            }
            (None, Some(c)) => (
                TrialState::Failed,
                format!("exited with status {c} (log: {})", log_path.display()),
            ),
            (None, None) => (
                TrialState::Failed,
                format!("killed by a signal (log: {})", log_path.display()),
            ),
        };
        t.state = state;
        t.reason = state.reason().into();
        t.message = message;
        t.completed_at = Some(Timestamp::now());
        tracing::info!(trial = %name, state = %state, objective = ?t.objective, "trial finished");
        self.store.update_trial(&t, TrialState::Running)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        rec: &ExperimentRecord,
        handles: &mut HashMap<String, E::Handle>,
        why: StopReason,
        state: ExperimentState,
        reason: &str,
        message: &str,
        on_progress: &mut impl FnMut(&Progress<'_>),
    ) -> Result<ExperimentStatus, ControllerError> {
        futures::future::join_all(handles.values().map(|h| self.executor.stop(h, why))).await;
        for (t, h) in handles.drain() {
            if let RunPhase::Exited { code, stopped } = self.executor.status(&h) {
                self.finish_trial(&rec.spec, &t, code, stopped.or(Some(why)))?;
            }
        }
        let status = self.set_status(rec, state, reason, message)?;
        let trials = self.store.trials(rec.name())?;
        on_progress(&Progress {
            experiment: &rec.spec,
            trials: &trials,
            counts: TrialCounts::of(&trials),
        });
        Ok(status)
    }

    /// Kills the running trials (recorded as Killed) and leaves the experiment
    /// unfinished, so that the next `run` resumes it.
    async fn suspend(
        &self,
        rec: &ExperimentRecord,
        handles: &mut HashMap<String, E::Handle>,
    ) -> Result<ExperimentStatus, ControllerError> {
        let why = StopReason::Interrupted;
        futures::future::join_all(handles.values().map(|h| self.executor.stop(h, why))).await;
        for (t, h) in handles.drain() {
            if let RunPhase::Exited { code, stopped } = self.executor.status(&h) {
                self.finish_trial(&rec.spec, &t, code, stopped.or(Some(why)))?;
            }
        }
        Ok(self
            .store
            .experiment(rec.name())?
            .map_or_else(|| rec.status.clone(), |r| r.status))
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
        let now = Timestamp::now();
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
